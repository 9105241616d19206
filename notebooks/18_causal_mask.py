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
# # 18 Causal masking and the flow of information
#
# A decoder predicts every next token of a sequence in one forward pass. That only works if the
# prediction at position t cannot see the tokens after t, and the causal mask is what guarantees it.
# How exactly is it written, what breaks when it is written slightly wrong, and does "information
# flows only left to right" describe training as well as the forward pass?
#
# ## The questions
#
# **S001-Q20** 「Decoder中的Masked Self-Attention如何实现？为什么需要mask？」
# *How is masked self-attention implemented in the decoder, and why is a mask needed?*
#
# **S001-Q20-sub** 「为什么需要Causal Mask？」
# *Why is a causal mask needed?*
#
# **S003-Q20** 「Causal Masking？」
# *What is causal masking?*
#
# **S004-N1** 「信息永远只从左向右流动。信息永远只从下向上流动。」
# *Information always flows only from left to right, and only from bottom to top.*
#
# **S004-E04a** 「这些小脑是怎么形成的？」
# *How are these "mini-brains" (one per position) formed?*
#
# **The surface answer.** The documents say: scores above the diagonal are set to −∞ so the softmax
# gives them weight 0 (the student's "fill with 0" would still give them weight); this is not BERT's
# random masking; at inference only the last token is computed, so no mask is needed there; with the
# mask one pass trains every position instead of n passes; and it keeps training consistent with
# left-to-right generation. The book chapter adds that information flows only left to right and
# bottom to top, that right-hand positions can never influence left-hand ones, that the computation
# forms a triangle, and that every position's "mini-brain" is the same set of weights.
#
# We measure the Jacobian of the outputs with respect to the inputs position by position, train
# models with the correct mask, with masked scores filled with 0, and with no mask, compare a prompt
# prefilled without the mask against step-by-step decoding, and follow the training gradient from
# right-hand losses back into left-hand positions.

# %%
import torch
import torch.nn.functional as F

from course_lib import ModelConfig, TrainConfig
from course_lib.attention import attention_scores, build_attention_mask
from course_lib.data import packed_splits
from course_lib.lab import causality as cz
from course_lib.lab import viz
from course_lib.lab.budget import budget, by_budget, set_budget_threads
from course_lib.lab.runs import seeded_model, train_model
from course_lib.lab.socratic import Claim, claims_table, essence, predict, reveal
from course_lib.sample import generate

viz.setup()
import matplotlib.pyplot as plt  # noqa: E402

set_budget_threads()
print("budget:", budget())
torch.manual_seed(0)

# %% [markdown]
# ## 1. The mask, written out (S001-Q20, S003-Q20)
#
# The scores `q·k / sqrt(d)` form a T × T matrix per head. Row t holds position t's scores against
# every key. The causal mask replaces the entries above the diagonal before the softmax. With −∞ they
# become `exp(−∞) = 0`; with 0 they become `exp(0) = 1`, as large as a typical real score.

# %%
p_fill = predict("S001-Q20 fill", "Masked scores filled with 0 instead of -inf: what weight do the future "
                                  "positions of row 0 get (6 positions, random scores)?",
                 choices=["0", "small but non-zero", "most of the weight"])

# %%
g = torch.Generator().manual_seed(0)
q, k = torch.randn(1, 1, 6, 16, generator=g), torch.randn(1, 1, 6, 16, generator=g)
weights = {fill: attention_scores(q, k, causal=True, mask_fill=fill).softmax(-1)[0, 0] for fill in ("-inf", "zero")}
future = torch.triu(torch.ones(6, 6, dtype=torch.bool), diagonal=1)
w_future = {fill: float(w[future].max()) for fill, w in weights.items()}
row0_future = float(weights["zero"][0, 1:].sum())
fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
for ax, (fill, w) in zip(axes, weights.items()):
    viz.heatmap(w, ax=ax, title=f"attention weights, masked scores = {fill}").set(
        xlabel="key position", ylabel="query position")
fig.tight_layout();

# %%
assert w_future["-inf"] == 0.0                                       # exactly zero weight
assert w_future["zero"] > 0.01
answer_fill = "most of the weight" if row0_future > 0.5 else "small but non-zero" if row0_future > 0 else "0"
reveal(p_fill, measured=f"row 0 gives {row0_future:.2f} of its weight to the 5 future positions",
       answer=answer_fill,
       note="Row 0 has one real score and five zeros: the future gets most of the weight.")

