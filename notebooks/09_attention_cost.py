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
# # 09 The cost of attention: O(n²d) against O(nd²), and the FFN's share
#
# "Attention is quadratic" is the first thing everyone learns about Transformers. Quadratic in
# what, and compared with what? A layer also has four projection matrices and a feed-forward
# network, and those grow with the *square of the width*. This notebook counts every matrix
# product of a layer, checks the count against PyTorch's own profiler, times the pieces, finds
# where one overtakes the other, and measures the memory of the n×n matrix.
#
# ## The questions
#
# **S001-Q4** 「复杂度分析的完整图景」 (the student's answer: 「O(n²·d)」)
# *The full picture of attention's complexity. Student: "O(n²·d)".*
#
# **S001-Q4-guide** 「让我们分解Attention的每一步，看看复杂度来自哪里？」
# *Break attention into its steps: where does the cost come from?*
#
# **S001-Q4-sub** 「为什么O(n²)是瓶颈？」
# *Why is O(n²) the bottleneck?*
#
# **S002-Q1** 「为什么随着模型规模增大，FFN的计算占比会超过注意力？」
# *Why does the FFN's share of the compute overtake attention as models grow?*
#
# **S002-Q1-orig** 「为什么FFN的复杂度是二次的，而注意力是线性的？」
# *(The original, ill-posed form) Why is the FFN's complexity quadratic while attention's is linear?*
#
# **The surface answer.** The document breaks attention into projections (O(n·d²)), scores q·kᵀ
# (O(n²·d)), softmax (O(n²)), the weighted sum (O(n²·d)) and the output projection (O(n·d²)), for a
# total of O(n·d² + n²·d) compute and O(n² + n·d) memory. It then gives examples: GPT-2 small,
# "1024²×768 ≈ 805M" against "FFN ≈ 4.8B"; GPT-3, 51.5B against 2.47T; and "a real LLM, n=2048,
# d=4096: O(n²d) ≈ 17B, so attention is the bottleneck!". It says doubling n quadruples the cost
# and that at n = 16K one fp16 attention matrix takes 512 MiB. The second document asks why the FFN
# takes over as models grow, and its original question calls the FFN quadratic and attention linear.
#
# We count each component exactly, check the counts against `FlopCounterMode`, time the pieces on
# this machine, find both crossovers (attention core against FFN, and against everything else),
# measure the n×n matrix, and give a verdict on the n=2048, d=4096 example.

# %%
import math

import torch

from course_lib import ModelConfig
from course_lib.lab import flops as fl
from course_lib.lab import viz
from course_lib.lab.attention_math import loglog_slope
from course_lib.lab.budget import budget, by_budget, set_budget_threads
from course_lib.lab.socratic import Claim, claims_table, essence, predict, reveal

viz.setup()
import matplotlib.pyplot as plt  # noqa: E402

THREADS = set_budget_threads()
print("budget:", budget(), "| torch threads:", THREADS)
torch.manual_seed(0)
DEVICE = by_budget(fast="cpu", full="cuda" if torch.cuda.is_available() else "cpu")
REPEATS = by_budget(fast=5, full=9)              # timings: the fastest of this many runs
print("timings on:", DEVICE)

# %% [markdown]
# ## 1. Counting every product of a layer
#
# One multiply-add is 2 FLOPs. For `n` tokens, width `D`, `H` heads of size `d = D/H` and an FFN of
# hidden size `F`, one layer does (non-causal, i.e. the full n×n score matrix):
#
# | step | FLOPs | grows like |
# |---|---|---|
# | Q, K, V projections | 2·n·D·3D | n·D² |
# | scores q·kᵀ | 2·n²·H·d = 2n²D | n²·D |
# | softmax | about 5n²H elementwise ops (not a product) | n²·H |
# | weights · v | 2n²D | n²·D |
# | output projection | 2·n·D·D | n·D² |
# | FFN (SwiGLU, 3 matrices of D×F) | 6·n·D·F ≈ 16nD² for F ≈ 8D/3 | n·D² |
#
# The library counter `fl.layer_flops` writes this table as code. Rather than trust it, we run
# PyTorch's profiler (`torch.utils.flop_counter.FlopCounterMode`) over a real library block built on
# the `meta` device, which has shapes but no data, so even an LLM-sized layer costs nothing.

