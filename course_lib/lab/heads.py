"""What individual attention heads do: role scores, symmetry, permutation, the W_V·W_O fold, ablation.

Instruments for "multi-head II" (notebook 11). Every function takes a ``Transformer`` (or the
attention weights it captured) and leaves the model as it found it, except the ones whose name says
they build a new model (:func:`permuted_heads`, :func:`fold_value_output`).

Shapes: ``L`` layers, ``H`` heads, ``B`` sequences of ``T`` tokens, ``D`` model width, ``d`` head
size. Captured attention weights are ``(B, H, T, T)`` per layer (``probes.capture``).

Head roles (:func:`head_scores`, :func:`classify_heads`), following Olsson et al. 2022 and
Clark et al. 2019:

    previous_token  mean weight from query t on key t-1
    induction       mean weight from query t on the token *after* the previous occurrence of x_t
                    (only rows where x_t occurred before; Olsson et al. 2022)
    fixed_offset    the largest mean weight on one fixed offset t-k, k >= 2 (``best_offset`` says
                    which k): a positional head further back than previous-token
    first_token     mean weight on position 0 (a positional "sink"; Clark et al. 2019 find many
                    BERT heads parked on [CLS]/[SEP])
    entropy         mean normalised entropy of a row (1 = uniform over the visible keys)
    distance        mean attention distance sum_j w[t, j] (t - j), in tokens
"""
from __future__ import annotations

import copy
import itertools
from typing import Dict, List, Optional, Sequence

import torch
from torch.utils.data import Dataset

from ..losses import IGNORE_INDEX
from . import attention_math as am
from .probes import _eval_mode, capture
from .synthetic import BOS

Tensor = torch.Tensor

ROLES = ("induction", "previous_token", "fixed_offset", "first_token", "broad", "mixed")
_PATTERN_ROLES = 4


# ----------------------------------------------------------------------------- data
class RepeatedTokens(Dataset):
    """Random segments repeated: ``<bos> s s s ...`` cut to ``seq_len`` tokens, where ``s`` holds
    ``period`` distinct random symbols and ``period`` is drawn per sequence from
    ``[min_period, max_period]``. From the second copy on every next token is determined by the
    previous occurrence of the current token (an induction head solves it; a fixed offset cannot,
    because the period varies). Labels are -100 on the first copy (its tokens are random).

    Items are dicts of ``input_ids``, ``labels``, ``attention_mask`` ``(T,)``; the tensors are
    ``input_ids``/``labels`` ``(N, T)`` and ``periods`` ``(N,)``. Symbols are ids 3 .. 3+n_symbols-1
    (the synthetic tasks' layout: 0 pad, 1 bos, 2 sep).
    """

    def __init__(self, n: int, seq_len: int = 32, n_symbols: int = 32, min_period: int = 4,
                 max_period: int = 12, seed: int = 0):
        for name, v, lo in (("n", n, 1), ("seq_len", seq_len, 4), ("n_symbols", n_symbols, 2),
                            ("min_period", min_period, 2), ("seed", seed, 0)):
            if isinstance(v, bool) or not isinstance(v, int) or v < lo:
                raise ValueError(f"{name}={v!r} must be an int >= {lo}")
        if not min_period <= max_period <= n_symbols:
            raise ValueError(f"need min_period <= max_period <= n_symbols, got {min_period}, {max_period}, "
                             f"{n_symbols} (periods hold distinct symbols)")
        if 2 * max_period > seq_len:
            raise ValueError(f"max_period={max_period} must be at most seq_len/2 = {seq_len // 2} so every "
                             "sequence has a second copy to predict")
        g = torch.Generator().manual_seed(seed)
        self.vocab_size = 3 + n_symbols
        self.periods = torch.randint(min_period, max_period + 1, (n,), generator=g)
        symbols = torch.rand(n, n_symbols, generator=g).argsort(dim=1) + 3
        pos = torch.arange(seq_len)                               # position of each token after <bos>
        body = symbols.gather(1, pos.unsqueeze(0) % self.periods.unsqueeze(1))
        seq = torch.cat([torch.full((n, 1), BOS), body], dim=1)   # (n, seq_len + 1)
        self.input_ids = seq[:, :-1].clone()
        self.labels = seq[:, 1:].clone()
        first_copy = pos.unsqueeze(0) < self.periods.unsqueeze(1)  # label index t predicts body[t]
        self.labels[first_copy] = IGNORE_INDEX

    def __len__(self) -> int:
        return len(self.input_ids)

    def __getitem__(self, i: int) -> Dict[str, Tensor]:
        return {"input_ids": self.input_ids[i], "labels": self.labels[i],
                "attention_mask": torch.ones_like(self.input_ids[i])}


