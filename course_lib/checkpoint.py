"""Checkpoints: safetensors weights + JSON config, written atomically, loaded without pickle.

A checkpoint is a folder::

    path/
      model.safetensors   every tensor of the model once (tied weights stored under one name)
      config.json         the ModelConfig (see below)
      metadata.json       whatever the caller passed (step, loss, tokenizer name, ...) + format info

Format 2: a model ``transformers`` computes the same way (a Llama, or Qwen3 with ``qk_norm``; see
``export.llama_incompatibilities``) is stored under Hugging Face tensor names with a Hugging Face
``config.json`` that carries ``ModelConfig.to_dict()`` under ``"course_lib"``, so
``AutoModelForCausalLM.from_pretrained(path)`` opens the folder as it is. Any other model, and every
format-1 folder (still read, bit-exact), has our names and ``ModelConfig.to_dict()`` as config.json;
``transformers`` refuses those ("Unrecognized model": no ``model_type``). ``load_checkpoint`` of a
Hugging Face folder from elsewhere returns the model through ``export.from_hf``.

Why safetensors and JSON: ``torch.load`` unpickles, and unpickling a file runs whatever code the
file asks for. A safetensors file is a JSON header plus raw bytes, so loading a checkpoint found on
the internet can never execute code. Nothing in this module calls ``torch.load`` or ``pickle``.

Why atomic: a crash (or Ctrl-C in a notebook) half-way through writing must never leave a folder
that looks like a checkpoint but holds half the tensors, and must never destroy the previous good
checkpoint. :func:`atomic_write_dir` writes everything into a temporary sibling folder and only
then renames it into place (see its docstring for exactly what survives a crash at each point).

A training run keeps its checkpoints as ``<out_dir>/step_<N>/`` folders, which also hold
``train_state.json`` and ``train_state.safetensors`` (see ``train_state.py``);
:func:`list_checkpoints`, :func:`latest_checkpoint` and :func:`resolve_checkpoint` find them.

The course's own pretrained model is a checkpoint shipped in ``course_lib/assets/pretrained/``:
:func:`load_pretrained` returns it with its tokenizer.

Generic helpers reused by the trainer for ``step_<N>/`` folders:
    :func:`atomic_write_dir`   context manager: build a folder in a temp sibling, rename into place.
    :func:`atomic_write_json`  write one JSON file atomically (temp file + ``os.replace``);
    :func:`atomic_write_text`  the same for any text.
    :func:`write_model_files`  write ``model.safetensors`` + ``config.json`` into a folder.
    :func:`read_json`          read a JSON file with clear errors naming the path.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import uuid
from pathlib import Path
from typing import Any, Collection, Dict, Iterator, List, Optional, Tuple, Union

import torch
from torch import nn

from .config import LATER_FIELDS, ModelConfig, check_stored_config  # noqa: F401 (re-exported)
from .device import pick_device

PathLike = Union[str, os.PathLike]

MODEL_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
METADATA_FILE = "metadata.json"
FORMAT_VERSION = 2      # 2: Llama-shaped models under Hugging Face names and schema; 1 (still read): ours
TRAIN_STATE_JSON = "train_state.json"                 # step, stream position, train config, history
TRAIN_STATE_TENSORS = "train_state.safetensors"       # optimizer tensors, RNG states
STEP_DIR = re.compile(r"^step_(\d+)$")                 # a run's checkpoint folders: step_<N>
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "simple_tokenizer.json")
# The only files a checkpoint folder of ours holds: overwrite=True replaces a folder holding nothing else.
CHECKPOINT_FILES = (MODEL_FILE, CONFIG_FILE, METADATA_FILE, TRAIN_STATE_JSON, TRAIN_STATE_TENSORS, *TOKENIZER_FILES)
# Key in the safetensors header that records which names are aliases of a stored tensor.
_TIED_KEY = "course_lib.tied"
_NAMES_KEY = "course_lib.names"     # "hugging_face" (format 2, Llama-shaped) or "course_lib"


# ============================================================================ atomic writes
def _fsync_dir(path: Path) -> None:
    """Flush a directory entry (the rename itself) to disk where the OS allows it (not Windows)."""
    if os.name != "posix":
        return
    try:
        fd = os.open(str(path), os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _fsync_tree(root: Path) -> None:
    """fsync every file under ``root`` so the data is on disk before the folder is renamed in."""
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            try:
                with open(os.path.join(dirpath, name), "rb") as f:
                    os.fsync(f.fileno())
            except OSError:
                pass
        _fsync_dir(Path(dirpath))


def check_replaceable(path: Path, replaceable: Optional[Collection[str]], what: str = "checkpoint") -> None:
    """Refuse (``FileExistsError``) to replace the folder ``path`` when it holds anything but the
    files named in ``replaceable`` (None: any folder may be replaced): a run folder with ``step_<N>``
    folders, a project folder or a home folder must never be deleted by a save."""
    if replaceable is None or not path.is_dir():
        return
    foreign = sorted(p.name + ("/" if p.is_dir() else "") for p in path.iterdir()
                     if p.name not in replaceable or not p.is_file())
    if foreign:
        shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
        raise FileExistsError(
            f"path={str(path)!r} exists and holds {shown}, which are not part of a {what}; overwrite=True "
            f"only replaces a folder that is itself a {what} (holding nothing but {', '.join(replaceable)}). "
            "Nothing was changed: choose another path, or move those files away yourself")


def _process_alive(pid: str) -> bool:
    """False only when no process ``pid`` exists on this machine (anything unclear counts as alive)."""
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (ValueError, OSError, OverflowError):
        return True
    return True


@contextlib.contextmanager
def atomic_write_dir(path: PathLike, overwrite: bool = True,
                     replaceable: Optional[Collection[str]] = None, what: str = "checkpoint") -> Iterator[Path]:
    """Build the folder ``path`` atomically: yield an empty temporary sibling, rename it in at the end.

    Usage::

        with atomic_write_dir("runs/x/step_100") as tmp:
            save_file(tensors, tmp / "model.safetensors")
            (tmp / "train_state.json").write_text(...)
        # here runs/x/step_100 exists and is complete

    If the ``with`` body raises, the temporary folder is deleted and ``path`` is untouched.

    Crash safety (the process dies, e.g. power loss or a killed kernel), by the moment of the crash:
      1. while the body writes: only ``.<name>.tmp-<id>`` exists beside ``path``; ``path`` (old or
         absent) is untouched. The leftover temp folder is garbage and may be deleted.
      2. ``path`` did not exist: one ``os.rename(tmp, path)``, atomic on POSIX and Windows; either
         the complete new folder is there or nothing is.
      3. ``path`` existed (``overwrite=True``): the old folder is renamed aside to
         ``.<name>.old-<id>``, the new one renamed in, then the old one deleted. A crash between the
         two renames leaves no ``path`` but the intact old checkpoint in ``.<name>.old-<id>`` (and
         the complete new one in ``.<name>.tmp-<id>``); :func:`load_checkpoint` names that folder
         in its ``FileNotFoundError``. A crash after the second rename leaves the complete new
         ``path`` and a stale ``.<name>.old-<id>`` to delete. At no point is a half-written folder
         called ``path``.
    Files are fsynced before the rename so the rename never publishes data still only in a cache.

    ``overwrite=False`` raises ``FileExistsError`` if ``path`` exists (checked before and after).
    ``replaceable``: the file names an existing ``path`` may hold to be replaced (checked before and
    after, see :func:`check_replaceable`); None replaces any folder.
    """
    path = Path(path)
    parent = path.parent
    if path.name in ("", ".", ".."):
        raise ValueError(f"path={str(path)!r} must name a folder (not '.', '..' or a root)")
    parent.mkdir(parents=True, exist_ok=True)
    if path.exists() and not overwrite:
        raise FileExistsError(f"path={str(path)!r} already exists and overwrite=False")
    if path.exists() and not path.is_dir():
        raise ValueError(f"path={str(path)!r} exists and is a file, not a folder; choose another path")
    check_replaceable(path, replaceable, what)
    # left by a killed save whose process is gone; an .old one only once a complete ``path`` replaced it
    for stale in [*parent.glob(f".{path.name}.tmp-*"), *(parent.glob(f".{path.name}.old-*") if path.is_dir() else [])]:
        if not _process_alive(stale.name.rsplit("-", 2)[-2]):
            shutil.rmtree(stale, ignore_errors=True)
    token = uuid.uuid4().hex[:8]
    tmp = parent / f".{path.name}.tmp-{os.getpid()}-{token}"
    tmp.mkdir()
    try:
        yield tmp
        _fsync_tree(tmp)
        old = parent / f".{path.name}.old-{os.getpid()}-{token}"
        if path.exists():
            if not overwrite:
                raise FileExistsError(f"path={str(path)!r} appeared while writing and overwrite=False")
            check_replaceable(path, replaceable, what)
            with contextlib.suppress(FileNotFoundError):      # another save moved it aside first
                os.rename(path, old)
        try:
            os.rename(tmp, path)
        except OSError as err:
            if not path.exists():                             # not a race: put the previous folder back
                with contextlib.suppress(FileNotFoundError):
                    os.rename(old, path)
                raise
            shutil.rmtree(old, ignore_errors=True)
            raise FileExistsError(f"path={str(path)!r} was written by another process at the same time "
                                  f"({err.strerror}); that save is in place, this one was discarded") from None
        _fsync_dir(parent)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _json_default(obj: Any) -> Any:
    """Turn the usual non-JSON values of a training script (Path, tensors, numpy scalars) into JSON."""
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if isinstance(obj, torch.Tensor) and obj.numel() == 1:
        return obj.item()
    if isinstance(obj, torch.dtype):
        return str(obj).replace("torch.", "")
    if isinstance(obj, torch.device):
        return str(obj)
    if hasattr(obj, "item") and callable(obj.item):      # numpy scalars
        try:
            return obj.item()
        except (TypeError, ValueError):
            pass
    if hasattr(obj, "tolist") and callable(obj.tolist):   # numpy arrays, small tensors
        return obj.tolist()
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    raise TypeError(f"value {obj!r} of type {type(obj).__name__} is not JSON-serialisable")


def json_text(obj: Any, what: str) -> str:
    try:
        return json.dumps(obj, indent=2, sort_keys=True, default=_json_default, allow_nan=True)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{what} cannot be written as JSON: {err}") from None


def atomic_write_text(path: PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically: a temp file in the same folder, fsync, ``os.replace``.
    Readers see either the old file or the complete new one, never a truncated one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def atomic_write_json(path: PathLike, obj: Any) -> None:
    """Write ``obj`` as JSON to ``path`` with :func:`atomic_write_text`. Paths, tensors with one
    element and numpy scalars are converted; anything else not JSON-serialisable raises
    ``ValueError`` naming the path."""
    atomic_write_text(path, json_text(obj, f"the data for {str(path)!r}") + "\n")


def read_json(path: PathLike, what: str = "file") -> Any:
    """Read a JSON file; ``FileNotFoundError`` / ``ValueError`` name the path (never a bare traceback)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} {str(path)!r} does not exist")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{what} {str(path)!r} is not valid JSON (corrupt or truncated?): {err}") from None


