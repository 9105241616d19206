# %% [markdown]
# # 04 Embeddings vs one-hot
#
# A token id is just an integer. Before a Transformer can do anything with it, the id has to become a
# vector. The obvious vector is one-hot: a 1 at position `id`, zeros everywhere else. Real models use an
# *embedding table* instead. This notebook asks what the difference really is: memory, compute,
# geometry, gradients. Then it asks how wide those vectors should be.
#
# ## The questions
#
# **S000-Q4** 「为什么要用Embedding，而不是直接用one-hot编码？」
# *Why use an embedding rather than one-hot vectors?*
#
# **S000-Q4.1** 「真的只是为了省内存吗？用one-hot有什么根本性问题？」
# *Is it really only to save memory? What is fundamentally wrong with one-hot?*
#
# **S000-Q4.2** 「为什么Embedding维度是512，不是256或1024？」
# *Why is the embedding width 512, not 256 or 1024?*
#
# **The surface answer.** The document first says embeddings save memory. Its follow-ups add that
# one-hot vectors are all orthogonal (so no two words are "similar"), that an embedding is the same
# thing as multiplying a one-hot vector by a weight matrix, that embedding gradients are sparse but
# attention "indirectly updates more words", and it sizes MiniMind's 26M parameters with a table
# that is meant to explain the choice of 512.
#
# We check each of these with a measurement.

# %%
import math

import torch
import torch.nn.functional as F

import course_lib
from course_lib import (ByteTokenizer, CharTokenizer, ModelConfig, PackedDataset, TrainConfig, Trainer,
                        Transformer, load_corpus, load_pretrained)
from course_lib.lab import viz
from course_lib.lab.budget import budget, by_budget, set_budget_threads
from course_lib.corpus import train_val_split
from course_lib.lab.embedding_probes import (analogy_rank, group_cosine, max_abs_cosine, nearest_neighbours,
                                             single_token_id)
from course_lib.lab.measure import bits_per_char, nonzero_rows, time_fn
from course_lib.lab.params import breakdown, bytes_for, naive_formula
from course_lib.lab.socratic import Claim, claims_table, essence, fmt, predict, reveal

viz.setup()
import matplotlib.pyplot as plt  # noqa: E402

torch.manual_seed(0)
set_budget_threads()  # one thread under the fast budget: tiny models gain nothing from more
print(f"course_lib {course_lib.__version__}, budget: {budget()}")

# %% [markdown]
# ## 1. One-hot times a matrix *is* a lookup
#
# Take MiniMind's sizes: a vocabulary of V = 6400 tokens and width d = 512. A one-hot row vector
# `e_i` (length V) times a matrix `W` (V x d) picks out row `i` of `W`. So `one_hot(ids) @ W` and
# `W[ids]` should give the same numbers, and, through autograd, the same gradients. What differs is
# the work: the matmul multiplies V numbers per output, almost all of them zeros.

# %%
p_speed = predict("S000-Q4",
                  "How much faster is the table lookup than one_hot @ W (forward pass, V=6400, d=512, 2048 tokens)?",
                  ["about the same", "a few times", "10x or more"])

# %%
V, D = 6400, 512
N_TOK = by_budget(fast=2048, full=8192)
ids = torch.randint(0, V, (N_TOK,))
emb = torch.nn.Embedding(V, D)
W = emb.weight

def via_onehot():
    return F.one_hot(ids, V).float() @ W

def via_lookup():
    return emb(ids)

out_onehot, out_lookup = via_onehot(), via_lookup()
max_diff = (out_onehot - out_lookup).abs().max().item()

g = torch.randn(N_TOK, D)          # any upstream gradient
W.grad = None
via_onehot().backward(g)
grad_onehot = W.grad.clone()
W.grad = None
via_lookup().backward(g)
grad_lookup = W.grad.clone()
max_grad_diff = (grad_onehot - grad_lookup).abs().max().item()

def step(fn):
    def run():
        W.grad = None
        fn().backward(g)
    return run

