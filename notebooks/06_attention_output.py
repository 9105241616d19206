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
# # 06 What attention outputs: weighted averages, uniform attention, soft vs hard lookup
#
# An attention head produces three things on the way: scores, weights and an output. Only the last
# one leaves the head. This notebook pins down what each is, what "uniform" attention returns, why
# the lookup is soft rather than hard, and what a *learned* similarity can do that a fixed one
# cannot.
#
# ## The questions
#
# **S001-Q5** 「Attention输出的精确理解」 (the student: 「输出是相关性得分」)
# *What exactly is attention's output? Student: "the output is the relevance scores."*
#
# **S001-Q5-guide** 「Attention的**中间结果**和**最终输出**是不同的，你说的"相关性得分"是哪一个？」
# *The intermediate result and the final output of attention differ: which one do you mean by
# "relevance scores"?*
#
# **S001-Q5-followup** 「如果所有attention weights都相等（均匀分布），输出会是什么？这说明了什么？」
# *If all attention weights were equal (uniform), what would the output be, and what does it show?*
#
# **S001-Q5-sub** 「什么是"本质区别"？」 *What is the "essential difference"?*
#
# **S001-Open1** 「如果所有attention weights均匀分布会怎样？」 *What if all attention weights are
# uniform?*
#
# **S001-Q6** 「"可微分的字典查询"深度类比」 (the student: 「QKV计算就是字典查询」)
# *Attention as a "differentiable dictionary lookup". Student: "the QKV computation is a dictionary
# lookup."*
#
# **S001-Q6-guide** 「让我们对比"硬查询"和"软查询"的本质区别」 *Compare hard and soft lookup.*
#
# **S001-Q6-sub** 「为什么"可微分"如此重要？」 *Why does "differentiable" matter so much?*
#
# **S001-Q6-followup** 「Attention能否看作是一种"参数化的相似度度量学习"？为什么这比固定的余弦相似度更强大？」
# *Can attention be seen as learning a parameterised similarity? Why is that more powerful than a
# fixed cosine similarity?*
#
# **The surface answers.** The weights (an n×n matrix whose rows sum to 1) are intermediate; the
# output is weights·V, one vector per position. With uniform weights every output is the mean of
# V: "global average pooling", all positions identical. A hard lookup (argmax) has no useful
# gradient, the softmax is smooth, hence trainable; the documents add that sparse alternatives
# "train less stably than softmax". They leave the last question open.

# %%
import torch

import course_lib.lab.attention_math as am
from course_lib import ModelConfig, TrainConfig, Trainer, Transformer
from course_lib.lab import probes, viz
from course_lib.lab.budget import budget, by_budget, set_budget_threads
from course_lib.data import packed_splits
from course_lib.lab.socratic import Claim, claims_table, essence, predict, reveal

viz.setup()

set_budget_threads()  # one thread under the fast budget: tiny models gain nothing from more
print("budget:", budget())
torch.manual_seed(0)
SEEDS = by_budget(fast=[0, 1], full=[0, 1, 2])   # trained comparisons are decided against the seed spread
STEPS, SEQ = by_budget(fast=80, full=1500), 64
tok, data, val = packed_splits("kjv", block_size=SEQ, max_chars=by_budget(fast=400_000, full=4_000_000))
text_probe = torch.stack([val[i]["input_ids"] for i in range(16)])


def char_lm(seed=0, **kw):
    """A small causal character model on the corpus (the King James Bible: a small alphabet trains fast)."""
    torch.manual_seed(seed)
    base = dict(vocab_size=tok.vocab_size, dim=64, n_layers=2, n_heads=4, n_kv_heads=4, max_seq_len=SEQ)
    base.update(kw)
    return Transformer(ModelConfig.nano(**base))


def train(model, steps=STEPS, seed=0):
    return Trainer(model, data, TrainConfig(batch_size=16, max_steps=steps, lr=3e-3, warmup_steps=10, seed=seed,
                                            progress=False, log_every=0)).fit()


# %% [markdown]
# ## 1. Scores, weights, output: three different things
#
# The scores are q·k/sqrt(d) for every (query, key) pair; the weights are their softmax along each
# row; the output is the weighted sum of value vectors. Before looking: for one position of one
# head, what is the output?

# %%
p_out = predict("S001-Q5-guide output", "For one position, one head, with d = head size and T keys, the head's output is ...",
                choices=["T relevance scores", "T weights summing to 1", "a d-dimensional vector", "a single number"])

