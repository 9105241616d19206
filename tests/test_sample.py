"""The sampler against independent references: hand-computed distributions, full recomputation,
one-prompt-at-a-time generation and brute-force search."""
import itertools
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from adapters import reference_generate
from course_lib.beam import beam_search, sequence_log_prob
from course_lib.config import ModelConfig
from course_lib.model import Transformer
from course_lib.sample import generate, process_logits, sampling_distribution, stream_generate


@pytest.fixture(scope="module")
def model():
    """A nano model with a large init, so greedy continuations vary (a 0.02 init just repeats)."""
    torch.manual_seed(0)
    return Transformer(ModelConfig.nano(init_std=0.3)).eval()


PROMPTS = [[5, 17, 42], [7, 8, 9, 10, 11, 12, 13], [99], [3, 1, 4, 1, 5]]


# ------------------------------------------------------------------ reference distributions
def reference_probs(logits, temperature=1.0, top_k=None, top_p=None, penalty=1.0, previous=()):
    """The textbook recipe in float64 numpy, written independently of course_lib."""
    x = np.asarray(logits, dtype=np.float64).copy()
    for t in set(previous):
        x[t] = x[t] / penalty if x[t] > 0 else x[t] * penalty
    if temperature == 0:
        out = np.zeros_like(x)
        out[np.argmax(x)] = 1
        return out
    x = x / temperature
    keep = np.ones_like(x, dtype=bool)
    if top_k is not None:
        keep &= x >= np.sort(x)[::-1][min(top_k, len(x)) - 1]
    p = np.exp(x - x[keep].max()) * keep
    p /= p.sum()
    if top_p is not None:
        order = np.argsort(-p, kind="stable")
        chosen, mass = [], 0.0
        for i in order:           # smallest set with cumulative probability >= top_p
            chosen.append(i)
            mass += p[i]
            if mass >= top_p - 1e-9:
                break
        keep2 = np.zeros_like(keep)
        keep2[chosen] = True
        p = p * keep2
        p /= p.sum()
    return p


DOC_PROBS = [0.4, 0.3, 0.15, 0.1, 0.03, 0.02]


def test_top_p_matches_the_worked_example():
    logits = torch.tensor(DOC_PROBS).log()
    p90 = sampling_distribution(logits, 1.0, top_p=0.9)
    assert torch.allclose(p90, torch.tensor([0.4, 0.3, 0.15, 0.1, 0, 0]) / 0.95, atol=1e-6)
    assert (p90[4:] == 0).all()                                       # removed tokens are exactly 0
    p50 = sampling_distribution(logits, 1.0, top_p=0.5)
    assert torch.allclose(p50, torch.tensor([0.4, 0.3, 0, 0, 0, 0]) / 0.7, atol=1e-6)
    # boundary: the first token alone reaches p exactly -> one token (">=" rule, not ">")
    edge = sampling_distribution(torch.tensor([0.9, 0.05, 0.03, 0.02]).log(), 1.0, top_p=0.9)
    assert edge.tolist() == [1.0, 0.0, 0.0, 0.0]
    # a flat head: 0.2+0.18+0.15+0.12 = 0.65 < 0.9, so the nucleus needs at least 7 tokens
    flat = torch.tensor([0.2, 0.18, 0.15, 0.12, 0.1, 0.09, 0.08, 0.05, 0.03])
    assert int((sampling_distribution(flat.log(), 1.0, top_p=0.9) > 0).sum()) == 7


@pytest.mark.parametrize("temperature,top_k,top_p,penalty", [
    (1.0, None, None, 1.0), (0.5, None, None, 1.0), (2.0, None, None, 1.0), (0.1, None, None, 1.0),
    (1.0, 3, None, 1.0), (0.7, 2, None, 1.0), (1.0, None, 0.8, 1.0), (1.3, 5, 0.6, 1.0),
    (1.0, None, None, 1.5), (0.8, 4, 0.9, 1.3), (0, None, None, 1.0), (0, None, None, 2.0),
    (1.0, 100, 1.0, 1.0),
])
def test_distribution_matches_reference(temperature, top_k, top_p, penalty):
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(3, 10, generator=g) * 2
    previous = [[0, 3], [5], [1, 1, 9]]
    for b in range(3):
        ref = reference_probs(logits[b].numpy(), temperature, top_k, top_p, penalty, previous[b])
        got = sampling_distribution(logits[b], temperature, top_k, top_p, penalty, previous_tokens=previous[b])
        np.testing.assert_allclose(got.numpy(), ref, atol=1e-6)
        assert math.isclose(float(got.sum()), 1.0, abs_tol=1e-5)


