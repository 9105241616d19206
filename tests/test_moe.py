"""Feed-forward layers: SwiGLU's hand-written backward; mixture of experts: routing invariants, the
load-balancing loss, and the layer against a hand loop."""
import torch
import torch.nn.functional as F

from course_lib import ModelConfig, Transformer
from course_lib.ffn import FeedForward, MoE, load_balancing_loss, swiglu


def test_swiglu_matches_plain_expression_and_gradcheck():
    g = torch.randn(4, 6, dtype=torch.float64, requires_grad=True)
    u = torch.randn(4, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(swiglu, (g, u))
    out = torch.randn(4, 6, dtype=torch.float64)
    torch.testing.assert_close(torch.autograd.grad(swiglu(g, u), (g, u), out),
                               torch.autograd.grad(F.silu(g) * u, (g, u), out))
    gb, ub = g.detach().bfloat16().requires_grad_(), u.detach().bfloat16().requires_grad_()
    swiglu(gb, ub).backward(out.bfloat16())
    assert gb.grad.dtype == torch.bfloat16


def test_routing_invariants():
    moe = MoE(dim=16, hidden=32, n_experts=6, top_k=2)
    probs, w, idx = moe.route(torch.randn(50, 16))
    torch.testing.assert_close(probs.sum(-1), torch.ones(50))
    torch.testing.assert_close(w.sum(-1), torch.ones(50))                   # top-k weights sum to 1
    assert idx.shape == (50, 2)
    assert all(len(set(row)) == 2 for row in idx.tolist())                 # exactly k distinct experts
    # the chosen experts are the k most probable ones
    assert (probs.gather(1, idx).min(-1).values >= probs.topk(2, -1).values[:, -1] - 1e-7).all()


def test_aux_loss_uniform_is_one_and_collapse_is_E():
    E, N = 4, 8
    uniform = torch.full((N, E), 1 / E)
    balanced = torch.arange(N).remainder(E)[:, None]                      # every expert gets N / E tokens
    assert load_balancing_loss(uniform, balanced, E).item() == 1.0
    collapsed = torch.zeros(N, E)
    collapsed[:, 0] = 1.0
    assert load_balancing_loss(collapsed, torch.zeros(N, 1, dtype=torch.long), E).item() == E


def test_moe_output_equals_hand_loop():
    moe = MoE(dim=16, hidden=24, n_experts=4, top_k=2, shared_expert=True)
    x = torch.randn(2, 5, 16)
    y = moe(x)
    aux = moe.aux_loss
    flat = x.reshape(10, 16)
    _, w, idx = moe.route(flat)
    expected = torch.stack([
        sum(w[n, j] * moe.experts[int(idx[n, j])](flat[n]) for j in range(2)) + moe.shared_expert(flat[n])
        for n in range(10)])
    torch.testing.assert_close(y.reshape(10, 16), expected, atol=1e-6, rtol=1e-5)
    assert aux.ndim == 0 and 0.0 <= aux.item() <= 4.0                      # E * sum f P lies in [0, E]


def test_top_k_equal_to_experts_is_probability_weighted_sum():
    moe = MoE(dim=8, hidden=8, n_experts=3, top_k=3, kind="gelu")
    x = torch.randn(1, 4, 8)
    probs = torch.softmax(moe.router(x), -1)
    expected = sum(probs[..., e:e + 1] * moe.experts[e](x) for e in range(3))
    torch.testing.assert_close(moe(x), expected, atol=1e-6, rtol=1e-5)


def test_model_adds_aux_loss_and_router_learns():
    cfg = ModelConfig.nano(moe_experts=4, moe_top_k=2, moe_aux_loss_coef=0.1)
    model = Transformer(cfg)
    ids = torch.randint(0, 256, (2, 16))
    labels = torch.randint(0, 256, (2, 16))
    out = model(ids, labels=labels)
    ce = torch.nn.functional.cross_entropy(out.logits.reshape(-1, 256), labels.reshape(-1))
    torch.testing.assert_close(out.loss, ce + out.aux_loss)
    per_token = model(ids, labels=labels, loss_reduction="none")
    torch.testing.assert_close(per_token.loss - per_token.aux_loss,
                               F.cross_entropy(out.logits.transpose(1, 2), labels, reduction="none"))
    assert 0.0 < out.aux_loss.item() <= 2 * 0.1 * 4                        # two layers, each in [0, E], times coef
    out.loss.backward()
    assert model.layers[0].ffn.router.weight.grad.abs().sum() > 0
    assert Transformer(ModelConfig.nano())(ids).aux_loss is None
    assert isinstance(Transformer(ModelConfig.nano()).layers[0].ffn, FeedForward)
