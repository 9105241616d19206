"""course_lib.lab.params: analytic counts vs the built model vs hand arithmetic."""
import pytest
import torch

from course_lib.config import ModelConfig
from course_lib.model import Transformer
from course_lib.lab.params import breakdown, breakdown_of, bytes_for, naive_formula, shape_for_budget

SMALL = dict(vocab_size=97, dim=32, n_layers=2, n_heads=4, max_seq_len=16)
VARIANTS = [
    {},
    {"n_kv_heads": 2},
    {"n_kv_heads": 1, "tie_embeddings": False},
    {"pos": "learned"},
    {"ffn_type": "gelu"},
    {"ffn_type": "relu", "ffn_ratio": 2.0},
    {"ffn_type": "none"},
    {"norm_type": "layernorm"},
    {"norm_placement": "post"},
    {"qk_norm": True},
    {"tie_qk": True},
    {"tie_kv": True},
    {"use_wo": False},
    {"moe_experts": 3, "moe_top_k": 1},
    {"moe_experts": 2, "moe_shared_expert": True},
    {"head_dim": 4},
]


def _unique_count(model):
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())


@pytest.mark.parametrize("overrides", VARIANTS, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()) or "base")
def test_breakdown_matches_model(overrides):
    cfg = ModelConfig(**{**SMALL, **overrides})
    torch.manual_seed(0)
    model = Transformer(cfg)
    analytic, actual = breakdown(cfg), breakdown_of(model)
    assert analytic == actual
    assert analytic.total == model.num_parameters() == _unique_count(model)
    assert analytic.non_embedding == model.num_parameters(exclude_embeddings=True)


def test_minimind_by_hand():
    cfg = ModelConfig.minimind_26m()
    b = breakdown(cfg)
    d, hd, f, L = 512, 64, 1408, 8
    assert b.embedding == 6400 * d
    assert b.lm_head == 0  # tied
    assert b.attention == L * (d * 8 * hd + 2 * d * 2 * hd + 8 * hd * d)
    assert b.ffn == L * 3 * d * f
    assert b.norm == (2 * L + 1) * d
    assert b.total == 25_829_888
    assert abs(sum(b.shares().values()) - 1) < 1e-12


def test_naive_formula_reproduces_the_catalog_numbers():
    # questions.md §1: 3.28M + 8.39M + 11.18M = 22.85M; d=256 -> 6.53M; d=1024 -> 84.8M
    n = naive_formula(512, ffn_dim=1365)
    assert (round(n["embedding"] / 1e6, 2), round(n["attention"] / 1e6, 2), round(n["ffn"] / 1e6, 2)) == (3.28, 8.39, 11.18)
    assert round(n["total"] / 1e6, 2) == 22.85
    assert round(naive_formula(256)["total"] / 1e6, 2) == 6.53
    assert round(naive_formula(1024)["total"] / 1e6, 1) == 84.8


def test_shape_for_budget_hits_target():
    base = ModelConfig.tiny(vocab_size=512)
    target = breakdown(base).total
    for layers in (1, 2, 8):
        cfg = shape_for_budget(target, layers, base)
        assert cfg.n_layers == layers and cfg.dim % cfg.head_dim == 0
        assert abs(breakdown(cfg).total - target) / target < 0.2
    assert shape_for_budget(target, 4, base).dim == base.dim


def test_bytes_for():
    assert bytes_for(1000 * 512) == 2_048_000
    assert bytes_for(10, "bf16") == 20
    with pytest.raises(ValueError):
        bytes_for(1, "float8")
