"""Trainer: accumulation equals the big batch, weight-decay groups, clipping, divergence, config checks."""
import math

import pytest
import torch

from course_lib.config import ModelConfig
from course_lib.data import SampleStream
from course_lib.model import Transformer
from course_lib.progress import TrainHistory
from course_lib.train import TrainConfig, Trainer, TrainingDiverged, param_groups


def masked_data(n=48, seed=1, vocab=256, lo=4, hi=40):
    """Variable-length sequences whose first third carries no loss (like an SFT prompt)."""
    g = torch.Generator().manual_seed(seed)
    items = []
    for _ in range(n):
        t = int(torch.randint(lo, hi, (1,), generator=g))
        ids = torch.randint(3, vocab, (t + 1,), generator=g)
        labels = ids[1:].clone()
        labels[: t // 3] = -100
        items.append({"input_ids": ids[:-1], "labels": labels, "attention_mask": torch.ones(t, dtype=torch.long)})
    return items


def train(data, seed=0, **kw):
    torch.manual_seed(seed)
    model = Transformer(ModelConfig.nano())
    cfg = dict(max_steps=4, lr=1e-2, log_every=0, progress=False, device="cpu", dtype="float32")
    cfg.update(kw)
    history = Trainer(model, data, TrainConfig(**cfg)).fit()
    return model, history


def max_diff(a, b):
    return max((p - q).abs().max().item() for p, q in zip(a.parameters(), b.parameters()))


# ---------------------------------------------------------------- accumulation
def test_accumulation_equals_big_batch_sgd():
    """8 x 1 and 2 x 4 read the same samples and, with the global token count, reach the same weights."""
    data = masked_data()
    big, hb = train(data, batch_size=8, grad_accum_steps=1, optimizer="sgd", lr=0.5, momentum=0.0, grad_clip=None)
    acc, ha = train(data, batch_size=2, grad_accum_steps=4, optimizer="sgd", lr=0.5, momentum=0.0, grad_clip=None)
    naive, hn = train(data, batch_size=2, grad_accum_steps=4, optimizer="sgd", lr=0.5, momentum=0.0, grad_clip=None,
                      accum_normalize="per_micro")
    assert max_diff(big, acc) < 1e-6
    assert hb.loss == pytest.approx(ha.loss, abs=1e-5)
    assert hb.tokens == ha.tokens
    # the naive per-micro-batch mean weighs tokens unevenly: the weights really differ
    assert max_diff(big, naive) > 100 * max(max_diff(big, acc), 1e-7)


def test_accumulation_equals_big_batch_adamw():
    data = masked_data()
    big, _ = train(data, batch_size=8, grad_accum_steps=1)
    acc, _ = train(data, batch_size=2, grad_accum_steps=4)
    naive, _ = train(data, batch_size=2, grad_accum_steps=4, accum_normalize="per_micro")
    assert max_diff(big, acc) < 5e-4        # AdamW amplifies float noise in tiny gradients
    assert max_diff(big, naive) > 10 * max_diff(big, acc)


def test_seq_mean_accumulation_equals_big_batch():
    data = masked_data()
    big, _ = train(data, batch_size=8, grad_accum_steps=1, optimizer="sgd", lr=0.5, momentum=0.0,
                   loss_reduction="seq_mean", grad_clip=None)
    acc, _ = train(data, batch_size=2, grad_accum_steps=4, optimizer="sgd", lr=0.5, momentum=0.0,
                   loss_reduction="seq_mean", grad_clip=None)
    assert max_diff(big, acc) < 1e-6


def test_none_normalisation_scales_the_gradient_by_accum():
    """accum_normalize='none' forgets the division: the first SGD step is grad_accum_steps times larger
    (with equal-length, unmasked data, where per-micro means are all comparable)."""
    g = torch.Generator().manual_seed(0)
    data = []
    for _ in range(16):
        ids = torch.randint(3, 256, (17,), generator=g)
        data.append({"input_ids": ids[:-1], "labels": ids[1:], "attention_mask": torch.ones(16, dtype=torch.long)})
    torch.manual_seed(0)
    start = Transformer(ModelConfig.nano())
    w0 = [p.detach().clone() for p in start.parameters()]
    kw = dict(batch_size=2, grad_accum_steps=4, max_steps=1, optimizer="sgd", lr=0.1, momentum=0.0,
              weight_decay=0.0, grad_clip=None, schedule="constant")
    right, _ = train(data, **kw, accum_normalize="per_micro")
    wrong, _ = train(data, **kw, accum_normalize="none")
    for p0, pr, pw in zip(w0, right.parameters(), wrong.parameters()):
        torch.testing.assert_close(pw - p0, 4 * (pr - p0), rtol=1e-3, atol=1e-6)


def test_sample_stream_is_a_seeded_permutation_per_epoch():
    s = SampleStream(10, seed=3)
    first, second = s.indices(0, 10), s.indices(10, 10)
    assert sorted(first) == list(range(10)) and sorted(second) == list(range(10))
    assert first != second                       # a new permutation each epoch
    assert SampleStream(10, seed=3).indices(5, 10) == first[5:] + second[:5]
    assert SampleStream(4, seed=0, shuffle=False).indices(2, 4) == [2, 3, 0, 1]


# ---------------------------------------------------------------- optimizer groups
def test_adamw_decays_only_matrices():
    model = Transformer(ModelConfig.nano())
    decay, no_decay = param_groups(model, 0.1)
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert all(p.dim() >= 2 for p in decay["params"])
    assert all(p.dim() < 2 for p in no_decay["params"])
    assert any("norm" in n for n in no_decay["names"]) and "embed_tokens.weight" in decay["names"]
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))
    _, no_decay2 = param_groups(model, 0.1, decay_embeddings=False)
    assert "embed_tokens.weight" in no_decay2["names"]

    trainer = Trainer(model, masked_data(8), TrainConfig(weight_decay=0.1, device="cpu", progress=False))
    groups = trainer.optimizer.param_groups
    assert isinstance(trainer.optimizer, torch.optim.AdamW)
    assert [g["weight_decay"] for g in groups] == [0.1, 0.0]


