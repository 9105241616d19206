"""Multi-head attention with grouped-query heads, four implementations, capture and head masks.

Shapes: ``B`` batch, ``T`` queries, ``S`` keys (cached + new), ``H`` query heads, ``Hkv`` key/value
heads (``H % Hkv == 0``; query head ``h`` reads key/value head ``h // (H // Hkv)``), ``d`` head dim.

Implementations (``config.attn_impl``)
    "sdpa"    ``F.scaled_dot_product_attention``: the fast path (flash / memory-efficient kernels).
    "naive"   explicit ``softmax(q k^T * scale + bias, masked) v``; the only one that can fill masked
              scores with 0 (``mask_fill="zero"``) and the one ``capture=True`` switches to.
    "chunked" online softmax over blocks of keys: the idea behind FlashAttention, exact, written out
              in Python so NB can show that the full ``(T, S)`` matrix is never needed.
    "linear"  causal linear attention with the feature map ``elu(x) + 1``: a different model, with a
              parallel form (used here) and a recurrent form (:func:`linear_attention_recurrent`).

Masks are boolean, ``True`` = may attend, shaped to broadcast against ``(B, H, T, S)``.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from .norm import RMSNorm
from .positions import apply_rope


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
    group without copying the keys.
    """
    B, H, T, _ = q.shape
    s = torch.einsum("bkgtd,bksd->bkgts", _group(q, k.shape[1]), k)
    return s.float().reshape(B, H, T, k.shape[2]) * scale


def _weighted_values(w: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``w (B, H, T, S)``, ``v (B, Hkv, S, d)`` -> ``(B, H, T, d)``."""
    B, H, T, S = w.shape
    out = torch.einsum("bkgts,bksd->bkgtd", _group(w.to(v.dtype), v.shape[1]), v)
    return out.reshape(B, H, T, v.shape[-1])


# ----------------------------------------------------------------------------------------- implementations
def sdpa_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: Optional[torch.Tensor] = None,
                   is_causal: bool = False, bias: Optional[torch.Tensor] = None, scale: Optional[float] = None,
                   dropout_p: float = 0.0) -> torch.Tensor:
    """``F.scaled_dot_product_attention`` with GQA: ``q (B, H, T, d)``, ``k, v (B, Hkv, S, d)`` -> ``(B, H, T, d)``.

    ``is_causal=True`` (no mask, ``T == S``) lets SDPA pick its fastest causal kernel without
    materialising a mask. A bias (ALiBi) is merged with the boolean mask into one additive mask.
    """
    attn_mask = mask
    if bias is not None:
        attn_mask = bias if mask is None else bias.masked_fill(~mask, float("-inf"))
        attn_mask = attn_mask.to(q.dtype)
    groups = q.shape[1] // k.shape[1]
    if groups > 1:
        # CUDA's fused kernels take grouped heads only without a mask (with one, enable_gqa falls
        # back to the slow math kernel), so there the KV heads are repeated instead; the CPU
        # kernels handle both cases natively.
        if SDPA_GQA and not (attn_mask is not None and q.is_cuda):
            return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=dropout_p,
                                                  is_causal=is_causal, scale=scale, enable_gqa=True)
        # Otherwise SDPA wants as many key heads as query heads (the copy is unavoidable here).
        k, v = k.repeat_interleave(groups, dim=1), v.repeat_interleave(groups, dim=1)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=dropout_p,
                                          is_causal=is_causal, scale=scale)


def naive_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: Optional[torch.Tensor] = None,
                    bias: Optional[torch.Tensor] = None, scale: float = 1.0, mask_fill: str = "-inf",
                    dropout_p: float = 0.0) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Attention written out: returns ``(out (B, H, T, d), scores (B, H, T, S), weights (B, H, T, S))``.

    ``scores`` are scaled, biased and masked, before the softmax (float32). ``mask_fill="zero"``
    fills masked scores with 0 instead of -inf: exp(0) = 1 is not 0, so the future leaks in.
    """
    scores = _scores(q, k, scale)
    if bias is not None:
        scores = scores + bias
    if mask is not None:
        scores = scores.masked_fill(~mask, 0.0 if mask_fill == "zero" else float("-inf"))
    weights = torch.softmax(scores, dim=-1)
    dropped = F.dropout(weights, p=dropout_p) if dropout_p > 0 else weights
    return _weighted_values(dropped, v).to(q.dtype), scores, weights


def chunked_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: Optional[torch.Tensor] = None,
                      bias: Optional[torch.Tensor] = None, scale: float = 1.0, block_size: int = CHUNK_SIZE,
                      dropout_p: float = 0.0) -> torch.Tensor:
    """Exact attention by an online softmax over key blocks of ``block_size``.

    For each block: new running max ``m``, rescale what was accumulated by ``exp(m_old - m_new)``,
    add ``exp(s - m_new)`` to the normaliser ``l`` and ``exp(s - m_new) v`` to the accumulator.
    Memory is ``O(T * block_size)`` per head instead of ``O(T * S)``. Dropout on the attention
    weights is applied to ``exp(s - m)`` on its way into the accumulator only: dividing by the row
    sum ``l`` at the end then gives exactly dropout of the normalised weights.
    """
    B, H, T, d = q.shape
    S = k.shape[2]
    m = torch.full((B, H, T), float("-inf"), device=q.device)
    l = torch.zeros((B, H, T), device=q.device)
    acc = torch.zeros((B, H, T, v.shape[-1]), device=q.device)
    for start in range(0, S, block_size):
        end = min(start + block_size, S)
        s = _scores(q, k[:, :, start:end], scale)                          # (B, H, T, C) float32
        if bias is not None:
            s = s + bias[..., start:end]
        if mask is not None:
            s = s.masked_fill(~mask[..., start:end], float("-inf"))
        m_new = torch.maximum(m, s.amax(dim=-1))
        # Rows that have seen only masked keys so far keep m = -inf; use 0 there so that
        # exp(-inf - 0) = 0 instead of exp(-inf + inf) = NaN.
        m_safe = torch.where(torch.isinf(m_new), torch.zeros_like(m_new), m_new)
        correction = torch.exp(m - m_safe)
        p = torch.exp(s - m_safe[..., None])
        l = l * correction + p.sum(dim=-1)
        if dropout_p > 0:
            p_v = F.dropout(p, p=dropout_p)
        else:
            p_v = p
        acc = acc * correction[..., None] + _weighted_values(p_v, v[:, :, start:end].float())
        m = m_new
    return (acc / l[..., None]).to(q.dtype)