# %%
model = char_lm()
cap = probes.capture(model, text_probe)
S, W, O = cap["scores"][0], cap["weights"][0], cap["head_outputs"][0]
V = probes.layer_values(model, cap, 0)
print(f"scores {tuple(S.shape)}  weights {tuple(W.shape)}  values {tuple(V.shape)}  output {tuple(O.shape)}")
print("row sums of the weights: min", f"{float(W.sum(-1).min()):.6f}", "max", f"{float(W.sum(-1).max()):.6f}")
assert torch.allclose(W.sum(-1), torch.ones_like(W.sum(-1)), atol=1e-5)
assert torch.allclose(O, W @ V, atol=1e-5)                     # output = weights @ V
assert O.shape[-1] == model.config.head_dim and W.shape[-1] == SEQ
out_answer = "a d-dimensional vector" if O.shape[-1] == model.config.head_dim != W.shape[-1] else "T weights summing to 1"
reveal(p_out, measured=f"output {tuple(O.shape)} = (batch, heads, positions, d)", answer=out_answer)

# %% [markdown]
# ## 2. Uniform attention: the mean, or a running mean
#
# If every weight in a row is equal, the output is the plain average of the values the row may
# see. Without a mask that is the same mean(V) for every position. With the causal mask, position
# t sees only V₀…V_t, so "uniform" gives the *running* mean, a different vector at every position.

# %%
p_uni = predict("S001-Q5-followup uniform", "Causal model, all weights equal: are the outputs of all positions identical?",
                choices=["yes, all equal mean(V)", "no, each is the mean of its prefix", "no, they are random"])

# %%
v = V[0, 0]                                                     # (T, d) values of one head
uni_bi, uni_causal = am.uniform_attention(v, causal=False), am.uniform_attention(v, causal=True)
spread_bi = float((uni_bi - uni_bi[0]).abs().max())
spread_causal = float((uni_causal - uni_causal[-1]).norm(dim=-1).mean() / uni_causal[-1].norm())
print(f"bidirectional: max difference between positions {spread_bi:.1e};  causal: relative spread {spread_causal:.2f}")

# The same in the model: a score scale of 1e-9 makes every score 0 and the softmax uniform.
flat = char_lm(attn_scale=1e-9)
cap_flat = probes.capture(flat, text_probe)
V_flat = probes.layer_values(flat, cap_flat, 0)
assert torch.allclose(cap_flat["head_outputs"][0], am.uniform_attention(V_flat, causal=True), atol=1e-5)
assert spread_bi == 0.0 and spread_causal > 0.05
H_flat = probes.attention_entropy_by_layer(flat, text_probe, normalized=True)
assert all(h > 0.9999 for h in H_flat)                         # entropy log(t+1): the maximum
uni_answer = "no, each is the mean of its prefix" if spread_causal > 0.05 else "yes, all equal mean(V)"
reveal(p_uni, measured=f"relative spread between positions {spread_causal:.2f}", answer=uni_answer,
       note="'All positions identical' is true only without the causal mask.")

# %% [markdown]
# **What does selectivity buy?** We train the same character model twice: once with learned
# attention, once with the scores pinned to zero (uniform attention for the whole run: a score
# scale of 1e-9 means even a large q·k changes nothing). The loss gap is the value of being able to
# choose where to look. We also follow the entropy of the learned model's attention: at
# initialisation the scores are tiny, so it *starts* almost uniform.

# %%
learned, uniform = char_lm(attn_impl="naive"), char_lm(attn_impl="naive", attn_scale=1e-9)
H_init = probes.attention_entropy_by_layer(learned, text_probe, skip_first=8)
h_learned, h_uniform = train(learned), train(uniform)
H_learned = probes.attention_entropy_by_layer(learned, text_probe, skip_first=8)
H_uniform = probes.attention_entropy_by_layer(uniform, text_probe, skip_first=8)
val_learned, val_uniform = probes.dataset_loss(learned, val), probes.dataset_loss(uniform, val)
print(f"val loss: learned {val_learned:.3f}, uniform {val_uniform:.3f}, gap {val_uniform - val_learned:.3f}")
print("normalised entropy per layer: learned at init", [f"{h:.3f}" for h in H_init], "after",
      [f"{h:.3f}" for h in H_learned], "| uniform after", [f"{h:.4f}" for h in H_uniform])
