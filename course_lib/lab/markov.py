"""A second-order Markov source whose next-token distribution is known for every prefix.

Text cannot tell us the true next-token distribution after a prefix the model made up itself; a
synthetic source can. :class:`MarkovSource` draws, for every pair of symbols (a, b), a small set of
allowed successors and their probabilities, then samples sequences from it. Notebook 02 uses it to
measure exposure bias: the KL divergence from the true next-token distribution on true prefixes
(teacher forcing) and on prefixes the model sampled itself (free running).

Shapes: sequences are (N, L) long tensors; per-position results are (N, L - 2), for the positions
t = 2 .. L - 1 whose two predecessors are known.
"""
from __future__ import annotations

from typing import Optional

import torch

__all__ = ["MarkovSource"]


class MarkovSource:
    """p*(x_t | x_{t-2}, x_{t-1}): ``n_successors`` allowed symbols per pair, Dirichlet(1) weights."""

    def __init__(self, n_symbols: int = 12, n_successors: int = 2, seed: int = 0):
        if n_symbols < 2:
            raise ValueError(f"n_symbols={n_symbols} must be at least 2")
        if not 1 <= n_successors <= n_symbols:
            raise ValueError(f"n_successors={n_successors} must be in [1, n_symbols={n_symbols}]")
        self.n_symbols, self.n_successors = n_symbols, n_successors
        g = torch.Generator().manual_seed(seed)
        k = n_symbols
        succ = torch.stack([torch.randperm(k, generator=g)[:n_successors] for _ in range(k * k)])   # (K*K, S)
        expo = -torch.rand(k * k, n_successors, generator=g).clamp_min(1e-12).log()  # Exp(1), normalised below:
        weights = expo / expo.sum(1, keepdim=True)                                     # a Dirichlet(1) draw, (K*K, S)
        #: (K*K, K): row a*K + b is p*(. | a, b)
        self.table = torch.zeros(k * k, k).scatter_(1, succ, weights)

    def sample(self, n: int, length: int, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """(n, length) sequences: two uniform symbols, then the chain."""
        if length < 3:
            raise ValueError(f"length={length} must be at least 3 (two context symbols and a next one)")
        x = torch.zeros(n, length, dtype=torch.long)
        x[:, :2] = torch.randint(0, self.n_symbols, (n, 2), generator=generator)
        for t in range(2, length):
            x[:, t] = torch.multinomial(self.next_distribution_at(x[:, t - 2], x[:, t - 1]), 1,
                                        generator=generator).squeeze(1)
        return x

    def next_distribution_at(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """(..., K) p*(. | a, b) for symbol tensors ``a``, ``b`` of the same shape."""
        return self.table[a * self.n_symbols + b]

    def next_distribution(self, seqs: torch.Tensor) -> torch.Tensor:
        """(N, L - 2, K): the true next-token distribution at t = 2 .. L - 1."""
        return self.next_distribution_at(seqs[:, :-2], seqs[:, 1:-1])

    def off_source(self, seqs: torch.Tensor) -> torch.Tensor:
        """(N, L - 2) bool: the transition into x_t has probability 0 under the source."""
        p = self.next_distribution(seqs).gather(2, seqs[:, 2:, None]).squeeze(2)
        return p == 0

    @torch.no_grad()
    def kl_per_position(self, model, seqs: torch.Tensor) -> torch.Tensor:
        """(N, L - 2) KL(p* || model) in nats at t = 2 .. L - 1; the model reads ``seqs[:, :t]``."""
        logq = model(seqs[:, :-1]).logits.float().log_softmax(-1)[:, 1:]        # predictions for t = 2 .. L-1
        p = self.next_distribution(seqs)
        return (p * (p.clamp_min(1e-12).log() - logq)).sum(-1)