def elu_feature_map(x: torch.Tensor) -> torch.Tensor:
    """``phi(x) = elu(x) + 1 > 0``: a positive feature map, so phi(q).phi(k) is a valid weight."""
    return F.elu(x.float()) + 1.0


def linear_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: Optional[torch.Tensor] = None,
                     eps: float = 1e-6, dropout_p: float = 0.0) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Linear attention, parallel form: ``out_t = sum_s A_ts v_s / sum_s A_ts`` with
    ``A_ts = phi(q_t) . phi(k_s)`` where ``mask`` allows it (no softmax, no scale).

    Returns ``(out (B, H, T, d), A (B, H, T, S), weights = A / row sums)``. Same result as the
    recurrent form, which needs only a ``(d, d)`` state per head instead of all past keys.
    """
    A = _scores(elu_feature_map(q), elu_feature_map(k), 1.0)
    if mask is not None:
        A = A * mask
    weights = A / (A.sum(dim=-1, keepdim=True) + eps)
    dropped = F.dropout(weights, p=dropout_p) if dropout_p > 0 else weights
    return _weighted_values(dropped, v.float()).to(q.dtype), A, weights


def linear_attention_recurrent(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                               state: Optional[Tuple[torch.Tensor, torch.Tensor]] = None, eps: float = 1e-6
                               ) -> Tuple[torch.Tensor, Tuple[torch.Tensor, torch.Tensor]]:
    """Causal linear attention as an RNN: ``q, k, v (B, H, T, d)`` (same head count) -> ``out, state``.

    ``state = (Sum phi(k_s) v_s^T  (B, H, d, d_v), Sum phi(k_s)  (B, H, d))`` summarises every past
    position in constant memory; pass it back in to continue. Step t:
    ``state += (phi(k_t) v_t^T, phi(k_t))``, ``out_t = phi(q_t) KV / (phi(q_t) . z)``.
    """
    B, H, T, d = q.shape
    fq, fk, vf = elu_feature_map(q), elu_feature_map(k), v.float()
    if state is None:
        kv = torch.zeros(B, H, d, v.shape[-1], device=q.device)
        z = torch.zeros(B, H, d, device=q.device)
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


# ----------------------------------------------------------------------------------------- module
class Attention(nn.Module):
    """Grouped-query self-attention of one layer.

    Projections (no biases, Llama names): ``q_proj (D -> H*d)``, ``k_proj``/``v_proj (D -> Hkv*d)``,
    ``o_proj (H*d -> D)``. ``tie_qk`` drops ``k_proj`` (keys are the queries' projection),
    ``tie_kv`` drops ``v_proj`` (values are the keys' projection), ``use_wo=False`` drops ``o_proj``.
    """

    def __init__(self, config, layer_idx: int = 0):
        super().__init__()
        self.layer_idx = layer_idx
        self.n_heads, self.n_kv_heads, self.head_dim = config.n_heads, config.n_kv_heads, config.head_dim
        self.scale = config.resolved_attn_scale
        self.impl = config.attn_impl
        self.mask_fill = config.mask_fill
        self.dropout = config.dropout
        self.tie_qk, self.tie_kv = config.tie_qk, config.tie_kv
        D, H, Hkv, d = config.dim, self.n_heads, self.n_kv_heads, self.head_dim
        self.q_proj = nn.Linear(D, H * d, bias=False)
        self.k_proj = None if config.tie_qk else nn.Linear(D, Hkv * d, bias=False)
        self.v_proj = None if config.tie_kv else nn.Linear(D, Hkv * d, bias=False)
        self.o_proj = nn.Linear(H * d, D, bias=False) if config.use_wo else None
        self.q_norm = RMSNorm(d, config.norm_eps) if config.qk_norm else None
        self.k_norm = RMSNorm(d, config.norm_eps) if config.qk_norm else None

    def forward(self, x: torch.Tensor, rope: Optional[Tuple[torch.Tensor, torch.Tensor]] = None,
                mask: Optional[torch.Tensor] = None, is_causal: bool = False, bias: Optional[torch.Tensor] = None,
                kv_cache=None, head_mask: Optional[torch.Tensor] = None,
                captured: Optional[Dict[str, List[torch.Tensor]]] = None) -> torch.Tensor:
        """``x (B, T, D) -> (B, T, D)`` (or ``(B, T, H*d)`` without ``o_proj``).

        rope: ``(cos, sin)`` each ``(B, T, d)``, or None for no rotation.
        mask / is_causal / bias: from :func:`build_attention_mask`, ``is_causal`` only when
            ``mask`` is None and ``T == S``; ``bias (1, H, T, S)`` additive (ALiBi).
        kv_cache: a ``KVCache``; the new keys/values are written at its current length.
        head_mask: ``(H,)`` multipliers on each head's output before ``o_proj``.
        captured: a dict of lists; when given, the naive path runs and appends this layer's
            "scores", "weights" and "head_outputs".
        """
        B, T, _ = x.shape
        H, Hkv, d = self.n_heads, self.n_kv_heads, self.head_dim
        q = self.q_proj(x).view(B, T, H, d)
        k = q if self.tie_qk else self.k_proj(x).view(B, T, Hkv, d)
        v = k if self.tie_kv else self.v_proj(x).view(B, T, Hkv, d)
        if self.q_norm is not None:
            q, k = self.q_norm(q), self.k_norm(k)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)    # (B, heads, T, d)
        if rope is not None:
            cos, sin = rope
            q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        if kv_cache is not None:
            k, v = kv_cache.update(self.layer_idx, k, v)                    # (B, Hkv, S, d)
            if k.dtype != q.dtype:                                          # e.g. a bf16 cache, fp32 model
                k, v = k.to(q.dtype), v.to(q.dtype)

        dropout_p = self.dropout if self.training else 0.0
        impl = self.impl
        if captured is not None and impl != "linear":
            impl = "naive"
        if impl != "sdpa" and is_causal:
            # The other paths need the causal mask written out (SDPA builds it implicitly).
            mask, is_causal = build_attention_mask(None, T, k.shape[2], True, device=x.device), False
        scores = weights = None
        if impl == "sdpa":
            out = sdpa_attention(q, k, v, mask, is_causal, bias, self.scale, dropout_p)
        elif impl == "naive":
            out, scores, weights = naive_attention(q, k, v, mask, bias, self.scale, self.mask_fill, dropout_p)
        elif impl == "chunked":
            out = chunked_attention(q, k, v, mask, bias, self.scale, dropout_p=dropout_p)
        else:
            out, scores, weights = linear_attention(q, k, v, mask, dropout_p=dropout_p)

        if head_mask is not None:
            out = out * head_mask.view(1, H, 1, 1).to(out.dtype)
        if captured is not None:
            captured["scores"].append(scores)
            captured["weights"].append(weights)
            captured["head_outputs"].append(out)
        out = out.transpose(1, 2).reshape(B, T, H * d)
        return self.o_proj(out) if self.o_proj is not None else out
