"""Command line: ``python -m course_lib pretrain | sft | generate | tokenizer`` (each with ``--help``).

    python -m course_lib pretrain --preset tiny                  # 500 steps, 2-4 min on a 2-core CPU
    python -m course_lib generate --ckpt runs/pretrain-tiny --prompt 今天
    torchrun --nproc_per_node=2 -m course_lib pretrain --preset tiny --batch-size 8

A training run writes ``<out>/step_<N>/`` checkpoints that carry the tokenizer, so ``generate``
needs nothing but ``--ckpt``. ``--resume`` alone continues from the newest checkpoint under
``--out``. Bad input (a missing file, an unknown corpus or preset, ``--lr 0``, ...) prints one line
starting with ``error:`` on stderr and exits with status 2; nothing already written is touched.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import List, Optional, Sequence

from .config import PRESET_ALIASES
from .config import PRESET_RECIPES as PRESET_DEFAULTS   # defaults per preset: one table, with the presets

EXIT_BAD_INPUT = 2


class CLIError(ValueError):
    """A problem with the command line itself (reported like any other bad input)."""


# ============================================================================ helpers
def _log(msg: str) -> None:
    from .distributed import info
    from .progress import stdout_gone

    if info().is_main:
        try:
            print(msg, flush=True)
        except BrokenPipeError:          # stdout's reader is gone: the run goes on, silently
            stdout_gone()


def _preset_name(name: str) -> str:
    from .config import ModelConfig

    name = PRESET_ALIASES.get(name, name)
    ModelConfig.preset(name)                      # raises ValueError listing the presets
    return name


def _nearest_preset(init: str) -> str:
    """The preset closest in size (dim^2 x layers, on a log scale) to the checkpoint ``init``."""
    import math

    from .checkpoint import read_config, resolve_checkpoint
    from .config import PRESETS, ModelConfig

    def size(c) -> float:
        return math.log(c.dim * c.dim * c.n_layers)
    c = read_config(resolve_checkpoint(init))
    return min(PRESETS, key=lambda name: abs(size(ModelConfig.preset(name)) - size(c)))


def _read_documents(args) -> tuple:
    """(documents, description) from --data (a text or MiniMind jsonl file) or --corpus."""
    from .corpus import DEFAULT_CORPUS, load_corpus, read_jsonl_pretrain, read_text_file

    if args.data and args.corpus is not None:
        raise CLIError(f"pass either --data {args.data} or --corpus {args.corpus}, not both")
    if args.data:
        path = Path(args.data)
        docs = read_jsonl_pretrain(path) if path.suffix.lower() in (".jsonl", ".json") else read_text_file(path)
        docs = [d for d in docs if d.strip()]
        if not docs:
            raise ValueError(f"{path}: no non-empty documents")
        what = str(path)
    else:
        args.corpus = args.corpus or DEFAULT_CORPUS
        docs = load_corpus(args.corpus)
        what = f"corpus {args.corpus!r}"
    if args.max_chars:
        from .corpus import _take_chars
        docs = _take_chars(docs, args.max_chars)
    return docs, what


def _shipped_tokenizer(vocab_size: int):
    """The shipped pretrained model's tokenizer (trained on the default corpus) if its size fits."""
    from .checkpoint import pretrained_path
    from .tokenizer import load_tokenizer

    try:
        tok = load_tokenizer(pretrained_path())
    except (FileNotFoundError, ValueError):
        return None
    return tok if tok.vocab_size == vocab_size else None


def _vocabulary(tok) -> list:
    return [tok.id_to_token(i) for i in range(tok.vocab_size)]


