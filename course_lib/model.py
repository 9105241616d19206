"""The decoder: token embedding -> ``n_layers`` blocks -> final norm -> tied (or untied) output head.

Default block (pre-norm, Llama/MiniMind)::

    x = x + attn(norm1(x))
    x = x + ffn(norm2(x))

``norm_placement="post"`` gives the original Transformer's ``x = norm(x + sublayer(x))`` (and no
final norm: the last block's output is already normalised); ``residual=False`` drops the skips.
Every other switch of ``ModelConfig`` is handled by the module that owns the concept
(``positions``, ``attention``, ``ffn``, ``norm``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import torch
from torch import nn

from .attention import Attention, AttentionInputs, build_attention_mask
from .config import ModelConfig
from .ffn import MoE, FeedForward
from .kv_cache import KVCache
from .losses import REDUCTIONS, masked_cross_entropy
from .norm import build_norm
from .positions import RotaryEmbedding, alibi_bias, alibi_slopes, sinusoidal_embedding


@dataclass
class ModelOutput:
    """What ``Transformer.forward`` returns.

    logits: ``(B, T, V)`` float32.
    loss: scalar (``(B, T)`` for ``loss_reduction="none"``) when labels are given, else None; for
        MoE models it includes ``aux_loss`` (added once; broadcast onto every position for "none"),
        so ``out.loss - out.aux_loss`` is always the cross-entropy part.
    aux_loss: MoE load-balancing loss already multiplied by ``moe_aux_loss_coef`` and summed over
        layers (None for dense models).
    kv_cache: the cache that was passed in (now longer by ``T``), or None.
    captured: with ``capture=True``, a dict of lists: "scores", "weights" ``L x (B, H, T, S)``,
        "head_outputs" ``L x (B, H, T, d)``, "hidden_states" ``(L + 1) x (B, T, D)``.
    """

    logits: torch.Tensor
    loss: Optional[torch.Tensor] = None
    aux_loss: Optional[torch.Tensor] = None
    kv_cache: Optional[KVCache] = None
    captured: Optional[Dict[str, List[torch.Tensor]]] = None


class Block(nn.Module):
    """One decoder layer: attention and feed-forward sublayers with norms and residuals."""

    def __init__(self, config: ModelConfig, layer_idx: int):
        super().__init__()
        self.pre_norm = config.norm_placement == "pre"
        self.residual = config.residual
        self.attn_norm = build_norm(config, config.dim)
        self.attn = Attention(config, layer_idx)
        self.ffn_norm = None
        self.ffn = None
        if config.ffn_type != "none":
            self.ffn_norm = build_norm(config, config.dim)
            if config.moe_experts:
                self.ffn = MoE(config.dim, config.ffn_dim, config.moe_experts, config.moe_top_k,
                               config.moe_shared_expert, config.ffn_type, config.dropout)
            else:
                self.ffn = FeedForward(config.dim, config.ffn_dim, config.ffn_type, config.dropout)
        self.drop = nn.Dropout(config.dropout) if config.dropout > 0 else nn.Identity()

    def _sublayer(self, x: torch.Tensor, norm: nn.Module, fn) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        h = norm(x) if self.pre_norm else x
        y = fn(h)
        aux = None
        if isinstance(y, tuple):                      # MoE returns (output, aux_loss)
            y, aux = y
        y = self.drop(y)
        x = x + y if self.residual else y
        if not self.pre_norm:
            x = norm(x)
        return x, aux

    def forward(self, x: torch.Tensor, inputs: Optional[AttentionInputs] = None
                ) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        """``x (B, T, D) -> (x (B, T, D), aux_loss or None)``."""
        x, _ = self._sublayer(x, self.attn_norm, lambda h: self.attn(h, inputs))
        aux = None
        if self.ffn is not None:
            x, aux = self._sublayer(x, self.ffn_norm, self.ffn)
        return x, aux


class Transformer(nn.Module):
    """A decoder-only language model built from a :class:`ModelConfig`.

    Parameter names follow Llama: ``embed_tokens``, ``layers.{i}.attn.{q,k,v,o}_proj``,
    ``layers.{i}.ffn.{gate,up,down}_proj``, ``layers.{i}.attn_norm``, ``layers.{i}.ffn_norm``,
    ``norm``, ``lm_head`` (its weight *is* ``embed_tokens.weight`` when embeddings are tied),
    plus ``pos_embed`` for learned positions.

    Input checks (``check_inputs=True``, the default) read ``input_ids.min()/max()`` on the host:
    one device sync per call. They are skipped while ``torch.compile`` traces; a training loop on a
    GPU that wants no sync at all can set ``model.check_inputs = False``.
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        config.validate()
        self.config = config
        self.check_inputs = True
        self.embed_tokens = nn.Embedding(config.vocab_size, config.dim)
        self.pos_embed = nn.Embedding(config.max_seq_len, config.dim) if config.pos == "learned" else None
        self.rope = None
        if config.pos == "rope":
            original = config.rope_original_max_seq_len or config.max_seq_len
            self.rope = RotaryEmbedding(config.head_dim, config.rope_theta, config.rope_scaling,
                                        config.rope_scaling_factor, original)
        if config.pos == "alibi":
            self.register_buffer("alibi_slopes", alibi_slopes(config.n_heads), persistent=False)
        self.drop = nn.Dropout(config.dropout) if config.dropout > 0 else nn.Identity()
        self.layers = nn.ModuleList([Block(config, i) for i in range(config.n_layers)])
        self.norm = build_norm(config, config.dim) if config.norm_placement == "pre" else nn.Identity()
        self.lm_head = nn.Linear(config.dim, config.vocab_size, bias=False)
        if config.tie_embeddings:
            self.lm_head.weight = self.embed_tokens.weight
        self.reset_parameters()

    # ------------------------------------------------------------------ init
    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Normal(0, init_std) for matrices, ones for norm gains; the projections that write into
        the residual stream (``o_proj``, ``down_proj``) get ``init_std / sqrt(2 n_layers)`` so the
        stream's variance does not grow with depth (exactly zero with ``zero_init_out``)."""
        std = self.config.init_std
        out_std = std / math.sqrt(2 * self.config.n_layers)
        for name, module in self.named_modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                is_out = name.endswith("o_proj") or name.endswith("down_proj")
                if is_out and self.config.zero_init_out:
                    nn.init.zeros_(module.weight)
                else:
                    nn.init.normal_(module.weight, mean=0.0, std=out_std if is_out else std)
                if getattr(module, "bias", None) is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.LayerNorm) or hasattr(module, "eps"):
                if getattr(module, "weight", None) is not None:
                    nn.init.ones_(module.weight)
                if getattr(module, "bias", None) is not None:
                    nn.init.zeros_(module.bias)
        if self.config.identical_head_init:
            self._make_heads_identical()

    @torch.no_grad()
    def _make_heads_identical(self) -> None:
        """Copy head 0's slices of every projection to all heads of its layer (symmetry experiments):
        identical heads get identical gradients, so only noise (dropout) could ever tell them apart."""
        d = self.config.head_dim
        for layer in self.layers:
            attn = layer.attn
            for proj, heads in ((attn.q_proj, attn.n_heads), (attn.k_proj, attn.n_kv_heads),
                                (attn.v_proj, attn.n_kv_heads)):
                if proj is not None:
                    w = proj.weight.view(heads, d, -1)
                    w.copy_(w[:1].expand_as(w))
            if attn.o_proj is not None:
                w = attn.o_proj.weight.view(-1, attn.n_heads, d)
                w.copy_(w[:, :1].expand_as(w))

    # ------------------------------------------------------------------ facts
    def num_parameters(self, exclude_embeddings: bool = False) -> int:
        """Number of distinct parameters (a tied matrix counts once).

        ``exclude_embeddings=True`` leaves out the token embedding, the output head (tied or not) and
        a learned position table: the "non-embedding" count used in scaling laws.
        """
        seen, total = set(), 0
        skip = set()
        if exclude_embeddings:
            skip = {id(self.embed_tokens.weight), id(self.lm_head.weight)}
            if self.pos_embed is not None:
                skip.add(id(self.pos_embed.weight))
        for p in self.parameters():
            if id(p) in seen or id(p) in skip:
                continue
            seen.add(id(p))
            total += p.numel()
        return total

    @property
    def device(self) -> torch.device:
        return self.embed_tokens.weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.embed_tokens.weight.dtype

    def new_kv_cache(self, batch_size: int, max_len: Optional[int] = None, dtype: Optional[torch.dtype] = None,
                     quantize: Optional[str] = None) -> KVCache:
        """An empty cache for ``batch_size`` sequences of up to ``max_len`` positions
        (default: ``config.context_length``).

        ``dtype`` defaults to the dtype keys are computed in: the autocast dtype when this is called
        inside an autocast region for the model's device, else the model's dtype. (A cache in another
        dtype works, but costs a conversion of the whole cache at every step.)
        ``quantize="int8"`` stores int8 with per-(row, head, position) absmax scales (see ``KVCache``).
        """
        c = self.config
        if dtype is None:
            dtype = self.dtype
            device_type = self.device.type
            try:
                if torch.is_autocast_enabled(device_type):
                    dtype = torch.get_autocast_dtype(device_type)
            except (TypeError, AttributeError):                    # torch < 2.4 has no per-device query
                pass
        if max_len is not None and (not isinstance(max_len, int) or max_len < 1):
            raise ValueError(f"max_len={max_len!r} must be a positive integer (or None for config.context_length)")
        return KVCache(c.n_layers, batch_size, c.n_kv_heads, c.head_dim, max_len or c.context_length,
                       dtype=dtype, device=self.device, quantize=quantize)

    def set_attn_impl(self, impl: str) -> "Transformer":
        """Switch every layer to another attention implementation, keeping the weights (all four
        compute the same function except "linear", which is a different model). Returns ``self``."""
        self.config = self.config.replace(attn_impl=impl)            # validates the combination
        for layer in self.layers:
            layer.attn.configure(self.config)
        return self

    def set_attn_normalizer(self, normalizer: str = "softmax", tau: float = 1.0,
                            generator: Optional[torch.Generator] = None) -> "Transformer":
        """Switch what turns every layer's scores into weights (``config.attn_normalizer``, on the
        "naive" path), keeping the weights; ``generator`` seeds the Gumbel noise. Returns ``self``."""
        self.config = self.config.replace(attn_normalizer=normalizer, attn_tau=tau)   # validates
        for layer in self.layers:
            layer.attn.configure(self.config, generator)
        return self

    def unembed(self, hidden: torch.Tensor) -> torch.Tensor:
        """Final norm + output head on any hidden state ``(B, T, D) -> (B, T, V)`` float32:
        the "logit lens" on ``captured["hidden_states"][i]``."""
        return self.lm_head(self.norm(hidden)).float()

    # ------------------------------------------------------------------ forward
    def forward(self, input_ids: torch.Tensor, labels: Optional[torch.Tensor] = None,
                attention_mask: Optional[torch.Tensor] = None, position_ids: Optional[torch.Tensor] = None,
                kv_cache: Optional[KVCache] = None, loss_reduction: str = "token_mean", capture: bool = False,
                head_mask: Optional[torch.Tensor] = None, *, allow_longer: bool = False) -> ModelOutput:
        """Logits (and loss) for ``input_ids (B, T)``.

        labels: ``(B, T)`` aligned with the logits (no shift here), ``-100`` = no loss.
        attention_mask: ``(B, S)`` over cached + new positions, 1 = token, 0 = (left) padding.
        position_ids: ``(B, T)``; default ``cumsum(attention_mask) - 1`` (clamped at 0) for the new
            positions, or ``cache length + arange(T)`` without a mask.
        kv_cache: from :meth:`new_kv_cache`; keys/values of the new positions are appended.
        loss_reduction: "token_mean" | "seq_mean" | "sum" | "none" (see ``losses.py``).
        capture: fill ``out.captured`` (runs the explicit attention path for this call only).
        head_mask: ``(n_layers, H)`` multipliers on every head's output before ``o_proj``.
        allow_longer: permit cache + new positions beyond ``config.context_length`` (for length
            extrapolation experiments; not possible with learned positions).
        """
        c = self.config
        if self.check_inputs and not torch.compiler.is_compiling():
            self._check(input_ids, labels, attention_mask, position_ids, kv_cache, loss_reduction, head_mask,
                        allow_longer)
        past = kv_cache.length if kv_cache is not None else 0
        B, T = input_ids.shape
        S = past + T

        if position_ids is None and c.pos in ("rope", "learned", "sinusoidal"):
            position_ids = default_position_ids(attention_mask, past, T, input_ids.device, B)
        x = self.embed_tokens(input_ids)                                      # (B, T, D)
        if c.pos == "learned":
            x = x + self.pos_embed(position_ids)
        elif c.pos == "sinusoidal":
            # Scaled to the RMS of a freshly initialised learned table (init_std per channel), so the
            # fixed signal neither drowns the 0.02-scale token embeddings nor differs in size from
            # the learned alternative it is compared with. (The 2017 paper instead multiplied the
            # token embeddings by sqrt(D).)
            x = x + (sinusoidal_embedding(position_ids, c.dim) * (c.init_std * math.sqrt(2.0))).to(x.dtype)
        x = self.drop(x)
        rope = self.rope(position_ids) if self.rope is not None else None    # (cos, sin) each (B, T, d)

        # One mask for all layers. The common training call (no padding, no cache) passes none and
        # lets SDPA use its causal kernel.
        bias = None
        if c.pos == "alibi":
            slopes = self.alibi_slopes
            if slopes.dtype != torch.float32:             # model.to(bf16) casts buffers; keep slopes exact
                slopes = alibi_slopes(c.n_heads).to(slopes.device)
            bias = alibi_bias(slopes, T, S, c.causal)                           # (1, H, T, S) float32
        is_causal = c.causal and attention_mask is None and past == 0 and bias is None
        mask = None if is_causal else build_attention_mask(attention_mask, T, S, c.causal, device=x.device)

        captured = None
        if capture:
            captured = {"scores": [], "weights": [], "head_outputs": [], "hidden_states": [x]}
        aux_total = None
        inputs = AttentionInputs(rope=rope, mask=mask, causal=is_causal, bias=bias, kv_cache=kv_cache,
                                 head_mask=head_mask, captured=captured)
        for layer in self.layers:
            x, aux = layer(x, inputs)
            if aux is not None:
                aux_total = aux if aux_total is None else aux_total + aux
            if captured is not None:
                captured["hidden_states"].append(x)
        if kv_cache is not None:
            kv_cache.advance(T)

        logits = self.lm_head(self.norm(x)).float()                           # (B, T, V)
        aux_loss = aux_total * c.moe_aux_loss_coef if aux_total is not None else None
        loss = None
        if labels is not None:
            loss = masked_cross_entropy(logits, labels, loss_reduction)
            if aux_loss is not None:
                loss = loss + aux_loss
        return ModelOutput(logits=logits, loss=loss, aux_loss=aux_loss, kv_cache=kv_cache, captured=captured)

    # ------------------------------------------------------------------ input checks
    def _check(self, input_ids, labels, attention_mask, position_ids, kv_cache, loss_reduction, head_mask,
               allow_longer) -> None:
        """Raise ``ValueError`` naming the parameter, its value and what is allowed."""
        c = self.config
        if not isinstance(input_ids, torch.Tensor):
            raise ValueError(f"input_ids must be a torch.Tensor of token ids with shape (B, T), got {type(input_ids).__name__}")
        if input_ids.dim() != 2:
            raise ValueError(f"input_ids must have shape (B, T) (2-D), got shape {tuple(input_ids.shape)}; "
                             "use ids[None] for a single sequence")
        if input_ids.dtype.is_floating_point or input_ids.dtype.is_complex or input_ids.dtype == torch.bool:
            raise ValueError(f"input_ids must be an integer tensor (torch.long), got dtype {input_ids.dtype}")
        B, T = input_ids.shape
        if input_ids.device != self.device:
            raise ValueError(f"input_ids is on {input_ids.device} but the model is on {self.device}; "
                             f"move it with input_ids.to(model.device)")
        if B == 0 or T == 0:
            raise ValueError(f"input_ids is empty (shape {tuple(input_ids.shape)}); need at least one token per row")
        lo, hi = torch.aminmax(input_ids)
        lo, hi = int(lo), int(hi)
        if lo < 0 or hi >= c.vocab_size:
            bad = lo if lo < 0 else hi
            raise ValueError(f"input_ids contains token id {bad}, outside the vocabulary range "
                             f"[0, {c.vocab_size - 1}] (vocab_size={c.vocab_size})")
        if loss_reduction not in REDUCTIONS:
            raise ValueError(f"loss_reduction={loss_reduction!r} must be one of {REDUCTIONS}")
        past = 0
        if kv_cache is not None:
            if not isinstance(kv_cache, KVCache):
                raise ValueError(f"kv_cache must be a KVCache from model.new_kv_cache(), got {type(kv_cache).__name__}")
            if not c.causal:
                raise ValueError("kv_cache needs causal=True: without the causal mask earlier positions attend to "
                                 "later ones, so cached keys/values go stale; recompute the full sequence instead")
            if (kv_cache.n_layers, kv_cache.n_kv_heads, kv_cache.head_dim) != (c.n_layers, c.n_kv_heads, c.head_dim):
                raise ValueError(f"kv_cache has (layers, kv_heads, head_dim)={(kv_cache.n_layers, kv_cache.n_kv_heads, kv_cache.head_dim)} "
                                 f"but the model needs {(c.n_layers, c.n_kv_heads, c.head_dim)}; use model.new_kv_cache()")
            if kv_cache.batch_size != B:
                raise ValueError(f"kv_cache was made for batch_size={kv_cache.batch_size} but input_ids has batch {B}")
            past = kv_cache.length
            if past + T > kv_cache.max_len:
                raise ValueError(f"kv_cache holds {past} positions and input_ids adds {T}: {past + T} > "
                                 f"kv_cache max_len={kv_cache.max_len}; create the cache with a larger max_len")
        S = past + T
        limit = c.context_length
        if S > limit:
            where = f"input_ids length {T}" + (f" + {past} cached positions" if past else "")
            if c.pos == "learned":
                raise ValueError(f"{where} = {S} exceeds max_seq_len={c.max_seq_len}, the size of the learned "
                                 f"position table; truncate the input to at most {c.max_seq_len} tokens")
            if not allow_longer:
                raise ValueError(f"{where} = {S} exceeds the context length {limit} (max_seq_len={c.max_seq_len}"
                                 f"{', with RoPE scaling' if c.rope_scaling != 'none' else ''}); truncate the input, "
                                 "use a config with a larger max_seq_len, or pass allow_longer=True to "
                                 f"extrapolate (pos={c.pos!r})")
        if attention_mask is not None:
            if not isinstance(attention_mask, torch.Tensor) or tuple(attention_mask.shape) != (B, S):
                shape = tuple(attention_mask.shape) if isinstance(attention_mask, torch.Tensor) else type(attention_mask).__name__
                raise ValueError(f"attention_mask must have shape (B, cached + new) = {(B, S)}, got {shape}")
            if attention_mask.dtype.is_complex:
                raise ValueError(f"attention_mask must hold 0/1 (bool or integer), got dtype {attention_mask.dtype}")
            if attention_mask.device != input_ids.device:
                raise ValueError(f"attention_mask is on {attention_mask.device} but input_ids on {input_ids.device}")
        if position_ids is not None:
            if not isinstance(position_ids, torch.Tensor) or position_ids.dim() != 2 or position_ids.shape[1] != T \
                    or position_ids.shape[0] not in (1, B):
                shape = tuple(position_ids.shape) if isinstance(position_ids, torch.Tensor) else type(position_ids).__name__
                raise ValueError(f"position_ids must have shape (B, T) = {(B, T)} (or (1, T)), got {shape}")
            if c.pos == "learned":
                plo, phi = torch.aminmax(position_ids)
                if int(plo) < 0 or int(phi) >= c.max_seq_len:
                    raise ValueError(f"position_ids must lie in [0, {c.max_seq_len - 1}] for learned positions, "
                                     f"got values in [{int(plo)}, {int(phi)}]")
        if labels is not None:
            if not isinstance(labels, torch.Tensor) or tuple(labels.shape) != (B, T):
                shape = tuple(labels.shape) if isinstance(labels, torch.Tensor) else type(labels).__name__
                raise ValueError(f"labels must have the shape of input_ids {(B, T)} (aligned targets, -100 = "
                                 f"ignore), got {shape}")
            if labels.dtype.is_floating_point or labels.dtype == torch.bool:
                raise ValueError(f"labels must be an integer tensor (torch.long), got dtype {labels.dtype}")
            llo, lhi = torch.aminmax(labels.masked_fill(labels == -100, 0))
            if int(llo) < 0 or int(lhi) >= c.vocab_size:
                bad = int(llo) if int(llo) < 0 else int(lhi)
                raise ValueError(f"labels contains {bad}; targets must lie in [0, {c.vocab_size - 1}] "
                                 f"(vocab_size={c.vocab_size}) or be -100 (no loss)")
        if head_mask is not None:
            if not isinstance(head_mask, torch.Tensor) or tuple(head_mask.shape) != (c.n_layers, c.n_heads):
                shape = tuple(head_mask.shape) if isinstance(head_mask, torch.Tensor) else type(head_mask).__name__
                raise ValueError(f"head_mask must have shape (n_layers, n_heads) = {(c.n_layers, c.n_heads)}, got {shape}")


def default_position_ids(attention_mask: Optional[torch.Tensor], past: int, q_len: int, device, batch_size: int = 1
                         ) -> torch.Tensor:
    """Positions of the ``q_len`` new tokens, ``(B, T)`` (or ``(1, T)`` without a mask).

    With a mask ``(B, S)``: the number of real tokens before each position, so a left-padded row
    starts at 0 exactly where its text starts (pads get position 0 too; they are masked anyway).
    Without a mask: ``past + arange(T)``.
    """
    if attention_mask is None:
        return torch.arange(past, past + q_len, device=device)[None, :]
    pos = attention_mask.long().cumsum(dim=-1) - 1
    return pos[:, -q_len:].clamp(min=0)
