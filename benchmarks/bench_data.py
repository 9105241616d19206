"""Data pipeline speed: how many tokens per second tokenization and batch loading produce.

The trainer benchmark compares ``data_tokens_per_second(...)`` with the tokens per second a
training step consumes (the target: the data side is at least 20x faster, so loading never
limits training). Usable as a module::

    import sys; sys.path.insert(0, "benchmarks")
    from bench_data import data_tokens_per_second
    tps = data_tokens_per_second(kind="packed", batch_size=4, seq_len=256)

or as a script that prints a table: ``python benchmarks/bench_data.py [--max-chars N]``.

"Tokens" are the positions of ``input_ids`` the loader delivers (batch x sequence length), the
same unit a training step's tokens/s uses. Tokenization is done once, before the clock starts,
for the loading figure; ``tokenize_tokens_per_second`` measures it separately.
"""
from __future__ import annotations

import argparse
import time

import torch
from torch.utils.data import DataLoader, RandomSampler

from course_lib.corpus import DEFAULT_CORPUS, load_corpus
from course_lib.data import PackedDataset, PretrainDataset, SFTDataset, collate
from course_lib.tokenizer import train_tokenizer

KINDS = ("packed", "pretrain", "sft")
_TOKENIZERS: dict = {}


def _tokenizer(corpus: str, max_chars: int, vocab_size: int):
    """A BPE tokenizer trained on the benchmark text (cached: training is not what we time)."""
    key = (corpus, max_chars, vocab_size)
    if key not in _TOKENIZERS:
        _TOKENIZERS[key] = train_tokenizer(load_corpus(corpus, max_chars=max_chars),
                                           vocab_size=vocab_size)
    return _TOKENIZERS[key]


def _as_chats(docs: list[str]) -> list[list[dict]]:
    """Turn documents into two-turn chats (first sentence asks, the rest answers) for SFT timing."""
    chats = []
    for d in docs:
        cut = max(1, min(len(d) // 4, 64))
        chats.append([{"role": "user", "content": d[:cut]},
                      {"role": "assistant", "content": d[cut:] or d}])
    return chats


def build_dataset(kind: str = "packed", corpus: str = DEFAULT_CORPUS, max_chars: int = 500_000,
                  seq_len: int = 256, tokenizer=None, vocab_size: int = 6400):
    """The dataset the benchmark reads: ``kind`` is ``packed``, ``pretrain`` or ``sft``."""
    if kind not in KINDS:
        raise ValueError(f"kind={kind!r} must be one of {KINDS}")
    tok = tokenizer or _tokenizer(corpus, max_chars, vocab_size)
    docs = load_corpus(corpus, max_chars=max_chars)
    if kind == "packed":
        return PackedDataset(docs, tok, block_size=seq_len)
    if kind == "pretrain":
        return PretrainDataset(docs, tok, max_len=seq_len)
    return SFTDataset(_as_chats(docs), tok, max_len=seq_len, overflow="truncate")


def data_tokens_per_second(kind: str = "packed", batch_size: int = 4, seq_len: int = 256,
                           n_batches: int = 500, corpus: str = DEFAULT_CORPUS,
                           max_chars: int = 500_000, tokenizer=None, vocab_size: int = 6400,
                           num_workers: int = 0, seed: int = 0, dataset=None) -> float:
    """Tokens per second (``batch_size x seq_len`` per batch) that a shuffled ``DataLoader`` with
    ``collate`` delivers from a pre-tokenized dataset, measured over ``n_batches`` batches after
    one warm-up batch. Pass ``dataset`` to time your own; otherwise ``build_dataset`` makes one.
    """
    ds = dataset if dataset is not None else build_dataset(kind, corpus, max_chars, seq_len,
                                                           tokenizer, vocab_size)
    sampler = RandomSampler(ds, replacement=True, num_samples=(n_batches + 1) * batch_size,
                            generator=torch.Generator().manual_seed(seed))
    loader = DataLoader(ds, batch_size=batch_size, sampler=sampler, collate_fn=collate,
                        num_workers=num_workers)
    it = iter(loader)
    next(it)  # warm-up (worker start-up, first allocations)
    tokens = 0
    start = time.perf_counter()
    for batch in it:
        tokens += batch["input_ids"].numel()
    return tokens / (time.perf_counter() - start)


def tokenize_tokens_per_second(corpus: str = DEFAULT_CORPUS, max_chars: int = 500_000,
                               tokenizer=None, vocab_size: int = 6400) -> float:
    """Tokens per second of the one-off pre-tokenization (``encode_batch`` over the corpus)."""
    tok = tokenizer or _tokenizer(corpus, max_chars, vocab_size)
    docs = load_corpus(corpus, max_chars=max_chars)
    start = time.perf_counter()
    n = sum(len(ids) for ids in tok.encode_batch(docs))
    return n / (time.perf_counter() - start)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", default=DEFAULT_CORPUS)
    parser.add_argument("--max-chars", type=int, default=500_000)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--seq-len", type=int, default=256)
    parser.add_argument("--n-batches", type=int, default=500)
    parser.add_argument("--vocab-size", type=int, default=6400)
    args = parser.parse_args(argv)

    t0 = time.perf_counter()
    tok = _tokenizer(args.corpus, args.max_chars, args.vocab_size)
    print(f"tokenizer: vocab {args.vocab_size} trained on {args.max_chars:,} chars of "
          f"{args.corpus} in {time.perf_counter() - t0:.1f} s")
    print(f"{'stage':<34}{'tokens/s':>14}")
    rate = tokenize_tokens_per_second(args.corpus, args.max_chars, tok)
    print(f"{'pre-tokenize (encode_batch)':<34}{rate:>14,.0f}")
    for kind in KINDS:
        t0 = time.perf_counter()
        ds = build_dataset(kind, args.corpus, args.max_chars, args.seq_len, tok)
        build = time.perf_counter() - t0
        rate = data_tokens_per_second(batch_size=args.batch_size, seq_len=args.seq_len,
                                      n_batches=args.n_batches, dataset=ds)
        label = f"load {kind} B={args.batch_size} T={args.seq_len}"
        print(f"{label:<34}{rate:>14,.0f}   (dataset built in {build:.2f} s, {len(ds):,} items)")


if __name__ == "__main__":
    main()
