"""course_lib.lab.position_probes and the ModelConfig.pos_concat_dim switch, against independent references:
numpy least squares, explicitly permuted inputs through a float64 attention written out by hand, the
angle-sum formulas in numpy, and subspace angles from numpy's SVD of explicit projections."""
import math

import numpy as np
import pytest
import torch

from course_lib import ModelConfig, Transformer
from course_lib.lab import position_probes as pp
from course_lib.positions import sinusoidal_embedding


def tiny(**kw):
    base = dict(vocab_size=17, dim=16, n_layers=2, n_heads=2, max_seq_len=32, pos="none", rope_theta=1e4)
    base.update(kw)
    return Transformer(ModelConfig(**base)).double().eval()


# ---------------------------------------------------------------- ridge probe vs numpy lstsq
def test_ridge_fit_matches_numpy_lstsq_and_recovers_planted_weights():
    g = np.random.default_rng(0)
    X = g.normal(size=(400, 6))
    w_true, b_true = g.normal(size=6), 3.5
    y = X @ w_true + b_true + 0.01 * g.normal(size=400)
    w, b = pp.ridge_fit(torch.tensor(X), torch.tensor(y), ridge=0.0)
    ref = np.linalg.lstsq(np.c_[X, np.ones(400)], y, rcond=None)[0]
    assert np.allclose(w.numpy(), ref[:6], atol=1e-8) and abs(b - ref[6]) < 1e-8
    assert np.allclose(w.numpy(), w_true, atol=0.01)
    pred = pp.ridge_predict(torch.tensor(X), w, b)
    r2_ref = 1 - ((y - pred.numpy()) ** 2).sum() / ((y - y.mean()) ** 2).sum()
    assert abs(pp.r2_score(torch.tensor(y), pred) - r2_ref) < 1e-12 and r2_ref > 0.999


def test_ridge_shrinks_and_rejects_bad_input():
    X, y = torch.randn(50, 3, dtype=torch.float64), torch.randn(50, dtype=torch.float64)
    assert pp.ridge_fit(X, y, 10.0)[0].norm() < pp.ridge_fit(X, y, 0.0)[0].norm()
    with pytest.raises(ValueError, match="ridge"):
        pp.ridge_fit(X, y, -1.0)
    with pytest.raises(ValueError, match="X must be"):
        pp.ridge_fit(X, y[:10])


def test_position_probe_scores_planted_position_and_no_position():
    class Fake:   # a "model" whose hidden state is a known function of position (or not)
        pass

    N, T, D = 20, 12, 5
    pos_feat = torch.zeros(N, T, D)
    pos_feat[..., 0] = torch.arange(T, dtype=torch.float32)          # a channel that is the position
    pos_feat[..., 1:] = torch.randn(N, T, D - 1)
    import course_lib.lab.position_probes as mod
    orig = mod.hidden_states
    try:
        mod.hidden_states = lambda model, ids: [pos_feat]
        good = pp.position_probe(Fake(), torch.zeros(N, T, dtype=torch.long), 0, ridge=0.0)
        mod.hidden_states = lambda model, ids: [torch.randn(N, T, D)]
        none = pp.position_probe(Fake(), torch.zeros(N, T, dtype=torch.long), 0, ridge=0.0)
    finally:
        mod.hidden_states = orig
    assert good["r2"] > 0.999 and good["mae"] < 1e-3
    assert none["r2"] < 0.1 and none["mae"] > 0.8 * none["mae_mean"]
    assert abs(none["mae_mean"] - np.mean(np.abs(np.arange(T) - (T - 1) / 2))) < 1e-9


# ---------------------------------------------------------------- permutations vs explicit permutation
def _attention_only_nope(x, wq, wk, wv, causal):
    """One head of softmax attention with no positions, float64, written out."""
    s = (x @ wq) @ (x @ wk).T / math.sqrt(wq.shape[1])
    if causal:
        s = s.masked_fill(torch.triu(torch.ones_like(s, dtype=torch.bool), 1), float("-inf"))
    return s.softmax(-1) @ (x @ wv)


def test_reference_attention_symmetries_match_what_the_check_reports():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(7, 8, generator=g, dtype=torch.float64)
    w = [torch.randn(8, 8, generator=g, dtype=torch.float64) for _ in range(3)]
    perm = pp.prefix_permutation(7, seed=1)
    bi = _attention_only_nope(x[perm], *w, causal=False) - _attention_only_nope(x, *w, causal=False)[perm]
    ca = _attention_only_nope(x[perm], *w, causal=True) - _attention_only_nope(x, *w, causal=True)[perm]
    assert bi.abs().max() < 1e-12 and ca.abs().max() > 1e-3
    # the library model, checked on explicitly permuted inputs
    ids = torch.randint(0, 17, (3, 7), generator=g)
    for causal, layers, eq_zero, last_zero in [(False, 2, True, True), (True, 1, False, True), (True, 2, False, False)]:
        m = tiny(causal=causal, n_layers=layers)
        errs = pp.permutation_errors(m, ids, perm)
        explicit = m(ids[:, perm]).logits - m(ids).logits[:, perm]
        assert abs(errs["equivariance"] - explicit.abs().max().item()) < 1e-12
        assert (errs["equivariance"] < 1e-10) == eq_zero, (causal, layers, errs)
        assert (errs["last_position"] < 1e-10) == last_zero, (causal, layers, errs)
    assert pp.permutation_errors(tiny(causal=False, pos="learned"), ids, perm)["equivariance"] > 1e-6


