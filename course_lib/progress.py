"""What a training run shows and records: ``TrainHistory``, the progress display, ``metrics.jsonl``
(``MetricsLog``), Ctrl-C handling.

Everything here takes plain values (step numbers, a stats dict, a history), never the trainer, so
``train.py`` imports this module and not the other way round.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Union


def in_notebook() -> bool:
    """True inside a Jupyter kernel (the one place that decides notebook vs terminal output)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def json_float(x: float):
    """JSON has no inf/nan: store them as strings that ``float()`` reads back."""
    return x if math.isfinite(x) else str(x)


@dataclass
class TrainHistory:
    """What happened, one entry per optimizer step (``step`` counts completed updates, from 1).

    ``loss``: the training loss of the step's window (token mean, or sequence mean with
    ``loss_reduction="seq_mean"``); ``lr``: the learning rate the update used; ``grad_norm``: the
    global gradient norm before clipping; ``clipped``: whether clipping scaled the gradient;
    ``tokens``: target tokens seen so far (all processes); ``time``: seconds since the run started.
    ``eval_step``/``eval_loss``: the evaluations (token-mean loss). ``layer_grad_norms``: per-step
    dicts ``{"layers.0": norm, ...}`` when ``track_layer_grad_norms`` is on.
    """

    step: List[int] = field(default_factory=list)
    loss: List[float] = field(default_factory=list)
    lr: List[float] = field(default_factory=list)
    grad_norm: List[float] = field(default_factory=list)
    clipped: List[bool] = field(default_factory=list)
    tokens: List[int] = field(default_factory=list)
    time: List[float] = field(default_factory=list)
    eval_step: List[int] = field(default_factory=list)
    eval_loss: List[float] = field(default_factory=list)
    layer_grad_norms: List[Dict[str, float]] = field(default_factory=list)
    interrupted: bool = False
    signal: Optional[str] = None          # what stopped the run early: "SIGINT" (Ctrl-C) or "SIGTERM"
    checkpoint: Optional[str] = None

    def __len__(self) -> int:
        return len(self.step)

    def record(self, step: int, stats: Dict[str, Any], tokens: int, seconds: float) -> None:
        """Append one optimizer step (``stats`` as returned by the trainer's step)."""
        self.step.append(step), self.loss.append(stats["loss"]), self.lr.append(stats["lr"])
        self.grad_norm.append(stats["grad_norm"]), self.clipped.append(bool(stats["clipped"]))
        self.tokens.append(tokens), self.time.append(seconds)
        if stats.get("layer_norms") is not None:
            self.layer_grad_norms.append(stats["layer_norms"])

    @property
    def clip_rate(self) -> float:
        """Fraction of steps whose gradient was clipped (0 when nothing ran)."""
        return sum(self.clipped) / len(self.clipped) if self.clipped else 0.0

    @property
    def final_loss(self) -> Optional[float]:
        return self.loss[-1] if self.loss else None

    @property
    def final_eval_loss(self) -> Optional[float]:
        return self.eval_loss[-1] if self.eval_loss else None

    def tokens_per_second(self) -> float:
        """Average training throughput (target tokens per wall-clock second) over the recorded steps."""
        if len(self.time) < 2 or self.time[-1] <= self.time[0]:
            return float("nan")
        return (self.tokens[-1] - self.tokens[0]) / (self.time[-1] - self.time[0])

    def smoothed_loss(self, alpha: float = 0.1) -> List[float]:
        """Exponential moving average of the loss (bias-corrected), for plots of noisy curves."""
        out, avg = [], 0.0
        for i, x in enumerate(self.loss, 1):
            avg = (1 - alpha) * avg + alpha * x
            out.append(avg / (1 - (1 - alpha) ** i))
        return out

    def plot(self, ax=None, show_lr: bool = True, smooth: float = 0.0, title: Optional[str] = None):
        """Loss (and eval loss) against step; the learning rate on a twin axis. Returns the axes."""
        from matplotlib import pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(7, 3.5))
        ax.plot(self.step, self.loss, label="train loss", color="C0", alpha=0.35 if smooth else 1.0)
        if smooth:
            ax.plot(self.step, self.smoothed_loss(smooth), label=f"train loss (EMA {smooth})", color="C0")
        if self.eval_loss:
            ax.plot(self.eval_step, self.eval_loss, "o-", label="eval loss", color="C1")
        ax.set_xlabel("step")
        ax.set_ylabel("loss")
        ax.grid(alpha=0.3)
        handles, labels = ax.get_legend_handles_labels()
        if show_lr and self.lr:
            ax2 = ax.twinx()
            ax2.plot(self.step, self.lr, color="C2", lw=1, ls="--", label="lr")
            ax2.set_ylabel("learning rate")
            h2, l2 = ax2.get_legend_handles_labels()
            handles, labels = handles + h2, labels + l2
        ax.legend(handles, labels, loc="upper right")
        if title:
            ax.set_title(title)
        return ax

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["grad_norm"] = [json_float(x) for x in self.grad_norm]
        return d

    @classmethod
    def from_dict(cls, data: dict) -> "TrainHistory":
        known = {f.name for f in dataclasses.fields(cls)}
        h = cls(**{k: v for k, v in data.items() if k in known})
        h.grad_norm = [float(x) for x in h.grad_norm]
        return h

