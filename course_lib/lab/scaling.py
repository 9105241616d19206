"""Scaling-law fits and the course's standard small benchmark.

A scaling law says how a loss falls as something grows (parameters N, tokens D, compute C). The
usual form with a floor is

    L(N) = a · N^(-b) + c        a > 0, b > 0; c is the loss no size can remove (on this data)

    fit = fit_power_law(n_params, losses)     # PowerLawFit(a, b, c, rmse, dof)
    fit.loss_at([1e6, 1e7])                   # extrapolate, at your own risk: see ``dof``
    losses = standard_benchmark({"pos": "none"}, seeds=(0, 1))   # flip one ModelConfig switch

The fit: for a fixed exponent b the model is linear in (a, c), so least squares solves them exactly;
the exponent is then found by a grid search and a golden-section refinement of the squared error.
With three points the three parameters pass through them exactly (``dof == 0``): the "fit" then says
nothing about whether the law holds, which is why the result carries its degrees of freedom.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Optional, Sequence

import torch

__all__ = ["PowerLawFit", "fit_power_law", "BENCHMARK_MODEL", "standard_benchmark"]


@dataclass(frozen=True)
class PowerLawFit:
    """``L(N) = a · N^(-b) + c`` fitted to ``n_points`` points; ``rmse`` in the loss's unit."""

    a: float
    b: float
    c: float
    rmse: float
    n_points: int

    @property
    def dof(self) -> int:
        """Points minus fitted parameters: 0 means the curve passes through every point by construction."""
        return self.n_points - 3

    def loss_at(self, n) -> torch.Tensor:
        """Loss predicted at sizes ``n`` (any shape), float64."""
        n = torch.as_tensor(n, dtype=torch.float64)
        return self.a * n.pow(-self.b) + self.c


def _solve_ac(x: torch.Tensor, y: torch.Tensor, b: float) -> tuple[float, float, float]:
    """Least-squares (a, c) for fixed b; returns (a, c, sum of squared residuals)."""
    design = torch.stack([x.pow(-b), torch.ones_like(x)], dim=1)            # (P, 2)
    sol = torch.linalg.lstsq(design, y[:, None]).solution[:, 0]
    a, c = float(sol[0]), float(sol[1])
    sse = float(((design @ sol - y) ** 2).sum())
    return a, c, sse


def fit_power_law(n: Sequence[float], loss: Sequence[float], b_range: tuple[float, float] = (1e-3, 3.0),
                  grid: int = 400) -> PowerLawFit:
    """Fit ``loss ≈ a · n^(-b) + c`` by least squares (float64); see the module docstring.

    ``n``: sizes (positive), ``loss``: one value per size (at least 3 distinct sizes). ``b`` is searched
    in ``b_range`` (log-spaced grid, then golden section around the best grid point). A best exponent
    at the edge of ``b_range`` means the data do not pin it down.
    """
    x = torch.as_tensor(n, dtype=torch.float64).flatten()
    y = torch.as_tensor(loss, dtype=torch.float64).flatten()
    if x.numel() != y.numel():
        raise ValueError(f"n has {x.numel()} values but loss has {y.numel()}; pass one loss per size")
    if x.unique().numel() < 3:
        raise ValueError(f"n={x.tolist()}: a·N^-b + c has 3 parameters, so it needs at least 3 distinct sizes")
    if not bool((x > 0).all()) or not bool(torch.isfinite(y).all()):
        raise ValueError(f"n={x.tolist()}, loss={y.tolist()}: sizes must be > 0 and losses finite")
    lo, hi = b_range
    if not 0 < lo < hi:
        raise ValueError(f"b_range={b_range} must satisfy 0 < low < high")
    x = x / x.min()                                   # rescale for conditioning; a is rescaled back below
    bs = torch.logspace(math.log10(lo), math.log10(hi), grid, dtype=torch.float64).tolist()
    errs = [_solve_ac(x, y, b)[2] for b in bs]
    i = min(range(grid), key=errs.__getitem__)
    left, right = bs[max(i - 1, 0)], bs[min(i + 1, grid - 1)]
    g = (math.sqrt(5) - 1) / 2
    for _ in range(60):                               # golden section on [left, right]
        m1, m2 = right - g * (right - left), left + g * (right - left)
        if _solve_ac(x, y, m1)[2] < _solve_ac(x, y, m2)[2]:
            right = m2
        else:
            left = m1
    b = (left + right) / 2
    a, c, sse = _solve_ac(x, y, b)
    scale = float(torch.as_tensor(n, dtype=torch.float64).min())
    return PowerLawFit(a=a * scale ** b, b=b, c=c, rmse=math.sqrt(sse / x.numel()), n_points=x.numel())


#: The benchmark's base model: a character-level Transformer small enough for a CPU minute.
BENCHMARK_MODEL = dict(dim=64, n_layers=2, n_heads=4, n_kv_heads=2, ffn_dim=176, max_seq_len=64)


def standard_benchmark(config_overrides: Optional[Mapping] = None, seeds: Sequence[int] = (0, 1),
                       steps: int = 150, corpus="kjv", max_chars: int = 200_000, block_size: int = 64,
                       batch_size: int = 16, lr: float = 3e-3, eval_items: int = 128) -> list[float]:
    """Validation loss (nats/char) of the benchmark model with ``config_overrides`` applied, one per seed.

    The benchmark: ``corpus`` (a name for ``load_corpus`` or a list of documents) at the character level,
    packed into blocks of ``block_size``; a ``BENCHMARK_MODEL`` Transformer changed by
    ``config_overrides`` (any ``ModelConfig`` fields); AdamW for ``steps`` steps at ``lr`` with a 10%
    warmup and cosine decay; the loss on the first ``eval_items`` validation blocks. Same arguments, same
    numbers: the data order and each seed's initial weights are fixed.
    """
    from ..config import ModelConfig
    from ..data import packed_splits
    from ..train import TrainConfig
    from .probes import dataset_loss
    from .runs import train_model

    overrides = dict(config_overrides or {})
    bad = sorted(set(overrides) - set(ModelConfig.__dataclass_fields__))
    if bad:
        raise ValueError(f"config_overrides has unknown ModelConfig fields {bad}; see ModelConfig for the switches")
    if not seeds:
        raise ValueError("seeds=() is empty; pass at least one seed, e.g. seeds=(0, 1)")
    tok, train, val = packed_splits(corpus, block_size, max_chars=max_chars)
    cfg = ModelConfig.nano(**{**BENCHMARK_MODEL, "vocab_size": tok.vocab_size, **overrides})
    tc = TrainConfig(batch_size=batch_size, max_steps=steps, lr=lr, warmup_steps=max(steps // 10, 1))
    return [dataset_loss(train_model(cfg, train, tc, seed=s)[0], val, max_items=eval_items) for s in seeds]
