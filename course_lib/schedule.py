"""Learning-rate schedules: the learning rate of every optimizer step, as a pure function.

``lr_at(step, schedule=..., lr=..., min_lr=..., warmup_steps=..., max_steps=...)`` gives the learning
rate used by update number ``step`` (0-based: step 0 is the first update, step ``max_steps - 1``
the last). A pure function of the step is easy to plot, to test and to resume: there is no
scheduler object whose state could drift from the step counter.

Shape of every schedule::

    warmup (linear)      lr_k = peak * (k + 1) / warmup_steps      for k < warmup_steps
    after warmup         t = (k - a) / (max_steps - 1 - a)  in [0, 1], a = max(warmup_steps - 1, 0)

so the last warmup step and the first decay step coincide at ``t = 0`` (no jump), and the last
update of the run (``k = max_steps - 1``) is at ``t = 1``. Then, with ``lo = min_lr`` and ``hi = lr``:

    constant   hi
    linear     hi + (lo - hi) * t
    exp        hi * (lo / hi) ** t                                 (needs min_lr > 0)
    cosine     lo + (hi - lo) * (1 + cos(pi t)) / 2
    wsd        hi until t reaches 1 - decay_fraction, then down to lo (linear, cosine or 1-sqrt)
    reversed   lo + (hi - lo) * (1 - cos(pi t)) / 2                (cosine mirrored: low, then high)

The peak is exactly ``lr`` (MiniMind's old formula ``lr/10 + 0.5 lr (1 + cos)`` peaked at 1.1 lr)
and the decaying schedules end exactly at ``min_lr``. Steps past the end keep the final value.
For ``reversed`` the warmup ramps up to its starting value (``min_lr``); it exists for the
notebooks' "does the order of large and small steps matter?" ablation.
"""
from __future__ import annotations

import functools
import math
from typing import Callable, List

SCHEDULES = ("constant", "linear", "exp", "cosine", "wsd", "reversed")
WSD_DECAYS = ("linear", "cosine", "sqrt")


def check_schedule(schedule: str, lr: float, min_lr: float, warmup_steps: int, max_steps: int,
                   decay_fraction: float, wsd_decay: str) -> None:
    """Raise ``ValueError`` naming the argument, its value and what is allowed (done once per schedule)."""
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule={schedule!r} must be one of {SCHEDULES}")
    if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        raise ValueError(f"lr={lr!r} must be a finite number > 0")
    if not (isinstance(min_lr, (int, float)) and 0 <= min_lr <= lr):
        raise ValueError(f"min_lr={min_lr!r} must be in [0, lr={lr}]")
    if schedule == "exp" and min_lr <= 0:
        raise ValueError(f"min_lr={min_lr!r} must be > 0 for schedule='exp' (an exponential never reaches 0)")
    if isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 1:
        raise ValueError(f"max_steps={max_steps!r} must be an integer >= 1")
    if isinstance(warmup_steps, bool) or not isinstance(warmup_steps, int) or not 0 <= warmup_steps <= max_steps:
        raise ValueError(f"warmup_steps={warmup_steps!r} must be an integer in [0, max_steps={max_steps}]")
    if not 0.0 <= decay_fraction <= 1.0:
        raise ValueError(f"decay_fraction={decay_fraction!r} must be in [0, 1]")
    if wsd_decay not in WSD_DECAYS:
        raise ValueError(f"wsd_decay={wsd_decay!r} must be one of {WSD_DECAYS}")


