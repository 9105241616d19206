"""Decoding strategies under measurement: repetition, diversity, and chains the model writes out.

Two kinds of instrument:

* **text statistics** on generated token ids: :func:`repeated_ngram_fraction` (how much of one
  continuation repeats itself) and :func:`distinct_n` (how many different n-grams a set of
  continuations uses), and :func:`decode` (greedy, beam or sampled continuations of one prompt through
  the library's ``generate`` and ``beam_search``);
* **hop accuracy** on pointer chasing (``synthetic.pointer_chasing``): :func:`accuracy_by_hops` scores a
  model that answers directly and one that writes the path ("thinking out loud") with the same ruler,
  the answer to a k-hop question.
"""
from __future__ import annotations

from typing import Sequence

import torch

from ..beam import beam_search
from ..losses import IGNORE_INDEX
from ..sample import generate
from .synthetic import SyntheticTask

__all__ = ["ngrams", "repeated_ngram_fraction", "distinct_n", "decode", "accuracy_by_hops"]


def _check_n(n) -> int:
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n={n!r} must be an int >= 1 (the n-gram length)")
    return n


def ngrams(tokens: Sequence[int], n: int) -> list[tuple[int, ...]]:
    """The ``len(tokens) - n + 1`` n-grams of one token sequence, in order."""
    n = _check_n(n)
    tokens = list(tokens)
    return [tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]


def repeated_ngram_fraction(tokens: Sequence[int], n: int = 4) -> float:
    """Fraction of the n-grams of one sequence that already occurred earlier in it.

    0 for text that never repeats an n-gram; close to 1 for a loop (``a b a b a b ...`` with n=2:
    every n-gram after the first two is a repeat). A sequence shorter than ``n`` gives 0.
    """
    grams = ngrams(tokens, n)
    seen, repeats = set(), 0
    for g in grams:
        repeats += g in seen
        seen.add(g)
    return repeats / len(grams) if grams else 0.0


def distinct_n(sequences: Sequence[Sequence[int]], n: int = 2) -> float:
    """Distinct-n (Li et al. 2016): unique n-grams over all n-grams, pooled across ``sequences``.

    Identical continuations of one prompt score at most ``1 / len(sequences)``; continuations that
    share no n-gram score 1. Returns 0 when there is no n-gram at all.
    """
    grams = [g for s in sequences for g in ngrams(s, n)]
    return len(set(grams)) / len(grams) if grams else 0.0


def decode(model, prompt: Sequence[int], max_new_tokens: int, strategy: dict, n: int = 1,
           seed: int = 0) -> list[list[int]]:
    """``n`` continuations (new token ids only) of one ``prompt`` under one decoding ``strategy``.

    ``strategy``: ``{"num_beams": k}`` for beam search (length penalty 1, deterministic, so one
    continuation repeated ``n`` times), else the keyword arguments of ``generate``
    (``temperature=0`` is greedy, also deterministic). Sampling draws the ``n`` rows in one batch from
    a generator seeded with ``seed``.
    """
    prompt = [int(t) for t in prompt]
    if not prompt:
        raise ValueError("prompt must hold at least one token id")
    if "num_beams" in strategy:
        tokens, _ = beam_search(model, [prompt], max_new_tokens=max_new_tokens, **strategy)
        return [tokens[0, len(prompt):].tolist()] * n
    generator = torch.Generator(device=next(model.parameters()).device).manual_seed(seed)
    out = generate(model, [prompt] * n, max_new_tokens, generator=generator, **strategy)
    return [row[len(prompt):].tolist() for row in out]


def accuracy_by_hops(model, task: SyntheticTask, max_hops: int, max_batch: int = 512) -> dict[int, float]:
    """Accuracy on the k-hop answer for k = 1..max_hops, for both pointer-chasing formats.

    * Direct task (``show_path=False``, hop counts mixed via ``hops=[...]``): the model's greedy
      answer token after ``start h{k}``, grouped by ``task.info["hops"]``.
    * Path task (``show_path=True`` with ``hops=max_hops``): the model *writes* the path greedily,
      reading its own earlier steps (``generate``, temperature 0); the k-hop answer is the k-th node
      it wrote, compared with ``task.info["path"][:, k-1]``. An early mistake is not corrected.
    """
    if task.name != "pointer_chasing":
        raise ValueError(f"task={task.name!r}: accuracy_by_hops needs a pointer_chasing task")
    path = task.info["path"]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            if task.params["show_path"]:
                if path.shape[1] != max_hops:
                    raise ValueError(f"max_hops={max_hops} must equal the path task's hops={path.shape[1]}")
                prompts = task.prompts()
                written = torch.cat([generate(model, prompts[i:i + max_batch], max_hops, temperature=0,
                                              use_cache=False)
                                     [:, prompts.shape[1]:] for i in range(0, len(task), max_batch)])
                right = written == path
                return {k: float(right[:, k - 1].float().mean()) for k in range(1, max_hops + 1)}
            picked = []
            for i in range(0, len(task), max_batch):
                x, y = task.input_ids[i:i + max_batch], task.labels[i:i + max_batch]
                logits = model(x).logits
                scored = y != IGNORE_INDEX
                picked.append((logits.argmax(-1)[scored] == y[scored]))
            right = torch.cat(picked)
            hops = task.info["hops"]
            return {k: float(right[hops == k].float().mean()) for k in range(1, max_hops + 1)
                    if bool((hops == k).any())}
    finally:
        model.train(was_training)
