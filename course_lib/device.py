"""Device and precision, chosen in one place.

Every notebook, the trainer, the sampler and the command line ask this module which device and
dtype to use, so a learner on a laptop, on Apple silicon or on a CUDA GPU runs the same code.
Override with the environment variable ``COURSE_DEVICE`` (e.g. ``cpu`` to force the CPU).
It also holds the names of the floating-point dtypes (:data:`DTYPE_NAMES`), the wait for queued
GPU work before reading a clock (:func:`synchronize`) and the CPU thread policy (:func:`set_threads`).
"""
from __future__ import annotations

import contextlib
import os
from typing import Optional, Union

import torch

# Every accepted spelling of a floating-point dtype (configs, the command line, byte counts).
DTYPE_NAMES = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16,
               "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16}


def pick_device(prefer: Optional[Union[str, torch.device]] = None) -> torch.device:
    """The best available device: ``prefer`` or ``$COURSE_DEVICE`` if given, else CUDA, MPS, CPU.

    Raises ``ValueError`` when a device is asked for that this machine does not have.
    """
    wanted = prefer if prefer is not None else os.environ.get("COURSE_DEVICE") or None
    if wanted is not None and str(wanted) != "auto":
        try:
            device = torch.device(wanted)
        except (RuntimeError, TypeError):
            raise ValueError(f"device={str(wanted)!r} is not a device name; use 'auto', 'cpu', 'cuda', 'cuda:1' "
                             "or 'mps'") from None
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device={str(wanted)!r} was requested but CUDA is not available here; use 'cpu' or 'auto'")
        if device.type == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
            raise ValueError(f"device={str(wanted)!r} was requested but MPS is not available here; use 'cpu' or 'auto'")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if hasattr(torch.backends, "mps") and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def memory_bytes(device: Union[str, torch.device] = "cpu") -> Optional[int]:
    """Total memory of ``device`` in bytes (physical RAM for the CPU); None when unknown. Used to
    refuse a request that cannot fit before the allocator fails (or the machine starts swapping)."""
    device = torch.device(device)
    try:
        if device.type == "cuda":
            return int(torch.cuda.get_device_properties(device).total_memory)
        if device.type == "cpu":
            return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError, RuntimeError, AssertionError):
        pass
    return None


def bf16_supported(device: Union[str, torch.device]) -> bool:
    """True where bfloat16 matrix math is fast and exact enough to train in (Ampere+ GPUs)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return False


def pick_dtype(device: Union[str, torch.device], requested: str = "auto") -> torch.dtype:
    """The compute dtype for autocast: bf16 on GPUs that support it, else float32.

    ``requested`` may be ``"auto"``, ``"float32"``/``"fp32"``, ``"bfloat16"``/``"bf16"`` or
    ``"float16"``/``"fp16"``.
    """
    if requested == "auto":
        return torch.bfloat16 if bf16_supported(device) else torch.float32
    if requested not in DTYPE_NAMES:
        raise ValueError(f"dtype={requested!r} must be one of {['auto', *DTYPE_NAMES]}")
    return DTYPE_NAMES[requested]


def autocast(device: Union[str, torch.device], dtype: torch.dtype):
    """An autocast context for ``dtype`` on ``device``; a no-op for float32."""
    device = torch.device(device)
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def synchronize(device: Union[str, torch.device]) -> None:
    """Wait for queued GPU work (for honest timings); a no-op on the CPU."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def set_threads(threads: Optional[int] = None, *, small_work: bool = False) -> int:
    """The CPU thread policy, in one place; returns the torch thread count now in use.

    ``threads`` (or else ``$COURSE_THREADS``) sets the count outright. Otherwise, on a machine
    without CUDA: ``small_work=True`` (tiny models, the notebooks' fast budget) uses one thread,
    because matrix products that small cost more to share between threads than they save; and
    when the machine is busy (1-minute load average) torch is limited to the idle cores, because
    threads that are not scheduled make every operation wait (the tiny preset's step went from
    0.36 s with 1 thread to 4.5 s with 2 on a 2-core machine under a load of 5). An idle machine
    keeps torch's default.
    """
    override = os.environ.get("COURSE_THREADS", "").strip()
    if threads is None and override:
        if not override.isdigit() or int(override) < 1:
            raise ValueError(f"COURSE_THREADS={override!r} must be a positive integer")
        threads = int(override)
    if threads is not None:
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise ValueError(f"threads={threads!r} must be a positive integer (or None for the policy)")
        torch.set_num_threads(threads)
    elif not torch.cuda.is_available():
        if small_work:
            torch.set_num_threads(1)
        else:
            try:
                idle = int((os.cpu_count() or 1) - os.getloadavg()[0] + 0.5)
            except (AttributeError, OSError):              # no load average on this platform
                idle = torch.get_num_threads()
            if idle < torch.get_num_threads():
                torch.set_num_threads(max(1, idle))
    return torch.get_num_threads()
