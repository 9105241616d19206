"""Model configuration: one dataclass, the standard choices as defaults, every ablation as a switch.

The defaults describe a Llama/MiniMind-style decoder: pre-norm RMSNorm, RoPE, grouped-query
attention with SDPA, SwiGLU feed-forward, tied embeddings. Every switch that a notebook flips to ask
"what if we did not do this?" is a field here, so experiments never need their own model code.
Contradictory settings raise ``ValueError`` as soon as the config is built.
"""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from typing import Any, Optional, Union

POSITION_SCHEMES = ("rope", "none", "learned", "sinusoidal", "alibi")
ROPE_SCALINGS = ("none", "pi", "ntk", "yarn")
NORM_PLACEMENTS = ("pre", "post")
NORM_TYPES = ("rmsnorm", "layernorm")
ATTN_SCALES = ("rsqrt_d", "one", "inv_d")
MASK_FILLS = ("-inf", "zero")
FFN_TYPES = ("swiglu", "gelu", "relu", "none")
ATTN_IMPLS = ("sdpa", "naive", "chunked", "linear")          # built in; attention.register_attention adds more
ATTN_NORMALIZERS = ("softmax", "hard", "straight_through", "gumbel", "gumbel_hard", "uniform")


def _swiglu_hidden(dim: int, multiple_of: int = 64) -> int:
    """MiniMind/Llama rule: 8/3 of the width, rounded up to a multiple of 64 (512 -> 1408)."""
    hidden = int(dim * 8 / 3)
    return multiple_of * ((hidden + multiple_of - 1) // multiple_of)


def dataclass_from_dict(cls, data: dict):
    """``cls(**data)``, refusing unknown keys by name (a config from another version, a typo)."""
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} fields {unknown}; known fields are {sorted(known)}")
    return cls(**data)


