"""The small pretrained model shipped with the course: ``load_pretrained() -> (model, tokenizer)``.

Notebooks that need a model which has actually learned something (sampling, the KV cache, what
attention heads do) load this instead of retraining for minutes. It is the ``tiny`` preset (about
1.6 M parameters) trained on the default corpus (People's Daily) with a 6400-token byte-level BPE
tokenizer, stored in ``course_lib/assets/pretrained/<name>/``:

    model.safetensors   weights (float32)
    config.json         the ModelConfig
    tokenizer.json      the tokenizer (+ tokenizer_config.json)
    metadata.json       how it was built: command, seed, steps, tokens, corpus, final train/val loss

``python scripts/build_pretrained.py`` (``make pretrained``) rebuilds it, deterministically from its
seed, in about ten minutes on a 2-core CPU.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import List, Tuple, Union

import torch

PRETRAINED_DIR = Path(__file__).resolve().parent / "assets" / "pretrained"
DEFAULT_PRETRAINED = "tiny_peoples_daily"
_FILES = ("model.safetensors", "config.json", "tokenizer.json", "metadata.json")


def available_pretrained() -> List[str]:
    """Names of the complete pretrained checkpoints shipped in this installation."""
    if not PRETRAINED_DIR.is_dir():
        return []
    return sorted(p.name for p in PRETRAINED_DIR.iterdir() if all((p / f).is_file() for f in _FILES))


def pretrained_path(name: str = DEFAULT_PRETRAINED) -> Path:
    """The folder of the shipped checkpoint ``name``; ``FileNotFoundError`` with the rebuild command."""
    if not isinstance(name, str) or not name or "/" in name or name.startswith("."):
        raise ValueError(f"name={name!r} must be the name of a shipped checkpoint, e.g. {DEFAULT_PRETRAINED!r}")
    folder = PRETRAINED_DIR / name
    missing = [f for f in _FILES if not (folder / f).is_file()]
    if missing:
        have = available_pretrained()
        others = f" Shipped checkpoints here: {', '.join(have)}." if have else ""
        raise FileNotFoundError(
            f"pretrained checkpoint {name!r} is missing in {folder} (no {', '.join(missing)}).{others} "
            "Build it with `make pretrained` (or `python scripts/build_pretrained.py`), about ten minutes on a CPU.")
    return folder


def pretrained_metadata(name: str = DEFAULT_PRETRAINED) -> dict:
    """How the shipped checkpoint was built (steps, tokens, corpus, final train/val loss, command)."""
    return json.loads((pretrained_path(name) / "metadata.json").read_text(encoding="utf-8"))


def load_pretrained(name: str = DEFAULT_PRETRAINED, device: Union[str, torch.device] = "cpu"
                    ) -> Tuple[torch.nn.Module, object]:
    """``(model, tokenizer)`` of the shipped checkpoint; the model is in eval mode on ``device``."""
    from .checkpoint import load_checkpoint
    from .tokenizer import load_tokenizer

    folder = pretrained_path(name)
    model = load_checkpoint(folder, device=device)
    tokenizer = load_tokenizer(folder)
    return model, tokenizer


__all__ = ["load_pretrained", "pretrained_path", "pretrained_metadata", "available_pretrained",
           "PRETRAINED_DIR", "DEFAULT_PRETRAINED"]
