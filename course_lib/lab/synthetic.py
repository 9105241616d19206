"""Synthetic tasks with ground truth: small token languages where the right answer is known.

Each generator returns a ``SyntheticTask``: ``n`` sequences of one fixed length, seeded with a
``torch.Generator`` (same arguments, same tensors), with labels only where the answer is.

Shared vocabulary layout: id 0 ``<pad>``, id 1 ``<bos>``, id 2 ``<sep>`` (marks the query), then the
task's own tokens; each generator's docstring gives the rest of its layout, and ``task.vocab`` maps
every id to a printable name (``task.decode(ids)``).

Fields of a task (``N`` sequences of ``L`` tokens, ``A`` answer tokens each):

    sequences    (N, L)   the full token sequences, starting with <bos>
    answer_mask  (N, L)   True on answer tokens
    input_ids    (N, L-1) sequences[:, :-1]
    labels       (N, L-1) next-token targets aligned with input_ids: the answer token where the
                          next token is an answer, -100 elsewhere (``data.shift_for_next_token``)
    answers      (N, A)   the answer tokens, in order
    info         dict of per-sequence tensors (N, ...) with the ground truth behind each answer

A task is also a ``torch.utils.data.Dataset`` of dicts (``input_ids``, ``labels``,
``attention_mask``), so it plugs into ``collate`` and the trainer directly.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import torch
from torch.utils.data import Dataset

from ..data import IGNORE_INDEX, shift_for_next_token

__all__ = [
    "PAD", "BOS", "SEP", "SyntheticTask", "copy_task", "associative_recall", "two_retrieval",
    "entry_lookup", "pointer_chasing", "counting", "agreement", "addition", "entity_facts", "TASKS",
    "make_task", "answer_accuracy",
]

PAD, BOS, SEP = 0, 1, 2
_SPECIAL_NAMES = ["<pad>", "<bos>", "<sep>"]
_FIRST = 3  # first task-specific id


@dataclass(eq=False)
class SyntheticTask(Dataset):
    """A generated task: tensors, ground truth and the vocabulary (see module docstring)."""

    name: str
    sequences: torch.Tensor
    answer_mask: torch.Tensor
    vocab: list[str]
    layout: str
    params: dict[str, Any]
    info: dict[str, torch.Tensor] = field(default_factory=dict)

    def __post_init__(self):
        self.input_ids, self.labels = shift_for_next_token(self.sequences, self.answer_mask)
        n_answers = self.answer_mask.sum(1)
        if not bool((n_answers == n_answers[0]).all()):
            raise AssertionError("every sequence of a task must have the same number of answers")
        self.answers = self.sequences[self.answer_mask].view(len(self.sequences), -1)

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    @property
    def seq_len(self) -> int:
        """Length of ``input_ids`` (what the model reads), i.e. ``sequences.shape[1] - 1``."""
        return self.input_ids.shape[1]

    def __len__(self) -> int:
        return len(self.sequences)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.input_ids[index], "labels": self.labels[index],
                "attention_mask": torch.ones_like(self.input_ids[index])}

    def decode(self, ids) -> str:
        """Token ids -> the names of the tokens, space separated."""
        if isinstance(ids, torch.Tensor):
            ids = ids.tolist()
        return " ".join(self.vocab[i] if 0 <= i < len(self.vocab) else f"<{i}?>" for i in ids)

    def prompts(self) -> torch.Tensor:
        """(N, P) the tokens before the first answer token (for generation-based evaluation)."""
        first = int(self.answer_mask[0].nonzero()[0])
        return self.sequences[:, :first]

    def __repr__(self) -> str:
        return (f"SyntheticTask({self.name!r}, n={len(self)}, seq_len={self.seq_len}, "
                f"vocab_size={self.vocab_size}, answers_per_seq={self.answers.shape[1]})")


def answer_accuracy(logits: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """Greedy accuracy on the labelled positions.

    ``logits`` (B, T, V), ``labels`` (B, T) with -100 where there is no answer. Returns
    ``token_accuracy`` (fraction of answer tokens right) and ``sequence_accuracy`` (fraction of
    sequences whose answer tokens are all right).
    """
    if logits.dim() != 3 or labels.shape != logits.shape[:2]:
        raise ValueError(f"logits (B, T, V) and labels (B, T) do not match: "
                         f"{tuple(logits.shape)} vs {tuple(labels.shape)}")
    scored = labels != IGNORE_INDEX
    right = (logits.argmax(-1) == labels) & scored
    n = int(scored.sum())
    has = scored.any(1)
    seq_ok = (right | ~scored).all(1) & has
    return {"token_accuracy": float(right.sum()) / max(n, 1),
            "sequence_accuracy": float(seq_ok.sum()) / max(int(has.sum()), 1)}


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------
def _int(name: str, value: Any, lo: int, hi: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < lo or (
            hi is not None and value > hi):
        rng = f"[{lo}, {hi}]" if hi is not None else f">= {lo}"
        raise ValueError(f"{name}={value!r} must be an int in {rng}")
    return value


def _gen(seed: int) -> torch.Generator:
    _int("seed", seed, 0)
    return torch.Generator().manual_seed(seed)


def _distinct(n: int, k: int, pool: int, g: torch.Generator) -> torch.Tensor:
    """(n, k) values from range(pool), distinct within each row, uniformly random."""
    return torch.rand(n, pool, generator=g).argsort(dim=1)[:, :k]


def _names(prefix: str, count: int) -> list[str]:
    return [f"{prefix}{i}" for i in range(count)]


def _column(n: int, value: int) -> torch.Tensor:
    return torch.full((n, 1), value, dtype=torch.long)


def _mask_last(seq: torch.Tensor, k: int) -> torch.Tensor:
    mask = torch.zeros_like(seq, dtype=torch.bool)
    mask[:, -k:] = True
    return mask


# --------------------------------------------------------------------------------------------
# tasks
# --------------------------------------------------------------------------------------------
def copy_task(n: int, length: int = 8, n_symbols: int = 16, seed: int = 0) -> SyntheticTask:
    """Repeat a random string: ``<bos> x1 .. xL <sep> x1 .. xL``; the answer is the second copy.

    Layout: symbols ``s0..s{S-1}`` at ids ``3..3+S-1``. Sequence length ``2L + 2``.
    """
    _int("n", n, 1), _int("length", length, 1), _int("n_symbols", n_symbols, 1)
    g = _gen(seed)
    x = torch.randint(n_symbols, (n, length), generator=g) + _FIRST
    seq = torch.cat([_column(n, BOS), x, _column(n, SEP), x], dim=1)
    return SyntheticTask(
        "copy", seq, _mask_last(seq, length), _SPECIAL_NAMES + _names("s", n_symbols),
        layout=f"0 <pad>, 1 <bos>, 2 <sep>, symbols s0..s{n_symbols - 1} = ids 3..{2 + n_symbols}",
        params=dict(n=n, length=length, n_symbols=n_symbols, seed=seed))


def _kv_vocab(n_keys: int, n_values: int) -> tuple[list[str], str, int]:
    vocab = _SPECIAL_NAMES + _names("k", n_keys) + _names("v", n_values)
    v0 = _FIRST + n_keys
    layout = (f"0 <pad>, 1 <bos>, 2 <sep>, keys k0..k{n_keys - 1} = ids 3..{v0 - 1}, values "
              f"v0..v{n_values - 1} = ids {v0}..{v0 + n_values - 1} (disjoint from keys)")
    return vocab, layout, v0


def _kv_context(n: int, n_pairs: int, n_keys: int, n_values: int, g: torch.Generator):
    keys = _distinct(n, n_pairs, n_keys, g) + _FIRST             # distinct keys in a sequence
    values = torch.randint(n_values, (n, n_pairs), generator=g) + _FIRST + n_keys
    pairs = torch.stack([keys, values], dim=2).view(n, 2 * n_pairs)  # k1 v1 k2 v2 ...
    return keys, values, pairs


def associative_recall(n: int, n_pairs: int = 8, n_keys: int = 16, n_values: int = 16,
                       seed: int = 0) -> SyntheticTask:
    """Look up a key: ``<bos> k1 v1 .. kP vP <sep> kq vq``; the answer is ``vq``, the value that
    followed ``kq`` in the context.

    Keys are distinct within a sequence (so the answer is unique); values may repeat. Keys and
    values come from disjoint vocabularies (layout: keys at ids ``3..3+K-1``, values after them).
    Sequence length ``2P + 4``. ``info``: ``query_index`` (which pair was asked, 0-based).
    """
    _int("n", n, 1), _int("n_keys", n_keys, 1), _int("n_values", n_values, 1)
    _int("n_pairs", n_pairs, 1, n_keys)
    g = _gen(seed)
    keys, values, pairs = _kv_context(n, n_pairs, n_keys, n_values, g)
    q = torch.randint(n_pairs, (n,), generator=g)
    rows = torch.arange(n)
    seq = torch.cat([_column(n, BOS), pairs, _column(n, SEP), keys[rows, q, None],
                     values[rows, q, None]], dim=1)
    vocab, layout, _ = _kv_vocab(n_keys, n_values)
    return SyntheticTask("associative_recall", seq, _mask_last(seq, 1), vocab, layout,
                         params=dict(n=n, n_pairs=n_pairs, n_keys=n_keys, n_values=n_values,
                                     seed=seed),
                         info={"query_index": q})


def two_retrieval(n: int, n_pairs: int = 8, n_keys: int = 16, n_values: int = 16,
                  seed: int = 0) -> SyntheticTask:
    """Look up two keys at once: ``<bos> k1 v1 .. kP vP <sep> ka kb <sep> va vb``; the answers are
    ``va`` and ``vb``, in the order asked (``ka != kb``).

    Same vocabulary layout as ``associative_recall``. Sequence length ``2P + 6``. ``info``:
    ``query_index`` (N, 2).
    """
    _int("n", n, 1), _int("n_keys", n_keys, 2), _int("n_values", n_values, 1)
    _int("n_pairs", n_pairs, 2, n_keys)
    g = _gen(seed)
    keys, values, pairs = _kv_context(n, n_pairs, n_keys, n_values, g)
    q = _distinct(n, 2, n_pairs, g)
    qk = torch.gather(keys, 1, q)
    qv = torch.gather(values, 1, q)
    seq = torch.cat([_column(n, BOS), pairs, _column(n, SEP), qk, _column(n, SEP), qv], dim=1)
    vocab, layout, _ = _kv_vocab(n_keys, n_values)
    return SyntheticTask("two_retrieval", seq, _mask_last(seq, 2), vocab, layout,
                         params=dict(n=n, n_pairs=n_pairs, n_keys=n_keys, n_values=n_values,
                                     seed=seed),
                         info={"query_index": q})


def entry_lookup(n: int, n_entries: int = 8, n_keys: int = 16, n_values: int = 16,
                 seed: int = 0) -> SyntheticTask:
    """Look up a dictionary entry whose key and value share one position:
    ``<bos> e1 .. eP <sep> kq vq``, where each entry token ``e = (k, v)`` names one key and one value,
    and the answer ``vq`` is the value of the entry whose key is ``kq``.

    Unlike ``associative_recall`` (key and value at neighbouring positions, which a causal model
    must first join with a second layer), one attention layer can solve this: the query ``kq``
    finds its entry by the entry's key and reads the entry's value from the same position. Keys
    are distinct within a sequence (the answer is unique); values may repeat. Keys and values come
    from disjoint vocabularies. Layout: keys ``k0..`` at ids ``3..3+K-1``, values ``v0..`` next,
    then the ``K * V`` entry tokens ``k{a}:v{b}`` at id ``3 + K + V + a * V + b``. Sequence length
    ``P + 4``. ``info``: ``query_index`` (N,), ``keys`` and ``values`` (N, P) token ids of the
    entries' keys and values.
    """
    _int("n", n, 1), _int("n_keys", n_keys, 1), _int("n_values", n_values, 1)
    _int("n_entries", n_entries, 1, n_keys)
    g = _gen(seed)
    key_idx = _distinct(n, n_entries, n_keys, g)                # distinct keys in a sequence
    value_idx = torch.randint(n_values, (n, n_entries), generator=g)
    e0 = _FIRST + n_keys + n_values
    entries = e0 + key_idx * n_values + value_idx
    q = torch.randint(n_entries, (n,), generator=g)
    rows = torch.arange(n)
    keys, values = key_idx + _FIRST, value_idx + _FIRST + n_keys
    seq = torch.cat([_column(n, BOS), entries, _column(n, SEP), keys[rows, q, None],
                     values[rows, q, None]], dim=1)
    vocab = (_SPECIAL_NAMES + _names("k", n_keys) + _names("v", n_values)
             + [f"k{a}:v{b}" for a in range(n_keys) for b in range(n_values)])
    layout = (f"0 <pad>, 1 <bos>, 2 <sep>, keys k0..k{n_keys - 1} = ids 3..{2 + n_keys}, values "
              f"v0..v{n_values - 1} = ids {3 + n_keys}..{e0 - 1}, entries k{{a}}:v{{b}} = id "
              f"{e0} + a * {n_values} + b")
    return SyntheticTask("entry_lookup", seq, _mask_last(seq, 1), vocab, layout,
                         params=dict(n=n, n_entries=n_entries, n_keys=n_keys, n_values=n_values,
                                     seed=seed),
                         info={"query_index": q, "keys": keys, "values": values})


def pointer_chasing(n: int, n_nodes: int = 8, hops: int | Sequence[int] = 2,
                    n_symbols: int | None = None, show_path: bool = False,
                    seed: int = 0) -> SyntheticTask:
    """Follow pointers k times: ``<bos> a1 b1 .. an bn <sep> start h{k} answer``.

    The context lists the edges ``a -> b`` of one random cycle through ``n_nodes`` distinct nodes
    (drawn from ``n_symbols`` node tokens), in shuffled order. Because the nodes form one cycle,
    ``k`` hops from ``start`` land on a node different from ``start`` for every ``k < n_nodes``.
    The answer is the node reached after ``k`` hops; with ``show_path`` the answer is the whole
    path of ``k`` nodes (a worked chain, every step labelled), which needs a single ``hops`` int.

    ``hops``: an int, or a list of ints to draw from per sequence (the ``h{k}`` token says which).
    Layout: nodes ``n0..`` at ids ``3..3+S-1``, hop tokens ``h1..h{max}`` after them.
    ``info``: ``hops`` (N,), ``start`` (N,) and ``path`` (N, max hops) node ids.
    """
    _int("n", n, 1), _int("n_nodes", n_nodes, 2)
    n_symbols = n_nodes if n_symbols is None else _int("n_symbols", n_symbols, n_nodes)
    hop_choices = [hops] if isinstance(hops, int) else list(hops)
    if not hop_choices:
        raise ValueError("hops must be an int >= 1 or a non-empty list of them")
    for h in hop_choices:
        _int("hops", h, 1)
    if show_path and len(set(hop_choices)) != 1:
        raise ValueError(f"show_path=True needs one hop count, got hops={hops!r}")
    max_hop = max(hop_choices)
    g = _gen(seed)
    nodes = _distinct(n, n_nodes, n_symbols, g) + _FIRST        # cycle order: nodes[:, j] -> j+1
    successor = torch.roll(nodes, shifts=-1, dims=1)
    order = _distinct(n, n_nodes, n_nodes, g)                   # shuffled listing of the edges
    edges = torch.stack([torch.gather(nodes, 1, order), torch.gather(successor, 1, order)], 2)
    start_pos = torch.randint(n_nodes, (n,), generator=g)
    k = torch.tensor(hop_choices)[torch.randint(len(hop_choices), (n,), generator=g)]
    steps = torch.arange(1, max_hop + 1)
    path = torch.gather(nodes, 1, (start_pos[:, None] + steps[None, :]) % n_nodes)
    start = nodes[torch.arange(n), start_pos]
    hop_token = _FIRST + n_symbols + k - 1
    if show_path:
        answer = path
    else:
        answer = path[torch.arange(n), k - 1][:, None]
    seq = torch.cat([_column(n, BOS), edges.reshape(n, 2 * n_nodes), _column(n, SEP),
                     start[:, None], hop_token[:, None], answer], dim=1)
    vocab = _SPECIAL_NAMES + _names("n", n_symbols) + [f"h{i}" for i in range(1, max_hop + 1)]
    layout = (f"0 <pad>, 1 <bos>, 2 <sep>, nodes n0..n{n_symbols - 1} = ids 3..{2 + n_symbols}, "
              f"hop counts h1..h{max_hop} = ids {3 + n_symbols}..{2 + n_symbols + max_hop}")
    return SyntheticTask("pointer_chasing", seq, _mask_last(seq, answer.shape[1]), vocab, layout,
                         params=dict(n=n, n_nodes=n_nodes, hops=hops, n_symbols=n_symbols,
                                     show_path=show_path, seed=seed),
                         info={"hops": k, "start": start, "path": path})


def counting(n: int, length: int = 16, n_symbols: int = 8, max_count: int | None = None,
             query: str = "last", seed: int = 0) -> SyntheticTask:
    """Count how often a symbol occurs in a string.

    ``query="last"``:  ``<bos> x1 .. xL <sep> q <sep> c{count}`` (the question comes after the
    data, so the model must have kept what it needs to count any symbol);
    ``query="first"``: ``<bos> q <sep> x1 .. xL <sep> c{count}`` (a causal model can count q on
    the fly while reading). The count is drawn uniformly from ``0..max_count`` (default
    ``length // 2``), then that many copies of ``q`` are placed at random among other symbols.

    Layout: symbols ``s0..`` at ids ``3..3+S-1``, counts ``c0..c{max_count}`` after them.
    ``info``: ``count`` (N,), ``query`` (N,) symbol id.
    """
    _int("n", n, 1), _int("length", length, 1), _int("n_symbols", n_symbols, 2)
    max_count = length // 2 if max_count is None else _int("max_count", max_count, 0, length)
    if query not in ("last", "first"):
        raise ValueError(f"query={query!r} must be 'last' or 'first'")
    g = _gen(seed)
    q = torch.randint(n_symbols, (n,), generator=g)
    c = torch.randint(max_count + 1, (n,), generator=g)
    other = torch.randint(n_symbols - 1, (n, length), generator=g)
    other = other + (other >= q[:, None]).long()                # any symbol but q
    slots = torch.rand(n, length, generator=g).argsort(dim=1)    # random positions for q
    is_q = slots < c[:, None]
    x = torch.where(is_q, q[:, None], other) + _FIRST
    qtok = (q + _FIRST)[:, None]
    ctok = (c + _FIRST + n_symbols)[:, None]
    sep = _column(n, SEP)
    if query == "last":
        seq = torch.cat([_column(n, BOS), x, sep, qtok, sep, ctok], dim=1)
    else:
        seq = torch.cat([_column(n, BOS), qtok, sep, x, sep, ctok], dim=1)
    vocab = _SPECIAL_NAMES + _names("s", n_symbols) + _names("c", max_count + 1)
    layout = (f"0 <pad>, 1 <bos>, 2 <sep>, symbols s0..s{n_symbols - 1} = ids 3..{2 + n_symbols}, "
              f"counts c0..c{max_count} = ids {3 + n_symbols}..{3 + n_symbols + max_count}")
    return SyntheticTask(f"counting_query_{query}", seq, _mask_last(seq, 1), vocab, layout,
                         params=dict(n=n, length=length, n_symbols=n_symbols,
                                     max_count=max_count, query=query, seed=seed),
                         info={"count": c, "query": qtok[:, 0]})


_NOUNS = [("key", "keys"), ("cabinet", "cabinets"), ("author", "authors"), ("dog", "dogs"),
          ("teacher", "teachers"), ("table", "tables"), ("picture", "pictures"),
          ("farmer", "farmers"), ("letter", "letters"), ("bird", "birds"), ("house", "houses"),
          ("student", "students"), ("boat", "boats"), ("doctor", "doctors"), ("song", "songs"),
          ("window", "windows")]
_PREPS = ["of", "near", "behind", "beside", "with", "under", "from", "for"]


def agreement(n: int, n_attractors: int = 2, n_nouns: int = 8, n_preps: int = 4,
              p_mismatch: float = 0.5, seed: int = 0) -> SyntheticTask:
    """Subject-verb number agreement across attractors:
    ``<bos> SUBJ (PREP ATTR) x k <sep> is|are`` ("the key to the cabinets ... is").

    The verb agrees with the first noun (the subject); the attractor nouns in between have the
    other number with probability ``p_mismatch`` each, so "agree with the nearest noun" fails.
    Layout: ``is`` = 3, ``are`` = 4, prepositions at ids ``5..5+P-1``, singular nouns next
    (``N`` ids), then the plural forms in the same order. ``info``: ``subject_plural`` (N,) bool,
    ``n_mismatched`` (N,) attractors whose number differs from the subject's.
    """
    _int("n", n, 1), _int("n_attractors", n_attractors, 0)
    _int("n_nouns", n_nouns, 1, len(_NOUNS)), _int("n_preps", n_preps, 1, len(_PREPS))
    if not isinstance(p_mismatch, (int, float)) or not 0.0 <= p_mismatch <= 1.0:
        raise ValueError(f"p_mismatch={p_mismatch!r} must be in [0, 1]")
    IS, ARE = _FIRST, _FIRST + 1
    prep0 = _FIRST + 2
    sg0 = prep0 + n_preps
    pl0 = sg0 + n_nouns
    g = _gen(seed)
    subj_pl = torch.rand(n, generator=g) < 0.5
    subj = torch.randint(n_nouns, (n,), generator=g) + torch.where(subj_pl, pl0, sg0)
    k = n_attractors
    preps = torch.randint(n_preps, (n, k), generator=g) + prep0
    flip = torch.rand(n, k, generator=g) < p_mismatch
    attr_pl = subj_pl[:, None] ^ flip
    attrs = torch.randint(n_nouns, (n, k), generator=g) + torch.where(attr_pl, pl0, sg0)
    middle = torch.stack([preps, attrs], dim=2).view(n, 2 * k)
    verb = torch.where(subj_pl, ARE, IS)[:, None]
    seq = torch.cat([_column(n, BOS), subj[:, None], middle, _column(n, SEP), verb], dim=1)
    vocab = (_SPECIAL_NAMES + ["is", "are"] + _PREPS[:n_preps]
             + [s for s, _ in _NOUNS[:n_nouns]] + [p for _, p in _NOUNS[:n_nouns]])
    layout = (f"0 <pad>, 1 <bos>, 2 <sep>, 3 is, 4 are, prepositions = ids {prep0}..{sg0 - 1}, "
              f"singular nouns = ids {sg0}..{pl0 - 1}, plural nouns = ids {pl0}..{pl0 + n_nouns - 1} "
              "(same order)")
    return SyntheticTask("agreement", seq, _mask_last(seq, 1), vocab, layout,
                         params=dict(n=n, n_attractors=k, n_nouns=n_nouns, n_preps=n_preps,
                                     p_mismatch=p_mismatch, seed=seed),
                         info={"subject_plural": subj_pl, "n_mismatched": flip.sum(1)})


_DIGIT0, _PLUS, _EQUALS = _FIRST, _FIRST + 10, _FIRST + 11


def _digits(x: torch.Tensor, width: int) -> torch.Tensor:
    """(N,) non-negative ints -> (N, width) digit ids, most significant first, zero-padded."""
    powers = 10 ** torch.arange(width - 1, -1, -1)
    return (x[:, None] // powers) % 10 + _DIGIT0


def addition(n: int, n_digits: int = 3, reverse: bool = False, seed: int = 0) -> SyntheticTask:
    """Add two numbers: ``<bos> a a a + b b b = c c c c`` (operands zero-padded to ``n_digits``,
    the sum to ``n_digits + 1`` digits); the answer is the sum's digits.

    ``reverse=True`` writes the sum least-significant digit first (so each digit depends only on
    digits already seen plus a carry). Layout: digits ``0..9`` at ids ``3..12``, ``+`` = 13,
    ``=`` = 14. ``info``: ``a``, ``b``, ``sum`` (N,) as integers.
    """
    _int("n", n, 1), _int("n_digits", n_digits, 1, 18)
    g = _gen(seed)
    hi = 10 ** n_digits
    a = torch.randint(hi, (n,), generator=g)
    b = torch.randint(hi, (n,), generator=g)
    c = a + b
    answer = _digits(c, n_digits + 1)
    if reverse:
        answer = answer.flip(1)
    seq = torch.cat([_column(n, BOS), _digits(a, n_digits), _column(n, _PLUS),
                     _digits(b, n_digits), _column(n, _EQUALS), answer], dim=1)
    vocab = _SPECIAL_NAMES + [str(d) for d in range(10)] + ["+", "="]
    layout = "0 <pad>, 1 <bos>, 2 <sep> (unused), digits 0..9 = ids 3..12, '+' = 13, '=' = 14"
    return SyntheticTask("addition", seq, _mask_last(seq, n_digits + 1), vocab, layout,
                         params=dict(n=n, n_digits=n_digits, reverse=reverse, seed=seed),
                         info={"a": a, "b": b, "sum": c})


def entity_facts(n: int | None = None, n_entities: int = 32, n_relations: int = 4,
                 n_values: int = 16, kb_seed: int = 0, seed: int = 0) -> SyntheticTask:
    """Recall a stored fact: ``<bos> e r <sep> v`` where ``v = table[e, r]``.

    The table (a random "world" of ``n_entities x n_relations`` facts) depends only on
    ``kb_seed``; the queries depend on ``seed``. Nothing in the sequence reveals ``v``: the model
    can only answer from what its weights memorised in training (use the same ``kb_seed`` for train
    and test). ``n=None`` gives every (entity, relation) pair once, in a seeded random order.

    Layout: entities ``e0..`` at ids ``3..3+E-1``, relations ``r0..`` next, values ``v0..`` last.
    ``params["table"]`` (E, R) holds value ids; ``info``: ``entity``, ``relation`` (N,) indices.
    """
    _int("n_entities", n_entities, 1), _int("n_relations", n_relations, 1)
    _int("n_values", n_values, 1)
    kb = _gen(kb_seed)
    r0 = _FIRST + n_entities
    v0 = r0 + n_relations
    table = torch.randint(n_values, (n_entities, n_relations), generator=kb) + v0
    g = _gen(seed)
    if n is None:
        pairs = torch.randperm(n_entities * n_relations, generator=g)
        ent, rel = pairs // n_relations, pairs % n_relations
        n = len(pairs)
    else:
        _int("n", n, 1)
        ent = torch.randint(n_entities, (n,), generator=g)
        rel = torch.randint(n_relations, (n,), generator=g)
    seq = torch.stack([torch.full((n,), BOS), ent + _FIRST, rel + r0, torch.full((n,), SEP),
                       table[ent, rel]], dim=1)
    vocab = (_SPECIAL_NAMES + _names("e", n_entities) + _names("r", n_relations)
             + _names("v", n_values))
    layout = (f"0 <pad>, 1 <bos>, 2 <sep>, entities e0..e{n_entities - 1} = ids 3..{r0 - 1}, "
              f"relations r0..r{n_relations - 1} = ids {r0}..{v0 - 1}, values "
              f"v0..v{n_values - 1} = ids {v0}..{v0 + n_values - 1}")
    return SyntheticTask("entity_facts", seq, _mask_last(seq, 1), vocab, layout,
                         params=dict(n=n, n_entities=n_entities, n_relations=n_relations,
                                     n_values=n_values, kb_seed=kb_seed, seed=seed, table=table),
                         info={"entity": ent, "relation": rel})


TASKS = {
    "copy": copy_task,
    "associative_recall": associative_recall,
    "two_retrieval": two_retrieval,
    "entry_lookup": entry_lookup,
    "pointer_chasing": pointer_chasing,
    "counting": counting,
    "agreement": agreement,
    "addition": addition,
    "entity_facts": entity_facts,
}


def make_task(name: str, n: int, **kwargs) -> SyntheticTask:
    """``TASKS[name](n, **kwargs)`` with a clear error for an unknown name."""
    if name not in TASKS:
        raise ValueError(f"unknown task name={name!r}; valid names: {', '.join(TASKS)}")
    return TASKS[name](n, **kwargs)
