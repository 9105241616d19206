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
# # 21 ★ The KV cache: prefill vs decode, and what GQA/MQA save
#
# A language model writes one token at a time. Every new token needs attention over all the tokens
# before it, and attention needs their keys and values. Recomputing those for the whole prefix at
# every step would be wasteful; keeping them is the *KV cache*. This notebook checks that the cache
# changes nothing about the output, measures what it buys, counts what it costs in memory, and looks
# at the two phases of generation: reading the prompt (*prefill*) and writing the answer (*decode*).
#
# ## The questions
#
# **S000-Q11** 「为什么推理时要用KV Cache，训练时不用？」
# *Why use a KV cache at inference time but not in training?*
#
# **S000-Q11.1** 「训练时KV也可以缓存啊，为什么不用？」
# *Keys and values could be cached in training too, so why aren't they?*
#
# **S000-Q11.2** 「KV Cache占用的内存会不会成为瓶颈？如何优化？」
# *Does the KV cache's memory become a bottleneck? How is it optimised?*
#
# **S001-DQ4** 「你说"GPU不是瓶颈"。但如果 batch_size=1, n=512, h=8，等效batch只有8，GPU利用率会很低。如何优化这种情况？」
# *"The GPU is not the bottleneck", you said. But with batch_size=1, n=512, h=8 the effective batch
# is only 8 and GPU utilisation will be low. How do we improve that?*
# Its thinking hints:
# **S001-DQ4-h1** 「动态batching如何帮助？」 *How does dynamic batching help?*
# **S001-DQ4-h2** 「能否合并多个用户请求？」 *Can several users' requests be merged?*
# **S001-DQ4-h3** 「KV缓存如何影响并行度？」 *How does the KV cache affect parallelism?*
#
# **S004-N2** (a claim in the book chapter, not a question) 「大语言模型通读长提示词的速度远快于生成长补全内容的速度。两者的速度与词元数量呈线性增长，但读取提示词的词元速度要快一个数量级左右。」
# *A model reads a long prompt much faster than it writes a long completion. Both grow linearly
# with the number of tokens, but reading is about an order of magnitude faster per token.*
#
# **The surface answer.** The first document says that during inference the keys and values of
# past tokens do not change, so they can be stored, and that training computes every position at
# once so there is nothing to reuse. It then puts numbers on it: a cache of "512×8×2×512 = 4MB" per
# sample, a cached generation "8.3× faster" (1000 ms vs 120 ms), a LLaMA-7B example with 4 KV heads
# and a 64 MB cache, savings of 87.5% (GQA) and 96.8% (MQA), and quality costs for GQA, MQA, paging
# and int8 caches. The second document asks how to keep hardware busy when one user decodes alone.
# We measure each of these.

# %%
import math

import torch

from course_lib import ModelConfig, Transformer, generate, load_pretrained
from course_lib.lab import viz
from course_lib.lab.budget import budget, by_budget, set_budget_threads
from course_lib.lab import decode_cost as inf
from course_lib.lab.socratic import Claim, claims_table, essence, predict, reveal

viz.setup()
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import NullFormatter, ScalarFormatter  # noqa: E402


def plain_log_ticks(ax, xs):
    """Log axes labelled with plain numbers: ticks at the measured x values."""
    ax.set_xticks(xs, [str(x) for x in xs])
    ax.xaxis.set_minor_formatter(NullFormatter())
    if ax.get_yscale() == "log":
        ax.yaxis.set_major_formatter(ScalarFormatter())
        ax.yaxis.set_minor_formatter(NullFormatter())

torch.manual_seed(0)
THREADS = set_budget_threads()             # the course's thread policy; see "About the timings" below
REPEATS = by_budget(fast=3, full=7)        # timings: median of this many runs
print(f"budget: {budget()}, {THREADS} CPU thread(s)")

# %% [markdown]
# Two kinds of model serve here. Where the *text* matters (is the output the same? is it readable?)
# we use the small pretrained Chinese model that ships with the course. Where only *speed and memory*
# matter, a freshly initialised model with the shapes we want is just as good: a matrix multiply
# costs the same whatever numbers are in it.

# %%
lm, tok = load_pretrained()
lm.eval()
print(lm.config.n_layers, "layers,", lm.config.n_heads, "heads,", lm.config.n_kv_heads, "KV heads,",
      f"{lm.num_parameters() / 1e6:.1f} M parameters")

# %% [markdown]
# **About the timings.** Every time below is the median of several runs, and every ratio compares two
# things measured back to back in the same process. Under the fast budget everything runs on one CPU
# thread (`set_budget_threads()`): for models this small a second thread barely helps, and on a machine that is busy
# with other work, threads waiting for each other can make timings swing wildly. All timed models stay
# on the CPU, even when a GPU is present (repeating the timings on a GPU is a good exercise: expect the
# batch-1 decode to waste even more of the hardware). Your absolute numbers will differ from anyone
# else's; the ratios and the shapes of the curves are the result.
#
# ## 1. Does the cache change the answer? (S000-Q11)
#
# With a cache, step t feeds only the newest token and attends over stored keys and values. Without
# one, step t reruns the whole sequence. If the stored keys and values were stale in any way, the two
# would disagree.

