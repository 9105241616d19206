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
# # 16 Pre-LN vs Post-LN, and RMSNorm
#
# The original Transformer normalised *after* adding the sublayer's output, `x = LN(x + F(x))`
# (Post-LN). GPT-2 and almost every later decoder normalise the sublayer's *input* instead,
# `x = x + F(LN(x))` (Pre-LN). This notebook measures what the placement changes: gradient norms per
# layer at initialisation, the size of the residual stream, and whether training diverges across a
# grid of depth, warmup and learning rate. It ends with LayerNorm against RMSNorm.
#
# ## The questions
#
# **S001-Q18** 「Layer Normalization放在残差连接的什么位置？Pre-LN vs Post-LN有何区别？」
# *Where does Layer Normalization go relative to the residual connection? What is the difference
# between Pre-LN and Post-LN?*
#
# **S003-Q18** 「Pre-LN vs Post-LN？」
# *Pre-LN vs Post-LN? (the summary's restatement)*
#
# **The surface answer.** The document agrees with the student that Pre-LN is "more stable" and
# explains: in Post-LN the gradient must pass through every LN, whose gradient "may be very small
# (a saturation region)", so deep Post-LN "vanishes beyond 24 layers" and needs warmup and a small
# learning rate, while Pre-LN "can be trained directly". It cites Xiong et al. 2020 as finding "Post-LN
# collapses at 100 layers, Pre-LN is stable at 100 layers", says that Post-LN is "theoretically
# slightly better" in final quality but "the difference is < 0.1% in practice", and that after 2020
# "almost all" large models (the summary: "all large models") use Pre-LN.
#
# We test the mechanism (is there an LN saturation region? where are the gradients large?), count
# divergence over a grid instead of describing it, and put the history claims next to their sources.

# %%
import math

import torch
from torch import nn

from course_lib import ModelConfig, TrainConfig, Transformer
from course_lib.data import packed_splits
from course_lib.lab import viz
from course_lib.lab import propagation as prop
from course_lib.lab import stability
from course_lib.lab.budget import budget, by_budget, set_budget_threads
from course_lib.lab.measure import median_time, unigram_entropy_bits
from course_lib.lab.socratic import Claim, claims_table, essence, predict, reveal
from course_lib.norm import RMSNorm

viz.setup()
import matplotlib.pyplot as plt  # noqa: E402

threads = set_budget_threads()
print("budget:", budget(), "| torch threads:", threads)
torch.manual_seed(0)

# %%
SEQ = by_budget(fast=32, full=64)
DIM = by_budget(fast=32, full=64)
tok, train, val = packed_splits("kjv", SEQ, max_chars=by_budget(fast=200_000, full=2_000_000))
probe_ids = torch.stack([train[i]["input_ids"] for i in range(8)])
probe_labels = torch.stack([train[i]["labels"] for i in range(8)])
unigram_nats = unigram_entropy_bits(train.tokens, tok.vocab_size) * math.log(2)
uniform_nats = math.log(tok.vocab_size)
print(f"{len(train)} blocks of {SEQ} characters (King James Bible); unigram entropy {unigram_nats:.3f} nats, "
      f"uniform guessing log V = {uniform_nats:.3f} nats")


def cfg_for(**kw):
    # Untied input and output embeddings: section 4 measures why (tied Post-LN stalls in this model).
    base = dict(vocab_size=tok.vocab_size, dim=DIM, n_layers=4, n_heads=4, n_kv_heads=4, ffn_dim=2 * DIM,
                max_seq_len=SEQ, tie_embeddings=False)
    base.update(kw)
    return ModelConfig.nano(**base)


# %% [markdown]
# ## 1. Is there an "LN saturation region"?
#
# A sigmoid saturates: for large inputs its derivative goes to 0 whatever direction you move. LayerNorm
# is different. Write σ for the standard deviation of x over its d features and x̂ = (x − mean)/σ. Its
# Jacobian (gain 1) is
#
# ∂LN/∂x = (1/σ)·(I − 11ᵀ/d − x̂x̂ᵀ/d),
#
# a projection (it removes the mean direction and the radial direction x̂, the two things LN throws
# away) times 1/σ. So every remaining direction passes with the *same* factor 1/σ: there is no
# region where some inputs get a vanishing gradient and others do not. The only thing that shrinks
# LN's gradient is a large input scale σ, and then uniformly. We check this against autograd.

