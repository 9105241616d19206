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
# # 13 ★ RoPE: relative position by rotation
#
# Attention by itself has no idea where a token sits. The original Transformer added a position
# vector to every token embedding; most current models instead *rotate* queries and keys by an angle
# proportional to their position (rotary position embedding, RoPE). This notebook checks what the
# rotation really guarantees, what it does not, and what happens when a RoPE model reads text longer
# than anything it was trained on.
#
# ## The questions
#
# **S000-Q7** 「为什么要用RoPE位置编码，而不是原始Transformer的绝对位置编码？」
# *Why use RoPE rather than the original Transformer's absolute position encoding?*
#
# **S000-Q7.1** 「绝对位置编码有什么根本问题？」
# *What is fundamentally wrong with absolute position encoding?*
#
# **S000-Q7.2** 「为什么旋转编码能表达相对位置？这背后的数学原理是什么？」
# *Why can a rotation express relative position? What is the mathematics behind it?*
#
# **The surface answer.** The document's short answer is "RoPE performs better". Pressed, it says that
# absolute encodings are a learned table `nn.Embedding(max_seq_len, hidden)` whose rows past the
# training length were never trained; that RoPE instead rotates q and k with frequencies it lists as
# `[1.0, 0.1, 0.01, 0.001, ...]`, so that the score depends only on the offset i − j; that RoPE
# therefore "extrapolates naturally to any length"; and, in the complex-number picture, that the score
# splits into "content similarity × relative position", "perfectly decoupled".
#
# Each of those sentences is a claim we can test.

# %%
import math

import torch

from course_lib import (CharTokenizer, ModelConfig, PackedDataset, TrainConfig, Trainer, Transformer,
                        load_corpus)
from course_lib.lab import viz
from course_lib.lab import rope_analysis as ra
from course_lib.lab.budget import budget, by_budget, set_budget_threads
from course_lib.corpus import train_val_split
from course_lib.lab.decode_cost import per_position_loss
from course_lib.lab.socratic import Claim, claims_table, essence, predict, reveal

viz.setup()
import matplotlib.pyplot as plt  # noqa: E402

torch.manual_seed(0)
set_budget_threads()  # one thread under the fast budget: tiny models gain nothing from more
print("budget:", budget())

# %% [markdown]
# ## 1. The rotation and the relative-offset property (S000-Q7.2)
#
# RoPE splits a head's d dimensions into d/2 pairs and turns pair i by the angle `position × f_i`.
# Call that rotation `R_m` for position m. Rotations compose (`R_m^T R_n = R_{n−m}`), so the score of a
# query at m and a key at n is
#
# ⟨R_m q, R_n k⟩ = qᵀ R_mᵀ R_n k = qᵀ R_{n−m} k,
#
# a function of q, k and the offset only. (The document writes "rotate(q·k, θ_i − θ_j)", but q·k is a
# single number and cannot be rotated; the identity above is the correct statement.)
#
# Two checks: the library's `apply_rope` must equal an explicit rotation matrix built from cosines and
# sines, and shifting both positions by the same amount must leave the score unchanged.

# %%
p_shift = predict("S000-Q7.2", "q at position 1000, k at 1001, versus q at 100, k at 101 (same vectors). "
                  "With RoPE, the two scores are ...",
                  choices=["equal up to float rounding", "close but not equal", "unrelated"])

# %%
g = torch.Generator().manual_seed(0)
q, k = torch.randn(64, generator=g), torch.randn(64, generator=g)
R = ra.rotation_matrix(64, 1000)
lib_vs_matrix = (ra.rope_rotate(q, 1000).double() - R @ q.double()).abs().max().item()
pairs = [(100, 101), (1000, 1001), (7, 3), (0, 250)]
shifts = [1, 37, 900, 3000]
res = ra.relative_offset_error(q, k, pairs, shifts)
print(f"apply_rope vs explicit R_1000: max difference {lib_vs_matrix:.1e}")
print(f"score(100,101) = {ra.rope_score(q, k, 100, 101):.5f}, score(1000,1001) = {ra.rope_score(q, k, 1000, 1001):.5f}")
print(f"largest change of a score under a common shift: {res['shift_error']:.1e} "
      f"({res['relative_shift_error']:.1e} of |q||k|); vs qᵀR(n−m)k: {res['matrix_error']:.1e}")

