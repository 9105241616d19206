"""Instruments for "does the model know where a token is?": permutation checks, a linear position
probe, the sinusoidal shift identity, and the geometry of token vs position embeddings.

All functions take plain tensors or a ``Transformer`` and return numbers or small dicts; the notebook
draws and asserts. Probes are fitted in closed form (ridge least squares in float64), so a result
never depends on an optimiser's settings.
"""
from __future__ import annotations

import math
from typing import Dict, Sequence

import torch
from torch import Tensor

from ..positions import sinusoidal_embedding
from .probes import capture

__all__ = [
    "train_model", "logits", "prefix_permutation", "permutation_errors", "next_token_gap",
    "ridge_fit", "ridge_predict", "r2_score", "hidden_states", "position_probe",
    "sinusoid_shift_matrix", "shift_identity_error", "principal_cosines", "random_subspace_cosines",
]


def train_model(config, dataset, steps: int, seed: int, lr: float = 5e-3, batch_size: int = 32,
                warmup_steps: int = 10):
    """Build a ``Transformer(config)`` with ``torch.manual_seed(seed)`` and train it for ``steps``
    (AdamW, no weight decay, quiet). Returns the model in eval mode. The seed fixes both the
    initialisation and the batch order, so two calls with the same arguments give the same model."""
    from .. import TrainConfig, Trainer, Transformer

    torch.manual_seed(seed)
    model = Transformer(config)
    Trainer(model, dataset, TrainConfig(batch_size=batch_size, max_steps=steps, lr=lr, warmup_steps=warmup_steps,
                                        weight_decay=0.0, log_every=0, progress=False, seed=seed)).fit()
    return model.eval()


@torch.no_grad()
def logits(model, input_ids: Tensor) -> Tensor:
    """``(B, T) -> (B, T, V)`` logits in the model's dtype promoted to float, in eval mode."""
    model.eval()
    return model(input_ids.to(model.device)).logits.cpu()


# ----------------------------------------------------------------------------------------- permutations
def prefix_permutation(length: int, seed: int = 0, keep_last: bool = True) -> Tensor:
    """A random permutation of ``range(length)`` ``(length,)`` that moves at least two positions;
    ``keep_last=True`` leaves the last position in place (so "the last token's output" is comparable)."""
    if length < (3 if keep_last else 2):
        raise ValueError(f"length={length} is too short to permute (need >= {3 if keep_last else 2})")
    g = torch.Generator().manual_seed(seed)
    n = length - 1 if keep_last else length
    while True:
        perm = torch.randperm(n, generator=g)
        if bool((perm != torch.arange(n)).any()):
            break
    return torch.cat([perm, torch.tensor([length - 1])]) if keep_last else perm


def permutation_errors(model, input_ids: Tensor, perm: Tensor) -> Dict[str, float]:
    """How far ``model`` is from permutation symmetry on ``input_ids (B, T)`` under ``perm (T,)``.

    ``equivariance``: max |f(x[perm]) - f(x)[perm]| over all positions and logits (0 for a model that
    is permutation-equivariant). ``last_position``: max |f(x[perm])[-1] - f(x)[-1]|, meaningful when
    ``perm`` keeps the last position (0 when the last output ignores the order of the prefix).
    ``invariance``: max |f(x[perm]) - f(x)| (0 only if the order changes nothing at any position).
    ``scale``: max |f(x)|, to read the errors against.
    """
    if perm.dim() != 1 or perm.numel() != input_ids.shape[1] or \
            not torch.equal(perm.sort().values, torch.arange(input_ids.shape[1])):
        raise ValueError(f"perm must be a permutation of range({input_ids.shape[1]}), got {perm.tolist()}")
    base, permuted = logits(model, input_ids), logits(model, input_ids[:, perm])
    return {"equivariance": (permuted - base[:, perm]).abs().max().item(),
            "last_position": (permuted[:, -1] - base[:, -1]).abs().max().item(),
            "invariance": (permuted - base).abs().max().item(),
            "scale": base.abs().max().item()}


