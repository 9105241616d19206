"""The tests' stable surface for library internals (the pattern of Stanford CS336's tests/adapters.py).

Tests never import a private name or reach into a module's internals directly: they call a function
here, and only this file knows where the thing lives. When a module moves or a helper is renamed,
this file changes and the tests do not.

It also holds references written from first principles for the tests to compare the library with
(full recomputation instead of a cache), so no test checks the library against another of its loops.
"""
from __future__ import annotations

from typing import List, Optional, Sequence

import torch


# ------------------------------------------------------------------ private names, one place
def rmsnorm_function(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """The hand-written RMSNorm autograd function (forward and backward) applied to ``x``."""
    from course_lib.norm import _RMSNormFunction

    return _RMSNormFunction.apply(x, weight, eps)


def clear_corpus_cache() -> None:
    """Forget the corpora loaded so far in this process (the loader caches them)."""
    from course_lib import corpus

    corpus._load_cached.cache_clear()


def prediction_widget(prediction):
    """The ipywidgets box a ``socratic.Prediction`` shows in a live notebook."""
    from course_lib.lab import socratic

    return socratic._build_widget(prediction)


def commit_prediction(prediction) -> None:
    """What the widget's commit button does."""
    prediction._on_commit()


# ------------------------------------------------------------------ independent references
@torch.no_grad()
def reference_generate(model, prompts: Sequence[Sequence[int]], max_new_tokens: int, *, temperature: float = 0.0,
                       top_k: Optional[int] = None, top_p: Optional[float] = None, repetition_penalty: float = 1.0,
                       generator: Optional[torch.Generator] = None, pad_id: int = 0) -> torch.Tensor:
    """Decoding by full recomputation: every step runs the whole (left-padded) sequence through the
    model, no KV cache, and picks the next token from the last position's logits (argmax for
    ``temperature=0``, else one draw per row from ``sampling_distribution`` with ``generator``).
    Returns ``(B, T + max_new_tokens)`` like ``generate`` (new tokens after the padded prompts)."""
    from course_lib.data import left_pad
    from course_lib.sample import sampling_distribution

    ids, mask = left_pad([list(p) for p in prompts], pad_id)
    B = ids.shape[0]
    seen = torch.zeros(B, model.config.vocab_size, dtype=torch.bool)
    for b, p in enumerate(prompts):
        seen[b, list(p)] = True                                   # pads are not "already in the text"
    was_training = model.training
    model.eval()
    try:
        for _ in range(max_new_tokens):
            logits = model(ids, attention_mask=mask).logits[:, -1]
            if temperature == 0 and repetition_penalty == 1.0:
                token = logits.argmax(-1)
            else:
                probs = sampling_distribution(logits, temperature, top_k, top_p, repetition_penalty,
                                              previous_tokens=seen)
                token = probs.argmax(-1) if temperature == 0 else \
                    torch.multinomial(probs, 1, generator=generator).squeeze(1)
            ids = torch.cat([ids, token[:, None]], dim=1)
            mask = torch.cat([mask, torch.ones(B, 1, dtype=mask.dtype)], dim=1)
            seen[torch.arange(B), token] = True
    finally:
        model.train(was_training)
    return ids


@torch.no_grad()
def reference_greedy_text(model, tokenizer, prompt_ids: Sequence[int], max_new_tokens: int) -> str:
    """The text of a greedy continuation of ``prompt_ids`` by full recomputation, cut at the first EOS
    (what the command line's samples and replies should print)."""
    new = reference_generate(model, [prompt_ids], max_new_tokens)[0, len(prompt_ids):].tolist()
    new = new[:new.index(tokenizer.eos_id)] if tokenizer.eos_id in new else new
    return tokenizer.decode(new, skip_special_tokens=True)


@torch.no_grad()
def reference_step_logits(model, tokens: torch.Tensor, n_new: int) -> List[torch.Tensor]:
    """For each of the last ``n_new`` tokens of ``tokens (B, L)``, the logits that chose it, each from
    its own full forward over the prefix (no cache): a list of ``(B, V)``."""
    L = tokens.shape[1]
    return [model(tokens[:, :t]).logits[:, -1] for t in range(L - n_new, L)]
