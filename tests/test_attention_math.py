"""course_lib.lab.attention_math against independent references: torch.softmax, autograd Jacobians,
scaled_dot_product_attention and closed forms."""
import math

import pytest
import torch
import torch.nn.functional as F

from course_lib.lab import attention_math as am


# ----------------------------------------------------------------------------- Monte Carlo of q·k
@pytest.mark.parametrize("dist", am.DISTRIBUTIONS)
def test_dot_product_variance_is_d_for_any_unit_variance_law(dist):
    var = am.dot_product_variance([4, 64, 512], n_samples=40_000, dist=dist, seed=1)
    for d, v in var.items():
        # sampling error of the variance is about sqrt(kurtosis-1)/sqrt(n) relative: < 3% here
        assert abs(v / d - 1) < 0.06, (dist, d, v)


def test_rademacher_products_are_exactly_pm1():
    x = am.dot_product_samples(1, 1000, dist="rademacher")
    assert set(x.tolist()) <= {-1.0, 1.0}


def test_loglog_slope_recovers_powers():
    xs = [1, 2, 4, 8, 16]
    assert am.loglog_slope(xs, [3 * x for x in xs]) == pytest.approx(1.0)
    assert am.loglog_slope(xs, [x ** 0.5 for x in xs]) == pytest.approx(0.5)
    with pytest.raises(ValueError):
        am.loglog_slope([1], [1])


def test_excess_kurtosis_closed_forms():
    g = torch.Generator().manual_seed(0)
    assert abs(am.excess_kurtosis(torch.randn(400_000, generator=g, dtype=torch.float64))) < 0.05
    # q·k/sqrt(d) with Gaussian entries: excess kurtosis exactly 6/d
    for d in (1, 4):
        x = am.dot_product_samples(d, 400_000, seed=3) / math.sqrt(d)
        assert am.excess_kurtosis(x) == pytest.approx(6 / d, rel=0.15)


def test_dot_product_samples_bad_input():
    with pytest.raises(ValueError, match="d="):
        am.dot_product_samples(0, 10)
    with pytest.raises(ValueError, match="dist="):
        am.dot_product_samples(4, 10, dist="cauchy")


# ----------------------------------------------------------------------------- softmax
def test_softmaxes_match_torch_and_naive_overflows_in_half():
    x = torch.randn(5, 7, dtype=torch.float64)
    assert torch.allclose(am.naive_softmax(x), torch.softmax(x, -1))
    assert torch.allclose(am.stable_softmax(x), torch.softmax(x, -1))
    big = torch.tensor([12.0, 0.0], dtype=torch.float16)  # exp(12) > 65504
    assert not torch.isfinite(am.naive_softmax(big)).all()
    ref = torch.softmax(big.double(), -1)
    assert torch.allclose(am.stable_softmax(big).double(), ref, atol=1e-3)
    f32 = torch.tensor([89.0, 0.0], dtype=torch.float32)  # exp(89) > 3.4e38
    assert not torch.isfinite(am.naive_softmax(f32)).all()
    assert torch.isfinite(am.stable_softmax(f32)).all()


def test_stable_softmax_fully_masked_row_is_zero():
    x = torch.tensor([[float("-inf")] * 3, [0.0, float("-inf"), 1.0]])
    p = am.stable_softmax(x)
    assert torch.equal(p[0], torch.zeros(3))
    assert torch.allclose(p[1], torch.softmax(x[1], -1))


def test_softmax_jacobian_matches_autograd():
    x = torch.randn(6, dtype=torch.float64)
    J_ref = torch.autograd.functional.jacobian(lambda s: torch.softmax(s, -1), x)
    J = am.softmax_jacobian(torch.softmax(x, -1))
    assert torch.allclose(J, J_ref, atol=1e-12)
    # batched
    xb = torch.randn(3, 4, dtype=torch.float64)
    Jb = am.softmax_jacobian(torch.softmax(xb, -1))
    for i in range(3):
        Ji = torch.autograd.functional.jacobian(lambda s: torch.softmax(s, -1), xb[i])
        assert torch.allclose(Jb[i], Ji, atol=1e-12)


