"""Hugging Face interop, both directions: export to a Llama (or, for ``qk_norm`` models, Qwen3)
folder that ``transformers`` loads, and ``from_hf`` to read such a folder back as a course_lib model.

Our default model *is* a Llama: pre-norm RMSNorm, RoPE in the rotate-half layout, grouped-query
attention without biases, SwiGLU (``down(silu(gate(x)) * up(x))``), optionally tied embeddings. So
the export is a renaming of tensors plus a ``config.json`` in Llama's vocabulary; no weight is
permuted or changed, and the exported model gives the same logits.

Name mapping (ours -> Hugging Face)::

    embed_tokens.weight                 model.embed_tokens.weight
    layers.{i}.attn_norm.weight         model.layers.{i}.input_layernorm.weight
    layers.{i}.attn.{q,k,v,o}_proj      model.layers.{i}.self_attn.{q,k,v,o}_proj
    layers.{i}.ffn_norm.weight          model.layers.{i}.post_attention_layernorm.weight
    layers.{i}.ffn.{gate,up,down}_proj  model.layers.{i}.mlp.{gate,up,down}_proj
    norm.weight                         model.norm.weight
    lm_head.weight                      lm_head.weight (omitted when tied: tie_word_embeddings=true)

Every switch that makes the network something Llama cannot compute (another position scheme,
post-norm, LayerNorm, QK-norm, shared projections, no W_O, another FFN, MoE, no residuals,
bidirectional attention, another attention scale, NTK RoPE scaling, ...) raises ``ValueError``
naming the field, instead of writing a folder that loads but computes something else. QK-norm is
the one exception: Qwen3 is this Llama plus an RMSNorm over each head's q and k before RoPE
(``self_attn.q_norm`` / ``k_norm``, our ``attn.q_norm`` / ``k_norm``), so a ``qk_norm`` model
exports as ``Qwen3ForCausalLM`` (``format="qwen3"``, chosen automatically).

A course_lib checkpoint of such a model is written in this layout too (checkpoint format 2, see
:func:`hf_checkpoint_layout`), its full ``ModelConfig`` under ``config.json``'s ``"course_lib"`` key,
so transformers opens a training run's folder as it is.

Import (:func:`from_hf`) is the same renaming read backwards, for Llama- and Qwen3-shaped folders
(MiniMind's models among them), so the course's instruments can look inside a released model.
"""
from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

import torch
from torch import nn

from .checkpoint import TOKENIZER_FILES, atomic_write_dir, json_text
from .config import ModelConfig

PathLike = Union[str, os.PathLike]


HF_FORMATS = ("llama", "qwen3")
_ARCHITECTURES = {"llama": "LlamaForCausalLM", "qwen3": "Qwen3ForCausalLM"}


def hf_format(config: ModelConfig) -> str:
    """The Hugging Face architecture a config exports as: 'qwen3' with ``qk_norm``, else 'llama'."""
    return "qwen3" if config.qk_norm else "llama"


def _check_format(format: str) -> str:
    if format not in HF_FORMATS:
        raise ValueError(f"format={format!r} must be one of {HF_FORMATS}")
    return format


