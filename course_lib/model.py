"""The decoder: token embedding -> ``n_layers`` blocks -> final norm -> tied (or untied) output head.

Default block (pre-norm, Llama/MiniMind)::

    x = x + attn(attn_norm(x))
    x = x + ffn(ffn_norm(x))

``norm_placement="post"`` gives the original Transformer's ``x = norm(x + sublayer(x))`` (and no
final norm: the last block's output is already normalised); ``residual=False`` drops the skips.
Both are visible branches of :meth:`Block.forward`. Every other switch of ``ModelConfig`` is
handled by the module that owns the concept: ``positions.build_positions`` (learned / sinusoidal /
RoPE / ALiBi / none), ``attention`` (the attention-function registry), ``ffn.build_ffn``, ``norm``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, List, Optional

import torch
from torch import nn

from .attention import Attention, AttentionInputs, build_attention_mask
from .config import ModelConfig
from .ffn import build_ffn
from .kv_cache import KVCache
from .losses import IGNORE_INDEX, REDUCTIONS, masked_cross_entropy, warn_if_unshifted
from .norm import build_norm
from .positions import build_positions


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
    """One decoder layer: attention and feed-forward sublayers with norms and residuals.

    ``aux_loss``: the MoE load-balancing loss of the last forward call (None for a dense FFN).
    """

    def __init__(self, config: ModelConfig, layer_idx: int):
        super().__init__()
        self.norm_placement, self.residual = config.norm_placement, config.residual
        self.attn_norm = build_norm(config, config.dim)
        self.attn = Attention(config, layer_idx)
        self.ffn_norm = build_norm(config, config.dim) if config.ffn_type != "none" else None
        self.ffn = build_ffn(config)                                         # None for ffn_type="none"
        self.drop = nn.Dropout(config.dropout) if config.dropout > 0 else nn.Identity()

    @property
    def pre_norm(self) -> bool:
        return self.norm_placement == "pre"

    @property
    def aux_loss(self) -> Optional[torch.Tensor]:
        return getattr(self.ffn, "aux_loss", None)

    def forward(self, x: torch.Tensor, inputs: Optional[AttentionInputs] = None) -> torch.Tensor:
        """``x (B, T, D) -> (B, T, D)``; ``inputs`` carries positions, mask and cache for the attention."""
        if self.norm_placement == "post":                # Vaswani et al. 2017: normalise after the sum
            x = self.attn_norm(x + self.drop(self.attn(x, inputs)))
            if self.ffn is not None:
                x = self.ffn_norm(x + self.drop(self.ffn(x)))
        elif not self.residual:                          # no skip path: each sublayer replaces the stream
            x = self.drop(self.attn(self.attn_norm(x), inputs))
            if self.ffn is not None:
                x = self.drop(self.ffn(self.ffn_norm(x)))
        else:                                            # pre-norm (Llama, MiniMind): the diagram
            x = x + self.drop(self.attn(self.attn_norm(x), inputs))
            if self.ffn is not None:
                x = x + self.drop(self.ffn(self.ffn_norm(x)))
        return x


class Transformer(nn.Module):
    """A decoder-only language model built from a :class:`ModelConfig`.

    Parameter names follow Llama: ``embed_tokens``, ``layers.{i}.attn.{q,k,v,o}_proj``,
    ``layers.{i}.ffn.{gate,up,down}_proj``, ``layers.{i}.attn_norm``, ``layers.{i}.ffn_norm``,
    ``norm``, ``lm_head`` (its weight *is* ``embed_tokens.weight`` when embeddings are tied),
    plus ``pos_embed``, the position scheme (``positions.build_positions``; for learned positions
    ``pos_embed.weight`` is the table).

    Input checks (``check_inputs=True``, the default) read ``input_ids.min()/max()`` on the host:
    one device sync per call. They are skipped while ``torch.compile`` traces; a training loop on a
    GPU that wants no sync at all can set ``model.check_inputs = False``.
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        config.validate()
        from .device import memory_bytes
        table = 4 * config.vocab_size * config.dim * (1 if config.tie_embeddings else 2)  # float32 bytes
        if table > (memory_bytes("cpu") or float("inf")):
            raise ValueError(f"vocab_size={config.vocab_size} x dim={config.dim} needs {table / 2**30:.1f} GiB for the "
                             f"embedding tables alone, more than this machine's memory; use a smaller vocab_size")
        self.config = config
        self.check_inputs = True
        # With pos_concat_dim = k > 0 the position vector fills the last k channels instead of being added.
        self.embed_tokens = nn.Embedding(config.vocab_size, config.dim - config.pos_concat_dim)
        self.pos_embed = build_positions(config)            # learned table (.weight), sinusoidal, RoPE, ALiBi, none
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
            if isinstance(self.pos_embed, nn.Embedding):                   # a learned position table
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
                head_mask: Optional[torch.Tensor] = None, *, allow_longer: bool = False,
                shift_labels: bool = False) -> ModelOutput:
        """Logits (and loss) for ``input_ids (B, T)``.

        labels: ``(B, T)`` aligned with the logits (no shift here), ``-100`` = no loss.
        shift_labels: take ``labels`` the Hugging Face way, unshifted (``labels=input_ids``): the
            target of position t becomes ``labels[:, t + 1]`` and the last position gets none.
            Passing ``labels=input_ids`` without it warns (a loss of predicting the current token).
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
        if shift_labels and labels is not None:
            labels = torch.cat([labels[:, 1:], torch.full_like(labels[:, :1], IGNORE_INDEX)], dim=1)
        elif self.check_inputs and labels is not None and not torch.compiler.is_compiling():
            warn_if_unshifted(input_ids, labels)
        if self.check_inputs and not torch.compiler.is_compiling():
            self._check(input_ids, labels, attention_mask, position_ids, kv_cache, loss_reduction, head_mask,
                        allow_longer)
        past = kv_cache.length if kv_cache is not None else 0
        B, T = input_ids.shape
        S = past + T

        if position_ids is None:
            position_ids = default_position_ids(attention_mask, past, T, input_ids.device, B)
        x = self.drop(self.pos_embed.embed(self.embed_tokens(input_ids), position_ids))        # (B, T, D)

        # One mask for all layers. The common training call (no padding, no cache, no bias) passes
        # none and lets SDPA use its causal kernel.
        bias = self.pos_embed.attention_bias(T, S)                             # ALiBi (1, H, T, S) or None
        is_causal = c.causal and attention_mask is None and past == 0 and bias is None
        mask = None if is_causal else build_attention_mask(attention_mask, T, S, c.causal, device=x.device)
        captured = {"scores": [], "weights": [], "head_outputs": [], "hidden_states": [x]} if capture else None
        inputs = AttentionInputs(rope=self.pos_embed.rotary(position_ids), mask=mask, causal=is_causal, bias=bias,
                                 kv_cache=kv_cache, head_mask=head_mask, captured=captured)
        for layer in self.layers:
            x = layer(x, inputs)
            if captured is not None:
                captured["hidden_states"].append(x)
        if kv_cache is not None:
            kv_cache.advance(T)

        logits = self.lm_head(self.norm(x)).float()                           # (B, T, V)
        aux_losses = [layer.aux_loss for layer in self.layers if layer.aux_loss is not None]
        aux_loss = sum(aux_losses) * c.moe_aux_loss_coef if aux_losses else None
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
            plo, phi = (int(v) for v in torch.aminmax(position_ids))
            top = c.max_seq_len if c.pos == "learned" else (None if allow_longer else limit)
            if plo < 0 or (top is not None and phi >= top):
                raise ValueError(f"position_ids must lie in [0, {'inf' if top is None else top - 1}] "
                                 f"({'the learned position table' if c.pos == 'learned' else 'the context length'}), "
                                 f"got values in [{plo}, {phi}]"
                                 f"{'' if c.pos == 'learned' or plo < 0 else '; pass allow_longer=True to extrapolate'}")
        if labels is not None:
            if not isinstance(labels, torch.Tensor) or tuple(labels.shape) != (B, T):
                shape = tuple(labels.shape) if isinstance(labels, torch.Tensor) else type(labels).__name__
                raise ValueError(f"labels must have the shape of input_ids {(B, T)} (aligned targets, -100 = "
                                 f"ignore), got {shape}")
            if labels.dtype.is_floating_point or labels.dtype == torch.bool:
                raise ValueError(f"labels must be an integer tensor (torch.long), got dtype {labels.dtype}")
            llo, lhi = torch.aminmax(labels.masked_fill(labels == IGNORE_INDEX, 0))
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