def test_jacobian_norm_against_svd_and_limits():
    x = torch.randn(8, dtype=torch.float64) * 3
    J_ref = torch.autograd.functional.jacobian(lambda s: torch.softmax(s, -1), x)
    assert float(am.softmax_jacobian_norm(x)) == pytest.approx(float(torch.linalg.matrix_norm(J_ref, 2)))
    # uniform over n: J = I/n - 11^T/n^2, norm 1/n; two equal logits: norm 1/2
    assert float(am.softmax_jacobian_norm(torch.zeros(4))) == pytest.approx(0.25)
    assert float(am.softmax_jacobian_norm(torch.zeros(2))) == pytest.approx(0.5)
    assert float(am.softmax_jacobian_norm(torch.tensor([60.0, 0, 0]))) < 1e-20


def test_saturation_table_corrects_the_documents_rows():
    rows = am.saturation_table([2.0, 1.0, 0.5], [1, 2, 4, 8])
    ref = [torch.softmax(torch.tensor([2.0, 1.0, 0.5], dtype=torch.float64) * s, -1) for s in (1, 2, 4, 8)]
    for r, p in zip(rows, ref):
        assert torch.allclose(torch.tensor(r["probs"], dtype=torch.float64), p)
        assert r["max_p1mp"] == pytest.approx(float((p * (1 - p)).max()))
    # closed-form values at s=1 (the documents print 0.506 / 0.250)
    assert rows[0]["probs"][0] == pytest.approx(math.exp(2) / (math.exp(2) + math.e + math.exp(0.5)))
    assert rows[0]["max_p1mp"] == pytest.approx(0.2335, abs=1e-4)
    # saturation: both measures fall as the scale grows
    jn = [r["jac_norm"] for r in rows]
    assert all(a > b for a, b in zip(jn, jn[1:]))


def test_score_gap_for_ratio():
    assert am.score_gap_for_ratio(98) == pytest.approx(math.log(98))
    p = torch.softmax(torch.tensor([am.score_gap_for_ratio(98), 0.0], dtype=torch.float64), -1)
    assert float(p[0] / p[1]) == pytest.approx(98)
    with pytest.raises(ValueError):
        am.score_gap_for_ratio(0)


# ----------------------------------------------------------------------------- attention weights
def test_entropy_and_normalized_attention_entropy():
    T = 5
    uni_c = am.uniform_weights(T, causal=True, dtype=torch.float64)
    assert torch.allclose(am.attention_entropy(uni_c, causal=True, normalized=True), torch.ones(T, dtype=torch.float64))
    uni_b = am.uniform_weights(T, causal=False, dtype=torch.float64)
    assert torch.allclose(am.attention_entropy(uni_b, causal=False), torch.full((T,), math.log(T), dtype=torch.float64))
    eye = torch.eye(T, dtype=torch.float64)
    assert torch.allclose(am.attention_entropy(eye, causal=True, normalized=True)[1:], torch.zeros(T - 1, dtype=torch.float64))
    p = torch.tensor([0.5, 0.25, 0.25, 0.0])
    assert float(am.entropy(p)) == pytest.approx(1.5 * math.log(2))


@pytest.mark.parametrize("causal", [False, True])
def test_uniform_attention_is_softmax_of_equal_scores(causal):
    g = torch.Generator().manual_seed(0)
    v = torch.randn(2, 3, 6, 4, generator=g, dtype=torch.float64)
    zeros = torch.zeros(2, 3, 6, 6, dtype=torch.float64)
    w = am.normalize_scores(zeros, "softmax", causal=causal)
    assert torch.allclose(w @ v, am.uniform_attention(v, causal=causal))
    assert torch.allclose(am.normalize_scores(zeros, "uniform", causal=causal), w)
    if not causal:
        out = am.uniform_attention(v, causal=False)
        assert torch.allclose(out, out[..., :1, :].expand_as(out))  # every position identical