# %%
p_same = predict("S000-Q11", "Greedy decoding with and without the KV cache, 48 new tokens: the tokens are ...",
                 choices=["identical", "identical at first, then drift apart", "different from the start"])

# %%
prompt_text = "今天天气很好，我们"
prompt = torch.tensor([tok.encode(prompt_text)])
N_SAME = 48
tokens_cached, logits_cached = inf.cached_decode_logits(lm, prompt, N_SAME)   # step by step, with the cache
logits_full = inf.recompute_logits(lm, tokens_cached, N_SAME)                 # one uncached forward
gen_cached = generate(lm, prompt, N_SAME, temperature=0.0, use_cache=True)
gen_full = generate(lm, prompt, N_SAME, temperature=0.0, use_cache=False)

max_dlogit = (logits_cached - logits_full).abs().max().item()
logit_scale = logits_full.abs().max().item()
print("continuation:", tok.decode(gen_cached[0, prompt.shape[1]:].tolist()))
print(f"max |logit difference| = {max_dlogit:.2e} (largest logit {logit_scale:.1f})")
print("same tokens (sampler, cache on vs off):", torch.equal(gen_cached, gen_full))

# %%
assert torch.equal(gen_cached, gen_full), "cached and uncached greedy decoding disagree"
assert torch.equal(gen_cached, tokens_cached)
assert max_dlogit < 1e-4 * max(1.0, logit_scale), max_dlogit
reveal(p_same, measured="identical", note=f"logits agree to {max_dlogit:.1e}: only float rounding differs")

# %% [markdown]
# Why this holds: with the causal mask, position i only ever looks at positions ≤ i, and the weights
# do not change while we generate. So the key and value of position i are the same numbers whether we
# compute them at step i or at step i + 100. (In a model *without* the causal mask, old positions
# would attend to new ones and their keys would change every step; the library refuses a cache there.)
#
# ## 2. Why not in training, and what does the cache buy? (S000-Q11.1)
#
# In training we know the whole sequence in advance, so one forward pass computes the keys and values
# of every position exactly once, all in parallel. There is no second step that could reuse them.
# The waste the cache removes exists only when tokens arrive one at a time. We can count it: without a
# cache, generating n tokens after a prompt of P processes P + (P+1) + ... + (P+n-1) positions; with a
# cache, P + n - 1; a training step over the same text, P + n - 1, once.

# %%
P = prompt.shape[1]
for n in (16, 128, 1024):
    uncached = sum(P + t for t in range(n))
    cached = P + n - 1
    print(f"n = {n:5d}: positions processed uncached {uncached:8,d}, cached {cached:6,d} "
          f"(x{uncached / cached:.0f}); one training forward over the same text: {cached:,d}")

# %% [markdown]
# The counting says the saving grows with the length generated. The document gives one number, "8.3×
# faster". Predict the speed-up at the longest length we time.

# %%
LENGTHS = by_budget(fast=[8, 32, 96], full=[16, 64, 128, 240])
p_speed = predict("S000-Q11.1", f"How many times faster is cached greedy generation at {LENGTHS[-1]} new tokens "
                  "(small pretrained model, this machine)?", kind="number")

# %%
# NBVAL_IGNORE_OUTPUT
speed, t_cached = {}, {}
with inf.threads(THREADS):
    for n in LENGTHS:
        r = inf.generation_speedup(lm, prompt, n, repeats=by_budget(fast=2, full=5))
        speed[n], t_cached[n] = r["speedup"], r["cached_s"]
        print(f"{n:5d} new tokens: cached {r['cached_s'] * 1e3:7.1f} ms, uncached {r['uncached_s'] * 1e3:8.1f} ms, "
              f"speed-up x{r['speedup']:.1f}")

fig, ax = plt.subplots()
ax.plot(LENGTHS, [speed[n] for n in LENGTHS], "o-", label="measured")
ax.axhline(8.3, color="grey", ls="--", label='document: "8.3x"')
ax.set(xlabel="new tokens", ylabel="speed-up (uncached / cached time)", xscale="log",
       title="What the cache buys grows with the length")
plain_log_ticks(ax, LENGTHS)
ax.legend();

# %%
assert speed[LENGTHS[-1]] > 1.5, speed                 # the cache pays off at the longest length ...
assert speed[LENGTHS[-1]] > speed[LENGTHS[0]], speed   # ... and pays off more, the longer we generate
reveal(p_speed, measured=speed[LENGTHS[-1]], tolerance=0.5)

# %% [markdown]
# There is no single speed-up: it depends on how long we generate (and on the prompt, the model and
# the hardware). Without a cache, step t re-processes all t positions through every layer. With it,
# step t processes one new position; only its attention still reads the t cached keys and values, so
# even a cached step gets slower as the context grows (section 6 measures that), but that reading is
# a small share of the work at these lengths. Any fixed ratio such as "8.3×" describes one length on
# one machine.
#
# ## 3. What the cache costs in memory (S000-Q11.2)
#
# The cache holds, per layer, a key and a value vector for every KV head and every token:
#
# **bytes = 2 × layers × KV heads × head_dim × tokens × batch × bytes per number.**
#
# Grouped-query attention (GQA) lets several query heads share one KV head, so only the KV heads are
# stored; multi-query attention (MQA) keeps a single one. We check the formula against the bytes the
# library's cache really holds, for a MiniMind-shaped model (8 layers, 8 query heads of 64) with 8, 4, 2
# and 1 KV heads.

