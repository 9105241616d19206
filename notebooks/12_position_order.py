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
# # 12 Position I: why order is needed; sinusoidal vs learned; add vs concat
#
# Attention compares every token with every other by content. Nothing in `softmax(QKᵀ)V` says which
# token came first. This notebook asks what exactly that symmetry is, when a model escapes it without
# any position encoding, what the sinusoidal encoding's famous rotation property is, and whether
# adding the position vector to the token vector is better or worse than putting the two side by side.
# (Rotary positions are notebook 13; what happens past the training length is notebook 14.)
#
# ## The questions
#
# **S001-Q13** 「为什么Transformer需要Position Encoding？」 (the student: 「'我爱你'和'你爱我'…打乱顺序，下一个token输出的分布可能是没有变化的…」)
# *Why does a Transformer need position encoding? Student: "'I love you' and 'you love me' ... shuffle the
# order and the next-token distribution might not change at all."*
#
# **S003-Q13** 「为什么需要Position Encoding？」
# *Why position encoding?*
#
# **S003-PE-why** 「为什么需要？ → Self-Attention排列不变」
# *Why is it needed? Because self-attention is permutation invariant.*
#
# **S001-Q14** 「为什么使用正弦/余弦函数而不是简单的learnable embeddings？」
# *Why sinusoids rather than simple learned embeddings?*
#
# **S003-Q14** 「Sinusoidal vs Learnable？」
# *Sinusoidal or learned?*
#
# **S003-PE-how** 「如何设计？ ├─ Sinusoidal … ├─ Learnable … ├─ RoPE … └─ ALiBi: 线性bias，最强外推」
# *How to design one? Sinusoidal, learned, RoPE, ALiBi ("linear bias, the best extrapolation").*
#
# **S001-Q15** 「Position Encoding是加法还是拼接？为什么选择加法？」
# *Is the position encoding added or concatenated? Why add?*
#
# **S001-Q15-sub** 「为什么加法有效？」
# *Why does addition work?*
#
# **S003-Q15** 「加法还是拼接？」
# *Add or concatenate?*
#
# **S003-PE-fuse** 「如何融合？ ├─ 加法 … └─ 拼接」
# *How to combine them? Add, or concatenate.*
#
# **The surface answer.** The documents say self-attention is "permutation invariant", written as
# `Attention(PX) = P·Attention(X)`, so that without a position encoding a Transformer "cannot perceive
# order at all". For sinusoids they give the rotation identity PE(pos+k) = R(k)·PE(pos), wavelengths from
# 2π to 2π·10⁴, a learned table of 2048 × 512 = 1,048,576 parameters, and the verdicts "sinusoidal
# generalises to any length" and "a learned table may underfit"; they recommend "RoPE (used by GPT-Neo)".
# For fusion they say concatenation doubles W_Q, W_K, W_V (6d² instead of 3d², "billions of parameters at
# 7B", "twice the compute"), "cannot do a residual", and that addition works because position is a
# high-frequency pattern and content a low-frequency one, "orthogonal in frequency, naturally decoupled".
#
# We test each: the symmetry exactly (bidirectional vs causal, one layer vs two), whether a model without
# positions still knows where it is (a linear probe), the rotation identity, trained sinusoidal vs learned
# models, and trained add vs concat at the same width.

# %%
import math

import torch

from course_lib import CharTokenizer, ModelConfig, PackedDataset, Transformer, load_corpus
from course_lib.corpus import train_val_split
from course_lib.lab import position_probes as pp
from course_lib.lab import viz
from course_lib.lab.budget import budget, by_budget, set_budget_threads
from course_lib.lab.decode_cost import per_position_loss
from course_lib.lab.heads import seed_verdict
from course_lib.lab.measure import unigram_entropy_bits
from course_lib.lab.probes import dataset_loss
from course_lib.lab.socratic import Claim, claims_table, essence, predict, reveal
from course_lib.positions import sinusoidal_embedding

viz.setup()
import matplotlib.pyplot as plt  # noqa: E402

set_budget_threads()  # one thread under the fast budget: tiny models gain nothing from more
torch.manual_seed(0)
print("budget:", budget())

# %% [markdown]
# ## 1. The symmetry, exactly (S001-Q13, S003-Q13, S003-PE-why)
#
# Permute the rows of the input X with a permutation matrix P. Each output row of attention without
# positions is a softmax-weighted average of value rows, with weights computed from the query row and the
# key rows. Permuting the inputs permutes the queries and, *as a set*, the keys and values: every output
# row is the same, only in a new place. That is `Attention(PX) = P·Attention(X)`: **equivariance** (the
# output moves with the input), not invariance (the output would not change at all). The FFN and the
# norms act on each row alone, so a whole bidirectional stack is equivariant.
#
# A decoder is different: the causal mask lets row t see rows 0…t only, and *which* rows are "before"
# changes when the order changes. We check the library model in float64 (so "zero" means rounding,
# ~1e-15) on random token sequences, shuffling the first T−1 tokens and keeping the last one in place.

