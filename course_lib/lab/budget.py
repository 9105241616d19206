"""The one switch that sizes every notebook experiment: ``COURSE_BUDGET=fast|full``.

``fast`` keeps each notebook near a minute on a 2-core CPU (CI uses it); ``full`` runs the bigger,
more convincing version. The default is ``full`` on a CUDA GPU and ``fast`` elsewhere.
"""
from __future__ import annotations

import os
from typing import TypeVar

import torch

from ..device import set_threads

BUDGETS = ("fast", "full")
T = TypeVar("T")


def budget() -> str:
    """The active budget: ``$COURSE_BUDGET`` if set, else ``full`` on CUDA and ``fast`` otherwise."""
    value = os.environ.get("COURSE_BUDGET", "").strip().lower()
    if value:
        if value not in BUDGETS:
            raise ValueError(f"COURSE_BUDGET={value!r} must be one of {BUDGETS}")
        return value
    return "full" if torch.cuda.is_available() else "fast"


def by_budget(fast: T, full: T) -> T:
    """Pick the value for the active budget: ``steps = by_budget(fast=200, full=5000)``."""
    return full if budget() == "full" else fast


def is_fast() -> bool:
    return budget() == "fast"


def set_budget_threads() -> int:
    """Apply the course's CPU thread policy and return the torch thread count in use.

    Under the fast budget on a machine without CUDA, the notebooks train tiny models whose matrix
    products are too small to share between threads: the synchronisation costs more than it saves,
    and on a busy laptop two threads can be several times slower than one. So the fast budget uses
    one thread; the full budget keeps torch's default. ``$COURSE_THREADS`` overrides both.
    """
    if budget() == "fast":
        return set_threads(small_work=True)
    override = os.environ.get("COURSE_THREADS", "").strip()
    return set_threads() if override else torch.get_num_threads()   # full budget: torch's default
