# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 22 Decoding and "thinking out loud"
#
# A trained language model gives a probability for every next token. Turning those probabilities
# into text is a separate decision: take the most likely token (greedy), keep several candidates
# (beam search), or draw at random after reshaping the distribution (temperature, top-p). And the
# tokens a model writes are not only output: they are the one channel through which a later step
# can read what an earlier step computed.
#
# ## The questions
#
# **S000-Q12** 「为什么生成时要用采样（Sampling），而不是直接选概率最高的词（Greedy）？」
# *Why sample instead of always taking the most probable token (greedy)?*
#
# **S000-Q12.1** 「什么情况下Greedy会失败？为什么？」
# *When and why does greedy decoding fail?*
#
# **S000-Q12.2** 「Temperature和Top-P如何影响生成质量？背后的数学原理是什么？」
# *How do temperature and top-p affect generation quality, and what is the maths behind them?*
#
# **S004-N3** 「在第 $i$ 层的任何"推理链"最多只能有 $i$ 个推理步骤」
# *Within one forward pass a "reasoning chain" has at most as many steps as there are layers;
# writing tokens out ("thinking out loud") is how information gets from the top layers back to the
# bottom, which is why chain of thought works.*
#
# **S004-Q0** 「上面那段文字有多少个单词？」
# *"How many words are in the paragraph above?" (an anecdote about asking the question before or
# after the text).*
#
# **The surface answer.** The document says sampling adds diversity and avoids the repetition
# greedy decoding falls into; that greedy is not optimal over whole sequences (its example:
# 0.35 × 0.6 = 0.21 beats 0.4 × 0.5 = 0.20); and it works through temperature and top-p on
# example logits, with probabilities and entropies we recompute below. The second source argues
# that a transformer's serial computation per token is bounded by its depth, so a model that writes
# intermediate steps can chain more steps than one that must answer at once, and that a question
# placed after a long text is answered worse than one placed before it.
#
# We measure each of these: the arithmetic with the library's own sampler, the decoders on the
# course's small pretrained Chinese model, and the last two on small models trained from scratch.

# %%
import math

import torch

from course_lib import ModelConfig, TrainConfig, load_pretrained, sampling_distribution
from course_lib.beam import sequence_log_prob
from course_lib.lab import viz
from course_lib.lab.budget import budget, by_budget, set_budget_threads
from course_lib.lab.decoding import accuracy_by_hops, decode, distinct_n, repeated_ngram_fraction
from course_lib.lab.probes import task_accuracy
from course_lib.lab.runs import train_model
from course_lib.lab.socratic import Claim, claims_table, essence, predict, reveal
from course_lib.lab.synthetic import counting, pointer_chasing

viz.setup()
import matplotlib.pyplot as plt  # noqa: E402

set_budget_threads()
print("budget:", budget())
torch.manual_seed(0)


def bits(p):
    """Entropy in bits of probabilities ``p (..., V)`` (0 log 0 = 0)."""
    return -(p * torch.log2(p.clamp_min(1e-30))).sum(-1)


# %% [markdown]
# ## 1. Temperature and top-p: the arithmetic (S000-Q12.2)
#
# Temperature divides the logits before the softmax: `p = softmax(z / T)`. Small T sharpens the
# distribution towards the argmax (T → 0 is greedy), large T flattens it towards uniform. The
# document's example logits are `[8, 7, 6, 2, 1]`, and it prints probabilities and entropies for
# T = 0.1 ... 10. Before looking: what is the entropy at T = 0.1?

# %%
p_temp = predict("S000-Q12.2 entropy",
                 "softmax([8, 7, 6, 2, 1] / 0.1): how many bits of entropy? (the document says 0.3)",
                 choices=["about 0.3 bits", "about 0.01 bits or less", "about 1 bit"])

# %%
LOGITS = torch.tensor([8.0, 7.0, 6.0, 2.0, 1.0])
TEMPS = [0.1, 0.5, 1.0, 2.0, 10.0]
DOC_PROBS = {1.0: [0.61, 0.22, 0.08, 0.04, 0.02], 2.0: [0.37, 0.25, 0.18, 0.10, 0.08]}
DOC_BITS = {0.1: 0.3, 1.0: 1.2, 10.0: 2.3}
probs = {T: sampling_distribution(LOGITS, T) for T in TEMPS}        # the sampler's own distribution
by_hand = {T: torch.softmax(LOGITS.double() / T, -1) for T in TEMPS}  # float64 reference
for T in TEMPS:
    print(f"T={T:>4}: p = {[round(v, 4) for v in probs[T].tolist()]}  entropy {float(bits(probs[T])):.3f} bits"
          + (f"   document: {DOC_PROBS[T]}" if T in DOC_PROBS else "")
          + (f"   document: {DOC_BITS[T]} bits" if T in DOC_BITS else ""))
