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
# # 19 Gradient accumulation: when is it a big batch?
#
# A GPU that cannot hold a batch of 32 sequences can still take the *step* of a batch of 32: run 8
# micro-batches of 4, add up their gradients, then update once. Is that really the same step? And
# what is the division by the number of micro-batches for?
#
# ## The questions
#
# **S000-Q8** 「为什么要用梯度累积，不直接用大batch_size？」 (the surface answer: 「显存不够。」)
# *Why use gradient accumulation instead of simply a large batch size? ("Not enough GPU memory.")*
#
# **S000-Q8.1** 「梯度累积真的和大batch_size完全等价吗？」
# *Is gradient accumulation really exactly equivalent to a large batch?*
#
# **S000-Q8.2** 「为什么要除以accumulation_steps？不除会怎样?」
# *Why divide by accumulation_steps? What happens if you don't?*
#
# **The surface answer.** The document says accumulation exists because memory runs out; that the
# two schemes give mathematically identical gradients, differing only for BatchNorm, in peak memory
# (its table: about 2.5 GB for a batch of 32 against 672 MB for 8 × 4, "73% saved", with activations
# of "32 × 512 × 512 × 8 ≈ 2 GB") and in speed ("100 vs 60 samples/s"). Without the division by 8
# the gradient is 8 times larger, "like an 8 times larger learning rate", which "may explode into NaN".
#
# We test each of these with the course's own `Trainer`: the exactness (to float precision, on equal
# and on ragged data), the division under SGD and under AdamW (the optimizer MiniMind uses), with and
# without clipping, and the memory and speed of micro-batching.

# %%
import re

import torch

from course_lib import CharTokenizer, ModelConfig, PretrainDataset, TrainConfig, Transformer, load_corpus
from course_lib.corpus import train_val_split
from course_lib.lab import accumulation as acc
from course_lib.lab import viz
from course_lib.lab.budget import budget, by_budget, set_budget_threads
from course_lib.lab.measure import saved_tensor_bytes
from course_lib.lab.socratic import Claim, claims_table, essence, predict, reveal

viz.setup()
import matplotlib.pyplot as plt  # noqa: E402

set_budget_threads()
print("budget:", budget())
torch.manual_seed(0)

# %% [markdown]
# ## 1. Is it exactly the same gradient? (S000-Q8.1)
#
# The big batch computes one loss: the mean over **every target token in the batch**. A typical
# accumulation loop computes the mean *within each micro-batch*, divides it by the number of
# micro-batches, and adds up. The two agree only if every micro-batch holds the same number of target
# tokens. With padded, variable-length sequences (SFT data, or documents shorter than the context)
# they do not: a token in a micro-batch of short sequences gets a larger share of the gradient.
#
# The data: sentences of the King James Bible, so lengths vary from a few characters to the full
# context of 64.

# %%
SEQ = 64
docs = load_corpus("kjv", max_chars=by_budget(fast=300_000, full=3_000_000))
train_docs, val_docs = train_val_split(docs)
sentences = [s for d in train_docs for s in re.split(r"(?<=[.;:?!])\s+", d) if len(s) > 2]
tok = CharTokenizer.from_texts(train_docs)
ragged = PretrainDataset(sentences, tok, max_len=SEQ)           # one sentence per row, padded
lengths = [int(ragged[i]["attention_mask"].sum()) for i in range(32)]
print(f"{len(ragged)} rows; target tokens in the first 32 rows: min {min(lengths)}, max {max(lengths)}")

cfg = ModelConfig.tiny(vocab_size=tok.vocab_size, dim=64, n_layers=2, n_heads=4, n_kv_heads=2,
                       ffn_dim=176, max_seq_len=SEQ)

# %%
p_exact = predict("S000-Q8.1",
                  "One batch of 32 ragged rows vs 8 micro-batches of 4, each averaged over its own tokens "
                  "and divided by 8: is the gradient the same?",
                  choices=["identical up to float rounding", "different", "identical only for equal lengths"])