METRICS_FILE = "metrics.jsonl"


def read_metrics(path: Union[str, "os.PathLike[str]"]) -> List[Dict[str, Any]]:
    """The records of a ``metrics.jsonl`` (a file or the run folder holding it), in file order. A line
    that is not a record (torn by a crash mid-write, or added by hand) is skipped; no file gives []."""
    path = Path(path)
    path = path / METRICS_FILE if path.is_dir() else path
    if not path.is_file():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines(keepends=True):
        try:
            rec = json.loads(line) if line.endswith("\n") else None
        except ValueError:
            continue
        if isinstance(rec, dict) and "step" in rec:
            records.append(rec)
    return records


class MetricsLog:
    """``<out_dir>/metrics.jsonl``: one JSON object a line, the run's record for tools and reports.

    A line is written after step ``s`` when ``s`` is a multiple of ``log_every``, when an evaluation
    ran at ``s``, and for the run's last step (with ``log_every=0``, the eval steps and the last step
    only). Keys: ``step``, ``loss``, ``lr``, ``grad_norm``, ``clipped``, ``tokens`` (target tokens so
    far), ``elapsed`` (training seconds since the run began, across resumes), ``tokens_per_s`` (since
    the previous line) and ``eval_loss`` where an evaluation ran. inf/nan are stored as strings
    (:func:`json_float`), so every line is valid JSON. Each line is appended on its own and the file
    closed, so a crash loses at most the line being written.

    ``start``: the step the run starts from. Lines of later steps, left by an interrupted run whose
    steps will be redone, are dropped first (the file is rewritten and swapped in atomically); lines
    up to ``start`` stay, so a resumed run's file reads as one run. ``out_dir=None``: does nothing
    (processes other than rank 0, runs without a folder).
    """

    def __init__(self, out_dir, log_every: int, max_steps: int, start: int = 0):
        self.path = None if out_dir is None else Path(out_dir) / METRICS_FILE
        self.log_every, self.max_steps = log_every, max_steps
        self.last_step, self._last = 0, (0, 0.0)      # (tokens, elapsed) of the previous line
        if self.path is not None and self.path.is_file():
            self._drop_after(start)

    def _drop_after(self, start: int) -> None:
        lines = self.path.read_text(encoding="utf-8").splitlines(keepends=True)
        keep = []
        for line in lines:
            if not line.endswith("\n"):
                continue                                 # torn by a crash: the step is redone
            try:
                rec = json.loads(line)
                step = int(rec["step"])
            except (ValueError, TypeError, KeyError):
                keep.append(line)                        # not a record of ours: never thrown away
                continue
            if step <= start:
                keep.append(line)
                self.last_step, self._last = step, (rec.get("tokens", 0), float(rec.get("elapsed", 0.0)))
        if len(keep) != len(lines):
            from .checkpoint import atomic_write_text     # lazy: this module stays free of torch
            atomic_write_text(self.path, "".join(keep))

    def write(self, history: TrainHistory, final: bool = False) -> None:
        """After a step: append its line when one is due. The last step's line waits for ``final``
        (called after the run's final evaluation, so that line carries the eval loss)."""
        h = history
        if self.path is None or not h.step or h.step[-1] <= self.last_step:
            return
        step = h.step[-1]
        evaluated = bool(h.eval_step) and h.eval_step[-1] == step
        due = evaluated or (self.log_every and step % self.log_every == 0)
        if not final and (step >= self.max_steps or not due):
            return
        tokens, elapsed = h.tokens[-1], h.time[-1]
        seconds = elapsed - self._last[1]
        rate = (tokens - self._last[0]) / seconds if seconds > 0 else math.nan
        rec = {"step": step, "loss": json_float(h.loss[-1]), "lr": h.lr[-1], "grad_norm": json_float(h.grad_norm[-1]),
               "clipped": h.clipped[-1], "tokens": tokens, "elapsed": round(elapsed, 3),
               "tokens_per_s": json_float(round(rate, 1))}
        if evaluated:
            rec["eval_loss"] = json_float(h.eval_loss[-1])
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(rec, allow_nan=False) + "\n")
        self.last_step, self._last = step, (tokens, elapsed)


