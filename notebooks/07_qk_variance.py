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
# # 07 ★ The variance of Q·K
#
# Every attention layer computes scores `q·k` and, before the softmax, multiplies them by
# `1/sqrt(d_k)`. Where does that factor come from, and does the reasoning behind it describe a real
# model? This notebook checks the derivation numerically, then goes inside the course model and
# measures the scores themselves.
#
# ## The questions
#
# **S001-Q3** 「Scaling Factor的精确分析」 (the student's first answer: 「避免梯度爆炸，约束梯度」)
# *A precise analysis of the scaling factor. Student: "to avoid exploding gradients, to constrain
# the gradient."*
#
# **S001-Q3-guide** 「假设Q和K的每个元素都是独立的随机变量，均值0，方差1。那么点积 Q·K 的方差是多少？」
# *If every entry of Q and K is an independent random variable with mean 0 and variance 1, what is
# the variance of the dot product Q·K?*
#
# **The surface answer.** The document rejects "exploding gradients" and says the point is to keep
# the softmax out of saturation. It derives Var(q·k) = d_k (so the standard deviation is sqrt(d_k)),
# concludes that dividing by sqrt(d_k) brings the scores back to variance 1, writes the scaled score
# as "~ N(0, 1)", and tabulates the 3-sigma range for d_k = 64 ... 1024. It also prints single random
# draws as "typical outputs".
#
# We check four things: the derivation itself (by Monte Carlo, for several distributions), the
# *shape* of the distribution (is it really N(0, 1)?), whether the premise "entries of variance 1"
# holds inside a real model at initialisation and after training, and what QK-norm does to it.

# %%
import math

import torch

import course_lib.lab.attention_math as am
from course_lib import (CharTokenizer, ModelConfig, PackedDataset, TrainConfig, Trainer, Transformer,
                        load_corpus)
from course_lib.lab import probes, viz
from course_lib.lab.budget import by_budget, set_budget_threads
from course_lib.lab.socratic import Claim, claims_table, essence, predict, reveal

viz.setup()
import matplotlib.pyplot as plt  # noqa: E402

set_budget_threads()  # one thread under the fast budget: tiny models gain nothing from more

torch.manual_seed(0)
N_MC = by_budget(fast=10_000, full=200_000)  # Monte Carlo draws per head size
print("Monte Carlo draws per d_k:", N_MC)

# %% [markdown]
# ## 1. The derivation, checked by Monte Carlo
#
# q·k = Σᵢ qᵢkᵢ is a sum of d_k independent terms. Each term has mean E[qᵢ]E[kᵢ] = 0 and variance
# E[qᵢ²]E[kᵢ²] = 1, and variances of independent terms add. Before we run anything: commit to an
# answer.

# %%
p_var = predict("S001-Q3-guide",
                "q and k have d_k i.i.d. entries of mean 0 and variance 1. How does Var(q·k) grow with d_k?",
                choices=["stays 1", "like sqrt(d_k)", "like d_k", "like d_k^2"])

# %% [markdown]
# We draw `N_MC` pairs (q, k) for each head size and take the sample variance. We do it for three
# entry distributions with mean 0 and variance 1: Gaussian, ±1 coin flips (Rademacher) and uniform.
# The derivation never used Gaussianity, so all three should agree.

# %%
DS = [4, 16, 64, 256, 1024]
variances = {dist: am.dot_product_variance(DS, N_MC, dist=dist, seed=10)
             for dist in ("normal", "rademacher", "uniform")}
slopes = {dist: am.loglog_slope(DS, [v[d] for d in DS]) for dist, v in variances.items()}
for dist, v in variances.items():
    print(f"{dist:>10}: " + "  ".join(f"d={d}: {v[d]:8.1f}" for d in DS) + f"   log-log slope {slopes[dist]:.3f}")

ax = viz.plot_curves({dist: (DS, [v[d] for d in DS]) for dist, v in variances.items()},
                     xlabel="d_k", ylabel="Var(q·k)", logx=True, logy=True, marker="o",
                     title="Var(q·k) against d_k (log-log)")
ax.plot(DS, DS, "k--", lw=1, label="y = d_k")
ax.legend();

# %%
worst_ratio = max(abs(v[d] / d - 1) for v in variances.values() for d in DS)
assert all(abs(s - 1) < 0.05 for s in slopes.values()), slopes          # grows like d_k ...
assert worst_ratio < 8 / math.sqrt(N_MC) + 0.01, worst_ratio             # ... and equals d_k
reveal(p_var, measured=f"log-log slope {slopes['normal']:.3f}; Var/d_k within {worst_ratio:.1%} of 1",
       answer="like d_k",
       note="Only independence, mean 0 and variance 1 are used: coin flips give the same line.")

