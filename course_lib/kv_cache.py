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
