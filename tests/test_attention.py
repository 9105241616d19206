"""Attention against references written here: softmax(q k^T / sqrt(d) + mask) v with repeated KV heads."""
import math

import pytest
import torch
import torch.nn.functional as F

from course_lib.attention import (Attention, build_attention_mask, chunked_attention, linear_attention,
                                  linear_attention_recurrent, naive_attention, sdpa_attention)
from course_lib.config import ModelConfig
from course_lib.positions import alibi_bias, alibi_slopes


def reference(q, k, v, allowed=None, bias=None, scale=None):
    """Textbook attention in float64, KV heads repeated with repeat_interleave; ``allowed (B|1, 1|H, T, S)``."""
    H, Hkv = q.shape[1], k.shape[1]
    k = k.double().repeat_interleave(H // Hkv, dim=1)
    v = v.double().repeat_interleave(H // Hkv, dim=1)
    scale = 1 / math.sqrt(q.shape[-1]) if scale is None else scale
    s = q.double() @ k.transpose(-1, -2) * scale
    if bias is not None:
        s = s + bias.double()
    if allowed is not None:
        s = s.masked_fill(~allowed, float("-inf"))
    return (torch.softmax(s, dim=-1) @ v).float()


def qkv(B=2, H=4, Hkv=2, T=9, S=None, d=8):
    S = T if S is None else S
    return torch.randn(B, H, T, d), torch.randn(B, Hkv, S, d), torch.randn(B, Hkv, S, d)


def causal(T, S):
    return torch.ones(T, S, dtype=torch.bool).tril(diagonal=S - T)[None, None]


def padding(lengths, S):
    """(B, S) left-padding mask: the last ``n`` positions of each row are real."""
    return torch.stack([torch.arange(S) >= S - n for n in lengths]).long()


# ----------------------------------------------------------------------------- the mask
def test_mask_causal_with_offset_and_padding():
    m = build_attention_mask(padding([5, 3], 5), q_len=2, k_len=5, causal=True)
    assert m.shape == (2, 1, 2, 5)
    assert m[0, 0].tolist() == [[True, True, True, True, False], [True, True, True, True, True]]
    assert m[1, 0].tolist() == [[False, False, True, True, False], [False, False, True, True, True]]
    assert build_attention_mask(None, 1, 7, causal=True) is None      # one new token sees everything
    assert build_attention_mask(None, 4, 4, causal=False) is None


def test_fully_padded_query_rows_attend_to_themselves():
    m = build_attention_mask(padding([2], 4), 4, 4)
    assert m[0, 0, 0].tolist() == [True, False, False, False]         # pad row 0: itself only
    assert m[0, 0, 1].tolist() == [False, True, False, False]


# ----------------------------------------------------------------------------- implementations
@pytest.mark.parametrize("H, Hkv", [(4, 4), (4, 2), (4, 1)])
def test_sdpa_causal_gqa(H, Hkv):
    q, k, v = qkv(H=H, Hkv=Hkv)
    torch.testing.assert_close(sdpa_attention(q, k, v, is_causal=True, scale=1 / math.sqrt(8)),
                               reference(q, k, v, causal(9, 9)), atol=1e-5, rtol=1e-4)


def test_sdpa_padding_and_cache_offset():
    q, k, v = qkv(T=3, S=10)
    allowed = build_attention_mask(padding([10, 6], 10), 3, 10)
    torch.testing.assert_close(sdpa_attention(q, k, v, allowed, scale=1 / math.sqrt(8)),
                               reference(q, k, v, allowed), atol=1e-5, rtol=1e-4)


def test_sdpa_against_torch_sdpa_with_repeated_heads():
    """The same call, the reference being torch's own SDPA on explicitly repeated KV heads."""
    q, k, v = qkv(H=6, Hkv=2, T=5, S=12)
    allowed = build_attention_mask(padding([12, 4], 12), 5, 12)
    ref = F.scaled_dot_product_attention(q, k.repeat_interleave(3, 1), v.repeat_interleave(3, 1), attn_mask=allowed)
    torch.testing.assert_close(sdpa_attention(q, k, v, allowed), ref, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("with_bias", [False, True])
@pytest.mark.parametrize("T, S, lengths", [(9, 9, None), (9, 9, [9, 4]), (3, 20, [20, 11]), (1, 20, None)])
def test_naive_and_chunked_equal_reference(T, S, lengths, with_bias):
    q, k, v = qkv(T=T, S=S)
    allowed = build_attention_mask(padding(lengths, S) if lengths else None, T, S)
    bias = alibi_bias(alibi_slopes(4), T, S) if with_bias else None
    ref = reference(q, k, v, allowed, bias)
    out, scores, weights = naive_attention(q, k, v, allowed, bias, scale=1 / math.sqrt(8))
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-4)
    assert scores.shape == weights.shape == (2, 4, T, S)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 4, T))
    for block in (4, 7, 64):
        torch.testing.assert_close(chunked_attention(q, k, v, allowed, bias, 1 / math.sqrt(8), block_size=block),
                                   ref, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(sdpa_attention(q, k, v, allowed, bias=bias, scale=1 / math.sqrt(8)),
                               ref, atol=1e-5, rtol=1e-4)


def test_mask_fill_zero_leaks_the_future():
    q, k, v = qkv(T=6)
    allowed = causal(6, 6)
    leaky, scores, _ = naive_attention(q, k, v, allowed, scale=0.3, mask_fill="zero")
    v2 = v.clone()
    v2[:, :, -1] += 10.0                                               # change only the last value
    leaky2, _, _ = naive_attention(q, k, v2, allowed, scale=0.3, mask_fill="zero")
    assert (leaky2[:, :, 0] - leaky[:, :, 0]).abs().max() > 1e-2        # position 0 sees position 5
    assert (scores[:, :, 0, 1:] == 0).all()
    good, _, _ = naive_attention(q, k, v, allowed, scale=0.3)
    good2, _, _ = naive_attention(q, k, v2, allowed, scale=0.3)
    torch.testing.assert_close(good[:, :, :-1], good2[:, :, :-1])


def test_linear_attention_parallel_equals_recurrent():
    q, k, v = qkv(H=3, Hkv=3, T=10)
    par, A, w = linear_attention(q, k, v, causal(10, 10))
    rec, state = linear_attention_recurrent(q, k, v)
    torch.testing.assert_close(par, rec, atol=1e-5, rtol=1e-4)
    # Continue the recurrence from a state: same as running it in one go.
    first, st = linear_attention_recurrent(q[:, :, :6], k[:, :, :6], v[:, :, :6])
    rest, _ = linear_attention_recurrent(q[:, :, 6:], k[:, :, 6:], v[:, :, 6:], st)
    torch.testing.assert_close(torch.cat([first, rest], 2), rec, atol=1e-5, rtol=1e-4)
    assert (A >= 0).all() and (A[..., 0, 1:] == 0).all()
    assert state[0].shape == (2, 3, 8, 8)


# ----------------------------------------------------------------------------- the module
def test_module_impls_agree_and_capture():
    cfg = ModelConfig.nano()
    x = torch.randn(2, 11, 64)
    attn = Attention(cfg)
    allowed = build_attention_mask(padding([11, 5], 11), 11, 11)
    ref = attn(x, mask=allowed)
    for impl in ("naive", "chunked"):
        attn.impl = impl
        torch.testing.assert_close(attn(x, mask=allowed), ref, atol=1e-5, rtol=1e-4)
    attn.impl = "sdpa"
    captured = {"scores": [], "weights": [], "head_outputs": []}
    torch.testing.assert_close(attn(x, mask=allowed, captured=captured), ref, atol=1e-5, rtol=1e-4)
    assert captured["scores"][0].shape == (2, 4, 11, 11) and captured["head_outputs"][0].shape == (2, 4, 11, 16)
    assert torch.isinf(captured["scores"][0][1, :, -1, :6]).all()      # padding keys masked with -inf
    assert torch.isfinite(ref).all()


def test_head_mask_zeroes_one_head():
    cfg = ModelConfig.nano()
    attn = Attention(cfg)
    x = torch.randn(1, 5, 64)
    captured = {"scores": [], "weights": [], "head_outputs": []}
    attn(x, is_causal=True, captured=captured)
    heads = captured["head_outputs"][0]                                # (1, 4, 5, 16)
    keep = torch.tensor([1.0, 0.0, 1.0, 1.0])
    expected = attn.o_proj((heads * keep.view(1, 4, 1, 1)).transpose(1, 2).reshape(1, 5, 64))
    torch.testing.assert_close(attn(x, is_causal=True, head_mask=keep), expected, atol=1e-6, rtol=1e-5)
