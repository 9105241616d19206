"""Training runs as experiments: a seeded model, a quiet deterministic Trainer, divergence as an outcome.

Notebooks compare settings over seeds; each comparison needs the same three things: a model built
from a seed, a trainer that prints nothing and runs on the CPU in float32 unless told otherwise, and
a run that diverges reported as data (to be counted) instead of an exception.
"""
from __future__ import annotations

import torch

from ..config import ModelConfig
from ..model import Transformer
from ..train import TrainConfig, Trainer, TrainHistory, TrainingDiverged

__all__ = ["QUIET", "seeded_model", "train_run", "spikes", "train_model"]

# Settings that make a Trainer quiet and deterministic; experiments choose everything else.
QUIET = dict(shuffle=False, eval_every=0, save_every=0, out_dir=None, log_every=0, progress=False,
             device="cpu", dtype="float32")


def seeded_model(model_config: ModelConfig, seed: int) -> Transformer:
    """``Transformer(model_config)`` with its weights drawn after ``torch.manual_seed(seed)``."""
    torch.manual_seed(seed)
    return Transformer(model_config)


def train_run(model_config: ModelConfig, train_data, train_config: TrainConfig, seed: int = 0,
              eval_data=None, device: str = "auto") -> tuple[TrainHistory, int | None]:
    """Train a model initialised with ``seed``; returns ``(history, diverged_at)``.

    A run that diverges (non-finite loss or gradient norm) is not an error here: it is an outcome to
    count. ``diverged_at`` is the 1-based step that diverged (None if none did); ``history`` holds the
    steps completed before it. Only the history comes back, so the run may use any device:
    ``device="auto"`` trains on the GPU where there is one (with its default precision), else on the
    CPU in float32.
    """
    model = seeded_model(model_config, seed)
    where = {"device": device, "dtype": "auto" if device != "cpu" else "float32"}
    trainer = Trainer(model, train_data, train_config.replace(**{**QUIET, **where}, seed=seed), eval_data=eval_data)
    try:
        return trainer.fit(), None
    except TrainingDiverged as err:
        return trainer.history, err.step


def spikes(values, factor: float = 3.0, window: int = 10, min_history: int = 3) -> list[int]:
    """Indices where a series jumps above ``factor`` times the median of the ``window`` values before.

    A loss or gradient-norm *spike* is relative to its recent level, not an absolute threshold.
    Non-finite values count as spikes. The first ``min_history`` values are never spikes (no level yet).
    """
    import math
    import statistics

    if factor <= 1 or window < 1 or min_history < 1:
        raise ValueError(f"need factor > 1, window >= 1, min_history >= 1; got {factor}, {window}, {min_history}")
    found = []
    for i, v in enumerate(values):
        history = [x for x in values[max(0, i - window):i] if math.isfinite(x)]
        if len(history) < min_history:
            continue
        if not math.isfinite(v) or v > factor * statistics.median(history):
            found.append(i)
    return found


def train_model(model_config: ModelConfig, train_data, train_config: TrainConfig, seed: int = 0,
                device: str = "auto"):
    """Like :func:`train_run` for runs that are expected to finish, when the trained weights are what
    the experiment measures next: returns ``(model, history)``; a divergence raises ``TrainingDiverged``.

    Training uses the GPU where there is one (``device="auto"``); the model comes back on the CPU in
    float32, so the probes that follow run the same on every machine.
    """
    model = seeded_model(model_config, seed)
    where = {"device": device, "dtype": "auto" if device != "cpu" else "float32"}
    history = Trainer(model, train_data, train_config.replace(**{**QUIET, **where}, seed=seed)).fit()
    return model.to("cpu", torch.float32), history
