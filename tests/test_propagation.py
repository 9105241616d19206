"""Signal-propagation instruments against independent references (manual autograd,
``torch.autograd.functional.jacobian``, float64 finite differences, plain SVD)."""
import math

import pytest
import torch

from course_lib import ModelConfig, Transformer
from course_lib.lab import propagation as P


def _model(**kw):
    torch.manual_seed(0)
    base = dict(vocab_size=50, dim=16, n_layers=3, n_heads=2, n_kv_heads=2, ffn_dim=32, max_seq_len=16)
    base.update(kw)
    return Transformer(ModelConfig.nano(**base))


def _batch(T=8, B=2, V=50):
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(0, V, (B, T), generator=g)
    return ids, torch.roll(ids, -1, dims=1)


@pytest.mark.parametrize("kw", [{}, {"norm_placement": "post"}, {"residual": False}, {"norm_type": "layernorm"}])
def test_signal_trace_matches_manual_autograd(kw):
    m = _model(**kw)
    ids, labels = _batch()
    tr = P.signal_trace(m, ids, labels)
    # Reference: the captured hidden states and torch.autograd.grad, one block at a time.
    out = m(ids, labels=labels, capture=True)
    hs = out.captured["hidden_states"]
    stream = torch.autograd.grad(out.loss, hs, retain_graph=True)
    out2 = m(ids, labels=labels)
    for i, layer in enumerate(m.layers):
        params = [p for p in layer.parameters()]
        grads = torch.autograd.grad(out2.loss, params, retain_graph=True, allow_unused=True)
        ref = math.sqrt(sum(float(g.pow(2).sum()) for g in grads if g is not None))
        assert tr.param_grad[i] == pytest.approx(ref, rel=1e-4, abs=1e-12)
    assert len(tr.stream_grad) == len(tr.stream_rms) == m.config.n_layers + 1
    for i, (h, g) in enumerate(zip(hs, stream)):
        assert tr.stream_rms[i] == pytest.approx(float(h.detach().pow(2).mean().sqrt()), rel=1e-5)
        assert tr.stream_grad[i] == pytest.approx(float(g.norm()), rel=1e-4, abs=1e-12)
    assert tr.loss == pytest.approx(float(out.loss), rel=1e-6)
    gains = tr.block_gain
    assert gains[0] == pytest.approx(tr.stream_grad[0] / tr.stream_grad[1])


def test_signal_trace_leaves_grads_and_mode():
    m = _model()
    m.train()
    for p in m.parameters():
        p.grad = torch.full_like(p, 7.0)
    P.signal_trace(m, *_batch())
    assert m.training
    assert all(torch.equal(p.grad, torch.full_like(p, 7.0)) for p in m.parameters())


@pytest.mark.parametrize("kw", [{}, {"norm_placement": "post"}, {"causal": False}, {"pos": "alibi"}])
def test_block_jacobian_matches_autograd_functional(kw):
    m = _model(**kw)
    with torch.no_grad():
        x = m.embed_tokens(_batch(T=5)[0][0])
    J = P.block_jacobian(m, 1, x)
    ref = torch.autograd.functional.jacobian(P.block_function(m, 1, 5), x).reshape(J.shape)
    assert J.shape == (5 * 16, 5 * 16)
    assert torch.allclose(J, ref, atol=1e-6)


def test_block_jacobian_finite_differences_float64():
    m = _model().double()
    x = torch.randn(4, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    J = P.block_jacobian(m, 0, x)
    f = P.block_function(m, 0, 4)
    eps = 1e-6
    for col in (0, 17, 63):
        dx = torch.zeros(64, dtype=torch.float64)
        dx[col] = eps
        with torch.no_grad():
            fd = (f(x + dx.view(4, 16)) - f(x - dx.view(4, 16))).reshape(-1) / (2 * eps)
        assert torch.allclose(J[:, col], fd, atol=1e-7)
    # Causal: output at position 0 does not depend on inputs at positions 1..3.
    assert torch.all(J[:16, 16:] == 0)


def test_zero_init_block_is_identity_and_spectrum():
    m = _model(zero_init_out=True)
    x = torch.randn(6, 16, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        assert torch.equal(P.block_function(m, 2, 6)(x), x)
    s = P.jacobian_spectrum(P.block_jacobian(m, 2, x))
    assert torch.equal(s.block, torch.ones(96, dtype=torch.float64))
    assert float(s.branch.max()) == 0.0


def test_jacobian_spectrum_matches_svd():
    A = torch.randn(10, 10, generator=torch.Generator().manual_seed(4))
    s = P.jacobian_spectrum(A)
    ref = torch.linalg.svd(A.double()).S
    assert torch.allclose(s.block, ref)
    assert s.smallest == pytest.approx(float(ref[-1])) and s.largest == pytest.approx(float(ref[0]))
    assert torch.allclose(s.branch, torch.linalg.svd(A.double() - torch.eye(10, dtype=torch.float64)).S)


def test_bad_inputs_raise():
    m = _model()
    with pytest.raises(ValueError, match="layer=5"):
        P.block_function(m, 5, 4)
    with pytest.raises(ValueError, match="seq_len=99"):
        P.block_function(m, 0, 99)
    with pytest.raises(ValueError, match="x must have shape"):
        P.block_function(m, 0, 4)(torch.zeros(3, 16))
    with pytest.raises(ValueError, match="square"):
        P.jacobian_spectrum(torch.zeros(3, 4))
    with pytest.raises(ValueError, match="shape"):
        P.signal_trace(m, torch.zeros(2, 4, dtype=torch.long), torch.zeros(2, 5, dtype=torch.long))
    with pytest.raises(ValueError, match="zero_init_out"):
        ModelConfig.nano(residual=False, zero_init_out=True)
