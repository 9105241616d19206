# %% [markdown]
# # 01 From text to token ids: how big should the vocabulary be?
#
# A language model never sees characters. It sees integers, one per *token*, and what a token is
# depends on a choice we make before training: bytes, characters, or pieces learned from data (BPE).
# That choice fixes how long every sequence is, how big the embedding table is, and how much text
# each prediction covers. This notebook measures those trade-offs on real Chinese text.
#
# ## The questions
#
# **S000-Q1** 「为什么要把文本转换成数字（Token IDs）？」
# *Why turn text into numbers (token ids)?*
#
# **S000-Q1.1** 「那为什么不直接用ASCII码？每个字符对应一个数字不就行了吗？」
# *Then why not just use ASCII codes, one number per character?*
#
# **S000-Q1.2** 「为什么词汇表大小是6400，而不是1000或100000？」
# *Why is the vocabulary 6400 tokens, and not 1000 or 100000?*
#
# **The surface answer.** "Computers can only process numbers." The document goes on to show the bytes
# of 「你好」 (calling them ASCII), says BPE shortens the sequence from 6 to 2 and the attention cost
# from 36 to 4, compares embedding sizes for vocabularies of 1000 and 100000, gives token counts for
# 「机器学习很有趣」 at three vocabulary sizes, and calls 6400 the "sweet spot" for a 26M model.

# %%
import collections
import math
import unicodedata

import torch

import course_lib
from course_lib import (ByteTokenizer, CharTokenizer, ModelConfig, PackedDataset, TrainConfig, Trainer,
                        Transformer, load_corpus, train_tokenizer)
from course_lib.lab import viz
from course_lib.lab.budget import budget, by_budget, set_budget_threads
from course_lib.corpus import train_val_split
from course_lib.lab.measure import bits_per_char, tokens_per_char
from course_lib.lab.params import breakdown, bytes_for, shape_for_budget
from course_lib.lab.socratic import Claim, claims_table, essence, predict, reveal

viz.setup()
import matplotlib.pyplot as plt  # noqa: E402

torch.manual_seed(0)
set_budget_threads()  # one thread under the fast budget: tiny models gain nothing from more
print(f"course_lib {course_lib.__version__}, budget: {budget()}")

# %% [markdown]
# ## 1. The chain from text to vectors
#
# Text is stored as bytes (UTF-8). Reading those bytes as characters is a decoding step; cutting the
# text into tokens is another; looking each token id up in an embedding table gives the vectors the
# network computes with. We follow one phrase through every step, with tokenizers trained on the
# People's Daily corpus.

# %%
docs = load_corpus(max_chars=by_budget(fast=120_000, full=1_500_000))
train_docs, val_docs = train_val_split(docs, val_fraction=0.1, seed=0)
BPE_SIZES = by_budget(fast=[512, 1024, 2048, 6400], full=[512, 1024, 2048, 6400, 16000])
tokenizers = {"bytes": ByteTokenizer(), "chars": CharTokenizer.from_texts(docs)}
for v in BPE_SIZES:
    tokenizers[f"BPE {v}"] = train_tokenizer(train_docs, vocab_size=v)
print({name: t.vocab_size for name, t in tokenizers.items()})

phrase = "机器学习很有趣"
bpe = tokenizers["BPE 6400"]
ids = bpe.encode(phrase)
print("UTF-8 bytes: ", list(phrase.encode("utf-8")))
print("characters:  ", list(phrase), [ord(c) for c in phrase])
print("BPE 6400:    ", [bpe.decode([i]) for i in ids], ids)
emb = torch.nn.Embedding(bpe.vocab_size, 8)
vectors = emb(torch.tensor(ids))
print("embedding rows:", tuple(vectors.shape), "(one learned vector per token; 8 numbers each here)")
round_trips = {name: t.decode(t.encode(phrase)) == phrase for name, t in tokenizers.items()}
print("decode(encode(text)) == text:", round_trips)

# %%
assert all(round_trips.values()), "every tokenizer here is lossless on this phrase"
assert bpe.decode(ids) == phrase and vectors.shape == (len(ids), 8)

# %% [markdown]
# Why numbers at all? Not because "computers only process numbers" (everything in a computer is
# numbers already, including text). The point is that a neural network is a chain of matrix
# operations: it needs each token as an index into a table of *learned vectors*, and the choice of
# tokens decides how many vectors there are and how many of them a text needs.
#
# ## 2. Why not one number per character ("ASCII")?
#
# The document writes 「你好」 as "ASCII [228, 189, 160, 229, 165, 189]". Predict how many bytes one
# Chinese character takes in UTF-8, on average over the corpus.

