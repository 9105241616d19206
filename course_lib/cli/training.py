"""``pretrain`` and ``sft``: one training body, two data pipelines.

    python -m course_lib pretrain --preset tiny --out runs/tiny          # 500 steps, 2-4 min on a 2-core CPU
    python -m course_lib pretrain --preset tiny --set pos=alibi --set qk_norm=true
    python -m course_lib sft --init runs/tiny --data sft.jsonl --out runs/tiny-sft
    torchrun --nproc_per_node=2 -m course_lib pretrain --preset tiny --batch-size 8

A run writes ``<out>/step_<N>/`` checkpoints that carry the tokenizer, ``<out>/metrics.jsonl`` (one
line per log step) and ``<out>/report.md`` (command, environment, losses, samples). ``--resume``
alone continues from the newest checkpoint under ``--out``.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Optional, Sequence

from ..config import PRESET_ALIASES, PRESETS
from ..config import PRESET_RECIPES as PRESET_DEFAULTS   # defaults per preset: one table, with the presets
from ..schedule import SCHEDULES
from .common import CLIError, log, positive_int, read_documents, set_threads
from .model_options import RUNTIME_FIELDS, add_model_args, switches_help

# train.OPTIMIZERS and train.DTYPES, spelled out because train imports torch (tests keep them equal)
OPTIMIZERS = ("adamw", "sgd")
DTYPES = ("auto", "float32", "fp32", "bfloat16", "bf16", "float16", "fp16")


def _preset_name(name: str) -> str:
    from ..config import ModelConfig

    name = PRESET_ALIASES.get(name, name)
    ModelConfig.preset(name)                      # raises ValueError listing the presets
    return name


def _nearest_preset(init: str) -> str:
    """The preset closest in size (dim^2 x layers, on a log scale) to the checkpoint ``init``."""
    import math

    from ..checkpoint import read_config, resolve_checkpoint
    from ..config import PRESETS, ModelConfig

    def size(c) -> float:
        return math.log(c.dim * c.dim * c.n_layers)
    c = read_config(resolve_checkpoint(init))
    return min(PRESETS, key=lambda name: abs(size(ModelConfig.preset(name)) - size(c)))


def _shipped_tokenizer(vocab_size: int):
    """The shipped pretrained model's tokenizer (trained on the default corpus) if its size fits."""
    from ..checkpoint import pretrained_path
    from ..tokenizer import load_tokenizer

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
    from .. import distributed as D
    from ..checkpoint import TOKENIZER_FILES
    from ..corpus import DEFAULT_CORPUS, _take_chars
    from ..tokenizer import load_tokenizer, train_tokenizer

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
    from ..checkpoint import TOKENIZER_FILES, atomic_write_dir

    with atomic_write_dir(folder, replaceable=TOKENIZER_FILES, what="tokenizer folder") as tmp:
        tok.save(tmp)


def _check_out_dir(out: Path, resume: Optional[str]) -> None:
    """Before loading data or training: refuse a fresh run on top of an old one, a resume from an
    older step into a folder holding newer checkpoints (both would overwrite them), and an --out
    that is a file or not writable."""
    from ..checkpoint import TRAIN_STATE_JSON, latest_checkpoint, read_json, resolve_checkpoint
    from ..train_state import check_run_folder

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
    from ..train import TrainConfig

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
        from ..checkpoint import latest_checkpoint
        if latest_checkpoint(out) is None:
            raise FileNotFoundError(f"--resume: no step_<N> checkpoint under --out {out}")
        return "latest"
    return args.resume


def _check_seq_len(seq_len: int, mcfg) -> None:
    if seq_len < 1 or seq_len > mcfg.max_seq_len:
        raise CLIError(f"--seq-len {seq_len} must be in [1, {mcfg.max_seq_len}] (the model's max_seq_len)")


def _model_config_for(args, preset: str, vocab_size: int):
    """The preset's ModelConfig with the tokenizer's vocabulary, --max-seq-len and the run file's
    and --set's changes (a contradiction raises ValueError naming the fields)."""
    from ..config import ModelConfig
    from .model_options import model_changes

    mcfg = ModelConfig.preset(preset, vocab_size=vocab_size)
    if args.max_seq_len:
        mcfg = mcfg.replace(max_seq_len=args.max_seq_len)
    changes = model_changes(args)
    return mcfg.replace(**changes) if changes else mcfg


def _check_init_changes(args) -> None:
    """``sft --init``: the weights fix the architecture; only fields that leave them alone may change."""
    from .model_options import model_changes

    fixed = sorted(set(model_changes(args)) - set(RUNTIME_FIELDS))
    if fixed:
        raise CLIError(f"--set/--config {', '.join(fixed)}: the model comes from --init {args.init} and its weights "
                       f"fix the architecture; only {', '.join(RUNTIME_FIELDS)} can change when fine-tuning")


