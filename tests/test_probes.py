"""course_lib.lab.probes: measurements on a Transformer."""
import math

import pytest
import torch

from course_lib import ModelConfig, Transformer
from course_lib.lab import attention_math as am
from course_lib.lab import probes


def _model(**kw):
    torch.manual_seed(0)
    base = dict(vocab_size=32, dim=32, n_layers=2, n_heads=2, n_kv_heads=2, max_seq_len=16)
    base.update(kw)
    return Transformer(ModelConfig.nano(**base))


def _ids(B=3, T=12, seed=0):
    return torch.randint(0, 32, (B, T), generator=torch.Generator().manual_seed(seed))


def test_score_stats_match_a_direct_recomputation():
    m = _model(pos="none", n_layers=1)
    x = _ids()
    (st,) = probes.score_stats(m, x)
    # recompute q·k by hand from the layer's own projections
    layer = m.layers[0]
    h = layer.attn_norm(m.embed_tokens(x))
    B, T, _ = h.shape
    q = layer.attn.q_proj(h).view(B, T, 2, -1).transpose(1, 2)
    k = layer.attn.k_proj(h).view(B, T, 2, -1).transpose(1, 2)
    raw = (q @ k.transpose(-1, -2)).detach()
    vis = raw[..., am.causal_mask(T)]
    assert st["var"] == pytest.approx(float(vis.var()), rel=1e-4)


def test_entropy_by_layer_is_one_for_uniform_attention():
    m = _model(attn_scale=1e-9)
    H = probes.attention_entropy_by_layer(m, _ids())
    assert all(abs(h - 1) < 1e-6 for h in H)


def test_param_grad_norms_restores_grads_and_matches_autograd():
    m = _model()
    x = _ids()
    y = _ids(seed=1)
    for p in m.parameters():
        p.grad = torch.full_like(p, 7.0)
    norms = probes.param_grad_norms(m, x, y, pattern=r"q_proj")
    assert set(norms) == {"layers.0.attn.q_proj.weight", "layers.1.attn.q_proj.weight"}
    assert all(float(p.grad.flatten()[0]) == 7.0 for p in m.parameters())
    m.zero_grad(set_to_none=True)
    m.eval()
    m(x, labels=y).loss.backward()
    assert norms["layers.0.attn.q_proj.weight"] == pytest.approx(float(m.layers[0].attn.q_proj.weight.grad.norm()))
    assert probes.total_norm({"a": 3.0, "b": 4.0}) == 5.0


def test_task_accuracy_and_loss():
    from course_lib.lab.synthetic import associative_recall

    task = associative_recall(40, n_pairs=3, n_keys=6, n_values=6, seed=0)
    m = _model(vocab_size=task.vocab_size)
    acc = probes.task_accuracy(m, task)
    assert 0.0 <= acc <= 1.0
    loss = probes.task_loss(m, task)
    assert abs(loss - math.log(task.vocab_size)) < 0.5  # an untrained model is near uniform


def test_dataset_loss_equals_task_loss():
    from course_lib.lab.synthetic import associative_recall

    task = associative_recall(50, n_pairs=3, n_keys=6, n_values=6, seed=0)
    m = _model(vocab_size=task.vocab_size)
    assert probes.dataset_loss(m, task, max_items=50, batch_size=16) == pytest.approx(probes.task_loss(m, task), rel=1e-5)


@pytest.mark.parametrize("kw", [{}, {"tie_kv": True, "n_kv_heads": 2}, {"n_heads": 4, "n_kv_heads": 2}])
def test_head_outputs_are_weights_times_recomputed_values(kw):
    m = _model(**kw)
    cap = probes.capture(m, _ids())
    for layer in range(2):
        v = probes.layer_values(m, cap, layer)
        w = cap["weights"][layer]
        H, Hkv = w.shape[1], v.shape[1]
        v_per_head = v.repeat_interleave(H // Hkv, dim=1)
        assert torch.allclose(cap["head_outputs"][layer], w @ v_per_head, atol=1e-5)
