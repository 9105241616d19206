"""Shared benchmark helpers: fair timing (warm-up, interleaving, medians), peak memory, tables.

Usable from any benchmark script::

    import sys; sys.path.insert(0, "benchmarks")
    from common import interleaved_times, median, peak_memory_bytes, markdown_table

Timing rules used throughout: warm up first (allocator, thread pools, lazy init, compilation),
synchronise the device around every timed call, run competitors *interleaved* (A B A B ...) so
that a noisy neighbour or CPU frequency change hits both alike, and report the median.
"""
from __future__ import annotations

import gc
import os
import platform
import statistics
import time
from typing import Callable, Dict, List, Optional, Sequence

import torch

from course_lib.device import synchronize

# Dense peak tensor-core throughput (FLOP/s) per GPU for the dtypes we train in. Sources: vendor
# datasheets (dense, i.e. without 2:4 sparsity). Matched by substring of the device name, first hit.
PEAK_FLOPS = [
    ("H200", {"bf16": 989e12, "fp16": 989e12, "fp32": 67e12}),
    ("H100 PCIe", {"bf16": 756e12, "fp16": 756e12, "fp32": 51e12}),
    ("H100", {"bf16": 989e12, "fp16": 989e12, "fp32": 67e12}),        # SXM
    ("H800", {"bf16": 989e12, "fp16": 989e12, "fp32": 67e12}),
    ("GH200", {"bf16": 989e12, "fp16": 989e12, "fp32": 67e12}),
    ("B200", {"bf16": 2250e12, "fp16": 2250e12, "fp32": 80e12}),
    ("A100", {"bf16": 312e12, "fp16": 312e12, "fp32": 19.5e12}),
    ("A800", {"bf16": 312e12, "fp16": 312e12, "fp32": 19.5e12}),
    ("L40S", {"bf16": 362e12, "fp16": 362e12, "fp32": 91.6e12}),
    ("L4", {"bf16": 121e12, "fp16": 121e12, "fp32": 30.3e12}),
    ("A10", {"bf16": 125e12, "fp16": 125e12, "fp32": 31.2e12}),
    ("RTX 4090", {"bf16": 165e12, "fp16": 165e12, "fp32": 82.6e12}),
    ("RTX 3090", {"bf16": 71e12, "fp16": 71e12, "fp32": 35.6e12}),
    ("V100", {"bf16": 0.0, "fp16": 125e12, "fp32": 15.7e12}),
    ("T4", {"bf16": 0.0, "fp16": 65e12, "fp32": 8.1e12}),
]


def peak_flops(device: torch.device, dtype: str = "bf16") -> Optional[float]:
    """Peak dense FLOP/s of ``device`` for ``dtype`` ("bf16"/"fp16"/"fp32"), or None if unknown."""
    if torch.device(device).type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for key, table in PEAK_FLOPS:
        if key in name:
            return table.get(dtype) or None
    return None


def timed(fn: Callable[[], object], device) -> float:
    """Seconds one call of ``fn`` takes, with the device synchronised before and after."""
    synchronize(device)
    start = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - start


def interleaved_times(fns: Dict[str, Callable[[], object]], repeats: int = 5, warmup: int = 1,
                      device="cpu") -> Dict[str, List[float]]:
    """Time every function ``repeats`` times, round-robin (A B A B ...), after ``warmup`` untimed rounds.

    Returns ``{name: [seconds, ...]}``. The starting function alternates each round so neither
    side always runs right after the other's cache-warming.
    """
    names = list(fns)
    for _ in range(warmup):
        for name in names:
            fns[name]()
    times: Dict[str, List[float]] = {name: [] for name in names}
    for r in range(repeats):
        order = names if r % 2 == 0 else names[::-1]
        for name in order:
            gc.collect()
            times[name].append(timed(fns[name], device))
    return times


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def spread(values: Sequence[float]) -> str:
    """``median (min-max)`` in ms, for honest tables."""
    return f"{median(values) * 1e3:.1f} ms ({min(values) * 1e3:.1f}-{max(values) * 1e3:.1f})"


