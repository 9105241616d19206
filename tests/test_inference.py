"""inference helpers against independent references: measured nbytes, full recompute, sample.generate."""
import math

import pytest
import torch

from adapters import reference_generate, reference_step_logits
from course_lib import ModelConfig, Transformer
from course_lib.lab import decode_cost as inf


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return Transformer(ModelConfig.nano(n_kv_heads=2)).eval()


def test_kv_formula_matches_measured_nbytes():
    for n_kv in (4, 2, 1):
        m = Transformer(ModelConfig.nano(n_heads=4, n_kv_heads=n_kv))
        for dtype in (torch.float32, torch.float16):
            cache = m.new_kv_cache(3, 40, dtype=dtype)
            if dtype == torch.float32:
                m(torch.randint(0, 256, (3, 17)), kv_cache=cache)     # a real prefill fills 17 positions
            else:
                cache.advance(17)                                     # same storage, counted as filled
            assert cache.nbytes() == inf.kv_cache_bytes(m.config, tokens=17, batch=3, dtype=dtype)
            assert cache.nbytes(filled_only=False) == inf.kv_cache_bytes(m, tokens=40, batch=3, dtype=dtype)


def test_model_cards_and_units():
    # LLaMA-7B is multi-head: 2 * 32 layers * 32 heads * 128 * 2048 tokens * 2 bytes = 1 GiB
    assert inf.kv_cache_bytes("LLaMA-7B", 2048, dtype="fp16") == 2 ** 30
    assert inf.MODEL_CARDS["LLaMA-7B"].attention == "MHA"
    assert inf.MODEL_CARDS["Llama-3-8B"].attention == "GQA"
    assert inf.kv_cache_bytes((32, 4, 128), 2048, dtype=torch.float16) == 128 * 2 ** 20   # the document says 64 MB: elements counted as bytes
    assert inf.kv_cache_bytes({"n_layers": 1, "n_kv_heads": 1, "head_dim": 1}, 10, 2, "int4") == 20
    assert inf.kv_bytes_per_token("MiniMind-26M", "fp32") == 2 * 8 * 2 * 64 * 4
    for bad in ("fp7", -1, True):
        with pytest.raises(ValueError):
            inf.bytes_per_element(bad)
    with pytest.raises(ValueError):
        inf.kv_cache_bytes("GPT-9", 10)
    with pytest.raises(ValueError):
        inf.kv_cache_bytes("LLaMA-7B", -1)


def test_cached_logits_equal_full_recompute(model):
    """The cached decode against decoding by full recomputation (every prefix through the model anew)."""
    prompt = torch.randint(0, 256, (2, 9), generator=torch.Generator().manual_seed(3))
    tokens, logits = inf.cached_decode_logits(model, prompt, 12)
    assert tokens.shape == (2, 21) and logits.shape == (2, 12, 256)
    assert torch.equal(tokens, reference_generate(model, prompt.tolist(), 12))
    ref = torch.stack(reference_step_logits(model, tokens, 12), dim=1)
    assert (logits - ref).abs().max() < 1e-4
    assert (inf.recompute_logits(model, tokens, 12) - ref).abs().max() < 1e-4   # one forward = every prefix


def test_left_pad():
    ids, mask = inf.left_pad([[5, 6, 7], [8]], pad_id=0)
    assert ids.tolist() == [[5, 6, 7], [0, 0, 8]] and mask.tolist() == [[1, 1, 1], [0, 0, 1]]
    with pytest.raises(ValueError):
        inf.left_pad([[1], []])


def test_timing_helpers_return_sane_numbers(model):
    assert inf.median_time(lambda: None, repeats=3) >= 0
    rows = inf.prefill_vs_decode(model, [8, 32], repeats=2)
    assert [r["length"] for r in rows] == [8, 32]
    for r in rows:
        assert r["prefill_s"] > 0 and r["decode_step_s"] > 0
        assert math.isclose(r["prefill_tok_s"], r["length"] / r["prefill_s"])
    sweep = inf.throughput_vs_batch(model, [1, 2], context_len=16, repeats=2)
    assert [r["batch"] for r in sweep] == [1, 2] and all(r["tok_s"] > 0 for r in sweep)
    # fill_cache leaves the cache as if 16 positions had been prefilled
    cache = inf.fill_cache(model, 2, 16)
    assert cache.length == 16 and cache.nbytes() == inf.kv_cache_bytes(model, 16, 2, torch.float32)
    # decode runs past max_seq_len for timing (RoPE model)
    assert inf.decode_step_time(model, model.config.max_seq_len, repeats=1, steps=2) > 0


def test_per_position_loss_matches_token_losses(model):
    g = torch.Generator().manual_seed(5)
    tokens = torch.randint(0, 256, (5, 33), generator=g)
    pl = inf.per_position_loss(model, tokens, batch_size=2)
    assert pl.shape == (32,)
    ref = torch.nn.functional.cross_entropy(model(tokens[:, :-1]).logits.transpose(1, 2), tokens[:, 1:],
                                            reduction="none").double().mean(0)
    assert torch.allclose(pl, ref, atol=1e-5)
    # past max_seq_len (128) for RoPE
    long = torch.randint(0, 256, (2, 200), generator=g)
    assert inf.per_position_loss(model, long).shape == (199,)


def test_generation_speedup_and_threads(model):
    prompt = torch.randint(0, 256, (1, 4), generator=torch.Generator().manual_seed(2))
    r = inf.generation_speedup(model, prompt, 8, repeats=1)
    assert r["cached_s"] > 0 and r["uncached_s"] > 0 and r["speedup"] > 0
    before = torch.get_num_threads()
    with inf.threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with inf.threads(None):
        assert torch.get_num_threads() == before
