"""Instruments for looking at RoPE: rotation matrices, the relative-offset property, frequency
tables, the long-range decay bound and a content/offset separability measure.

Everything here goes through the library's own RoPE (``positions.rope_frequencies`` and
``positions.apply_rope``, rotate-half layout), so what a notebook verifies is the code the model runs.
The explicit matrices in :func:`rotation_matrix` are the independent reference: they are built from
cosines and sines directly, pair by pair, without ``apply_rope``.

Conventions: ``q, k`` are vectors of length ``d`` (the head dimension, even); positions are integers;
pair ``i`` is ``(x[i], x[i + d/2])`` (rotate-half layout) and turns at angular frequency
``theta ** (-2 i / d)`` radians per position.
"""
from __future__ import annotations

import math
from typing import Dict, List, Optional, Sequence

import torch

from ..positions import apply_rope, rope_frequencies, rope_inv_freq

__all__ = [
    "inv_frequencies", "frequency_table", "document_frequency_list", "rotation_matrix", "rope_rotate",
    "rope_score", "explicit_score", "relative_offset_error", "score_vs_offset", "pair_scores",
    "decay_bound", "constant_vector_score", "content_offset_matrix", "separability",
]


# ----------------------------------------------------------------------------------------- frequencies
def inv_frequencies(head_dim: int, theta: float = 1e4, scaling: str = "none", factor: float = 1.0,
                    original_max_seq_len: Optional[int] = None) -> torch.Tensor:
    """The ``head_dim // 2`` angular frequencies (radians per position), float64, from the library."""
    inv, _ = rope_inv_freq(head_dim, theta, scaling, factor, original_max_seq_len)
    return inv.to(torch.float64)


def frequency_table(head_dim: int, theta: float = 1e4, train_len: Optional[int] = None) -> List[Dict]:
    """One row per rotating pair: index, frequency, wavelength (positions per full turn) and, given a
    training length, the number of full turns the pair completes within it (< 1: the pair never sees a
    whole turn during training, so angles past ``train_len`` are new to it)."""
    inv = inv_frequencies(head_dim, theta)
    rows = []
    for i, f in enumerate(inv.tolist()):
        row = {"pair": i, "freq": f, "wavelength": 2 * math.pi / f}
        if train_len is not None:
            row["turns_in_train_len"] = train_len * f / (2 * math.pi)
        rows.append(row)
    return rows


def document_frequency_list(n: int = 4) -> List[float]:
    """The list ``[1, 0.1, 0.01, 0.001, ...]`` that a source document gives for RoPE's frequencies."""
    return [10.0 ** (-i) for i in range(n)]


# ----------------------------------------------------------------------------------------- rotations
def rotation_matrix(head_dim: int, position: float, theta: float = 1e4) -> torch.Tensor:
    """The explicit ``(d, d)`` float64 matrix ``R_m`` with ``rope(x, m) = R_m @ x`` (rotate-half layout).

    Built entry by entry from ``cos`` and ``sin``: a 2x2 rotation in the plane of coordinates
    ``(i, i + d/2)`` for every pair ``i``. Orthogonal, and ``R_m^T R_n = R_{n-m}``.
    """
    if head_dim % 2:
        raise ValueError(f"head_dim={head_dim} must be even for RoPE")
    half = head_dim // 2
    inv = theta ** (-torch.arange(half, dtype=torch.float64) * 2.0 / head_dim)
    R = torch.zeros(head_dim, head_dim, dtype=torch.float64)
    for i in range(half):
        a = position * float(inv[i])
        c, s = math.cos(a), math.sin(a)
        R[i, i], R[i, i + half] = c, -s
        R[i + half, i], R[i + half, i + half] = s, c
    return R