# %% [markdown]
# **Not BERT's masking.** BERT replaces about 15% of the *input tokens*, chosen at random for every
# sequence, by a `[MASK]` token and lets every position attend everywhere. The causal mask changes no
# token; it is one fixed triangle over the *scores*, the same for every sequence.

# %%
causal_a, causal_b = build_attention_mask(None, 6, 6, True), build_attention_mask(None, 6, 6, True)
bert_a, bert_b = (torch.rand(64, generator=g) < 0.15 for _ in range(2))   # 15% of 64 input tokens
causal_fixed = bool(torch.equal(causal_a, causal_b))
bert_random = not torch.equal(bert_a, bert_b)
print(f"causal mask identical for two sequences: {causal_fixed}; BERT-style token masks differ: {bert_random} "
      f"({int(bert_a.sum())} and {int(bert_b.sum())} of 64 tokens masked)")

# %% [markdown]
# ## 2. Who depends on whom: the Jacobian (S004-N1)
#
# Treat the model as a function of its input embeddings `x_0 … x_{T−1}` and take the Jacobian of
# the output logits: the block `∂y_t / ∂x_s` says how much the output at position t responds to the
# input at position s. We reduce each block to its norm (`cz.position_jacobian_norms`, checked in the
# tests against `torch.autograd.functional.jacobian`). For a causal model the blocks with s > t must
# be *exactly* zero, not small.

# %%
p_jac = predict("S004-N1 jacobian", "Above the diagonal (s > t), the Jacobian blocks of the correctly masked model are:",
                choices=["exactly 0", "tiny (float noise)", "small but real"])

# %%
SEQ = by_budget(fast=32, full=128)
tok, train, val = packed_splits("kjv", block_size=SEQ, max_chars=by_budget(fast=200_000, full=2_000_000))
base = ModelConfig(vocab_size=tok.vocab_size, dim=by_budget(fast=64, full=128), n_layers=by_budget(fast=2, full=4),
                   n_heads=4, max_seq_len=SEQ, attn_impl="naive")
VARIANTS = {"mask -inf": base, "mask filled with 0": base.replace(mask_fill="zero"), "no mask": base.replace(causal=False)}
probe_ids = val[0]["input_ids"][None, :12]
jac = {}
for name, cfg in VARIANTS.items():
    m = seeded_model(cfg, 0).eval()
    jac[name] = cz.position_jacobian_norms(cz.stream_function(m, probe_ids), cz.stream_input(m, probe_ids), probes=8)
upper = torch.triu(torch.ones(12, 12, dtype=torch.bool), diagonal=1)
fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
for ax, (name, J) in zip(axes, jac.items()):
    viz.heatmap(torch.log10(J + 1e-12), ax=ax, title=f"{name}: log10 ‖∂y_t/∂x_s‖").set(
        xlabel="input position s", ylabel="output position t")
fig.tight_layout();

# %%
jac_upper = {name: float(J[upper].max()) for name, J in jac.items()}
jac_lower_min = {name: float(J[~upper].min()) for name, J in jac.items()}
print({name: f"max above diagonal {v:.2e}, min on/below {jac_lower_min[name]:.2e}" for name, v in jac_upper.items()})
assert jac_upper["mask -inf"] == 0.0 and jac_lower_min["mask -inf"] > 0
assert jac_upper["mask filled with 0"] > 1e-6 and jac_upper["no mask"] > 1e-6
answer_jac = "exactly 0" if jac_upper["mask -inf"] == 0.0 else "tiny (float noise)" if jac_upper["mask -inf"] < 1e-6 \
    else "small but real"
reveal(p_jac, measured=jac_upper, answer=answer_jac,
       note="With -inf the future gets weight exactly 0, so no gradient path exists; filling with 0 opens one.")