# ============================================================================ tensors <-> files
def _storage_key(t: torch.Tensor) -> Tuple[Any, int, Tuple[int, ...], Tuple[int, ...]]:
    """Identity of the memory a tensor views: two names with the same key are the same weight."""
    return (t.device, t.data_ptr(), tuple(t.shape), tuple(t.stride()))


def tied_aliases(model: nn.Module) -> Dict[str, str]:
    """``{alias: stored_name}`` for state-dict entries that are the same tensor as an earlier entry.

    With tied embeddings ``lm_head.weight`` and ``tok_embeddings.weight`` (or whatever the model
    calls them) are one ``Parameter``; safetensors refuses to save shared memory twice, and storing
    it twice would silently untie the weights on load. We store the first name only.
    """
    seen: Dict[Any, str] = {}
    aliases: Dict[str, str] = {}
    for name, tensor in model.state_dict(keep_vars=True).items():
        if tensor.numel() == 0:
            continue
        key = _storage_key(tensor)
        if key in seen:
            aliases[name] = seen[key]
        else:
            seen[key] = name
    return aliases


def model_tensors(model: nn.Module) -> Tuple[Dict[str, torch.Tensor], Dict[str, str]]:
    """The tensors to store (contiguous CPU copies, tied ones once) and the alias map."""
    aliases = tied_aliases(model)
    tensors = {name: t.detach().to("cpu").contiguous()
               for name, t in model.state_dict().items() if name not in aliases}
    return tensors, aliases


