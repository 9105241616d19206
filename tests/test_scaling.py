"""The scaling-law fit recovers a planted law; the standard benchmark is deterministic and validates."""
import pytest
import torch

from course_lib.lab.scaling import fit_power_law, standard_benchmark

DOCS = ["In the beginning God created the heaven and the earth. " * 40,
        "And the earth was without form, and void; and darkness was upon the face of the deep. " * 40] * 3


@pytest.mark.parametrize("a,b,c", [(30.0, 0.35, 1.2), (5.0, 0.08, 0.0), (200.0, 0.9, 2.5)])
def test_fit_recovers_planted_law(a, b, c):
    n = torch.logspace(4, 8, 8, dtype=torch.float64)
    fit = fit_power_law(n, a * n ** -b + c)
    assert fit.b == pytest.approx(b, rel=1e-4)
    assert fit.a == pytest.approx(a, rel=1e-3)
    assert fit.c == pytest.approx(c, abs=1e-4)
    assert fit.rmse < 1e-6 and fit.dof == 5
    assert float(fit.loss_at(1e9)) == pytest.approx(a * 1e9 ** -b + c, rel=1e-4)


def test_fit_with_noise_stays_close():
    g = torch.Generator().manual_seed(0)
    n = torch.logspace(4, 7, 12, dtype=torch.float64)
    y = 20 * n ** -0.3 + 1.5 + 0.002 * torch.randn(12, generator=g, dtype=torch.float64)
    fit = fit_power_law(n, y)
    assert abs(fit.b - 0.3) < 0.05 and abs(fit.c - 1.5) < 0.05


def test_fit_rejects_bad_input():
    with pytest.raises(ValueError, match="at least 3 distinct sizes"):
        fit_power_law([1e4, 1e5], [2.0, 1.5])
    with pytest.raises(ValueError, match="one loss per size"):
        fit_power_law([1e4, 1e5, 1e6], [2.0, 1.5])
    with pytest.raises(ValueError, match="sizes must be > 0"):
        fit_power_law([0, 1e5, 1e6], [2.0, 1.5, 1.2])


def test_standard_benchmark_deterministic_and_switch_matters():
    kw = dict(seeds=(0,), steps=4, corpus=DOCS, max_chars=None, batch_size=4, eval_items=8)
    first = standard_benchmark({}, **kw)
    assert first == standard_benchmark({}, **kw)            # same arguments, same numbers
    assert len(first) == 1 and 0 < first[0] < 10
    assert standard_benchmark({"pos": "none"}, **kw) != first
    with pytest.raises(ValueError, match="unknown ModelConfig fields"):
        standard_benchmark({"no_such_switch": 1}, **kw)
