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
# # 05 Why Q, K and V? Three roles, three projections
#
# Attention projects every token three times: a **query** (what this position is looking for), a
# **key** (what this position offers to be found by) and a **value** (what it hands over when it is
# found). Why three separate matrices? What breaks if two of them are the same?
#
# ## The questions
#
# **S000-Q5** 「为什么Attention要用Q、K、V三个矩阵，不能只用一个吗？」
# *Why does attention use three matrices Q, K and V; couldn't one do?*
#
# **S000-Q5.1** 「如果只用一个矩阵X，直接计算X @ X^T会怎样？」
# *What happens if we use X alone and compute X @ Xᵀ?*
#
# **S000-Q5.2** 「为什么K和V不能合并？它们不都是从X来的吗？」
# *Why can't K and V be merged? Don't they both come from X?*
#
# **S001-Q2** 「QKV命名的深层起源」 (the student: 「特别像来自于检索引擎」)
# *Where do the names Q, K, V come from? Student: "it looks like it comes from search engines."*
#
# **S001-Q2-guide** 「在信息检索中，这三者是如何工作的？为什么需要Key和Value分离？」
# *How do the three work in information retrieval, and why separate Key from Value?*
#
# **S001-Q2-sub** 「为什么Key和Value要分离？」 *Why must Key and Value be separate?*
#
# **S001-Q2-followup** 「如果强制 K = V（即使用同一个投影矩阵），会发生什么？模型还能工作吗？」
# *If we force K = V (one shared projection), what happens? Does the model still work?*
#
# **S001-Open3** 「Key和Value分离的深层原因？」 *The deeper reason for separating Key and Value?*
#
# **S004-E01** 「能不能很好地解释 QKV (Query, Key, Value) 这些概念？」
# *Can you explain the Q, K, V concepts well?*
#
# **S004-E02** 「以这篇文章的比喻，系统地解释一下注意力机制种的 QKV 这些概念。」
# *Using the chapter's metaphor, explain Q, K and V systematically.*
#
# **The surface answers.** The documents lean on retrieval analogies: a library or a search engine
# where a query is matched against keywords (keys) and returns documents (values); "it is the
# standard design". They say a single matrix X·Xᵀ would be symmetric, that keys and values live in
# "two representation spaces", and that without K/V separation cross-attention would be
# impossible. The chapter's metaphor gives numbers: a match score of 9.5 against 0.2 becomes
# "98% vs 1%" attention.
#
# The course model has switches for exactly these questions: `tie_qk` (keys are the queries'
# projection) and `tie_kv` (values are the keys' projection). We flip them and measure.

# %%
import math

import torch

import course_lib.lab.attention_math as am
from course_lib import ModelConfig, TrainConfig, Trainer, Transformer
from course_lib.lab import probes, viz
from course_lib.lab.budget import budget, by_budget, set_budget_threads
from course_lib.lab.measure import unigram_entropy_bits
from course_lib.lab.synthetic import entry_lookup
from course_lib.data import packed_splits
from course_lib.lab.socratic import Claim, claims_table, essence, predict, reveal

viz.setup()
import matplotlib.pyplot as plt  # noqa: E402

set_budget_threads()  # one thread under the fast budget: tiny models gain nothing from more
torch.manual_seed(0)
print("budget:", budget())

# %% [markdown]
# ## 1. From match scores to attention: "9.5 vs 0.2 → 98%"
#
# The chapter's metaphor has a query compare itself with two keys, scoring 9.5 and 0.2, and then
# spend 98% of its attention on the first and 1% on the second. The softmax turns a *difference*
# of scores Δ into a *ratio* of weights e^Δ. Predict the weight on the first key.

# %%
p_98 = predict("S004-E02 98%", "softmax([9.5, 0.2]): the weight on the first key, in percent", kind="number")

# %%
w = torch.softmax(torch.tensor([9.5, 0.2], dtype=torch.float64), -1)
w_scaled = torch.softmax(torch.tensor([9.5, 0.2], dtype=torch.float64) / math.sqrt(64), -1)  # if 9.5 were unscaled, d_k=64
gap_98 = am.score_gap_for_ratio(98)
check = torch.softmax(torch.tensor([gap_98, 0.0, 0.0], dtype=torch.float64), -1)
print(f"softmax([9.5, 0.2]) = [{w[0]:.5f}, {w[1]:.5f}]   ratio e^9.3 = {math.exp(9.3):,.0f} : 1")
print(f"read as unscaled q·k at d_k = 64, softmax([9.5, 0.2]/8) = [{w_scaled[0]:.3f}, {w_scaled[1]:.3f}]")
print(f"98% : 1% : 1% needs a gap of ln 98 = {gap_98:.2f}; check: {[round(float(x), 3) for x in check]}")