# %%
p_bytes = predict("S000-Q1.1 bytes", "UTF-8 bytes per character of People's Daily text, on average?", kind="number")

# %%
nihao = "你好"
try:
    nihao.encode("ascii")
    ascii_ok = True
except UnicodeEncodeError as err:
    ascii_ok = False
    print("ASCII cannot encode it:", err)
utf8 = list(nihao.encode("utf-8"))
print("UTF-8 bytes of 你好:", utf8, "=", " ".join(f"{b:02X}" for b in utf8))
val_text = "".join(val_docs)
bytes_per_char = len(val_text.encode("utf-8")) / len(val_text)
print(f"UTF-8 bytes per character on held-out text: {bytes_per_char:.2f}")

# %%
assert not ascii_ok, "ASCII has 128 codes, none of them Chinese"
assert utf8 == [228, 189, 160, 229, 165, 189], "the document's numbers are the UTF-8 bytes"
reveal(p_bytes, measured=bytes_per_char, tolerance=0.1,
       note="Chinese characters take 3 bytes in UTF-8; digits and ASCII punctuation take 1.")

# %% [markdown]
# "One number per character" is a real option too: the character's Unicode code point, or an index
# into the characters seen in the corpus. How many would that be? Unicode defines tens of thousands
# of CJK ideographs (the document says 260,000), but a corpus uses far fewer, and a few thousand
# cover almost all running text.

# %%
cjk_total = sum(1 for cp in range(0x110000) if unicodedata.name(chr(cp), "").startswith("CJK UNIFIED IDEOGRAPH"))
all_text = "".join(load_corpus())
def is_cjk(c):
    return unicodedata.name(c, "").startswith("CJK UNIFIED IDEOGRAPH")


counts = {c: n for c, n in collections.Counter(all_text).items() if is_cjk(c)}
freqs = sorted(counts.values(), reverse=True)
total = sum(freqs)
cum = 0
for n_99, f in enumerate(freqs, 1):
    cum += f
    if cum >= 0.99 * total:
        break
print(f"Unicode {unicodedata.unidata_version}: {cjk_total:,} CJK unified ideographs")
print(f"the whole corpus ({len(all_text):,} characters) uses {len(counts):,} distinct ones; "
      f"the {n_99:,} most frequent cover 99% of its Chinese characters")
ax = viz.plot_curves({"coverage": [sum(freqs[:k]) / total for k in range(1, len(freqs) + 1)]},
                     "distinct characters, most frequent first", "share of the corpus's Chinese characters", logx=True)
ax.axhline(0.99, color="k", ls="--", lw=1)

# %%
assert cjk_total < 200_000, "Unicode has about 100k CJK ideographs, not 260k"
assert n_99 < 5_000 < cjk_total, "a few thousand characters cover 99% of real text"

# %% [markdown]
# ### Sequence length and the cost of attention
#
# Each tokenizer turns the same text into a different number of tokens. Attention compares every
# token with every other one, so its cost grows with the *square* of the length. We measure tokens
# per character on held-out text, and the attention cost relative to one token per character.

# %%
tpc = {name: tokens_per_char(t, val_docs) for name, t in tokenizers.items()}
rel_attention = {name: v ** 2 for name, v in tpc.items()}          # n² relative to n = characters
split_share = {}
cjk_val = {c: n for c, n in collections.Counter(val_text).items() if is_cjk(c)}
for name, t in tokenizers.items():
    multi = sum(n for c, n in cjk_val.items() if len(t.encode(c)) > 1)
    split_share[name] = multi / sum(cjk_val.values())
for name in tokenizers:
    print(f"{name:>9}: vocabulary {tokenizers[name].vocab_size:6d} | {tpc[name]:.2f} tokens per character | "
          f"attention cost x{rel_attention[name]:.2f} | {split_share[name]:.0%} of Chinese characters need >1 token")
fig, axes = plt.subplots(1, 2, figsize=(10, 3))
viz.bar(tpc, ax=axes[0], ylabel="tokens per character", fmt="{:.2f}")
viz.bar(rel_attention, ax=axes[1], ylabel="attention cost (relative to chars)", fmt="{:.2f}")
for ax in axes:
    ax.tick_params(axis="x", labelrotation=30, labelsize=8)
