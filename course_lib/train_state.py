"""A resumable checkpoint: the model folder plus everything a ``Trainer`` needs to continue exactly.

``<out_dir>/step_<N>/`` holds the model files of ``checkpoint.py`` and

    train_state.safetensors   optimizer tensors ``optim.<param>.<key>``, RNG states ``rng.<kind>.rank<r>``
    train_state.json          step, stream position, train config, optimizer hyper-parameters,
                              grad-scaler state, history

Only tensors and JSON, never pickle. Functions here take plain values (an optimizer, a dict of
state), not the trainer, so ``train.py`` imports this module and not the other way round.
"""
from __future__ import annotations

import math
import os
import shutil
import uuid
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn

from . import distributed as D
from ._version import __version__
from .checkpoint import (CHECKPOINT_FILES, FORMAT_VERSION, METADATA_FILE, TRAIN_STATE_JSON, TRAIN_STATE_TENSORS,
                         PathLike, atomic_write_dir, check_finite, json_text, list_checkpoints, load_state_into,
                         read_config, read_json, read_model_tensors, resolve_checkpoint, step_of, write_model_files)

STATE_FORMAT = "course_lib.train_state"


# ============================================================================ RNG
def rng_tensors(device: torch.device, distributed: bool) -> Dict[str, torch.Tensor]:
    """Every process's RNG states as uint8 tensors ``rng.<cpu|cuda>.rank<r>`` (collective under DDP)."""
    states = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        states["cuda"] = torch.cuda.get_rng_state(device)
    out = {}
    for name, t in states.items():
        moved = t.to(device) if device.type == "cuda" and distributed else t
        for rank, s in enumerate(D.all_gather_tensors(moved)):
            out[f"rng.{name}.rank{rank}"] = s.to("cpu", torch.uint8).contiguous()
    return out


def load_rng(tensors: Dict[str, torch.Tensor], rank: int, device: torch.device) -> None:
    """Restore this process's RNG states saved by :func:`rng_tensors` (rank 0's when the world changed)."""
    cpu = tensors.get(f"rng.cpu.rank{rank}")
    if cpu is not None:
        torch.set_rng_state(cpu)
    cuda = tensors.get(f"rng.cuda.rank{rank}")
    if cuda is not None and device.type == "cuda":
        torch.cuda.set_rng_state(cuda, device)


# ============================================================================ optimizer
def optimizer_tensors(optimizer: torch.optim.Optimizer) -> Tuple[Dict[str, torch.Tensor], dict]:
    """Flatten ``optimizer.state_dict()``: tensors under ``optim.<param>.<key>``, the rest as JSON."""
    sd = optimizer.state_dict()
    tensors, scalars = {}, {}
    for pid, st in sd["state"].items():
        for k, v in st.items():
            if isinstance(v, torch.Tensor):
                tensors[f"optim.{pid}.{k}"] = v.detach().to("cpu").contiguous().clone()
            else:
                scalars[f"{pid}.{k}"] = v
    groups = [{k: v for k, v in g.items() if k != "params"} | {"num_params": len(g["params"])}
              for g in sd["param_groups"]]
    return tensors, {"class": type(optimizer).__name__, "param_groups": groups, "scalars": scalars}


def load_optimizer(optimizer: torch.optim.Optimizer, tensors: Dict[str, torch.Tensor], meta: dict, path: Path) -> None:
    """Rebuild the optimizer state from :func:`optimizer_tensors` output (hyper-parameters stay the current ones)."""
    if meta.get("class") != type(optimizer).__name__:
        raise ValueError(f"cannot resume from {str(path)!r}: it was trained with {meta.get('class')}, "
                         f"this run uses {type(optimizer).__name__} (TrainConfig.optimizer)")
    current = optimizer.state_dict()
    sizes = [g["num_params"] for g in meta["param_groups"]]
    if sizes != [len(g["params"]) for g in current["param_groups"]]:
        raise ValueError(f"cannot resume from {str(path)!r}: its optimizer groups hold {sizes} parameters, "
                         f"this model's {[len(g['params']) for g in current['param_groups']]}")
    state: Dict[int, Dict[str, Any]] = {}
    for name, t in tensors.items():
        if name.startswith("optim."):
            _, pid, key = name.split(".", 2)
            state.setdefault(int(pid), {})[key] = t
    for name, v in meta.get("scalars", {}).items():
        pid, key = name.split(".", 1)
        state.setdefault(int(pid), {})[key] = v
    optimizer.load_state_dict({"state": state, "param_groups": current["param_groups"]})


# ============================================================================ the folder
def write_train_checkpoint(path: Path, model: nn.Module, optimizer: torch.optim.Optimizer, rng: Dict[str, torch.Tensor],
                           state: Dict[str, Any], metadata: Dict[str, Any], tokenizer=None) -> None:
    """Write model files, optimizer + RNG tensors, ``state`` (JSON) and ``metadata`` into ``path`` atomically.

    ``state`` is completed with the format fields and the optimizer's JSON part; ``metadata`` with
    the format version, library version and parameter count."""
    from safetensors.torch import save_file

    tensors, opt_meta = optimizer_tensors(optimizer)
    tensors.update(rng)
    state = {"format": STATE_FORMAT, "format_version": 1, "course_lib_version": __version__, **state,
             "optimizer": opt_meta}
    meta = {"format_version": FORMAT_VERSION, "course_lib_version": __version__,
            "num_parameters": sum(p.numel() for p in model.parameters()), **metadata}
    state_text, meta_text = json_text(state, "train state"), json_text(meta, "checkpoint metadata")
    with atomic_write_dir(path, replaceable=CHECKPOINT_FILES) as tmp:
        write_model_files(model, tmp, tokenizer)
        save_file(tensors, str(tmp / TRAIN_STATE_TENSORS))
        (tmp / TRAIN_STATE_JSON).write_text(state_text + "\n", encoding="utf-8")
        (tmp / METADATA_FILE).write_text(meta_text + "\n", encoding="utf-8")
        if tokenizer is not None and hasattr(tokenizer, "save"):
            tokenizer.save(tmp)


