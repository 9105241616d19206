"""Data-parallel training across processes: ``torchrun`` detection, setup, rank helpers, teardown.

``torchrun --nproc_per_node=N -m course_lib pretrain ...`` starts N copies of the program with the
environment variables ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``.
Each copy calls :func:`setup` (the ``Trainer`` does it for you), which joins the process group with
NCCL on CUDA GPUs and gloo on CPUs, and picks the GPU ``LOCAL_RANK`` for the process.

Data parallelism in one paragraph: every process holds a full copy of the model, reads a different
slice of each global batch, computes gradients on it, and the gradients are averaged across
processes (an all-reduce inside ``DistributedDataParallel.backward``) before every process takes the
same optimizer step, so the copies stay identical. With gradient accumulation, only the last
micro-step of a window needs the all-reduce; the others run under ``model.no_sync()``.

Without ``torchrun`` (a notebook, a plain ``python`` call) everything here degrades to one process:
``rank() == 0``, ``world_size() == 1``, ``all_reduce_sum`` returns its input.
"""
from __future__ import annotations

import contextlib
import datetime
import os
from dataclasses import dataclass
from typing import Optional

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits: ``rank`` in ``[0, world_size)``, ``local_rank`` on its machine."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Rank 0 logs, draws progress bars and writes checkpoints."""
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def launched_by_torchrun() -> bool:
    """True when the environment says we are one of several processes (``WORLD_SIZE`` > 1)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and "RANK" in os.environ


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, str(default))
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"environment variable {name}={value!r} must be an integer") from None


def info() -> DistInfo:
    """This process's rank and world size: from the live process group, else from the environment."""
    if dist.is_available() and dist.is_initialized():
        return DistInfo(dist.get_rank(), dist.get_world_size(), _env_int("LOCAL_RANK", dist.get_rank()))
    return DistInfo(0, 1, 0)


def setup(device: Optional[str] = None, timeout_s: float = 600.0) -> DistInfo:
    """Join the process group if launched by ``torchrun`` (idempotent); return this process's place.

    The backend follows the device: NCCL when training on CUDA, gloo otherwise. On CUDA the
    process's GPU is ``cuda:LOCAL_RANK``. Outside ``torchrun`` this does nothing.
    """
    if not launched_by_torchrun() or not dist.is_available():
        return info()
    if dist.is_initialized():
        return info()
    local_rank = _env_int("LOCAL_RANK", 0)
    want_cuda = torch.cuda.is_available() and (device is None or str(device).startswith(("cuda", "auto")))
    backend = "nccl" if want_cuda else "gloo"
    if want_cuda:
        torch.cuda.set_device(local_rank)
    dist.init_process_group(backend=backend, timeout=datetime.timedelta(seconds=timeout_s))
    return info()


def process_device(device: torch.device) -> torch.device:
    """The device of this process: ``cuda:LOCAL_RANK`` for CUDA under torchrun, else ``device``."""
    device = torch.device(device)
    if device.type == "cuda" and info().enabled:
        return torch.device("cuda", _env_int("LOCAL_RANK", 0))
    return device


def wrap(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """``DistributedDataParallel(model)`` when several processes run, else ``model`` itself."""
    if not info().enabled:
        return model
    from torch.nn.parallel import DistributedDataParallel as DDP

    device = torch.device(device)
    if device.type == "cuda":
        return DDP(model, device_ids=[device.index if device.index is not None else 0])
    return DDP(model)


def no_sync(model: torch.nn.Module, skip: bool):
    """``model.no_sync()`` when ``skip`` and ``model`` is DDP: accumulate locally, all-reduce later."""
    if skip and hasattr(model, "no_sync"):
        return model.no_sync()
    return contextlib.nullcontext()


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """The element-wise sum of ``t`` over all processes (in place; ``t`` itself with one process)."""
    if info().enabled:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def any_rank(flag: bool, device: torch.device) -> bool:
    """True when ``flag`` is True on any process (``flag`` itself with one process): for decisions
    every rank must take at the same step, such as stopping after a signal that reached only some."""
    if not info().enabled:
        return flag
    t = torch.tensor([float(flag)], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def all_gather_tensors(t: torch.Tensor) -> list:
    """``[t from rank 0, t from rank 1, ...]`` (all the same shape); ``[t]`` with one process."""
    if not info().enabled:
        return [t]
    out = [torch.empty_like(t) for _ in range(info().world_size)]
    dist.all_gather(out, t.contiguous())
    return out


def barrier() -> None:
    """Wait until every process gets here (e.g. before rank 0 reads a checkpoint the others wait on)."""
    if info().enabled:
        dist.barrier()


def cleanup() -> None:
    """Leave the process group (call once at the end of a torchrun program).

    Every process waits for the others first: rank 0 still writes the final checkpoint after the last
    step, and a peer that tears its connections down meanwhile can abort the whole job."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


__all__ = ["DistInfo", "launched_by_torchrun", "info", "setup", "process_device", "wrap", "no_sync",
           "all_reduce_sum", "all_gather_tensors", "barrier", "cleanup"]
