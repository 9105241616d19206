"""Normalisation layers: RMSNorm (the default) and LayerNorm, chosen by ``config.norm_type``."""
from __future__ import annotations

import torch
from torch import nn


class RMSNorm(nn.Module):
    """``y = x / sqrt(mean(x**2) + eps) * weight`` over the last dimension.

    Unlike LayerNorm it neither subtracts the mean nor adds a bias: only the scale is normalised.
    The whole computation runs in float32 (bf16 squares lose precision) and the result is cast back
    to the input dtype once, at the end.
    """

    def __init__(self, dim: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x (..., dim) -> (..., dim)``, same dtype as ``x``."""
        xf = x.float()
        xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return (xf * self.weight.float()).to(x.dtype)

    def extra_repr(self) -> str:
        return f"{self.weight.shape[0]}, eps={self.eps}"


def build_norm(config, dim: int) -> nn.Module:
    """The norm layer a config asks for (``norm_type`` "rmsnorm" or "layernorm") over ``dim``."""
    if config.norm_type == "rmsnorm":
        return RMSNorm(dim, eps=config.norm_eps)
    if config.norm_type == "layernorm":
        return nn.LayerNorm(dim, eps=config.norm_eps)
    raise ValueError(f"norm_type={config.norm_type!r} must be 'rmsnorm' or 'layernorm'")
