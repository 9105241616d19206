"""Training objectives built from the same token blocks, and a probe of what each prediction reads.

Notebook 02 trains one tiny model on several pairings of inputs and targets and asks which are
learnable and useful. Every builder takes items ``{"input_ids": (T,), "labels": (T,)}`` (as a
``PackedDataset`` yields, labels already shifted for next-token prediction) and returns new items of
the same shapes:

* :func:`unrelated_targets`: each block's inputs paired with the labels of another, random block;
* :func:`reversed_targets`: ``labels[t] = input_ids[t - 1]``, the shift in the wrong direction;
* :func:`identity_targets`: ``labels = input_ids``, no shift at all;
* :func:`masked_lm_items`: BERT's objective, a share of the inputs hidden behind a mask id and only
  those positions are targets.

:func:`input_influence` measures how strongly the prediction at one position depends on every input
position: the gradient norm at the token-embedding output, so a causal model shows exact zeros for
the future.
"""
from __future__ import annotations

from typing import Dict, List, Sequence

import torch

from course_lib.data import IGNORE_INDEX

Item = Dict[str, torch.Tensor]

__all__ = ["unrelated_targets", "reversed_targets", "identity_targets", "masked_lm_items", "input_influence"]


def _check_items(items: Sequence[Item]) -> None:
    if len(items) == 0:
        raise ValueError("items=[] is empty: pass at least one {'input_ids', 'labels'} item")
    if "input_ids" not in items[0]:
        raise ValueError(f"items[0] has keys {sorted(items[0])}; each item needs 'input_ids' (and 'labels')")


def unrelated_targets(items: Sequence[Item], seed: int = 0) -> List[Item]:
    """Each block's ``input_ids`` with the ``labels`` of a block drawn by a seeded permutation."""
    _check_items(items)
    order = torch.randperm(len(items), generator=torch.Generator().manual_seed(seed)).tolist()
    return [{"input_ids": it["input_ids"], "labels": items[j]["labels"]} for it, j in zip(items, order)]


def reversed_targets(items: Sequence[Item]) -> List[Item]:
    """``labels[t] = input_ids[t - 1]`` (no target at t = 0): the token the causal model already sees."""
    _check_items(items)
    return [{"input_ids": it["input_ids"],
             "labels": torch.cat([torch.tensor([IGNORE_INDEX]), it["input_ids"][:-1]])} for it in items]


def identity_targets(items: Sequence[Item]) -> List[Item]:
    """``labels = input_ids``: each position asked for the token it reads."""
    _check_items(items)
    return [{"input_ids": it["input_ids"], "labels": it["input_ids"].clone()} for it in items]


def masked_lm_items(items: Sequence[Item], mask_id: int, rate: float = 0.15, seed: int = 0) -> List[Item]:
    """Masked-language-model items: each input position is hidden behind ``mask_id`` with probability
    ``rate`` (independently, seeded); ``labels`` hold the original token there and ``IGNORE_INDEX``
    everywhere else. (BERT also replaces some chosen tokens by random ones or keeps them; this is the
    plain form.)"""
    _check_items(items)
    if not 0.0 < rate < 1.0:
        raise ValueError(f"rate={rate} must be in (0, 1), e.g. 0.15")
    g = torch.Generator().manual_seed(seed)
    out = []
    for it in items:
        x = it["input_ids"].clone()
        hide = torch.rand(x.shape, generator=g) < rate
        labels = torch.where(hide, x, torch.full_like(x, IGNORE_INDEX))
        x[hide] = mask_id
        out.append({"input_ids": x, "labels": labels})
    return out


def input_influence(model, input_ids: torch.Tensor, position: int) -> torch.Tensor:
    """(T,) norm of d logsumexp(logits[0, position]) / d embedding(input_ids)[0, t] for every t.

    ``input_ids`` is (1, T). The log-partition of the prediction at ``position`` depends on exactly the
    inputs that prediction can read, so a causal model gives exact zeros after ``position``."""
    if input_ids.dim() != 2 or input_ids.shape[0] != 1:
        raise ValueError(f"input_ids has shape {tuple(input_ids.shape)}; pass one sequence of shape (1, T)")
    if not 0 <= position < input_ids.shape[1]:
        raise ValueError(f"position={position} must be in [0, {input_ids.shape[1] - 1}]")
    store = {}

    def keep(module, inputs, output):
        output.retain_grad()
        store["emb"] = output

    hook = model.embed_tokens.register_forward_hook(keep)
    try:
        model.zero_grad(set_to_none=True)
        model(input_ids).logits[0, position].logsumexp(-1).backward()
    finally:
        hook.remove()
    return store["emb"].grad[0].norm(dim=-1).detach()