# %%
p_sat = predict("S001-Q18 saturation",
                "Two inputs with the same standard deviation σ = 4, one ordinary and one with a single huge "
                "feature. Compared with the ordinary one, LayerNorm's gradient for the spiky input is ...",
                choices=["much smaller (saturated)", "the same size", "much larger"])

# %%
d = 64
g = torch.Generator().manual_seed(0)
ordinary = torch.randn(d, generator=g, dtype=torch.float64)
spiky = torch.randn(d, generator=g, dtype=torch.float64) * 0.1
spiky[0] = 30.0
# eps = 0 so that the formula above is exact (with the usual eps = 1e-5 the removed directions keep a
# derivative of order eps/σ³ instead of exactly 0).
ln = nn.LayerNorm(d, eps=0.0, elementwise_affine=False, dtype=torch.float64)
rms = nn.RMSNorm(d, eps=0.0, elementwise_affine=False, dtype=torch.float64)
sv = {}
for name, x in (("ordinary", ordinary), ("spiky", spiky)):
    x = 4.0 * (x - x.mean()) / x.std(correction=0)                 # both: mean 0, std exactly 4
    sv[("LN", name)] = torch.linalg.svdvals(torch.autograd.functional.jacobian(ln, x))
    sv[("RMS", name)] = torch.linalg.svdvals(torch.autograd.functional.jacobian(rms, x))
for key, s in sv.items():
    print(f"{key[0]:>3} {key[1]:>8}: largest σ {float(s[0]):.4f} (1/4 = 0.25), #singular values = 0: "
          f"{int((s < 1e-9).sum())}, spread of the nonzero ones {float(s[s > 1e-9].max() / s[s > 1e-9].min()):.6f}")

# %%
ln_same = abs(float(sv[("LN", "spiky")][0]) - float(sv[("LN", "ordinary")][0])) < 1e-9
ln_flat = all(float(s[s > 1e-9].max() / s[s > 1e-9].min()) < 1 + 1e-9 for k, s in sv.items() if k[0] == "LN")
assert ln_same and ln_flat and abs(float(sv[("LN", "ordinary")][0]) - 0.25) < 1e-6
assert all(int((s < 1e-9).sum()) == 2 for k, s in sv.items() if k[0] == "LN")    # mean and radial direction
reveal(p_sat, measured=f"largest singular value {float(sv[('LN', 'spiky')][0]):.4f} vs "
       f"{float(sv[('LN', 'ordinary')][0]):.4f}", answer="the same size" if ln_same else "much smaller (saturated)",
       note="LN's gradient is 1/σ times a projection: no saturation region, only a uniform 1/σ.")

# %% [markdown]
# The printed spreads are 1 to rounding: LN passes every kept direction with exactly 1/σ, and
# removes two directions exactly (RMSNorm removes only the radial one, its singular values are 1/RMS
# except where the input's own direction is projected out). The real mechanism in Post-LN is this
# 1/σ: after `x + F(x)` the sum has σ > 1 whenever F adds something, so each LN divides the gradient
# flowing down the stream by σ. That is what Xiong et al. 2020 analyse.
#
# ## 2. Gradient norms per layer at initialisation (Xiong-style)
#
# Xiong et al. 2020 (Fig. 3, Theorem 1) show, for Post-LN with Xavier-initialised weights, gradient norms
# that are large for the layers near the output, and for Pre-LN norms that are the same in every layer
# and shrink like 1/√L. We measure the parameter-gradient norm of every block at depth 6 and 24, for two
# initialisations: the course default (std 0.02, output projections scaled by 1/√(2L), GPT-2 style)
# and a Xavier-scale std 1/√d with which F(x) is as large as x.

# %%
p_xiong = predict("S001-Q18 gradients",
                  "At Xavier-scale init, which placement has the larger ratio between its largest and smallest "
                  "per-block gradient norm at depth 24?",
                  choices=["Pre-LN", "Post-LN", "about equal"])

