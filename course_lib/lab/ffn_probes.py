"""What the feed-forward sublayers do in a trained model: ablate them, read the stream layer by layer.

* :func:`ablate_ffn` zeroes the output of chosen layers' FFNs (dense or MoE) inside a ``with`` block,
  so a measurement (e.g. fact-recall accuracy) can be repeated with one layer's FFN removed while
  the residual path, attention and everything else stay as trained.
* :func:`logit_lens` decodes the residual stream after every block through the model's own final
  norm and output head: per layer the loss, the accuracy and the agreement with the final answer.
  :func:`early_exit` turns that into a per-token exit rule (stop at the first layer whose top
  probability reaches a threshold) and reports accuracy against the average number of blocks run.
* :func:`ffn_hidden_zero_fraction` counts exact zeros in the FFN hidden activations (ReLU gives
  many, GELU and SiLU essentially none).

Shapes: ``input_ids``/``labels`` ``(B, T)``, labels ``-100`` where there is no target.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Iterable, Iterator, List, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from .probes import _eval_mode

__all__ = ["ablate_ffn", "LensResult", "logit_lens", "early_exit", "ExitResult", "ffn_hidden_zero_fraction"]


def _check_layers(model, layers: Iterable[int]) -> List[int]:
    n = len(model.layers)
    layers = [int(i) for i in layers]
    bad = [i for i in layers if not 0 <= i < n]
    if bad:
        raise ValueError(f"layers={bad} outside [0, {n - 1}] (the model has n_layers={n})")
    missing = [i for i in layers if model.layers[i].ffn is None]
    if missing:
        raise ValueError(f"layers={missing} have no FFN (ffn_type='none'); nothing to ablate")
    return layers


@contextlib.contextmanager
def ablate_ffn(model, layers: Iterable[int]) -> Iterator[None]:
    """Within the block, the FFN sublayer of each layer in ``layers`` outputs exact zeros, so the
    block becomes ``x + attn(norm(x))`` (pre-norm). Hooks are removed on exit."""
    with contextlib.ExitStack() as undo:                  # every hook is removed on exit, even on error
        for i in _check_layers(model, layers):
            undo.callback(model.layers[i].ffn.register_forward_hook(
                lambda _m, _a, out: torch.zeros_like(out)).remove)
        yield


@dataclass
class LensResult:
    """The logit lens over ``L + 1`` read-outs (0 = the embeddings, ``L`` = the model's output).

    loss / accuracy / agree_final: per read-out, over the labelled tokens (lists of ``L + 1``).
    logits: ``(L + 1, N, V)`` decoded logits of the ``N`` labelled tokens; targets: ``(N,)``.
    """

    loss: List[float]
    accuracy: List[float]
    agree_final: List[float]
    logits: Tensor
    targets: Tensor


def logit_lens(model, input_ids: Tensor, labels: Tensor) -> LensResult:
    """Decode every layer's residual stream with the final norm and output head (``model.unembed``)."""
    if labels.shape != input_ids.shape:
        raise ValueError(f"labels must have the shape of input_ids {tuple(input_ids.shape)}, got {tuple(labels.shape)}")
    keep = labels != -100
    if not bool(keep.any()):
        raise ValueError("labels has no target (all -100): nothing to score")
    with _eval_mode(model), torch.no_grad():
        hidden = model(input_ids, capture=True).captured["hidden_states"]     # (L + 1) x (B, T, D)
        logits = torch.stack([model.unembed(h)[keep] for h in hidden])        # (L + 1, N, V)
    targets = labels[keep]
    final = logits[-1].argmax(-1)
    loss = [float(F.cross_entropy(lg, targets)) for lg in logits]
    acc = [float((lg.argmax(-1) == targets).float().mean()) for lg in logits]
    agree = [float((lg.argmax(-1) == final).float().mean()) for lg in logits]
    return LensResult(loss, acc, agree, logits, targets)


@dataclass
class ExitResult:
    """Early exit at one threshold: accuracy, mean number of blocks run (of ``n_layers``), and the
    fraction of tokens that left before the last block."""

    threshold: float
    accuracy: float
    mean_blocks: float
    exited_early: float


def early_exit(lens: LensResult, thresholds: Sequence[float], min_layer: int = 1) -> List[ExitResult]:
    """Each token stops at the first read-out ``>= min_layer`` whose top softmax probability reaches
    the threshold (else at the last) and answers with that read-out's top token."""
    n_read = lens.logits.shape[0]
    if not 0 <= min_layer < n_read:
        raise ValueError(f"min_layer={min_layer} must lie in [0, {n_read - 1}]")
    conf = lens.logits.softmax(-1).amax(-1)                                  # (L + 1, N)
    preds = lens.logits.argmax(-1)
    out = []
    for th in thresholds:
        ok = conf >= th
        ok[:min_layer] = False
        ok[-1] = True                                                        # the last read-out always answers
        exit_at = ok.float().argmax(0)                                       # first True per token
        chosen = preds.gather(0, exit_at[None])[0]
        out.append(ExitResult(float(th), float((chosen == lens.targets).float().mean()),
                              float(exit_at.float().mean()), float((exit_at < n_read - 1).float().mean())))
    return out


def ffn_hidden_zero_fraction(model, input_ids: Tensor) -> List[float]:
    """Per layer, the fraction of FFN hidden activations (the input of ``down_proj``) that are exactly 0."""
    dense = [layer.ffn for layer in model.layers if getattr(layer.ffn, "down_proj", None) is not None]
    if not dense:
        raise ValueError("the model has no dense FFN with a down_proj (ffn_type='none' or MoE)")
    counts: List[float] = []
    with contextlib.ExitStack() as undo, _eval_mode(model), torch.no_grad():
        for ffn in dense:
            undo.callback(ffn.down_proj.register_forward_pre_hook(
                lambda _m, args: counts.append(float((args[0] == 0).float().mean()))).remove)
        model(input_ids)
    return counts
