"""The cost of one decoder layer, component by component: counted FLOPs, measured time and memory.

Conventions: one multiply-add is 2 FLOPs (what ``torch.utils.flop_counter.FlopCounterMode`` counts);
only matrix products are counted (softmax, norms and activations are O(n²h) and O(nd) elementwise
work, small beside the products and not counted by the profiler either). ``n`` is the sequence
length, ``D`` the model width, ``H`` query heads of size ``d``, ``Hkv`` key/value heads, ``F`` the
FFN hidden size.

Per layer and sequence (non-causal, i.e. what a plain ``softmax(q kᵀ) v`` computes)::

    qkv     2 n D (H d + 2 Hkv d)        scores  2 n² H d         (q kᵀ)
    out     2 n H d D                     mix     2 n² H d         (weights · v)
    ffn     2 n D F * (3 for SwiGLU, 2 for GELU/ReLU)

With the usual shapes (H d = D, Hkv = H, 4D GELU or 8D/3 SwiGLU) that is 8nD² (projections) +
16nD² (FFN) against 4n²D (the attention core): the core overtakes projections + FFN at n = 6D.
A causal kernel that skips the masked half does ``n(n+1)/2`` instead of ``n²`` score entries
(``causal=True``), which moves that crossover to about 12D.

    lf = layer_flops(n=2048, dim=4096, n_heads=32)               # LayerFlops, FLOPs per component
    profiled = profiled_layer_flops(cfg, n=2048)                  # the same, from FlopCounterMode
    t = time_components(n=512, dim=256, n_heads=4)                # measured seconds per component
    b = attention_matrix_peak_bytes(n=2048)                       # peak bytes of one n×n matrix
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Dict, Optional

import torch
import torch.nn.functional as F

from ..attention import naive_attention
from ..config import ModelConfig
from ..ffn import FeedForward
from .measure import peak_tensor_bytes, time_fn

__all__ = ["LayerFlops", "layer_flops", "config_layer_flops", "profiled_layer_flops", "crossover_n",
           "time_components", "attention_matrix_peak_bytes"]

_FFN_MATRICES = {"swiglu": 3, "gelu": 2, "relu": 2, "none": 0}


@dataclass(frozen=True)
class LayerFlops:
    """FLOPs of one decoder layer on one sequence, per component (matrix products only)."""

    qkv: int
    scores: int
    mix: int
    out: int
    ffn: int

    @property
    def core(self) -> int:
        """The n² part of attention: q kᵀ and weights · v."""
        return self.scores + self.mix

    @property
    def projections(self) -> int:
        """The n·D² part of attention: the Q, K, V and output projections."""
        return self.qkv + self.out

    @property
    def attention(self) -> int:
        return self.core + self.projections

    @property
    def total(self) -> int:
        return self.attention + self.ffn

    @property
    def core_to_rest(self) -> float:
        """The core's FLOPs over everything else in the layer (1 at the crossover)."""
        return self.core / (self.projections + self.ffn)

    def shares(self) -> Dict[str, float]:
        """Fraction of the layer's FLOPs in the core, the projections and the FFN."""
        return {"core": self.core / self.total, "projections": self.projections / self.total,
                "ffn": self.ffn / self.total}

    def as_dict(self) -> Dict[str, int]:
        d = asdict(self)
        d.update(core=self.core, projections=self.projections, attention=self.attention, total=self.total)
        return d


def _positive(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name}={value!r} must be a positive integer")
    return value