fig.tight_layout()
nihao_tokens = len(bpe.encode(nihao))

# %%
bpe_tpc = [tpc[f"BPE {v}"] for v in BPE_SIZES]
assert all(a >= b for a, b in zip(bpe_tpc, bpe_tpc[1:])), "a bigger BPE vocabulary never needs more tokens"
assert tpc["bytes"] > 2.5 and tpc["bytes"] / tpc["BPE 6400"] > 3, "bytes make sequences several times longer"
assert tpc["BPE 6400"] < tpc["chars"] == 1.0, "BPE merges frequent character pairs into one token"
assert split_share["BPE 512"] > 0.5 > split_share["BPE 6400"], "a small BPE vocabulary splits most characters"
assert nihao_tokens < len(utf8), "BPE shortens 「你好」 compared with its bytes"

# %% [markdown]
# Bytes need no vocabulary beyond 256, but a Chinese text becomes about three times longer, and
# attention about nine times more expensive. Characters need one token each, but thousands of
# vocabulary entries. BPE sits in between and keeps going: at 6400 tokens, frequent words such as
# 「学习」 are single tokens, and a sentence is *shorter* than its character count.
#
# ## 3. Why 6400 and not 1000 or 100000?
#
# Two costs pull in opposite directions. A bigger vocabulary makes sequences shorter (less compute per
# sentence, more text in a fixed context) but every entry needs an embedding row (and an output row):
# parameters that a small model then cannot spend on its layers. First the document's size figures.

# %%
emb_params = {v: v * 512 for v in (1000, 6400, 100_000)}
for v, n in emb_params.items():
    print(f"vocabulary {v:>7,} x width 512 = {n / 1e6:6.2f}M parameters = {bytes_for(n) / 1e6:7.1f} MB in float32")
counts_phrase = {name: len(t.encode(phrase)) for name, t in tokenizers.items()}
print(f"「{phrase}」 ({len(phrase)} characters):", counts_phrase)

# %%
assert emb_params[1000] == 512_000 and bytes_for(emb_params[1000]) == 2_048_000
assert abs(bytes_for(emb_params[100_000]) / 1e6 - 204.8) < 0.1

# %% [markdown]
# "512KB" for 1000 tokens is the number of *parameters* (512 thousand), not bytes: in float32 it is
# 2 MB. The 100000-token figure (200 MB) is in bytes. Measured in the same unit the ratio is 100x,
# as it should be.
#
# ### Fixed parameters, different vocabularies
#
# Now the real trade-off. We give each tokenizer a model with the *same total number of parameters*,
# train each on the same text for the same number of steps (the same number of *characters* per
# batch), and compare them in **bits per character** on held-out text. Loss per token cannot be
# compared across vocabularies (a token of a big vocabulary covers more text); bits per character can.

# %%
p_vocab = predict("S000-Q1.2 vocabulary",
                  "Same parameter budget, same text: which vocabulary gives the lowest bits per character?",
                  ["bytes", "a small BPE (512-1024)", "a mid BPE (2048)", "a large BPE (6400)"])

# %%
BUDGET_PARAMS = by_budget(fast=150_000, full=2_000_000)
CHARS_PER_ROW = by_budget(fast=48, full=256)
STEPS = by_budget(fast=80, full=1500)
SWEEP = ["bytes"] + [f"BPE {v}" for v in by_budget(fast=[512, 2048, 6400], full=BPE_SIZES)]
val_eval = val_docs[: by_budget(fast=10, full=80)]
base = ModelConfig(vocab_size=512, dim=64, n_layers=2, n_heads=8, head_dim=8, max_seq_len=256, rope_theta=1e4)
sweep = {}
for name in SWEEP:
    t = tokenizers[name]
    seq = max(8, round(CHARS_PER_ROW * tpc[name]))
    cfg = shape_for_budget(BUDGET_PARAMS, 2, base.replace(vocab_size=t.vocab_size, max_seq_len=seq),
                           dims=range(8, 513, 8))
    torch.manual_seed(0)
    model = Transformer(cfg)
    data = PackedDataset(train_docs, t, block_size=seq)
    hist = Trainer(model, data, TrainConfig(batch_size=16, max_steps=STEPS, lr=1e-2, warmup_steps=STEPS // 10,
                                            seed=0, progress=False, log_every=0)).fit()
    r = bits_per_char(model, t, val_eval, seq_len=seq)
    freq = torch.bincount(data.tokens.long(), minlength=t.vocab_size).double() + 1      # add-one unigram model
    logp = (freq / freq.sum()).log2()
    val_ids = torch.tensor([i for d in t.encode_batch(val_eval) for i in d])
    unigram_bpc = float(-logp[val_ids].sum()) / sum(map(len, val_eval))
    parts = breakdown(cfg)
    sweep[name] = {"bpc": r.bits_per_char, "params": parts.total, "dim": cfg.dim, "seq": seq,
                   "embedding_share": parts.embedding / parts.total,
                   "uniform_bpc": tpc[name] * math.log2(t.vocab_size), "unigram_bpc": unigram_bpc}
    print(f"{name:>9}: width {cfg.dim:3d}, {parts.total:,} parameters ({sweep[name]['embedding_share']:.0%} embedding), "
          f"{seq} tokens per row -> {r.bits_per_char:.2f} bits/char (uniform guessing {sweep[name]['uniform_bpc']:.1f}, "
          f"token frequencies alone {unigram_bpc:.2f})")