def read_train_checkpoint(checkpoint, model: nn.Module) -> Tuple[Path, dict, Dict[str, torch.Tensor]]:
    """Load the weights of a resumable checkpoint into ``model``; return ``(folder, state, tensors)``.

    ``checkpoint``: a ``step_<N>`` folder or a run folder (its newest). A checkpoint of a different
    model config raises ``ValueError`` listing the differences; a missing or corrupt file names it.
    """
    from safetensors import safe_open

    path = resolve_checkpoint(checkpoint, need_train_state=True)
    state = read_json(path / TRAIN_STATE_JSON, "train state")
    if state.get("format") != STATE_FORMAT:
        raise ValueError(f"{str(path / TRAIN_STATE_JSON)!r} is not a course_lib train state")
    mcfg = getattr(model, "config", None)
    if mcfg is not None and hasattr(mcfg, "to_dict"):
        saved = read_config(path)
        diff = [f"{k}: checkpoint {v!r} vs model {mcfg.to_dict().get(k)!r}"
                for k, v in saved.to_dict().items() if mcfg.to_dict().get(k) != v]
        if diff:
            raise ValueError(f"cannot resume from {str(path)!r}: it was trained with another model config "
                             f"({'; '.join(diff)})")
    load_state_into(model, path)
    if (path / TRAIN_STATE_TENSORS).exists() and not (path / TRAIN_STATE_TENSORS).is_file():
        raise ValueError(f"{str(path / TRAIN_STATE_TENSORS)!r} is not a regular file (a pipe or a folder?); reading "
                         "it would block or fail: the checkpoint is not resumable")
    try:
        with safe_open(str(path / TRAIN_STATE_TENSORS), framework="pt", device="cpu") as f:
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except FileNotFoundError:
        raise FileNotFoundError(f"{str(path / TRAIN_STATE_TENSORS)!r} is missing: the checkpoint is incomplete") from None
    except Exception as e:
        raise ValueError(f"{str(path / TRAIN_STATE_TENSORS)!r} is corrupt ({type(e).__name__}: {e})") from None
    return path, state, tensors


def check_run_folder(out_dir: PathLike, start_step: int = 0) -> Path:
    """Before a run trains anything: ``out_dir`` is (made) a writable folder and holds no checkpoint
    beyond ``start_step``, which the run would overwrite (and pruning might keep instead of its own).
    Raises ``NotADirectoryError`` / ``PermissionError`` / ``FileExistsError`` naming the folder."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"out_dir={str(out)!r} is a file; checkpoints need a folder. Nothing was trained")
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".write-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise PermissionError(f"out_dir={str(out)!r} is not writable ({err.strerror or err}); nothing was "
                              "trained: choose another out_dir (--out)") from None
    newer = [p.name for p in list_checkpoints(out) if step_of(p) > start_step]
    if newer:
        raise FileExistsError(
            f"out_dir={str(out)!r} already holds {', '.join(newer)}, beyond step {start_step} where this run "
            "starts: training on would overwrite them. Nothing was changed: write to another out_dir (--out), "
            "or resume the newest checkpoint")
    return out


def prune_checkpoints(out_dir: Optional[PathLike], written: Path, step: int, keep: Optional[int]) -> None:
    """After writing ``written`` (step ``step``): keep it and the newest ``keep - 1`` checkpoints
    before it under ``out_dir``; never one beyond it (that belongs to another run), nothing when
    ``written`` lies outside ``out_dir`` or ``keep`` is None (keep all)."""
    if keep is None or out_dir is None or written.parent.resolve() != Path(out_dir).resolve():
        return
    older = [p for p in list_checkpoints(out_dir) if step_of(p) < step]
    for old in older[:len(older) - (keep - 1)]:
        shutil.rmtree(old, ignore_errors=True)


def last_good_checkpoint(found: List[Path], steps: Sequence[int], losses: Sequence[float],
                         up_to: int, loss_now: Optional[float] = None) -> Optional[Path]:
    """After a divergence: the newest ``step_<k>`` (``k <= up_to``) that is good, or None when none is.

    Good: its weights are finite, and the loss measured on them (by step ``k + 1``, in ``steps`` /
    ``losses``; for ``k == up_to``, the weights in memory, ``loss_now`` on another batch) is finite
    and at most 10 % above the run's first loss. A checkpoint already blown up (weights ~1e9, finite
    but useless) is never named."""
    loss_on = dict(zip(steps, losses))
    loss_on[up_to + 1] = loss_now
    first = losses[0] if losses else math.nan
    for p in reversed(found):
        k, after = step_of(p), loss_on.get(step_of(p) + 1)
        if k > up_to or after is None or not math.isfinite(after) or not after <= 1.1 * first:
            continue
        try:
            check_finite(read_model_tensors(p)[0], p)
        except (ValueError, FileNotFoundError):
            continue
        return p
    return None


__all__ = ["check_run_folder", "last_good_checkpoint", "prune_checkpoints", "rng_tensors", "load_rng", "optimizer_tensors", "load_optimizer", "write_train_checkpoint",
           "read_train_checkpoint"]
