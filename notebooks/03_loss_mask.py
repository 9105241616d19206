# %% [markdown]
# # 03 ★ Padding and the loss mask
#
# Sentences have different lengths, but a batch is a rectangle. The usual fix is to pad the short
# rows with a filler token and to tell the loss to ignore those positions: the *loss mask*. This
# notebook asks what the mask is for, what goes wrong without it, how to average the loss once some
# positions are masked, and what padding costs, with and without the mask.
#
# ## The questions
#
# **S000-Q3** 「为什么需要loss_mask，不能直接对所有位置计算损失吗？」
# *Why do we need a loss mask? Can't we just compute the loss at every position?*
#
# **S000-Q3.1** 「padding位置的损失有什么危害？直接平均不就行了吗？」
# *What harm does the loss at padding positions do? Why not simply average over everything?*
#
# **S000-Q3.2** 「为什么不把所有句子截断或填充到相同长度，这样就不需要mask了？」
# *Why not truncate or pad every sentence to the same length, so that no mask is needed?*
#
# **The surface answer.** "To ignore the padding." The document then works through a two-sentence
# example (three tokens and five tokens, padded to five), argues that without a mask the model learns
# to predict padding, proposes averaging per sentence and then across sentences, and counts how much
# of the attention work padding wastes. It also says the mask saves gradient computation.
#
# We measure all of it: the harm, the two ways of averaging, the gradient at masked positions, the
# padding arithmetic, and what the mask does (and does not do) to time and memory.

# %%
import math
import random

import torch
import torch.nn.functional as F

import course_lib
from course_lib import (CharTokenizer, ModelConfig, PackedDataset, TrainConfig, Trainer, Transformer,
                        load_corpus, masked_cross_entropy)
from course_lib.lab import viz
from course_lib.lab.budget import budget, by_budget, set_budget_threads
from course_lib.corpus import train_val_split
from course_lib.data import IGNORE_INDEX, collate, shift_for_next_token
from course_lib.lab.measure import padding_waste, saved_tensor_bytes, time_fn
from course_lib.lab.padding import (clean_pad_eval, clean_windows, group_waste, padded_segments, tokens_before_pad,
                                    truncation_loss)
from course_lib.lab.socratic import Claim, claims_table, essence, predict, reveal

viz.setup()
import matplotlib.pyplot as plt  # noqa: E402

torch.manual_seed(0)
set_budget_threads()  # one thread under the fast budget: tiny models gain nothing from more
print(f"course_lib {course_lib.__version__}, budget: {budget()}")

# %% [markdown]
# ## 1. The document's example, token by token
#
# Two sentences, `[101, 102, 103]` and `[201, 202, 203, 204, 205]`, padded with 0 to length 5. The
# model reads `X = seq[:-1]` and predicts `Y = seq[1:]` (notebook 02 is about this shift). Before we
# print anything: how many next-token targets does the five-token sentence have?

# %%
p_targets = predict("S000-Q3.1", "How many next-token targets does a 5-token sentence give?", kind="number")

# %%
PAD = 0
sentences = [torch.tensor([101, 102, 103]), torch.tensor([201, 202, 203, 204, 205])]
padded = collate([{"input_ids": s} for s in sentences], pad_id=PAD)["input_ids"]       # (2, 5)
X, Y_all = shift_for_next_token(padded)                                                 # no loss mask
_, Y_masked = shift_for_next_token(padded, target_mask=padded != PAD)                   # padding -> -100
print("padded:\n", padded)
print("X:\n", X, "\nY without mask:\n", Y_all, "\nY with mask (-100 = no loss):\n", Y_masked)

real_targets = (Y_masked != IGNORE_INDEX).sum(dim=1)
pad_involved = ((X == PAD) | (Y_all == PAD)).sum(dim=1)
print("real targets per sentence:", real_targets.tolist())
print("targets of sentence 1 that involve padding when nothing is masked:", int(pad_involved[0]), "of", Y_all.shape[1])

# %%
assert real_targets.tolist() == [2, 4], "n tokens give n - 1 next-token targets"
assert int(pad_involved[0]) == 2 and Y_all.shape[1] == 4
reveal(p_targets, measured=int(real_targets[1]), tolerance=0,
       note="The document divides sentence 2's loss by 5; a 5-token sentence has 4 next-token targets.")

