"""course_lib.lab.heads: role scores on hand-built patterns, symmetry, permutation, the W_V·W_O fold,
ablation; each checked against an independent construction."""
import math

import pytest
import torch

from course_lib import ModelConfig, Transformer
from course_lib.lab import heads, probes


def _model(**kw):
    torch.manual_seed(0)
    base = dict(vocab_size=40, dim=32, n_layers=2, n_heads=4, n_kv_heads=4, ffn_dim=48, max_seq_len=32)
    base.update(kw)
    return Transformer(ModelConfig.nano(**base))


def _ids(B=3, T=16, seed=0, vocab=40):
    return torch.randint(3, vocab, (B, T), generator=torch.Generator().manual_seed(seed))


# ----------------------------------------------------------------------------- data and scores
def test_repeated_tokens_layout():
    d = heads.RepeatedTokens(50, seq_len=20, n_symbols=10, min_period=3, max_period=7, seed=3)
    assert d.input_ids.shape == d.labels.shape == (50, 20)
    for i in range(50):
        p = int(d.periods[i])
        body = d.input_ids[i, 1:].tolist() + [None]
        assert d.input_ids[i, 0] == 1 and len(set(d.input_ids[i, 1:p + 1].tolist())) == p
        for t in range(20):                       # labels[t] is the token after input_ids[t]
            if t < p:
                assert d.labels[i, t] == -100
            else:
                assert d.labels[i, t] == d.input_ids[i, t + 1 - p]   # one period back
        assert body[:-1] == d.labels[i, :-1].where(d.labels[i, :-1] >= 0, d.input_ids[i, 1:]).tolist()
    with pytest.raises(ValueError, match="max_period"):
        heads.RepeatedTokens(5, seq_len=10, n_symbols=10, min_period=3, max_period=6)


def test_induction_targets_match_a_loop():
    ids = _ids(B=4, T=20, vocab=9)
    got = heads.induction_targets(ids)
    for b in range(4):
        for t in range(20):
            prev = [j for j in range(t) if ids[b, j] == ids[b, t]]
            assert got[b, t] == (prev[-1] + 1 if prev else -1)


def _pattern(T, key_of_row):
    w = torch.zeros(T, T)
    w[0, 0] = 1
    for t in range(1, T):
        w[t, key_of_row(t)] = 1
    return w


def test_scores_on_hand_built_patterns():
    ids = torch.tensor([[1, 5, 6, 7, 8, 5, 6, 7, 8, 5, 6, 7]])
    T = ids.shape[1]
    target = heads.induction_targets(ids)[0]
    prev = _pattern(T, lambda t: t - 1)
    ind = _pattern(T, lambda t: int(target[t]) if target[t] >= 0 else 0)
    first = _pattern(T, lambda t: 0)
    uniform = torch.tril(torch.ones(T, T)) / torch.arange(1, T + 1).unsqueeze(1)
    back3 = _pattern(T, lambda t: max(t - 3, 0))
    w = torch.stack([prev, ind, first, uniform, back3]).unsqueeze(0)      # (1, 5, T, T)
    s = heads.layer_head_scores(w, ids)
    assert s["previous_token"][0] == pytest.approx(1) and s["distance"][0] == pytest.approx(1)
    assert s["induction"][1] == pytest.approx(1) and s["distance"][1] == pytest.approx(3, abs=1)
    assert s["first_token"][2] == pytest.approx(1)
    assert s["entropy"][3] == pytest.approx(1) and s["entropy"][0] == pytest.approx(0)
    assert s["fixed_offset"][4] == pytest.approx(1) and s["best_offset"][4] == 3
    # uniform rows give key t-1 a weight 1/(t+1): the mean over rows 1..T-1
    assert s["previous_token"][3] == pytest.approx(sum(1 / (t + 1) for t in range(1, T)) / (T - 1))
    roles = heads.classify_heads({k: v.unsqueeze(0) for k, v in s.items()})
    # in this sequence of period 4, offset 3 is also the induction target: induction wins the tie
    assert roles == [["previous_token", "induction", "first_token", "broad", "induction"]]


def test_pairwise_js_extremes():
    T = 6
    prev, first = _pattern(T, lambda t: t - 1), _pattern(T, lambda t: 0)
    same = torch.stack([prev, prev]).unsqueeze(0)
    assert heads.mean_pairwise_js(same) == pytest.approx(0, abs=1e-12)
    apart = torch.stack([prev, first]).unsqueeze(0)                          # disjoint except row 1
    assert heads.mean_pairwise_js(apart) == pytest.approx(math.log(2) * (T - 2) / (T - 1))


# ----------------------------------------------------------------------------- symmetry
def test_identical_init_gives_identical_gradients_and_random_init_does_not():
    x = _ids()
    for identical in (True, False):
        m = _model(identical_head_init=identical)
        m(x[:, :-1], labels=x[:, 1:]).loss.backward()
        if identical:
            assert heads.head_asymmetry(m) == 0
            assert heads.head_asymmetry(m, grad=True) < 1e-6
            assert torch.allclose(heads.head_grad_cosines(m, 0), torch.ones(4, 4, dtype=torch.float64), atol=1e-6)
        else:
            assert heads.head_asymmetry(m) > 0.1
            assert heads.head_grad_cosines(m, 0).fill_diagonal_(0).abs().max() < 0.9