# %%
assert w[0] > 0.9999 and abs(w[0] - 0.98) > 0.01          # neither 98% ...
assert abs(w_scaled[0] - 0.98) > 0.1                      # ... nor after a 1/sqrt(64) scale
assert abs(check[0] - 0.98) < 1e-9 and abs(check[1] - 0.01) < 1e-9
reveal(p_98, measured=100 * float(w[0]), tolerance=0.005,
       note=f"{100 * float(w[0]):.3f}%: a gap of 9.3 means e^9.3 ≈ 11,000 : 1; 98 : 1 needs a gap of only {gap_98:.2f}.")

# %% [markdown]
# ## 2. One matrix: X·Xᵀ is symmetric, and every token prefers itself
#
# If queries and keys come from the same projection W, the score of i looking at j is
# (x_iW)·(x_jW) = the score of j looking at i: the score matrix is symmetric. And by Cauchy-Schwarz
# a vector is most similar to itself (among vectors of similar length), so the diagonal dominates.
# Does RoPE, which rotates q and k by their positions, break the symmetry?

# %%
p_sym = predict("S000-Q5.1 symmetry", "With tie_qk (one projection for Q and K) and RoPE, is the score matrix symmetric?",
                choices=["yes, exactly", "approximately", "no: RoPE breaks it"])

# %%
T_PROBE = 32
probe = torch.randint(3, 64, (4, T_PROBE), generator=torch.Generator().manual_seed(0))


def bidirectional(**kw):
    torch.manual_seed(0)
    return Transformer(ModelConfig.nano(vocab_size=64, dim=64, n_layers=2, n_heads=4, n_kv_heads=4,
                                        max_seq_len=T_PROBE, causal=False, **kw))


sym = {}
for name, kw in {"separate": {}, "tie_qk": {"tie_qk": True}, "tie_qk, no RoPE": {"tie_qk": True, "pos": "none"}}.items():
    cap = probes.capture(bidirectional(**kw), probe)
    sym[name] = dict(defect=max(am.symmetry_defect(s) for s in cap["scores"]),
                     diag_argmax=sum(am.diagonal_argmax_rate(s) for s in cap["scores"]) / len(cap["scores"]),
                     scores=cap["scores"][0][0, 0])
    print(f"{name:>16}: ||S - S^T|| / ||S|| = {sym[name]['defect']:.2e}, "
          f"rows whose largest score is their own position: {sym[name]['diag_argmax']:.0%}")
fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
for ax, name in zip(axes, ["separate", "tie_qk"]):
    viz.heatmap(sym[name]["scores"], ax=ax, title=f"{name}: scores, layer 0 head 0", colorbar=False)
    ax.set_xlabel("key position")
    ax.set_ylabel("query position")

# %%
assert sym["tie_qk"]["defect"] < 1e-5 and sym["tie_qk, no RoPE"]["defect"] < 1e-5   # exactly symmetric
assert sym["separate"]["defect"] > 0.5                                              # far from it
assert sym["tie_qk"]["diag_argmax"] > 0.7 and sym["separate"]["diag_argmax"] < 0.2  # self wins only when tied
reveal(p_sym, measured=f"relative asymmetry {sym['tie_qk']['defect']:.1e}", answer="yes, exactly",
       note="RoPE rotates q_m by R(m) and k_n by R(n); R(m)ᵀR(n) = R(n-m) and R(n-m)ᵀ = R(m-n), so "
            "S_mn = S_nm still.")

# %% [markdown]
# So one matrix gives a symmetric relation ("i attends to j as much as j attends to i") with a
# built-in preference for oneself. Language is full of asymmetric relations: an adjective looks
# for its noun, a pronoun for its antecedent, a token for the one *before* it. Separate W_q and
# W_k make the bilinear form x_i W_q W_kᵀ x_jᵀ asymmetric, so "who looks for whom" can differ
# from "who is found by whom".
#
# ## 3. Training with shared projections
#
# We train three causal character models on the corpus with the course trainer, identical except
# for the switch: separate Q/K/V, `tie_qk` and `tie_kv`. Then we compare the validation loss and
# look at how much attention each position pays to itself. (An "all tied" Q = K = V model is not
# one of the library's switches: `tie_qk` and `tie_kv` together are refused.)