# %% [markdown]
# We let the `Trainer` take one plain-SGD step (no momentum, weight decay or clipping, so the update
# is exactly `-lr × gradient`) from the same initial weights in several layouts, and compare with a
# gradient computed independently: one forward pass over all 32 rows and PyTorch's `cross_entropy`.
# `accum_normalize="per_micro"` is the usual loop; `"global_tokens"` divides every micro-batch by the
# number of target tokens in the whole window, which is what the big batch does.

# %%
LR = 0.1
sgd_plain = TrainConfig(optimizer="sgd", momentum=0.0, weight_decay=0.0, grad_clip=None, lr=LR)
equal_rows = acc.ragged_sequences(32, tok.vocab_size, SEQ, SEQ, seed=1)   # every row 64 targets
data = {"equal lengths": equal_rows, "ragged sentences": [ragged[i] for i in range(32)]}
LAYOUTS = [(32, 1), (4, 8), (1, 32)]
rel = {}
for name, items in data.items():
    ref = acc.reference_gradient(cfg, items, seed=3)
    for mode in ("per_micro", "global_tokens"):
        for bs, accum in LAYOUTS:
            upd = acc.one_step_update(cfg, items, sgd_plain.replace(batch_size=bs, grad_accum_steps=accum,
                                                                    accum_normalize=mode), seed=3)
            rel[name, mode, accum] = acc.relative_diff({n: -u / LR for n, u in upd.items()}, ref)
for (name, mode, accum), r in rel.items():
    print(f"{name:>16}  {mode:>13}  {32 // accum:>2} x {accum:<2}  |Δgrad|/|grad| = {r:.2e}")

# %%
exact_tol = 1e-4  # float32: the same sums added in another order differ by ~1e-5 relative
assert all(r < exact_tol for (n, m, a), r in rel.items() if m == "global_tokens"), rel
assert all(r < exact_tol for (n, m, a), r in rel.items() if n == "equal lengths"), rel
ragged_gap = rel["ragged sentences", "per_micro", 8]
assert ragged_gap > 30 * exact_tol, ragged_gap
reveal(p_exact, measured=f"ragged rows, per-micro mean: {ragged_gap:.1%} off; equal rows or global-token "
                         f"normalisation: ≤ {max(r for k, r in rel.items() if k[1] == 'global_tokens'):.0e}",
       answer="identical only for equal lengths",
       note="Exact when every micro-batch holds the same number of targets, or when each micro-batch "
            "divides by the target count of the whole window.")

# %% [markdown]
# How big is the distortion for a single token? Under the per-micro-batch mean a target token in
# micro-batch *m* weighs `1 / (A · n_m)` instead of `1 / N` (N targets in the window, n_m in its
# micro-batch, A micro-batches). The ratio of the two is `N / (A · n_m)`.

# %%
counts = [sum(lengths[i:i + 4]) - 4 for i in range(0, 32, 4)]  # targets per micro-batch of 4 rows
weights = [sum(counts) / (8 * n) for n in counts]
print("targets per micro-batch:", counts)
print("weight of one token relative to the big batch:", [f"{w:.2f}" for w in weights])
assert max(weights) > 1 > min(weights)

# %% [markdown]
# So on this data some tokens count up to `max(weights)` times more than they would in the big batch.
# The library's `Trainer` uses global-token normalisation by default (the count is taken before
# any backward pass, so the cost is one extra sum), and the difference disappears. Dropout would add
# a second, random difference (each layout draws other masks); the course model uses no dropout by
# default, and BatchNorm (the document's other example) does not occur in LLMs.
#
# ## 2. Why divide by the number of micro-batches? (S000-Q8.2)
#
# Leaving out the division multiplies the accumulated gradient by A = 8. For plain SGD the update is
# `lr × gradient`, so that is an 8 times larger step. Adam divides the first moment by the square
# root of the second: a constant factor on every gradient cancels (up to the tiny ε).

# %%
p_div = predict("S000-Q8.2",
                "With AdamW, forgetting the division by 8 makes the first update how much larger?",
                choices=["about 8x", "about 1x (unchanged)", "NaN"])