def _shape(t: float, schedule: str, hi: float, lo: float, decay_fraction: float, wsd_decay: str) -> float:
    """The schedule after warmup at progress ``t`` in [0, 1]."""
    if schedule == "constant":
        return hi
    if schedule == "linear":
        return hi + (lo - hi) * t
    if schedule == "exp":
        return hi * (lo / hi) ** t
    if schedule == "cosine":
        return lo + (hi - lo) * 0.5 * (1.0 + math.cos(math.pi * t))
    if schedule == "reversed":
        return lo + (hi - lo) * 0.5 * (1.0 - math.cos(math.pi * t))
    # wsd: warmup, a long stable phase at the peak, then a short decay over the last decay_fraction
    start = 1.0 - decay_fraction
    if t <= start or decay_fraction == 0.0:
        return hi
    u = (t - start) / decay_fraction                      # progress inside the decay, (0, 1]
    if wsd_decay == "linear":
        return hi + (lo - hi) * u
    if wsd_decay == "cosine":
        return lo + (hi - lo) * 0.5 * (1.0 + math.cos(math.pi * u))
    return lo + (hi - lo) * (1.0 - math.sqrt(u))          # "1 - sqrt" decay (Hägele et al., 2024)


def lr_at(step: int, *, schedule: str = "cosine", lr: float, min_lr: float = 0.0, warmup_steps: int = 0,
          max_steps: int, decay_fraction: float = 0.2, wsd_decay: str = "linear", **unknown) -> float:
    """The learning rate of optimizer update ``step`` (0-based).

    schedule: one of ``SCHEDULES`` (see the module docstring for the formulas).
    lr: the peak learning rate (reached exactly, never exceeded).
    min_lr: the final learning rate of the decaying schedules (ignored by "constant").
    warmup_steps: linear warmup over the first ``warmup_steps`` updates (0: none).
    max_steps: the number of updates in the run; the decay ends at update ``max_steps - 1``.
    decay_fraction, wsd_decay: for "wsd", the fraction of the post-warmup steps spent decaying and
        the decay's shape ("linear", "cosine" or "sqrt" for 1 - sqrt).
    """
    if unknown:
        raise ValueError(f"unknown schedule arguments {sorted(unknown)}; known: schedule, lr, min_lr, "
                         "warmup_steps, max_steps, decay_fraction, wsd_decay")
    return schedule_fn(schedule=schedule, lr=lr, min_lr=min_lr, warmup_steps=warmup_steps, max_steps=max_steps,
                       decay_fraction=decay_fraction, wsd_decay=wsd_decay)(step)


def schedule_fn(*, schedule: str = "cosine", lr: float, min_lr: float = 0.0, warmup_steps: int = 0,
                max_steps: int, decay_fraction: float = 0.2, wsd_decay: str = "linear") -> Callable[[int], float]:
    """``step -> learning rate`` for one schedule (arguments as in :func:`lr_at`), validated once here
    rather than at every step: what a training loop calls."""
    check_schedule(schedule, lr, min_lr, warmup_steps, max_steps, decay_fraction, wsd_decay)
    return functools.partial(_lr, schedule=schedule, lr=float(lr), min_lr=float(min_lr), warmup_steps=warmup_steps,
                             max_steps=max_steps, decay_fraction=decay_fraction, wsd_decay=wsd_decay)


def _lr(step: int, *, schedule: str, lr: float, min_lr: float, warmup_steps: int, max_steps: int,
        decay_fraction: float, wsd_decay: str) -> float:
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise ValueError(f"step={step!r} must be an integer >= 0")
    anchor = max(warmup_steps - 1, 0)          # the step where the schedule proper starts (t = 0)
    span = max_steps - 1 - anchor
    t = 1.0 if span <= 0 else min(max((step - anchor) / span, 0.0), 1.0)
    value = _shape(t, schedule, lr, min_lr, decay_fraction, wsd_decay)
    if step < warmup_steps:
        # ramp from value/warmup_steps up to the schedule's value at t = 0 (the peak, except for "reversed")
        return _shape(0.0, schedule, lr, min_lr, decay_fraction, wsd_decay) * (step + 1) / warmup_steps
    return value


def lr_curve(max_steps: int, **kwargs) -> List[float]:
    """``[lr_at(k, max_steps=max_steps, **kwargs) for k in range(max_steps)]``, for plots."""
    return [lr_at(k, max_steps=max_steps, **kwargs) for k in range(max_steps)]


__all__ = ["SCHEDULES", "WSD_DECAYS", "lr_at", "lr_curve", "schedule_fn", "check_schedule"]