# ----------------------------------------------------------------------------- role scores
def induction_targets(input_ids: Tensor) -> Tensor:
    """``(B, T)`` key index an induction head should read at each query: one past the most recent
    earlier occurrence of the same token, or -1 where the token has not occurred before."""
    B, T = input_ids.shape
    same = input_ids.unsqueeze(2) == input_ids.unsqueeze(1)              # (B, Tq, Tk)
    earlier = torch.ones(T, T, dtype=torch.bool, device=input_ids.device).tril(-1)
    hit = same & earlier
    idx = torch.arange(T, device=input_ids.device).expand(B, T, T)
    last = torch.where(hit, idx, torch.full_like(idx, -1)).amax(-1)       # (B, T)
    return torch.where(last >= 0, last + 1, last)


def _row_mean(values: Tensor, valid: Tensor) -> Tensor:
    """Mean over (B, T) rows of ``values (B, H, T)`` where ``valid (B, T)``; NaN if none."""
    w = valid.unsqueeze(1).to(values.dtype)
    n = w.sum((0, 2))
    return torch.where(n > 0, (values * w).sum((0, 2)) / n.clamp_min(1), torch.full_like(n, float("nan")))


def layer_head_scores(weights: Tensor, input_ids: Tensor) -> Dict[str, Tensor]:
    """Role scores ``(H,)`` of one layer from its causal attention weights ``(B, H, T, T)`` on
    ``input_ids (B, T)`` (see the module docstring). Rows 0 (a single visible key) are skipped."""
    if weights.dim() != 4 or weights.shape[-1] != weights.shape[-2] or weights.shape[0] != input_ids.shape[0]:
        raise ValueError(f"weights must be (B, H, T, T) matching input_ids (B, T); got {tuple(weights.shape)} "
                         f"and {tuple(input_ids.shape)}")
    w = weights.double()
    B, H, T, _ = w.shape
    t = torch.arange(T, device=w.device)
    rows = (t >= 1).expand(B, T)
    prev = torch.zeros_like(w[..., 0])
    prev[..., 1:] = w.diagonal(offset=-1, dim1=-2, dim2=-1)
    target = induction_targets(input_ids.to(w.device))
    ind_valid = (target >= 0) & rows
    ind = w.gather(-1, target.clamp_min(0).view(B, 1, T, 1).expand(B, H, T, 1)).squeeze(-1)
    dist = (w * (t.view(T, 1) - t.view(1, T)).clamp_min(0).to(w.dtype)).sum(-1)
    # offsets 2 .. T//2 (further back, too few rows see the offset for a stable mean)
    per_offset = torch.stack([w.diagonal(offset=-k, dim1=-2, dim2=-1).mean((0, 2)) for k in range(2, max(3, T // 2 + 1))])
    offset_score, offset_idx = per_offset.max(0)
    ent = am.attention_entropy(w, causal=True, normalized=True)
    return {"previous_token": _row_mean(prev, rows), "induction": _row_mean(ind, ind_valid),
            "fixed_offset": offset_score, "best_offset": (offset_idx + 2).to(w.dtype),
            "first_token": _row_mean(w[..., 0], rows), "entropy": _row_mean(ent, rows),
            "distance": _row_mean(dist, rows)}


def head_scores(model, input_ids: Tensor) -> Dict[str, Tensor]:
    """Role scores ``(L, H)`` of every head of ``model`` on ``input_ids (B, T)``."""
    weights = capture(model, input_ids)["weights"]
    per_layer = [layer_head_scores(w.cpu(), input_ids.cpu()) for w in weights]
    return {k: torch.stack([s[k] for s in per_layer]) for k in per_layer[0]}


def classify_heads(scores: Dict[str, Tensor], threshold: float = 0.4, broad_entropy: float = 0.7) -> List[List[str]]:
    """One role per head from :func:`head_scores`: the largest of the induction, previous-token,
    fixed-offset and first-token scores if it reaches ``threshold``; otherwise "broad" when the normalised entropy is
    at least ``broad_entropy``, else "mixed". Returns ``L`` lists of ``H`` role names."""
    if not 0 < threshold <= 1 or not 0 < broad_entropy <= 1:
        raise ValueError(f"threshold={threshold} and broad_entropy={broad_entropy} must be in (0, 1]")
    pattern = torch.stack([torch.nan_to_num(scores[r], nan=0.0) for r in ROLES[:_PATTERN_ROLES]])  # (4, L, H)
    best, which = pattern.max(0)
    roles = []
    for li in range(best.shape[0]):
        row = []
        for hi in range(best.shape[1]):
            if best[li, hi] >= threshold:
                row.append(ROLES[int(which[li, hi])])
            else:
                row.append("broad" if scores["entropy"][li, hi] >= broad_entropy else "mixed")
        roles.append(row)
    return roles


def mean_pairwise_js(weights: Tensor) -> float:
    """Mean Jensen-Shannon divergence (nats, max ln 2) between the attention rows of every pair of
    heads of one layer, ``weights (B, H, T, T)``: 0 when all heads attend alike."""
    w = weights.double().clamp_min(0)
    H = w.shape[1]
    if H < 2:
        raise ValueError(f"weights has {H} head; diversity needs at least two heads")

    def kl(p, q):
        return torch.where(p > 0, p * (p.clamp_min(1e-300).log() - q.clamp_min(1e-300).log()), torch.zeros_like(p)).sum(-1)

    vals = []
    for i, j in itertools.combinations(range(H), 2):
        p, q = w[:, i], w[:, j]
        m = (p + q) / 2
        vals.append(((kl(p, m) + kl(q, m)) / 2)[:, 1:].mean())
    return float(torch.stack(vals).mean())


# ----------------------------------------------------------------------------- per-head parameter blocks
def _check_plain_mha(attn, what: str) -> None:
    if attn.k_proj is None or attn.v_proj is None or attn.o_proj is None:
        raise ValueError(f"{what} needs separate q/k/v/o projections (tie_qk, tie_kv and use_wo=False are unsupported)")
    if attn.n_kv_heads != attn.n_heads:
        raise ValueError(f"{what} needs n_kv_heads == n_heads (got {attn.n_kv_heads} vs {attn.n_heads}); "
                         "grouped-query heads share their K/V slices")


def head_blocks(model, layer: int, grad: bool = False) -> Tensor:
    """``(H, P)``: for each head of ``layer``, its rows of W_q, W_k, W_v and its columns of W_o,
    flattened (the ``.grad`` of those slices when ``grad=True``; zeros where there is none)."""
    attn = model.layers[layer].attn
    _check_plain_mha(attn, "head_blocks")
    H, d = attn.n_heads, attn.head_dim

    def take(p):
        t = p.grad if grad else p
        return torch.zeros_like(p) if t is None else t.detach()

    parts = [take(p.weight).reshape(H, d * p.weight.shape[1]) for p in (attn.q_proj, attn.k_proj, attn.v_proj)]
    wo = take(attn.o_proj.weight)                                  # (D, H*d)
    parts.append(wo.view(wo.shape[0], H, d).transpose(0, 1).reshape(H, -1))
    return torch.cat(parts, dim=1)


def head_asymmetry(model, grad: bool = False) -> float:
    """Largest |difference| between any head's parameter block (or gradient block) and head 0's,
    over all layers, relative to the largest |entry|: exactly 0 while the heads are identical."""
    worst, scale = 0.0, 0.0
    for li in range(len(model.layers)):
        b = head_blocks(model, li, grad)
        worst = max(worst, float((b - b[:1]).abs().max()))
        scale = max(scale, float(b.abs().max()))
    return worst / scale if scale > 0 else 0.0


def head_grad_cosines(model, layer: int) -> Tensor:
    """``(H, H)`` cosine similarity between the heads' gradient blocks of ``layer`` (after a backward)."""
    g = head_blocks(model, layer, grad=True).double()
    g = g / g.norm(dim=1, keepdim=True).clamp_min(1e-300)
    return g @ g.T


# ----------------------------------------------------------------------------- permutation
@torch.no_grad()
def permuted_heads(model, layer: int, perm: Sequence[int]):
    """A copy of ``model`` whose heads in ``layer`` are reordered: new head i is old head perm[i]
    (its W_q, W_k, W_v rows and its W_o columns move together). The function is unchanged."""
    attn = model.layers[layer].attn
    _check_plain_mha(attn, "permuted_heads")
    H, d = attn.n_heads, attn.head_dim
    if sorted(int(p) for p in perm) != list(range(H)):
        raise ValueError(f"perm={list(perm)} must be a permutation of range({H})")
    if getattr(model.config, "pos", None) == "alibi":
        raise ValueError("pos='alibi' gives each head its own slope; permuting heads would change the model")
    new = copy.deepcopy(model)
    a = new.layers[layer].attn
    idx = torch.as_tensor(list(perm))
    for p in (a.q_proj, a.k_proj, a.v_proj):
        w = p.weight.view(H, d, -1)
        w.copy_(w[idx].clone())
    wo = a.o_proj.weight.view(-1, H, d)
    wo.copy_(wo[:, idx].clone())
    return new


# ----------------------------------------------------------------------------- W_V · W_O
@torch.no_grad()
def fold_value_output(model):
    """A new model without W_O computing the same function as a one-head ``model``: each layer's
    value projection becomes W_O·W_V (one D x D matrix) and ``use_wo=False``.

    Only h = 1 folds: with several heads a plain concatenation can only write head i into its own
    slice of the output, which a general W_O does not (see :func:`head_contributions`)."""
    c = model.config
    if c.n_heads != 1 or c.n_kv_heads != 1:
        raise ValueError(f"fold_value_output needs n_heads=1 (got n_heads={c.n_heads}, n_kv_heads={c.n_kv_heads}); "
                         "with several heads W_O mixes them and cannot be folded away")
    if c.head_dim != c.dim or c.tie_kv or not c.use_wo:
        raise ValueError(f"fold_value_output needs head_dim == dim ({c.head_dim} vs {c.dim}), tie_kv=False and "
                         "use_wo=True")
    ref = next(model.parameters())
    folded = type(model)(c.replace(use_wo=False)).to(device=ref.device, dtype=ref.dtype)
    folded.load_state_dict({k: v for k, v in model.state_dict().items() if ".o_proj." not in k}, strict=False)
    for src, dst in zip(model.layers, folded.layers):
        dst.attn.v_proj.weight.copy_(src.attn.o_proj.weight @ src.attn.v_proj.weight)
    return folded.train(model.training)


def head_contributions(model, input_ids: Tensor, layer: int) -> Tensor:
    """``(H, B, T, D)``: what each head of ``layer`` adds to the residual stream, its output
    ``A_h X W_V^h`` times its own d columns of W_O; the sum over heads is the attention output."""
    attn = model.layers[layer].attn
    if attn.o_proj is None:
        raise ValueError("head_contributions needs use_wo=True (without W_O each head is its own slice)")
    out = capture(model, input_ids)["head_outputs"][layer]              # (B, H, T, d)
    H, d = attn.n_heads, attn.head_dim
    wo = attn.o_proj.weight.detach().view(-1, H, d)                      # (D, H, d)
    return torch.einsum("bhtd,ehd->hbte", out, wo)


# ----------------------------------------------------------------------------- ablation
def masked_loss(model, input_ids: Tensor, labels: Tensor, head_mask: Optional[Tensor] = None) -> float:
    """Token-mean loss with ``head_mask (L, H)`` (1 keeps a head, 0 removes its output)."""
    dev = next(model.parameters()).device
    with _eval_mode(model), torch.no_grad():
        hm = None if head_mask is None else head_mask.to(dev)
        return float(model(input_ids.to(dev), labels=labels.to(dev), head_mask=hm).loss)


def ablation_deltas(model, input_ids: Tensor, labels: Tensor) -> Tensor:
    """``(L, H)`` rise of the loss when each head alone is removed (zeroed before W_O)."""
    c = model.config
    base = masked_loss(model, input_ids, labels)
    out = torch.zeros(c.n_layers, c.n_heads)
    for li in range(c.n_layers):
        for hi in range(c.n_heads):
            m = torch.ones(c.n_layers, c.n_heads)
            m[li, hi] = 0
            out[li, hi] = masked_loss(model, input_ids, labels, m) - base
    return out


def greedy_prune(model, input_ids: Tensor, labels: Tensor, max_rise: float) -> Dict[str, object]:
    """Remove heads one at a time, always the one whose removal raises the loss least, while the
    loss stays within ``max_rise`` (nats) of the unpruned loss. Returns ``mask (L, H)``, ``order``
    (removed (layer, head) pairs), ``losses`` (loss after each removal) and ``base``."""
    if not max_rise >= 0:
        raise ValueError(f"max_rise={max_rise} must be >= 0 (nats of loss the pruning may add)")
    c = model.config
    base = masked_loss(model, input_ids, labels)
    mask = torch.ones(c.n_layers, c.n_heads)
    order, losses = [], []
    while mask.sum() > 1:
        best = None
        for li, hi in mask.nonzero().tolist():
            trial = mask.clone()
            trial[li, hi] = 0
            if trial[li].sum() == 0:      # keep one head per layer: the layer still needs an attention output
                continue
            loss = masked_loss(model, input_ids, labels, trial)
            if best is None or loss < best[0]:
                best = (loss, li, hi)
        if best is None or best[0] > base + max_rise:
            break
        mask[best[1], best[2]] = 0
        order.append((best[1], best[2]))
        losses.append(best[0])
    return {"mask": mask, "order": order, "losses": losses, "base": base}


def random_head_dropout_loss(model, input_ids: Tensor, labels: Tensor, fraction: float, draws: int = 20,
                             seed: int = 0) -> Tensor:
    """``(draws,)`` losses with ``round(fraction * H)`` random heads removed in every layer."""
    if not 0 <= fraction < 1:
        raise ValueError(f"fraction={fraction} must be in [0, 1): at least one head per layer stays")
    c = model.config
    k = int(round(fraction * c.n_heads))
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(draws):
        m = torch.ones(c.n_layers, c.n_heads)
        for li in range(c.n_layers):
            m[li, torch.randperm(c.n_heads, generator=g)[:k]] = 0
        out.append(masked_loss(model, input_ids, labels, m))
    return torch.tensor(out)


def logit_lens_losses(model, input_ids: Tensor, labels: Tensor) -> List[float]:
    """Loss of the prediction read off the residual stream after the embedding and after each
    layer (``model.unembed``: final norm + output head), ``L + 1`` values."""
    cap = capture(model, input_ids)
    y = labels.to(cap["hidden_states"][0].device)
    with torch.no_grad():
        return [float(torch.nn.functional.cross_entropy(model.unembed(h).flatten(0, 1), y.flatten(),
                                                        ignore_index=IGNORE_INDEX))
                for h in cap["hidden_states"]]


# ----------------------------------------------------------------------------- seeds
def seed_verdict(a: Sequence[float], b: Sequence[float], names: Sequence[str] = ("A", "B")) -> Dict[str, object]:
    """Compare two sets of per-seed results (lower is better): ``gap = mean(a) - mean(b)``,
    ``spread`` = the larger of the two seed ranges, ``verdict`` = "<name> lower" when |gap| exceeds
    the spread, else "about equal"."""
    a, b = [float(x) for x in a], [float(x) for x in b]
    if len(a) < 2 or len(b) < 2:
        raise ValueError(f"need at least two seeds per side to measure a spread, got {len(a)} and {len(b)}")
    gap = sum(a) / len(a) - sum(b) / len(b)
    spread = max(max(a) - min(a), max(b) - min(b))
    verdict = "about equal" if abs(gap) <= spread else f"{names[0] if gap < 0 else names[1]} lower"
    return {"gap": gap, "spread": spread, "verdict": verdict}
