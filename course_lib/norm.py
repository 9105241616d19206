"""Normalisation layers: RMSNorm (the default) and LayerNorm, chosen by ``config.norm_type``."""
from __future__ import annotations

import torch
from torch import nn
from torch.autograd.function import once_differentiable


class _RMSNormFunction(torch.autograd.Function):
    """``y = x * r * w`` with ``r = 1 / sqrt(mean(x**2) + eps)``, keeping only ``x`` and ``r`` for backward.

    Written by hand for memory: autograd of the plain formula would also keep the normalised
    ``x * r``, one more ``(B, T, D)`` tensor per norm. With ``n = x * r`` and ``g_n = g * w``::

        dL/dw = sum over positions of g * n
        dL/dx = r * (g_n - n * mean(g_n * n))      (the mean over the last dimension)
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
        wide = torch.promote_types(x.dtype, torch.float32)                 # bf16 -> fp32, fp64 stays
        xf = x.to(wide)
        r = torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)             # (..., 1)
        ctx.save_for_backward(x, weight, r)
        return (xf * r * weight.to(wide)).to(x.dtype)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor):
        x, weight, r = ctx.saved_tensors
        n = x.to(r.dtype) * r
        g = grad.to(r.dtype)
        g_n = g * weight.to(r.dtype)
        dx = r * (g_n - n * (g_n * n).mean(-1, keepdim=True))
        dw = (g * n).reshape(-1, n.shape[-1]).sum(0)
        return dx.to(x.dtype), dw.to(weight.dtype), None


class RMSNorm(nn.Module):
    """``y = x / sqrt(mean(x**2) + eps) * weight`` over the last dimension.

    Unlike LayerNorm it neither subtracts the mean nor adds a bias: only the scale is normalised.
    The whole computation runs in at least float32 (bf16 squares lose precision) and the result is
    cast back to the input dtype once, at the end. The backward pass is written out in ``_RMSNormFunction``
    so that training keeps one activation per norm instead of two.
    """

    def __init__(self, dim: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x (..., dim) -> (..., dim)``, same dtype as ``x``."""
        return _RMSNormFunction.apply(x, self.weight, self.eps)

    def extra_repr(self) -> str:
        return f"{self.weight.shape[0]}, eps={self.eps}"


def build_norm(config, dim: int) -> nn.Module:
    """The norm layer a config asks for (``norm_type`` "rmsnorm" or "layernorm") over ``dim``."""
    if config.norm_type == "rmsnorm":
        return RMSNorm(dim, eps=config.norm_eps)
    if config.norm_type == "layernorm":
        return nn.LayerNorm(dim, eps=config.norm_eps)
    raise ValueError(f"norm_type={config.norm_type!r} must be 'rmsnorm' or 'layernorm'")