def _config_of(model: nn.Module) -> ModelConfig:
    config = getattr(model, "config", None)
    if not isinstance(config, ModelConfig):
        raise ValueError(f"model of type {type(model).__name__} has no .config ModelConfig; "
                         "save_checkpoint needs a course_lib Transformer")
    return config


def write_model_files(model: nn.Module, folder: PathLike, tokenizer: Any = None) -> None:
    """Write ``model.safetensors`` and ``config.json`` of ``model`` into the existing ``folder``.

    Meant for use inside :func:`atomic_write_dir` (the trainer adds its own train-state files).
    ``tokenizer``: its special ids go into a Hugging Face config.json (format 2) for generate's EOS.
    """
    from safetensors.torch import save_file

    from .export import hf_checkpoint_layout

    folder = Path(folder)
    config = _config_of(model)
    tensors, aliases = model_tensors(model)
    hf = hf_checkpoint_layout(config, tensors, aliases, tokenizer)   # None: transformers cannot compute it
    if hf is not None:
        hf_config, tensors, aliases = hf
    header = {"format": "pt", "course_lib.format_version": str(FORMAT_VERSION),
              _TIED_KEY: json.dumps(aliases, sort_keys=True), _NAMES_KEY: "hugging_face" if hf else "course_lib"}
    save_file(tensors, str(folder / MODEL_FILE), metadata=header)
    text = json_text(hf_config, "the config") if hf else config.to_json()
    (folder / CONFIG_FILE).write_text(text + "\n", encoding="utf-8")


