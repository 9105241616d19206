"""Datasets for language-model training: the one-position shift, padding and loss masks, packing,
and chat (SFT) data with a loss mask on the assistant's tokens.

Conventions (``docs/design.md``): ``labels[t]`` is the target for ``logits[t]``, so the shift
happens here, in ``shift_for_next_token``, and nowhere else; ``-100`` (``IGNORE_INDEX``) marks a
position that carries no loss; the pad id is 0 (``<|endoftext|>``).

Every item is a dict of 1-D ``torch.long`` tensors of one length ``T``:

    input_ids       (T,)  tokens the model reads
    labels          (T,)  next-token targets, -100 where there is no loss (padding, prompts, ...)
    attention_mask  (T,)  1 for a real token, 0 for padding
    position_ids    (T,)  only PackedDataset(boundary="reset"): positions restart at each document
    doc_ids         (T,)  only PackedDataset(boundary="reset"): 0, 1, 2, ... per document in the block

``collate`` pads a list of items (right padding by default) into ``(B, T)`` tensors.

Speed: texts are tokenized once, with the tokenizer's batch encoder, into one flat ``int32``
tensor plus offsets. An item is a slice and a shift, so data loading costs microseconds per item
(``benchmarks/bench_data.py`` measures it).
"""
from __future__ import annotations

import itertools
from typing import Any, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from .losses import IGNORE_INDEX          # the label that carries no loss (defined with the loss)
from .tokenizer import CHAT_ROLES

__all__ = [
    "IGNORE_INDEX", "PAD_ID", "shift_for_next_token", "collate", "PretrainDataset",
    "PackedDataset", "SFTDataset", "PAD_VALUES", "packed_splits", "SampleStream", "collate_for", "left_pad",
]

PAD_ID = 0

# What ``collate`` pads each key with (input_ids use the ``pad_id`` argument).
PAD_VALUES = {"labels": IGNORE_INDEX, "attention_mask": 0, "position_ids": 0, "doc_ids": -1}


# --------------------------------------------------------------------------------------------
# the shift
# --------------------------------------------------------------------------------------------
def shift_for_next_token(ids: torch.Tensor, target_mask: torch.Tensor | None = None,
                         ignore_index: int = IGNORE_INDEX) -> tuple[torch.Tensor, torch.Tensor]:
    """Turn a token sequence into (model input, aligned next-token labels).

    ``ids``: ``(..., L)`` integer tensor. Returns ``input_ids = ids[..., :-1]`` and
    ``labels = ids[..., 1:]``, both ``(..., L-1)``: the model reading ``input_ids[..., t]`` (and
    everything before it) is trained to predict ``labels[..., t]``, the token that comes next.

    ``target_mask``: optional ``(..., L)`` bool tensor aligned with ``ids``; True where a token
    should be *predicted* (a loss target). A token whose mask is False gets ``ignore_index`` in
    ``labels`` at the position one step before it. Nothing else in course_lib shifts labels.
    """
    if not isinstance(ids, torch.Tensor) or ids.dim() < 1:
        raise ValueError(f"ids must be a tensor with at least 1 dimension, got {type(ids).__name__}")
    if ids.dtype.is_floating_point or ids.dtype == torch.bool:
        raise ValueError(f"ids must be an integer tensor, got dtype {ids.dtype}")
    if ids.shape[-1] < 2:
        raise ValueError(f"ids has length {ids.shape[-1]} in its last dimension; the shift needs "
                         "at least 2 tokens (one input, one target)")
    input_ids = ids[..., :-1].long()
    labels = ids[..., 1:].long().clone()
    if target_mask is not None:
        if target_mask.shape != ids.shape:
            raise ValueError(f"target_mask shape {tuple(target_mask.shape)} must equal ids shape "
                             f"{tuple(ids.shape)}")
        labels[~target_mask[..., 1:].bool()] = ignore_index
    return input_ids, labels