# %% [markdown]
# ## 3. What the wrong mask does to training and to generation (S001-Q20-sub)
#
# We train three otherwise identical character models on the King James Bible: the correct mask,
# the mask with masked scores filled with 0, and no mask at all. Training computes every position's
# loss in one pass with the whole sequence present (teacher forcing). Generation has no future: the
# prediction at position t is computed from the prefix `x_0 … x_t` alone (`cz.prefix_logits`, the
# same numbers a KV-cached decoder produces for a causal model). We measure the loss both ways on
# held-out text.

# %%
p_train = predict("S001-Q20-sub leak", "The no-mask model, evaluated the way it was trained (whole sequence "
                                       "visible), compared with the correct model:",
                  choices=["much lower loss", "about equal", "higher loss"])

# %%
STEPS = by_budget(fast=150, full=600)
SEEDS = by_budget(fast=(0, 1), full=(0, 1, 2))
TC = TrainConfig(batch_size=16, max_steps=STEPS, lr=3e-3, weight_decay=0.0, warmup_steps=10)
N_VAL = by_budget(fast=16, full=64)
val_ids = torch.stack([val[i]["input_ids"] for i in range(N_VAL)])
val_labels = torch.stack([val[i]["labels"] for i in range(N_VAL)])


def seen_and_generated_loss(model):
    """(loss with the whole sequence visible, loss from prefixes only) on the validation rows."""
    with torch.no_grad():
        seen = model(val_ids, labels=val_labels).loss
        gen = F.cross_entropy(cz.prefix_logits(model, val_ids).flatten(0, 1), val_labels.flatten(), ignore_index=-100)
    return float(seen), float(gen)


trained, seen, gen = {}, {}, {}
for name, cfg in VARIANTS.items():
    trained[name] = [train_model(cfg, train, TC, seed=s)[0].eval() for s in SEEDS]
    seen[name], gen[name] = zip(*(seen_and_generated_loss(m) for m in trained[name]))
    print(f"{name:<20} whole-sequence loss {[f'{v:.3f}' for v in seen[name]]}, "
          f"generation (prefix) loss {[f'{v:.3f}' for v in gen[name]]} nats/char")

# %%
def spread(*groups):
    return max(max(v) - min(v) for v in groups)


mean = {key: {n: sum(d[n]) / len(d[n]) for n in VARIANTS} for key, d in (("seen", seen), ("gen", gen))}
consistent_gap = max(abs(a - b) for a, b in zip(seen["mask -inf"], gen["mask -inf"]))
no_mask_drop = mean["seen"]["mask -inf"] - mean["seen"]["no mask"]
leak_gen_gap = {n: mean["gen"][n] - mean["gen"]["mask -inf"] for n in ("mask filled with 0", "no mask")}
margin = spread(seen["mask -inf"], seen["no mask"], gen["mask -inf"], gen["no mask"], gen["mask filled with 0"])
print(f"correct mask: whole-sequence and prefix losses differ by at most {consistent_gap:.1e}")
print(f"no mask: {no_mask_drop:.3f} nats lower when it can see the future; generation worse by "
      f"{leak_gen_gap['no mask']:.3f} (seed range {margin:.3f})")
print(f"filled with 0: generation worse than the correct model by {leak_gen_gap['mask filled with 0']:.3f}")

# %%
assert consistent_gap < 1e-4                                   # training = generation, for the correct mask
assert leak_gen_gap["no mask"] > margin                        # generation from a leaky model is worse
answer_train = "much lower loss" if no_mask_drop > margin else "higher loss" if -no_mask_drop > margin else "about equal"
reveal(p_train, measured=f"no mask {mean['seen']['no mask']:.3f} vs correct {mean['seen']['mask -inf']:.3f} nats/char",
       answer=answer_train, note="It copies the next character instead of predicting it.")

# %% [markdown]
# Where does the 0-filled model cheat? Its future positions all get the same score 0, so it sees an
# equal-weight average of the characters to come: a blurred bag of the future, sharpest near the end
# of the sequence, where only one or two characters remain. The per-position loss shows it.

# %%
with torch.no_grad():
    per_pos = {n: ms[0](val_ids, labels=val_labels, loss_reduction="none").loss.mean(0) for n, ms in trained.items()}
ax = viz.plot_curves({n: (list(range(SEQ)), v.tolist()) for n, v in per_pos.items()},
                     xlabel="position in the sequence", ylabel="loss with the sequence visible (nats/char)",
                     title="Teacher-forced loss by position (seed 0)")
