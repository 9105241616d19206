"""Decode cost measurements: KV-cache memory, prefill vs decode timing, batch sweeps, cached-vs-recomputed
logits and per-position loss (for length extrapolation).

Memory
    :func:`kv_cache_bytes` is the formula ``2 (K and V) x layers x kv_heads x head_dim x tokens x batch x
    bytes per element``; :data:`MODEL_CARDS` holds the published shapes of real models, with the paper
    each number comes from, so a notebook can compute their caches instead of quoting them.
Time
    Every timing is the median of repeats (``time.perf_counter``), after a warm-up call. Timings on a
    shared machine are noisy: compare ratios measured in the same process, never absolute numbers.
"""
from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Union

import torch

from ..data import left_pad  # noqa: F401  (re-exported: the one left-padding helper lives in the core)
from ..device import DTYPE_NAMES
from .measure import median_time, threads

__all__ = [
    "ModelCard", "MODEL_CARDS", "bytes_per_element", "kv_cache_bytes", "kv_bytes_per_token",
    "median_time", "prefill_time", "decode_step_time", "prefill_vs_decode", "throughput_vs_batch",
    "generation_time", "cached_decode_logits", "recompute_logits", "left_pad", "per_position_loss",
    "fill_cache", "generation_speedup", "threads",
]


# ----------------------------------------------------------------------------------------- model cards
@dataclass(frozen=True)
class ModelCard:
    """The shapes that decide a model's KV cache, and where they are published."""

    name: str
    n_layers: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    context: int
    citation: str

    @property
    def attention(self) -> str:
        if self.n_kv_heads == self.n_heads:
            return "MHA"
        return "MQA" if self.n_kv_heads == 1 else "GQA"


MODEL_CARDS: Dict[str, ModelCard] = {c.name: c for c in (
    ModelCard("LLaMA-7B", 32, 32, 32, 128, 2048,
              "Touvron et al. 2023, LLaMA: Open and Efficient Foundation Language Models, Table 2 "
              "(dim 4096, 32 heads, 32 layers; multi-head attention)"),
    ModelCard("Llama-2-7B", 32, 32, 32, 128, 4096,
              "Touvron et al. 2023, Llama 2: Open Foundation and Fine-Tuned Chat Models, sec. 2.2 "
              "(GQA only in the 34B and 70B models)"),
    ModelCard("Llama-2-70B", 80, 64, 8, 128, 4096,
              "Touvron et al. 2023, Llama 2, sec. 2.2 and A.2.1 (grouped-query attention, 8 KV heads)"),
    ModelCard("Llama-3-8B", 32, 32, 8, 128, 8192,
              "Grattafiori et al. 2024, The Llama 3 Herd of Models, Table 3 (8 KV heads)"),
    ModelCard("Mistral-7B", 32, 32, 8, 128, 8192,
              "Jiang et al. 2023, Mistral 7B, Table 1 (n_kv_heads 8, head_dim 128)"),
    ModelCard("GPT-3-175B", 96, 96, 96, 128, 2048,
              "Brown et al. 2020, Language Models are Few-Shot Learners, Table 2.1"),
    ModelCard("MiniMind-26M", 8, 8, 2, 64, 512,
              "course preset ModelConfig.minimind_26m() (hidden 512, 8 heads, 2 KV heads)"),
)}


# ----------------------------------------------------------------------------------------- memory
_DTYPE_BYTES = {**{name: dt.itemsize for name, dt in DTYPE_NAMES.items()}, "int8": 1, "fp8": 1, "int4": 0.5}


def bytes_per_element(dtype: Union[torch.dtype, str, int, float]) -> float:
    """2 for ``torch.float16``/``"fp16"``/``"bf16"``, 4 for fp32, 1 for int8, 0.5 for int4; a number is
    taken as bytes per element."""
    if isinstance(dtype, torch.dtype):
        return torch.empty((), dtype=dtype).element_size()
    if isinstance(dtype, str):
        key = dtype.lower().replace("torch.", "")
        if key not in _DTYPE_BYTES:
            raise ValueError(f"dtype={dtype!r} must be a torch.dtype, a number of bytes or one of {sorted(_DTYPE_BYTES)}")
        return _DTYPE_BYTES[key]
    if isinstance(dtype, (int, float)) and not isinstance(dtype, bool) and dtype > 0:
        return dtype
    raise ValueError(f"dtype={dtype!r} must be a torch.dtype, a positive number of bytes or a name like 'fp16'")


