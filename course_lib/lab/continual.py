"""Continual learning instruments: LoRA adapters and replay mixing.

Fine-tuning a trained model on a new task B moves every weight, and the old task A can get worse
(*catastrophic forgetting*). Two cheap defences, measured in notebook 24:

* **LoRA** (Hu et al. 2021): freeze the weight ``W0 (out, in)`` and learn a low-rank change,
  ``W = W0 + (alpha / r) · B A`` with ``A (r, in)`` random and ``B (out, r)`` zero at the start, so the
  adapted model starts as the base model and only ``r · (in + out)`` numbers per matrix train.
* **Replay**: mix a fraction of task A's data into task B's.

    n_trainable = add_lora(model, r=4, targets=("q_proj", "v_proj"))   # freezes everything else
    merge_lora(model)                    # fold B A into the weights: plain nn.Linear again
    mixed = replay_mix(task_b, task_a, fraction=0.1, seed=0)             # a list of items
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

__all__ = ["LoRALinear", "add_lora", "merge_lora", "trainable_params", "replay_mix"]


class LoRALinear(nn.Module):
    """``base(x) + (alpha / r) · x Aᵀ Bᵀ`` around a frozen ``nn.Linear`` ``base`` (``in -> out``).

    ``A`` is ``(r, in)`` with Kaiming-uniform init (as ``nn.Linear``), ``B`` is ``(out, r)`` zeros.
    Input ``(..., in)`` -> output ``(..., out)``.
    """

    def __init__(self, base: nn.Linear, r: int = 4, alpha: float | None = None):
        super().__init__()
        if not isinstance(base, nn.Linear):
            raise ValueError(f"base must be an nn.Linear, got {type(base).__name__}")
        if not isinstance(r, int) or not 1 <= r <= min(base.in_features, base.out_features):
            raise ValueError(f"r={r!r} must be an int in [1, min(in, out) = "
                             f"{min(base.in_features, base.out_features)}]")
        self.base, self.r = base, r
        self.scale = (alpha if alpha is not None else r) / r
        for p in self.base.parameters():
            p.requires_grad_(False)
        w = base.weight
        self.lora_A = nn.Parameter(torch.empty(r, base.in_features, dtype=w.dtype, device=w.device))
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, r, dtype=w.dtype, device=w.device))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + (x @ self.lora_A.T @ self.lora_B.T) * self.scale

    def merged(self) -> nn.Linear:
        """A plain ``nn.Linear`` with weight ``W0 + scale · B A`` (same forward, no adapter)."""
        out = nn.Linear(self.base.in_features, self.base.out_features, bias=self.base.bias is not None,
                        dtype=self.base.weight.dtype, device=self.base.weight.device)
        with torch.no_grad():
            out.weight.copy_(self.base.weight + self.scale * self.lora_B @ self.lora_A)
            if self.base.bias is not None:
                out.bias.copy_(self.base.bias)
        return out


def _replace_modules(model: nn.Module, match, build) -> int:
    """Replace every submodule for which ``match(name, module)`` holds by ``build(module)``; returns the count."""
    found = [(name, m) for name, m in model.named_modules() if match(name, m)]
    for name, m in found:
        parent_name, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent_name) if parent_name else model, child, build(m))
    return len(found)


def add_lora(model: nn.Module, r: int = 4, alpha: float | None = None,
             targets: Sequence[str] = ("q_proj", "v_proj")) -> int:
    """Freeze every parameter of ``model`` and wrap each ``nn.Linear`` whose name ends in one of
    ``targets`` in a :class:`LoRALinear`; returns the number of trainable parameters."""
    for p in model.parameters():
        p.requires_grad_(False)
    n = _replace_modules(model, lambda name, m: isinstance(m, nn.Linear) and name.split(".")[-1] in targets,
                         lambda m: LoRALinear(m, r=r, alpha=alpha))
    if n == 0:
        names = sorted({name.split(".")[-1] for name, m in model.named_modules() if isinstance(m, nn.Linear)})
        raise ValueError(f"targets={tuple(targets)} match no nn.Linear in the model; its linear layers are {names}")
    return trainable_params(model)


def merge_lora(model: nn.Module) -> int:
    """Replace every :class:`LoRALinear` by its merged ``nn.Linear``; returns how many were merged."""
    return _replace_modules(model, lambda name, m: isinstance(m, LoRALinear), lambda m: m.merged())


def trainable_params(model: nn.Module) -> int:
    """Number of parameters with ``requires_grad`` (tied tensors once)."""
    return sum(p.numel() for p in {id(p): p for p in model.parameters() if p.requires_grad}.values())


def replay_mix(new, old, fraction: float = 0.1, seed: int = 0) -> list:
    """Items of dataset ``new`` with ``round(fraction · len(new))`` random items of ``old`` spread evenly
    among them (so a trainer that does not shuffle still sees old data throughout)."""
    if not 0 <= fraction <= 1:
        raise ValueError(f"fraction={fraction} must lie in [0, 1] (0.1 = one old item per ten new ones)")
    n_old = min(round(fraction * len(new)), len(old))
    g = torch.Generator().manual_seed(seed)
    old_items = [old[int(i)] for i in torch.randperm(len(old), generator=g)[:n_old]]
    items = [new[i] for i in range(len(new))]
    for j, item in enumerate(old_items):
        items.insert(round((j + 1) * len(items) / (n_old + 1)), item)
    return items
