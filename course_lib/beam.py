"""Beam search and sequence scoring: the deterministic search for a likely continuation.

:func:`sequence_log_prob` scores given continuations (the objective); :func:`beam_search` keeps the
``num_beams`` best partial continuations at every step, reusing one KV cache whose rows are
reordered as beams survive (``KVCache.reorder``). Sampling lives in ``sample.py``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import List, Optional, Sequence, Union

import torch
from torch import nn

from .sample import (TokenIds, _check_count, _config_of, _device_of, _fit_length, _GenerationMode, _is_real,
                     _token_set, prepare_prompts)


def sequence_log_prob(model: nn.Module, sequences: torch.Tensor, prompt_length: int,
                      attention_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Sum of ``log p(token_t | tokens_<t)`` over the tokens after the prompt: ``(B, L) -> (B,)``.

    ``prompt_length`` is the column where the continuation starts (for a left-padded batch, the
    padded prompt width). This is the objective beam search maximises (with length_penalty=0).
    """
    config = _config_of(model)
    ids, mask = prepare_prompts(sequences, attention_mask, 0, config.vocab_size, _device_of(model))
    L = ids.shape[1]
    prompt_length = _check_count("prompt_length", prompt_length, 1)
    if prompt_length > L:
        raise ValueError(f"prompt_length={prompt_length} must be <= the sequence length {L}")
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            logits = model(ids, attention_mask=mask).logits                    # (B, L, V)
            logp = torch.log_softmax(logits[:, prompt_length - 1:-1].float(), dim=-1)
            picked = logp.gather(-1, ids[:, prompt_length:, None]).squeeze(-1)
            total = picked.sum(dim=1)
    finally:
        model.train(was_training)
    return total.clone()


@dataclass
class Hypothesis:
    """One beam-search candidate: ``tokens (1, T + n)``, summed log-prob and length-normalised score."""

    tokens: torch.Tensor
    log_prob: float
    score: float
    finished: bool


def beam_search(model: nn.Module, input_ids: TokenIds, num_beams: int, max_new_tokens: int,
                length_penalty: float = 1.0, eos_token_id: Union[None, int, Sequence[int]] = None,
                return_all: bool = False, use_cache: bool = True, truncate: bool = False):
    """Beam search for one prompt: keep the ``num_beams`` best partial continuations at every step.

    Candidates are scored by summed log-probability; a finished (or final) hypothesis of ``n`` new
    tokens is ranked by ``log_prob / n ** length_penalty`` (0 = raw sum, which favours short
    outputs; 1 = per-token average). An ``eos_token_id`` finishes a hypothesis (counted in ``n``).
    Stops after ``max_new_tokens`` steps or when every live beam is worse than ``num_beams``
    finished ones.

    Returns ``(tokens (1, T + n), score)``; with ``return_all=True`` also the list of every
    final :class:`Hypothesis`, best first. ``num_beams=1`` without eos is greedy decoding.
    """
    config = _config_of(model)
    num_beams = _check_count("num_beams", num_beams, 1)
    max_new_tokens = _check_count("max_new_tokens", max_new_tokens, 0)
    if not _is_real(length_penalty) or not math.isfinite(length_penalty):
        raise ValueError(f"length_penalty={length_penalty!r} must be a finite number (0 = raw log-prob, "
                         "1 = per-token average)")
    V = config.vocab_size
    eos = _token_set("eos_token_id", eos_token_id, V)
    device = _device_of(model)
    ids, mask = prepare_prompts(input_ids, None, 0, V, device)
    if ids.shape[0] != 1 or mask is not None:
        raise ValueError(f"beam_search takes one prompt (batch 1), got input_ids with {ids.shape[0]} rows; "
                         "call it once per prompt")
    ids, _, allow_longer = _fit_length(config, ids, None, max_new_tokens, truncate)
    if use_cache and not getattr(config, "causal", True):
        use_cache = False
    T = ids.shape[1]
    k = num_beams
    kwargs = {"allow_longer": True} if allow_longer else {}

    def final_score(log_prob: float, n: int) -> float:
        return log_prob / (max(n, 1) ** length_penalty)

    if max_new_tokens == 0:
        hyp = Hypothesis(ids.clone(), 0.0, 0.0, False)
        return (hyp.tokens, hyp.score, [hyp]) if return_all else (hyp.tokens, hyp.score)

    finished: List[Hypothesis] = []
    with _GenerationMode(model):
        with torch.inference_mode():
            beams = ids.expand(k, T).clone()                                 # (k, T + i)
            scores = torch.full((k,), float("-inf"), device=device)
            scores[0] = 0.0                                                  # only beam 0 is real at the start
            cache = model.new_kv_cache(k, max_len=T + max_new_tokens) if use_cache else None
            logits = model(beams, kv_cache=cache, **kwargs).logits[:, -1]
            for step in range(max_new_tokens):
                logp = torch.log_softmax(logits.float(), dim=-1)             # (k, V)
                cand = (scores[:, None] + logp).flatten()                    # (k * V,)
                n_cand = min(2 * k, cand.numel())
                top_vals, top_idx = torch.topk(cand, n_cand)
                new_beams, new_scores, origins = [], [], []
                for rank, (val, idx) in enumerate(zip(top_vals.tolist(), top_idx.tolist())):
                    if val == float("-inf"):
                        break
                    origin, token = divmod(idx, V)
                    if eos is not None and token in eos:
                        if rank < k:  # an eos only counts if it is among the k best candidates
                            seq = torch.cat([beams[origin], beams.new_tensor([token])])[None]
                            finished.append(Hypothesis(seq, val, final_score(val, step + 1), True))
                        continue
                    new_beams.append(token)
                    new_scores.append(val)
                    origins.append(origin)
                    if len(new_beams) == k:
                        break
                if not new_beams:
                    beams = beams[:0]
                    break
                while len(new_beams) < k:                                    # pad with dead beams
                    new_beams.append(new_beams[0])
                    new_scores.append(float("-inf"))
                    origins.append(origins[0])
                origin_t = torch.tensor(origins, device=device)
                beams = torch.cat([beams.index_select(0, origin_t),
                                   torch.tensor(new_beams, device=device)[:, None]], dim=1)
                scores = torch.tensor(new_scores, device=device)
                n = step + 1
                if len(finished) >= k:
                    worst_kept = sorted(h.score for h in finished)[-k]
                    # Log-probs only fall as a beam grows; with length_penalty <= 0 its normalised
                    # score can only fall too, and with > 0 this is the usual heuristic bound.
                    if final_score(float(scores.max()), n) < worst_kept:
                        break
                if step + 1 == max_new_tokens:
                    break
                if cache is not None:
                    cache.reorder(origin_t)                 # survivors take their parent's past
                    logits = model(beams[:, -1:], kv_cache=cache, **kwargs).logits[:, -1]
                else:
                    logits = model(beams, **kwargs).logits[:, -1]
            live = [Hypothesis(beams[i:i + 1].clone(), float(scores[i]), final_score(float(scores[i]), beams.shape[1] - T),
                               False) for i in range(beams.shape[0]) if float(scores[i]) != float("-inf")]
    hyps = sorted(finished + live, key=lambda h: h.score, reverse=True)
    hyps = [Hypothesis(h.tokens.clone(), h.log_prob, h.score, h.finished) for h in hyps]  # leave inference mode
    best = hyps[0]
    return (best.tokens, best.score, hyps) if return_all else (best.tokens, best.score)


__all__ = ["beam_search", "sequence_log_prob", "Hypothesis"]
