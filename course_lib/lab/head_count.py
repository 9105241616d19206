"""How many heads: the instruments of "multi-head I" (notebook 10).

- :func:`pair_lookup`, a task that needs two unrelated retrievals *at one position*: the answer is
  a single token naming both values, so one softmax distribution has to serve two lookups.
- :func:`lookup_attention`: where each head of a trained model looks from the query position.
- :func:`average_heads`, the variant of question S001-DQ2: full-width heads (``head_dim = dim``)
  whose outputs are averaged instead of mixed by a learned ``W_O``.
- :func:`attention_times`, wall-clock of one library attention layer across head counts at a fixed
  width (FLOPs and parameters are the same for every head count; the clock is not).
- :func:`train_eval`, one seeded training run with the course trainer, scored on held-out data.

Shapes: ``B`` sequences, ``T`` tokens, ``D`` model width, ``H`` heads of size ``d``.
"""
from __future__ import annotations

import time
from typing import Callable, Dict, Optional, Sequence

import torch

from ..attention import Attention
from ..config import ModelConfig
from ..model import Transformer
from ..train import TrainConfig, Trainer
from .measure import time_fn
from .synthetic import (SyntheticTask, _SPECIAL_NAMES, _FIRST, _column, _distinct, _gen, _int, _mask_last,
                        _names)

__all__ = ["pair_lookup", "lookup_attention", "average_heads", "attention_times", "train_eval"]


def pair_lookup(n: int, n_entries: int = 4, n_keys: int = 8, n_values: int = 8, seed: int = 0) -> SyntheticTask:
    """Two lookups answered by one token: ``<bos> e1 .. eP <sep> q(a,b) ans(va,vb)``.

    Each entry token ``e = k{key}:v{value}`` holds one key and its value; keys are distinct within
    a sequence, values may repeat. The query token ``q{a},{b}`` names two different keys of the
    sequence, and the answer token ``v{va}&v{vb}`` names both of their values, in that order. A
    model with one attention layer reads both entries from the query position: one head must spread
    its single distribution over both entries (and their values arrive summed), two heads can each
    fetch one.

    Layout: 0 ``<pad>``, 1 ``<bos>``, 2 ``<sep>``; then ``K * V`` entry tokens, ``K * (K - 1)`` query
    tokens (ordered pairs of different keys), ``V * V`` answer tokens. Sequence length ``P + 4``.
    ``info``: ``keys``, ``values`` (N, P) key and value indices of the entries; ``query_index``
    (N, 2) which entries were asked.
    """
    _int("n", n, 1), _int("n_keys", n_keys, 2), _int("n_values", n_values, 1)
    _int("n_entries", n_entries, 2, n_keys)
    g = _gen(seed)
    keys = _distinct(n, n_entries, n_keys, g)                    # (N, P) key indices, distinct per row
    values = torch.randint(n_values, (n, n_entries), generator=g)
    asked = _distinct(n, 2, n_entries, g)                        # (N, 2) which entries, a != b
    ka, kb = torch.gather(keys, 1, asked).unbind(1)
    va, vb = torch.gather(values, 1, asked).unbind(1)
    e0 = _FIRST
    q0 = e0 + n_keys * n_values
    a0 = q0 + n_keys * (n_keys - 1)
    # ordered pair (a, b), a != b, numbered a * (K - 1) + (b if b < a else b - 1)
    query = q0 + ka * (n_keys - 1) + torch.where(kb < ka, kb, kb - 1)
    seq = torch.cat([_column(n, 1), e0 + keys * n_values + values, _column(n, 2), query[:, None],
                     (a0 + va * n_values + vb)[:, None]], dim=1)
    vocab = (_SPECIAL_NAMES + [f"k{a}:v{b}" for a in range(n_keys) for b in range(n_values)]
             + [f"q{a},{b}" for a in range(n_keys) for b in range(n_keys) if a != b]
             + [f"v{a}&v{b}" for a in range(n_values) for b in range(n_values)])
    layout = (f"0 <pad>, 1 <bos>, 2 <sep>, entries k{{a}}:v{{b}} = {e0} + a*{n_values} + b, queries "
              f"q{{a}},{{b}} from {q0}, answers v{{a}}&v{{b}} = {a0} + a*{n_values} + b")
    return SyntheticTask("pair_lookup", seq, _mask_last(seq, 1), vocab, layout,
                         params=dict(n=n, n_entries=n_entries, n_keys=n_keys, n_values=n_values, seed=seed),
                         info={"keys": keys, "values": values, "query_index": asked})