viz.plot_curves({"learned attention": h_learned.loss, "uniform attention": h_uniform.loss}, smooth=10,
                xlabel="training step", ylabel="training loss (nats per character)",
                title="Character LM: learned vs uniform attention");

# %%
assert val_uniform > val_learned + 0.05                        # choosing where to look pays
mean_H = lambda hs: sum(hs) / len(hs)  # noqa: E731
assert min(H_init) > 0.95 and mean_H(H_learned) < mean_H(H_init) - 0.02   # learned attention sharpens
assert min(H_uniform) > 0.999                                   # the pinned model stayed uniform

# %% [markdown]
# ### The "essential difference" (S001-Q5-sub)
#
# Input, uniform output and learned output differ in what they keep. The inputs V carry each
# token's own content. Bidirectional uniform attention erases every difference between positions;
# causal uniform attention keeps only "how far along the prefix am I". Learned attention keeps a
# different, content-dependent mixture per position. One number makes it concrete: how much the
# vectors of different positions differ, relative to their size.

# %%
def position_diversity(x):
    """Mean distance of each position's vector from the average vector, relative to its size."""
    return float((x - x.mean(-2, keepdim=True)).norm(dim=-1).mean() / x.norm(dim=-1).mean())


cap_l = probes.capture(learned, text_probe)
v_l = probes.layer_values(learned, cap_l, 1)[0, 0]
w_l = cap_l["weights"][1][0, 0]
diversity = {"inputs V": position_diversity(v_l),
             "uniform, bidirectional": position_diversity(am.uniform_attention(v_l, causal=False)),
             "uniform, causal": position_diversity(am.uniform_attention(v_l, causal=True)),
             "learned (causal)": position_diversity(w_l @ v_l)}
ax = viz.bar(diversity, ylabel="spread between positions (relative to vector size)", title="What survives the averaging")
ax.set_xlabel("which vectors");
print({k: round(x, 3) for k, x in diversity.items()})
assert diversity["uniform, bidirectional"] < 1e-6 < diversity["uniform, causal"] < diversity["learned (causal)"]

# %% [markdown]
# ## 3. Hard vs soft lookup
#
# A dictionary returns the value of the one key that matches. The attention version of that is a
# **hard** lookup: weight 1 on the argmax, 0 elsewhere. The argmax is piecewise constant in the
# scores, so its derivative is 0 almost everywhere: no gradient can tell W_q or W_k to move.
# Two ways around it: the **straight-through** estimator (hard in the forward pass, the softmax's
# gradient in the backward pass) and the **Gumbel-softmax** (a noisy softmax with a temperature τ
# that becomes one-hot as τ → 0). The model's `attn_normalizer` switch (with `attn_impl="naive"`,
# the explicit path) replaces the softmax with each of them.

# %%
p_hard = predict("S001-Q6-sub hard", "Trained with hard argmax attention, how much does W_q change?",
                 choices=["not at all", "a little", "as much as with softmax"])

# %%
grads = {}
for norm in ("softmax", "hard", "straight_through"):
    grads[norm] = probes.total_norm(probes.param_grad_norms(char_lm(attn_impl="naive", attn_normalizer=norm),
                                                             text_probe, torch.roll(text_probe, -1, 1), "q_proj|k_proj"))
print("|dL/dW_q, W_k| at init:", {k: f"{v:.3g}" for k, v in grads.items()})
assert grads["hard"] == 0.0 and grads["straight_through"] > 0 and grads["softmax"] > 0

# hard vs straight-through is the comparison that answers the question: over seeds; the others once
runs = {"softmax": SEEDS[:1], "hard": SEEDS, "straight_through": SEEDS, "gumbel": SEEDS[:1]}
lookup = {}
for norm, seeds in runs.items():
    vals, dqs = [], []
    for seed in seeds:
        m = char_lm(seed, attn_impl="naive", attn_normalizer=norm, attn_tau=1.0)
        wq0 = m.layers[0].attn.q_proj.weight.detach().clone()
        hist = train(m, seed=seed)
        vals.append(probes.dataset_loss(m, val))
        dqs.append(float((m.layers[0].attn.q_proj.weight.detach().cpu() - wq0.cpu()).norm() / wq0.norm()))
        lookup.setdefault(norm, dict(loss=hist.loss))                     # the first seed's curve
    lookup[norm].update(val=sum(vals) / len(vals), val_range=max(vals) - min(vals), dq=max(dqs), dq_min=min(dqs))
    print(f"{norm:>16}: val loss {lookup[norm]['val']:.3f} (seeds {', '.join(f'{v:.3f}' for v in vals)}), "
          f"relative change of W_q {lookup[norm]['dq_min']:.3f}..{lookup[norm]['dq']:.3f}")
