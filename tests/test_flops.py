"""course_lib.lab.flops: the analytic counter against torch's own FlopCounterMode on real modules."""
import math

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from course_lib.config import ModelConfig
from course_lib.model import Transformer
from course_lib.lab.flops import (attention_matrix_peak_bytes, config_layer_flops, crossover_n, layer_flops,
                                  profiled_layer_flops, time_components)

SHAPES = [
    dict(dim=32, n_heads=4),
    dict(dim=64, n_heads=4, n_kv_heads=2),
    dict(dim=48, n_heads=3, head_dim=8),
    dict(dim=32, n_heads=2, ffn_type="gelu"),
    dict(dim=32, n_heads=1, ffn_type="relu", ffn_ratio=2.0),
    dict(dim=32, n_heads=4, tie_kv=True),
    dict(dim=32, n_heads=4, use_wo=False),
]


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: ",".join(f"{k}={v}" for k, v in s.items()))
@pytest.mark.parametrize("n,batch", [(16, 1), (24, 3)])
def test_counter_matches_flop_counter_mode_on_a_real_model(shape, n, batch):
    """Whole model on the CPU (naive attention, no mask): per-layer count x layers + lm_head."""
    cfg = ModelConfig(vocab_size=50, n_layers=2, max_seq_len=n, attn_impl="naive", causal=False, **shape)
    model = Transformer(cfg)
    ids = torch.randint(0, 50, (batch, n))
    with FlopCounterMode(display=False) as fc, torch.no_grad():
        model(ids)
    counts = fc.get_flop_counts()
    layer = config_layer_flops(cfg, n, batch=batch)
    lm_head = 2 * batch * n * cfg.dim * cfg.vocab_size
    assert fc.get_total_flops() == cfg.n_layers * layer.total + lm_head
    attn = sum(counts["Transformer.layers.0.attn"].values())
    assert attn == layer.attention
    ffn = sum(counts.get("Transformer.layers.0.ffn", {}).values())
    assert ffn == layer.ffn


def test_profiled_layer_flops_on_meta_agrees_at_llm_scale():
    """d = 4096, n = 2048 (the document's example), counted on the meta device in no time."""
    cfg = ModelConfig(vocab_size=8, dim=4096, n_layers=1, n_heads=32, ffn_ratio=4.0, ffn_type="gelu")
    prof = profiled_layer_flops(cfg, n=2048)
    ours = config_layer_flops(cfg, 2048)
    assert prof == {"projections": ours.projections, "core": ours.core, "ffn": ours.ffn, "total": ours.total}
    # textbook arithmetic: 8nD^2 projections, 16nD^2 FFN (4x GELU), 4n^2D core
    n, D = 2048, 4096
    assert (ours.projections, ours.ffn, ours.core) == (8 * n * D * D, 16 * n * D * D, 4 * n * n * D)


def test_causal_counts_the_lower_triangle():
    full, causal = layer_flops(10, 16, 2), layer_flops(10, 16, 2, causal=True)
    assert causal.core * 100 == full.core * 55
    assert causal.projections == full.projections and causal.ffn == full.ffn


def test_crossover_is_where_the_counts_meet():
    for dim, heads in ((64, 1), (256, 4), (512, 8)):
        for part in ("projections+ffn", "ffn", "projections"):
            n_star = crossover_n(dim, heads, part=part)
            lo, hi = layer_flops(math.floor(n_star), dim, heads), layer_flops(math.ceil(n_star) + 1, dim, heads)
            other = {"projections+ffn": lambda f: f.projections + f.ffn, "ffn": lambda f: f.ffn,
                     "projections": lambda f: f.projections}[part]
            assert lo.core <= other(lo) and hi.core > other(hi)
    # with a 4x FFN (two matrices) the textbook n* = 6d (non-causal) and about 12d (causal)
    assert crossover_n(512, 8, ffn_type="gelu", ffn_dim=2048) == 6 * 512
    assert crossover_n(512, 8, ffn_type="gelu", ffn_dim=2048, causal=True) == 12 * 512 - 1


def test_bad_input_names_the_parameter():
    with pytest.raises(ValueError, match="n=0"):
        layer_flops(0, 16, 2)
    with pytest.raises(ValueError, match="ffn_type"):
        layer_flops(4, 16, 2, ffn_type="swish")
    with pytest.raises(ValueError, match="part="):
        crossover_n(16, 2, part="core")
    with pytest.raises(ValueError, match="n_heads=3"):
        time_components(8, 16, 3)
    with pytest.raises(ValueError, match="impl="):
        attention_matrix_peak_bytes(8, impl="flash")


def test_time_components_and_the_peak_bytes_of_the_n_by_n_matrices():
    t = time_components(32, 32, 2, repeats=1)
    assert set(t) == {"projections", "core", "ffn"} and all(v > 0 for v in t.values())
    # explicit: two float32 n x n matrices (scores, weights) + the (n, 8) output; fused: the output only
    assert attention_matrix_peak_bytes(256, head_dim=8) == 2 * 256 * 256 * 4 + 256 * 8 * 4
    # (the CPU flash kernel also returns one log-sum-exp per query: O(n), never O(n²))
    assert attention_matrix_peak_bytes(256, head_dim=8, impl="sdpa") <= 256 * 8 * 4 + 256 * 4


def test_core_to_rest_is_one_at_the_crossover():
    n_star = crossover_n(256, 4, ffn_type="gelu", ffn_dim=1024)
    assert layer_flops(int(n_star), 256, 4, ffn_type="gelu", ffn_dim=1024).core_to_rest == 1.0
