"""Cross-entropy with a label mask and the reductions the course compares.

Labels are aligned with logits (``labels[b, t]`` is the target of ``logits[b, t]``); ``-100``
marks positions without loss (prompt tokens in SFT, padding). The loss is always computed in
float32: in bf16 the log-sum-exp over a large vocabulary loses the small differences training needs.

``bits_per_char`` measures a model on held-out text (``python -m course_lib eval``, the notebooks).
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Optional, Sequence

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


# ----------------------------------------------------------------------------- held-out text

@dataclass(frozen=True)
class BpcResult:
    """A model's loss on some text: ``nats_per_token`` is the mean NLL of the ``n_tokens`` predicted
    text tokens; ``bits_per_char`` their total NLL in bits over the ``n_chars`` characters."""

    bits_per_char: float
    nats_per_token: float
    n_tokens: int
    n_chars: int

    @property
    def tokens_per_char(self) -> float:
        return self.n_tokens / self.n_chars


def _text_token_stream(tokenizer, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor, int]:
    """``[BOS] doc [BOS] doc ...`` as one id stream, with a mask of the positions that carry chars."""
    if isinstance(texts, str):
        texts = [texts]
    ids, real = [], []
    for doc in tokenizer.encode_batch(list(texts)):
        ids.append(tokenizer.bos_id)
        real.append(False)
        ids.extend(doc)
        real.extend([True] * len(doc))
    n_chars = sum(len(t) for t in texts)
    return torch.tensor(ids, dtype=torch.long), torch.tensor(real), n_chars


@torch.no_grad()
def bits_per_char(model, tokenizer, texts: Sequence[str], seq_len: Optional[int] = None, batch_size: int = 16,
                  device=None, progress: bool = False) -> BpcResult:
    """Cross-entropy in bits per *character* of ``texts``: comparable across tokenizers.

    The texts become one stream ``[BOS] doc [BOS] doc ...``; windows of ``seq_len + 1`` tokens that
    overlap by one predict every text token exactly once (the BOS tokens are inputs, never targets).
    Bits per character = total NLL of the text tokens / ln 2 / number of characters. A per-token loss
    is *not* comparable across vocabularies: a token of a big vocabulary covers more text.
    ``progress``: a progress bar (stderr) when there are at least 8 batches.
    """
    seq_len = seq_len or model.config.max_seq_len
    device = device or next(model.parameters()).device
    stream, real, n_chars = _text_token_stream(tokenizer, texts)
    if n_chars == 0:
        raise ValueError("texts hold no characters")
    was_training = model.training
    model.eval()
    windows, masks = [], []
    for s in range(0, len(stream) - 1, seq_len):
        w = stream[s:s + seq_len + 1]
        m = real[s + 1:s + seq_len + 1]
        if len(w) < 2:
            break
        windows.append(w)
        masks.append(m)
    total, count = 0.0, 0
    starts = range(0, len(windows), batch_size)
    if progress:                                   # a bar on stderr for long texts (the eval command)
        from tqdm.auto import tqdm
        starts = tqdm(starts, desc="eval", unit="batch", leave=False, disable=len(starts) < 8)
    for i in starts:
        chunk, mchunk = windows[i:i + batch_size], masks[i:i + batch_size]
        T = max(len(w) for w in chunk) - 1
        x = torch.zeros(len(chunk), T, dtype=torch.long)
        y = torch.full((len(chunk), T), IGNORE_INDEX, dtype=torch.long)
        for r, (w, m) in enumerate(zip(chunk, mchunk)):
            n = len(w) - 1
            x[r, :n] = w[:-1]
            y[r, :n] = torch.where(m, w[1:], torch.tensor(IGNORE_INDEX))
        logits = model(x.to(device)).logits.float()
        y = y.to(device)
        nll = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), ignore_index=IGNORE_INDEX,
                              reduction="sum")
        total += float(nll)
        count += int((y != IGNORE_INDEX).sum())
    model.train(was_training)
    return BpcResult(total / math.log(2) / n_chars, total / max(count, 1), count, n_chars)
