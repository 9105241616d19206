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
def _hf_llama(model: Transformer, rope_parameters=None):
    transformers = pytest.importorskip("transformers")
    c = model.config
    extra = {"rope_parameters": rope_parameters} if rope_parameters else {"rope_theta": c.rope_theta}
    hf_config = transformers.LlamaConfig(
        vocab_size=c.vocab_size, hidden_size=c.dim, intermediate_size=c.ffn_dim, num_hidden_layers=c.n_layers,
        num_attention_heads=c.n_heads, num_key_value_heads=c.n_kv_heads, head_dim=c.head_dim,
        max_position_embeddings=c.max_seq_len, rms_norm_eps=c.norm_eps, tie_word_embeddings=c.tie_embeddings,
        attention_bias=False, mlp_bias=False, attn_implementation="eager", **extra)
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


@pytest.mark.parametrize("ours, theirs", [("pi", {"rope_type": "linear"}),
                                          ("yarn", {"rope_type": "yarn", "original_max_position_embeddings": 128})])
def test_scaled_rope_matches_transformers_llama(nano_config, ours, theirs):
    model = Transformer(nano_config.replace(rope_scaling=ours, rope_scaling_factor=4.0)).eval()
    hf = _hf_llama(model, {"rope_theta": nano_config.rope_theta, "factor": 4.0, **theirs})
    ids = torch.randint(0, 256, (1, 300))                         # beyond the original 128 positions
    with torch.no_grad():
        torch.testing.assert_close(model(ids).logits, hf(ids).logits, atol=2e-5, rtol=1e-4)


# ----------------------------------------------------------------------------- every switch runs
SWITCHES = [
    dict(pos="none"), dict(pos="learned"), dict(pos="sinusoidal"), dict(pos="alibi"),
    dict(rope_scaling="ntk", rope_scaling_factor=2.0), dict(norm_placement="post"), dict(norm_type="layernorm"),
    dict(residual=False), dict(attn_scale="one"), dict(attn_scale="inv_d"), dict(attn_scale=0.1), dict(qk_norm=True),
    dict(n_kv_heads=4, tie_qk=True), dict(n_kv_heads=4, tie_kv=True), dict(use_wo=False), dict(causal=False),
    dict(attn_impl="naive", mask_fill="zero"), dict(ffn_type="gelu"), dict(ffn_type="relu"), dict(ffn_type="none"),
    dict(moe_experts=4, moe_top_k=1, moe_shared_expert=True), dict(attn_impl="naive"), dict(attn_impl="chunked"),
    dict(attn_impl="linear"), dict(identical_head_init=True), dict(dropout=0.1), dict(pos="alibi", causal=False),
]


@pytest.mark.parametrize("overrides", SWITCHES, ids=lambda d: ",".join(f"{k}={v}" for k, v in d.items()))
def test_every_switch_trains_and_captures(nano_config, overrides):
    model = Transformer(nano_config.replace(**overrides))
    ids, mask = left_padded_batch([10, 6])
    labels = torch.where(mask.bool(), torch.randint(0, 256, ids.shape), -100)
    out = model(ids, labels=labels, attention_mask=mask)
    assert torch.isfinite(out.logits).all() and torch.isfinite(out.loss)
    out.loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    model.eval()
    with torch.no_grad():
        plain = model(ids, attention_mask=mask).logits
        cap = model(ids, attention_mask=mask, capture=True)
    torch.testing.assert_close(cap.logits, plain, atol=1e-5, rtol=1e-4)


def test_switches_change_the_model(nano_config):
    """Each switch must actually change something: the outputs differ from the default model's."""
    ids = torch.randint(0, 256, (1, 12))
    torch.manual_seed(1)
    ref = Transformer(nano_config).eval()(ids).logits
    for overrides in [dict(pos="none"), dict(attn_scale="one"), dict(qk_norm=True), dict(causal=False),
                      dict(norm_placement="post"), dict(attn_impl="linear")]:
        torch.manual_seed(1)
        model = Transformer(nano_config.replace(**overrides)).eval()
        with torch.no_grad():
            for p in model.parameters():                    # norms away from 1 so qk_norm shows
                if p.dim() == 1:
                    p.mul_(1.5)
        assert not torch.allclose(model(ids).logits, ref, atol=1e-4), overrides