# ---------------------------------------------------------------------------------------- memory
class _RSSSampler:
    """Background thread that records the highest RSS seen (sampled every ``interval`` seconds)."""

    def __init__(self, interval: float = 0.0005):
        import threading

        self.interval, self.peak = interval, rss_bytes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_bytes())
            self._stop.wait(self.interval)

    def __enter__(self) -> "_RSSSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_bytes())


def peak_tensor_bytes_cpu(fn: Callable[[], object]) -> Optional[int]:
    """Exact peak of live CPU tensor bytes that ``fn`` adds (like ``max_memory_allocated`` on CUDA).

    Replays the allocator events the profiler records (``profile_memory=True``): every tensor
    creation adds its bytes, every destruction subtracts them; the running sum's maximum is the
    peak above what was live before ``fn``. Unlike RSS it ignores allocator caching and Python
    objects, so two libraries are compared on the tensors they need. Uses the profiler's memory
    timeline (a private torch API): returns None if this torch version does not provide it.
    """
    from torch.profiler import ProfilerActivity, profile

    try:
        with profile(activities=[ProfilerActivity.CPU], profile_memory=True, record_shapes=True,
                     with_stack=True) as prof:
            fn()
        timeline = prof._memory_profile().timeline
    except Exception:  # private API: absent or changed in this torch version
        return None
    live = peak = 0
    for _, action, _, size in sorted((t for t in timeline if t[0] >= 0), key=lambda t: t[0]):
        name = getattr(action, "name", str(action))
        if name == "CREATE":
            live += size
        elif name == "DESTROY":
            live -= size
        peak = max(peak, live)
    return peak


def peak_memory_bytes(fn: Callable[[], object], device="cpu") -> int:
    """Peak memory (bytes) that ``fn`` needs on top of what the process already holds.

    CUDA: ``torch.cuda.max_memory_allocated`` after a reset (exact tensor bytes). CPU: the highest
    resident set size sampled every 0.5 ms while ``fn`` runs, minus the RSS before it. Sampling can
    miss spikes shorter than the interval; for an exact CPU high-water mark run the step in a fresh
    process and use :func:`peak_rss_bytes` (what ``bench_model.py`` does).
    """
    device = torch.device(device)
    gc.collect()
    if device.type == "cuda":
        synchronize(device)
        torch.cuda.empty_cache()
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        fn()
        synchronize(device)
        return torch.cuda.max_memory_allocated(device) - base
    base = rss_bytes()
    with _RSSSampler() as sampler:
        fn()
    return max(sampler.peak - base, 0)


def peak_rss_bytes() -> int:
    """The process's high-water resident set size so far (``ru_maxrss``; exact, but never resets)."""
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if platform.system() == "Darwin" else peak * 1024      # Linux reports KiB


def rss_bytes() -> int:
    """Resident set size of this process now (psutil when installed, else /proc)."""
    try:
        import psutil

        return psutil.Process().memory_info().rss
    except ImportError:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


# ---------------------------------------------------------------------------------------- output
def machine_summary(device) -> str:
    """One line describing where the numbers come from."""
    device = torch.device(device)
    if device.type == "cuda":
        where = torch.cuda.get_device_name(device)
    else:
        where = f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, " \
                f"{os.cpu_count()} CPUs"
    return f"torch {torch.__version__} on {device.type} ({where}), Python {platform.python_version()}"


def markdown_table(rows: List[Dict[str, object]], columns: Optional[List[str]] = None) -> str:
    """Rows of dicts as a GitHub markdown table (columns in the given or first-seen order)."""
    if not rows:
        return "(no rows)"
    if columns is None:
        columns = []
        for row in rows:
            for key in row:
                if key not in columns:
                    columns.append(key)
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(str(row.get(c, "")) for c in columns) + " |")
    return "\n".join(lines)


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} GiB"