# %% [markdown]
# ### Token mean or sentence mean?
#
# Once the padding is masked there are two natural ways to average. The **token mean** divides the
# sum over all real targets by their number (MiniMind does this: `(loss * mask).sum() / mask.sum()`).
# The **sequence mean** averages within each sentence first, then across sentences: the document's
# "correct version". They weigh tokens differently. We ask autograd how much each target contributes.

# %%
per_token = torch.rand(2, 4, requires_grad=True)      # stand-in per-token losses
valid = (Y_masked != IGNORE_INDEX).float()
reductions = {
    "token_mean": lambda l: (l * valid).sum() / valid.sum(),
    "seq_mean": lambda l: ((l * valid).sum(1) / valid.sum(1)).mean(),
}
weights = {name: torch.autograd.grad(f(per_token), per_token)[0] for name, f in reductions.items()}
for name, w in weights.items():
    print(f"{name}: weight of each target\n{w}")
sentence1_share = {r: float(w[0].sum()) for r, w in weights.items()}
print("share of the total that sentence 1 carries:", sentence1_share)

# the library's reductions are exactly these formulas
logits = torch.randn(2, 4, 300)
ce = F.cross_entropy(logits.transpose(1, 2), Y_masked, ignore_index=IGNORE_INDEX, reduction="none")
lib = {r: float(masked_cross_entropy(logits, Y_masked, r)) for r in reductions}
by_hand = {r: float(f(ce)) for r, f in reductions.items()}
print("library:", lib, "\nby hand:", by_hand)

# %%
assert math.isclose(sentence1_share["token_mean"], 2 / 6, rel_tol=1e-6) and math.isclose(sentence1_share["seq_mean"], 1 / 2)
assert all(math.isclose(lib[r], by_hand[r], rel_tol=1e-6) for r in reductions)
assert abs(lib["token_mean"] - lib["seq_mean"]) > 1e-4, "the two reductions are different functions"

# %% [markdown]
# With the token mean, each of the six real targets weighs 1/6, so the short sentence carries 1/3 of
# the loss; with the sequence mean each sentence carries 1/2, so a token of the short sentence weighs
# twice as much as one of the long sentence. Neither is "the" correct one: the token mean treats every
# predicted token alike (the usual choice in pretraining), the sequence mean treats every example
# alike. We train with both below.
#
# ### Masked positions get exactly zero gradient
#
# The mask works by removing terms from the loss, so the logits at masked positions should receive no
# gradient at all. We check it on a real model.

# %%
torch.manual_seed(0)
nano = Transformer(ModelConfig.nano(vocab_size=300, max_seq_len=8))
out = nano(X)
out.logits.retain_grad()
masked_cross_entropy(out.logits, Y_masked).backward()
grad_norm_per_position = out.logits.grad.norm(dim=-1)
print("gradient norm at each logit position:\n", grad_norm_per_position)
is_masked = Y_masked == IGNORE_INDEX
assert torch.all(grad_norm_per_position[is_masked] == 0), "masked positions: exactly zero"
assert torch.all(grad_norm_per_position[~is_masked] > 0), "real positions: a gradient"

# %% [markdown]
# Note what did *not* happen: the logits at the masked positions were still computed, and the
# backward pass still ran through them (with zeros). We come back to that in section 3.
#
# ## 2. What goes wrong without the mask?
#
# Now the real experiment. We cut the corpus into segments of random length (as happens with short
# documents, or documents that were cut to fit), pad each to a fixed length, and train three tiny
# models that differ only in the loss:
#
# * **no mask**: padding positions are targets like any other (the pad id 0 is the label);
# * **token-mean mask**: padding targets are ignored, the mean is over real tokens;
# * **sequence-mean mask**: padding ignored, mean per segment, then over segments.
#
# Then we look at clean, unpadded validation text: how much probability does each model give to the
# pad token where it can never be right, how long are its generations before it emits padding, and
# what is its loss on the real tokens?