print(f"maximum possible entropy over 5 tokens: log2(5) = {math.log2(5):.3f} bits")

# %%
max_dev = max(float((probs[T].double() - by_hand[T]).abs().max()) for T in TEMPS)
assert max_dev < 1e-6, max_dev                                   # the sampler is the softmax of z / T
doc_err = {T: max(abs(a - b) for a, b in zip(DOC_PROBS[T], probs[T].tolist())) for T in DOC_PROBS}
bits_at = {T: float(bits(probs[T])) for T in TEMPS}
assert all(bits_at[a] < bits_at[b] for a, b in zip(TEMPS, TEMPS[1:]))   # entropy rises with T
reveal(p_temp, measured=f"{bits_at[0.1]:.4f} bits at T=0.1",
       answer=("about 0.01 bits or less" if bits_at[0.1] < 0.02 else
               "about 0.3 bits" if abs(bits_at[0.1] - 0.3) < 0.1 else "about 1 bit"),
       note=f"At T=0.1 the logit gap of 1 becomes 10: the runner-up has p ≈ e^-10. The document's T=1 "
            f"row is off by up to {doc_err[1.0]:.3f}, its T=2 row by up to {doc_err[2.0]:.3f}.")

# %% [markdown]
# The entropy curve over a finer grid of temperatures, with the document's three values:

# %%
grid = torch.logspace(-1.5, 1.5, 61)
curve = [float(bits(sampling_distribution(LOGITS, float(T)))) for T in grid]
fig, ax = plt.subplots(figsize=(6, 3.4))
ax.semilogx(grid, curve, label="softmax([8,7,6,2,1] / T), measured")
ax.scatter(list(DOC_BITS), list(DOC_BITS.values()), color="C3", zorder=3, label="document")
ax.axhline(math.log2(5), color="gray", ls=":", label="uniform over 5 tokens")
ax.set_xlabel("temperature T"); ax.set_ylabel("entropy (bits)"); ax.legend(fontsize=8)
ax.set_title("Entropy of the next-token distribution against temperature");

# %% [markdown]
# **Top-p (nucleus) sampling** keeps the smallest set of most likely tokens whose probabilities add
# up to at least p, and renormalises. The document's example distribution is
# `[0.4, 0.3, 0.15, 0.1, 0.03, 0.02]`; its description says "the tokens whose cumulative
# probability is ≤ 0.9", yet it keeps four tokens, whose sum is 0.95. It also says a flat
# distribution such as `[0.2, 0.18, 0.15, 0.12, …]` keeps "4-5 tokens" at p = 0.9.

# %%
DOC_P = torch.tensor([0.4, 0.3, 0.15, 0.1, 0.03, 0.02])
FLAT = torch.tensor([0.2, 0.18, 0.15, 0.12, 0.1, 0.09, 0.08, 0.05, 0.03])   # the flat head, completed
nucleus = {p: sampling_distribution(DOC_P.log(), 1.0, top_p=p) for p in (0.9, 0.5)}
flat_size = int((sampling_distribution(FLAT.log(), 1.0, top_p=0.9) > 0).sum())
for p, dist in nucleus.items():
    print(f"top-p {p}: keeps {int((dist > 0).sum())} tokens, renormalised {[round(v, 3) for v in dist.tolist()]}")
print(f"flat distribution, top-p 0.9: keeps {flat_size} tokens "
      f"(the first four sum to only {float(FLAT[:4].sum()):.2f})")

# %%
ref90 = DOC_P[:4] / DOC_P[:4].sum()                                  # smallest set with sum >= 0.9
assert torch.allclose(nucleus[0.9][:4], ref90, atol=1e-6) and int((nucleus[0.9] > 0).sum()) == 4
assert int((nucleus[0.5] > 0).sum()) == 2
assert flat_size >= 7                                                # not "4-5 tokens"

# %% [markdown]
# On a real model the nucleus size changes from position to position: one token where the model is
# sure, dozens where it is not. We take the course's small pretrained Chinese model (4 layers,
# 1.6 M parameters, trained on People's Daily news text), let it continue a few prompts, and count
# the tokens a top-p 0.9 nucleus keeps at every position.