# %%
p_gpt2 = predict("S001-Q4-guide gpt2",
                 "GPT-2 small (n=1024, d=768, 12 heads, 4× FFN): per layer, which costs more FLOPs?",
                 choices=["the attention core (q·kᵀ and weights·v)", "projections + FFN", "about equal"])

# %%
EXAMPLES = {  # name: (n, D, heads), with a 4x GELU FFN as in GPT-2/GPT-3
    "GPT-2 small": (1024, 768, 12),
    "doc's 'real LLM'": (2048, 4096, 32),
    "GPT-3 175B": (2048, 12288, 96),
    "n=16K, d=4096": (16384, 4096, 32),
}
counted, profiled = {}, {}
for name, (n, D, H) in EXAMPLES.items():
    cfg = ModelConfig(vocab_size=8, dim=D, n_layers=1, n_heads=H, ffn_type="gelu", ffn_ratio=4.0)
    counted[name] = fl.config_layer_flops(cfg, n)
    profiled[name] = fl.profiled_layer_flops(cfg, n)
    c = counted[name]
    print(f"{name:>17}: core {c.core / 1e9:9.1f} GFLOP  projections {c.projections / 1e9:9.1f}  "
          f"FFN {c.ffn / 1e9:9.1f}  | core share {c.shares()['core']:.1%}")

# %%
agree = all(profiled[k] == {"projections": c.projections, "core": c.core, "ffn": c.ffn, "total": c.total}
            for k, c in counted.items())
assert agree, "the analytic count disagrees with FlopCounterMode"
g2 = counted["GPT-2 small"]
gpt2_answer = ("about equal" if abs(g2.core / (g2.projections + g2.ffn) - 1) < 0.1 else
               "projections + FFN" if g2.core < g2.projections + g2.ffn
               else "the attention core (q·kᵀ and weights·v)")
reveal(p_gpt2, measured=f"core {g2.core / 1e9:.1f} vs projections+FFN {(g2.projections + g2.ffn) / 1e9:.1f} GFLOP",
       answer=gpt2_answer, note="The profiler's count and ours agree exactly for all four shapes.")

# %% [markdown]
# The document's own numbers are multiply-adds (MACs, half the FLOPs). Its GPT-2 figure
# "1024²×768 ≈ 805M" is the q·kᵀ product alone; the weighted sum with v costs as much again, and
# the four projections (4·n·d² ≈ 2.4G MACs) are missing from its "attention" total.

# %%
gpt2_qk_macs = counted["GPT-2 small"].scores / 2
gpt2_ffn_macs = counted["GPT-2 small"].ffn / 2
gpt2_proj_macs = counted["GPT-2 small"].projections / 2
gpt3_qk_macs, gpt3_ffn_macs = counted["GPT-3 175B"].scores / 2, counted["GPT-3 175B"].ffn / 2
long_qk_macs = counted["n=16K, d=4096"].scores / 2
print(f"GPT-2 small: q·kᵀ {gpt2_qk_macs / 1e6:.0f}M MACs, FFN {gpt2_ffn_macs / 1e9:.2f}G, "
      f"projections {gpt2_proj_macs / 1e9:.2f}G")
print(f"GPT-3: q·kᵀ {gpt3_qk_macs / 1e9:.1f}G MACs, FFN {gpt3_ffn_macs / 1e12:.2f}T;  "
      f"n=16K, d=4096: q·kᵀ {long_qk_macs / 1e12:.2f}T MACs")

# %% [markdown]
# ## 2. "n = 2048, d = 4096: attention is the bottleneck!"
#
# The document states the rule "when n ≪ d the projections dominate, when n ≫ d attention does",
# and then applies it to n = 2048, d = 4096, where n is *half* of d.