viz.plot_curves({k: r["loss"] for k, r in lookup.items()}, smooth=10, xlabel="training step",
                ylabel="training loss (nats per character)", title="Soft vs hard lookup (character LM, first seed)");

# %%
st_gap = lookup["hard"]["val"] - lookup["straight_through"]["val"]         # what a learnable lookup buys
st_noise = max(lookup["hard"]["val_range"], lookup["straight_through"]["val_range"])
assert lookup["hard"]["dq"] == 0.0                                     # no gradient, no change: frozen (every seed)
assert lookup["straight_through"]["dq_min"] > 0.05 and lookup["softmax"]["dq_min"] > 0.05
assert st_gap > -st_noise       # the same forward pass; a learnable lookup never loses beyond seed noise
moved = lookup["hard"]["dq"] / lookup["softmax"]["dq"]
hard_answer = "not at all" if moved == 0 else "a little" if moved < 0.5 else "as much as with softmax"
reveal(p_hard, measured=f"relative change {lookup['hard']['dq']:.3f} (softmax {lookup['softmax']['dq']:.3f})",
       answer=hard_answer, note="Hard attention still trains the rest of the model (values, FFN, embeddings), but its "
                                "choice of where to look stays the random one it started with.")

# %%
st_answer = ("straight-through is better" if st_gap > st_noise else
             "hard is better" if -st_gap > st_noise else "about equal (within seed noise)")
soft_vs_st = lookup["softmax"]["val"] - lookup["straight_through"]["val"]
print(f"Hard and straight-through compute the same one-hot forward pass; only straight-through lets a gradient "
      f"reach W_q and W_k. Over {len(SEEDS)} seeds: {st_answer} (val loss gap {st_gap:+.3f}, seed range "
      f"{st_noise:.3f}). The plain softmax (one seed) ends {abs(soft_vs_st):.3f} nats "
      + ("above" if soft_vs_st > 0 else "below") + f" straight-through after {STEPS} steps.")

# %% [markdown]
# Why the softmax need not lead early: a fresh model's softmax attention is almost uniform (its
# scores are tiny), so for the first steps it blurs everything, while a one-hot lookup passes one
# token through cleanly. Smoothness is what makes the lookup *learnable*; whether it is also better
# after a short run is what the line above measured.

# %% [markdown]
# The Gumbel-softmax interpolates: at high temperature it is a noisy softmax, as τ → 0 every
# sample is one-hot. Here is the largest weight per row as τ falls, on the model's own scores.

# %%
taus = [4.0, 1.0, 0.3, 0.1, 0.03]
s_last = cap_l["scores"][1][..., 8:, :].cpu()
g = torch.Generator().manual_seed(0)
max_w = [float(am.gumbel_weights(s_last, tau=t, generator=g).max(-1).values.mean()) for t in taus]
print({t: round(mw, 3) for t, mw in zip(taus, max_w)})
assert all(a < b for a, b in zip(max_w, max_w[1:])) and max_w[-1] > 0.95

# %% [markdown]
# ## 4. Learned similarity vs a fixed cosine (S001-Q6-followup)
#
# With q = x W_q and k = x W_k, the score x_i W_q W_kᵀ x_jᵀ is a *learned bilinear form*: any
# matrix of rank ≤ d_k. A fixed cosine similarity is the special case W_q = W_k = I (plus
# normalisation), and it has a property that no amount of training of the rest of the model can
# remove: by Cauchy-Schwarz, **every token is its own best match**. The same holds for a cosine in
# a learned feature space: `tie_qk` (one projection W) with QK-norm whose gain is held at 1, so
# every q has the same length and the score is √d · cos(x_iW, x_jW). A learned W_q ≠ W_k can make a
# token look for a *different* one, such as the previous character.
#
# A subtlety the library makes visible: with `tie_qk` the q and k norms share one gain g (so keys
# stay equal to queries and the scores stay symmetric), but a *learned* g weighs the dimensions,
# and the score becomes x̂_iᵀ diag(g²) x̂_j. Vectors then differ in length under that weighting, and
# Cauchy-Schwarz no longer makes self the winner: a position whose vector is longer can outscore
# the query's own. We train it too, as the fourth model.
#
# Four one-layer character models without position encodings (so the score depends on content
# only): learned W_q, W_k with QK-norm; a learned cosine (`tie_qk` + QK-norm, gain frozen at 1); a
# fixed cosine (W = I, frozen, gain frozen at 1); and `tie_qk` + QK-norm with its gain learned.