tail_gain = float(per_pos["mask -inf"][-4:-1].mean() - per_pos["mask filled with 0"][-4:-1].mean())
print(f"0-filled model, last positions: {tail_gain:.3f} nats below the correct model")

# %% [markdown]
# And generation. The same prompt, greedy continuation without a cache (so every step sees only the
# prefix, as generation must):

# %%
prompt = torch.tensor([tok.encode("And God said unto ")])
samples = {n: tok.decode(generate(ms[0], prompt, 40, temperature=0.0, use_cache=False)[0, prompt.shape[1]:].tolist())
           for n, ms in trained.items()}
for n, s in samples.items():
    print(f"{n:<20} {s!r}")

# %% [markdown]
# ## 4. "At inference only the last token is computed, so no mask is needed" (S001-Q20)
#
# True for one step of cached decoding: the new token is the last position and every cached key is
# in its past, so there is nothing to mask. Not true for the prompt: prefill computes all prompt
# positions in one pass, and without the mask each prompt position sees the rest of the prompt.
# The cached keys and values of the prompt then differ from what the model was trained to produce,
# and with two or more layers even the last position's output changes, because it reads those keys
# and values.

# %%
p_prefill = predict("S001-Q20 prefill", "Prefill the prompt without the mask (same weights): does the last "
                                        "prompt position's prediction change?",
                    choices=["no, the last position sees everything anyway", "yes, with 2+ layers"])

# %%
model = trained["mask -inf"][0]
unmasked = seeded_model(base.replace(causal=False), 0).eval()
unmasked.load_state_dict(model.state_dict())
with torch.no_grad():
    full = model(val_ids).logits
    step = cz.cached_logits(model, val_ids)
    open_prefill = unmasked(val_ids).logits
cache_err = float((step - full).abs().max())
last_diff = float((open_prefill[:, -1] - full[:, -1]).abs().max())
last_flip = float((open_prefill[:, -1].argmax(-1) != full[:, -1].argmax(-1)).float().mean())
all_flip = float((open_prefill.argmax(-1) != full.argmax(-1)).float().mean())
print(f"cached one-token steps vs the masked full pass: max |Δlogit| {cache_err:.1e}")
print(f"unmasked prefill: last position max |Δlogit| {last_diff:.2f}, top-1 changed in {last_flip:.0%} of rows; "
      f"over all prompt positions {all_flip:.0%}")

# %%
assert cache_err < 1e-4                                       # a single step needs no mask
assert last_diff > 1e-3                                       # an unmasked prefill changes even the last position
answer_prefill = "yes, with 2+ layers" if last_diff > 1e-3 else "no, the last position sees everything anyway"
reveal(p_prefill, measured=f"max |Δlogit| at the last position {last_diff:.2f}", answer=answer_prefill,
       note="With one layer the last position would be unchanged (exercise 1).")

# %% [markdown]
# ## 5. Does the right ever influence the left? (S004-N1)
#
# In the forward pass, no: section 2 found exact zeros above the diagonal. In training, yes. The
# loss at a right-hand position t depends on the left-hand states h_s (s < t) through attention, so
# its gradient flows *into* those positions' computations: `‖∂loss_t / ∂h_s‖` is non-zero below the
# diagonal. And since every position shares the same weights, an update driven by the loss at the
# last position changes what the model computes at every earlier position on the next pass.

# %%
p_grad = predict("S004-N1 gradient", "Does the loss at the last position send gradient into the computation "
                                     "at position 0?", choices=["yes", "no, the mask blocks it"])

# %%
one_ids, one_labels = val_ids[:1, :16], val_labels[:1, :16]
grad_map = cz.loss_position_gradients(model, one_ids, one_labels, layer=1)
fwd_map = cz.position_jacobian_norms(cz.stream_function(model, one_ids, layer=1),
                                     cz.stream_input(model, one_ids, layer=1), probes=8)
below = torch.tril(torch.ones(16, 16, dtype=torch.bool), diagonal=-1)
above = below.T
effect = cz.position_update_effect(model, one_ids, one_labels, position=15, lr=0.05)
fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
viz.heatmap(torch.log10(grad_map + 1e-12), ax=axes[0], title="log10 ‖∂loss_t / ∂h_s‖ (block 1 input)").set(
    xlabel="position s of the state", ylabel="position t of the loss")
