"""course_lib.lab.padding against brute-force counting and an explicit log-softmax."""
import math

import pytest
import torch

from course_lib import ModelConfig, Transformer
from course_lib.lab.padding import (clean_pad_eval, clean_windows, group_waste, padded_segments,
                                    tokens_before_pad, truncation_loss)


def test_padded_segments_are_slices_then_padding():
    stream = torch.arange(1, 500)                       # no 0 in the stream: 0 only ever means padding
    rows = padded_segments(stream, 50, seq_len=20, min_len=5, pad_id=0, seed=3)
    assert rows.shape == (50, 21)
    lengths = (rows != 0).sum(1)
    assert lengths.min() >= 5 and lengths.max() <= 21
    for r, n in zip(rows, lengths.tolist()):
        assert torch.all(r[n:] == 0)
        assert torch.equal(r[:n], torch.arange(int(r[0]), int(r[0]) + n))    # contiguous slice of the stream
    with pytest.raises(ValueError, match="min_len"):
        padded_segments(stream, 2, seq_len=20, min_len=30)


def test_clean_pad_eval_against_explicit_softmax():
    torch.manual_seed(0)
    model = Transformer(ModelConfig.nano(vocab_size=40, max_seq_len=16)).eval()
    w = clean_windows(torch.randint(1, 40, (400,), generator=torch.Generator().manual_seed(0)), 6, 17)
    got = clean_pad_eval(model, w, pad_id=0)
    with torch.no_grad():
        logp = model(w[:, :-1]).logits.double().log_softmax(-1)
        probe = w[:, :-1].clone()
        probe[:, 8:] = 0
        after = model(probe).logits.double().softmax(-1)[:, 8:, 0]
    nll = [-logp[i, t, w[i, t + 1]].item() for i in range(6) for t in range(16)]
    assert math.isclose(got["loss"], sum(nll) / len(nll), rel_tol=1e-5)
    assert math.isclose(got["p_pad"], logp.exp()[..., 0].mean().item(), rel_tol=1e-5)
    assert math.isclose(got["p_pad_after_pad"], after.mean().item(), rel_tol=1e-5)


def test_tokens_before_pad_counts_to_first_pad():
    torch.manual_seed(0)
    model = Transformer(ModelConfig.nano(vocab_size=5, max_seq_len=32)).eval()
    prompts = torch.randint(1, 5, (20, 4), generator=torch.Generator().manual_seed(1))
    mean, out = tokens_before_pad(model, prompts, 12, pad_id=0)
    firsts = []
    for row in out.tolist():
        firsts.append(row.index(0) if 0 in row else 12)
    assert math.isclose(mean, sum(firsts) / len(firsts), rel_tol=1e-6)


def test_group_waste_and_truncation_by_brute_force():
    lengths = [3, 7, 5, 2, 9, 4, 6, 1]
    gw = group_waste(lengths, group=4, causal=True)
    pad_slots = slots = real = scores = 0
    for g in (lengths[:4], lengths[4:]):
        L = max(g)
        for n in g:
            slots += L
            pad_slots += L - n
            for i in range(L):
                for j in range(i + 1):
                    scores += 1
                    real += i < n and j < n
    assert math.isclose(gw.token_waste, pad_slots / slots)
    assert math.isclose(gw.score_waste, 1 - real / scores)
    lost = sum(n - min(g) for g in (lengths[:4], lengths[4:]) for n in g)
    assert math.isclose(truncation_loss(lengths, group=4), lost / sum(lengths))
    with pytest.raises(ValueError, match="group"):
        truncation_loss([1, 2], group=4)