# %%
p_harm = predict("S000-Q3",
                 "On clean text (no padding anywhere), how much probability will the no-mask model put on the "
                 "pad token, compared with the masked models?",
                 ["about the same", "somewhat more (up to 10x)", "far more (over 10x)"])

# %%
docs = load_corpus(max_chars=by_budget(fast=150_000, full=1_500_000))
train_docs, val_docs = train_val_split(docs, val_fraction=0.1, seed=0)
tok = CharTokenizer.from_texts(docs)              # every character known: id 0 only ever means padding
assert tok.pad_id == PAD
train_stream = torch.tensor(tok.encode("\n".join(train_docs)))
val_stream = torch.tensor(tok.encode("\n".join(val_docs)))
T = by_budget(fast=64, full=128)
MIN_LEN = 8


def as_items(rows, mask):
    x, y = shift_for_next_token(rows, target_mask=(rows != PAD) if mask else None)
    return [{"input_ids": a, "labels": b} for a, b in zip(x, y)]


N_TRAIN = by_budget(fast=2000, full=20000)
train_rows = padded_segments(train_stream, N_TRAIN, seq_len=T, min_len=MIN_LEN, pad_id=PAD, seed=1)   # (N, T + 1)
print(f"vocabulary {tok.vocab_size}, {N_TRAIN} training segments of {MIN_LEN}-{T + 1} tokens; "
      f"padding is {float((train_rows == PAD).float().mean()):.0%} of the slots")

VARIANTS = {"no mask": ("token_mean", False), "token-mean mask": ("token_mean", True),
            "sequence-mean mask": ("seq_mean", True)}
STEPS = by_budget(fast=60, full=800)
model_cfg = by_budget(fast=ModelConfig.nano(vocab_size=tok.vocab_size, max_seq_len=T),
                      full=ModelConfig.tiny(vocab_size=tok.vocab_size, max_seq_len=T))
models, histories = {}, {}
for name, (reduction, mask) in VARIANTS.items():
    torch.manual_seed(0)
    model = Transformer(model_cfg)
    histories[name] = Trainer(model, as_items(train_rows, mask),
                              TrainConfig(batch_size=16, max_steps=STEPS, lr=3e-3, warmup_steps=STEPS // 10, seed=0,
                                          loss_reduction=reduction, progress=False, log_every=0)).fit()
    models[name] = model.cpu().eval()       # evaluate on the CPU, whatever device trained it
viz.plot_curves({n: h.loss for n, h in histories.items()}, "training step",
                "training loss (nats, as each run defines it)", smooth=5);

# %% [markdown]
# The training losses are not comparable: the no-mask run averages over padding targets, which are
# easy (after a pad comes a pad). The validation measurements below use the same clean text for all.

# %%
N_EVAL = by_budget(fast=32, full=256)
NEW = T - 8 - 1
windows = clean_windows(val_stream, N_EVAL, T + 1, seed=0)        # (N_EVAL, T + 1) real text, no padding
prompts = clean_windows(val_stream, N_EVAL, 8, seed=0)            # 8-token prompts for sampling
results = {}
for name, model in models.items():
    r = clean_pad_eval(model, windows, pad_id=PAD)                 # P(pad), clean loss, P(pad) after padding
    r["gen_len"], sample = tokens_before_pad(model, prompts, NEW, pad_id=PAD)
    results[name] = r
    text = tok.decode(sample[0].tolist()).replace(tok.pad_token, "▯")
    print(f"{name:>19}: P(pad) on clean text {r['p_pad']:.4f} | P(pad) after a pad {r['p_pad_after_pad']:.2f} | "
          f"clean loss {r['loss']:.3f} | generated {r['gen_len']:.1f} of {NEW} tokens before a pad")
    print(f"{'':>21}{text[:60]}")

fig, axes = plt.subplots(1, 3, figsize=(11, 3.2))
names = list(results)
viz.bar({n: results[n]["p_pad"] for n in names}, ax=axes[0], ylabel="mean P(pad) on clean text", logy=True)
viz.bar({n: results[n]["gen_len"] for n in names}, ax=axes[1], ylabel="tokens before the first pad")
viz.bar({n: results[n]["loss"] for n in names}, ax=axes[2], ylabel="clean validation loss (nats)")
for ax in axes:
    ax.tick_params(axis="x", labelrotation=20, labelsize=8)
    ax.set_xlabel("loss variant")
