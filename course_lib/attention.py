"""Multi-head attention with grouped-query heads, a registry of attention functions, capture and head masks.

Shapes: ``B`` batch, ``T`` queries, ``S`` keys (cached + new), ``H`` query heads, ``Hkv`` key/value
heads (``H % Hkv == 0``; query head ``h`` reads key/value head ``h // (H // Hkv)``), ``d`` head dim.

Attention functions (the registry, looked up by ``config.attn_impl``)
    Every entry has one signature (the pattern of ``transformers``' Llama)::

        fn(q (B, H, T, d), k (B, Hkv, S, d), v (B, Hkv, S, d), *, mask, bias, scale, dropout, causal)
            -> (out (B, H, T, d), weights (B, H, T, S) or None)

    ``mask`` boolean (True = may attend) broadcasting to ``(B, H, T, S)`` or None; ``bias`` additive
    ``(1, H, T, S)`` float32 (ALiBi) or None; ``causal=True`` only with ``mask=None`` and ``T == S``
    (the function applies the causal mask itself); ``dropout`` the probability on the weights.

    "sdpa"    ``F.scaled_dot_product_attention``: the fast path (flash / memory-efficient kernels).
    "naive"   explicit ``normalize(q k^T * scale + bias, masked) v``; the only one that can fill
              masked scores with 0 (``mask_fill="zero"``) or swap the softmax for another normaliser
              (``attn_normalizer``), and the one ``capture=True`` falls back to.
    "chunked" online softmax over blocks of keys: the idea behind FlashAttention, exact, written out
              in Python to show that the full ``(T, S)`` matrix is never needed.
    "linear"  causal linear attention with the feature map ``elu(x) + 1``: a different model, with a
              parallel form (used here) and a recurrent form (:func:`linear_attention_recurrent`).

    :func:`register_attention` adds another (a flash kernel, a new normaliser); then
    ``ModelConfig(attn_impl=name)`` selects it.

Normalisers (``config.attn_normalizer``, used by "naive"): "softmax", "hard" (argmax, no gradient),
"straight_through" (argmax forward, softmax gradient), "gumbel" / "gumbel_hard" (temperature
``attn_tau``), "uniform" (equal weight on every visible key).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from .config import ATTN_NORMALIZERS
from .norm import RMSNorm
from .positions import apply_rope

AttentionFn = Callable[..., Tuple[torch.Tensor, Optional[torch.Tensor]]]


def _sdpa_supports_gqa() -> bool:
    """``enable_gqa=True`` exists from torch 2.5; older versions raise TypeError."""
    try:
        q = torch.zeros(1, 2, 1, 2)
        kv = torch.zeros(1, 1, 1, 2)
        F.scaled_dot_product_attention(q, kv, kv, enable_gqa=True)
        return True
    except (TypeError, RuntimeError):
        return False


SDPA_GQA = _sdpa_supports_gqa()
CHUNK_SIZE = 64  # keys per block in the "chunked" implementation
# ----------------------------------------------------------------------------------------- masks
def build_attention_mask(attention_mask: Optional[torch.Tensor], q_len: int, k_len: int, causal: bool = True,
                         device=None) -> Optional[torch.Tensor]:
    """Boolean mask ``(B or 1, 1, T, S)`` (True = attend) or ``None`` when every key is allowed.

    The ``T`` queries are the last ``T`` of the ``S`` key positions (a cache holds the first
    ``S - T``). ``attention_mask (B, S)`` marks real tokens with 1 and padding with 0. A padded
    query row would have no allowed key at all (left padding: everything before it is padding too)
    and softmax would give NaN, so every query may always attend to its own position; the outputs
    of pad rows are garbage by design and carry no loss.
    """
    if attention_mask is None and (not causal or q_len == 1):
        return None                                                          # every key allowed
    device = attention_mask.device if attention_mask is not None else device
    q_idx = torch.arange(k_len - q_len, k_len, device=device)[:, None]       # (T, 1) absolute index
    k_idx = torch.arange(k_len, device=device)[None, :]                      # (1, S)
    allowed = None
    if causal:
        allowed = (k_idx <= q_idx)[None, None]                               # (1, 1, T, S)
    if attention_mask is not None:
        real = attention_mask.to(torch.bool)[:, None, None, :]               # (B, 1, 1, S)
        allowed = real if allowed is None else allowed & real
        allowed = allowed | (k_idx == q_idx)[None, None]                     # self is always allowed
    return allowed


def _group(q: torch.Tensor, n_kv_heads: int) -> torch.Tensor:
    """``(B, H, T, d) -> (B, Hkv, g, T, d)``: query heads grouped by the key/value head they read."""
    B, H, T, d = q.shape
    return q.view(B, n_kv_heads, H // n_kv_heads, T, d)


def _scores(q: torch.Tensor, k: torch.Tensor, scale: float) -> torch.Tensor:
    """``q (B, H, T, d)``, ``k (B, Hkv, S, d)`` -> float32 ``q k^T * scale`` ``(B, H, T, S)``.

    Grouping the queries (instead of repeating keys ``H / Hkv`` times) lets one matmul serve a whole
    group without copying the keys. Float64 inputs stay float64.
    """
    B, H, T, _ = q.shape
    s = torch.einsum("bkgtd,bksd->bkgts", _group(q, k.shape[1]), k)
    return s.to(torch.promote_types(s.dtype, torch.float32)).reshape(B, H, T, k.shape[2]) * scale


def _weighted_values(w: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``w (B, H, T, S)``, ``v (B, Hkv, S, d)`` -> ``(B, H, T, d)``."""
    B, H, T, S = w.shape
    out = torch.einsum("bkgts,bksd->bkgtd", _group(w.to(v.dtype), v.shape[1]), v)
    return out.reshape(B, H, T, v.shape[-1])