def layer_flops(n: int, dim: int, n_heads: int, *, head_dim: Optional[int] = None,
                n_kv_heads: Optional[int] = None, ffn_dim: Optional[int] = None, ffn_type: str = "swiglu",
                batch: int = 1, causal: bool = False) -> LayerFlops:
    """FLOPs of one layer for ``batch`` sequences of ``n`` tokens (see the module docstring).

    ``head_dim`` defaults to ``dim // n_heads``, ``n_kv_heads`` to ``n_heads``, ``ffn_dim`` to the
    library's rule for ``ffn_type`` (8/3·dim rounded up to 64 for SwiGLU, 4·dim otherwise).
    ``causal=True`` counts only the unmasked score entries, n(n+1)/2 per head.
    """
    for name, v in (("n", n), ("dim", dim), ("n_heads", n_heads), ("batch", batch)):
        _positive(name, v)
    if ffn_type not in _FFN_MATRICES:
        raise ValueError(f"ffn_type={ffn_type!r} must be one of {tuple(_FFN_MATRICES)}")
    cfg = ModelConfig(vocab_size=1, dim=dim, n_layers=1, n_heads=n_heads, n_kv_heads=n_kv_heads,
                      head_dim=head_dim, ffn_dim=ffn_dim, ffn_type=ffn_type, max_seq_len=n, pos="none")
    return config_layer_flops(cfg, n, batch=batch, causal=causal)


def config_layer_flops(config, n: int, batch: int = 1, causal: bool = False) -> LayerFlops:
    """:func:`layer_flops` for the shapes of a ``ModelConfig`` (dense FFN, untied projections)."""
    _positive("n", n), _positive("batch", batch)
    c = config
    if c.moe_experts:
        raise ValueError("config_layer_flops counts a dense FFN; got moe_experts="
                         f"{c.moe_experts} (count the active experts by hand)")
    D, H, Hkv, d = c.dim, c.n_heads, c.n_kv_heads, c.head_dim
    pairs = n * (n + 1) // 2 if causal else n * n           # score entries per head
    tokens = batch * n
    return LayerFlops(
        qkv=2 * tokens * D * (H * d + (0 if c.tie_qk else Hkv * d) + (0 if c.tie_kv else Hkv * d)),
        scores=2 * batch * pairs * H * d,
        mix=2 * batch * pairs * H * d,
        out=2 * tokens * H * d * D if c.use_wo else 0,
        ffn=2 * tokens * D * c.ffn_dim * _FFN_MATRICES[c.ffn_type],
    )


def profiled_layer_flops(config, n: int, batch: int = 1) -> Dict[str, int]:
    """FLOPs of one library ``Block`` as ``FlopCounterMode`` counts them, by component.

    The block is built on the ``meta`` device (no memory, no arithmetic: shapes only), so even
    d = 4096, n = 2048 costs nothing. The explicit ``naive`` attention is used because the
    profiler does not see inside every fused SDPA kernel (the CPU one, for instance). Returns
    ``{"projections", "core", "ffn", "total"}``.
    """
    from torch.utils.flop_counter import FlopCounterMode

    from ..model import Block

    _positive("n", n), _positive("batch", batch)
    cfg = ModelConfig(**{**asdict(config), "attn_impl": "naive", "pos": "none", "max_seq_len": n})
    with torch.device("meta"):
        block = Block(cfg, 0)
        x = torch.empty(batch, n, cfg.dim)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        block(x)                                             # no mask: the full n×n scores
    counts = counter.get_flop_counts()

    def total_of(key: str) -> int:
        return int(sum(counts.get(key, {}).values()))

    proj = sum(total_of(f"Block.attn.{p}") for p in ("q_proj", "k_proj", "v_proj", "o_proj"))
    return {"projections": proj, "core": total_of("Block.attn") - proj, "ffn": total_of("Block.ffn"),
            "total": total_of("Block")}


def crossover_n(dim: int, n_heads: int = 8, *, causal: bool = False, part: str = "projections+ffn",
                **shape) -> float:
    """Sequence length at which the attention core's FLOPs equal ``part``'s.

    ``part`` is ``"projections+ffn"`` (everything else in the layer), ``"ffn"`` or ``"projections"``.
    Non-causal: the core costs 4·n·H·d per token and the rest is constant per token, so
    n* = (rest per token) / (4 H d). Causal: the core averages 2·(n+1)·H·d per token.
    """
    parts = ("projections+ffn", "ffn", "projections")
    if part not in parts:
        raise ValueError(f"part={part!r} must be one of {parts}")
    lf = layer_flops(1, dim, n_heads, **shape)               # n = 1: the per-token constant parts
    rest = {"projections+ffn": lf.projections + lf.ffn, "ffn": lf.ffn, "projections": lf.projections}[part]
    per_entry = lf.scores + lf.mix                           # = 4 H d, the core per score entry
    return 2 * rest / per_entry - 1 if causal else rest / per_entry