def next_token_gap(model, ids_a: Tensor, ids_b: Tensor) -> Dict[str, float]:
    """Compare the next-token distributions after two prompts ``(T,)`` (e.g. the same tokens in two
    orders): ``max_abs`` = max |p_a - p_b| over the vocabulary, ``tv`` = total-variation distance."""
    pa = logits(model, ids_a[None]).double()[0, -1].softmax(-1)
    pb = logits(model, ids_b[None]).double()[0, -1].softmax(-1)
    return {"max_abs": (pa - pb).abs().max().item(), "tv": 0.5 * (pa - pb).abs().sum().item()}


# ----------------------------------------------------------------------------------------- linear probe
def ridge_fit(X: Tensor, y: Tensor, ridge: float = 1e-3):
    """Closed-form ridge regression of ``y (N,)`` on ``X (N, D)`` with an intercept, in float64.

    Solves ``(Xcᵀ Xc + ridge·N·I) w = Xcᵀ yc`` on centred data (the intercept is not penalised).
    Returns ``(w (D,), b)``."""
    if X.dim() != 2 or y.dim() != 1 or X.shape[0] != y.shape[0]:
        raise ValueError(f"X must be (N, D) and y (N,), got {tuple(X.shape)} and {tuple(y.shape)}")
    if ridge < 0:
        raise ValueError(f"ridge={ridge} must be >= 0")
    X, y = X.double(), y.double()
    mx, my = X.mean(0), y.mean()
    Xc, yc = X - mx, y - my
    A = Xc.T @ Xc + ridge * X.shape[0] * torch.eye(X.shape[1], dtype=torch.float64)
    w = torch.linalg.lstsq(A, Xc.T @ yc).solution
    return w, (my - mx @ w).item()


def ridge_predict(X: Tensor, w: Tensor, b: float) -> Tensor:
    return X.double() @ w + b


def r2_score(y: Tensor, pred: Tensor) -> float:
    """Coefficient of determination 1 - SS_res / SS_tot (0 = no better than the mean; can be < 0)."""
    y, pred = y.double(), pred.double()
    return 1.0 - ((y - pred) ** 2).sum().item() / ((y - y.mean()) ** 2).sum().item()


@torch.no_grad()
def hidden_states(model, input_ids: Tensor) -> list:
    """The residual stream ``[(B, T, D)] * (n_layers + 1)`` (index 0 = the embedding output)."""
    return [h.float().cpu() for h in capture(model, input_ids.to(model.device))["hidden_states"]]


def position_probe(model, input_ids: Tensor, layer: int, ridge: float = 1e-3, train_frac: float = 0.5
                   ) -> Dict[str, float]:
    """Fit a linear probe from the hidden state after ``layer`` to the absolute position.

    Sequences (rows of ``input_ids (N, T)``) are split, not positions, so the probe is scored on text it
    never saw. Returns ``r2`` (held-out R²), ``mae`` (mean absolute error, positions) and ``mae_mean``
    (the error of always guessing the mean position: the no-information baseline).
    """
    if not 0 < train_frac < 1:
        raise ValueError(f"train_frac={train_frac} must be in (0, 1)")
    N, T = input_ids.shape
    n_train = int(round(N * train_frac))
    if n_train < 1 or n_train >= N:
        raise ValueError(f"need at least 2 sequences to split, got N={N} with train_frac={train_frac}")
    h = hidden_states(model, input_ids)[layer]                      # (N, T, D)
    pos = torch.arange(T, dtype=torch.float64).expand(N, T)
    w, b = ridge_fit(h[:n_train].reshape(-1, h.shape[-1]), pos[:n_train].reshape(-1), ridge)
    y_test = pos[n_train:].reshape(-1)
    pred = ridge_predict(h[n_train:].reshape(-1, h.shape[-1]), w, b)
    return {"r2": r2_score(y_test, pred), "mae": (pred - y_test).abs().mean().item(),
            "mae_mean": (y_test - pos[:n_train].mean()).abs().mean().item()}


