"""``<out>/report.md``: a training run's report card, written by ``pretrain`` and ``sft`` when a run
ends (also when it was interrupted), on the main process only.

One page a reader can check without running anything: the command, the environment, the data, the
model, the training settings, the results (first, final and lowest train loss, the eval loss and its
perplexity, tokens, throughput, time), a loss table sampled from ``<out>/metrics.jsonl`` and a few
greedy samples from fixed prompts. A resumed run rewrites it for the whole run (the history and
``metrics.jsonl`` both span the resumes). Written atomically: a reader never sees half a report.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import List, Optional

REPORT_FILE = "report.md"
REPORT_TITLE = "# Run report:"        # a report.md starting otherwise is the user's, never replaced
SAMPLE_TOKENS = 30
LOSS_ROWS = 10
SHAPE_FIELDS = ("vocab_size", "dim", "n_layers", "n_heads", "n_kv_heads", "ffn_dim", "max_seq_len")


def _num(x, fmt: str = ".4f") -> str:
    if x is None:
        return "-"
    x = float(x)                      # metrics.jsonl stores inf/nan as strings
    return format(x, fmt) if math.isfinite(x) else str(x)


def sample_rows(records: List[dict], rows: int = LOSS_ROWS) -> List[dict]:
    """About ``rows`` records spread evenly over the run, always the first and the last."""
    if len(records) <= rows:
        return list(records)
    picks = sorted({round(i * (len(records) - 1) / (rows - 1)) for i in range(rows)})
    return [records[i] for i in picks]


def greedy_samples(model, tokenizer, chat: bool, language: str = "zh",
                   max_new_tokens: int = SAMPLE_TOKENS) -> List[tuple]:
    """``(prompt, continuation)`` for the fixed prompts of a pretraining (or, ``chat``, an SFT) run in
    ``language``; greedy, so the same weights always give the same text and reports compare."""
    from .generate import CHAT_PROMPTS, SAMPLE_PROMPTS
    from .generate import greedy_samples as continue_greedily

    prompts = (CHAT_PROMPTS if chat else SAMPLE_PROMPTS)[language]
    return continue_greedily(model, tokenizer, prompts, max_new_tokens, chat=chat)


def run_language(trainer) -> str:
    """The language of the run's text, read from its first training sequence."""
    from .generate import text_language

    try:
        ids = trainer.train_data[0]["input_ids"]
        return text_language([trainer.tokenizer.decode(list(map(int, ids)), skip_special_tokens=True)])
    except (IndexError, KeyError, TypeError, AttributeError):
        return "zh"


def _model_lines(model, preset: str, init: Optional[Path]) -> List[str]:
    from ..config import ModelConfig

    c = model.config
    shape = ", ".join(f"{k} {getattr(c, k)}" for k in SHAPE_FIELDS if hasattr(c, k))
    reference = ModelConfig.preset(preset).to_dict()
    switches = [f"`{k}={v!r}`" for k, v in c.to_dict().items() if k not in SHAPE_FIELDS and reference.get(k) != v]
    where = f"initialised from `{init}`" if init is not None else f"preset `{preset}`"
    return [f"- {where}, {model.num_parameters():,} parameters",
            f"- shape: {shape}",
            f"- switches that differ from preset `{preset}`: {', '.join(switches) if switches else 'none'}"]