# %%
items = acc.ragged_sequences(32, tok.vocab_size, SEQ, SEQ, seed=2)
first_ratio = {}
for opt, lr in (("sgd", 0.1), ("adamw", 1e-3)):
    for clip in (None, 1.0):
        base = TrainConfig(optimizer=opt, lr=lr, momentum=0.0, weight_decay=0.0, grad_clip=clip,
                           batch_size=4, grad_accum_steps=8)
        norms = {m: acc.update_norm(acc.one_step_update(cfg, items, base.replace(accum_normalize=m)))
                 for m in ("per_micro", "none")}
        first_ratio[opt, clip] = norms["none"] / norms["per_micro"]
        print(f"{opt:>5} clip={clip!s:>4}: first update norm without ÷8 / with ÷8 = {first_ratio[opt, clip]:.4f}")

# %%
assert abs(first_ratio["sgd", None] - 8) < 1e-3 * 8           # SGD: exactly the factor 8
assert abs(first_ratio["adamw", None] - 1) < 1e-3             # AdamW: the factor cancels
assert first_ratio["sgd", 1.0] < first_ratio["sgd", None]     # clipping absorbs part (or all) of it
reveal(p_div, measured=f"SGD {first_ratio['sgd', None]:.3f}x, AdamW {first_ratio['adamw', None]:.4f}x",
       answer="about 1x (unchanged)",
       note="The '8x learning rate' reading is right for SGD and wrong for Adam-type optimizers.")

# %% [markdown]
# One step is not a training run: Adam's second moment and clipping interact with the scale over
# time. We train for a few dozen steps in each setting, two seeds each: SGD with momentum and AdamW,
# with and without the division, with and without clipping at 1.0. A run that produces a non-finite
# loss or gradient stops there, and we count it as diverged.

