"""Position-wise feed-forward layers: the dense FFN (SwiGLU / GELU / ReLU) and a mixture of experts.

Dense: ``down(act(gate(x)) * up(x))`` for SwiGLU (three matrices, Llama names), ``down(act(up(x)))``
for GELU and ReLU (two matrices). No biases.

MoE: a router scores every expert per token, the ``top_k`` best run and their outputs are mixed by
the renormalised router probabilities; an optional shared expert runs on every token. The
load-balancing loss (Switch Transformer) is ``E * sum_e f_e * P_e`` with ``f_e`` the fraction of
(token, slot) assignments that go to expert ``e`` and ``P_e`` the mean router probability of ``e``:
it is 1 for perfectly uniform routing and grows as routing collapses onto few experts (max ``E``).
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable


class _SwiGLUFunction(torch.autograd.Function):
    """``silu(g) * u`` keeping only ``g`` and ``u`` for backward (``silu(g)`` is recomputed).

    Autograd of the plain expression would also keep ``silu(g)``: one more ``(B, T, hidden)``
    tensor per layer, the largest activations of the block. With ``s = sigmoid(g)``::

        d silu(g) / dg = s * (1 + g * (1 - s))
    """

    @staticmethod
    def forward(ctx, g: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(g, u)
        return F.silu(g) * u

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor):
        g, u = ctx.saved_tensors
        wide = torch.promote_types(g.dtype, torch.float32)       # float32 math for bf16, as F.silu's backward
        gf, uf, grad_f = g.to(wide), u.to(wide), grad.to(wide)
        s = torch.sigmoid(gf)
        dg = grad_f * uf * (s * (1 + gf * (1 - s)))
        du = grad_f * (gf * s)
        return dg.to(g.dtype), du.to(u.dtype)


def swiglu(g: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """``silu(g) * u`` (same values as the plain expression, less memory when training)."""
    return _SwiGLUFunction.apply(g, u)


class FeedForward(nn.Module):
    """``x (..., D) -> (..., D)`` through a hidden layer of ``hidden`` units."""

    def __init__(self, dim: int, hidden: int, kind: str = "swiglu", dropout: float = 0.0):
        super().__init__()
        if kind not in ("swiglu", "gelu", "relu"):
            raise ValueError(f"ffn_type={kind!r} must be one of ('swiglu', 'gelu', 'relu') here")
        self.kind = kind
        self.gate_proj = nn.Linear(dim, hidden, bias=False) if kind == "swiglu" else None
        self.up_proj = nn.Linear(dim, hidden, bias=False)
        self.down_proj = nn.Linear(hidden, dim, bias=False)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "swiglu":
            h = swiglu(self.gate_proj(x), self.up_proj(x))
        elif self.kind == "gelu":
            h = F.gelu(self.up_proj(x))
        else:
            h = F.relu(self.up_proj(x))
        return self.dropout(self.down_proj(h))


def load_balancing_loss(router_probs: torch.Tensor, expert_index: torch.Tensor, n_experts: int) -> torch.Tensor:
    """Switch-style auxiliary loss ``E * sum_e f_e P_e`` (1.0 when routing is perfectly uniform).

    router_probs: ``(N, E)`` softmax over experts for ``N`` tokens (gradients flow through here).
    expert_index: ``(N, k)`` chosen experts (counts only, no gradient).
    """
    counts = torch.zeros(n_experts, device=router_probs.device, dtype=torch.float32)
    counts.scatter_add_(0, expert_index.reshape(-1), torch.ones(expert_index.numel(), device=counts.device))
    f = counts / expert_index.numel()                                    # fraction of assignments
    P = router_probs.float().mean(dim=0)                                 # mean probability
    return n_experts * (f * P).sum()


class MoE(nn.Module):
    """Top-k mixture of ``n_experts`` feed-forward experts, optionally plus a shared expert.

    ``forward(x (B, T, D)) -> y (B, T, D)``; the load-balancing loss of that call is left in
    ``self.aux_loss`` (a scalar; the model sums it over layers). The router runs in float32.
    Expert dispatch gathers each expert's tokens (data-dependent shapes: fine eagerly; this path is
    not meant for ``torch.compile(fullgraph=True)``).
    """

    def __init__(self, dim: int, hidden: int, n_experts: int, top_k: int = 2, shared_expert: bool = False,
                 kind: str = "swiglu", dropout: float = 0.0):
        super().__init__()
        self.n_experts, self.top_k = n_experts, top_k
        self.router = nn.Linear(dim, n_experts, bias=False)
        self.experts = nn.ModuleList([FeedForward(dim, hidden, kind, dropout) for _ in range(n_experts)])
        self.shared_expert = FeedForward(dim, hidden, kind, dropout) if shared_expert else None
        self.aux_loss: Optional[torch.Tensor] = None          # set by every forward

    def route(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``x (N, D)`` -> ``probs (N, E)``, ``top_weights (N, k)`` (sum to 1), ``top_index (N, k)``."""
        probs = torch.softmax(self.router(x).float(), dim=-1)
        top_w, top_i = probs.topk(self.top_k, dim=-1)
        top_w = top_w / top_w.sum(dim=-1, keepdim=True)
        return probs, top_w, top_i

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, D = x.shape
        flat = x.reshape(B * T, D)
        probs, top_w, top_i = self.route(flat)
        out = torch.zeros_like(flat)
        for e, expert in enumerate(self.experts):
            token, slot = (top_i == e).nonzero(as_tuple=True)             # which tokens chose e, in which slot
            if token.numel() == 0:
                continue
            y = expert(flat[token]) * top_w[token, slot, None].to(flat.dtype)
            out.index_add_(0, token, y.to(out.dtype))
        if self.shared_expert is not None:
            out = out + self.shared_expert(flat)
        self.aux_loss = load_balancing_loss(probs, top_i, self.n_experts)
        return out.view(B, T, D)


def build_ffn(config) -> Optional[nn.Module]:
    """The feed-forward sublayer a config asks for: None (``ffn_type="none"``), a dense
    :class:`FeedForward`, or a :class:`MoE` when ``moe_experts > 0``."""
    if config.ffn_type == "none":
        return None
    if config.moe_experts:
        return MoE(config.dim, config.ffn_dim, config.moe_experts, config.moe_top_k, config.moe_shared_expert,
                   config.ffn_type, config.dropout)
    return FeedForward(config.dim, config.ffn_dim, config.ffn_type, config.dropout)
