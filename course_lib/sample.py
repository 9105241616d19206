"""Sampling: turning next-token logits into text, one token at a time.

Generation is a loop: run the model, look at the logits of the last position ``(B, V)``, choose a
token, append it, repeat. Everything that decides *which* token happens in one function,
:func:`sampling_distribution` (via :func:`process_logits`), in this order (the order Hugging Face
uses, so numbers can be compared):

1. repetition penalty (CTRL, Keskar et al. 2019): for every token already in the sequence, a
   positive logit is divided by ``penalty`` and a negative one multiplied by it (both lower it);
2. temperature: ``logits / T``; ``T -> 0`` is argmax (greedy), ``T = 0`` means exactly greedy;
3. top-k: keep the ``k`` largest logits (ties with the k-th are kept too);
4. top-p (nucleus, Holtzman et al. 2020): keep the *smallest* set of most likely tokens whose
   probability sums to at least ``p`` (the most likely token is always kept);
5. softmax over what is left, then ``torch.multinomial`` with the caller's generator.

With the KV cache (``use_cache=True``) the prompt is run once (*prefill*, all ``T`` positions in
parallel) and every later step feeds one token (*decode*), reusing stored keys and values.
``use_cache=False`` reruns the whole sequence every step: the slow, obviously-correct reference.

A batch of prompts of different lengths is left-padded and masked, and each row's positions start
at 0 where its text starts, so every row gets exactly the tokens it would get alone.

Beam search and sequence scoring live in ``beam.py``.
"""
from __future__ import annotations

import math
import numbers
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator, List, Optional, Sequence, Tuple, Union

import torch
from torch import nn

from .data import left_pad
from .device import memory_bytes, synchronize

TokenIds = Union[torch.Tensor, Sequence[int], Sequence[Sequence[int]]]

# Cumulative probability within this distance of top_p counts as reaching it: softmax in float32
# is exact only to ~1e-7, and "[0.9, 0.05, ...] with top_p=0.9" should keep one token, as in exact math.
TOP_P_TOLERANCE = 1e-6


# ============================================================================ argument checks
def _is_int(x: Any) -> bool:
    return isinstance(x, numbers.Integral) and not isinstance(x, bool)


def _is_real(x: Any) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, bool)


def check_sampling_args(temperature: float = 1.0, top_k: Optional[int] = None, top_p: Optional[float] = None,
                        repetition_penalty: float = 1.0) -> None:
    """Raise ``ValueError`` naming the parameter, its value and the allowed range."""
    if not _is_real(temperature) or not math.isfinite(temperature) or temperature < 0:
        raise ValueError(f"temperature={temperature!r} must be a finite number >= 0 (0 = greedy, 1 = the model's "
                         "distribution, > 1 flatter)")
    if top_k is not None and (not _is_int(top_k) or top_k < 1):
        raise ValueError(f"top_k={top_k!r} must be None (no limit) or an integer >= 1")
    if top_p is not None and (not _is_real(top_p) or not (0.0 < top_p <= 1.0)):
        raise ValueError(f"top_p={top_p!r} must be None (no limit) or a number in (0, 1]")
    if not _is_real(repetition_penalty) or not math.isfinite(repetition_penalty) or repetition_penalty <= 0:
        raise ValueError(f"repetition_penalty={repetition_penalty!r} must be a finite number > 0 "
                         "(1 = off, > 1 discourages repeats)")


def _check_count(name: str, value: Any, minimum: int) -> int:
    if not _is_int(value) or value < minimum:
        raise ValueError(f"{name}={value!r} must be an integer >= {minimum}")
    return int(value)


def _config_of(model: nn.Module):
    config = getattr(model, "config", None)
    if config is None or not hasattr(config, "vocab_size"):
        raise ValueError(f"model of type {type(model).__name__} has no .config with vocab_size; "
                         "pass a course_lib Transformer")
    return config


def _device_of(model: nn.Module) -> torch.device:
    device = getattr(model, "device", None)
    if isinstance(device, torch.device):
        return device
    return next(model.parameters()).device


