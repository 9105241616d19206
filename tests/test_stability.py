"""The divergence rule: hand-made loss curves with known verdicts, and real runs (a NaN and a success)."""
import math

import pytest
import torch
from torch.utils.data import Dataset

from course_lib import ModelConfig, TrainConfig, Transformer
from course_lib.lab import stability as S


def test_judge_rules():
    ok = S.judge([3.0, 2.5, 2.0, 1.9, 1.8], fail_above=2.9, tail=2)
    assert not ok.diverged and ok.final_loss == pytest.approx(1.85) and ok.reason == ""
    stuck = S.judge([3.0, 2.5, 3.5, 3.2, 3.1], fail_above=2.9, tail=2)
    assert stuck.diverged and stuck.final_loss == pytest.approx(3.15) and "final loss" in stuck.reason
    assert stuck.max_rise == pytest.approx(1.0)
    nan = S.judge([3.0, 2.0, float("nan")], fail_above=2.9)
    assert nan.diverged and math.isnan(nan.final_loss) and "step 3" in nan.reason
    stopped = S.judge([3.0, 2.0], fail_above=2.9, failed_at=3, what="grad norm")
    assert stopped.diverged and "grad norm at step 3" in stopped.reason


def test_max_rise():
    assert S.max_rise([5, 4, 3, 2]) == 0
    assert S.max_rise([5, 1, 4, 0, 2]) == pytest.approx(3)
    assert S.max_rise([2, 3, float("inf"), 100]) == pytest.approx(1)


def test_judge_bad_inputs():
    with pytest.raises(ValueError, match="tail=0"):
        S.judge([1.0], 2.0, tail=0)
    with pytest.raises(ValueError, match="empty"):
        S.judge([], 2.0)


class _Repeat(Dataset):
    def __init__(self, n=64, T=8, V=10):
        g = torch.Generator().manual_seed(0)
        base = torch.arange(T + 1) % V
        self.items = [base.roll(int(torch.randint(0, V, (1,), generator=g))) for _ in range(n)]

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        s = self.items[i]
        return {"input_ids": s[:-1], "labels": s[1:]}


def _build(point, seed):
    torch.manual_seed(seed)
    model = Transformer(ModelConfig.nano(vocab_size=10, dim=16, n_layers=1, n_heads=2, n_kv_heads=2, ffn_dim=16,
                                         max_seq_len=8))
    cfg = TrainConfig(batch_size=8, max_steps=point["steps"], lr=point["lr"], optimizer=point["opt"], seed=seed,
                      grad_clip=None, progress=False, log_every=0, warmup_steps=0, device="cpu")
    return model, _Repeat(), cfg


def test_real_runs_are_judged_and_summarized():
    points = [{"lr": 1e-2, "opt": "adamw", "steps": 60}, {"lr": 1e12, "opt": "sgd", "steps": 5}]
    outs = S.grid_outcomes(points, [0, 1], _build, fail_above=math.log(10) - 0.1, tail=5)
    assert [o.settings["seed"] for o in outs] == [0, 1, 0, 1]
    good, bad = outs[:2], outs[2:]
    assert not any(o.diverged for o in good)          # a periodic sequence is learnt quickly
    assert all(o.diverged and "non-finite" in o.reason for o in bad)
    table = S.summarize(outs, ["lr"])
    assert table[(1e12,)] == {"runs": 2, "diverged": 2, "mean": None, "min": None, "max": None}
    assert table[(1e-2,)]["diverged"] == 0 and table[(1e-2,)]["mean"] < math.log(10) - 0.1
    with pytest.raises(ValueError, match="keys"):
        S.summarize(outs, ["depth"])
    with pytest.raises(ValueError, match="seeds"):
        S.grid_outcomes(points, [], _build, fail_above=1.0)


def test_compare_uses_the_seed_range():
    runs = []
    for group, finals in {"A": [1.0, 1.1], "B": [1.5, 1.6], "C": [1.05, 1.3], "D": [9.0, 9.0]}.items():
        for seed, f in enumerate(finals):
            o = S.judge([3.0, f], fail_above=2.0 if group != "D" else 5.0, tail=1)
            o.settings = {"g": group, "seed": seed}
            runs.append(o)
    t = S.summarize(runs, ["g"])
    assert S.compare(t, ("A",), ("B",)) == "a better"          # gap 0.5 > range 0.1
    assert S.compare(t, ("B",), ("A",)) == "b better"
    assert S.compare(t, ("A",), ("C",)) == "about equal"       # gap 0.125 < range 0.25
    assert S.compare(t, ("A",), ("D",)) == "a better"          # D diverged throughout
    assert S.compare(t, ("D",), ("D",)) == "undecided"
    with pytest.raises(ValueError, match="group"):
        S.compare(t, ("A",), ("Z",))
