"""course_lib.lab.measure against independent references (hand arithmetic, brute force, plain torch)."""
import math
import subprocess
import sys
import time

import pytest
import torch
import torch.nn.functional as F

from course_lib.config import ModelConfig
from course_lib.lab.measure import (bits_per_char, nonzero_rows, padding_waste, per_token_nll,
                                saved_tensor_bytes, time_fn, tokens_per_char, unigram_entropy_bits)
from course_lib.model import Transformer
from course_lib.tokenizer import ByteTokenizer, CharTokenizer


class UniformLM(torch.nn.Module):
    """Predicts the uniform distribution whatever it reads: NLL = ln V per token."""

    def __init__(self, vocab_size, max_seq_len=8):
        super().__init__()
        self.config = ModelConfig.nano(vocab_size=vocab_size, max_seq_len=max_seq_len)
        self.dummy = torch.nn.Parameter(torch.zeros(1))
        self.calls = []

    def forward(self, x):
        self.calls.append(tuple(x.shape))
        return type("Out", (), {"logits": torch.zeros(*x.shape, self.config.vocab_size) + self.dummy})()


TEXTS = ["你好，世界", "ab", "机器学习很有趣。Transformer!"]


@pytest.mark.parametrize("seq_len", [1, 3, 8, 64])
def test_bits_per_char_uniform_model(seq_len):
    tok = ByteTokenizer()
    model = UniformLM(tok.vocab_size, max_seq_len=seq_len)
    r = bits_per_char(model, tok, TEXTS, seq_len=seq_len, batch_size=2)
    n_bytes = sum(len(t.encode("utf-8")) for t in TEXTS)
    n_chars = sum(len(t) for t in TEXTS)
    assert r.n_tokens == n_bytes and r.n_chars == n_chars      # every text token predicted once
    assert math.isclose(r.bits_per_char, n_bytes * math.log2(tok.vocab_size) / n_chars, rel_tol=1e-6)
    assert math.isclose(r.nats_per_token, math.log(tok.vocab_size), rel_tol=1e-6)
    assert all(T <= seq_len for _, T in model.calls)


def test_bits_per_char_is_tokenizer_fair():
    # a uniform model over a char vocabulary pays log2(V) per char, whatever the batch layout
    tok = CharTokenizer.from_texts(TEXTS)
    r = bits_per_char(UniformLM(tok.vocab_size), tok, TEXTS, seq_len=5)
    assert math.isclose(r.bits_per_char, math.log2(tok.vocab_size), rel_tol=1e-6)
    assert math.isclose(r.tokens_per_char, 1.0)


def test_bits_per_char_matches_manual_loss_on_real_model():
    torch.manual_seed(0)
    tok = ByteTokenizer()
    model = Transformer(ModelConfig.nano(vocab_size=tok.vocab_size, max_seq_len=64))
    text = "今天天气很好"
    r = bits_per_char(model, tok, [text], seq_len=64)
    ids = torch.tensor([[tok.bos_id] + tok.encode(text)])
    logits = model(ids).logits[0, :-1]
    nll = F.cross_entropy(logits, ids[0, 1:], reduction="sum").item()
    assert math.isclose(r.bits_per_char, nll / math.log(2) / len(text), rel_tol=1e-5)


def test_per_token_nll_matches_cross_entropy():
    torch.manual_seed(0)
    model = Transformer(ModelConfig.nano())
    ids = torch.randint(0, 256, (2, 10))
    got = per_token_nll(model, ids)
    logits = model(ids).logits
    ref = torch.stack([F.cross_entropy(logits[b, :-1], ids[b, 1:], reduction="none") for b in range(2)])
    assert got.shape == (2, 9) and torch.allclose(got, ref, atol=1e-6)


def test_padding_waste_doc_example():
    w = padding_waste([5, 12])
    assert (w.token_slots, w.real_tokens, w.pad_tokens) == (24, 17, 7)
    assert (w.score_slots, w.real_scores) == (288, 169)
    assert math.isclose(w.score_waste, 119 / 288)
    assert math.isclose(w.token_waste, 7 / 24)