def _token_set(name: str, value: Any, vocab_size: int) -> Optional[List[int]]:
    """``eos_token_id``: None, one id, or several ids; each in ``[0, vocab_size)``."""
    if value is None:
        return None
    ids = [value] if _is_int(value) else value
    if isinstance(ids, torch.Tensor):
        ids = ids.flatten().tolist()
    if not isinstance(ids, (list, tuple)) or not ids or not all(_is_int(i) for i in ids):
        raise ValueError(f"{name}={value!r} must be None, a token id or a list of token ids")
    bad = [i for i in ids if not 0 <= i < vocab_size]
    if bad:
        raise ValueError(f"{name}={value!r} contains {bad[0]}, outside the vocabulary range [0, {vocab_size - 1}]")
    return [int(i) for i in ids]


def _check_generator(generator: Optional[torch.Generator], device: torch.device) -> None:
    if generator is None:
        return
    if not isinstance(generator, torch.Generator):
        raise ValueError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
    if generator.device.type != device.type:
        raise ValueError(f"generator lives on {generator.device} but the model is on {device}; "
                         f"create it with torch.Generator(device={device.type!r})")


# ============================================================================ prompts
def _rows_from_list(input_ids: Sequence) -> List[List[int]]:
    """A prompt given as a list: one list of ints, or a list of lists/1-D tensors (one per row)."""
    if len(input_ids) == 0:
        raise ValueError("input_ids is empty; give at least one token (a list of ints or a (B, T) tensor)")
    if all(_is_int(t) for t in input_ids):
        return [[int(t) for t in input_ids]]
    rows = []
    for b, row in enumerate(input_ids):
        if isinstance(row, torch.Tensor):
            if row.dim() != 1 or row.dtype.is_floating_point or row.dtype == torch.bool:
                raise ValueError(f"input_ids[{b}] must be a 1-D integer tensor or a list of ints, got "
                                 f"shape {tuple(row.shape)} dtype {row.dtype}")
            row = row.tolist()
        if not isinstance(row, (list, tuple)) or not all(_is_int(t) for t in row):
            raise ValueError(f"input_ids[{b}] must be a list of int token ids, got {type(row).__name__} {row!r:.60}")
        if len(row) == 0:
            raise ValueError(f"input_ids[{b}] is an empty prompt; every row needs at least one token")
        rows.append([int(t) for t in row])
    return rows