# %%
INITS = {"default 0.02": 0.02, f"Xavier 1/√{DIM}": 1 / math.sqrt(DIM)}
grad_traces = {}
for init_name, std in INITS.items():
    for depth in (6, 24):
        for place in ("pre", "post"):
            torch.manual_seed(0)
            model = Transformer(cfg_for(n_layers=depth, norm_placement=place, init_std=std))
            grad_traces[(init_name, depth, place)] = prop.signal_trace(model, probe_ids, probe_labels)
spread = {k: max(t.param_grad) / min(t.param_grad) for k, t in grad_traces.items()}
for k, t in grad_traces.items():
    print(f"{k[0]:>14}, depth {k[1]:>2}, {k[2]:>4}-LN: block 0 {t.param_grad[0]:.3f}, last {t.param_grad[-1]:.3f}, "
          f"max/min {spread[k]:.2f}")

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 3.4), sharey=True)
for ax, init_name in zip(axes, INITS):
    for place, color in (("pre", "C0"), ("post", "C3")):
        for depth, style in ((6, "--"), (24, "-")):
            t = grad_traces[(init_name, depth, place)]
            ax.plot([i / (depth - 1) for i in range(depth)], t.param_grad, style, color=color, marker=".",
                    label=f"{place}-LN, L={depth}")
    ax.set(yscale="log", xlabel="relative depth of the block (0 = input side, 1 = output side)",
           ylabel="‖∂loss/∂θ_block‖ (nats per unit weight)", title=f"Per-block gradient at init, {init_name}")
    ax.legend(fontsize=7)
fig.tight_layout();

# %%
xav = list(INITS)[1]
pre_s, post_s = spread[(xav, 24, "pre")], spread[(xav, 24, "post")]
answer = "Pre-LN" if pre_s > 1.5 * post_s else "Post-LN" if post_s > 1.5 * pre_s else "about equal"
post_top_heavy = grad_traces[(xav, 24, "post")].param_grad[-1] > grad_traces[(xav, 24, "post")].param_grad[0]
default_flat = max(spread[(list(INITS)[0], 24, p)] for p in ("pre", "post"))
print(f"Xavier init, depth 24: max/min Pre-LN {pre_s:.2f}, Post-LN {post_s:.2f}; Post-LN larger at the output "
      f"side: {post_top_heavy}; default init: largest max/min {default_flat:.2f}")
assert all(s < 1e6 and s >= 1 for s in spread.values())
reveal(p_xiong, measured=f"max/min per-block gradient: Pre-LN {pre_s:.2f}, Post-LN {post_s:.2f}", answer=answer,
       note="Compare with Xiong et al.'s Fig. 3: the pattern depends on the initialisation and on details "
            "(scaled output projections, the embedding scale) that their analysis does not include.")

# %% [markdown]
# Read the printed numbers rather than the textbook picture. With the course's GPT-2-style
# initialisation both placements give nearly flat per-block gradients (max/min printed above):
# the 1/√(2L) scaling keeps every branch small, so neither the stream nor the LNs change much from
# block to block. At Xavier scale the branches are as large as the stream and the placements differ;
# whether the large gradients sit at the output side, as in Xiong et al., is the `post_top_heavy`
# flag above. The general lesson holds either way: the per-layer gradient profile at init is a property
# of placement *and* initialisation, which is why Xiong et al. state their theorem for one init.
#
# ## 3. The residual stream under Pre-LN
#
# In Pre-LN nothing normalises the stream itself: each block adds F(LN(x)) to it, so its RMS can only
# be held in check by small branches. Post-LN re-normalises it to RMS 1 after every sublayer.

# %%
p_rms = predict("S001-Q18 stream",
                "In a 24-block Pre-LN model at Xavier-scale init, the RMS of the residual stream after the last "
                "block compared with the embedding's RMS is ...",
                choices=["about the same", "a few times larger", "smaller"])

# %%
stream_pre = {name: grad_traces[(name, 24, "pre")].stream_rms for name in INITS}
stream_post = {name: grad_traces[(name, 24, "post")].stream_rms for name in INITS}
growth = {name: s[-1] / s[0] for name, s in stream_pre.items()}
fig, ax = plt.subplots(figsize=(6.4, 3.4))
for name, s in stream_pre.items():
    ax.plot(s, marker=".", label=f"Pre-LN, {name}")
for name, s in stream_post.items():
    ax.plot(s, ls="--", label=f"Post-LN, {name}")