# %%
STEPS = by_budget(fast=30, full=300)
SEEDS = by_budget(fast=(0, 1), full=(0, 1, 2))
sentence_rows = PretrainDataset(sentences, tok, max_len=SEQ)
SETTINGS = [(opt, clip, mode) for opt in ("sgd", "adamw") for clip in (None, 1.0) for mode in ("per_micro", "none")]
LRS = {"sgd": 0.3, "adamw": 1e-2}
runs = {}
for opt, clip, mode in SETTINGS:
    tc = TrainConfig(optimizer=opt, lr=LRS[opt], momentum=0.9, weight_decay=0.0, grad_clip=clip,
                     batch_size=4, grad_accum_steps=8, max_steps=STEPS, accum_normalize=mode,
                     schedule="cosine", warmup_steps=STEPS // 10)
    runs[opt, clip, mode] = [acc.train_run(cfg, sentence_rows, tc, seed=s) for s in SEEDS]


def final(run):
    history, diverged_at = run
    return float("nan") if diverged_at is not None else history.loss[-1]


fig, axes = plt.subplots(1, 2, figsize=(11, 3.6), sharey=True)
for ax, opt in zip(axes, ("sgd", "adamw")):
    for clip in (None, 1.0):
        for mode, style in (("per_micro", "-"), ("none", "--")):
            h, d = runs[opt, clip, mode][0]
            label = f"{'÷8' if mode == 'per_micro' else 'no ÷'}, clip {clip}" + (f" (diverged at {d})" if d else "")
            ax.plot(h.step, h.loss, style, label=label)
    ax.set_title(f"{opt}, lr {LRS[opt]}"); ax.set_xlabel("optimizer step"); ax.set_yscale("log")
    ax.legend(fontsize=8)
axes[0].set_ylabel("training loss (nats/token, log scale)")
fig.tight_layout();

# %%
print(f"{'setting':<28} {'diverged':>9} {'final loss per seed':>24}")
for key, rs in runs.items():
    print(f"{str(key):<28} {sum(d is not None for _, d in rs):>5}/{len(rs)}   "
          + ", ".join(f"{final(r):.3f}" for r in rs))

# %%
def spread(key):
    vals = [final(r) for r in runs[key]]
    return min(vals), max(vals)


adam_gap = abs(sum(map(final, runs["adamw", None, "none"])) - sum(map(final, runs["adamw", None, "per_micro"]))) / len(SEEDS)
adam_range = max(spread(("adamw", None, m))[1] - spread(("adamw", None, m))[0] for m in ("none", "per_micro"))
sgd_noclip_div = sum(d is not None for _, d in runs["sgd", None, "none"])
sgd_clip_div = sum(d is not None for _, d in runs["sgd", 1.0, "none"])
print(f"AdamW without ÷8 vs with: mean final-loss gap {adam_gap:.4f}, seed range {adam_range:.4f}")
print(f"SGD without ÷8: diverged {sgd_noclip_div}/{len(SEEDS)} without clipping, {sgd_clip_div}/{len(SEEDS)} with it")
adam_same = adam_gap <= max(adam_range, 0.02)
assert adam_same, (adam_gap, adam_range)   # AdamW does not care about the factor 8 here either
assert sgd_clip_div <= sgd_noclip_div      # clipping never makes the missing division worse

# %% [markdown]
# At this learning rate SGD without the division is the run to watch: whether it diverges depends
# on how close `8 × lr` is to the stability limit, which is why the assert above only says clipping
# does not make it worse. AdamW reaches the same loss either way (the printed gap against the seed
# range), and with clipping the size of the gradient hardly matters to any optimizer: the clipped
# gradient has norm 1.0 in both cases.
#
# ## 3. Memory and speed: why accumulate at all? (S000-Q8)
#
# Accumulation trades time for memory: the activations that backward needs scale with the
# micro-batch, while weights, gradients and optimizer state do not. We measure the activation bytes
# exactly (every tensor autograd saves for backward) for the document's MiniMind-26M model at
# sequence length 512, for a few micro-batch sizes.

# %%
p_mem = predict("S000-Q8",
                "MiniMind-26M, seq 512, fp32: activation memory for one micro-batch of 32 sequences?",
                choices=["about 2 GB (the document)", "well under 1 GB", "well over 2 GB"])

# %%
big = ModelConfig.minimind_26m()
torch.manual_seed(0)
model26 = Transformer(big)
MEM_BATCHES = by_budget(fast=(1, 2), full=(1, 2, 4, 8))
act_bytes = {}
for b in MEM_BATCHES:
    ids = torch.randint(0, big.vocab_size, (b, 512))
    act_bytes[b] = saved_tensor_bytes(lambda: model26(ids, labels=ids).loss)
per_seq = (act_bytes[MEM_BATCHES[-1]] - act_bytes[MEM_BATCHES[0]]) / (MEM_BATCHES[-1] - MEM_BATCHES[0])
fixed = act_bytes[MEM_BATCHES[0]] - per_seq * MEM_BATCHES[0]
state_bytes = sum(p.numel() for p in model26.parameters()) * 4 * 4   # weights, grads, Adam m and v
print({b: f"{v / 2**20:.0f} MiB" for b, v in act_bytes.items()})
print(f"activations: {per_seq / 2**20:.1f} MiB per sequence; weights + grads + AdamW state {state_bytes / 2**20:.0f} MiB")
act32, act4 = fixed + 32 * per_seq, fixed + 4 * per_seq
print(f"batch 32: {act32 / 2**30:.2f} GiB activations; micro-batch 4: {act4 / 2**30:.2f} GiB")
print(f"the document's product 32 x 512 x 512 x 8 = {32 * 512 * 512 * 8 / 1e6:.0f} M values "
      f"= {32 * 512 * 512 * 8 * 4 / 2**20:.0f} MiB in fp32, not 2 GB")

# %%
linear = abs(act_bytes[MEM_BATCHES[0]] * MEM_BATCHES[-1] / MEM_BATCHES[0] - act_bytes[MEM_BATCHES[-1]]) \
    < 0.02 * act_bytes[MEM_BATCHES[-1]]
assert linear, act_bytes                       # activation memory is proportional to the micro-batch
answer_mem = ("well over 2 GB" if act32 > 2.5 * 2**30 else "well under 1 GB" if act32 < 2**30
              else "about 2 GB (the document)")
reveal(p_mem, measured=f"{act32 / 2**30:.1f} GiB at batch 32 (exactly linear in the batch)", answer=answer_mem,
       note="The document's formula counts one value per token, hidden unit and layer; a real block "
            "keeps dozens (attention inputs, SwiGLU branches, norms, logits).")
saving = 1 - (act4 + state_bytes) / (act32 + state_bytes)

# %% [markdown]
# The memory saving of 8 × 4 is therefore real and larger than the document's 73% (measured:
# printed above as `saving`). What does it cost in speed? On this CPU we time whole optimizer steps
# of a fixed global batch of 32 in several layouts with the small model.

# %%
print(f"peak activation + state memory saved by 8 x 4 instead of 32: {saving:.0%}")
throughput = {}
for bs in (32, 8, 4, 1):
    tc = TrainConfig(batch_size=bs, grad_accum_steps=32 // bs, weight_decay=0.0)
    throughput[bs] = max(acc.step_throughput(cfg, sentence_rows, tc, steps=2, seed=s) for s in (0, 1))
print({f"{32 // b} x {b}": f"{v:.0f} samples/s" for b, v in throughput.items()})
slowdown = throughput[32] / throughput[4]
ax = viz.plot_curves({"small model, CPU": (list(throughput), list(throughput.values()))},
                     xlabel="micro-batch size (global batch 32)", ylabel="training samples / s",
                     logx=True, marker="o", title="Throughput against micro-batch size")
ax.axhline(throughput[32] * 0.6, color="gray", ls=":", label="document: 8 x 4 at 60% of batch 32")
ax.legend();

# %%
assert throughput[32] > throughput[1]       # tiny micro-batches waste the hardware
print(f"batch 32 is {slowdown:.2f}x faster than 8 x 4 here (document: 100/60 = 1.67x)")

# %% [markdown]
# On a CPU with a tiny model the per-call overhead dominates small micro-batches; on a GPU the
# micro-batch must be large enough to fill the device, and the slowdown of 8 × 4 against 32 depends
# on whether 4 sequences already do. The document's "100 vs 60 samples/s" is a single unsourced pair
# of numbers; the full budget times the same layouts on whatever device runs it.
#
# ## Claims

# %%
claims_table([
    Claim("S000-Q8", "accumulation exists to save memory", "memory is the reason",
          f"activations {act32 / 2**30:.1f} GiB at batch 32 vs {act4 / 2**30:.2f} GiB at micro-batch 4",
          holds=act4 < act32 / 4),
    Claim("S000-Q8.1", "the two schemes give identical gradients", "identical",
          f"per-micro mean on ragged rows: {ragged_gap:.1%} off; global-token: < {exact_tol:g}",
          holds=ragged_gap < exact_tol, verdict="only with equal target counts or global-token normalisation"),
    Claim("S000-Q8.1", "activations of batch 32: 32×512×512×8 ≈ 2 GB", "≈ 2 GB",
          f"the product is {32 * 512 * 512 * 8 * 4 / 2**20:.0f} MiB; measured {act32 / 2**30:.1f} GiB",
          holds=abs(act32 / 2**30 - 2) < 0.5),
    Claim("S000-Q8.1", "8 × 4 saves 73% of peak memory", "73%", f"{saving:.0%} (activations + fp32 AdamW state)",
          holds=abs(saving - 0.73) < 0.05),
    Claim("S000-Q8.1", "batch 32 vs 8 × 4: 100 vs 60 samples/s", "1.67x",
          f"{slowdown:.2f}x on this CPU, small model", holds=abs(slowdown - 1.67) < 0.25,
          verdict="device- and size-dependent; the numbers are unsourced"),
    Claim("S000-Q8.2", "no ÷8 = 8x learning rate, may explode to NaN", "8x step",
          f"first update: SGD {first_ratio['sgd', None]:.2f}x, AdamW {first_ratio['adamw', None]:.3f}x",
          holds=abs(first_ratio["adamw", None] - 8) < 1, verdict="true for SGD only (§7 #2)"),
    Claim("S000-Q8.2", "without ÷8 training may explode into NaN", "NaN possible",
          f"SGD lr {LRS['sgd']}: diverged {sgd_noclip_div}/{len(SEEDS)} unclipped, {sgd_clip_div}/{len(SEEDS)} "
          f"clipped; AdamW: {sum(d is not None for k in SETTINGS if k[0] == 'adamw' for _, d in runs[k])} runs",
          holds=sgd_noclip_div > 0, verdict="for unclipped SGD; clipping or AdamW prevents it here"),
    Claim("S000-Q8.2", "with AdamW the missing ÷8 changes training", "harmful",
          f"final-loss gap {adam_gap:.4f} vs seed range {adam_range:.4f}", holds=not adam_same),
])

# %% [markdown]
# ## What this can and cannot show
#
# The exactness results are exact at any budget. The training curves under the fast budget are 30
# steps of a small model: enough to see SGD's factor-8 step and AdamW's indifference, too short to say
# anything about the final quality of a long run. The full budget trains 300 steps over three seeds.
# Memory is counted exactly (bytes autograd saves), but it is CPU fp32; on a GPU with bf16 autocast
# the activations are roughly halved, the proportionality to the micro-batch is the same. Speed on this
# CPU says nothing about a GPU's speed; run the notebook there for the full budget's figure.
#
# ## The essence

# %%
essence("""
Accumulation buys the update of a big batch with the memory of a small one: activations grow in
proportion to the micro-batch, while weights, gradients and optimizer state do not. The update is the
same only if every micro-batch is weighted by its share of the target tokens; the common "mean per
micro-batch, divided by the number of micro-batches" over-weights tokens in short micro-batches.
Dividing by the number of micro-batches matters for SGD, where the gradient scale is the step size,
and hardly at all for Adam, which normalises the gradient's scale away, or under clipping.
""")

# %% [markdown]
# ## Exercises
#
# **1.** Sequence-mean loss. With `loss_reduction="seq_mean"` every *sequence* weighs the same. Is the
# per-micro-batch mean exact for ragged rows then, as long as every micro-batch holds the same number
# of sequences? Check with one SGD step.

# %% tags=["solution"] jupyter={"source_hidden": true}
# Solution. Yes: each micro-batch's mean over its 4 sequences, divided by 8, is the mean over all 32.
rows = [ragged[i] for i in range(32)]
seq_cfg = sgd_plain.replace(loss_reduction="seq_mean")
a = acc.one_step_update(cfg, rows, seq_cfg.replace(batch_size=32, grad_accum_steps=1), seed=3)
b = acc.one_step_update(cfg, rows, seq_cfg.replace(batch_size=4, grad_accum_steps=8, accum_normalize="per_micro"), seed=3)
print(f"relative difference: {acc.relative_diff(b, a):.2e}")
assert acc.relative_diff(b, a) < 1e-5

# %% [markdown]
# **2.** Momentum. Plain SGD with momentum 0.9 and no division: after many steps of a constant
# gradient, how much larger is the step than with the division? (Momentum multiplies both by the same
# 1/(1-0.9), so the ratio stays 8.) Verify on the first step.

# %% tags=["solution"] jupyter={"source_hidden": true}
# Solution. Momentum is linear in the gradient, so the factor 8 survives unchanged.
mom = TrainConfig(optimizer="sgd", lr=0.1, momentum=0.9, weight_decay=0.0, grad_clip=None, batch_size=4,
                  grad_accum_steps=8)
r = acc.update_norm(acc.one_step_update(cfg, items, mom.replace(accum_normalize="none"))) / \
    acc.update_norm(acc.one_step_update(cfg, items, mom.replace(accum_normalize="per_micro")))
print(f"ratio with momentum: {r:.4f}")
assert abs(r - 8) < 1e-2