# %%
p_sym = predict("S001-Q13 causal", "A causal decoder without any position encoding reads a sentence; we shuffle all "
                "tokens except the last. The output at the last position ...",
                choices=["never changes", "changes with 1 layer and with 2", "is unchanged with 1 layer, changes with 2",
                         "changes with 1 layer, unchanged with 2"])

# %%
T_SYM, V_SYM = 12, 40
ids_sym = torch.randint(3, V_SYM, (8, T_SYM), generator=torch.Generator().manual_seed(0))
perm = pp.prefix_permutation(T_SYM, seed=0)


def small_model(pos="none", causal=True, n_layers=2, seed=0):
    """An untrained float64 model: symmetry is structure, not something training adds."""
    torch.manual_seed(seed)
    cfg = ModelConfig(vocab_size=V_SYM, dim=32, n_layers=n_layers, n_heads=4, max_seq_len=32, pos=pos,
                      causal=causal, rope_theta=1e4, init_std=0.2)
    return Transformer(cfg).double().eval()


VARIANTS = {"bidirectional, no PE, 2 layers": dict(causal=False),
            "causal, no PE, 1 layer": dict(n_layers=1),
            "causal, no PE, 2 layers": dict(),
            "bidirectional, learned PE, 2 layers": dict(causal=False, pos="learned"),
            "causal, RoPE, 2 layers": dict(pos="rope")}
sym = {name: pp.permutation_errors(small_model(**kw), ids_sym, perm) for name, kw in VARIANTS.items()}
print(f"permutation of the first {T_SYM - 1} positions: {perm.tolist()}")
print(f"{'model':38s} {'equivariance':>13s} {'invariance':>11s} {'last position':>14s}   (max |logit|)")
for name, e in sym.items():
    print(f"{name:38s} {e['equivariance']:13.1e} {e['invariance']:11.1e} {e['last_position']:14.1e}   ({e['scale']:.2f})")

# %%
ROUNDING = 1e-10                      # float64: anything structural is ~1e-15; anything real is >> 1e-6
bi, c1, c2 = sym["bidirectional, no PE, 2 layers"], sym["causal, no PE, 1 layer"], sym["causal, no PE, 2 layers"]
assert bi["equivariance"] < ROUNDING, "bidirectional attention without positions is permutation-equivariant"
assert bi["invariance"] > 1e-6, "... but not invariant: the outputs move with the tokens"
assert c1["equivariance"] > 1e-6 and c2["equivariance"] > 1e-6, "the causal mask breaks the symmetry"
assert c1["last_position"] < ROUNDING, "1 causal layer: the last position attends to a set"
assert c2["last_position"] > 1e-6, "2 causal layers: the earlier positions' outputs depend on order, and the last reads them"
assert sym["bidirectional, learned PE, 2 layers"]["equivariance"] > 1e-6
answer_sym = {(True, False): "is unchanged with 1 layer, changes with 2", (False, False): "changes with 1 layer and with 2",
              (True, True): "never changes", (False, True): "changes with 1 layer, unchanged with 2"}[
    (c1["last_position"] < ROUNDING, c2["last_position"] < ROUNDING)]
reveal(p_sym, measured=answer_sym, note=f"1 layer: {c1['last_position']:.0e}; 2 layers: {c2['last_position']:.0e}")

# %% [markdown]
# Three facts, all exact. (i) Without positions a bidirectional stack is equivariant to rounding error
# and *not* invariant: the document's equation is right, its name for it ("排列不变", invariant) is not.
# (ii) With the causal mask the model is neither: position t sees t+1 tokens, so the mask itself
# carries order. (iii) The last position of a *one*-layer causal model sees all tokens as a set (its
# softmax average does not care about their order), so the student's "the next-token distribution may
# not change" is exactly right there, and wrong from two layers on, where the earlier positions' outputs,
# which the last position reads, already depend on the order.
#
# ## 2. 「我爱你」 vs 「你爱我」
#
# The student's example: the same three characters in two orders. We end both with "。" so that the
# last token, whose output predicts the next one, is the same token in both. A bidirectional model
# without positions sees the bag {我, 爱, 你, 。} twice; a causal one sees different prefixes.

# %%
tok_zh = CharTokenizer.from_texts(["我爱你。你爱我。"])
a_ids = torch.tensor(tok_zh.encode("我爱你。"))
b_ids = torch.tensor(tok_zh.encode("你爱我。"))
gaps = {name: pp.next_token_gap(small_model(**kw), a_ids, b_ids) for name, kw in VARIANTS.items()}
for name, gp in gaps.items():
    print(f"{name:38s} next-token distributions after 我爱你。 vs 你爱我。: total variation {gp['tv']:.1e}")

# %%
assert gaps["bidirectional, no PE, 2 layers"]["tv"] < ROUNDING and gaps["causal, no PE, 1 layer"]["tv"] < ROUNDING
assert gaps["causal, no PE, 2 layers"]["tv"] > 1e-6 and gaps["causal, RoPE, 2 layers"]["tv"] > 1e-6
same = [n for n, gp in gaps.items() if gp["tv"] < ROUNDING]
print("identical predictions after the two sentences:", same)

