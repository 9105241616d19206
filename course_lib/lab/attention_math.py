"""The mathematics of attention scores and the softmax, as small functions you can test.

Notebooks 05-08 ask questions whose answers are a few lines of algebra: how the variance of q·k
grows with the head size, how quickly the softmax saturates when its inputs grow, what "uniform"
attention returns, what a hard (argmax) lookup does to the gradient. Each answer is a function here,
checked in ``tests/test_attention_math.py`` against an independent reference (``torch.softmax``,
``torch.autograd.functional.jacobian``, closed forms).

Shapes follow ``docs/design.md``: scores and weights are ``(..., T, S)`` (queries x keys), values
``(..., S, d)``. Natural logarithms throughout (entropies in nats unless a name says bits).

Contents
    Monte Carlo of q·k:      dot_product_samples, dot_product_variance, loglog_slope, excess_kurtosis
    softmax and saturation:  naive_softmax, stable_softmax, softmax_jacobian, softmax_jacobian_norm,
                             saturation_table, score_gap_for_ratio
    attention weights:       entropy, attention_entropy, uniform_weights, uniform_attention,
                             hard_weights, gumbel_weights (from ``course_lib.attention``),
                             normalize_scores, attend
    measurements on scores:  finite_scores, raw_score_stats, symmetry_defect, diagonal_mass,
                             diagonal_argmax_rate
"""
from __future__ import annotations

import math
from typing import Dict, Iterable, List, Optional, Sequence, Union

import torch

from ..attention import NORMALIZERS, gumbel_weights, hard_weights   # the model's normalisers, re-exported

Tensor = torch.Tensor
DISTRIBUTIONS = ("normal", "rademacher", "uniform")


# ----------------------------------------------------------------------------- Monte Carlo of q·k
def _iid_unit(shape, dist: str, generator: Optional[torch.Generator], dtype: torch.dtype) -> Tensor:
    """Entries with mean 0 and variance 1 from the named distribution."""
    if dist == "normal":
        return torch.randn(shape, generator=generator, dtype=dtype)
    if dist == "rademacher":
        return torch.randint(0, 2, shape, generator=generator).to(dtype) * 2 - 1
    if dist == "uniform":  # U(-sqrt3, sqrt3) has variance 1
        return (torch.rand(shape, generator=generator, dtype=dtype) * 2 - 1) * math.sqrt(3.0)
    raise ValueError(f"dist={dist!r} must be one of {DISTRIBUTIONS}")


def dot_product_samples(d: int, n_samples: int, *, dist: str = "normal", seed: int = 0,
                        dtype: torch.dtype = torch.float64, chunk: int = 4_000_000) -> Tensor:
    """``n_samples`` draws of q·k where q and k have ``d`` i.i.d. entries of mean 0, variance 1.

    ``dist`` picks the entry distribution ("normal", "rademacher" = ±1, "uniform" on ±sqrt(3)):
    the variance of q·k is d for all three, which is the point. Returns a 1-D tensor.
    """
    if not (isinstance(d, int) and d >= 1):
        raise ValueError(f"d={d!r} must be a positive integer")
    if not (isinstance(n_samples, int) and n_samples >= 2):
        raise ValueError(f"n_samples={n_samples!r} must be an integer >= 2")
    g = torch.Generator().manual_seed(seed)
    rows = max(1, chunk // d)  # bound the memory of one draw
    out = []
    left = n_samples
    while left > 0:
        m = min(rows, left)
        q = _iid_unit((m, d), dist, g, dtype)
        k = _iid_unit((m, d), dist, g, dtype)
        out.append((q * k).sum(-1))
        left -= m
    return torch.cat(out)


def dot_product_variance(ds: Iterable[int], n_samples: int = 20_000, *, dist: str = "normal",
                         seed: int = 0) -> Dict[int, float]:
    """Empirical Var(q·k) for each head size in ``ds`` (same seed scheme for every d)."""
    return {int(d): float(dot_product_samples(int(d), n_samples, dist=dist, seed=seed + i).var())
            for i, d in enumerate(ds)}


def loglog_slope(x: Sequence[float], y: Sequence[float]) -> float:
    """Least-squares slope of log y against log x (1.0 means y grows in proportion to x)."""
    lx = torch.log(torch.as_tensor(x, dtype=torch.float64))
    ly = torch.log(torch.as_tensor(y, dtype=torch.float64))
    if lx.numel() < 2:
        raise ValueError("loglog_slope needs at least two points")
    lx = lx - lx.mean()
    return float((lx * (ly - ly.mean())).sum() / (lx * lx).sum())


def excess_kurtosis(x: Tensor) -> float:
    """E[(x-mu)^4]/sigma^4 - 3: zero for a Gaussian, positive for heavier tails.

    For q·k/sqrt(d) with Gaussian entries the exact value is 6/d (a sum of d i.i.d. products of two
    standard normals, each with kurtosis 9).
    """
    x = torch.as_tensor(x, dtype=torch.float64).flatten()
    c = x - x.mean()
    m2 = (c * c).mean()
    return float((c ** 4).mean() / (m2 * m2) - 3.0)


# ----------------------------------------------------------------------------- softmax and saturation
def naive_softmax(x: Tensor, dim: int = -1) -> Tensor:
    """exp(x) / sum(exp(x)) computed literally, in x's dtype: overflows when exp(max x) does
    (x > 11.09 in float16, x > 88.72 in float32)."""
    e = torch.exp(x)
    return e / e.sum(dim=dim, keepdim=True)


def stable_softmax(x: Tensor, dim: int = -1) -> Tensor:
    """The same function after subtracting the row maximum (the largest exponent is exp(0) = 1).

    Rows that are entirely -inf (fully masked) give zeros rather than NaN.
    """
    m = x.amax(dim=dim, keepdim=True)
    m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))
    e = torch.exp(x - m)
    s = e.sum(dim=dim, keepdim=True)
    return torch.where(s > 0, e / torch.where(s > 0, s, torch.ones_like(s)), torch.zeros_like(e))


