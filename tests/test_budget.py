"""The budget switch and the thread policy that goes with it."""
import pytest
import torch

import importlib

b = importlib.import_module("course_lib.lab.budget")  # the module (the package exports a function of the same name)


@pytest.fixture(autouse=True)
def keep_threads():
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


def test_budget_reads_environment(monkeypatch):
    monkeypatch.setenv("COURSE_BUDGET", "full")
    assert b.budget() == "full" and b.by_budget(fast=1, full=2) == 2
    monkeypatch.setenv("COURSE_BUDGET", "fast")
    assert b.budget() == "fast" and b.by_budget(fast=1, full=2) == 1


def test_bad_budget_names_the_variable(monkeypatch):
    monkeypatch.setenv("COURSE_BUDGET", "huge")
    with pytest.raises(ValueError, match="COURSE_BUDGET='huge'"):
        b.budget()


def test_default_budget_follows_cuda(monkeypatch):
    monkeypatch.delenv("COURSE_BUDGET", raising=False)
    assert b.budget() == ("full" if torch.cuda.is_available() else "fast")


@pytest.mark.skipif(torch.cuda.is_available(), reason="the one-thread policy applies without CUDA")
def test_fast_budget_uses_one_thread(monkeypatch):
    monkeypatch.setenv("COURSE_BUDGET", "fast")
    monkeypatch.delenv("COURSE_THREADS", raising=False)
    torch.set_num_threads(2)
    assert b.set_budget_threads() == 1 == torch.get_num_threads()


def test_thread_override(monkeypatch):
    monkeypatch.setenv("COURSE_THREADS", "2")
    assert b.set_budget_threads() == 2
    monkeypatch.setenv("COURSE_THREADS", "zero")
    with pytest.raises(ValueError, match="COURSE_THREADS"):
        b.set_budget_threads()
