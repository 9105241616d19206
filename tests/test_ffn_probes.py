"""FFN instruments against independent references: hand-written RMSNorm + head for the logit lens,
a hand-written block without its FFN for the ablation, plain counting for early exit and sparsity."""
import pytest
import torch
import torch.nn.functional as F

from course_lib import ModelConfig, Transformer
from course_lib.lab import ffn_probes as FP


def _model(**kw):
    torch.manual_seed(0)
    base = dict(vocab_size=40, dim=16, n_layers=3, n_heads=2, ffn_dim=32, max_seq_len=16)
    base.update(kw)
    return Transformer(ModelConfig.nano(**base)).eval()


def _batch(B=2, T=8, V=40):
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(0, V, (B, T), generator=g)
    labels = torch.roll(ids, -1, dims=1)
    labels[:, -1] = -100
    return ids, labels


def _manual_unembed(model, h):
    """RMSNorm written out (x / rms * gain) and the head as a matrix product."""
    norm = model.norm
    rms = h.pow(2).mean(-1, keepdim=True).add(norm.eps).sqrt()
    return (h / rms * norm.weight) @ model.lm_head.weight.T


def test_logit_lens_matches_manual_norm_and_head():
    m = _model()
    ids, labels = _batch()
    lens = FP.logit_lens(m, ids, labels)
    keep = labels != -100
    with torch.no_grad():
        out = m(ids, capture=True)
        states = out.captured["hidden_states"]
        for i, h in enumerate(states):
            ref = _manual_unembed(m, h)[keep]
            assert torch.allclose(lens.logits[i], ref, atol=1e-5)
            assert lens.loss[i] == pytest.approx(float(F.cross_entropy(ref, labels[keep])), rel=1e-5)
            assert lens.accuracy[i] == pytest.approx(float((ref.argmax(-1) == labels[keep]).float().mean()))
        # The last read-out is the model's own output.
        assert torch.allclose(lens.logits[-1], out.logits[keep], atol=1e-5)
    assert lens.agree_final[-1] == 1.0
    assert len(lens.loss) == m.config.n_layers + 1


def test_ablate_ffn_equals_block_without_ffn():
    m = _model()
    ids, _ = _batch()
    with torch.no_grad():
        full = m(ids).logits
        with FP.ablate_ffn(m, [1]):
            ablated = m(ids).logits
        # Reference: the same model with layer 1's down_proj zeroed (its FFN then outputs zeros).
        w = m.layers[1].ffn.down_proj.weight.clone()
        m.layers[1].ffn.down_proj.weight.zero_()
        ref = m(ids).logits
        m.layers[1].ffn.down_proj.weight.copy_(w)
        again = m(ids).logits
    assert torch.allclose(ablated, ref, atol=1e-6)
    assert not torch.allclose(ablated, full, atol=1e-4)
    assert torch.equal(again, full)                       # hooks gone, weights restored


def test_ablate_ffn_rejects_bad_layers():
    m = _model()
    with pytest.raises(ValueError, match="layers"):
        with FP.ablate_ffn(m, [3]):
            pass
    with pytest.raises(ValueError, match="no FFN"):
        with FP.ablate_ffn(_model(ffn_type="none"), [0]):
            pass


def test_early_exit_counts_by_hand():
    # Two tokens, three read-outs. Token 0 is confident (0.9) already at read-out 1; token 1 never is.
    logits = torch.log(torch.tensor([
        [[0.5, 0.5], [0.5, 0.5]],
        [[0.9, 0.1], [0.6, 0.4]],
        [[0.2, 0.8], [0.3, 0.7]],
    ]))
    lens = FP.LensResult([0.0] * 3, [0.0] * 3, [0.0] * 3, logits, torch.tensor([0, 1]))
    r = FP.early_exit(lens, [0.85, 0.95])
    assert r[0].mean_blocks == pytest.approx((1 + 2) / 2) and r[0].exited_early == 0.5
    assert r[0].accuracy == 1.0                           # token 0 answers 0 at read-out 1, token 1 answers 1
    assert r[1].mean_blocks == 2.0 and r[1].accuracy == 0.5   # nobody exits: read-out 2 says 1, 1
    with pytest.raises(ValueError, match="min_layer"):
        FP.early_exit(lens, [0.5], min_layer=3)


def test_zero_fraction_relu_vs_swiglu():
    ids, _ = _batch(B=4, T=12)
    relu = FP.ffn_hidden_zero_fraction(_model(ffn_type="relu"), ids)
    swi = FP.ffn_hidden_zero_fraction(_model(), ids)
    # Reference for layer 0: ReLU of up_proj on the FFN's (normed) input, counted directly.
    m = _model(ffn_type="relu")
    with torch.no_grad():
        h = torch.relu(m.layers[0].ffn.up_proj(_ffn_input(m, ids)))
    assert relu[0] == pytest.approx(float((h == 0).float().mean()))
    assert 0.3 < relu[0] < 0.7 and max(swi) < 0.01
    assert len(relu) == 3


def _ffn_input(m, ids):
    """The input of layer 0's FFN, caught with a hook (independent of the counting code)."""
    seen = []
    h = m.layers[0].ffn.register_forward_pre_hook(lambda _m, a: seen.append(a[0]))
    with torch.no_grad():
        m(ids)
    h.remove()
    return seen[0]