def test_causality(nano_config):
    model = Transformer(nano_config).eval()
    ids = torch.randint(0, 256, (1, 10))
    changed = ids.clone()
    changed[0, 7] = (ids[0, 7] + 1) % 256
    with torch.no_grad():
        a, b = model(ids).logits, model(changed).logits
    torch.testing.assert_close(a[:, :7], b[:, :7])
    assert not torch.allclose(a[:, 7:], b[:, 7:])
    leaky = Transformer(nano_config.replace(attn_impl="naive", mask_fill="zero")).eval()
    with torch.no_grad():
        assert not torch.allclose(leaky(ids).logits[:, :7], leaky(changed).logits[:, :7])


# ----------------------------------------------------------------------------- capture and hooks
def test_capture_contents(nano_config):
    model = Transformer(nano_config).eval()
    ids = torch.randint(0, 256, (2, 9))
    with torch.no_grad():
        plain = model(ids)
        out = model(ids, capture=True)
    assert plain.captured is None
    cap = out.captured
    L, H, d = nano_config.n_layers, nano_config.n_heads, nano_config.head_dim
    assert len(cap["scores"]) == len(cap["weights"]) == len(cap["head_outputs"]) == L
    assert cap["scores"][0].shape == cap["weights"][0].shape == (2, H, 9, 9)
    assert cap["head_outputs"][0].shape == (2, H, 9, d)
    assert len(cap["hidden_states"]) == L + 1 and cap["hidden_states"][0].shape == (2, 9, 64)
    assert torch.isinf(cap["scores"][0][0, 0, 0, 1:]).all()                  # causal: -inf above the diagonal
    torch.testing.assert_close(cap["weights"][1].sum(-1), torch.ones(2, H, 9))
    torch.testing.assert_close(model.unembed(cap["hidden_states"][-1]), out.logits)   # the logit lens
    torch.testing.assert_close(cap["hidden_states"][0], model.embed_tokens(ids))


def test_head_mask(nano_config):
    model = Transformer(nano_config).eval()
    ids = torch.randint(0, 256, (1, 8))
    with torch.no_grad():
        base = model(ids).logits
        ones = model(ids, head_mask=torch.ones(2, 4)).logits
        mask = torch.ones(2, 4)
        mask[1, 2] = 0.0
        cap = model(ids, head_mask=mask, capture=True)
    torch.testing.assert_close(ones, base)
    assert (cap.captured["head_outputs"][1][:, 2] == 0).all()
    assert not torch.allclose(cap.logits, base)


def test_identical_head_init_gives_identical_heads(nano_config):
    model = Transformer(nano_config.replace(n_kv_heads=4, identical_head_init=True, pos="none")).eval()
    with torch.no_grad():
        heads = model(torch.randint(0, 256, (1, 6)), capture=True).captured["head_outputs"][0]
    for h in range(1, 4):
        torch.testing.assert_close(heads[:, h], heads[:, 0])


def test_loss_reductions_and_alignment(nano_config):
    model = Transformer(nano_config)
    ids = torch.randint(0, 256, (2, 6))
    labels = torch.randint(0, 256, (2, 6))
    labels[0, :3] = -100
    out = model(ids, labels=labels, loss_reduction="none")
    assert out.loss.shape == (2, 6) and (out.loss[0, :3] == 0).all()
    ref = torch.nn.functional.cross_entropy(out.logits[1], labels[1], reduction="none")   # no shift inside
    torch.testing.assert_close(out.loss[1], ref)
    seq = model(ids, labels=labels, loss_reduction="seq_mean").loss
    torch.testing.assert_close(seq, (out.loss[0].sum() / 3 + out.loss[1].sum() / 6) / 2)


def test_bf16_autocast_forward_backward(nano_config):
    model = Transformer(nano_config)
    ids = torch.randint(0, 256, (2, 16))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(ids, labels=ids)
    assert out.logits.dtype == torch.float32 and torch.isfinite(out.loss)
    out.loss.backward()


