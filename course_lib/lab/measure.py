"""Measurements the notebooks share: timing, memory, bits per character, gradient rows, padding waste.

Every function returns plain numbers (or small dataclasses of them) so a notebook can assert on them.

    t = time_fn(lambda: model(x).loss.backward(), repeat=5)      # median seconds, device-synchronised
    act = saved_tensor_bytes(lambda: model(x, labels=y).loss)     # bytes autograd keeps for backward
    r = bits_per_char(model, tokenizer, val_texts, seq_len=128)   # comparable across vocabularies
    w = padding_waste([5, 12])                                    # 7 pad tokens, 41% of score entries
"""
from __future__ import annotations

import contextlib
import os
import statistics
import threading
import time
import weakref
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import torch
import torch.nn.functional as F

from ..device import synchronize
from ..losses import BpcResult, bits_per_char  # noqa: F401  (re-exported: they live in the core now)

__all__ = [
    "median_time", "threads",
    "TimeResult", "time_fn", "saved_tensor_bytes", "peak_rss_delta", "cuda_peak_bytes", "peak_tensor_bytes",
    "BpcResult", "bits_per_char", "per_token_nll", "tokens_per_char",
    "nonzero_rows", "PaddingWaste", "padding_waste", "unigram_entropy_bits",
]


# ----------------------------------------------------------------------------- time

@dataclass(frozen=True)
class TimeResult:
    median: float
    min: float
    times: tuple[float, ...]

    def __float__(self) -> float:
        return self.median


def _sync(device) -> None:
    if device is not None:
        synchronize(device)


def time_fn(fn: Callable[[], object], *, repeat: int = 5, warmup: int = 1, device=None) -> TimeResult:
    """Wall time of ``fn()`` in seconds: ``warmup`` untimed calls, then ``repeat`` timed ones.

    The median is robust to a noisy shared machine; pass ``device`` to synchronise CUDA/MPS.
    """
    if repeat < 1 or warmup < 0:
        raise ValueError(f"repeat={repeat} must be >= 1 and warmup={warmup} >= 0")
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return TimeResult(statistics.median(times), min(times), tuple(times))


def median_time(fn: Callable[[], object], repeats: int = 5, warmup: int = 1, device=None) -> float:
    """Median wall-clock seconds of ``fn()`` over ``repeats`` calls, after ``warmup`` untimed calls."""
    return time_fn(fn, repeat=repeats, warmup=warmup, device=device).median


@contextlib.contextmanager
def threads(n: Optional[int]):
    """Run the block with ``torch.set_num_threads(n)`` (``None``: leave it alone), then restore.

    Timings on one thread are slower but far more repeatable on a shared or busy machine (no thread
    waits for a sibling that the OS has descheduled), and ratios measured on one thread compare like
    with like."""
    old = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


# ----------------------------------------------------------------------------- memory

def saved_tensor_bytes(fn: Callable[[], object]) -> int:
    """Bytes of the tensors autograd saves for backward while ``fn()`` runs (each storage once).

    This is the activation memory of a training step, measured exactly and identically on every
    device: parameters are not counted (they exist anyway), only what the forward pass keeps.
    """
    seen: dict[tuple, int] = {}

    def is_param(t: torch.Tensor) -> bool:
        base = t if t._base is None else t._base
        return base.is_leaf and base.requires_grad

    def pack(t: torch.Tensor):
        if is_param(t):  # weights saved for backward exist anyway: not activations
            return t
        try:
            st = t.untyped_storage()
            key = (st.data_ptr(), t.device.type)
            seen[key] = max(seen.get(key, 0), st.nbytes())
        except (RuntimeError, NotImplementedError):  # tensors without a plain storage
            seen[(id(t), "x")] = t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return sum(seen.values())


def _rss_bytes() -> Optional[int]:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def _reset_peak_rss() -> bool:
    """Reset the kernel's resident-set high-water mark (Linux >= 4.0); False where that is refused."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _peak_rss_bytes() -> Optional[int]:
    """The kernel's resident-set high-water mark (``VmHWM``) of this process, in bytes."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def peak_rss_delta(fn: Callable[[], object], interval: float = 0.0005) -> Optional[int]:
    """Peak resident memory above the starting level while ``fn()`` runs (Linux only, else None).

    Where the kernel lets us reset its high-water mark, the peak is exact (``VmHWM``); otherwise a
    thread samples the resident size every ``interval`` seconds, which can miss short spikes. The
    allocator's caching blurs both: use it for orders of magnitude, :func:`saved_tensor_bytes` for
    exact comparisons.
    """
    base = _rss_bytes()
    exact = base is not None and _reset_peak_rss()
    if base is None:
        fn()
        return None
    peak = [base]
    stop = threading.Event()

    def watch():
        while not stop.is_set():
            r = _rss_bytes()
            if r is not None and r > peak[0]:
                peak[0] = r
            time.sleep(interval)

    th = threading.Thread(target=watch, daemon=True)
    th.start()
    try:
        fn()
    finally:
        stop.set()
        th.join()
    r = _rss_bytes()
    hwm = _peak_rss_bytes() if exact else None
    return max(peak[0], r or 0, hwm or 0) - base