# %%
p_train = predict("S000-Q5.2 text", "Which of the three trains worst on text?",
                  choices=["separate", "tie_qk (Q = K)", "tie_kv (K = V)", "all about equal"])

# %%
STEPS, SEQ = by_budget(fast=80, full=2000), 64
tok, data, val = packed_splits("kjv", block_size=SEQ, max_chars=by_budget(fast=400_000, full=4_000_000))
text_probe = torch.stack([val[i]["input_ids"] for i in range(16)])
VARIANTS = {"separate": {}, "tie_qk": {"tie_qk": True}, "tie_kv": {"tie_kv": True}}
SEEDS = by_budget(fast=[0, 1], full=[0, 1, 2])   # short runs are noisy: we need the seed-to-seed spread
lms, lm_runs = {}, {}
for name, kw in VARIANTS.items():
    vals, diags, losses = [], [], []
    for seed in SEEDS:
        torch.manual_seed(seed)
        m = Transformer(ModelConfig.nano(vocab_size=tok.vocab_size, dim=64, n_layers=2, n_heads=4, n_kv_heads=4,
                                         max_seq_len=SEQ, **kw))
        hist = Trainer(m, data, TrainConfig(batch_size=16, max_steps=STEPS, lr=3e-3, warmup_steps=10, seed=seed,
                                            progress=False, log_every=0)).fit()
        cap = probes.capture(m, text_probe)
        vals.append(probes.dataset_loss(m, val, max_items=64))
        # mean weight a position puts on itself (rows 8.. see at least 9 keys)
        diags.append(sum(float(w.diagonal(0, -2, -1)[..., 8:].mean()) for w in cap["weights"]) / len(cap["weights"]))
        losses.append(hist.loss)
        lms.setdefault(name, m)                                   # keep the seed-0 model
    lm_runs[name] = dict(loss=losses[0], val=sum(vals) / len(vals), val_range=max(vals) - min(vals),
                         diag=min(diags), params=m.num_parameters())
    print(f"{name:>9}: {lm_runs[name]['params']:,} parameters, val loss {lm_runs[name]['val']:.3f} "
          f"(seeds {', '.join(f'{v:.3f}' for v in vals)}), least attention on itself {lm_runs[name]['diag']:.3f}")
viz.plot_curves({n: r["loss"] for n, r in lm_runs.items()}, smooth=10, xlabel="training step",
                ylabel="training loss (nats per character)", title="Character LM, three variants (seed 0)");

# %%
unigram = unigram_entropy_bits(data.tokens, tok.vocab_size) * math.log(2)   # nats: the context-free floor
print(f"unigram entropy of the training characters {unigram:.3f} nats (log V would say {math.log(tok.vocab_size):.3f})")
assert all(r["val"] < unigram for r in lm_runs.values())               # every variant uses its context
assert lm_runs["tie_qk"]["diag"] > 1.5 * max(lm_runs["separate"]["diag"], lm_runs["tie_kv"]["diag"])  # Q = K: self
noise = max(r["val_range"] for r in lm_runs.values())                    # seed-to-seed spread of one variant
val_loss = {n: r["val"] for n, r in lm_runs.items()}
spread = max(val_loss.values()) - min(val_loss.values())
worst = "all about equal" if spread < noise else {"separate": "separate", "tie_qk": "tie_qk (Q = K)",
                                                  "tie_kv": "tie_kv (K = V)"}[max(val_loss, key=val_loss.get)]
reveal(p_train, measured=", ".join(f"{n} {v:.3f}" for n, v in val_loss.items()), answer=worst,
       note=f"mean of {len(SEEDS)} seeds after {STEPS} steps: the variants differ by {spread:.3f} nats, "
            f"one variant varies by up to {noise:.3f} between seeds.")