def test_norm_gains_are_not_decayed():
    """One step with and without weight decay (same gradients): only >= 2-D weights differ, norm gains
    are bitwise the same. (A window without targets is an error, so the gradients cannot be zero.)"""
    data = masked_data(4)
    decayed, _ = train(data, batch_size=2, max_steps=1, lr=0.1, weight_decay=0.5, schedule="constant")
    plain, _ = train(data, batch_size=2, max_steps=1, lr=0.1, weight_decay=0.0, schedule="constant")
    for (name, p), q in zip(decayed.named_parameters(), plain.parameters()):
        assert torch.equal(p, q) == (p.dim() < 2), name


def test_sgd_with_momentum():
    model = Transformer(ModelConfig.nano())
    trainer = Trainer(model, masked_data(8), TrainConfig(optimizer="sgd", momentum=0.8, device="cpu", progress=False))
    assert isinstance(trainer.optimizer, torch.optim.SGD)
    assert trainer.optimizer.param_groups[0]["momentum"] == 0.8


# ---------------------------------------------------------------- clipping and logging
def test_grad_norm_and_clipping_match_torch():
    """The logged norm equals clip_grad_norm_ on the same gradients; the update uses the clipped ones."""
    data = masked_data(8)
    torch.manual_seed(0)
    model = Transformer(ModelConfig.nano())
    ref = Transformer(ModelConfig.nano())
    ref.load_state_dict(model.state_dict())
    cfg = TrainConfig(batch_size=8, max_steps=1, optimizer="sgd", lr=0.1, momentum=0.0, weight_decay=0.0,
                      grad_clip=0.05, schedule="constant", shuffle=False, device="cpu", progress=False, log_every=0)
    h = Trainer(model, data, cfg).fit()

    from course_lib.data import collate
    batch = collate(data)
    out = ref(batch["input_ids"], labels=batch["labels"], attention_mask=batch["attention_mask"])
    out.loss.backward()
    norm = torch.nn.utils.clip_grad_norm_(ref.parameters(), 0.05)
    with torch.no_grad():
        for p in ref.parameters():
            p -= 0.1 * p.grad
    assert h.grad_norm[0] == pytest.approx(float(norm), rel=1e-5)
    assert h.clipped == [True] and h.clip_rate == 1.0
    assert max_diff(model, ref) < 1e-6


def test_clipping_off_still_logs_the_norm():
    _, h = train(masked_data(), batch_size=4, grad_clip=float("inf"))
    assert h.clip_rate == 0.0 and all(math.isfinite(x) and x > 0 for x in h.grad_norm)
    _, h2 = train(masked_data(), batch_size=4, grad_clip=1e-3)
    assert h2.clip_rate == 1.0


def test_history_fields_and_layer_norms():
    _, h = train(masked_data(), batch_size=4, max_steps=3, track_layer_grad_norms=True, warmup_steps=1)
    assert h.step == [1, 2, 3] and len(h.loss) == len(h.lr) == len(h.grad_norm) == len(h.time) == 3
    assert h.lr[0] == pytest.approx(1e-2)               # warmup of 1 step reaches the peak at once
    assert h.tokens[-1] > h.tokens[0] > 0
    assert set(h.layer_grad_norms[0]) >= {"layers.0", "layers.1", "embed_tokens"}
    again = TrainHistory.from_dict(h.to_dict())
    assert again.loss == h.loss and again.grad_norm == h.grad_norm


