"""Cross-entropy with a label mask and the reductions the course compares.

Labels are aligned with logits (``labels[b, t]`` is the target of ``logits[b, t]``); ``-100``
marks positions without loss (prompt tokens in SFT, padding). The loss is always computed in
float32: in bf16 the log-sum-exp over a large vocabulary loses the small differences training needs.
"""
from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F

IGNORE_INDEX = -100
REDUCTIONS = ("token_mean", "seq_mean", "sum", "none")


def masked_cross_entropy(logits: torch.Tensor, labels: torch.Tensor, reduction: str = "token_mean") -> torch.Tensor:
    """Cross-entropy of ``logits (B, T, V)`` against ``labels (B, T)``, ignoring ``-100``.

    reduction
        "token_mean": sum over unmasked tokens / their number (every token weighs the same).
        "seq_mean": mean over each sequence's unmasked tokens, then the mean over the sequences that
            have any (every sequence weighs the same, whatever its length).
        "sum": the plain sum over unmasked tokens.
        "none": the ``(B, T)`` per-token losses, 0 at masked positions.
    With no unmasked token at all the means are 0 (not NaN), and gradients stay defined.
    No value of a tensor is read on the host, so there is no device sync here.
    """
    if reduction not in REDUCTIONS:
        raise ValueError(f"loss_reduction={reduction!r} must be one of {REDUCTIONS}")
    if logits.dim() != 3 or labels.shape != logits.shape[:2]:
        raise ValueError(f"labels shape {tuple(labels.shape)} must equal logits shape[:2] "
                         f"{tuple(logits.shape[:2])} (logits are (B, T, V), labels (B, T))")
    B, T, V = logits.shape
    per_token = F.cross_entropy(logits.reshape(B * T, V).float(), labels.reshape(B * T).long(),
                                ignore_index=IGNORE_INDEX, reduction="none").view(B, T)
    if reduction == "none":
        return per_token
    if reduction == "sum":
        return per_token.sum()
    valid = (labels != IGNORE_INDEX)
    if reduction == "token_mean":
        return per_token.sum() / valid.sum().clamp(min=1)
    # seq_mean
    counts = valid.sum(dim=1)                                           # (B,)
    per_seq = per_token.sum(dim=1) / counts.clamp(min=1)                # (B,)
    has_tokens = (counts > 0).to(per_seq.dtype)
    return (per_seq * has_tokens).sum() / has_tokens.sum().clamp(min=1)


def warn_if_unshifted(input_ids: torch.Tensor, labels: torch.Tensor) -> None:
    """Warn when ``labels (B, T)`` equal ``input_ids (B, T)`` wherever they count: the Hugging Face
    habit ``labels=input_ids`` (shifted inside their models) given to labels that are aligned here,
    which would train the model to copy its current token (a loss that falls to 0, silently)."""
    if not (isinstance(labels, torch.Tensor) and isinstance(input_ids, torch.Tensor)) or labels.dim() != 2 or \
            labels.shape != input_ids.shape or labels.shape[1] < 2 or labels.dtype.is_floating_point:
        return                                     # not comparable; the model's input checks say why
    counted = labels != IGNORE_INDEX
    if bool(counted.any()) and bool(((labels == input_ids) | ~counted).all()):
        warnings.warn("labels equal input_ids: labels here are aligned with the logits (labels[:, t] is the "
                      "target of position t, i.e. input_ids[:, t + 1]), so this loss rewards copying the current "
                      "token. Pass shift_labels=True for Hugging Face-style labels, or shift them yourself "
                      "(-100 at the end)", stacklevel=5)   # the caller of model(...)