def _causal_mask(q: torch.Tensor, k: torch.Tensor, mask: Optional[torch.Tensor], causal: bool
                 ) -> Optional[torch.Tensor]:
    """The explicit implementations need the causal mask written out (SDPA builds it implicitly)."""
    if causal and mask is None:
        return build_attention_mask(None, q.shape[2], k.shape[2], True, device=q.device)
    return mask


def _default_scale(q: torch.Tensor, scale: Optional[float]) -> float:
    return q.shape[-1] ** -0.5 if scale is None else float(scale)


def attention_scores(q: torch.Tensor, k: torch.Tensor, *, scale: Optional[float] = None,
                     bias: Optional[torch.Tensor] = None, mask: Optional[torch.Tensor] = None,
                     causal: bool = False, mask_fill: str = "-inf") -> torch.Tensor:
    """The softmax's input ``q k^T * scale + bias`` ``(B, H, T, S)`` (float32), masked keys filled with
    -inf, or with 0 for ``mask_fill="zero"`` (exp(0) = 1 is not 0: the future leaks in).

    This is what ``capture=True`` records as "scores" for every implementation."""
    s = _scores(q, k, _default_scale(q, scale))
    if bias is not None:
        s = s + bias
    mask = _causal_mask(q, k, mask, causal)
    if mask is not None:
        s = s.masked_fill(~mask, 0.0 if mask_fill == "zero" else float("-inf"))
    return s


# ----------------------------------------------------------------------------------------- normalisers
def hard_weights(scores: torch.Tensor, straight_through: bool = False) -> torch.Tensor:
    """One-hot weights on each row's argmax (a hard dictionary lookup).

    Plain argmax passes no gradient to the scores at all. ``straight_through=True`` returns the same
    one-hot values in the forward pass but the softmax's gradient in the backward pass
    (one_hot - softmax.detach() + softmax), the straight-through estimator.
    """
    one_hot = torch.zeros_like(scores).scatter_(-1, scores.argmax(-1, keepdim=True), 1.0)
    if not straight_through:
        return one_hot
    p = torch.softmax(scores, -1)
    return one_hot - p.detach() + p


