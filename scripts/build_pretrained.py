"""Rebuild the small pretrained checkpoint shipped in ``course_lib/assets/pretrained/``.

    python scripts/build_pretrained.py            # (or: make pretrained) about 10 minutes on 2 CPU cores

What it does, deterministically from ``--seed``:
  1. loads the default corpus (People's Daily, ~1.86 M characters) and holds out 2% of the articles;
  2. trains a 6400-token byte-level BPE tokenizer on the training articles;
  3. packs the articles into blocks of 256 tokens and trains ``ModelConfig.tiny()`` with the course
     Trainer (AdamW, cosine schedule with warmup, clipping at 1.0);
  4. writes model.safetensors (float32), config.json, tokenizer.json and metadata.json (the command,
     the steps, tokens, corpus, final train and validation loss, wall time) atomically.

The numbers in metadata.json are what the notebooks quote, so they are measured here, never typed.
"""
from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

from course_lib import __version__
from course_lib.checkpoint import (DEFAULT_PRETRAINED, FORMAT_VERSION, PRETRAINED_DIR, atomic_write_dir,
                                   write_model_files)
from course_lib.config import PRETRAINED_RECIPE, ModelConfig
from course_lib.corpus import DEFAULT_CORPUS
from course_lib.data import packed_splits
from course_lib.device import set_threads
from course_lib.model import Transformer
from course_lib.tokenizer import train_tokenizer
from course_lib.train import TrainConfig, Trainer


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--name", default=DEFAULT_PRETRAINED, help="folder name under course_lib/assets/pretrained/")
    p.add_argument("--corpus", default=DEFAULT_CORPUS)
    r = PRETRAINED_RECIPE                              # the recipe lives with the presets (config.py)
    p.add_argument("--vocab-size", type=int, default=r["vocab_size"])
    p.add_argument("--seq-len", type=int, default=r["seq_len"])
    p.add_argument("--batch-size", type=int, default=r["batch_size"])
    p.add_argument("--max-steps", type=int, default=r["max_steps"])
    p.add_argument("--lr", type=float, default=r["lr"])
    p.add_argument("--min-lr", type=float, default=r["min_lr"])
    p.add_argument("--warmup-steps", type=int, default=r["warmup_steps"])
    p.add_argument("--eval-every", type=int, default=r["eval_every"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (default: torch's choice; 1 is faster on a busy machine)")
    p.add_argument("--out", default=None, help="target folder (default: the shipped asset folder)")
    args = p.parse_args(argv)
    if args.threads:
        set_threads(args.threads)

    t_start = time.time()
    torch.manual_seed(args.seed)
    t = time.time()
    tokenizer, train_set, val_set = packed_splits(       # the BPE is fitted on the training articles only
        args.corpus, args.seq_len, lambda train_docs: train_tokenizer(train_docs, vocab_size=args.vocab_size),
        val_fraction=PRETRAINED_RECIPE["val_fraction"], seed=args.seed)
    n_train, n_val = len(train_set.offsets) - 1, len(val_set.offsets) - 1
    print(f"corpus {args.corpus}: {n_train} train / {n_val} val articles; tokenizer: vocab {tokenizer.vocab_size}; "
          f"{time.time() - t:.1f} s", flush=True)
    print(f"data: {train_set}; val {len(val_set)} blocks", flush=True)

    config = ModelConfig.preset(PRETRAINED_RECIPE["preset"], vocab_size=tokenizer.vocab_size)
    torch.manual_seed(args.seed)
    model = Transformer(config)
    print(f"model: tiny preset, {model.num_parameters():,} parameters", flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        tc = TrainConfig(batch_size=args.batch_size, max_steps=args.max_steps, lr=args.lr, min_lr=args.min_lr,
                         warmup_steps=args.warmup_steps, schedule="cosine", weight_decay=0.1, grad_clip=1.0,
                         eval_every=args.eval_every, eval_batches=len(val_set) // args.batch_size or 1,
                         seed=args.seed, device="cpu", dtype="float32", log_every=50, out_dir=None)
        history = Trainer(model, train_set, tc, eval_data=val_set).fit()
    train_seconds = history.time[-1] if history.time else 0.0
    # the final train loss: mean over the last 50 steps (one step is noisy)
    tail = history.loss[-50:]
    final_train = sum(tail) / len(tail)
    metadata = {
        "format_version": FORMAT_VERSION, "course_lib_version": __version__, "num_parameters": model.num_parameters(),
        "name": args.name,
        "command": "python scripts/build_pretrained.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "preset": PRETRAINED_RECIPE["preset"], "corpus": args.corpus, "seed": args.seed,
        "train_documents": n_train, "val_documents": n_val,
        "train_tokens_in_corpus": int(train_set.tokens.numel()), "seq_len": args.seq_len,
        "steps": history.step[-1], "batch_size": args.batch_size, "tokens_seen": history.tokens[-1],
        "epochs": round(history.tokens[-1] / max(1, len(train_set) * args.seq_len), 2),
        "final_train_loss": round(final_train, 4), "final_val_loss": round(history.eval_loss[-1], 4),
        "val_perplexity": round(math.exp(history.eval_loss[-1]), 2),
        "eval_curve": [[s, round(v, 4)] for s, v in zip(history.eval_step, history.eval_loss)],
        "train_config": tc.to_dict(), "train_seconds": round(train_seconds, 1),
        "total_seconds": round(time.time() - t_start, 1), "torch": torch.__version__,
        "machine": f"{platform.machine()} {platform.system()}, {torch.get_num_threads()} threads",
        "weights_dtype": "float32",
    }
    out = Path(args.out) if args.out else PRETRAINED_DIR / args.name
    model.eval()
    with atomic_write_dir(out) as folder:       # all files appear together, or none do
        write_model_files(model, folder, tokenizer)     # model.safetensors + config.json
        tokenizer.save(folder)                  # tokenizer.json + tokenizer_config.json
        (folder / "metadata.json").write_text(json.dumps(metadata, indent=2, ensure_ascii=False) + "\n",
                                              encoding="utf-8")
    size = sum(f.stat().st_size for f in out.iterdir()) / 1e6
    print(f"wrote {out} ({size:.1f} MB): train loss {final_train:.3f}, val loss {history.eval_loss[-1]:.3f}, "
          f"{train_seconds / 60:.1f} min of training", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