def report_text(trainer, seconds: float, init: Optional[Path] = None, samples: Optional[List[tuple]] = None,
                date: Optional[str] = None) -> str:
    """The report of ``trainer``'s run as Markdown. ``seconds``: wall time of this invocation;
    ``samples``: ``(prompt, text)`` pairs (None: made here with :func:`greedy_samples`)."""
    import datetime
    import platform

    import torch

    from .._version import __version__
    from ..progress import read_metrics

    meta, cfg, h = trainer.metadata, trainer.config, trainer.history
    kind, preset = meta.get("kind", "train"), meta.get("preset", "?")
    if samples is None:
        samples = greedy_samples(trainer.model, trainer.tokenizer, chat=kind == "sft", language=run_language(trainer))
    records = read_metrics(Path(cfg.out_dir)) if cfg.out_dir else []
    date = date or datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    eval_loss = h.final_eval_loss
    ppl = math.exp(eval_loss) if eval_loss is not None and eval_loss < 700 else None
    tokens = h.tokens[-1] if h.tokens else 0
    train_s = h.time[-1] if h.time else 0.0
    status = f"interrupted ({h.signal}) at step {trainer.step}" if h.interrupted else "finished"
    lines = [
        f"{REPORT_TITLE} {kind}, {cfg.out_dir}", "",
        f"{date}, {status}.", "",
        "```", meta.get("command", "?"), "```", "",
        "## Environment",
        f"- course_lib {__version__}, Python {platform.python_version()}, torch {torch.__version__}",
        f"- device {trainer.device}, dtype {str(trainer.dtype).replace('torch.', '')}, "
        f"{trainer.dist.world_size} process(es), {torch.get_num_threads()} CPU thread(s)", "",
        "## Data",
        f"- {meta.get('data', '?')}: {len(trainer.train_data):,} training sequences of <= {meta.get('seq_len', '?')} "
        f"tokens, {len(trainer.eval_data) if trainer.eval_data is not None else 0:,} eval sequences",
        f"- tokenizer: {trainer.tokenizer.vocab_size:,} tokens", "",
        "## Model", *_model_lines(trainer.model, preset, init), "",
        "## Training",
        f"- {cfg.max_steps} steps, global batch {cfg.batch_size} x {cfg.grad_accum_steps} x "
        f"{trainer.dist.world_size} = {trainer.global_batch_size} sequences",
        f"- lr {cfg.lr:g} -> {cfg.resolved_min_lr:g} ({cfg.schedule}, {cfg.warmup_steps} warmup steps), "
        f"{cfg.optimizer}, weight decay {cfg.weight_decay:g}, grad clip {cfg.grad_clip if cfg.clip_enabled else 'off'}",
        f"- seed {cfg.seed}; eval {f'every {cfg.eval_every} steps' if cfg.eval_every else 'at the end'} on "
        f"<= {cfg.eval_batches} batches" + ("" if trainer.eval_data is not None else " (no eval data)"), "",
        "## Results",
        "| | |", "|---|---|",
        f"| steps | {trainer.step} of {cfg.max_steps} |",
        f"| train loss: first / final / lowest | {_num(h.loss[0] if h.loss else None)} / {_num(h.final_loss)} / "
        f"{_num(min(h.loss) if h.loss else None)} |",
        f"| eval loss (perplexity) | {_num(eval_loss)} ({_num(ppl, '.2f')}) |",
        f"| target tokens seen | {tokens:,} |",
        f"| tokens/s | {_num(tokens / train_s if train_s > 0 else None, ',.0f')} |",
        f"| training time (whole run) / this invocation | {train_s:.3g} s / {seconds:.3g} s |",
        f"| clipped steps | {h.clip_rate:.0%} |",
        f"| checkpoint | `{h.checkpoint}` |", "",
        "## Loss (from metrics.jsonl)",
        "| step | loss | lr | grad norm | eval loss |", "|---:|---:|---:|---:|---:|",
        *[f"| {r['step']} | {_num(r['loss'])} | {_num(r['lr'], '.2e')} | {_num(r['grad_norm'], '.3f')} | "
          f"{_num(r.get('eval_loss'))} |" for r in sample_rows(records)], "",
        f"## Samples (greedy, {SAMPLE_TOKENS} new tokens{', chat template' if kind == 'sft' else ''})",
    ]
    for prompt, text in samples:
        lines += ["", f"**{prompt}**", "````text", (prompt if kind != "sft" else "") + text, "````"]
    return "\n".join(lines) + "\n"


def write_run_report(out, trainer, seconds: float, init: Optional[Path] = None) -> Path:
    """Write ``<out>/report.md`` for ``trainer``'s run (atomically); returns its path. A ``report.md``
    there that is not a run report (the user's own notes) is never replaced: ``FileExistsError``."""
    from ..checkpoint import atomic_write_text

    path = Path(out) / REPORT_FILE
    if path.is_file() and not path.read_text(encoding="utf-8", errors="replace").startswith(REPORT_TITLE):
        raise FileExistsError(f"{path} exists and is not a run report; it was left as it was")
    atomic_write_text(path, report_text(trainer, seconds, init))
    return path
