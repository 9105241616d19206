"""The KV cache: keys and values of past positions, kept so each new token costs one position.

Storage is preallocated once per layer as ``(B, Hkv, max_len, d)``: decoding writes into a slice
instead of concatenating (which would copy the whole cache every step). With grouped-query
attention only the ``Hkv`` key/value heads are stored, which is the point of GQA: the cache shrinks
by ``n_heads / n_kv_heads``.

``quantize="int8"`` stores keys and values as int8 with one absmax scale per (row, head, position):
``x ~ round(x / s) * s`` with ``s = max|x| / 127`` over the head dimension. Attention then reads the
dequantized values, so the loss of a forward through such a cache shows what the quantisation costs.

Usage (what ``course_lib.sample`` does)::

    cache = model.new_kv_cache(batch_size, max_len)
    out = model(prompt, kv_cache=cache)              # prefill: cache.length == T
    out = model(next_token[:, None], kv_cache=cache) # decode: cache.length == T + 1
"""
from __future__ import annotations

from typing import List, Optional, Tuple

import torch


class KVCache:
    """Per-layer key/value buffers ``(B, Hkv, max_len, d)`` and the number of filled positions.

    Attributes
        keys, values: lists (one entry per layer) of ``(B, Hkv, max_len, d)`` tensors (int8 when
            quantized, with ``key_scales``/``value_scales`` ``(B, Hkv, max_len, 1)`` beside them).
        length: filled positions (the same for every layer and every row of the batch; padded rows
            are told apart by the attention mask, not by the cache).
        dtype: the dtype keys and values are returned in (the storage dtype unless quantized).
    """

    def __init__(self, n_layers: int, batch_size: int, n_kv_heads: int, head_dim: int, max_len: int,
                 dtype: torch.dtype = torch.float32, device="cpu", quantize: Optional[str] = None):
        for name, value in (("n_layers", n_layers), ("batch_size", batch_size), ("n_kv_heads", n_kv_heads),
                            ("head_dim", head_dim), ("max_len", max_len)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}={value!r} must be a positive integer")
        if quantize not in (None, "int8"):
            raise ValueError(f"quantize={quantize!r} must be None or 'int8'")
        self.quantize = quantize
        self._dtype = dtype
        shape = (batch_size, n_kv_heads, max_len, head_dim)
        store = torch.int8 if quantize else dtype
        self.keys: List[torch.Tensor] = [torch.zeros(shape, dtype=store, device=device) for _ in range(n_layers)]
        self.values: List[torch.Tensor] = [torch.zeros(shape, dtype=store, device=device) for _ in range(n_layers)]
        self.key_scales: List[torch.Tensor] = []
        self.value_scales: List[torch.Tensor] = []
        if quantize:
            scale_shape = (batch_size, n_kv_heads, max_len, 1)
            self.key_scales = [torch.zeros(scale_shape, dtype=torch.float32, device=device) for _ in range(n_layers)]
            self.value_scales = [torch.zeros(scale_shape, dtype=torch.float32, device=device) for _ in range(n_layers)]
        self.length = 0

    # ------------------------------------------------------------------ shape facts
    @property
    def n_layers(self) -> int:
        return len(self.keys)

    @property
    def batch_size(self) -> int:
        return self.keys[0].shape[0]

    @property
    def n_kv_heads(self) -> int:
        return self.keys[0].shape[1]

    @property
    def max_len(self) -> int:
        return self.keys[0].shape[2]

    @property
    def head_dim(self) -> int:
        return self.keys[0].shape[3]

    @property
    def dtype(self) -> torch.dtype:
        return self._dtype

    @property
    def device(self) -> torch.device:
        return self.keys[0].device

    # ------------------------------------------------------------------ use
    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Write the new ``k, v`` ``(B, Hkv, T, d)`` of ``layer`` after the filled part.

        Returns views ``(B, Hkv, length + T, d)`` of everything stored for that layer. ``length``
        itself moves on in :meth:`advance`, once every layer has written (the model calls it).
        """
        start, end = self.length, self.length + k.shape[2]
        if end > self.max_len:
            raise ValueError(f"kv_cache is full: length {self.length} + {k.shape[2]} new positions > "
                             f"max_len={self.max_len}; create it with a larger max_len")
        if self.quantize:
            return (self._write_int8(self.keys[layer], self.key_scales[layer], k, start, end),
                    self._write_int8(self.values[layer], self.value_scales[layer], v, start, end))
        self.keys[layer][:, :, start:end] = k
        self.values[layer][:, :, start:end] = v
        return self.keys[layer][:, :, :end], self.values[layer][:, :, :end]

    def _write_int8(self, store: torch.Tensor, scales: torch.Tensor, x: torch.Tensor, start: int, end: int
                    ) -> torch.Tensor:
        """Absmax-quantize ``x (B, Hkv, T, d)`` into ``store``; return everything dequantized."""
        xf = x.detach().float()
        scale = xf.abs().amax(dim=-1, keepdim=True).clamp(min=1e-8) / 127.0   # (B, Hkv, T, 1)
        store[:, :, start:end] = torch.round(xf / scale).clamp(-127, 127).to(torch.int8)
        scales[:, :, start:end] = scale
        return (store[:, :, :end].float() * scales[:, :, :end]).to(self._dtype)

    def advance(self, n: int) -> None:
        """Mark ``n`` more positions as filled (called once per forward, after all layers)."""
        self.length += n

    def reset(self) -> None:
        """Forget everything (the buffers are kept and overwritten by the next prefill)."""
        self.length = 0

    def reorder(self, index: torch.Tensor) -> None:
        """Row ``i`` becomes a copy of row ``index[i]`` (beam search: survivors take their parent's past)."""
        n = self.length
        for buffers in (self.keys, self.values, self.key_scales, self.value_scales):
            for buf in buffers:
                buf[:, :, :n] = buf[:, :, :n].index_select(0, index.to(buf.device))

    def nbytes(self, filled_only: bool = True) -> int:
        """Bytes of keys plus values, measured from the tensors.

        ``filled_only=True`` (default): the filled part only, which equals
        ``2 * n_layers * B * n_kv_heads * head_dim * length * element_size``
        (int8: plus 4 bytes of scale per layer, row, head and position, for keys and for values).
        ``filled_only=False``: everything allocated (``max_len`` positions).
        """
        total = 0
        for t in [*self.keys, *self.values, *self.key_scales, *self.value_scales]:
            if filled_only:
                t = t[:, :, : self.length]
            total += t.numel() * t.element_size()
        return total

    def __repr__(self) -> str:
        return (f"KVCache(layers={self.n_layers}, batch={self.batch_size}, kv_heads={self.n_kv_heads}, "
                f"head_dim={self.head_dim}, length={self.length}/{self.max_len}, dtype={self.dtype}, "
                f"{'quantize=int8, ' if self.quantize else ''}"
                f"filled={self.nbytes() / 2**20:.2f} MiB)")


class StaticKVCache(KVCache):
    """A cache whose tensors never change shape or address: what a compiled decode step needs.

    The eager cache slices ``[:, :, :length]`` and so hands attention a longer key tensor at every
    step; under ``torch.compile`` that means a new graph per length (and no CUDA graph replay).
    Here the buffers hold ``max_len + 1`` slots and, in *static mode*, every step attends over all
    of them: the new key/value is written at the position ``pos`` (a 0-d long tensor, advanced in
    place) and also into the last slot, and the caller masks keys ``< pos`` as real. The model's own
    mask always lets a query see the last key slot ("self"), so that slot holds the current token;
    the set of keys seen equals the eager path's, only their order differs (the gpt-fast approach).

    Outside static mode (the prefill) it behaves exactly like :class:`KVCache`.
    """

    def __init__(self, n_layers: int, batch_size: int, n_kv_heads: int, head_dim: int, max_len: int,
                 dtype: torch.dtype = torch.float32, device="cpu"):
        super().__init__(n_layers, batch_size, n_kv_heads, head_dim, max_len + 1, dtype=dtype, device=device)
        self.pos = torch.zeros((), dtype=torch.long, device=device)
        self.static = False

    def start_static(self) -> None:
        """Enter static mode after the prefill: ``pos`` = filled positions, ``length`` fixed so that
        the model sees ``length + 1`` = every slot."""
        self.pos.fill_(self.length)
        self.length = self.max_len - 1
        self.static = True

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        if not self.static:
            return super().update(layer, k, v)
        index = self.pos.view(1)
        self.keys[layer].index_copy_(2, index, k)                  # k (B, Hkv, 1, d) at position pos
        self.values[layer].index_copy_(2, index, v)
        self.keys[layer][:, :, -1:] = k                             # the always-visible "self" slot
        self.values[layer][:, :, -1:] = v
        return self.keys[layer], self.values[layer]

    def advance(self, n: int) -> None:
        if not self.static:                                        # static mode: the step moves pos
            super().advance(n)

    def reset(self) -> None:
        super().reset()
        self.pos.zero_()
        self.static = False


class StaticDecoder:
    """Greedy decoding with a fixed-shape step over a :class:`StaticKVCache`, optionally compiled.

    ``compile=True`` wraps the one-token step in ``torch.compile(mode=mode)``; on CUDA the default
    ``"reduce-overhead"`` replays it as a CUDA graph (no Python or launch overhead per token);
    ``backend`` other than inductor (e.g. ``"eager"``) traces without code generation. The
    prompt is prefilled eagerly. The tokens equal ``sample.generate(temperature=0)``'s and the logits
    agree within float rounding (the keys are summed in another order). Usage::

        dec = StaticDecoder(model, batch_size=1, max_len=512, compile=True)
        ids, logits = dec.generate(prompt, 256)          # (B, T + 256), (B, 256, V) float32
    """

    def __init__(self, model, batch_size: int, max_len: int, compile: bool = False,
                 mode: Optional[str] = "reduce-overhead", backend: str = "inductor"):
        c = model.config
        if max_len > c.context_length:
            raise ValueError(f"max_len={max_len} exceeds the model's context_length={c.context_length}; "
                             "use a smaller max_len")
        self.model, self.max_len = model, max_len
        self.cache = StaticKVCache(c.n_layers, batch_size, c.n_kv_heads, c.head_dim, max_len,
                                   dtype=model.dtype, device=model.device)
        self.slots = torch.arange(max_len + 1, device=model.device)
        if compile:
            for t in [*self.cache.keys, *self.cache.values, self.cache.pos]:
                torch._dynamo.mark_static_address(t)              # same address every step: graph-safe
            self._step = (torch.compile(self._eager_step, mode=mode) if backend == "inductor"
                          else torch.compile(self._eager_step, backend=backend))     # e.g. "eager" to test tracing
        else:
            self._step = self._eager_step

    def _eager_step(self, token: torch.Tensor) -> torch.Tensor:
        """``token (B, 1)`` at position ``cache.pos`` -> logits ``(B, V)``; moves ``pos`` on by one."""
        cache = self.cache
        B = token.shape[0]
        real = (self.slots < cache.pos).unsqueeze(0).expand(B, -1)          # (B, max_len + 1)
        out = self.model(token, attention_mask=real, position_ids=cache.pos.view(1, 1).expand(B, 1),
                         kv_cache=cache)
        cache.pos.add_(1)
        return out.logits[:, -1]

    def generate(self, input_ids: torch.Tensor, max_new_tokens: int) -> Tuple[torch.Tensor, torch.Tensor]:
        """Greedy continuation of ``input_ids (B, T)`` (no padding): ``(ids (B, T + n), logits (B, n, V))``."""
        B, T = input_ids.shape
        if B != self.cache.batch_size or T + max_new_tokens > self.max_len:
            raise ValueError(f"input_ids {tuple(input_ids.shape)} + max_new_tokens={max_new_tokens} must fit "
                             f"batch_size={self.cache.batch_size}, max_len={self.max_len}; make a new StaticDecoder")
        model, was_training, had_checks = self.model, self.model.training, self.model.check_inputs
        model.eval()
        model.check_inputs = False
        out_ids = torch.empty(B, T + max_new_tokens, dtype=torch.long, device=input_ids.device)
        out_ids[:, :T] = input_ids
        logits = []
        try:
            with torch.inference_mode():
                self.cache.reset()
                step_logits = model(input_ids, kv_cache=self.cache).logits[:, -1]       # eager prefill
                self.cache.start_static()
                for i in range(max_new_tokens):
                    logits.append(step_logits.clone())
                    token = step_logits.argmax(-1, keepdim=True)                       # (B, 1)
                    out_ids[:, T + i] = token[:, 0]
                    if i + 1 < max_new_tokens:
                        step_logits = self._step(token)
        finally:
            model.train(was_training)
            model.check_inputs = had_checks
        return out_ids, torch.stack(logits, 1)