# --------------------------------------------------------------------------------------------
# padding
# --------------------------------------------------------------------------------------------
def collate(items: Sequence[dict[str, torch.Tensor]], pad_id: int = PAD_ID,
            pad_to: int | None = None, padding_side: str = "right") -> dict[str, torch.Tensor]:
    """Pad a list of items (dicts of 1-D tensors) to a batch of ``(B, T)`` tensors.

    ``T`` is the longest item (or ``pad_to``). ``input_ids`` are padded with ``pad_id``, ``labels``
    with -100 (no loss on padding), ``attention_mask`` with 0, ``position_ids`` with 0,
    ``doc_ids`` with -1, anything else with 0. ``padding_side="right"`` for training (the default);
    ``"left"`` for batched generation. Use as ``DataLoader(ds, batch_size, collate_fn=collate)``.
    """
    if padding_side not in ("right", "left"):
        raise ValueError(f"padding_side={padding_side!r} must be 'right' or 'left'")
    if not isinstance(items, (list, tuple)) or not items:
        raise ValueError("collate needs a non-empty list of items")
    keys = list(items[0].keys())
    lengths = []
    for i, item in enumerate(items):
        if not isinstance(item, dict) or list(item.keys()) != keys:
            got = list(item.keys()) if isinstance(item, dict) else type(item).__name__
            raise ValueError(f"items[{i}] has keys {got}, expected {keys}")
        n = None
        for k in keys:
            v = item[k]
            if not isinstance(v, torch.Tensor) or v.dim() != 1:
                raise ValueError(f"items[{i}][{k!r}] must be a 1-D tensor, got "
                                 f"{getattr(v, 'shape', type(v).__name__)}")
            if n is not None and v.shape[0] != n:
                raise ValueError(f"items[{i}]: key {k!r} has length {v.shape[0]}, other keys {n}")
            n = v.shape[0]
        lengths.append(n)
    longest = max(lengths)
    width = longest if pad_to is None else pad_to
    if pad_to is not None and (not isinstance(pad_to, int) or pad_to < longest):
        raise ValueError(f"pad_to={pad_to!r} is shorter than the longest item ({longest} tokens)")
    batch = {}
    for k in keys:
        fill = pad_id if k == "input_ids" else PAD_VALUES.get(k, 0)
        out = torch.full((len(items), width), fill, dtype=items[0][k].dtype)
        for row, (item, n) in enumerate(zip(items, lengths)):
            if padding_side == "right":
                out[row, :n] = item[k]
            else:
                out[row, width - n:] = item[k]
        batch[k] = out
    return batch


def left_pad(sequences: Sequence[Sequence[int]], pad_id: int = PAD_ID) -> tuple[torch.Tensor, torch.Tensor]:
    """Token lists of different lengths -> ``ids (B, T)`` and ``attention_mask (B, T)`` long tensors,
    padded on the left (what generation needs: new tokens are appended on the right)."""
    if not sequences or any(len(s) == 0 for s in sequences):
        raise ValueError("sequences must be a non-empty list of non-empty token lists")
    T = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), T), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), T), dtype=torch.long)
    for i, s in enumerate(sequences):
        ids[i, T - len(s):] = torch.as_tensor(list(s), dtype=torch.long)
        mask[i, T - len(s):] = 1
    return ids, mask


def collate_for(dataset):
    """``collate`` with the dataset's own ``pad_id`` (0 when it has none): a trainer's default."""
    pad_id = getattr(dataset, "pad_id", PAD_ID)
    return lambda items: collate(items, pad_id=pad_id)