# %%
p_cos = predict("S001-Q6-followup cosine", "With a (fixed or learned) cosine similarity, can a position attend to "
                "another position more than to itself?", choices=["yes, after training", "never", "only with RoPE"])

# %%
def content_only(**kw):
    return char_lm(n_layers=1, n_heads=1, n_kv_heads=1, pos="none", qk_norm=True, **kw)


def beats_self(m):
    """Fraction of rows (those that see 2+ keys) in which another position outscores the row's own."""
    full = probes.capture(m, text_probe)["scores"][0]
    own = torch.diagonal(full, dim1=-2, dim2=-1)[..., 1:].unsqueeze(-1)      # each row's score for itself
    return float((full[..., 1:, :].amax(-1, keepdim=True) > own + 1e-4 * own.abs().clamp_min(1)).double().mean())


sim_models = {"learned W_q, W_k": content_only(), "learned cosine": content_only(tie_qk=True),
              "fixed cosine": content_only(tie_qk=True), "tie_qk, learned gain": content_only(tie_qk=True)}
fixed, learned_cos = sim_models["fixed cosine"].layers[0].attn, sim_models["learned cosine"].layers[0].attn
assert fixed.q_norm is fixed.k_norm                                  # tie_qk: one norm, one gain, for q and k
with torch.no_grad():
    fixed.q_proj.weight.copy_(torch.eye(fixed.q_proj.weight.shape[0]))
for p in (fixed.q_proj.weight, fixed.q_norm.weight, learned_cos.q_norm.weight):
    p.requires_grad_(False)                                          # W = I and gains = 1 stay fixed
sim = {}
for name, m in sim_models.items():
    at_init = beats_self(m)
    hist = train(m)
    sim[name] = dict(loss=hist.loss, val=probes.dataset_loss(m, val), beats_self=beats_self(m), at_init=at_init)
    print(f"{name:>20}: val loss {sim[name]['val']:.3f}; rows where another position outscores itself: "
          f"{at_init:.1%} at init, {sim[name]['beats_self']:.1%} trained")
viz.plot_curves({k: r["loss"] for k, r in sim.items()}, smooth=10, xlabel="training step",
                ylabel="training loss (nats per character)", title="Learned vs cosine similarity");

# %%
cosines = ("fixed cosine", "learned cosine")
assert torch.equal(fixed.q_proj.weight.cpu(), torch.eye(fixed.q_proj.weight.shape[0]))  # it stayed fixed
assert bool((learned_cos.q_norm.weight == 1).all())                                      # the gain stayed 1
assert all(sim[n]["beats_self"] == 0.0 for n in cosines)            # Cauchy-Schwarz: self always wins
learned_can = max(sim["learned W_q, W_k"]["at_init"], sim["learned W_q, W_k"]["beats_self"])
assert learned_can > 0.2                       # W_q ≠ W_k: a bilinear form that is not self-maximal
cos_answer = "never" if max(sim[n]["beats_self"] for n in cosines) == 0 else "yes, after training"
reveal(p_cos, measured=f"{sim['fixed cosine']['beats_self']:.0%} (fixed), {sim['learned cosine']['beats_self']:.0%} "
       f"(learned cosine), {learned_can:.0%} (learned W_q, W_k, at init or trained)", answer=cos_answer)

# %%
print(f"Under a cosine, fixed or learned, no row ranks another position above itself; learned W_q, W_k send "
      f"{sim['learned W_q, W_k']['at_init']:.0%} of rows elsewhere at init and {sim['learned W_q, W_k']['beats_self']:.0%} "
      f"after {STEPS} steps of training on this task. With tie_qk + QK-norm and a learned gain the "
      f"scores stay symmetric (keys are the queries) and {sim['tie_qk, learned gain']['beats_self']:.1%} of rows rank another "
      "position first: " + ("a weighted cosine is not self-maximal." if sim["tie_qk, learned gain"]["beats_self"] > 0 else
                            "none at this budget, though with unequal gains nothing guarantees it.") + f" Val loss after {STEPS} steps "
      f"(one seed each, so not a ranking): " + ", ".join(f"{n} {r['val']:.3f}" for n, r in sim.items()) + ".")