fig.tight_layout();

# %%
no, tm, sm = (results[n] for n in ("no mask", "token-mean mask", "sequence-mean mask"))
leak = no["p_pad"] / max(tm["p_pad"], sm["p_pad"])
print(f"the no-mask model puts {leak:.0f}x more probability on padding than the masked ones")
assert leak > 10, "without the mask the model learns to predict padding in the middle of real text"
assert no["p_pad_after_pad"] > 0.5, "and it learns 'after a pad comes a pad'"
assert no["gen_len"] < 0.8 * min(tm["gen_len"], sm["gen_len"]), "so its generations stop early"
assert no["loss"] > min(tm["loss"], sm["loss"]), "and it is worse on the real tokens"
reveal(p_harm, measured=f"{leak:.0f}x", answer="far more (over 10x)" if leak > 10 else
       "somewhat more (up to 10x)" if leak > 1.5 else "about the same",
       note="Every segment end teaches 'this context is followed by padding'. Since segments end at "
            "arbitrary places, the model learns a standing chance of padding everywhere.")

# %% [markdown]
# The harm is not that the average "includes some zeros". It is that padding becomes part of the
# language the model learns. Every time a segment stops, the model is told "after this context comes
# padding", and segments stop at places that have nothing to do with the text. So the no-mask model
# keeps a standing probability of padding at every position, its samples fall into padding (and stay
# there: "after a pad comes a pad" is the easiest thing it learned), and the probability it wastes on
# padding is missing from the real next token, so its clean loss is worse. Both masked models put
# almost nothing on padding: it is never a target for them, so training pushes it down everywhere.
#
# Between the token mean and the sequence mean the difference is small here; the sequence mean gives
# the tokens of short segments more weight, which matters when lengths differ a lot (for instance in
# fine-tuning data with short and long answers).
#
# ## 3. Why not pad or truncate everything to one length?
#
# ### The document's arithmetic
#
# The document pads a 5-token and a 12-token sentence to 12 and counts attention scores: 2 x 12² = 288
# computed, of which it calls 98 (34%) padding, and says the mask leaves 17 valid positions, "saving
# 14 padding positions". Predict the true fraction of the 288 score entries that involve padding.

# %%
p_waste = predict("S000-Q3.2", "What fraction of the 288 attention scores involves a padding position?",
                  kind="number")

# %%
doc = padding_waste([5, 12])
doc_causal = padding_waste([5, 12], causal=True)
print(f"token slots {doc.token_slots}, real {doc.real_tokens}, padding {doc.pad_tokens}")
print(f"attention scores: {doc.score_slots} computed, {doc.real_scores} needed, "
      f"{doc.score_slots - doc.real_scores} wasted = {doc.score_waste:.1%} "
      f"(causal: {doc_causal.score_waste:.1%} of {doc_causal.score_slots})")
assert doc.pad_tokens == 7 and doc.score_slots - doc.real_scores == 119
reveal(p_waste, measured=doc.score_waste, tolerance=0.1,
       note="The 5-token row needs 5² = 25 of its 144 scores; 119 are padding, 41% of all 288. "
            "And 24 slots - 17 real tokens = 7 padding positions, not 14.")

# %% [markdown]
# ### The document's two schemes, under its own assumption
#
# The document compares **scheme A**, truncate every sentence of a batch to the *shortest* one, with
# **scheme B**, pad every sentence to the *longest*, and assumes batches of 32 with a mean length of 256
# and a longest sentence of 512. Then, it says, A "loses 30% of the data" and B "wastes 50% of the
# compute". Two batches meet that assumption exactly: one whose other 31 sentences are all about as
# long, one whose other sentences are spread evenly.