class Display:
    """Progress bar (tqdm.auto) and log lines; silent when ``enabled`` is False (ranks other than 0).

    ``progress``: True / False / "auto" (a bar in notebooks and terminals, plain lines when piped);
    ``log_every``: a log line every N steps (0: none); ``initial``: the step the run starts from.
    """

    def __init__(self, max_steps: int, initial: int = 0, log_every: int = 10, progress="auto", enabled: bool = True):
        self.max_steps, self.log_every, self.enabled = max_steps, log_every, enabled
        self.notebook = in_notebook()
        self.bar = None
        want_bar = progress is True or (progress == "auto" and (self.notebook or sys.stderr.isatty()))
        if enabled and want_bar:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=max_steps, initial=initial, desc="train", unit="step", dynamic_ncols=True,
                            leave=True)

    def log(self, line: str) -> None:
        if not self.enabled:
            return
        try:
            if self.bar is not None and not self.notebook:
                self.bar.write(line)
            elif self.bar is None:
                print(line, flush=True)
        except BrokenPipeError:          # stdout piped into `head` that exited: keep training, stop printing
            stdout_gone()
            self.enabled = False

    def update(self, step: int, stats: Dict[str, Any], history: TrainHistory) -> None:
        """After optimizer step ``step``: advance the bar, print a log line every ``log_every`` steps."""
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.update(1)
            if step % max(1, min(self.log_every or 10, 10)) == 0 or step == self.max_steps:
                self.bar.set_postfix(loss=f"{stats['loss']:.4f}", lr=f"{stats['lr']:.2e}", refresh=False)
        if self.log_every and (step % self.log_every == 0 or step == self.max_steps) and not self.notebook:
            line = (f"step {step:>6}/{self.max_steps} | loss {stats['loss']:.4f} | lr {stats['lr']:.2e} | "
                    f"grad norm {stats['grad_norm']:.3f}{' (clipped)' if stats['clipped'] else ''} | "
                    f"{history.tokens_per_second():,.0f} tok/s")
            if history.eval_step and history.eval_step[-1] == step:
                line += f" | eval {history.eval_loss[-1]:.4f}"
            self.log(line)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def stdout_gone() -> None:
    """The reader of stdout went away (``... | head``): send further output to /dev/null, so that a
    log line can never kill a run (nor the interpreter's final flush print a BrokenPipeError)."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):    # no real file descriptor (a notebook's stream)
        pass


class GracefulInterrupt:
    """The first Ctrl-C (SIGINT, also a notebook's interrupt button) or SIGTERM (what ``timeout``,
    Slurm and Kubernetes send) asks the loop to stop after the current step (``requested`` becomes
    True, ``signal_name`` says which), so the model is never left half-updated; a second one
    interrupts at once, except inside :meth:`hold` (an update being applied), which it finishes
    first. A repeat within ``SAME_SIGNAL_S`` seconds counts as the same request: under torchrun a
    terminal's Ctrl-C reaches every worker directly and again through torchrun, which forwards it.
    Under DDP the trainer stops every rank after the same step (``distributed.any_rank``). Only in
    the main thread. ``next_step()`` gives the step number for the message."""

    SIGNALS = tuple(getattr(signal, n) for n in ("SIGINT", "SIGTERM") if hasattr(signal, n))
    SAME_SIGNAL_S = 1.0

    def __init__(self, next_step=lambda: None, enabled: bool = True):
        self.next_step, self.requested, self._previous = next_step, False, {}
        self._first_at = 0.0                 # when the first signal came (time.monotonic)
        self.signal_name: Optional[str] = None
        self._holding, self._pending = False, False
        self.enabled = enabled and threading.current_thread() is threading.main_thread()

    def _handler(self, signum, frame) -> None:
        if self.requested:
            if time.monotonic() - self._first_at < self.SAME_SIGNAL_S:
                return                        # the same request, delivered twice
            if self._holding:
                self._pending = True          # raised when the update is complete
                return
            raise KeyboardInterrupt
        self.requested, self._first_at = True, time.monotonic()
        self.signal_name = signal.Signals(signum).name
        try:
            print(f"\n{self.signal_name}: stopping after step {self.next_step()} (again to stop at once)",
                  file=sys.stderr, flush=True)
        except OSError:
            pass

    @contextlib.contextmanager
    def hold(self):
        """A section a second signal must not cut in two (an optimizer update and its step count)."""
        self._holding = True
        try:
            yield
        finally:
            self._holding = False
        if self._pending:
            self._pending = False
            raise KeyboardInterrupt

    def __enter__(self) -> "GracefulInterrupt":
        if self.enabled:
            try:
                for sig in self.SIGNALS:
                    self._previous[sig] = signal.signal(sig, self._handler)
            except ValueError:          # not allowed here (e.g. some embedded interpreters)
                self.enabled = False
        return self

    def __exit__(self, *exc) -> None:
        for sig, previous in self._previous.items():
            if previous is not None:
                signal.signal(sig, previous)
        self._previous = {}


__all__ = ["TrainHistory", "Display", "GracefulInterrupt", "MetricsLog", "METRICS_FILE", "read_metrics", "in_notebook",
           "json_float", "stdout_gone"]
