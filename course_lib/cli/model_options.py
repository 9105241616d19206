"""Every ``ModelConfig`` switch from the command line, and run files.

    python -m course_lib pretrain --preset tiny --set pos=alibi --set qk_norm=true --set n_kv_heads=2
    python -m course_lib pretrain --config run.json          # {"model": {...}, "train": {...}}

``--set KEY=VALUE`` (repeatable) changes one field of the preset's ``ModelConfig``; the value is
read by the field's type (``true``/``false`` for switches, ``none`` for optional sizes). A run file
holds ``"model"`` (ModelConfig fields) and ``"train"`` (the command's options by their long name,
``max_steps`` or ``max-steps``); options typed on the command line win over the file, and ``--set``
wins over the file's ``"model"``. Unknown names are refused with the closest known ones.

Parsing imports no torch: the choices come from ``config`` and ``schedule``, which need none.
"""
from __future__ import annotations

import argparse
import dataclasses
import difflib
import json
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from .. import config as C
from .common import CLIError

# the fields whose value is one of a fixed set (the rest are numbers, switches or sizes)
FIELD_CHOICES = {"pos": C.POSITION_SCHEMES, "rope_scaling": C.ROPE_SCALINGS, "norm_placement": C.NORM_PLACEMENTS,
                 "norm_type": C.NORM_TYPES, "mask_fill": C.MASK_FILLS, "ffn_type": C.FFN_TYPES,
                 "attn_impl": C.ATTN_IMPLS, "attn_normalizer": C.ATTN_NORMALIZERS}
# set from other options: the tokenizer decides the vocabulary
NOT_SETTABLE = {"vocab_size": "the tokenizer decides it: use --vocab-size (a newly trained tokenizer) or --tokenizer"}
# fields that leave the weights' shapes and meaning alone, so they may change under ``sft --init``
RUNTIME_FIELDS = ("dropout", "attn_impl")

_TRUE, _FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")


def _fields() -> Dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(C.ModelConfig)}


def _unknown(name: str, known, what: str) -> CLIError:
    close = difflib.get_close_matches(name, list(known), n=3, cutoff=0.5)
    close += [k for k in sorted(known) if k not in close and (k.startswith(name) or name.startswith(k))][:3]
    hint = f"; did you mean {', '.join(close)}?" if close else f"; known: {', '.join(sorted(known))}"
    return CLIError(f"{what} {name!r} is not a ModelConfig field{hint}" if what == "--set"
                    else f"{what}: unknown name {name!r}{hint}")


def parse_value(name: str, text: str) -> Any:
    """``text`` read as the type of ModelConfig field ``name`` (annotations are strings here)."""
    kind = str(_fields()[name].type)
    low = text.strip().lower()
    if low in ("none", "null") and kind.startswith("Optional"):
        return None
    try:
        if "bool" in kind:
            if low not in _TRUE + _FALSE:
                raise ValueError
            return low in _TRUE
        if "int" in kind:
            return int(text)
        if kind == "float" or kind == "Optional[float]":
            return float(text)
        if "float" in kind:                      # Union[str, float]: a number or a named choice
            try:
                return float(text)
            except ValueError:
                return text
    except ValueError:
        expected = "true or false" if "bool" in kind else kind.replace("Optional[", "").rstrip("]")
        raise CLIError(f"--set {name}={text}: expected {expected}"
                       + (" or none" if kind.startswith("Optional") else "")) from None
    return text


def parse_set(items: Optional[List[str]]) -> Dict[str, Any]:
    """``["pos=alibi", "qk_norm=true"]`` -> ``{"pos": "alibi", "qk_norm": True}`` (checked by name)."""
    fields, out = _fields(), {}
    for item in items or []:
        name, sep, text = item.partition("=")
        name = name.strip().replace("-", "_")
        if not sep or not name:
            raise CLIError(f"--set {item!r}: expected KEY=VALUE, e.g. --set pos=alibi")
        if name not in fields:
            raise _unknown(name, fields, "--set")
        if name in NOT_SETTABLE:
            raise CLIError(f"--set {name}: {NOT_SETTABLE[name]}")
        out[name] = parse_value(name, text)
    return out