@dataclass
class ModelConfig:
    """Everything that defines a ``Transformer``.

    Core sizes
        vocab_size, dim (d_model), n_layers, n_heads, n_kv_heads (None: same as n_heads, i.e. MHA;
        1: MQA), head_dim (None: dim // n_heads), ffn_dim (None: derived from ffn_type/ffn_ratio),
        max_seq_len, rope_theta, norm_eps, tie_embeddings, dropout, init_std.

    Ablation switches (defaults are the standard choice)
        pos: position scheme, one of ``POSITION_SCHEMES``.
        rope_scaling / rope_scaling_factor: stretch RoPE at inference ("pi" = position
            interpolation, "ntk" = NTK-aware base change, "yarn").
        norm_placement ("pre"/"post"), norm_type ("rmsnorm"/"layernorm"), residual (skip connections).
        attn_scale: "rsqrt_d" (1/sqrt(head_dim)), "one", "inv_d" (1/head_dim) or a float.
        qk_norm: RMS-normalise q and k per head before the dot product.
        tie_qk / tie_kv: share the Q and K (or K and V) projections; use_wo=False drops the output
            projection (heads are simply concatenated).
        causal: apply the causal mask; mask_fill "-inf" (correct) or "zero" (the leaky mistake of
            filling masked scores with 0 instead of -inf).
        ffn_type / ffn_ratio: feed-forward kind and hidden size as a multiple of dim.
        moe_experts (0 = dense FFN), moe_top_k, moe_shared_expert, moe_aux_loss_coef.
        attn_impl: "sdpa" (fast path), "naive" (explicit softmax, can return scores), "chunked"
            (online softmax over key blocks), "linear" (causal linear attention, a different model),
            or any name added with ``attention.register_attention``.
        attn_normalizer: what turns scores into weights on the "naive" path: "softmax", "hard"
            (argmax, no gradient), "straight_through", "gumbel" / "gumbel_hard" (temperature
            ``attn_tau``), "uniform".
        identical_head_init: start all heads of a layer from the same weights (symmetry experiments).
        pos_concat_dim: 0 (default) adds learned/sinusoidal positions to the token embedding; k > 0
            concatenates them instead, at the same residual width: the token embedding gets
            ``dim - k`` channels and the position vector the last ``k`` (needs untied embeddings).
        zero_init_out: start the projections that write into the residual stream (``o_proj``,
            ``down_proj``) at exactly zero, so every pre-norm block is the identity at init.
    """

    vocab_size: int = 6400
    dim: int = 512
    n_layers: int = 8
    n_heads: int = 8
    n_kv_heads: Optional[int] = None
    head_dim: Optional[int] = None
    ffn_dim: Optional[int] = None
    max_seq_len: int = 512
    rope_theta: float = 1e6
    norm_eps: float = 1e-5
    tie_embeddings: bool = True
    dropout: float = 0.0
    init_std: float = 0.02

    pos: str = "rope"
    rope_scaling: str = "none"
    rope_scaling_factor: float = 1.0
    rope_original_max_seq_len: Optional[int] = None
    norm_placement: str = "pre"
    norm_type: str = "rmsnorm"
    residual: bool = True
    attn_scale: Union[str, float] = "rsqrt_d"
    qk_norm: bool = False
    tie_qk: bool = False
    tie_kv: bool = False
    use_wo: bool = True
    causal: bool = True
    mask_fill: str = "-inf"
    ffn_type: str = "swiglu"
    ffn_ratio: Optional[float] = None
    moe_experts: int = 0
    moe_top_k: int = 2
    moe_shared_expert: bool = False
    moe_aux_loss_coef: float = 0.01
    attn_impl: str = "sdpa"
    attn_normalizer: str = "softmax"
    attn_tau: float = 1.0
    identical_head_init: bool = False
    pos_concat_dim: int = 0
    zero_init_out: bool = False

    # ------------------------------------------------------------------ validation
    def __post_init__(self) -> None:
        if self.n_kv_heads is None:
            self.n_kv_heads = self.n_heads
        if self.head_dim is None:
            if self.n_heads <= 0 or self.dim % self.n_heads:
                raise ValueError(
                    f"dim={self.dim} is not divisible by n_heads={self.n_heads}; "
                    "choose n_heads dividing dim or set head_dim explicitly")
            self.head_dim = self.dim // self.n_heads
        if self.ffn_dim is None:
            if self.ffn_type == "none":
                self.ffn_dim = 0
            elif self.ffn_ratio is not None:
                self.ffn_dim = int(round(self.ffn_ratio * self.dim))
            elif self.ffn_type == "swiglu":
                self.ffn_dim = _swiglu_hidden(self.dim)
            else:
                self.ffn_dim = 4 * self.dim
        self.validate()

    def validate(self) -> None:
        """Raise ``ValueError`` naming the field, the value and what is allowed."""
        def need(cond: bool, msg: str) -> None:
            if not cond:
                raise ValueError(msg)

        for name in ("vocab_size", "dim", "n_layers", "n_heads", "n_kv_heads", "head_dim", "max_seq_len"):
            v = getattr(self, name)
            need(isinstance(v, int) and v >= 1, f"{name}={v!r} must be a positive integer")
        for name in ("rope_theta", "norm_eps", "dropout", "init_std", "rope_scaling_factor", "attn_tau", "moe_aux_loss_coef"):
            v = getattr(self, name)         # a string here fails later with a TypeError deep inside
            need(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v),
                 f"{name}={v!r} must be a finite number")
        need(self.n_heads % self.n_kv_heads == 0,
             f"n_heads={self.n_heads} must be a multiple of n_kv_heads={self.n_kv_heads} (grouped-query attention)")
        need(self.ffn_dim >= 0, f"ffn_dim={self.ffn_dim} must be >= 0")
        need(self.ffn_type in FFN_TYPES, f"ffn_type={self.ffn_type!r} must be one of {FFN_TYPES}")
        need(self.ffn_type == "none" or self.ffn_dim >= 1,
             f"ffn_dim={self.ffn_dim} must be >= 1 when ffn_type={self.ffn_type!r} (use ffn_type='none' to drop the FFN)")
        need(self.pos in POSITION_SCHEMES, f"pos={self.pos!r} must be one of {POSITION_SCHEMES}")
        need(self.rope_scaling in ROPE_SCALINGS, f"rope_scaling={self.rope_scaling!r} must be one of {ROPE_SCALINGS}")
        need(self.rope_scaling == "none" or self.pos == "rope",
             f"rope_scaling={self.rope_scaling!r} needs pos='rope' (got pos={self.pos!r})")
        need(self.rope_scaling_factor >= 1.0, f"rope_scaling_factor={self.rope_scaling_factor} must be >= 1")
        need(self.rope_scaling != "none" or self.rope_scaling_factor == 1.0,
             f"rope_scaling_factor={self.rope_scaling_factor} has no effect with rope_scaling='none'; "
             "choose rope_scaling 'pi', 'ntk' or 'yarn' (or leave the factor at 1.0)")
        need(self.init_std > 0, f"init_std={self.init_std} must be > 0")
        need(self.pos != "rope" or self.head_dim % 2 == 0, f"RoPE needs an even head_dim, got {self.head_dim}")
        need(self.pos != "sinusoidal" or self.dim % 2 == 0, f"sinusoidal positions need an even dim, got {self.dim}")
        need(self.rope_theta > 0, f"rope_theta={self.rope_theta} must be > 0")
        need(self.norm_eps > 0, f"norm_eps={self.norm_eps} must be > 0")
        need(0.0 <= self.dropout < 1.0, f"dropout={self.dropout} must be in [0, 1)")
        need(self.norm_placement in NORM_PLACEMENTS, f"norm_placement={self.norm_placement!r} must be one of {NORM_PLACEMENTS}")
        need(self.norm_type in NORM_TYPES, f"norm_type={self.norm_type!r} must be one of {NORM_TYPES}")
        need(self.norm_placement == "pre" or self.residual,
             "norm_placement='post' with residual=False is the same network as pre-norm without residuals; "
             "use norm_placement='pre', residual=False")
        if isinstance(self.attn_scale, str):
            need(self.attn_scale in ATTN_SCALES, f"attn_scale={self.attn_scale!r} must be one of {ATTN_SCALES} or a positive float")
        else:
            need(float(self.attn_scale) > 0, f"attn_scale={self.attn_scale} must be > 0")
        need(self.mask_fill in MASK_FILLS, f"mask_fill={self.mask_fill!r} must be one of {MASK_FILLS}")
        if self.attn_impl not in ATTN_IMPLS:
            from .attention import get_attention     # lazy: the registry lives with the functions (torch)
            get_attention(self.attn_impl)            # ValueError naming attn_impl and the registered names
        need(self.attn_normalizer in ATTN_NORMALIZERS,
             f"attn_normalizer={self.attn_normalizer!r} must be one of {ATTN_NORMALIZERS}")
        need(self.attn_normalizer == "softmax" or self.attn_impl == "naive",
             f"attn_normalizer={self.attn_normalizer!r} replaces the softmax of the explicit path; "
             f"use attn_impl='naive' (got attn_impl={self.attn_impl!r})")
        need(self.attn_tau > 0, f"attn_tau={self.attn_tau} must be > 0 (the Gumbel temperature)")
        need(not (self.tie_qk and self.tie_kv),
             "tie_qk and tie_kv together would make Q=K=V; choose one (or neither)")
        need(not (self.tie_qk or self.tie_kv) or self.n_kv_heads == self.n_heads,
             "tie_qk/tie_kv need n_kv_heads == n_heads (a shared projection must have one shape)")
        need(self.use_wo or self.n_heads * self.head_dim == self.dim,
             f"use_wo=False needs n_heads*head_dim == dim ({self.n_heads}*{self.head_dim} != {self.dim})")
        need(self.mask_fill == "-inf" or self.attn_impl == "naive",
             "mask_fill='zero' is only implemented by attn_impl='naive' (SDPA always masks with -inf)")
        need(self.attn_impl != "linear" or self.pos not in ("alibi",),
             "attn_impl='linear' has no score matrix, so ALiBi biases cannot be applied")
        need(self.moe_experts >= 0, f"moe_experts={self.moe_experts} must be >= 0 (0 = dense FFN)")
        need(self.moe_experts > 0 or not self.moe_shared_expert,
             "moe_shared_expert=True needs moe_experts > 0 (a shared expert alone is just the dense FFN)")
        need(self.moe_aux_loss_coef >= 0, f"moe_aux_loss_coef={self.moe_aux_loss_coef} must be >= 0")
        need(self.attn_impl != "linear" or self.attn_scale == "rsqrt_d",
             f"attn_scale={self.attn_scale!r} has no effect with attn_impl='linear' (no softmax to scale); "
             "leave attn_scale at 'rsqrt_d'")
        if self.moe_experts:
            need(self.ffn_type != "none", "moe_experts > 0 needs an FFN (ffn_type != 'none')")
            need(1 <= self.moe_top_k <= self.moe_experts,
                 f"moe_top_k={self.moe_top_k} must be in [1, moe_experts={self.moe_experts}]")
        need(self.max_seq_len >= 1, f"max_seq_len={self.max_seq_len} must be >= 1")
        if self.pos_concat_dim:
            need(isinstance(self.pos_concat_dim, int) and 0 < self.pos_concat_dim < self.dim,
                 f"pos_concat_dim={self.pos_concat_dim!r} must be an int in [0, dim={self.dim}) (0 = add positions)")
            need(self.pos in ("learned", "sinusoidal"),
                 f"pos_concat_dim={self.pos_concat_dim} needs pos 'learned' or 'sinusoidal' (got pos={self.pos!r}); "
                 "RoPE and ALiBi act inside attention and have no vector to concatenate")
            need(not self.tie_embeddings,
                 f"pos_concat_dim={self.pos_concat_dim} needs tie_embeddings=False: the token table has "
                 f"dim - pos_concat_dim = {self.dim - self.pos_concat_dim} channels and cannot be the output head")
            need(self.pos != "sinusoidal" or self.pos_concat_dim % 2 == 0,
                 f"pos_concat_dim={self.pos_concat_dim} must be even for sinusoidal positions (sin/cos pairs)")
        need(not self.zero_init_out or (self.residual and self.use_wo),
             "zero_init_out=True needs residual=True and use_wo=True: without the skip path (or without "
             "o_proj to zero) the blocks would output zeros (or not start as the identity); "
             "set zero_init_out=False")
        need(self.rope_original_max_seq_len is None
             or (isinstance(self.rope_original_max_seq_len, int) and self.rope_original_max_seq_len >= 1),
             f"rope_original_max_seq_len={self.rope_original_max_seq_len!r} must be None or a positive integer")

    # ------------------------------------------------------------------ helpers
    @property
    def context_length(self) -> int:
        """Longest cache + input the model accepts without ``allow_longer=True``.

        ``max_seq_len``, except with RoPE scaling, where the stretched positions cover
        ``rope_original_max_seq_len (default max_seq_len) * rope_scaling_factor`` (whichever is larger).
        """
        if self.pos == "rope" and self.rope_scaling != "none":
            original = self.rope_original_max_seq_len or self.max_seq_len
            return max(self.max_seq_len, int(original * self.rope_scaling_factor))
        return self.max_seq_len

    @property
    def resolved_attn_scale(self) -> float:
        """The number that multiplies q·k (1/sqrt(head_dim) by default)."""
        if isinstance(self.attn_scale, str):
            return {"rsqrt_d": 1.0 / math.sqrt(self.head_dim), "one": 1.0, "inv_d": 1.0 / self.head_dim}[self.attn_scale]
        return float(self.attn_scale)

    def replace(self, **changes: Any) -> "ModelConfig":
        """A copy with some fields changed (derived sizes are re-derived unless given)."""
        data = self.to_dict()
        # Re-derive sizes that depend on changed fields unless the caller sets them.
        if any(k in changes for k in ("dim", "n_heads")) and "head_dim" not in changes:
            data["head_dim"] = None
        if any(k in changes for k in ("dim", "ffn_type", "ffn_ratio")) and "ffn_dim" not in changes:
            data["ffn_dim"] = None
        if "n_heads" in changes and "n_kv_heads" not in changes and self.n_kv_heads == self.n_heads:
            data["n_kv_heads"] = None
        data.update(changes)
        return ModelConfig(**data)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict) -> "ModelConfig":
        return dataclass_from_dict(cls, data)

    # ------------------------------------------------------------------ presets
    @classmethod
    def minimind_26m(cls, **overrides: Any) -> "ModelConfig":
        """MiniMind-class 25.8 M parameters: hidden 512, 8 layers, 8 heads, 2 KV heads, SwiGLU 1408,
        vocab 6400, RoPE theta 1e6, tied embeddings."""
        base = dict(vocab_size=6400, dim=512, n_layers=8, n_heads=8, n_kv_heads=2, ffn_dim=1408,
                    max_seq_len=512, rope_theta=1e6, norm_eps=1e-5, tie_embeddings=True)
        base.update(overrides)
        return cls(**base)

    @classmethod
    def tiny(cls, **overrides: Any) -> "ModelConfig":
        """CPU preset (about 1.6 M parameters at vocab 6400): trains in minutes on 2 cores."""
        base = dict(vocab_size=6400, dim=128, n_layers=4, n_heads=4, n_kv_heads=2, ffn_dim=352,
                    max_seq_len=256, rope_theta=1e4)
        base.update(overrides)
        return cls(**base)

    @classmethod
    def nano(cls, **overrides: Any) -> "ModelConfig":
        """The smallest preset for unit tests and synthetic tasks (dim 64, 2 layers, 4 heads)."""
        base = dict(vocab_size=256, dim=64, n_layers=2, n_heads=4, n_kv_heads=2, ffn_dim=176,
                    max_seq_len=128, rope_theta=1e4)
        base.update(overrides)
        return cls(**base)

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> "ModelConfig":
        """Build a named preset: 'minimind_26m' (alias '26m'), 'tiny' or 'nano'."""
        canonical = PRESET_ALIASES.get(name, name)
        if canonical not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS + tuple(PRESET_ALIASES))}")
        return getattr(cls, canonical)(**overrides)