REPEAT = by_budget(fast=3, full=10)
t_fwd = {name: time_fn(fn, repeat=REPEAT).median for name, fn in (("one-hot", via_onehot), ("lookup", via_lookup))}
t_step = {name: time_fn(step(fn), repeat=REPEAT).median for name, fn in (("one-hot", via_onehot), ("lookup", via_lookup))}
speedup = t_fwd["one-hot"] / t_fwd["lookup"]
speedup_step = t_step["one-hot"] / t_step["lookup"]
onehot_bytes = N_TOK * V * 4            # the float one-hot batch the matmul has to read
lookup_bytes = out_lookup.nelement() * 4
print(f"max |one_hot@W - W[ids]| = {max_diff:.2e}, max |grad difference| = {max_grad_diff:.2e}")
print(f"forward:          one-hot {t_fwd['one-hot'] * 1e3:7.1f} ms, lookup {t_fwd['lookup'] * 1e3:6.2f} ms -> {speedup:.0f}x")
print(f"forward+backward: one-hot {t_step['one-hot'] * 1e3:7.1f} ms, lookup {t_step['lookup'] * 1e3:6.2f} ms -> {speedup_step:.0f}x")
print(f"one-hot input: {onehot_bytes / 1e6:.1f} MB vs the looked-up vectors: {lookup_bytes / 1e6:.1f} MB")

# %%
assert max_diff == 0.0, "a one-hot matmul picks rows exactly: no rounding is involved"
assert max_grad_diff < 1e-5, "same function, so autograd gives the same gradient"
assert speedup > 5, f"the matmul does V={V} multiply-adds per number where the lookup copies one ({speedup:.1f}x)"
assert onehot_bytes / lookup_bytes == V / D
reveal(p_speed, measured=f"{speedup:.0f}x", answer="10x or more" if speedup >= 10 else "a few times" if speedup >= 2 else "about the same",
       note="Same numbers, same gradients, same parameters (V x d): the embedding is the one-hot matmul without the zeros.")

# %% [markdown]
# With the backward pass the gap shrinks: PyTorch's default embedding gradient is a dense V x d
# matrix, so filling it costs the same whatever the batch. (`nn.Embedding(..., sparse=True)` returns
# only the touched rows; section 3 counts them.)

# %% [markdown]
# So memory and speed are real differences, but they are differences of *implementation*: the two
# compute the same function with the same V x d parameters. What would make one-hot "fundamentally"
# worse is using it *without* the matrix, feeding the raw one-hot vectors to the network.
#
# ## 2. The geometry of one-hot vectors
#
# Raw one-hot vectors are all orthogonal: the cosine similarity between any two different tokens is 0,
# whether they are 「猫」 and 「狗」 or 「猫」 and 「。」. Learned vectors can put related tokens close
# together. How many "distinct directions" does a width give us? The document answers "2^d". A more
# useful count is how many vectors can be *nearly* orthogonal: we draw V random directions and look at
# the largest cosine between any two.

# %%
eye = torch.eye(512)                                       # 512 one-hot vectors
gram = eye @ eye.T
max_cos_onehot = (gram - torch.diag(torch.diag(gram))).abs().max().item()

N_RAND = by_budget(fast=2048, full=6400)
max_cos_by_d = {d: max_abs_cosine(N_RAND, d) for d in (64, 128, 256, 512, 1024)}
print("one-hot: largest |cos| between different tokens =", max_cos_onehot)
for d, c in max_cos_by_d.items():
    print(f"d={d:5d}: largest |cos| among {N_RAND} random directions = {c:.2f}")
ax = viz.plot_curves({"largest |cos|": (list(max_cos_by_d), list(max_cos_by_d.values()))},
                     "width d", f"max |cos| among {N_RAND} random vectors", logx=True, marker="o")

# %%
assert max_cos_onehot == 0.0
assert max_cos_by_d[64] > 2 * max_cos_by_d[1024], "wider spaces fit more nearly-orthogonal directions"
assert max_cos_by_d[64] > 0.3, "64 dimensions cannot keep thousands of directions near-orthogonal"

