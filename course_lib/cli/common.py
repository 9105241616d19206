"""What every subcommand shares: the error type, logging, argument types, data reading, threads,
and opening a checkpoint together with its tokenizer.

Nothing here imports torch at module level: ``python -m course_lib --help`` must stay fast.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Optional, Tuple

EXIT_OK = 0
EXIT_DIVERGED = 1
EXIT_BAD_INPUT = 2
EXIT_SIGINT = 130
EXIT_SIGTERM = 143

EXIT_CODES_HELP = f"""exit status:
  {EXIT_OK:<4} done
  {EXIT_DIVERGED:<4} training diverged (NaN/inf loss); the message names the last good checkpoint
  {EXIT_BAD_INPUT:<4} bad input: one 'error:' line on stderr saying what to change; nothing was written
  {EXIT_SIGINT:<4} interrupted by Ctrl-C: training saved a resumable checkpoint first
  {EXIT_SIGTERM:<4} stopped by SIGTERM (timeout, Slurm, Kubernetes): the same"""


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the epilog's layout and appends each option's default, unless the help already says it
    or the default is None/False (None means "chosen for you", e.g. by the preset)."""

    def _get_help_string(self, action):
        text = action.help or ""
        if ("default" not in text and action.default not in (None, False, argparse.SUPPRESS)
                and action.option_strings and not isinstance(action.default, bool)):
            text += " (default: %(default)s)"
        return text


class CLIError(ValueError):
    """A problem with the command line itself (reported like any other bad input)."""


def log(msg: str) -> None:
    """Print on the main process only; a closed stdout silences the log, the work goes on."""
    from ..distributed import info
    from ..progress import stdout_gone

    if info().is_main:
        try:
            print(msg, flush=True)
        except BrokenPipeError:
            stdout_gone()


def positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"{v} must be >= 1")
    return v


def one_line(err: BaseException) -> str:
    return " ".join(line.strip() for line in str(err).splitlines() if line.strip()) or type(err).__name__


# ----------------------------------------------------------------------------- data
def add_data_args(p: argparse.ArgumentParser) -> None:
    from ..corpus import CORPORA, DEFAULT_CORPUS

    p.add_argument("--corpus", default=None, choices=sorted(CORPORA),
                   help=f"a named corpus (default {DEFAULT_CORPUS})")
    p.add_argument("--data", default=None, help="your own data: a UTF-8 text file (paragraphs separated by blank "
                                                "lines) or a MiniMind jsonl file ({\"text\": ...} per line)")
    p.add_argument("--max-chars", type=positive_int, default=None, help="use only the first N characters")


def read_documents(args) -> tuple:
    """(documents, description) from --data (a text or MiniMind jsonl file) or --corpus."""
    from ..corpus import DEFAULT_CORPUS, _take_chars, load_corpus, read_jsonl_pretrain, read_text_file

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
        docs = _take_chars(docs, args.max_chars)
    return docs, what


def check_writable(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise CLIError(f"--out {out} is a file; pass a folder")
    out.mkdir(parents=True, exist_ok=True)
    if not os.access(out, os.W_OK):
        raise PermissionError(f"--out {out} is not writable; choose another folder")


# ----------------------------------------------------------------------------- runtime
def set_threads(args, to_stderr: bool = False) -> None:
    """--threads, or the library's thread policy (``device.set_threads``): on a busy CPU machine as
    many torch threads as there are idle cores (at least 1); say so when it lowers the count."""
    if not hasattr(args, "threads"):
        return
    import torch

    from ..device import set_threads as _set

    if getattr(args, "device", "auto") not in ("auto", "cpu") and not args.threads:
        return
    before = torch.get_num_threads()
    used = _set(args.threads or None)
    if not args.threads and used < before:
        msg = f"busy machine ({os.cpu_count()} CPUs): using {used} torch thread(s); pass --threads N to choose"
        if to_stderr:
            print(msg, file=sys.stderr, flush=True)
        else:
            log(msg)


def add_checkpoint_args(p: argparse.ArgumentParser, device: bool = True) -> None:
    p.add_argument("--ckpt", required=True, help="a run folder (its newest step_<N>), a checkpoint folder, or "
                                                 "'pretrained' for the small model shipped with the course")
    p.add_argument("--tokenizer", default=None, help="a tokenizer other than the checkpoint's own")
    if device:
        p.add_argument("--device", default="auto", help="auto (default: CUDA, then MPS, then CPU), cpu, cuda, "
                                                        "cuda:1, mps")
        p.add_argument("--threads", type=positive_int, default=None, help="CPU threads for torch")


def shipped_or_path(ckpt: str) -> Path:
    """``ckpt`` as a path; ``pretrained`` (or a shipped checkpoint's name) names the model shipped
    with the course, unless a folder of that name exists here."""
    from ..checkpoint import DEFAULT_PRETRAINED, available_pretrained, pretrained_path

    if Path(ckpt).exists() or ckpt not in ("pretrained", *available_pretrained()):
        return Path(ckpt)
    return pretrained_path(DEFAULT_PRETRAINED if ckpt == "pretrained" else ckpt)


def open_checkpoint(ckpt: str, tokenizer: Optional[str] = None, device: str = "auto") -> Tuple[object, object, Path]:
    """``(model, tokenizer, folder)`` for ``--ckpt`` (a run folder means its newest step_<N>).

    The tokenizer is the checkpoint's own unless ``tokenizer`` names another; one whose vocabulary
    does not match the model's is refused (the ids would mean different tokens)."""
    from ..checkpoint import TOKENIZER_FILES, load_checkpoint, resolve_checkpoint
    from ..device import pick_device
    from ..tokenizer import load_tokenizer

    folder = resolve_checkpoint(shipped_or_path(ckpt))
    if not tokenizer and not any((folder / f).is_file() for f in TOKENIZER_FILES):
        raise FileNotFoundError(f"{folder} has no tokenizer (tokenizer.json or simple_tokenizer.json); "
                                "pass --tokenizer")
    tok = load_tokenizer(tokenizer or folder)
    model = load_checkpoint(folder, device=pick_device(None if device == "auto" else device))
    if tok.vocab_size != model.config.vocab_size:
        raise CLIError(f"the tokenizer ({tokenizer or folder}) has {tok.vocab_size} tokens but the model "
                       f"{model.config.vocab_size}: they do not belong together; use the checkpoint's own tokenizer")
    return model, tok, folder
