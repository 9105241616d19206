"""Length extrapolation instruments: a perplexity-change table over evaluation lengths, RoPE
stretched at inference (PI / NTK / YaRN), and a retrieval probe at distances beyond the training
length.

Conventions: ``L`` is the training length; a model is evaluated on rows of ``f·L`` tokens for factors
``f``. The per-position loss curve (``decode_cost.per_position_loss``) of a causal model on long rows
holds every shorter evaluation too: position t of a long row sees exactly the context a row of t + 1
tokens would, so the mean of the first ``f·L`` entries *is* the loss of evaluating at length ``f·L``.
"""
from __future__ import annotations

import math
from typing import Dict, Mapping, Optional, Sequence

import torch
from torch import Tensor

from .synthetic import BOS, SEP, SyntheticTask, _gen, _int, _names, _SPECIAL_NAMES, answer_accuracy

__all__ = ["DOCUMENT_TABLE", "token_rows", "length_loss", "ppl_change_table", "stretched_rope",
           "passkey_task", "retrieval_accuracy"]

# The document's "extrapolation, measured" table (S001-Q16), trained at 1024: % perplexity change at
# 2048 (2×) and 4096 (4×). No source reports it (questions.md §7 #5). None = not given; "explodes" as
# written for the learned table.
DOCUMENT_TABLE: Dict[str, Dict[int, object]] = {
    "learned": {2: "explodes"},
    "sinusoidal": {2: 20.0, 4: 50.0},
    "rope": {2: 5.0},
    "rope+pi": {4: 10.0},
    "alibi": {2: 3.0, 4: 8.0},
}


def token_rows(dataset, n: int) -> Tensor:
    """``(min(n, len), T + 1)`` full token rows (inputs plus the last label) from a ``PackedDataset``
    whose items have ``input_ids`` and next-token ``labels`` of length T."""
    if n < 1:
        raise ValueError(f"n={n} must be >= 1")
    return torch.stack([torch.cat([dataset[i]["input_ids"], dataset[i]["labels"][-1:]])
                        for i in range(min(n, len(dataset)))])


def length_loss(curve: Tensor, length: int) -> float:
    """Mean next-token loss of evaluating at ``length`` tokens: the first ``length`` entries of a
    per-position loss curve ``(T,)``."""
    if not 1 <= length <= curve.shape[0]:
        raise ValueError(f"length={length} must be in [1, {curve.shape[0]}] (the curve's length)")
    return curve[:length].double().mean().item()


def ppl_change_table(curves: Mapping[str, Tensor], train_len: int, factors: Sequence[int]
                     ) -> Dict[str, Dict[int, float]]:
    """``{name: {f: % change of perplexity at f·L relative to L}}`` for per-position loss curves
    (every curve at least ``max(factors)·L`` long). Perplexity = exp(mean loss over the row)."""
    out = {}
    for name, curve in curves.items():
        base = length_loss(curve, train_len)
        out[name] = {f: 100.0 * (math.exp(length_loss(curve, f * train_len) - base) - 1.0) for f in factors}
    return out


def stretched_rope(model, method: str, factor: float, original_len: int):
    """A copy of a trained RoPE ``model`` whose frequencies are stretched at inference by ``method``
    ("pi", "ntk", "yarn") and ``factor``, same weights, no fine-tuning; in eval mode."""
    from .. import Transformer

    if model.config.pos != "rope":
        raise ValueError(f"stretched_rope needs a RoPE model, got pos={model.config.pos!r}")
    cfg = model.config.replace(rope_scaling=method, rope_scaling_factor=float(factor),
                               rope_original_max_seq_len=original_len)
    out = Transformer(cfg).to(model.device)
    out.load_state_dict(model.state_dict())
    return out.eval()


