"""course_lib.lab.extrapolation against independent references: evaluating a short row directly vs the
prefix of a long row's per-position curve, perplexity arithmetic in plain Python, the passkey layout
checked position by position, and retrieval accuracy against a hand-written argmax."""
import math

import pytest
import torch

from course_lib import ModelConfig, Transformer
from course_lib.lab import extrapolation as ex
from course_lib.lab.decode_cost import per_position_loss
from course_lib.lab.synthetic import BOS, SEP


def tiny(pos="rope", vocab=30, max_seq_len=64):
    torch.manual_seed(0)
    return Transformer(ModelConfig(vocab_size=vocab, dim=16, n_layers=2, n_heads=2, max_seq_len=max_seq_len,
                                   pos=pos, rope_theta=1e4)).eval()


@pytest.mark.parametrize("pos", ["rope", "alibi", "none", "learned", "sinusoidal"])
def test_prefix_of_a_long_curve_is_the_short_evaluation(pos):
    m = tiny(pos)
    rows = torch.randint(0, 30, (4, 49))
    long = per_position_loss(m, rows)
    short_direct = m(rows[:, :17], labels=rows[:, 1:18]).loss.item()      # evaluate rows of 17 tokens directly
    assert abs(ex.length_loss(long, 17) - short_direct) < 1e-5


def test_ppl_change_table_arithmetic():
    curve = torch.tensor([1.0] * 4 + [2.0] * 4)
    t = ex.ppl_change_table({"x": curve}, 4, [1, 2])["x"]
    assert t[1] == 0.0 and abs(t[2] - 100 * (math.exp(1.5 - 1.0) - 1)) < 1e-9
    per_seed = ex.by_factor({"x": [curve, curve]}, 4, [2])
    assert per_seed["x"][2] == [t[2], t[2]]
    with pytest.raises(ValueError, match="length=9"):
        ex.length_loss(curve, 9)
    text = ex.format_table(per_seed, [2], {"x": {2: 20.0}})
    assert "[doc +20%]" in text and "+65%" in text


def test_stretched_rope_keeps_weights_and_changes_frequencies():
    m = tiny("rope")
    s = ex.stretched_rope(m, "pi", 4.0, 16)
    assert all(torch.equal(a, b) for a, b in zip(m.state_dict().values(), s.state_dict().values()))
    assert s.config.rope_scaling == "pi" and s.config.rope_scaling_factor == 4.0
    with pytest.raises(ValueError, match="needs a RoPE model"):
        ex.stretched_rope(tiny("alibi"), "pi", 2.0, 16)


def test_passkey_layout_position_by_position():
    task = ex.passkey_task(50, 20, (1, 18), n_filler=5, n_values=4, seed=3)
    seq = task.sequences
    assert seq.shape == (50, 21) and task.input_ids.shape == (50, 20)
    first_value = 3 + 5
    for r in range(50):
        row = seq[r].tolist()
        assert row[0] == BOS and row[19] == SEP
        values = [i for i, t in enumerate(row[:20]) if t >= first_value]
        assert len(values) == 1                                       # exactly one value token in the input
        assert 19 - values[0] == task.info["distance"][r]             # at the stated distance before <sep>
        assert row[20] == row[values[0]] == task.info["value"][r]     # the answer repeats it
        assert all(3 <= t < first_value for i, t in enumerate(row[1:19], 1) if i != values[0])
    assert (task.labels != -100).sum() == 50 and (task.labels[:, -1] == task.info["value"]).all()
    fixed = ex.passkey_task(10, 20, 7, seed=0)
    assert (fixed.info["distance"] == 7).all()
    with pytest.raises(ValueError, match="distance"):
        ex.passkey_task(10, 20, 19)


def test_retrieval_accuracy_matches_hand_argmax_and_runs_past_max_seq_len():
    task = ex.passkey_task(40, 24, (1, 22), n_filler=5, n_values=4, seed=1)
    m = tiny("alibi", vocab=task.vocab_size, max_seq_len=16)                # rows of 24 > 16: needs allow_longer
    got = ex.retrieval_accuracy(m, task, batch_size=7)
    logits = m(task.input_ids, allow_longer=True).logits
    ref = (logits[:, -1].argmax(-1) == task.info["value"]).float().mean().item()
    assert abs(got - ref) < 1e-9
    assert ex.chance_accuracy(task) == 0.25


def test_token_rows_and_document_table():
    class DS(list):
        pass
    ds = DS([{"input_ids": torch.arange(5) + i, "labels": torch.arange(1, 6) + i} for i in range(3)])
    rows = ex.token_rows(ds, 10)
    assert rows.shape == (3, 6) and rows[1].tolist() == [1, 2, 3, 4, 5, 6]
    assert ex.DOCUMENT_TABLE["alibi"] == {2: 3.0, 4: 8.0} and ex.DOCUMENT_TABLE["rope+pi"] == {4: 10.0}
