"""A counted n-gram language model with hand-built smoothing: the baseline of the Bitter Lesson.

Before neural language models, the best models of text were counts: how often did symbol w follow
the context h? Raw counts give probability 0 to anything unseen, so the counts are *smoothed*. This
one uses interpolated absolute discounting (Ney et al. 1994; Kneser-Ney without its continuation
counts): every seen count gives up a discount d, and the mass it frees goes to the next shorter
context,

    P_k(w | h) = max(c(h, w) - d, 0) / c(h)  +  d · N1+(h) / c(h) · P_{k-1}(w | h')

where h' drops the oldest symbol of h, N1+(h) counts the distinct symbols seen after h, and the
recursion ends in an add-one unigram ``P_1(w) = (c(w) + 1) / (total + V)``. A context never seen
(``c(h) = 0``) backs off entirely to ``P_{k-1}``.

    lm = NGramModel(order=3, vocab_size=V).fit(train_ids)    # ids: 1-D long tensor
    lm.prob(context=(5, 7), token=2)                          # P(2 | 5 7)
    lm.nll(val_ids)                                           # mean nats per predicted symbol
"""
from __future__ import annotations

import math
from collections import Counter, defaultdict
from typing import Sequence

import torch

__all__ = ["NGramModel"]


class NGramModel:
    """Interpolated absolute-discounting n-gram model over ids ``0 .. vocab_size - 1``."""

    def __init__(self, order: int, vocab_size: int, discount: float = 0.75):
        if not isinstance(order, int) or order < 1:
            raise ValueError(f"order={order!r} must be an int >= 1 (1 = unigram, 3 = trigram)")
        if not isinstance(vocab_size, int) or vocab_size < 2:
            raise ValueError(f"vocab_size={vocab_size!r} must be an int >= 2")
        if not 0 < discount < 1:
            raise ValueError(f"discount={discount} must lie in (0, 1); 0.75 is the usual choice")
        self.order, self.vocab_size, self.discount = order, vocab_size, discount
        self.counts: list[Counter] = [Counter() for _ in range(order)]   # [k]: (context of k, token) -> count
        self.context_totals: list[Counter] = [Counter() for _ in range(order)]
        self.followers: list[defaultdict] = [defaultdict(set) for _ in range(order)]

    def fit(self, ids) -> "NGramModel":
        """Count every n-gram of length 1..order in the 1-D sequence ``ids``; returns self."""
        seq = [int(t) for t in torch.as_tensor(ids).flatten().tolist()]
        if not seq:
            raise ValueError("ids is empty; fit needs at least one token")
        if min(seq) < 0 or max(seq) >= self.vocab_size:
            raise ValueError(f"ids must lie in [0, {self.vocab_size}); got range [{min(seq)}, {max(seq)}]")
        for k in range(self.order):                      # k = context length
            for i in range(k, len(seq)):
                h, w = tuple(seq[i - k:i]), seq[i]
                self.counts[k][h, w] += 1
                self.context_totals[k][h] += 1
                self.followers[k][h].add(w)
        return self

    def prob(self, context: Sequence[int], token: int) -> float:
        """P(token | the last ``order - 1`` symbols of ``context``)."""
        h = tuple(int(t) for t in context)[max(len(context) - (self.order - 1), 0):]
        return self._prob(h, int(token))

    def _prob(self, h: tuple, w: int) -> float:
        k = len(h)
        if k == 0:
            return (self.counts[0][(), w] + 1) / (self.context_totals[0][()] + self.vocab_size)
        lower = self._prob(h[1:], w)
        total = self.context_totals[k][h]
        if total == 0:
            return lower
        d = self.discount
        return (max(self.counts[k][h, w] - d, 0) + d * len(self.followers[k][h]) * lower) / total

    def nll(self, ids) -> float:
        """Mean negative log-likelihood (nats) of ``ids[1:]``, each symbol given up to ``order - 1`` before it."""
        seq = [int(t) for t in torch.as_tensor(ids).flatten().tolist()]
        if len(seq) < 2:
            raise ValueError("ids needs at least 2 tokens (one context, one prediction)")
        total = sum(-math.log(self.prob(seq[max(i - self.order + 1, 0):i], seq[i])) for i in range(1, len(seq)))
        return total / (len(seq) - 1)