# ----------------------------------------------------------------------------------------- retrieval
def passkey_task(n: int, length: int, distance, n_filler: int = 16, n_values: int = 8, seed: int = 0
                 ) -> SyntheticTask:
    """Find the one value token in a sea of filler, and repeat it after the query.

    Layout (``length`` tokens read by the model, then the answer)::

        <bos> f f f ... v ... f f <sep> | v

    Filler tokens ``f*`` are drawn uniformly from ``n_filler``; exactly one value token ``v*`` (from
    ``n_values``, never used as filler) sits ``distance`` positions before ``<sep>``. ``distance`` is an
    int or a ``(lo, hi)`` range drawn uniformly per sequence (inclusive), within ``[1, length - 2]``.
    The answer depends on content only: a model solves it by finding the value token, wherever it is.
    ``info``: ``distance (N,)``, ``value (N,)``.
    """
    n = _int("n", n, 1)
    length = _int("length", length, 3)
    _int("n_filler", n_filler, 1)
    _int("n_values", n_values, 2)
    lo, hi = (distance, distance) if isinstance(distance, int) else tuple(distance)
    if not 1 <= lo <= hi <= length - 2:
        raise ValueError(f"distance={distance!r} must lie in [1, length - 2 = {length - 2}]")
    g = _gen(seed)
    first_filler = len(_SPECIAL_NAMES)
    first_value = first_filler + n_filler
    seq = torch.empty(n, length + 1, dtype=torch.long)
    seq[:, 0] = BOS
    seq[:, 1:length - 1] = first_filler + torch.randint(0, n_filler, (n, length - 2), generator=g)
    seq[:, length - 1] = SEP
    dist = torch.randint(lo, hi + 1, (n,), generator=g)
    value = first_value + torch.randint(0, n_values, (n,), generator=g)
    seq[torch.arange(n), length - 1 - dist] = value
    seq[:, length] = value
    mask = torch.zeros_like(seq, dtype=torch.bool)
    mask[:, length] = True
    vocab = _SPECIAL_NAMES + _names("f", n_filler) + _names("v", n_values)
    return SyntheticTask("passkey", seq, mask, vocab, "<bos> filler.. value ..filler <sep> -> value",
                         dict(n=n, length=length, distance=distance, n_filler=n_filler, n_values=n_values, seed=seed),
                         info={"distance": dist, "value": value})


@torch.no_grad()
def retrieval_accuracy(model, task: SyntheticTask, batch_size: int = 256) -> float:
    """Greedy accuracy on the answer of a ``passkey_task``; runs past ``max_seq_len`` for schemes that
    can (RoPE, ALiBi, none, sinusoidal), as ``decode_cost.per_position_loss`` does."""
    model.eval()
    kwargs = {"allow_longer": True} if model.config.pos != "learned" else {}
    right = 0.0
    for i in range(0, len(task), batch_size):
        x, y = task.input_ids[i:i + batch_size], task.labels[i:i + batch_size]
        acc = answer_accuracy(model(x.to(model.device), **kwargs).logits.cpu(), y)
        right += acc["token_accuracy"] * len(x)
    return right / len(task)


def chance_accuracy(task: SyntheticTask) -> float:
    """Accuracy of guessing one of the value tokens uniformly: ``1 / n_values``."""
    return 1.0 / task.params["n_values"]


def by_factor(curves: Mapping[str, Sequence[Tensor]], train_len: int, factors: Sequence[int],
              ) -> Dict[str, Dict[int, Sequence[float]]]:
    """Per-seed %-change tables: ``{name: {f: [pct for each seed's curve]}}``."""
    return {name: {f: [ppl_change_table({"c": c}, train_len, [f])["c"][f] for c in cs] for f in factors}
            for name, cs in curves.items()}


def format_table(measured: Mapping[str, Mapping[int, Sequence[float]]], factors: Sequence[int],
                 document: Optional[Mapping[str, Mapping[int, object]]] = None) -> str:
    """A text table of mean (min…max over seeds) % perplexity change, with the document's figure
    beside each where it gives one."""
    document = document or {}
    head = f"{'scheme':12s}" + "".join(f"{f'{f}×':>28s}" for f in factors)
    lines = [head]
    for name, row in measured.items():
        cells = []
        for f in factors:
            v = row[f]
            doc = document.get(name, {}).get(f)
            doc_s = "" if doc is None else (f" [doc {doc}]" if isinstance(doc, str) else f" [doc {doc:+.0f}%]")
            cells.append(f"{sum(v) / len(v):+.0f}% ({min(v):+.0f}…{max(v):+.0f}){doc_s}")
        lines.append(f"{name:12s}" + "".join(f"{c:>28s}" for c in cells))
    return "\n".join(lines)