def llama_incompatibilities(config: ModelConfig, format: str = "llama") -> List[str]:
    """Why ``config`` cannot be written as a Hugging Face Llama, or Qwen3 with ``format="qwen3"``
    (empty list: it can)."""
    c = config
    problems = []
    _check_format(format)

    def need(ok: bool, field: str, value: Any, allowed: str) -> None:
        if not ok:
            problems.append(f"{field}={value!r} (Llama needs {allowed})")

    need(c.pos == "rope", "pos", c.pos, "'rope'")
    need(c.rope_scaling in ("none", "pi", "yarn"), "rope_scaling", c.rope_scaling,
         "'none', 'pi' (exported as rope_type 'linear') or 'yarn'; 'ntk' here is a static base change that "
         "Llama's 'dynamic' scaling does not reproduce")
    need(c.norm_placement == "pre", "norm_placement", c.norm_placement, "'pre'")
    need(c.norm_type == "rmsnorm", "norm_type", c.norm_type, "'rmsnorm'")
    need(c.residual, "residual", c.residual, "True")
    need(math.isclose(c.resolved_attn_scale, 1.0 / math.sqrt(c.head_dim), rel_tol=1e-6), "attn_scale",
         c.attn_scale, f"'rsqrt_d' = 1/sqrt(head_dim) = {1.0 / math.sqrt(c.head_dim):.6g}")
    if format == "qwen3":
        need(c.qk_norm, "qk_norm", c.qk_norm, "True: Qwen3 always RMS-normalises q and k; use format='llama'")
    else:
        need(not c.qk_norm, "qk_norm", c.qk_norm, "False; a qk_norm model exports as format='qwen3'")
    need(not c.tie_qk, "tie_qk", c.tie_qk, "False: separate q_proj and k_proj")
    need(not c.tie_kv, "tie_kv", c.tie_kv, "False: separate k_proj and v_proj")
    need(c.use_wo, "use_wo", c.use_wo, "True: an o_proj")
    need(c.causal, "causal", c.causal, "True")
    need(c.mask_fill == "-inf", "mask_fill", c.mask_fill, "'-inf'")
    need(c.attn_impl in ("sdpa", "naive", "chunked"), "attn_impl", c.attn_impl,
         "softmax attention ('sdpa', 'naive' or 'chunked')")
    need(c.ffn_type == "swiglu", "ffn_type", c.ffn_type, "'swiglu'")
    need(c.moe_experts == 0, "moe_experts", c.moe_experts, "0 (a dense FFN; use a Mixtral-style format for MoE)")
    return problems


def hf_llama_config(config: ModelConfig, dtype: torch.dtype = torch.float32, bos_token_id: Optional[int] = None,
                    eos_token_id: Optional[Union[int, List[int]]] = None,
                    pad_token_id: Optional[int] = None, format: Optional[str] = None) -> Dict[str, Any]:
    """The ``config.json`` dict of a Hugging Face ``LlamaForCausalLM`` (or ``Qwen3ForCausalLM``,
    ``format="qwen3"``, the default for ``qk_norm`` models) equivalent to ``config``."""
    format = _check_format(format or hf_format(config))
    problems = llama_incompatibilities(config, format)
    if problems:
        raise ValueError(f"this model cannot be exported as a Hugging Face {format}: " + "; ".join(problems))
    c = config
    rope: Dict[str, Any] = {"rope_type": "default", "rope_theta": float(c.rope_theta)}
    if c.rope_scaling == "pi" and c.rope_scaling_factor != 1.0:
        rope = {"rope_type": "linear", "rope_theta": float(c.rope_theta), "factor": float(c.rope_scaling_factor)}
    elif c.rope_scaling == "yarn" and c.rope_scaling_factor != 1.0:
        rope = {"rope_type": "yarn", "rope_theta": float(c.rope_theta), "factor": float(c.rope_scaling_factor),
                "original_max_position_embeddings": int(c.rope_original_max_seq_len or c.max_seq_len),
                "beta_fast": 32.0, "beta_slow": 1.0}
    out = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "vocab_size": c.vocab_size,
        "hidden_size": c.dim,
        "intermediate_size": c.ffn_dim,
        "num_hidden_layers": c.n_layers,
        "num_attention_heads": c.n_heads,
        "num_key_value_heads": c.n_kv_heads,
        "head_dim": c.head_dim,
        "hidden_act": "silu",
        "max_position_embeddings": int(getattr(c, "context_length", c.max_seq_len)),
        "rms_norm_eps": c.norm_eps,
        "rope_theta": float(c.rope_theta),       # older transformers read these two top-level keys,
        "rope_scaling": None if rope["rope_type"] == "default" else dict(rope, type=rope["rope_type"]),
        "rope_parameters": rope,                  # newer ones read rope_parameters
        "tie_word_embeddings": bool(c.tie_embeddings),
        "attention_bias": False,
        "attention_dropout": 0.0,
        "mlp_bias": False,
        "initializer_range": c.init_std,
        "pretraining_tp": 1,
        "use_cache": True,
        "bos_token_id": bos_token_id,
        "eos_token_id": eos_token_id,
        "pad_token_id": pad_token_id,
        "torch_dtype": str(dtype).replace("torch.", ""),
    }
    if format == "qwen3":
        del out["mlp_bias"], out["pretraining_tp"]
        out.update(architectures=[_ARCHITECTURES["qwen3"]], model_type="qwen3", use_sliding_window=False,
                   sliding_window=None, max_window_layers=c.n_layers, layer_types=["full_attention"] * c.n_layers)
    return out


