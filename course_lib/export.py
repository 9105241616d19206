"""Export to the Hugging Face Llama format: a folder ``LlamaForCausalLM.from_pretrained`` loads.

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
naming the field, instead of writing a folder that loads but computes something else.
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Dict, List, Optional, Union

import torch
from torch import nn

from .checkpoint import TOKENIZER_FILES, atomic_write_dir, json_text
from .config import ModelConfig

PathLike = Union[str, os.PathLike]


def llama_incompatibilities(config: ModelConfig) -> List[str]:
    """Why ``config`` cannot be written as a Hugging Face Llama (empty list: it can)."""
    c = config
    problems = []

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
    need(not c.qk_norm, "qk_norm", c.qk_norm, "False")
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
                    pad_token_id: Optional[int] = None) -> Dict[str, Any]:
    """The ``config.json`` dict of a Hugging Face ``LlamaForCausalLM`` equivalent to ``config``."""
    problems = llama_incompatibilities(config)
    if problems:
        raise ValueError("this model cannot be exported as a Hugging Face Llama: " + "; ".join(problems))
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
    return out


def hf_llama_state_dict(model: nn.Module) -> Dict[str, torch.Tensor]:
    """Our tensors under Hugging Face Llama names (contiguous CPU copies; ``lm_head`` only if untied)."""
    c = model.config
    sd = {"model.embed_tokens.weight": model.embed_tokens.weight, "model.norm.weight": model.norm.weight}
    if not c.tie_embeddings:
        sd["lm_head.weight"] = model.lm_head.weight
    for i, layer in enumerate(model.layers):
        p = f"model.layers.{i}."
        sd[p + "input_layernorm.weight"] = layer.attn_norm.weight
        sd[p + "post_attention_layernorm.weight"] = layer.ffn_norm.weight
        for name in ("q_proj", "k_proj", "v_proj", "o_proj"):
            sd[p + f"self_attn.{name}.weight"] = getattr(layer.attn, name).weight
        for name in ("gate_proj", "up_proj", "down_proj"):
            sd[p + f"mlp.{name}.weight"] = getattr(layer.ffn, name).weight
    return {k: v.detach().to("cpu").contiguous() for k, v in sd.items()}


def export_hf_llama(model: nn.Module, out_dir: PathLike, tokenizer: Any = None,
                    bos_token_id: Optional[int] = None, eos_token_id: Optional[Union[int, List[int]]] = None,
                    pad_token_id: Optional[int] = None, overwrite: bool = True) -> Path:
    """Write ``model`` as a Hugging Face Llama folder (``config.json``, ``model.safetensors``,
    ``generation_config.json``, and the tokenizer if given); returns the folder.

    tokenizer: any object with ``save(dir)`` (our tokenizers); its ``bos_id``/``eos_id``/``pad_id``
        (or ``bos_token_id``/...) attributes fill the config's special ids unless they are given here.
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

    def special(given, *names):
        if given is not None or tokenizer is None:
            return given
        for name in names:
            value = getattr(tokenizer, name, None)
            if isinstance(value, int) and not isinstance(value, bool):
                return value
        return None

    bos = special(bos_token_id, "bos_token_id", "bos_id")
    eos = special(eos_token_id, "eos_token_id", "eos_id")
    pad = special(pad_token_id, "pad_token_id", "pad_id")
    for name, value in (("bos_token_id", bos), ("pad_token_id", pad)):
        if value is not None and not (isinstance(value, int) and 0 <= value < config.vocab_size):
            raise ValueError(f"{name}={value!r} must be a token id in [0, {config.vocab_size - 1}]")
    eos_ids = [eos] if isinstance(eos, int) else (list(eos) if eos is not None else [])
    if any(not isinstance(e, int) or not 0 <= e < config.vocab_size for e in eos_ids):
        raise ValueError(f"eos_token_id={eos!r} must be token ids in [0, {config.vocab_size - 1}]")

    dtype = next(model.parameters()).dtype
    hf_config = hf_llama_config(config, dtype, bos, eos, pad)          # raises for non-Llama configs
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
    return Path(out_dir)


__all__ = ["export_hf_llama", "hf_llama_config", "hf_llama_state_dict", "llama_incompatibilities"]