fig, axes = plt.subplots(1, 2, figsize=(10, 3))
viz.bar({n: r["bpc"] for n, r in sweep.items()}, ax=axes[0], ylabel="held-out bits per character", fmt="{:.2f}")
viz.bar({n: r["embedding_share"] for n, r in sweep.items()}, ax=axes[1], ylabel="embedding share of parameters",
        fmt="{:.0%}")
for ax in axes:
    ax.tick_params(axis="x", labelrotation=30, labelsize=8)
fig.tight_layout()

# %%
shares = [sweep[n]["embedding_share"] for n in SWEEP]
unigram = [sweep[n]["unigram_bpc"] for n in SWEEP]
assert all(a < b for a, b in zip(shares, shares[1:])), "at a fixed budget, a bigger vocabulary eats more of it"
assert all(a > b for a, b in zip(unigram, unigram[1:])), "bigger tokens: token frequencies alone say more per character"
assert max(r["params"] for r in sweep.values()) / min(r["params"] for r in sweep.values()) < 1.3, "about the same budget"
for n, r in sweep.items():
    assert r["bpc"] < 1.05 * r["unigram_bpc"] < r["uniform_bpc"], f"{n}: it learned at least the token frequencies"
best = min(sweep, key=lambda n: sweep[n]["bpc"])
best_choice = ("bytes" if best == "bytes" else "a large BPE (6400)" if best == "BPE 6400"
               else "a mid BPE (2048)" if best == "BPE 2048" else "a small BPE (512-1024)")
reveal(p_vocab, measured=f"{best}: {sweep[best]['bpc']:.2f} bits/char", answer=best_choice,
       note="At the fast budget this is a short run of a very small model: it shows the trade-off, not "
            "the optimum for a 26M model." if budget() == "fast" else
            "The best vocabulary depends on the parameter budget and the amount of training.")

# %% [markdown]
# **What this can and cannot show.** The shares on the right are arithmetic: at a fixed budget, a
# big vocabulary leaves less for the layers. The bits per character on the left are a measurement,
# and at the fast budget a limited one: after a few dozen steps each model has learned little more
# than how often each token occurs (compare its bits per character with "token frequencies alone"
# in the printout). Frequencies of big tokens (whole words) already say a lot about the text, so at
# this budget the biggest vocabulary wins almost by default. What the layers add (context) needs
# longer training, and then the parameters that the embedding table takes away start to matter.
# Under the full budget the models are larger and train much longer; the ranking can change with
# both, which is the point: the best vocabulary is a property of the budget (model size, data,
# compute), not a constant. Nothing here, nor anything the document cites, measures 6400 as optimal
# for a 26M model. Scaling studies that vary the vocabulary find that the best size grows with the
# model (Tao et al. 2024, "Scaling Laws with Vocabulary").
#
# ## Claims

