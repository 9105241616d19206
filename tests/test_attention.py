"""Attention against references written here: softmax(q k^T / sqrt(d) + mask) v with repeated KV heads."""
import math

import pytest
import torch
import torch.nn.functional as F

from course_lib import attention as A
from course_lib.attention import (Attention, AttentionInputs, build_attention_mask, chunked_attention,
                                  linear_attention, linear_attention_recurrent, naive_attention, sdpa_attention)
from course_lib.config import ModelConfig
from course_lib.model import Transformer
from course_lib.positions import alibi_bias, alibi_slopes


def reference(q, k, v, allowed=None, bias=None, scale=None, normalize=None):
    """Textbook attention in float64, KV heads repeated with repeat_interleave; ``allowed (B|1, 1|H, T, S)``.
    ``normalize`` (default softmax) turns the float64 scores into weights."""
    H, Hkv = q.shape[1], k.shape[1]
    k = k.double().repeat_interleave(H // Hkv, dim=1)
    v = v.double().repeat_interleave(H // Hkv, dim=1)
    scale = 1 / math.sqrt(q.shape[-1]) if scale is None else scale
    s = q.double() @ k.transpose(-1, -2) * scale
    if bias is not None:
        s = s + bias.double()
    if allowed is not None:
        s = s.masked_fill(~allowed, float("-inf"))
    w = torch.softmax(s, dim=-1) if normalize is None else normalize(s)
    return (w @ v).float()


def linear_reference(q, k, v, allowed):
    """Linear attention in float64 from its definition: weights phi(q).phi(k) where allowed, row-normalised."""
    H, Hkv = q.shape[1], k.shape[1]
    phi = lambda x: torch.where(x > 0, x + 1, torch.exp(x))           # elu(x) + 1
    k = k.double().repeat_interleave(H // Hkv, dim=1)
    v = v.double().repeat_interleave(H // Hkv, dim=1)
    a = (phi(q.double()) @ phi(k).transpose(-1, -2)) * allowed
    return ((a / a.sum(-1, keepdim=True)) @ v).float()


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


# ----------------------------------------------------------------------------- the registry
def test_registry_holds_the_four_built_ins_and_config_accepts_registered_names():
    assert {"sdpa", "naive", "chunked", "linear"} <= set(A.ATTENTION_FUNCTIONS)
    with pytest.raises(ValueError, match="attn_impl='flash'.*register_attention"):
        ModelConfig.nano(attn_impl="flash")
    with pytest.raises(ValueError, match="already registered"):
        A.register_attention("sdpa", naive_attention)
    with pytest.raises(ValueError, match="fn="):
        A.register_attention("broken", None)


@pytest.mark.parametrize("name", ["sdpa", "naive", "chunked", "linear"])
@pytest.mark.parametrize("T, S, lengths, with_bias", [(9, 9, None, False), (9, 9, None, True), (9, 9, [9, 4], True),
                                                      (3, 20, [20, 11], False), (1, 20, None, True)])
@pytest.mark.parametrize("Hkv", [4, 2, 1])
def test_every_registered_function_equals_the_float64_reference(name, T, S, lengths, with_bias, Hkv):
    """One signature for all: ``fn(q, k, v, *, mask, bias, scale, dropout, causal) -> (out, weights or None)``."""
    if name == "linear" and with_bias:
        return                                                          # no scores to bias (config refuses it)
    q, k, v = qkv(T=T, S=S, Hkv=Hkv)
    allowed = build_attention_mask(padding(lengths, S) if lengths else None, T, S)
    if allowed is None:
        allowed = torch.ones(1, 1, T, S, dtype=torch.bool)
    bias = alibi_bias(alibi_slopes(4), T, S) if with_bias else None
    fn = A.get_attention(name)
    if name == "linear":
        ref = linear_reference(q, k, v, allowed)
    else:
        ref = reference(q, k, v, allowed, bias, scale=0.3)
    out, weights = fn(q, k, v, mask=allowed, bias=bias, scale=0.3, dropout=0.0, causal=False)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-4)
    if weights is not None:
        assert weights.shape == (2, 4, T, S)
        torch.testing.assert_close(weights.sum(-1), torch.ones(2, 4, T))
    if T == S and lengths is None and bias is None:                     # the implicit causal mask
        out, _ = fn(q, k, v, mask=None, bias=None, scale=0.3, dropout=0.0, causal=True)
        ref = linear_reference(q, k, v, causal(T, S)) if name == "linear" else reference(q, k, v, causal(T, S), scale=0.3)
        torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-4)


def test_sdpa_against_torch_sdpa_with_repeated_heads():
    """The reference being torch's own SDPA on explicitly repeated KV heads."""
    q, k, v = qkv(H=6, Hkv=2, T=5, S=12)
    allowed = build_attention_mask(padding([12, 4], 12), 5, 12)
    ref = F.scaled_dot_product_attention(q, k.repeat_interleave(3, 1), v.repeat_interleave(3, 1), attn_mask=allowed)
    torch.testing.assert_close(sdpa_attention(q, k, v, mask=allowed)[0], ref, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("block", [4, 7, 64])
def test_chunked_any_block_size(block):
    q, k, v = qkv(T=3, S=20)
    allowed = build_attention_mask(padding([20, 11], 20), 3, 20)
    torch.testing.assert_close(chunked_attention(q, k, v, mask=allowed, block_size=block)[0],
                               reference(q, k, v, allowed), atol=1e-5, rtol=1e-4)


def test_a_registered_function_is_used_by_the_model():
    calls = []

    def doubled_softmax(q, k, v, *, mask, bias, scale, dropout, causal):
        calls.append(causal)
        return naive_attention(q, k, v, mask=mask, bias=bias, scale=2 * scale, dropout=dropout, causal=causal)

    A.register_attention("test_doubled", doubled_softmax)
    try:
        cfg = ModelConfig.nano(n_layers=1)
        model = Transformer(cfg.replace(attn_impl="test_doubled")).eval()
        ref = Transformer(cfg.replace(attn_scale=2 / math.sqrt(cfg.head_dim))).eval()
        ref.load_state_dict(model.state_dict())
        x = torch.randint(0, cfg.vocab_size, (2, 7))
        with torch.no_grad():
            torch.testing.assert_close(model(x).logits, ref(x).logits, atol=1e-5, rtol=1e-4)
        assert calls == [True]
    finally:
        A.ATTENTION_FUNCTIONS.pop("test_doubled")


def test_mask_fill_zero_leaks_the_future():
    q, k, v = qkv(T=6)
    allowed = causal(6, 6)
    leaky, _ = naive_attention(q, k, v, mask=allowed, scale=0.3, mask_fill="zero")
    scores = A.attention_scores(q, k, mask=allowed, scale=0.3, mask_fill="zero")
    v2 = v.clone()
    v2[:, :, -1] += 10.0                                               # change only the last value
    leaky2, _ = naive_attention(q, k, v2, mask=allowed, scale=0.3, mask_fill="zero")
    assert (leaky2[:, :, 0] - leaky[:, :, 0]).abs().max() > 1e-2        # position 0 sees position 5
    assert (scores[:, :, 0, 1:] == 0).all()
    good, _ = naive_attention(q, k, v, mask=allowed, scale=0.3)
    good2, _ = naive_attention(q, k, v2, mask=allowed, scale=0.3)
    torch.testing.assert_close(good[:, :, :-1], good2[:, :, :-1])


# ----------------------------------------------------------------------------- normalisers
def _one_hot_argmax(s):
    return F.one_hot(s.argmax(-1), s.shape[-1]).to(s.dtype)


@pytest.mark.parametrize("name, ref_normalize", [
    ("softmax", lambda s: torch.softmax(s, -1)),
    ("hard", _one_hot_argmax),
    ("straight_through", _one_hot_argmax),
    ("gumbel_hard", None),
    ("uniform", lambda s: torch.isfinite(s).double() / torch.isfinite(s).double().sum(-1, keepdim=True)),
])
def test_normalizers_against_float64_references(name, ref_normalize):
    q, k, v = qkv(T=7)
    normalize = A.make_normalizer(name, generator=torch.Generator().manual_seed(0))
    out, weights = naive_attention(q, k, v, causal=True, scale=0.3, normalize=normalize)
    if ref_normalize is None:                                           # random, but one-hot on a visible key
        assert set(weights.unique().tolist()) <= {0.0, 1.0}
        assert (weights * ~causal(7, 7)).sum() == 0 and (weights.sum(-1) == 1).all()
        return
    torch.testing.assert_close(out, reference(q, k, v, causal(7, 7), scale=0.3, normalize=ref_normalize),
                               atol=1e-5, rtol=1e-4)


def test_gumbel_softmax_tends_to_the_argmax_at_low_temperature_and_is_seeded():
    s = torch.randn(4, 6, 9, dtype=torch.float64)
    g = lambda seed, tau: A.make_normalizer("gumbel", tau, torch.Generator().manual_seed(seed))(s)
    torch.testing.assert_close(g(0, 1.0), g(0, 1.0))
    cold = g(1, 1e-3)
    assert torch.allclose(cold, _one_hot_argmax(cold), atol=1e-6)


def test_hard_gives_no_gradient_straight_through_gives_the_softmax_gradient():
    s = torch.randn(3, 5, dtype=torch.float64, requires_grad=True)
    g = torch.randn(3, 5, dtype=torch.float64)
    assert not A.hard_weights(s).requires_grad                          # argmax: nothing flows back
    (A.make_normalizer("straight_through")(s) * g).sum().backward()
    expected = torch.autograd.grad((torch.softmax(s, -1) * g).sum(), s)[0]
    torch.testing.assert_close(s.grad, expected)


def test_normalizer_config_switch():
    with pytest.raises(ValueError, match="attn_normalizer='hard'.*attn_impl='naive'"):
        ModelConfig.nano(attn_normalizer="hard")
    with pytest.raises(ValueError, match="attn_normalizer='sparsemax'"):
        ModelConfig.nano(attn_impl="naive", attn_normalizer="sparsemax")
    cfg = ModelConfig.nano(attn_impl="naive")
    soft = Transformer(cfg).eval()
    hard = Transformer(cfg.replace(attn_normalizer="hard")).eval()
    hard.load_state_dict(soft.state_dict())
    x = torch.randint(0, cfg.vocab_size, (2, 9))
    with torch.no_grad():
        w = hard(x, capture=True).captured["weights"][0]
        assert set(w.unique().tolist()) <= {0.0, 1.0}
        assert not torch.allclose(hard(x).logits, soft(x).logits, atol=1e-4)
        soft.set_attn_normalizer("hard")
        torch.testing.assert_close(soft(x).logits, hard(x).logits)


# ----------------------------------------------------------------------------- the module
def test_module_impls_agree_and_capture():
    cfg = ModelConfig.nano()
    x = torch.randn(2, 11, 64)
    attn = Attention(cfg)
    allowed = build_attention_mask(padding([11, 5], 11), 11, 11)
    ref = attn(x, AttentionInputs(mask=allowed))
    for impl in ("naive", "chunked"):
        attn.configure(cfg.replace(attn_impl=impl))
        torch.testing.assert_close(attn(x, AttentionInputs(mask=allowed)), ref, atol=1e-5, rtol=1e-4)
    attn.configure(cfg)
    captured = {"scores": [], "weights": [], "head_outputs": []}
    torch.testing.assert_close(attn(x, AttentionInputs(mask=allowed, captured=captured)), ref, atol=1e-5, rtol=1e-4)
    assert captured["scores"][0].shape == (2, 4, 11, 11) and captured["head_outputs"][0].shape == (2, 4, 11, 16)
    assert torch.isinf(captured["scores"][0][1, :, -1, :6]).all()      # padding keys masked with -inf
    assert torch.isfinite(ref).all()


def test_head_mask_zeroes_one_head():
    cfg = ModelConfig.nano()
    attn = Attention(cfg)
    x = torch.randn(1, 5, 64)
    captured = {"scores": [], "weights": [], "head_outputs": []}
    attn(x, AttentionInputs(causal=True, captured=captured))
    heads = captured["head_outputs"][0]                                # (1, 4, 5, 16)
    keep = torch.tensor([1.0, 0.0, 1.0, 1.0])
    expected = attn.o_proj((heads * keep.view(1, 4, 1, 1)).transpose(1, 2).reshape(1, 5, 64))
    torch.testing.assert_close(attn(x, AttentionInputs(causal=True, head_mask=keep[None])), expected,
                               atol=1e-6, rtol=1e-5)


def test_tied_qk_with_qk_norm_scores_are_a_scaled_cosine():
    """Under tie_qk + qk_norm one gain serves q and k, so s_ij = scale * d * cos(q_i, q_j) at unit gain:
    symmetric and largest on the diagonal; with any shared gain still exactly symmetric."""
    cfg = ModelConfig.nano(n_layers=1, pos="none", causal=False, tie_qk=True, qk_norm=True, n_kv_heads=4,
                           norm_eps=1e-10)                            # eps would shift the cosine by 1e-3
    model = Transformer(cfg).eval()
    attn = model.layers[0].attn
    assert attn.k_norm is attn.q_norm
    assert sum(p.numel() for n, p in model.named_parameters() if "_norm" in n and ".attn." in n) == cfg.head_dim
    x = torch.randint(0, cfg.vocab_size, (2, 10))
    with torch.no_grad():
        s = model(x, capture=True).captured["scores"][0].double()      # (B, H, T, T)
        h = model.layers[0].attn_norm(model.embed_tokens(x))
        q = attn.q_proj(h).view(2, 10, cfg.n_heads, cfg.head_dim).transpose(1, 2).double()
        cos = F.cosine_similarity(q[..., :, None, :], q[..., None, :, :], dim=-1)
        torch.testing.assert_close(s, cfg.resolved_attn_scale * cfg.head_dim * cos, atol=1e-4, rtol=1e-4)
        assert (s.argmax(-1) == torch.arange(10)).all()                 # every position scores itself highest
        attn.q_norm.weight.copy_(torch.rand(cfg.head_dim) + 0.5)
        s = model(x, capture=True).captured["scores"][0]
        torch.testing.assert_close(s, s.transpose(-1, -2))