# %%
print(("On text the three variants are within seed noise of each other" if worst == "all about equal" else
       f"On text {worst} trains worst, by more than the seed spread") + f" after {STEPS} steps. Where they look "
      f"differs clearly: with Q = K a position puts at least {lm_runs['tie_qk']['diag']:.3f} of its attention on "
      f"itself, against {lm_runs['separate']['diag']:.3f} (separate) and {lm_runs['tie_kv']['diag']:.3f} (K = V).")

# %% [markdown]
# A character model this small gets most of its early progress from the current character and its
# neighbours, which all three variants can represent; the tie that changes the *shape* of attention
# is Q = K.

# %% [markdown]
# ## 4. The answer is a weighted average of values (S004-E01)
#
# The chapter's metaphor has the query "listen to" the most relevant token. What a head returns is
# Σⱼ wⱼ·Vⱼ: a blend of *every* visible value, weighted by attention. We take one query of the
# trained model and rebuild its head output from the captured weights and the values.

# %%
m = lms["separate"]
cap = probes.capture(m, text_probe)
layer, head, b, t = 1, 0, 0, SEQ - 1
V = probes.layer_values(m, cap, layer)                        # (B, Hkv, S, d)
w_row = cap["weights"][layer][b, head, t]                     # (S,)
out = cap["head_outputs"][layer][b, head, t]                  # (d,)
rebuilt = w_row @ V[b, head]
top = int(w_row.argmax())
rel_to_top = float((out - V[b, head, top]).norm() / V[b, head, top].norm())
print(f"largest weight {float(w_row.max()):.2f} on position {top}; weights above 0.05: "
      f"{int((w_row > 0.05).sum())}; |output - V[top]| / |V[top]| = {rel_to_top:.2f}")
ax = viz.bar([float(x) for x in w_row], labels=[tok.decode([int(i)]) for i in text_probe[b]], annotate=False,
             ylabel="attention weight", title=f"layer {layer}, head {head}: attention of the last position")
ax.set_xlabel("key position (its character)")
ax.tick_params(axis="x", labelsize=7);

# %%
assert torch.allclose(out, rebuilt, atol=1e-5)              # output = Σ w_j V_j, exactly
assert abs(float(w_row.sum()) - 1) < 1e-5
assert float(w_row.max()) > 0.99 or rel_to_top > 0.05      # not the top value, unless the row is one-hot

# %% [markdown]
# ## 5. Keys are not values: a lookup where K and V must differ (S001-Q2-sub, S001-Q2-followup, S001-Open3)
#
# On text, Q, K and V can share a lot, and a short run cannot tell them apart. So we build a task
# where the key and the value of an entry sit at **the same position** and come from **disjoint
# vocabularies**: `<bos> e1 e2 e3 e4 <sep> kq → vq`, where each entry token `e = (k, v)` names one
# key and one value (like a dictionary line "apple: 苹果"). The query token `kq` must find the entry
# whose *key* is kq (a match in key space) and hand over that entry's *value* (a different
# identity). One attention layer can do this, so nothing else in the model competes for the job.
#
# With separate projections, an entry's key vector can encode its key and its value vector its
# value. With `tie_kv`, one vector must do both: be found by the right query *and* carry the
# answer. We make the head narrow (head_dim 2) so the two jobs compete for its dimensions, train
# both variants over seeds and compare recall accuracy on held-out sequences.

# %%
p_kv = predict("S001-Q2-followup lookup", "Entries hold a key and a value at one position, head_dim = 2: "
               "which recalls better?", choices=["separate K and V", "tied K = V", "about equal"])

# %%
LOOKUP = dict(n_entries=4, n_keys=8, n_values=8)
NARROW = 2                                                  # head_dim: room for a key or a value, hardly both
LOOKUP_STEPS = by_budget(fast=1200, full=3000)
LOOKUP_TRAIN = dict(batch_size=64, max_steps=LOOKUP_STEPS, lr=3e-3, warmup_steps=20, weight_decay=0.0,
                    progress=False, log_every=0)
task = entry_lookup(20_000, seed=0, **LOOKUP)
test = entry_lookup(1000, seed=1, **LOOKUP)
print(task, "\nexample:", task.decode(task.sequences[0]))
ctx = test.info["values"]                                   # (N, P) the values in each context
context_guess = float(((ctx[:, :, None] == ctx[:, None, :]).sum(-1).amax(-1) / ctx.shape[1]).double().mean())