ax.set(yscale="log", xlabel="block boundary (0 = embedding)", ylabel="RMS of the residual stream (a.u.)",
       title="Residual-stream RMS through 24 blocks at init")
ax.legend(fontsize=7);
print("Pre-LN stream growth, last/first:", {k: round(v, 2) for k, v in growth.items()})

# %%
post_rms_one = all(abs(s[-1] - 1) < 0.01 for s in stream_post.values())
assert post_rms_one                                     # Post-LN: the last norm fixes the RMS at 1
g_x = growth[xav]
reveal(p_rms, measured=f"last/first RMS {g_x:.2f} (default init {growth[list(INITS)[0]]:.2f})",
       answer="a few times larger" if g_x > 1.5 else ("smaller" if g_x < 0.67 else "about the same"),
       note="Pre-LN adds every branch to an unnormalised stream; the 1/√(2L) output scaling holds it flat at "
            "the default init, and training can still grow it (section 4 measures that).")

# %% [markdown]
# ## 4. Divergence over a grid: depth × warmup × learning rate, Pre-LN vs Post-LN
#
# Each grid point trains the same data for the same number of steps, with AdamW and **no gradient
# clipping** (clipping would hide the instability we are looking for), over several seeds. A run is
# counted as failed by the rule in `stability.judge`: its loss became NaN/inf, or its final loss is no
# better than log V, the loss of guessing uniformly (where every run starts): a run that blew up and
# stayed up, or never learned anything. The rule prints its reason, so the two are told apart. A run
# that merely learns slowly is not a failure; it shows up in the final loss instead.
#
# One design choice first. The course model ties the output head to the input embedding by default.
# With Post-LN that combination stalls in this model: we measured it while building the notebook, and
# the next cell measures it again (Post-LN, tied vs untied, the fast grid's deepest stack). Every
# model in this section and section 2 is therefore untied, for both placements.

# %%
GRID_DEPTHS = by_budget(fast=[2, 4], full=[6, 24])
GRID_LRS = by_budget(fast=[1e-2, 1e-1], full=[1e-3, 3e-2])
WARMUPS = by_budget(fast=[0, 20], full=[0, 100])
GRID_STEPS = by_budget(fast=60, full=400)
SEEDS = by_budget(fast=[0, 1], full=[0, 1, 2])
points = [{"place": p, "depth": L, "warmup": w, "lr": lr}
          for p in ("pre", "post") for L in GRID_DEPTHS for w in WARMUPS for lr in GRID_LRS]


def build(point, seed):
    torch.manual_seed(seed)
    model = Transformer(cfg_for(n_layers=point["depth"], norm_placement=point["place"],
                                norm_type=point.get("norm", "rmsnorm"), tie_embeddings=point.get("tied", False)))
    return model, train, TrainConfig(batch_size=16, max_steps=GRID_STEPS, lr=point["lr"], warmup_steps=point["warmup"],
                                     grad_clip=None, seed=seed, progress=False, log_every=0)


# %%
tie_runs = stability.grid_outcomes([{"tied": True}, {"tied": False}], SEEDS,
                                   lambda p, seed: build({"place": "post", "depth": max(GRID_DEPTHS), "warmup": max(WARMUPS),
                                                          "lr": min(GRID_LRS), **p}, seed), fail_above=uniform_nats)
tie_table = stability.summarize(tie_runs, ["tied"])
tie_cmp = stability.compare(tie_table, (False,), (True,))
print(f"Post-LN, {max(GRID_DEPTHS)} blocks, lr {min(GRID_LRS):.0e}:",
      {f"tied={k[0]}": round(v["mean"], 3) if v["mean"] is not None else None for k, v in tie_table.items()},
      "| untied vs tied:", tie_cmp, f"| unigram entropy {unigram_nats:.3f}")

# %% [markdown]
# When the untied model ends lower by more than the seed range ("a better" above), the tied one is
# stuck near the unigram entropy: it has learned character frequencies and nothing else. We did not
# chase the cause here (the input embedding, at RMS 0.02, enters a norm that multiplies its gradient by
# about 50, while the same matrix is also the output head); it is an interaction of tying with
# Post-LN in this model, not a property of Post-LN in general.
#
# Now the grid.