def rope_rotate(x: torch.Tensor, positions, theta: float = 1e4) -> torch.Tensor:
    """Rotate vectors with the library's ``apply_rope``.

    ``x``: ``(d,)`` or ``(T, d)``; ``positions``: an int or a sequence of ``T`` ints. Returns the same
    shape as ``x`` (float32 in, float32 out; float64 in is computed in float64 except for the angles).
    """
    single = x.dim() == 1
    xs = x[None] if single else x                                       # (T, d)
    T, d = xs.shape
    pos = torch.as_tensor([positions] * T if isinstance(positions, (int, float)) else list(positions))
    if pos.numel() != T:
        raise ValueError(f"positions has {pos.numel()} entries but x has {T} rows")
    cos, sin = rope_frequencies(pos.long()[None], d, theta)             # (1, T, d)
    out = apply_rope(xs[None, None], cos.to(xs.dtype), sin.to(xs.dtype))[0, 0]
    return out[0] if single else out


def rope_score(q: torch.Tensor, k: torch.Tensor, m: int, n: int, theta: float = 1e4) -> float:
    """``<R_m q, R_n k>`` computed with the library's ``apply_rope``."""
    return float(torch.dot(rope_rotate(q, m, theta), rope_rotate(k, n, theta)))


def explicit_score(q: torch.Tensor, k: torch.Tensor, offset: int, theta: float = 1e4) -> float:
    """``q^T R_{n-m} k`` for ``offset = m - n`` (query position minus key position), from the explicit
    float64 matrix: the function of content and offset alone that ``<R_m q, R_n k>`` should equal."""
    R = rotation_matrix(q.numel(), -offset, theta)
    return float(q.double() @ R @ k.double())


def relative_offset_error(q: torch.Tensor, k: torch.Tensor, pairs: Sequence[tuple], shifts: Sequence[int],
                          theta: float = 1e4) -> Dict[str, float]:
    """How far RoPE scores are from depending on ``m - n`` only.

    For every ``(m, n)`` in ``pairs`` and every shift ``s``: compare ``score(m + s, n + s)`` with
    ``score(m, n)`` (``shift_error``) and ``score(m, n)`` with ``q^T R_{n-m} k`` from the explicit matrix
    (``matrix_error``). Returns the largest absolute and relative deviations and the score scale.
    """
    shift_err, mat_err, scale = 0.0, 0.0, 0.0
    for m, n in pairs:
        base = rope_score(q, k, m, n, theta)
        scale = max(scale, abs(base))
        mat_err = max(mat_err, abs(base - explicit_score(q, k, m - n, theta)))
        for s in shifts:
            shift_err = max(shift_err, abs(rope_score(q, k, m + s, n + s, theta) - base))
    norm = float(q.norm() * k.norm())
    return {"shift_error": shift_err, "matrix_error": mat_err, "max_abs_score": scale,
            "qk_norm_product": norm, "relative_shift_error": shift_err / norm, "relative_matrix_error": mat_err / norm}


def score_vs_offset(q: torch.Tensor, k: torch.Tensor, offsets: Sequence[int], theta: float = 1e4,
                    query_position: int = 0) -> torch.Tensor:
    """``<R_{p+r} q, R_p k>`` for every offset ``r`` (float64 ``(len(offsets),)``), via ``apply_rope``
    on a batch of positions (the query sits ``r`` positions after the key)."""
    offsets = list(offsets)
    p = query_position
    qs = rope_rotate(q.expand(len(offsets), -1), [p + r for r in offsets], theta)
    kr = rope_rotate(k, p, theta)
    return (qs.double() @ kr.double())


def pair_scores(q: torch.Tensor, k: torch.Tensor, offset: int, theta: float = 1e4) -> Dict[str, torch.Tensor]:
    """Per-pair view of one score at ``offset = m - n``: for pair ``i`` with 2-D parts ``q_i, k_i`` (as
    complex numbers), the contribution is ``|q_i| |k_i| cos(phi_q - phi_k + offset * f_i)``. Returns the contributions, the
    magnitude product and the content phase ``phi_q - phi_k``; the sum equals the score."""
    d = q.numel()
    half = d // 2
    qc = torch.complex(q[:half].double(), q[half:].double())
    kc = torch.complex(k[:half].double(), k[half:].double())
    inv = inv_frequencies(d, theta)
    mag = qc.abs() * kc.abs()
    phase = torch.angle(qc) - torch.angle(kc)
    contrib = mag * torch.cos(phase + offset * inv)
    return {"contribution": contrib, "magnitude": mag, "content_phase": phase, "freq": inv}


