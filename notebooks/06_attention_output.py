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
from course_lib.lab.budget import by_budget, set_budget_threads
from course_lib.data import packed_splits
from course_lib.lab.socratic import Claim, claims_table, essence, predict, reveal

viz.setup()

set_budget_threads()  # one thread under the fast budget: tiny models gain nothing from more

torch.manual_seed(0)
STEPS, SEQ = by_budget(fast=80, full=1500), 64
tok, data, val = packed_splits("kjv", block_size=SEQ, max_chars=by_budget(fast=400_000, full=4_000_000))
text_probe = torch.stack([val[i]["input_ids"] for i in range(16)])


def char_lm(seed=0, **kw):
    """A small causal character model on the corpus (the King James Bible: a small alphabet trains fast)."""
    torch.manual_seed(seed)
    base = dict(vocab_size=tok.vocab_size, dim=64, n_layers=2, n_heads=4, n_kv_heads=4, max_seq_len=SEQ)
    base.update(kw)
    return Transformer(ModelConfig.nano(**base))


def train(model, steps=STEPS):
    return Trainer(model, data, TrainConfig(batch_size=16, max_steps=steps, lr=3e-3, warmup_steps=10, seed=0,
                                            progress=False, log_every=0)).fit()


# %% [markdown]
# ## 1. Scores, weights, output: three different things
#
# The scores are q·k/sqrt(d) for every (query, key) pair; the weights are their softmax along each
# row; the output is the weighted sum of value vectors. Before looking: for one position of one
# head, what is the output?