def test_permutation_inputs_validated():
    perm = pp.prefix_permutation(6, seed=3)
    assert perm[-1] == 5 and sorted(perm.tolist()) == list(range(6)) and not torch.equal(perm, torch.arange(6))
    with pytest.raises(ValueError, match="perm must be a permutation"):
        pp.permutation_errors(tiny(), torch.zeros(1, 6, dtype=torch.long), torch.tensor([0, 0, 1, 2, 3, 4]))
    with pytest.raises(ValueError, match="length=2"):
        pp.prefix_permutation(2)


def test_next_token_gap_zero_for_same_prompt_and_tv_bounds():
    m = tiny(pos="learned")
    a, b = torch.tensor([3, 4, 5, 6]), torch.tensor([5, 4, 3, 6])
    assert pp.next_token_gap(m, a, a)["tv"] == 0.0
    gap = pp.next_token_gap(m, a, b)
    assert 0 < gap["max_abs"] <= gap["tv"] * 2 and gap["tv"] <= 1


# ---------------------------------------------------------------- sinusoids vs numpy angle sums
def test_shift_matrix_against_numpy_trig_and_composition():
    dim, base = 12, 1e4
    omega = base ** (-np.arange(0, dim, 2) / dim)
    for p, k in [(0, 5), (17, 3), (1000, 250)]:
        pe = lambda t: np.stack([np.sin(t * omega), np.cos(t * omega)], -1).reshape(-1)
        assert np.allclose(pp.sinusoid_shift_matrix(dim, k, base).numpy() @ pe(p), pe(p + k), atol=1e-12)
    R = pp.sinusoid_shift_matrix(dim, 7)
    assert torch.allclose(R @ R.T, torch.eye(dim, dtype=torch.float64), atol=1e-12)
    assert torch.allclose(pp.sinusoid_shift_matrix(dim, 3) @ pp.sinusoid_shift_matrix(dim, 4), R, atol=1e-12)
    err = pp.shift_identity_error(dim, range(0, 200, 7), [1, 10, 100])
    assert err["float64"] < 1e-10 and err["lib"] < 1e-4
    with pytest.raises(ValueError, match="dim=7"):
        pp.sinusoid_shift_matrix(7, 1)


# ---------------------------------------------------------------- subspaces vs explicit projections
def test_principal_cosines_against_numpy():
    g = np.random.default_rng(1)
    A, B = g.normal(size=(40, 10)), g.normal(size=(30, 10))
    got = pp.principal_cosines(torch.tensor(A), torch.tensor(B), 3).numpy()

    def top(M, k):
        return np.linalg.svd(M - M.mean(0), full_matrices=False)[2][:k].T
    ref = np.linalg.svd(top(A, 3).T @ top(B, 3), compute_uv=False)
    assert np.allclose(got, ref, atol=1e-10)
    same = pp.principal_cosines(torch.tensor(A), torch.tensor(A @ np.eye(10)), 3)
    assert torch.allclose(same, torch.ones(3, dtype=torch.float64), atol=1e-8)
    rnd = pp.random_subspace_cosines(64, 1, trials=2000)
    assert abs(rnd.mean().item() - pp.expected_random_cosine(64)) < 0.01


# ---------------------------------------------------------------- the concat switch in the model
def test_pos_concat_puts_positions_in_the_last_channels():
    for pos in ("learned", "sinusoidal"):
        m = Transformer(ModelConfig(vocab_size=11, dim=16, n_layers=1, n_heads=2, max_seq_len=8, pos=pos,
                                    pos_concat_dim=4, tie_embeddings=False))
        ids = torch.randint(0, 11, (2, 6))
        h0 = pp.hidden_states(m, ids)[0]
        assert torch.equal(h0[..., :12], m.embed_tokens.weight[ids].detach())
        if pos == "learned":
            expected = m.pos_embed.weight[:6].detach().expand(2, -1, -1)
        else:
            expected = sinusoidal_embedding(torch.arange(6)[None], 4)[0].expand(2, -1, -1) * 0.02 * math.sqrt(2)
        assert torch.allclose(h0[..., 12:], expected, atol=1e-6)
        assert m.embed_tokens.weight.shape == (11, 12)


@pytest.mark.parametrize("kw,match", [
    (dict(pos="rope", pos_concat_dim=4, tie_embeddings=False), "needs pos 'learned' or 'sinusoidal'"),
    (dict(pos="learned", pos_concat_dim=4), "needs tie_embeddings=False"),
    (dict(pos="learned", pos_concat_dim=16, tie_embeddings=False), "pos_concat_dim=16"),
    (dict(pos="sinusoidal", pos_concat_dim=3, tie_embeddings=False), "must be even"),
])
def test_pos_concat_rejects_bad_configs(kw, match):
    with pytest.raises(ValueError, match=match):
        ModelConfig(vocab_size=11, dim=16, n_layers=1, n_heads=2, **kw)
