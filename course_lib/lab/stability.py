"""Training stability: run a configuration, decide by a stated rule whether it diverged, and count.

A run *diverged* when either

* the loss or the gradient norm became NaN or infinite (the trainer raises ``TrainingDiverged``), or
* the mean loss over its last ``tail`` steps is still above ``fail_above``, a threshold the caller
  measures from the data (the notebooks use the unigram entropy of the training tokens: a run that
  ends no better than counting characters has not learned to use context; with gradient clipping a
  blown-up run usually lands there instead of at NaN).

The rule is explicit so that divergence is counted, not eyeballed; :func:`grid_outcomes` applies it
over a grid of settings and seeds.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Dict, Iterable, List, Optional, Sequence

from ..train import TrainConfig, Trainer, TrainingDiverged


@dataclass
class RunOutcome:
    """One training run judged by the divergence rule.

    diverged / reason: the verdict and why ("non-finite loss at step 12", "final loss 3.05 >= 2.98").
    final_loss: mean training loss over the last ``tail`` steps (NaN when the run stopped on a NaN).
    losses: the per-step training losses that were logged.
    max_rise: the largest rise of the loss above its running minimum (a spike measure, in nats).
    settings: the grid point (filled by :func:`grid_outcomes`).
    """

    diverged: bool
    reason: str
    final_loss: float
    losses: List[float]
    max_rise: float
    settings: Dict[str, object] = field(default_factory=dict)


def max_rise(losses: Sequence[float]) -> float:
    """The largest ``loss[t] - min(loss[:t])`` over the finite prefix of ``losses`` (0 if it never rose)."""
    best, rise = math.inf, 0.0
    for v in losses:
        if not math.isfinite(v):
            break
        if v > best:
            rise = max(rise, v - best)
        best = min(best, v)
    return rise


def judge(losses: Sequence[float], fail_above: float, tail: int = 10, failed_at: Optional[int] = None,
          what: str = "loss") -> RunOutcome:
    """Apply the divergence rule to a loss curve. ``failed_at``: the step at which the trainer stopped
    on a non-finite ``what`` (None if it finished)."""
    if tail < 1:
        raise ValueError(f"tail={tail} must be >= 1 (the number of final steps averaged)")
    losses = [float(v) for v in losses]
    rise = max_rise(losses)
    if failed_at is not None or any(not math.isfinite(v) for v in losses):
        step = failed_at if failed_at is not None else next(i + 1 for i, v in enumerate(losses)
                                                            if not math.isfinite(v))
        return RunOutcome(True, f"non-finite {what} at step {step}", math.nan, losses, rise)
    if not losses:
        raise ValueError("losses is empty: the run logged no step")
    final = sum(losses[-tail:]) / len(losses[-tail:])
    if final >= fail_above:
        return RunOutcome(True, f"final loss {final:.3f} >= {fail_above:.3f}", final, losses, rise)
    return RunOutcome(False, "", final, losses, rise)


def train_and_judge(model, data, config: TrainConfig, fail_above: float, tail: int = 10) -> RunOutcome:
    """Train ``model`` on ``data`` with ``config`` and judge the run (a NaN stops it and counts)."""
    trainer = Trainer(model, data, config)
    try:
        history = trainer.fit()
    except TrainingDiverged as err:
        return judge(trainer.history.loss, fail_above, tail, failed_at=err.step, what=err.what)
    return judge(history.loss, fail_above, tail)


def grid_outcomes(points: Iterable[Dict[str, object]], seeds: Sequence[int],
                  build: Callable[[Dict[str, object], int], tuple], fail_above: float,
                  tail: int = 10) -> List[RunOutcome]:
    """Run every grid point with every seed. ``build(point, seed)`` returns ``(model, data, TrainConfig)``;
    each outcome's ``settings`` is the point plus ``seed``."""
    seeds = list(seeds)
    if not seeds:
        raise ValueError("seeds is empty; pass at least one seed")
    out = []
    for point in points:
        for seed in seeds:
            model, data, config = build(point, seed)
            outcome = train_and_judge(model, data, config, fail_above, tail)
            outcome.settings = {**point, "seed": seed}
            out.append(outcome)
    return out


def summarize(outcomes: Sequence[RunOutcome], keys: Sequence[str]) -> Dict[tuple, Dict[str, object]]:
    """Group outcomes by the values of ``keys`` in their settings: per group the number of runs, the
    number that diverged, and the mean, min and max final loss of the runs that did not (None if all
    diverged, so an average is never taken over nothing)."""
    groups: Dict[tuple, List[RunOutcome]] = {}
    for o in outcomes:
        missing = [k for k in keys if k not in o.settings]
        if missing:
            raise ValueError(f"keys {missing} are not in the run settings {sorted(o.settings)}")
        groups.setdefault(tuple(o.settings[k] for k in keys), []).append(o)
    table = {}
    for key, runs in groups.items():
        ok = [r.final_loss for r in runs if not r.diverged]
        table[key] = {"runs": len(runs), "diverged": sum(r.diverged for r in runs),
                      "mean": sum(ok) / len(ok) if ok else None,
                      "min": min(ok) if ok else None, "max": max(ok) if ok else None}
    return table


def compare(table: Dict[tuple, Dict[str, object]], a: tuple, b: tuple) -> str:
    """Which of two :func:`summarize` groups ended lower: ``"a better"``, ``"b better"`` or
    ``"about equal"``, decided by a margin at least the larger seed range of the two (lower loss is
    better). A group whose every run diverged loses to one with finished runs (``"undecided"`` if
    both diverged throughout)."""
    for key in (a, b):
        if key not in table:
            raise ValueError(f"group {key!r} is not in the table; groups are {sorted(table, key=str)}")
    ra, rb = table[a], table[b]
    if ra["mean"] is None or rb["mean"] is None:
        if ra["mean"] is None and rb["mean"] is None:
            return "undecided"
        return "a better" if rb["mean"] is None else "b better"
    margin = max(ra["max"] - ra["min"], rb["max"] - rb["min"])
    gap = rb["mean"] - ra["mean"]
    return "a better" if gap > margin else "b better" if -gap > margin else "about equal"