# %%
p_mqa = predict("S000-Q11.2", "8 query heads: going from 8 KV heads (MHA) to 1 (MQA) shrinks the cache by what fraction?",
                kind="number")

# %%
MEM_TOKENS = 32
mem = {}
for n_kv in (8, 4, 2, 1):
    torch.manual_seed(0)
    m = Transformer(ModelConfig.minimind_26m(n_kv_heads=n_kv)).eval()
    cache = m.new_kv_cache(1, MEM_TOKENS)
    with torch.no_grad():
        m(torch.randint(0, m.config.vocab_size, (1, MEM_TOKENS)), kv_cache=cache)   # a real prefill
    mem[n_kv] = {"measured": cache.nbytes(), "formula": inf.kv_cache_bytes(m.config, MEM_TOKENS, 1, torch.float32)}
    print(f"n_kv_heads={n_kv}: measured {mem[n_kv]['measured']:>8,d} B, formula {mem[n_kv]['formula']:>8,d} B "
          f"({mem[n_kv]['measured'] / MEM_TOKENS:,.0f} B per token, float32)")
del m, cache
saving_mqa = 1 - mem[1]["measured"] / mem[8]["measured"]

# %%
assert all(v["measured"] == v["formula"] for v in mem.values())
assert [mem[h]["measured"] for h in (8, 4, 2, 1)] == sorted((mem[h]["measured"] for h in (8, 4, 2, 1)), reverse=True)
reveal(p_mqa, measured=saving_mqa, tolerance=0.05)

# %% [markdown]
# The document's percentages are for 32 query heads: 87.5% for GQA with 4 KV heads, 96.8% for MQA.
# Compare like with like: real caches of a model with 32 query heads of 128 and 32, 4 or 1 KV heads.

# %%
wide_bytes = {}
for n_kv in (32, 4, 1):
    wide = Transformer(ModelConfig(vocab_size=64, dim=256, n_layers=1, n_heads=32, n_kv_heads=n_kv, head_dim=128,
                                   max_seq_len=MEM_TOKENS)).eval()
    cache = wide.new_kv_cache(1, MEM_TOKENS)
    with torch.no_grad():
        wide(torch.randint(0, 64, (1, MEM_TOKENS)), kv_cache=cache)
    wide_bytes[n_kv] = cache.nbytes()
saving_gqa32, saving_mqa32 = 1 - wide_bytes[4] / wide_bytes[32], 1 - wide_bytes[1] / wide_bytes[32]
print(f"32 query heads: 32 -> 4 KV heads saves {saving_gqa32:.3%}, 32 -> 1 saves {saving_mqa32:.3%} of the cache")
assert abs(saving_gqa32 - 0.875) < 1e-9 and abs(saving_mqa32 - 31 / 32) < 1e-9, "the cache scales with KV heads exactly"

# %% [markdown]
# Now the document's numbers. Its training example counts "512 × 8 × 2 × 512 = 4MB": tokens × layers ×
# (K and V) × hidden size. That product is a number of *elements*, not bytes, and the width of the
# cache is KV heads × head_dim, which for MiniMind's GQA (2 × 64 = 128) is not the hidden size 512.
# It then multiplies a batch's 128MB by 512 steps, "65GB", for caching during training: but a training
# step computes each position's keys and values once, and the next step changes the weights, so
# nothing from one step is valid in the next. What a training step really holds is one batch's K/V.
# Its LLaMA-7B example gives the model 4 KV heads; LLaMA-7B has 32 (it is plain multi-head attention;
# grouped-query attention came with the larger Llama 2 models and with Llama 3). The formula, now that
# it has been checked against real tensors, gives the correct figures.