# %% [markdown]
# The structural difference is exact and holds at any budget: a cosine *cannot* prefer another
# token, a learned W_q W_kᵀ can. Whether training *uses* that freedom depends on the task. For a
# one-layer character model without positions, "look at yourself" is a good default (the next
# character depends most on the current one), so the longer it trains, the more rows may return to
# themselves; the line above measures how many. The extra power of a learned bilinear form is in the
# relations it can express (an adjective finding its noun, a value found through its key), which a
# model needs once the current token alone no longer predicts the next.

# %% [markdown]
# ## What this can and cannot show
#
# - Scores vs output, uniform attention, the zero gradient of the argmax and the self-preference of
#   a cosine are exact facts; they hold at any budget and any seed.
# - Hard vs straight-through is a trained comparison: it is decided by the mean loss gap over seeds
#   against the seed range, and printed as "about equal" when the gap is inside it. The softmax and
#   Gumbel runs are one seed each and are shown, not ranked.
# - Whether training *uses* the freedom of W_q ≠ W_k depends on the task: a one-layer character model
#   without positions mostly looks at itself, more so the longer it trains (the full budget). A task
#   that needs a different token (exercise-sized: an induction or lookup task, as in NB05) shows
#   the use; the capability is measured here at initialisation and after training.

# %% [markdown]
# ## Claims

# %%
w_rows = torch.cat([w[..., 8:, :].reshape(-1, w.shape[-1]) for w in cap_l["weights"]])   # rows that see 9+ keys
one_hot_rows = float((w_rows.amax(-1) > 0.99).double().mean())
claims_table([
    Claim("S001-Q5", "(the student) attention's output is the relevance scores", "scores",
          f"output per position and head: {O.shape[-1]} numbers (d); scores: {S.shape[-1]} (one per key)",
          holds=O.shape[-1] == S.shape[-1] and torch.allclose(O, S), verdict="no: the output is weights·V"),
    Claim("S001-Q5-sub", "the essential difference: what survives the averaging", "(no number)",
          ", ".join(f"{k} {x:.3f}" for k, x in diversity.items()) + " (spread between positions)",
          holds=diversity["uniform, bidirectional"] < 1e-6 < diversity["uniform, causal"] < diversity["learned (causal)"],
          verdict="uniform erases (bidirectional) or keeps only the prefix mean (causal); learned keeps content"),
    Claim("S001-Q6", "(the student) the QKV computation is a dictionary lookup", "one key → one value",
          f"{one_hot_rows:.1%} of the trained model's attention rows put > 0.99 on one key",
          holds=one_hot_rows > 0.99, verdict="a soft lookup: a weighted blend, rarely one entry"),
    Claim("S001-Q5-guide", "weights are n×n with rows summing to 1; the output is weights·V", "rows sum to 1; out = W·V",
          f"max |row sum - 1| {float((W.sum(-1) - 1).abs().max()):.0e}; max |out - W·V| {float((O - W @ V).abs().max()):.0e}",
          holds=bool(torch.allclose(O, W @ V, atol=1e-5))),
    Claim("S001-Q5-followup", "uniform weights: every position outputs mean(V), all identical", "all identical",
          f"bidirectional: identical ({spread_bi:.0e}); causal: running mean, spread {spread_causal:.2f}",
          holds=spread_causal < 0.01, verdict="holds only without the causal mask"),
    Claim("S001-Q5-followup", "uniform attention has maximal entropy log n", "log n",
          f"normalised entropy {min(H_flat):.6f}", holds=min(H_flat) > 0.9999),
    Claim("S001-Open1", "uniform attention ≈ global average pooling: selectivity is what attention adds",
          "(no number)", f"val loss {val_uniform:.3f} uniform vs {val_learned:.3f} learned after {STEPS} steps",
          holds=val_uniform > val_learned + 0.05),
    Claim("S001-Q6-guide", "argmax has no gradient; softmax is smooth", "no gradient",
          f"|dL/dW_q,k| = {grads['hard']:.0f} (hard) vs {grads['softmax']:.3g} (softmax); "
          f"W_q moved {lookup['hard']['dq']:.0f} in training", holds=grads["hard"] == 0.0),
    Claim("S001-Q6-guide", "Gumbel-softmax approaches hard selection as τ → 0", "one-hot as τ → 0",
          f"mean largest weight {max_w[0]:.2f} at τ={taus[0]} → {max_w[-1]:.3f} at τ={taus[-1]}",
          holds=max_w[-1] > 0.95),
    Claim("S001-Q6-sub", "differentiability is what lets the lookup be learned", "end-to-end gradient",
          f"W_q moved {lookup['hard']['dq']:.3f} (hard) vs ≥ {lookup['straight_through']['dq_min']:.3f} (straight-through); "
          f"same one-hot forward, val loss {lookup['straight_through']['val']:.3f} vs {lookup['hard']['val']:.3f} "
          f"(seed range {st_noise:.3f})",
          holds=lookup["hard"]["dq"] == 0.0 and lookup["straight_through"]["dq_min"] > 0.05,
          verdict=f"holds; on the loss after {STEPS} steps: {st_answer}"),
    Claim("S001-Q6-guide", "sparsemax 'trains less stably than softmax'", "less stable",
          "not tested; the passage mixes sparse attention *patterns* with the sparsemax normaliser "
          "and cites nothing", holds=None, citation="Martins & Astudillo 2016 (sparsemax) for the normaliser"),
    Claim("S001-Q6-followup", "learned W_qW_kᵀ is more powerful than a fixed cosine", "(unanswered)",
          f"rows that look elsewhere: fixed cosine {sim['fixed cosine']['beats_self']:.0%}, learned cosine "
          f"{sim['learned cosine']['beats_self']:.0%}, tie_qk with a learned gain {sim['tie_qk, learned gain']['beats_self']:.1%}, "
          f"learned W_q, W_k {sim['learned W_q, W_k']['at_init']:.0%} at init, {sim['learned W_q, W_k']['beats_self']:.0%} trained",
          holds=learned_can > 0.2 and cos_answer == "never",
          verdict="more expressive: holds (a cosine can never prefer another token); the loss is not ranked (one seed)"),
])

