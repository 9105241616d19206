"""rope_analysis against independent references: explicit rotation matrices, complex numbers, closed forms."""
import math

import pytest
import torch

from course_lib.lab import rope_analysis as ra
from course_lib.positions import rope_inv_freq


@pytest.fixture
def qk():
    g = torch.Generator().manual_seed(0)
    return torch.randn(64, generator=g, dtype=torch.float64), torch.randn(64, generator=g, dtype=torch.float64)


def test_rotation_matrix_is_orthogonal_and_composes():
    R3, R5, R8 = (ra.rotation_matrix(16, p) for p in (3, 5, 8))
    eye = torch.eye(16, dtype=torch.float64)
    assert torch.allclose(R3.T @ R3, eye, atol=1e-12)
    assert torch.allclose(R3 @ R5, R8, atol=1e-12)                 # R_m R_n = R_{m+n}
    assert torch.allclose(R3.T @ R8, R5, atol=1e-12)                # R_m^T R_n = R_{n-m}
    assert torch.allclose(ra.rotation_matrix(16, 0), eye)


def test_library_apply_rope_equals_explicit_matrix(qk):
    q, _ = qk
    for p in (0, 1, 7, 100, 1000):
        R = ra.rotation_matrix(64, p)
        assert torch.allclose(ra.rope_rotate(q.float(), p).double(), R @ q, atol=1e-4 * max(1, p / 100))
    # a batch of positions at once
    rows = ra.rope_rotate(q.float().expand(3, -1), [2, 4, 6]).double()
    for row, p in zip(rows, (2, 4, 6)):
        assert torch.allclose(row, ra.rotation_matrix(64, p) @ q, atol=1e-5)


def test_score_depends_only_on_offset(qk):
    q, k = qk
    res = ra.relative_offset_error(q.float(), k.float(), [(0, 3), (10, 2), (500, 501)], [1, 13, 1000])
    assert res["relative_shift_error"] < 1e-5
    assert res["relative_matrix_error"] < 1e-5
    # and it is not trivially zero: scores do change with the offset
    s = ra.score_vs_offset(q.float(), k.float(), [0, 1, 2, 3])
    assert s.std() > 1e-2


def test_explicit_score_convention(qk):
    q, k = qk
    m, n = 9, 4
    direct = float((ra.rotation_matrix(64, m) @ q) @ (ra.rotation_matrix(64, n) @ k))
    assert math.isclose(ra.explicit_score(q, k, m - n), direct, rel_tol=1e-10, abs_tol=1e-10)


def test_pair_scores_sum_to_score_and_match_complex_form(qk):
    q, k = qk
    for r in (0, 5, -7):
        parts = ra.pair_scores(q, k, r)
        assert math.isclose(float(parts["contribution"].sum()), ra.explicit_score(q, k, r), rel_tol=1e-5, abs_tol=1e-5)  # library freqs are float32
        # complex reference: Re( q_c conj(k_c) e^{i r f} )
        qc = torch.complex(q[:32], q[32:])
        kc = torch.complex(k[:32], k[32:])
        ref = (qc * kc.conj() * torch.exp(1j * r * parts["freq"])).real
        assert torch.allclose(parts["contribution"], ref, atol=1e-10)


def test_frequency_table_and_document_list():
    rows = ra.frequency_table(64, 1e4, train_len=64)
    f = [r["freq"] for r in rows]
    assert len(f) == 32
    assert f[0] == 1.0 and math.isclose(f[1], 10000 ** (-2 / 64), rel_tol=1e-6) and math.isclose(f[1], 0.7499, abs_tol=1e-3)
    assert math.isclose(rows[-1]["wavelength"], 2 * math.pi / f[-1])
    assert rows[0]["turns_in_train_len"] > 1 and rows[-1]["turns_in_train_len"] < 1
    # the document's list is the dim=8 one
    f8 = [r["freq"] for r in ra.frequency_table(8, 1e4)]
    assert all(math.isclose(a, b, rel_tol=1e-6) for a, b in zip(f8, ra.document_frequency_list(4)))
    assert torch.allclose(ra.inv_frequencies(64).float(), rope_inv_freq(64, 1e4)[0])


def test_decay_bound_and_constant_score():
    r = list(range(0, 2000, 50))
    b = ra.decay_bound(64, r)
    assert math.isclose(float(b[0]), sum(range(1, 33)) / 32)       # all phases 1 at r = 0
    assert b[-10:].mean() < 0.5 * b[0]
    c = ra.constant_vector_score(64, r)
    assert math.isclose(float(c[0]), 1.0)
    # brute force: q = k = ones, explicit matrices
    ones = torch.ones(64, dtype=torch.float64)
    for i in (1, 7):
        assert math.isclose(float(c[i]), ra.explicit_score(ones, ones, r[i]) / 64, abs_tol=1e-5)


def test_separability_rank_one_for_a_product_and_not_for_rope():
    g = torch.Generator().manual_seed(1)
    a, b = torch.randn(30, generator=g, dtype=torch.float64), torch.randn(50, generator=g, dtype=torch.float64)
    prod = ra.separability(a[:, None] * b[None, :])
    assert prod["numerical_rank"] == 1 and prod["rank1_energy"] > 1 - 1e-12
    for d in (2, 8):
        qs, ks = torch.randn(100, d, generator=g, dtype=torch.float64), torch.randn(100, d, generator=g, dtype=torch.float64)
        sep = ra.separability(ra.content_offset_matrix(qs, ks, range(64)))
        assert sep["numerical_rank"] == d                           # two per rotating pair
        assert sep["rank1_energy"] < 0.9