def _resolve_folder(path: PathLike) -> Path:
    """The checkpoint folder for ``path`` (a folder, or its ``model.safetensors``), with clear errors."""
    path = Path(path)
    if path.is_file() and path.name == MODEL_FILE:
        path = path.parent
    if not path.exists():
        hint = ""
        parent = path.parent if str(path.parent) else Path(".")
        if parent.is_dir():
            aside = sorted(p.name for p in parent.glob(f".{path.name}.old-*"))
            if aside:
                hint = (f"; a write was interrupted while replacing it: the previous checkpoint is intact "
                        f"in {str(parent / aside[0])!r} (rename it back to use it)")
        raise FileNotFoundError(f"checkpoint folder {str(path)!r} does not exist{hint}")
    if not path.is_dir():
        raise ValueError(f"checkpoint path {str(path)!r} is a file; pass the checkpoint folder "
                         f"(containing {MODEL_FILE}, {CONFIG_FILE}, {METADATA_FILE})")
    return path


def read_model_tensors(path: PathLike) -> Tuple[Dict[str, torch.Tensor], Dict[str, str]]:
    """Read ``model.safetensors`` from checkpoint folder ``path``: (tensors on CPU, alias map).

    Never unpickles. Missing file -> ``FileNotFoundError``; corrupt file -> ``ValueError``; both name
    the path.
    """
    from safetensors import safe_open

    file = _resolve_folder(path) / MODEL_FILE
    if not file.is_file():
        raise FileNotFoundError(f"checkpoint weights {str(file)!r} do not exist")
    try:
        tensors: Dict[str, torch.Tensor] = {}
        with safe_open(str(file), framework="pt", device="cpu") as f:
            header = f.metadata() or {}
            for name in f.keys():
                tensors[name] = f.get_tensor(name)
        aliases = json.loads(header.get(_TIED_KEY, "{}"))
    except Exception as err:  # safetensors raises its own error types for bad headers / short files
        raise ValueError(f"checkpoint weights {str(file)!r} are corrupt or not a safetensors file "
                         f"({type(err).__name__}: {err})") from None
    if not isinstance(aliases, dict):
        raise ValueError(f"checkpoint weights {str(file)!r} have a malformed {_TIED_KEY!r} header entry")
    # format 2 of a Llama-shaped model, or one of ours saved again by transformers (none of our names starts so)
    if header.get(_NAMES_KEY) == "hugging_face" or any(n.startswith("model.") for n in tensors):
        from .export import course_lib_names
        tensors, aliases = course_lib_names(tensors, aliases, file)
    return tensors, aliases


