# %% [markdown]
# # 02 The next-token objective: the shift, teacher forcing, mechanism vs task
#
# A GPT-style model is trained on one task only: read a prefix, predict the token that comes next.
# The training data is built by shifting a sequence by one position against itself. This notebook
# asks why exactly that shift, what happens with other pairings, why a model trained this way needs a
# *causal* mask, what "self" in self-attention is for, and what training on the true prefix
# ("teacher forcing") leaves out.
#
# ## The questions
#
# **S000-Q2** 「为什么训练时要用"错位"的方式构造X和Y？」
# *Why build the inputs X and targets Y by shifting the sequence by one position?*
#
# **S000-Q2.1** 「为什么不能用X=[101, 102, 103]，Y=[201, 202, 203]这种完全不同的序列？」
# *Why not pair X with a completely different sequence Y?*
#
# **S000-Q2.2** 「为什么Y要去掉第一个token，而不是去掉最后一个？」
# *Why does Y drop the first token rather than the last?*
#
# **S001-Q1** 「Self-Attention的"Self"深度解析」, with the student's answer 「序列内部的相关性，用于预测下一个token」
# *What does the "self" in self-attention mean? Student: "relations inside the sequence, used to
# predict the next token".*
#
# **S001-Q1-guide** 「你提到"用于预测下一个token"，但这是**所有**Self-Attention的目的吗？」
# *You said "to predict the next token"; is that the purpose of all self-attention?*
#
# **S001-Q1-hint1** 「BERT和GPT都用Self-Attention，它们的任务一样吗？」 *Do BERT and GPT do the same task?*
#
# **S001-Q1-hint2** 「Encoder的Self-Attention在"预测"什么？」 *What does an encoder's self-attention "predict"?*
#
# **S001-Q1-hint3** 「Self-Attention是**机制**还是**任务**？」 *Is self-attention a mechanism or a task?*
#
# **S001-Q23-TF** 「teacher forcing 我不太了解，请深入帮我讲解一下」 *Please explain teacher forcing in depth.*
#
# **The surface answers.** "It is the standard way to train a language model" (for the shift); the
# document then argues that an unrelated Y would need labels and would not generalise, and that
# shifting the other way is a "logic error". The lecture notes separate the *mechanism* (attention
# within one sequence) from the *task* (next-token prediction for GPT, filling blanks for BERT), and
# describe teacher forcing as feeding the true prefix during training, with a train/inference mismatch
# ("exposure bias").
#
# Each of these gets an experiment. The language experiments use the People's Daily corpus at the byte
# level (a vocabulary of 259, so tiny models train in seconds); the teacher-forcing experiment uses a
# synthetic source whose true next-token distribution we know exactly.

# %%
import math

import torch
import torch.nn.functional as F

import course_lib
from course_lib import (ByteTokenizer, CharTokenizer, ModelConfig, PackedDataset, TrainConfig, Trainer,
                        Transformer, generate, load_corpus)
from course_lib.lab import viz
from course_lib.lab.budget import budget, by_budget, set_budget_threads
from course_lib.corpus import train_val_split
from course_lib.data import shift_for_next_token
from course_lib.lab.markov import MarkovSource
from course_lib.lab.measure import unigram_entropy_bits
from course_lib.lab.objectives import (identity_targets, input_influence, masked_lm_items, reversed_targets,
                                       unrelated_targets)
from course_lib.lab.socratic import Claim, claims_table, essence, predict, reveal

viz.setup()
import matplotlib.pyplot as plt  # noqa: E402

torch.manual_seed(0)
set_budget_threads()  # one thread under the fast budget: tiny models gain nothing from more
print(f"course_lib {course_lib.__version__}, budget: {budget()}")

# %% [markdown]
# ## 1. The shift
#
# One sentence, tokenized by characters so we can read it. `shift_for_next_token` (the only place
# in `course_lib` that shifts) turns the sequence into the model's input X and its targets Y.

