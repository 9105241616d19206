"""Gradient accumulation under the microscope: what one optimizer step of the ``Trainer`` changes.

The question "is accumulating k micro-batches the same as one batch k times larger?" is answered by
comparing *updates*: build the same model twice from one seed, let the library's ``Trainer`` take a
single optimizer step in two batch layouts, and diff the parameters. With plain SGD (no momentum, no
weight decay, no clipping) an update is exactly ``-lr * gradient``, so the same machinery also
recovers the gradient the trainer used, which :func:`reference_gradient` computes independently with
one forward pass over the whole batch and ``torch.nn.functional.cross_entropy``.

Updates and gradients are dicts ``{parameter name: tensor}`` shaped like the parameters.
"""
from __future__ import annotations

import math
import time
from typing import Dict, Sequence

import torch
import torch.nn.functional as F

from ..config import ModelConfig
from ..data import IGNORE_INDEX, collate
from ..train import TrainConfig, Trainer
from .runs import QUIET, seeded_model, train_run

__all__ = ["one_step_update", "reference_gradient", "update_norm", "max_abs_diff", "relative_diff",
           "ragged_sequences", "step_throughput", "train_run"]

Params = Dict[str, torch.Tensor]

def one_step_update(model_config: ModelConfig, train_data, train_config: TrainConfig, seed: int = 0) -> Params:
    """Parameter change of one ``Trainer`` optimizer step from a model initialised with ``seed``.

    The step consumes the first ``batch_size * grad_accum_steps`` items of ``train_data`` in order,
    so two layouts with the same product see the same samples.
    """
    model = seeded_model(model_config, seed)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    Trainer(model, train_data, train_config.replace(**QUIET, max_steps=1, warmup_steps=0, schedule="constant")).fit()
    return {n: p.detach() - before[n] for n, p in model.named_parameters()}


def reference_gradient(model_config: ModelConfig, items: Sequence[dict], seed: int = 0) -> Params:
    """Gradient of the token-mean cross-entropy over all ``items`` at once (one padded batch).

    Independent of the trainer: the loss is ``F.cross_entropy`` on the model's logits with
    ``ignore_index`` and mean reduction, i.e. every target token in the batch weighs the same.
    """
    model = seeded_model(model_config, seed)
    batch = collate(list(items))
    mask = batch.get("attention_mask")
    logits = model(batch["input_ids"], attention_mask=mask if mask is not None and not bool(mask.all()) else None).logits
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch["labels"].reshape(-1),
                           ignore_index=IGNORE_INDEX)
    loss.backward()
    return {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}


def update_norm(update: Params) -> float:
    """Global L2 norm of an update (or gradient): sqrt of the sum of squares over all tensors."""
    return math.sqrt(sum(float(t.double().pow(2).sum()) for t in update.values()))


def max_abs_diff(a: Params, b: Params) -> float:
    """Largest absolute element-wise difference over the parameters both dicts hold."""
    return max(float((a[n].double() - b[n].double()).abs().max()) for n in a.keys() & b.keys())


def relative_diff(a: Params, b: Params) -> float:
    """``|a - b| / |b|`` with global L2 norms: 0 when equal, about 1 when unrelated."""
    names = a.keys() & b.keys()
    diff = {n: a[n].double() - b[n].double() for n in names}
    return update_norm(diff) / max(update_norm({n: b[n] for n in names}), 1e-300)


def ragged_sequences(n: int, vocab_size: int, min_len: int, max_len: int, seed: int = 0) -> list[dict]:
    """``n`` training items of random tokens with lengths uniform in ``[min_len, max_len]``.

    Each item is ``{"input_ids", "labels", "attention_mask"}`` of its own length (labels aligned:
    ``labels[t] = input_ids[t+1]``, the last one ``IGNORE_INDEX``), ready for ``collate``; with
    ``min_len == max_len`` every item has the same number of targets.
    """
    if not 2 <= min_len <= max_len:
        raise ValueError(f"need 2 <= min_len <= max_len, got min_len={min_len}, max_len={max_len}")
    g = torch.Generator().manual_seed(seed)
    items = []
    for length in torch.randint(min_len, max_len + 1, (n,), generator=g).tolist():
        ids = torch.randint(0, vocab_size, (length,), generator=g)
        labels = torch.cat([ids[1:], torch.tensor([IGNORE_INDEX])])
        items.append({"input_ids": ids, "labels": labels, "attention_mask": torch.ones(length, dtype=torch.long)})
    return items


def step_throughput(model_config: ModelConfig, train_data, train_config: TrainConfig, steps: int = 3,
                    seed: int = 0) -> float:
    """Training samples per second over ``steps`` optimizer steps of a fresh ``Trainer`` (wall clock,
    model construction excluded). Compare layouts measured in the same process, never across machines."""
    model = seeded_model(model_config, seed)
    cfg = train_config.replace(**QUIET, max_steps=steps, warmup_steps=0, schedule="constant")
    trainer = Trainer(model, train_data, cfg)
    t0 = time.perf_counter()
    trainer.fit()
    return steps * cfg.batch_size * cfg.grad_accum_steps / (time.perf_counter() - t0)