# %%
model, tok = load_pretrained()
PROMPTS = ["今天", "中国", "他说", "新华社北京", "我们要", "经济发展", "记者", "在会上"]
PROMPTS = PROMPTS[:by_budget(fast=6, full=8)]
prompt_ids = [tok.encode(p) for p in PROMPTS]
NEW = by_budget(fast=48, full=96)          # new tokens per continuation
N_SAMPLES = by_budget(fast=6, full=16)     # continuations per prompt and strategy
texts = torch.tensor([ids + c for ids in prompt_ids[:1] for c in
                      decode(model, ids, NEW, {"temperature": 1.0}, n=N_SAMPLES, seed=0)])
with torch.no_grad():
    pos_logits = model(texts).logits[:, :-1].reshape(-1, model.config.vocab_size)
pos_probs = torch.softmax(pos_logits, -1)
sizes = (sampling_distribution(pos_logits, 1.0, top_p=0.9) > 0).sum(-1)
confident = pos_probs.max(-1).values > 0.5
print(f"{len(sizes)} positions; nucleus size median {int(sizes.median())}, max {int(sizes.max())}; "
      f"confident positions (top p > 0.5): {int(confident.sum())}, median size there {int(sizes[confident].median())}")

# %%
fig, ax = plt.subplots(figsize=(6.5, 3.4))
edges = torch.logspace(0, math.log10(float(sizes.max()) + 1), 25)
ax.hist([sizes[confident].numpy(), sizes[~confident].numpy()], bins=edges.numpy(), stacked=True,
        label=["top token p > 0.5", "top token p ≤ 0.5"])
ax.set_xscale("log"); ax.set_xlabel("tokens kept by top-p 0.9 (count, log scale)")
ax.set_ylabel("positions (count)"); ax.legend(fontsize=8)
ax.set_title("Nucleus size on the pretrained model's own text");

# %%
assert int(confident.sum()) >= 10 and int((~confident).sum()) >= 10, int(confident.sum())   # both groups seen
assert float(sizes[confident].float().median()) < float(sizes[~confident].float().median())

# %% [markdown]
# ## 2. Greedy, beam search and sampling (S000-Q12, S000-Q12.1)
#
# **Greedy is not sequence-optimal.** The document's two-step example: the first token A has
# p = 0.4 and B has 0.35; after A the best next token has 0.5, after B 0.6. Greedy takes A and ends
# with 0.4 × 0.5 = 0.20; the sequence through B has 0.35 × 0.6 = 0.21.

# %%
first = {"A": 0.4, "B": 0.35, "C": 0.25}
second_best = {"A": 0.5, "B": 0.6, "C": 0.4}   # the best next-token probability after each
greedy_first = max(first, key=first.get)
joint = {t: first[t] * second_best[t] for t in first}
best_first = max(joint, key=joint.get)
print(f"greedy: {greedy_first} then its best -> {joint[greedy_first]:.2f}; best sequence starts with "
      f"{best_first}: {joint[best_first]:.2f}")
assert joint[best_first] > joint[greedy_first] and best_first != greedy_first

# %% [markdown]
# That is why beam search exists: it keeps the `k` best partial sequences instead of one. But a
# higher sequence probability is not the same as better text. Holtzman et al. (2020, "The Curious
# Case of Neural Text Degeneration") found that maximisation-based decoding (greedy and beam)
# produces bland, repetitive text, and that human text is far less probable under the model than
# what beam search finds.
#
# We continue each prompt with six strategies and measure three things:
# * **repetition**: the fraction of 4-grams in a continuation that already occurred earlier in it;
# * **diversity**: distinct-2 (unique bigrams / all bigrams) over the continuations of one prompt
#   (greedy and beam give one continuation, so they can reach at most 1 / number of samples);
# * **model log-probability** per token of the continuation (what greedy and beam try to maximise).

# %%
p_rep = predict("S000-Q12.1 repetition",
                "Which decoder repeats itself most (highest fraction of repeated 4-grams)?",
                choices=["greedy or beam", "sampling at T=1", "about the same"])

# %%
STRATEGIES = {"greedy": {"temperature": 0}, "beam 4": {"num_beams": 4},
              "T=0.7": {"temperature": 0.7}, "T=1.0": {"temperature": 1.0},
              "T=1.3": {"temperature": 1.3}, "T=1, top-p 0.9": {"temperature": 1.0, "top_p": 0.9}}
