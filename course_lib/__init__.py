"""course_lib: a small, GPU-capable LLM library built to be questioned.

A MiniMind/Llama-class decoder with every design choice behind a switch, byte-level BPE training,
pretraining and SFT data with loss masks, a trainer (accumulation, schedules, clipping, mixed
precision, exact resume, DDP) and a sampler with a KV cache. See ``docs/design.md``.

Public names are imported lazily, so ``import course_lib`` stays fast and optional extras
(matplotlib, transformers) are only needed by the functions that use them.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__

# public name -> module that defines it
_EXPORTS = {
    "ModelConfig": "config", "PRESETS": "config",
    "pick_device": "device", "pick_dtype": "device", "autocast": "device", "bf16_supported": "device",
    "Transformer": "model", "ModelOutput": "model",
    "KVCache": "kv_cache", "StaticDecoder": "kv_cache",
    "masked_cross_entropy": "losses",
    "generate": "sample", "stream_generate": "sample", "beam_search": "beam",
    "sampling_distribution": "sample",
    "save_checkpoint": "checkpoint", "load_checkpoint": "checkpoint",
    "load_checkpoint_metadata": "checkpoint",
    "export_hf_llama": "export", "from_hf": "export",
    "train_tokenizer": "tokenizer", "load_tokenizer": "tokenizer", "BPETokenizer": "tokenizer",
    "CharTokenizer": "tokenizer", "ByteTokenizer": "tokenizer",
    "load_corpus": "corpus", "CORPORA": "corpus", "DEFAULT_CORPUS": "corpus",
    "PretrainDataset": "data", "PackedDataset": "data", "SFTDataset": "data",
    "TrainConfig": "train", "Trainer": "train", "TrainHistory": "progress",
    "lr_at": "schedule",
    "load_pretrained": "checkpoint",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str) -> Any:
    module_name = _EXPORTS.get(name)
    if module_name is None:
        raise AttributeError(f"module 'course_lib' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module_name}"), name)
    globals()[name] = value  # cache: later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:  # for editors and type checkers
    from .beam import beam_search
    from .checkpoint import load_checkpoint, load_checkpoint_metadata, load_pretrained, save_checkpoint
    from .config import PRESETS, ModelConfig
    from .corpus import CORPORA, DEFAULT_CORPUS, load_corpus
    from .data import PackedDataset, PretrainDataset, SFTDataset
    from .device import autocast, bf16_supported, pick_device, pick_dtype
    from .export import export_hf_llama, from_hf
    from .kv_cache import KVCache, StaticDecoder
    from .losses import masked_cross_entropy
    from .model import ModelOutput, Transformer
    from .sample import generate, sampling_distribution, stream_generate
    from .schedule import lr_at
    from .tokenizer import BPETokenizer, ByteTokenizer, CharTokenizer, load_tokenizer, train_tokenizer
    from .progress import TrainHistory
    from .train import TrainConfig, Trainer