def test_history_plot(tmp_path):
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    data = masked_data()
    torch.manual_seed(0)
    trainer = Trainer(Transformer(ModelConfig.nano()), data[:40],
                      TrainConfig(batch_size=4, max_steps=4, eval_every=2, eval_batches=2, device="cpu",
                                  progress=False, log_every=0), eval_data=data[40:])
    h = trainer.fit()
    assert h.eval_step == [2, 4] and all(math.isfinite(x) for x in h.eval_loss)
    ax = h.plot()
    assert ax.get_xlabel() == "step"


# ---------------------------------------------------------------- divergence
def test_nan_stops_with_the_step_and_keeps_the_last_checkpoint(tmp_path):
    data = masked_data()
    torch.manual_seed(0)
    model = Transformer(ModelConfig.nano())
    calls = {"n": 0}

    def poison(module, inputs, output):          # the forward of step 5 returns NaN activations
        calls["n"] += 1
        if calls["n"] == 5:
            return output * float("nan")

    model.layers[0].ffn.register_forward_hook(poison)
    cfg = TrainConfig(batch_size=4, max_steps=8, save_every=2, out_dir=str(tmp_path), device="cpu",
                      progress=False, log_every=0)
    trainer = Trainer(model, data, cfg)
    with pytest.raises(TrainingDiverged, match="step 5") as info:
        trainer.fit()
    assert info.value.step == 5 and info.value.last_checkpoint == tmp_path / "step_4"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step_2", "step_4"]
    # the update was not applied: the model still holds the weights of step 4
    from course_lib.checkpoint import load_checkpoint
    saved = load_checkpoint(tmp_path / "step_4")
    assert max_diff(saved, model) == 0.0


# ---------------------------------------------------------------- bad config
@pytest.mark.parametrize("field, value", [
    ("grad_accum_steps", 0), ("batch_size", 0), ("max_steps", 0), ("lr", 0.0), ("lr", -1e-3),
    ("lr", float("nan")), ("min_lr", 1.0), ("warmup_steps", 1000), ("schedule", "triangle"),
    ("optimizer", "lion"), ("weight_decay", -0.1), ("grad_clip", 0.0), ("dtype", "int8"),
    ("loss_reduction", "mean"), ("accum_normalize", "tokens"), ("betas", (0.9, 1.0)), ("momentum", 1.0),
    ("keep_last_checkpoints", 0), ("progress", "yes"),
])
def test_bad_config_names_field_and_value(field, value):
    with pytest.raises(ValueError) as info:
        TrainConfig(**{field: value})
    assert field in str(info.value) and repr(value)[:6] in str(info.value)


def test_bad_data():
    model = Transformer(ModelConfig.nano())
    with pytest.raises(ValueError, match="empty"):
        Trainer(model, [], TrainConfig(device="cpu"))
    long = [{"input_ids": torch.zeros(200, dtype=torch.long), "labels": torch.zeros(200, dtype=torch.long),
             "attention_mask": torch.ones(200, dtype=torch.long)}]
    with pytest.raises(ValueError, match="max_seq_len"):
        Trainer(model, long, TrainConfig(device="cpu", progress=False, max_steps=1)).fit()


def test_train_config_round_trip():
    cfg = TrainConfig(lr=3e-4, betas=(0.8, 0.9), grad_clip=float("inf"), out_dir="x")
    again = TrainConfig.from_dict(cfg.to_dict())
    assert again.betas == (0.8, 0.9) and again.grad_clip is None and not again.clip_enabled
    with pytest.raises(ValueError, match="unknown"):
        TrainConfig.from_dict({"lrr": 1})


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_mixed_precision_runs(dtype):
    trainer = Trainer(Transformer(ModelConfig.nano()), masked_data(16),
                      TrainConfig(batch_size=4, max_steps=2, dtype=dtype, device="cpu", progress=False, log_every=0))
    h = trainer.fit()
    assert (trainer.scaler is not None) == (dtype == "float16")
    assert all(math.isfinite(x) for x in h.loss)
    assert next(trainer.model.parameters()).dtype == torch.float32      # master weights stay float32


def test_moe_aux_loss_is_added_once_per_window():
    """For an MoE model the logged loss is the cross-entropy only; the aux loss still trains the router."""
    model = Transformer(ModelConfig.nano(moe_experts=4, moe_top_k=2))
    router = [p for n, p in model.named_parameters() if "router" in n or "gate." in n]
    before = [p.detach().clone() for p in router]
    h = Trainer(model, masked_data(16), TrainConfig(batch_size=4, grad_accum_steps=2, max_steps=2, device="cpu",
                                                    progress=False, log_every=0)).fit()
    assert all(math.isfinite(x) and 3.0 < x < 7.0 for x in h.loss)
    assert router and any(not torch.equal(a, b) for a, b in zip(before, router))
