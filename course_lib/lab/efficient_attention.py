"""Instruments for the cost of attention: memory of exact attention with and without the full matrix,
the prefix-sum form of causal linear attention, FLOP counts of the three families, SDPA backends.

Shapes: ``q, k, v (B, H, T, d)``. Conventions as in :mod:`course_lib.lab.flops`: one multiply-add
is 2 FLOPs (what ``torch.utils.flop_counter.FlopCounterMode`` counts).

    out = linear_attention_prefix_sum(q, k, v)            # causal linear attention in O(T d^2)
    b = forward_peak_bytes("chunked", n=2048)             # peak bytes above the inputs, no grad
    s = saved_bytes("naive", n=2048)                      # bytes autograd keeps for backward
    f = attention_flops(n=100_000, d=512)                 # {"softmax", "linear", "sparse"}
    f = counted_flops("linear", n=256, d=64)              # the same, counted by FlopCounterMode
    cost = sdpa_backend_cost("flash", n=4096)             # (seconds fwd+bwd, peak bytes) on CUDA
"""
from __future__ import annotations

from typing import Dict, Optional, Tuple

import torch
import torch.nn.functional as F

from ..attention import elu_feature_map, get_attention
from .measure import cuda_peak_bytes, peak_tensor_bytes, saved_tensor_bytes, time_fn

__all__ = ["linear_attention_prefix_sum", "random_qkv", "forward_peak_bytes", "saved_bytes", "attention_flops",
           "counted_flops", "sdpa_backend_cost", "SDPA_BACKENDS"]


def _positive(name: str, value) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name}={value!r} must be a positive int")
    return value


def linear_attention_prefix_sum(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, eps: float = 1e-6
                                ) -> torch.Tensor:
    """Causal linear attention with running sums: ``out_t = phi(q_t) S_t / (phi(q_t) . z_t)``,
    ``S_t = sum_{s<=t} phi(k_s) v_s^T`` ``(d, d_v)``, ``z_t = sum_{s<=t} phi(k_s)``.

    ``q, k, v (B, H, T, d)`` -> ``(B, H, T, d_v)``. All ``T`` states are formed at once by a cumulative
    sum (time and memory ``O(T d d_v)``, linear in ``T``): the parallel-over-time version of the
    recurrence, as fast to train as it is cheap to run. Float64 inputs stay float64.
    """
    if q.shape[:3] != k.shape[:3] or k.shape[:3] != v.shape[:3]:
        raise ValueError(f"q, k, v need the same (B, H, T); got {tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}")
    fq, fk = elu_feature_map(q), elu_feature_map(k)
    vf = v.to(fq.dtype)
    states = torch.cumsum(fk[..., :, None] * vf[..., None, :], dim=2)     # (B, H, T, d, d_v)
    z = torch.cumsum(fk, dim=2)                                            # (B, H, T, d)
    num = torch.einsum("bhtd,bhtde->bhte", fq, states)
    den = (fq * z).sum(-1, keepdim=True) + eps
    return (num / den).to(q.dtype)


def random_qkv(n: int, head_dim: int = 32, n_heads: int = 1, batch: int = 1, *, seed: int = 0, device=None,
               dtype=torch.float32, requires_grad: bool = False):
    """Three standard-normal tensors ``(batch, n_heads, n, head_dim)``."""
    _positive("n", n), _positive("head_dim", head_dim), _positive("n_heads", n_heads), _positive("batch", batch)
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(batch, n_heads, n, head_dim, generator=g).to(device=device, dtype=dtype)
                 .requires_grad_(requires_grad) for _ in range(3))


def forward_peak_bytes(impl: str, n: int, head_dim: int = 32, n_heads: int = 1, seed: int = 0) -> int:
    """Peak bytes of the tensors alive at once during one causal forward of the registered attention
    ``impl`` ("naive", "chunked", "sdpa", ...) without gradients, above the inputs."""
    fn = get_attention(impl)
    q, k, v = random_qkv(n, head_dim, n_heads, seed=seed)

    def run():
        with torch.no_grad():
            return fn(q, k, v, causal=True)[0].shape    # outputs and weights die inside the call

    return peak_tensor_bytes(run)


