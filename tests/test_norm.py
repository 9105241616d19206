"""RMSNorm against torch.nn.functional.rms_norm, and the norm factory."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from adapters import rmsnorm_function
from course_lib.config import ModelConfig
from course_lib.norm import RMSNorm, build_norm


@pytest.mark.skipif(not hasattr(F, "rms_norm"), reason="F.rms_norm needs torch >= 2.4")
def test_rmsnorm_matches_functional():
    norm = RMSNorm(48, eps=1e-5)
    with torch.no_grad():
        norm.weight.copy_(torch.randn(48))
    x = torch.randn(3, 7, 48) * 5 + 2
    torch.testing.assert_close(norm(x), F.rms_norm(x, (48,), norm.weight, 1e-5))


def test_rmsnorm_unit_rms_and_dtype():
    x = torch.randn(4, 64, dtype=torch.bfloat16) * 100
    y = RMSNorm(64)(x)
    assert y.dtype == torch.bfloat16
    rms = y.float().pow(2).mean(-1).sqrt()
    torch.testing.assert_close(rms, torch.ones(4), atol=1e-2, rtol=1e-2)


def test_rmsnorm_scale_invariant_but_not_shift_invariant():
    norm, x = RMSNorm(16), torch.randn(2, 16)
    torch.testing.assert_close(norm(3 * x), norm(x), atol=1e-5, rtol=1e-4)
    assert not torch.allclose(norm(x + 1), norm(x), atol=1e-3)


def test_build_norm():
    assert isinstance(build_norm(ModelConfig.nano(), 64), RMSNorm)
    ln = build_norm(ModelConfig.nano(norm_type="layernorm"), 64)
    assert isinstance(ln, nn.LayerNorm) and ln.eps == 1e-5


def test_rmsnorm_backward_matches_autograd_of_the_formula():
    """The hand-written backward against gradcheck and against autograd of the plain formula."""
    x = torch.randn(3, 5, 8, dtype=torch.float64, requires_grad=True)
    w = torch.randn(8, dtype=torch.float64, requires_grad=True)
    norm = RMSNorm(8, eps=1e-5).double()
    with torch.no_grad():
        norm.weight.copy_(w)
    assert torch.autograd.gradcheck(lambda a, b: rmsnorm_function(a, b, 1e-5), (x, w))
    g = torch.randn(3, 5, 8, dtype=torch.float64)
    ref = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5) * w
    gx, gw = torch.autograd.grad(ref, (x, w), g)
    y = norm(x)
    y.backward(g)
    torch.testing.assert_close(x.grad, gx)
    torch.testing.assert_close(norm.weight.grad, gw)