# %%
p_grid = predict("S003-Q18 grid",
                 "Deepest stack of the grid, highest learning rate, no warmup: which placement ends with the lower "
                 "loss (decided by a margin at least the seed range)?",
                 choices=["Pre-LN", "Post-LN", "about equal"])

# %%
runs = stability.grid_outcomes(points, SEEDS, build, fail_above=uniform_nats)
grid = stability.summarize(runs, ["place", "depth", "warmup", "lr"])
print(f"{'place':>5} {'depth':>5} {'warmup':>6} {'lr':>7}  failed  final loss (mean, seed range)")
for (place, depth, warmup, lr), row in grid.items():
    loss = f"{row['mean']:.3f} ({row['min']:.3f}..{row['max']:.3f})" if row["mean"] is not None else "n/a"
    print(f"{place:>5} {depth:>5} {warmup:>6} {lr:>7.0e}  {row['diverged']}/{row['runs']}    {loss}")
nan_runs = [o for o in runs if o.diverged and "non-finite" in o.reason]
plateau_runs = [o for o in runs if o.diverged and "non-finite" not in o.reason]
print(f"failed runs: {len(nan_runs)} by NaN/inf, {len(plateau_runs)} ended no better than uniform guessing; "
      f"largest loss spike above the running minimum: {max(o.max_rise for o in runs):.2f} nats")

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 3.4), sharey=True)
for ax, place in zip(axes, ("pre", "post")):
    for o in runs:
        if o.settings["place"] == place and o.settings["seed"] == SEEDS[0]:
            ax.plot(o.losses, lw=1, label=f"L={o.settings['depth']}, wu={o.settings['warmup']}, lr={o.settings['lr']:.0e}")
    ax.axhline(unigram_nats, color="k", ls="--", lw=1)
    ax.set(xlabel="step", ylabel="training loss (nats/char)", title=f"{place}-LN (seed {SEEDS[0]}); dashed: unigram")
    ax.legend(fontsize=6)
fig.tight_layout();

# %%
hi = max(GRID_LRS)
fails = {p: sum(grid[(p, L, 0, hi)]["diverged"] for L in GRID_DEPTHS) for p in ("pre", "post")}
n_each = len(GRID_DEPTHS) * len(SEEDS)
assert all(row["runs"] == len(SEEDS) for row in grid.values())
deep = max(GRID_DEPTHS)
hi_cmp = stability.compare(grid, ("pre", deep, 0, hi), ("post", deep, 0, hi))
grid_answer = {"a better": "Pre-LN", "b better": "Post-LN"}.get(hi_cmp, "about equal")
hi_means = {p: grid[(p, deep, 0, hi)]["mean"] for p in ("pre", "post")}
hi_text = ", ".join(f"{p}-LN {m:.3f}" if m is not None else f"{p}-LN all failed" for p, m in hi_means.items())
reveal(p_grid, measured=f"depth {deep}, lr {hi:.0e}, no warmup, mean final loss: {hi_text}; failed runs Pre {fails['pre']}/{n_each}, "
       f"Post {fails['post']}/{n_each}", answer=grid_answer,
       note="Failures are counted by the stated rule; a loss that jumps back to the unigram plateau and stays "
            "there is not a NaN, but it is what 'unstable' looks like with AdamW.")

# %% [markdown]
# How to read the grid: a failed run either hit a NaN (the instability warmup is meant to prevent) or
# ended no better than uniform guessing. The dashed line in the plot is the unigram entropy: runs
# sitting on it have learned character frequencies but not yet context. Under the fast budget the runs
# are 60 steps long and the deepest stack has 4 blocks, so such a plateau says "slow", not "cannot
# train"; the full budget (depth 6 and 24, 400 steps, 3 seeds) separates slow from unstable.
#
# Does warmup help each placement? We compare, per placement, the best final loss with and without
# warmup at the highest learning rate and the deepest stack, with the margin set by the seed range.

# %%
warm_effect = {p: stability.compare(grid, (p, deep, max(WARMUPS), hi), (p, deep, 0, hi)) for p in ("pre", "post")}
pre_vs_post = stability.compare(grid, ("pre", deep, max(WARMUPS), min(GRID_LRS)), ("post", deep, max(WARMUPS), min(GRID_LRS)))
print(f"depth {deep}, lr {hi:.0e}: warmup vs none -> Pre-LN: {warm_effect['pre']}, Post-LN: {warm_effect['post']}")
print(f"depth {deep}, lr {min(GRID_LRS):.0e}, with warmup: Pre-LN vs Post-LN -> {pre_vs_post}")
best = {p: min((r["mean"] for k, r in grid.items() if k[0] == p and r["mean"] is not None), default=None)
        for p in ("pre", "post")}