def gumbel_weights(scores: torch.Tensor, tau: float = 1.0, hard: bool = False,
                   generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Gumbel-softmax weights: softmax((scores + Gumbel noise) / tau); ``hard`` takes the argmax in
    the forward pass with the straight-through gradient. As tau -> 0 the sample becomes one-hot.
    Masked scores (-inf) stay masked."""
    if tau <= 0:
        raise ValueError(f"tau={tau} must be > 0")
    dev = generator.device if generator is not None else scores.device   # noise where the generator lives
    u = torch.rand(scores.shape, generator=generator, dtype=scores.dtype, device=dev).to(scores.device)
    e = (-torch.log(u.clamp(1e-20, 1.0))).clamp_min(1e-20)              # Exp(1) draws
    noisy = torch.where(torch.isfinite(scores), scores - torch.log(e), scores)   # + standard Gumbel noise
    # hard: the one-hot argmax forward, the Gumbel-softmax's gradient backward
    return hard_weights(noisy / tau, straight_through=True) if hard else torch.softmax(noisy / tau, -1)


def uniform_weights_like(scores: torch.Tensor) -> torch.Tensor:
    """Equal weight on every key a row may see (the finite scores), whatever their values."""
    return torch.softmax(torch.where(torch.isfinite(scores), torch.zeros_like(scores), scores), -1)


NORMALIZERS = ATTN_NORMALIZERS


def make_normalizer(name: str = "softmax", tau: float = 1.0, generator: Optional[torch.Generator] = None
                    ) -> Callable[[torch.Tensor], torch.Tensor]:
    """``scores (..., S)`` with -inf where masked -> weights summing to 1 over ``S``, by ``name``
    (one of ``NORMALIZERS``); ``tau`` and ``generator`` are used by the Gumbel normalisers."""
    table = {"softmax": functools.partial(torch.softmax, dim=-1),
             "hard": hard_weights,
             "straight_through": functools.partial(hard_weights, straight_through=True),
             "gumbel": functools.partial(gumbel_weights, tau=tau, generator=generator),
             "gumbel_hard": functools.partial(gumbel_weights, tau=tau, hard=True, generator=generator),
             "uniform": uniform_weights_like}
    if name not in table:
        raise ValueError(f"attn_normalizer={name!r} must be one of {NORMALIZERS}")
    return table[name]


# ----------------------------------------------------------------------------------------- implementations
def sdpa_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, mask: Optional[torch.Tensor] = None,
                   bias: Optional[torch.Tensor] = None, scale: Optional[float] = None, dropout: float = 0.0,
                   causal: bool = False) -> Tuple[torch.Tensor, None]:
    """``F.scaled_dot_product_attention`` with GQA; returns ``(out, None)`` (SDPA never forms the weights).

    ``causal=True`` (no mask, ``T == S``) lets SDPA pick its fastest causal kernel without
    materialising a mask. A bias (ALiBi) is merged with the boolean mask into one additive mask.
    """
    attn_mask = mask
    if bias is not None:
        if causal:
            mask, causal = _causal_mask(q, k, None, True), False
        attn_mask = bias if mask is None else bias.masked_fill(~mask, float("-inf"))
        attn_mask = attn_mask.to(q.dtype)
    groups = q.shape[1] // k.shape[1]
    kw = dict(attn_mask=attn_mask, dropout_p=dropout, is_causal=causal, scale=scale)
    if groups > 1:
        # CUDA's fused kernels take grouped heads only without a mask (with one, enable_gqa falls
        # back to the slow math kernel), so there the KV heads are repeated instead; the CPU
        # kernels handle both cases natively.
        if SDPA_GQA and not (attn_mask is not None and q.is_cuda):
            return F.scaled_dot_product_attention(q, k, v, enable_gqa=True, **kw), None
        # Otherwise SDPA wants as many key heads as query heads (the copy is unavoidable here).
        k, v = k.repeat_interleave(groups, dim=1), v.repeat_interleave(groups, dim=1)
    return F.scaled_dot_product_attention(q, k, v, **kw), None


def naive_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, mask: Optional[torch.Tensor] = None,
                    bias: Optional[torch.Tensor] = None, scale: Optional[float] = None, dropout: float = 0.0,
                    causal: bool = False, mask_fill: str = "-inf",
                    normalize: Optional[Callable[[torch.Tensor], torch.Tensor]] = None
                    ) -> Tuple[torch.Tensor, torch.Tensor]:
    """Attention written out: ``weights = normalize(scores)``, ``out = weights v``; returns ``(out, weights)``.

    ``normalize`` defaults to the softmax (see :func:`make_normalizer` for the others);
    ``mask_fill`` as in :func:`attention_scores`.
    """
    scores = attention_scores(q, k, scale=scale, bias=bias, mask=mask, causal=causal, mask_fill=mask_fill)
    weights = torch.softmax(scores, dim=-1) if normalize is None else normalize(scores)
    dropped = F.dropout(weights, p=dropout) if dropout > 0 else weights
    return _weighted_values(dropped, v).to(q.dtype), weights


def chunked_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, mask: Optional[torch.Tensor] = None,
                      bias: Optional[torch.Tensor] = None, scale: Optional[float] = None, dropout: float = 0.0,
                      causal: bool = False, block_size: int = CHUNK_SIZE) -> Tuple[torch.Tensor, None]:
    """Exact attention by an online softmax over key blocks of ``block_size``; returns ``(out, None)``.

    For each block: new running max ``m``, rescale what was accumulated by ``exp(m_old - m_new)``,
    add ``exp(s - m_new)`` to the normaliser ``l`` and ``exp(s - m_new) v`` to the accumulator.
    Memory is ``O(T * block_size)`` per head instead of ``O(T * S)``. Dropout on the attention
    weights is applied to ``exp(s - m)`` on its way into the accumulator only: dividing by the row
    sum ``l`` at the end then gives exactly dropout of the normalised weights.
    """
    B, H, T, d = q.shape
    S = k.shape[2]
    scale = _default_scale(q, scale)
    # A causal mask is built block by block from positions: a full (T, S) mask would be O(T * S) memory.
    q_pos = torch.arange(S - T, S, device=q.device)[:, None] if causal and mask is None else None
    wide = dict(device=q.device, dtype=torch.promote_types(q.dtype, torch.float32))
    m = torch.full((B, H, T), float("-inf"), **wide)
    l = torch.zeros((B, H, T), **wide)
    acc = torch.zeros((B, H, T, v.shape[-1]), **wide)
    for start in range(0, S, block_size):
        end = min(start + block_size, S)
        s = _scores(q, k[:, :, start:end], scale)                          # (B, H, T, C) float32
        if bias is not None:
            s = s + bias[..., start:end]
        if mask is not None:
            s = s.masked_fill(~mask[..., start:end], float("-inf"))
        if q_pos is not None:
            s = s.masked_fill(torch.arange(start, end, device=q.device)[None, :] > q_pos, float("-inf"))
        m_new = torch.maximum(m, s.amax(dim=-1))
        # Rows that have seen only masked keys so far keep m = -inf; use 0 there so that
        # exp(-inf - 0) = 0 instead of exp(-inf + inf) = NaN.
        m_safe = torch.where(torch.isinf(m_new), torch.zeros_like(m_new), m_new)
        correction = torch.exp(m - m_safe)
        p = torch.exp(s - m_safe[..., None])
        l = l * correction + p.sum(dim=-1)
        p_v = F.dropout(p, p=dropout) if dropout > 0 else p
        acc = acc * correction[..., None] + _weighted_values(p_v, v[:, :, start:end].to(acc.dtype))
        m = m_new
    return (acc / l[..., None]).to(q.dtype), None


def elu_feature_map(x: torch.Tensor) -> torch.Tensor:
    """``phi(x) = elu(x) + 1 > 0``: a positive feature map, so phi(q).phi(k) is a valid weight."""
    return F.elu(x.to(torch.promote_types(x.dtype, torch.float32))) + 1.0


def linear_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, mask: Optional[torch.Tensor] = None,
                     bias: Optional[torch.Tensor] = None, scale: Optional[float] = None, dropout: float = 0.0,
                     causal: bool = False, eps: float = 1e-6) -> Tuple[torch.Tensor, torch.Tensor]:
    """Linear attention, parallel form: ``out_t = sum_s A_ts v_s / sum_s A_ts`` with
    ``A_ts = phi(q_t) . phi(k_s)`` where ``mask`` allows it. No softmax, so ``scale`` is unused;
    a ``bias`` cannot be applied (the config refuses ALiBi with it).

    Returns ``(out (B, H, T, d), weights = A / row sums)``. Same result as the recurrent form,
    which needs only a ``(d, d)`` state per head instead of all past keys.
    """
    if bias is not None:
        raise ValueError("linear_attention has no score matrix to add a bias to; use pos='rope' or 'none'")
    A = _scores(elu_feature_map(q), elu_feature_map(k), 1.0)
    mask = _causal_mask(q, k, mask, causal)
    if mask is not None:
        A = A * mask
    weights = A / (A.sum(dim=-1, keepdim=True) + eps)
    dropped = F.dropout(weights, p=dropout) if dropout > 0 else weights
    return _weighted_values(dropped, v.to(A.dtype)).to(q.dtype), weights


def linear_attention_recurrent(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                               state: Optional[Tuple[torch.Tensor, torch.Tensor]] = None, eps: float = 1e-6
                               ) -> Tuple[torch.Tensor, Tuple[torch.Tensor, torch.Tensor]]:
    """Causal linear attention as an RNN: ``q, k, v (B, H, T, d)`` (same head count) -> ``out, state``.

    ``state = (Sum phi(k_s) v_s^T  (B, H, d, d_v), Sum phi(k_s)  (B, H, d))`` summarises every past
    position in constant memory; pass it back in to continue. Step t:
    ``state += (phi(k_t) v_t^T, phi(k_t))``, ``out_t = phi(q_t) KV / (phi(q_t) . z)``.
    """
    B, H, T, d = q.shape
    fq, fk = elu_feature_map(q), elu_feature_map(k)        # float32, or float64 for float64 inputs
    vf = v.to(fq.dtype)
    if state is None:
        kv = torch.zeros(B, H, d, v.shape[-1], device=q.device, dtype=fq.dtype)
        z = torch.zeros(B, H, d, device=q.device, dtype=fq.dtype)
    else:
        kv, z = state
    outs = []
    for t in range(T):
        kv = kv + fk[:, :, t, :, None] * vf[:, :, t, None, :]
        z = z + fk[:, :, t]
        num = torch.einsum("bhd,bhde->bhe", fq[:, :, t], kv)
        den = (fq[:, :, t] * z).sum(-1, keepdim=True) + eps
        outs.append(num / den)
    return torch.stack(outs, dim=2).to(q.dtype), (kv, z)


# ----------------------------------------------------------------------------------------- registry
ATTENTION_FUNCTIONS: Dict[str, AttentionFn] = {
    "sdpa": sdpa_attention, "naive": naive_attention, "chunked": chunked_attention, "linear": linear_attention,
}


def register_attention(name: str, fn: AttentionFn, *, replace: bool = False) -> None:
    """Make ``fn`` available as ``ModelConfig(attn_impl=name)``.

    ``fn(q, k, v, *, mask, bias, scale, dropout, causal) -> (out, weights or None)`` as described
    at the top of this module. Registering an existing name needs ``replace=True``.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"name={name!r} must be a non-empty string")
    if not callable(fn):
        raise ValueError(f"fn={fn!r} must be callable with (q, k, v, *, mask, bias, scale, dropout, causal)")
    if name in ATTENTION_FUNCTIONS and not replace:
        raise ValueError(f"attention {name!r} is already registered; pass replace=True to override it")
    ATTENTION_FUNCTIONS[name] = fn


