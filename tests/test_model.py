"""The whole model: parameter count, shapes, and logits equal to transformers' Llama with copied weights."""
import pytest
import torch

from course_lib import ModelConfig, Transformer

from conftest import left_padded_batch


def test_minimind_26m_parameter_count():
    model = Transformer(ModelConfig.minimind_26m())
    assert model.num_parameters() == 25_829_888
    # Non-embedding count leaves out the (tied) 6400 x 512 matrix.
    assert model.num_parameters(exclude_embeddings=True) == 25_829_888 - 6400 * 512


def test_forward_shapes_and_loss(nano_config):
    model = Transformer(nano_config)
    ids = torch.randint(0, nano_config.vocab_size, (2, 12))
    labels = torch.randint(0, nano_config.vocab_size, (2, 12))
    out = model(ids, labels=labels)
    assert out.logits.shape == (2, 12, nano_config.vocab_size)
    assert out.logits.dtype == torch.float32
    assert out.loss.ndim == 0 and torch.isfinite(out.loss)
    # At init the prediction is close to uniform: loss near ln(V) for random targets.
    assert abs(out.loss.item() - torch.log(torch.tensor(256.0)).item()) < 0.5
    out.loss.backward()
    assert model.embed_tokens.weight.grad is not None


def test_tied_embeddings_share_storage(nano_config):
    tied = Transformer(nano_config)
    assert tied.lm_head.weight is tied.embed_tokens.weight
    untied = Transformer(nano_config.replace(tie_embeddings=False))
    assert untied.lm_head.weight is not untied.embed_tokens.weight
    assert untied.num_parameters() == tied.num_parameters() + 256 * 64


# ----------------------------------------------------------------------------- vs transformers Llama
def _hf_llama(model: Transformer):
    transformers = pytest.importorskip("transformers")
    c = model.config
    hf_config = transformers.LlamaConfig(
        vocab_size=c.vocab_size, hidden_size=c.dim, intermediate_size=c.ffn_dim, num_hidden_layers=c.n_layers,
        num_attention_heads=c.n_heads, num_key_value_heads=c.n_kv_heads, head_dim=c.head_dim,
        max_position_embeddings=c.max_seq_len, rms_norm_eps=c.norm_eps, tie_word_embeddings=c.tie_embeddings,
        rope_theta=c.rope_theta, attention_bias=False, mlp_bias=False, attn_implementation="eager")
    hf = transformers.LlamaForCausalLM(hf_config).eval()
    sd = {"model.embed_tokens.weight": model.embed_tokens.weight, "model.norm.weight": model.norm.weight,
          "lm_head.weight": model.lm_head.weight}
    for i, layer in enumerate(model.layers):
        p = f"model.layers.{i}."
        sd[p + "input_layernorm.weight"] = layer.attn_norm.weight
        sd[p + "post_attention_layernorm.weight"] = layer.ffn_norm.weight
        for name in ("q_proj", "k_proj", "v_proj", "o_proj"):
            sd[p + f"self_attn.{name}.weight"] = getattr(layer.attn, name).weight
        for name in ("gate_proj", "up_proj", "down_proj"):
            sd[p + f"mlp.{name}.weight"] = getattr(layer.ffn, name).weight
    missing, unexpected = hf.load_state_dict({k: v.detach().clone() for k, v in sd.items()}, strict=False)
    assert not unexpected and all("rotary" in k for k in missing), (missing, unexpected)
    return hf


@pytest.mark.parametrize("overrides", [
    dict(),                                             # GQA 4/2, tied
    dict(tie_embeddings=False),
    dict(n_kv_heads=1),                                 # MQA
    dict(n_kv_heads=4, rope_theta=1e6),                 # MHA
    dict(head_dim=24),                                  # head_dim decoupled from dim / n_heads
])
def test_logits_match_transformers_llama(nano_config, overrides):
    model = Transformer(nano_config.replace(**overrides)).eval()
    # Perturb norm gains so that a swapped or skipped norm would show.
    with torch.no_grad():
        for n, p in model.named_parameters():
            if p.dim() == 1:
                p.add_(0.1 * torch.randn_like(p))
    hf = _hf_llama(model)
    ids = torch.randint(0, model.config.vocab_size, (2, 20))
    with torch.no_grad():
        ours = model(ids).logits
        ref = hf(ids).logits
    torch.testing.assert_close(ours, ref, atol=2e-5, rtol=1e-4)


def test_logits_match_transformers_llama_left_padded(nano_config):
    model = Transformer(nano_config).eval()
    hf = _hf_llama(model)
    ids, mask = left_padded_batch([7, 12, 3])
    with torch.no_grad():
        ours = model(ids, attention_mask=mask).logits
        ref = hf(ids, attention_mask=mask).logits
    real = mask.bool()
    torch.testing.assert_close(ours[real], ref[real], atol=2e-5, rtol=1e-4)
    assert torch.isfinite(ours).all()                   # pad rows attend to themselves: no NaN