# %%
MiB, GiB = 2 ** 20, 2 ** 30
doc_elements = 512 * 8 * 2 * 512
doc_mb = {"fp16": doc_elements * 2 / MiB, "fp32": doc_elements * 4 / MiB}
minimind_512 = inf.kv_cache_bytes(ModelConfig.minimind_26m(), 512, 1, "fp16") / MiB
card = inf.MODEL_CARDS["LLaMA-7B"]
llama7b = inf.kv_cache_bytes(card, 2048, 1, "fp16") / GiB
doc_llama_layer = inf.kv_cache_bytes((1, 4, 128), 2048, 1, "fp16") / MiB     # their "2MB" per layer
doc_llama_total = inf.kv_cache_bytes((32, 4, 128), 2048, 1, "fp16") / MiB    # their "64MB"
print(f"'512×8×2×512 = 4MB': {doc_elements:,} elements = {doc_mb['fp16']:.0f} MiB in fp16, {doc_mb['fp32']:.0f} MiB in fp32")
print(f"MiniMind-26M (GQA, 2 KV heads), 512 tokens, fp16: {minimind_512:.0f} MiB per sequence")
print(f"LLaMA-7B as published ({card.attention}, {card.n_kv_heads} KV heads), 2048 tokens, fp16: {llama7b:.2f} GiB per sequence")
print(f"the document's hypothetical 4-KV-head LLaMA-7B: {doc_llama_layer:.0f} MiB per layer, {doc_llama_total:.0f} MiB in all")
print(f"   [{card.citation}]")
doc_65 = 128 * 512 / 1024                                                    # "128MB × 512 steps", in GiB
train_kv = inf.kv_cache_bytes(ModelConfig.minimind_26m(), 512, 32, "fp16") / MiB   # one batch of 32 x 512
print(f"'128MB × 512 steps = 65GB' is {doc_65:.0f} GiB; the K/V a MiniMind-26M training step computes for a batch "
      f"of 32 × 512 tokens (fp16) is {train_kv:.0f} MiB, once")

# %%
rows = []
for name, c in inf.MODEL_CARDS.items():
    per_tok = inf.kv_bytes_per_token(c, "fp16")
    rows.append((name, c.attention, c.n_kv_heads, per_tok / 1024, inf.kv_cache_bytes(c, c.context, 1, "fp16") / GiB))
print(f"{'model':14s} {'attn':4s} {'KV heads':>8s} {'KiB/token':>10s} {'GiB at full context':>20s}  (fp16, one sequence)")
for r in rows:
    print(f"{r[0]:14s} {r[1]:4s} {r[2]:8d} {r[3]:10.1f} {r[4]:20.3f}")

# %%
assert abs(llama7b - 1.0) < 1e-12                      # 2·32·32·128·2048·2 B is exactly 1 GiB
assert abs(doc_llama_total / 64 - 2.0) < 1e-12          # even their own config is 128 MiB, not 64 MB

# %% [markdown]
# What does sharing KV heads cost in quality? The document says GQA loses "<2%" and MQA "5-10%",
# without a source. We can only measure it at toy scale: small character-level models on the King
# James Bible with the same query heads and different numbers of KV heads, trained for the same steps.
# The fast budget trains for seconds, so the gap mostly says which model learns faster early on: read
# it as a toy-scale measurement, not a property of large models. (The GQA paper, Ainslie et al. 2023,
# reports quality close to MHA for uptrained T5 models, with MQA a little lower.)

# %%
# NBVAL_IGNORE_OUTPUT
from course_lib import CharTokenizer, PackedDataset, TrainConfig, Trainer, load_corpus  # noqa: E402
from course_lib.corpus import train_val_split  # noqa: E402
from course_lib.lab.probes import dataset_loss  # noqa: E402

kjv = load_corpus("kjv", max_chars=by_budget(fast=300_000, full=2_000_000))
kjv_train, kjv_val = train_val_split(kjv, 0.1)
ctok = CharTokenizer.from_texts(kjv)
gqa_train, gqa_val = PackedDataset(kjv_train, ctok, block_size=64), PackedDataset(kjv_val, ctok, block_size=64)
GQA_SIZE = by_budget(fast=dict(dim=64, n_layers=2, n_heads=4), full=dict(dim=256, n_layers=4, n_heads=8))
KV_CHOICES = by_budget(fast=[4, 1], full=[8, 4, 2, 1])
gqa_loss = {}
for n_kv in KV_CHOICES:
    torch.manual_seed(0)
    m = Transformer(ModelConfig(vocab_size=ctok.vocab_size, n_kv_heads=n_kv, max_seq_len=64, **GQA_SIZE))
    Trainer(m, gqa_train, TrainConfig(batch_size=by_budget(fast=16, full=32), max_steps=by_budget(fast=120, full=2000), lr=5e-3,
                                      warmup_steps=10, log_every=0, progress=False, seed=0)).fit()
    gqa_loss[n_kv] = dataset_loss(m, gqa_val, max_items=by_budget(fast=256, full=2048))
    print(f"{GQA_SIZE['n_heads']} query heads, {n_kv} KV heads: val loss {gqa_loss[n_kv]:.3f}, "
          f"cache {inf.kv_bytes_per_token(m.config, torch.float32):,.0f} B/token")
mha, mqa = KV_CHOICES[0], KV_CHOICES[-1]
gqa_gap = gqa_loss[mqa] / gqa_loss[mha] - 1
print(f"MQA vs MHA: {gqa_gap:+.1%} loss for {mha}x less cache")

# %%
assert all(math.isfinite(v) and v < math.log(ctok.vocab_size) for v in gqa_loss.values())   # all of them learned
assert abs(gqa_gap) < 0.25, gqa_gap      # sharing one KV head costs some loss at most, no collapse

# %% [markdown]
# Is it a bottleneck? Compare the cache with the weights. For LLaMA-7B in fp16 the weights are about
# 13.5 GB; one 2048-token sequence adds 1 GiB of cache, so a batch of 13 such sequences already holds as
# much cache as model. Serving many users at long context is limited by the cache, which is why GQA,
# MQA, cache quantisation and paged allocation exist.
#
# The document also claims an int8 cache costs "<1%" accuracy. The library can store the cache as int8
# (one scale per head and position); we measure the loss of the pretrained model on a stretch of the corpus with
# an fp32 cache and with an int8 cache.