def time_components(n: int, dim: int, n_heads: int, *, ffn_dim: Optional[int] = None, batch: int = 1,
                    repeats: int = 5, device=None, dtype=torch.float32, seed: int = 0) -> Dict[str, float]:
    """Forward seconds of each part of a layer on random data, using the library's pieces.

    The fastest of ``repeats`` runs: on a shared machine other work only ever adds time.
    ``projections``: the four ``nn.Linear`` maps; ``core``: ``naive_attention`` (scores, softmax,
    mix; non-causal, so the work matches :func:`layer_flops`); ``ffn``: a SwiGLU ``FeedForward``.
    """
    for name, v in (("n", n), ("dim", dim), ("n_heads", n_heads), ("batch", batch), ("repeats", repeats)):
        _positive(name, v)
    if dim % n_heads:
        raise ValueError(f"dim={dim} is not divisible by n_heads={n_heads}; choose n_heads dividing dim")
    cfg = ModelConfig(vocab_size=1, dim=dim, n_layers=1, n_heads=n_heads, ffn_dim=ffn_dim, max_seq_len=n)
    g = torch.Generator().manual_seed(seed)
    d = cfg.head_dim
    x = torch.randn(batch, n, dim, generator=g).to(device=device, dtype=dtype)
    q, k, v = (torch.randn(batch, n_heads, n, d, generator=g).to(device=device, dtype=dtype) for _ in range(3))
    torch.manual_seed(seed)
    projs = [torch.nn.Linear(dim, dim, bias=False).to(device=device, dtype=dtype) for _ in range(4)]
    ffn = FeedForward(dim, cfg.ffn_dim).to(device=device, dtype=dtype)
    scale = d ** -0.5

    def run_projections():
        return [p(x) for p in projs]

    def fastest(fn) -> float:
        return time_fn(fn, repeat=repeats, device=device).min

    with torch.no_grad():
        return {"projections": fastest(run_projections),
                "core": fastest(lambda: naive_attention(q, k, v, scale=scale)[0]),
                "ffn": fastest(lambda: ffn(x))}


def attention_matrix_peak_bytes(n: int, head_dim: int = 64, n_heads: int = 1, *, impl: str = "naive",
                                device=None, dtype=torch.float32, seed: int = 0) -> int:
    """Peak memory (bytes) above the inputs while one attention forward runs on ``n`` tokens.

    ``impl="naive"`` materialises the (n, n) scores and weights of every head; ``"sdpa"`` lets
    PyTorch pick a fused kernel that may never hold them. Measured as the peak of live tensor bytes
    (:func:`measure.peak_tensor_bytes`: every tensor the forward creates, allocator-independent;
    a fused kernel's internal scratch space is not a tensor and is not seen).
    """
    _positive("n", n), _positive("head_dim", head_dim), _positive("n_heads", n_heads)
    if impl not in ("naive", "sdpa"):
        raise ValueError(f"impl={impl!r} must be 'naive' or 'sdpa'")
    g = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(1, n_heads, n, head_dim, generator=g).to(device=device, dtype=dtype) for _ in range(3))
    scale = head_dim ** -0.5

    def run():
        with torch.no_grad():
            if impl == "naive":
                out = naive_attention(q, k, v, scale=scale)[0]     # the matrices die with the call
            else:
                out = F.scaled_dot_product_attention(q, k, v, scale=scale)
        return out.shape

    return peak_tensor_bytes(run)
