"""masked_cross_entropy against F.cross_entropy and hand-computed reductions."""
import pytest
import torch
import torch.nn.functional as F

from course_lib import masked_cross_entropy


def data():
    logits = torch.randn(3, 5, 11)
    labels = torch.randint(0, 11, (3, 5))
    labels[0, :2] = -100
    labels[2, :] = -100                                            # a row with no target at all
    return logits, labels


def test_token_mean_matches_cross_entropy():
    logits, labels = data()
    ref = F.cross_entropy(logits.reshape(-1, 11), labels.reshape(-1), ignore_index=-100)
    torch.testing.assert_close(masked_cross_entropy(logits, labels, "token_mean"), ref)


def test_seq_mean_sum_none():
    logits, labels = data()
    per = F.cross_entropy(logits.transpose(1, 2), labels, ignore_index=-100, reduction="none")   # (B, T)
    none = masked_cross_entropy(logits, labels, "none")
    torch.testing.assert_close(none, per)
    assert (none[labels == -100] == 0).all()
    torch.testing.assert_close(masked_cross_entropy(logits, labels, "sum"), per.sum())
    seq = (per[0].sum() / 3 + per[1].sum() / 5) / 2                  # row 2 has no tokens: left out
    torch.testing.assert_close(masked_cross_entropy(logits, labels, "seq_mean"), seq)


def test_all_masked_is_zero_not_nan_and_has_gradient():
    logits = torch.randn(2, 3, 7, requires_grad=True)
    labels = torch.full((2, 3), -100)
    for reduction in ("token_mean", "seq_mean", "sum"):
        loss = masked_cross_entropy(logits, labels, reduction)
        assert loss.item() == 0.0
        loss.backward()
        assert torch.isfinite(logits.grad).all()


def test_bf16_logits_are_reduced_in_float32():
    logits, labels = data()
    loss = masked_cross_entropy(logits.bfloat16(), labels)
    assert loss.dtype == torch.float32
    torch.testing.assert_close(loss, masked_cross_entropy(logits.bfloat16().float(), labels))


def test_bad_arguments():
    logits, labels = data()
    with pytest.raises(ValueError, match="loss_reduction='mean'"):
        masked_cross_entropy(logits, labels, "mean")
    with pytest.raises(ValueError, match="labels shape"):
        masked_cross_entropy(logits, labels[:, :-1])