# %%
from course_lib import load_corpus  # noqa: E402

text = "".join(load_corpus("peoples_daily", max_chars=200_000)[-40:])
ids = torch.tensor(tok.encode(text)[: 4 * (lm.config.max_seq_len - 1) + 4]).view(4, -1)[:, : lm.config.max_seq_len]
with torch.no_grad():
    losses = {}
    for q in (None, "int8"):
        cache = lm.new_kv_cache(ids.shape[0], ids.shape[1], quantize=q)
        losses[q or "fp32"] = lm(ids[:, :-1], labels=ids[:, 1:], kv_cache=cache).loss.item()
        losses[(q or "fp32") + "_bytes"] = cache.nbytes()
int8_rel = losses["int8"] / losses["fp32"] - 1
int8_mem = losses["int8_bytes"] / losses["fp32_bytes"]
print(f"loss with fp32 cache {losses['fp32']:.5f}, with int8 cache {losses['int8']:.5f} ({int8_rel:+.3%}); "
      f"int8 cache is {int8_mem:.0%} of the fp32 bytes (scales included)")

# %%
assert abs(int8_rel) < 0.01, int8_rel      # at this scale the int8 cache costs under 1% of the loss
assert int8_mem < 0.5

# %% [markdown]
# ## 4. Reading vs writing: prefill and decode (S004-N2)
#
# Prefill processes the whole prompt in one forward pass: big matrix multiplies over many positions at
# once. Decode processes one position per step, and every step must read all the weights (and the
# cache) to produce that one token. Per token, which is faster, and by how much?

# %%
p_prefill = predict("S004-N2", "MiniMind-26M shape on this CPU, 256-token prompt: how many times more tokens/s "
                    "does prefill process than decode at the same context?", kind="number")

# %%
# NBVAL_IGNORE_OUTPUT
torch.manual_seed(0)
big = Transformer(ModelConfig.minimind_26m(max_seq_len=2048)).eval()
PD_LENGTHS = by_budget(fast=[16, 64, 256], full=[16, 64, 256, 1024])
with inf.threads(THREADS):
    pd = inf.prefill_vs_decode(big, PD_LENGTHS, repeats=REPEATS)
for r in pd:
    print(f"context {r['length']:5d}: prefill {r['prefill_tok_s']:8,.0f} tok/s, decode {r['decode_tok_s']:6,.0f} tok/s, "
          f"ratio x{r['ratio']:.1f}")
ratio_256 = next(r["ratio"] for r in pd if r["length"] == 256)
# how prefill time grows with the prompt length: the exponent of a power-law fit over the measured range
xs, ys = torch.tensor([math.log(r["length"]) for r in pd]), torch.tensor([math.log(r["prefill_s"]) for r in pd])
prefill_exponent = float(((xs - xs.mean()) * (ys - ys.mean())).sum() / ((xs - xs.mean()) ** 2).sum())
print(f"prefill time grows like length^{prefill_exponent:.2f} over {PD_LENGTHS[0]}..{PD_LENGTHS[-1]} tokens")

fig, ax = plt.subplots()
ax.plot(PD_LENGTHS, [r["prefill_tok_s"] for r in pd], "o-", label="prefill (prompt tokens/s)")
ax.plot(PD_LENGTHS, [r["decode_tok_s"] for r in pd], "s-", label="decode (new tokens/s)")
ax.set(xscale="log", yscale="log", xlabel="prompt length / context", ylabel="tokens per second (log scale)",
       title="Reading the prompt vs writing the answer (batch 1)")
plain_log_ticks(ax, PD_LENGTHS)
ax.legend();

# %%
assert all(r["ratio"] > 2 for r in pd if r["length"] >= 64), pd    # prefill is much faster per token
assert ratio_256 > next(r["ratio"] for r in pd if r["length"] == PD_LENGTHS[0])  # and more so for longer prompts
reveal(p_prefill, measured=ratio_256, tolerance=0.5)

# %% [markdown]
# Per token, prefill wins by a lot, and the longer the prompt the bigger the win, until the
# machine is saturated: a short prompt cannot keep the hardware busy either. "An order of magnitude"
# is the right size on this CPU at a few hundred tokens; on a GPU, where one decode step leaves most
# of the chip idle, the gap is usually larger still. "Linear in the number of tokens" holds only in a
# middle range: for short prompts, prefill time grows *more slowly* than the length (bigger matrix
# multiplies run more efficiently, as the fitted exponent shows), and for long prompts attention's
# share, which grows like the square of the length, makes it grow faster.
#
# ## 5. One user leaves the hardware idle: batching (S001-DQ4, -h1, -h2)
#
# At batch 1, a decode step multiplies every weight matrix by a single vector: the weights must be
# read from memory for two floating-point operations each. Give the same step 32 sequences and the
# same weights serve 32 tokens. This is what serving systems do by merging users' requests (with
# *continuous* or dynamic batching, a new request joins the running batch as soon as a slot frees up).

