"""The LSTM baseline: PyTorch's LSTM equations written out in float64, shapes, causality, training."""
import pytest
import torch

from course_lib.lab.baselines import (LSTMLanguageModel, accuracy_by_group, count_params, lstm_hidden_for_params,
                                      training_tokens_per_second)
from course_lib.lab.synthetic import agreement
from course_lib.train import TrainConfig, Trainer


def lstm_by_hand(model, ids):
    """The LSTM gate equations of torch.nn.LSTM's documentation, one step at a time, float64."""
    x = model.embed.weight.double()[ids]
    B, T, _ = x.shape
    for layer in range(model.n_layers):
        W = getattr(model.lstm, f"weight_ih_l{layer}").double()
        U = getattr(model.lstm, f"weight_hh_l{layer}").double()
        b = (getattr(model.lstm, f"bias_ih_l{layer}") + getattr(model.lstm, f"bias_hh_l{layer}")).double()
        h = torch.zeros(B, model.hidden, dtype=torch.float64)
        c = torch.zeros_like(h)
        outs = []
        for t in range(T):
            i, f, g, o = (x[:, t] @ W.T + h @ U.T + b).chunk(4, dim=-1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
            outs.append(h)
        x = torch.stack(outs, dim=1)
    return x @ model.head.weight.double().T + model.head.bias.double()


@pytest.mark.parametrize("n_layers", [1, 2])
def test_matches_the_lstm_equations(n_layers):
    torch.manual_seed(0)
    model = LSTMLanguageModel(vocab_size=11, dim=8, n_layers=n_layers, hidden=12)
    ids = torch.randint(11, (3, 7))
    out = model(ids)
    assert out.logits.shape == (3, 7, 11) and out.loss is None
    torch.testing.assert_close(out.logits.double(), lstm_by_hand(model, ids), atol=1e-5, rtol=1e-5)


def test_loss_is_cross_entropy_and_causal():
    torch.manual_seed(1)
    model = LSTMLanguageModel(vocab_size=9, dim=8)
    ids, labels = torch.randint(9, (2, 6)), torch.randint(9, (2, 6))
    out = model(ids, labels=labels)
    ref = torch.nn.functional.cross_entropy(out.logits.reshape(-1, 9), labels.reshape(-1))
    torch.testing.assert_close(out.loss, ref)
    changed = ids.clone()
    changed[:, 4:] = (changed[:, 4:] + 1) % 9              # the future changes; the past's logits must not
    torch.testing.assert_close(model(changed).logits[:, :4], out.logits[:, :4])


def test_hidden_for_params_matches_the_real_count():
    for target in (5_000, 40_000):
        h = lstm_hidden_for_params(target, vocab_size=20, dim=16, n_layers=2)
        real = count_params(LSTMLanguageModel(20, 16, 2, hidden=h))
        near = count_params(LSTMLanguageModel(20, 16, 2, hidden=h + 1))
        assert abs(real - target) <= abs(near - target)


def test_trains_with_the_trainer_and_groups_accuracy():
    task = agreement(512, n_attractors=1, n_nouns=4, n_preps=2, seed=0)
    torch.manual_seed(0)
    model = LSTMLanguageModel(task.vocab_size, dim=32)
    tc = TrainConfig(batch_size=32, max_steps=60, lr=1e-2, warmup_steps=0, shuffle=False, eval_every=0,
                     save_every=0, out_dir=None, log_every=0, progress=False, device="cpu", dtype="float32")
    hist = Trainer(model, task, tc).fit()
    assert hist.loss[-1] < 0.5 * hist.loss[0]
    groups = accuracy_by_group(model, task, task.info["n_mismatched"])
    assert set(groups) <= {0, 1} and sum(n for _, n in groups.values()) == len(task)
    assert all(0.0 <= a <= 1.0 for a, _ in groups.values())
    assert training_tokens_per_second(model, batch=2, seq_len=8, steps=1) > 0


def test_bad_input():
    with pytest.raises(ValueError, match="vocab_size"):
        LSTMLanguageModel(0)
    with pytest.raises(ValueError, match="input_ids"):
        LSTMLanguageModel(5)(torch.zeros(3, dtype=torch.long))