def prepare_prompts(input_ids: TokenIds, attention_mask: Optional[Any] = None, pad_token_id: int = 0,
                    vocab_size: Optional[int] = None, device: Union[str, torch.device] = "cpu"
                    ) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
    """Normalise prompts to ``ids (B, T)`` long and ``mask (B, T)`` long (None when nothing is padded).

    ``input_ids`` may be a list of ints (one prompt), a list of lists of different lengths (left-padded
    here with ``pad_token_id``) or a ``(B, T)`` integer tensor with an optional left-padding
    ``attention_mask`` (1 = token, 0 = pad). Pad positions of a given tensor are overwritten with
    ``pad_token_id``. Raises ``ValueError`` for empty prompts, wrong rank or dtype, right padding and
    ids outside ``[0, vocab_size)``.
    """
    if isinstance(input_ids, (list, tuple)):
        if attention_mask is not None:
            raise ValueError("attention_mask must be None when input_ids is a list: lists of different "
                             "lengths are left-padded and masked automatically")
        ids, mask = left_pad(_rows_from_list(input_ids), pad_token_id)
    else:
        if not isinstance(input_ids, torch.Tensor):
            if hasattr(input_ids, "__array__"):
                input_ids = torch.as_tensor(input_ids)
            else:
                raise ValueError(f"input_ids must be a (B, T) LongTensor or a list of token ids, "
                                 f"got {type(input_ids).__name__}")
        if input_ids.dim() != 2:
            raise ValueError(f"input_ids must have shape (B, T) (2-D), got shape {tuple(input_ids.shape)}; "
                             "use ids[None] for one prompt, or pass a list of ints")
        if input_ids.dtype.is_floating_point or input_ids.dtype.is_complex or input_ids.dtype == torch.bool:
            raise ValueError(f"input_ids must be an integer tensor (torch.long), got dtype {input_ids.dtype}")
        if input_ids.numel() == 0:
            raise ValueError(f"input_ids is empty (shape {tuple(input_ids.shape)}); need at least one token per row")
        ids = input_ids.detach().to("cpu", torch.long)
        mask = None
        if attention_mask is not None:
            mask = torch.as_tensor(attention_mask).detach().to("cpu")
            if tuple(mask.shape) != tuple(ids.shape):
                raise ValueError(f"attention_mask must have the shape of input_ids {tuple(ids.shape)}, "
                                 f"got {tuple(mask.shape)}")
            if mask.dtype.is_floating_point and not bool(((mask == 0) | (mask == 1)).all()):
                raise ValueError("attention_mask must hold only 0 (padding) and 1 (token)")
            mask = mask.to(torch.long)
            if bool(((mask != 0) & (mask != 1)).any()):
                raise ValueError("attention_mask must hold only 0 (padding) and 1 (token)")
            empty = (mask.sum(dim=1) == 0).nonzero().flatten().tolist()
            if empty:
                raise ValueError(f"attention_mask row {empty[0]} is all padding: an empty prompt; every row "
                                 "needs at least one token")
            if bool((mask[:, 1:] < mask[:, :-1]).any()):
                row = int((mask[:, 1:] < mask[:, :-1]).any(dim=1).nonzero()[0])
                raise ValueError(f"attention_mask row {row} is not left-padded (a 0 follows a 1); generation "
                                 "appends tokens on the right, so padding must be on the left")
            ids = torch.where(mask.bool(), ids, torch.full_like(ids, pad_token_id))
    if vocab_size is not None:
        real = ids if mask is None else ids[mask.bool()]
        lo, hi = int(real.min()), int(real.max())
        if lo < 0 or hi >= vocab_size:
            bad = lo if lo < 0 else hi
            raise ValueError(f"input_ids contains token id {bad}, outside the vocabulary range "
                             f"[0, {vocab_size - 1}] (vocab_size={vocab_size})")
    if mask is not None and bool(mask.all()):
        mask = None                      # nothing padded: let the model take its unmasked fast path
    return ids.to(device), (mask.to(device) if mask is not None else None)


def _fit_length(config, ids: torch.Tensor, mask: Optional[torch.Tensor], max_new_tokens: int, truncate: bool
                ) -> Tuple[torch.Tensor, Optional[torch.Tensor], bool]:
    """Check (or, with ``truncate``, enforce) the length limits; returns ids, mask, allow_longer.

    The prompt must fit the context length. Learned position tables end at ``max_seq_len``, so there
    prompt + new tokens must fit too; RoPE, ALiBi, sinusoidal and no positions can go on (length
    extrapolation, quality not guaranteed).
    """
    limit = getattr(config, "context_length", config.max_seq_len)
    T = ids.shape[1]
    hard = getattr(config, "pos", "rope") == "learned"
    budget = limit - max_new_tokens if hard else limit
    if hard and budget < 1:
        raise ValueError(f"max_new_tokens={max_new_tokens} leaves no room for the prompt: learned positions "
                         f"end at max_seq_len={config.max_seq_len}, so max_new_tokens must be <= {limit - 1}")
    if T > budget:
        if not truncate:
            what = (f"prompt length {T} + max_new_tokens={max_new_tokens} = {T + max_new_tokens} exceeds "
                    f"max_seq_len={config.max_seq_len} (learned positions cannot go further)") if hard else \
                   f"prompt length {T} exceeds the context length {limit} (max_seq_len={config.max_seq_len})"
            raise ValueError(f"input_ids: {what}; shorten the prompt to at most {budget} tokens or pass "
                             "truncate=True to keep its last tokens")
        ids = ids[:, -budget:]
        if mask is not None:
            mask = mask[:, -budget:]
            if bool((mask.sum(dim=1) == 0).any()):  # cannot happen with left padding, kept as a guard
                raise ValueError("truncate=True left a row with no tokens")
            if bool(mask.all()):
                mask = None
    allow_longer = ids.shape[1] + max_new_tokens > limit
    return ids, mask, allow_longer