# %% [markdown]
# The answer is a smooth trade-off, not 2^d: in 64 dimensions a few thousand random directions already
# have pairs with |cos| around 0.5; in 1024 dimensions they stay far apart. Width buys room to keep
# many tokens apart *and* to place related ones close.
#
# ### What training does to the geometry
#
# Random vectors are a starting point. What does a *trained* embedding look like? The course ships a
# small model pretrained on People's Daily (`load_pretrained()`, tied embeddings, 6400 BPE tokens,
# width 128). We look at nearest neighbours, at whether tokens of one kind (digits, numerals) sit
# closer together than random pairs, and at the famous vector arithmetic: the document's example is
# 「国王 − 男人 ≈ 王后 − 女人」; those words are not single tokens here, so we test analogies that are.

# %%
p_analogy = predict("S000-Q4.1",
                    "In a 1.6M-parameter model, does vector arithmetic like b - a + c ≈ d find the right token?",
                    ["never", "for some relations", "reliably"])

# %%
pre_model, pre_tok = load_pretrained()
E_trained = pre_model.embed_tokens.weight.detach()                 # (V, d); the probes normalise rows
torch.manual_seed(0)
E_init = Transformer(pre_model.config).embed_tokens.weight.detach()

for word in ("北京", "经济", "他们", "月"):
    if single_token_id(pre_tok, word) is not None:
        near = nearest_neighbours(E_trained, single_token_id(pre_tok, word), k=6)
        print(f"nearest to {word}: {[pre_tok.decode([j]) for j in near]}")

groups = {"digits １-０": "１２３４５６７８９０", "numerals 一-十": "一二三四五六七八九十"}
group_ids = {name: [i for i in (single_token_id(pre_tok, ch) for ch in chars) if i is not None]
             for name, chars in groups.items()}
geometry = {name: {"trained": group_cosine(E_trained, ids), "init": group_cosine(E_init, ids)}
            for name, ids in group_ids.items()}
for name, g in geometry.items():
    print(f"{name}: mean cosine within the group {g['trained'][0]:.2f} vs random pairs {g['trained'][1]:.2f} "
          f"(untrained: {g['init'][0]:.2f} vs {g['init'][1]:.2f})")

ANALOGIES = [("北京", "北京市", "上海", "上海市"), ("他", "他们", "我", "我们"), ("年", "今年", "月", "本月"),
             ("男", "女", "他", "她"), ("一", "二", "三", "四"), ("中国", "北京", "日本", "东京")]
ids4 = {quad: [single_token_id(pre_tok, w) for w in quad] for quad in ANALOGIES}
ranks = {f"{a}:{b} = {c}:{d}": analogy_rank(E_trained, *ids4[(a, b, c, d)])
         for a, b, c, d in ANALOGIES if None not in ids4[(a, b, c, d)]}       # only words that are single tokens
# "form" relations: the second word contains the first (北京 -> 北京市); the others relate by meaning only
is_form = {f"{a}:{b} = {c}:{d}": a in b and c in d for a, b, c, d in ANALOGIES}
for k, r in ranks.items():
    print(f"{k:>22}: the right token ranks {r} of {E_trained.shape[0]} ({'form' if is_form[k] else 'meaning'})")
