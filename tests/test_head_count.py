"""course_lib.lab.head_count: the pair-lookup answers re-derived from the printed tokens, the averaged
heads against an explicit per-head SDPA computation, the timing and training helpers' contracts."""
import pytest
import torch
import torch.nn.functional as F

from course_lib.config import ModelConfig
from course_lib.model import Transformer
from course_lib.lab.head_count import attention_times, average_heads, lookup_attention, pair_lookup, train_eval


def test_pair_lookup_answers_follow_from_the_tokens():
    task = pair_lookup(300, n_entries=5, n_keys=7, n_values=6, seed=3)
    assert task.seq_len == 5 + 3 and task.answers.shape == (300, 1)
    for row in task.sequences.tolist():
        names = [task.vocab[i] for i in row]
        assert names[0] == "<bos>" and names[6] == "<sep>"
        table = dict(name.split(":") for name in names[1:6])          # "k3" -> "v5"
        assert len(table) == 5                                         # keys distinct in a sequence
        a, b = names[7][1:].split(",")                                 # "q3,1"
        assert a != b and f"k{a}" in table and f"k{b}" in table
        assert names[8] == f"{table['k' + a]}&{table['k' + b]}"
    # only the answer is a target, and it is predicted from the query position
    assert (task.labels != -100).sum(1).tolist() == [1] * 300
    assert torch.equal(task.labels[:, -1], task.sequences[:, -1])


def test_pair_lookup_is_seeded_and_checks_its_arguments():
    assert torch.equal(pair_lookup(20, seed=1).sequences, pair_lookup(20, seed=1).sequences)
    assert not torch.equal(pair_lookup(20, seed=1).sequences, pair_lookup(20, seed=2).sequences)
    with pytest.raises(ValueError, match="n_entries"):
        pair_lookup(10, n_entries=9, n_keys=8)
    with pytest.raises(ValueError, match="n_entries"):
        pair_lookup(10, n_entries=1)


def test_average_heads_outputs_the_mean_of_full_width_heads():
    cfg = ModelConfig(vocab_size=20, dim=16, n_layers=1, n_heads=3, head_dim=16, max_seq_len=8, pos="none")
    model = average_heads(Transformer(cfg))
    attn = model.layers[0].attn
    x = torch.randn(2, 8, 16)
    heads = []
    for h in range(3):                                                 # one head at a time, by hand
        rows = slice(16 * h, 16 * (h + 1))
        q, k, v = (F.linear(x, p.weight[rows]) for p in (attn.q_proj, attn.k_proj, attn.v_proj))
        heads.append(F.scaled_dot_product_attention(q, k, v))
    expected = torch.stack(heads).mean(0)
    assert torch.allclose(attn(x), expected, atol=1e-5)


def test_average_heads_is_frozen_and_refuses_narrow_heads():
    cfg = ModelConfig(vocab_size=20, dim=16, n_layers=2, n_heads=2, head_dim=16, max_seq_len=8, pos="none")
    task = pair_lookup(64, n_entries=3, n_keys=4, n_values=4)
    cfg = ModelConfig(**{**cfg.__dict__, "vocab_size": task.vocab_size})
    before = sum(p.numel() for p in Transformer(cfg).parameters())
    r = train_eval(cfg, task, lambda m: m.layers[1].attn.o_proj.weight.sum().item(), steps=3, seed=0,
                   prepare=average_heads, batch_size=8, device="cpu")
    assert r["params"] == before - 2 * 16 * 32                          # two frozen (16, 32) W_O
    assert r["score"] == pytest.approx(16.0)                          # W_O still [I/2, I/2]: sum 32 * 1/2
    with pytest.raises(ValueError, match="head_dim"):
        average_heads(Transformer(ModelConfig(vocab_size=20, dim=16, n_layers=1, n_heads=2, max_seq_len=8)))


def test_attention_times_cover_each_head_count():
    t = attention_times(32, [1, 2, 4], n=16, repeats=1)
    assert set(t) == {1, 2, 4} and all(v > 0 for v in t.values())
    with pytest.raises(ValueError, match="heads="):
        attention_times(32, [3], n=16)


def test_lookup_attention_matches_an_explicit_softmax():
    task = pair_lookup(16, n_entries=3, n_keys=5, n_values=3, seed=2)
    cfg = ModelConfig(vocab_size=task.vocab_size, dim=16, n_layers=1, n_heads=2, max_seq_len=8, pos="none")
    model = Transformer(cfg).eval()
    got = lookup_attention(model, task)
    attn = model.layers[0].attn
    with torch.no_grad():                                              # layer 0 by hand: norm, q, k, softmax
        x = model.layers[0].attn_norm(model.embed_tokens(task.input_ids))
        q = attn.q_proj(x).view(16, -1, 2, 8).transpose(1, 2)
        k = attn.k_proj(x).view(16, -1, 2, 8).transpose(1, 2)
        w = torch.softmax(torch.einsum("nhd,nhtd->nht", q[:, :, -1], k) / 8 ** 0.5, dim=-1)  # last query sees all
    pos = 1 + task.info["query_index"]
    expected = torch.stack([w[torch.arange(16), :, pos[:, j]].mean(0) for j in range(2)], dim=1)
    assert got.shape == (2, 2) and torch.allclose(got, expected, atol=1e-5)