def fit_lookup(seed, head_dim, **kw):
    """Train a one-layer, one-head lookup model; return (held-out accuracy, loss curve)."""
    torch.manual_seed(seed)
    m = Transformer(ModelConfig.nano(vocab_size=task.vocab_size, dim=64, n_layers=1, n_heads=1, n_kv_heads=1,
                                     head_dim=head_dim, pos="none", max_seq_len=task.seq_len, **kw))
    hist = Trainer(m, task, TrainConfig(seed=seed, **LOOKUP_TRAIN)).fit()
    return probes.task_accuracy(m, test), hist.loss


KV_VARIANTS = {"separate": {}, "tie_kv": {"tie_kv": True}}
lookup = {}
for name, kw in KV_VARIANTS.items():
    accs, curves = zip(*(fit_lookup(seed, NARROW, **kw) for seed in SEEDS))
    lookup[name] = dict(acc=accs, mean=sum(accs) / len(accs), range=max(accs) - min(accs), loss=curves[0])
    print(f"{name:>9}: recall accuracy {lookup[name]['mean']:.3f} (seeds {', '.join(f'{a:.3f}' for a in accs)}); "
          f"chance {1 / LOOKUP['n_values']:.3f}, best guess from the context alone {context_guess:.3f}")
viz.plot_curves({n: r["loss"] for n, r in lookup.items()}, smooth=20, xlabel="training step",
                ylabel="cross-entropy on the answer (nats)", title=f"Entry lookup, head_dim {NARROW} (seed {SEEDS[0]})");

# %%
kv_noise = max(r["range"] for r in lookup.values())            # seed-to-seed spread of one variant
kv_gap = lookup["separate"]["mean"] - lookup["tie_kv"]["mean"]   # accuracy the tie costs
kv_answer = ("separate K and V" if kv_gap > kv_noise else "tied K = V" if -kv_gap > kv_noise else "about equal")
chance = 1 / LOOKUP["n_values"]
assert all(min(r["acc"]) > chance for r in lookup.values())      # K = V still learns the task, in part at least
assert kv_gap > -kv_noise       # tied is a special case of separate (W_v = W_k): never better beyond seed noise
reveal(p_kv, measured=f"separate {lookup['separate']['mean']:.3f}, tied {lookup['tie_kv']['mean']:.3f}",
       answer=kv_answer, note=f"mean of {len(SEEDS)} seeds after {LOOKUP_STEPS} steps: gap {kv_gap:+.3f}, "
                             f"seed range up to {kv_noise:.3f}.")

# %%
kv_separate_wins = kv_answer == "separate K and V"
print(f"Answer: {kv_answer}. Separate K and V recall {lookup['separate']['mean']:.1%}, tied {lookup['tie_kv']['mean']:.1%} "
      f"(a gap of {kv_gap:+.3f} against a seed range of {kv_noise:.3f}).")
print("With K = V the model still " + ("beats" if lookup["tie_kv"]["mean"] > context_guess else "does not beat")
      + f" the best guess that ignores the question ({context_guess:.3f}): the tie "
      + ("costs accuracy because one 2-number vector must both be found and deliver." if kv_separate_wins
         else "did not cost a measurable amount here."))

# %% [markdown]
# What the numbers say about "why separate K and V?": the key is how an entry is *found*, the value
# is what it *delivers*, and nothing forces those to be the same feature. Tied, one vector per
# position serves both; the query must score it by its key part while the output reads its value
# part, and in a narrow head those parts crowd each other. Separate projections give each role its
# own space. Whether that matters in a real model is a question of room: a head with plenty of
# dimensions can split them between the two roles itself (exercise 3 widens the head).

# %% [markdown]
# ## What this can and cannot show
#
# - The lookup isolates the K/V question in one attention layer; the verdict is the mean over
#   seeds against the seed range, so a result inside the range is reported as "about equal".
# - The text models are small and trained briefly (section 3 prints whether their gap beats the
#   seed spread); the full budget trains them longer, with a third seed. A real language model has
#   far wider heads than our lookup, so there a tie costs capacity rather than the ability to look
#   things up; exercise 3 measures how much width the tied lookup needs.
# - Nothing here covers cross-attention: K and V there both come from the encoder, so tying them is
#   possible; the separation cross-attention needs is between Q and K/V.