# %%
assert lib_vs_matrix < 1e-3                         # float32 angles at position 1000
assert res["relative_shift_error"] < 1e-5           # only the offset matters, to float32 rounding
assert res["relative_matrix_error"] < 1e-5
reveal(p_shift, measured="equal up to float rounding", note=f"relative difference {res['relative_shift_error']:.0e}")

# %% [markdown]
# The leftover ~1e-6 is float32 rounding of the angles `position × f_i` (the library keeps angles in
# float32 on purpose: in bfloat16 a position in the thousands would lose whole radians).
#
# ## 2. The frequencies (S000-Q7.1)
#
# The frequencies are `f_i = θ^(−2i/d)` for i = 0 … d/2 − 1, with θ = 10000 in the original paper
# (MiniMind uses 10⁶). The document lists them as `[1.0, 0.1, 0.01, 0.001, …]`. For a head of
# dimension 64, what is the second one?

# %%
p_freq = predict("S000-Q7.1", "head_dim = 64, θ = 10000: what is f_1, the second frequency?", kind="number")

# %%
table64 = ra.frequency_table(64, 1e4, train_len=512)
f64 = [r["freq"] for r in table64]
f8 = [r["freq"] for r in ra.frequency_table(8, 1e4)]
doc = ra.document_frequency_list(4)
print("document:       ", [f"{x:g}" for x in doc])
print("head_dim = 8:   ", [f"{x:.3g}" for x in f8])
print("head_dim = 64:  ", [f"{x:.3g}" for x in f64[:6]], "...", f"{f64[-1]:.2e}")
slow = sum(r["turns_in_train_len"] < 1 for r in table64)
print(f"head_dim 64: wavelengths from {table64[0]['wavelength']:.1f} to {table64[-1]['wavelength']:,.0f} positions; "
      f"{slow} of 32 pairs do not complete one turn in 512 positions")

fig, ax = plt.subplots()
ax.semilogy([r["wavelength"] for r in table64], "o-", label="θ = 10⁴")
ax.semilogy([r["wavelength"] for r in ra.frequency_table(64, 1e6)], "s-", label="θ = 10⁶ (MiniMind)")
ax.axhline(512, color="grey", ls="--", label="512 positions")
ax.set(xlabel="pair i", ylabel="wavelength 2π / f_i (positions)", title="RoPE wavelengths, head_dim = 64")
ax.legend();

# %%
assert all(math.isclose(a, b, rel_tol=1e-6) for a, b in zip(f8, doc))        # the document's list is d = 8's
assert abs(f64[1] - 10000 ** (-2 / 64)) < 1e-6 and f64[1] > 0.7                 # d = 64 decays much more slowly
reveal(p_freq, measured=f64[1], tolerance=0.1)

# %% [markdown]
# So the list is right for an 8-dimensional head only. Every head size gives a geometric sequence
# from 1 down to about 1/θ, but spread over d/2 steps: the ratio between neighbours is θ^(−2/d), 0.75
# for d = 64. The fast pairs turn many times within a sentence; the slowest turn less than once in
# thousands of positions. Keep the slow ones in mind: they matter in section 4.
#
# ## 3. "Only depends on m − n": what it does and does not mean (S000-Q7.2)
#
# Write pair i of q and k as complex numbers. Its contribution to the score is
# Re(q_i · conj(k_i) · e^{i(m−n)f_i}) = |q_i||k_i| cos(φ_i + (m−n) f_i), where φ_i is the angle
# between the two pairs: content. The complex product is a clean product of a content factor and a
# position factor. But the score is its *real part*, and cos(a + b) = cos a cos b − sin a sin b is a
# sum of two products, not one; summing over the d/2 pairs adds more. So content and offset are
# entangled inside the cosine, not multiplied.
#
# A test that needs no algebra: build the matrix S[c, r] of scores for many content pairs c = (q, k)
# and offsets r. If the score were "content similarity × relative position", S would be an outer
# product, rank 1.

# %%
p_rank = predict("S000-Q7.2", "Scores of 300 random (q, k) pairs at offsets 0..255, head_dim 64: the rank of that "
                 "300 × 256 matrix is ...", choices=["1", "2", "between 3 and 64", "256"])

