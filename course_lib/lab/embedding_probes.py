"""Probes of an embedding table's geometry: random near-orthogonality, neighbours, groups, analogies.

Notebook 04 asks what a trained embedding table encodes. Every function takes a table ``E`` of shape
``(V, d)``; the cosine-based ones normalise its rows themselves, so raw weights can be passed.

* :func:`max_abs_cosine`: the largest |cos| among ``n`` random directions in ``d`` dimensions;
* :func:`single_token_id`: the id of a text that the tokenizer keeps as exactly one token;
* :func:`nearest_neighbours`: the ``k`` rows most cosine-similar to one row;
* :func:`group_cosine`: the mean cosine within a group of ids next to the mean over random pairs;
* :func:`analogy_rank`: the rank of ``d`` among all rows by cosine with ``b - a + c``.
"""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

__all__ = ["max_abs_cosine", "single_token_id", "nearest_neighbours", "group_cosine", "analogy_rank"]


def _unit_rows(E: torch.Tensor) -> torch.Tensor:
    if E.dim() != 2:
        raise ValueError(f"E has shape {tuple(E.shape)}; pass a (V, d) embedding table")
    return F.normalize(E.detach().float(), dim=1)


def _check_id(name: str, i: int, V: int) -> int:
    if not 0 <= int(i) < V:
        raise ValueError(f"{name}={i} is not a row of a table with V={V} rows")
    return int(i)


def max_abs_cosine(n: int, d: int, seed: int = 0) -> float:
    """Largest |cos| between two of ``n`` Gaussian random directions in ``d`` dimensions."""
    if n < 2 or d < 1:
        raise ValueError(f"n={n} must be at least 2 and d={d} at least 1")
    x = F.normalize(torch.randn(n, d, generator=torch.Generator().manual_seed(seed)), dim=1)
    c = x @ x.T
    c.fill_diagonal_(0)
    return c.abs().max().item()


def single_token_id(tokenizer, text: str) -> Optional[int]:
    """The id of ``text`` if the tokenizer encodes it as exactly one token, else ``None``."""
    ids = tokenizer.encode(text)
    return ids[0] if len(ids) == 1 else None


def nearest_neighbours(E: torch.Tensor, i: int, k: int = 6) -> List[int]:
    """The ``k`` ids whose rows have the largest cosine with row ``i`` (``i`` itself excluded)."""
    U = _unit_rows(E)
    i = _check_id("i", i, len(U))
    sims = U @ U[i]
    sims[i] = -2.0
    return sims.topk(k).indices.tolist()


def group_cosine(E: torch.Tensor, ids: Sequence[int], n_pairs: int = 5000, seed: int = 0,
                 skip_first: int = 3) -> Tuple[float, float]:
    """(mean cosine over the ordered pairs of distinct ``ids``, mean cosine over ``n_pairs`` random
    pairs of rows drawn from ids >= ``skip_first``, i.e. past the special tokens)."""
    if len(ids) < 2:
        raise ValueError(f"ids={list(ids)} needs at least two ids to form pairs")
    U = _unit_rows(E)
    idx = torch.tensor([_check_id("ids", i, len(U)) for i in ids])
    S = U[idx] @ U[idx].T
    within = (S.sum() - S.diagonal().sum()) / (len(idx) ** 2 - len(idx))
    pairs = torch.randint(skip_first, len(U), (2, n_pairs), generator=torch.Generator().manual_seed(seed))
    return float(within), float((U[pairs[0]] * U[pairs[1]]).sum(1).mean())


def analogy_rank(E: torch.Tensor, a: int, b: int, c: int, d: int) -> int:
    """Rank (1 = best) of row ``d`` among all rows by cosine with ``b - a + c``; ``a``, ``b`` and
    ``c`` themselves are excluded, as is usual for word analogies (Mikolov et al. 2013)."""
    U = _unit_rows(E)
    a, b, c, d = (_check_id(n, i, len(U)) for n, i in zip("abcd", (a, b, c, d)))
    sims = F.normalize(U[b] - U[a] + U[c], dim=0) @ U.T
    sims[[a, b, c]] = -9.0
    return int((sims > sims[d]).sum()) + 1