def test_temperature_numbers_from_the_course():
    """softmax([8, 7, 6, 2, 1] / T): the corrected values of the course's temperature example."""
    logits = torch.tensor([8.0, 7.0, 6.0, 2.0, 1.0])

    def bits(p):
        return float(-(p * torch.log2(p.clamp_min(1e-30))).sum())

    t1 = sampling_distribution(logits, 1.0)
    assert torch.allclose(t1, torch.tensor([0.664, 0.244, 0.090, 0.0016, 0.0006]), atol=5e-4)
    assert torch.allclose(sampling_distribution(logits, 2.0), torch.tensor([0.487, 0.295, 0.179, 0.024, 0.015]),
                          atol=1e-3)
    assert torch.allclose(sampling_distribution(logits, 0.5)[:3], torch.tensor([0.867, 0.117, 0.016]), atol=1e-3)
    assert bits(sampling_distribution(logits, 0.1)) < 0.01           # not "0.3 bits"
    assert abs(bits(t1) - 1.223) < 2e-3 and abs(bits(sampling_distribution(logits, 10.0)) - 2.271) < 2e-3


def test_top_k_keeps_ties_and_batch_shapes():
    logits = torch.tensor([[3.0, 1.0, 3.0, 0.0], [0.0, 1.0, 2.0, 3.0]])
    p = sampling_distribution(logits, 1.0, top_k=1)
    assert p[0].tolist() == [0.5, 0.0, 0.5, 0.0]                     # tie with the k-th is kept
    assert p[1].tolist() == [0.0, 0.0, 0.0, 1.0]
    assert sampling_distribution(logits[None], 1.0).shape == (1, 2, 4)
    # a tiny top_p still keeps the most likely token
    assert sampling_distribution(logits[1], 1.0, top_p=1e-9).tolist() == [0.0, 0.0, 0.0, 1.0]


def test_process_logits_leaves_input_untouched():
    logits = torch.tensor([1.0, -1.0, 2.0])
    before = logits.clone()
    seen = torch.tensor([True, True, False])
    out = process_logits(logits, 0.5, top_k=2, top_p=0.9, repetition_penalty=2.0, seen=seen)
    assert torch.equal(logits, before)
    assert out[1] == float("-inf")                                   # -1 * 2 = -2 is last: cut by top-k


class FixedLogits(nn.Module):
    """A stand-in model whose next-token logits are always the same (to test the drawing itself)."""

    def __init__(self, logits):
        super().__init__()
        self.config = ModelConfig.nano(vocab_size=len(logits))
        self.register_buffer("logits", torch.as_tensor(logits, dtype=torch.float32))
        self.anchor = nn.Parameter(torch.zeros(1))

    def forward(self, input_ids, attention_mask=None, position_ids=None, kv_cache=None, **_):
        B, T = input_ids.shape
        return SimpleNamespace(logits=self.logits.expand(B, T, -1), kv_cache=kv_cache)


@pytest.mark.parametrize("temperature,top_k,top_p", [(1.0, None, None), (0.7, 4, None), (1.5, None, 0.8)])
def test_sample_frequencies_follow_the_distribution(temperature, top_k, top_p):
    """20 000 draws through generate(); a seeded generator makes the outcome fixed (cannot flake)."""
    logits = torch.tensor(DOC_PROBS).log()
    stub = FixedLogits(logits)
    n = 20_000
    prompts = torch.zeros(n, 1, dtype=torch.long)
    g = torch.Generator().manual_seed(1234)
    draws = generate(stub, prompts, 1, temperature=temperature, top_k=top_k, top_p=top_p, generator=g,
                     use_cache=False)[:, -1]
    counts = torch.bincount(draws, minlength=len(DOC_PROBS)).double()
    expected = reference_probs(logits.numpy(), temperature, top_k, top_p) * n
    assert (counts[torch.from_numpy(expected) == 0] == 0).all()       # removed tokens are never drawn
    live = expected > 0
    chi2 = float((((counts.numpy() - expected) ** 2)[live] / expected[live]).sum())
    assert chi2 < 25.0, chi2          # df <= 5: the 0.9999 quantile is about 25.7