# ============================================================================ logit processing
def _seen_mask(previous_tokens: Any, shape: torch.Size, device: torch.device) -> torch.Tensor:
    """``previous_tokens`` as a bool ``(..., V)`` mask: ids ``(N,)``/``(B, N)`` or already a bool mask."""
    if isinstance(previous_tokens, torch.Tensor) and previous_tokens.dtype == torch.bool:
        if tuple(previous_tokens.shape) != tuple(shape):
            raise ValueError(f"previous_tokens as a bool mask must have the logits' shape {tuple(shape)}, "
                             f"got {tuple(previous_tokens.shape)}")
        return previous_tokens.to(device)
    prev = torch.as_tensor(previous_tokens, device=device)
    if prev.dtype.is_floating_point or prev.dtype == torch.bool:
        raise ValueError(f"previous_tokens must hold integer token ids, got dtype {prev.dtype}")
    V = shape[-1]
    if prev.numel() and (int(prev.min()) < 0 or int(prev.max()) >= V):
        raise ValueError(f"previous_tokens contains ids outside [0, {V - 1}]")
    lead = tuple(shape[:-1])
    if prev.dim() == 1:
        prev = prev.expand(*lead, prev.shape[0]) if lead else prev
    if tuple(prev.shape[:-1]) != lead:
        raise ValueError(f"previous_tokens must have shape (N,) or {lead + ('N',)}, got {tuple(prev.shape)}")
    seen = torch.zeros(shape, dtype=torch.bool, device=device)
    if prev.numel():
        seen.scatter_(-1, prev.long(), True)
    return seen