# %%
p_doc = predict("S001-Q4-guide n2048",
                "n=2048, d=4096 (32 heads, 4× FFN): what share of the layer's FLOPs is the n² attention core?",
                choices=["more than half", "between 20% and 50%", "less than 20%"])

# %%
doc = counted["doc's 'real LLM'"]
doc_share = doc.shares()["core"]
n_doc, d_doc = EXAMPLES["doc's 'real LLM'"][:2]
print(f"n²d = {n_doc ** 2 * d_doc / 1e9:.0f}G and n·d² = {n_doc * d_doc ** 2 / 1e9:.0f}G MACs")
print(f"core {doc.core / 1e9:.0f} GFLOP of {doc.total / 1e9:.0f} GFLOP per layer = {doc_share:.1%};  "
      f"projections {doc.shares()['projections']:.1%}, FFN {doc.shares()['ffn']:.1%}")

# %%
assert doc.core < doc.projections < doc.ffn, "at n = d/2 the core should be the smallest part"
doc_answer = ("more than half" if doc_share > 0.5 else
              "between 20% and 50%" if doc_share >= 0.2 else "less than 20%")
reveal(p_doc, measured=f"{doc_share:.1%}", answer=doc_answer,
       note="By the document's own rule (n < d), the n·d² parts dominate.")

# %% [markdown]
# ## 3. The whole grid, and the crossover
#
# Per token, the core costs about 4·n·D FLOPs and everything else a constant ≈ 24·D² (8D² of
# projections and 16D² of a 4× FFN). So the core overtakes the rest of the layer at
# **n\* = 6·D** (and the FFN alone at n = 4D). The course model's SwiGLU rounds its hidden size up to
# a multiple of 64, which moves n\* a little. A causal kernel that skips the masked half does half the
# core's work, which pushes n\* to about 12·D.