def _shape_of(config_or_numbers) -> tuple:
    """``(n_layers, n_kv_heads, head_dim)`` from a ModelConfig, a Transformer, a ModelCard, a model-card
    name, a KVCache, a dict or a 3-tuple."""
    c = config_or_numbers
    if isinstance(c, str):
        if c not in MODEL_CARDS:
            raise ValueError(f"unknown model card {c!r}; known: {sorted(MODEL_CARDS)}")
        c = MODEL_CARDS[c]
    if hasattr(c, "config") and hasattr(c.config, "n_kv_heads"):            # a Transformer
        c = c.config
    if isinstance(c, dict):
        return int(c["n_layers"]), int(c["n_kv_heads"]), int(c["head_dim"])
    if isinstance(c, (tuple, list)):
        if len(c) != 3:
            raise ValueError(f"numbers={c!r} must be (n_layers, n_kv_heads, head_dim)")
        return tuple(int(x) for x in c)
    if all(hasattr(c, a) for a in ("n_layers", "n_kv_heads", "head_dim")):
        return int(c.n_layers), int(c.n_kv_heads), int(c.head_dim)
    raise ValueError(f"config_or_numbers={config_or_numbers!r}: need a ModelConfig, Transformer, ModelCard, "
                     "model-card name, dict or (n_layers, n_kv_heads, head_dim)")


def kv_cache_bytes(config_or_numbers, tokens: int, batch: int = 1,
                   dtype: Union[torch.dtype, str, int, float] = torch.float16) -> float:
    """Bytes of a KV cache: ``2 x n_layers x n_kv_heads x head_dim x tokens x batch x bytes_per_element``.

    >>> kv_cache_bytes("LLaMA-7B", tokens=2048, dtype="fp16") / 2**30
    1.0
    """
    for name, v in (("tokens", tokens), ("batch", batch)):
        if not isinstance(v, int) or v < 0:
            raise ValueError(f"{name}={v!r} must be a non-negative integer")
    L, Hkv, d = _shape_of(config_or_numbers)
    b = bytes_per_element(dtype)
    n = 2 * L * Hkv * d * tokens * batch * b
    return int(n) if float(n).is_integer() else n


def kv_bytes_per_token(config_or_numbers, dtype=torch.float16) -> float:
    """Cache bytes added by one token of one sequence."""
    return kv_cache_bytes(config_or_numbers, 1, 1, dtype)


def _forward(model, ids, cache):
    """A forward that may run past ``max_seq_len`` (timing does not depend on what positions mean)."""
    if model.config.pos == "learned":
        return model(ids, kv_cache=cache)
    return model(ids, kv_cache=cache, allow_longer=True)


def _random_ids(model, batch: int, length: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, model.config.vocab_size, (batch, length), generator=g).to(model.device)


@torch.no_grad()
def prefill_time(model, prompt_len: int, batch: int = 1, repeats: int = 5, warmup: int = 1) -> float:
    """Median seconds to read a prompt of ``prompt_len`` tokens into a fresh KV cache (one forward)."""
    ids = _random_ids(model, batch, prompt_len)
    cache = model.new_kv_cache(batch, prompt_len + 1)

    def run():
        cache.reset()
        _forward(model, ids, cache)
    return median_time(run, repeats, warmup)


@torch.no_grad()
def fill_cache(model, batch: int, context_len: int, max_len: Optional[int] = None, seed: int = 0):
    """A cache that already holds ``context_len`` positions of random keys and values.

    A decode step costs the same whatever numbers the cache holds, so this stands in for a prefill
    when only the timing of later steps matters (and skips the prefill's cost)."""
    cache = model.new_kv_cache(batch, max_len or context_len + 1)
    g = torch.Generator().manual_seed(seed)
    for t in list(cache.keys) + list(cache.values):
        t[:, :, :context_len].copy_(torch.randn(t[:, :, :context_len].shape, generator=g).to(t.dtype))
    cache.length = context_len
    return cache


@torch.no_grad()
def decode_step_time(model, context_len: int, batch: int = 1, repeats: int = 5, steps: int = 4,
                     warmup: int = 1) -> float:
    """Median seconds of one cached decode step (one new token per sequence) when the cache already
    holds ``context_len`` positions. Each timed block runs ``steps`` steps and is divided by ``steps``."""
    cache = fill_cache(model, batch, context_len, context_len + steps)
    ids = _random_ids(model, batch, 1, seed=1)

    def run():
        cache.length = context_len
        for _ in range(steps):
            _forward(model, ids, cache)
    return median_time(run, repeats, warmup) / steps