# ----------------------------------------------------------------------------------------- sinusoids
def sinusoid_shift_matrix(dim: int, k: float, base: float = 1e4) -> Tensor:
    """The ``(dim, dim)`` float64 matrix R(k) with PE(pos + k) = R(k)·PE(pos) for every pos.

    Matches ``positions.sinusoidal_embedding``'s layout ``[sin ω₀p, cos ω₀p, sin ω₁p, ...]`` with
    ω_i = base^(-2i/dim). Block i is [[cos ω_i k, sin ω_i k], [-sin ω_i k, cos ω_i k]]: by the angle-sum
    formulas sin(a + b) = sin a cos b + cos a sin b and cos(a + b) = cos a cos b - sin a sin b.
    """
    if dim < 2 or dim % 2:
        raise ValueError(f"dim={dim} must be a positive even number (sin/cos pairs)")
    omega = base ** (-torch.arange(0, dim, 2, dtype=torch.float64) / dim)
    c, s = torch.cos(omega * k), torch.sin(omega * k)
    R = torch.zeros(dim, dim, dtype=torch.float64)
    idx = torch.arange(0, dim, 2)
    R[idx, idx], R[idx, idx + 1] = c, s
    R[idx + 1, idx], R[idx + 1, idx + 1] = -s, c
    return R


def shift_identity_error(dim: int, positions: Sequence[int], offsets: Sequence[int], base: float = 1e4
                         ) -> Dict[str, float]:
    """Largest |PE(p + k) - R(k)·PE(p)| over the given positions and offsets, with the library's
    float32 table (``lib``) and recomputed in float64 (``float64``)."""
    p = torch.tensor(list(positions))
    out = {"lib": 0.0, "float64": 0.0}
    for k in offsets:
        R = sinusoid_shift_matrix(dim, k, base)
        lhs = sinusoidal_embedding(p[None] + k, dim, base)[0].double()            # (P, dim)
        rhs = sinusoidal_embedding(p[None], dim, base)[0].double() @ R.T
        out["lib"] = max(out["lib"], (lhs - rhs).abs().max().item())
        omega = base ** (-torch.arange(0, dim, 2, dtype=torch.float64) / dim)
        a = p.double()[:, None] * omega
        exact = torch.stack((a.sin(), a.cos()), -1).flatten(-2) @ R.T
        b = (p.double()[:, None] + k) * omega
        out["float64"] = max(out["float64"], (torch.stack((b.sin(), b.cos()), -1).flatten(-2) - exact).abs().max().item())
    return out


# ----------------------------------------------------------------------------------------- subspaces
def _top_directions(A: Tensor, k: int) -> Tensor:
    A = A.double() - A.double().mean(0)
    return torch.linalg.svd(A, full_matrices=False).Vh[:k].T                 # (D, k) orthonormal


def principal_cosines(A: Tensor, B: Tensor, k: int) -> Tensor:
    """Cosines of the principal angles ``(k,)`` (descending) between the top-k principal subspaces of
    the rows of ``A (n, D)`` and of ``B (m, D)``: 1 = a shared direction, 0 = orthogonal."""
    if A.shape[1] != B.shape[1] or not 1 <= k <= min(A.shape[0], B.shape[0], A.shape[1]):
        raise ValueError(f"A {tuple(A.shape)} and B {tuple(B.shape)} need the same width and k={k} "
                         "in [1, min(rows, width)]")
    return torch.linalg.svdvals(_top_directions(A, k).T @ _top_directions(B, k)).clamp(max=1.0)


def random_subspace_cosines(dim: int, k: int, trials: int = 200, seed: int = 0) -> Tensor:
    """The largest principal cosine between two random k-dimensional subspaces of R^dim, over
    ``trials`` draws ``(trials,)``: the baseline for "nearly orthogonal"."""
    g = torch.Generator().manual_seed(seed)
    out = torch.empty(trials, dtype=torch.float64)
    for t in range(trials):
        qa = torch.linalg.qr(torch.randn(dim, k, generator=g, dtype=torch.float64)).Q
        qb = torch.linalg.qr(torch.randn(dim, k, generator=g, dtype=torch.float64)).Q
        out[t] = torch.linalg.svdvals(qa.T @ qb)[0]
    return out


def expected_random_cosine(dim: int) -> float:
    """E|cos| between two independent random directions in R^dim, ≈ sqrt(2 / (π·dim))."""
    return math.exp(math.lgamma(dim / 2) - math.lgamma((dim + 1) / 2)) / math.sqrt(math.pi)
