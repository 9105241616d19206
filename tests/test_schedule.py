"""Learning-rate schedules against torch.optim.lr_scheduler, an independent implementation."""

import pytest
import torch
from torch.optim import lr_scheduler as S

from course_lib.schedule import SCHEDULES, lr_at, lr_curve


def torch_lrs(make_scheduler, steps, lr):
    """The lr that torch's scheduler gives to each of ``steps`` optimizer updates."""
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)
    sched = make_scheduler(opt)
    out = []
    for _ in range(steps):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


def ours(steps, **kw):
    return lr_curve(steps, **kw)


def test_cosine_matches_cosine_annealing():
    n, lr, lo = 50, 1e-3, 1e-4
    ref = torch_lrs(lambda o: S.CosineAnnealingLR(o, T_max=n - 1, eta_min=lo), n, lr)
    assert ours(n, schedule="cosine", lr=lr, min_lr=lo) == pytest.approx(ref, rel=1e-9, abs=1e-15)


def test_cosine_with_warmup_matches_sequential_linear_then_cosine():
    n, w, lr, lo = 60, 10, 3e-3, 3e-4
    ref = torch_lrs(lambda o: S.SequentialLR(o, [
        S.LinearLR(o, start_factor=1 / w, end_factor=1.0, total_iters=w - 1),
        S.CosineAnnealingLR(o, T_max=n - w, eta_min=lo)], milestones=[w - 1]), n, lr)
    got = ours(n, schedule="cosine", lr=lr, min_lr=lo, warmup_steps=w)
    assert got == pytest.approx(ref, rel=1e-9)


def test_linear_matches_linear_lr():
    n, lr, lo = 40, 1e-2, 1e-3
    ref = torch_lrs(lambda o: S.LinearLR(o, start_factor=1.0, end_factor=lo / lr, total_iters=n - 1), n, lr)
    assert ours(n, schedule="linear", lr=lr, min_lr=lo) == pytest.approx(ref, rel=1e-9)


def test_exp_matches_exponential_lr():
    n, lr, lo = 40, 1e-2, 1e-4
    gamma = (lo / lr) ** (1 / (n - 1))
    ref = torch_lrs(lambda o: S.ExponentialLR(o, gamma=gamma), n, lr)
    assert ours(n, schedule="exp", lr=lr, min_lr=lo) == pytest.approx(ref, rel=1e-9)


def test_constant_with_warmup_matches_lambda_lr():
    n, w, lr = 30, 5, 1e-3
    ref = torch_lrs(lambda o: S.LambdaLR(o, lambda k: min(1.0, (k + 1) / w)), n, lr)
    assert ours(n, schedule="constant", lr=lr, warmup_steps=w) == pytest.approx(ref, rel=1e-12)


def test_wsd_matches_lambda_lr():
    """Warmup 4, stable, then the last 20% of the post-warmup span decays linearly to min_lr."""
    n, w, lr, lo, frac = 54, 4, 1e-3, 1e-5, 0.2
    span = n - w                 # post-warmup steps k = w-1 .. n-1 map to t = 0 .. 1

    def factor(k):
        if k < w:
            return (k + 1) / w
        t = (k - (w - 1)) / span
        if t <= 1 - frac:
            return 1.0
        return (lr + (lo - lr) * (t - (1 - frac)) / frac) / lr

    ref = torch_lrs(lambda o: S.LambdaLR(o, factor), n, lr)
    assert ours(n, schedule="wsd", lr=lr, min_lr=lo, warmup_steps=w, decay_fraction=frac) == pytest.approx(ref, rel=1e-9)


@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.parametrize("warmup", [0, 1, 7])
def test_peak_is_exactly_lr_and_end_is_min_lr(schedule, warmup):
    lr, lo, n = 1e-3, 1e-4, 40
    curve = ours(n, schedule=schedule, lr=lr, min_lr=lo, warmup_steps=warmup)
    assert max(curve) == pytest.approx(lr, rel=1e-12)
    assert max(curve) <= lr              # never 1.1 x lr
    if schedule == "constant":
        assert curve[-1] == lr
    elif schedule == "reversed":
        assert curve[-1] == pytest.approx(lr) and min(curve[max(warmup - 1, 0):]) == pytest.approx(lo)
    else:
        assert curve[-1] == pytest.approx(lo, rel=1e-12)
    # past the end the value holds
    assert lr_at(n + 5, schedule=schedule, lr=lr, min_lr=lo, warmup_steps=warmup, max_steps=n) == pytest.approx(curve[-1])


def test_warmup_ramps_linearly_to_the_peak():
    curve = ours(20, schedule="cosine", lr=1.0, min_lr=0.0, warmup_steps=4)
    assert curve[:4] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert all(a >= b for a, b in zip(curve[3:], curve[4:]))    # then monotone down


def test_reversed_is_cosine_mirrored():
    n, lr, lo = 30, 1.0, 0.1
    cos = ours(n, schedule="cosine", lr=lr, min_lr=lo)
    rev = ours(n, schedule="reversed", lr=lr, min_lr=lo)
    assert rev == pytest.approx(cos[::-1])


def test_single_step_run():
    assert lr_at(0, schedule="cosine", lr=1e-3, min_lr=0, max_steps=1) == pytest.approx(0.0)
    assert lr_at(0, schedule="cosine", lr=1e-3, min_lr=0, warmup_steps=1, max_steps=1) == pytest.approx(1e-3)


@pytest.mark.parametrize("kwargs, word", [
    (dict(schedule="nope"), "schedule"),
    (dict(lr=0.0), "lr"),
    (dict(lr=-1.0), "lr"),
    (dict(min_lr=2.0), "min_lr"),
    (dict(schedule="exp", min_lr=0.0), "min_lr"),
    (dict(warmup_steps=-1), "warmup_steps"),
    (dict(warmup_steps=11), "warmup_steps"),
    (dict(max_steps=0), "max_steps"),
    (dict(decay_fraction=1.5, schedule="wsd"), "decay_fraction"),
    (dict(typo=1), "typo"),
])
def test_bad_arguments_name_the_parameter(kwargs, word):
    args = dict(schedule="cosine", lr=1.0, min_lr=0.1, warmup_steps=0, max_steps=10)
    args.update(kwargs)
    with pytest.raises(ValueError, match=word):
        lr_at(0, **args)
    with pytest.raises(ValueError, match="step"):
        lr_at(-1, schedule="cosine", lr=1.0, max_steps=10)