class SampleStream:
    """The order in which samples are read: seeded permutations of the dataset, one per epoch,
    concatenated into one endless stream. ``index(g)`` is the dataset index of stream position ``g``.

    Position, not an iterator state, is what a checkpoint records, so resuming (even with another
    batch layout) continues the stream at exactly the right sample.
    """

    def __init__(self, size: int, seed: int, shuffle: bool = True):
        if size < 1:
            raise ValueError("train_data is empty: nothing to train on")
        self.size, self.seed, self.shuffle = size, seed, shuffle
        self._epoch, self._perm = -1, None

    def permutation(self, epoch: int) -> list[int]:
        if epoch != self._epoch:
            if self.shuffle:
                g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
                self._perm = torch.randperm(self.size, generator=g).tolist()
            else:
                self._perm = list(range(self.size))
            self._epoch = epoch
        return self._perm

    def index(self, g: int) -> int:
        epoch, pos = divmod(g, self.size)
        return self.permutation(epoch)[pos]

    def indices(self, start: int, count: int) -> list[int]:
        return [self.index(g) for g in range(start, start + count)]


def _pad_item(item: dict[str, torch.Tensor], length: int, pad_id: int) -> dict[str, torch.Tensor]:
    """Right-pad every tensor of one item to ``length``."""
    n = item["input_ids"].shape[0]
    if n == length:
        return item
    out = {}
    for k, v in item.items():
        fill = pad_id if k == "input_ids" else PAD_VALUES.get(k, 0)
        p = torch.full((length,), fill, dtype=v.dtype)
        p[:n] = v
        out[k] = p
    return out


# --------------------------------------------------------------------------------------------
# tokenization into flat storage
# --------------------------------------------------------------------------------------------
def _check_positive_int(name: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name}={value!r} must be an int >= {minimum}")
    return value


def _check_tokenizer(tokenizer) -> None:
    for attr in ("encode_batch", "bos_id", "eos_id", "pad_id"):
        if not hasattr(tokenizer, attr):
            raise ValueError(f"tokenizer {type(tokenizer).__name__} has no {attr!r}; use a "
                             "course_lib tokenizer (BPETokenizer, CharTokenizer, ByteTokenizer)")


def _tokenize_documents(texts, tokenizer, what: str = "texts") -> list[list[int]]:
    """Token ids for each document (no special tokens). ``texts`` may also hold lists of ints
    (already tokenized), which are used as they are."""
    if isinstance(texts, str):
        raise ValueError(f"{what} must be a list of documents, not one string (wrap it in a list)")
    texts = list(texts)
    if not texts:
        raise ValueError(f"{what} is empty: no documents")
    if all(isinstance(t, str) for t in texts):
        _check_tokenizer(tokenizer)
        return tokenizer.encode_batch(texts)
    docs = []
    for i, t in enumerate(texts):
        if isinstance(t, torch.Tensor):
            t = t.tolist()
        if not isinstance(t, (list, tuple)) or not all(isinstance(x, int) for x in t):
            raise ValueError(f"{what}[{i}] must be a string or a list of token ids, got "
                             f"{type(t).__name__}")
        docs.append(list(t))
    return docs