# %% [markdown]
# The relative sampling error of a variance estimate from n draws is about sqrt(2/n) for Gaussian
# data (a little more for heavier tails), which is why the check allows `8/sqrt(N_MC)`.
#
# ## 2. Is the scaled score really N(0, 1)?
#
# Dividing by sqrt(d_k) fixes the variance at 1 for every d_k. The *shape* is another matter: each
# term qᵢkᵢ is a product of two Gaussians, which has much heavier tails than a Gaussian (its
# excess kurtosis is 6). A sum of d_k such terms has excess kurtosis 6/d_k, so the scaled score
# approaches N(0, 1) only as d_k grows (central limit theorem).

# %%
p_shape = predict("S001-Q3-guide",
                  "At d_k = 4, how does the chance of a scaled score beyond ±3 compare with N(0,1)'s 0.27%?",
                  choices=["about the same", "clearly larger", "clearly smaller"])

# %%
SHAPE_DS = [1, 4, 16, 64]
N_SHAPE = by_budget(fast=200_000, full=1_000_000)
kurt, tail = {}, {}
fig, axes = plt.subplots(1, len(SHAPE_DS), figsize=(12, 2.8), sharey=True)
grid = torch.linspace(-5, 5, 201)
gauss = torch.exp(-grid ** 2 / 2) / math.sqrt(2 * math.pi)
for ax, d in zip(axes, SHAPE_DS):
    z = am.dot_product_samples(d, N_SHAPE, seed=100 + d) / math.sqrt(d)
    kurt[d] = am.excess_kurtosis(z)
    tail[d] = float((z.abs() > 3).double().mean())
    ax.hist(z.numpy(), bins=120, range=(-5, 5), density=True, alpha=0.6)
    ax.plot(grid, gauss, "k", lw=1)
    ax.set_yscale("log"); ax.set_ylim(1e-5, 1.5)
    ax.set_title(f"d_k={d}: kurt {kurt[d]:+.2f} (6/d={6 / d:.2f})", fontsize=9)
    ax.set_xlabel("scaled score q·k/√d_k")
axes[0].set_ylabel("probability density (log scale)")
fig.suptitle("q·k/√d_k against N(0,1) (black), log scale"); fig.tight_layout()
normal_tail = math.erfc(3 / math.sqrt(2))
print("P(|z| > 3):", {d: f"{t:.4f}" for d, t in tail.items()}, f" N(0,1): {normal_tail:.4f}")

# %%
for d in SHAPE_DS:  # the measured excess kurtosis follows 6/d_k
    assert abs(kurt[d] - 6 / d) < 0.2 * 6 / d + 0.05, (d, kurt[d])
assert tail[4] > 2 * normal_tail        # small heads: clearly heavier tails than N(0,1)
assert abs(tail[64] / normal_tail - 1) < 0.5  # by d_k = 64 the tail is close to Gaussian
reveal(p_shape, measured=f"{tail[4]:.2%} at d_k=4 vs {normal_tail:.2%}", answer="clearly larger",
       note="Variance 1 is exact; 'N(0,1)' is only the large-d_k limit.")

# %% [markdown]
# The document also prints single draws (12.3 → 1.5 at d_k = 64, 31.7 → 2.0 at 256, 68.4 → 2.1 at
# 1024) as "typical" outputs. A typical |N(0,1)| value is its median, 0.67; values of 1.5 or more
# occur in about one draw in seven. Let us measure that too, for the claims table.

# %%
z64 = am.dot_product_samples(64, N_MC, seed=7) / 8.0
median_abs = float(z64.abs().median())
frac_ge_15 = float((z64.abs() >= 1.5).double().mean())
print(f"median |q·k/√d| at d_k=64: {median_abs:.3f};  P(|q·k/√d| >= 1.5) = {frac_ge_15:.3f}")
assert abs(median_abs - 0.674) < 0.03 and frac_ge_15 < 0.2

# %% [markdown]
# ## 3. Inside the course model: is the premise true?
#
# The derivation assumes q and k have entries of variance 1. In the course model q = W_q·RMSNorm(x),
# with every weight drawn from N(0, σ²), σ = `init_std` = 0.02. RMSNorm makes the input to W_q have
# mean square 1, so each entry of q has variance dim·σ² (0.05 for dim = 128), and
#
# Var(q·k) ≈ d_k · (dim·σ²)²,
#
# hundreds of times smaller than d_k. **QK-norm** (RMS-normalising q and k per head before the dot
# product; Henry et al. 2020, Dehghani et al. 2023) does the opposite: it forces every q and k to
# have mean square exactly 1, so the premise holds by construction, whatever the weights.
#
# We capture the scores of every layer (`capture=True`; the captured scores are already multiplied
# by the scale, so we divide it back out) on real text.