def cuda_peak_bytes(fn: Callable[[], object], device=None) -> int:
    """Peak CUDA memory allocated during ``fn()`` above what was allocated before."""
    if not torch.cuda.is_available():
        raise ValueError("cuda_peak_bytes needs a CUDA device")
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    fn()
    torch.cuda.synchronize(device)
    return torch.cuda.max_memory_allocated(device) - before


def peak_tensor_bytes(fn: Callable[[], object]) -> int:
    """Peak bytes of the tensors created while ``fn()`` runs and alive at the same time (any device).

    Counted op by op through a dispatch mode, from each new storage's size until the last tensor
    that holds it is gone, so it does not depend on the allocator: memory a process freed earlier
    and reuses (invisible to :func:`peak_rss_delta`) counts like fresh memory. Inputs, and views of
    them, are not counted.
    """
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_flatten

    holders: dict[int, int] = {}        # storage address -> tensors created here that hold it
    sizes: dict[int, int] = {}
    state = {"live": 0, "peak": 0}

    def release(key: int) -> None:
        holders[key] -= 1
        if holders[key] == 0:
            state["live"] -= sizes.pop(key)
            del holders[key]

    class Tracker(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            inputs = {t.untyped_storage().data_ptr() for t in tree_flatten((args, kwargs))[0]
                      if isinstance(t, torch.Tensor)}
            out = func(*args, **kwargs)
            for t in tree_flatten(out)[0]:
                if not isinstance(t, torch.Tensor):
                    continue
                key = t.untyped_storage().data_ptr()
                if key not in holders:
                    if key in inputs:       # a view of memory that existed before fn
                        continue
                    holders[key], sizes[key] = 0, t.untyped_storage().nbytes()
                    state["live"] += sizes[key]
                    state["peak"] = max(state["peak"], state["live"])
                holders[key] += 1
                weakref.finalize(t, release, key)
            return out

    with Tracker():
        fn()
    return state["peak"]


# ----------------------------------------------------------------------------- language-model quality

@torch.no_grad()
def per_token_nll(model, input_ids: torch.Tensor) -> torch.Tensor:
    """``(B, T)`` ids -> ``(B, T-1)`` NLL in nats of token ``t+1`` given tokens ``<= t``."""
    if input_ids.dim() == 1:
        input_ids = input_ids[None]
    logits = model(input_ids).logits[:, :-1].float()
    return F.cross_entropy(logits.transpose(1, 2), input_ids[:, 1:], reduction="none")


def tokens_per_char(tokenizer, texts: Sequence[str]) -> float:
    """Average number of tokens per character (lower = a longer reach per token)."""
    docs = tokenizer.encode_batch(list(texts))
    return sum(map(len, docs)) / max(sum(map(len, texts)), 1)


def unigram_entropy_bits(ids: torch.Tensor, vocab_size: Optional[int] = None) -> float:
    """Entropy (bits per token) of the empirical token distribution: the loss floor of a model that
    ignores its context."""
    counts = torch.bincount(ids.reshape(-1).long(), minlength=vocab_size or 0).double()
    p = counts[counts > 0] / counts.sum()
    return float(-(p * p.log2()).sum())


# ----------------------------------------------------------------------------- gradients

def nonzero_rows(t: Optional[torch.Tensor], atol: float = 0.0) -> int:
    """How many rows of a 2-D tensor (e.g. an embedding gradient) have any entry with ``|x| > atol``."""
    if t is None:
        return 0
    if t.dim() != 2:
        raise ValueError(f"expected a 2-D tensor, got shape {tuple(t.shape)}")
    return int((t.abs() > atol).any(dim=1).sum())


# ----------------------------------------------------------------------------- padding arithmetic

@dataclass(frozen=True)
class PaddingWaste:
    """Token slots and attention-score entries of a batch padded to a common length."""

    lengths: tuple[int, ...]
    padded_len: int
    token_slots: int
    real_tokens: int
    pad_tokens: int
    score_slots: int
    real_scores: int

    @property
    def token_waste(self) -> float:
        return self.pad_tokens / self.token_slots

    @property
    def score_waste(self) -> float:
        return 1 - self.real_scores / self.score_slots


def padding_waste(lengths: Sequence[int], pad_to: Optional[int] = None, causal: bool = False) -> PaddingWaste:
    """Waste of padding rows of ``lengths`` to ``pad_to`` (default: the longest).

    Token slots: ``B * T``; attention scores: ``B * T^2`` computed, of which a row of length ``n``
    needs ``n^2`` (``n (n + 1) / 2`` with ``causal=True``, against ``T (T + 1) / 2`` computed).
    """
    lengths = tuple(int(n) for n in lengths)
    if not lengths or min(lengths) < 0:
        raise ValueError(f"lengths={lengths} must be a non-empty list of non-negative ints")
    T = max(lengths) if pad_to is None else int(pad_to)
    if T < max(lengths):
        raise ValueError(f"pad_to={pad_to} is shorter than the longest row ({max(lengths)})")
    B = len(lengths)
    if causal:
        per_row, needed = T * (T + 1) // 2, sum(n * (n + 1) // 2 for n in lengths)
    else:
        per_row, needed = T * T, sum(n * n for n in lengths)
    return PaddingWaste(lengths, T, B * T, sum(lengths), B * T - sum(lengths), B * per_row, needed)