# %%
p_batch = predict("S001-DQ4-h1", "Decode throughput (tokens/s over the whole batch) at batch 32 vs batch 1?",
                  choices=["about the same", "about 2x", "much more than 2x", "lower"])

# %%
# NBVAL_IGNORE_OUTPUT
BATCHES = by_budget(fast=[1, 4, 16, 32], full=[1, 2, 4, 8, 16, 32, 64])
with inf.threads(THREADS):
    sweep = inf.throughput_vs_batch(big, BATCHES, context_len=128, repeats=REPEATS)
for r in sweep:
    print(f"batch {r['batch']:3d}: step {r['step_s'] * 1e3:7.1f} ms, {r['tok_s']:8,.0f} tokens/s")
batch_gain = sweep[-1]["tok_s"] / sweep[0]["tok_s"]
fig, ax = plt.subplots()
ax.plot(BATCHES, [r["tok_s"] for r in sweep], "o-")
ax.set(xscale="log", xlabel="batch size", ylabel="decode tokens/s (all sequences)",
       title="Decode throughput vs batch (context 128)")
plain_log_ticks(ax, BATCHES);

# %%
assert batch_gain > 2, batch_gain
reveal(p_batch, measured=f"x{batch_gain:.1f}", answer="much more than 2x" if batch_gain > 3
       else ("about 2x" if batch_gain > 1.5 else "about the same"))

# %% [markdown]
# Merging requests only works if every request still gets its own answer. Prompts differ in length,
# so the batch is *left-padded* (the real tokens of every row end at the same column) and an attention
# mask hides the padding; each row's positions start at 0 where its text starts. Check: three prompts,
# decoded together and alone.

# %%
prompts = ["中国", "今天天气很好，我们一起去", "经济"]
rows = [tok.encode(p) for p in prompts]
batch_ids, batch_mask = inf.left_pad(rows, pad_id=tok.pad_id)
N_NEW = 20
together = generate(lm, batch_ids, N_NEW, temperature=0.0, attention_mask=batch_mask, pad_token_id=tok.pad_id)
alone = [generate(lm, torch.tensor([r]), N_NEW, temperature=0.0)[0, len(r):] for r in rows]
for p, a, row in zip(prompts, alone, together[:, batch_ids.shape[1]:]):
    print(f"{p!r:>20} → {tok.decode(row.tolist())!r}   alone identical: {torch.equal(a, row)}")
assert all(torch.equal(a, row) for a, row in zip(alone, together[:, batch_ids.shape[1]:]))

# %% [markdown]
# ## 6. The cache and parallelism (S001-DQ4-h3)
#
# The cache removes recomputation but adds reading: every decode step reads the whole cache of every
# sequence in the batch. With many long sequences that reading, not the weights, dominates. We time one
# decode step as the context grows, at batch 1 and at a large batch.

# %%
# NBVAL_IGNORE_OUTPUT
CONTEXTS = by_budget(fast=[64, 512, 1536], full=[64, 256, 1024, 2000])
BIG_BATCH = by_budget(fast=16, full=32)
step = {b: [float("inf")] * len(CONTEXTS) for b in (1, BIG_BATCH)}
with inf.threads(THREADS):
    for r in range(REPEATS):          # interleaved, fastest of the repeats: load from elsewhere hits all points alike
        for b in step:
            for i, c in enumerate(CONTEXTS):
                step[b][i] = min(step[b][i], inf.decode_step_time(big, c, b, repeats=1, warmup=int(r == 0)))
for b, ts in step.items():
    print(f"batch {b:3d}: " + ", ".join(f"ctx {c}: {t * 1e3:.1f} ms" for c, t in zip(CONTEXTS, ts)))
growth = {b: ts[-1] / ts[0] for b, ts in step.items()}
cache_mb = inf.kv_cache_bytes(big, CONTEXTS[-1], BIG_BATCH, torch.float32) / MiB
weights_mb = sum(p.numel() * p.element_size() for p in big.parameters()) / MiB
print(f"step time x{growth[1]:.2f} from ctx {CONTEXTS[0]} to {CONTEXTS[-1]} at batch 1, x{growth[BIG_BATCH]:.2f} at batch {BIG_BATCH}")
print(f"at batch {BIG_BATCH} and ctx {CONTEXTS[-1]} the cache is {cache_mb:.0f} MiB, the weights {weights_mb:.0f} MiB")
fig, ax = plt.subplots()
for b, ts in step.items():
    ax.plot(CONTEXTS, [t * 1e3 for t in ts], "o-", label=f"batch {b}")
ax.set(xlabel="context length (tokens in the cache)", ylabel="ms per decode step", title="A decode step reads the whole cache")
ax.legend();

# %%
assert growth[BIG_BATCH] > 1.2, growth            # at a large batch, a longer cache makes every step slower
assert cache_mb > weights_mb                      # and the cache outweighs the weights there
print(f"a cached decode step is not constant work: from {CONTEXTS[0]} to {CONTEXTS[-1]} cached tokens it takes "
      f"x{growth[1]:.2f} longer at batch 1 and x{growth[BIG_BATCH]:.2f} at batch {BIG_BATCH}")