# ------------------------------------------------------------------ generation
def test_greedy_is_argmax_of_the_full_forward(model):
    out = generate(model, [PROMPTS[0]], 6, temperature=0)
    for t in range(3, 9):
        logits = model(out[:, :t]).logits[:, -1]
        assert int(out[0, t]) == int(logits.argmax())


def test_batched_left_padded_equals_each_prompt_alone_and_full_recompute(model):
    batched = generate(model, PROMPTS, 12, temperature=0)
    assert torch.equal(batched, reference_generate(model, PROMPTS, 12))          # no cache, every step anew
    assert torch.equal(generate(model, PROMPTS, 12, temperature=0, use_cache=False), batched)
    T = max(map(len, PROMPTS))
    for b, prompt in enumerate(PROMPTS):
        alone = generate(model, [prompt], 12, temperature=0)
        assert torch.equal(batched[b, T - len(prompt):], alone[0])
        assert (batched[b, : T - len(prompt)] == 0).all()
    assert len(set(map(tuple, batched[:, T:].tolist()))) > 1          # a non-degenerate test


def test_tensor_with_mask_equals_list_input(model):
    ids = torch.tensor([[0, 0, 5, 17, 42], [3, 1, 4, 1, 5]])
    mask = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]])
    a = generate(model, ids, 5, temperature=0, attention_mask=mask)
    b = generate(model, [PROMPTS[0], PROMPTS[3]], 5, temperature=0)
    assert torch.equal(a, b)


def test_sampling_cached_equals_full_recompute_with_the_same_generator(model):
    args = dict(temperature=0.9, top_k=50, top_p=0.95, repetition_penalty=1.2)
    a = generate(model, PROMPTS, 10, generator=torch.Generator().manual_seed(7), **args)
    b = reference_generate(model, PROMPTS, 10, generator=torch.Generator().manual_seed(7), **args)
    c = generate(model, PROMPTS, 10, generator=torch.Generator().manual_seed(8), **args)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_streaming_and_callback_match_generate(model):
    full = generate(model, PROMPTS, 8, temperature=0)
    steps = list(stream_generate(model, PROMPTS, 8, temperature=0))
    assert len(steps) == 8 and all(s.shape == (len(PROMPTS),) for s in steps)
    assert torch.equal(torch.stack(steps, dim=1), full[:, -8:])
    seen = []
    generate(model, PROMPTS, 8, temperature=0, callback=lambda step, tok: seen.append((step, tok)))
    assert [s for s, _ in seen] == list(range(8))
    assert torch.equal(torch.stack([t for _, t in seen], dim=1), full[:, -8:])
    stopped = generate(model, PROMPTS, 8, temperature=0, callback=lambda step, tok: step == 2)
    assert stopped.shape[1] == full.shape[1] - 5


def test_eos_rows_emit_padding_and_generation_stops(model):
    free = generate(model, PROMPTS[:2], 10, temperature=0, pad_token_id=1)
    T = free.shape[1] - 10
    eos = int(free[0, T + 2])                                         # row 0 will hit it by step 2
    unused = min(set(range(256)) - set(free[:, T:].flatten().tolist()))   # a second eos that never occurs
    out = generate(model, PROMPTS[:2], 10, temperature=0, eos_token_id=[eos, unused], pad_token_id=1)
    firsts = []
    for b in range(2):
        row = free[b, T:].tolist()
        firsts.append(row.index(eos) if eos in row else None)
    n = 10 if None in firsts else max(firsts) + 1                    # stops once every row is done
    assert out.shape == (2, T + n)
    for b in range(2):
        expected = free[b, :T + n].clone()
        if firsts[b] is not None:
            expected[T + firsts[b] + 1:] = 1                           # padding after the row's eos
        assert torch.equal(out[b], expected)
    assert (out[0, T + firsts[0] + 1:] == 1).all() and firsts[0] <= 2


def test_mode_restored_and_output_is_a_normal_tensor(model):
    model.train()
    out = generate(model, [PROMPTS[0]], 3, temperature=0)
    assert model.training and model.check_inputs                    # eval mode and skipped checks undone
    model.eval()
    emb = nn.Embedding(256, 4)
    emb(out).sum().backward()                                        # inference tensors would raise here
    assert not out.is_inference()
    for tok in stream_generate(model, [PROMPTS[0]], 2, temperature=0):
        assert not tok.is_inference() and torch.is_grad_enabled() and model.check_inputs


