"""``export``: write a checkpoint as a Hugging Face folder that ``transformers`` loads directly.

    python -m course_lib export --ckpt runs/tiny --out runs/tiny-hf
    python -m course_lib export --ckpt runs/qk --out runs/qk-hf --format qwen3 --dtype bfloat16

The work is ``course_lib.export.export_hf_llama``; this command adds the checks a learner needs
before anything is written: a model Llama (or Qwen3) cannot compute is refused with every reason on
one line, and an ``--out`` that exists is left alone unless ``--overwrite`` is given, and even then
only an earlier export (nothing but its files) is replaced.
"""
from __future__ import annotations

from pathlib import Path

from .common import CLIError, add_checkpoint_args, open_checkpoint

DTYPES = ("float32", "bfloat16", "float16")


def cmd_export(args) -> int:
    import torch

    from ..export import export_hf_llama, hf_format, llama_incompatibilities

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise CLIError(f"--out {out} is a file; pass a folder for the export")
    empty = out.is_dir() and not any(out.iterdir())
    if out.exists() and not empty and not args.overwrite:
        raise CLIError(f"--out {out} already exists; pass --overwrite to replace an earlier export there "
                       "(a folder holding anything else is never replaced), or choose another --out")
    model, tokenizer, folder = open_checkpoint(args.ckpt, args.tokenizer, device="cpu")
    fmt = args.format or hf_format(model.config)
    problems = llama_incompatibilities(model.config, fmt)
    if problems:
        other = "qwen3" if fmt == "llama" else "llama"
        hint = (f"; try --format {other}" if not llama_incompatibilities(model.config, other) else
                "; only a Llama-shaped model (RoPE, pre-norm RMSNorm, SwiGLU, dense FFN) can be exported")
        raise CLIError(f"{folder} cannot be exported as a Hugging Face {fmt} model: " + "; ".join(problems) + hint)
    if args.dtype:
        model.to(dtype=getattr(torch, args.dtype))
    # an empty --out is as good as a missing one; anything else is replaced only with --overwrite,
    # and export_hf_llama replaces only a folder holding nothing but an export's files
    export_hf_llama(model, out, tokenizer=tokenizer, format=fmt, overwrite=args.overwrite or empty)
    dtype = str(next(model.parameters()).dtype).replace("torch.", "")
    print(f"exported {folder} as a Hugging Face {fmt} model ({dtype}) to {out}")
    print("load it with transformers:")
    print("    from transformers import AutoModelForCausalLM, AutoTokenizer")
    print(f"    model = AutoModelForCausalLM.from_pretrained({str(out)!r})")
    print(f"    tokenizer = AutoTokenizer.from_pretrained({str(out)!r})")
    return 0


def add_parsers(sub) -> None:
    p = sub.add_parser("export", help="write a checkpoint as a Hugging Face Llama/Qwen3 folder",
                       description="Write a checkpoint (and its tokenizer) as a Hugging Face folder that "
                                   "transformers' AutoModelForCausalLM and AutoTokenizer load, with the same logits.")
    add_checkpoint_args(p, device=False)
    p.add_argument("--out", required=True, help="the folder to write (must not exist, be empty, or, with "
                                                "--overwrite, hold an earlier export)")
    p.add_argument("--format", default=None, choices=("llama", "qwen3"),
                   help="the Hugging Face architecture (default: qwen3 for qk_norm models, else llama)")
    p.add_argument("--dtype", default=None, choices=DTYPES, help="the stored dtype (default: the checkpoint's)")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier export in --out")
    p.set_defaults(func=cmd_export)
