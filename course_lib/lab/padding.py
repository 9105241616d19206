"""Padded batches: how they are built, what they cost, and what a model trained on them learned.

Notebook 03 trains models on right-padded segments with and without a loss mask and then looks at
clean, unpadded text. This module holds the pieces:

* :func:`padded_segments`: ``(n, seq_len + 1)`` rows, each a random-length slice of a token stream
  followed by padding;
* :func:`clean_pad_eval`: on unpadded windows, the probability a model puts on the pad id, its loss
  on the real next tokens, and the pad probability right after a run of padding;
* :func:`tokens_before_pad`: how many tokens a model samples before it emits the pad id;
* :func:`group_waste` and :func:`truncation_loss`: the padding waste of batches padded to their
  longest member, and the share of tokens lost when each batch is cut to its shortest member (the
  "truncate everything to one length" scheme).

Shapes: a token stream is a 1-D long tensor; rows and windows are ``(n, length)``.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Dict, List, Sequence, Tuple

import torch
import torch.nn.functional as F

from course_lib.lab.measure import padding_waste

__all__ = ["padded_segments", "clean_windows", "clean_pad_eval", "tokens_before_pad", "GroupWaste",
           "group_waste", "truncation_loss"]


def padded_segments(stream: torch.Tensor, n: int, seq_len: int, min_len: int, pad_id: int = 0,
                    seed: int = 0) -> torch.Tensor:
    """(n, seq_len + 1) rows: row i holds a slice of ``stream`` of a uniform random length in
    [min_len, seq_len + 1] from a uniform random start, then ``pad_id`` to the end."""
    if not 1 <= min_len <= seq_len + 1:
        raise ValueError(f"min_len={min_len} must be in [1, seq_len + 1 = {seq_len + 1}]")
    if len(stream) <= seq_len + 1:
        raise ValueError(f"the stream has {len(stream)} tokens; it needs more than seq_len + 1 = {seq_len + 1}")
    rng = random.Random(seed)
    rows = torch.full((n, seq_len + 1), pad_id, dtype=torch.long)
    for i in range(n):
        length = rng.randint(min_len, seq_len + 1)
        start = rng.randrange(0, len(stream) - length)
        rows[i, :length] = stream[start:start + length]
    return rows


def clean_windows(stream: torch.Tensor, n: int, length: int, seed: int = 0) -> torch.Tensor:
    """(n, length) windows of ``stream`` at seeded random starts: real text, no padding."""
    if len(stream) <= length:
        raise ValueError(f"the stream has {len(stream)} tokens; a window of length={length} needs more")
    starts = torch.randint(0, len(stream) - length, (n,), generator=torch.Generator().manual_seed(seed))
    return torch.stack([stream[s:s + length] for s in starts.tolist()])


@torch.no_grad()
def clean_pad_eval(model, windows: torch.Tensor, pad_id: int = 0) -> Dict[str, float]:
    """On unpadded ``windows`` (n, T + 1): mean P(pad) over all positions (``p_pad``), the mean
    next-token loss in nats (``loss``), and the mean P(pad) at positions that follow padding when the
    second half of each input is replaced by pad ids (``p_pad_after_pad``)."""
    x, y = windows[:, :-1], windows[:, 1:]
    logits = model(x).logits.float()
    half = x.shape[1] // 2
    probe = x.clone()
    probe[:, half:] = pad_id
    after = model(probe).logits.float().softmax(-1)[:, half:, pad_id]
    return {"p_pad": logits.softmax(-1)[..., pad_id].mean().item(),
            "loss": F.cross_entropy(logits.transpose(1, 2), y).item(),
            "p_pad_after_pad": after.mean().item()}


@torch.no_grad()
def tokens_before_pad(model, prompts: torch.Tensor, new_tokens: int, pad_id: int = 0,
                      seed: int = 1) -> Tuple[float, torch.Tensor]:
    """Sample ``new_tokens`` after each prompt (temperature 1, seeded) and return the mean number of
    tokens written before the first ``pad_id`` (``new_tokens`` when there is none) and the (n, new)
    continuations."""
    from course_lib import generate   # the sampler is core; imported here to keep this module light

    out = generate(model, prompts, new_tokens, temperature=1.0, eos_token_id=pad_id,
                   generator=torch.Generator().manual_seed(seed))[:, prompts.shape[1]:]
    hit = out == pad_id
    first = torch.where(hit.any(1), hit.float().argmax(1), torch.full((len(out),), new_tokens))
    return first.float().mean().item(), out


@dataclass(frozen=True)
class GroupWaste:
    """Padding waste of consecutive groups, each padded to its longest member."""

    token_waste: float      # share of token slots that are padding
    score_waste: float      # share of attention scores that involve padding


def _groups(lengths: Sequence[int], group: int) -> List[Sequence[int]]:
    if group < 1:
        raise ValueError(f"group={group} must be at least 1")
    if len(lengths) < group:
        raise ValueError(f"{len(lengths)} lengths cannot fill one group of group={group}")
    return [lengths[i:i + group] for i in range(0, len(lengths) - group + 1, group)]   # full groups only


def group_waste(lengths: Sequence[int], group: int = 16, causal: bool = True) -> GroupWaste:
    """Consecutive full groups of ``group`` lengths, each padded to its longest: the padding share of
    all token slots and of all attention scores (``causal``: only keys at or before the query)."""
    ws = [padding_waste(g, causal=causal) for g in _groups(lengths, group)]
    return GroupWaste(sum(w.pad_tokens for w in ws) / sum(w.token_slots for w in ws),
                      1 - sum(w.real_scores for w in ws) / sum(w.score_slots for w in ws))


def truncation_loss(lengths: Sequence[int], group: int = 32) -> float:
    """Share of all tokens lost when each consecutive full group of ``group`` sequences is cut to the
    length of its shortest member (so that no padding and no mask are needed)."""
    groups = _groups(lengths, group)
    kept = sum(min(g) * len(g) for g in groups)
    return 1 - kept / sum(sum(g) for g in groups)