axes[1].bar(range(16), effect.tolist())
axes[1].set(title="after one SGD step on the loss at position 15", xlabel="position", ylabel="max |Δ logit|")
fig.tight_layout();

# %%
frac_below = float((grad_map[below] > 0).float().mean())
print(f"loss -> earlier states: {frac_below:.0%} of the (t, s<t) blocks non-zero; forward state t -> "
      f"later position: max {float(fwd_map[above].max()):.1e}")
print(f"one step on the last position's loss moves the logits at positions 0..14 by "
      f"{float(effect[:15].min()):.1e} .. {float(effect[:15].max()):.1e}")
assert float(fwd_map[above].max()) == 0.0                     # forward: exact zeros
assert frac_below == 1.0 and float(effect[:15].min()) > 0     # backward and update: right reaches left
reveal(p_grad, measured=f"‖∂loss_15 / ∂h_0‖ = {float(grad_map[15, 0]):.2e}",
       answer="yes" if float(grad_map[15, 0]) > 0 else "no, the mask blocks it")

# %% [markdown]
# The mask makes the *forward* dependence triangular; it does not stop gradients from flowing back
# from right-hand losses into left-hand computations. That is the point: the states at early
# positions are trained to be useful to later predictions (as keys and values), and that pressure
# comes only from the losses to their right.
#
# ## 6. One pass trains every position, with one set of weights (S001-Q20, S004-E04a)
#
# The masked pass over T tokens gives T predictions, each exactly the one generation would make from
# its prefix. Is its gradient the same as running T separate prefix passes and averaging the
# last-position losses? The weights are one set, reused at every position; the gradient adds up the
# contributions of all positions.

# %%
x8, y8 = val_ids[:2, :12], val_labels[:2, :12]
params_ = [p for p in model.parameters() if p.requires_grad]
one_pass = torch.autograd.grad(model(x8, labels=y8).loss, params_)
prefix_loss = F.cross_entropy(cz.prefix_logits(model, x8).flatten(0, 1), y8.flatten(), ignore_index=-100)
many_pass = torch.autograd.grad(prefix_loss, params_)
rel = float(torch.sqrt(sum((a - b).pow(2).sum() for a, b in zip(one_pass, many_pass)))
            / torch.sqrt(sum(a.pow(2).sum() for a in one_pass)))
tokens_one, tokens_many = 12, 12 * 13 // 2
n_short, n_long = (seeded_model(base.replace(max_seq_len=L), 0).num_parameters() for L in (8, 4 * SEQ))
print(f"gradient of one masked pass vs 12 prefix passes: relative difference {rel:.1e}; "
      f"positions computed {tokens_one} vs {tokens_many}")
print(f"parameters with max_seq_len 8: {n_short:,}; with {4 * SEQ}: {n_long:,}")

# %%
assert rel < 1e-5 and n_short == n_long

# %% [markdown]
# The same gradient, at a fraction of the work (T positions instead of T(T+1)/2), and the same number
# of parameters whatever the length: each position's "mini-brain" is the one set of weights applied
# to that position's prefix, not a copy.
#
# ## Claims