def saved_bytes(impl: str, n: int, head_dim: int = 32, n_heads: int = 1, seed: int = 0) -> int:
    """Bytes autograd saves for backward in one causal forward of attention ``impl``: the training
    memory. An online softmax written in Python saves every block it computed (``O(n^2)`` in all);
    FlashAttention's kernel instead recomputes the blocks in the backward pass."""
    fn = get_attention(impl)
    q, k, v = random_qkv(n, head_dim, n_heads, seed=seed, requires_grad=True)
    return saved_tensor_bytes(lambda: fn(q, k, v, causal=True)[0].sum())


def attention_flops(n: int, d: int, window: int = 512) -> Dict[str, int]:
    """FLOPs of the two matrix products of one attention head on ``n`` tokens of width ``d``
    (non-causal; 2 FLOPs per multiply-add):

    softmax ``(Q K^T) V``: ``2 * 2 n^2 d``; linear ``Q (K^T V)``: ``2 * 2 n d^2``;
    sparse (each query sees ``window`` keys): ``2 * 2 n window d``.
    """
    _positive("n", n), _positive("d", d), _positive("window", window)
    return {"softmax": 4 * n * n * d, "linear": 4 * n * d * d, "sparse": 4 * n * window * d}


def counted_flops(form: str, n: int, d: int) -> int:
    """FLOPs counted by ``FlopCounterMode`` for one head: ``form`` "softmax" computes
    ``softmax(Q K^T) V``, "linear" computes ``Q (K^T V)``. An independent check of :func:`attention_flops`."""
    from torch.utils.flop_counter import FlopCounterMode

    if form not in ("softmax", "linear"):
        raise ValueError(f"form={form!r} must be 'softmax' or 'linear'")
    q, k, v = (t[0, 0] for t in random_qkv(n, d))
    with FlopCounterMode(display=False) as counter:
        if form == "softmax":
            torch.softmax(q @ k.T, dim=-1) @ v
        else:
            q @ (k.T @ v)
    return counter.get_total_flops()


SDPA_BACKENDS = ("math", "flash", "efficient")


def sdpa_backend_cost(backend: str, n: int, head_dim: int = 64, n_heads: int = 16, batch: int = 1,
                      dtype=torch.float16, repeat: int = 3) -> Optional[Tuple[float, int]]:
    """``(seconds, peak bytes)`` of one causal forward + backward of ``F.scaled_dot_product_attention``
    forced onto ``backend`` ("math": the materialised matrix; "flash"; "efficient": memory-efficient),
    on CUDA. Returns None where that backend cannot run these inputs (or out of memory)."""
    if backend not in SDPA_BACKENDS:
        raise ValueError(f"backend={backend!r} must be one of {SDPA_BACKENDS}")
    if not torch.cuda.is_available():
        raise ValueError("sdpa_backend_cost needs a CUDA device")
    from torch.nn.attention import SDPBackend, sdpa_kernel

    kind = {"math": SDPBackend.MATH, "flash": SDPBackend.FLASH_ATTENTION,
            "efficient": SDPBackend.EFFICIENT_ATTENTION}[backend]
    q, k, v = random_qkv(n, head_dim, n_heads, batch, device="cuda", dtype=dtype, requires_grad=True)

    def step():
        with sdpa_kernel(kind):
            F.scaled_dot_product_attention(q, k, v, is_causal=True).sum().backward()

    try:
        seconds = time_fn(step, repeat=repeat, warmup=1, device=q.device).min
        peak = cuda_peak_bytes(step)
    except (RuntimeError, torch.cuda.OutOfMemoryError):
        torch.cuda.empty_cache()
        return None
    return seconds, peak