# %% [markdown]
# So "without a position encoding the model cannot tell 我爱你 from 你爱我" is true for a bidirectional
# model (an encoder like BERT without its position table) and for one causal layer, and false for a
# causal stack of two or more. But "can tell them apart" is not "knows where each token is". Does a
# causal model without positions actually *learn* position? That needs training.
#
# ## 3. Does a decoder without positions know where it is? (S001-Q13, §7 #3)
#
# Haviv et al. (2022) trained causal language models with no position encoding ("NoPE") and found them
# nearly as good as ones with positions, with absolute position recoverable from their hidden states. We
# train small character-level models on the King James Bible (about 60 symbols, so a tiny model learns
# real structure in seconds), with no positions, a learned table, fixed sinusoids, and (for section 5) a
# concatenated table, over seeds. Then we fit a **linear probe**: ridge least squares from the last
# layer's hidden state to the position index, fitted on half of the validation sequences and scored
# (R²) on the other half. R² = 0 means no more than guessing the average position.

# %%
L = by_budget(fast=32, full=64)
STEPS = by_budget(fast=200, full=2000)
SEEDS = by_budget(fast=[0, 1], full=[0, 1, 2])
SIZE = by_budget(fast=dict(dim=64, n_layers=2, n_heads=4, ffn_dim=176),
                 full=dict(dim=128, n_layers=4, n_heads=4, ffn_dim=352))
CONCAT = SIZE["dim"] // 4                        # channels given to position when concatenating
N_VAL = by_budget(fast=96, full=256)

docs = load_corpus("kjv", max_chars=by_budget(fast=300_000, full=2_000_000))
train_docs, val_docs = train_val_split(docs, 0.1)
tok = CharTokenizer.from_texts(docs)
train_data = PackedDataset(train_docs, tok, block_size=L)
val_L = PackedDataset(val_docs, tok, block_size=L)
val_2L = PackedDataset(val_docs, tok, block_size=2 * L)
probe_ids = torch.stack([val_L[i]["input_ids"] for i in range(min(N_VAL, len(val_L)))])
eval_2L = torch.stack([torch.cat([val_2L[i]["input_ids"], val_2L[i]["labels"][-1:]])   # (N, 2L + 1) token rows
                       for i in range(min(N_VAL, len(val_2L)))])
unigram_nats = unigram_entropy_bits(train_data.tokens, tok.vocab_size) * math.log(2)
print(f"vocabulary {tok.vocab_size}; {len(train_data)} training blocks of L = {L}; unigram entropy {unigram_nats:.3f} nats")


def lm_config(pos, **kw):
    # Untied embeddings throughout, so the concatenated variant (whose token table is narrower than the
    # output layer) is compared with models built the same way.
    return ModelConfig(vocab_size=tok.vocab_size, max_seq_len=2 * L, pos=pos, rope_theta=1e4,
                       tie_embeddings=False, **SIZE, **kw)


ARMS = {"no PE": lm_config("none"), "learned (add)": lm_config("learned"),
        "sinusoidal (add)": lm_config("sinusoidal"), "learned (concat)": lm_config("learned", pos_concat_dim=CONCAT)}

# %%
p_probe = predict("S003-Q13 probe", "A linear probe on the last hidden state of a trained causal model WITHOUT "
                  "positions: held-out R² for the position index is ...",
                  choices=["about 0 (no position information)", "clearly above 0", "about 1 (as good as with a table)"])

# %%
# NBVAL_IGNORE_OUTPUT
runs = {name: [] for name in ARMS}
models = {}
for name, cfg in ARMS.items():
    for seed in SEEDS:
        m = pp.train_model(cfg, train_data, STEPS, seed)
        runs[name].append({"val_L": dataset_loss(m, val_L, max_items=N_VAL),
                           "curve_2L": per_position_loss(m, eval_2L),
                           "probe": pp.position_probe(m, probe_ids, layer=cfg.n_layers)})
        models.setdefault(name, m)                                              # keep the seed-0 model
    r = runs[name]
    print(f"{name:17s} val loss at L {[round(x['val_L'], 3) for x in r]}, probe R² {[round(x['probe']['r2'], 2) for x in r]}")
untrained = {"causal, untrained": pp.position_probe(Transformer(ARMS["no PE"]).eval(), probe_ids, SIZE["n_layers"]),
             "bidirectional, untrained": pp.position_probe(Transformer(lm_config("none", causal=False)).eval(), probe_ids,
                                                           SIZE["n_layers"])}
embed_layer = pp.position_probe(models["no PE"], probe_ids, layer=0)
print({k: round(v["r2"], 3) for k, v in untrained.items()}, f"| trained no-PE model, embedding layer: R² {embed_layer['r2']:.3f}")