best_text = ", ".join(f"{p}-LN {v:.3f}" if v is not None else f"{p}-LN none finished" for p, v in best.items())
print("best final loss over the grid:", best_text)

# %% [markdown]
# Training also changes the stream. We train the deepest Pre-LN stack of the grid once more (seed 0,
# warmup, the highest learning rate) and compare its stream RMS profile with the one at init.

# %%
torch.manual_seed(0)
pre_model = Transformer(cfg_for(n_layers=deep))
rms_init = prop.signal_trace(pre_model, probe_ids, probe_labels).stream_rms
trained = stability.train_and_judge(pre_model, train, build({"place": "pre", "depth": deep, "warmup": max(WARMUPS),
                                                             "lr": hi}, 0)[2], fail_above=uniform_nats)
rms_trained = prop.signal_trace(pre_model, probe_ids, probe_labels).stream_rms
train_growth = (rms_trained[-1] / rms_trained[0]) / (rms_init[-1] / rms_init[0])
print(f"training run: {'failed, ' + trained.reason if trained.diverged else f'final loss {trained.final_loss:.3f}'}")
print(f"Pre-LN depth {deep}: last/first stream RMS at init {rms_init[-1] / rms_init[0]:.2f}, after training "
      f"{rms_trained[-1] / rms_trained[0]:.2f} (embedding RMS {rms_init[0]:.3f} -> {rms_trained[0]:.3f})")

# %% [markdown]
# ## 5. LayerNorm vs RMSNorm
#
# RMSNorm (Zhang & Sennrich 2019) skips the mean subtraction and the bias: y = x / RMS(x) · g. Is it
# faster, and does it cost quality? Speed: one forward and backward of each norm on a training-sized
# activation, timed on this machine (the course's RMSNorm is a hand-written autograd function; torch's
# LayerNorm is a fused kernel, so the comparison includes implementation, not only arithmetic). Quality:
# the same Pre-LN model trained with each norm, over seeds.

# %%
act = torch.randn(16, SEQ, 4 * DIM, requires_grad=True)
norms = {"LayerNorm (torch)": nn.LayerNorm(4 * DIM), "RMSNorm (course)": RMSNorm(4 * DIM)}
times = {name: median_time(lambda m=m: m(act).sum().backward(), repeats=by_budget(fast=30, full=200), warmup=5)
         for name, m in norms.items()}
speed_ratio = times["LayerNorm (torch)"] / times["RMSNorm (course)"]
print({k: f"{v * 1e6:.0f} µs" for k, v in times.items()}, f"LayerNorm/RMSNorm time ratio {speed_ratio:.2f}")

# %%
norm_point = {"place": "pre", "depth": deep, "warmup": max(WARMUPS), "lr": min(GRID_LRS)}
norm_runs = stability.grid_outcomes([{**norm_point, "norm": "layernorm"}], SEEDS, build, fail_above=uniform_nats)
norm_runs += [o for o in runs if all(o.settings[k] == v for k, v in norm_point.items())]
for o in norm_runs:
    o.settings.setdefault("norm", "rmsnorm")
norm_table = stability.summarize(norm_runs, ["norm"])
ln_vs_rms = stability.compare(norm_table, ("layernorm",), ("rmsnorm",))
for (name,), row in norm_table.items():
    print(f"{name:>9}: failed {row['diverged']}/{row['runs']}, final loss "
          + (f"{row['mean']:.3f} ({row['min']:.3f}..{row['max']:.3f})" if row["mean"] is not None else "n/a"))
print("LayerNorm vs RMSNorm:", ln_vs_rms)

# %% [markdown]
# ## Claims

# %%
x_post = torch.randn(SEQ, DIM)
torch.manual_seed(0)
post_model = Transformer(cfg_for(norm_placement="post"))
with torch.no_grad():
    y_post = prop.block_function(post_model, 1, SEQ)(x_post)