# %% [markdown]
# ## Claims
#
# The three hints of S001-DQ4 are questions, not claims; their answers are the measurements above.
#
# no-claim S001-DQ4-h1: a hint (how does dynamic batching help?); section 5 measures decode throughput against batch size
# no-claim S001-DQ4-h2: a hint (can users' requests be merged?); section 5 checks merged left-padded prompts against each alone
# no-claim S001-DQ4-h3: a hint (how does the cache affect parallelism?); section 6 times a decode step as the cache grows

# %%
single_speedup = all(abs(speed[n] / 8.3 - 1) < 0.25 for n in LENGTHS)      # one number, whatever the length?
claims_table([
    Claim("S000-Q11", "past keys/values do not change during decoding, so they can be cached", "cached = uncached",
          f"greedy tokens identical; max |Δlogit| {max_dlogit:.1e}", holds=torch.equal(gen_cached, gen_full)),
    Claim("S000-Q11.1", "cached generation is 8.3× faster (1000 ms → 120 ms)", "8.3×",
          ", ".join(f"x{speed[n]:.1f} at {n}" for n in LENGTHS) + " new tokens",
          holds=single_speedup, verdict=None if single_speedup else "no single number: grows with length"),
    Claim("S000-Q11.1", "caching K/V in training: 128MB × 512 steps = 65GB", "65 GB",
          f"the product is {doc_65:.0f} GiB, but a step computes each position's K/V once: one batch "
          f"(32 × 512, MiniMind-26M, fp16) is {train_kv:.0f} MiB; ×512 would be {train_kv * 512 / 1024:.0f} GiB",
          holds=abs(train_kv * 512 / 1024 - doc_65) < 0.1 * doc_65,
          verdict="does not hold: the scenario is meaningless (the weights change every step)"),
    Claim("S000-Q11.1", "GPU utilisation: training 95%, uncached decode 30%, cached decode 60%", "95 / 30 / 60%",
          f"not measurable on a CPU run; proxy here: batch-1 decode reaches {1 / ratio_256:.0%} of prefill's "
          f"tokens/s at 256 tokens (section 4)", holds=None,
          verdict="unsourced; no utilisation counter is read here", citation="no source given in the document"),
    Claim("S000-Q11.1", "per-sample KV of 512×8×2×512 = 4MB", "4 MB",
          f"{doc_elements:,} elements = {doc_mb['fp16']:.0f} MiB fp16 / {doc_mb['fp32']:.0f} MiB fp32; "
          f"with MiniMind's 2 KV heads: {minimind_512:.0f} MiB fp16", holds=abs(doc_mb["fp16"] - 4) < 0.5,
          citation="formula checked against KVCache.nbytes() above"),
    Claim("S000-Q11.2", "LLaMA-7B uses GQA with 4 KV heads; cache 64 MB at 2048 tokens", "64 MB",
          f"{card.attention}, {card.n_kv_heads} KV heads: {llama7b:.2f} GiB (their own 4-head config: {doc_llama_total:.0f} MiB)",
          holds=abs(llama7b * 1024 - 64) < 1, citation=card.citation),
    Claim("S000-Q11.2", "GQA 32→4 saves 87.5%; MQA (32→1) saves 96.8%", "87.5% / 96.8%",
          f"real caches, 32 query heads: {saving_gqa32:.1%} / {saving_mqa32:.3%} (8 query heads, 8→1 KV heads: {saving_mqa:.1%})",
          holds=abs(saving_gqa32 - 0.875) < 5e-4 and abs(saving_mqa32 - 0.968) < 1e-3,
          verdict=None if abs(saving_mqa32 - 0.968) < 5e-4 else "holds (96.875%, rounded)"),
    Claim("S000-Q11.2", "an INT8 cache costs <1% accuracy", "<1%",
          f"loss {int8_rel:+.3%} with an int8 cache (pretrained 1.6 M model, {ids.numel():,} tokens)",
          holds=abs(int8_rel) < 0.01, verdict="holds at this scale" if abs(int8_rel) < 0.01 else "does not hold"),
    Claim("S000-Q11.2", "GQA costs <2% quality, MQA 5-10%", "<2% / 5-10%",
          f"MQA vs MHA {gqa_gap:+.1%} val loss (toy char models, {GQA_SIZE['n_heads']} query heads)",
          holds=None, verdict=f"unsourced; toy-scale MQA gap {gqa_gap:+.0%}",
          citation="Ainslie et al. 2023 (GQA): uptrained GQA close to MHA quality, MQA somewhat lower"),
    Claim("S000-Q11.2", "PagedAttention saves 40-60% memory", "40-60%", "not measured here", holds=None,
          verdict="unsourced; the source frames it differently",
          citation="Kwon et al. 2023 (vLLM): existing systems waste 60-80% of KV memory; paging brings waste under 4%"),
    Claim("S004-N2", "prefill is about an order of magnitude faster per token than decode", "~10×",
          ", ".join(f"x{r['ratio']:.0f} at {r['length']}" for r in pd),
          holds=3 < ratio_256 < 30, verdict="holds at a few hundred tokens" if 3 < ratio_256 < 30 else
          ("gap is larger still here" if ratio_256 >= 30 else "does not hold here")),
    Claim("S004-N2", "both grow linearly with the number of tokens", "linear",
          f"prefill time ∝ length^{prefill_exponent:.2f} over {PD_LENGTHS[0]}-{PD_LENGTHS[-1]} tokens",
          holds=0.8 < prefill_exponent < 1.25,
          verdict="roughly, at these lengths" if 0.8 < prefill_exponent < 1.25 else
          ("sublinear here: short prompts underuse the hardware" if prefill_exponent <= 0.8 else
           "superlinear here: attention's n² share")),
    Claim("S001-DQ4", "batching raises decode throughput when one request leaves the hardware idle", "yes",
          f"x{batch_gain:.1f} tokens/s at batch {BATCHES[-1]} vs 1", holds=batch_gain > 2),
])