def test_truncate_keeps_the_last_tokens():
    m = Transformer(ModelConfig.nano(max_seq_len=16, init_std=0.3)).eval()
    long_prompt = list(range(1, 21))
    with pytest.raises(ValueError, match="truncate=True"):
        generate(m, [long_prompt], 4, temperature=0)
    out = generate(m, [long_prompt], 4, temperature=0, truncate=True)
    ref = generate(m, [long_prompt[-16:]], 4, temperature=0, )
    assert torch.equal(out, ref)
    # RoPE can go past max_seq_len while decoding; learned positions cannot
    assert generate(m, [long_prompt[-16:]], 4, temperature=0).shape == (1, 20)
    learned = Transformer(ModelConfig.nano(max_seq_len=16, pos="learned")).eval()
    with pytest.raises(ValueError, match="max_new_tokens=4"):
        generate(learned, [list(range(1, 14))], 4, temperature=0)
    assert generate(learned, [list(range(1, 14))], 4, temperature=0, truncate=True).shape == (1, 16)


def test_stats_report_prefill_and_decode(model):
    out, stats = generate(model, PROMPTS, 5, temperature=0, return_stats=True)
    assert stats.new_tokens == 5 and stats.decode_steps == 4 and stats.batch_size == 4
    assert stats.prefill_seconds > 0 and stats.decode_seconds > 0 and stats.decode_tokens_per_s > 0
    assert "prefill" in str(stats)


# ------------------------------------------------------------------ beams
def test_beam_of_one_is_greedy(model):
    greedy = generate(model, [PROMPTS[1]], 7, temperature=0)
    beam, score = beam_search(model, [PROMPTS[1]], num_beams=1, max_new_tokens=7, length_penalty=0)
    assert torch.equal(beam, greedy)
    assert math.isclose(score, float(sequence_log_prob(model, greedy, len(PROMPTS[1]))), rel_tol=1e-4)


def test_wider_beam_scores_at_least_greedy(model):
    for prompt in PROMPTS:
        greedy = generate(model, [prompt], 6, temperature=0)
        greedy_lp = float(sequence_log_prob(model, greedy, len(prompt)))
        beam, score, hyps = beam_search(model, [prompt], 4, 6, length_penalty=0, return_all=True)
        assert score >= greedy_lp - 1e-4
        assert math.isclose(score, float(sequence_log_prob(model, beam, len(prompt))), rel_tol=1e-4, abs_tol=1e-4)
        assert [h.score for h in hyps] == sorted((h.score for h in hyps), reverse=True)
        cached = beam_search(model, [prompt], 4, 6, length_penalty=0, use_cache=False)[0]
        assert torch.equal(cached, beam)


def test_full_width_beam_finds_the_global_optimum():
    """With num_beams = vocab size and two steps nothing is ever pruned: brute force must agree."""
    m = Transformer(ModelConfig.nano(vocab_size=12, init_std=0.5)).eval()
    prompt = [3, 7]
    pairs = list(itertools.product(range(12), repeat=2))
    every = sequence_log_prob(m, torch.tensor([prompt + [a, b] for a, b in pairs]), 2)   # all 144 at once
    best, best_lp = list(pairs[int(every.argmax())]), float(every.max())
    seq, score = beam_search(m, prompt, num_beams=12, max_new_tokens=2, length_penalty=0)
    assert seq[0, 2:].tolist() == best
    assert math.isclose(score, best_lp, rel_tol=1e-4)


def test_beam_with_eos_finishes_hypotheses(model):
    greedy = generate(model, [PROMPTS[0]], 5, temperature=0)
    eos = int(greedy[0, 4])
    _, _, hyps = beam_search(model, [PROMPTS[0]], 3, 6, eos_token_id=eos, return_all=True)
    done = [h for h in hyps if h.finished]
    assert done and all(int(h.tokens[0, -1]) == eos for h in done)


