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
# # 10 Multi-head I: same parameters, same FLOPs; how many heads?
#
# Multi-head attention cuts the width `d_model` into `h` heads of size `d_model / h`, runs attention
# in each, and mixes the results with one output matrix. This notebook checks what that costs
# (parameters, FLOPs, seconds), what it buys (a task where two lookups must happen at once), and
# how much the *number* of heads matters, next to what the original paper actually measured.
#
# ## The questions
#
# **S000-Q6.2** 「为什么是8个头，不是4个或16个？」
# *Why 8 heads, and not 4 or 16?*
#
# **S001-Preview1** 「为什么需要多个heads？」 *Why do we need several heads?*
#
# **S001-Preview2** 「参数量如何计算？」 *How are the parameters counted?*
#
# **S001-Preview4** 「如何高效实现并行计算？」 *How is the computation parallelised efficiently?*
#
# **S001-Q7** 「Multi-Head的真正价值」 (the student: 「N个头可以最多学到N种不同的相关性；另外一种可能性，是为了加速并行」)
# *The real value of multi-head attention. Student: "N heads can learn at most N different
# relations; another possibility is that it is for parallel speed."*
#
# **S001-Q8** 「参数量的精确计算」 (the student: 「8头就是单头的8倍…」)
# *The exact parameter count. Student: "8 heads are 8 times a single head…"*
#
# **S001-Q8-key** 「单论Attention部分，参数量是几倍？」 *Counting only attention, how many times the parameters?*
#
# **S001-Q10** 「并行计算的实现细节」 *The details of the parallel implementation.*
#
# **S001-Q10-deep** 「如何实现并行？内存访问模式如何？」 *How is it parallelised, and what are the memory-access patterns?*
#
# **S001-Q11** 「维度设计的深层哲学」 (the student: 「…为了和residual相加，所以必然是这个公式」)
# *The deeper logic of the dimensions. Student: "…to add to the residual, it must be this formula
# (d_k = d_model / h)."*
#
# **S001-DQ2** 「如果强行设 d_k = d_model（每个head都是全维度），但用平均而非拼接输出，会有什么后果？与标准Multi-Head相比有何优劣？」
# *If every head is forced to full width (d_k = d_model) and the outputs are averaged instead of
# concatenated, what follows? Pros and cons against standard multi-head attention?*
# Its hints: **S001-DQ2-h1** 「参数量如何变化？」 *How do the parameters change?*
# **S001-DQ2-h2** 「计算量如何变化？」 *How does the compute change?*
# **S001-DQ2-h3** 「Heads还会专门化吗？」 *Do the heads still specialise?*
#
# **S004-E03** 「在这个基础上，继续解释多头注意力机制。」 *Building on this, explain multi-head attention.*
#
# **The surface answer.** The documents say: Q, K and V are split into h heads of size d_model/h, the
# outputs are concatenated and mixed by W_O; the parameters are 4·d² whatever h is (not 8× for 8
# heads), and the matrix work is the same as one head (n = 100, d = 512: "about 10M FLOPs"); the
# value is diversity, not speed; heads run as an extra batch dimension through `view`/`transpose`;
# d_k = d_model/h "is required by the residual"; head sizes 64-128 are "the best range"; a single
# head "can only ask one question at a time". The first document adds a table "from the original
# paper" in which 8 heads beat one by +3.8 and train 1.2× slower, and 32 heads lose 1.2 points at
# 2× the time. We count, time, train, and put that table next to the real one.

# %%
import math

import torch

from course_lib import ModelConfig, Transformer
from course_lib.data import packed_splits
from course_lib.lab import flops as fl
from course_lib.lab import head_count as hc
from course_lib.lab import heads, probes, viz
from course_lib.lab.budget import budget, by_budget, set_budget_threads
from course_lib.lab.measure import time_fn
from course_lib.lab.params import breakdown
from course_lib.lab.socratic import Claim, claims_table, essence, predict, reveal

viz.setup()
import matplotlib.pyplot as plt  # noqa: E402

THREADS = set_budget_threads()
print("budget:", budget(), "| torch threads:", THREADS)
torch.manual_seed(0)
SEEDS = by_budget(fast=[0, 1], full=[0, 1, 2])      # every trained comparison runs over these seeds
REPEATS = by_budget(fast=5, full=9)                  # timings: the fastest of this many runs
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"

# %% [markdown]
# ## 1. Parameters: how many for h heads? (S001-Q8, S001-Q8-key, S001-Preview2)
#
# Each head has its own W_Q, W_K, W_V of shape d_model × d_k. With d_k = d_model / h, the h heads
# together hold 3 · h · d_model · d_model/h = 3·d² numbers, plus d² for W_O.

# %%
p_params = predict("S001-Q8-key params",
                   "d_model = 512, no biases. The attention of an 8-head layer has how many parameters, "
                   "compared with a 1-head layer?",
                   choices=["the same", "8 times as many", "1/8 as many"])

# %%
D_P = 512
HS = [1, 2, 4, 8, 16, 32]
attn_params = {h: breakdown(ModelConfig(vocab_size=1, dim=D_P, n_layers=1, n_heads=h)).attention for h in HS}
built = {h: sum(p.numel() for p in Transformer(ModelConfig(vocab_size=1, dim=64, n_layers=1, n_heads=h,
                                                          max_seq_len=8)).layers[0].attn.parameters())
         for h in [1, 2, 4, 8, 16, 32]}