# ----------------------------------------------------------------------------------------- decay
def decay_bound(head_dim: int, distances: Sequence[int], theta: float = 1e4) -> torch.Tensor:
    """The RoFormer long-range bound (Su et al. 2021, section 3.4.3), normalised: for each relative
    distance ``r``, ``(1 / (d/2)) * sum_j |S_j(r)|`` with ``S_j(r) = sum_{i<j} exp(i r f_i)``.

    ``|score| <= (max_i |h_{i+1} - h_i|) * sum_j |S_j(r)|`` for any content (``h_i`` = the complex
    products of q and k pairs), so this curve bounds how large a score can be at distance ``r``
    relative to its content-dependent scale. It decays with ``r``, but not monotonically."""
    inv = inv_frequencies(head_dim, theta)
    r = torch.as_tensor(list(distances), dtype=torch.float64)[:, None]      # (R, 1)
    phases = torch.exp(1j * r * inv[None, :])                                # (R, d/2)
    partial = torch.cumsum(phases, dim=1)                                    # S_1 .. S_{d/2}
    return partial.abs().mean(dim=1)


def constant_vector_score(head_dim: int, distances: Sequence[int], theta: float = 1e4) -> torch.Tensor:
    """The score between ``q = k = (1, ..., 1)`` at each distance, divided by ``d`` (so it is 1 at
    distance 0): ``(2 / d) * sum_i cos(r f_i)``. Identical content, only the offset changes."""
    inv = inv_frequencies(head_dim, theta)
    r = torch.as_tensor(list(distances), dtype=torch.float64)[:, None]
    return torch.cos(r * inv[None, :]).mean(dim=1)


# ----------------------------------------------------------------------------------------- separability
def content_offset_matrix(qs: torch.Tensor, ks: torch.Tensor, offsets: Sequence[int],
                          theta: float = 1e4) -> torch.Tensor:
    """``S[c, r] = <R_{p+r} q_c, R_p k_c>``: rows are content pairs ``(q_c, k_c)``, columns offsets.

    If the score factorised as ``content(q, k) * position(r)`` ("content times relative position"),
    this matrix would have rank 1."""
    if qs.shape != ks.shape or qs.dim() != 2:
        raise ValueError(f"qs and ks must both be (C, d), got {tuple(qs.shape)} and {tuple(ks.shape)}")
    rows = [score_vs_offset(q, k, offsets, theta) for q, k in zip(qs, ks)]
    return torch.stack(rows)                                                 # (C, R) float64


def separability(S: torch.Tensor) -> Dict[str, object]:
    """Singular values of ``S`` and how much of it a product form could explain.

    ``rank1_energy`` = sigma_1^2 / sum sigma^2 (1.0 exactly for ``f(content) * g(offset)``);
    ``effective_rank`` = exp(entropy of the normalised squared singular values) (1 for a product);
    ``rank1_residual`` = relative Frobenius error of the best rank-1 approximation;
    ``numerical_rank`` = singular values above ``1e-9 * sigma_1`` (at most ``d``: two per rotating pair,
    since ``cos(a + b) = cos a cos b - sin a sin b`` is a sum of two products)."""
    s = torch.linalg.svdvals(S.double())
    e = s ** 2 / (s ** 2).sum()
    nz = e[e > 0]
    return {
        "singular_values": s,
        "rank1_energy": float(e[0]),
        "effective_rank": float(torch.exp(-(nz * nz.log()).sum())),
        "rank1_residual": float(torch.sqrt((1 - e[0]).clamp(min=0))),
        "numerical_rank": int((s > s[0] * 1e-9).sum()),
    }