# %%
sentence = "今天天气很好。"
char_tok = CharTokenizer.from_texts([sentence])
seq = torch.tensor(char_tok.encode(sentence, add_special_tokens=True))   # BOS + characters
X, Y = shift_for_next_token(seq)
for t in range(len(X)):
    print(f"position {t}: reads {char_tok.decode(X[:t + 1].tolist())!r:>16} -> target {char_tok.decode([int(Y[t])])!r}")

# %%
assert torch.equal(Y[:-1], X[1:]), "the target at t is the input at t + 1"
assert len(X) == len(Y) == len(seq) - 1

# %% [markdown]
# Every position is a training example: "given everything up to here, what comes next?". One
# sentence of n tokens gives n - 1 examples, and a causal Transformer computes all of them in one
# forward pass. That is the whole reason for the shift: the data labels itself.
#
# ## 2. Training on three pairings
#
# We train the same tiny model three times on the same text, changing only the targets:
#
# * **shifted** (correct): Y[t] = X[t + 1];
# * **unrelated** (S000-Q2.1): Y is the shifted target of a *different*, random block of text;
# * **reversed** (S000-Q2.2): Y[t] = X[t - 1], i.e. drop the *last* token from Y instead of the first.
#
# Predict first.

# %%
p_pairings = predict("S000-Q2.2",
                     "Which run reaches the LOWEST training loss?",
                     ["shifted (correct)", "unrelated targets", "reversed (Y[t] = X[t-1])"])

# %%
docs = load_corpus(max_chars=by_budget(fast=150_000, full=1_500_000))
train_docs, val_docs = train_val_split(docs, val_fraction=0.1, seed=0)
tok = ByteTokenizer()
T = by_budget(fast=32, full=128)
train_blocks = PackedDataset(train_docs, tok, block_size=T)
val_blocks = PackedDataset(val_docs, tok, block_size=T)
items = [train_blocks[i] for i in range(len(train_blocks))]
unrelated = unrelated_targets(items, seed=0)          # each block's inputs, another block's targets
reversed_items = reversed_targets(items)              # Y[t] = X[t-1]

H_unigram = unigram_entropy_bits(train_blocks.tokens, tok.vocab_size) * math.log(2)   # nats per byte
STEPS = by_budget(fast=150, full=1500)
model_cfg = by_budget(fast=ModelConfig.nano(vocab_size=tok.vocab_size + 1, max_seq_len=T),
                      full=ModelConfig.tiny(vocab_size=tok.vocab_size + 1, max_seq_len=T))   # +1: a [MASK] id, section 3


def train(data, steps=STEPS, **changes):
    torch.manual_seed(0)
    model = Transformer(model_cfg.replace(**changes))
    hist = Trainer(model, data, TrainConfig(batch_size=16, max_steps=steps, lr=1e-2, warmup_steps=steps // 15,
                                            seed=0, progress=False, log_every=0)).fit()
    return model.cpu().eval(), hist          # evaluate on the CPU, whatever device trained it