post_is_normed = bool(torch.allclose(y_post.pow(2).mean(-1), torch.ones(SEQ), atol=1e-3))
pre_ok_without_warmup = fails["pre"] == 0 and warm_effect["pre"] != "a better"
post_needs_warmup = warm_effect["post"] == "a better" or fails["post"] > 0
xiong_holds = pre_ok_without_warmup and post_needs_warmup
row_pre, row_post = grid[("pre", deep, max(WARMUPS), min(GRID_LRS))], grid[("post", deep, max(WARMUPS), min(GRID_LRS))]
rel_gap = (abs(row_pre["mean"] - row_post["mean"]) / row_post["mean"]
           if row_pre["mean"] is not None and row_post["mean"] is not None else math.inf)
claims_table([
    Claim("S001-Q18", "Post-LN: x = LN(x + F(x)); Pre-LN: x = x + F(LN(x))", "definitions",
          f"a Post-LN block's output has RMS 1 at every position: {post_is_normed}; Pre-LN stream RMS "
          f"grows ×{growth[xav]:.2f} over 24 blocks at Xavier init", holds=post_is_normed),
    Claim("S001-Q18", "LN's gradient can be very small in a 'saturation region'", "saturation",
          f"LN Jacobian = (1/σ)·projection: singular values {float(sv[('LN', 'spiky')][0]):.4f} for a spiky and "
          f"{float(sv[('LN', 'ordinary')][0]):.4f} for an ordinary input of the same σ", holds=not (ln_same and ln_flat),
          verdict="false: no saturation region, only a uniform 1/σ"),
    Claim("S001-Q18", "Xiong et al.: Pre-LN trains without warmup; Post-LN needs it", "warmup matters for Post-LN",
          f"depth {deep}, lr {hi:.0e}: warmup vs none -> Pre-LN {warm_effect['pre']}, Post-LN {warm_effect['post']}; "
          f"failures without warmup Pre {fails['pre']}/{n_each}, Post {fails['post']}/{n_each}",
          holds=xiong_holds,
          verdict=None if xiong_holds else (
              f"partly: Pre-LN fine without warmup ({pre_ok_without_warmup}); Post-LN helped by "
              f"{max(WARMUPS)} warmup steps ({post_needs_warmup}); Pre vs Post at lr {hi:.0e}: {hi_cmp}"),
          citation="Xiong et al. 2020, On Layer Normalization in the Transformer Architecture"),
    Claim("S001-Q18", "Xiong et al.: 'Post-LN collapses at 100 layers, Pre-LN stable at 100 layers'",
          "100-layer experiment", f"not testable here (largest stack {max(GRID_DEPTHS)} blocks)", holds=None,
          verdict="misattributed: Xiong et al. trained 6- and 12-layer models, not 100",
          citation="Xiong et al. 2020; Wang et al. 2022 (DeepNet) train 1000-layer Post-LN with DeepNorm"),
    Claim("S001-Q18", "Post-LN gradient norms are large near the output at init", "Xiong Fig. 3",
          f"Xavier init, depth 24: Post-LN max/min {post_s:.2f}, larger at output side: {post_top_heavy}; "
          f"default init: max/min ≤ {default_flat:.2f}", holds=post_top_heavy and post_s > 1.5,
          verdict=None if post_top_heavy and post_s > 1.5 else "not in this model (init-dependent)"),
    Claim("S001-Q18", "final quality: Post-LN slightly better; difference < 0.1%", "< 0.1%",
          f"depth {deep}, lr {min(GRID_LRS):.0e}, warmup: Pre vs Post -> {pre_vs_post} (means differ by "
          f"{rel_gap:.1%}); best over the grid: {best_text}",
          holds=rel_gap < 0.001,
          verdict=None if rel_gap < 0.001 else
          f"no: {dict(zip(('a better', 'b better', 'about equal'), ('Pre-LN ends lower', 'Post-LN ends lower', 'within noise'))).get(pre_vs_post, pre_vs_post)} here, by {rel_gap:.1%}",
          citation="Liu et al. 2020 (Admin) find Post-LN better when it trains"),
    Claim("S001-Q18", "after 2020 almost all models are Pre-LN", "almost all", "history, not measurable",
          holds=None, verdict="mostly (GPT-2/3, T5, LLaMA, PaLM), with exceptions: GLM-130B uses DeepNorm Post-LN",
          citation="Zeng et al. 2022 (GLM-130B)"),
    Claim("S003-Q18", "'all large models use Pre-LN' (summary)", "all", "history, not measurable", holds=None,
          verdict="false: GLM-130B (130B parameters) uses Post-LN with DeepNorm", citation="Zeng et al. 2022"),
    Claim("S001-Q18", "LN(x) has mean 0 and variance 1; RMSNorm fixes only the RMS", "exact",
          f"LN Jacobian removes 2 directions, RMSNorm 1 (counted above); LN/RMS time ratio {speed_ratio:.2f}; "
          f"loss LN vs RMS: {ln_vs_rms}",
          holds=all(int((s < 1e-9).sum()) == 2 for k, s in sv.items() if k[0] == "LN")
          and all(int((s < 1e-9).sum()) == 1 for k, s in sv.items() if k[0] == "RMS")),
])