stats = {name: {"rep": [], "div": [], "logp": []} for name in STRATEGIES}
examples = {}
for i, ids in enumerate(prompt_ids):
    for name, strategy in STRATEGIES.items():
        conts = decode(model, ids, NEW, strategy, n=N_SAMPLES, seed=i)
        seqs = torch.tensor([ids + c for c in conts])
        stats[name]["rep"].append(sum(repeated_ngram_fraction(c, 4) for c in conts) / len(conts))
        stats[name]["div"].append(distinct_n(conts, 2))
        stats[name]["logp"].append(float(sequence_log_prob(model, seqs, len(ids)).mean()) / NEW)
        examples.setdefault(name, tok.decode(ids + conts[0]))
mean = {name: {k: sum(v) / len(v) for k, v in s.items()} for name, s in stats.items()}
print(f"{'strategy':<16}{'repeated 4-grams':>18}{'distinct-2':>12}{'log p / token':>15}")
for name, m in mean.items():
    print(f"{name:<16}{m['rep']:>18.3f}{m['div']:>12.3f}{m['logp']:>15.2f}")
print(f"(means over {len(PROMPTS)} prompts, {N_SAMPLES} continuations of {NEW} tokens each)")

# %%
for name in ("greedy", "beam 4", "T=1, top-p 0.9"):
    print(f"[{name}] {examples[name][:70]}")

# %%
fig, axes = plt.subplots(1, 3, figsize=(13, 3.4))
names = list(STRATEGIES)
for ax, key, label in zip(axes, ("rep", "div", "logp"),
                          ("repeated 4-grams (fraction)", "distinct-2 across samples (fraction)",
                           "log-probability per token (nats)")):
    ax.bar(range(len(names)), [mean[n][key] for n in names], color=[f"C{i}" for i in range(len(names))])
    ax.set_xticks(range(len(names)), names, rotation=35, ha="right", fontsize=8)
    ax.set_ylabel(label); ax.set_xlabel("decoding strategy")
fig.suptitle("Decoders on the pretrained model (mean over prompts)")
fig.tight_layout();

# %% [markdown]
# To call a difference real we compare it with its spread over prompts: the per-prompt difference
# between greedy and T=1 sampling, its mean and its standard error.

# %%
def paired(a, b, key):
    """Mean and standard error over prompts of stats[a][key] - stats[b][key]."""
    d = [x - y for x, y in zip(stats[a][key], stats[b][key])]
    m = sum(d) / len(d)
    return m, (sum((x - m) ** 2 for x in d) / (len(d) - 1) / len(d)) ** 0.5


rep_gap, rep_se = paired("greedy", "T=1.0", "rep")
div_gap, div_se = paired("T=1.0", "greedy", "div")
lp_gap, lp_se = paired("beam 4", "greedy", "logp")
loops = sum(r >= 0.5 for r in stats["greedy"]["rep"])
print(f"greedy - sampling, repeated 4-grams: {rep_gap:+.3f} ± {rep_se:.3f}")
print(f"sampling - greedy, distinct-2:       {div_gap:+.3f} ± {div_se:.3f}")
print(f"beam - greedy, log p per token:      {lp_gap:+.3f} ± {lp_se:.3f}")
print(f"greedy continuations with at least half their 4-grams repeated: {loops} of {len(PROMPTS)}")

# %%
assert all(0 <= v <= 1 for s in stats.values() for v in s["rep"] + s["div"])
assert max(stats["greedy"]["div"]) <= 1 / N_SAMPLES + 1e-9          # one continuation, repeated
sampling_less_repetitive = rep_gap > 2 * rep_se
reveal(p_rep, measured=f"greedy {mean['greedy']['rep']:.2f}, beam {mean['beam 4']['rep']:.2f}, "
                       f"T=1 {mean['T=1.0']['rep']:.2f} repeated 4-grams",
       answer=("greedy or beam" if sampling_less_repetitive else
               "sampling at T=1" if rep_gap < -2 * rep_se else "about the same"),
       note="The decoders that maximise probability find the loops: once a phrase repeats, repeating it "
            "again becomes the most likely continuation.")
by_logp = sorted(mean, key=lambda n: -mean[n]["logp"])
print(f"ranked by log p per token: {', '.join(by_logp)}")
print(f"top-p 0.9 at T=1 vs plain T=1: log p per token {mean['T=1, top-p 0.9']['logp'] - mean['T=1.0']['logp']:+.2f} nats")