# %%
NS = [128, 256, 512, 1024, 2048, 4096, 8192]
DS = [64, 128, 256, 512, 1024, 2048]
share = torch.tensor([[fl.layer_flops(n, D, max(1, D // 64)).shares()["core"] for n in NS] for D in DS])
n_star = {D: fl.crossover_n(D, max(1, D // 64)) for D in DS}
n_star_causal = {D: fl.crossover_n(D, max(1, D // 64), causal=True) for D in DS}
print("n* / D (non-causal):", {D: round(n_star[D] / D, 2) for D in DS})
print("n* / D (causal):    ", {D: round(n_star_causal[D] / D, 2) for D in DS})

fig, ax = plt.subplots(figsize=(6.4, 3.6))
im = ax.imshow(share.numpy(), origin="lower", cmap="coolwarm", vmin=0, vmax=1, aspect="auto")
ax.set_xticks(range(len(NS)), [str(n) for n in NS]); ax.set_yticks(range(len(DS)), [str(D) for D in DS])
ax.set_xlabel("sequence length n (tokens)"); ax.set_ylabel("model width D")
for i in range(len(DS)):
    for j in range(len(NS)):
        ax.text(j, i, f"{share[i, j]:.0%}", ha="center", va="center", fontsize=7)
fig.colorbar(im, label="attention core's share of layer FLOPs")
ax.set_title("Share of the n² core in one layer (SwiGLU FFN, head size 64)");

# %%
ratios = [n_star[D] / D for D in DS]
assert all(5.5 < r < 7.5 for r in ratios), ratios          # n* ≈ 6D, up to the SwiGLU rounding
assert all(abs(n_star_causal[D] / n_star[D] - 2) < 0.01 for D in DS)

# %% [markdown]
# Every row of the grid crosses 50% at about n = 6·D: the crossover is set by the *ratio* n/D, not
# by either size. At n = 2048 only models narrower than about 340 spend most of their FLOPs in the
# core.
#
# ## 4. Does the clock agree?
#
# FLOPs are not seconds. The softmax is elementwise work the FLOP count leaves out, and small
# matrix products run below the machine's peak. So we time the three parts of a layer separately
# (the library's own `Linear`, `naive_attention` and `FeedForward`, non-causal, one sequence) at a
# small width, across n, and see where the measured core time overtakes the rest.

# %%
p_clock = predict("S001-Q4 clock",
                  "At width D = 64 the FLOP crossover is n* ≈ 400. Where does the measured core time overtake "
                  "projections + FFN on this machine?",
                  choices=["well below n*", "near n* (within a factor of 2)", "well above n*"])

# %%
D_T = 64
NS_T = by_budget(fast=[64, 128, 256, 512, 1024, 2048], full=[64, 128, 256, 512, 1024, 2048, 4096, 8192])
times = {n: fl.time_components(n, D_T, 1, repeats=REPEATS, device=DEVICE) for n in NS_T}
time_ratio = [times[n]["core"] / (times[n]["projections"] + times[n]["ffn"]) for n in NS_T]
flop_ratio = [fl.layer_flops(n, D_T, 1).core_to_rest for n in NS_T]
for n, tr, fr in zip(NS_T, time_ratio, flop_ratio):
    print(f"n={n:5d}: core/rest time {tr:6.2f}   FLOPs {fr:6.2f}")

fig, ax = plt.subplots(figsize=(6.4, 3.4))
ax.plot(NS_T, time_ratio, "o-", label="measured time")
ax.plot(NS_T, flop_ratio, "s--", label="counted FLOPs")
ax.axhline(1, color="k", lw=1); ax.axvline(n_star[64], color="grey", ls=":", label="FLOP crossover n*")
ax.set_xscale("log", base=2); ax.set_yscale("log")
ax.set_xlabel("sequence length n (tokens)"); ax.set_ylabel("core / (projections + FFN), ratio")
ax.set_title(f"Attention core against the rest of a layer, D = {D_T} ({DEVICE})"); ax.legend(fontsize=8);

# %%
log_n, log_r = torch.log(torch.tensor(NS_T, dtype=torch.float64)), torch.log(torch.tensor(time_ratio))
above = int((torch.tensor(time_ratio) > 1).nonzero()[0]) if max(time_ratio) > 1 else None
assert above is not None and above > 0, "the measured core never overtook the rest (or always did)"
# interpolate log(ratio) linearly in log(n) between the two bracketing lengths
t = -log_r[above - 1] / (log_r[above] - log_r[above - 1])
n_cross_time = float(torch.exp(log_n[above - 1] + t * (log_n[above] - log_n[above - 1])))
time_slope = loglog_slope(NS_T[len(NS_T) // 2:], time_ratio[len(NS_T) // 2:])
print(f"measured crossover n ≈ {n_cross_time:.0f} (FLOPs: {n_star[64]:.0f}); "
      f"slope of the time ratio over the longer half: {time_slope:.2f} (FLOPs: 1)")
assert time_slope > 0.7, "the core's share of time should grow about in proportion to n"
ratio_to_flops = n_cross_time / n_star[64]
clock_answer = ("near n* (within a factor of 2)" if 0.5 <= ratio_to_flops <= 2 else
                "well below n*" if ratio_to_flops < 0.5 else "well above n*")
reveal(p_clock, measured=f"n ≈ {n_cross_time:.0f} (= {ratio_to_flops:.2f} × n*)", answer=clock_answer,
       note="The softmax and the score matrix's memory traffic are not in the FLOP count; they make the core "
            "costlier per FLOP than the big projections.")

# %% [markdown]
# The clock follows the count in direction: the core's share of the time grows with n, at least in
# proportion. On a CPU it often grows *faster* than the FLOPs say: once the n×n matrix (4 MiB at
# n = 1024 in float32) no longer fits the processor's cache, writing it, exponentiating it and reading
# it back runs at main-memory speed. Where the measured crossover sits relative to n* therefore
# depends on the machine; the count does not.
#
# ## 5. Why the FFN's share grows with the model (S002-Q1), and "quadratic in what?" (S002-Q1-orig)
#
# The original question says "the FFN is quadratic and attention is linear". Quadratic in what?
# We vary one size at a time and fit the exponent of each component's FLOPs and time.

# %%
p_ffn = predict("S002-Q1 share",
                "At fixed n = 512, as the width D grows from 64 to 1024, the FFN's share of a layer's time ...",
                choices=["falls", "stays about the same", "rises"])

# %%
N_FIX = 512
DS_T = by_budget(fast=[64, 128, 256, 512], full=[64, 128, 256, 512, 1024, 2048])
d_times = {D: fl.time_components(N_FIX, D, max(1, D // 64), repeats=REPEATS, device=DEVICE) for D in DS_T}
ffn_time_share = [d_times[D]["ffn"] / sum(d_times[D].values()) for D in DS_T]
ffn_flop_share = [fl.layer_flops(N_FIX, D, max(1, D // 64)).shares()["ffn"] for D in DS_T]
print("FFN share of time: ", [f"{s:.0%}" for s in ffn_time_share])
print("FFN share of FLOPs:", [f"{s:.0%}" for s in ffn_flop_share])

exps = {  # log-log slope of each component's FLOPs when only one size varies
    ("core", "n"): loglog_slope(NS, [fl.layer_flops(n, 512, 8).core for n in NS]),
    ("core", "D"): loglog_slope(DS, [fl.layer_flops(512, D, max(1, D // 64)).core for D in DS]),
    ("ffn", "n"): loglog_slope(NS, [fl.layer_flops(n, 512, 8).ffn for n in NS]),
    ("ffn", "D"): loglog_slope(DS, [fl.layer_flops(512, D, max(1, D // 64)).ffn for D in DS]),
}
time_exp_ffn_d = loglog_slope(DS_T[1:], [d_times[D]["ffn"] for D in DS_T[1:]])
time_exp_core_n = loglog_slope(NS_T[len(NS_T) // 2:], [times[n]["core"] for n in NS_T[len(NS_T) // 2:]])
print("FLOP exponents:", {f"{c} vs {v}": round(e, 2) for (c, v), e in exps.items()})
print(f"time exponents: FFN vs D {time_exp_ffn_d:.2f} (FLOPs 2), core vs n {time_exp_core_n:.2f} (FLOPs 2)")

fig, ax = plt.subplots(figsize=(6.4, 3.2))
ax.plot(DS_T, ffn_time_share, "o-", label="measured time")
ax.plot(DS_T, ffn_flop_share, "s--", label="counted FLOPs")
ax.set_xscale("log", base=2); ax.set_xlabel("model width D"); ax.set_ylabel("FFN share of the layer (fraction)")
ax.set_title(f"The FFN's share at n = {N_FIX}"); ax.legend(fontsize=8);

# %%
assert ffn_flop_share[-1] > ffn_flop_share[0] and ffn_time_share[-1] > ffn_time_share[0] + 0.05
assert abs(exps[("core", "n")] - 2) < 0.05 and abs(exps[("ffn", "D")] - 2) < 0.1     # the quadratics
assert abs(exps[("core", "D")] - 1) < 0.05 and abs(exps[("ffn", "n")] - 1) < 0.05    # the linears
assert time_exp_ffn_d > 1.4 and time_exp_core_n > 1.6      # the clock grows at least about as fast as the count
share_change = ffn_time_share[-1] - ffn_time_share[0]
reveal(p_ffn, measured=f"{ffn_time_share[0]:.0%} → {ffn_time_share[-1]:.0%}",
       answer="rises" if share_change > 0.05 else "falls" if share_change < -0.05 else "stays about the same")

# %% [markdown]
# So the honest form of the original question is: *at fixed n*, the core is linear in D and the
# FFN quadratic; *at fixed D*, the core is quadratic in n and the FFN linear. The attention layer
# is not "linear" either way: its four projections are exactly as quadratic in D as the FFN (a third
# of the layer's D² work). As models grow wider faster than their context, the D² terms win.
#
# ## 6. Memory: the n×n matrix (S001-Q4-sub)
#
# Plain attention writes the scores and the softmax weights as (n, n) matrices per head. We run one
# head (head size 64, float32) through the library's explicit `naive_attention` and record the
# peak memory above the inputs, then do the same with PyTorch's fused
# `scaled_dot_product_attention`, which may never hold the matrix.

# %%
p_mem = predict("S001-Q4-sub memory",
                "Explicit attention, one head: doubling n multiplies the peak memory of the forward pass by about ...",
                choices=["2", "4", "8"])

# %%
NS_M = by_budget(fast=[1024, 2048, 4096], full=[1024, 2048, 4096, 8192, 16384])
peak = {n: fl.attention_matrix_peak_bytes(n, device=DEVICE) for n in NS_M}
peak_fused = {n: fl.attention_matrix_peak_bytes(n, impl="sdpa", device=DEVICE) for n in NS_M}
print("peak tensor memory (MiB), explicit:", {n: round(b / 2 ** 20, 2) for n, b in peak.items()})
print("peak tensor memory (MiB), fused:   ", {n: round(b / 2 ** 20, 2) for n, b in peak_fused.items()})

fig, ax = plt.subplots(figsize=(6.4, 3.2))
ax.plot(NS_M, [peak[n] / 2 ** 20 for n in NS_M], "o-", label="explicit (naive_attention)")
ax.plot(NS_M, [peak_fused[n] / 2 ** 20 for n in NS_M], "s-", label="fused (scaled_dot_product_attention)")
ax.plot(NS_M, [2 * 4 * n * n / 2 ** 20 for n in NS_M], "k--", lw=1, label="2 float32 n×n matrices")
ax.set_xscale("log", base=2); ax.set_yscale("log"); ax.legend(fontsize=8)
ax.set_xlabel("sequence length n (tokens)"); ax.set_ylabel("peak tensor memory (MiB)")
ax.set_title("Memory of one head's attention forward");

# %%
mem_exp = loglog_slope(NS_M, [peak[n] for n in NS_M])
bytes_per_entry = peak[NS_M[-1]] / NS_M[-1] ** 2
fp16_16k_mib = 16384 ** 2 * 2 / 2 ** 20
print(f"fitted exponent {mem_exp:.2f}; {bytes_per_entry:.1f} bytes per (query, key) pair at n={NS_M[-1]} "
      f"(scores + weights, 4 bytes each); one fp16 matrix at n=16K: {fp16_16k_mib:.0f} MiB")
assert abs(mem_exp - 2) < 0.15, mem_exp
assert 7 < bytes_per_entry < 10, bytes_per_entry
fused_max = max(peak_fused.values())
fused_exp = loglog_slope(NS_M, [peak_fused[n] for n in NS_M])
assert fused_max < 0.01 * peak[NS_M[-1]] and fused_exp < 1.2, "the fused kernel should not hold n×n matrices"
reveal(p_mem, measured=f"exponent {mem_exp:.2f}, so ×{2 ** mem_exp:.1f} per doubling",
       answer=min(["2", "4", "8"], key=lambda c: abs(float(c) - 2 ** mem_exp)))

# %% [markdown]
# Two float32 matrices (scores and weights) per head: 8 bytes per (query, key) pair, growing as n².
# The fused kernel's tensors grow only linearly in n (its output and one normaliser per query): it
# computes the same numbers block by block (online softmax) and never holds the matrix, which is why modern attention is limited by
# the n² *compute*, not the n² memory. Whether attention is "memory-bound" therefore depends on the
# kernel, not on the formula (notebook 23 looks at FlashAttention).
#
# ## Claims

# %%
causal_doc_share = fl.layer_flops(2048, 4096, 32, ffn_type="gelu", ffn_dim=16384, causal=True).shares()["core"]
claims_table([
    Claim("S001-Q4", "attention's compute is O(n²·d)", "O(n²·d)",
          f"core FLOPs ∝ n^{exps[('core', 'n')]:.2f}·D^{exps[('core', 'D')]:.2f}; but the projections are "
          f"O(n·D²)", holds=abs(exps[("core", "n")] - 2) < 0.05,
          verdict="holds for the core; the whole layer is O(n·d² + n²·d)"),
    Claim("S001-Q4-guide", "projections O(nd²), q·kᵀ and AV O(n²d), total O(nd² + n²d)",
          "per-step table", "counter == FlopCounterMode on 4 shapes", holds=agree),
    Claim("S001-Q4-guide", "GPT-2 small: 1024²×768 ≈ 805M, FFN ≈ 4.8B (MACs)", "805M / 4.8B",
          f"{gpt2_qk_macs / 1e6:.0f}M / {gpt2_ffn_macs / 1e9:.2f}B; omits AV (+{gpt2_qk_macs / 1e6:.0f}M) "
          f"and projections ({gpt2_proj_macs / 1e9:.1f}B)",
          holds=abs(gpt2_qk_macs / 805e6 - 1) < 0.01 and abs(gpt2_ffn_macs / 4.8e9 - 1) < 0.02,
          verdict="arithmetic holds; 'attention' total is incomplete"),
    Claim("S001-Q4-guide", "GPT-3: 51.5B vs 2.47T (MACs)", "51.5B / 2.47T",
          f"{gpt3_qk_macs / 1e9:.1f}B / {gpt3_ffn_macs / 1e12:.2f}T",
          holds=abs(gpt3_qk_macs / 51.5e9 - 1) < 0.01 and abs(gpt3_ffn_macs / 2.47e12 - 1) < 0.01),
    Claim("S001-Q4-guide (§7 #21)", "n=2048, d=4096 → attention is the bottleneck", "core dominates",
          f"core {doc_share:.1%} of layer FLOPs ({causal_doc_share:.1%} causal); n·d² {n_doc * d_doc ** 2 / 1e9:.0f}G "
          f"> n²d {n_doc ** 2 * d_doc / 1e9:.0f}G", holds=doc_share > 0.5,
          verdict="does not hold: projections and FFN dominate (n < 6d)"),
    Claim("S001-Q4-guide", "n=16384, d=4096: n²d ≈ 1.1T", "1.1T MACs", f"{long_qk_macs / 1e12:.2f}T",
          holds=abs(long_qk_macs / 1.1e12 - 1) < 0.05),
    Claim("S001-Q4-sub", "doubling n gives 4× the cost (and memory)", "×4",
          f"FLOPs ×{2 ** exps[('core', 'n')]:.2f}; explicit memory ×{2 ** mem_exp:.2f}",
          holds=abs(mem_exp - 2) < 0.15 and abs(exps[("core", "n")] - 2) < 0.05),
    Claim("S001-Q4-sub", "n=16K fp16 attention matrix: 512 MiB per head per layer", "512 MiB",
          f"{bytes_per_entry / 2:.1f} bytes/pair/matrix measured in fp32 → fp16: {fp16_16k_mib:.0f} MiB",
          holds=abs(fp16_16k_mib - 512) < 1 and 7 < bytes_per_entry < 10),
    Claim("S001-Q4-guide", "when n ≫ d attention is memory-bound (stores n²)", "memory-bound",
          f"fused SDPA peak {fused_max / 2 ** 20:.2f} MiB (∝ n^{fused_exp:.2f}) vs explicit {peak[NS_M[-1]] / 2 ** 20:.0f} MiB at n={NS_M[-1]}",
          holds=fused_max > 0.5 * peak[NS_M[-1]], verdict="depends on the kernel; fused kernels never store n²",
          citation="Dao et al. 2022 (FlashAttention)"),
    Claim("S002-Q1", "FFN share overtakes attention as D grows (fixed n)", "FFN share rises",
          f"n={N_FIX}: FFN time share {ffn_time_share[0]:.0%} → {ffn_time_share[-1]:.0%} "
          f"(FLOPs {ffn_flop_share[0]:.0%} → {ffn_flop_share[-1]:.0%})",
          holds=ffn_time_share[-1] > ffn_time_share[0] + 0.05),
    Claim("S002-Q1", "FFN > attention core when d > n/4", "n = 4d",
          f"FFN = core at n/D = {fl.crossover_n(512, 8, part='ffn', ffn_type='gelu', ffn_dim=2048) / 512:.2f} (4× FFN)",
          holds=fl.crossover_n(512, 8, part="ffn", ffn_type="gelu", ffn_dim=2048) == 4 * 512),
    Claim("S002-Q1-orig", "FFN is quadratic and attention linear", "FFN ~ ², attention ~ linear",
          f"in D: FFN {exps[('ffn', 'D')]:.2f}, core {exps[('core', 'D')]:.2f}; in n: FFN {exps[('ffn', 'n')]:.2f}, "
          f"core {exps[('core', 'n')]:.2f}", holds=None,
          verdict="ill-posed: true in D at fixed n, reversed in n at fixed D"),
])

# %% [markdown]
# ## What this can and cannot show
#
# - The FLOP counts are exact and checked against PyTorch's profiler; they hold on every machine.
# - The timings are one machine's: under the fast budget, one CPU thread and lengths up to 2048; the
#   full budget (the default on a GPU) times the same pieces on the GPU up to n = 8192 and widths up to
#   2048 and measures memory up to n = 16K, where the GPU's fast matrix units make the non-matmul
#   softmax relatively more expensive still. The *exponents* and the *direction* of each crossover
#   are what carry over; the exact crossover length in seconds does not.
# - We count the forward pass of one layer. Training adds a backward pass of about twice the cost
#   with the same proportions; the embedding and output head add a term in n·D·V outside the layer.
# - The causal mask halves the useful core work only with a kernel that skips the masked blocks
#   (FlashAttention does; our explicit path computes the full matrix, as the profiler shows).
#
# ## The essence

# %%
essence("""
A layer has two kinds of work: products with the weights, which cost about 24·d² per token whatever
the context length, and the attention core, which costs about 4·n·d per token. The core wins only
when the context is longer than about six times the width (twelve with a causal kernel), so for most
models at their usual context lengths the projections and the FFN are the bulk of the compute, and
the FFN's share grows with width. "Quadratic" is always quadratic in something: the core in n, the
projections and the FFN in d. The n×n matrix itself costs n² memory only when a kernel writes it out;
fused kernels never do.
""")

# %% [markdown]
# ## Exercises
#
# **1.** The document's n = 2048, d = 4096 example, but with a causal kernel that skips the masked
# half. Predict the core's share of the layer's FLOPs, then compute it with `fl.layer_flops`. At what
# context length does the core overtake the rest of the layer for this width?

# %% tags=["solution"] jupyter={"source_hidden": true}
# Solution. Causal halves the core (n(n+1)/2 pairs instead of n²); everything else is unchanged.
lf = fl.layer_flops(2048, 4096, 32, ffn_type="gelu", ffn_dim=16384, causal=True)
n_c = fl.crossover_n(4096, 32, ffn_type="gelu", ffn_dim=16384, causal=True)
print(f"core share {lf.shares()['core']:.1%}; causal crossover at n ≈ {n_c:.0f} (≈ {n_c / 4096:.1f} × d)")
assert lf.shares()["core"] < 0.05 and abs(n_c / 4096 - 12) < 0.1

# %% [markdown]
# **2.** Grouped-query attention (notebook 21) shrinks K and V to fewer heads. With d = 4096, 32 query
# heads and 8 key/value heads, how much do the projections' FLOPs fall, and does the crossover move
# towards shorter or longer contexts?

# %% tags=["solution"] jupyter={"source_hidden": true}
# Solution. K and V projections shrink 4× (2·D·D → 2·D·D/4), so projections go from 4D² to 2.5D² per
# token (× 2 FLOPs); the core is unchanged (still 32 query heads), so the crossover moves shorter.
mha, gqa = fl.layer_flops(1, 4096, 32), fl.layer_flops(1, 4096, 32, n_kv_heads=8)
print(f"projections per token: {mha.projections / 1e6:.0f}M → {gqa.projections / 1e6:.0f}M FLOPs; "
      f"n*: {fl.crossover_n(4096, 32):.0f} → {fl.crossover_n(4096, 32, n_kv_heads=8):.0f}")
assert gqa.projections * 8 == mha.projections * 5
assert fl.crossover_n(4096, 32, n_kv_heads=8) < fl.crossover_n(4096, 32)
