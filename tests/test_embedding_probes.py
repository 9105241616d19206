"""course_lib.lab.embedding_probes against brute force with torch.nn.functional.cosine_similarity."""
import itertools

import pytest
import torch
import torch.nn.functional as F

from course_lib import ByteTokenizer
from course_lib.lab.embedding_probes import (analogy_rank, group_cosine, max_abs_cosine, nearest_neighbours,
                                             single_token_id)


def _table(V=40, d=8, seed=0):
    return torch.randn(V, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _cos(u, v):
    return F.cosine_similarity(u.double(), v.double(), dim=0).item()


def test_max_abs_cosine_brute_force():
    got = max_abs_cosine(30, 5, seed=2)
    x = torch.randn(30, 5, generator=torch.Generator().manual_seed(2))
    ref = max(abs(_cos(x[i], x[j])) for i, j in itertools.combinations(range(30), 2))
    assert abs(got - ref) < 1e-5
    assert max_abs_cosine(200, 1024) < max_abs_cosine(200, 16)


def test_nearest_neighbours_brute_force():
    E = _table()
    got = nearest_neighbours(E, 7, k=5)
    ref = sorted((j for j in range(40) if j != 7), key=lambda j: -_cos(E[7], E[j]))[:5]
    assert got == ref


def test_group_cosine_brute_force():
    E = _table()
    ids = [3, 9, 17, 22]
    within, rand = group_cosine(E, ids, n_pairs=300, seed=1)
    ref = [_cos(E[i], E[j]) for i in ids for j in ids if i != j]
    assert abs(within - sum(ref) / len(ref)) < 1e-5
    pairs = torch.randint(3, 40, (2, 300), generator=torch.Generator().manual_seed(1))
    ref_rand = sum(_cos(E[p], E[q]) for p, q in pairs.T.tolist()) / 300
    assert abs(rand - ref_rand) < 1e-5


def test_analogy_rank_brute_force_and_planted():
    E = _table()
    a, b, c, d = 1, 2, 3, 4
    target = E[b] - E[a] + E[c]
    scores = {j: _cos(target, E[j]) for j in range(40) if j not in (a, b, c)}
    ref = 1 + sum(s > scores[d] for s in scores.values())
    assert analogy_rank(E, a, b, c, d) == ref
    E2 = E.clone()
    E2[d] = E2[b] - E2[a] + E2[c]                     # a planted analogy ranks first
    assert analogy_rank(E2, a, b, c, d) == 1
    with pytest.raises(ValueError, match="d=99"):
        analogy_rank(E, a, b, c, 99)


def test_single_token_id():
    tok = ByteTokenizer()
    assert single_token_id(tok, "a") == tok.encode("a")[0]
    assert single_token_id(tok, "ab") is None
