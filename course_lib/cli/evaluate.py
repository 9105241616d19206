"""``eval``: loss, perplexity and bits per character of a checkpoint on held-out text, then a few
fixed prompts continued greedily, so that two runs can be compared number by number and line by line.

    python -m course_lib eval --ckpt runs/tiny                     # the documents the run held out
    python -m course_lib eval --ckpt runs/tiny --corpus kjv --max-chars 50000
    python -m course_lib eval --ckpt runs/tiny --data heldout.txt --json result.json

What the numbers mean (``losses.bits_per_char`` computes them): the documents become one token
stream ``[BOS] doc [BOS] doc ...`` in which only text tokens are targets (a BOS separator is an
input, never predicted). The stream is cut into windows of ``seq_len`` predictions that share one
token with the next window, so every text token is predicted exactly once, from the context inside
its own window. A token near the start of a window sees little context, so this loss is slightly
above a sliding-window evaluation's (which gives every token a long context, at many times the cost).

    loss               mean NLL of the predicted text tokens, nats per token
    perplexity         exp(loss)
    bits per char      total NLL / ln 2 / characters of the text (comparable across tokenizers)
"""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path

from .common import CLIError, add_checkpoint_args, open_checkpoint, positive_int, read_documents, set_threads
from .generate import SAMPLE_PROMPTS, greedy_samples, text_language

# a corpus the checkpoint was not trained on: the split a default ``pretrain`` run would hold out
OTHER_VAL_FRACTION, OTHER_SEED = 0.02, 0
MAX_NEW_TOKENS = 40

DATA_HELP = """which text is evaluated:
  --data FILE    all of FILE (a UTF-8 text file or a MiniMind pretrain jsonl): you say it is held out
  --corpus NAME  the corpus' held-out documents: for the corpus the checkpoint was trained on,
                 exactly the documents that run held out (its metadata records val_fraction and
                 seed); for another corpus, the 2% a default pretrain run would hold out (seed 0)
  neither        the held-out documents of the checkpoint's own training corpus
  --max-chars N  evaluates only the first N characters of that text (a quick run)"""


def _metadata(folder: Path) -> dict:
    from ..checkpoint import METADATA_FILE, load_checkpoint_metadata

    return load_checkpoint_metadata(folder) if (folder / METADATA_FILE).is_file() else {}


def _held_out(corpus: str, meta: dict) -> tuple:
    """(documents, description) of ``corpus``'s held-out split: the training run's own split when
    the checkpoint was pretrained on ``corpus``, else the default run's split."""
    from ..corpus import _take_chars, load_corpus, train_val_split

    docs = load_corpus(corpus)
    if meta.get("corpus") != corpus or meta.get("kind", "pretrain") != "pretrain":
        _, val = train_val_split(docs, val_fraction=OTHER_VAL_FRACTION, seed=OTHER_SEED)
        return val, (f"corpus {corpus!r}: {len(val)} held-out documents (val_fraction {OTHER_VAL_FRACTION:g}, "
                     f"seed {OTHER_SEED}); the checkpoint was not trained on this corpus")
    if meta.get("max_chars"):
        docs = _take_chars(docs, meta["max_chars"])      # the run split only the text it read
    fraction, seed = meta.get("val_fraction"), meta.get("seed", 0)
    if fraction is None and meta.get("val_documents") and \
            meta.get("train_documents", 0) + meta["val_documents"] == len(docs):
        fraction = meta["val_documents"] / len(docs)     # older metadata records the counts: same split
    if fraction is None:
        raise CLIError(f"the checkpoint's metadata does not record how its training run split corpus {corpus!r} "
                       "(val_fraction); pass --data FILE with text it did not see")
    if fraction == 0 or len(docs) < 2:
        raise CLIError(f"the training run held out no documents of corpus {corpus!r} (val_fraction {fraction:g}); "
                       "pass --data FILE with text it did not see")
    _, val = train_val_split(docs, val_fraction=fraction, seed=seed)
    return val, (f"corpus {corpus!r}: the {len(val)} documents the training run held out "
                 f"(val_fraction {fraction:.3g}, seed {seed})")


def _documents(args, meta: dict) -> tuple:
    """(documents, description, language or None) chosen by --data / --corpus / the metadata."""
    from ..corpus import CORPORA, _take_chars

    if args.data:
        docs, what = read_documents(args)
        trained = meta.get("data")
        if trained and Path(trained).resolve() == Path(args.data).resolve():
            what += " (the checkpoint was trained on this file: its training text is included)"
        return docs, f"{what}, all of it", None
    corpus = args.corpus or meta.get("corpus")
    if corpus is None:
        trained = f" (it was trained on {meta['data']})" if meta.get("data") else ""
        raise CLIError(f"the checkpoint's metadata names no training corpus{trained}; pass --data FILE "
                       "(held-out text) or --corpus NAME")
    docs, what = _held_out(corpus, meta)
    if args.max_chars:
        docs = _take_chars(docs, args.max_chars)
        what += f", first {args.max_chars:,} characters"
    return docs, what, CORPORA[corpus].language