def test_head_blocks_slices_the_projections():
    m = _model()
    b = heads.head_blocks(m, 1)
    a = m.layers[1].attn
    d = a.head_dim
    assert torch.equal(b[2, :d * 32].view(d, 32), a.q_proj.weight[2 * d:3 * d])
    assert torch.equal(b[2, -32 * d:].view(32, d), a.o_proj.weight[:, 2 * d:3 * d])
    with pytest.raises(ValueError, match="n_kv_heads"):
        heads.head_blocks(_model(n_kv_heads=2), 0)


# ----------------------------------------------------------------------------- permutation
def test_permuting_heads_keeps_the_function_and_moves_the_roles():
    m = _model()
    x = _ids()
    perm = [2, 0, 3, 1]
    p = heads.permuted_heads(m, 1, perm)
    with torch.no_grad():
        assert torch.allclose(m(x).logits, p(x).logits, atol=1e-5)
    w0, w1 = probes.capture(m, x)["weights"][1], probes.capture(p, x)["weights"][1]
    assert torch.allclose(w1, w0[:, perm], atol=1e-6)
    with pytest.raises(ValueError, match="permutation"):
        heads.permuted_heads(m, 0, [0, 0, 1, 2])


# ----------------------------------------------------------------------------- W_V · W_O
def test_fold_matches_the_explicit_product_in_float64():
    m = _model(n_heads=1, n_kv_heads=1).double()
    x = _ids()
    f = heads.fold_value_output(m)
    assert f.layers[0].attn.o_proj is None
    with torch.no_grad():
        assert torch.allclose(m(x).logits, f(x).logits, atol=1e-10)
        # independent reference: layer 0 by hand, A · X · W_V^T · W_O^T from the model's own tensors
        cap = probes.capture(m, x)
        layer = m.layers[0]
        h = layer.attn_norm(cap["hidden_states"][0])
        A = cap["weights"][0][:, 0].double()
        ref = A @ h @ layer.attn.v_proj.weight.T @ layer.attn.o_proj.weight.T
        got = A @ h @ f.layers[0].attn.v_proj.weight.T
        assert torch.allclose(ref, got, atol=1e-12)
    with pytest.raises(ValueError, match="n_heads=1"):
        heads.fold_value_output(_model())


def test_head_contributions_sum_to_the_attention_output():
    m = _model()
    x = _ids()
    seen = {}
    hook = m.layers[1].attn.register_forward_hook(lambda mod, inp, out: seen.setdefault("out", out))
    with torch.no_grad():
        m(x, capture=True)
    hook.remove()
    parts = heads.head_contributions(m, x, 1)
    assert parts.shape == (4, 3, 16, 32)
    assert torch.allclose(parts.sum(0), seen["out"], atol=1e-6)


# ----------------------------------------------------------------------------- ablation
def test_ablation_equals_zeroing_the_heads_wo_columns():
    m = _model()
    x = _ids()
    inp, lab = x[:, :-1], x[:, 1:]
    deltas = heads.ablation_deltas(m, inp, lab)
    base = heads.masked_loss(m, inp, lab)
    z = heads.permuted_heads(m, 0, [0, 1, 2, 3])     # a copy
    d = z.layers[0].attn.head_dim
    with torch.no_grad():
        z.layers[0].attn.o_proj.weight[:, d:2 * d] = 0
        ref = float(z(inp, labels=lab).loss)
    assert deltas[0, 1] == pytest.approx(ref - base, abs=1e-6)


def test_greedy_prune_limits():
    m = _model()
    x = _ids()
    inp, lab = x[:, :-1], x[:, 1:]
    none = heads.greedy_prune(m, inp, lab, max_rise=0.0)
    everything = heads.greedy_prune(m, inp, lab, max_rise=100.0)
    assert everything["mask"].sum(1).tolist() == [1, 1] and len(everything["order"]) == 6
    assert len(none["order"]) <= len(everything["order"])
    assert all(loss <= none["base"] for loss in none["losses"])
    with pytest.raises(ValueError, match="max_rise"):
        heads.greedy_prune(m, inp, lab, max_rise=-1)


def test_random_dropout_and_logit_lens():
    m = _model()
    x = _ids()
    inp, lab = x[:, :-1], x[:, 1:]
    zero = heads.random_head_dropout_loss(m, inp, lab, 0.0, draws=3)
    assert torch.allclose(zero, torch.full((3,), heads.masked_loss(m, inp, lab)))
    lens = heads.logit_lens_losses(m, inp, lab)
    assert len(lens) == 3 and lens[-1] == pytest.approx(heads.masked_loss(m, inp, lab), rel=1e-5)


def test_seed_verdict():
    assert heads.seed_verdict([1.0, 1.1], [2.0, 2.1], ("a", "b"))["verdict"] == "a lower"
    assert heads.seed_verdict([1.0, 1.5], [1.2, 1.3])["verdict"] == "about equal"
    with pytest.raises(ValueError, match="two seeds"):
        heads.seed_verdict([1.0], [2.0])
