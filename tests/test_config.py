"""ModelConfig: presets, derived sizes, round trips and every contradiction raising ValueError."""
import pytest

from course_lib.config import ModelConfig


def test_minimind_preset_sizes():
    c = ModelConfig.minimind_26m()
    assert (c.dim, c.n_layers, c.n_heads, c.n_kv_heads, c.head_dim, c.ffn_dim, c.vocab_size) == \
        (512, 8, 8, 2, 64, 1408, 6400)
    assert c.rope_theta == 1e6 and c.tie_embeddings and c.norm_eps == 1e-5
    assert ModelConfig.preset("26m") == c


def test_derived_sizes_and_replace():
    c = ModelConfig(dim=256, n_heads=4)
    assert c.n_kv_heads == 4 and c.head_dim == 64 and c.ffn_dim == 704   # 8/3 * 256 rounded up to 64
    assert ModelConfig(dim=256, n_heads=4, ffn_type="gelu").ffn_dim == 1024
    assert ModelConfig(dim=256, n_heads=4, ffn_ratio=2.0).ffn_dim == 512
    d = c.replace(dim=128)
    assert d.head_dim == 32 and d.ffn_dim == 384
    assert c.replace(n_heads=8).n_kv_heads == 8                          # MHA stays MHA


def test_json_round_trip():
    c = ModelConfig.nano(pos="alibi", moe_experts=4, attn_scale=0.5)
    assert ModelConfig.from_dict(c.to_dict()) == c
    with pytest.raises(ValueError, match="unknown ModelConfig fields"):
        ModelConfig.from_dict({**c.to_dict(), "hidden": 3})


def test_context_length():
    c = ModelConfig.nano()
    assert c.context_length == 128
    assert c.replace(rope_scaling="pi", rope_scaling_factor=4.0).context_length == 512
    assert c.replace(rope_scaling="yarn", rope_scaling_factor=2.0, rope_original_max_seq_len=100).context_length == 200
    assert c.replace(pos="alibi").context_length == 128


@pytest.mark.parametrize("changes, words", [
    (dict(dim=100, n_heads=3), "not divisible"),
    (dict(n_kv_heads=3), "multiple of n_kv_heads"),
    (dict(pos="relative"), "pos="),
    (dict(rope_scaling="pi", rope_scaling_factor=2.0, pos="alibi"), "needs pos='rope'"),
    (dict(rope_scaling="yarn", rope_scaling_factor=0.5), "rope_scaling_factor"),
    (dict(rope_scaling_factor=2.0), "no effect with rope_scaling='none'"),
    (dict(norm_placement="middle"), "norm_placement"),
    (dict(norm_type="batchnorm"), "norm_type"),
    (dict(norm_placement="post", residual=False), "residual=False"),
    (dict(attn_scale="sqrt"), "attn_scale"),
    (dict(attn_scale=-1.0), "attn_scale"),
    (dict(tie_qk=True, tie_kv=True, n_kv_heads=4), "Q=K=V"),
    (dict(tie_qk=True), "n_kv_heads == n_heads"),
    (dict(use_wo=False, head_dim=8), "use_wo=False"),
    (dict(mask_fill="zero"), "attn_impl='naive'"),
    (dict(mask_fill="nan"), "mask_fill"),
    (dict(attn_impl="flash"), "attn_impl"),
    (dict(attn_impl="linear", pos="alibi"), "ALiBi"),
    (dict(attn_impl="linear", attn_scale="one"), "no effect with attn_impl='linear'"),
    (dict(ffn_type="swish"), "ffn_type"),
    (dict(moe_experts=4, moe_top_k=5), "moe_top_k"),
    (dict(moe_experts=4, ffn_type="none"), "needs an FFN"),
    (dict(moe_shared_expert=True), "moe_shared_expert"),
    (dict(moe_experts=-1), "moe_experts"),
    (dict(dropout=1.0), "dropout"),
    (dict(max_seq_len=0), "max_seq_len"),
    (dict(vocab_size=0), "vocab_size"),
    (dict(head_dim=7), "even head_dim"),
    (dict(rope_original_max_seq_len=0), "rope_original_max_seq_len"),
    (dict(init_std=0.0), "init_std"),
])
def test_contradictions_raise(changes, words):
    with pytest.raises(ValueError, match=words.replace("(", r"\(").replace(")", r"\)").replace("=", "=")):
        ModelConfig.nano(**changes)
