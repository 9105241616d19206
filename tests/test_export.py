"""Export: transformers' LlamaForCausalLM loads the folder and computes the same logits."""
import json
import os

import pytest
import torch

from course_lib.config import ModelConfig
from course_lib.export import export_hf_llama, llama_incompatibilities
from course_lib.model import Transformer

transformers = pytest.importorskip("transformers")


def _perturbed(config):
    model = Transformer(config).eval()
    with torch.no_grad():                       # non-trivial norm gains: a swapped norm would show
        for p in model.parameters():
            if p.dim() == 1:
                p.add_(0.1 * torch.randn_like(p))
    return model


@pytest.mark.parametrize("overrides", [
    dict(),                                       # GQA 4 heads / 2 KV heads, tied
    dict(tie_embeddings=False),
    dict(n_kv_heads=1, rope_theta=1e6),           # MQA
    dict(head_dim=24),                            # head_dim != dim / n_heads
    dict(rope_scaling="pi", rope_scaling_factor=2.0),
])
def test_hf_llama_loads_with_the_same_logits(tmp_path, overrides):
    model = _perturbed(ModelConfig.nano(**overrides))
    out = export_hf_llama(model, tmp_path / "hf", bos_token_id=1, eos_token_id=2)
    hf = transformers.LlamaForCausalLM.from_pretrained(out).eval()
    ids = torch.randint(0, 256, (2, 40))
    with torch.no_grad():
        torch.testing.assert_close(hf(ids).logits, model(ids).logits, atol=1e-4, rtol=1e-4)
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["tie_word_embeddings"] == model.config.tie_embeddings
    assert (cfg["eos_token_id"], cfg["bos_token_id"]) == (2, 1)
    assert hf.config.tie_word_embeddings == model.config.tie_embeddings
    if model.config.tie_embeddings:
        assert hf.lm_head.weight.data_ptr() == hf.model.embed_tokens.weight.data_ptr()


def test_yarn_scaling_exports_when_transformers_agrees(tmp_path):
    model = _perturbed(ModelConfig.nano(rope_scaling="yarn", rope_scaling_factor=4.0, rope_original_max_seq_len=64))
    hf = transformers.LlamaForCausalLM.from_pretrained(export_hf_llama(model, tmp_path / "hf")).eval()
    ids = torch.randint(0, 256, (1, 200))         # beyond the original 64 positions
    with torch.no_grad():
        torch.testing.assert_close(hf(ids).logits, model(ids).logits, atol=1e-4, rtol=1e-4)


def test_tokenizer_is_saved_alongside(tmp_path):
    from course_lib.tokenizer import train_tokenizer

    tok = train_tokenizer(["hello world, hello there", "今天天气很好"] * 10, vocab_size=280)
    out = export_hf_llama(Transformer(ModelConfig.nano()), tmp_path / "hf", tokenizer=tok)
    assert sorted(os.listdir(out)) == ["config.json", "generation_config.json", "model.safetensors",
                                       "tokenizer.json", "tokenizer_config.json"]
    cfg = json.loads((out / "config.json").read_text())
    assert (cfg["bos_token_id"], cfg["eos_token_id"], cfg["pad_token_id"]) == (1, 2, 0)
    with pytest.raises(ValueError, match="save"):
        export_hf_llama(Transformer(ModelConfig.nano()), tmp_path / "x", tokenizer=object())


@pytest.mark.parametrize("overrides,field", [
    (dict(pos="alibi"), "pos"), (dict(pos="learned"), "pos"), (dict(norm_placement="post"), "norm_placement"),
    (dict(norm_type="layernorm"), "norm_type"), (dict(qk_norm=True), "qk_norm"),
    (dict(n_kv_heads=4, tie_qk=True), "tie_qk"), (dict(n_kv_heads=4, tie_kv=True), "tie_kv"),
    (dict(use_wo=False), "use_wo"), (dict(ffn_type="gelu"), "ffn_type"), (dict(moe_experts=2), "moe_experts"),
    (dict(residual=False), "residual"), (dict(causal=False), "causal"), (dict(attn_scale="one"), "attn_scale"),
    (dict(rope_scaling="ntk", rope_scaling_factor=2.0), "rope_scaling"), (dict(attn_impl="linear"), "attn_impl"),
    (dict(attn_impl="naive", mask_fill="zero"), "mask_fill"),
])
def test_configs_llama_cannot_express_are_refused(tmp_path, overrides, field):
    config = ModelConfig.nano(**overrides)
    assert any(p.startswith(field + "=") for p in llama_incompatibilities(config))
    with pytest.raises(ValueError, match=field + "="):
        export_hf_llama(Transformer(config), tmp_path / "hf", format="llama")   # qk_norm alone: Qwen3's format
    assert not (tmp_path / "hf").exists()


def test_equivalent_settings_are_accepted():
    assert llama_incompatibilities(ModelConfig.nano(attn_impl="naive", dropout=0.1, attn_scale=0.25)) == []