def _get_tokenizer(args, docs: Sequence[str], out: Path, vocab_size: int, resumed: Optional[Path] = None):
    """The resumed checkpoint's tokenizer (``--tokenizer`` must be the same); else --tokenizer if
    given; else the run's own tokenizer (when resuming); else the shipped one for
    the default corpus; else train one on (up to --tokenizer-chars of) the training documents.
    Under torchrun, rank 0 makes it and the other processes load rank 0's file."""
    from . import distributed as D
    from .checkpoint import TOKENIZER_FILES
    from .corpus import DEFAULT_CORPUS, _take_chars
    from .tokenizer import load_tokenizer, train_tokenizer

    if resumed is not None and any((resumed / f).is_file() for f in TOKENIZER_FILES):
        tok = load_tokenizer(resumed)                 # the checkpoint's tokenizer is the run's tokenizer
        if args.tokenizer and _vocabulary(load_tokenizer(args.tokenizer)) != _vocabulary(tok):
            raise CLIError(f"--tokenizer {args.tokenizer} is not the tokenizer of the checkpoint {resumed} being "
                           "resumed (its weights belong to that one); drop --tokenizer")
        return tok, f"the resumed checkpoint's, {resumed}"
    if args.tokenizer:
        return load_tokenizer(args.tokenizer), f"loaded from {args.tokenizer}"
    own = out / "tokenizer"
    if not D.info().is_main:
        D.barrier()                      # wait for rank 0 to write it
        return load_tokenizer(own), f"rank 0's {own}"
    try:
        if (own / "tokenizer.json").is_file():
            return load_tokenizer(own), f"reused {own}"
        if not args.data and args.corpus == DEFAULT_CORPUS and not args.max_chars:
            tok = _shipped_tokenizer(vocab_size)
            if tok is not None:
                _save_run_tokenizer(tok, own)
                return tok, "the shipped pretrained model's tokenizer (trained on the same corpus)"
        t = time.time()
        sample = _take_chars(list(docs), args.tokenizer_chars) if args.tokenizer_chars else list(docs)
        tok = train_tokenizer(sample, vocab_size=vocab_size)
        _save_run_tokenizer(tok, own)
        return tok, f"trained on {sum(map(len, sample)):,} characters in {time.time() - t:.0f} s, saved to {own}"
    finally:
        D.barrier()


def _save_run_tokenizer(tok, folder: Path) -> None:
    from .checkpoint import TOKENIZER_FILES, atomic_write_dir

    with atomic_write_dir(folder, replaceable=TOKENIZER_FILES, what="tokenizer folder") as tmp:
        tok.save(tmp)


def _check_out_dir(out: Path, resume: Optional[str]) -> None:
    """Before loading data or training: refuse a fresh run on top of an old one, a resume from an
    older step into a folder holding newer checkpoints (both would overwrite them), and an --out
    that is a file or not writable."""
    from .checkpoint import TRAIN_STATE_JSON, latest_checkpoint, read_json, resolve_checkpoint
    from .train_state import check_run_folder

    newest = latest_checkpoint(out)
    if newest is not None and resume is None:
        raise CLIError(f"--out {out} already holds checkpoints (newest {newest.name}); pass --resume to "
                       "continue that run or choose another --out (nothing was changed)")
    start = 0
    if resume == "latest":
        start = int(read_json(newest / TRAIN_STATE_JSON, "train state").get("step", 0))
    elif resume is not None:
        start = int(read_json(resolve_checkpoint(resume, need_train_state=True) / TRAIN_STATE_JSON,
                              "train state").get("step", 0))
    check_run_folder(out, start)


