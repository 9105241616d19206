"""Linear attention's three forms in float64, memory of chunked vs naive attention, FLOP formulas."""
import pytest
import torch

from course_lib.attention import linear_attention, linear_attention_recurrent
from course_lib.lab import efficient_attention as E


def reference_linear(q, k, v, eps=1e-6):
    """Causal linear attention straight from the definition, a double loop in float64."""
    phi = lambda x: torch.nn.functional.elu(x) + 1        # noqa: E731
    B, H, T, d = q.shape
    out = torch.zeros(B, H, T, v.shape[-1], dtype=torch.float64)
    for t in range(T):
        w = (phi(q[:, :, t, None]) * phi(k[:, :, :t + 1])).sum(-1)          # (B, H, t+1)
        out[:, :, t] = (w[..., None] * v[:, :, :t + 1]).sum(2) / (w.sum(-1, keepdim=True) + eps)
    return out


def test_parallel_recurrent_and_prefix_sum_forms_agree_in_float64():
    q, k, v = E.random_qkv(13, head_dim=5, n_heads=2, batch=2, seed=3, dtype=torch.float64)
    ref = reference_linear(q, k, v)
    par = linear_attention(q, k, v, causal=True)[0]
    rec, (kv, z) = linear_attention_recurrent(q, k, v)
    pre = E.linear_attention_prefix_sum(q, k, v)
    for out in (par, rec, pre):
        assert out.dtype == torch.float64
        torch.testing.assert_close(out, ref, atol=1e-12, rtol=1e-12)
    assert kv.shape == (2, 2, 5, 5) and z.shape == (2, 2, 5)     # the state does not grow with T


def test_recurrent_state_continues():
    q, k, v = E.random_qkv(10, head_dim=4, seed=1, dtype=torch.float64)
    whole, _ = linear_attention_recurrent(q, k, v)
    first, state = linear_attention_recurrent(q[:, :, :6], k[:, :, :6], v[:, :, :6])
    rest, _ = linear_attention_recurrent(q[:, :, 6:], k[:, :, 6:], v[:, :, 6:], state=state)
    torch.testing.assert_close(torch.cat([first, rest], dim=2), whole, atol=1e-12, rtol=0)


def test_chunked_forward_memory_is_linear_naive_quadratic():
    naive = [E.forward_peak_bytes("naive", n) for n in (256, 512)]
    chunked = [E.forward_peak_bytes("chunked", n) for n in (256, 512)]
    assert 3.5 < naive[1] / naive[0] < 4.5
    assert 1.7 < chunked[1] / chunked[0] < 2.3
    assert E.saved_bytes("naive", 256) > 0


def test_flop_formulas_match_the_flop_counter():
    for n, d in ((64, 16), (128, 32)):
        f = E.attention_flops(n, d)
        assert E.counted_flops("linear", n, d) == f["linear"]
        assert E.counted_flops("softmax", n, d) == f["softmax"]


def test_bad_input():
    with pytest.raises(ValueError, match="n="):
        E.attention_flops(0, 4)
    with pytest.raises(ValueError, match="form"):
        E.counted_flops("sparse", 8, 4)
    with pytest.raises(ValueError, match="backend"):
        E.sdpa_backend_cost("fast", 8)
