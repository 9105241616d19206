"""The KV cache: keys and values of past positions, kept so each new token costs one position.

Storage is preallocated once per layer as ``(B, Hkv, max_len, d)``: decoding writes into a slice
instead of concatenating (which would copy the whole cache every step). With grouped-query
attention only the ``Hkv`` key/value heads are stored, which is the point of GQA: the cache shrinks
by ``n_heads / n_kv_heads``.

Usage (what ``course_lib.sample`` does)::

    cache = model.new_kv_cache(batch_size, max_len)
    out = model(prompt, kv_cache=cache)              # prefill: cache.length == T
    out = model(next_token[:, None], kv_cache=cache) # decode: cache.length == T + 1
"""
from __future__ import annotations

from typing import List, Tuple

import torch


class KVCache:
    """Per-layer key/value buffers ``(B, Hkv, max_len, d)`` and the number of filled positions.

    Attributes
        keys, values: lists (one entry per layer) of ``(B, Hkv, max_len, d)`` tensors.
        length: filled positions (the same for every layer and every row of the batch; padded rows
            are told apart by the attention mask, not by the cache).
    """

    def __init__(self, n_layers: int, batch_size: int, n_kv_heads: int, head_dim: int, max_len: int,
                 dtype: torch.dtype = torch.float32, device="cpu"):
        for name, value in (("n_layers", n_layers), ("batch_size", batch_size), ("n_kv_heads", n_kv_heads),
                            ("head_dim", head_dim), ("max_len", max_len)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}={value!r} must be a positive integer")
        shape = (batch_size, n_kv_heads, max_len, head_dim)
        self.keys: List[torch.Tensor] = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(n_layers)]
        self.values: List[torch.Tensor] = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(n_layers)]
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
        return self.keys[0].dtype

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
        self.keys[layer][:, :, start:end] = k
        self.values[layer][:, :, start:end] = v
        return self.keys[layer][:, :, :end], self.values[layer][:, :, :end]

    def advance(self, n: int) -> None:
        """Mark ``n`` more positions as filled (called once per forward, after all layers)."""
        self.length += n

    def reset(self) -> None:
        """Forget everything (the buffers are kept and overwritten by the next prefill)."""
        self.length = 0

    def nbytes(self, filled_only: bool = True) -> int:
        """Bytes of keys plus values, measured from the tensors.

        ``filled_only=True`` (default): the filled part only, which equals
        ``2 * n_layers * B * n_kv_heads * head_dim * length * element_size``.
        ``filled_only=False``: everything allocated (``max_len`` positions).
        """
        total = 0
        for k, v in zip(self.keys, self.values):
            if filled_only:
                k, v = k[:, :, : self.length], v[:, :, : self.length]
            total += k.numel() * k.element_size() + v.numel() * v.element_size()
        return total

    def __repr__(self) -> str:
        return (f"KVCache(layers={self.n_layers}, batch={self.batch_size}, kv_heads={self.n_kv_heads}, "
                f"head_dim={self.head_dim}, length={self.length}/{self.max_len}, dtype={self.dtype}, "
                f"filled={self.nbytes() / 2**20:.2f} MiB)")