# %%
gs = torch.Generator().manual_seed(1)
OFFSETS = range(256)
sep = {}
for d in (2, 8, 64):
    qs = torch.randn(300, d, generator=gs, dtype=torch.float64)
    ks = torch.randn(300, d, generator=gs, dtype=torch.float64)
    S = ra.content_offset_matrix(qs, ks, OFFSETS)
    sep[d] = ra.separability(S)
    parts = ra.pair_scores(qs[0], ks[0], 5)
    assert abs(parts["contribution"].sum().item() - S[0, 5].item()) < 1e-4 * (1 + abs(S[0, 5].item()))
    print(f"d = {d:2d}: numerical rank {sep[d]['numerical_rank']:2d}, best rank-1 fit explains "
          f"{sep[d]['rank1_energy']:.0%} (effective rank {sep[d]['effective_rank']:.1f})")

fig, ax = plt.subplots()
for d, s in sep.items():
    sv = s["singular_values"]
    ax.semilogy(range(1, 41), (sv / sv[0])[:40].clamp(min=1e-17), "o-", ms=3, label=f"head_dim {d}")
ax.set(xlabel="singular value index", ylabel="σ_k / σ_1", title="A product f(content)·g(offset) would stop at k = 1")
ax.legend();

# %%
assert sep[2]["numerical_rank"] == 2 and sep[8]["numerical_rank"] == 8    # two per rotating pair, never 1
assert all(s["rank1_energy"] < 0.9 for s in sep.values())
assert 3 <= sep[64]["numerical_rank"] <= 64
rank1_64 = sep[64]["rank1_energy"]
assert 0.3 < rank1_64 < 0.7, "a product form explains about half of the d = 64 score matrix, no more"
reveal(p_rank, measured=str(sep[64]["numerical_rank"]), answer="between 3 and 64")
print(f"d = 64: rank {sep[64]['numerical_rank']}; the best product f(content)·g(offset) explains {rank1_64:.0%} "
      f"of the matrix (d = 8: {sep[8]['rank1_energy']:.0%}, d = 2: {sep[2]['rank1_energy']:.0%})")

# %% [markdown]
# Even one rotating pair (d = 2) gives rank 2: the real score is never content × offset. With d = 64 the
# rank is close to 64 (two per pair; the slowest pairs barely move over 256 offsets, so a few singular
# values are tiny), and the best product form explains the share printed above, about half. What RoPE does
# guarantee is weaker and still useful: *for fixed content*, the score depends on the offset alone.
#
# **Long-range decay.** The RoPE paper shows a bound on |score| that shrinks with distance (for content
# held fixed). Two views: the paper's bound, and the score between two identical constant vectors.