def lookup_attention(model: Transformer, task: SyntheticTask, layer: int = 0) -> torch.Tensor:
    """``(H, 2)``: mean attention weight each head of ``layer`` puts, from the query position, on the
    first asked entry (column 0) and on the second (column 1) of a :func:`pair_lookup` task.

    A head that fetches one entry has a row like (0.95, 0.02); one head serving both lookups has
    about (0.5, 0.5).
    """
    if task.name != "pair_lookup":
        raise ValueError(f"task={task.name!r}: lookup_attention reads a pair_lookup task")
    from .probes import capture

    weights = capture(model, task.input_ids)["weights"][layer]          # (N, H, T, T)
    q_pos = task.input_ids.shape[1] - 1                                  # the query token's position
    entry_pos = 1 + task.info["query_index"]                             # (N, 2) positions of the asked entries
    rows = weights[:, :, q_pos, :]                                       # (N, H, T)
    picked = torch.gather(rows, 2, entry_pos[:, None, :].expand(-1, rows.shape[1], -1))
    return picked.float().mean(0)


def average_heads(model: Transformer) -> Transformer:
    """Replace every layer's learned ``W_O`` by the fixed average of the heads, in place; returns the model.

    Needs full-width heads (``head_dim == dim``): the output becomes ``(1/H) sum_h head_h``, i.e.
    ``W_O = [I/H, ..., I/H]`` (shape ``(D, H*D)``), frozen (``requires_grad=False``), so the
    optimizer never moves it.
    """
    c = model.config
    if c.head_dim != c.dim or not c.use_wo:
        raise ValueError(f"average_heads needs head_dim == dim and use_wo=True (got head_dim={c.head_dim}, "
                         f"dim={c.dim}, use_wo={c.use_wo}); build the model with head_dim=dim")
    eye = torch.eye(c.dim) / c.n_heads
    for layer in model.layers:
        w = layer.attn.o_proj.weight
        with torch.no_grad():
            w.copy_(eye.repeat(1, c.n_heads).to(w))
        w.requires_grad_(False)
    return model


def attention_times(dim: int, heads: Sequence[int], n: int, batch: int = 1, repeats: int = 5, device=None,
                    impl: str = "sdpa", seed: int = 0) -> Dict[int, float]:
    """Forward seconds (fastest of ``repeats``) of one library ``Attention`` layer for each head count.

    Width ``dim`` fixed, ``head_dim = dim / h``, no mask (every key visible), random input ``(batch,
    n, dim)``; ``impl`` is the config's ``attn_impl`` ("sdpa" or "naive").
    """
    bad = [h for h in heads if dim % h]
    if bad:
        raise ValueError(f"heads={list(heads)}: {bad} do not divide dim={dim}; use divisors of dim")
    x = torch.randn(batch, n, dim, generator=torch.Generator().manual_seed(seed)).to(device)
    out = {}
    for h in heads:
        torch.manual_seed(seed)
        cfg = ModelConfig(vocab_size=1, dim=dim, n_layers=1, n_heads=h, max_seq_len=n, pos="none", attn_impl=impl)
        attn = Attention(cfg).to(device)
        with torch.no_grad():
            out[h] = time_fn(lambda: attn(x), repeat=repeats, device=device).min
    return out


def train_eval(config: ModelConfig, train_data, evaluate: Callable[[Transformer], float], *, steps: int,
               seed: int, lr: float = 3e-3, batch_size: int = 32, prepare: Optional[Callable[[Transformer], object]] = None,
               device: str = "auto") -> Dict[str, float]:
    """Build ``Transformer(config)`` with ``torch.manual_seed(seed)``, train ``steps`` steps (AdamW,
    cosine, seed-ordered data), return ``{"score": evaluate(model), "seconds", "params", "model"}``.

    ``prepare(model)`` runs before training (e.g. :func:`average_heads`); ``params`` counts the
    trainable parameters only.
    """
    torch.manual_seed(seed)
    model = Transformer(config)
    if prepare is not None:
        prepare(model)
    tcfg = TrainConfig(batch_size=batch_size, max_steps=steps, lr=lr, warmup_steps=max(1, steps // 20), seed=seed,
                       progress=False, log_every=0, device=device)
    start = time.perf_counter()
    Trainer(model, train_data, tcfg).fit()
    seconds = time.perf_counter() - start
    return {"score": float(evaluate(model)), "seconds": seconds,
            "params": sum(p.numel() for p in model.parameters() if p.requires_grad), "model": model}
