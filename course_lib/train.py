"""The trainer: ``TrainConfig`` + ``Trainer(model, train_data, config).fit() -> TrainHistory``.

One optimizer step ("step") consumes one *accumulation window*: ``grad_accum_steps`` micro-batches of
``batch_size`` samples on each of ``world_size`` processes, i.e. a global batch of
``batch_size x grad_accum_steps x world_size`` samples.

What the trainer gets right, and why
------------------------------------
* **Accumulation equals the big batch.** The loss of a window is the sum of its per-token losses
  divided by the number of target tokens in the *whole* window (counted over every micro-batch and,
  under DDP, every process: the count is all-reduced before the first backward). Each micro-batch
  backpropagates ``its loss sum / that global count``, so the accumulated gradient is exactly the
  gradient of the big batch's token mean, even when micro-batches hold different numbers of target
  tokens (padding, SFT masks). Dividing each micro-batch's *mean* by ``grad_accum_steps`` instead
  (``accum_normalize="per_micro"``, what most scripts do) weighs a token in a short micro-batch more
  than one in a long micro-batch; ``"none"`` forgets the division altogether. Both stay available
  for the notebooks that show the difference.
* **Every layout sees the same samples.** Samples come from one stream: epoch ``e`` is a
  permutation of the dataset seeded by ``(seed, e)``, epochs follow each other, and step ``s`` takes
  the next ``global batch`` samples of that stream. Micro-batch ``m`` of process ``r`` takes the
  slice at ``(m * world_size + r) * batch_size``, so ``8 x 1``, ``2 x 4`` and two processes of
  ``2 x 2`` read the same samples in each step.
* **Learning rate** from :func:`course_lib.schedule.lr_at`, a pure function of the step (peak exactly
  ``lr``).
* **Weight decay only on matrices** (parameters with >= 2 dimensions): decaying norm gains and
  biases pulls them towards 0, which is not the "keep weights small" intent. The token embedding
  (and the output head tied to it) is a matrix and is decayed, as in nanoGPT/GPT-2; set
  ``decay_embeddings=False`` to exempt it (some recipes do; the notebooks can compare).
* **A NaN/inf loss or gradient stops the run** with :class:`TrainingDiverged` naming the step,
  *before* the optimizer applies it: the weights in memory are those of the last good step, and
  no checkpoint is written or overwritten.
* **Checkpoints are exact and pickle-free**: ``<out_dir>/step_<N>/`` holds ``model.safetensors``,
  ``config.json``, ``metadata.json``, ``train_state.safetensors`` (optimizer tensors, RNG states as
  uint8 tensors) and ``train_state.json`` (step, stream position, train config, history), written
  atomically. Resuming on the CPU reproduces the uninterrupted run bit for bit.
* **Ctrl-C / SIGTERM** finish the current step, save a resumable checkpoint (with ``out_dir``), return.
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import torch
from torch import nn

from . import distributed as D
from .checkpoint import latest_checkpoint, list_checkpoints
from .config import dataclass_from_dict
from .device import DTYPE_NAMES, autocast, pick_device, pick_dtype
from .data import SampleStream, collate_for
from .losses import IGNORE_INDEX
from .progress import Display, GracefulInterrupt, MetricsLog, TrainHistory
from .schedule import schedule_fn
from .train_state import (check_run_folder, last_good_checkpoint, load_optimizer, load_rng, prune_checkpoints,
                          read_train_checkpoint, rng_tensors, write_train_checkpoint)

OPTIMIZERS = ("adamw", "sgd")
DTYPES = ("auto", *DTYPE_NAMES)
LOSS_REDUCTIONS = ("token_mean", "seq_mean")
ACCUM_NORMALIZE = ("global_tokens", "per_micro", "none")


class TrainingDiverged(RuntimeError):
    """The loss or the gradient norm became NaN or infinite; the update was not applied.

    ``step``: the update that failed (1-based, the one that would have produced ``step_<step>``);
    ``what``: "loss" or "grad norm"; ``last_checkpoint``: the newest good checkpoint (or None; see
    ``train_state.last_good_checkpoint``).
    """

    def __init__(self, step: int, what: str, value: float, lr: float, last_checkpoint: Optional[Path]):
        self.step, self.what, self.value, self.lr, self.last_checkpoint = step, what, value, lr, last_checkpoint
        where = (f"the last good checkpoint is {last_checkpoint}" if last_checkpoint is not None else "no checkpoint "
                 "of this run is good (none saved, or each diverging: a loss above the first step's or not finite)")
        super().__init__(f"training diverged at step {step}: the {what} is {value} (lr={lr:.3g}); the update was "
                         f"not applied and {where}. Try a lower lr, more warmup or grad_clip.")


# ============================================================================ configuration
@dataclass
class TrainConfig:
    """Everything that defines a training run (the model is defined by ``ModelConfig``).

    Batch: ``batch_size`` samples per micro-batch *per process*, ``grad_accum_steps`` micro-batches
    per optimizer step; ``max_steps`` optimizer steps in all.
    Schedule: ``lr`` (peak), ``min_lr`` (None: lr / 10), ``warmup_steps``, ``schedule`` (one of
    ``course_lib.schedule.SCHEDULES``), ``decay_fraction`` and ``wsd_decay`` for "wsd".
    Optimizer: ``optimizer`` ("adamw" | "sgd"), ``weight_decay`` (on >= 2-D weights only),
    ``decay_embeddings``, ``betas``, ``eps`` (AdamW), ``momentum`` (SGD), ``grad_clip`` (max global
    grad norm; None or inf: no clipping, the norm is still logged).
    Precision: ``dtype`` ("auto": bf16 autocast on GPUs that support it, else float32; "float16"
    uses a GradScaler), ``compile`` (``torch.compile`` the model).
    Loss: ``loss_reduction`` ("token_mean": every target token weighs the same; "seq_mean": every
    sequence weighs the same), ``accum_normalize`` ("global_tokens": divide by the count of the
    whole window, exact; "per_micro": mean per micro-batch / grad_accum_steps; "none": mean per
    micro-batch, no division).
    Evaluation: every ``eval_every`` steps (0: only at the end) on ``eval_batches`` batches.
    Checkpoints: every ``save_every`` steps (0: only at the end) under ``out_dir`` (None: never);
    ``keep_last_checkpoints`` (None: keep all). With ``out_dir``, ``<out_dir>/metrics.jsonl`` gets a
    JSON line per log step, eval step and the last step (``progress.MetricsLog``; rank 0 writes).
    Display: ``log_every`` (a log line every N steps; 0: none), ``progress`` (True/False/"auto": a
    tqdm bar in notebooks and terminals, plain lines when output is piped), ``track_layer_grad_norms``.
    Other: ``seed`` (sample order and dropout), ``shuffle``, ``device`` ("auto" or a torch device).
    """

    batch_size: int = 8
    grad_accum_steps: int = 1
    max_steps: int = 100
    lr: float = 1e-3
    min_lr: Optional[float] = None
    warmup_steps: int = 0
    schedule: str = "cosine"
    decay_fraction: float = 0.2
    wsd_decay: str = "linear"
    optimizer: str = "adamw"
    weight_decay: float = 0.1
    decay_embeddings: bool = True
    betas: Tuple[float, float] = (0.9, 0.95)
    eps: float = 1e-8
    momentum: float = 0.9
    grad_clip: Optional[float] = 1.0
    dtype: str = "auto"
    compile: bool = False
    loss_reduction: str = "token_mean"
    accum_normalize: str = "global_tokens"
    eval_every: int = 0
    eval_batches: int = 20
    save_every: int = 0
    out_dir: Optional[str] = None
    keep_last_checkpoints: Optional[int] = None
    seed: int = 0
    shuffle: bool = True
    device: str = "auto"
    log_every: int = 10
    progress: Union[bool, str] = "auto"
    track_layer_grad_norms: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.betas, list):
            self.betas = tuple(self.betas)
        if self.out_dir is not None:
            self.out_dir = os.fspath(self.out_dir)
        if isinstance(self.device, torch.device):
            self.device = str(self.device)
        self.validate()

    def validate(self) -> None:
        """Raise ``ValueError`` naming the field, its value and the allowed range."""
        def need(ok: bool, msg: str) -> None:
            if not ok:
                raise ValueError(msg)

        def is_int(v) -> bool:
            return isinstance(v, int) and not isinstance(v, bool)

        def is_num(v) -> bool:
            return isinstance(v, (int, float)) and not isinstance(v, bool)

        for name in ("batch_size", "grad_accum_steps", "max_steps", "eval_batches"):
            v = getattr(self, name)
            need(is_int(v) and v >= 1, f"{name}={v!r} must be an integer >= 1")
        for name in ("eval_every", "save_every", "log_every", "warmup_steps"):
            v = getattr(self, name)
            need(is_int(v) and v >= 0, f"{name}={v!r} must be an integer >= 0")
        need(is_num(self.lr) and math.isfinite(self.lr) and self.lr > 0, f"lr={self.lr!r} must be a finite number > 0")
        need(self.min_lr is None or (is_num(self.min_lr) and 0 <= self.min_lr <= self.lr),
             f"min_lr={self.min_lr!r} must be None (lr / 10) or in [0, lr={self.lr}]")
        need(is_num(self.decay_fraction), f"decay_fraction={self.decay_fraction!r} must be a number in [0, 1]")
        self.schedule_fn()                                   # the schedule's own checks, once
        need(self.optimizer in OPTIMIZERS, f"optimizer={self.optimizer!r} must be one of {OPTIMIZERS}")
        need(is_num(self.weight_decay) and self.weight_decay >= 0, f"weight_decay={self.weight_decay!r} must be >= 0")
        need(isinstance(self.betas, tuple) and len(self.betas) == 2 and all(is_num(b) and 0 <= b < 1 for b in self.betas),
             f"betas={self.betas!r} must be two numbers in [0, 1)")
        need(is_num(self.eps) and self.eps > 0, f"eps={self.eps!r} must be > 0")
        need(is_num(self.momentum) and 0 <= self.momentum < 1, f"momentum={self.momentum!r} must be in [0, 1)")
        need(self.grad_clip is None or (is_num(self.grad_clip) and self.grad_clip > 0),
             f"grad_clip={self.grad_clip!r} must be None (off), float('inf') (off) or a number > 0")
        need(self.dtype in DTYPES, f"dtype={self.dtype!r} must be one of {DTYPES}")
        need(self.loss_reduction in LOSS_REDUCTIONS, f"loss_reduction={self.loss_reduction!r} must be one of {LOSS_REDUCTIONS}")
        need(self.accum_normalize in ACCUM_NORMALIZE, f"accum_normalize={self.accum_normalize!r} must be one of {ACCUM_NORMALIZE}")
        need(self.keep_last_checkpoints is None or (is_int(self.keep_last_checkpoints) and self.keep_last_checkpoints >= 1),
             f"keep_last_checkpoints={self.keep_last_checkpoints!r} must be None (keep all) or an integer >= 1")
        need(is_int(self.seed) and 0 <= self.seed < 2**32, f"seed={self.seed!r} must be an integer in [0, 2**32)")
        need(self.progress in (True, False, "auto"), f"progress={self.progress!r} must be True, False or 'auto'")
        need(isinstance(self.device, str), f"device={self.device!r} must be 'auto' or a device name such as 'cpu', 'cuda'")

    @property
    def resolved_min_lr(self) -> float:
        return self.lr / 10 if self.min_lr is None else float(self.min_lr)

    @property
    def clip_enabled(self) -> bool:
        return self.grad_clip is not None and math.isfinite(self.grad_clip)

    def schedule_fn(self) -> Callable[[int], float]:
        """``step -> learning rate`` of this config (``course_lib.schedule``), validated once."""
        return schedule_fn(schedule=self.schedule, lr=self.lr, min_lr=self.resolved_min_lr,
                           warmup_steps=self.warmup_steps, max_steps=self.max_steps,
                           decay_fraction=self.decay_fraction, wsd_decay=self.wsd_decay)

    def lr_at(self, step: int) -> float:
        """The learning rate of update ``step`` (0-based) under this config."""
        return self.schedule_fn()(step)

    def replace(self, **changes: Any) -> "TrainConfig":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["betas"] = list(self.betas)
        if self.grad_clip is not None and not math.isfinite(self.grad_clip):
            d["grad_clip"] = None  # JSON has no inf; None means the same (no clipping)
        return d

    @classmethod
    def from_dict(cls, data: dict) -> "TrainConfig":
        return dataclass_from_dict(cls, data)


# ============================================================================ pieces
def param_groups(model: nn.Module, weight_decay: float, decay_embeddings: bool = True) -> List[dict]:
    """Two optimizer groups: ``>= 2-D`` weights decayed, everything else (norm gains, biases) not.

    ``decay_embeddings=False`` also exempts the weights of ``nn.Embedding`` modules (and an output
    head tied to them). Each group carries ``names`` (for inspection); tied parameters appear once.
    """
    embedding_ids = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
    decay, no_decay, decay_names, no_decay_names = [], [], [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if p.dim() >= 2 and (decay_embeddings or id(p) not in embedding_ids):
            decay.append(p), decay_names.append(name)
        else:
            no_decay.append(p), no_decay_names.append(name)
    return [{"params": decay, "weight_decay": weight_decay, "names": decay_names},
            {"params": no_decay, "weight_decay": 0.0, "names": no_decay_names}]


def build_optimizer(model: nn.Module, config: TrainConfig, device: torch.device) -> torch.optim.Optimizer:
    """AdamW (decoupled weight decay on matrices only) or SGD with momentum, from ``config``."""
    groups = param_groups(model, config.weight_decay, config.decay_embeddings)
    groups = [{k: v for k, v in g.items() if k != "names"} for g in groups]   # torch wants no extra keys
    if config.optimizer == "adamw":
        # fused AdamW is one kernel per step on CUDA; on the CPU the default (foreach) is deterministic
        extra = {"fused": True} if device.type == "cuda" else {}
        return torch.optim.AdamW(groups, lr=config.lr, betas=config.betas, eps=config.eps, **extra)
    return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum)


def grad_norm(parameters: Sequence[torch.Tensor]) -> torch.Tensor:
    """Global L2 norm of the gradients (a 0-d tensor, on the gradients' device)."""
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return torch.zeros(())
    norms = torch._foreach_norm(grads) if hasattr(torch, "_foreach_norm") else [g.norm() for g in grads]
    return torch.linalg.vector_norm(torch.stack([n.float() for n in norms]))


def layer_grad_norms(model: nn.Module) -> Dict[str, float]:
    """Gradient norm per top-level module (``layers.<i>`` per block), for depth plots."""
    sq: Dict[str, float] = {}
    for name, p in model.named_parameters():
        if p.grad is None:
            continue
        parts = name.split(".")
        key = ".".join(parts[:2]) if parts[0] == "layers" and len(parts) > 1 else parts[0]
        sq[key] = sq.get(key, 0.0) + float(p.grad.detach().float().pow(2).sum())
    return {k: math.sqrt(v) for k, v in sq.items()}


# ============================================================================ the trainer
class Trainer:
    """Train ``model`` on ``train_data`` (a map-style dataset of dicts with ``input_ids``, ``labels``
    aligned with the logits, and ``attention_mask``) under ``config``.

    ``eval_data``: an optional dataset for the eval loss. ``collate_fn``: list of items -> batch dict
    (default: ``course_lib.data.collate``, right padding with the dataset's ``pad_id``).
    ``tokenizer``: saved into every checkpoint (``tokenizer.json``) so a checkpoint folder is all
    ``generate`` needs. ``metadata``: extra JSON-able facts written into each checkpoint's
    ``metadata.json`` (corpus, command line, ...).

    After ``fit()``, ``trainer.model`` is the trained model (the very object passed in, on
    ``trainer.device``), ``trainer.step`` the number of completed updates and ``trainer.history`` the
    :class:`TrainHistory`.
    """

    def __init__(self, model: nn.Module, train_data, config: Optional[TrainConfig] = None, eval_data=None,
                 collate_fn: Optional[Callable] = None, tokenizer=None, metadata: Optional[dict] = None):
        self.config = config if config is not None else TrainConfig()
        if not isinstance(self.config, TrainConfig):
            raise ValueError(f"config must be a TrainConfig, got {type(self.config).__name__}")
        try:
            n = len(train_data)
        except TypeError:
            raise ValueError("train_data must be a map-style dataset (with len() and indexing)") from None
        if n == 0:
            raise ValueError("train_data is empty: nothing to train on")
        cfg = self.config
        self.dist = D.setup(cfg.device)
        self.device = D.process_device(pick_device(None if cfg.device == "auto" else cfg.device))
        self.dtype = pick_dtype(self.device, cfg.dtype)
        self.model = model.to(self.device)
        self.train_data, self.eval_data = train_data, eval_data
        self.collate_fn = collate_fn or collate_for(train_data)
        self.eval_collate_fn = collate_fn or (collate_for(eval_data) if eval_data is not None else None)
        self.tokenizer, self.metadata = tokenizer, dict(metadata or {})
        self.optimizer = build_optimizer(self.model, cfg, self.device)
        self.scaler = torch.amp.GradScaler(self.device.type) if self.dtype == torch.float16 else None
        self.stream = SampleStream(n, cfg.seed, cfg.shuffle)
        self.lr_of = cfg.schedule_fn()                          # step -> learning rate, validated once
        self.step = 0                # completed optimizer updates
        self.samples_consumed = 0    # position in the sample stream (global, all processes)
        self.history = TrainHistory()
        self._fwd_model: Optional[nn.Module] = None     # DDP-wrapped and/or compiled view of self.model
        self._last_saved: Optional[Path] = None
        self._interrupt: Optional[GracefulInterrupt] = None
        self._max_len = getattr(getattr(model, "config", None), "context_length",
                                getattr(getattr(model, "config", None), "max_seq_len", None))

    # ------------------------------------------------------------------ properties
    @property
    def global_batch_size(self) -> int:
        return self.config.batch_size * self.config.grad_accum_steps * self.dist.world_size

    @property
    def out_dir(self) -> Optional[Path]:
        return Path(self.config.out_dir) if self.config.out_dir else None

    # ------------------------------------------------------------------ data
    def _micro_batch(self, micro: int) -> Dict[str, torch.Tensor]:
        """Micro-batch ``micro`` of the current window for this process, collated on the CPU."""
        cfg, W, r = self.config, self.dist.world_size, self.dist.rank
        start = self.samples_consumed + (micro * W + r) * cfg.batch_size
        items = [self.train_data[i] for i in self.stream.indices(start, cfg.batch_size)]
        batch = self.collate_fn(items)
        if "input_ids" not in batch or "labels" not in batch:
            raise ValueError(f"a training batch must contain 'input_ids' and aligned 'labels'; got keys {sorted(batch)}")
        T = batch["input_ids"].shape[1]
        if self._max_len is not None and T > self._max_len:
            raise ValueError(f"train_data sequences have {T} tokens, longer than the model's maximum "
                             f"max_seq_len={self._max_len}; build the dataset with max_len/block_size <= {self._max_len}")
        return batch

    def _forward_kwargs(self, batch: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        """Model inputs on the device. An all-ones attention mask is dropped: then the model can use
        the fused causal attention kernel instead of an explicit mask (same result, faster)."""
        dev, nb = self.device, self.device.type == "cuda"
        kw = {"input_ids": batch["input_ids"].to(dev, non_blocking=nb)}
        mask = batch.get("attention_mask")
        if mask is not None and not bool(mask.all()):
            kw["attention_mask"] = mask.to(dev, non_blocking=nb)
        if "position_ids" in batch:
            kw["position_ids"] = batch["position_ids"].to(dev, non_blocking=nb)
        return kw

    # ------------------------------------------------------------------ one optimizer step
    def _window_losses(self, model_out, labels: torch.Tensor, counts: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """(objective for backward, its value for logging) of one micro-batch."""
        cfg = self.config
        A, W = cfg.grad_accum_steps, self.dist.world_size
        aux = model_out.aux_loss
        loss = model_out.loss if aux is None else model_out.loss - aux   # the cross-entropy part
        aux_term = aux / A if aux is not None else None
        if cfg.accum_normalize == "global_tokens":
            if cfg.loss_reduction == "token_mean":
                part = loss / counts[0].clamp(min=1)                         # sum / global target tokens
            else:
                per_tok = loss                                              # (B, T), 0 where masked
                n_tok = (labels != IGNORE_INDEX).sum(1)
                per_seq = per_tok.sum(1) / n_tok.clamp(min=1)
                part = per_seq.sum() / counts[1].clamp(min=1)               # / global sequences with targets
            # DDP averages gradients over processes; the global normaliser wants their sum
            objective = part * W
        else:
            part = loss / A                                                  # mean of this micro-batch / A
            objective = part if cfg.accum_normalize == "per_micro" else loss  # "none": no division
            part = part / W                                                  # logged: mean over processes
        if aux_term is not None:
            objective = objective + aux_term
        return objective, part.detach()

    def _train_step(self) -> Dict[str, Any]:
        """Consume one accumulation window and apply one update; returns the step's statistics."""
        cfg = self.config
        A = cfg.grad_accum_steps
        window = [self._micro_batch(m) for m in range(A)]
        # Count the window's targets before any backward: every micro-batch divides by the same number.
        local = torch.zeros(2, dtype=torch.float64)
        for b in window:
            valid = b["labels"] != IGNORE_INDEX
            local[0] += valid.sum()
            local[1] += (valid.sum(1) > 0).sum()
        counts = D.all_reduce_sum(local.to(self.device) if self.device.type == "cuda" else local)
        if float(counts[0]) == 0:      # "loss 0.0000" while weight decay still moves the weights
            raise ValueError(f"step {self.step + 1}: no sample of this window has a target token (every label is "
                             f"IGNORE_INDEX={IGNORE_INDEX}); check the labels, or an SFT max_len that truncates "
                             "every answer away")
        counts_dev = counts.to(self.device, torch.float32)
        reduction = {"global_tokens": "sum" if cfg.loss_reduction == "token_mean" else "none"}.get(
            cfg.accum_normalize, cfg.loss_reduction)

        model = self._fwd_model
        loss_log = torch.zeros((), device=self.device)
        for m, batch in enumerate(window):
            labels = batch["labels"].to(self.device, non_blocking=self.device.type == "cuda")
            with D.no_sync(model, skip=m < A - 1):
                with autocast(self.device, self.dtype):
                    out = model(**self._forward_kwargs(batch), labels=labels, loss_reduction=reduction)
                objective, part = self._window_losses(out, labels, counts_dev)
                if self.scaler is not None:
                    self.scaler.scale(objective).backward()
                else:
                    objective.backward()
            loss_log += part
        if self.dist.enabled:
            D.all_reduce_sum(loss_log)

        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
        params = [p for g in self.optimizer.param_groups for p in g["params"]]
        layer_norms = layer_grad_norms(self.model) if cfg.track_layer_grad_norms else None
        if cfg.clip_enabled:
            norm = torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
        else:
            norm = grad_norm(params)
        loss_value, norm_value = float(loss_log), float(norm)          # the step's one host sync
        lr = self.lr_of(self.step)
        if not math.isfinite(loss_value):
            self._diverged("loss", loss_value, lr)
        if not math.isfinite(norm_value) and self.scaler is None:       # fp16: the scaler skips the step
            self._diverged("grad norm", norm_value, lr)
        for g in self.optimizer.param_groups:
            g["lr"] = lr
        # a second Ctrl-C must not land between the update and the step count (step_N with N+1's weights)
        with (self._interrupt.hold() if self._interrupt is not None else contextlib.nullcontext()):
            if self.scaler is not None:
                self.scaler.step(self.optimizer)
                self.scaler.update()
            else:
                self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
            self.step += 1
            self.samples_consumed += self.global_batch_size
        return {"loss": loss_value, "lr": lr, "grad_norm": norm_value, "tokens": int(counts[0]),
                "clipped": cfg.clip_enabled and norm_value > cfg.grad_clip, "layer_norms": layer_norms}

    def _diverged(self, what: str, value: float, lr: float) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        found, h, now = list_checkpoints(self.out_dir) if self.out_dir else [], self.history, None
        if found and found[-1].name == f"step_{self.step}":      # the weights in memory: judged on another batch
            with torch.no_grad():
                b = self.collate_fn([self.train_data[i] for i in range(min(len(self.train_data), 8))])
                now = float(self.model(**self._forward_kwargs(b), labels=b["labels"].to(self.device)).loss)
        raise TrainingDiverged(self.step + 1, what, value, lr, last_good_checkpoint(found, h.step, h.loss, self.step, now))

    # ------------------------------------------------------------------ evaluation
    @torch.no_grad()
    def evaluate(self, max_batches: Optional[int] = None) -> float:
        """Token-mean loss on ``eval_data`` (the first ``max_batches`` global batches, in order)."""
        if self.eval_data is None:
            raise ValueError("evaluate() needs eval_data; pass it to Trainer(...)")
        cfg, W, r = self.config, self.dist.world_size, self.dist.rank
        max_batches = cfg.eval_batches if max_batches is None else max_batches
        n, B = len(self.eval_data), cfg.batch_size
        was_training = self.model.training
        self.model.eval()
        total = torch.zeros(2, dtype=torch.float64, device=self.device)
        try:
            for j in range(max_batches):
                start = (j * W + r) * B
                if j * W * B >= n:
                    break
                idx = list(range(start, min(start + B, n)))
                if idx:
                    batch = self.eval_collate_fn([self.eval_data[i] for i in idx])
                    labels = batch["labels"].to(self.device)
                    with autocast(self.device, self.dtype):
                        out = self.model(**self._forward_kwargs(batch), labels=labels, loss_reduction="sum")
                    ce = out.loss if out.aux_loss is None else out.loss - out.aux_loss
                    total[0] += ce.double()
                    total[1] += (labels != IGNORE_INDEX).sum()
        finally:
            self.model.train(was_training)
        D.all_reduce_sum(total)
        if float(total[1]) == 0:
            raise ValueError(f"eval_data has no target tokens in its first {max_batches} batches (empty, or every "
                             f"label is IGNORE_INDEX={IGNORE_INDEX}): there is no eval loss to report")
        return float(total[0] / total[1])

    # ------------------------------------------------------------------ checkpoints
    def save_checkpoint(self, path: Optional[Union[str, os.PathLike]] = None) -> Optional[Path]:
        """Write a resumable checkpoint (default ``<out_dir>/step_<N>``) atomically; rank 0 writes.

        Under DDP every process must call this (the RNG states are gathered). Returns the folder.
        """
        if path is None:
            if self.out_dir is None:
                raise ValueError("save_checkpoint() needs a path or TrainConfig.out_dir")
            path = self.out_dir / f"step_{self.step}"
        path = Path(path)
        rng = rng_tensors(self.device, self.dist.enabled)
        if self.dist.is_main:
            state = {
                "step": self.step, "samples_consumed": self.samples_consumed,
                "epoch": self.samples_consumed // self.stream.size, "dataset_size": self.stream.size,
                "data_seed": self.config.seed, "shuffle": self.config.shuffle,
                "world_size": self.dist.world_size, "global_batch_size": self.global_batch_size,
                "train_config": self.config.to_dict(),
                "scaler": self.scaler.state_dict() if self.scaler is not None else None,
                "history": self.history.to_dict(),
            }
            meta = {"step": self.step, "loss": self.history.final_loss, "eval_loss": self.history.final_eval_loss,
                    "tokens": self.history.tokens[-1] if self.history.tokens else 0, **self.metadata}
            write_train_checkpoint(path, self.model, self.optimizer, rng, state, meta, self.tokenizer)
            prune_checkpoints(self.out_dir, path, self.step, self.config.keep_last_checkpoints)
        D.barrier()
        self._last_saved = path
        self.history.checkpoint = str(path)
        return path

    def resume(self, checkpoint: Union[str, os.PathLike] = "latest") -> Path:
        """Load model, optimizer, RNG, stream position and history from a ``step_<N>`` folder.

        ``"latest"``: the newest checkpoint under ``out_dir``; a run folder: its newest checkpoint.
        A checkpoint of a different model config raises ``ValueError`` listing the differences.
        """
        if checkpoint == "latest":
            if self.out_dir is None:
                raise ValueError("resume='latest' needs TrainConfig.out_dir")
            newest = latest_checkpoint(self.out_dir)
            if newest is None:
                raise FileNotFoundError(f"resume='latest': no step_<N> checkpoint under {str(self.out_dir)!r}")
            checkpoint = newest
        path, state, tensors = read_train_checkpoint(checkpoint, self.model)
        load_optimizer(self.optimizer, tensors, state["optimizer"], path)
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        saved_world = state.get("world_size", 1)
        load_rng(tensors, self.dist.rank if saved_world == self.dist.world_size else 0, self.device)
        if state.get("dataset_size") != self.stream.size:
            warnings.warn(f"resuming from {path}: the dataset has {self.stream.size} samples but the checkpoint "
                          f"was trained on {state.get('dataset_size')}; the sample order will differ", stacklevel=2)
        self.step = int(state["step"])
        self.samples_consumed = int(state["samples_consumed"])
        self.history = TrainHistory.from_dict(state["history"])
        self._last_saved = path
        return path

    # ------------------------------------------------------------------ the loop
    def _prepare(self) -> None:
        if self._fwd_model is None:
            model = D.wrap(self.model, self.device)
            if self.config.compile:
                model = torch.compile(model)
            self._fwd_model = model

    def fit(self, resume: Optional[Union[str, os.PathLike]] = None) -> TrainHistory:
        """Train until ``config.max_steps`` updates; returns the :class:`TrainHistory`.

        ``resume``: None (start, or continue this trainer where it stopped), ``"latest"`` (newest
        checkpoint under ``out_dir``) or a checkpoint path. Ctrl-C finishes the current step, saves a
        checkpoint when ``out_dir`` is set and returns; :class:`TrainingDiverged` is raised on a
        NaN/inf loss or gradient.
        """
        cfg = self.config
        if resume is not None:
            self.resume(resume)
        elif self.step == 0:
            torch.manual_seed(cfg.seed + self.dist.rank)      # dropout; the sample order has its own seed
        main_out = self.out_dir if self.dist.is_main else None
        if main_out is not None:
            check_run_folder(main_out, self.step)     # before any step: a bad folder costs nothing
        metrics = MetricsLog(main_out, cfg.log_every, cfg.max_steps, start=self.step)  # drops lines to be redone
        self._prepare()
        self.history.interrupted, self.history.signal = False, None
        self.model.train()
        display = Display(cfg.max_steps, self.step, cfg.log_every, cfg.progress, enabled=self.dist.is_main)
        t_offset = self.history.time[-1] if self.history.time else 0.0
        t0 = time.perf_counter()
        tokens = self.history.tokens[-1] if self.history.tokens else 0
        check_inputs = getattr(self.model, "check_inputs", None)
        try:
            with GracefulInterrupt(lambda: self.step + 1) as interrupt:
                self._interrupt = interrupt
                while self.step < cfg.max_steps:
                    stats = self._train_step()
                    if check_inputs and self.device.type == "cuda":
                        self.model.check_inputs = False      # checked once; afterwards avoid a host sync per call
                    tokens += stats["tokens"]
                    h = self.history
                    h.record(self.step, stats, tokens, t_offset + time.perf_counter() - t0)
                    if self.eval_data is not None and cfg.eval_every and self.step % cfg.eval_every == 0:
                        h.eval_step.append(self.step), h.eval_loss.append(self.evaluate())
                    display.update(self.step, stats, h)
                    metrics.write(h)
                    if self.out_dir is not None and cfg.save_every and self.step % cfg.save_every == 0:
                        self.save_checkpoint()
                    if D.any_rank(interrupt.requested, self.device):   # under DDP all stop after one step
                        raise KeyboardInterrupt
                # the final evaluation and save run under the same handler: a signal here still saves
                h = self.history
                if self.eval_data is not None and (not h.eval_step or h.eval_step[-1] != self.step):
                    h.eval_step.append(self.step), h.eval_loss.append(self.evaluate())
                    display.log(f"step {self.step}: eval loss {h.eval_loss[-1]:.4f}")
                metrics.write(h, final=True)
                if self.out_dir is not None and not self._saved_current():
                    self.save_checkpoint()
                if interrupt.requested:
                    raise KeyboardInterrupt
        except KeyboardInterrupt:
            self._on_interrupt(display)
            return self.history
        finally:
            self._interrupt = None
            if check_inputs is not None:
                self.model.check_inputs = check_inputs
            display.close()
        return self.history

    def _saved_current(self) -> bool:
        return self._last_saved is not None and self._last_saved.name == f"step_{self.step}"

    def _on_interrupt(self, display: Display) -> None:
        """Drop a half-accumulated window, save the last completed step, keep the model usable."""
        self.optimizer.zero_grad(set_to_none=True)
        self.history.interrupted = True
        name = self._interrupt.signal_name if self._interrupt is not None else None
        self.history.signal = name or "SIGINT"
        msg = f"{'terminated' if name == 'SIGTERM' else 'interrupted'} after step {self.step}"
        if self.out_dir is not None and self.step > 0:
            path = self._last_saved if self._saved_current() else self.save_checkpoint()
            msg += f"; saved {path} (resume with resume='latest' or --resume)"
        display.log(msg)


__all__ = ["TrainConfig", "Trainer", "TrainHistory", "TrainingDiverged", "SampleStream", "param_groups",
           "build_optimizer", "grad_norm", "layer_grad_norms", "OPTIMIZERS", "LOSS_REDUCTIONS", "ACCUM_NORMALIZE"]