# %% [markdown]
# The table, the plot and the ranking above put numbers on the trade-off the document describes
# only in words: the maximising decoders sit at the likely-but-repetitive end, and temperature moves
# sampling towards diverse-but-unlikely text (compare the log-probability of T = 0.7, 1.0 and 1.3);
# top-p removes the unlikely tail, which shows up as a higher log-probability than plain T = 1. Which point on that line reads best is a matter of taste and task, which is why the
# document's "best practice" table of temperatures per use case (code 0.1-0.3, poetry 1.0-1.2, ...) is
# folklore that a notebook cannot check: it names no measure of quality.
#
# ## 3. Thinking out loud: chains longer than the model is deep (S004-N3)
#
# Inside one forward pass, information moves upward: layer ℓ at position t reads layer ℓ-1 at
# positions ≤ t, and nothing flows from a higher layer back to a lower one. A chain of dependent
# steps that must all happen inside one pass can therefore use at most one "step" per layer (with
# clever parallel tricks, somewhat more; Feng et al. 2023 and Merrill & Sabharwal 2023 make this
# precise). A token the model emits, however, is read again by layer 1 at the next position: writing
# intermediate results out turns a deep computation into a long one.
#
# The task: **pointer chasing**. The context lists the edges of a random cycle through 5 nodes in
# shuffled order (`a→b` pairs), then a start node and a hop count k; the answer is the node reached
# after k hops. Following one pointer already takes two attention steps in a causal model (the
# token `b` first learns which `a` precedes it, then the query finds the edge that starts at the
# current node), so a 2-layer model answering directly has no room for a second hop. We train two
# formats with the same 2-layer model:
# * **direct**: `… <sep> start h{k} answer`, hop counts k = 1 … 4 mixed in one training set;
# * **written path**: `… <sep> start h4 n1 n2 n3 n4`, the model writes every node on the way; the
#   answer to a k-hop question is the k-th node it writes. At test time it writes greedily and reads
#   its own earlier nodes, mistakes included.

# %%
p_hops = predict("S004-N3",
                 "2-layer models, 4-hop pointer chasing: accuracy of the direct answer vs the written path?",
                 choices=["written path clearly higher", "about equal", "direct clearly higher"])

# %%
K, N_NODES = 4, 5
STEPS_PC = by_budget(fast=300, full=3000)
SEEDS = by_budget(fast=(0, 1), full=(0, 1, 2))
N_TRAIN = STEPS_PC * 64                    # every training sequence is seen once
formats = {"direct": dict(hops=list(range(1, K + 1))), "written path": dict(hops=K, show_path=True)}
train_sets = {f: pointer_chasing(N_TRAIN, n_nodes=N_NODES, seed=1, **kw) for f, kw in formats.items()}
eval_sets = {f: pointer_chasing(by_budget(fast=800, full=2000), n_nodes=N_NODES, seed=1000, **kw)
             for f, kw in formats.items()}
pc_cfg = ModelConfig.nano(vocab_size=train_sets["direct"].vocab_size, max_seq_len=32)
pc_train = TrainConfig(batch_size=64, max_steps=STEPS_PC, lr=3e-3, warmup_steps=STEPS_PC // 10,
                       schedule="cosine", weight_decay=0.0)
hop_acc = {f: [accuracy_by_hops(train_model(pc_cfg, train_sets[f], pc_train, seed=s)[0], eval_sets[f], K)
               for s in SEEDS] for f in formats}
chance = 1 / (N_NODES - 1)       # k < 5 hops never return to the start: 4 candidates remain
for f, runs in hop_acc.items():
    print(f"{f:>13}: " + "  ".join(f"k={k}: " + "/".join(f"{r[k]:.2f}" for r in runs) for k in range(1, K + 1)))
print(f"chance: {chance:.2f}; {STEPS_PC} steps of 64 sequences, seeds {SEEDS}")

# %%
fig, ax = plt.subplots(figsize=(6, 3.4))
for i, (f, runs) in enumerate(hop_acc.items()):
    for j, r in enumerate(runs):
        ax.plot(range(1, K + 1), [r[k] for k in range(1, K + 1)], "o-", color=f"C{i}", alpha=0.8,
                label=f if j == 0 else None)
ax.axhline(chance, color="gray", ls=":", label="chance")
ax.axvline(pc_cfg.n_layers, color="k", lw=0.6, ls="--", label="number of layers")
ax.set_xlabel("hops k"); ax.set_ylabel("accuracy on the k-hop answer (fraction)"); ax.set_ylim(0, 1.02)
ax.legend(fontsize=8); ax.set_title("2-layer models: direct answer vs written path");