# %%
p_init = predict("S001-Q3",
                 "In the course model at initialisation (weights drawn with std 0.02), Var(q·k) in layer 0 is ...",
                 choices=["about d_k = 32", "about 1", "far below 1"])

# %%
DIM, HEADS, LAYERS = by_budget(fast=(64, 2, 2), full=(128, 4, 4))
SEQ = 64
docs = load_corpus("kjv", max_chars=by_budget(fast=400_000, full=4_000_000))
tok = CharTokenizer.from_texts(docs)
data = PackedDataset(docs, tok, block_size=SEQ)
probe = torch.stack([data[i]["input_ids"] for i in range(8)])  # 8 blocks of real text
print(f"{len(data)} blocks of {SEQ} characters, alphabet of {tok.vocab_size}")


def cfg_for(**kw):
    base = dict(vocab_size=tok.vocab_size, dim=DIM, n_heads=HEADS, n_kv_heads=HEADS, n_layers=LAYERS,
                max_seq_len=SEQ)
    base.update(kw)
    return ModelConfig.tiny(**base)


torch.manual_seed(0)
models = {"default": Transformer(cfg_for()), "qk_norm": Transformer(cfg_for(qk_norm=True))}
init_stats = {name: probes.score_stats(m, probe) for name, m in models.items()}
cfg0 = models["default"].config
predicted0 = cfg0.head_dim * (cfg0.dim * cfg0.init_std ** 2) ** 2
for name, st in init_stats.items():
    print(f"{name:>8} at init, Var(q·k) per layer:", "  ".join(f"{s['var']:.4g}" for s in st),
          f"  (d_k = {cfg0.head_dim})")
print(f"prediction d_k·(dim·σ²)² for layer 0 without QK-norm: {predicted0:.4g}")

# %%
v0 = init_stats["default"][0]["var"]
assert 0.5 < v0 / predicted0 < 2.0                       # the small-init formula explains layer 0
assert all(s["var"] < 0.05 * cfg0.head_dim for s in init_stats["default"])  # far below d_k
assert all(0.6 < s["var"] / cfg0.head_dim < 1.6 for s in init_stats["qk_norm"])  # QK-norm: ≈ d_k
reveal(p_init, measured=f"Var(q·k) = {v0:.3g} (formula {predicted0:.3g}); with QK-norm "
       f"{init_stats['qk_norm'][0]['var']:.3g}", answer="far below 1",
       note="The textbook premise holds at init only with QK-norm (or a unit-variance init).")

# %% [markdown]
# We used the English King James Bible at the character level (`load_corpus("kjv")`): its
# alphabet of a few dozen characters keeps training fast on a CPU, and nothing here depends on
# the language.
#
# ## 4. After training
#
# Training changes the weights, and with them the scale of q and k. We train both models with the
# course trainer for the same number of steps, on the same data in the same order, and measure
# again.

# %%
STEPS = by_budget(fast=100, full=1500)
histories = {}
for name, m in models.items():
    tcfg = TrainConfig(batch_size=16, max_steps=STEPS, lr=3e-3, warmup_steps=10, seed=0,
                       progress=False, log_every=0)
    histories[name] = Trainer(m, data, tcfg).fit()
trained_stats = {name: probes.score_stats(m, probe) for name, m in models.items()}
for name, st in trained_stats.items():
    print(f"{name:>8} after {STEPS} steps (loss {histories[name].loss[0]:.2f} -> {histories[name].loss[-1]:.2f}),"
          " Var(q·k) per layer:", "  ".join(f"{s['var']:.4g}" for s in st))

# %%
fig, ax = plt.subplots(figsize=(6.4, 3.4))
layers = range(LAYERS)
for name, marker in (("default", "o"), ("qk_norm", "s")):
    ax.plot(layers, [s["var"] for s in init_stats[name]], marker=marker, ls="--", label=f"{name}, init")
    ax.plot(layers, [s["var"] for s in trained_stats[name]], marker=marker, label=f"{name}, trained")
ax.axhline(cfg0.head_dim, color="k", lw=1, label="d_k")
ax.set_yscale("log"); ax.set_xticks(list(layers)); ax.set_xlabel("layer"); ax.set_ylabel("Var(raw q·k)"); ax.legend(fontsize=8)
ax.set_title("Raw score variance per layer (d_k marked)");