def read_run_file(path: str, parser: argparse.ArgumentParser) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """``(model fields, option defaults)`` from a run file, every name checked against ``parser``."""
    from ..checkpoint import read_json

    data = read_json(Path(path), "--config run file")
    if not isinstance(data, dict) or not set(data) <= {"model", "train"}:
        raise CLIError(f"--config {path}: expected a JSON object with \"model\" and/or \"train\", e.g. "
                       '{"model": {"pos": "alibi"}, "train": {"max_steps": 300}}')
    model, train = data.get("model") or {}, data.get("train") or {}
    if not isinstance(model, dict) or not isinstance(train, dict):
        raise CLIError(f"--config {path}: \"model\" and \"train\" must be JSON objects")
    fields = _fields()
    for name in model:
        if name not in fields:
            raise _unknown(name, fields, f"--config {path} \"model\"")
        if name in NOT_SETTABLE:
            raise CLIError(f"--config {path} \"model\": {name}: {NOT_SETTABLE[name]}")
    options = {a.dest: a for a in parser._actions if a.option_strings and a.dest not in ("help", "config", "model_set")}
    defaults = {}
    for key, value in train.items():
        dest = key.lstrip("-").replace("-", "_")
        if dest not in options:
            raise _unknown(key, options, f"--config {path} \"train\"")
        action = options[dest]
        if action.type is not None and not isinstance(value, bool):
            try:
                value = action.type(str(value))
            except (argparse.ArgumentTypeError, ValueError) as err:
                raise CLIError(f"--config {path} \"train\": {key}={value!r}: {err}") from None
        if action.choices is not None and value not in action.choices:
            raise CLIError(f"--config {path} \"train\": {key}={value!r} must be one of {list(action.choices)}")
        defaults[dest] = value
    return dict(model), defaults


def apply_run_file(parser: argparse.ArgumentParser, argv: List[str], args: argparse.Namespace) -> argparse.Namespace:
    """Re-parse ``argv`` with the run file's ``"train"`` values as defaults (typed options win)."""
    sub = parser.subcommands[args.command]
    model, defaults = read_run_file(args.config, sub)
    sub.set_defaults(**defaults)
    args = parser.parse_args(argv)
    args.model_from_file = model
    return args


def model_changes(args) -> Dict[str, Any]:
    """The run file's ``"model"`` fields overlaid by ``--set`` (which wins)."""
    return {**getattr(args, "model_from_file", {}), **parse_set(getattr(args, "model_set", None))}


def switches_help(preset: str = "tiny") -> str:
    """The epilog that lists every ModelConfig field with its type or choices and its value in
    ``preset`` (the default preset)."""
    values = C.ModelConfig.preset(preset).to_dict()
    lines = [f"model switches (--set KEY=VALUE, or \"model\" in a --config run file), with their value in the "
             f"{preset} preset:"]
    for name, f in _fields().items():
        if name in NOT_SETTABLE:
            continue
        kind = str(f.type)
        if name in FIELD_CHOICES:
            kind = "|".join(FIELD_CHOICES[name])
        elif name == "attn_scale":
            kind = "|".join(C.ATTN_SCALES) + "|<float>"
        else:
            kind = kind.replace("Optional[", "").rstrip("]") + ("|none" if kind.startswith("Optional") else "")
        lines.append(f"  {name:<26} {kind:<36} {values[name]}")
    return "\n".join(lines)


def add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--set", dest="model_set", action="append", metavar="KEY=VALUE", default=None,
                   help="change one ModelConfig field, e.g. --set pos=alibi --set qk_norm=true (repeatable; "
                        "the fields are listed below)")
    p.add_argument("--config", default=None, metavar="RUN.json",
                   help='a run file: {"model": {ModelConfig fields}, "train": {options of this command}}; '
                        "options typed on the command line win")