# %%
p_out = predict("nb06-output", "For one position, one head, with d = head size and T keys, the head's output is ...",
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
reveal(p_out, measured=f"output {tuple(O.shape)} = (batch, heads, positions, d)", answer="a d-dimensional vector")

# %% [markdown]
# ## 2. Uniform attention: the mean, or a running mean
#
# If every weight in a row is equal, the output is the plain average of the values the row may
# see. Without a mask that is the same mean(V) for every position. With the causal mask, position
# t sees only V₀…V_t, so "uniform" gives the *running* mean, a different vector at every position.

# %%
p_uni = predict("nb06-uniform", "Causal model, all weights equal: are the outputs of all positions identical?",
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
reveal(p_uni, measured=f"relative spread between positions {spread_causal:.2f}",
       answer="no, each is the mean of its prefix",
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
viz.bar(diversity, ylabel="difference between positions", title="What survives the averaging")
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
# that becomes one-hot as τ → 0). `probes.attention_normalizer` swaps the softmax of the course
# model's explicit attention path for each of them.

# %%
p_hard = predict("nb06-hard", "Trained with hard argmax attention, how much does W_q change?",
                 choices=["not at all", "a little", "as much as with softmax"])

# %%
grads = {}
for norm in ("softmax", "hard", "straight_through"):
    with probes.attention_normalizer(norm):
        grads[norm] = probes.total_norm(probes.param_grad_norms(char_lm(attn_impl="naive"), text_probe,
                                                                 torch.roll(text_probe, -1, 1), "q_proj|k_proj"))
print("|dL/dW_q, W_k| at init:", {k: f"{v:.3g}" for k, v in grads.items()})
assert grads["hard"] == 0.0 and grads["straight_through"] > 0 and grads["softmax"] > 0

normalizers = {"softmax": {}, "hard": {}, "straight_through": {}, "gumbel": {"tau": 1.0}}
lookup = {}
for norm, kw in normalizers.items():
    m = char_lm(attn_impl="naive")
    wq0 = m.layers[0].attn.q_proj.weight.detach().clone()
    with probes.attention_normalizer(norm, generator=torch.Generator().manual_seed(0), **kw):
        hist = train(m)
        lookup[norm] = dict(loss=hist.loss, val=probes.dataset_loss(m, val),
                            dq=float((m.layers[0].attn.q_proj.weight.detach().cpu() - wq0).norm() / wq0.norm()))
    print(f"{norm:>16}: val loss {lookup[norm]['val']:.3f}, relative change of W_q {lookup[norm]['dq']:.3f}")
viz.plot_curves({k: r["loss"] for k, r in lookup.items()}, smooth=10, title="Soft vs hard lookup (character LM)");

# %%
assert lookup["hard"]["dq"] == 0.0                                     # no gradient, no change: frozen
assert lookup["straight_through"]["dq"] > 0.05 and lookup["softmax"]["dq"] > 0.05
assert lookup["straight_through"]["val"] < lookup["hard"]["val"]      # same forward pass; learning where to look helps
reveal(p_hard, measured=f"relative change {lookup['hard']['dq']:.3f}", answer="not at all",
       note="Hard attention still trains the rest of the model (values, FFN, embeddings), but its "
            "choice of where to look stays the random one it started with.")

# %% [markdown]
# Two things to read from the curves. Hard and straight-through attention compute *the same forward
# pass* (one-hot weights); the only difference is whether a gradient reaches W_q and W_k. The gap
# between them is therefore the value of a learnable lookup. The plain softmax, on the other hand,
# is not automatically best this early: a fresh model's softmax attention is almost uniform (its
# scores are tiny), so for the first steps it blurs everything, while a one-hot lookup passes one
# token through cleanly. Smoothness is what makes the lookup *learnable*, not what makes it good
# on day one.

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
# a learned feature space (`tie_qk` with QK-norm): still symmetric, still self-maximal. A learned
# W_q ≠ W_k can make a token look for a *different* one, such as the previous character.
#
# We train three one-layer character models without position encodings (so the score depends on
# content only): learned W_q, W_k with QK-norm; a learned shared feature (`tie_qk` + QK-norm); and a
# fixed cosine (W_q = I, frozen, shared with K, QK-norm gains frozen at 1).

# %%
p_cos = predict("nb06-cosine", "With a (fixed or learned) cosine similarity, can a position attend to another "
                "position more than to itself?", choices=["yes, after training", "never", "only with RoPE"])

# %%
def content_only(**kw):
    return char_lm(n_layers=1, n_heads=1, n_kv_heads=1, pos="none", qk_norm=True, **kw)


sim_models = {"learned W_q, W_k": content_only(), "tied (learned cosine)": content_only(tie_qk=True),
              "fixed cosine": content_only(tie_qk=True)}
fixed = sim_models["fixed cosine"].layers[0].attn
with torch.no_grad():
    fixed.q_proj.weight.copy_(torch.eye(fixed.q_proj.weight.shape[0]))
for p in (fixed.q_proj.weight, fixed.q_norm.weight, fixed.k_norm.weight):
    p.requires_grad_(False)
sim = {}
for name, m in sim_models.items():
    hist = train(m)
    full = probes.capture(m, text_probe)["scores"][0]
    s = full[..., 1:, :]                                                # rows that see at least 2 keys
    own = torch.diagonal(full, dim1=-2, dim2=-1)[..., 1:].unsqueeze(-1)  # each row's score for itself
    beats_self = float((s.amax(-1, keepdim=True) > own + 1e-4 * own.abs().clamp_min(1)).double().mean())
    sim[name] = dict(loss=hist.loss, val=probes.dataset_loss(m, val), beats_self=beats_self)
    print(f"{name:>22}: val loss {sim[name]['val']:.3f}; rows where another position outscores itself "
          f"{beats_self:.1%}")
viz.plot_curves({k: r["loss"] for k, r in sim.items()}, smooth=10, title="Learned vs cosine similarity");

# %%
assert torch.equal(fixed.q_proj.weight.cpu(), torch.eye(fixed.q_proj.weight.shape[0]))  # it stayed fixed
assert sim["fixed cosine"]["beats_self"] == 0.0 and sim["tied (learned cosine)"]["beats_self"] < 0.01
assert sim["learned W_q, W_k"]["beats_self"] > 0.2                  # it learns to look elsewhere
reveal(p_cos, measured=f"{sim['fixed cosine']['beats_self']:.0%} (fixed), "
       f"{sim['tied (learned cosine)']['beats_self']:.1%} (tied), {sim['learned W_q, W_k']['beats_self']:.0%} (learned)",
       answer="never")

# %% [markdown]
# The structural difference is exact: under a cosine, fixed or learned, no row ever ranks another
# position above itself, while learned W_q, W_k send most rows elsewhere. The *loss* tells a more
# modest story, and we print it rather than assume it: for a one-layer character model in its
# first steps, "look at yourself" is a good default (the next character depends most on the current
# one), so the cosine models are not behind at this budget. The extra power of a learned bilinear
# form is in the relations it can express (an adjective finding its noun, a value found through its
# key), which a model needs once the current token alone no longer predicts the next.
# %% [markdown]
# ## Claims

# %%
claims_table([
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
          f"same one-hot forward: straight-through {lookup['straight_through']['val']:.3f} vs hard (frozen lookup) "
          f"{lookup['hard']['val']:.3f}; softmax {lookup['softmax']['val']:.3f}",
          holds=lookup["straight_through"]["val"] < lookup["hard"]["val"]),
    Claim("S001-Q6-guide", "sparsemax 'trains less stably than softmax'", "less stable",
          "not tested; the passage mixes sparse attention *patterns* with the sparsemax normaliser "
          "and cites nothing", holds=None, citation="Martins & Astudillo 2016 (sparsemax) for the normaliser"),
    Claim("S001-Q6-followup", "learned W_qW_kᵀ is more powerful than a fixed cosine", "(unanswered)",
          f"cosine: self always wins ({sim['fixed cosine']['beats_self']:.0%} of rows look elsewhere); learned: "
          f"{sim['learned W_q, W_k']['beats_self']:.0%}; val loss {sim['learned W_q, W_k']['val']:.3f} vs "
          f"{sim['fixed cosine']['val']:.3f} after {STEPS} steps", holds=sim["learned W_q, W_k"]["beats_self"] > 0.2,
          verdict=("more expressive: holds; lower loss here: " +
                   ("yes" if sim["learned W_q, W_k"]["val"] < sim["fixed cosine"]["val"] else "no, not at this budget"))),
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
matches, while separate W_q and W_k let it go looking for something else.
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
