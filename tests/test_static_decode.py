"""The static-cache decode step (course_lib.kv_cache.StaticDecoder) against the eager sampler.

Reference: ``sample.generate(temperature=0, return_logits=True)``, which attends over a growing
slice of an ordinary ``KVCache``; and a full forward over the whole sequence without any cache.
"""
import pytest
import torch

from course_lib.config import ModelConfig
from course_lib.kv_cache import StaticDecoder, StaticKVCache
from course_lib.model import Transformer
from course_lib.sample import generate


def _model(seed=0, **overrides):
    torch.manual_seed(seed)
    return Transformer(ModelConfig.nano(**overrides)).eval()


@pytest.mark.parametrize("batch", [1, 3])
def test_static_step_equals_eager_generate(batch):
    model = _model()
    prompt = torch.randint(0, model.config.vocab_size, (batch, 7), generator=torch.Generator().manual_seed(1))
    ref_ids, ref_logits = generate(model, prompt, 24, temperature=0, return_logits=True)
    ids, logits = StaticDecoder(model, batch, 40).generate(prompt, 24)
    assert torch.equal(ids, ref_ids)
    torch.testing.assert_close(logits, ref_logits, rtol=1e-5, atol=1e-5)


def test_static_logits_equal_an_uncached_forward():
    model = _model(seed=3)
    prompt = torch.randint(0, model.config.vocab_size, (2, 5), generator=torch.Generator().manual_seed(2))
    ids, logits = StaticDecoder(model, 2, 16).generate(prompt, 8)
    with torch.no_grad():
        full = model(ids).logits                                  # (B, 13, V), causal, no cache
    torch.testing.assert_close(logits, full[:, 4:12], rtol=1e-5, atol=1e-5)


def test_decoder_is_reusable_and_checks_sizes():
    model = _model()
    dec = StaticDecoder(model, 1, 12)
    p = torch.tensor([[1, 2, 3]])
    a, _ = dec.generate(p, 6)
    b, _ = dec.generate(p, 6)                                     # reset between calls
    assert torch.equal(a, b)
    with pytest.raises(ValueError, match="max_len"):
        dec.generate(p, 10)
    with pytest.raises(ValueError, match="context_length"):
        StaticDecoder(model, 1, model.config.context_length + 1)


def test_static_cache_writes_position_and_self_slot():
    cache = StaticKVCache(1, 1, 1, 2, max_len=4)
    k = torch.ones(1, 1, 2, 2)
    cache.update(0, k, k)
    cache.advance(2)
    cache.start_static()
    assert int(cache.pos) == 2 and cache.length + 1 == cache.keys[0].shape[2] == 5
    new = torch.full((1, 1, 1, 2), 7.0)
    keys, _ = cache.update(0, new, new)
    assert keys.shape[2] == 5 and keys[0, 0, 2].tolist() == [7.0, 7.0] and keys[0, 0, -1].tolist() == [7.0, 7.0]


@pytest.mark.slow
def test_compiled_step_equals_eager():
    # torch.compile (inductor) of the step: a few minutes of compilation on a busy 2-core CPU
    model = _model()
    prompt = torch.randint(0, model.config.vocab_size, (1, 4), generator=torch.Generator().manual_seed(4))
    ref_ids, ref_logits = generate(model, prompt, 12, temperature=0, return_logits=True)
    ids, logits = StaticDecoder(model, 1, 20, compile=True).generate(prompt, 12)
    assert torch.equal(ids, ref_ids)
    torch.testing.assert_close(logits, ref_logits, rtol=1e-4, atol=1e-4)
