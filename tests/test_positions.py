"""RoPE (relative property, complex-number reference, scaling vs transformers), sinusoidal, ALiBi."""
import math

import pytest
import torch

from course_lib.positions import (RotaryEmbedding, alibi_bias, alibi_slopes, apply_rope, rope_frequencies,
                                  rope_inv_freq, sinusoidal_embedding)


def _rotate(x, pos, head_dim=16, theta=1e4):
    """apply_rope on a single vector ``x (d,)`` at integer position ``pos``."""
    cos, sin = rope_frequencies(torch.tensor([[pos]]), head_dim, theta)
    return apply_rope(x.view(1, 1, 1, -1), cos, sin).view(-1)


def test_rope_dot_product_depends_only_on_offset():
    q, k = torch.randn(16, dtype=torch.float64).float(), torch.randn(16)
    for m, n in [(5, 2), (40, 37), (103, 100)]:                     # all offset 3
        torch.testing.assert_close(_rotate(q, m) @ _rotate(k, n), _rotate(q, 5) @ _rotate(k, 2),
                                   atol=1e-4, rtol=1e-4)
    assert not torch.isclose(_rotate(q, 5) @ _rotate(k, 2), _rotate(q, 5) @ _rotate(k, 1), atol=1e-3)


def test_rope_preserves_norm_and_position_zero_is_identity():
    x = torch.randn(16)
    torch.testing.assert_close(_rotate(x, 0), x)
    torch.testing.assert_close(_rotate(x, 77).norm(), x.norm())


def test_rope_equals_complex_multiplication_in_rotate_half_layout():
    """Independent reference: pair i is the complex number x[i] + j x[i + d/2], times e^{j pos w_i}."""
    d, pos = 16, torch.tensor([[0, 3, 11]])
    x = torch.randn(1, 2, 3, d)
    cos, sin = rope_frequencies(pos, d, theta=500.0)
    ours = apply_rope(x, cos, sin)
    w = 500.0 ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)
    z = torch.complex(x[..., : d // 2].double(), x[..., d // 2:].double())
    z = z * torch.polar(torch.ones(3, d // 2, dtype=torch.float64), pos[0, :, None].double() * w)
    ref = torch.cat((z.real, z.imag), dim=-1).float()
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-5)


def test_rope_scaling_formulas():
    base, _ = rope_inv_freq(16, 1e4)
    pi, f = rope_inv_freq(16, 1e4, "pi", 4.0)
    torch.testing.assert_close(pi, base / 4)
    assert f == 1.0
    ntk, _ = rope_inv_freq(16, 1e4, "ntk", 4.0)
    assert ntk[0] == base[0]                                        # highest frequency kept
    torch.testing.assert_close(ntk[-1], base[-1] / 4)               # lowest one divided by the factor
    yarn, factor = rope_inv_freq(16, 1e4, "yarn", 4.0, original_max_seq_len=64)
    assert factor == pytest.approx(0.1 * math.log(4) + 1)
    assert yarn[0] == base[0] and torch.isclose(yarn[-1], base[-1] / 4)


@pytest.mark.parametrize("kind, ours", [("linear", "pi"), ("yarn", "yarn")])
def test_rope_scaling_matches_transformers(kind, ours):
    transformers = pytest.importorskip("transformers")
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS
    params = {"rope_type": kind, "rope_theta": 1e4, "factor": 4.0}
    if kind == "yarn":
        params["original_max_position_embeddings"] = 64
    cfg = transformers.LlamaConfig(hidden_size=64, num_attention_heads=2, head_dim=32, max_position_embeddings=256,
                                   rope_parameters=params)
    ref, ref_factor = ROPE_INIT_FUNCTIONS[kind](cfg, "cpu")
    inv, factor = rope_inv_freq(32, 1e4, ours, 4.0, original_max_seq_len=64)
    torch.testing.assert_close(inv, ref.float(), atol=1e-7, rtol=1e-5)
    assert factor == pytest.approx(ref_factor)


def test_rotary_module_survives_bf16_cast():
    rope = RotaryEmbedding(16, 1e4).to(torch.bfloat16)
    pos = torch.tensor([[3000]])
    cos, _ = rope(pos)
    ref, _ = rope_frequencies(pos, 16, 1e4)
    torch.testing.assert_close(cos, ref)


def test_sinusoidal_matches_paper_formula():
    pe = sinusoidal_embedding(torch.arange(50)[None], 32)[0]        # (50, 32)
    pos, i = 17, 5
    assert pe[pos, 2 * i].item() == pytest.approx(math.sin(pos / 10000 ** (2 * i / 32)), abs=1e-6)
    assert pe[pos, 2 * i + 1].item() == pytest.approx(math.cos(pos / 10000 ** (2 * i / 32)), abs=1e-6)


def test_alibi_slopes():
    torch.testing.assert_close(alibi_slopes(8), torch.tensor([2.0 ** -(i + 1) for i in range(8)]))
    # 6 heads: the 4-head slopes, then every other slope of the 8-head sequence.
    expected = [2 ** -2, 2 ** -4, 2 ** -6, 2 ** -8, 2 ** -1, 2 ** -3]
    torch.testing.assert_close(alibi_slopes(6), torch.tensor(expected))


def test_alibi_bias_with_cache_offset():
    slopes = torch.tensor([0.5, 0.25])
    bias = alibi_bias(slopes, q_len=2, k_len=5)                     # queries at positions 3 and 4
    assert bias.shape == (1, 2, 2, 5)
    torch.testing.assert_close(bias[0, 0, 1], -0.5 * torch.tensor([4.0, 3.0, 2.0, 1.0, 0.0]))
    sym = alibi_bias(slopes, 3, 3, causal=False)
    torch.testing.assert_close(sym[0, 1], -0.25 * torch.tensor([[0.0, 1, 2], [1, 0, 1], [2, 1, 0]]))
