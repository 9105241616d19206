"""course_lib.lab.accumulation: the Trainer's accumulated SGD step against an independent gradient
(one forward over the whole batch with F.cross_entropy), and the scale (in)variance of SGD vs AdamW."""
import pytest
import torch

from course_lib import ModelConfig, TrainConfig
from course_lib.lab import accumulation as acc

CFG = ModelConfig.nano(vocab_size=32, dim=32, n_layers=1, n_heads=2, n_kv_heads=1, ffn_dim=64, max_seq_len=32)
LR = 0.1
SGD = TrainConfig(optimizer="sgd", momentum=0.0, weight_decay=0.0, grad_clip=None, lr=LR)


def _as_gradient(update):
    return {n: -u / LR for n, u in update.items()}


@pytest.mark.parametrize("lengths", [(16, 16), (3, 30)])
def test_global_token_accumulation_equals_the_big_batch_gradient(lengths):
    items = acc.ragged_sequences(8, CFG.vocab_size, *lengths, seed=1)
    ref = acc.reference_gradient(CFG, items, seed=3)
    for bs, accum in [(8, 1), (2, 4), (1, 8)]:
        upd = acc.one_step_update(CFG, items, SGD.replace(batch_size=bs, grad_accum_steps=accum,
                                                          accum_normalize="global_tokens"), seed=3)
        assert acc.relative_diff(_as_gradient(upd), ref) < 1e-5, (bs, accum)


def test_per_micro_mean_is_exact_only_for_equal_lengths():
    equal = acc.ragged_sequences(8, CFG.vocab_size, 16, 16, seed=1)
    ragged = acc.ragged_sequences(8, CFG.vocab_size, 3, 30, seed=1)
    per_micro = SGD.replace(batch_size=2, grad_accum_steps=4, accum_normalize="per_micro")
    eq = acc.relative_diff(_as_gradient(acc.one_step_update(CFG, equal, per_micro, seed=3)),
                           acc.reference_gradient(CFG, equal, seed=3))
    rg = acc.relative_diff(_as_gradient(acc.one_step_update(CFG, ragged, per_micro, seed=3)),
                           acc.reference_gradient(CFG, ragged, seed=3))
    assert eq < 1e-5 and rg > 1e-2, (eq, rg)


def test_forgetting_the_division_scales_sgd_by_accum_but_not_adamw():
    items = acc.ragged_sequences(8, CFG.vocab_size, 16, 16, seed=2)
    base = dict(batch_size=1, grad_accum_steps=8)
    sgd = [acc.update_norm(acc.one_step_update(CFG, items, SGD.replace(**base, accum_normalize=m)))
           for m in ("per_micro", "none")]
    adam_cfg = TrainConfig(optimizer="adamw", weight_decay=0.0, grad_clip=None, lr=1e-3, eps=1e-12, **base)
    adam = [acc.update_norm(acc.one_step_update(CFG, items, adam_cfg.replace(accum_normalize=m)))
            for m in ("per_micro", "none")]
    assert sgd[1] / sgd[0] == pytest.approx(8.0, rel=1e-4)
    assert adam[1] / adam[0] == pytest.approx(1.0, abs=1e-4)


def test_helpers_against_hand_arithmetic():
    a = {"w": torch.tensor([3.0, 4.0])}
    b = {"w": torch.tensor([3.0, 0.0])}
    assert acc.update_norm(a) == pytest.approx(5.0)
    assert acc.max_abs_diff(a, b) == pytest.approx(4.0)
    assert acc.relative_diff(a, b) == pytest.approx(4.0 / 3.0)
    with pytest.raises(ValueError, match="min_len"):
        acc.ragged_sequences(2, 10, 1, 5)
    items = acc.ragged_sequences(5, 10, 4, 7, seed=0)
    for it in items:
        assert 4 <= len(it["input_ids"]) <= 7 and torch.equal(it["labels"][:-1], it["input_ids"][1:])


def test_step_throughput_is_positive():
    items = acc.ragged_sequences(8, CFG.vocab_size, 8, 8)
    assert acc.step_throughput(CFG, items, SGD.replace(batch_size=2, grad_accum_steps=2), steps=2) > 0