def test_padding_waste_causal_brute_force():
    lengths, T = [3, 7, 4], 9
    w = padding_waste(lengths, pad_to=T, causal=True)
    computed = real = 0
    for n in lengths:
        for i in range(T):
            for j in range(i + 1):
                computed += 1
                real += i < n and j < n
    assert (w.score_slots, w.real_scores) == (computed, real)
    with pytest.raises(ValueError):
        padding_waste([5, 12], pad_to=10)


def test_nonzero_rows_embedding_grad():
    emb = torch.nn.Embedding(10, 4)
    emb(torch.tensor([1, 3, 3, 7])).sum().backward()
    assert nonzero_rows(emb.weight.grad) == 3
    assert nonzero_rows(None) == 0
    with pytest.raises(ValueError):
        nonzero_rows(torch.zeros(3))


def test_saved_tensor_bytes_counts_activations_not_weights():
    w = torch.randn(10, 10, requires_grad=True)
    a = torch.randn(5, 10)
    # matmul saves a (200 B) and w (a parameter: skipped); exp saves its output (200 B)
    assert saved_tensor_bytes(lambda: (a @ w).exp().sum()) == 400
    torch.manual_seed(0)
    model = Transformer(ModelConfig.nano())
    short = saved_tensor_bytes(lambda: model(torch.randint(0, 256, (2, 16)), labels=torch.zeros(2, 16, dtype=torch.long)).loss)
    long = saved_tensor_bytes(lambda: model(torch.randint(0, 256, (2, 32)), labels=torch.zeros(2, 32, dtype=torch.long)).loss)
    assert 1.8 < long / short < 4.5


def test_time_fn():
    r = time_fn(lambda: time.sleep(0.01), repeat=3, warmup=0)
    assert len(r.times) == 3 and r.min >= 0.009 and float(r) == r.median
    with pytest.raises(ValueError):
        time_fn(lambda: None, repeat=0)


def test_peak_rss_delta_sees_a_big_allocation():
    # In a fresh process: inside the test session, earlier tests may leave freed memory resident
    # that the allocation reuses, which is (correctly) no increase in resident size.
    code = ("import torch; from course_lib.lab.measure import peak_rss_delta; "
            "print(peak_rss_delta(lambda: torch.ones(40_000_000).sum()))")  # 160 MB
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()[-1]
    if out == "None":
        pytest.skip("no /proc on this platform")
    assert int(out) > 50e6


def test_tokens_per_char_and_unigram_entropy():
    assert tokens_per_char(ByteTokenizer(), ["你好ab"]) == 2.0
    assert math.isclose(unigram_entropy_bits(torch.tensor([0, 1, 2, 3] * 5)), 2.0)
    assert unigram_entropy_bits(torch.tensor([4, 4, 4])) == 0.0


def test_peak_tensor_bytes_counts_live_tensors_not_the_allocator():
    from course_lib.lab.measure import peak_tensor_bytes
    x = torch.ones(1000)

    def two_alive():                 # a and b (4000 + 8000 bytes) are alive when the 400-byte clone is made
        a = torch.ones(1000)
        b = torch.ones(2000, dtype=torch.float32)
        return (a.sum() + b.sum()).expand(100).clone()

    def one_at_a_time():             # each temporary dies before the next is made
        for _ in range(3):
            torch.ones(1000).sum()

    assert peak_tensor_bytes(two_alive) == 4000 + 8000 + 4 + 400    # + the sum that the clone expands
    assert peak_tensor_bytes(one_at_a_time) == 4000 + 4
    assert peak_tensor_bytes(lambda: x.view(10, 100).t()) == 0      # views of inputs are free
    f = torch.randn(64, 64)
    assert peak_tensor_bytes(lambda: torch.softmax(f @ f.T, -1)) == 2 * 64 * 64 * 4
