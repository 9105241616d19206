"""Position information: RoPE (with pi / ntk / yarn scaling), sinusoidal tables, ALiBi biases, and
:func:`build_positions`, the one place that turns ``config.pos`` into what the model uses.

Every scheme answers the same three questions (a module with three methods), so the model has no
``if pos == ...`` chain:

    embed(x, position_ids)      what is added to (or concatenated with) the token embeddings
    rotary(position_ids)        ``(cos, sin)`` for rotating q and k, or None
    attention_bias(T, S)        an additive ``(1, H, T, S)`` score bias, or None

"none" answers nothing; "learned" is an ``nn.Embedding`` table; "sinusoidal" the fixed table of
Vaswani et al. (2017); "rope" rotates q and k (Su et al. 2021); "alibi" biases the scores by
distance (Press et al. 2022).

RoPE uses the *rotate-half* layout of Hugging Face Llama: the head dimension is split into two
halves ``x = [x1, x2]`` and pair ``i`` is ``(x1[i], x2[i])``, rotated by angle ``pos * inv_freq[i]``.
This is the same function as the interleaved layout of the RoPE paper up to a fixed permutation of
the q/k projection rows, and it is the layout ``transformers`` loads, so exported weights need no
reordering.
"""
from __future__ import annotations

import math
from typing import Optional, Tuple

import torch
from torch import nn


# ----------------------------------------------------------------------------------------- RoPE
def rope_inv_freq(head_dim: int, theta: float = 1e4, scaling: str = "none", factor: float = 1.0,
                  original_max_seq_len: Optional[int] = None, beta_fast: float = 32.0,
                  beta_slow: float = 1.0) -> Tuple[torch.Tensor, float]:
    """Inverse frequencies ``(head_dim // 2,)`` (float32) and an attention factor for cos/sin.

    scaling
        "none": ``theta ** (-2i / d)``.
        "pi":   position interpolation, every frequency divided by ``factor`` (positions squeezed
                back into the trained range).
        "ntk":  NTK-aware: keep the highest frequency, raise the base to
                ``theta * factor ** (d / (d - 2))`` so the lowest frequency is divided by ``factor``.
        "yarn": per-frequency blend: wavelengths much shorter than the original context keep their
                frequency (extrapolate), much longer ones are interpolated like "pi", a linear ramp in
                between; cos/sin are multiplied by ``0.1 ln(factor) + 1`` to keep attention sharp.
    """
    half = head_dim // 2
    exponents = torch.arange(half, dtype=torch.float64) * 2.0 / head_dim
    base_freq = theta ** (-exponents)                          # (half,) the unscaled frequencies
    attention_factor = 1.0
    if scaling == "none" or factor == 1.0:
        inv_freq = base_freq
    elif scaling == "pi":
        inv_freq = base_freq / factor
    elif scaling == "ntk":
        new_theta = theta * factor ** (head_dim / (head_dim - 2)) if head_dim > 2 else theta * factor
        inv_freq = new_theta ** (-exponents)
    elif scaling == "yarn":
        if original_max_seq_len is None:
            raise ValueError("rope_scaling='yarn' needs original_max_seq_len (the training context length)")

        # Index of the frequency that completes `rotations` turns over the original context.
        def dim_for(rotations: float) -> float:
            return head_dim * math.log(original_max_seq_len / (rotations * 2 * math.pi)) / (2 * math.log(theta))

        low = max(math.floor(dim_for(beta_fast)), 0)
        high = min(math.ceil(dim_for(beta_slow)), head_dim - 1)
        if high == low:
            high = high + 1e-3                                   # avoid a zero-width ramp
        ramp = ((torch.arange(half, dtype=torch.float64) - low) / (high - low)).clamp(0.0, 1.0)
        keep = 1.0 - ramp                                        # 1: extrapolate (high freq), 0: interpolate
        inv_freq = base_freq / factor * (1.0 - keep) + base_freq * keep
        attention_factor = 0.1 * math.log(factor) + 1.0
    else:
        raise ValueError(f"rope scaling={scaling!r} must be one of ('none', 'pi', 'ntk', 'yarn')")
    return inv_freq.to(torch.float32), attention_factor


def rope_frequencies(position_ids: torch.Tensor, head_dim: int, theta: float = 1e4, scaling: str = "none",
                     factor: float = 1.0, original_max_seq_len: Optional[int] = None
                     ) -> Tuple[torch.Tensor, torch.Tensor]:
    """``cos, sin`` of shape ``(B, T, head_dim)`` (float32) for integer ``position_ids`` ``(B, T)``."""
    inv_freq, attention_factor = rope_inv_freq(head_dim, theta, scaling, factor, original_max_seq_len)
    return _cos_sin(position_ids, inv_freq.to(position_ids.device), attention_factor)