# %% [markdown]
# ## Claims
#
# no-claim S000-Q5: the umbrella question; its checkable parts are S000-Q5.1 (one matrix) and S000-Q5.2 (K = V), measured above
#
# no-claim S001-Q2: where the names come from is history and analogy (the retrieval vocabulary of Vaswani et al. 2017), nothing to measure

# %%
params_saved = lm_runs["separate"]["params"] - lm_runs["tie_kv"]["params"]
text_kv_gap = lm_runs["tie_kv"]["val"] - lm_runs["separate"]["val"]
text_kv = "a cost beyond seed noise" if text_kv_gap > noise else "within seed noise"
lookup_kv = (f"lookup at head_dim {NARROW}: recall {lookup['separate']['mean']:.3f} separate vs {lookup['tie_kv']['mean']:.3f} "
             f"tied (seed range {kv_noise:.3f})")
kv_verdict = ("holds where the head is too narrow for both roles" if kv_separate_wins
              else "no measurable cost here")
claims_table([
    Claim("S004-E02", "match 9.5 vs 0.2 → attention 98% vs 1%", "98% / 1%",
          f"{100 * float(w[0]):.3f}% / {100 * float(w[1]):.3f}% (98 : 1 needs a gap of {gap_98:.2f})",
          holds=abs(float(w[0]) - 0.98) < 0.005),
    Claim("S000-Q5.1", "X·Xᵀ (one shared projection) is symmetric", "symmetric",
          f"||S-Sᵀ||/||S|| = {sym['tie_qk']['defect']:.1e} (with RoPE) vs {sym['separate']['defect']:.2f}",
          holds=sym["tie_qk"]["defect"] < 1e-5),
    Claim("S000-Q5.1", "(not in the document) shared Q/K makes each token attend to itself",
          "diagonal dominance", f"self is the top score in {sym['tie_qk']['diag_argmax']:.0%} of rows at init; "
          f"self-attention {lm_runs['tie_qk']['diag']:.3f} vs {lm_runs['separate']['diag']:.3f} after training",
          holds=lm_runs["tie_qk"]["diag"] > 1.5 * lm_runs["separate"]["diag"]),
    Claim("S000-Q5.2", "tying W_k = W_v reduces flexibility", "worse model",
          f"{lookup_kv}; text: {params_saved:,} fewer parameters, val loss {text_kv_gap:+.3f} "
          f"(seed spread {noise:.3f}, {text_kv})", holds=kv_separate_wins, verdict=kv_verdict),
    Claim("S001-Q2-sub", "keys and values need two representation spaces", "(no number)", lookup_kv,
          holds=kv_separate_wins, verdict=kv_verdict + "; K = V still trains"),
    Claim("S001-Q2-followup", "with K = V, does the model still work?", "(unanswered)",
          f"text val loss {lm_runs['tie_kv']['val']:.3f} vs unigram {unigram:.3f}; lookup recall "
          f"{lookup['tie_kv']['mean']:.3f} (chance {chance:.3f}) vs {lookup['separate']['mean']:.3f} separate",
          holds=lm_runs["tie_kv"]["val"] < unigram and min(lookup["tie_kv"]["acc"]) > chance,
          verdict=f"it works; lookup verdict: {kv_answer}"),
    Claim("S001-Open3", "the deeper reason: being found and being delivered are different jobs", "(no number)",
          f"one vector for both: {lookup_kv}", holds=kv_separate_wins, verdict=kv_verdict),
    Claim("S001-Q2-guide", "without K/V separation cross-attention is impossible", "impossible",
          "K and V would both still come from the encoder; cross-attention needs Q vs K/V separation", holds=None,
          verdict="does not follow (not a measurement)"),
    Claim("S004-E01", "the asker receives a weighted average of all V", "Σ w_j V_j",
          f"head output = Σ w_j V_j to {float((out - rebuilt).abs().max()):.0e}",
          holds=bool(torch.allclose(out, rebuilt, atol=1e-5))),
    Claim("S004-E02", "a query attends to everything on its left, itself included", "causal, with diagonal",
          f"row sums 1; weight on itself {lm_runs['separate']['diag']:.3f} > 0; on the future "
          f"{float(cap['weights'][0].triu(1).abs().max()):.0f}",
          holds=float(cap["weights"][0].triu(1).abs().max()) == 0 and lm_runs["separate"]["diag"] > 0),
])

# %% [markdown]
# ## The essence