# our state-dict names and Hugging Face's ({i}: the layer): the one table both directions read
_NAME_PAIRS = [("embed_tokens.weight", "model.embed_tokens.weight"), ("norm.weight", "model.norm.weight"),
               ("lm_head.weight", "lm_head.weight"),
               ("layers.{i}.attn_norm.weight", "model.layers.{i}.input_layernorm.weight"),
               ("layers.{i}.ffn_norm.weight", "model.layers.{i}.post_attention_layernorm.weight")]
_NAME_PAIRS += [(f"layers.{{i}}.attn.{n}.weight", f"model.layers.{{i}}.self_attn.{n}.weight")
                for n in ("q_proj", "k_proj", "v_proj", "o_proj", "q_norm", "k_norm")]
_NAME_PAIRS += [(f"layers.{{i}}.ffn.{n}.weight", f"model.layers.{{i}}.mlp.{n}.weight")
                for n in ("gate_proj", "up_proj", "down_proj")]


def _rename(name: str, to_hf: bool) -> Optional[str]:
    """``name`` in the other vocabulary (ours -> Hugging Face with ``to_hf``), None when it has no counterpart."""
    for ours, hf in _NAME_PAIRS:
        source, target = (ours, hf) if to_hf else (hf, ours)
        m = re.fullmatch(re.escape(source).replace(r"\{i\}", r"(\d+)"), name)
        if m:
            return target.replace("{i}", m.group(1)) if m.groups() else target
    return None


def _hf_named_parameters(model: nn.Module) -> Dict[str, torch.Tensor]:
    """Our parameters (the tensors themselves) under Hugging Face Llama/Qwen3 names (``lm_head`` only
    when untied: ``named_parameters`` lists a tied weight once, under ``embed_tokens``)."""
    named = dict(model.named_parameters())
    if model.config.tie_embeddings and "embed_tokens.weight" not in named:
        raise ValueError("a tied model must own its embedding as embed_tokens.weight")
    renamed = {n: _rename(n, to_hf=True) for n in named}
    unknown = [n for n, hf in renamed.items() if hf is None]
    if unknown:
        raise ValueError(f"no Hugging Face name for {', '.join(unknown[:5])}")
    return {renamed[n]: p for n, p in named.items()}


def hf_llama_state_dict(model: nn.Module) -> Dict[str, torch.Tensor]:
    """Our tensors under Hugging Face Llama (Qwen3 with ``qk_norm``) names (contiguous CPU copies;
    ``lm_head`` only if untied)."""
    return {k: v.detach().to("cpu").contiguous() for k, v in _hf_named_parameters(model).items()}


def special_token_ids(tokenizer: Any, bos: Any = None, eos: Any = None, pad: Any = None) -> Tuple[Any, Any, Any]:
    """(bos, eos, pad) ids: those given, else the tokenizer's ``bos_id``/``eos_id``/``pad_id`` (or
    ``bos_token_id``/...) when it has them as ints, else None."""
    def special(given, *names):
        if given is not None or tokenizer is None:
            return given
        for name in names:
            value = getattr(tokenizer, name, None)
            if isinstance(value, int) and not isinstance(value, bool):
                return value
        return None

    return (special(bos, "bos_token_id", "bos_id"), special(eos, "eos_token_id", "eos_id"),
            special(pad, "pad_token_id", "pad_id"))


