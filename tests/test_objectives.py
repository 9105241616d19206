"""Objective builders and the influence probe (course_lib.lab.objectives), against plain recomputation
and torch.autograd.functional.jacobian."""
import pytest
import torch

from course_lib import ModelConfig, Transformer
from course_lib.data import IGNORE_INDEX, shift_for_next_token
from course_lib.lab.objectives import (identity_targets, input_influence, masked_lm_items, reversed_targets,
                                       unrelated_targets)


def _items(n=6, t=10, vocab=20):
    seqs = torch.randint(3, vocab, (n, t + 1), generator=torch.Generator().manual_seed(0))
    x, y = shift_for_next_token(seqs)
    return [{"input_ids": a, "labels": b} for a, b in zip(x, y)]


def test_pairings_by_hand():
    items = _items()
    rev = reversed_targets(items)
    for it, r in zip(items, rev):
        assert r["labels"][0] == IGNORE_INDEX
        assert torch.equal(r["labels"][1:], it["input_ids"][:-1])
    ident = identity_targets(items)
    assert all(torch.equal(a["labels"], a["input_ids"]) for a in ident)
    unrel = unrelated_targets(items, seed=3)
    label_rows = sorted(tuple(u["labels"].tolist()) for u in unrel)
    assert label_rows == sorted(tuple(it["labels"].tolist()) for it in items)      # a permutation of the labels
    assert all(torch.equal(u["input_ids"], it["input_ids"]) for u, it in zip(unrel, items))


def test_masked_lm_items():
    items = _items(n=200, t=50)
    out = masked_lm_items(items, mask_id=99, rate=0.15, seed=1)
    hidden = torch.stack([o["input_ids"] == 99 for o in out])
    labels = torch.stack([o["labels"] for o in out])
    orig = torch.stack([it["input_ids"] for it in items])
    assert abs(hidden.float().mean().item() - 0.15) < 0.01              # 10,000 positions: sd 0.0036
    assert torch.equal(labels[hidden], orig[hidden])                    # targets: the hidden tokens
    assert torch.all(labels[~hidden] == IGNORE_INDEX)                   # nothing else is a target
    assert torch.equal(torch.stack([o["input_ids"] for o in out])[~hidden], orig[~hidden])
    assert torch.equal(orig, torch.stack([it["input_ids"] for it in items]))   # the inputs were not modified
    again = masked_lm_items(items, mask_id=99, rate=0.15, seed=1)
    assert all(torch.equal(a["input_ids"], b["input_ids"]) for a, b in zip(out, again))


def test_bad_input():
    with pytest.raises(ValueError, match="rate"):
        masked_lm_items(_items(), mask_id=99, rate=1.5)
    with pytest.raises(ValueError, match="items"):
        reversed_targets([])


@pytest.mark.parametrize("causal", [True, False])
def test_input_influence_matches_jacobian(causal):
    torch.manual_seed(0)
    model = Transformer(ModelConfig.nano(vocab_size=30, max_seq_len=12, causal=causal)).eval()
    x = torch.randint(0, 30, (1, 12), generator=torch.Generator().manual_seed(1))
    t = 5
    got = input_influence(model, x, t)
    emb = model.embed_tokens(x).detach()

    def f(e):
        hook = model.embed_tokens.register_forward_hook(lambda m, i, o: e)    # replace the lookup by e
        try:
            return model(x).logits[0, t].logsumexp(-1)
        finally:
            hook.remove()

    ref = torch.autograd.functional.jacobian(f, emb)[0].norm(dim=-1)
    assert torch.allclose(got, ref, rtol=1e-4, atol=1e-7)
    if causal:
        assert torch.all(got[t + 1:] == 0) and torch.all(got[: t + 1] > 0)
    else:
        assert torch.all(got[t + 1:] > 0)
    with pytest.raises(ValueError, match="position"):
        input_influence(model, x, 12)