# %% [markdown]
# ## What this can and cannot show
#
# * Section 1 is exact: LayerNorm has no saturation region, only the uniform 1/σ factor.
# * Section 2's gradient profiles are exact for these models at init, and they show that the profile
#   depends on the initialisation; they are not a reproduction of Xiong et al.'s setting (post-norm
#   encoder-decoders with Xavier init and untied, unscaled projections).
# * The fast grid (depth 2 and 4, 60 steps, 2 seeds) mostly measures who *starts* learning fastest;
#   a plateau at the unigram entropy after 60 steps is not evidence that the setting cannot train.
#   The full budget (depth 6 and 24, 64 wide, 400 steps, 3 seeds, 48 runs; several minutes on a GPU,
#   not run while writing this notebook) is sized to
#   separate slow from unstable and to show the depth dependence; larger depths (Xiong's and DeepNet's
#   regime) are beyond both budgets.
# * The norm timing compares two implementations on this CPU, not two formulas on a GPU kernel.

# %% [markdown]
# ## The essence

# %%
essence("""
Post-LN normalises the stream after every sublayer, so the gradient going down the stack is divided by
the sum's scale at every LN; Pre-LN leaves an identity path from the loss to every layer and normalises
only what enters each sublayer, at the price of a stream whose size is held only by small branches.
LayerNorm has no saturation region: its Jacobian is a projection times 1/sigma. How the per-layer
gradients look at init depends on placement and initialisation together. Whether a placement fails is
a count over seeds under a stated rule; here the counts and final losses are printed above, and the
deep, long runs that separate slow from unstable belong to the full budget. Post-LN is not extinct:
GLM-130B trains it at scale with DeepNorm.
""")

# %% [markdown]
# ## Exercises
#
# **1.** Scale an input of LayerNorm by 10 (its σ grows 10×). By how much does the largest singular
# value of the Jacobian change? Check with autograd.

# %% tags=["solution"] jupyter={"source_hidden": true}
# Solution. LN(10x) = LN(x), so its Jacobian at 10x is the Jacobian at x divided by 10.
x = torch.randn(32, dtype=torch.float64)
ln32 = nn.LayerNorm(32, eps=0.0, elementwise_affine=False, dtype=torch.float64)
s1 = torch.linalg.svdvals(torch.autograd.functional.jacobian(ln32, x))[0]
s10 = torch.linalg.svdvals(torch.autograd.functional.jacobian(ln32, 10 * x))[0]
print(f"largest singular value at x: {float(s1):.4f}, at 10x: {float(s10):.4f}, ratio {float(s1 / s10):.3f}")
assert abs(float(s1 / s10) - 10) < 1e-6

# %% [markdown]
# **2.** In a Post-LN block, what is the RMS of the output whatever the input's scale? Feed a block
# of the 4-layer Post-LN model inputs of RMS 0.01 and 100.

# %% tags=["solution"] jupyter={"source_hidden": true}
# Solution. 1 (the gain is 1 at init): the last operation of the block is the norm.
f = prop.block_function(post_model, 0, SEQ)
with torch.no_grad():
    out_rms = [float(f(s * torch.randn(SEQ, DIM)).pow(2).mean().sqrt()) for s in (0.01, 100.0)]
print("output RMS for input RMS 0.01 and 100:", [round(r, 4) for r in out_rms])
assert all(abs(r - 1) < 1e-2 for r in out_rms)