# %%
growth = min(t["var"] / i["var"] for t, i in zip(trained_stats["default"], init_stats["default"]))
qk_growth = max(t["var"] / i["var"] for t, i in zip(trained_stats["qk_norm"], init_stats["qk_norm"]))
print(f"default: every layer's Var(q·k) grew at least {growth:.0f}x;  QK-norm: at most {qk_growth:.1f}x")
assert all(h.loss[-1] < h.loss[0] - 1 for h in histories.values())   # both models learned
assert growth > 20                 # without QK-norm, training multiplies the score variance
assert qk_growth < growth / 5      # with QK-norm the scale stays tied to d_k (only the gains move)

# %% [markdown]
# Without QK-norm the variance at initialisation says almost nothing about the variance a few
# hundred steps later: the model grows W_q and W_k as soon as it needs sharper attention. With
# QK-norm the only way to grow the scores is through the norm gains, and they move slowly.
#
# %% [markdown]
# ## 5. The scaling across head sizes
#
# The point of `1/sqrt(d_k)` is that the softmax sees scores of the same spread whatever the head
# size. We check it in the model: one head of size d_k ∈ {16, 64, 256}, QK-norm on (so the premise
# holds), scale `rsqrt_d` versus no scale (`attn_scale="one"`).

# %%
HEAD_DS = by_budget(fast=[16, 64, 256], full=[16, 64, 256, 1024])
spread = {"rsqrt_d": {}, "one": {}}
for scale in spread:
    for d in HEAD_DS:
        torch.manual_seed(0)
        m = Transformer(cfg_for(n_heads=1, n_kv_heads=1, head_dim=d, n_layers=1, qk_norm=True,
                                attn_scale=scale))
        spread[scale][d] = probes.score_stats(m, probe)[0]["scaled_std"]
print({k: {d: round(s, 2) for d, s in v.items()} for k, v in spread.items()})
viz.plot_curves({f"scale {k}": (HEAD_DS, [v[d] for d in HEAD_DS]) for k, v in spread.items()},
                xlabel="d_k", ylabel="std of the scores the softmax sees", logx=True, logy=True,
                marker="o", title="Score spread against head size (QK-norm, init)");

# %%
lo, hi = HEAD_DS[0], HEAD_DS[-1]
assert 0.75 < spread["rsqrt_d"][hi] / spread["rsqrt_d"][lo] < 1.33                 # flat with 1/√d
assert abs(math.log(spread["one"][hi] / spread["one"][lo]) / math.log(math.sqrt(hi / lo)) - 1) < 0.2  # √d without

# %% [markdown]
# ## Claims
#
# Every number below is computed in this notebook; the verdicts are computed from those numbers.

# %%
d512 = am.dot_product_variance([512], N_MC, seed=5)[512]
gaussian_at_every_d = all(abs(kurt[d]) < 0.2 for d in SHAPE_DS)   # N(0,1) would have excess kurtosis 0
claims_table([
    Claim("S001-Q3-guide", "Var(q·k) = d_k for i.i.d. entries of mean 0, variance 1", "d_k",
          f"log-log slope {slopes['normal']:.3f}; Var/d_k within {worst_ratio:.1%} (3 distributions)",
          holds=abs(slopes["normal"] - 1) < 0.05),
    Claim("S001-Q3-guide", "std(q·k) at d_k = 512 and its 3σ range", "22.6, ±68",
          f"{math.sqrt(d512):.1f}, ±{3 * math.sqrt(d512):.0f}", holds=abs(math.sqrt(d512) - 22.6) < 0.5),
    Claim("S001-Q3-guide", "(q·k)/√d_k ~ N(0, 1)", "N(0,1)",
          f"variance 1 exactly, but excess kurtosis {kurt[4]:.2f} at d_k=4 (6/d_k), P(|z|>3) "
          f"{tail[4]:.2%} vs {normal_tail:.2%}", holds=gaussian_at_every_d,
          verdict="holds only for large d_k (CLT); variance 1 holds always",
          citation="Vaswani et al. 2017, §3.2.1 footnote 4 (only the variance is claimed)"),
    Claim("S001-Q3-guide", "'typical output' 12.3 → 1.5 at d_k = 64", "|scaled| ≈ 1.5 typical",
          f"median |scaled| {median_abs:.2f}; P(≥1.5) = {frac_ge_15:.2f}", holds=frac_ge_15 > 0.5,
          verdict="a single draw, not typical"),
    Claim("S001-Q3-guide", "the premise: q, k entries have variance 1 in a model", "Var(q·k) = d_k",
          f"course model at init: {v0:.3g} for d_k = {cfg0.head_dim}; after {STEPS} steps "
          f"x{growth:.0f}; with QK-norm {init_stats['qk_norm'][0]['var']:.3g}",
          holds=0.6 < v0 / cfg0.head_dim < 1.6,
          verdict="holds with QK-norm; not with small-std init",
          citation="Henry et al. 2020 (Query-Key Normalization); Dehghani et al. 2023 (ViT-22B)"),
    Claim("S001-Q3", "the scale keeps the score spread independent of d_k", "std ≈ 1 for all d_k",
          f"std {spread['rsqrt_d'][lo]:.2f} at d_k={lo}, {spread['rsqrt_d'][hi]:.2f} at d_k={hi}; "
          f"unscaled {spread['one'][lo]:.1f} → {spread['one'][hi]:.1f}",
          holds=0.75 < spread["rsqrt_d"][hi] / spread["rsqrt_d"][lo] < 1.33),
])