# %%
dist = list(range(0, 1024, 4))
bound = ra.decay_bound(64, dist)
same = ra.constant_vector_score(64, dist)
mean_abs = S.abs().mean(0)                  # random content, d = 64, offsets 0..255 (from above)
fig, ax = plt.subplots()
ax.plot(dist, bound / bound[0], label="RoFormer bound (normalised)")
ax.plot(dist, same, label="score of q = k = 1 (normalised)")
ax.plot(list(OFFSETS), mean_abs / mean_abs[0], label="mean |score|, random q, k")
ax.set(xlabel="relative distance", ylabel="relative size", title="RoPE's long-range decay, head_dim 64, θ = 10⁴")
ax.legend();
near, far = bound[: 8].mean().item(), bound[len(dist) // 2:].mean().item()
print(f"bound: mean over distance < 32: {near / bound[0]:.2f}, over 512..1024: {far / bound[0]:.2f}; "
      f"random content: mean |score| at offset 255 / offset 0 = {(mean_abs[-1] / mean_abs[0]).item():.2f}")
assert far < 0.5 * near

# %% [markdown]
# The bound and the aligned-vector score do fall with distance (with ripples, not monotonically). For
# random, unaligned content the typical |score| does not decay at all: the decay describes how much a
# consistent alignment between q and k can add up, not a built-in penalty on distance.
#
# ## 4. Past the training length (S000-Q7.1: "extrapolates naturally to any length"?)
#
# Now the real test. We train two small character-level language models on the King James Bible
# (a 60-odd symbol vocabulary lets a tiny model learn real structure in seconds), identical except for
# the position scheme: RoPE, and a learned absolute table. Both see sequences of length L only. Then
# we measure the loss at every position of sequences 4L long.
#
# The learned table is given 4L rows so that it *can* run on long inputs; rows L … 4L−1 are simply never
# used in training.

# %%
L = by_budget(fast=32, full=64)
STEPS = by_budget(fast=200, full=1500)
SIZE = by_budget(fast=dict(dim=64, n_layers=2, n_heads=4, ffn_dim=176),
                 full=dict(dim=128, n_layers=4, n_heads=4, ffn_dim=352))
SCHEMES = by_budget(fast=["rope", "learned"], full=["rope", "learned", "none", "alibi"])
N_EVAL = by_budget(fast=160, full=512)

docs = load_corpus("kjv", max_chars=by_budget(fast=300_000, full=2_000_000))
train_docs, val_docs = train_val_split(docs, 0.1)
tok = CharTokenizer.from_texts(docs)
train_data = PackedDataset(train_docs, tok, block_size=L)
val_long = PackedDataset(val_docs, tok, block_size=4 * L)
eval_ids = torch.stack([torch.cat([val_long[i]["input_ids"], val_long[i]["labels"][-1:]])
                        for i in range(min(N_EVAL, len(val_long)))])
print(f"vocabulary {tok.vocab_size}, train blocks of L = {L}: {len(train_data)}, eval: {tuple(eval_ids.shape)}")

# %%
p_extra = predict("S000-Q7.1", "The RoPE model trained at length L: its loss at positions 3L..4L, compared with "
                  "its loss at positions L/2..L, is ...",
                  choices=["about the same", "clearly higher", "lower"])

# %%
# NBVAL_IGNORE_OUTPUT
models, curves, init_pos = {}, {}, {}
for scheme in SCHEMES:
    cfg = ModelConfig(vocab_size=tok.vocab_size, n_kv_heads=SIZE["n_heads"], max_seq_len=4 * L if scheme == "learned" else L,
                      pos=scheme, rope_theta=1e4, **SIZE)
    torch.manual_seed(0)
    model = Transformer(cfg)
    if scheme == "learned":
        init_pos = model.pos_embed.weight.detach().clone()
    Trainer(model, train_data, TrainConfig(batch_size=32, max_steps=STEPS, lr=5e-3, warmup_steps=10, weight_decay=0.0,
                                           log_every=0, progress=False, seed=0)).fit()
    models[scheme] = model.eval()
    curves[scheme] = per_position_loss(model, eval_ids)
    print(f"{scheme:8s}: loss within L {curves[scheme][L // 2:L].mean():.3f}, at 3L..4L {curves[scheme][3 * L:].mean():.3f}")

# %%
def band(curve, lo, hi):
    return curve[lo:hi].mean().item()


def smoothed(curve, w=8):
    """Moving average over w positions (for plotting only): (positions, values)."""
    vals = torch.nn.functional.avg_pool1d(curve[None, None].float(), w, 1)[0, 0]
    return torch.arange(len(vals)) + (w + 1) / 2, vals


inside = {s: band(c, L // 2, L) for s, c in curves.items()}
far = {s: band(c, 3 * L, 4 * L) for s, c in curves.items()}
ratio = {s: far[s] / inside[s] for s in curves}
moved = (models["learned"].pos_embed.weight.detach().cpu() - init_pos).abs().amax(dim=1)
print("far / inside loss:", {s: round(r, 2) for s, r in ratio.items()})
print(f"learned table: rows < L moved by up to {moved[:L].max():.3f}; rows ≥ L by {moved[L:].max():.1e}")

fig, ax = plt.subplots()
for s, c in curves.items():
    ax.plot(*smoothed(c), label=s)
ax.axvline(L, color="grey", ls="--", label="training length L")
ax.set(xlabel="position", ylabel="next-token loss (nats, 8-position average)", title=f"Trained at L = {L}, evaluated to 4L")
ax.legend();

# %%
assert moved[L:].max() == 0 and moved[:L].min() > 0      # the table's rows past L never received a gradient
assert ratio["rope"] > 1.05, ratio                        # RoPE does not extrapolate "naturally"
if budget() == "full":                                    # the learned table fails too once it is really used
    assert ratio["learned"] > 1.05, ratio
reveal(p_extra, measured=f"x{ratio['rope']:.2f}", answer="clearly higher" if ratio["rope"] > 1.05 else "about the same")
lead_inside, lead_far = inside["learned"] - inside["rope"], far["learned"] - far["rope"]
kept = lead_far / lead_inside if lead_inside > 0 else float("nan")
if budget() == "fast":      # (under the full budget the learned table breaks past L too, asserted above)
    assert lead_inside > 0 and kept < 0.5, "far out, RoPE keeps less than half of its lead within L"
print(f"RoPE's lead over the learned table: {lead_inside:.3f} nats within L, {lead_far:.3f} at 3L..4L: "
      f"it keeps {kept:.0%} of its lead" + (" (the learned table is ahead far out)" if lead_far < 0 else ""))

# %% [markdown]
# RoPE's loss climbs once the positions pass L, and far out its lead over the model whose positions
# barely work shrinks to the share printed above. The relative-offset property is exact, so why? Because
# the *offsets* are new too: a query at position 3L sees keys up to 3L away, and the slow pairs of
# section 2 now sit at angles the model never saw in training. The learned table's rows past L are
# still exactly at their random initial values (asserted above). With the fast budget that model has
# barely started to rely on positions, so its curve is flat but high; under the full budget, once it
# has learned to use its table, it breaks past L as well. This matches the literature: Press et al.
# (2022) measured sinusoidal and rotary models degrading past their training length and designed ALiBi
# to avoid it; position interpolation (Chen et al. 2023), NTK-aware scaling and YaRN (Peng et al. 2023)
# exist because RoPE models do *not* extend by themselves. MiniMind ships YaRN scaling for that reason.
#
# ## 5. Stretching RoPE at inference
#
# Those fixes change the frequencies, not the weights, so we can try them on the trained RoPE model:
# position interpolation (PI) divides every frequency by the stretch factor s (positions squeezed back
# into the trained range); NTK-aware scaling raises the base so the slowest pair is divided by s while
# the fastest is kept; YaRN interpolates only the slow pairs and keeps the fast ones.

# %%
# NBVAL_IGNORE_OUTPUT
scaled = {"rope": curves["rope"]}
for method in ("pi", "ntk", "yarn"):
    cfg = models["rope"].config.replace(rope_scaling=method, rope_scaling_factor=4.0, rope_original_max_seq_len=L)
    stretched = Transformer(cfg)
    stretched.load_state_dict(models["rope"].state_dict())
    scaled[method] = per_position_loss(stretched.eval(), eval_ids)
for m, c in scaled.items():
    print(f"{m:5s}: within L {band(c, L // 2, L):.3f}, L..2L {band(c, L, 2 * L):.3f}, 3L..4L {band(c, 3 * L, 4 * L):.3f}")
fig, ax = plt.subplots()
for m, c in scaled.items():
    ax.plot(*smoothed(c), label=m if m != "rope" else "RoPE as trained")
ax.axvline(L, color="grey", ls="--")
ax.set(xlabel="position", ylabel="next-token loss (nats, 8-position average)",
       title="Same weights, frequencies stretched by 4 (no fine-tuning)")
ax.legend();

# %%
yarn_far, rope_far = band(scaled["yarn"], 3 * L, 4 * L), band(scaled["rope"], 3 * L, 4 * L)
pi_inside = band(scaled["pi"], L // 2, L)
assert yarn_far < rope_far, (yarn_far, rope_far)          # keeping fast pairs, stretching slow ones helps far out
assert pi_inside > inside["rope"]                          # plain interpolation costs accuracy inside L without fine-tuning
# the share of RoPE's far-range excess (loss at 3L..4L above its loss within L) that each method removes
recovered = {m: (rope_far - band(scaled[m], 3 * L, 4 * L)) / (rope_far - inside["rope"]) for m in ("pi", "ntk", "yarn")}
ntk_inside = band(scaled["ntk"], L // 2, L)
assert recovered["yarn"] > 0.5, "YaRN removes most of the far-range excess"
assert recovered["ntk"] < recovered["yarn"], "NTK removes less of it than YaRN"
assert ntk_inside < 1.05 * inside["rope"] < pi_inside, "NTK keeps the fast pairs: within L almost nothing changes"
word = {m: "most" if r > 0.5 else "some" if r > 0.15 else "little" for m, r in recovered.items()}
print("share of the far-range excess (3L..4L vs within L) removed:",
      ", ".join(f"{m} {r:.0%} ({word[m]})" for m, r in recovered.items()))
head_dim = models["rope"].config.head_dim
stretch = ra.inv_frequencies(head_dim, 1e4) / ra.inv_frequencies(head_dim, 1e4, scaling="ntk", factor=4.0)
mid = [i for i, f in enumerate(ra.inv_frequencies(head_dim, 1e4).tolist()) if L < 2 * math.pi / f < 16 * L]
print(f"NTK's stretch of the pairs with wavelength between L and 16L (pairs {mid}): "
      + ", ".join(f"x{stretch[i]:.2f}" for i in mid) + " (PI and YaRN: x4)")

# %% [markdown]
# Without any fine-tuning, plain interpolation costs accuracy inside L (the fast pairs now turn 4 times
# too slowly, which blurs the short-range patterns the model relies on). NTK and YaRN keep the fast
# pairs, so inside L they cost little; far out they differ, by the shares printed above. YaRN
# interpolates every slow pair fully; NTK's raised base stretches a pair the more, the slower it is,
# so the pairs whose wavelengths lie just past L (the ones whose angles are new at 3L..4L) are
# stretched by much less than 4 (printed above), and with a small head there are few pairs at all. With a short fine-tune at the new length (what the papers do),
# all three improve further.
#
# ## Claims

# %%
claims_table([
    Claim("S000-Q7", "RoPE performs better (than absolute positions)", "better",
          f"loss within L: RoPE {inside['rope']:.3f} vs learned {inside['learned']:.3f} ({STEPS} steps, same size)",
          holds=inside["rope"] < inside["learned"],
          verdict="holds at this scale" if inside["rope"] < inside["learned"] else "does not hold here"),
    Claim("S000-Q7.1", "the original Transformer's absolute encoding is nn.Embedding(max_seq_len, hidden)", "learned table",
          "history, not measured", holds=None, verdict="does not hold: it used fixed sinusoids",
          citation="Vaswani et al. 2017, sec. 3.5; learned positions were a variant with nearly equal results (Table 3, row E)"),
    Claim("S000-Q7.1", "learned position rows past the training length are never trained", "never trained",
          f"rows ≥ L changed by {moved[L:].max():.1e}; far/inside loss x{ratio['learned']:.2f}", holds=moved[L:].max() == 0),
    Claim("S000-Q7.1", "freqs = 1/10000^(2i/d) = [1.0, 0.1, 0.01, 0.001, ...]", "[1, 0.1, 0.01, 0.001]",
          "d=64: [" + ", ".join(f"{x:.3f}" for x in f64[:4]) + ", ...]", holds=abs(f64[1] - 0.1) < 1e-3,
          verdict="holds only for head_dim 8"),
    Claim("S000-Q7.1", "q_i·k_j = f(i − j): 1000/1001 relate like 100/101", "exact",
          f"relative error {res['relative_shift_error']:.0e} under shifts up to 3000", holds=res["relative_shift_error"] < 1e-5),
    Claim("S000-Q7.1", "RoPE extrapolates naturally to any length", "any length",
          f"loss at 3L..4L is x{ratio['rope']:.2f} the loss within L (L = {L}); YaRN x4 at inference: x{yarn_far / inside['rope']:.2f}",
          holds=ratio["rope"] < 1.05,
          citation="Press et al. 2022 (ALiBi); Chen et al. 2023 (position interpolation); Peng et al. 2023 (YaRN)"),
    Claim("S000-Q7.2", "rotate(q_i·k_j, θ_i − θ_j)", "rotation of the score",
          f"the identity is ⟨R_m q, R_n k⟩ = qᵀR_(n−m)k (checked to {res['relative_matrix_error']:.0e})",
          holds=None, verdict="notation wrong, idea right",
          citation="Su et al. 2021 (RoFormer), eq. 16: the identity holds for the rotated vectors, not the score"),
    Claim("S000-Q7.2", "score = content similarity × relative position, perfectly decoupled", "rank 1",
          f"rank {sep[64]['numerical_rank']} at d=64 (2 at d=2); a product explains {sep[64]['rank1_energy']:.0%}",
          holds=sep[64]["numerical_rank"] == 1),
])

# %% [markdown]
# **What this can and cannot show.** The rotation identity, the frequencies and the rank test are
# exact. The length experiment uses two small character models trained at L = 32 for 200 steps (L = 64,
# 1500 steps, plus no-position and ALiBi models under the full budget); at the fast budget the learned
# table is barely used, so its flat curve says little about learned positions in general. The
# stretching methods are applied without the fine-tuning their papers use, so the shares they recover
# here are a lower bound on what they do in practice.
#
# ## The essence

# %%
essence("""
RoPE turns each pair of query/key dimensions by an angle proportional to the position, so a query at m
and a key at n meet at the angle of m − n: for fixed content the score depends on the offset alone,
exactly. That is all the rotation promises. It does not make content and position independent (the score
is the real part of a product, a cosine of content angle plus offset angle), and it does not make a
model work at lengths it never saw: longer inputs bring offsets, and angles of the slow pairs, that
training never produced, and the loss climbs. A learned table fails more bluntly, since its rows past
the training length are untouched noise. Extending a RoPE model means changing its frequencies (PI,
NTK, YaRN) and, ideally, fine-tuning at the new length.
""")

# %% [markdown]
# ## Exercises
#
# **1.** MiniMind uses θ = 10⁶ and head_dim 64 with a 512-token context. How many of its 32 rotating
# pairs complete at least one full turn within 512 positions? And with θ = 10⁴?

# %% tags=["solution"] jupyter={"source_hidden": true}
# Solution. A pair completes a turn when its wavelength 2π/f_i is at most 512.
for theta in (1e6, 1e4):
    rows = ra.frequency_table(64, theta, train_len=512)
    full_turns = sum(r["turns_in_train_len"] >= 1 for r in rows)
    print(f"θ = {theta:g}: {full_turns} of 32 pairs turn at least once in 512 positions")
    assert full_turns == sum(2 * math.pi / r["freq"] <= 512 for r in rows)

# %% [markdown]
# **2.** A rotation never changes a vector's length, and at offset 0 RoPE leaves the score equal to
# plain q·k. Check both with the library's `apply_rope` at a few positions.

# %% tags=["solution"] jupyter={"source_hidden": true}
# Solution.
norm_err = max(abs(ra.rope_rotate(q, pos).norm() - q.norm()).item() for pos in (0, 5, 999))
offset0_err = max(abs(ra.rope_score(q, k, pos, pos) - float(q @ k)) for pos in (0, 5, 999))
print(f"largest change of |q| under rotation {norm_err:.1e}; largest |score(m, m) - q·k| {offset0_err:.1e}")
assert norm_err < 1e-4 and offset0_err < 1e-4, "rotations keep lengths, and at offset 0 the score is plain q·k"

# %% [markdown]
# **3.** NTK-aware scaling by a factor s raises the base so that the slowest frequency is divided by s and
# the fastest is unchanged. Confirm this on the library's frequencies for s = 4, and compare with PI.

# %% tags=["solution"] jupyter={"source_hidden": true}
# Solution.
base = ra.inv_frequencies(64, 1e4)
ntk = ra.inv_frequencies(64, 1e4, scaling="ntk", factor=4.0)
pi = ra.inv_frequencies(64, 1e4, scaling="pi", factor=4.0)
print(f"fastest: base {base[0]:.3f}, NTK {ntk[0]:.3f}, PI {pi[0]:.3f}; slowest: base {base[-1]:.2e}, "
      f"NTK {ntk[-1]:.2e} (base/4 = {base[-1] / 4:.2e}), PI {pi[-1]:.2e}")
assert abs(ntk[0] - base[0]) < 1e-6 and abs(ntk[-1] / (base[-1] / 4) - 1) < 1e-4
assert torch.allclose(pi, base / 4)