def softmax_jacobian(p: Tensor) -> Tensor:
    """d softmax / d scores at probabilities ``p`` (..., n): diag(p) - p p^T, shape (..., n, n).

    Its diagonal is p(1-p), the "gradient" the documents print; the off-diagonal terms -p_i p_j
    matter as much.
    """
    return torch.diag_embed(p) - p.unsqueeze(-1) * p.unsqueeze(-2)


def softmax_jacobian_norm(scores: Tensor, dim: int = -1) -> Tensor:
    """Spectral norm (largest singular value) of the softmax Jacobian at ``scores``.

    The Jacobian is symmetric positive semi-definite, so this is its largest eigenvalue; it is at
    most 1/2 and goes to 0 as the softmax saturates to one-hot.
    """
    p = torch.softmax(scores.to(torch.float64), dim=dim)
    if dim != -1:
        p = p.movedim(dim, -1)
    return torch.linalg.eigvalsh(softmax_jacobian(p))[..., -1].clamp_min(0.0)


def saturation_table(base: Sequence[float], scales: Sequence[float]) -> List[dict]:
    """softmax(base * s) for each s, with max p(1-p) and the Jacobian's spectral norm.

    Returns one dict per scale: ``scale``, ``scores``, ``probs`` (list), ``max_p``,
    ``max_p1mp`` (max of p(1-p)), ``jac_norm``.
    """
    b = torch.as_tensor(base, dtype=torch.float64)
    rows = []
    for s in scales:
        x = b * float(s)
        p = torch.softmax(x, dim=-1)
        rows.append(dict(scale=float(s), scores=x.tolist(), probs=p.tolist(), max_p=float(p.max()),
                         max_p1mp=float((p * (1 - p)).max()),
                         jac_norm=float(softmax_jacobian_norm(x))))
    return rows


def score_gap_for_ratio(ratio: float) -> float:
    """The score difference a - b for which softmax puts ``ratio`` times more weight on a than b."""
    if ratio <= 0:
        raise ValueError(f"ratio={ratio} must be > 0")
    return math.log(ratio)


# ----------------------------------------------------------------------------- attention weights
def entropy(p: Tensor, dim: int = -1) -> Tensor:
    """Shannon entropy in nats along ``dim``; zero-probability entries contribute 0."""
    logp = torch.log(p.clamp_min(torch.finfo(p.dtype).tiny))
    return -(torch.where(p > 0, p * logp, torch.zeros_like(p))).sum(dim)


def causal_mask(T: int, S: Optional[int] = None, device=None) -> Tensor:
    """Boolean (T, S) mask, True where query t may see key s (keys aligned to the end)."""
    S = T if S is None else S
    t = torch.arange(T, device=device).unsqueeze(-1) + (S - T)
    return torch.arange(S, device=device).unsqueeze(0) <= t


def attention_entropy(weights: Tensor, causal: bool = True, normalized: bool = False) -> Tensor:
    """Entropy of each attention row (..., T). ``normalized=True`` divides by the entropy of uniform
    attention over the keys that row may see (log S bidirectional, log(t+1) causal), so 1 means
    uniform and 0 means one-hot. The first causal row (a single key) is defined as 1."""
    h = entropy(weights.to(torch.float64))
    if not normalized:
        return h
    T, S = weights.shape[-2], weights.shape[-1]
    if causal:
        n = causal_mask(T, S, weights.device).sum(-1).to(torch.float64)
    else:
        n = torch.full((T,), float(S), dtype=torch.float64, device=weights.device)
    logn = torch.log(n)
    return torch.where(logn > 0, h / torch.where(logn > 0, logn, torch.ones_like(logn)), torch.ones_like(h))


def uniform_weights(T: int, S: Optional[int] = None, causal: bool = True, dtype=torch.float32) -> Tensor:
    """The (T, S) matrix of uniform attention: 1/S everywhere, or 1/(t+1) over the prefix if causal."""
    S = T if S is None else S
    if not causal:
        return torch.full((T, S), 1.0 / S, dtype=dtype)
    m = causal_mask(T, S).to(dtype)
    return m / m.sum(-1, keepdim=True)