def test_attend_matches_sdpa():
    g = torch.Generator().manual_seed(1)
    q, k, v = (torch.randn(2, 3, 5, 8, generator=g) for _ in range(3))
    for causal in (False, True):
        out, w = am.attend(q, k, v, causal=causal)
        ref = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
        assert torch.allclose(out, ref, atol=1e-5)
        assert torch.allclose(w.sum(-1), torch.ones(2, 3, 5), atol=1e-6)


def test_hard_attention_gradients():
    g = torch.Generator().manual_seed(2)
    scores = torch.randn(4, 6, generator=g, requires_grad=True)
    v = torch.randn(6, 3, generator=g)
    w = am.hard_weights(scores)
    assert torch.equal(w.sum(-1), torch.ones(4)) and set(w.unique().tolist()) == {0.0, 1.0}
    assert not w.requires_grad  # argmax is not differentiable: nothing flows back
    w_st = am.hard_weights(scores, straight_through=True)
    assert torch.allclose(w_st, w)  # same forward values
    (w_st @ v).sum().backward()
    grad_st = scores.grad.clone()
    scores.grad = None
    (torch.softmax(scores, -1) @ v).sum().backward()
    assert torch.allclose(grad_st, scores.grad)  # the backward pass is softmax's


def test_gumbel_weights_limits():
    scores = torch.tensor([[2.0, 1.0, 0.0]])
    g = torch.Generator().manual_seed(0)
    w = am.gumbel_weights(scores.expand(20_000, 3), tau=1.0, generator=g)
    assert torch.allclose(w.sum(-1), torch.ones(20_000))
    # hard samples are distributed as softmax(scores) (the Gumbel-max trick)
    hard = am.gumbel_weights(scores.expand(20_000, 3), tau=0.5, hard=True, generator=g)
    freq = hard.detach().mean(0)
    assert torch.allclose(freq, torch.softmax(scores[0], -1), atol=0.02)
    cold = am.gumbel_weights(scores.expand(1000, 3), tau=1e-3, generator=g)
    assert float(cold.max(-1).values.mean()) > 0.98  # tau -> 0: one-hot (almost every row)
    with pytest.raises(ValueError):
        am.gumbel_weights(scores, tau=0)


def test_normalize_scores_rejects_unknown():
    with pytest.raises(ValueError, match="normalizer"):
        am.normalize_scores(torch.zeros(2, 2), "sparsemax")


# ----------------------------------------------------------------------------- measurements
def test_raw_score_stats_ignores_masked_entries_and_undoes_scale():
    g = torch.Generator().manual_seed(0)
    raw = torch.randn(2, 2, 64, 64, generator=g, dtype=torch.float64) * 3.0
    m = am.causal_mask(64)
    captured = (raw * 0.25).masked_fill(~m, float("-inf"))
    (st,) = am.raw_score_stats([captured], scale=0.25)
    vis = raw[..., m]
    assert st["var"] == pytest.approx(float(vis.var()))
    assert st["scaled_std"] == pytest.approx(float((vis * 0.25).std()))


def test_symmetry_and_diagonal_measures():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(16, 8, generator=g, dtype=torch.float64)
    W = torch.randn(8, 8, generator=g, dtype=torch.float64)
    S_tied = (x @ W) @ (x @ W).T
    assert am.symmetry_defect(S_tied) < 1e-12
    assert am.diagonal_argmax_rate(x @ x.T) > 0.9  # self-similarity dominates
    S_free = (x @ W) @ (x @ torch.randn(8, 8, generator=g, dtype=torch.float64)).T
    assert am.symmetry_defect(S_free) > 0.5
    eye = torch.eye(5)
    assert am.diagonal_mass(eye) == 1.0 and am.diagonal_argmax_rate(eye) == 1.0
