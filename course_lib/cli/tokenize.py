"""``tokenizer``: train a byte-level BPE tokenizer on a corpus or a file and save ``tokenizer.json``.

    python -m course_lib tokenizer --corpus kjv --vocab-size 4096 --out runs/kjv-tokenizer
"""
from __future__ import annotations

import os
import time
from pathlib import Path

from .common import CLIError, check_writable, positive_int, read_documents


def cmd_tokenizer(args) -> int:
    from ..tokenizer import train_tokenizer

    docs, what = read_documents(args)
    out = Path(args.out)
    if (out / "tokenizer.json").is_file() and not args.overwrite:
        raise CLIError(f"{out / 'tokenizer.json'} exists; pass --overwrite or choose another --out")
    check_writable(out)                       # before training: a bad --out costs nothing
    t = time.time()
    tok = train_tokenizer(docs, vocab_size=args.vocab_size)
    _add_tokenizer_files(tok, out)
    sample = docs[0][:40]
    print(f"trained a {tok.vocab_size}-token BPE tokenizer on {what} ({sum(map(len, docs)):,} characters) "
          f"in {time.time() - t:.1f} s -> {out / 'tokenizer.json'}")
    print(f"example: {sample!r} -> {len(tok.encode(sample))} tokens: {' | '.join(tok.tokens(sample))}")
    return 0


def _add_tokenizer_files(tok, out: Path) -> None:
    """Write the tokenizer's files into ``out``, each replaced atomically; every other file or
    folder in ``out`` (a run's step_<N> checkpoints, ...) stays as it was."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix=".tokenizer.tmp-", dir=out) as tmp:
        tok.save(tmp)
        for f in sorted(Path(tmp).iterdir()):
            os.replace(f, out / f.name)


def add_parsers(sub) -> None:
    from .common import add_data_args

    p = sub.add_parser("tokenizer", help="train a byte-level BPE tokenizer and save tokenizer.json",
                       description="Train a byte-level BPE tokenizer on a corpus or a file.")
    add_data_args(p)
    p.add_argument("--vocab-size", type=positive_int, default=6400, help="vocabulary size (default 6400)")
    p.add_argument("--out", default="runs/tokenizer", help="folder for tokenizer.json (default runs/tokenizer)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing tokenizer.json in --out")
    p.set_defaults(func=cmd_tokenizer)