def read_config(path: PathLike) -> ModelConfig:
    """The ``ModelConfig`` stored in checkpoint folder ``path``."""
    file = _resolve_folder(path) / CONFIG_FILE
    data = read_json(file, "checkpoint config")
    if not isinstance(data, dict):
        raise ValueError(f"checkpoint config {str(file)!r} must hold a JSON object, got {type(data).__name__}")
    if "model_type" in data:      # Hugging Face's schema: ours under "course_lib", or a folder from elsewhere
        from .export import COURSE_LIB_KEY, config_from_hf
        if not isinstance(data.get(COURSE_LIB_KEY), dict):
            return config_from_hf(data, file)
        data = data[COURSE_LIB_KEY]
    check_stored_config(data, file)
    try:
        return ModelConfig.from_dict(data)
    except (TypeError, ValueError) as err:
        raise ValueError(f"checkpoint config {str(file)!r} is not a valid ModelConfig: {err}") from None


def check_finite(tensors: Dict[str, torch.Tensor], where: PathLike) -> None:
    """Refuse NaN/inf weights (a model that outputs NaN and, greedily, token 0 forever)."""
    bad = [n for n, t in tensors.items() if t.is_floating_point() and not bool(torch.isfinite(t).all())]
    if bad:
        raise ValueError(f"checkpoint {str(where)!r} holds non-finite (NaN/inf) weights in {', '.join(bad[:5])}"
                         f"{f' and {len(bad) - 5} more' if len(bad) > 5 else ''}; it is not usable (a diverged "
                         "run?): load an earlier checkpoint")


def _describe(t: torch.Tensor) -> str:
    return f"{tuple(t.shape)} {str(t.dtype).replace('torch.', '')}"


def _match_report(model: nn.Module, tensors: Dict[str, torch.Tensor]) -> List[str]:
    """Lines describing every missing, unexpected and mis-shaped tensor (empty when all fit)."""
    aliases = tied_aliases(model)
    expected = {n: t for n, t in model.state_dict().items() if n not in aliases}
    lines = []
    missing = [n for n in expected if n not in tensors]
    unexpected = [n for n in tensors if n not in expected]
    shaped = [n for n in expected if n in tensors and tuple(tensors[n].shape) != tuple(expected[n].shape)]
    for n in missing:
        lines.append(f"  missing in checkpoint: {n} {_describe(expected[n])}")
    for n in unexpected:
        lines.append(f"  unexpected in checkpoint: {n} {_describe(tensors[n])}")
    for n in shaped:
        lines.append(f"  shape mismatch: {n} checkpoint {tuple(tensors[n].shape)} vs model {tuple(expected[n].shape)}")
    for n in expected:
        if n in tensors and n not in shaped and expected[n].is_floating_point() != tensors[n].is_floating_point():
            lines.append(f"  dtype mismatch: {n} checkpoint {_describe(tensors[n])} vs model {_describe(expected[n])}")
    return lines


def _copy_into(model: nn.Module, tensors: Dict[str, torch.Tensor]) -> None:
    """Copy checkpoint tensors into the model's own storage (tied parameters stay one tensor)."""
    aliases = tied_aliases(model)
    state = model.state_dict(keep_vars=True)
    with torch.no_grad():
        for name, target in state.items():
            if name in aliases:
                continue  # the same memory as aliases[name], written once
            target.copy_(tensors[name].to(device=target.device, dtype=target.dtype))


def _config_diff(a: ModelConfig, b: ModelConfig) -> List[str]:
    da, db = a.to_dict(), b.to_dict()
    return [f"{k}: model {da[k]!r} vs checkpoint {db.get(k)!r}" for k in sorted(da) if da[k] != db.get(k)]


