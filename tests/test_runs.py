"""course_lib.lab.runs: spike detection on hand-built series; train_run reports divergence as data."""
import math

import pytest

from course_lib import ModelConfig, TrainConfig
from course_lib.lab.runs import spikes, train_run
from course_lib.lab.accumulation import ragged_sequences


def test_spikes_on_hand_built_series():
    flat = [1.0] * 20
    assert spikes(flat) == []
    s = flat[:10] + [5.0] + flat[:9]
    assert spikes(s) == [10]
    assert spikes(s, factor=6) == []
    assert spikes([1.0, 1.0, 1.0, math.nan, 1.0]) == [3]
    assert spikes([9.0, 1.0, 1.0]) == []           # too little history to call anything a spike
    # a slow rise is not a spike: each value is within 3x of the median before it
    assert spikes([1.0 * 1.2 ** i for i in range(30)]) == []
    with pytest.raises(ValueError):
        spikes(flat, factor=1.0)


def test_train_run_counts_divergence_instead_of_raising():
    cfg = ModelConfig.nano(vocab_size=16, dim=16, n_layers=1, n_heads=2, n_kv_heads=1, ffn_dim=32, max_seq_len=16)
    data = ragged_sequences(16, 16, 16, 16)
    ok, d_ok = train_run(cfg, data, TrainConfig(max_steps=3, batch_size=4, lr=1e-3), seed=0)
    assert d_ok is None and len(ok.loss) == 3
    bad, d_bad = train_run(cfg, data, TrainConfig(max_steps=20, batch_size=4, lr=1e12, optimizer="sgd",
                                                  momentum=0.0, grad_clip=None, schedule="constant"), seed=0)
    assert d_bad is not None and len(bad.loss) == d_bad - 1


def test_train_model_returns_the_trained_weights():
    import torch

    from course_lib.lab.runs import seeded_model, train_model

    cfg = ModelConfig.nano(vocab_size=16, dim=16, n_layers=1, n_heads=2, n_kv_heads=1, ffn_dim=32, max_seq_len=16)
    data = ragged_sequences(16, 16, 16, 16)
    tc = TrainConfig(max_steps=5, batch_size=4, lr=1e-2)
    model, history = train_model(cfg, data, tc, seed=0)
    reference, _ = train_run(cfg, data, tc, seed=0)                 # the same run, weights not returned
    assert history.loss == reference.loss
    init = seeded_model(cfg, 0)
    moved = [float((p - q).detach().abs().max()) for p, q in zip(model.parameters(), init.parameters())]
    assert max(moved) > 0
    batch = torch.stack([data[i]["input_ids"] for i in range(4)])
    labels = torch.stack([data[i]["labels"] for i in range(4)])
    with torch.no_grad():
        assert float(model(batch, labels=labels).loss) < float(init(batch, labels=labels).loss)