# ----------------------------------------------------------------------------- length limits
def test_length_limit_and_allow_longer(nano_config):
    long = torch.randint(0, 256, (1, 129))
    with pytest.raises(ValueError, match=r"129 exceeds the context length 128.*allow_longer=True"):
        Transformer(nano_config)(long)
    for pos in ("rope", "alibi", "none", "sinusoidal"):
        out = Transformer(nano_config.replace(pos=pos)).eval()(long, allow_longer=True)
        assert out.logits.shape == (1, 129, 256)
    with pytest.raises(ValueError, match="learned position table; truncate"):
        Transformer(nano_config.replace(pos="learned"))(long, allow_longer=True)
    # RoPE scaling stretches the context: factor 2 -> 256 positions accepted as is.
    Transformer(nano_config.replace(rope_scaling="pi", rope_scaling_factor=2.0))(torch.randint(0, 256, (1, 256)))
    model = Transformer(nano_config).eval()
    cache = model.new_kv_cache(1, max_len=200)
    model(torch.randint(0, 256, (1, 100)), kv_cache=cache)
    with pytest.raises(ValueError, match="30 \\+ 100 cached positions = 130"):
        model(torch.randint(0, 256, (1, 30)), kv_cache=cache)


# ----------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("kwargs, words", [
    (dict(input_ids=[[1, 2, 3]]), "input_ids must be a torch.Tensor"),
    (dict(input_ids=torch.tensor([1, 2, 3])), r"input_ids must have shape \(B, T\)"),
    (dict(input_ids=torch.ones(1, 3)), "integer tensor"),
    (dict(input_ids=torch.ones(1, 0, dtype=torch.long)), "empty"),
    (dict(input_ids=torch.ones(0, 4, dtype=torch.long)), "empty"),
    (dict(input_ids=torch.tensor([[1, 256]])), r"token id 256, outside the vocabulary range \[0, 255\]"),
    (dict(input_ids=torch.tensor([[-1, 5]])), "token id -1"),
    (dict(attention_mask=torch.ones(2, 4)), r"attention_mask must have shape .*\(2, 5\)"),
    (dict(labels=torch.ones(2, 4, dtype=torch.long)), r"labels must have the shape of input_ids \(2, 5\)"),
    (dict(labels=torch.ones(2, 5)), "labels must be an integer tensor"),
    (dict(labels=torch.full((2, 5), 256)), r"labels contains 256; targets must lie in \[0, 255\]"),
    (dict(labels=torch.full((2, 5), -1)), "labels contains -1"),
    (dict(position_ids=torch.ones(2, 4, dtype=torch.long)), "position_ids must have shape"),
    (dict(head_mask=torch.ones(4)), r"head_mask must have shape \(n_layers, n_heads\) = \(2, 4\)"),
    (dict(loss_reduction="mean"), "loss_reduction='mean' must be one of"),
    (dict(kv_cache="cache"), "kv_cache must be a KVCache"),
])
def test_bad_input_raises_value_error(nano_config, kwargs, words):
    model = Transformer(nano_config)
    call = dict(input_ids=torch.ones(2, 5, dtype=torch.long))
    call.update(kwargs)
    with pytest.raises(ValueError, match=words):
        model(**call)


def test_int32_ids_are_accepted(nano_config):
    model = Transformer(nano_config).eval()
    ids = torch.randint(0, 256, (1, 5))
    torch.testing.assert_close(model(ids.int()).logits, model(ids).logits)


def test_set_attn_impl_keeps_weights(nano_config):
    model = Transformer(nano_config).eval()
    ids, mask = left_padded_batch([9, 4])
    with torch.no_grad():
        ref = model(ids, attention_mask=mask).logits
        for impl in ("naive", "chunked", "sdpa"):
            assert model.set_attn_impl(impl).config.attn_impl == impl
            torch.testing.assert_close(model(ids, attention_mask=mask).logits, ref, atol=1e-5, rtol=1e-4)
    with pytest.raises(ValueError, match="attn_impl"):
        model.set_attn_impl("flash")


@pytest.mark.parametrize("pos", ["rope", "alibi"])
def test_bf16_model_runs_with_cache(nano_config, pos):
    model = Transformer(nano_config.replace(pos=pos)).to(torch.bfloat16)
    ids, mask = left_padded_batch([8, 5])
    out = model(ids, labels=ids, attention_mask=mask)
    out.loss.backward()
    assert torch.isfinite(out.loss)
    cache = model.new_kv_cache(2, 12)
    assert cache.dtype == torch.bfloat16
    with torch.no_grad():
        model(ids, attention_mask=mask, kv_cache=cache)
        step = model(ids[:, -1:], attention_mask=torch.cat([mask, mask[:, -1:]], 1), kv_cache=cache)
    assert torch.isfinite(step.logits).all()