# %% [markdown]
# **What this can and cannot show.** Cached and uncached decoding agree exactly, and the cache's bytes
# are counted on real tensors. Every timing is a ratio on this CPU, with one thread under the fast
# budget; a GPU's absolute numbers and its utilisation are not measured (the timed models stay on the
# CPU even where a GPU exists). The quality cost of sharing KV heads is measured on toy models trained
# for seconds, which says how fast they learn, not what large uptrained models lose.
#
# ## The essence

# %%
essence("""
A causal model never lets an old position see a new one, and its weights are frozen while it writes, so
the keys and values of the past are fixed numbers: store them and each new token costs one position
instead of the whole prefix. Training has no such waste, because it computes every position of a known
text once, in parallel. With the cache a new token costs one position through the projections and the
FFN instead of the whole prefix; its attention still reads every cached key and value, so a decode step
still gets slower as the context grows. The benefit is a curve in the length generated, not a constant. It is paid for in memory (2 × layers × KV heads ×
head_dim × tokens × bytes), which at long contexts and many users outgrows the model itself; sharing KV
heads (GQA, MQA) and storing fewer bits shrink it. Reading a prompt is fast because it is one big
parallel pass; writing is slow because each token is a pass of its own, and batching users together is
how servers win that parallelism back.
""")

# %% [markdown]
# ## Exercises
#
# **1.** Llama-3-8B keeps 8 KV heads for 32 query heads. How much fp16 cache does a batch of 16
# sequences at its full 8192-token context need, and how many such sequences fit next to the 16 GB of
# fp16 weights on an 80 GB GPU?

# %% tags=["solution"] jupyter={"source_hidden": true}
# Solution. 2 · 32 layers · 8 heads · 128 · 8192 tokens · 2 B = 1 GiB per sequence.
per_seq = inf.kv_cache_bytes("Llama-3-8B", 8192, 1, "fp16")
print(f"per sequence {per_seq / GiB:.2f} GiB; batch of 16: {16 * per_seq / GiB:.0f} GiB")
fit = int((80e9 - 16e9) // per_seq)
print(f"sequences that fit in 80 GB beside 16 GB of weights: {fit}")
assert per_seq == 2 * 32 * 8 * 128 * 8192 * 2 == 2 ** 30   # exactly 1 GiB

# %% [markdown]
# **2.** For the pretrained course model, after how many tokens of one sequence does the fp32 KV cache
# hold as many bytes as the model's weights? Check the formula against a real cache of that length.

# %% tags=["solution"] jupyter={"source_hidden": true}
# Solution. weights bytes / bytes per token; the context limit of the model caps what we can check.
w_bytes = sum(p.numel() * p.element_size() for p in lm.parameters())
per_token = inf.kv_bytes_per_token(lm, torch.float32)
print(f"weights {w_bytes / MiB:.1f} MiB, cache {per_token / 1024:.1f} KiB per token → equal after {w_bytes / per_token:,.0f} tokens")
n_check = min(lm.config.max_seq_len, 64)
c = lm.new_kv_cache(1, n_check)
with torch.no_grad():
    lm(torch.tensor([tok.encode(text)[:n_check]]), kv_cache=c)
assert c.nbytes() == per_token * n_check

# %% [markdown]
# **3.** Count it instead of timing it: without a cache, how many positions does generating 1,000
# tokens after a 1,000-token prompt process, and how many with a cache? What speed-up does the counting
# predict, and why would a measured one be smaller?

# %% tags=["solution"] jupyter={"source_hidden": true}
# Solution. Uncached: sum of (P + t) for t < n; cached: P + n - 1. The measured speed-up is smaller
# because per-step overheads (Python, kernel launches, the LM head) do not shrink with the cache, and a
# big prefill runs at higher efficiency than many small steps.
P_, n_ = 1000, 1000
unc, cac = sum(P_ + t for t in range(n_)), P_ + n_ - 1
print(f"uncached {unc:,} positions, cached {cac:,}: x{unc / cac:.0f} less work")
assert unc == n_ * P_ + n_ * (n_ - 1) // 2