# %%
r2 = {name: [x["probe"]["r2"] for x in r] for name, r in runs.items()}
r2_nope = r2["no PE"]
controls = [v["r2"] for v in untrained.values()] + [embed_layer["r2"]]
fig, ax = plt.subplots()
labels = list(r2) + list(untrained) + ["no PE, embedding layer"]
vals = [sum(v) / len(v) for v in r2.values()] + controls
ax.barh(labels, vals)
for i, v in enumerate(r2.values()):
    ax.plot(v, [i] * len(v), "k.", ms=8)
ax.axvline(0, color="grey", lw=1)
ax.set(xlabel="held-out R² of a linear probe for the position index", title=f"Where am I? (last layer; dots = seeds; L = {L})")
ax.invert_yaxis();

# %%
noise_probe = max(abs(c) for c in controls)      # what R² looks like when there is nothing to find
assert min(r2_nope) > max(controls) + 0.1, (r2_nope, controls)
answer_probe = ("about 1 (as good as with a table)" if min(r2_nope) > 0.9 else
                "clearly above 0" if min(r2_nope) > noise_probe + 0.1 else "about 0 (no position information)")
reveal(p_probe, measured=answer_probe, note=f"no-PE R² {', '.join(f'{x:.2f}' for x in r2_nope)} over seeds; "
       f"controls (untrained, embedding layer) at most {noise_probe:.3f}")

# %%
nope_loss = [x["val_L"] for x in runs["no PE"]]
learned_loss = [x["val_L"] for x in runs["learned (add)"]]
sv_nope = seed_verdict(nope_loss, learned_loss, ("no PE", "learned"))
print(f"Position is linearly readable from the no-PE model's last layer (R² {min(r2_nope):.2f}-{max(r2_nope):.2f}), "
      f"though less than from the learned-table model's (R² {min(r2['learned (add)']):.2f}-{max(r2['learned (add)']):.2f}). "
      f"It is absent from the token embeddings (R² {embed_layer['r2']:.3f}) and from an untrained causal model "
      f"({untrained['causal, untrained']['r2']:.3f}): training put it there, using the causal mask. "
      f"Loss within L: no PE {sum(nope_loss) / len(nope_loss):.3f}, learned {sum(learned_loss) / len(learned_loss):.3f} "
      f"({sv_nope['verdict']}; gap {sv_nope['gap']:+.3f}, seed spread {sv_nope['spread']:.3f}).")

# %% [markdown]
# How can the mask alone encode position? One mechanism: a head that attends evenly to everything it
# can see gives position t the average of t+1 vectors, and a quantity like "how diluted is that average"
# falls with t. A linear probe is a conservative reader: it finds only what is linearly present, so R²
# is a lower bound on what the model knows.
#
# ## 4. Sinusoids: the rotation property, and sinusoidal vs learned (S001-Q14, S003-Q14, S003-PE-how)
#
# The 2017 table puts sin(pos·ω_i) and cos(pos·ω_i) in channel pair i, with ω_i = 10000^(−2i/d). By the
# angle-sum formulas, moving k positions turns every pair by the angle k·ω_i, whatever pos is:
# PE(pos+k) = R(k)·PE(pos), with R(k) block-diagonal 2×2 rotations that depend on k only. So "k steps
# further" is one fixed linear map, something a linear layer could learn to use.

# %%
p_rot = predict("S001-Q14 rotation", "PE(pos + k) − R(k)·PE(pos) for d = 64, positions up to 2000, offsets up to 500, "
                "computed in float64: its largest entry is ...",
                choices=["exactly 0 up to rounding (≤ 1e-10)", "small but real (~1e-3)", "order 1"])

# %%
D_PE = 64
shift_err = pp.shift_identity_error(D_PE, range(0, 2000, 13), [1, 3, 50, 500])
omega = 1e4 ** (-torch.arange(0, D_PE, 2, dtype=torch.float64) / D_PE)
wavelengths = 2 * math.pi / omega
wl_512 = 2 * math.pi / (1e4 ** (-torch.arange(0, 512, 2, dtype=torch.float64) / 512))
learned_table = torch.nn.Embedding(2048, 512).weight.numel()
print(f"max |PE(p+k) − R(k)PE(p)|: float64 {shift_err['float64']:.1e}; with the library's float32 table {shift_err['lib']:.1e}")
print(f"wavelengths at d = 512: {wl_512[0]:.2f} … {wl_512[-1]:,.0f} positions (2π·10⁴ = {2 * math.pi * 1e4:,.0f}); "
      f"learned table 2048 × 512: {learned_table:,} parameters")
pe = sinusoidal_embedding(torch.arange(256)[None], D_PE)[0]
fig, ax = plt.subplots()
im = ax.imshow(pe.T, aspect="auto", cmap="RdBu_r")
ax.set(xlabel="position", ylabel="channel (sin, cos pairs; slower going down)", title=f"Sinusoidal table, d = {D_PE}")
fig.colorbar(im, label="value");