def _run_training(args, kind: str) -> int:
    """Shared body of ``pretrain`` and ``sft``."""
    from .. import distributed as D
    from ..config import ModelConfig
    from ..model import Transformer
    from ..train import Trainer

    D.setup(args.device)
    if args.out is None:
        args.out = f"runs/{kind}-{PRESET_ALIASES.get(args.preset, args.preset)}"
    out = Path(args.out)
    resume = _resume_target(args, out)
    if kind == "sft" and args.init and not any(a.split("=")[0] == "--preset" for a in args.argv):
        args.preset = _nearest_preset(args.init)     # the training defaults of the model being tuned
    preset = _preset_name(args.preset)
    defaults = dict(PRESET_DEFAULTS[preset])
    cfg = _train_config(args, defaults, out)
    seq_len = args.seq_len or defaults["seq_len"]
    if kind == "sft" and args.init:
        _check_init_changes(args)
    else:                                            # fail before loading any data
        _check_seq_len(seq_len, _model_config_for(args, preset, ModelConfig.preset(preset).vocab_size))
    _check_out_dir(out, resume)                      # bad options above have written nothing

    base = None
    if kind == "sft" and args.init:
        from ..checkpoint import resolve_checkpoint
        base = resolve_checkpoint(args.init)

    if kind == "pretrain":
        docs, what = read_documents(args)
        # a preset's vocabulary below a byte-level BPE's 256 bytes + specials (nano: 256) gets 512
        vocab = args.vocab_size or max(ModelConfig.preset(preset).vocab_size, 512)
        resumed = None
        if resume is not None:
            from ..checkpoint import resolve_checkpoint
            resumed = resolve_checkpoint(out if resume == "latest" else resume, need_train_state=True)
        tokenizer, how = _get_tokenizer(args, docs, out, vocab, resumed)
    else:
        from ..corpus import read_jsonl_sft
        from ..tokenizer import load_tokenizer
        if not args.data:
            raise CLIError("sft needs --data, a MiniMind SFT jsonl file ({\"conversations\": [...]} per line)")
        docs, what = read_jsonl_sft(args.data), args.data
        tok_path = args.tokenizer or (str(base) if base is not None else None)
        if tok_path is None:
            raise CLIError("sft needs --init (a pretrained checkpoint, which carries its tokenizer) or --tokenizer")
        tokenizer, how = load_tokenizer(tok_path), f"loaded from {tok_path}"

    if base is not None:
        from ..checkpoint import load_checkpoint
        model = load_checkpoint(base)
        from .model_options import model_changes
        if model_changes(args):      # runtime fields only (checked above), fixed when the modules are built
            tuned = Transformer(model.config.replace(**model_changes(args)))
            tuned.load_state_dict(model.state_dict())
            model = tuned
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
    log(f"{kind}: {what}, {n_train} train / {n_val} val documents -> {len(train_set)} "
         f"training sequences of <= {seq_len} tokens")
    log(f"tokenizer: {how}")
    log(f"model: preset {preset if base is None else 'from ' + str(base)}, {model.num_parameters():,} parameters; "
         f"global batch {cfg.batch_size} x {cfg.grad_accum_steps} x {D.info().world_size} processes, "
         f"{cfg.max_steps} steps, lr {cfg.lr:g} ({cfg.schedule}), out {out}")

    set_threads(args)
    meta = {"kind": kind, "preset": preset, "data": what, "seq_len": seq_len,
            "corpus": None if args.data else args.corpus, "max_chars": args.max_chars,   # what eval needs to
            "val_fraction": args.val_fraction, "seed": args.seed,                       # redo the held-out split
            "command": "python -m course_lib " + " ".join(map(str, args.argv))}
    trainer = Trainer(model, train_set, cfg, eval_data=val_set, tokenizer=tokenizer, metadata=meta)
    t0 = time.time()
    history = trainer.fit(resume=resume)
    if D.info().is_main:
        from .report import write_run_report
        try:        # the checkpoint is saved: a failed report is a warning, not a failed run
            report = write_run_report(out, trainer, seconds=time.time() - t0, init=base)
        except Exception as err:  # noqa: BLE001
            report = f"not written ({type(err).__name__}: {err})"
        final = history.final_loss
        msg = (f"done: step {trainer.step}, train loss {final:.4f}" if final is not None else "done")
        if history.eval_loss:
            msg += f", val loss {history.eval_loss[-1]:.4f}"
        msg += f" in {time.time() - t0:.0f} s; checkpoint {history.checkpoint}; report {report}"
        log(msg)
        if kind == "pretrain" and not history.interrupted:
            log(f"try: python -m course_lib generate --ckpt {out} --prompt 今天")
    D.cleanup()
    return (143 if history.signal == "SIGTERM" else 130) if history.interrupted else 0


def _datasets(kind, docs, tokenizer, seq_len: int, val_fraction: float, seed: int):
    """``(train, val or None, train documents, val documents)``; pretraining goes through
    ``data.packed_splits``, the library's one corpus -> split -> pack pipeline."""
    from ..corpus import train_val_split
    from ..data import SFTDataset, packed_splits

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