# %%
claims = [
    Claim("S000-Q1", "text becomes numbers because computers only process numbers", "the reason",
          "true of every input; the choice that matters is the unit (bytes, characters, BPE tokens) measured above",
          holds=None, verdict="true but shallow: the follow-up questions carry the substance"),
    Claim("S000-Q1.1", "「你好」 in ASCII is [228, 189, 160, 229, 165, 189]", "ASCII",
          f"ASCII cannot encode it; {utf8} are its UTF-8 bytes", holds=ascii_ok,
          verdict="the numbers hold; the label is wrong (UTF-8)"),
    Claim("S000-Q1.1", "BPE turns the 6 bytes into 2 tokens, attention 36 -> 4", "6 -> 2, 36 -> 4",
          f"BPE 6400 here: {nihao_tokens} tokens, {len(utf8) ** 2} -> {nihao_tokens ** 2}",
          holds=nihao_tokens == 2, citation="depends on the tokenizer and its training text"),
    Claim("S000-Q1.1", "6400 tokens are more efficient than 260,000 Chinese characters", "260,000 characters",
          f"Unicode {unicodedata.unidata_version} has {cjk_total:,} CJK ideographs; this corpus uses {len(counts):,}, "
          f"{n_99:,} cover 99%", holds=cjk_total > 200_000, verdict="the 260,000 figure does not hold"),
    Claim("S000-Q1.2", "vocabulary 1000 -> embedding 512KB; 100000 -> 200MB", "512KB / 200MB",
          f"{emb_params[1000]:,} parameters = {bytes_for(emb_params[1000]) / 1e6:.2f} MB; "
          f"{emb_params[100_000] / 1e6:.1f}M = {bytes_for(emb_params[100_000]) / 1e6:.1f} MB (float32)",
          holds=abs(bytes_for(emb_params[1000]) / 512_000 - 1) < 0.1
          and abs(bytes_for(emb_params[100_000]) / 200e6 - 1) < 0.1,
          verdict="mixed units: the first is a parameter count, the second bytes"),
    Claim("S000-Q1.2", "100000 x 512 = 51.2M, about twice the 26M model", "51.2M",
          f"{emb_params[100_000] / 1e6:.1f}M", holds=emb_params[100_000] == 51_200_000),
    Claim("S000-Q1.2", "「机器学习很有趣」: 12 / 6 / 5 tokens at 1000 / 6400 / 100000", "12 / 6 / 5",
          f"BPE 1024: {counts_phrase['BPE 1024']}, BPE 6400: {counts_phrase['BPE 6400']}"
          + (f", BPE 16000: {counts_phrase['BPE 16000']}" if "BPE 16000" in counts_phrase else "")
          + f"; characters {counts_phrase['chars']}, bytes {counts_phrase['bytes']}",
          holds=(counts_phrase["BPE 1024"], counts_phrase["BPE 6400"]) == (12, 6),
          citation="token counts depend on the tokenizer's training text"),
    Claim("S000-Q1.2", "6400 is the empirically verified sweet spot for a 26M model", "sweet spot",
          f"not measured at 26M; at {BUDGET_PARAMS / 1e3:.0f}K parameters ({budget()} budget) {best} was best",
          holds=None, verdict="not tested at this scale; no experiment is cited",
          citation="Tao et al. 2024 (Scaling Laws with Vocabulary): the best size grows with the model"),
]
table = claims_table(claims)

# %% [markdown]
# ## The essence
#
# A tokenizer decides the unit of prediction. Small units (bytes) need a tiny vocabulary but make
# every text long, and attention pays for length quadratically. Large units (big BPE vocabularies)
# make texts short but cost an embedding and an output row per entry, which a small model pays for
# out of its fixed parameter budget. "ASCII" was never an option for Chinese; characters, bytes and
# BPE all are, and the right vocabulary size is whatever balances sequence length against parameters
# *for the model and data at hand*: a measurement, not a constant. To compare vocabularies, compare
# bits per character, never loss per token.
#
# ## Exercises
#
# **Exercise 1.** Which of the 6400 BPE tokens are longest (in characters)? Print the ten longest and
# check that each decodes back to text that occurs in the corpus.

# %% tags=["solution"] jupyter={"source_hidden": true}
pieces = [(bpe.decode([i]), i) for i in range(3, bpe.vocab_size)]
longest = sorted(pieces, key=lambda p: -len(p[0]))[:10]
print([p for p, _ in longest])
corpus_text = "".join(docs)
assert all(p in corpus_text for p, _ in longest), "merges are learned from the text, so each piece occurs in it"

# %% [markdown]
# **Exercise 2.** How many tokens does a 512-token context hold in *characters* under each tokenizer?
# (This is the other side of the trade-off: how much text the model can see at once.)

# %% tags=["solution"] jupyter={"source_hidden": true}
context_chars = {name: 512 / v for name, v in tpc.items()}
for name, c in context_chars.items():
    print(f"{name:>9}: 512 tokens ≈ {c:.0f} characters")
assert context_chars["BPE 6400"] > context_chars["chars"] > context_chars["bytes"]