def _flatten(seqs: Sequence[Sequence[int]], bos: int | None = None,
             eos: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Many id lists -> one flat int32 tensor and int64 offsets (``offsets[i]:offsets[i+1]``),
    with ``bos``/``eos`` (when given) around each sequence, without copying the lists. A sequence
    that already starts with ``bos`` or ends with ``eos`` (old MiniMind pretraining text holds
    ``<|im_start|>…<|im_end|>``) gets none added there: never two in a row."""
    head = [bos] if bos is not None else []
    tail = [eos] if eos is not None else []
    wrapped = [(head if not (len(s) and s[0] == bos) else [], s, tail if not (len(s) and s[-1] == eos) else [])
               for s in seqs]
    lengths = np.fromiter((len(h) + len(s) + len(t) for h, s, t in wrapped), dtype=np.int64, count=len(seqs))
    offsets = np.zeros(len(seqs) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    pieces = itertools.chain.from_iterable(wrapped)
    flat = np.fromiter(itertools.chain.from_iterable(pieces), dtype=np.int32,
                       count=int(offsets[-1]))
    return torch.from_numpy(flat), torch.from_numpy(offsets)


# --------------------------------------------------------------------------------------------
# pretraining: one document per window
# --------------------------------------------------------------------------------------------
class PretrainDataset(Dataset):
    """Documents as ``[BOS] text [EOS]``, cut into windows of at most ``max_len + 1`` tokens.

    Each window gives one item of length ``max_len`` (after the shift; padded when
    ``pad_to_max``): ``input_ids`` (T,), ``labels`` (T,) with ``labels[t] = input token t+1`` and
    -100 on padding, ``attention_mask`` (T,). The EOS is a target (the model learns to stop); the
    BOS is only ever an input.

    ``overflow`` decides what happens to a document longer than ``max_len + 1`` tokens:
    ``"split"`` (default) continues it in further windows that overlap by one token, so every token
    is predicted exactly once; ``"truncate"`` keeps the first window only; ``"error"`` raises
    ``ValueError`` naming the document.

    ``texts``: a list of strings (tokenized once here) or of token-id lists.
    """

    def __init__(self, texts: Sequence[str] | Sequence[Sequence[int]], tokenizer=None,
                 max_len: int = 256, overflow: str = "split", pad_to_max: bool = True,
                 add_bos: bool = True, add_eos: bool = True):
        _check_positive_int("max_len", max_len)
        if overflow not in ("split", "truncate", "error"):
            raise ValueError(f"overflow={overflow!r} must be 'split', 'truncate' or 'error'")
        if tokenizer is None and (add_bos or add_eos):
            raise ValueError("tokenizer is required (for its bos/eos/pad ids)")
        if tokenizer is not None:
            _check_tokenizer(tokenizer)
        self.max_len = max_len
        self.pad_to_max = pad_to_max
        self.pad_id = tokenizer.pad_id if tokenizer is not None else PAD_ID
        docs = _tokenize_documents(texts, tokenizer)
        self.tokens, self.offsets = _flatten(docs, tokenizer.bos_id if add_bos else None,
                                             tokenizer.eos_id if add_eos else None)
        del docs  # the flat copy is all we keep

        starts, lengths, doc_of_window = [], [], []
        window = max_len + 1
        doc_lengths = (self.offsets[1:] - self.offsets[:-1]).tolist()
        for i, (begin, n) in enumerate(zip(self.offsets[:-1].tolist(), doc_lengths)):
            if n < 2:  # nothing to predict (an empty document without BOS/EOS)
                continue
            if n <= window:
                starts.append(begin), lengths.append(n), doc_of_window.append(i)
            elif overflow == "error":
                raise ValueError(f"document {i} has {n} tokens with BOS/EOS, more than "
                                 f"max_len + 1 = {window}; use overflow='split' or 'truncate'")
            elif overflow == "truncate":
                starts.append(begin), lengths.append(window), doc_of_window.append(i)
            else:  # split: windows at 0, T, 2T, ... sharing one token with the previous one
                for s in range(0, n - 1, max_len):
                    starts.append(begin + s), lengths.append(min(window, n - s))
                    doc_of_window.append(i)
        if not starts:
            raise ValueError("no document has at least 2 tokens: nothing to train on")
        self.window_starts = torch.tensor(starts, dtype=torch.long)
        self.window_lengths = torch.tensor(lengths, dtype=torch.long)
        self.window_docs = torch.tensor(doc_of_window, dtype=torch.long)

    @classmethod
    def from_corpus(cls, name: str, tokenizer, max_chars: int | None = None, **kwargs):
        """``PretrainDataset(load_corpus(name, max_chars), tokenizer, **kwargs)``."""
        from .corpus import load_corpus

        return cls(load_corpus(name, max_chars=max_chars), tokenizer, **kwargs)

    def __len__(self) -> int:
        return len(self.window_starts)

    @property
    def num_targets(self) -> int:
        """Tokens that carry a loss in the whole dataset."""
        return int((self.window_lengths - 1).sum())

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} windows")
        s, n = int(self.window_starts[index]), int(self.window_lengths[index])
        input_ids, labels = shift_for_next_token(self.tokens[s:s + n])
        item = {"input_ids": input_ids, "labels": labels,
                "attention_mask": torch.ones(n - 1, dtype=torch.long)}
        return _pad_item(item, self.max_len, self.pad_id) if self.pad_to_max else item

    def __repr__(self) -> str:
        return (f"PretrainDataset(windows={len(self)}, documents={len(self.offsets) - 1}, "
                f"tokens={len(self.tokens)}, max_len={self.max_len})")


# --------------------------------------------------------------------------------------------
# pretraining: documents packed into fixed blocks
# --------------------------------------------------------------------------------------------
class _MemmapSlice:
    """Tokens ``[start, end)`` of a memory-mapped array, sliced into ``int32`` tensors on demand."""

    def __init__(self, array, start: int, end: int):
        self.array, self.start, self.end = array, start, end

    def __len__(self) -> int:
        return self.end - self.start

    def __getitem__(self, s: slice) -> torch.Tensor:
        lo, hi, _ = s.indices(len(self))
        return torch.from_numpy(self.array[self.start + lo:self.start + hi].astype(np.int32))


class PackedDataset(Dataset):
    """All documents, each ``[BOS] text [EOS]``, concatenated into one stream and cut into blocks.

    Block ``i`` covers stream tokens ``[i*T, i*T + T + 1)`` and gives ``input_ids`` (T,),
    ``labels`` (T,), ``attention_mask`` (T,) with no padding (``drop_last=True``, the default, drops
    the incomplete last block; ``drop_last=False`` keeps it, padded).

    ``boundary`` says what happens where one document ends and the next begins inside a block:

    * ``"cross"`` (default, as in GPT-2/nanoGPT): nothing special. The position holding a
      document's EOS is trained to predict the next document's BOS, and attention reaches back
      into the previous document.
    * ``"mask"``: the same, but no loss on the prediction across the boundary (label -100 at each
      EOS whose target starts another document).
    * ``"reset"``: like ``"mask"``, and the items also carry ``position_ids`` that restart at 0 at
      every BOS (each document sees the positions it would see alone) and ``doc_ids`` (0, 1, ...
      for the documents in the block). Attention still spans the whole block unless the model
      uses ``doc_ids`` to build a block-diagonal mask; course_lib's ``Transformer`` does not, so
      earlier documents remain visible as context.
    """

    BOUNDARIES = ("cross", "mask", "reset")

    def __init__(self, texts: Sequence[str] | Sequence[Sequence[int]], tokenizer=None,
                 block_size: int = 256, boundary: str = "cross", drop_last: bool = True,
                 add_bos: bool = True):
        _check_positive_int("block_size", block_size)
        if boundary not in self.BOUNDARIES:
            raise ValueError(f"boundary={boundary!r} must be one of {self.BOUNDARIES}")
        if tokenizer is None:
            raise ValueError("tokenizer is required (for its bos/eos/pad ids)")
        _check_tokenizer(tokenizer)
        self.block_size = block_size
        self.boundary = boundary
        self.pad_id = tokenizer.pad_id
        docs = _tokenize_documents(texts, tokenizer)
        tokens, offsets = _flatten(docs, tokenizer.bos_id if add_bos else None, tokenizer.eos_id)
        del docs
        self._set_stream(tokens, offsets, drop_last)

    @classmethod
    def from_token_ids(cls, ids: torch.Tensor, block_size: int = 256, boundary: str = "cross",
                       drop_last: bool = True, pad_id: int = PAD_ID) -> "PackedDataset":
        """Blocks of an already tokenized stream (a 1-D integer tensor), taken as it is: no
        BOS/EOS added, the whole stream counts as one document."""
        _check_positive_int("block_size", block_size)
        if boundary not in cls.BOUNDARIES:
            raise ValueError(f"boundary={boundary!r} must be one of {cls.BOUNDARIES}")
        if not isinstance(ids, torch.Tensor) or ids.dim() != 1 or ids.dtype.is_floating_point:
            raise ValueError(f"ids must be a 1-D integer tensor, got "
                             f"{getattr(ids, 'shape', type(ids).__name__)}")
        self = cls.__new__(cls)
        self.block_size, self.boundary, self.pad_id = block_size, boundary, pad_id
        self._set_stream(ids.to(torch.int32), torch.tensor([0, len(ids)]), drop_last)
        return self

    @classmethod
    def from_token_file(cls, path, block_size: int = 256, tokenizer=None, rank: int = 0,
                        world_size: int = 1) -> "PackedDataset":
        """Blocks read lazily from a token file (``corpus.write_token_file``), ``boundary="cross"``.

        Items equal those of ``PackedDataset(texts, tokenizer, block_size)`` on the same documents;
        nothing is loaded until an item is read. ``rank``/``world_size`` keep only this process's
        contiguous share of the blocks (``len // world_size`` each), for a loop that shards by
        dataset; ``Trainer`` shards its sample stream itself, so give it the whole file."""
        from .corpus import read_token_file

        _check_positive_int("block_size", block_size)
        _check_positive_int("world_size", world_size)
        if not isinstance(rank, int) or not 0 <= rank < world_size:
            raise ValueError(f"rank={rank!r} must be an integer in [0, world_size={world_size})")
        tokens, header = read_token_file(path, tokenizer)
        per = (len(tokens) - 1) // block_size // world_size
        if per == 0:
            raise ValueError(f"{path}: {len(tokens)} tokens give no block of {block_size + 1} tokens per rank; "
                             "lower block_size or world_size")
        self = cls.__new__(cls)
        self.block_size, self.boundary, self.pad_id, self._count = block_size, "cross", PAD_ID, per
        self.tokens = _MemmapSlice(tokens, rank * per * block_size, (rank + 1) * per * block_size + 1)
        self.offsets = torch.tensor([0, header["documents"]])
        return self

    def _set_stream(self, tokens: torch.Tensor, offsets: torch.Tensor, drop_last: bool) -> None:
        block_size = self.block_size
        self.tokens, self.offsets = tokens, offsets
        # doc_start[j] is True when stream token j is the first token of a document
        self.doc_start = torch.zeros(len(self.tokens), dtype=torch.bool)
        self.doc_start[self.offsets[:-1][self.offsets[:-1] < len(self.tokens)]] = True
        n = len(self.tokens)
        full = (n - 1) // block_size  # blocks that have all T + 1 tokens
        if drop_last:
            count = full
        else:
            count = full + (1 if n - 1 - full * block_size >= 1 else 0)
        if count == 0:
            raise ValueError(f"the {n} tokens of these documents do not fill one block of "
                             f"block_size + 1 = {block_size + 1} tokens; lower block_size or use "
                             "drop_last=False")
        self._count = count

    @classmethod
    def from_corpus(cls, name: str, tokenizer, max_chars: int | None = None, **kwargs):
        """``PackedDataset(load_corpus(name, max_chars), tokenizer, **kwargs)``."""
        from .corpus import load_corpus

        return cls(load_corpus(name, max_chars=max_chars), tokenizer, **kwargs)

    def __len__(self) -> int:
        return self._count

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} blocks")
        index %= len(self)
        T = self.block_size
        s = index * T
        e = min(s + T + 1, len(self.tokens))
        input_ids, labels = shift_for_next_token(self.tokens[s:e])
        n = e - s - 1
        item = {"input_ids": input_ids, "labels": labels,
                "attention_mask": torch.ones(n, dtype=torch.long)}
        if self.boundary != "cross":
            starts = self.doc_start[s:e]
            # target token t+1 opens a new document: no loss for predicting it from the old one
            labels[starts[1:]] = IGNORE_INDEX
            if self.boundary == "reset":
                first = starts[:-1].clone()
                first[0] = True  # the block's first token starts a (possibly partial) document
                idx = torch.arange(n)
                last_start = torch.cummax(torch.where(first, idx, torch.zeros_like(idx)), 0).values
                item["position_ids"] = idx - last_start
                item["doc_ids"] = torch.cumsum(first.long(), 0) - 1
        return _pad_item(item, T, self.pad_id) if n < T else item

    def __repr__(self) -> str:
        return (f"PackedDataset(blocks={len(self)}, documents={len(self.offsets) - 1}, "
                f"tokens={len(self.tokens)}, block_size={self.block_size}, "
                f"boundary={self.boundary!r})")



def packed_splits(corpus, block_size: int, tokenizer=None, max_chars: int | None = None,
                  val_fraction: float = 0.05, seed: int = 0, optional_val: bool = False, **kwargs):
    """Corpus -> split by document into train/validation -> tokenizer -> packed blocks: the one
    pipeline (notebooks, ``python -m course_lib pretrain``, ``scripts/build_pretrained.py``).

    ``corpus``: a corpus name (``corpus.load_corpus``, cut to ``max_chars``) or a list of document
    strings. ``tokenizer``: a tokenizer; None fits a ``CharTokenizer`` on all the text (the smallest
    vocabulary that covers it); or a function ``train_docs -> tokenizer`` (a BPE fitted on the
    training split only). With ``val_fraction=0`` or fewer than two documents there is no validation
    split (``val`` is None), and ``optional_val=True`` also gives None when the validation text is
    too short for one block. Extra keyword arguments go to ``PackedDataset``. Returns
    ``(tokenizer, train, val)``; ``len(ds.offsets) - 1`` is the number of documents in a split.
    """
    from .corpus import load_corpus, train_val_split
    from .tokenizer import CharTokenizer

    docs = load_corpus(corpus, max_chars=max_chars) if isinstance(corpus, str) else list(corpus)
    train_docs, val_docs = (train_val_split(docs, val_fraction=val_fraction, seed=seed)
                            if val_fraction > 0 and len(docs) >= 2 else (docs, []))
    if tokenizer is None:
        tokenizer = CharTokenizer.from_texts(train_docs + val_docs)
    elif callable(tokenizer) and not hasattr(tokenizer, "encode"):
        tokenizer = tokenizer(train_docs)
    train = PackedDataset(train_docs, tokenizer, block_size=block_size, **kwargs)
    val = None
    if val_docs:
        try:
            val = PackedDataset(val_docs, tokenizer, block_size=block_size, **kwargs)
        except ValueError:
            if not optional_val:
                raise
    return tokenizer, train, val

# --------------------------------------------------------------------------------------------
# supervised fine-tuning on chats
# --------------------------------------------------------------------------------------------
class SFTDataset(Dataset):
    """Conversations rendered in ChatML, with a loss only on what the assistant says.

    A conversation ``[{"role": "user", "content": "你好"}, {"role": "assistant", "content": "你好！"}]``
    becomes the tokens of ::

        <|im_start|>user\\n你好<|im_end|>\\n<|im_start|>assistant\\n你好！<|im_end|>\\n

    and the targets (tokens the model is trained to predict) are exactly the assistant's content
    tokens and the ``<|im_end|>`` that closes each assistant turn. Not the role header
    (``<|im_start|>assistant\\n``), not the newline after ``<|im_end|>``, nothing from system or user
    turns. After the shift, ``labels[t]`` is ``input_ids[t+1]`` where that token is a target and
    -100 elsewhere.

    The tokens are built segment by segment (header, content, end), so the mask is exact by
    construction; ``token_targets(i)`` shows the unshifted tokens with their mask. For ordinary
    content the ids equal ``tokenizer.encode(tokenizer.apply_chat_template(conversation))``.

    ``max_len`` limits ``input_ids`` (a conversation of N tokens gives N - 1 inputs). Longer
    conversations: ``overflow="error"`` (default) raises ``ValueError`` naming the conversation,
    ``"truncate"`` cuts the end (which may remove every target), ``"drop"`` leaves them out.
    Items have their natural length unless ``pad_to_max``; ``collate`` pads a batch.
    """

    def __init__(self, conversations: Sequence[Sequence[dict]], tokenizer, max_len: int = 512,
                 overflow: str = "error", pad_to_max: bool = False):
        from .corpus import validate_conversation

        _check_positive_int("max_len", max_len)
        if overflow not in ("error", "truncate", "drop"):
            raise ValueError(f"overflow={overflow!r} must be 'error', 'truncate' or 'drop'")
        _check_tokenizer(tokenizer)
        if isinstance(conversations, dict) or not conversations:
            raise ValueError("conversations must be a non-empty list of conversations (each a "
                             "list of {'role', 'content'} dicts)")
        convs = []
        for i, c in enumerate(conversations):
            c = validate_conversation(c, f"conversations[{i}]")
            if not any(m["role"] == "assistant" for m in c):
                raise ValueError(f"conversations[{i}] has no assistant message: nothing to learn")
            convs.append(c)
        self.max_len = max_len
        self.pad_to_max = pad_to_max
        self.pad_id = tokenizer.pad_id

        bos_text = getattr(tokenizer, "bos_token", "<|im_start|>")
        headers = {r: tokenizer.encode(f"{bos_text}{r}\n") for r in CHAT_ROLES}
        end = [tokenizer.eos_id] + tokenizer.encode("\n")
        contents = iter(tokenizer.encode_batch([m["content"] for c in convs for m in c]))

        seqs, masks, kept = [], [], []
        for i, c in enumerate(convs):
            ids: list[int] = []
            mask: list[bool] = []
            for m in c:
                body = next(contents)
                learn = m["role"] == "assistant"
                ids += headers[m["role"]] + body + end
                mask += ([False] * len(headers[m["role"]]) + [learn] * len(body)
                         + [learn] + [False] * (len(end) - 1))
            if len(ids) - 1 > max_len:
                if overflow == "error":
                    raise ValueError(f"conversations[{i}] has {len(ids)} tokens, i.e. "
                                     f"{len(ids) - 1} inputs > max_len={max_len}; raise max_len or "
                                     "use overflow='truncate' or 'drop'")
                if overflow == "drop":
                    continue
                ids, mask = ids[:max_len + 1], mask[:max_len + 1]
            seqs.append(ids), masks.append(mask), kept.append(i)
        if not seqs:
            raise ValueError(f"every conversation is longer than max_len={max_len}; nothing left")
        empty = sum(1 for m in masks if not any(m[1:]))      # the targets after the shift
        if empty == len(seqs):
            raise ValueError(f"max_len={max_len} truncates every conversation before its answer: no target token "
                             "is left to learn from; raise max_len")
        if empty:
            import warnings
            warnings.warn(f"SFTDataset: {empty} of {len(seqs)} conversations keep no target token within "
                          f"max_len={max_len} (truncated before the answer); they add nothing to the loss", stacklevel=2)
        self.tokens, self.offsets = _flatten(seqs)
        self.targets = torch.from_numpy(np.fromiter(itertools.chain.from_iterable(masks),
                                                    dtype=np.bool_, count=len(self.tokens)))
        self.source_index = kept  # item i comes from conversations[source_index[i]]

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def token_targets(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The unshifted tokens (N,) of conversation ``index`` and its target mask (N,) bool."""
        s, e = int(self.offsets[index]), int(self.offsets[index + 1])
        return self.tokens[s:e].long(), self.targets[s:e]

    @property
    def num_targets(self) -> int:
        """Tokens that carry a loss in the whole dataset (first tokens are never targets)."""
        return int(self.targets.sum())

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} conversations")
        index %= len(self)
        ids, mask = self.token_targets(index)
        input_ids, labels = shift_for_next_token(ids, mask)
        item = {"input_ids": input_ids, "labels": labels,
                "attention_mask": torch.ones_like(input_ids)}
        return _pad_item(item, self.max_len, self.pad_id) if self.pad_to_max else item

    def __repr__(self) -> str:
        return (f"SFTDataset(conversations={len(self)}, tokens={len(self.tokens)}, "
                f"targets={self.num_targets}, max_len={self.max_len})")