# %%
def margin_call(a_runs, b_runs, floor=0.05):
    """'a higher' / 'b higher' / 'about equal' by the mean gap against the seed range (and a floor)."""
    gap = sum(a_runs) / len(a_runs) - sum(b_runs) / len(b_runs)
    spread = max(max(a_runs) - min(a_runs), max(b_runs) - min(b_runs), floor)
    return ("a higher" if gap > spread else "b higher" if gap < -spread else "about equal"), gap, spread


CALL_NAMES = {"a higher": "written path higher", "b higher": "direct higher", "about equal": "about equal"}
hop_call = {k: margin_call([r[k] for r in hop_acc["written path"]], [r[k] for r in hop_acc["direct"]])
            for k in range(1, K + 1)}
for k, (call, gap, spread) in hop_call.items():
    print(f"k={k}: written path - direct = {gap:+.3f} (seed range {spread:.3f}) -> {CALL_NAMES[call]}")

# %%
learned = {f: max(sum(r[k] for r in runs) / len(runs) for k in range(1, K + 1)) > chance + 0.15
           for f, runs in hop_acc.items()}
print("formats clearly above chance at some k:", [f for f, ok in learned.items() if ok] or "none at this budget")
n_per_hop = int((eval_sets["direct"].info["hops"] == K).sum())
assert n_per_hop >= 100, n_per_hop                                  # enough k-hop questions to score
assert all(0 <= v <= 1 for runs in hop_acc.values() for r in runs for v in r.values())
call_k = hop_call[K][0]
reveal(p_hops, measured=f"k={K}: written path {sum(r[K] for r in hop_acc['written path']) / len(SEEDS):.2f}, "
                        f"direct {sum(r[K] for r in hop_acc['direct']) / len(SEEDS):.2f} (chance {chance:.2f})",
       answer={"a higher": "written path clearly higher", "b higher": "direct clearly higher",
               "about equal": "about equal"}[call_k],
       note=f"Decided by the mean gap against the seed range, after {STEPS_PC} training steps.")

# %% [markdown]
# **Reading the result.** Learning the lookup itself is slow. The fast budget (300 steps) is far
# too short, so compare its accuracies with chance before reading anything into them: near chance,
# "about equal" is a statement about the budget, not about the formats. The full budget (3000 steps,
# 3 seeds, a few minutes on a GPU) is sized to let the models learn. While writing this notebook we
# ran that length once on a CPU (one seed, 3000 steps over 20 000 recycled sequences, otherwise the
# same set-up): the written-path model got every node of the 4-hop path right on held-out chains
# (1.00 at k = 1 … 4, teacher-forced, which for a perfect model equals its greedy output), while the
# direct model stayed at chance for every k (0.24-0.28 against 0.25), not even learning the single
# hop. That is one seed of a trial, not this notebook's measurement; the full-budget run prints
# its own table above, over three seeds. We do not claim the direct format is impossible for 2 layers: pointer-doubling circuits
# exist in principle, and a larger budget might find them. What we measure is the accuracy each
# format reaches with the same model and the same number of training steps.
#
# The source's stronger word, that writing tokens is the *only* way to get more serial computation,
# holds for the standard decoder we use here. Pause tokens (Goyal et al. 2024) and looped or
# recurrent-depth transformers add serial computation without emitting meaningful text.
#
# ## 4. Question first or question last? (S004-Q0)
#
# The anecdote: asked "how many words are in the paragraph above?" after a long paragraph, a chat
# model answered 348; asked before the paragraph, 173. We cannot check a chatbot's answers from a
# story. The mechanism behind the advice is checkable: in a causal model every position is computed
# before the model sees anything after it. With the question first, the model can count the queried
# symbol while it reads; with the question last, it must have kept, at every position, what it needs
# for any question that might follow, and gather it at the end.
#
# The task: a string of 8 symbols from an alphabet of 4, and the question "how many times does
# symbol q occur?". Same model, same steps, two formats:
# `<bos> q <sep> x1 … x8 <sep> count` (query first) and `<bos> x1 … x8 <sep> q <sep> count` (query last).

# %%
p_order = predict("S004-Q0",
                  "Counting a symbol in 8 tokens, 2-layer model: accuracy with the question first vs last?",
                  choices=["question first clearly higher", "about equal", "question last clearly higher"])

# %%
STEPS_C = by_budget(fast=300, full=3000)
count_train = {q: counting(STEPS_C * 64, length=8, n_symbols=4, query=q, seed=1) for q in ("first", "last")}
count_eval = {q: counting(by_budget(fast=800, full=2000), length=8, n_symbols=4, query=q, seed=1000)
              for q in ("first", "last")}