def _cos_sin(position_ids: torch.Tensor, inv_freq: torch.Tensor, attention_factor: float
             ) -> Tuple[torch.Tensor, torch.Tensor]:
    # Angles in float32: bf16 would lose whole radians at positions in the thousands.
    angles = position_ids.to(torch.float32)[..., None] * inv_freq     # (B, T, d/2)
    angles = torch.cat((angles, angles), dim=-1)                      # (B, T, d) rotate-half layout
    cos, sin = angles.cos(), angles.sin()
    if attention_factor != 1.0:
        cos, sin = cos * attention_factor, sin * attention_factor
    return cos, sin


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """``[x1, x2] -> [-x2, x1]`` on the last dimension (a 90 degree turn of every pair)."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate ``x`` ``(B, H, T, d)`` by the angles in ``cos, sin`` ``(B, T, d)``; returns x's dtype."""
    cos = cos.unsqueeze(1).to(x.dtype)                                # (B, 1, T, d): same for every head
    sin = sin.unsqueeze(1).to(x.dtype)
    return x * cos + rotate_half(x) * sin


class RotaryEmbedding(nn.Module):
    """Holds the inverse frequencies of a config; ``forward(position_ids) -> (cos, sin)``."""

    def __init__(self, head_dim: int, theta: float, scaling: str = "none", factor: float = 1.0,
                 original_max_seq_len: Optional[int] = None):
        super().__init__()
        self.head_dim = head_dim
        self._args = (head_dim, theta, scaling, factor, original_max_seq_len)
        inv_freq, self.attention_factor = rope_inv_freq(*self._args)
        # Not persistent: derived from the config, so checkpoints stay free of it.
        self.register_buffer("inv_freq", inv_freq, persistent=False)

    def forward(self, position_ids: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """``position_ids (B, T)`` -> ``cos, sin (B, T, head_dim)`` in float32."""
        inv_freq = self.inv_freq
        if inv_freq.dtype != torch.float32:
            # model.to(bfloat16) casts buffers too; recompute so the angles stay exact.
            inv_freq = rope_inv_freq(*self._args)[0].to(inv_freq.device)
        return _cos_sin(position_ids, inv_freq, self.attention_factor)


# ----------------------------------------------------------------------------------------- sinusoidal
def sinusoidal_embedding(position_ids: torch.Tensor, dim: int, base: float = 10000.0) -> torch.Tensor:
    """The fixed table of "Attention Is All You Need": ``(B, T) -> (B, T, dim)`` float32.

    Even channels ``2i`` hold ``sin(pos / base**(2i/dim))``, odd channels ``2i+1`` the cosine.
    Computed from the positions directly, so any position works (no table to run past).
    """
    inv_freq = base ** (-torch.arange(0, dim, 2, device=position_ids.device, dtype=torch.float32) / dim)
    angles = position_ids.to(torch.float32)[..., None] * inv_freq      # (B, T, dim/2)
    # stack then flatten interleaves: [sin0, cos0, sin1, cos1, ...]
    return torch.stack((angles.sin(), angles.cos()), dim=-1).flatten(-2)


# ----------------------------------------------------------------------------------------- ALiBi
def alibi_slopes(n_heads: int) -> torch.Tensor:
    """Per-head slopes ``(H,)``: the geometric sequence ``2**(-8 i / n)`` for ``i = 1..n``.

    For a head count that is not a power of two, take the slopes of the next lower power of two and
    fill up with every other slope of the next higher one (the ALiBi paper's recipe).
    """
    def powers(n: int) -> list:
        start = 2.0 ** (-8.0 / n)
        return [start ** (i + 1) for i in range(n)]

    if n_heads & (n_heads - 1) == 0:
        slopes = powers(n_heads)
    else:
        lower = 2 ** math.floor(math.log2(n_heads))
        slopes = powers(lower) + powers(2 * lower)[0::2][: n_heads - lower]
    return torch.tensor(slopes, dtype=torch.float32)


def alibi_bias(slopes: torch.Tensor, q_len: int, k_len: int, causal: bool = True) -> torch.Tensor:
    """Additive attention bias ``(1, H, T, S)`` float32: ``-slope * distance``.

    Queries are the last ``T`` of the ``S`` key positions (a KV cache holds the first ``S - T``).
    Distances are measured in index space; with left padding the real tokens are contiguous, so
    index distance equals token distance. Causal: ``distance = i - j`` (future keys are masked
    anyway); bidirectional: ``|i - j|``.
    """
    q_idx = torch.arange(k_len - q_len, k_len, device=slopes.device)[:, None]
    k_idx = torch.arange(k_len, device=slopes.device)[None, :]
    dist = (q_idx - k_idx).to(torch.float32)
    dist = dist.clamp(min=0) if causal else dist.abs()
    return (-slopes.float()[:, None, None] * dist).unsqueeze(0)


# ----------------------------------------------------------------------------------------- one interface
class NoPositions(nn.Module):
    """``pos="none"``: the model sees token identities only (a causal mask still leaks order)."""

    def embed(self, x: torch.Tensor, position_ids: torch.Tensor) -> torch.Tensor:
        """``x (B, T, D_tok)`` token embeddings -> ``(B, T, D)`` the residual stream's input."""
        return x

    def rotary(self, position_ids: torch.Tensor) -> Optional[Tuple[torch.Tensor, torch.Tensor]]:
        return None

    def attention_bias(self, q_len: int, k_len: int) -> Optional[torch.Tensor]:
        return None


def _add_or_concat(x: torch.Tensor, pe: torch.Tensor, concat: bool) -> torch.Tensor:
    """Position vectors ``pe (B or 1, T, k)`` added to ``x`` or filling its last ``k`` channels."""
    return torch.cat((x, pe.to(x.dtype).expand(x.shape[0], -1, -1)), dim=-1) if concat else x + pe.to(x.dtype)


class LearnedPositions(NoPositions, nn.Embedding):
    """``pos="learned"``: a trained table ``(max_seq_len, width)``; ``weight`` is the table."""

    def __init__(self, config):
        nn.Embedding.__init__(self, config.max_seq_len, config.pos_concat_dim or config.dim)
        self.concat = bool(config.pos_concat_dim)

    def embed(self, x: torch.Tensor, position_ids: torch.Tensor) -> torch.Tensor:
        return _add_or_concat(x, nn.Embedding.forward(self, position_ids), self.concat)


class SinusoidalPositions(NoPositions):
    """``pos="sinusoidal"``: :func:`sinusoidal_embedding`, scaled to the RMS of a freshly initialised
    learned table (``init_std`` per channel), so the fixed signal neither drowns the 0.02-scale token
    embeddings nor differs in size from the learned alternative it is compared with. (The 2017
    paper instead multiplied the token embeddings by sqrt(D).)"""

    def __init__(self, config):
        super().__init__()
        self.width, self.concat = config.pos_concat_dim or config.dim, bool(config.pos_concat_dim)
        self.scale = config.init_std * math.sqrt(2.0)

    def embed(self, x: torch.Tensor, position_ids: torch.Tensor) -> torch.Tensor:
        return _add_or_concat(x, sinusoidal_embedding(position_ids, self.width) * self.scale, self.concat)


class RotaryPositions(NoPositions):
    """``pos="rope"``: q and k rotated by position (the :class:`RotaryEmbedding` of the config)."""

    def __init__(self, config):
        super().__init__()
        original = config.rope_original_max_seq_len or config.max_seq_len
        self.rope = RotaryEmbedding(config.head_dim, config.rope_theta, config.rope_scaling,
                                    config.rope_scaling_factor, original)

    def rotary(self, position_ids: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        return self.rope(position_ids)                                 # (cos, sin) each (B, T, d)


class AlibiPositions(NoPositions):
    """``pos="alibi"``: a per-head linear penalty on distance added to the scores."""

    def __init__(self, config):
        super().__init__()
        self.n_heads, self.causal = config.n_heads, config.causal
        self.register_buffer("slopes", alibi_slopes(config.n_heads), persistent=False)

    def attention_bias(self, q_len: int, k_len: int) -> torch.Tensor:
        slopes = self.slopes
        if slopes.dtype != torch.float32:                 # model.to(bf16) casts buffers; keep slopes exact
            slopes = alibi_slopes(self.n_heads).to(slopes.device)
        return alibi_bias(slopes, q_len, k_len, self.causal)          # (1, H, T, S) float32


POSITION_MODULES = {"none": NoPositions, "learned": LearnedPositions, "sinusoidal": SinusoidalPositions,
                    "rope": RotaryPositions, "alibi": AlibiPositions}


def build_positions(config) -> NoPositions:
    """The position module for ``config.pos`` (one of ``POSITION_MODULES``)."""
    if config.pos not in POSITION_MODULES:
        raise ValueError(f"pos={config.pos!r} must be one of {tuple(POSITION_MODULES)}")
    cls = POSITION_MODULES[config.pos]
    return cls() if cls is NoPositions else cls(config)