# %%
B_DOC, L_DOC, MEAN_DOC = 32, 512, 256
rest = MEAN_DOC * B_DOC - L_DOC                                             # tokens in the other 31 rows
doc_batches = {"others alike": [L_DOC] + [rest // 31 + (i < rest % 31) for i in range(31)],
               "others spread": [L_DOC] + torch.linspace(1, 2 * rest / 31 - 1, 31).round().long().tolist()}
scheme_b = {k: padding_waste(v, pad_to=L_DOC) for k, v in doc_batches.items()}   # full (n x n) attention, as counted there
scheme_a = {k: truncation_loss(v, group=B_DOC) for k, v in doc_batches.items()}
attention_bound = 1 - (MEAN_DOC / L_DOC) ** 2           # real share of n² ≥ (mean n)² / 512² (Jensen)
for k, v in doc_batches.items():
    print(f"{k:>13}: mean {sum(v) / len(v):.1f}, longest {max(v)}, shortest {min(v)} | scheme B: "
          f"{scheme_b[k].token_waste:.1%} of token slots, {scheme_b[k].score_waste:.1%} of attention scores are padding"
          f" | scheme A loses {scheme_a[k]:.1%} of the tokens")
print(f"attention waste can be at most 1 - (256/512)² = {attention_bound:.0%} under this assumption")

# %%
assert all(abs(w.token_waste - 0.5) < 0.01 for w in scheme_b.values()), "B pads half the token slots: 1 - 256/512"
assert all(0.5 < w.score_waste <= attention_bound + 1e-9 for w in scheme_b.values()), "attention wastes more, ≤ 75%"
assert max(scheme_a.values()) - min(scheme_a.values()) > 0.5, "A's loss is set by the shortest row, not by the mean"

# %% [markdown]
# Scheme B's 50% is right for the linear layers, whatever the lengths: a batch padded to 512 with a
# mean of 256 is half padding. Attention, whose cost grows with the square of the length, wastes more
# (the share printed above for each batch, at most 75%). Scheme A's loss is not fixed by the
# assumption at all: it depends on how short the shortest sentence is.
#
# ### Padding a real corpus
#
# How much do the schemes cost on real text? We take the corpus documents, tokenized by characters and
# cut at a context of 512, and measure scheme A and scheme B on random batches of 32, plus two more
# policies: pad every document to 512 (the question's "pad everything to the same length"), and
# batches of 16 padded to their longest member, in random order or after sorting by length.

# %%
doc_lengths = [len(d) + 1 for d in docs]       # characters (= tokens here) plus a BOS
CTX = 512
kept = [min(n, CTX) for n in doc_lengths]
truncated_share = 1 - sum(kept) / sum(doc_lengths)
pad_to_ctx = padding_waste(kept, pad_to=CTX, causal=True)
shuffled = kept[:]
random.Random(0).shuffle(shuffled)
corpus_a = truncation_loss(shuffled, group=B_DOC)                       # scheme A, random batches of 32
corpus_b = group_waste(shuffled, group=B_DOC, causal=False)            # scheme B, counted as the document does
random_waste, sorted_waste = group_waste(shuffled, 16), group_waste(sorted(kept), 16)
print(f"{len(docs)} documents, median {sorted(doc_lengths)[len(doc_lengths) // 2]} tokens; "
      f"{sum(n > CTX for n in doc_lengths) / len(docs):.0%} are longer than {CTX}")
print(f"scheme A, random batches of 32 cut to their shortest: {corpus_a:.0%} of the tokens lost")
print(f"scheme B, random batches of 32 padded to their longest: {corpus_b.token_waste:.0%} of token slots, "
      f"{corpus_b.score_waste:.0%} of attention scores")
print(f"pad/truncate everything to {CTX}: {truncated_share:.0%} of the tokens cut off, "
      f"{pad_to_ctx.token_waste:.0%} of the token slots and {pad_to_ctx.score_waste:.0%} of the causal scores are padding")
print(f"random batches of 16, each padded to its longest: {random_waste.token_waste:.0%} of token slots, "
      f"{random_waste.score_waste:.0%} of causal scores")
print(f"batches of 16 similar lengths (sorted first):     {sorted_waste.token_waste:.0%} of token slots, "
      f"{sorted_waste.score_waste:.0%} of causal scores")
fig, ax = plt.subplots()
ax.hist(doc_lengths, bins=60, range=(0, 3000))
ax.axvline(CTX, color="k", ls="--")
ax.set_xlabel("document length (tokens); dashed: a 512 context")
ax.set_ylabel("number of documents");

# %%
assert 0 < truncated_share < 1 and 0 < pad_to_ctx.token_waste < 1
assert pad_to_ctx.score_waste > pad_to_ctx.token_waste, "attention (quadratic) wastes more than linear layers"
assert corpus_b.score_waste > corpus_b.token_waste, "the same holds for scheme B on the corpus"
assert sorted_waste.token_waste < random_waste.token_waste, "grouping similar lengths reduces padding"

# %% [markdown]
# The numbers depend entirely on the length distribution: the document's 30% is not a property of
# scheme A, and on this corpus cutting each batch to its shortest document throws away the share
# printed above. For attention, whose cost grows with the square of the length, padding wastes a
# larger share than for the linear layers. Grouping similar lengths ("bucketing") is the cheap fix;
# packing (below) removes padding altogether.
#
# ### Does the mask save compute?
#
# The document says the loss mask "saves gradient computation". Predict, then time one training step
# (forward + backward) on the same text laid out three ways: padded with the mask, padded without the
# mask, and **packed** (segments concatenated into full rows, no padding at all).

# %%
p_speed = predict("S000-Q3.2", "Padded batch: is a training step with the loss mask faster than without?",
                  ["yes, clearly faster", "about the same", "slower"])

# %%
rng = random.Random(3)
B_TIME = 16
T_TIME = by_budget(fast=128, full=512)
lengths = [rng.randint(16, T_TIME) for _ in range(B_TIME)]
segments = [train_stream[i * T_TIME:i * T_TIME + n] for i, n in enumerate(lengths)]
rows = torch.full((B_TIME, T_TIME + 1), PAD)
for i, s in enumerate(segments):
    rows[i, :len(s)] = s
x_pad, y_nomask = shift_for_next_token(rows)
_, y_mask = shift_for_next_token(rows, target_mask=rows != PAD)
packed_ids = PackedDataset([s.tolist() for s in segments], tok, block_size=T_TIME, drop_last=False)
packed = collate([packed_ids[i] for i in range(len(packed_ids))])
x_pack, y_pack = packed["input_ids"], packed["labels"]
print(f"{sum(lengths)} real tokens: padded {tuple(x_pad.shape)}, packed {tuple(x_pack.shape)}")

torch.manual_seed(0)
timing_model = Transformer(by_budget(fast=ModelConfig.tiny(vocab_size=tok.vocab_size, max_seq_len=T_TIME),
                                     full=ModelConfig.tiny(vocab_size=tok.vocab_size, max_seq_len=T_TIME, dim=256)))
layouts = {"padded + mask": (x_pad, y_mask), "padded, no mask": (x_pad, y_nomask), "packed": (x_pack, y_pack)}


def train_step(x, y):
    def run():
        timing_model.zero_grad(set_to_none=True)
        timing_model(x, labels=y).loss.backward()
    return run


times = {k: [] for k in layouts}
for name, (x, y) in layouts.items():                 # one untimed warm-up step each
    train_step(x, y)()
for _ in range(by_budget(fast=5, full=10)):          # interleaved, so load changes hit all three alike
    for name, (x, y) in layouts.items():
        times[name].append(time_fn(train_step(x, y), repeat=1, warmup=0).median)
step_time = {k: min(v) for k, v in times.items()}   # the fastest run: the least disturbed by other processes
act_bytes = {k: saved_tensor_bytes(lambda x=x, y=y: timing_model(x, labels=y).loss) for k, (x, y) in layouts.items()}
for k in layouts:
    print(f"{k:>16}: {step_time[k] * 1e3:7.1f} ms per step, {act_bytes[k] / 1e6:6.1f} MB of activations kept for backward")
fig, axes = plt.subplots(1, 2, figsize=(10, 3))
viz.bar({k: v * 1e3 for k, v in step_time.items()}, ax=axes[0], ylabel="ms per step (fastest of the runs)")
viz.bar({k: v / 1e6 for k, v in act_bytes.items()}, ax=axes[1], ylabel="MB saved for backward")
for ax in axes:
    ax.set_xlabel("layout of the same tokens")
fig.tight_layout();

# %%
rows_ratio = x_pack.shape[0] / x_pad.shape[0]
mask_time_ratio = step_time["padded + mask"] / step_time["padded, no mask"]
assert 0.75 < mask_time_ratio < 1.33, "the mask changes which terms are summed, not how much is computed"
assert abs(act_bytes["padded + mask"] / act_bytes["padded, no mask"] - 1) < 0.02, "same activations kept"
assert abs(act_bytes["packed"] / act_bytes["padded + mask"] - rows_ratio) < 0.1, "packing keeps only real rows"
assert step_time["packed"] < step_time["padded + mask"] * min(0.9, rows_ratio + 0.35), "packing is what saves time"
reveal(p_speed, measured=f"time ratio mask/no mask = {mask_time_ratio:.2f}", answer="about the same",
       note=f"Packing the same tokens into {x_pack.shape[0]} instead of {x_pad.shape[0]} rows is what saves time "
            f"({step_time['packed'] / step_time['padded + mask']:.2f}x) and memory.")

# %% [markdown]
# The mask decides which positions *teach*; it does not decide which positions are *computed*. The
# logits, the softmax and the backward pass run at every padded position either way. To stop paying
# for padding you have to stop computing it: pack several documents into one row (as here; with a
# document mask or position resets if documents must not see each other), or use "varlen" attention
# kernels that take a list of sequence lengths. Packing is what large-scale pretraining does, and
# then the loss mask is still needed, for whatever padding remains and for the boundaries between
# documents.
#
# ## Claims
#
# The document's quantitative claims on these questions, next to our measurements.

# %%
claims = [
    Claim("S000-Q3", "the loss mask keeps padding out of the loss", "padding ignored",
          f"gradient at masked logits exactly 0 ({int(is_masked.sum())} positions); at real ones > 0",
          holds=bool(torch.all(grad_norm_per_position[is_masked] == 0) and torch.all(grad_norm_per_position[~is_masked] > 0))),
    Claim("S000-Q3.1", "without a mask, sentence 1 averages over 4 targets, 2 of which involve padding",
          "2 of 4", f"{int(pad_involved[0])} of {Y_all.shape[1]}", holds=int(pad_involved[0]) == 2 and Y_all.shape[1] == 4),
    Claim("S000-Q3.1", "without a mask the model learns '103 -> 0' and '0 -> 0'", "it learns to predict padding",
          f"P(pad) on clean text {no['p_pad']:.3f} vs {tm['p_pad']:.1e} masked; P(pad | pad) {no['p_pad_after_pad']:.2f}; "
          f"generations {no['gen_len']:.0f} vs {tm['gen_len']:.0f} tokens",
          holds=leak > 10 and no["p_pad_after_pad"] > 0.5),
    Claim("S000-Q3.1", "loss2 = (sum over a 5-token sentence) / 5", "5 targets", f"{int(real_targets[1])} targets",
          holds=int(real_targets[1]) == 5),
    Claim("S000-Q3.1", "the correct loss averages per sentence, then over sentences", "(loss1 + loss2) / 2",
          f"sentence 1 weighs {sentence1_share['seq_mean']:.2f} (sequence mean) vs {sentence1_share['token_mean']:.2f} "
          f"(token mean, MiniMind's choice); clean loss {sm['loss']:.3f} vs {tm['loss']:.3f}",
          holds=None, verdict="one of two valid reductions, not the one MiniMind uses"),
    Claim("S000-Q3.2", "padding contributes 7x7x2 = 98 of 288 attention scores (34%)", "98 (34%)",
          f"{doc.score_slots - doc.real_scores} ({doc.score_waste:.0%})",
          holds=doc.score_slots - doc.real_scores == 98),
    Claim("S000-Q3.2", "with the mask only 17 positions are valid, saving 14 padding positions", "14",
          f"{doc.token_slots} slots - {doc.real_tokens} real = {doc.pad_tokens}", holds=doc.pad_tokens == 14),
    Claim("S000-Q3.2", "the loss mask saves gradient computation", "faster",
          f"step time with/without mask {mask_time_ratio:.2f}x; activations "
          f"{act_bytes['padded + mask'] / act_bytes['padded, no mask']:.3f}x; packing "
          f"{step_time['packed'] / step_time['padded + mask']:.2f}x time",
          holds=mask_time_ratio < 0.8),
    Claim("S000-Q3.2", "attention: 288 scores, unavoidable", "unavoidable",
          f"{doc.real_scores} are needed; packing or varlen kernels skip the rest",
          holds=doc.real_scores == doc.score_slots,
          citation="Dao 2023 (FlashAttention-2) varlen kernels; Krell et al. 2021 (packing without cross-contamination)"),
    Claim("S000-Q3.2", "scheme A (truncate each batch to its shortest) loses 30% of the data", "30%",
          f"this corpus, random batches of 32: {corpus_a:.0%}; batches with the document's mean 256 and longest "
          f"512: {min(scheme_a.values()):.0%} to {max(scheme_a.values()):.0%}", holds=abs(corpus_a - 0.30) < 0.05,
          verdict=None if abs(corpus_a - 0.30) < 0.05 else "does not hold: the shortest row decides, not a fixed 30%"),
    Claim("S000-Q3.2", "scheme B (pad to the longest) wastes 50% of the compute (batch 32, mean 256, longest 512)",
          "50%", f"token slots: {min(w.token_waste for w in scheme_b.values()):.1%} (1 - 256/512 for any such batch); "
                 f"attention scores: {min(w.score_waste for w in scheme_b.values()):.0%} to "
                 f"{max(w.score_waste for w in scheme_b.values()):.0%} (at most {attention_bound:.0%}); this corpus: "
                 f"{corpus_b.token_waste:.0%} / {corpus_b.score_waste:.0%}",
          holds=all(abs(w.token_waste - 0.5) < 0.01 for w in scheme_b.values()),
          verdict="holds for the linear layers; attention wastes more"
          if all(w.score_waste > 0.55 for w in scheme_b.values()) else None),
]
table = claims_table(claims)

# %% [markdown]
# **What this can and cannot show.** The harm of training without a mask is measured on small
# character models trained for a short time (the full budget trains a larger one for 800 steps on ten
# times the text); the direction is the same at both budgets, the sizes are this corpus's. Timings are
# ratios on this CPU: they show that the mask changes no work, not how a GPU kernel for variable
# lengths performs, which is not available here. The padding and truncation shares depend on the
# length distribution; the document's own assumption fixes scheme B's token share but neither
# scheme A's loss nor attention's exact share.
#
# ## The essence
#
# A batch is a rectangle; text is not. Padding fills the rectangle, and the loss mask keeps the filler
# out of what the model *learns*: without it, padding becomes a token of the language, predicted at
# random places, and its probability is taken from the real next token. With the mask, how to average
# is a choice (every token equal, or every sequence equal), and it changes the gradient. What the mask
# never does is save work: masked positions are computed and back-propagated like all others and then
# multiplied by zero. Saving the work means not building the padding in the first place: packing, or
# kernels that accept sequences of different lengths.
#
# ## Exercises
#
# **Exercise 1.** For the document's example (lengths 5 and 12) with a *causal* mask, how many of the
# computed scores are needed? Count by brute force and compare with `padding_waste(..., causal=True)`.

# %% tags=["solution"] jupyter={"source_hidden": true}
computed = needed = 0
for n in (5, 12):
    for i in range(12):              # query position in the padded row
        for j in range(i + 1):       # causal: keys up to i
            computed += 1
            needed += (i < n) and (j < n)
print(f"computed {computed}, needed {needed}, waste {1 - needed / computed:.1%}")
assert (computed, needed) == (doc_causal.score_slots, doc_causal.real_scores)

# %% [markdown]
# **Exercise 2.** The token mean and the sequence mean agree in one special case. Which? Check it with
# `masked_cross_entropy`.

# %% tags=["solution"] jupyter={"source_hidden": true}
# When every sequence has the same number of real targets, both reductions are the same average.
same_len_labels = torch.randint(0, 300, (3, 6))
same_len_labels[:, 4:] = IGNORE_INDEX               # every row: 4 real targets
lg = torch.randn(3, 6, 300)
a, b = (float(masked_cross_entropy(lg, same_len_labels, r)) for r in ("token_mean", "seq_mean"))
print(a, b)
assert math.isclose(a, b, rel_tol=1e-6)