# %%
essence(f"""
Q, K and V are three views of the same token for three jobs: what I am looking for, how I can be
found, and what I give when I am found. One matrix for Q and K makes every relation symmetric and
makes each token its own best match; that is the wrong shape for language, where most relations run
one way. Tying K and V makes one vector both the label and the content. The model still trains; on
a lookup whose head is too narrow for both roles the answer was: {kv_answer} (recall
{lookup['separate']['mean']:.2f} separate vs {lookup['tie_kv']['mean']:.2f} tied). On text, at this
budget, the tie was {text_kv}. The softmax then turns score gaps into ratios, e^gap: 9.5 vs 0.2 is
not 98% but 99.99%.
""")

# %% [markdown]
# ## Exercises
#
# **1.** Why does RoPE keep tied scores symmetric? Check numerically that for a random vector a and
# positions m, n, (R_m a)·(R_n a) = (R_n a)·(R_m a), using the library's RoPE tables (or a plain 2-D
# rotation), while with two different vectors a ≠ b, (R_m a)·(R_n b) ≠ (R_n a)·(R_m b) in general.

# %% tags=["solution"] jupyter={"source_hidden": true}
# Solution with plain 2-D rotations (RoPE rotates each pair of dimensions like this).
def rot(theta):
    c, s = math.cos(theta), math.sin(theta)
    return torch.tensor([[c, -s], [s, c]], dtype=torch.float64)


g = torch.Generator().manual_seed(0)
a, b = torch.randn(2, generator=g, dtype=torch.float64), torch.randn(2, generator=g, dtype=torch.float64)
m_, n_ = 3.0, 7.0
same = ((rot(m_) @ a) @ (rot(n_) @ a), (rot(n_) @ a) @ (rot(m_) @ a))
diff = ((rot(m_) @ a) @ (rot(n_) @ b), (rot(n_) @ a) @ (rot(m_) @ b))
print("same vector:", [round(float(x), 6) for x in same], " different vectors:", [round(float(x), 4) for x in diff])
assert abs(same[0] - same[1]) < 1e-12 and abs(diff[0] - diff[1]) > 1e-3

# %% [markdown]
# **2.** Count it. For a layer with model width D, H heads of size d (no GQA), how many attention
# parameters do `tie_qk` and `tie_kv` save? Check against `num_parameters()` of the models above.

# %% tags=["solution"] jupyter={"source_hidden": true}
# Solution: each tie removes one D x (H*d) projection per layer.
cfg = lms["separate"].config
per_layer = cfg.dim * cfg.n_heads * cfg.head_dim
print(f"expected saving {cfg.n_layers * per_layer:,}; measured "
      f"{lm_runs['separate']['params'] - lm_runs['tie_qk']['params']:,} (tie_qk), {params_saved:,} (tie_kv)")
assert lm_runs["separate"]["params"] - lm_runs["tie_qk"]["params"] == cfg.n_layers * per_layer == params_saved

# %% [markdown]
# **3.** Give the tied model room. Train `tie_kv` on the same lookup with a head four times wider
# (head_dim 8), same seeds and steps, with `fit_lookup`. Does widening the head help the tied
# model, and does it reach the narrow separate model? Decide both with the seed range.

# %% tags=["solution"] jupyter={"source_hidden": true}
# Solution: one vector of 8 numbers can give some dimensions to the key and others to the value.
wide = [fit_lookup(seed, 4 * NARROW, tie_kv=True)[0] for seed in SEEDS]
wide_mean = sum(wide) / len(wide)
wide_noise = max(kv_noise, max(wide) - min(wide))
helps = wide_mean - lookup["tie_kv"]["mean"]
catches_up = wide_mean > lookup["separate"]["mean"] - wide_noise
print(f"tied, head_dim {4 * NARROW}: {wide_mean:.3f} (seeds {', '.join(f'{a:.3f}' for a in wide)}) vs tied at "
      f"head_dim {NARROW} {lookup['tie_kv']['mean']:.3f}: "
      + ("helps" if helps > wide_noise else "within seed noise") + f" ({helps:+.3f}, range {wide_noise:.3f}); "
      + ("comes within seed noise of" if catches_up else "stays below") + f" the narrow separate model "
      f"({lookup['separate']['mean']:.3f})")
assert helps > -wide_noise, "a wider head should never make the tied model worse beyond seed noise"
