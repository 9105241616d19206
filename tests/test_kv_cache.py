"""The model-level KV cache: prefill + decode gives the logits of a full recompute, and its size."""
import pytest
import torch

from course_lib import KVCache, ModelConfig, Transformer

from conftest import left_padded_batch


def incremental_logits(model, ids, mask, prefill):
    """Prefill ``prefill`` positions, then decode one token at a time; logits ``(B, T, V)``."""
    B, T = ids.shape
    cache = model.new_kv_cache(B, T + 3)
    m = lambda end: None if mask is None else mask[:, :end]
    outs = [model(ids[:, :prefill], attention_mask=m(prefill), kv_cache=cache).logits]
    for t in range(prefill, T):
        outs.append(model(ids[:, t:t + 1], attention_mask=m(t + 1), kv_cache=cache).logits)
    assert cache.length == T
    return torch.cat(outs, dim=1)


@pytest.mark.parametrize("overrides", [
    dict(),                                            # GQA 4/2
    dict(n_kv_heads=1),                                # MQA
    dict(n_kv_heads=4, pos="alibi"),
    dict(pos="learned"), dict(pos="sinusoidal"), dict(pos="none"),
    dict(attn_impl="chunked"), dict(attn_impl="linear"), dict(moe_experts=3, moe_top_k=2, qk_norm=True),
])
@pytest.mark.parametrize("padded", [False, True])
def test_prefill_plus_decode_equals_full_recompute(overrides, padded):
    model = Transformer(ModelConfig.nano(**overrides)).eval()
    if padded:
        ids, mask = left_padded_batch([14, 9, 5])
    else:
        ids, mask = torch.randint(0, 256, (2, 14)), None
    with torch.no_grad():
        full = model(ids, attention_mask=mask).logits
        inc = incremental_logits(model, ids, mask, prefill=6)
    real = torch.ones(ids.shape, dtype=torch.bool) if mask is None else mask.bool()
    torch.testing.assert_close(inc[real], full[real], atol=1e-5, rtol=1e-4)


def test_chunked_prefill_without_mask():
    """Two multi-token chunks through the cache (causal mask with an offset)."""
    model = Transformer(ModelConfig.nano()).eval()
    ids = torch.randint(0, 256, (2, 12))
    cache = model.new_kv_cache(2)
    with torch.no_grad():
        a = model(ids[:, :5], kv_cache=cache).logits
        b = model(ids[:, 5:], kv_cache=cache).logits
        torch.testing.assert_close(torch.cat([a, b], 1), model(ids).logits, atol=1e-5, rtol=1e-4)


def test_nbytes_formula_and_reset():
    cfg = ModelConfig.nano()                           # 2 layers, 2 KV heads, head_dim 16
    model = Transformer(cfg).eval()
    cache = model.new_kv_cache(3, max_len=40)
    assert isinstance(cache, KVCache) and cache.max_len == 40 and cache.nbytes() == 0
    with torch.no_grad():
        model(torch.randint(0, 256, (3, 7)), kv_cache=cache)
    assert cache.length == 7
    assert cache.nbytes() == 2 * cfg.n_layers * 3 * cfg.n_kv_heads * cfg.head_dim * 7 * 4
    assert cache.nbytes(filled_only=False) == 2 * cfg.n_layers * 3 * cfg.n_kv_heads * cfg.head_dim * 40 * 4
    half = model.new_kv_cache(1, 10, dtype=torch.bfloat16)
    assert half.keys[0].dtype == torch.bfloat16 and half.nbytes(filled_only=False) == 2 * 2 * 2 * 16 * 10 * 2
    cache.reset()
    assert cache.length == 0 and cache.nbytes() == 0
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert model.new_kv_cache(1, 4).dtype == torch.bfloat16          # the dtype keys are computed in
    assert "length=0/40" in repr(cache)


def test_gqa_cache_is_smaller():
    mha = Transformer(ModelConfig.nano(n_kv_heads=4)).new_kv_cache(1, 64)
    mqa = Transformer(ModelConfig.nano(n_kv_heads=1)).new_kv_cache(1, 64)
    assert mha.nbytes(filled_only=False) == 4 * mqa.nbytes(filled_only=False)


def test_cache_errors():
    model = Transformer(ModelConfig.nano()).eval()
    cache = model.new_kv_cache(2, max_len=8)
    with pytest.raises(ValueError, match="max_len=8"):
        model(torch.randint(0, 256, (2, 9)), kv_cache=cache)
    with pytest.raises(ValueError, match="batch_size=2"):
        model(torch.randint(0, 256, (3, 4)), kv_cache=cache)
    with pytest.raises(ValueError, match="causal=True"):
        Transformer(ModelConfig.nano(causal=False))(torch.ones(1, 2, dtype=torch.long),
                                                    kv_cache=KVCache(2, 1, 2, 16, 8))
    other = Transformer(ModelConfig.nano(n_kv_heads=1)).new_kv_cache(2, 8)
    with pytest.raises(ValueError, match="kv_heads"):
        model(torch.ones(2, 2, dtype=torch.long), kv_cache=other)
    with pytest.raises(ValueError, match="max_len"):
        KVCache(2, 1, 2, 16, 0)


def test_int8_cache_is_close_and_smaller():
    cfg = ModelConfig.nano()
    model = Transformer(cfg).eval()
    ids = torch.randint(0, 256, (2, 20))
    labels = torch.randint(0, 256, (2, 20))
    q8 = model.new_kv_cache(2, 24, quantize="int8")
    with torch.no_grad():
        full = model(ids, labels=labels)
        quant = model(ids, labels=labels, kv_cache=q8)
        step = model(ids[:, :1], kv_cache=q8).logits                # decoding goes on from the int8 past
    assert step.shape == (2, 1, 256)
    assert 0 < (quant.logits - full.logits).abs().max() < 0.05      # lossy, but only slightly
    assert abs(quant.loss.item() - full.loss.item()) < 1e-2
    elems = 2 * cfg.n_layers * 2 * cfg.n_kv_heads * 21
    assert q8.nbytes() == elems * cfg.head_dim * 1 + elems * 4       # int8 values + float32 scales
    with pytest.raises(ValueError, match="quantize='int4'"):
        model.new_kv_cache(1, quantize="int4")


def test_reorder_rows():
    model = Transformer(ModelConfig.nano()).eval()
    cache = model.new_kv_cache(3, 8)
    with torch.no_grad():
        model(torch.randint(0, 256, (3, 4)), kv_cache=cache)
    before = cache.keys[1][:, :, :4].clone()
    cache.reorder(torch.tensor([2, 2, 0]))
    torch.testing.assert_close(cache.keys[1][:, :, :4], before[[2, 2, 0]])