runs = {"shifted": train(items), "unrelated": train(unrelated, steps=STEPS * 2 // 3),
        "reversed": train(reversed_items, steps=STEPS * 2 // 3)}
final = {name: sum(h.loss[-10:]) / len(h.loss[-10:]) for name, (_, h) in runs.items()}
ax = viz.plot_curves({name: h.loss for name, (_, h) in runs.items()}, "training step", "training loss (nats per byte)",
                     smooth=5)
ax.axhline(H_unigram, color="k", ls="--", lw=1)
ax.text(0, H_unigram * 1.03, "unigram entropy of the targets", fontsize=8)
print({k: round(v, 3) for k, v in final.items()}, f"unigram entropy {H_unigram:.3f} nats")

# %% [markdown]
# Training loss alone is misleading: what we want is a model that predicts the *next* token of new
# text. So we score every model on the real next-token task on held-out text, and let each one
# continue a prompt.

# %%
val_x = torch.stack([val_blocks[i]["input_ids"] for i in range(min(64, len(val_blocks)))])
val_y = torch.stack([val_blocks[i]["labels"] for i in range(min(64, len(val_blocks)))])
prompt = torch.tensor([[tok.bos_id] + tok.encode("中国人民")])
next_token_loss, samples = {}, {}
with torch.no_grad():
    for name, (model, _) in runs.items():
        next_token_loss[name] = model(val_x, labels=val_y).loss.item()
        out = generate(model, prompt, 24, temperature=0)
        samples[name] = tok.decode(out[0, 1:].tolist())
        print(f"{name:>9}: next-token loss on held-out text {next_token_loss[name]:.3f} nats | greedy: {samples[name]!r}")

# %%
assert final["unrelated"] > 0.95 * H_unigram, "with unrelated targets nothing beats the target frequencies"
assert final["shifted"] < 0.9 * H_unigram, "the shifted target is predictable from the prefix"
assert final["reversed"] < 0.3 * final["shifted"], "copying a visible token is easy"
assert next_token_loss["reversed"] > next_token_loss["shifted"] + 1.0, "and useless for predicting what comes next"
assert next_token_loss["unrelated"] > next_token_loss["shifted"]
reveal(p_pairings, measured=f"final losses {', '.join(f'{k} {v:.2f}' for k, v in final.items())}",
       answer="reversed (Y[t] = X[t-1])",
       note="The reversed target is already in the input: a causal model sees X[t-1] at position t, so "
            "it learns to copy and its loss goes to zero while it learns nothing about what comes next.")

# %% [markdown]
# Three lessons:
#
# * **Unrelated targets** (S000-Q2.1): the loss stalls at the entropy of the target bytes themselves.
#   Nothing about a random other sentence can be predicted from this one, so the best the model can
#   do is predict the average frequencies. A pairing X -> Y is learnable only if Y depends on X; the
#   shift guarantees it, for free, on any text.
# * **Reversed** (S000-Q2.2): the document calls it a "logic error"; it is worse than that. In a
#   causal model the position t can see X[t-1], so predicting it is copying, and the loss collapses.
#   The model is then useless for the only thing we wanted, predicting the next token. The direction
#   of the shift is what the causal factorisation p(x) = ∏ p(x_t | x_<t) requires.
# * **Shifted**: the only run whose held-out next-token loss is below the frequency baseline. (At the
#   fast budget a byte-level model this small still writes poor continuations; the held-out loss is
#   the honest comparison. Longer training, as under the full budget, improves the continuations.)
#
# ## 3. Mechanism vs task: causal and bidirectional attention
#
# Self-attention lets every position read the other positions of the *same* sequence (that is the
# "self"). Whether it may read the *future* is a separate choice: the causal mask. GPT uses it
# because its task is next-token prediction; BERT does not, because its task is to fill in blanks.
# What happens if we train a bidirectional model (`causal=False`) on next-token prediction?

# %%
p_bidir = predict("S001-Q1-guide",
                  "A bidirectional model trained on next-token prediction: its training loss will be ...",
                  ["higher than the causal model's", "about the same", "much lower (it cheats)"])

# %%
bidir, bidir_hist = train(items, causal=False)
causal = runs["shifted"][0]
t_probe = T // 2       # how strongly the prediction at t_probe depends on each input position (gradient norm)
infl = {"causal": input_influence(causal, val_x[:1], t_probe), "bidirectional": input_influence(bidir, val_x[:1], t_probe)}
future_causal = infl["causal"][t_probe + 1:].abs().max().item()
future_bidir = infl["bidirectional"][t_probe + 1:].abs().max().item()

with torch.no_grad():
    # the last position of a window: its target is NOT in the input, as in generation
    last = {name: F.cross_entropy(m(val_x).logits[:, -1], val_y[:, -1]).item()
            for name, m in (("causal", causal), ("bidirectional", bidir))}
train_final = {"causal": final["shifted"], "bidirectional": sum(bidir_hist.loss[-10:]) / len(bidir_hist.loss[-10:])}
print(f"training loss: causal {train_final['causal']:.3f}, bidirectional {train_final['bidirectional']:.3f}")
print(f"loss at the last position (target unseen): causal {last['causal']:.3f}, bidirectional {last['bidirectional']:.3f}")
print(f"largest influence of a future token on position {t_probe}: causal {future_causal:.1e}, "
      f"bidirectional {future_bidir:.1e}")
fig, axes = plt.subplots(1, 2, figsize=(10, 3))
for ax, (name, v) in zip(axes, infl.items()):
    ax.bar(range(T), v.tolist())
    ax.axvline(t_probe, color="k", ls="--", lw=1)
    ax.set_title(f"{name}: what position {t_probe} reads")
    ax.set_xlabel("input position (token index)")
axes[0].set_ylabel("gradient norm at the input embedding")
fig.tight_layout();

# %%
assert future_causal == 0.0, "causal: the future has no path to the prediction"
assert future_bidir > 0, "bidirectional: it does"
assert train_final["bidirectional"] < 0.5 * train_final["causal"], "so it reads the answer and the loss collapses"
assert last["bidirectional"] > last["causal"], "where the answer is not in the input, it is worse"
reveal(p_bidir, measured=f"{train_final['bidirectional']:.2f} vs {train_final['causal']:.2f}",
       answer="much lower (it cheats)",
       note="Next-token training with bidirectional attention leaks the target: position t reads x[t+1].")

# %% [markdown]
# Same layers, same parameters, same data: the bidirectional model's training loss collapses because
# position t can read token t + 1, the very token it is asked to predict. At generation time that
# token does not exist yet, and the model is lost.
#
# So is bidirectional attention simply wrong? Only for this *task*. Give the same bidirectional
# block BERT's task, masked language modelling: hide 15% of the input bytes behind a `[MASK]` id and
# predict only those. Now reading both sides is exactly what the task needs.

# %%
MASK = tok.vocab_size            # the extra id the models were built with
mlm_train = masked_lm_items(items, mask_id=MASK, rate=0.15, seed=1)
mlm_model, mlm_hist = train(mlm_train, steps=2 * STEPS, causal=False)   # only 15% of positions are targets
val_mlm = masked_lm_items([val_blocks[i] for i in range(min(64, len(val_blocks)))], mask_id=MASK, rate=0.15, seed=2)
with torch.no_grad():
    mx = torch.stack([v["input_ids"] for v in val_mlm])
    my = torch.stack([v["labels"] for v in val_mlm])
    mlm_loss = mlm_model(mx, labels=my).loss.item()
print(f"bidirectional + masked-LM task: held-out loss on the hidden bytes {mlm_loss:.3f} nats "
      f"(causal next-token: {next_token_loss['shifted']:.3f}; unigram entropy {H_unigram:.3f})")
assert mlm_loss < 0.9 * H_unigram, "the bidirectional block learns this task: far below guessing from frequencies"

# %% [markdown]
# **Mechanism or task?** Self-attention is a *mechanism*: each position gathers information from the
# other positions of its own sequence, with weights it computes itself. What it is *for* is decided
# by two other choices: which positions may be read (the mask) and what the output is trained to
# predict (the objective and the head on top). GPT: causal mask + next token. BERT: no mask + masked
# tokens (plus, originally, next-sentence prediction). An encoder's self-attention by itself
# "predicts" nothing; it builds representations, and a head trained for some task reads them
# (exercise 2 probes the frozen masked-LM model for two different properties).
#
# ## 4. Teacher forcing and exposure bias
#
# During training the model always reads the *true* prefix: that is teacher forcing, and it is what
# makes the one-pass training of section 1 possible. At generation time it reads its *own* previous
# outputs. If it makes a mistake, it lands in contexts it never saw during training. How much does
# that matter?
#
# To measure it we need to know the true next-token distribution for *any* prefix, including the
# model's mistaken ones. Text cannot give us that, so we use a synthetic source: a random
# second-order Markov chain over 12 symbols, where every pair of symbols allows only 2 successors.
# We train a tiny model on it, then compare the model's error (the KL divergence from the true
# next-token distribution) on prefixes drawn from the source (teacher forcing) and on prefixes the
# model sampled itself (free running).

# %%
p_tf = predict("S001-Q23-TF",
               "Compared with true prefixes, how large is the model's error on its own sampled prefixes?",
               ["smaller", "about the same", "larger"])

# %%
K, L_MC = 12, 33
source = MarkovSource(n_symbols=K, n_successors=2, seed=0)        # p*(c | a, b) known for every (a, b)
mc_train = source.sample(by_budget(fast=3000, full=30000), L_MC, torch.Generator().manual_seed(0))
mc_items = [{"input_ids": a, "labels": b} for a, b in zip(*shift_for_next_token(mc_train))]
torch.manual_seed(0)
mc_model = Transformer(ModelConfig.nano(vocab_size=K, max_seq_len=L_MC))
mc_steps = by_budget(fast=250, full=1500)
Trainer(mc_model, mc_items, TrainConfig(batch_size=32, max_steps=mc_steps, lr=1e-2, warmup_steps=mc_steps // 10,
                                        seed=0, progress=False, log_every=0)).fit()
mc_model.cpu().eval()

N_MC = by_budget(fast=512, full=4096)
true_seqs = source.sample(N_MC, L_MC, torch.Generator().manual_seed(1))
own_seqs = generate(mc_model, true_seqs[:, :2], L_MC - 2, temperature=1.0, generator=torch.Generator().manual_seed(2))
kl_tf = source.kl_per_position(mc_model, true_seqs)          # (N, L-2): KL(p* || model) at t = 2 .. L-1
kl_fr = source.kl_per_position(mc_model, own_seqs)
off_source = source.off_source(own_seqs).float()             # transitions the source never makes
seen_bad = off_source.cumsum(1) > 0                          # an off-source transition so far?
after_bad = seen_bad[:, :-1]                                 # positions whose prefix already contains one
n_after_bad, n_clean = int(after_bad.sum()), int((~after_bad).sum())
# sequence-level difference of the mean KL, and its standard error over the N_MC independent sequences
per_seq = kl_fr.mean(1) - kl_tf.mean(1)
tf_gap, tf_se = per_seq.mean().item(), (per_seq.std() / math.sqrt(N_MC)).item()
print(f"mean KL on true prefixes {kl_tf.mean():.4f} nats, on own prefixes {kl_fr.mean():.4f} nats "
      f"(difference {tf_gap:+.4f} ± {tf_se:.4f}, one standard error)")
print(f"{off_source.mean():.1%} of the model's sampled transitions never occur in the source; "
      f"by the end {seen_bad[:, -1].float().mean():.0%} of its sequences contain one "
      f"({n_after_bad} positions come after one, {n_clean} before any)")
MIN_COUNT = 30      # average the KL after an off-source transition only over enough positions
kl_after_bad = kl_fr[:, 1:][after_bad].mean().item() if n_after_bad >= MIN_COUNT else float("nan")
kl_clean = kl_fr[:, 1:][~after_bad].mean().item() if n_clean >= MIN_COUNT else float("nan")
print(f"KL on own prefixes: {kl_clean:.4f} before any off-source transition, {kl_after_bad:.4f} after one")
viz.plot_curves({"teacher forcing (true prefixes)": kl_tf.mean(0).tolist(),
                 "free running (own prefixes)": kl_fr.mean(0).tolist()},
                "position t - 2 (token index)", "KL(true || model), nats");

# %%
tf_answer = "larger" if tf_gap > 3 * tf_se else "smaller" if tf_gap < -3 * tf_se else "about the same"
enough = n_after_bad >= MIN_COUNT and n_clean >= MIN_COUNT
if enough:          # the model made enough mistakes to measure what follows them
    assert kl_after_bad > 1.5 * kl_clean, "after an off-source context its predictions are worse"
    assert tf_answer == "larger", "so on its own prefixes the model is worse than on true ones, beyond 3 standard errors"
else:
    print(f"only {n_after_bad} positions follow an off-source transition: too few to compare (need {MIN_COUNT})")
reveal(p_tf, measured=f"{kl_fr.mean():.3f} vs {kl_tf.mean():.3f} nats (± {tf_se:.3f})", answer=tf_answer,
       note="Trained only on true prefixes, the model has never seen its own mistakes; after one, it "
            "is off the training distribution and its errors grow." if enough else
            "This model rarely left the source's transitions, so there was little to be exposed to.")

# %% [markdown]
# Teacher forcing is not a trick to speed up an RNN: an RNN still runs step by step, even on the true
# prefix. What it buys a Transformer is parallelism: with the true prefix known, all positions of a
# sequence are trained in one pass (section 1). The price is the mismatch measured above, usually
# called *exposure bias*: at inference the model conditions on its own outputs, and once it makes a
# rare mistake it is in contexts it was never trained on. Remedies act on training (scheduled
# sampling, Bengio et al. 2015; sequence-level objectives) or make mistakes rarer; decoding
# strategies such as beam search or top-k change which outputs are chosen, not what the model learned.
#
# ## Claims
#
# no-claim S001-Q1-hint1: a hint (do BERT and GPT do the same task?); section 3 trains both objectives on one block
# no-claim S001-Q1-hint2: a hint (what does an encoder's self-attention predict?); exercise 2 probes the frozen masked-LM model
# no-claim S001-Q1-hint3: a hint (mechanism or task?); the S001-Q1-guide rows answer it with measurements

# %%
claims = [
    Claim("S000-Q2", "X = seq[:-1], Y = seq[1:]", "Y[t] = X[t+1]", "checked on a sentence: Y[:-1] == X[1:]",
          holds=bool(torch.equal(Y[:-1], X[1:]))),
    Claim("S000-Q2.1", "an unrelated Y cannot be learned from X (no generalisation, no generation)",
          "fails", f"training loss {final['unrelated']:.2f} vs unigram entropy {H_unigram:.2f} nats; "
                   f"shifted {final['shifted']:.2f}", holds=final["unrelated"] > 0.95 * H_unigram),
    Claim("S000-Q2.2", "dropping the last token instead of the first is a logic error", "wrong",
          f"reversed: training loss {final['reversed']:.3f} (copying), next-token loss "
          f"{next_token_loss['reversed']:.2f} vs {next_token_loss['shifted']:.2f}",
          holds=next_token_loss["reversed"] > next_token_loss["shifted"] + 1.0,
          verdict="holds, and worse: the loss collapses by copying"),
    Claim("S001-Q1", "GPT: causal self-attention; BERT: bidirectional", "causal vs bidirectional",
          f"future-token influence {future_causal:.0e} (causal) vs {future_bidir:.1e} (bidirectional); "
          f"bidirectional next-token training loss {train_final['bidirectional']:.2f}",
          holds=future_causal == 0 and future_bidir > 0,
          citation="Radford et al. 2018 (GPT); Devlin et al. 2019 (BERT)"),
    Claim("S001-Q1-guide", "self-attention is task-agnostic; next-token prediction is GPT's objective",
          "mechanism ≠ task", f"the same bidirectional block: next-token loss collapses by leaking "
                              f"({train_final['bidirectional']:.2f}), masked-LM loss {mlm_loss:.2f} learns",
          holds=mlm_loss < 0.9 * H_unigram and train_final["bidirectional"] < 0.5 * train_final["causal"]),
    Claim("S001-Q1-guide", "GLUE benchmark: 11 natural-language-understanding tasks", "11", "not measured",
          holds=None, verdict="does not hold: GLUE has 9 tasks",
          citation="Wang et al. 2018 (GLUE: 9 tasks); BERT's 11 tasks are GLUE + SQuAD v1.1/v2.0 + SWAG"),
    Claim("S001-Q23-TF", "teacher forcing causes a train/inference mismatch (exposure bias)", "mismatch",
          f"KL {kl_fr.mean():.3f} (own prefixes) vs {kl_tf.mean():.3f} (true prefixes); "
          f"{kl_after_bad:.2f} after an off-source transition ({n_after_bad} positions)", holds=tf_answer == "larger",
          citation="Bengio et al. 2015 (scheduled sampling); Ranzato et al. 2016 (the term exposure bias)"),
    Claim("S001-Q23-TF", "teacher forcing is the core trick that speeds up RNN training", "speed-up",
          "not measured: with teacher forcing an RNN still runs step by step", holds=None,
          verdict="misleading: it parallelises Transformer training, not RNN training"),
    Claim("S001-Q23-TF", "beam search / top-k mitigate exposure bias", "mitigation", "not measured", holds=None,
          verdict="loose: they are decoding choices; the model's training is unchanged"),
]
table = claims_table(claims)

# %% [markdown]
# **What this can and cannot show.** Under the fast budget the byte-level model is tiny and trains
# for a few hundred steps: enough to separate the three pairings by a wide margin and to show the
# bidirectional leak, too little for readable continuations (the full budget trains a larger model ten
# times longer). Exposure bias is measured on a synthetic source, the only place where the true
# next-token distribution after the model's own prefix is known; how large it is on real text, and in
# large models, this notebook cannot say. When the model rarely leaves the source (a better-trained
# model may), the after-a-mistake comparison is skipped rather than averaged over too few positions.
#
# ## The essence
#
# Shift the sequence by one and every position becomes an example of "prefix -> next token": the text
# labels itself. The direction matters because a causal model can see everything up to its own
# position: ask it for a token it can see and it copies; ask it for a token it cannot see and it has
# to model the language. The same logic explains the causal mask: next-token prediction is only a
# task if the next token is hidden. Self-attention is the mechanism; the mask and the objective make
# it GPT or BERT. Training on true prefixes lets all positions learn in one pass, at the price that
# the model never practises recovering from its own mistakes.
#
# ## Exercises
#
# **Exercise 1.** What happens with *no* shift at all (Y = X)? Predict the training loss, then check
# it with a short run (`train(..., steps=...)`).

# %% tags=["solution"] jupyter={"source_hidden": true}
identity_items = identity_targets(items)
_, identity_hist = train(identity_items, steps=by_budget(fast=40, full=200))
print(f"Y = X: training loss after {len(identity_hist)} steps: {identity_hist.final_loss:.3f} nats")
# the target is the input token itself: with tied embeddings the identity is almost built in
assert identity_hist.final_loss < 0.5 * final["shifted"]

# %% [markdown]
# **Exercise 2.** The masked-LM model's frozen hidden states feed two different linear "heads":
# one asks whether the byte at a position continues a multi-byte character, the other whether the
# *next* byte starts a new character. Fit both with least squares and compare with always guessing
# the majority answer.

# %% tags=["solution"] jupyter={"source_hidden": true}
with torch.no_grad():
    hidden = mlm_model(val_x, capture=True).captured["hidden_states"][-1]        # (B, T, D), frozen
keep = ((val_x[:, :-1] >= 3) & (val_x[:, 1:] >= 3)).reshape(-1)                # byte tokens only, no BOS/EOS
feats = hidden[:, :-1].reshape(-1, hidden.shape[-1])[keep]
feats = torch.cat([feats, torch.ones(len(feats), 1)], 1)                         # a bias column
byte = val_x - 3                                                                    # ids -> byte values
tasks = {"this byte continues a character": (byte[:, :-1] >= 0x80) & (byte[:, :-1] < 0xC0),
         "the next byte starts a character": (byte[:, 1:] >= 0xC0)}
half = feats.shape[0] // 2
for name, target in tasks.items():
    yv = target.reshape(-1)[keep].float()
    w = torch.linalg.lstsq(feats[:half], yv[:half, None]).solution
    acc = ((feats[half:] @ w).squeeze(1) > 0.5).float().eq(yv[half:]).float().mean().item()
    base = max(yv[half:].mean().item(), 1 - yv[half:].mean().item())
    print(f"{name}: probe accuracy {acc:.2f} (majority {base:.2f})")
    assert acc > base + 0.03, "the same frozen features serve a different head"