n_exact = sum(r == 1 for r in ranks.values())
median_rank = sorted(ranks.values())[len(ranks) // 2]
form_ranks = [r for k, r in ranks.items() if is_form[k]]
meaning_ranks = [r for k, r in ranks.items() if not is_form[k]]

# %%
for name, g in geometry.items():
    assert g["trained"][0] > g["trained"][1] + 0.1, f"{name}: training pulls tokens of one kind together"
    assert abs(g["init"][0] - g["init"][1]) < 0.05, f"{name}: at initialisation there is no such structure"
assert len(ranks) >= 3 and median_rank < 100, "analogies land far above chance (a random rank is ~3200)"
hits = [k for k, r in ranks.items() if r == 1]
far_off = [k for k, r in ranks.items() if r > 10]
reveal(p_analogy, measured=f"rank 1 for {n_exact} of {len(ranks)} analogies, median rank {median_rank}",
       answer="reliably" if n_exact == len(ranks) else "for some relations" if n_exact > 0 or median_rank < 20 else "never",
       note=f"Rank 1: {', '.join(hits) or 'none'}. Outside the top 10: {', '.join(far_off) or 'none'}.")
med = {kind: sorted(r)[len(r) // 2] for kind, r in (("form", form_ranks), ("meaning", meaning_ranks)) if r}
print(f"form relations (the word contains its partner): ranks {form_ranks}; relations of meaning only: ranks "
      f"{meaning_ranks}; a random token would rank about {E_trained.shape[0] // 2}")
if len(med) == 2:
    better = "form" if med["form"] < med["meaning"] else "meaning" if med["meaning"] < med["form"] else None
    print(f"median rank: form {med['form']}, meaning {med['meaning']}: "
          + (f"the {better} relations come out on top" if better else "no difference in the medians"))

# %% [markdown]
# How to read these ranks: a random token would rank in the thousands, so a rank below 100 means the
# offset b − a points, roughly, the right way. The printout splits the analogies into relations of
# *form*, where a word contains its partner (北京 → 北京市, 他 → 他们), and relations of *meaning* only
# (gender, counting, capitals), and says which kind ranks higher in this model. A form relation can be
# learned from how the shared character is used; a relation like "capital of" needs facts that a
# 1.6M-parameter model trained on one newspaper may not hold. Six analogies in one model make this an
# illustration, not a statistic.
#
# ## 3. Which embedding rows does one batch update?
#
# The document says embedding gradients are sparse, but attention "indirectly updates more words".
# Predict first: after one training batch, how many of the V rows of the input embedding get a
# non-zero gradient?

# %%
p_rows = predict("S000-Q4.1",
                 "One batch of real text, a vocabulary of a few thousand characters. With tied input/output embeddings, how many rows of "
                 "the embedding get a non-zero gradient? And untied?",
                 ["only the batch's tokens in both cases",
                  "tied: all rows; untied: only the batch's tokens",
                  "all rows in both cases (attention spreads it)"])

# %%
docs = load_corpus(max_chars=by_budget(fast=100_000, full=400_000))
tok = CharTokenizer.from_texts(docs)
text_ids = torch.tensor(tok.encode("".join(docs[:50])))
B, T = 4, 64
batch = text_ids[: B * (T + 1)].view(B, T + 1)
x, y = batch[:, :-1], batch[:, 1:]

rows = {}
for tied in (True, False):
    torch.manual_seed(0)
    model = Transformer(ModelConfig.nano(vocab_size=tok.vocab_size, max_seq_len=T, tie_embeddings=tied))
    model(x, labels=y).loss.backward()
    rows[tied] = nonzero_rows(model.embed_tokens.weight.grad)
distinct_inputs = len(torch.unique(x))
print(f"vocabulary: {tok.vocab_size} rows; distinct tokens read by the batch: {distinct_inputs}")
print(f"rows with non-zero gradient: tied {rows[True]}, untied {rows[False]}")
viz.bar({"untied": rows[False], "tied": rows[True], "vocabulary": tok.vocab_size},
        ylabel="embedding rows with non-zero gradient")

# %%
assert rows[False] == distinct_inputs, "untied: exactly the rows the batch looked up, attention or not"
assert rows[True] == tok.vocab_size, "tied: the output softmax sends gradient to every row"
reveal(p_rows, measured=f"tied {rows[True]} of {tok.vocab_size}, untied {rows[False]}",
       answer="tied: all rows; untied: only the batch's tokens",
       note="Attention moves information between positions, never into rows that were not looked up.")

# %% [markdown]
# The gradient of a lookup flows only into the rows that were looked up: that is what a lookup is.
# Attention mixes the *vectors* of the tokens in the batch, but the rows of absent tokens never enter
# the computation, so they get exactly zero. With tied embeddings (MiniMind ties them), the same matrix
# is also the output layer, and the softmax over the whole vocabulary pushes every row a little
# (down for the wrong tokens, up for the right one). That is what updates absent tokens.
#
# ## 4. Where do 26 million parameters live?
#
# The document sizes MiniMind like this: embedding 6400 x 512 = 3.28M, attention 4 x 512² x 8 layers =
# 8.39M, FFN 2 x 512 x 1365 x 8 layers = 11.16M, "total 26M". Before counting: do the three parts add
# up to 26M?

# %%
p_sum = predict("S000-Q4.2",
                "3.28M + 8.39M + 11.16M: how many millions is that?", kind="number")

# %%
naive = naive_formula(512, vocab_size=6400, n_layers=8, ffn_dim=1365)
cfg26 = ModelConfig.minimind_26m()
real = breakdown(cfg26)
model26 = Transformer(cfg26)
built = model26.num_parameters()
del model26
print("the document's formula, recomputed:", {k: f"{v / 1e6:.2f}M" for k, v in naive.items()})
print("the real MiniMind-class config:   ", {k: f"{v / 1e6:.2f}M" for k, v in real.as_dict().items()})
print(f"built model: {built:,} parameters ({bytes_for(built) / 1e6:.0f} MB in float32)")

by_kv = {kv: breakdown(cfg26.replace(n_kv_heads=kv)).total for kv in (1, 2, 4, 8)}
print("total by number of K/V heads:", {kv: f"{n / 1e6:.2f}M" for kv, n in by_kv.items()})

fig, ax = plt.subplots(figsize=(6.4, 2.4))
rows_ = ["document's formula", "real config"]
left = [0.0, 0.0]
for part in ("embedding", "attention", "ffn"):
    vals = [naive[part] / 1e6, getattr(real, part) / 1e6]
    ax.barh(rows_, vals, left=left, label=part)
    left = [a + b for a, b in zip(left, vals)]
ax.axvline(26, color="k", ls="--", lw=1)
ax.set_xlabel("parameters (millions); dashed: the claimed 26M")
ax.legend(loc="lower right")

# %%
assert built == real.total, "the analytic count matches the built model"
assert abs(naive["total"] - 26e6) / 26e6 > 0.1, "the document's three parts do not add up to 26M"
assert real.ffn > naive["ffn"] * 1.4, "SwiGLU has three matrices, not two"
assert real.attention < naive["attention"], "grouped K/V heads make attention smaller than 4 d^2"
assert abs(real.total - 26e6) / 26e6 < 0.05, "the real config is 26M-class"
reveal(p_sum, measured=naive["total"] / 1e6, tolerance=0.03,
       note=f"The parts sum to {naive['total'] / 1e6:.2f}M. The real {real.total / 1e6:.2f}M comes from a "
            f"different split: SwiGLU's third matrix (+{(real.ffn - naive['ffn']) / 1e6:.1f}M) and "
            f"2 K/V heads ({(real.attention - naive['attention']) / 1e6:.1f}M).")

# %% [markdown]
# The total is right for the wrong reasons. The FFN is SwiGLU, three matrices of 512 x 1408 per layer
# (17.3M in all), and attention uses two K/V heads instead of eight (5.2M, not 8.4M). The errors
# nearly cancel.
#
# **What about 256 and 1024?** The document says 6.5M and 104M. We recompute both with its own formula
# and with the real config rule (head size 64, SwiGLU width 8/3 d rounded up to 64, two K/V heads
# where they divide the head count).

# %%
def real_config(d, layers=8):
    heads = d // 64
    return cfg26.replace(dim=d, n_layers=layers, n_heads=heads, n_kv_heads=min(2, heads), head_dim=64)

widths = [128, 256, 384, 512, 768, 1024]
naive_by_d = {d: naive_formula(d)["total"] for d in widths}
real_by_d = {d: breakdown(real_config(d)).total for d in widths}
for d in widths:
    print(f"d={d:5d}: document's formula {naive_by_d[d] / 1e6:6.1f}M   real config {real_by_d[d] / 1e6:6.1f}M")

# sqrt(N) / d as a function of depth at fixed width: is "d ≈ const x sqrt(N)" a law?
ratio_by_depth = {L: math.sqrt(breakdown(real_config(512, L)).total) / 512 for L in (2, 4, 8, 16, 32)}
print("sqrt(N)/d at d=512 for depth 2..32:", {L: round(r, 2) for L, r in ratio_by_depth.items()})
viz.plot_curves({"document's formula": (widths, [naive_by_d[d] / 1e6 for d in widths]),
                 "real config": (widths, [real_by_d[d] / 1e6 for d in widths])},
                "width d", "parameters (millions)", marker="o")

# %%
assert abs(naive_by_d[256] - 6.5e6) / 6.5e6 < 0.02, "the 256 figure follows from the formula"
assert abs(naive_by_d[1024] - 104e6) / 104e6 > 0.1, "the 1024 figure does not"
spread = max(ratio_by_depth.values()) / min(ratio_by_depth.values())
assert spread > 2, "sqrt(N)/d changes with depth, so the 'rule' needs the depth"

# %% [markdown]
# Only the part of the model that does not touch the vocabulary grows like d². At d = 1024 the
# document's own formula gives about 85M, not 104M. And since N ≈ 12·L·d² for the layers, the width
# that goes with a given size depends on the depth: "d ≈ const·sqrt(N)" holds only for a fixed depth.
#
# ## 5. Width vs depth at a fixed parameter budget
#
# So is 512 "the optimum"? The question that can be tested is narrower: at a fixed number of
# parameters, does the *shape* (wide and shallow vs narrow and deep) matter much? We train a few
# shapes with about the same non-embedding parameter count on the corpus, byte-level so that the
# embedding stays small, and compare bits per character on held-out text.

# %%
p_shape = predict("S000-Q4.2",
                  "Same non-embedding parameter count, same data and steps: how far apart will wide-shallow and "
                  "narrow-deep models end up in bits per character?",
                  ["within about 10%", "one shape clearly wins (> 10% apart)"])

# %%
byte_tok = ByteTokenizer()
train_docs, val_docs = train_val_split(docs, val_fraction=0.1, seed=0)
SEQ = by_budget(fast=64, full=128)
train_blocks = PackedDataset(train_docs, byte_tok, block_size=SEQ)
val_texts = val_docs[: by_budget(fast=12, full=60)]
# (width, depth) with about 12·d²·L non-embedding parameters each
SHAPES = by_budget(fast=[(32, 16), (64, 4), (128, 1)], full=[(64, 16), (128, 4), (256, 1)])
STEPS = by_budget(fast=60, full=1500)

SEEDS = by_budget(fast=[0, 1], full=[0, 1, 2])
sweep = {}
for d, L in SHAPES:
    cfg = ModelConfig(vocab_size=byte_tok.vocab_size, dim=d, n_layers=L, n_heads=d // 16, head_dim=16,
                      ffn_dim=round(8 * d / 3), max_seq_len=SEQ, rope_theta=1e4)
    sweep[(d, L)] = {"before": [], "after": [], "loss": None}
    for seed in SEEDS:
        torch.manual_seed(seed)
        model = Transformer(cfg)
        sweep[(d, L)]["before"].append(bits_per_char(model, byte_tok, val_texts, seq_len=SEQ).bits_per_char)
        hist = Trainer(model, train_blocks, TrainConfig(batch_size=16, max_steps=STEPS, lr=3e-3, warmup_steps=STEPS // 10,
                                                        seed=seed, progress=False, log_every=0)).fit()
        sweep[(d, L)]["after"].append(bits_per_char(model, byte_tok, val_texts, seq_len=SEQ).bits_per_char)
        sweep[(d, L)]["loss"] = sweep[(d, L)]["loss"] or hist.loss          # seed 0's curve for the plot
    r = sweep[(d, L)]
    r["non_embedding"] = model.num_parameters(exclude_embeddings=True)
    r["mean"], r["range"] = sum(r["after"]) / len(SEEDS), max(r["after"]) - min(r["after"])
    print(f"d={d:4d} L={L:2d}: {r['non_embedding']:,} non-embedding parameters, bits/char "
          f"{sum(r['before']) / len(SEEDS):.2f} -> {r['mean']:.3f} (seeds: {', '.join(f'{a:.3f}' for a in r['after'])})")
viz.plot_curves({f"d={d}, L={L}": r["loss"] for (d, L), r in sweep.items()}, "training step",
                "training loss (nats/byte, seed 0)", smooth=5);

# %%
means = [r["mean"] for r in sweep.values()]
shape_spread = max(means) / min(means) - 1
seed_range = max(r["range"] for r in sweep.values())
clear_winner = shape_spread > 0.10 and max(means) - min(means) > seed_range
n_ne = [r["non_embedding"] for r in sweep.values()]
print(f"spread between shapes (means over {len(SEEDS)} seeds): {shape_spread:.0%}, "
      f"{max(means) - min(means):.3f} bits/char against a seed range of up to {seed_range:.3f}")
assert max(n_ne) / min(n_ne) < 1.1, "the shapes have the same non-embedding budget"
for r in sweep.values():
    assert max(r["after"]) < 0.9 * min(r["before"]), "every shape learned, from every seed"
reveal(p_shape, measured=f"{shape_spread:.0%} apart (seed range {seed_range:.3f} bits/char)",
       answer="one shape clearly wins (> 10% apart)" if clear_winner else "within about 10%",
       note="At this budget the runs are short, so the ranking says more about how fast each shape "
            "trains than about what it can finally reach." if budget() == "fast" else
            "Kaplan et al. (2020) found shape matters only weakly over a wide range of aspect ratios.")

# %% [markdown]
# **What this can and cannot show.** At the fast budget each model trains for a few dozen steps: the
# comparison measures how quickly each shape starts learning, which favours shallow models. Under the
# full budget the runs are long enough for the shapes to approach what they can reach; Kaplan et al.
# (2020) found that, at a fixed non-embedding parameter count, loss depends only weakly on the
# width/depth ratio across a wide range, with extreme shapes (a single layer, or very deep and very
# narrow) falling behind. Either way, nothing here singles out 512: it is a conventional width for a
# model of this size, not a measured optimum.

# %% [markdown]
# ## Claims
#
# Every quantitative statement the document makes on these three questions, next to what this
# notebook measured.

# %%
claims = [
    Claim("S000-Q4", "embedding saves memory compared with one-hot",
          "less memory", f"one-hot batch {onehot_bytes / 1e6:.1f} MB vs {lookup_bytes / 1e6:.1f} MB looked up; "
                         f"parameters identical ({V}x{D} = {V * D / 1e6:.2f}M)",
          holds=onehot_bytes > lookup_bytes, verdict="holds, but it is the smallest difference"),
    Claim("S000-Q4.1", "one-hot vectors are mutually orthogonal", "cos = 0 for every pair",
          f"largest |cos| = {max_cos_onehot}", holds=max_cos_onehot == 0.0),
    Claim("S000-Q4.1", "one_hot @ W is the embedding lookup", "identical output, O(V·d) vs O(d)",
          f"max diff {max_diff:.0e}, grad diff {max_grad_diff:.0e}, lookup {speedup:.0f}x faster (forward)",
          holds=max_diff == 0 and max_grad_diff < 1e-5 and speedup > 5),
    Claim("S000-Q4.1", "sparse embedding gradients; attention indirectly updates more words",
          "attention spreads updates", f"untied: {rows[False]} rows = tokens in the batch; tied: all {rows[True]}",
          holds=rows[False] > distinct_inputs,
          citation="Press & Wolf 2017 (Using the Output Embedding to Improve Language Models): tying is what "
                   "updates every row"),
    Claim("S000-Q4.1", "embedding arithmetic: 国王 − 男人 ≈ 王后 − 女人", "analogies hold",
          f"shipped 1.6M model: the right token ranks first in {n_exact} of {len(ranks)} analogies "
          f"(median rank {median_rank} of {E_trained.shape[0]}); " + ", ".join(f"{k} -> {r}" for k, r in ranks.items()),
          holds=n_exact == len(ranks), verdict=None if n_exact in (0, len(ranks)) else "partly: for some relations",
          citation="Mikolov et al. 2013 measured it for word2vec embeddings, not for a small LM's input table"),
    Claim("S000-Q4.2", "width 64 distinguishes 2^64 directions", "10^19 directions",
          f"{N_RAND} random directions in 64-d already have |cos| up to {max_cos_by_d[64]:.2f}",
          holds=max_cos_by_d[64] < 0.2, verdict="not a capacity measure"),
    Claim("S000-Q4.2", "3.28M + 8.39M + 11.16M = 26M", "26M",
          f"the parts sum to {naive['total'] / 1e6:.2f}M (FFN term {naive['ffn'] / 1e6:.2f}M); "
          f"real config {real.total / 1e6:.2f}M = {real.embedding / 1e6:.2f} + {real.attention / 1e6:.2f} + "
          f"{real.ffn / 1e6:.2f} + norms", holds=abs(naive["total"] - 26e6) / 26e6 < 0.05,
          citation="MiniMind uses SwiGLU (3 matrices) and 2 K/V heads"),
    Claim("S000-Q4.2", "hidden 256 gives about 6.5M", "6.5M",
          f"formula {naive_by_d[256] / 1e6:.2f}M, real config {real_by_d[256] / 1e6:.2f}M",
          holds=abs(naive_by_d[256] - 6.5e6) / 6.5e6 < 0.02, verdict="holds for the formula"),
    Claim("S000-Q4.2", "hidden 1024 gives about 104M", "104M",
          f"formula {naive_by_d[1024] / 1e6:.1f}M, real config {real_by_d[1024] / 1e6:.1f}M",
          holds=abs(naive_by_d[1024] - 104e6) / 104e6 < 0.05),
    Claim("S000-Q4.2", "hidden_size ≈ sqrt(parameters) x constant", "one constant",
          f"sqrt(N)/d from {min(ratio_by_depth.values()):.2f} to {max(ratio_by_depth.values()):.2f} for depth 2-32",
          holds=spread < 1.2, citation="Kaplan et al. 2020: N ≈ 12·L·d², so d depends on the depth too"),
    Claim("S000-Q4.2", "512 is the optimum for a 26M model", "optimum",
          f"not measured at 26M; at ~{min(n_ne) / 1e3:.0f}K non-embedding parameters the shapes end "
          f"{shape_spread:.0%} apart ({budget()} budget, {len(SEEDS)} seeds)", holds=None, verdict="not tested at this scale",
          citation="Kaplan et al. 2020, Scaling Laws for Neural Language Models, Fig. 5 (shape)"),
]
table = claims_table(claims)

# %% [markdown]
# ## The essence
#
# An embedding table is a one-hot vector times a matrix, with the multiplication by zeros skipped.
# Nothing is lost by skipping them: same outputs, same gradients, same V x d parameters. What matters
# is not the encoding of the input but the *learned* matrix: it places tokens in a space where distance
# means something, and only the rows that take part in the computation learn. A lookup touches the
# rows it reads; a tied output head touches them all. The width sets how much room the space has, but
# the parameter count of a model is dominated by its layers, which grow like d² times the depth,
# so a width is only meaningful together with a depth and a budget.
#
# ## Exercises
#
# **Exercise 1.** With untied embeddings, how many rows of the *output* head `lm_head.weight` get a
# non-zero gradient after the batch of section 3? Predict, then count.

# %% tags=["solution"] jupyter={"source_hidden": true}
torch.manual_seed(0)
untied = Transformer(ModelConfig.nano(vocab_size=tok.vocab_size, max_seq_len=T, tie_embeddings=False))
untied(x, labels=y).loss.backward()
head_rows = nonzero_rows(untied.lm_head.weight.grad)
print(f"output head rows with gradient: {head_rows} of {tok.vocab_size}")
assert head_rows == tok.vocab_size  # the softmax involves every row of the output layer

# %% [markdown]
# **Exercise 2.** At which width does the embedding table make up less than 10% of a MiniMind-shaped
# model with V = 6400 and 8 layers? Use `breakdown(...).shares()`.

# %% tags=["solution"] jupyter={"source_hidden": true}
for d in (128, 256, 384, 512, 768, 1024):
    share = breakdown(real_config(d)).shares()["embedding"]
    print(f"d={d:5d}: embedding share {share:.0%}")
first_below = next(d for d in (128, 256, 384, 512, 768, 1024) if breakdown(real_config(d)).shares()["embedding"] < 0.10)
print("first width below 10%:", first_below)
assert breakdown(real_config(128)).shares()["embedding"] > breakdown(real_config(1024)).shares()["embedding"]