# ============================================================================ public API
def save_checkpoint(model: nn.Module, path: PathLike, overwrite: bool = True, **metadata: Any) -> Path:
    """Save ``model`` (and a ``tokenizer=`` that has ``save(dir)``, beside it) to the folder ``path`` atomically.

    ``metadata`` (step, loss, tokenizer, notes, ...) goes to ``metadata.json`` next to
    ``course_lib_version`` and ``format_version``; values must be JSON-serialisable (paths, one-element
    tensors and numpy scalars are converted). Tied weights are stored once and re-tied on load.
    """
    from ._version import __version__

    _config_of(model)  # fail before touching the disk if this is not a course_lib model
    tok = metadata.pop("tokenizer") if callable(getattr(metadata.get("tokenizer"), "save", None)) else None
    meta = {"format_version": FORMAT_VERSION, "course_lib_version": __version__,
            "num_parameters": sum(p.numel() for p in model.parameters())}
    clash = sorted(set(metadata) & set(meta))
    if clash:
        raise ValueError(f"metadata keys {clash} are reserved by save_checkpoint; rename them")
    meta.update(metadata)
    meta_text = json_text(meta, "save_checkpoint metadata")
    with atomic_write_dir(path, overwrite=overwrite, replaceable=CHECKPOINT_FILES) as tmp:
        write_model_files(model, tmp, tok)
        (tmp / METADATA_FILE).write_text(meta_text + "\n", encoding="utf-8")
        if tok is not None: tok.save(tmp)  # noqa: E701 (load_tokenizer reads it back)
    return Path(path)


def load_checkpoint_metadata(path: PathLike) -> dict:
    """The ``metadata.json`` dict of the checkpoint folder ``path``."""
    data = read_json(_resolve_folder(path) / METADATA_FILE, "checkpoint metadata")
    if not isinstance(data, dict):
        raise ValueError(f"checkpoint metadata {str(Path(path) / METADATA_FILE)!r} must hold a JSON object")
    return data


def load_checkpoint(path: PathLike, device: Union[str, torch.device] = "cpu") -> nn.Module:
    """Build a ``Transformer`` from the checkpoint folder ``path`` and load its weights (strictly).

    The model takes the dtype of the stored floating-point weights (so a bf16 checkpoint stays bf16)
    and is moved to ``device``; it is returned in eval mode. A Hugging Face Llama/Qwen3 folder that
    is not a course_lib checkpoint is read by ``export.from_hf``. Any missing, unexpected or mis-shaped
    tensor raises ``ValueError`` listing all of them, never a partial load.
    """
    from .export import from_hf, is_foreign_hf_folder
    from .model import Transformer

    folder = _resolve_folder(path)
    if is_foreign_hf_folder(folder):       # e.g. MiniMind's or an export: Hugging Face names, sharded or not
        return from_hf(folder, device=pick_device(device))
    config = read_config(folder)
    tensors, _ = read_model_tensors(folder)
    check_finite(tensors, folder)
    model = Transformer(config)
    problems = _match_report(model, tensors)
    if problems:
        raise ValueError(f"checkpoint {str(folder)!r} does not fit its own config.json "
                         f"({len(problems)} problems):\n" + "\n".join(problems))
    float_dtypes = {t.dtype for t in tensors.values() if t.is_floating_point()}
    if len(float_dtypes) == 1:
        model.to(dtype=float_dtypes.pop())
    _copy_into(model, tensors)
    model.to(pick_device(device))          # a ValueError naming the device when this machine lacks it
    model.eval()
    return model