def uniform_attention(v: Tensor, causal: bool = True) -> Tensor:
    """What attention returns when every weight is equal, without forming the weights.

    Bidirectional: every position gets mean(V) over the sequence. Causal: position t gets the running
    mean of V_0..V_t. ``v`` is (..., S, d); the result has the same shape.
    """
    if not causal:
        return v.mean(-2, keepdim=True).expand_as(v)
    n = torch.arange(1, v.shape[-2] + 1, dtype=v.dtype, device=v.device).unsqueeze(-1)
    return v.cumsum(-2) / n


def _masked(scores: Tensor, causal: bool) -> Tensor:
    if not causal:
        return scores
    m = causal_mask(scores.shape[-2], scores.shape[-1], scores.device)
    return scores.masked_fill(~m, float("-inf"))


def normalize_scores(scores: Tensor, normalizer: str = "softmax", *, causal: bool = False,
                     tau: float = 1.0, generator: Optional[torch.Generator] = None) -> Tensor:
    """Turn (..., T, S) scores into weights with one of ``NORMALIZERS`` (the causal mask applied
    first): "softmax", "hard" (argmax, no gradient), "straight_through", "gumbel", "gumbel_hard",
    "uniform" (ignores the scores)."""
    if normalizer not in NORMALIZERS:
        raise ValueError(f"normalizer={normalizer!r} must be one of {NORMALIZERS}")
    if normalizer == "uniform":
        w = uniform_weights(scores.shape[-2], scores.shape[-1], causal, dtype=scores.dtype)
        return w.to(scores.device).expand_as(scores)
    x = _masked(scores, causal)
    if normalizer == "softmax":
        return torch.softmax(x, -1)
    if normalizer == "hard":
        return hard_weights(x, straight_through=False)
    if normalizer == "straight_through":
        return hard_weights(x, straight_through=True)
    return gumbel_weights(x, tau=tau, hard=(normalizer == "gumbel_hard"), generator=generator)


def attend(q: Tensor, k: Tensor, v: Tensor, *, scale: Optional[float] = None, causal: bool = False,
           normalizer: str = "softmax", tau: float = 1.0,
           generator: Optional[torch.Generator] = None) -> tuple:
    """Single attention: weights = normalizer(scale * q k^T), output = weights @ v.

    q (..., T, d), k (..., S, d), v (..., S, d_v); ``scale`` defaults to 1/sqrt(d). Returns
    ``(output, weights)``. With normalizer="softmax" this equals PyTorch's
    ``scaled_dot_product_attention``.
    """
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else float(scale)
    w = normalize_scores(scale * q @ k.transpose(-1, -2), normalizer, causal=causal, tau=tau,
                         generator=generator)
    return w @ v, w


# ----------------------------------------------------------------------------- measurements on scores
def finite_scores(scores: Tensor) -> Tensor:
    """The entries of a captured score tensor that a query may attend to (masked ones are -inf)."""
    return scores[torch.isfinite(scores)]


def raw_score_stats(scores: Union[Tensor, Sequence[Tensor]], scale: float) -> List[dict]:
    """Per-layer statistics of the raw dot products q·k behind captured (scaled, masked) scores.

    ``scores`` is one (B, H, T, S) tensor or a list of them (``out.captured["scores"]``); ``scale``
    is the factor the model multiplied q·k by (``config.resolved_attn_scale``). Returns one dict per
    layer with ``var`` and ``std`` of raw q·k, ``scaled_std`` (what the softmax sees) and
    ``max_abs_scaled``. Only visible (finite) entries count.
    """
    layers = [scores] if isinstance(scores, Tensor) else list(scores)
    out = []
    for s in layers:
        x = finite_scores(s.detach().to(torch.float64))
        raw = x / scale
        out.append(dict(var=float(raw.var()), std=float(raw.std()), scaled_std=float(x.std()),
                        max_abs_scaled=float(x.abs().max())))
    return out


def symmetry_defect(S: Tensor) -> float:
    """||S - S^T||_F / ||S||_F over the last two dims (0 for a symmetric score matrix; about sqrt(2)
    for an i.i.d. random one). Use bidirectional scores: causal masking fills the upper triangle."""
    S = S.detach().to(torch.float64)
    return float(torch.linalg.matrix_norm(S - S.transpose(-1, -2)).norm()
                 / torch.linalg.matrix_norm(S).norm())


def diagonal_mass(weights: Tensor) -> float:
    """Average attention a query pays to its own position (mean of the diagonal of (..., T, T))."""
    return float(torch.diagonal(weights.detach(), dim1=-2, dim2=-1).to(torch.float64).mean())


def diagonal_argmax_rate(scores: Tensor) -> float:
    """Fraction of query rows whose largest score is on their own position (chance is 1/T for
    bidirectional i.i.d. scores)."""
    T = scores.shape[-2]
    am = scores.detach().argmax(-1)
    return float((am == torch.arange(T, device=scores.device)).to(torch.float64).mean())