# %% [markdown]
# ## The essence

# %%
essence("""
The weights say where to look; the output is what was found there: a weighted average of value
vectors, one vector per position. Equal weights reduce attention to averaging, the same mean for
everyone without a mask and a running mean with one, and the loss gap to learned attention is the
price of not choosing. Choosing is learnable only because the softmax is smooth: a hard argmax gives
W_q and W_k no gradient at all, so its lookup pattern stays wherever it started. And the similarity
itself is learned: a cosine, fixed or in learned features, always ranks a token first among its own
matches (a learned per-dimension gain already breaks that), while separate W_q and W_k let it go
looking for something else.
""")

# %% [markdown]
# ## Exercises
#
# **1.** With the causal mask, uniform attention at position t returns the running mean of V₀…V_t.
# Show that the running mean can be computed in O(T·d) with a cumulative sum (no T×T matrix), and
# check it against softmax of an all-zero score matrix with the causal mask.

# %% tags=["solution"] jupyter={"source_hidden": true}
# Solution: cumsum(V) / (t + 1) is exactly what am.uniform_attention does.
vv = torch.randn(10, 4, dtype=torch.float64)
fast_way = vv.cumsum(0) / torch.arange(1, 11, dtype=torch.float64)[:, None]
slow_way = am.normalize_scores(torch.zeros(10, 10, dtype=torch.float64), "softmax", causal=True) @ vv
assert torch.allclose(fast_way, slow_way)
print("max difference", float((fast_way - slow_way).abs().max()))

# %% [markdown]
# **2.** The straight-through estimator passes the softmax's gradient through a hard forward
# pass. Verify on a small score vector that `hard_weights(s, straight_through=True)` has exactly the
# forward values of the argmax and exactly the gradient of the softmax.

# %% tags=["solution"] jupyter={"source_hidden": true}
s1 = torch.tensor([1.0, 3.0, 2.0], requires_grad=True)
vals = torch.tensor([[1.0], [5.0], [-2.0]])
(am.hard_weights(s1, straight_through=True) @ vals).sum().backward()
g_st = s1.grad.clone()
s1.grad = None
(torch.softmax(s1, -1) @ vals).sum().backward()
print("forward:", am.hard_weights(s1.detach(), straight_through=True).tolist(), " grads equal:",
      torch.allclose(g_st, s1.grad))
assert torch.allclose(g_st, s1.grad)