def get_attention(name: str) -> AttentionFn:
    """The registered attention function called ``name`` (ValueError listing the known names)."""
    if name not in ATTENTION_FUNCTIONS:
        raise ValueError(f"attn_impl={name!r} is not a registered attention function; choose one of "
                         f"{sorted(ATTENTION_FUNCTIONS)} or add it with register_attention(name, fn)")
    return ATTENTION_FUNCTIONS[name]


# ----------------------------------------------------------------------------------------- module
@dataclass
class AttentionInputs:
    """What every layer's attention needs besides its input, built once per forward pass.

    rope: ``(cos, sin)`` each ``(B, T, d)``, or None for no rotation.
    mask: boolean ``(B or 1, 1, T, S)`` from :func:`build_attention_mask`, or None.
    causal: True only when ``mask`` is None and ``T == S`` (the function masks the future itself).
    bias: additive ``(1, H, T, S)`` float32 (ALiBi), or None.
    kv_cache: a ``KVCache``; the new keys/values are written at its current length.
    head_mask: ``(n_layers, H)`` multipliers on each head's output before ``o_proj``.
    captured: a dict of lists; when given, each layer appends its "scores", "weights" and
        "head_outputs" (implementations that return no weights are replaced by "naive" for that call).
    """

    rope: Optional[Tuple[torch.Tensor, torch.Tensor]] = None
    mask: Optional[torch.Tensor] = None
    causal: bool = False
    bias: Optional[torch.Tensor] = None
    kv_cache: object = None
    head_mask: Optional[torch.Tensor] = None
    captured: Optional[Dict[str, List[torch.Tensor]]] = None