def process_logits(logits: torch.Tensor, temperature: float = 1.0, top_k: Optional[int] = None,
                   top_p: Optional[float] = None, repetition_penalty: float = 1.0,
                   seen: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Apply penalty, temperature, top-k and top-p to ``logits (..., V)``; removed tokens become -inf.

    Returns float32 logits of the same shape (never modifies the input). ``seen (..., V)`` bool marks
    tokens already in the sequence (for the repetition penalty). ``temperature=0`` returns the
    penalised logits unscaled: the caller takes the argmax.
    """
    x = logits.float()
    if repetition_penalty != 1.0 and seen is not None:
        # CTRL: shrink the logit of every seen token towards "less likely" whatever its sign.
        penalised = torch.where(x > 0, x / repetition_penalty, x * repetition_penalty)
        x = torch.where(seen, penalised, x)
    if temperature == 0:
        return x
    pen = x
    if temperature != 1.0:
        x = x / temperature
    if repetition_penalty != 1.0 or temperature != 1.0:
        # a tiny temperature or penalty overflows finite logits (inf - inf = NaN in the softmax): take
        # the limit instead, all mass on the largest logits
        raw = logits.float()
        inf_row = torch.isposinf(x).any(-1, keepdim=True)
        ref = torch.where(torch.isfinite(pen.amax(-1, keepdim=True)), pen, raw)
        top = ref == ref.amax(-1, keepdim=True)
        broken = (inf_row | torch.isneginf(x).all(-1, keepdim=True)) & torch.isfinite(raw).any(-1, keepdim=True)
        x = torch.where(broken, torch.where(top, 0.0, float("-inf")), x)
    V = x.shape[-1]
    if top_k is not None and top_k < V:
        kth = torch.topk(x, top_k, dim=-1).values[..., -1:]               # (..., 1) the k-th largest
        x = x.masked_fill(x < kth, float("-inf"))
    if top_p is not None and top_p < 1.0:
        probs = torch.softmax(x, dim=-1)
        sorted_probs, order = torch.sort(probs, dim=-1, descending=True)
        mass_before = torch.cumsum(sorted_probs, dim=-1) - sorted_probs    # mass of strictly better tokens
        drop_sorted = mass_before >= top_p - TOP_P_TOLERANCE                 # the set already reached p
        drop_sorted[..., 0] = False                                          # always keep the top token
        drop = torch.zeros_like(drop_sorted).scatter_(-1, order, drop_sorted)
        x = x.masked_fill(drop, float("-inf"))
    return x


def sampling_distribution(logits: torch.Tensor, temperature: float = 1.0, top_k: Optional[int] = None,
                          top_p: Optional[float] = None, repetition_penalty: float = 1.0,
                          previous_tokens: Any = None) -> torch.Tensor:
    """The probabilities the sampler draws the next token from: ``logits (..., V) -> probs (..., V)``.

    ``previous_tokens``: token ids ``(N,)`` or ``(B, N)`` already in the sequence (or a bool
    ``(..., V)`` mask), used by ``repetition_penalty``. ``temperature=0`` gives a one-hot at the argmax
    (greedy). Tokens removed by top-k/top-p get probability exactly 0.
    """
    check_sampling_args(temperature, top_k, top_p, repetition_penalty)
    if not isinstance(logits, torch.Tensor) or not logits.is_floating_point() or logits.dim() < 1:
        raise ValueError(f"logits must be a floating-point tensor (..., V), got "
                         f"{type(logits).__name__ if not isinstance(logits, torch.Tensor) else logits.dtype}")
    if logits.shape[-1] == 0:
        raise ValueError("logits has an empty vocabulary dimension")
    # -inf marks a forbidden token; NaN, +inf or a row with no finite logit give no distribution
    if bool(torch.isnan(logits).any() | torch.isposinf(logits).any() | torch.isneginf(logits).all(-1).any()):
        raise ValueError("logits hold NaN or +inf (or a row that is all -inf): no distribution to sample "
                         "from; the model's weights or inputs are not finite (a diverged checkpoint?)")
    seen = None
    if previous_tokens is not None and repetition_penalty != 1.0:
        seen = _seen_mask(previous_tokens, logits.shape, logits.device)
    x = process_logits(logits, temperature, top_k, top_p, repetition_penalty, seen)
    if temperature == 0:
        return torch.zeros_like(x).scatter_(-1, x.argmax(dim=-1, keepdim=True), 1.0)
    return torch.softmax(x, dim=-1)


# ============================================================================ generation
@dataclass
class GenerationStats:
    """Timing of one ``generate`` call (``return_stats=True``), for prefill-vs-decode plots.

    prefill: the first forward over the whole prompt (``B * T`` positions) and choosing token 1.
    decode: every later step (one position per row each), ``new_tokens - 1`` forwards.
    Tokens/s count positions processed per second over the whole batch (padding included).
    """

    batch_size: int
    prompt_tokens: int
    new_tokens: int
    prefill_seconds: float
    decode_seconds: float
    use_cache: bool

    @property
    def decode_steps(self) -> int:
        return max(self.new_tokens - 1, 0)

    @property
    def total_seconds(self) -> float:
        return self.prefill_seconds + self.decode_seconds

    @property
    def prefill_tokens_per_s(self) -> float:
        return self.batch_size * self.prompt_tokens / self.prefill_seconds if self.prefill_seconds > 0 else float("nan")

    @property
    def decode_tokens_per_s(self) -> float:
        """Generated tokens per second during decode (all rows together)."""
        return self.batch_size * self.decode_steps / self.decode_seconds if self.decode_seconds > 0 else float("nan")

    @property
    def tokens_per_s(self) -> float:
        """Generated tokens per second over the whole call (prefill included)."""
        return self.batch_size * self.new_tokens / self.total_seconds if self.total_seconds > 0 else float("nan")

    def __str__(self) -> str:
        return (f"prefill {self.batch_size}x{self.prompt_tokens} tokens in {self.prefill_seconds * 1e3:.1f} ms "
                f"({self.prefill_tokens_per_s:,.0f} tok/s); decode {self.decode_steps} steps in "
                f"{self.decode_seconds * 1e3:.1f} ms ({self.decode_tokens_per_s:,.0f} tok/s); "
                f"cache={'on' if self.use_cache else 'off'}")


@dataclass
class _Plan:
    """Everything validated and prepared for one generation run."""

    ids: torch.Tensor                # (B, T) prompt, left-padded
    mask: Optional[torch.Tensor]     # (B, T) or None when nothing is padded
    max_new_tokens: int
    temperature: float
    top_k: Optional[int]
    top_p: Optional[float]
    repetition_penalty: float
    eos: Optional[List[int]]
    pad_token_id: int
    use_cache: bool
    generator: Optional[torch.Generator]
    allow_longer: bool
    callback: Optional[Callable[[int, torch.Tensor], Any]]


def _plan(model, input_ids, max_new_tokens, temperature, top_k, top_p, repetition_penalty, eos_token_id,
          use_cache, generator, attention_mask, pad_token_id, truncate, callback) -> _Plan:
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a course_lib Transformer, got {type(model).__name__}")
    config = _config_of(model)
    V = config.vocab_size
    max_new_tokens = _check_count("max_new_tokens", max_new_tokens, 0)
    check_sampling_args(temperature, top_k, top_p, repetition_penalty)
    if not _is_int(pad_token_id) or not 0 <= pad_token_id < V:
        raise ValueError(f"pad_token_id={pad_token_id!r} must be a token id in [0, {V - 1}]")
    eos = _token_set("eos_token_id", eos_token_id, V)
    if callback is not None and not callable(callback):
        raise ValueError(f"callback must be callable as callback(step, tokens) or None, got {type(callback).__name__}")
    device = _device_of(model)
    _check_generator(generator, device)
    ids, mask = prepare_prompts(input_ids, attention_mask, pad_token_id, V, device)
    ids, mask, allow_longer = _fit_length(config, ids, mask, max_new_tokens, truncate)
    cache_bytes = 2 * ids.numel() // ids.shape[1] * (ids.shape[1] + max_new_tokens) * config.n_layers \
        * config.n_kv_heads * config.head_dim * next(model.parameters()).element_size()
    if use_cache and cache_bytes > (memory_bytes(device) or float("inf")):
        raise ValueError(f"max_new_tokens={max_new_tokens} needs a KV cache of {cache_bytes / 2**30:.1f} GiB, more than "
                         f"the {memory_bytes(device) / 2**30:.1f} GiB of {device}; ask for fewer tokens")
    if use_cache and not getattr(config, "causal", True):
        use_cache = False  # without the causal mask old positions see new ones: cached K/V would go stale
    return _Plan(ids, mask, max_new_tokens, float(temperature), top_k, top_p, float(repetition_penalty), eos,
                 int(pad_token_id), bool(use_cache), generator, allow_longer, callback)


class _Generation:
    """The decoding loop, one step per ``next()``; the same code serves generate and stream_generate."""

    def __init__(self, model: nn.Module, plan: _Plan, measure: bool = False, keep_logits: bool = False):
        self.model, self.plan, self.measure = model, plan, measure
        self.logits: Optional[List[torch.Tensor]] = [] if keep_logits else None   # (B, V) per step
        p = plan
        B, T = p.ids.shape
        self.B, self.T = B, T
        self.device = p.ids.device
        total = T + p.max_new_tokens
        # The whole output is preallocated (a normal tensor, not an inference tensor, so callers can
        # use it anywhere); each step writes one column.
        self.seq = torch.full((B, total), p.pad_token_id, dtype=torch.long, device=self.device)
        self.seq[:, :T] = p.ids
        self.mask = None
        self.next_pos = None
        if p.mask is not None:
            self.mask = torch.ones((B, total), dtype=torch.long, device=self.device)
            self.mask[:, :T] = p.mask
            self.next_pos = p.mask.sum(dim=1, keepdim=True)          # (B, 1) position of new token 0
        self.greedy = p.temperature == 0
        self.seen = None
        if p.repetition_penalty != 1.0:
            real = p.mask.float() if p.mask is not None else torch.ones((B, T), device=self.device)
            counts = torch.zeros((B, model.config.vocab_size), device=self.device)
            self.seen = counts.scatter_add_(1, p.ids, real) > 0            # pads do not count as "seen"
        self.eos = torch.tensor(p.eos, device=self.device) if p.eos else None
        self.finished = torch.zeros(B, dtype=torch.bool, device=self.device) if p.eos else None
        self.cache = model.new_kv_cache(B, max_len=total) if (p.use_cache and p.max_new_tokens > 0) else None
        self.steps = 0
        self.prefill_seconds = 0.0
        self.decode_seconds = 0.0

    def _forward(self, step: int) -> torch.Tensor:
        """Logits ``(B, V)`` for the next token after ``T + step`` known tokens."""
        p, T = self.plan, self.T
        end = T + step
        if self.cache is not None and step > 0:
            ids = self.seq[:, end - 1:end]                                 # decode: only the newest token
            mask = self.mask[:, :end] if self.mask is not None else None
            pos = self.next_pos + (step - 1) if self.mask is not None else None
        else:
            ids = self.seq[:, :end]                                        # prefill, or the reference rerun
            mask = self.mask[:, :end] if self.mask is not None else None
            pos = None  # the model's default: cumsum(mask) - 1, i.e. 0 where each row's text starts
        kwargs = {"allow_longer": True} if p.allow_longer else {}
        out = self.model(ids, attention_mask=mask, position_ids=pos, kv_cache=self.cache, **kwargs)
        return out.logits[:, -1]

    def _choose(self, logits: torch.Tensor) -> torch.Tensor:
        p = self.plan
        if self.greedy and self.seen is None:
            return logits.argmax(dim=-1)
        x = process_logits(logits, p.temperature, p.top_k, p.top_p, p.repetition_penalty, self.seen)
        if self.greedy:
            return x.argmax(dim=-1)
        probs = torch.softmax(x, dim=-1)
        return torch.multinomial(probs, 1, generator=p.generator).squeeze(1)

    def step(self) -> Optional[torch.Tensor]:
        """Produce the next ``(B,)`` tokens, or None when done."""
        p = self.plan
        if self.steps >= p.max_new_tokens or (self.finished is not None and bool(self.finished.all())):
            return None
        step = self.steps
        start = time.perf_counter() if self.measure else 0.0
        with torch.inference_mode():
            logits = self._forward(step)
            if not bool(torch.isfinite(logits).all()):    # argmax would pick a token silently, multinomial crash
                raise ValueError(f"the model's logits hold NaN or inf at generation step {step}: its weights or "
                                 "activations are not finite (a diverged checkpoint, or float16 overflow: try "
                                 "float32 or bfloat16)")
            if self.logits is not None:
                self.logits.append(logits.float())
            token = self._choose(logits)
            if self.finished is not None:
                # A finished row emits padding from now on; its model outputs are ignored.
                token = torch.where(self.finished, torch.full_like(token, p.pad_token_id), token)
                self.finished |= torch.isin(token, self.eos)
            self.seq[:, self.T + step] = token
            if self.seen is not None:
                self.seen[torch.arange(self.B, device=self.device), token] = True
        if self.measure:
            synchronize(self.device)
            elapsed = time.perf_counter() - start
            if step == 0:
                self.prefill_seconds += elapsed
            else:
                self.decode_seconds += elapsed
        self.steps += 1
        return self.seq[:, self.T + step]

    def output(self) -> torch.Tensor:
        return self.seq[:, : self.T + self.steps]

    def stats(self) -> GenerationStats:
        return GenerationStats(self.B, self.T, self.steps, self.prefill_seconds, self.decode_seconds,
                               self.cache is not None)


class _GenerationMode:
    """Eval mode and no per-call input checks while generating; both restored afterwards.

    The prompt was validated once in :func:`_plan` and every later token comes from an argmax or a
    draw over the vocabulary, so re-checking ids on every decode step (a device sync and a few
    Python branches per call) would be pure overhead.
    """

    def __init__(self, model: nn.Module):
        self.model = model

    def __enter__(self) -> None:
        self.was_training = self.model.training
        self.had_checks = getattr(self.model, "check_inputs", None)
        self.model.eval()
        if self.had_checks is not None:
            self.model.check_inputs = False

    def __exit__(self, *exc) -> None:
        self.model.train(self.was_training)
        if self.had_checks is not None:
            self.model.check_inputs = self.had_checks


def _run(model: nn.Module, plan: _Plan, measure: bool, keep_logits: bool = False) -> _Generation:
    gen = _Generation(model, plan, measure, keep_logits)
    with _GenerationMode(model):
        while True:
            token = gen.step()
            if token is None:
                break
            if plan.callback is not None and plan.callback(gen.steps - 1, token.clone()) is True:
                break
    return gen


def generate(model: nn.Module, input_ids: TokenIds, max_new_tokens: int, temperature: float = 1.0,
             top_k: Optional[int] = None, top_p: Optional[float] = None, repetition_penalty: float = 1.0,
             eos_token_id: Union[None, int, Sequence[int]] = None, use_cache: bool = True,
             generator: Optional[torch.Generator] = None, attention_mask: Optional[torch.Tensor] = None,
             pad_token_id: int = 0, truncate: bool = False,
             callback: Optional[Callable[[int, torch.Tensor], Any]] = None, return_stats: bool = False,
             return_logits: bool = False) -> Union[torch.Tensor, Tuple[torch.Tensor, ...]]:
    """Continue each prompt by up to ``max_new_tokens`` tokens; returns ``(B, T + n)`` LongTensor.

    input_ids: a list of ints (one prompt), a list of lists of different lengths (left-padded here
        with ``pad_token_id``), or a ``(B, T)`` tensor with an optional left-padding ``attention_mask``.
        The first ``T`` columns of the result are the (padded) prompts.
    temperature: 0 = greedy (argmax); otherwise sample from ``sampling_distribution``.
    top_k, top_p, repetition_penalty: see :func:`process_logits`.
    eos_token_id: an id or a list of ids; a row that emits one emits ``pad_token_id`` afterwards, and
        generation stops early (``n < max_new_tokens``) once every row has finished.
    use_cache: True = KV cache (prefill once, then one position per step); False = rerun the whole
        sequence every step (the reference; same tokens, much slower).
    generator: a ``torch.Generator`` for reproducible sampling (on the model's device).
    truncate: a prompt that is too long keeps its last tokens instead of raising ``ValueError``.
    callback: ``callback(step, tokens (B,))`` after every step; return True to stop early.
    return_stats: also return a :class:`GenerationStats` (prefill vs decode seconds and tokens/s).
    return_logits: also return the logits each new token was chosen from, ``(B, n, V)`` float32
        (before temperature and filtering), after the stats when both are asked for.

    The model runs in eval mode under ``torch.inference_mode`` (its train/eval mode is restored).
    """
    plan = _plan(model, input_ids, max_new_tokens, temperature, top_k, top_p, repetition_penalty, eos_token_id,
                 use_cache, generator, attention_mask, pad_token_id, truncate, callback)
    gen = _run(model, plan, return_stats, return_logits)
    extras = ((gen.stats(),) if return_stats else ()) + \
        ((torch.stack(gen.logits, dim=1).clone() if gen.logits else None,) if return_logits else ())
    return (gen.output(), *extras) if extras else gen.output()


def stream_generate(model: nn.Module, input_ids: TokenIds, max_new_tokens: int, temperature: float = 1.0,
                    top_k: Optional[int] = None, top_p: Optional[float] = None, repetition_penalty: float = 1.0,
                    eos_token_id: Union[None, int, Sequence[int]] = None, use_cache: bool = True,
                    generator: Optional[torch.Generator] = None, attention_mask: Optional[torch.Tensor] = None,
                    pad_token_id: int = 0, truncate: bool = False,
                    callback: Optional[Callable[[int, torch.Tensor], Any]] = None) -> Iterator[torch.Tensor]:
    """Like :func:`generate`, but an iterator of the new tokens ``(B,)``, one step at a time.

    Arguments are checked immediately (bad input raises here, not at the first ``next()``). The
    model is put in eval mode (and inference mode) only while a step computes; between steps, while
    the caller's loop body runs, the model is in the mode the caller left it and grad mode is the
    caller's own.
    """
    plan = _plan(model, input_ids, max_new_tokens, temperature, top_k, top_p, repetition_penalty, eos_token_id,
                 use_cache, generator, attention_mask, pad_token_id, truncate, callback)
    return _stream(model, plan)


def _stream(model: nn.Module, plan: _Plan) -> Iterator[torch.Tensor]:
    gen = _Generation(model, plan)
    while True:
        with _GenerationMode(model):  # per step: between steps the model is the caller's again
            token = gen.step()
        if token is None:
            return
        token = token.clone()
        if plan.callback is not None and plan.callback(gen.steps - 1, token.clone()) is True:
            yield token
            return
        yield token


__all__ = ["generate", "stream_generate", "sampling_distribution", "process_logits", "prepare_prompts",
           "check_sampling_args", "GenerationStats"]
