"""LoRA: zero-B init is the base model; merged weights give the unmerged forward; replay mixing."""
import pytest
import torch
from torch import nn

from course_lib import ModelConfig, Transformer
from course_lib.lab.continual import LoRALinear, add_lora, merge_lora, replay_mix, trainable_params


def test_lora_linear_starts_as_base_and_merges_exactly():
    torch.manual_seed(0)
    base = nn.Linear(12, 7, bias=True).double()
    x = torch.randn(5, 3, 12, dtype=torch.float64)
    lora = LoRALinear(base, r=3, alpha=6.0)
    assert torch.equal(lora(x), base(x))                      # B = 0 at init
    with torch.no_grad():
        lora.lora_B.normal_()
    # independent reference: the explicit matrix W0 + (alpha / r) B A
    ref = x @ (base.weight + 2.0 * lora.lora_B @ lora.lora_A).T + base.bias
    torch.testing.assert_close(lora(x), ref)
    torch.testing.assert_close(lora.merged()(x), lora(x))
    assert not base.weight.requires_grad


def test_add_lora_on_the_model():
    torch.manual_seed(0)
    cfg = ModelConfig.nano(vocab_size=32, max_seq_len=16)
    model = Transformer(cfg).double()
    ids = torch.randint(0, 32, (2, 10))
    before = model(ids).logits
    n = add_lora(model, r=2, targets=("q_proj", "v_proj"))
    d, kv = cfg.dim, cfg.n_kv_heads * cfg.dim // cfg.n_heads
    assert n == cfg.n_layers * (2 * (d + d) + 2 * (d + kv))    # r (in + out) per wrapped matrix
    assert n == trainable_params(model)
    torch.testing.assert_close(model(ids).logits, before)     # unchanged until B moves
    for m in model.modules():
        if isinstance(m, LoRALinear):
            with torch.no_grad():
                m.lora_B.normal_(std=0.1)
    adapted = model(ids).logits
    assert not torch.allclose(adapted, before)
    assert merge_lora(model) == 2 * cfg.n_layers
    assert not any(isinstance(m, LoRALinear) for m in model.modules())
    torch.testing.assert_close(model(ids).logits, adapted)
    with pytest.raises(ValueError, match="match no nn.Linear"):
        add_lora(Transformer(cfg), targets=("nothing",))


def test_replay_mix():
    new, old = list(range(100, 120)), list(range(10))
    mixed = replay_mix(new, old, fraction=0.2, seed=1)
    assert len(mixed) == 24 and sum(x < 10 for x in mixed) == 4
    assert [x for x in mixed if x >= 100] == new              # new data keeps its order
    first_old = [i for i, x in enumerate(mixed) if x < 10]
    assert first_old[0] > 0 and first_old[-1] < 23            # spread out, not at one end
    with pytest.raises(ValueError, match="fraction"):
        replay_mix(new, old, fraction=2)
