"""Measurements on a model's attention: what its scores, weights and gradients look like.

Where ``attention_math`` holds the mathematics (functions of tensors), this module holds the
instruments that run a ``Transformer`` on a batch and report what happened inside: per-layer score
statistics, attention entropy, symmetry of the score matrix, gradient norms of named projections,
accuracy on a synthetic task. (To swap the softmax, set ``ModelConfig.attn_normalizer``.)

All functions leave the model's training mode and gradients as they found them.
"""
from __future__ import annotations

import contextlib
import math
import re
from typing import Dict, List

import torch

from ..losses import IGNORE_INDEX
from . import attention_math as am

Tensor = torch.Tensor


@contextlib.contextmanager
def _eval_mode(model):
    was = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was)


def _device(model) -> torch.device:
    return next(model.parameters()).device


def capture(model, input_ids: Tensor) -> dict:
    """Run ``model(input_ids, capture=True)`` without gradients in eval mode; return ``captured``
    (lists over layers of "scores", "weights", "head_outputs"; "hidden_states")."""
    with _eval_mode(model), torch.no_grad():
        return model(input_ids.to(_device(model)), capture=True).captured


def layer_values(model, captured: dict, layer: int) -> Tensor:
    """The value vectors V ``(B, Hkv, S, d)`` that layer ``layer`` averaged, recomputed from the
    captured hidden state entering that layer (honours ``tie_kv``: V is then the key projection).

    ``captured["head_outputs"][layer]`` equals ``captured["weights"][layer] @ V`` for each head
    (grouped-query heads read the key/value head ``h // (H // Hkv)``).
    """
    block = model.layers[layer]
    attn = block.attn
    x = captured["hidden_states"][layer]
    h = block.attn_norm(x) if block.pre_norm else x
    proj = attn.v_proj if attn.v_proj is not None else (attn.k_proj if attn.k_proj is not None else attn.q_proj)
    B, T, _ = h.shape
    with torch.no_grad():
        v = proj(h).view(B, T, -1, attn.head_dim).transpose(1, 2)
    return v


def score_stats(model, input_ids: Tensor) -> List[dict]:
    """Per-layer statistics of the raw dot products q·k (see ``attention_math.raw_score_stats``)."""
    return am.raw_score_stats(capture(model, input_ids)["scores"], model.config.resolved_attn_scale)


def attention_entropy_by_layer(model, input_ids: Tensor, normalized: bool = True, skip_first: int = 1) -> List[float]:
    """Mean attention entropy per layer (normalised: 1 = uniform, 0 = one-hot), ignoring the first
    ``skip_first`` query rows (under a causal mask they see too few keys to mean anything)."""
    cap = capture(model, input_ids)
    causal = model.config.causal
    return [float(am.attention_entropy(w, causal=causal, normalized=normalized)[..., skip_first:].mean())
            for w in cap["weights"]]


def param_grad_norms(model, input_ids: Tensor, labels: Tensor, pattern: str = r"q_proj") -> Dict[str, float]:
    """Gradient norm of every parameter whose name matches ``pattern`` (a regular expression) for
    the loss on one batch. Existing ``.grad`` values are restored afterwards."""
    saved = {n: (None if p.grad is None else p.grad.clone()) for n, p in model.named_parameters()}
    try:
        model.zero_grad(set_to_none=True)
        with _eval_mode(model):
            dev = _device(model)
            model(input_ids.to(dev), labels=labels.to(dev)).loss.backward()
        rx = re.compile(pattern)
        # a matching parameter that received no gradient at all (e.g. behind an argmax) reports 0
        return {n: (0.0 if p.grad is None else float(p.grad.norm())) for n, p in model.named_parameters()
                if rx.search(n) and p.requires_grad}
    finally:
        for n, p in model.named_parameters():
            p.grad = saved[n]


def total_norm(norms: Dict[str, float]) -> float:
    """sqrt of the sum of squares of a dict of norms (e.g. from :func:`param_grad_norms`)."""
    return math.sqrt(sum(v * v for v in norms.values()))


def task_accuracy(model, task, max_batch: int = 512) -> float:
    """Greedy answer accuracy of ``model`` on a ``SyntheticTask`` (fraction of answer tokens right)."""
    from .synthetic import answer_accuracy

    right, total = 0.0, 0
    with _eval_mode(model), torch.no_grad():
        for i in range(0, len(task), max_batch):
            x, y = task.input_ids[i:i + max_batch], task.labels[i:i + max_batch]
            acc = answer_accuracy(model(x.to(_device(model))).logits.cpu(), y)
            n = int((y != IGNORE_INDEX).sum())
            right += acc["token_accuracy"] * n
            total += n
    return right / max(total, 1)


def task_loss(model, task, max_batch: int = 512) -> float:
    """Token-mean loss of ``model`` on the labelled positions of a ``SyntheticTask``."""
    tot, n = 0.0, 0
    with _eval_mode(model), torch.no_grad():
        for i in range(0, len(task), max_batch):
            x, y = task.input_ids[i:i + max_batch], task.labels[i:i + max_batch]
            dev = _device(model)
            out = model(x.to(dev), labels=y.to(dev), loss_reduction="sum")
            tot += float(out.loss)
            n += int((y != IGNORE_INDEX).sum())
    return tot / max(n, 1)


def dataset_loss(model, dataset, max_items: int = 64, batch_size: int = 32) -> float:
    """Token-mean loss of ``model`` on the first ``max_items`` items of a dataset of dicts with
    ``input_ids`` and aligned ``labels`` (``PackedDataset``, ``PretrainDataset``, a task)."""
    from ..data import collate

    n_items = min(max_items, len(dataset))
    tot, n = 0.0, 0
    dev = _device(model)
    with _eval_mode(model), torch.no_grad():
        for i in range(0, n_items, batch_size):
            b = collate([dataset[j] for j in range(i, min(i + batch_size, n_items))],
                        pad_id=getattr(dataset, "pad_id", 0))
            y = b["labels"]
            out = model(b["input_ids"].to(dev), labels=y.to(dev), loss_reduction="sum")
            tot += float(out.loss)
            n += int((y != IGNORE_INDEX).sum())
    return tot / max(n, 1)
