"""Where the parameters of a model live: a breakdown by component, from a config or from a model.

``breakdown(config)`` counts analytically from the shapes a :class:`~course_lib.config.ModelConfig`
implies; ``breakdown_of(model)`` groups a built model's actual parameters by name. The two agree
(``tests/test_params.py`` checks it across many configs), and both agree with
``Transformer.num_parameters()``.

``naive_formula(dim, ...)`` is the back-of-the-envelope count many write-ups use (embedding +
``4 d^2`` attention + two FFN matrices per layer): notebook 04 uses it to reproduce such a table and
then shows what it leaves out.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ..device import DTYPE_NAMES

__all__ = ["COMPONENTS", "ParamBreakdown", "breakdown", "breakdown_of", "naive_formula", "shape_for_budget",
           "bytes_for"]

COMPONENTS = ("embedding", "lm_head", "position", "attention", "ffn", "norm")


@dataclass(frozen=True)
class ParamBreakdown:
    """Distinct parameters per component (a tied output head counts 0: it *is* the embedding)."""

    embedding: int
    lm_head: int
    position: int
    attention: int
    ffn: int
    norm: int

    @property
    def total(self) -> int:
        return self.embedding + self.lm_head + self.position + self.attention + self.ffn + self.norm

    @property
    def non_embedding(self) -> int:
        """Everything but the token embedding, output head and learned position table (scaling-law N)."""
        return self.attention + self.ffn + self.norm

    def as_dict(self) -> dict[str, int]:
        d = {c: getattr(self, c) for c in COMPONENTS}
        d["total"] = self.total
        return d

    def shares(self) -> dict[str, float]:
        return {c: getattr(self, c) / self.total for c in COMPONENTS}


def _attention_per_layer(c) -> int:
    D, H, Hkv, d = c.dim, c.n_heads, c.n_kv_heads, c.head_dim
    n = D * H * d                                   # q_proj
    if not c.tie_qk:
        n += D * Hkv * d                            # k_proj
    if not c.tie_kv:
        n += D * Hkv * d                            # v_proj
    if c.use_wo:
        n += H * d * D                              # o_proj
    if c.qk_norm:
        n += d if c.tie_qk else 2 * d               # q_norm, k_norm gains (one shared gain under tie_qk)
    return n


def _ffn_per_layer(c) -> int:
    if c.ffn_type == "none":
        return 0
    mats = 3 if c.ffn_type == "swiglu" else 2
    one = mats * c.dim * c.ffn_dim
    if c.moe_experts:
        return c.moe_experts * one + c.dim * c.moe_experts + (one if c.moe_shared_expert else 0)
    return one


def _norm_size(c) -> int:
    return c.dim * (2 if c.norm_type == "layernorm" else 1)   # LayerNorm has a bias too


def breakdown(config) -> ParamBreakdown:
    """Count from a ``ModelConfig`` (or anything with its fields) without building the model."""
    c = config
    V, D, L = c.vocab_size, c.dim, c.n_layers
    norms_per_layer = 1 + (0 if c.ffn_type == "none" else 1)
    final_norm = 1 if c.norm_placement == "pre" else 0
    return ParamBreakdown(
        embedding=V * D,
        lm_head=0 if c.tie_embeddings else V * D,
        position=c.max_seq_len * D if c.pos == "learned" else 0,
        attention=L * _attention_per_layer(c),
        ffn=L * _ffn_per_layer(c),
        norm=(L * norms_per_layer + final_norm) * _norm_size(c),
    )


def _component_of(name: str) -> str:
    if name.startswith("embed_tokens"):
        return "embedding"
    if name.startswith("lm_head"):
        return "lm_head"
    if name.startswith("pos_embed"):
        return "position"
    if ".attn_norm" in name or ".ffn_norm" in name or name.startswith("norm."):
        return "norm"
    if ".attn." in name:
        return "attention"
    if ".ffn." in name:
        return "ffn"
    raise ValueError(f"parameter {name!r} belongs to no known component")


def breakdown_of(model) -> ParamBreakdown:
    """Group a built model's distinct parameters by name (shared tensors count once)."""
    counts = dict.fromkeys(COMPONENTS, 0)
    seen = set()
    for name, p in model.named_parameters():   # named_parameters() already skips tied duplicates
        if id(p) in seen:
            continue
        seen.add(id(p))
        counts[_component_of(name)] += p.numel()
    return ParamBreakdown(**counts)


def naive_formula(dim: int, vocab_size: int = 6400, n_layers: int = 8, ffn_dim: Optional[float] = None,
                  ffn_matrices: int = 2) -> dict[str, float]:
    """The common hand count: ``V d`` + ``4 d^2`` per layer + ``ffn_matrices * d * ffn_dim`` per layer.

    ``ffn_dim`` defaults to ``8/3 * dim`` (unrounded), the SwiGLU width rule. It ignores norms,
    grouped K/V heads, and (with ``ffn_matrices=2``) SwiGLU's third matrix.
    """
    f = dim * 8 / 3 if ffn_dim is None else ffn_dim
    out = {"embedding": vocab_size * dim,
           "attention": 4 * dim * dim * n_layers,
           "ffn": ffn_matrices * dim * f * n_layers}
    out["total"] = sum(out.values())
    return out


def shape_for_budget(target: int, n_layers: int, base_config, dims=range(16, 2049, 16)):
    """The width (from ``dims``) whose config with ``n_layers`` layers has a total closest to ``target``.

    Heads are kept at ``base_config.head_dim`` (so width must be a multiple of it); FFN width follows
    the config's rule. Returns the config.
    """
    best = None
    hd = base_config.head_dim
    for d in dims:
        if d % hd:
            continue
        h = d // hd
        kv = base_config.n_kv_heads if h % base_config.n_kv_heads == 0 and base_config.n_kv_heads <= h else h
        cfg = base_config.replace(dim=d, n_layers=n_layers, n_heads=h, n_kv_heads=kv, head_dim=hd, ffn_dim=None)
        gap = abs(breakdown(cfg).total - target)
        if best is None or gap < best[0]:
            best = (gap, cfg)
    if best is None:
        raise ValueError(f"no width in dims is a multiple of head_dim={hd}")
    return best[1]


def bytes_for(n_params: int, dtype: str = "float32") -> int:
    """Bytes to store ``n_params`` numbers: float32 4, bfloat16/float16 2, int8 1."""
    size = {**{name: dt.itemsize for name, dt in DTYPE_NAMES.items()}, "int8": 1}
    if dtype not in size:
        raise ValueError(f"dtype={dtype!r} must be one of {sorted(size)}")
    return n_params * size[dtype]
