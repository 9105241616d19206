"""Position-dependence instruments against independent references: torch.autograd.functional.jacobian,
a hand-written SGD step with F.cross_entropy, and the full causal forward pass."""
import copy

import pytest
import torch
import torch.nn.functional as F
from torch.autograd.functional import jacobian

from course_lib import ModelConfig, Transformer
from course_lib.lab import causality as C


def _model(**kw):
    torch.manual_seed(0)
    base = dict(vocab_size=20, dim=16, n_layers=2, n_heads=2, ffn_dim=32, max_seq_len=16, attn_impl="naive")
    base.update(kw)
    return Transformer(ModelConfig.nano(**base)).eval()


def _seq(T=6, V=20):
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(0, V, (1, T), generator=g)
    labels = torch.roll(ids, -1, dims=1)
    labels[:, -1] = -100
    return ids, labels


def _block_norms(J):
    """(T_out, D_out, T_in, D_in) -> (T_out, T_in) Frobenius norms."""
    return J.double().pow(2).sum(dim=(1, 3)).sqrt()


@pytest.mark.parametrize("fill", ["-inf", "zero"])
def test_jacobian_norms_match_autograd_jacobian(fill):
    m = _model(mask_fill=fill)
    ids, _ = _seq()
    x = C.stream_input(m, ids)
    f = C.stream_function(m, ids)
    ref = _block_norms(jacobian(f, x))
    got = C.position_jacobian_norms(f, x)
    assert torch.allclose(got, ref, rtol=1e-4, atol=1e-10)
    upper = torch.triu(torch.ones_like(ref, dtype=torch.bool), diagonal=1)
    if fill == "-inf":
        assert float(got[upper].abs().max()) == 0.0            # exactly causal
    else:
        assert float(got[upper].min()) > 1e-6                  # every future position leaks in
    assert float(got[~upper].min()) > 0.0


def test_random_probes_match_projected_reference():
    m = _model()
    ids, _ = _seq()
    x = C.stream_input(m, ids)
    f = C.stream_function(m, ids)
    J = jacobian(f, x).double()                                # (T, V, T, D)
    got = C.position_jacobian_norms(f, x, probes=3, seed=5)
    g = torch.Generator().manual_seed(5)
    for t in range(J.shape[0]):
        R = torch.randn(J.shape[1], 3, generator=g).double()
        proj = torch.einsum("vk,vsd->ksd", R, J[t])
        assert torch.allclose(got[t], proj.pow(2).sum(dim=(0, 2)).sqrt(), rtol=1e-4, atol=1e-10)
    assert bool((got == 0).eq(_block_norms(J) == 0).all())


def test_loss_gradients_match_autograd_jacobian():
    m = _model()
    ids, labels = _seq()
    got = C.loss_position_gradients(m, ids, labels, layer=1)
    h = C.stream_input(m, ids, layer=1)
    ref = jacobian(C.stream_function(m, ids, layer=1, labels=labels), h).pow(2).sum(-1).sqrt()   # (T, T)
    assert torch.allclose(got, ref.float(), rtol=1e-4, atol=1e-10)
    T = ids.shape[1]
    below = torch.tril(torch.ones(T, T, dtype=torch.bool), diagonal=-1)
    assert float(got[:-1][below[:-1]].min()) > 0               # later losses reach earlier positions
    assert float(torch.triu(got, diagonal=1).abs().max()) == 0.0
    assert float(got[-1].abs().max()) == 0.0                   # the unlabelled last row


def test_update_effect_matches_manual_sgd_step():
    m = _model()
    ids, labels = _seq()
    pos, lr = 4, 0.05
    got = C.position_update_effect(m, ids, labels, pos, lr=lr)
    twin = copy.deepcopy(m)
    before = twin(ids).logits[0].detach()
    loss = F.cross_entropy(twin(ids).logits[0, pos][None], labels[0, pos][None])
    grads = torch.autograd.grad(loss, list(twin.parameters()), allow_unused=True)
    with torch.no_grad():
        for p, gr in zip(twin.parameters(), grads):
            if gr is not None:
                p -= lr * gr
        ref = (twin(ids).logits[0] - before).abs().amax(-1)
    assert torch.allclose(got, ref, rtol=1e-4, atol=1e-7)
    assert float(got[:pos].min()) > 0                          # left positions move after a right-hand loss
    with pytest.raises(ValueError, match="position"):
        C.position_update_effect(m, ids, labels, ids.shape[1] - 1)


def test_prefix_and_cached_logits_equal_the_causal_pass():
    m = _model(attn_impl="sdpa")
    ids = torch.randint(0, 20, (2, 7), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        full = m(ids).logits
        assert torch.allclose(C.prefix_logits(m, ids), full, atol=1e-5)
        assert torch.allclose(C.cached_logits(m, ids), full, atol=1e-5)
        leaky = _model(causal=False)
        assert not torch.allclose(C.prefix_logits(leaky, ids), leaky(ids).logits, atol=1e-3)


def test_bad_inputs():
    m = _model()
    ids, _ = _seq()
    with pytest.raises(ValueError, match="one sequence"):
        C.stream_function(m, ids.repeat(2, 1))
    with pytest.raises(ValueError, match="layer"):
        C.stream_function(m, ids, layer=2)
    with pytest.raises(ValueError, match="shape"):
        C.stream_function(m, ids)(torch.zeros(3, 16))
    with pytest.raises(ValueError, match="probes"):
        C.position_jacobian_norms(lambda v: v, torch.zeros(2, 2), probes=0)