def load_state_into(model: nn.Module, path: PathLike) -> nn.Module:
    """Load the weights of checkpoint ``path`` into an existing ``model`` (strict; for resuming).

    Tensors are copied into the model's own parameters (keeping their device, dtype and any
    optimizer references). A mismatch raises ``ValueError`` naming every tensor and the config fields
    that differ: the checkpoint belongs to a different config.
    """
    folder = _resolve_folder(path)
    tensors, _ = read_model_tensors(folder)
    check_finite(tensors, folder)
    problems = _match_report(model, tensors)
    if problems:
        detail = ""
        config = getattr(model, "config", None)
        if isinstance(config, ModelConfig) and (folder / CONFIG_FILE).is_file():
            with contextlib.suppress(ValueError, FileNotFoundError):
                diff = _config_diff(config, read_config(folder))
                if diff:
                    detail = "\nconfig fields that differ:\n" + "\n".join(f"  {d}" for d in diff)
        raise ValueError(f"checkpoint {str(folder)!r} belongs to a different config than this model "
                         f"({len(problems)} tensors do not fit):\n" + "\n".join(problems) + detail)
    _copy_into(model, tensors)
    return model


# ============================================================================ a run's step_<N> folders
def list_checkpoints(out_dir: PathLike) -> List[Path]:
    """The complete ``step_<N>`` folders under ``out_dir``, oldest first."""
    out = Path(out_dir)
    if not out.is_dir():
        return []
    found = []
    for p in out.iterdir():
        m = STEP_DIR.match(p.name)
        if m and p.is_dir() and (p / MODEL_FILE).is_file():
            found.append((int(m.group(1)), p))
    return [p for _, p in sorted(found)]


def step_of(folder: PathLike) -> int:
    """N of a ``step_<N>`` folder."""
    m = STEP_DIR.match(Path(folder).name)
    if not m:
        raise ValueError(f"{str(folder)!r} is not a step_<N> folder")
    return int(m.group(1))


def latest_checkpoint(out_dir: PathLike) -> Optional[Path]:
    """The newest ``step_<N>`` folder under ``out_dir`` (None when there is none)."""
    found = list_checkpoints(out_dir)
    return found[-1] if found else None


def resolve_checkpoint(path: PathLike, need_train_state: bool = False) -> Path:
    """A checkpoint folder from a step folder or a run folder (then its newest ``step_<N>``).

    Raises ``FileNotFoundError`` naming the path when there is no checkpoint there.
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"checkpoint {str(p)!r} does not exist")
    if p.is_dir() and not (p / MODEL_FILE).is_file():
        newest = latest_checkpoint(p)
        if newest is None:
            raise FileNotFoundError(f"no checkpoint in {str(p)!r}: expected {MODEL_FILE} or step_<N>/ folders")
        p = newest
    if not p.is_dir():
        raise FileNotFoundError(f"checkpoint {str(p)!r} is not a folder")
    if need_train_state and not (p / TRAIN_STATE_JSON).is_file():
        raise FileNotFoundError(f"{str(p)!r} holds model weights but no {TRAIN_STATE_JSON}: it cannot be resumed "
                                "(it is a plain model checkpoint; load it with load_checkpoint instead)")
    return p


# ============================================================================ the shipped pretrained model
# The small pretrained model shipped with the course: the ``tiny`` preset (about 1.6 M parameters)
# trained on the default corpus (People's Daily) with a 6400-token byte-level BPE tokenizer, a
# checkpoint folder (plus tokenizer.json) in ``course_lib/assets/pretrained/<name>/``, with
# ``metadata.json`` saying how it was built. Notebooks that need a model which has learned
# something load it instead of retraining; ``python scripts/build_pretrained.py``
# (``make pretrained``) rebuilds it deterministically in about ten minutes on a 2-core CPU.
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
    from .tokenizer import load_tokenizer

    folder = pretrained_path(name)
    model = load_checkpoint(folder, device=device)
    tokenizer = load_tokenizer(folder)
    return model, tokenizer


__all__ = ["load_pretrained", "pretrained_path", "pretrained_metadata", "available_pretrained", "PRETRAINED_DIR",
           "DEFAULT_PRETRAINED", "list_checkpoints", "latest_checkpoint", "step_of", "resolve_checkpoint", "save_checkpoint", "load_checkpoint", "load_checkpoint_metadata", "load_state_into",
           "atomic_write_dir", "atomic_write_json", "atomic_write_text", "check_replaceable", "check_stored_config", "check_finite", "CHECKPOINT_FILES", "read_json", "write_model_files",
           "read_model_tensors", "read_config", "tied_aliases", "model_tensors"]