c_cfg = ModelConfig.nano(vocab_size=count_train["first"].vocab_size, max_seq_len=16)
c_train = pc_train.replace(max_steps=STEPS_C, warmup_steps=STEPS_C // 10)
count_acc = {q: [task_accuracy(train_model(c_cfg, count_train[q], c_train, seed=s)[0], count_eval[q])
                 for s in SEEDS] for q in ("first", "last")}
count_chance = 1 / (count_train["first"].params["max_count"] + 1)
for q, accs in count_acc.items():
    print(f"question {q:>5}: accuracy per seed {[round(a, 3) for a in accs]}")
print(f"chance (counts 0..{count_train['first'].params['max_count']} equally likely): {count_chance:.2f}")

# %%
order_call, order_gap, order_spread = margin_call(count_acc["first"], count_acc["last"])
print(f"first - last = {order_gap:+.3f}, seed range {order_spread:.3f} -> {order_call}")
assert all(0 <= a <= 1 for accs in count_acc.values() for a in accs)
assert len(count_eval["first"]) >= 500
reveal(p_order, measured=f"first {sum(count_acc['first']) / len(SEEDS):.2f}, last {sum(count_acc['last']) / len(SEEDS):.2f}",
       answer={"a higher": "question first clearly higher", "b higher": "question last clearly higher",
               "about equal": "about equal"}[order_call],
       note="Decided by the mean gap against the seed range.")

# %% [markdown]
# For this small a task both formats are learnable in principle: with the question last, one
# attention head at the final position can attend to every copy of q and read the count from how
# much weight they receive. The difference the source describes should grow with the amount a model
# must keep for unknown questions (long texts, many possible questions), which a 8-token string does
# not stress. Whatever the printed verdict, it is a measurement on this task and budget, not a
# general law; the full budget trains ten times longer with three seeds. Counting is learned late
# and unevenly: in a trial at 1500 steps (CPU, two seeds each) question-first reached 0.45 and 0.21,
# question-last 0.18 and 0.37, against a chance of 0.20. Seed spreads that large are why the verdict
# is taken against the seed range, and why "about equal" is a likely answer even under the full
# budget.
#
# ## Claims

# %%
pc_mean = {f: {k: sum(r[k] for r in runs) / len(runs) for k in range(1, K + 1)} for f, runs in hop_acc.items()}
claims_table([
    Claim("S000-Q12.2 (§7 #20)", "T=1: softmax([8,7,6,2,1]) = [0.61, 0.22, 0.08, 0.04, 0.02]", str(DOC_PROBS[1.0]),
          str([round(v, 4) for v in probs[1.0].tolist()]), holds=doc_err[1.0] < 0.01),
    Claim("S000-Q12.2 (§7 #20)", "T=2: [0.37, 0.25, 0.18, 0.10, 0.08]", str(DOC_PROBS[2.0]),
          str([round(v, 3) for v in probs[2.0].tolist()]), holds=doc_err[2.0] < 0.01),
    Claim("S000-Q12.2 (§7 #20)", "entropy at T=0.1", "0.3 bits", f"{bits_at[0.1]:.4f} bits",
          holds=abs(bits_at[0.1] - 0.3) < 0.05),
    Claim("S000-Q12.2", "entropy at T=1 and T=10", "1.2 and 2.3 bits",
          f"{bits_at[1.0]:.3f} and {bits_at[10.0]:.3f} bits",
          holds=abs(bits_at[1.0] - 1.2) < 0.05 and abs(bits_at[10.0] - 2.3) < 0.05),
    Claim("S000-Q12.2", "top-p 0.9 on [0.4,0.3,0.15,0.1,0.03,0.02] keeps 4 tokens", "4, renormalised",
          f"{int((nucleus[0.9] > 0).sum())} tokens, {[round(v, 3) for v in nucleus[0.9][:4].tolist()]}",
          holds=int((nucleus[0.9] > 0).sum()) == 4),
    Claim("S000-Q12.2 (§7 #20)", "flat distribution: top-p 0.9 keeps 4-5 tokens", "4-5",
          f"{flat_size} tokens", holds=flat_size <= 5),
    Claim("S000-Q12.1", "greedy is not sequence-optimal (0.21 > 0.20)", "0.21 > 0.20",
          f"{joint[best_first]:.2f} vs greedy {joint[greedy_first]:.2f}", holds=joint[best_first] > joint[greedy_first]),
    Claim("S000-Q12.1", "greedy falls into repetition loops", "loops",
          f"{loops}/{len(PROMPTS)} greedy continuations ≥ 50% repeated 4-grams (mean {mean['greedy']['rep']:.2f})",
          holds=loops >= len(PROMPTS) / 2),
    Claim("S000-Q12", "sampling adds diversity and avoids repetition", "less repetition, more diversity",
          f"repeated 4-grams {rep_gap:+.2f} ± {rep_se:.2f} (greedy - T=1); distinct-2 {div_gap:+.2f} ± {div_se:.2f}",
          holds=sampling_less_repetitive and div_gap > 2 * div_se),
    Claim("S004-N3", "writing the steps lets a 2-layer model chain more hops than answering directly",
          "the written path reaches further",
          f"k={K}: path {pc_mean['written path'][K]:.2f} vs direct {pc_mean['direct'][K]:.2f} "
          f"(range {hop_call[K][2]:.2f}, {STEPS_PC} steps)", holds=call_k == "a higher",
          verdict=None if call_k != "about equal" else "not shown at this budget (about equal)"),
    Claim("S004-Q0", "question first beats question last in a causal model", "order matters",
          f"counting: first {sum(count_acc['first']) / len(SEEDS):.2f} vs last "
          f"{sum(count_acc['last']) / len(SEEDS):.2f} (range {order_spread:.2f})",
          holds=order_call == "a higher", verdict="about equal on this task" if order_call == "about equal" else None),
])

# %% [markdown]
# ## What this can and cannot show
#
# The arithmetic of section 1 is exact and budget-free: the library's sampler reproduces a float64
# softmax to 1e-6, and the document's T = 1 and T = 2 rows, its T = 0.1 entropy and its nucleus size
# for a flat distribution are wrong. The decoder comparison of section 2 uses one small model
# (1.6 M parameters, news text) and a few prompts; the direction of each gap is decided against its
# spread over prompts, but the size of the gaps belongs to this model. Larger models repeat less
# under greedy decoding, though not never. The trained experiments of sections 3 and 4 are the
# budget-bound ones: the fast budget (300 steps) is too short for a 2-layer model to learn pointer
# lookup or counting, so it can only show the set-up and a near-chance "about equal". The full
# budget (3000 steps, 3 seeds) is sized to let the models learn; it is where the hop-by-hop
# comparison means something. Neither budget can show what a model of any size *cannot* learn.
#
# ## The essence

# %%
essence(f"""
Temperature divides the logits: at T=0.1 the example's entropy is {bits_at[0.1]:.4f} bits, not 0.3; top-p
keeps the smallest set reaching p, which is {flat_size} tokens for a flat distribution. Greedy and beam
maximise probability and, on the course's small model, repeat themselves (greedy: {mean['greedy']['rep']:.2f} of
4-grams repeated, T=1 sampling: {mean['T=1.0']['rep']:.2f}); sampling trades probability for diversity.
Inside one forward pass information only flows upward, so emitted tokens are the standard decoder's
way to feed a result back to its first layer; whether that lets a 2-layer model chain {K} hops is measured
per budget above ({STEPS_PC} steps here: {hop_call[K][0].replace('a higher', 'written path ahead')}).
""")

# %% [markdown]
# ## Exercises
#
# **1.** Top-k with k = 1 and temperature 0 should both be greedy. Check with `sampling_distribution`
# on the example logits that both put probability 1 on the argmax.

# %% tags=["solution"] jupyter={"source_hidden": true}
# Solution. Both are one-hot at index 0 (logit 8).
one_k = sampling_distribution(LOGITS, 1.0, top_k=1)
zero_t = sampling_distribution(LOGITS, 0.0)
print(one_k.tolist(), zero_t.tolist())
assert torch.equal(one_k, zero_t) and float(one_k[0]) == 1.0

# %% [markdown]
# **2.** A repetition penalty. Decode the first prompt greedily with `repetition_penalty=1.3`
# (pass it in the strategy dict) and compare the repeated-4-gram fraction with plain greedy.

# %% tags=["solution"] jupyter={"source_hidden": true}
# Solution. The penalty lowers the logits of tokens already written, which breaks most loops.
plain = decode(model, prompt_ids[0], NEW, {"temperature": 0})[0]
penal = decode(model, prompt_ids[0], NEW, {"temperature": 0, "repetition_penalty": 1.3})[0]
print(f"plain greedy {repeated_ngram_fraction(plain, 4):.2f}, with penalty {repeated_ngram_fraction(penal, 4):.2f}")
print(tok.decode(prompt_ids[0] + penal)[:70])
assert repeated_ngram_fraction(penal, 4) <= repeated_ngram_fraction(plain, 4)