def format_report(r: dict) -> str:
    """The readable table of an eval result (the dict that ``--json`` writes)."""
    step = f" (step {r['step']})" if r.get("step") is not None else ""
    lines = [f"checkpoint        {r['checkpoint']}{step}",
             f"text              {r['text']}",
             f"windows           {r['seq_len']} predictions each, one token shared with the next; "
             "BOS separators are inputs, not targets",
             "",
             f"loss              {r['loss']:.4f} nats per token",
             f"perplexity        {r['perplexity']:.2f}",
             f"bits per char     {r['bits_per_char']:.4f}",
             f"tokens            {r['tokens']:,} predicted",
             f"characters        {r['characters']:,} in {r['documents']:,} documents",
             f"tokens per char   {r['tokens_per_char']:.4f}",
             "",
             f"greedy samples (temperature 0, up to {r['max_new_tokens']} new tokens):"]
    for s in r["samples"]:
        lines.append(f"  {s['prompt']} | {s['continuation']}".replace("\n", "\\n"))
    return "\n".join(lines)


def cmd_eval(args) -> int:
    from ..checkpoint import atomic_write_json
    from ..losses import bits_per_char

    if args.data and args.corpus:
        raise CLIError(f"pass either --data {args.data} or --corpus {args.corpus}, not both")
    if args.json and args.json != "-" and Path(args.json).exists() and not args.overwrite:
        raise CLIError(f"--json {args.json} exists; pass --overwrite or choose another file")
    model, tokenizer, folder = open_checkpoint(args.ckpt, args.tokenizer, args.device)
    set_threads(args, to_stderr=True)
    meta = _metadata(folder)
    docs, what, language = _documents(args, meta)
    seq_len = args.seq_len or meta.get("seq_len") or model.config.max_seq_len
    if seq_len > model.config.max_seq_len:
        raise CLIError(f"--seq-len {seq_len} is above the model's max_seq_len {model.config.max_seq_len}")
    bpc = bits_per_char(model, tokenizer, docs, seq_len=seq_len, batch_size=args.batch_size, progress=True)
    prompts = args.prompt or SAMPLE_PROMPTS[language or text_language(docs)]
    result = {"checkpoint": str(folder), "step": meta.get("step"), "text": what, "documents": len(docs),
              "seq_len": seq_len, "loss": bpc.nats_per_token, "perplexity": math.exp(bpc.nats_per_token),
              "bits_per_char": bpc.bits_per_char, "tokens": bpc.n_tokens, "characters": bpc.n_chars,
              "tokens_per_char": bpc.tokens_per_char, "max_new_tokens": args.max_new_tokens,
              "samples": [{"prompt": p, "continuation": c}
                          for p, c in greedy_samples(model, tokenizer, prompts, args.max_new_tokens)]}
    print(format_report(result), file=sys.stderr if args.json == "-" else sys.stdout, flush=True)
    if args.json == "-":
        print(json.dumps(result, ensure_ascii=False, indent=2))
    elif args.json:
        atomic_write_json(args.json, result)
    return 0


def add_parsers(sub) -> None:
    from .common import add_data_args

    p = sub.add_parser("eval", help="loss, perplexity, bits per character and greedy samples on held-out text",
                       description="Evaluate a checkpoint on held-out text: loss (nats per token), perplexity, bits per\n"
                                   "character, then fixed prompts continued greedily (temperature 0).\n\n" + DATA_HELP +
                                   "\n\nOnly text tokens are targets (BOS separators are inputs). Windows share one token, so\n"
                                   "each token is predicted once, from the context inside its window: the loss is slightly\n"
                                   "above a sliding-window evaluation's.")
    add_checkpoint_args(p)
    add_data_args(p)
    p._option_string_actions["--corpus"].help = "a named corpus: its held-out documents (default: the checkpoint's own)"
    p._option_string_actions["--data"].help = "a UTF-8 text or MiniMind jsonl file of held-out text, evaluated whole"
    p.add_argument("--seq-len", type=positive_int, default=None,
                   help="predictions per window (default: the training run's seq_len, else the model's max_seq_len)")
    p.add_argument("--batch-size", type=positive_int, default=16, help="windows per forward pass")
    p.add_argument("--prompt", action="append", default=None,
                   help="a sample prompt; repeat for several (default: 今天, 中国, 我们 for Chinese text; "
                        "'The ', 'In the beginning', 'He said' for English)")
    p.add_argument("--max-new-tokens", type=positive_int, default=MAX_NEW_TOKENS, help="greedy tokens per prompt")
    p.add_argument("--json", default=None, metavar="FILE",
                   help="also write the numbers as JSON to FILE ('-': JSON on stdout, the table on stderr)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --json FILE")
    p.set_defaults(func=cmd_eval)