def export_hf_llama(model: nn.Module, out_dir: PathLike, tokenizer: Any = None,
                    bos_token_id: Optional[int] = None, eos_token_id: Optional[Union[int, List[int]]] = None,
                    pad_token_id: Optional[int] = None, overwrite: bool = True, format: Optional[str] = None) -> Path:
    """Write ``model`` as a Hugging Face Llama folder (``config.json``, ``model.safetensors``,
    ``generation_config.json``, and the tokenizer if given); returns the folder. ``format``:
    'llama' or 'qwen3' (default: 'qwen3' for ``qk_norm`` models, else 'llama').

    tokenizer: any object with ``save(dir)`` (our tokenizers); its ``bos_id``/``eos_id``/``pad_id``
        (or ``bos_token_id``/...) attributes fill the config's special ids unless they are given here.
        It must write a ``tokenizer.json`` that ``transformers`` loads (checked when transformers is
        installed): a character or byte tokenizer is refused with a ``ValueError``.
    The folder is written atomically (see ``checkpoint.atomic_write_dir``); an existing folder is
    replaced only when it holds nothing but an export's files (else ``FileExistsError``). Raises ``ValueError``
    naming the field when the config is not expressible as Llama.
    """
    from safetensors.torch import save_file

    config = getattr(model, "config", None)
    if not isinstance(config, ModelConfig):
        raise ValueError(f"model of type {type(model).__name__} has no .config ModelConfig; pass a course_lib Transformer")
    if tokenizer is not None and not callable(getattr(tokenizer, "save", None)):
        raise ValueError(f"tokenizer must have a save(dir) method, got {type(tokenizer).__name__}")

    bos, eos, pad = special_token_ids(tokenizer, bos_token_id, eos_token_id, pad_token_id)
    for name, value in (("bos_token_id", bos), ("pad_token_id", pad)):
        if value is not None and not (isinstance(value, int) and 0 <= value < config.vocab_size):
            raise ValueError(f"{name}={value!r} must be a token id in [0, {config.vocab_size - 1}]")
    eos_ids = [eos] if isinstance(eos, int) else (list(eos) if eos is not None else [])
    if any(not isinstance(e, int) or not 0 <= e < config.vocab_size for e in eos_ids):
        raise ValueError(f"eos_token_id={eos!r} must be token ids in [0, {config.vocab_size - 1}]")

    dtype = next(model.parameters()).dtype
    hf_config = hf_llama_config(config, dtype, bos, eos, pad, format)  # raises for non-Llama configs
    tensors = hf_llama_state_dict(model)
    generation = {"bos_token_id": bos, "eos_token_id": eos, "pad_token_id": pad, "do_sample": False}
    ours = ("model.safetensors", "config.json", "generation_config.json", *TOKENIZER_FILES)
    with atomic_write_dir(out_dir, overwrite=overwrite, replaceable=ours, what="Llama export") as tmp:
        save_file(tensors, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        (tmp / "config.json").write_text(json_text(hf_config, "the exported config") + "\n", encoding="utf-8")
        (tmp / "generation_config.json").write_text(json_text(generation, "the generation config") + "\n",
                                                    encoding="utf-8")
        if tokenizer is not None:
            tokenizer.save(tmp)
            _check_tokenizer_loads(tmp, tokenizer)
    return Path(out_dir)


def _check_tokenizer_loads(folder: Path, tokenizer: Any) -> None:
    """Refuse a tokenizer that ``transformers`` cannot load from ``folder`` (a ValueError saying why)."""
    what = f"tokenizer={type(tokenizer).__name__}"
    fix = ("export a byte-level BPE tokenizer (course_lib.tokenizer.train_tokenizer), or export without "
           "tokenizer= and give the folder a tokenizer that transformers reads")
    if not (folder / "tokenizer.json").is_file():
        raise ValueError(f"{what} wrote no tokenizer.json, so transformers cannot load it; {fix}")
    try:
        from transformers import AutoTokenizer
    except ImportError:                       # nothing to check against
        return
    try:
        AutoTokenizer.from_pretrained(str(folder))
    except Exception as err:                  # transformers raises many kinds here
        reason = " ".join(str(err).split())[:200]
        raise ValueError(f"{what}: transformers cannot load the tokenizer it wrote ({reason}); {fix}") from None


# ============================================================================ checkpoint layout
# A course_lib checkpoint of a model transformers computes the same way is also a Hugging Face
# folder: config.json in Hugging Face's schema carrying our full ModelConfig under this key, and
# model.safetensors under Hugging Face names (see checkpoint.write_model_files).
COURSE_LIB_KEY = "course_lib"


def hf_checkpoint_layout(config: ModelConfig, tensors: Dict[str, torch.Tensor], aliases: Dict[str, str],
                         tokenizer: Any = None
                         ) -> Optional[Tuple[Dict[str, Any], Dict[str, torch.Tensor], Dict[str, str]]]:
    """``(config.json dict, tensors, aliases)`` under Hugging Face names for a checkpoint of
    ``config`` (``tensors``/``aliases`` as ``checkpoint.model_tensors`` gives them; the special
    token ids from ``tokenizer``, if given, so that transformers' generate stops at EOS); None when
    transformers would not compute this model (another position scheme, MoE, ...) or a tensor has no
    Hugging Face name: such a checkpoint keeps course_lib's own layout."""
    fmt = hf_format(config)
    tied = {"lm_head.weight": "embed_tokens.weight"} if config.tie_embeddings else {}
    if llama_incompatibilities(config, fmt) or aliases != tied:
        return None
    names = {n: _rename(n, to_hf=True) for n in [*tensors, *aliases, *aliases.values()]}
    if None in names.values():
        return None
    floats = [t.dtype for t in tensors.values() if t.is_floating_point()]
    bos, eos, pad = (i if isinstance(i, int) and 0 <= i < config.vocab_size else None
                     for i in special_token_ids(tokenizer))
    hf = hf_llama_config(config, floats[0] if floats else torch.float32, bos, eos, pad, format=fmt)
    hf[COURSE_LIB_KEY] = config.to_dict()
    return hf, {names[n]: t for n, t in tensors.items()}, {names[a]: names[b] for a, b in aliases.items()}


def course_lib_names(tensors: Dict[str, torch.Tensor], aliases: Dict[str, str], where: PathLike
                     ) -> Tuple[Dict[str, torch.Tensor], Dict[str, str]]:
    """Tensors and aliases of a checkpoint stored under Hugging Face names, under ours again."""
    names = {n: _rename(n, to_hf=False) for n in [*tensors, *aliases, *aliases.values()]}
    unknown = sorted(n for n, ours in names.items() if ours is None)
    if unknown:
        raise ValueError(f"checkpoint weights {str(where)!r} hold tensors with no course_lib name: "
                         f"{', '.join(unknown[:5])}; the file was changed by another program")
    return {names[n]: t for n, t in tensors.items()}, {names[a]: names[b] for a, b in aliases.items()}


def is_foreign_hf_folder(folder: PathLike) -> bool:
    """True for a Hugging Face model folder that is not a course_lib checkpoint (``from_hf`` reads
    it): a model from elsewhere or an export. One of ours saved again by transformers'
    ``save_pretrained`` keeps the ``"course_lib"`` key, so it is still read as ours, with its exact config."""
    from .checkpoint import read_json

    file = Path(folder) / "config.json"
    if not file.is_file():
        return False
    data = read_json(file, "checkpoint config")
    return isinstance(data, dict) and "model_type" in data and COURSE_LIB_KEY not in data


# ============================================================================ import
_ROPE_TYPES = {"default": "none", "linear": "pi", "yarn": "yarn"}


def config_from_hf(hf: Dict[str, Any], where: PathLike = "config.json") -> ModelConfig:
    """The ``ModelConfig`` of a Hugging Face Llama or Qwen3 ``config.json`` dict; ``ValueError``
    naming every field this library cannot compute (biases, another activation, sliding windows, ...)."""
    kind = hf.get("model_type")
    if kind not in HF_FORMATS:
        raise ValueError(f"{where}: model_type={kind!r}; from_hf reads {HF_FORMATS} (Llama- and Qwen3-shaped "
                         "models, MiniMind's among them)")
    rope = dict(hf.get("rope_parameters") or hf.get("rope_scaling") or {})
    rope_type = rope.get("rope_type", rope.get("type", "default"))
    problems = []

    def need(ok: bool, field: str, allowed: str) -> None:
        if not ok:
            problems.append(f"{field}={hf.get(field, rope.get(field))!r} (needs {allowed})")

    need(hf.get("hidden_act", "silu") == "silu", "hidden_act", "'silu'")
    need(not hf.get("attention_bias", False), "attention_bias", "False")
    need(not hf.get("mlp_bias", False), "mlp_bias", "False")
    need(not hf.get("use_sliding_window", False), "use_sliding_window", "False")
    need(rope_type in _ROPE_TYPES, "rope_type", f"one of {sorted(_ROPE_TYPES)}")
    if rope_type == "yarn":
        need(rope.get("beta_fast", 32.0) == 32.0 and rope.get("beta_slow", 1.0) == 1.0
             and rope.get("attention_factor") is None, "beta_fast", "YaRN's defaults (beta_fast 32, beta_slow 1)")
    if problems:
        raise ValueError(f"{where}: this {kind} model has parts course_lib does not compute: " + "; ".join(problems))
    heads = hf["num_attention_heads"]
    kwargs = dict(vocab_size=hf["vocab_size"], dim=hf["hidden_size"], n_layers=hf["num_hidden_layers"],
                  n_heads=heads, n_kv_heads=hf.get("num_key_value_heads") or heads,
                  head_dim=hf.get("head_dim") or hf["hidden_size"] // heads, ffn_dim=hf["intermediate_size"],
                  max_seq_len=int(hf.get("max_position_embeddings", 2048)),
                  rope_theta=float(rope.get("rope_theta", hf.get("rope_theta", 10000.0))),
                  norm_eps=float(hf.get("rms_norm_eps", 1e-6)), tie_embeddings=bool(hf.get("tie_word_embeddings", False)),
                  qk_norm=kind == "qwen3", init_std=float(hf.get("initializer_range", 0.02)))
    if rope_type != "default":
        kwargs.update(rope_scaling=_ROPE_TYPES[rope_type], rope_scaling_factor=float(rope["factor"]))
        if rope_type == "yarn":
            kwargs["rope_original_max_seq_len"] = rope.get("original_max_position_embeddings")
    try:
        return ModelConfig(**kwargs)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{where}: not expressible as a course_lib ModelConfig: {err}") from None


def from_hf(path: PathLike, device: Union[str, torch.device] = "cpu") -> nn.Module:
    """A course_lib ``Transformer`` (eval mode, the stored dtype) from a Hugging Face folder:
    ``config.json`` with ``model_type`` 'llama' or 'qwen3' and ``*.safetensors`` weights (one file
    or shards). Its logits equal ``transformers``' for the same ids. A course_lib checkpoint folder
    is loaded as such (``checkpoint.load_checkpoint``), also once saved again by transformers'
    ``save_pretrained`` (its exact config is under the ``"course_lib"`` key). Nothing is downloaded: pass a local folder
    (``huggingface_hub.snapshot_download`` fetches one)."""
    from safetensors.torch import load_file

    from .checkpoint import load_checkpoint, read_json
    from .model import Transformer

    folder = Path(path)
    file = folder / "config.json"
    if not file.is_file():
        raise FileNotFoundError(f"from_hf: no config.json in {str(folder)!r} (a local Hugging Face model folder)")
    hf = read_json(file, "Hugging Face config")
    if isinstance(hf, dict) and (COURSE_LIB_KEY in hf or ("model_type" not in hf and "dim" in hf)):
        return load_checkpoint(folder, device=device)     # one of ours (either layout), with its exact config
    if not isinstance(hf, dict):
        raise ValueError(f"{file}: must hold a JSON object")
    config = config_from_hf(hf, file)
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(f"from_hf: no *.safetensors in {str(folder)!r}; for pytorch_model.bin, load it with "
                                "transformers and save_pretrained(folder) it again (safetensors is the default)")
    tensors: Dict[str, torch.Tensor] = {}
    for f in files:
        tensors.update(load_file(str(f)))
    tensors = {k: v for k, v in tensors.items() if not k.endswith("rotary_emb.inv_freq")}
    if config.tie_embeddings:
        tensors.pop("lm_head.weight", None)              # stored by some savers although tied
    model = Transformer(config)
    floats = {t.dtype for t in tensors.values() if t.is_floating_point()}
    if len(floats) == 1:
        model.to(dtype=floats.pop())
    targets = _hf_named_parameters(model)
    problems = [f"missing: {n}" for n in targets if n not in tensors]
    problems += [f"unexpected: {n}" for n in tensors if n not in targets]
    problems += [f"shape of {n}: {tuple(tensors[n].shape)} vs {tuple(p.shape)}" for n, p in targets.items()
                 if n in tensors and tensors[n].shape != p.shape]
    if problems:
        raise ValueError(f"from_hf: the weights in {str(folder)!r} do not fit its config.json ({len(problems)} "
                         "problems):\n  " + "\n  ".join(problems[:20]))
    with torch.no_grad():
        for name, p in targets.items():
            p.copy_(tensors[name])
    return model.to(device).eval()


__all__ = ["export_hf_llama", "hf_llama_config", "hf_llama_state_dict", "llama_incompatibilities", "hf_format",
           "HF_FORMATS", "from_hf", "config_from_hf"]