class Attention(nn.Module):
    """Grouped-query self-attention of one layer.

    Projections (no biases, Llama names): ``q_proj (D -> H*d)``, ``k_proj``/``v_proj (D -> Hkv*d)``,
    ``o_proj (H*d -> D)``. ``tie_qk`` drops ``k_proj`` (keys are the queries' projection),
    ``tie_kv`` drops ``v_proj`` (values are the keys' projection), ``use_wo=False`` drops ``o_proj``.
    ``qk_norm`` RMS-normalises q and k per head; with ``tie_qk`` the two norms are one module (one
    gain), so keys stay equal to queries and the scores ``x̂ᵀ diag(g²) x̂`` are symmetric. They are a
    scaled cosine, and each position prefers itself, only while that gain is all ones (freeze it).
    """

    def __init__(self, config, layer_idx: int = 0):
        super().__init__()
        self.layer_idx = layer_idx
        self.n_heads, self.n_kv_heads, self.head_dim = config.n_heads, config.n_kv_heads, config.head_dim
        self.tie_qk, self.tie_kv = config.tie_qk, config.tie_kv
        D, H, Hkv, d = config.dim, self.n_heads, self.n_kv_heads, self.head_dim
        self.q_proj = nn.Linear(D, H * d, bias=False)
        self.k_proj = None if config.tie_qk else nn.Linear(D, Hkv * d, bias=False)
        self.v_proj = None if config.tie_kv else nn.Linear(D, Hkv * d, bias=False)
        self.o_proj = nn.Linear(H * d, D, bias=False) if config.use_wo else None
        self.q_norm = RMSNorm(d, config.norm_eps) if config.qk_norm else None
        self.k_norm = self.q_norm if config.tie_qk else (RMSNorm(d, config.norm_eps) if config.qk_norm else None)
        self.configure(config)

    def configure(self, config, generator: Optional[torch.Generator] = None) -> None:
        """(Re)read the non-parameter switches of ``config``: scale, dropout, implementation, normaliser.

        ``generator`` feeds the Gumbel normalisers' noise (None: the global RNG)."""
        self.scale = config.resolved_attn_scale
        self.dropout = config.dropout
        self.mask_fill = config.mask_fill
        self.impl = config.attn_impl
        self.attn_fn = self._bind(get_attention(config.attn_impl), config, generator)
        self.reference_fn = self._bind(naive_attention, config, generator)    # for capture

    @staticmethod
    def _bind(fn: AttentionFn, config, generator) -> AttentionFn:
        """Only the explicit path has masked scores to fill and a softmax to swap (the config checks)."""
        if fn is not naive_attention:
            return fn
        return functools.partial(naive_attention, mask_fill=config.mask_fill,
                                 normalize=make_normalizer(config.attn_normalizer, config.attn_tau, generator))

    def forward(self, x: torch.Tensor, inputs: Optional[AttentionInputs] = None) -> torch.Tensor:
        """``x (B, T, D) -> (B, T, D)`` (or ``(B, T, H*d)`` without ``o_proj``); ``inputs`` default: no
        positions, no mask, every key visible."""
        a = inputs if inputs is not None else AttentionInputs()
        B, T, _ = x.shape
        H, Hkv, d = self.n_heads, self.n_kv_heads, self.head_dim
        q = self.q_proj(x).view(B, T, H, d)
        if self.q_norm is not None:
            q = self.q_norm(q)
        q = q.transpose(1, 2)                                               # (B, H, T, d)
        if a.rope is not None:
            q = apply_rope(q, *a.rope)
        if self.tie_qk:
            k = q                                                           # same projection, norm, rotation
            v = self.v_proj(x).view(B, T, Hkv, d).transpose(1, 2)
        else:
            k_raw = self.k_proj(x).view(B, T, Hkv, d)
            v = (k_raw if self.tie_kv else self.v_proj(x).view(B, T, Hkv, d)).transpose(1, 2)
            k = (self.k_norm(k_raw) if self.k_norm is not None else k_raw).transpose(1, 2)
            if a.rope is not None:
                k = apply_rope(k, *a.rope)
        if a.kv_cache is not None:
            k, v = a.kv_cache.update(self.layer_idx, k, v)                  # (B, Hkv, S, d)
            if k.dtype != q.dtype:                                          # e.g. a bf16 cache, fp32 model
                k, v = k.to(q.dtype), v.to(q.dtype)

        kw = dict(mask=a.mask, bias=a.bias, scale=self.scale, dropout=self.dropout if self.training else 0.0,
                  causal=a.causal)
        out, weights = self.attn_fn(q, k, v, **kw)
        if a.captured is not None and weights is None:
            out, weights = self.reference_fn(q, k, v, **kw)                 # same function, weights formed
        if a.head_mask is not None:
            out = out * a.head_mask[self.layer_idx].view(1, H, 1, 1).to(out.dtype)
        if a.captured is not None:
            a.captured["scores"].append(attention_scores(q, k, scale=self.scale, bias=a.bias, mask=a.mask,
                                                         causal=a.causal, mask_fill=self.mask_fill))
            a.captured["weights"].append(weights)
            a.captured["head_outputs"].append(out)
        out = out.transpose(1, 2).reshape(B, T, H * d)
        return self.o_proj(out) if self.o_proj is not None else out