# Fields added to ModelConfig after checkpoints were first written; their defaults are the model
# those checkpoints describe, so a config.json may lack them. Every other field is required.
LATER_FIELDS = ("attn_normalizer", "attn_tau", "pos_concat_dim", "zero_init_out")
_JSON_TYPES = {"int": (int,), "float": (int, float), "bool": (bool,), "str": (str,)}


def check_stored_config(data: dict, file: Any) -> None:
    """A stored config must name every field with a value of its type: a missing field would load a
    different model (defaults filled in), ``"causal": "false"`` would make a causal one. Raises
    ``ValueError`` naming the file and every bad field."""
    problems = []
    for f in dataclasses.fields(ModelConfig):
        if f.name not in data:
            if f.name not in LATER_FIELDS:
                problems.append(f"{f.name} is missing")
            continue
        v, kind = data[f.name], str(f.type)
        allowed = [t for name, types in _JSON_TYPES.items() if name in kind for t in types]
        ok = (v is None and "Optional" in kind) or (
            isinstance(v, tuple(allowed)) and (isinstance(v, bool) == (bool in allowed)))
        if ok and isinstance(v, float) and not math.isfinite(v):
            ok, kind = False, kind + " (finite)"
        if not ok:
            problems.append(f"{f.name}={v!r} must be {kind}")
    if problems:
        raise ValueError(f"checkpoint config {str(file)!r} is not a complete ModelConfig: " + "; ".join(problems))


PRESETS = ("minimind_26m", "tiny", "nano")
PRESET_ALIASES = {"26m": "minimind_26m", "minimind": "minimind_26m"}

# How each preset is trained by ``python -m course_lib pretrain --preset <name>`` (the defaults of
# its flags), sized so that "tiny" trains in a few minutes on a 2-core CPU; and the recipe of the
# pretrained model shipped with the course (``scripts/build_pretrained.py``). One table, one place.
PRESET_RECIPES = {
    "nano": dict(max_steps=200, batch_size=16, seq_len=64, lr=3e-3, warmup_steps=20, save_every=100),
    "tiny": dict(max_steps=500, batch_size=16, seq_len=128, lr=2e-3, warmup_steps=30, save_every=250),
    "minimind_26m": dict(max_steps=2000, batch_size=32, seq_len=256, lr=5e-4, warmup_steps=100, save_every=500),
}
PRETRAINED_RECIPE = dict(preset="tiny", vocab_size=6400, seq_len=256, batch_size=16, max_steps=1000, lr=2e-3,
                         min_lr=2e-4, warmup_steps=100, eval_every=200, val_fraction=0.02)