# %% [markdown]
# **What this can and cannot show.** The Monte Carlo results are exact up to the sampling error the
# asserts allow. The model measurements use small character models trained for 100 steps (1500 under
# the full budget): enough to show that training moves the score variance far from the textbook
# premise, not where it settles in a large model. Nothing here trains models of several widths with
# μP, so the notebook shows why 1/sqrt(d_k) keeps the spread fixed at initialisation, and cites, but
# does not reproduce, μP's learning-rate transfer.
#
# ## The essence

# %%
essence("""
A dot product adds up d_k independent terms, so its variance grows like d_k and its typical size like
sqrt(d_k). Dividing by sqrt(d_k) is the one choice that keeps the spread of the scores the same for
every head size at initialisation, when q and k are independent (section 5 measures it). It is not what
makes one learning rate work across model widths: once training correlates q with k, q·k grows like
d_k itself (exercise 1: E[q·k] = ρ·d_k), and μP (Yang et al. 2022, Tensor Programs V) divides by d_k,
together with width-dependent learning rates, to transfer hyperparameters across widths; notebook 08
trains both scalings. The argument here is about variances only: the shape is Gaussian only for large heads, and the premise
(unit-variance q and k) is a statement about one idealised initialisation. A real model with small
initial weights starts with much smaller scores, and training then grows them; QK-norm is the
mechanism that makes the premise true by construction.
""")

# %% [markdown]
# ## Exercises
#
# **1.** Correlated entries. Suppose q and k are Gaussian with variance 1 but k = ρq + sqrt(1-ρ²)ε
# (ε independent noise). Predict E[q·k] and Var(q·k) as functions of d_k and ρ, then check with a
# Monte Carlo at d_k = 64, ρ = 0.5.

# %% tags=["solution"] jupyter={"source_hidden": true}
# Solution. E[q·k] = ρ·d_k; each term qᵢkᵢ = ρqᵢ² + sqrt(1-ρ²)qᵢεᵢ has variance 2ρ² + (1-ρ²) = 1 + ρ².
g = torch.Generator().manual_seed(0)
d, rho, n = 64, 0.5, 50_000
q = torch.randn(n, d, generator=g, dtype=torch.float64)
k = rho * q + math.sqrt(1 - rho ** 2) * torch.randn(n, d, generator=g, dtype=torch.float64)
s = (q * k).sum(-1)
print(f"mean {s.mean():.2f} (theory {rho * d}), var {s.var():.1f} (theory {d * (1 + rho ** 2)})")
assert abs(s.mean() - rho * d) < 0.3 and abs(s.var() / (d * (1 + rho ** 2)) - 1) < 0.05

# %% [markdown]
# **2.** With QK-norm, |q·k| can never exceed d_k (Cauchy-Schwarz, when the norm gains are 1). So
# how large can a scaled score get at d_k = 64 with `1/sqrt(d_k)`? Compare with the largest scaled
# score measured in the QK-norm model at initialisation.

# %% tags=["solution"] jupyter={"source_hidden": true}
# Solution. |q·k| <= |q||k| = sqrt(d)·sqrt(d) = d, so the scaled score is at most d/sqrt(d) = sqrt(d) = 8.
torch.manual_seed(0)
m = Transformer(cfg_for(n_heads=1, n_kv_heads=1, head_dim=64, n_layers=1, qk_norm=True))
st = probes.score_stats(m, probe)[0]
print(f"largest scaled score at init: {st['max_abs_scaled']:.2f}; bound sqrt(64) = 8")
assert st["max_abs_scaled"] <= 8 + 1e-4
