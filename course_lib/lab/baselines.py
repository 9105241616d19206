"""A recurrent baseline: an LSTM language model that trains with the course's ``Trainer``.

The Transformer's rival before 2017. It reads ``input_ids (B, T)`` one position after another (the
state ``(h_t, c_t)`` of step t needs step t-1), so even with teacher forcing its training is
sequential over time, while a causal Transformer computes every position of a sequence at once.

    model = LSTMLanguageModel(vocab_size=32, dim=64, n_layers=1)
    out = model(input_ids, labels=labels)            # ModelOutput: logits (B, T, V), loss
    hidden = lstm_hidden_for_params(n_params, vocab_size=32, dim=64)   # match a Transformer's size
    tps = training_tokens_per_second(model, batch=8, seq_len=256)      # fwd + bwd + AdamW step
    acc = accuracy_by_group(model, task, task.info["n_mismatched"])    # {group: (accuracy, count)}

The recurrence itself is ``torch.nn.LSTM`` (PyTorch's fused kernel, cuDNN on a GPU): the fairest
recurrent rival, not a slow Python loop.
"""
from __future__ import annotations

from typing import Dict, Optional, Tuple

import torch
from torch import nn

from ..losses import IGNORE_INDEX, masked_cross_entropy
from ..model import ModelOutput
from .measure import time_fn

__all__ = ["LSTMLanguageModel", "lstm_hidden_for_params", "training_tokens_per_second", "accuracy_by_group",
           "count_params"]


def _positive_int(name: str, value) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name}={value!r} must be a positive int")
    return value


class LSTMLanguageModel(nn.Module):
    """Embedding ``(V, dim)`` -> ``n_layers`` LSTM layers of ``hidden`` units -> linear head ``(hidden, V)``.

    ``forward`` takes the keyword arguments the ``Trainer`` passes (``attention_mask`` and
    ``position_ids`` are accepted and ignored: the recurrence knows positions by order, and padding
    is only ever on the right in the course's data, where the loss mask already ignores it).
    """

    def __init__(self, vocab_size: int, dim: int = 64, n_layers: int = 1, hidden: Optional[int] = None,
                 dropout: float = 0.0):
        super().__init__()
        _positive_int("vocab_size", vocab_size), _positive_int("dim", dim), _positive_int("n_layers", n_layers)
        hidden = dim if hidden is None else _positive_int("hidden", hidden)
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout={dropout!r} must be in [0, 1)")
        self.vocab_size, self.dim, self.n_layers, self.hidden = vocab_size, dim, n_layers, hidden
        self.embed = nn.Embedding(vocab_size, dim)
        self.lstm = nn.LSTM(dim, hidden, num_layers=n_layers, batch_first=True,
                            dropout=dropout if n_layers > 1 else 0.0)
        self.head = nn.Linear(hidden, vocab_size)

    def forward(self, input_ids: torch.Tensor, labels: Optional[torch.Tensor] = None,
                attention_mask: Optional[torch.Tensor] = None, position_ids: Optional[torch.Tensor] = None,
                loss_reduction: str = "token_mean",
                state: Optional[Tuple[torch.Tensor, torch.Tensor]] = None) -> ModelOutput:
        """``input_ids (B, T)`` -> ``ModelOutput(logits (B, T, V), loss)``; ``state`` = ``(h, c)``, each
        ``(n_layers, B, hidden)``, continues a previous call (None: zeros)."""
        if input_ids.dim() != 2:
            raise ValueError(f"input_ids must be (B, T); got shape {tuple(input_ids.shape)}")
        hidden_states, _ = self.lstm(self.embed(input_ids), state)
        logits = self.head(hidden_states).float()
        loss = None if labels is None else masked_cross_entropy(logits, labels, loss_reduction)
        return ModelOutput(logits=logits, loss=loss)


def count_params(model: nn.Module) -> int:
    """Trainable parameters (each tied tensor once)."""
    return sum(p.numel() for p in {id(p): p for p in model.parameters() if p.requires_grad}.values())


def lstm_hidden_for_params(n_params: int, vocab_size: int, dim: int, n_layers: int = 1) -> int:
    """The hidden size whose :class:`LSTMLanguageModel` has the parameter count closest to ``n_params``.

    Counts per layer ``4 h (in + h + 2)`` (four gates, two bias vectors in PyTorch's layout) with
    ``in = dim`` for the first layer and ``h`` after, plus the embedding ``V dim`` and head ``h V + V``.
    """
    _positive_int("n_params", n_params), _positive_int("vocab_size", vocab_size), _positive_int("dim", dim)

    def size(h: int) -> int:
        layers = 4 * h * (dim + h + 2) + (n_layers - 1) * 4 * h * (2 * h + 2)
        return vocab_size * dim + layers + h * vocab_size + vocab_size

    return min(range(1, 4096), key=lambda h: abs(size(h) - n_params))


def training_tokens_per_second(model: nn.Module, batch: int, seq_len: int, *, steps: int = 3,
                               device=None, seed: int = 0) -> float:
    """Tokens per second of full training steps (forward, backward, AdamW update) on random tokens.

    ``model`` takes ``(input_ids, labels=...)`` and returns an output with ``.loss`` (a course
    ``Transformer`` or :class:`LSTMLanguageModel`). The fastest of ``steps`` timed steps counts
    (after one warm-up step), which is the least disturbed by other load on the machine.
    """
    _positive_int("batch", batch), _positive_int("seq_len", seq_len), _positive_int("steps", steps)
    device = torch.device(device) if device is not None else next(model.parameters()).device
    model = model.to(device).train()
    vocab = getattr(model, "vocab_size", None) or model.config.vocab_size
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(vocab, (batch, seq_len + 1), generator=g).to(device)
    x, y = ids[:, :-1], ids[:, 1:]
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step():
        opt.zero_grad(set_to_none=True)
        model(x, labels=y).loss.backward()
        opt.step()

    return batch * seq_len / time_fn(step, repeat=steps, warmup=1, device=device).min


def accuracy_by_group(model: nn.Module, task, groups: torch.Tensor, max_batch: int = 512
                      ) -> Dict[int, Tuple[float, int]]:
    """Greedy answer accuracy of ``model`` on a ``SyntheticTask``, split by an integer label per
    sequence (e.g. ``task.info["n_mismatched"]``): ``{group: (accuracy, number of answers)}``.

    The count travels with each accuracy so that a rare group (a handful of sequences) is not read
    as precisely as a common one.
    """
    if groups.shape[0] != len(task):
        raise ValueError(f"groups has {groups.shape[0]} entries for a task of {len(task)} sequences")
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    right = []
    with torch.no_grad():
        for i in range(0, len(task), max_batch):
            x, y = task.input_ids[i:i + max_batch].to(device), task.labels[i:i + max_batch].to(device)
            scored = y != IGNORE_INDEX
            hit = (model(x).logits.argmax(-1) == y) & scored
            right.append((hit.sum(1).float() / scored.sum(1).clamp(min=1)).cpu())
    model.train(was_training)
    per_seq = torch.cat(right)
    return {int(gv): (float(per_seq[groups == gv].mean()), int((groups == gv).sum()))
            for gv in torch.unique(groups)}