def _train_config(args, defaults: dict, out: Path):
    from .train import TrainConfig

    def pick(name):
        v = getattr(args, name)
        return defaults[name] if v is None else v

    # the preset's warmup, but never more than a tenth of a short run
    warmup = args.warmup_steps if args.warmup_steps is not None else min(defaults["warmup_steps"],
                                                                         pick("max_steps") // 10)
    if args.grad_clip < 0:
        raise CLIError(f"--grad-clip {args.grad_clip} must be > 0, or 0 for no clipping")
    return TrainConfig(
        batch_size=pick("batch_size"), grad_accum_steps=args.grad_accum, max_steps=pick("max_steps"),
        lr=pick("lr"), min_lr=args.min_lr, warmup_steps=warmup,
        schedule=args.schedule, optimizer=args.optimizer, weight_decay=args.weight_decay,
        grad_clip=None if args.grad_clip == 0 else args.grad_clip, dtype=args.dtype, compile=args.compile,
        eval_every=args.eval_every, eval_batches=args.eval_batches, save_every=pick("save_every"),
        out_dir=str(out), keep_last_checkpoints=args.keep_last, seed=args.seed, device=args.device,
        log_every=args.log_every, progress=False if args.no_progress else "auto")


def _resume_target(args, out: Path) -> Optional[str]:
    if args.resume is None:
        return None
    if args.resume == "latest":
        from .checkpoint import latest_checkpoint
        if latest_checkpoint(out) is None:
            raise FileNotFoundError(f"--resume: no step_<N> checkpoint under --out {out}")
        return "latest"
    return args.resume


def _check_seq_len(seq_len: int, mcfg) -> None:
    if seq_len < 1 or seq_len > mcfg.max_seq_len:
        raise CLIError(f"--seq-len {seq_len} must be in [1, {mcfg.max_seq_len}] (the model's max_seq_len)")


def _model_config_for(args, preset: str, vocab_size: int):
    """The preset's ModelConfig with the tokenizer's vocabulary (and --max-seq-len)."""
    from .config import ModelConfig

    mcfg = ModelConfig.preset(preset, vocab_size=vocab_size)
    if args.max_seq_len:
        mcfg = mcfg.replace(max_seq_len=args.max_seq_len)
    return mcfg


def _run_training(args, kind: str) -> int:
    """Shared body of ``pretrain`` and ``sft``."""
    from . import distributed as D
    from .config import ModelConfig
    from .model import Transformer
    from .train import Trainer

    D.setup(args.device)
    out = Path(args.out)
    resume = _resume_target(args, out)
    _check_out_dir(out, resume)
    if kind == "sft" and args.init and not any(a.split("=")[0] == "--preset" for a in args.argv):
        args.preset = _nearest_preset(args.init)     # the training defaults of the model being tuned
    preset = _preset_name(args.preset)
    defaults = dict(PRESET_DEFAULTS[preset])
    cfg = _train_config(args, defaults, out)
    seq_len = args.seq_len or defaults["seq_len"]
    if not (kind == "sft" and args.init):           # fail before loading any data
        _check_seq_len(seq_len, _model_config_for(args, preset, ModelConfig.preset(preset).vocab_size))

    base = None
    if kind == "sft" and args.init:
        from .checkpoint import resolve_checkpoint
        base = resolve_checkpoint(args.init)

    if kind == "pretrain":
        docs, what = _read_documents(args)
        # a preset's vocabulary below a byte-level BPE's 256 bytes + specials (nano: 256) gets 512
        vocab = args.vocab_size or max(ModelConfig.preset(preset).vocab_size, 512)
        resumed = None
        if resume is not None:
            from .checkpoint import resolve_checkpoint
            resumed = resolve_checkpoint(out if resume == "latest" else resume, need_train_state=True)
        tokenizer, how = _get_tokenizer(args, docs, out, vocab, resumed)
    else:
        from .corpus import read_jsonl_sft
        from .tokenizer import load_tokenizer
        if not args.data:
            raise CLIError("sft needs --data, a MiniMind SFT jsonl file ({\"conversations\": [...]} per line)")
        docs, what = read_jsonl_sft(args.data), args.data
        tok_path = args.tokenizer or (str(base) if base is not None else None)
        if tok_path is None:
            raise CLIError("sft needs --init (a pretrained checkpoint, which carries its tokenizer) or --tokenizer")
        tokenizer, how = load_tokenizer(tok_path), f"loaded from {tok_path}"

    if base is not None:
        from .checkpoint import load_checkpoint
        model = load_checkpoint(base)
        model.train()
        mcfg = model.config
    else:
        mcfg = _model_config_for(args, preset, tokenizer.vocab_size)
        import torch
        torch.manual_seed(args.seed)
        model = Transformer(mcfg)
    if tokenizer.vocab_size > mcfg.vocab_size:
        raise CLIError(f"the tokenizer has {tokenizer.vocab_size} tokens but the model only {mcfg.vocab_size}")
    _check_seq_len(seq_len, mcfg)

    train_set, val_set, n_train, n_val = _datasets(kind, docs, tokenizer, seq_len, args.val_fraction, args.seed)
    _log(f"{kind}: {what}, {n_train} train / {n_val} val documents -> {len(train_set)} "
         f"training sequences of <= {seq_len} tokens")
    _log(f"tokenizer: {how}")
    _log(f"model: preset {preset if base is None else 'from ' + str(base)}, {model.num_parameters():,} parameters; "
         f"global batch {cfg.batch_size} x {cfg.grad_accum_steps} x {D.info().world_size} processes, "
         f"{cfg.max_steps} steps, lr {cfg.lr:g} ({cfg.schedule}), out {out}")

    _set_threads(args)
    meta = {"kind": kind, "preset": preset, "data": what, "seq_len": seq_len,
            "command": "python -m course_lib " + " ".join(map(str, args.argv))}
    trainer = Trainer(model, train_set, cfg, eval_data=val_set, tokenizer=tokenizer, metadata=meta)
    t0 = time.time()
    history = trainer.fit(resume=resume)
    if D.info().is_main:
        final = history.final_loss
        msg = (f"done: step {trainer.step}, train loss {final:.4f}" if final is not None else "done")
        if history.eval_loss:
            msg += f", val loss {history.eval_loss[-1]:.4f}"
        msg += f" in {time.time() - t0:.0f} s; checkpoint {history.checkpoint}"
        _log(msg)
        if kind == "pretrain" and not history.interrupted:
            _log(f"try: python -m course_lib generate --ckpt {out} --prompt 今天")
    D.cleanup()
    return (143 if history.signal == "SIGTERM" else 130) if history.interrupted else 0


def _datasets(kind, docs, tokenizer, seq_len: int, val_fraction: float, seed: int):
    """``(train, val or None, train documents, val documents)``; pretraining goes through
    ``data.packed_splits``, the library's one corpus -> split -> pack pipeline."""
    from .corpus import train_val_split
    from .data import SFTDataset, packed_splits

    if kind == "pretrain":
        _, train, val = packed_splits(docs, seq_len, tokenizer, val_fraction=val_fraction, seed=seed,
                                      optional_val=True, drop_last=False)
        n_train = len(train.offsets) - 1                   # documents packed into the training split
        return train, val, n_train, len(docs) - n_train
    train_docs, val_docs = (train_val_split(docs, val_fraction=val_fraction, seed=seed)
                            if val_fraction > 0 and len(docs) >= 2 else (list(docs), []))
    train = SFTDataset(train_docs, tokenizer, max_len=seq_len, overflow="truncate")
    val = SFTDataset(val_docs, tokenizer, max_len=seq_len, overflow="truncate") if val_docs else None
    return train, val, len(train_docs), len(val_docs)


# ============================================================================ subcommands
def cmd_pretrain(args) -> int:
    return _run_training(args, "pretrain")


def cmd_sft(args) -> int:
    return _run_training(args, "sft")


def cmd_generate(args) -> int:
    import torch

    from .checkpoint import load_checkpoint
    from .device import pick_device
    from .sample import generate
    from .tokenizer import load_tokenizer
    from .checkpoint import resolve_checkpoint

    from .checkpoint import TOKENIZER_FILES
    folder = resolve_checkpoint(args.ckpt)
    if not args.tokenizer and not any((folder / f).is_file() for f in TOKENIZER_FILES):
        raise FileNotFoundError(f"{folder} has no tokenizer (tokenizer.json or simple_tokenizer.json); pass --tokenizer")
    tokenizer = load_tokenizer(args.tokenizer or folder)
    device = pick_device(None if args.device == "auto" else args.device)
    model = load_checkpoint(folder, device=device)
    if tokenizer.vocab_size != model.config.vocab_size:
        raise CLIError(f"the tokenizer ({args.tokenizer or folder}) has {tokenizer.vocab_size} tokens but the model "
                       f"{model.config.vocab_size}: they do not belong together; use the checkpoint's own tokenizer")
    _set_threads(args, to_stderr=True)
    if args.chat:
        text = tokenizer.apply_chat_template([{"role": "user", "content": args.prompt}], add_generation_prompt=True)
        prompt_ids = tokenizer.encode(text)
    else:
        prompt_ids = tokenizer.encode(args.prompt, add_special_tokens=True)
    if len(prompt_ids) == 0:
        raise CLIError("--prompt is empty")
    g = torch.Generator(device=device).manual_seed(args.seed)
    for i in range(args.num_samples):
        out = generate(model, [prompt_ids], max_new_tokens=args.max_new_tokens, temperature=args.temperature,
                       top_k=args.top_k, top_p=args.top_p, repetition_penalty=args.repetition_penalty,
                       eos_token_id=tokenizer.eos_id, generator=g, truncate=True)
        new = out[0, len(prompt_ids):].tolist()
        text = tokenizer.decode(new, skip_special_tokens=True)
        if args.num_samples > 1:
            print(f"--- sample {i + 1}")
        print(text if args.chat else args.prompt + text, flush=True)
    return 0


def cmd_tokenizer(args) -> int:
    from .tokenizer import train_tokenizer

    docs, what = _read_documents(args)
    out = Path(args.out)
    if (out / "tokenizer.json").is_file() and not args.overwrite:
        raise CLIError(f"{out / 'tokenizer.json'} exists; pass --overwrite or choose another --out")
    _check_writable(out)                       # before training: a bad --out costs nothing
    t = time.time()
    tok = train_tokenizer(docs, vocab_size=args.vocab_size)
    _add_tokenizer_files(tok, out)
    sample = docs[0][:40]
    print(f"trained a {tok.vocab_size}-token BPE tokenizer on {what} ({sum(map(len, docs)):,} characters) "
          f"in {time.time() - t:.1f} s -> {out / 'tokenizer.json'}")
    print(f"example: {sample!r} -> {len(tok.encode(sample))} tokens: {' | '.join(tok.tokens(sample))}")
    return 0


def _check_writable(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise CLIError(f"--out {out} is a file; pass a folder")
    out.mkdir(parents=True, exist_ok=True)
    if not os.access(out, os.W_OK):
        raise PermissionError(f"--out {out} is not writable; choose another folder")


def _add_tokenizer_files(tok, out: Path) -> None:
    """Write the tokenizer's files into ``out``, each replaced atomically; every other file or
    folder in ``out`` (a run's step_<N> checkpoints, ...) stays as it was."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix=".tokenizer.tmp-", dir=out) as tmp:
        tok.save(tmp)
        for f in sorted(Path(tmp).iterdir()):
            os.replace(f, out / f.name)


# ============================================================================ parser
def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"{v} must be >= 1")
    return v


def _add_data_args(p: argparse.ArgumentParser) -> None:
    from .corpus import CORPORA, DEFAULT_CORPUS

    p.add_argument("--corpus", default=None,
                   help=f"named corpus: {', '.join(sorted(CORPORA))} (default {DEFAULT_CORPUS})")
    p.add_argument("--data", default=None, help="your own data: a UTF-8 text file (paragraphs separated by blank "
                                                "lines) or a MiniMind jsonl file ({\"text\": ...} per line)")
    p.add_argument("--max-chars", type=_positive_int, default=None, help="use only the first N characters")


def _add_training_args(p: argparse.ArgumentParser, kind: str) -> None:
    p.add_argument("--preset", default="tiny", help="model size: tiny (default), nano, minimind_26m (alias 26m)")
    p.add_argument("--tokenizer", default=None, help="a tokenizer folder or tokenizer.json to use instead of "
                                                     "training one")
    p.add_argument("--vocab-size", type=_positive_int, default=None, help="vocabulary of a newly trained tokenizer "
                                                                          "(default: the preset's, 6400)")
    p.add_argument("--seq-len", type=_positive_int, default=None, help="tokens per training sequence "
                                                                       "(default: 128 for tiny)")
    p.add_argument("--max-seq-len", type=_positive_int, default=None, help="override the model's max_seq_len")
    p.add_argument("--max-steps", type=_positive_int, default=None, help="optimizer steps (default: 500 for tiny)")
    p.add_argument("--batch-size", type=_positive_int, default=None,
                   help="sequences per micro-batch per process (default: 16 for tiny)")
    p.add_argument("--grad-accum", type=int, default=1, help="micro-batches per optimizer step (default 1)")
    p.add_argument("--lr", type=float, default=None, help="peak learning rate (default: 2e-3 for tiny)")
    p.add_argument("--min-lr", type=float, default=None, help="final learning rate (default: lr / 10)")
    p.add_argument("--warmup-steps", type=int, default=None, help="linear warmup steps")
    p.add_argument("--schedule", default="cosine", help="constant, linear, exp, cosine (default), wsd, reversed")
    p.add_argument("--optimizer", default="adamw", help="adamw (default) or sgd")
    p.add_argument("--weight-decay", type=float, default=0.1)
    p.add_argument("--grad-clip", type=float, default=1.0, help="max gradient norm (0: no clipping)")
    p.add_argument("--val-fraction", type=float, default=0.02, help="documents held out for the eval loss")
    p.add_argument("--eval-every", type=int, default=0, help="eval every N steps (0: only at the end)")
    p.add_argument("--eval-batches", type=_positive_int, default=20)
    p.add_argument("--save-every", type=int, default=None, help="checkpoint every N steps (default: 250 for tiny)")
    p.add_argument("--keep-last", type=_positive_int, default=None, help="keep only the newest N checkpoints")
    p.add_argument("--out", default=None, help=f"run folder for step_<N>/ checkpoints (default: runs/{kind}-<preset>)")
    p.add_argument("--resume", nargs="?", const="latest", default=None, metavar="PATH",
                   help="continue a run: alone, the newest checkpoint under --out; or a step_<N> folder")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:1, mps")
    p.add_argument("--dtype", default="auto", help="auto (default: bf16 on capable GPUs), float32, bfloat16, float16")
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    p.add_argument("--threads", type=_positive_int, default=None,
                   help="CPU threads for torch (default: torch's choice; 1 is often faster on a busy machine)")
    p.add_argument("--log-every", type=int, default=50, help="a log line every N steps (0: none)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--tokenizer-chars", type=_positive_int, default=1_500_000,
                   help="characters used to train a new tokenizer (default 1.5 M, about 15 s)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m course_lib", description="Train and sample course_lib models.",
                                     epilog="Run 'python -m course_lib <command> --help' for a command's options.")
    sub = parser.add_subparsers(dest="command", metavar="{pretrain,sft,generate,tokenizer}")
    sub.required = True

    p = sub.add_parser("pretrain", help="pretrain a model on a corpus or a text/jsonl file",
                       description="Pretrain a model (next-token prediction on packed text). "
                                   "Checkpoints go to <out>/step_<N>/ with the tokenizer.")
    _add_data_args(p)
    _add_training_args(p, "pretrain")
    p.set_defaults(func=cmd_pretrain)

    p = sub.add_parser("sft", help="supervised fine-tuning on chat data (MiniMind SFT jsonl)",
                       description="Fine-tune on conversations; the loss covers the assistant's tokens only.")
    p.add_argument("--init", default=None, help="start from this checkpoint (a pretrain --out folder or step folder)")
    p.add_argument("--data", default=None, help="SFT jsonl: {\"conversations\": [{\"role\", \"content\"}, ...]} a line")
    p.add_argument("--max-chars", type=_positive_int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--corpus", default=None, help=argparse.SUPPRESS)
    _add_training_args(p, "sft")
    p.set_defaults(func=cmd_sft)

    p = sub.add_parser("generate", help="continue a prompt with a trained checkpoint",
                       description="Sample a continuation of --prompt from a checkpoint.")
    p.add_argument("--ckpt", required=True, help="a run folder (its newest step_<N>) or a checkpoint folder")
    p.add_argument("--prompt", default="今天", help="the text to continue (default 今天)")
    p.add_argument("--max-new-tokens", type=int, default=100)
    p.add_argument("--temperature", type=float, default=0.8, help="0 = greedy (default 0.8)")
    p.add_argument("--top-k", type=int, default=None)
    p.add_argument("--top-p", type=float, default=0.9)
    p.add_argument("--repetition-penalty", type=float, default=1.1)
    p.add_argument("--num-samples", type=_positive_int, default=1)
    p.add_argument("--chat", action="store_true", help="wrap the prompt in the chat template (SFT models)")
    p.add_argument("--tokenizer", default=None, help="a tokenizer other than the checkpoint's own")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=_positive_int, default=None, help="CPU threads for torch")
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("tokenizer", help="train a byte-level BPE tokenizer and save tokenizer.json",
                       description="Train a byte-level BPE tokenizer on a corpus or a file.")
    _add_data_args(p)
    p.add_argument("--vocab-size", type=_positive_int, default=6400)
    p.add_argument("--out", default="runs/tokenizer", help="folder for tokenizer.json (default runs/tokenizer)")
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=cmd_tokenizer)
    return parser


def _set_threads(args, to_stderr: bool = False) -> None:
    """--threads, or the library's thread policy (``device.set_threads``): on a busy CPU machine as
    many torch threads as there are idle cores (at least 1); say so when it lowers the count."""
    if not hasattr(args, "threads"):
        return
    import torch

    from .device import set_threads

    if getattr(args, "device", "auto") not in ("auto", "cpu") and not args.threads:
        return
    before = torch.get_num_threads()
    used = set_threads(args.threads or None)
    if not args.threads and used < before:
        msg = (f"busy machine ({os.cpu_count()} CPUs): using {used} torch thread(s); pass --threads N to choose")
        if to_stderr:
            print(msg, file=sys.stderr, flush=True)
        else:
            _log(msg)


def _one_line(err: BaseException) -> str:
    return " ".join(line.strip() for line in str(err).splitlines() if line.strip()) or type(err).__name__


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point; returns the exit status (0 ok, 1 training diverged, 2 bad input, 130 interrupted)."""
    from .train import TrainingDiverged

    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    if getattr(args, "out", "x") is None:
        args.out = f"runs/{args.command}-{PRESET_ALIASES.get(args.preset, args.preset)}"
    try:
        return args.func(args) or 0
    except TrainingDiverged as e:
        print(f"error: {_one_line(e)}", file=sys.stderr)
        return 1
    except (ValueError, FileNotFoundError, FileExistsError, NotADirectoryError, IsADirectoryError,
            PermissionError, ImportError) as e:
        print(f"error: {_one_line(e)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:                  # stdout's reader went away after the work was done
        from .progress import stdout_gone
        stdout_gone()
        return 0


__all__ = ["main", "build_parser", "PRESET_DEFAULTS"]