# ------------------------------------------------------------------ bad input
BAD = [
    (dict(input_ids=[[1, 2], []]), "input_ids\\[1\\]"),
    (dict(input_ids=[]), "input_ids is empty"),
    (dict(input_ids=torch.zeros(1, 0, dtype=torch.long)), "empty"),
    (dict(input_ids=torch.tensor([1, 2, 3])), "2-D"),
    (dict(input_ids=torch.zeros(1, 2, 3, dtype=torch.long)), "2-D"),
    (dict(input_ids=torch.tensor([[1.0, 2.0]])), "dtype"),
    (dict(input_ids=[[1, 2.5]]), "input_ids\\[0\\]"),
    (dict(input_ids=[[1, 256]]), "256.*\\[0, 255\\]"),
    (dict(input_ids=[[-1, 3]]), "-1"),
    (dict(input_ids=[list(range(1, 130))]), "prompt length 129 exceeds"),
    (dict(temperature=-0.5), "temperature=-0.5"),
    (dict(temperature=float("nan")), "temperature"),
    (dict(top_p=0.0), "top_p=0.0.*\\(0, 1\\]"),
    (dict(top_p=1.5), "top_p=1.5"),
    (dict(top_k=0), "top_k=0.*>= 1"),
    (dict(top_k=2.5), "top_k=2.5"),
    (dict(max_new_tokens=-1), "max_new_tokens=-1"),
    (dict(repetition_penalty=0.0), "repetition_penalty=0.0"),
    (dict(eos_token_id=300), "eos_token_id=300"),
    (dict(pad_token_id=-3), "pad_token_id=-3"),
    (dict(input_ids=torch.tensor([[1, 2]]), attention_mask=torch.tensor([[1, 0]])), "left-padded"),
    (dict(input_ids=torch.tensor([[1, 2]]), attention_mask=torch.tensor([[0, 0]])), "empty prompt"),
    (dict(input_ids=torch.tensor([[1, 2]]), attention_mask=torch.tensor([[1, 1, 1]])), "attention_mask"),
    (dict(input_ids=torch.tensor([[1, 2]]), attention_mask=torch.tensor([[1, 2]])), "0 \\(padding\\)"),
    (dict(input_ids=[[1, 2]], attention_mask=torch.tensor([[1, 1]])), "attention_mask must be None"),
    (dict(generator="seed"), "generator"),
    (dict(callback=3), "callback"),
]


@pytest.mark.parametrize("kwargs,message", BAD)
def test_bad_input_is_a_clear_value_error(model, kwargs, message):
    args = dict(input_ids=[[1, 2, 3]], max_new_tokens=2)
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        generate(model, **args)
    with pytest.raises(ValueError, match=message):
        stream_generate(model, **args)                              # raises at the call, not at next()


@pytest.mark.parametrize("kwargs,message", [
    (dict(num_beams=0), "num_beams=0"), (dict(max_new_tokens=-2), "max_new_tokens=-2"),
    (dict(input_ids=[[1, 2], [3]]), "one prompt"), (dict(length_penalty=float("inf")), "length_penalty"),
    (dict(input_ids=[[1, 999]]), "999"),
])
def test_beam_search_bad_input(model, kwargs, message):
    args = dict(input_ids=[1, 2, 3], num_beams=2, max_new_tokens=2)
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        beam_search(model, **args)


@pytest.mark.parametrize("kwargs,message", [
    (dict(temperature=-1), "temperature"), (dict(top_p=2), "top_p"), (dict(top_k=0), "top_k"),
    (dict(repetition_penalty=-1), "repetition_penalty"), (dict(logits=torch.tensor([1, 2])), "floating"),
])
def test_sampling_distribution_bad_input(kwargs, message):
    args = dict(logits=torch.zeros(4), temperature=1.0)
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        sampling_distribution(**args)


@pytest.mark.parametrize("temperature", [0.0, 0.8])
def test_non_finite_logits_stop_generation_with_a_clear_error(temperature):
    # greedy would silently pick a token from NaN logits, and multinomial fails deep inside torch
    m = Transformer(ModelConfig.nano()).eval()
    with torch.no_grad():
        m.norm.weight[0] = float("nan")          # the final norm: every logit of every step is NaN
    with pytest.raises(ValueError, match="NaN or inf at generation step 0"):
        generate(m, torch.tensor([[1, 2, 3]]), max_new_tokens=3, temperature=temperature,
                 generator=torch.Generator().manual_seed(0))