def cmd_pretrain(args) -> int:
    return _run_training(args, "pretrain")


def cmd_sft(args) -> int:
    return _run_training(args, "sft")


def _add_training_args(p: argparse.ArgumentParser, kind: str) -> None:
    p.add_argument("--preset", default="tiny", choices=sorted(PRESETS + tuple(PRESET_ALIASES)),
                   help="model size: tiny (default), nano, minimind_26m (alias 26m)")
    p.add_argument("--tokenizer", default=None, help="a tokenizer folder or tokenizer.json to use instead of "
                                                     "training one")
    p.add_argument("--vocab-size", type=positive_int, default=None, help="vocabulary of a newly trained tokenizer "
                                                                          "(default: the preset's, 6400)")
    p.add_argument("--seq-len", type=positive_int, default=None, help="tokens per training sequence "
                                                                       "(default: 128 for tiny)")
    p.add_argument("--max-seq-len", type=positive_int, default=None, help="override the model's max_seq_len")
    p.add_argument("--max-steps", type=positive_int, default=None, help="optimizer steps (default: 500 for tiny)")
    p.add_argument("--batch-size", type=positive_int, default=None,
                   help="sequences per micro-batch per process (default: 16 for tiny)")
    p.add_argument("--grad-accum", type=int, default=1, help="micro-batches per optimizer step (default 1)")
    p.add_argument("--lr", type=float, default=None, help="peak learning rate (default: 2e-3 for tiny)")
    p.add_argument("--min-lr", type=float, default=None, help="final learning rate (default: lr / 10)")
    p.add_argument("--warmup-steps", type=int, default=None, help="linear warmup steps")
    p.add_argument("--schedule", default="cosine", choices=SCHEDULES, help="learning-rate schedule after warmup")
    p.add_argument("--optimizer", default="adamw", choices=OPTIMIZERS, help="the optimizer")
    p.add_argument("--weight-decay", type=float, default=0.1, help="decoupled weight decay on the weight matrices")
    p.add_argument("--grad-clip", type=float, default=1.0, help="max gradient norm (0: no clipping)")
    p.add_argument("--val-fraction", type=float, default=0.02, help="documents held out for the eval loss")
    p.add_argument("--eval-every", type=int, default=0, help="eval every N steps (0: only at the end)")
    p.add_argument("--eval-batches", type=positive_int, default=20, help="batches per evaluation")
    p.add_argument("--save-every", type=int, default=None, help="checkpoint every N steps (default: 250 for tiny)")
    p.add_argument("--keep-last", type=positive_int, default=None, help="keep only the newest N checkpoints")
    p.add_argument("--out", default=None, help=f"run folder for step_<N>/ checkpoints (default: runs/{kind}-<preset>)")
    p.add_argument("--resume", nargs="?", const="latest", default=None, metavar="PATH",
                   help="continue a run: alone, the newest checkpoint under --out; or a step_<N> folder")
    p.add_argument("--seed", type=int, default=0, help="seed of the weights, the data split and the sample order")
    p.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:1, mps")
    p.add_argument("--dtype", default="auto", choices=DTYPES, help="auto (default: bf16 autocast on capable GPUs)")
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    p.add_argument("--threads", type=positive_int, default=None,
                   help="CPU threads for torch (default: torch's choice; 1 is often faster on a busy machine)")
    p.add_argument("--log-every", type=int, default=50, help="a log line every N steps (0: none)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--tokenizer-chars", type=positive_int, default=1_500_000,
                   help="characters used to train a new tokenizer (default 1.5 M, about 15 s)")


def add_parsers(sub) -> None:
    from .common import add_data_args

    p = sub.add_parser("pretrain", help="pretrain a model on a corpus or a text/jsonl file",
                       description="Pretrain a model (next-token prediction on packed text). "
                                   "Checkpoints go to <out>/step_<N>/ with the tokenizer.", epilog=switches_help())
    add_data_args(p)
    _add_training_args(p, "pretrain")
    add_model_args(p)
    p.set_defaults(func=cmd_pretrain)

    p = sub.add_parser("sft", help="supervised fine-tuning on chat data (MiniMind SFT jsonl)",
                       description="Fine-tune on conversations; the loss covers the assistant's tokens only. "
                                   "With --init, only " + ", ".join(RUNTIME_FIELDS) + " can be --set.",
                       epilog=switches_help())
    p.add_argument("--init", default=None, help="start from this checkpoint (a pretrain --out folder or step folder)")
    p.add_argument("--data", default=None, help="SFT jsonl: {\"conversations\": [{\"role\", \"content\"}, ...]} a line")
    p.add_argument("--max-chars", type=positive_int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--corpus", default=None, help=argparse.SUPPRESS)
    _add_training_args(p, "sft")
    add_model_args(p)
    p.set_defaults(func=cmd_sft)