# %%
assert shift_err["float64"] < 1e-10, "the rotation identity is exact"
assert shift_err["lib"] < 1e-3, "float32 angles at position ~2500 lose only ~1e-4"
reveal(p_rot, measured="exactly 0 up to rounding (≤ 1e-10)" if shift_err["float64"] < 1e-10 else
       "small but real (~1e-3)" if shift_err["float64"] < 0.1 else "order 1",
       note=f"float64 {shift_err['float64']:.0e}")

# %% [markdown]
# The identity is exact, and the wavelengths span 2π to about 2π·10⁴ as stated; the learned 2048 × 512 table
# has 1,048,576 parameters as stated. Now the practical question: does the fixed table beat a learned one,
# inside the training length and a little beyond it? Vaswani et al. (2017, Table 3 row E) found the two
# "nearly identical" (BLEU 25.7 learned vs 25.8 sinusoidal). Our models from section 3 were trained at
# L; we also evaluated them on sequences of 2L (the learned table has 2L rows; rows L…2L−1 are never
# trained, as notebook 13 showed).

# %%
p_sin = predict("S001-Q14 learned", "Trained at length L, validation loss within L: sinusoidal vs learned table ...",
                choices=["sinusoidal clearly lower", "about equal", "learned clearly lower"])

# %%
sin_L = [x["val_L"] for x in runs["sinusoidal (add)"]]
learned_L = learned_loss
sv_sin = seed_verdict(sin_L, learned_L, ("sinusoidal", "learned"))
# Same 2L-long sequences: loss at positions L..2L-1 against positions L/2..L-1 (more context should not hurt).
growth = {name: [(x["curve_2L"][L:].mean() / x["curve_2L"][L // 2:L].mean()).item() - 1 for x in r]
          for name, r in runs.items()}
for name, gr in growth.items():
    print(f"{name:17s} loss at L {sum(x['val_L'] for x in runs[name]) / len(SEEDS):.3f}; "
          f"positions L..2L vs L/2..L: {', '.join(f'{g:+.1%}' for g in gr)}")
answer_sin = {"about equal": "about equal", "sinusoidal lower": "sinusoidal clearly lower",
              "learned lower": "learned clearly lower"}[sv_sin["verdict"]]
assert min(min(sin_L), min(learned_L)) < unigram_nats - 0.5, "both models learned far more than letter frequencies"
reveal(p_sin, measured=answer_sin, note=f"gap {sv_sin['gap']:+.3f} nats, seed spread {sv_sin['spread']:.3f}")

# %%
sin_growth, learned_growth, nope_growth = growth["sinusoidal (add)"], growth["learned (add)"], growth["no PE"]
sv_far = seed_verdict(nope_growth, sin_growth, ("no PE", "sinusoidal"))   # the no-PE model is the control
print(f"Inside L: {sv_sin['verdict']} (sinusoidal − learned = {sv_sin['gap']:+.3f} nats, seed spread {sv_sin['spread']:.3f}). "
      f"Past L the loss changes by {min(sin_growth):+.1%}…{max(sin_growth):+.1%} with sinusoids, "
      f"{min(learned_growth):+.1%}…{max(learned_growth):+.1%} with the learned table (rows past L untrained) and "
      f"{min(nope_growth):+.1%}…{max(nope_growth):+.1%} without positions (no PE vs sinusoidal past L: {sv_far['verdict']}).")

# %% [markdown]
# "Sinusoidal generalises to any length" confuses *defined* with *works*: the table can be computed at
# any position, but the model has never seen the combinations of angles that positions past L produce,
# and the change of its loss past L is printed above next to the no-PE control. Notebook 14 measures this at 2×, 4×, 8× for five schemes (Press et al.
# 2022 found the same for sinusoids: perplexity climbs soon after L). As for "a learned table may
# underfit": inside the training length the measured difference is the verdict above.
#
# ## 5. Add or concatenate? (S001-Q15, S003-Q15, S003-PE-fuse)
#
# **The parameter arithmetic.** If the token vector (d) and the position vector (d) are concatenated into
# a 2d input, every matrix that reads it grows: W_Q, W_K, W_V become 2d × d, 6d² parameters instead of 3d²,
# and twice the multiply-adds. But that is one choice among several. One can concatenate and keep the
# width d by giving position k of the d channels and tokens the other d − k (what we train below), or
# concatenate once and project back to d. The residual stream just needs a fixed width.

# %%
def qkv_params(dim_in, dim_model):
    """Parameters of the Q, K, V projections of a layer that reads a dim_in-wide input (MHA, no bias)."""
    return 3 * torch.nn.Linear(dim_in, dim_model, bias=False).weight.numel()


d_doc = 512
added, concat2d = qkv_params(d_doc, d_doc), qkv_params(2 * d_doc, d_doc)
d7b, layers7b = 4096, 32
first_layer_extra = qkv_params(2 * d7b, d7b) - qkv_params(d7b, d7b)
print(f"d = {d_doc}: Q,K,V read d: {added:,} = 3d²; read 2d: {concat2d:,} = 6d² (×{concat2d / added:.0f})")
print(f"a 7B-like model (d = {d7b}, {layers7b} layers): concatenating once at the input adds {first_layer_extra / 1e6:.0f}M "
      f"parameters to the first layer's Q,K,V; only carrying a 2d-wide stream through every layer reaches billions")
assert concat2d == 2 * added

# %% [markdown]
# **The trained comparison.** Same residual width d, same blocks; "add" puts a d-wide position vector on
# top of a d-wide token vector, "concat" gives tokens d − k channels and positions the last k
# (k = d/4 here; `ModelConfig(pos_concat_dim=k)`). The concat model has slightly *fewer* parameters
# (narrower token table and position table).

# %%
p_cat = predict("S001-Q15 concat", "Same width d, trained the same way: validation loss of concat vs add ...",
                choices=["add clearly lower", "about equal", "concat clearly lower"])

# %%
cat_L = [x["val_L"] for x in runs["learned (concat)"]]
sv_cat = seed_verdict(learned_L, cat_L, ("add", "concat"))
n_params = {name: models[name].num_parameters() for name in ("learned (add)", "learned (concat)")}
print(f"parameters: add {n_params['learned (add)']:,}, concat {n_params['learned (concat)']:,}")
print(f"val loss at L: add {[round(x, 3) for x in learned_L]}, concat {[round(x, 3) for x in cat_L]}")
answer_cat = {"about equal": "about equal", "add lower": "add clearly lower", "concat lower": "concat clearly lower"}[sv_cat["verdict"]]
assert max(cat_L) < unigram_nats - 0.5, "the concatenated model trains normally: a residual does not need addition"
reveal(p_cat, measured=answer_cat, note=f"add − concat = {sv_cat['gap']:+.3f} nats, seed spread {sv_cat['spread']:.3f}")

# %%
print(f"Verdict at this size: {sv_cat['verdict']} (add − concat {sv_cat['gap']:+.3f} nats, seed spread "
      f"{sv_cat['spread']:.3f}), with concat using {n_params['learned (add)'] - n_params['learned (concat)']:,} fewer parameters. "
      "Concatenation trained with an ordinary residual stream, so 'concat cannot do a residual' is false.")

# %% [markdown]
# Whichever way the verdict falls here, note what it is: one width, one task, a few hundred steps. In a
# small model, giving position its own channels spares the token channels from sharing space with it;
# in a large model d is big enough that sharing costs little (next section), and addition keeps every
# channel available to both.
#
# ## 6. Why does addition work? (S001-Q15-sub)
#
# First, linearity: W_Q(x + p) = W_Q x + W_Q p, so every projection sees the sum of a content part and a
# position part, and different rows of W_Q can weigh them differently. Second, geometry: if token vectors
# and position vectors occupy nearly orthogonal directions, later layers can read each without the other
# getting in the way. The document says this is because position is "high-frequency" and content
# "low-frequency"; but the sinusoidal table itself spans wavelengths from 6 to 60,000 positions, so that
# cannot be the mechanism. We measure the geometry directly in the trained learned-add model: the
# cosines of the principal angles between the top-4 principal directions of the token table and of the
# position table, against two random 4-dimensional subspaces of the same width.

# %%
K_SUB = 4
m_add = models["learned (add)"]
tok_table = m_add.embed_tokens.weight.detach().cpu()
pos_table = m_add.pos_embed.weight.detach().cpu()[:L]         # the trained rows only
cos_trained = pp.principal_cosines(tok_table, pos_table, K_SUB)
rand = pp.random_subspace_cosines(SIZE["dim"], K_SUB, trials=500)
rand_hi = rand.quantile(0.95).item()
W = torch.randn(SIZE["dim"], SIZE["dim"], dtype=torch.float64)
x, pvec = tok_table[0].double(), pos_table[0].double()
linearity = (W @ (x + pvec) - (W @ x + W @ pvec)).abs().max().item()
print(f"principal cosines, token vs position subspaces (top {K_SUB}): {[round(c, 3) for c in cos_trained.tolist()]}; "
      f"two random {K_SUB}-dim subspaces of R^{SIZE['dim']}: largest cosine median {rand.median():.3f}, 95th percentile {rand_hi:.3f}")
print(f"linearity W(x + p) − (Wx + Wp): {linearity:.1e}")

# %%
assert linearity < 1e-12
near_orth = cos_trained[0].item() <= rand_hi
print("The token and position subspaces are " + ("no more aligned than random subspaces" if near_orth else
      "more aligned than random subspaces") + f" (largest cosine {cos_trained[0]:.3f} vs random 95th percentile {rand_hi:.3f}).")

# %% [markdown]
# In d dimensions two random directions have |cos| about sqrt(2/(πd)): in high dimension almost every pair of
# directions is nearly orthogonal, which is why a sum of two signals stays separable. Whether training
# pushes the two tables further apart or lets them share directions is what the line above reports for this
# model; the frequency story is not needed either way.
#
# ## Claims

# %%
mean = lambda v: sum(v) / len(v)  # noqa: E731
claims_table([
    Claim("S001-Q13", "Attention(PX) = P·Attention(X): 'permutation invariance'", "invariant",
          f"bidirectional no-PE: equivariance error {bi['equivariance']:.0e}, invariance error {bi['invariance']:.1e}",
          holds=bi["invariance"] < ROUNDING, verdict="equation right (equivariance); the name 'invariant' is wrong"
          if bi["equivariance"] < ROUNDING <= bi["invariance"] else None),
    Claim("S001-Q13 / S003-Q13 / S003-PE-why / §7 #3", "without position encoding a Transformer cannot perceive order at all",
          "no order information", f"causal no-PE: equivariance error {c2['equivariance']:.1e}; probe R² "
          f"{min(r2_nope):.2f}-{max(r2_nope):.2f} (untrained {untrained['causal, untrained']['r2']:.3f})",
          holds=c2["equivariance"] < ROUNDING or max(r2_nope) <= noise_probe,
          verdict=None if c2["equivariance"] < ROUNDING else "holds for bidirectional attention only",
          citation="Haviv et al. 2022 (NoPE causal LMs learn position); Kazemnejad et al. 2023"),
    Claim("S001-Q13 (student)", "shuffled order: the next-token distribution may not change", "unchanged",
          f"TV 我爱你。/你爱我。: 1 causal layer {gaps['causal, no PE, 1 layer']['tv']:.0e}, 2 layers "
          f"{gaps['causal, no PE, 2 layers']['tv']:.1e}", holds=gaps["causal, no PE, 2 layers"]["tv"] < ROUNDING,
          verdict="holds for 1 causal layer or bidirectional, not for 2+ causal layers"
          if gaps["causal, no PE, 1 layer"]["tv"] < ROUNDING else None),
    Claim("S001-Q14", "PE(pos+k) = R(k)·PE(pos)", "exact", f"float64 error {shift_err['float64']:.0e}",
          holds=shift_err["float64"] < 1e-10),
    Claim("S001-Q14", "wavelengths from 2π to 2π·10⁴", "6.28 … 62832",
          f"d = 512: {wl_512[0]:.2f} … {wl_512[-1]:,.0f}",
          holds=abs(wl_512[0] - 2 * math.pi) < 1e-9 and 0.9 < wl_512[-1] / (2 * math.pi * 1e4) <= 1.0),
    Claim("S001-Q14", "learned table 2048 × 512 parameters", "1,048,576", f"{learned_table:,}",
          holds=learned_table == 1_048_576),
    Claim("S001-Q14 / S003-Q14", "a learned table is randomly initialised and may underfit", "worse than sinusoidal",
          f"loss within L: learned {mean(learned_L):.3f}, sinusoidal {mean(sin_L):.3f} ({sv_sin['verdict']}, "
          f"spread {sv_sin['spread']:.3f})", holds=sv_sin["verdict"] == "sinusoidal lower",
          citation="Vaswani et al. 2017, Table 3 row E: learned ≈ sinusoidal"),
    Claim("S001-Q14 / §7 #25", "sinusoidal generalises automatically to any length", "any length",
          f"loss at L..2L vs L/2..L: {min(sin_growth):+.1%}…{max(sin_growth):+.1%}, no PE {min(nope_growth):+.1%}…"
          f"{max(nope_growth):+.1%} (notebook 14: to 8×)", holds=sv_far["verdict"] != "no PE lower",
          citation="Press et al. 2022, Fig. 1"),
    Claim("S001-Q14 / §7 #25", "SOTA: RoPE (used by GPT-Neo)", "GPT-Neo uses RoPE", "history, not measured",
          holds=None, verdict="does not hold: the released GPT-Neo models use learned absolute positions; "
          "GPT-J and GPT-NeoX use RoPE", citation="EleutherAI GPT-Neo configs; Wang & Komatsuzaki 2021; Black et al. 2022"),
    Claim("S003-PE-how", "ALiBi: linear bias, the best extrapolation", "best", "measured in notebook 14 (five schemes, 1×-8×, "
          "and a retrieval probe)", holds=None, verdict="see notebook 14", citation="Press et al. 2022"),
    Claim("S001-Q15 / S003-Q15", "concatenation doubles W_Q, W_K, W_V: 6d² vs 3d²", "×2",
          f"{concat2d:,} vs {added:,} at d = 512", holds=concat2d == 2 * added,
          verdict="holds for a 2d-wide input to the first layer"),
    Claim("S001-Q15", "7B model: concatenation costs billions of parameters", "billions",
          f"+{first_layer_extra / 1e6:.0f}M if concatenated once at the input", holds=first_layer_extra >= 1e9,
          verdict="depends on where: tens of millions at the input, billions only with a 2d stream in every layer"),
    Claim("S001-Q15", "concatenation cannot do a residual", "cannot", f"concat model trained to {mean(cat_L):.3f} nats "
          f"(unigram {unigram_nats:.3f}) with a width-d residual", holds=max(cat_L) >= unigram_nats - 0.5),
    Claim("S001-Q15 / S003-PE-fuse", "addition is the better choice (at equal width)", "add better",
          f"add − concat = {sv_cat['gap']:+.3f} nats (spread {sv_cat['spread']:.3f}; {len(SEEDS)} seeds, {STEPS} steps)",
          holds=sv_cat["verdict"] == "add lower"),
    Claim("S001-Q15-sub", "W_Q(X+PE) = W_Q X + W_Q PE", "exact", f"{linearity:.0e}", holds=linearity < 1e-12),
    Claim("S001-Q15-sub", "position = high frequency, content = low frequency: orthogonal in frequency",
          "frequency separation", f"sinusoidal wavelengths (d = {D_PE}) span {wavelengths[0]:.1f} … {wavelengths[-1]:,.0f}; "
          f"trained token/position principal cosine {cos_trained[0]:.2f} (random 95%: {rand_hi:.2f})", holds=None,
          verdict="mechanism wrong: PE spans all frequencies; high-dimensional near-orthogonality does the work"),
])

# %% [markdown]
# ## What this can and cannot show
#
# - The symmetry facts (section 1-2) are exact and do not depend on the budget.
# - The probe is linear and reads one layer: an R² below 1 does not mean the model lacks the information,
#   only that it is not linearly readable there. The fast budget trains 2-layer models for a few hundred
#   steps; the full budget (4 layers, 2000 steps, 3 seeds) shows how much more position a longer-trained
#   NoPE model makes readable, and whether its loss gap to the learned table closes, as Haviv et al. report
#   for larger models.
# - The add-vs-concat verdict is for one small width with d/4 position channels, on characters. It says
#   nothing about 7B models, where d is large and the cost of sharing channels is small. The full budget
#   doubles the width and trains ten times longer: whether the verdict moves with width is what it adds.
# - Extrapolation past 2L is notebook 14's subject.

# %% [markdown]
# ## The essence

# %%
far_phrase = ("its loss past L rose more than the no-PE control's" if sv_far["verdict"] == "no PE lower" else
              "at 2L its loss past L stayed within seed noise of the no-PE control (notebook 14 goes to 8×)")
essence(f"""
Attention without positions is permutation-EQUIVARIANT: shuffle the tokens and, in a bidirectional stack, every
output moves with its token and nothing else changes, so 我爱你 and 你爱我 are the same bag. A causal mask breaks
that symmetry: from two layers on a decoder without any position encoding tells the orders apart, and training
makes absolute position linearly readable from its hidden states. Position encodings make order explicit.
Sinusoids satisfy PE(pos+k) = R(k)·PE(pos) exactly, but being defined at every position is not the same as
working there: {far_phrase}. Inside the training length, a learned table and sinusoids were compared
above over seeds. Adding the position vector is not forced: a model that concatenates it at the same width
trains with an ordinary residual; addition works because in high dimension two signals rarely collide, not
because of a frequency split.
""")

# %% [markdown]
# ## Exercises
#
# **1.** "Concatenate, then project" is addition in disguise: for any W = [W_x | W_p] (d × 2d),
# W·[x; p] = W_x x + W_p p. Check it numerically, and say what the "add" scheme fixes that this one learns.

# %% tags=["solution"] jupyter={"source_hidden": true}
# Solution. Adding is the special case W_x = W_p (the first layer's W reads x + p); concat-then-project lets
# the two blocks differ, at the cost of a d × 2d matrix.
g = torch.Generator().manual_seed(3)
Wx, Wp = torch.randn(16, 16, generator=g, dtype=torch.float64), torch.randn(16, 16, generator=g, dtype=torch.float64)
xv, pv = torch.randn(16, generator=g, dtype=torch.float64), torch.randn(16, generator=g, dtype=torch.float64)
gap_ex1 = (torch.cat([Wx, Wp], 1) @ torch.cat([xv, pv]) - (Wx @ xv + Wp @ pv)).abs().max().item()
print(f"max difference {gap_ex1:.1e}")
assert gap_ex1 < 1e-12

# %% [markdown]
# **2.** Because R(k) is a rotation, the dot product PE(p)·PE(p+k) depends on k only. Check it for
# several p and k, and plot it against k: what does it look like?

# %% tags=["solution"] jupyter={"source_hidden": true}
# Solution. PE(p)·PE(p+k) = Σ_i cos(k ω_i): a sum of cosines, large near k = 0 and wobbling down after.
pe_long = sinusoidal_embedding(torch.arange(600)[None], 64)[0].double()
dots = {p0: torch.stack([pe_long[p0] @ pe_long[p0 + k] for k in range(100)]) for p0 in (0, 57, 400)}
spread_ex2 = max((dots[p0] - dots[0]).abs().max().item() for p0 in dots)
fig, ax = plt.subplots()
ax.plot(dots[0].numpy())
ax.set(xlabel="offset k (positions)", ylabel="PE(p)·PE(p+k) (dimensionless)", title="Depends on the offset only");
assert spread_ex2 < 1e-3, spread_ex2