# %%
claims_table([
    Claim("S001-Q20", "-inf gives masked positions weight 0; filling with 0 still gives weight", "0 vs > 0",
          f"largest future weight: -inf {w_future['-inf']:.1e}, 0-fill {w_future['zero']:.2f}",
          holds=w_future["-inf"] == 0.0 and w_future["zero"] > 0),
    Claim("S001-Q20", "a causal mask differs from BERT's random masking", "different",
          "fixed triangle over scores vs random input tokens", holds=causal_fixed and bert_random),
    Claim("S001-Q20", "at inference only the last token is computed, so no mask is needed", "no mask needed",
          f"cached step: |Δ| {cache_err:.0e}; unmasked prefill: last-position |Δlogit| {last_diff:.2f}",
          holds=last_diff < 1e-4, verdict="partly: for single cached steps, not for prefill"),
    Claim("S001-Q20", "with a mask one pass trains every position; otherwise n passes", "1 vs n",
          f"gradient rel. diff {rel:.0e}; {tokens_one} vs {tokens_many} positions", holds=rel < 1e-5),
    Claim("S001-Q20-sub", "the mask keeps training consistent with generation", "consistent",
          f"correct: gap {consistent_gap:.0e}; no mask: generation +{leak_gen_gap['no mask']:.2f}, "
          f"0-fill +{leak_gen_gap['mask filled with 0']:.2f} nats", holds=consistent_gap < 1e-4 and leak_gen_gap["no mask"] > margin),
    Claim("S003-Q20", "causal masking is not BERT's random masking", "different",
          f"the causal mask is the same for every sequence: {causal_fixed}", holds=causal_fixed),
    Claim("S004-N1", "a position's state depends only on positions to its left", "triangle",
          f"Jacobian above the diagonal: {jac_upper['mask -inf']:.1e}", holds=jac_upper["mask -inf"] == 0.0),
    Claim("S004-N1", "right-hand positions can never influence left-hand ones", "never",
          f"∂loss_t/∂h_s≠0 for {frac_below:.0%} of s<t; one step on the last loss moves position 0 by "
          f"{float(effect[0]):.1e}", holds=frac_below == 0.0, verdict="does not hold in training (§7 #28)"),
    Claim("S004-N1", "computation proceeds as a triangle", "triangle in time",
          f"prefill computes each layer for all positions at once and equals step-by-step decoding (|Δ| {cache_err:.0e})",
          holds=cache_err > 1e-4, verdict="does not hold: the dependence is triangular, the schedule is not"),
    Claim("S004-E04a", "one set of weights at every position", "shared weights",
          f"parameters at length 8 and {4 * SEQ}: {n_short:,} = {n_long:,}", holds=n_short == n_long),
])

# %% [markdown]
# ## What this can and cannot show
#
# The mask's effect on the weights, the Jacobian zeros, the cache equality and the one-pass gradient
# are exact and hold at any size. The training comparison uses small character models for a few
# hundred steps (fast: 150 steps, 2 seeds, sequences of 32; full: 600 steps, 3 seeds, sequences of
# 128, 4 layers, not run while this notebook was written): the no-mask model's copying shows at once. The 0-filled model only sees a blurred
# average of the future, so in a short run its teacher-forced loss is barely lower than the correct
# model's except at the last positions; what it does with longer training and longer sequences is
# the full budget's question. Generation quality is judged by loss and one greedy sample, not by people.
#
# ## The essence

# %%
essence("""
The causal mask sets the scores of future keys to -inf, so their weights are exactly 0 and the output
at position t is an exact function of positions 0..t: the Jacobian is lower-triangular with exact
zeros, not small numbers. Filling with 0 instead leaks an average of the future; no mask leaks it all,
and both models learn to read the future in training and then predict worse when generating. A
single cached decoding step needs no mask; a prefill does. Backward, information does flow right to
left: later losses send gradient into earlier positions' computations and, through the shared
weights, change them.
""")

# %% [markdown]
# ## Exercises
#
# **1.** One layer. Build a 1-layer model and its unmasked twin with the same weights. Does the last
# position's output differ after a prefill without the mask?

# %% tags=["solution"] jupyter={"source_hidden": true}
# Solution. No: in one layer the last position's query may attend to every key anyway, and the keys
# and values come straight from the embeddings, which no mask affects.
one = seeded_model(base.replace(n_layers=1), 0).eval()
one_open = seeded_model(base.replace(n_layers=1, causal=False), 0).eval()
with torch.no_grad():
    d1 = float((one(val_ids).logits[:, -1] - one_open(val_ids).logits[:, -1]).abs().max())
print(f"1 layer: last-position |Δlogit| {d1:.1e}")
assert d1 < 1e-4

# %% [markdown]
# **2.** Gradients by layer. Is `‖∂loss_15 / ∂h_0‖` non-zero at the input of block 0 too (the
# embeddings)?

# %% tags=["solution"] jupyter={"source_hidden": true}
# Solution. Yes: block 0's attention already lets position 15 read position 0.
g0 = cz.loss_position_gradients(model, one_ids, one_labels, layer=0)
print(f"‖∂loss_15 / ∂x_0‖ = {float(g0[15, 0]):.2e}")
assert float(g0[15, 0]) > 0