gqa = {kv: breakdown(ModelConfig(vocab_size=1, dim=D_P, n_layers=1, n_heads=8, n_kv_heads=kv)).attention
       for kv in [8, 4, 2, 1]}
print("attention parameters at d=512:", attn_params)
print("built library layers at d=64: ", built)
print("GQA, 8 query heads, by KV heads:", gqa)

# %%
assert len(set(attn_params.values())) == 1 and len(set(built.values())) == 1   # independent of h
assert all(gqa[kv] == 2 * D_P ** 2 + 2 * D_P * kv * (D_P // 8) for kv in gqa)  # 2d² + 2·d·n_kv·d_head
params_ratio = attn_params[8] / attn_params[1]
reveal(p_params, measured=f"{attn_params[8]:,} vs {attn_params[1]:,} (ratio {params_ratio:.2f})",
       answer="the same" if params_ratio == 1 else "8 times as many" if params_ratio == 8 else "1/8 as many",
       note="Splitting is a reshape of the same matrices; only GQA (fewer K/V heads) changes the count.")

# %% [markdown]
# The student's "8 heads are 8 times one head" would hold only if each head kept the full width
# (d_k = d_model). That is exactly the variant of S001-DQ2, section 5.
#
# ## 2. FLOPs equal, the clock not (S001-Q7, S001-Preview4, S001-Q10)
#
# Each head multiplies n×d_k by d_k×n: h · n² · d_k = n² · d multiply-adds for q·kᵀ, whatever h is.
# But the softmax runs over h separate n×n matrices (h·n² exponentials), and many small matrix
# products use the hardware less well than one big one. The count says "equal"; we time one library
# attention layer (d = 256, no mask) for h from 1 to 64.

# %%
p_clock = predict("S001-Q7 clock",
                  "d = 256, n = 512, same FLOPs: the explicit (non-fused) attention layer with 64 heads takes ...",
                  choices=["about the same time as 1 head", "clearly longer than 1 head", "clearly shorter than 1 head"])

# %%
D_T = 256
HS_T = [1, 2, 4, 8, 16, 32, 64]
NS_T = by_budget(fast=[128, 512], full=[128, 512, 2048])
flops_h = {h: fl.layer_flops(512, D_T, h).attention for h in HS_T}
profiled_h = {h: fl.profiled_layer_flops(ModelConfig(vocab_size=1, dim=D_T, n_layers=1, n_heads=h), 512)
              for h in (1, 8, 64)}
times = {(impl, n): hc.attention_times(D_T, HS_T, n, repeats=REPEATS, impl=impl)
         for impl in ("naive", "sdpa") for n in NS_T}
print("attention FLOPs at n=512 by h:", {h: f"{f / 1e6:.0f}M" for h, f in flops_h.items()})
for (impl, n), t in times.items():
    print(f"{impl:>5} n={n:4d}: time / time(h=1) =", "  ".join(f"h{h}:{t[h] / t[1]:.2f}" for h in HS_T))

fig, ax = plt.subplots(figsize=(6.4, 3.4))
for (impl, n), t in times.items():
    ax.plot(HS_T, [t[h] / t[1] for h in HS_T], "o-" if impl == "naive" else "s--", label=f"{impl}, n={n}")
ax.axhline(1, color="k", lw=1, label="FLOPs (equal for every h)")
ax.set_xscale("log", base=2); ax.set_xlabel("number of heads h (d = 256 fixed)")
ax.set_ylabel("time / time with 1 head (ratio)"); ax.legend(fontsize=7)
ax.set_title(f"One attention layer, same FLOPs, different clock ({DEVICE})");

# %%
assert len(set(flops_h.values())) == 1                                       # the count: equal
assert all(v["total"] == profiled_h[1]["total"] for v in profiled_h.values())  # and the profiler agrees
naive_512 = times[("naive", 512)]
drift = naive_512[64] / naive_512[1]
clock_answer = ("clearly longer than 1 head" if drift > 1.2 else
                "clearly shorter than 1 head" if drift < 1 / 1.2 else "about the same time as 1 head")
reveal(p_clock, measured=f"{drift:.2f}× the 1-head time", answer=clock_answer,
       note="Same multiply-adds; more, smaller pieces (h softmaxes over n×n, h small matmuls).")

# %% [markdown]
# The document's "n = 100, d = 512: about 10M FLOPs" is the multiply-adds of the two n² products:

# %%
macs_100 = fl.layer_flops(100, 512, 8).core // 2
print(f"q·kᵀ + weights·v at n=100, d=512: {macs_100 / 1e6:.2f}M multiply-adds = {2 * macs_100 / 1e6:.1f}M FLOPs")

# %% [markdown]
# ### Heads as a batch dimension (S001-Q10, S001-Q10-deep)
#
# The split into heads is `view(B, T, h, d_k)` followed by `transpose(1, 2)`: no data moves. Only
# when a kernel needs a contiguous layout does `.contiguous()` copy. We check the storage pointers.

# %%
B, T, H, DK = 2, 512, 8, 32
x = torch.randn(B, T, H * DK)
split = x.view(B, T, H, DK)
heads_first = split.transpose(1, 2)                       # (B, H, T, d_k): what attention consumes
packed = heads_first.contiguous()
same_storage = (split.data_ptr() == x.data_ptr(), heads_first.data_ptr() == x.data_ptr())
print("view shares storage:", same_storage[0], "| transpose shares storage:", same_storage[1],
      "| transpose contiguous:", heads_first.is_contiguous(), "| .contiguous() copies:",
      packed.data_ptr() != x.data_ptr())
k_split = torch.randn(B, T, H, DK).transpose(1, 2)        # keys split the same way: strided
k_packed = k_split.contiguous()
t_strided = time_fn(lambda: heads_first @ k_split.transpose(-1, -2), repeat=REPEATS).min
t_packed = time_fn(lambda: packed @ k_packed.transpose(-1, -2), repeat=REPEATS).min
print(f"scores from strided inputs {t_strided * 1e3:.2f} ms, from contiguous {t_packed * 1e3:.2f} ms "
      f"(ratio {t_strided / t_packed:.2f})")

# %%
assert same_storage == (True, True) and not heads_first.is_contiguous() and packed.data_ptr() != x.data_ptr()
assert torch.allclose(heads_first @ k_split.transpose(-1, -2), packed @ k_packed.transpose(-1, -2), atol=1e-5)

# %% [markdown]
# The strided and contiguous inputs give the same scores; the time ratio printed above is this
# machine's price (or not) for the strided layout: matrix kernels accept simple strides and may copy
# internally. The parallelism itself is that `(B, h)` is treated as one batch of B·h independent
# matrix products, issued as one call. Against a Python loop over the heads:

# %%
t_batched = time_fn(lambda: packed @ k_packed.transpose(-1, -2), repeat=REPEATS).min
t_loop = time_fn(lambda: [packed[:, i] @ k_packed[:, i].transpose(-1, -2) for i in range(H)], repeat=REPEATS).min
loop_scores = torch.stack([packed[:, i] @ k_packed[:, i].transpose(-1, -2) for i in range(H)], dim=1)
print(f"{H} heads as one batched product: {t_batched * 1e3:.2f} ms; as a loop over heads: {t_loop * 1e3:.2f} ms "
      f"(loop / batched {t_loop / t_batched:.2f})")
assert torch.allclose(loop_scores, packed @ k_packed.transpose(-1, -2), atol=1e-5)

# %% [markdown]
# The document's "training GPU utilisation > 90%, batch-1 inference < 30%" has no source and is not
# something a CPU run can check; the claims table records it as unsourced.

# %% [markdown]
# ## 3. How many heads? The sweep, beside the real paper (S000-Q6.2, S001-Preview1)
#
# The document's table "from the original paper", and the table the paper actually prints
# (Vaswani et al. 2017, *Attention Is All You Need*, Table 3 row (A): base model, d_model = 512,
# English→German, newstest2013 development set, parameters constant across rows):
#
# | heads h | d_k | **Vaswani et al. 2017: dev BLEU** | **Vaswani: dev PPL** | the document's "性能" | the document's "训练时间" |
# |---|---|---|---|---|---|
# | 1 | 512 | 24.9 | 5.29 | baseline | 1× |
# | 4 | 128 | 25.5 (+0.6) | 5.00 | **+2.3** | 1.1× |
# | 8 (base) | 64 | 25.8 (+0.9) | 4.92 | **+3.8** | 1.2× |
# | 16 | 32 | 25.8 (+0.9) | 4.91 | **+2.1** | 1.5× |
# | 32 | 16 | 25.4 (+0.5) | 5.01 | **−1.2** | 2.0× |
#
# **The document's table does not exist in the paper.** The real spread is 0.9 BLEU in all, 16 heads
# *tie* 8, 32 heads are still *better* than one, and the paper reports no training time per row.
# The paper's own summary: single-head attention is 0.9 BLEU worse than the best setting, and
# quality also drops off with too many heads. The "2^8 = 256 combinations" and "Miller's 7±2" are
# numerology, not evidence.
#
# We run the same experiment at toy scale: a character-level language model (the King James Bible),
# width fixed, h varied, parameters identical, several seeds each. Our question is the *shape*:
# is there a sharp optimum at 8, or a flat plateau with mild losses at the extremes?

# %%
p_sweep = predict("S000-Q6.2 sweep",
                  "Toy model, width fixed, heads 1…16: across head counts, the held-out loss ...",
                  choices=["has a sharp optimum at 8", "is flat within seed noise except at the extremes",
                           "falls steadily with more heads", "is flat within seed noise everywhere"])

# %%
DIM, LAYERS, SEQ = by_budget(fast=(64, 2, 64), full=(128, 4, 128))
HS_LM = by_budget(fast=[1, 2, 4, 8, 16], full=[1, 2, 4, 8, 16, 32])
STEPS = by_budget(fast=100, full=2000)
tok, train, val = packed_splits("kjv", block_size=SEQ, max_chars=by_budget(fast=400_000, full=4_000_000))
VAL_ITEMS = by_budget(fast=48, full=512)


def lm_config(**kw):
    return ModelConfig(**{**dict(vocab_size=tok.vocab_size, dim=DIM, n_layers=LAYERS, max_seq_len=SEQ), **kw})


def val_loss(model):
    return probes.dataset_loss(model, val, max_items=VAL_ITEMS)


sweep = {h: [hc.train_eval(lm_config(n_heads=h), train, val_loss, steps=STEPS, seed=s, batch_size=16)
             for s in SEEDS] for h in HS_LM}
loss = {h: [r["score"] for r in runs] for h, runs in sweep.items()}
for h in HS_LM:
    print(f"h={h:2d} (d_k={DIM // h:3d}): val loss {[round(v, 3) for v in loss[h]]}, "
          f"params {sweep[h][0]['params']:,}, {sum(r['seconds'] for r in sweep[h]) / len(SEEDS):.1f} s per run")

# %%
fig, (ax0, ax1, ax2) = plt.subplots(1, 3, figsize=(13, 3.4))
means = [sum(loss[h]) / len(SEEDS) for h in HS_LM]
ax0.errorbar(HS_LM, means, yerr=[[m - min(loss[h]) for m, h in zip(means, HS_LM)],
                                 [max(loss[h]) - m for m, h in zip(means, HS_LM)]], fmt="o-", capsize=3)
ax0.set_xscale("log", base=2); ax0.set_xlabel("heads h (width fixed)"); ax0.set_ylabel("held-out loss (nats/char)")
ax0.set_title(f"This notebook: mean and range over {len(SEEDS)} seeds", fontsize=9)
VASWANI = {1: (24.9, 5.29), 4: (25.5, 5.00), 8: (25.8, 4.92), 16: (25.8, 4.91), 32: (25.4, 5.01)}
DOC = {1: 0.0, 4: 2.3, 8: 3.8, 16: 2.1, 32: -1.2}
ax1.plot(list(VASWANI), [b for b, _ in VASWANI.values()], "o-", color="C2")
ax1.set_xscale("log", base=2); ax1.set_ylim(20, 30); ax1.set_xlabel("heads h (d_model = 512)")
ax1.set_ylabel("dev BLEU"); ax1.set_title("Vaswani et al. 2017, Table 3 (A): the real numbers", fontsize=9)
ax2.plot(list(DOC), [24.9 + v for v in DOC.values()], "o-", color="C3")
ax2.set_xscale("log", base=2); ax2.set_ylim(20, 30); ax2.set_xlabel("heads h")
ax2.set_ylabel("'BLEU' = 24.9 + the document's 性能")
ax2.set_title("the document's table 'from the paper' (invented)", fontsize=9)
fig.tight_layout();

# %%
seed_range = max(max(v) - min(v) for v in loss.values())
mean_loss = dict(zip(HS_LM, means))
best = min(mean_loss, key=mean_loss.get)
near_best = [h for h in HS_LM if mean_loss[h] - mean_loss[best] <= seed_range]
extremes_worse = [h for h in (HS_LM[0], HS_LM[-1]) if h not in near_best]
interior_flat = all(h in near_best for h in HS_LM[1:-1])
vaswani_spread = max(b for b, _ in VASWANI.values()) - min(b for b, _ in VASWANI.values())
doc_spread = max(DOC.values()) - min(DOC.values())
print(f"seed range {seed_range:.3f}; best h={best}; within one seed range of the best: {near_best}; "
      f"extremes worse by more than that: {extremes_worse}")
print(f"spread of the real table: {vaswani_spread:.1f} BLEU; of the document's: {doc_spread:.1f} points")
assert all(len(set(r["params"] for r in sweep[h])) == 1 for h in HS_LM)
assert len({sweep[h][0]["params"] for h in HS_LM}) == 1, "parameters must not depend on h"
assert all(math.isfinite(v) for vs in loss.values() for v in vs)
if interior_flat and extremes_worse:
    sweep_answer = "is flat within seed noise except at the extremes"
elif len(near_best) == len(HS_LM):
    sweep_answer = "is flat within seed noise everywhere"
elif best == 8 and len(near_best) == 1:
    sweep_answer = "has a sharp optimum at 8"
else:
    sweep_answer = ("falls steadily with more heads" if best == HS_LM[-1] else
                    "is flat within seed noise except at the extremes")
reveal(p_sweep, measured=f"best h={best}, within noise of it: {near_best} (seed range {seed_range:.3f})",
       answer=sweep_answer, note="Vaswani et al.: 0.9 BLEU from worst to best, 8 and 16 tied.")

# %% [markdown]
# Read the result against the seed range, not against the ordering of the means: differences
# smaller than the spread between two seeds of the *same* model are not evidence. Under the fast
# budget (`STEPS` above) the models are far from converged, so this sweep mostly tells us that the head
# count is a second-order choice at this scale; the full budget (2000 steps, width 128, 3 seeds, up
# to 32 heads) is sized to resolve the mild penalties at the extremes that Vaswani et al. report.
#
# ## 4. Must d_k be d_model / h? (S001-Q11)
#
# W_O maps the concatenated heads (h · d_k numbers) back to d_model, so the residual sum works for
# any d_k. d_k = d_model/h is the choice that keeps parameters and FLOPs equal to one full-width
# head. Real models: BERT-base and GPT-2 small (768 = 12 × 64), GPT-3 175B (12288 = 96 × 128);
# some newer models decouple them (Gemma 7B: 16 heads of 256 at d_model = 3072).

# %%
p_dk = predict("S001-Q11 residual",
               "A model with d_model = 64, h = 4 heads of d_k = 64 (so h·d_k = 256 ≠ d_model) ...",
               choices=["cannot be built: the residual sum needs h·d_k = d_model", "works: W_O maps 256 → 64"])

# %%
wide = Transformer(lm_config(n_heads=4, head_dim=DIM))
ids = train[0]["input_ids"][None]
out_shape = tuple(wide(ids).logits.shape)
o_shape = tuple(wide.layers[0].attn.o_proj.weight.shape)
print(f"h=4, d_k={DIM}: W_O {o_shape}, logits {out_shape}")
print("head_dim → attention params per layer at d=64, h=8:",
      {dk: breakdown(lm_config(n_heads=8, head_dim=dk, n_layers=1)).attention for dk in (4, 8, 16, 32, 64)})
print({name: f"{d} = {h} × {d // h}" for name, (d, h) in
       {"BERT-base": (768, 12), "GPT-2 small": (768, 12), "GPT-3 175B": (12288, 96)}.items()})

# %%
assert out_shape == (1, SEQ, tok.vocab_size) and o_shape == (DIM, 4 * DIM)
reveal(p_dk, measured=f"built and ran: W_O is {o_shape[0]}×{o_shape[1]}", answer="works: W_O maps 256 → 64")

# %% [markdown]
# ## 5. Full-width heads, averaged (S001-DQ2 and its hints)
#
# Three attention layers with 4 heads at d_model = 64:
#
# - **standard**: d_k = 16, outputs concatenated and mixed by a learned W_O (4·d² parameters);
# - **wide, averaged**: d_k = 64 each, outputs *averaged* (W_O fixed to [I/4, I/4, I/4, I/4], not
#   trained; `hc.average_heads`);
# - **wide, learned W_O**: d_k = 64 each, a learned 64 × 256 W_O (the standard layer, widened).
#
# Parameters and FLOPs are counted; loss, time and head diversity (the mean Jensen-Shannon divergence
# between the heads' attention patterns, `heads.mean_pairwise_js`, 0 = all heads attend alike) are
# measured over seeds.

# %%
p_dq2 = predict("S001-DQ2-h3 specialise",
                "With averaged full-width heads, do the heads still attend differently from one another?",
                choices=["no: averaging makes them identical", "yes, about as diverse as standard heads",
                         "yes, but clearly less diverse than standard heads",
                         "yes, even more diverse than standard heads"])

# %%
VARIANTS = {"standard": (dict(n_heads=4), None),           # = the h=4 runs of the sweep above
            "wide, averaged": (dict(n_heads=4, head_dim=DIM), hc.average_heads),
            "wide, learned W_O": (dict(n_heads=4, head_dim=DIM), None)}
probe_ids = torch.stack([val[i]["input_ids"] for i in range(8)])


def layer_diversity(model):
    return sum(heads.mean_pairwise_js(w) for w in probes.capture(model, probe_ids)["weights"]) / LAYERS


dq2 = {name: sweep[4] if name == "standard" else
       [hc.train_eval(lm_config(**kw), train, val_loss, steps=STEPS, seed=s, batch_size=16, prepare=prep)
        for s in SEEDS] for name, (kw, prep) in VARIANTS.items()}
dq2_flops = {name: fl.config_layer_flops(lm_config(**kw), SEQ) for name, (kw, _) in VARIANTS.items()}
diversity = {name: [layer_diversity(r["model"]) for r in runs] for name, runs in dq2.items()}
for name, runs in dq2.items():
    print(f"{name:>18}: trainable params {runs[0]['params']:,}; attention FLOPs/seq "
          f"{dq2_flops[name].attention / 1e6:.1f}M; val loss {[round(r['score'], 3) for r in runs]}; "
          f"{sum(r['seconds'] for r in runs) / len(runs):.1f} s/run; head diversity {[round(d, 3) for d in diversity[name]]}")

# %%
attn_p = {name: breakdown(lm_config(**kw)).attention // LAYERS for name, (kw, _) in VARIANTS.items()}
qkv_ratio = (attn_p["wide, learned W_O"] - 4 * DIM * DIM) / (3 * DIM * DIM)        # QKV only, vs 3d²
flop_ratio = dq2_flops["wide, averaged"].attention / dq2_flops["standard"].attention
time_ratio = (sum(r["seconds"] for r in dq2["wide, averaged"]) / sum(r["seconds"] for r in dq2["standard"]))
div_std = sum(diversity["standard"]) / len(SEEDS)
div_avg = sum(diversity["wide, averaged"]) / len(SEEDS)
div_noise = max(max(v) - min(v) for v in diversity.values())
loss_gap = {name: sum(r["score"] for r in runs) / len(runs) - sum(r["score"] for r in dq2["standard"]) / len(SEEDS)
            for name, runs in dq2.items()}
loss_noise = max(max(r["score"] for r in runs) - min(r["score"] for r in runs) for runs in dq2.values())
print(f"QKV params ×{qkv_ratio:.0f} (h = 4); attention FLOPs ×{flop_ratio:.2f}; training time ×{time_ratio:.2f}")
print(f"loss vs standard: { {k: round(v, 3) for k, v in loss_gap.items()} } (seed range {loss_noise:.3f})")
print(f"head diversity: standard {div_std:.3f}, averaged {div_avg:.3f} (seed range {div_noise:.3f})")
assert qkv_ratio == 4 and flop_ratio > 2                                   # ×h QKV params, several × FLOPs
assert div_avg > 0, "averaged heads attended identically"
div_margin = max(div_noise, 0.1 * div_std)         # the seed range, or 10% where seeds agree closely
if div_avg > div_std + div_margin:
    dq2_answer = "yes, even more diverse than standard heads"
elif div_avg >= div_std - div_margin:
    dq2_answer = "yes, about as diverse as standard heads"
else:
    dq2_answer = "yes, but clearly less diverse than standard heads"
reveal(p_dq2, measured=f"JS diversity {div_avg:.3f} (averaged) vs {div_std:.3f} (standard)", answer=dq2_answer,
       note="Random initialisation already breaks the symmetry between heads; averaging does not restore it.")

# %% [markdown]
# Averaging is a *fixed* W_O, so the averaged variant has strictly fewer trainable degrees of freedom
# in the output than the widened standard layer, while paying h times the Q/K/V parameters and
# compute. Whether its loss is better or worse than the standard layer is printed above against the
# seed range; with so few steps, a model with 3× the attention parameters need not be better.
# (Notebook 11 shows that heads that start *identical* stay identical; here they start different.)
#
# ## 6. Two lookups at one position: one head vs two (S004-E03, S001-Q7)
#
# "A single head can only ask one question at a time": one head has *one* attention distribution
# per query. It can spread it over two positions, but then it returns the weighted *sum* of their
# values. The task `hc.pair_lookup`: a few entries `key:value`, then a query naming two keys, and
# the answer is one token naming both values, in the order asked. The model is one attention layer
# and nothing else (no FFN), so the answer has to come out of the attention output itself.

# %%
K_KEYS, V_VALS, P_ENTRIES, D_LOOK = 8, 4, 4, 32
STEPS_LOOK = by_budget(fast=300, full=1500)
look_train = hc.pair_lookup(by_budget(fast=20_000, full=100_000), P_ENTRIES, K_KEYS, V_VALS, seed=1)
look_test = hc.pair_lookup(2000, P_ENTRIES, K_KEYS, V_VALS, seed=2)
print(look_test.decode(look_test.sequences[0]))
print(f"{look_test.vocab_size} tokens; chance accuracy 1/{V_VALS ** 2} = {1 / V_VALS ** 2:.3f}")

# %%
p_look = predict("S004-E03 two lookups",
                 f"One attention layer, width {D_LOOK}, {STEPS_LOOK} steps: accuracy with 1 head vs 2 heads "
                 "(same parameters) ...",
                 choices=["about equal", "2 heads clearly better", "1 head clearly better"])

# %%
HS_LOOK = by_budget(fast=[1, 2], full=[1, 2, 4])


def look_config(h):
    return ModelConfig(vocab_size=look_train.vocab_size, dim=D_LOOK, n_layers=1, n_heads=h, ffn_type="none",
                       max_seq_len=look_train.seq_len, pos="none")


look = {h: [hc.train_eval(look_config(h), look_train, lambda m: probes.task_accuracy(m, look_test),
                          steps=STEPS_LOOK, seed=s, lr=1e-2, batch_size=512) for s in SEEDS] for h in HS_LOOK}
acc = {h: [r["score"] for r in runs] for h, runs in look.items()}
where = {h: hc.lookup_attention(look[h][0]["model"], look_test) for h in HS_LOOK}
for h in HS_LOOK:
    print(f"h={h}: accuracy {[round(a, 3) for a in acc[h]]}; weight on (1st, 2nd) asked entry per head "
          f"(seed 0): {[tuple(round(float(x), 2) for x in row) for row in where[h]]}")
viz.bar({f"h={h}, seed {s}": a for h in HS_LOOK for s, a in zip(SEEDS, acc[h])},
        ylabel="test accuracy (fraction)", title="pair lookup: both values in one token");

# %%
acc_range = max(max(v) - min(v) for v in acc.values())
gap = min(acc[2]) - max(acc[1])            # worst 2-head seed against best 1-head seed
print(f"2 heads (worst seed) minus 1 head (best seed): {gap:+.3f}; largest seed range {acc_range:.3f}")
assert all(len({r["params"] for r in look[h]}) == 1 for h in HS_LOOK)
assert len({look[h][0]["params"] for h in HS_LOOK}) == 1, "head count changed the parameters"
look_answer = ("2 heads clearly better" if gap > acc_range else
               "1 head clearly better" if min(acc[1]) - max(acc[2]) > acc_range else "about equal")
one_head = where[1][0]
uneven = float(one_head.max() / one_head.min().clamp_min(1e-6))
reveal(p_look, measured=f"1 head {acc[1]}, 2 heads {acc[2]}", answer=look_answer,
       note=f"The single head (seed 0) weights the two asked entries {float(one_head[0]):.2f} and "
            f"{float(one_head[1]):.2f} (ratio {uneven:.1f}).")

# %% [markdown]
# Where the heads look is printed above, per head: the weight from the query on the first and on the
# second asked entry. A head that spreads one distribution over both entries returns a weighted *sum*
# of their values. If the weights were equal, a sum of value codes that do not depend on the key could
# not say which value was asked first (exercise 2). But the weights need not be equal: a single head
# can give the first entry more weight than the second, and then the sum still tells them apart. So
# "one head asks one question at a time" is a statement about *one distribution*, not about what can
# be read out of it. While developing this notebook, one head at this width reached the same accuracy
# as two with enough data (about 200 000 sequences seen) and lagged far behind with fewer; two heads
# often, not always, give each head its own entry. Two *layers* would also do it (one lookup per layer).
#
# ## Claims

# %%
claims_table([
    Claim("S000-Q6.2 (§7 #1)", "table 'from the original paper': 4/8/16/32 heads = +2.3/+3.8/+2.1/−1.2, "
          "time 1.1×–2.0×", "8 heads +3.8, 32 heads −1.2",
          f"real Table 3 (A): +0.6/+0.9/+0.9/+0.5 BLEU (spread {vaswani_spread:.1f}); 16 ties 8; 32 beats 1; "
          "no time column", holds=abs(doc_spread - vaswani_spread) < 0.5,
          verdict="does not hold: not in the paper", citation="Vaswani et al. 2017, Table 3 row (A)"),
    Claim("S000-Q6.2", "8 heads is the empirical optimum (small scale)", "optimum at 8",
          f"best h={best}; within one seed range ({seed_range:.3f}) of it: {near_best}",
          holds=best == 8 and len(near_best) == 1,
          verdict=None if best == 8 and len(near_best) == 1 else "no sharp optimum: a plateau"),
    Claim("S000-Q6.2", "'2^8 = 256 combinations', 'Miller's 7±2' explain 8 heads", "numerology", "not testable",
          holds=None, verdict="no evidence offered"),
    Claim("S001-Q8", "attention params = 4·d² regardless of h (no bias)", "1,048,576 at d=512",
          f"{attn_params[1]:,} for every h in {HS}", holds=set(attn_params.values()) == {4 * D_P ** 2}),
    Claim("S001-Q8", "student: 8 heads = 8× the parameters of 1 head", "×8", f"×{params_ratio:.0f}",
          holds=params_ratio == 8),
    Claim("S001-Q8-key", "attention alone: how many times? answer 1×", "1×", f"×{params_ratio:.0f}",
          holds=params_ratio == 1),
    Claim("S001-Q8", "GQA params: 2d² + 2·d·n_kv·d_head", "formula", f"{gqa}", holds=all(
        gqa[kv] == 2 * D_P ** 2 + 2 * D_P * kv * (D_P // 8) for kv in gqa)),
    Claim("S001-Preview2", "parameters are counted per projection, not per head", "4·d²",
          "see S001-Q8 rows", holds=set(attn_params.values()) == {4 * D_P ** 2}),
    Claim("S001-Q7", "the matmul work is the same as single-head (h·n²·d_k = n²·d)", "equal",
          f"{len(set(flops_h.values()))} distinct FLOP count(s) over h = {HS_T}; profiler agrees",
          holds=len(set(flops_h.values())) == 1),
    Claim("S001-Q7", "n=100, d=512: about 10M FLOPs", "10M", f"{macs_100 / 1e6:.1f}M MACs = {2 * macs_100 / 1e6:.1f}M FLOPs",
          holds=abs(macs_100 / 10.24e6 - 1) < 0.01, verdict="holds as multiply-adds (20M FLOPs)"),
    Claim("S001-Q7", "'计算量完全相同': the same cost in practice", "same time",
          f"explicit, n=512: 64 heads take {drift:.2f}× the 1-head time", holds=abs(drift - 1) < 0.2,
          verdict=None if abs(drift - 1) < 0.2 else "same FLOPs, not the same time"),
    Claim("S001-Preview4", "heads run in parallel as one batched product over B·h", "batched",
          f"same scores; batched {t_batched * 1e3:.2f} ms vs loop over heads {t_loop * 1e3:.2f} ms",
          holds=t_batched <= t_loop * 1.1, verdict=None if t_batched <= t_loop * 1.1 else
          "same result; on this machine the batched call was not faster"),
    Claim("S001-Q10", "view/transpose are zero-copy; .contiguous() copies", "zero-copy",
          f"view/transpose share storage {same_storage}; contiguous copies {packed.data_ptr() != x.data_ptr()}",
          holds=same_storage == (True, True) and packed.data_ptr() != x.data_ptr()),
    Claim("S001-Q10", "training GPU util > 90%, batch-1 inference < 30%", ">90% / <30%", "not measured here",
          holds=None, verdict="unsourced; large-scale MFU is typically 30-50%",
          citation="Chowdhery et al. 2022 (PaLM, MFU 46%)"),
    Claim("S001-Q10-deep", "memory layout: strided (transposed) inputs vs contiguous", "contiguous is needed",
          f"identical scores; time ratio strided/contiguous {t_strided / t_packed:.2f}",
          holds=None, verdict="kernels accept strided inputs; cost is machine-dependent"),
    Claim("S001-Q11", "d_k = d_model/h is required by the residual", "required",
          f"h=4, d_k={DIM} at d_model={DIM} builds and runs (W_O {o_shape})", holds=o_shape[1] == DIM,
          verdict="does not hold: W_O maps any h·d_k back to d_model"),
    Claim("S001-Q11", "d_k = d_model gives 3·h·d² QKV params (24d² for h=8)", "3hd²",
          f"×{qkv_ratio:.0f} the standard QKV at h=4", holds=qkv_ratio == 4),
    Claim("S001-Q11", "d_k in 64-128 is the best trade-off", "64-128 optimal", "not measured (a convention)",
          holds=None, verdict="a convention, not an optimum (Gemma: 256)"),
    Claim("S001-DQ2", "averaging = a fixed uniform W_O", "fixed W_O",
          "tests/test_head_count.py: averaged output == mean of per-head SDPA", holds=None,
          verdict="exact (unit test)"),
    Claim("S001-DQ2-h1", "full-width heads: QKV params ×h", f"×{4}", f"×{qkv_ratio:.0f}", holds=qkv_ratio == 4),
    Claim("S001-DQ2-h2", "full-width heads: compute ×h", "×4 (attention)",
          f"attention FLOPs ×{flop_ratio:.2f} (W_O is fixed but still multiplied); training time ×{time_ratio:.2f}",
          holds=abs(flop_ratio - 4) < 0.01),
    Claim("S001-DQ2-h3", "do averaged heads still specialise?", "question",
          f"JS diversity {div_avg:.3f} averaged vs {div_std:.3f} standard", holds=div_avg > 0,
          verdict=dq2_answer),
    Claim("S004-E03", "one head asks one question at a time; two lookups need two heads", "1 head fails",
          f"pair lookup, width {D_LOOK}, {STEPS_LOOK} steps: 1 head {acc[1]}, 2 heads {acc[2]}; the single "
          f"head weights the two entries {float(one_head[0]):.2f} / {float(one_head[1]):.2f}",
          holds=gap > acc_range, verdict=look_answer + " (at this budget)"),
    Claim("S001-Preview1", "several heads are needed for several relations", "needed",
          f"S004-E03: {look_answer}; head sweep: {sweep_answer}", holds=gap > acc_range),
])

# %% [markdown]
# ## What this can and cannot show
#
# - Parameter and FLOP equality across h are exact (counted, built, and checked with PyTorch's
#   profiler); they hold at any scale.
# - The clock depends on the machine and the kernel. Under the fast budget we time one CPU thread;
#   the full budget (the default on a GPU) adds n = 2048 and bigger batches, where fused kernels
#   change the picture again. The direction (more heads, more overhead in the non-fused path) is
#   what we claim.
# - The head-count sweep under the fast budget is a few hundred steps of a tiny model: it can only
#   say whether differences exceed the seed noise at that stage. The full budget (2000 steps, width
#   128, 3 seeds, h up to 32) is sized to show the *shape* of the curve. Neither says anything about
#   BLEU at d_model = 512; for that we cite the paper's numbers, and only the shape is comparable.
# - The two-lookup result is a measurement at one width and budget. It does not show that one head
#   *cannot* solve the task.
#
# ## The essence

# %%
essence("""
Splitting the width into h heads costs nothing in parameters and nothing in multiply-adds: the
same four d×d matrices are reshaped, and h products of size d/h do the same work as one of size d.
It does cost wall-clock time in an explicit implementation (h softmaxes, smaller products). What it
buys is several separate attention distributions per position, so several places can be read at
once; one head can still read two places by weighting them unequally, so the advantage is one of
ease, measured above, not a hard limit. How many heads is a mild choice: the original paper saw
0.9 BLEU from worst to best, with 8 and 16 tied; the document's table of large gains and doubling
training times is not in that paper.
""")

# %% [markdown]
# ## Exercises
#
# **1.** With grouped-query attention, 32 query heads share 8 key/value heads at d_model = 4096.
# By what fraction do the attention parameters of one layer shrink compared with 32 full heads?

# %% tags=["solution"] jupyter={"source_hidden": true}
# Solution. Q and O stay d² each; K and V shrink from d² to d²/4 each: 4d² → 2.5d², a 37.5% cut.
full = breakdown(ModelConfig(vocab_size=1, dim=4096, n_layers=1, n_heads=32)).attention
grouped = breakdown(ModelConfig(vocab_size=1, dim=4096, n_layers=1, n_heads=32, n_kv_heads=8)).attention
print(f"{full:,} → {grouped:,}: {1 - grouped / full:.1%} fewer")
assert abs(1 - grouped / full - 0.375) < 1e-9

# %% [markdown]
# **2.** In the pair-lookup task, a single head that splits its weight evenly over the two asked
# entries receives the *sum* of their value vectors. If values were coded by key-independent vectors
# (value v → u_v), which ordered answers could such a head never tell apart? Count them for
# V = 4 values.

# %% tags=["solution"] jupyter={"source_hidden": true}
# Solution. u_a + u_b = u_b + u_a: the answers (a, b) and (b, a) with a ≠ b collide, i.e. V(V-1)/2
# pairs of answers; only the V answers with a == b are unambiguous.
V = 4
pairs = {(a, b) for a in range(V) for b in range(V)}
collisions = {frozenset((p, (p[1], p[0]))) for p in pairs if p[0] != p[1]}
print(f"{len(collisions)} indistinguishable pairs of answers out of {V * V} answers")
assert len(collisions) == V * (V - 1) // 2