def prefill_vs_decode(model, lengths: Sequence[int], batch: int = 1, repeats: int = 5,
                      decode_steps: int = 4) -> List[Dict[str, float]]:
    """For each length ``n``: prefill tokens/s of an ``n``-token prompt, decode tokens/s of one step at
    context ``n``, and their ratio (how many times faster a prompt token is read than a token is made).

    Prefill and decode repeats are interleaved, so a burst of load from elsewhere on the machine
    slows both sides of the ratio alike; ``ratio`` is the median of the per-repeat ratios."""
    rows = []
    for n in lengths:
        tps, tds, ratios = [], [], []
        for r in range(repeats):
            a = prefill_time(model, n, batch, repeats=1, warmup=1 if r == 0 else 0)
            b = decode_step_time(model, n, batch, repeats=1, steps=decode_steps, warmup=1 if r == 0 else 0)
            tps.append(a), tds.append(b), ratios.append((n / a) / (1 / b))
        tp, td = statistics.median(tps), statistics.median(tds)
        rows.append({"length": n, "prefill_s": tp, "decode_step_s": td,
                     "prefill_tok_s": batch * n / tp, "decode_tok_s": batch / td,
                     "ratio": statistics.median(ratios)})
    return rows


def throughput_vs_batch(model, batch_sizes: Sequence[int], context_len: int, repeats: int = 5,
                        steps: int = 4) -> List[Dict[str, float]]:
    """Decode throughput (new tokens per second over the batch) and per-step latency for each batch
    size, with a cache of ``context_len`` positions per sequence."""
    rows = []
    for b in batch_sizes:
        t = decode_step_time(model, context_len, b, repeats, steps)
        rows.append({"batch": b, "step_s": t, "tok_s": b / t})
    return rows


def generation_time(model, prompt: torch.Tensor, max_new_tokens: int, use_cache: bool, repeats: int = 3,
                    warmup: int = 1) -> float:
    """Median seconds of greedy ``course_lib.generate`` with or without the KV cache."""
    from ..sample import generate

    def run():
        generate(model, prompt, max_new_tokens, temperature=0.0, use_cache=use_cache)
    with torch.no_grad():
        return median_time(run, repeats, warmup)


def generation_speedup(model, prompt: torch.Tensor, max_new_tokens: int, repeats: int = 3) -> Dict[str, float]:
    """Uncached over cached time of greedy generation, the two measured back to back in every repeat
    (so a burst of load elsewhere hits both); returns the median times and the median per-repeat ratio."""
    from ..sample import generate

    on, off, ratios = [], [], []
    with torch.no_grad():
        generate(model, prompt, min(max_new_tokens, 4), temperature=0.0)              # warm-up
        for _ in range(repeats):
            a = median_time(lambda: generate(model, prompt, max_new_tokens, temperature=0.0, use_cache=True), 1, 0)
            b = median_time(lambda: generate(model, prompt, max_new_tokens, temperature=0.0, use_cache=False), 1, 0)
            on.append(a), off.append(b), ratios.append(b / a)
    return {"cached_s": statistics.median(on), "uncached_s": statistics.median(off),
            "speedup": statistics.median(ratios)}


# ----------------------------------------------------------------------------------------- correctness
@torch.no_grad()
def cached_decode_logits(model, prompt: torch.Tensor, max_new_tokens: int):
    """Greedy decoding with the KV cache (``course_lib.generate``): returns ``(tokens (B, T + n),
    logits (B, n, V))`` where ``logits[:, i]`` is what the model said before choosing new token ``i``.

    The reference to compare it with is :func:`recompute_logits`: one full forward over the final
    sequence, where nothing is cached."""
    from ..sample import generate

    return generate(model, prompt, max_new_tokens, temperature=0.0, return_logits=True)   # the library's loop


@torch.no_grad()
def recompute_logits(model, tokens: torch.Tensor, n_new: int) -> torch.Tensor:
    """Logits that predicted the last ``n_new`` tokens of ``tokens``, from one uncached forward:
    ``(B, n_new, V)``."""
    logits = model(tokens[:, :-1]).logits
    return logits[:, -n_new:]


# ----------------------------------------------------------------------------------------- extrapolation
@torch.no_grad()
def per_position_loss(model, tokens: torch.Tensor, batch_size: int = 16, allow_longer: bool = True
                      ) -> torch.Tensor:
    """Mean next-token loss at every position ``(T - 1,)`` over the rows of ``tokens (N, T)``.

    ``allow_longer=True`` lets a RoPE/ALiBi/NoPE model run past its ``max_seq_len`` (the point of a
    length-extrapolation test); a learned position table cannot, so give such a model a table as long
    as the evaluation (its rows past the training length are simply never trained)."""
    model.eval()
    total = torch.zeros(tokens.shape[1] - 1, dtype=torch.float64)
    for i in range(0, tokens.shape[0], batch_size):
        chunk = tokens[i:i + batch_size].to(model.device)
        kwargs = {"allow_longer": True} if allow_longer and model.config.pos != "learned" else {}
        out = model(chunk[:, :-1], labels=chunk[:, 1:], loss_reduction="none", **kwargs)
        total += out.loss.double().sum(0).cpu()
    return total / tokens.shape[0]
