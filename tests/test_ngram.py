"""The n-gram baseline against probabilities counted by hand on a tiny text."""
import math

import pytest

from course_lib.lab.ngram import NGramModel

# text "abab a" over ids a=0, b=1, ' '=2:  0 1 0 1 2 0   (vocab 3)
IDS = [0, 1, 0, 1, 2, 0]


def test_unigram_add_one_by_hand():
    lm = NGramModel(1, 3).fit(IDS)
    # counts a:3, b:2, ' ':1, total 6 -> (c + 1) / (6 + 3)
    assert lm.prob((), 0) == pytest.approx(4 / 9)
    assert lm.prob((), 1) == pytest.approx(3 / 9)
    assert lm.prob((), 2) == pytest.approx(2 / 9)


def test_bigram_discounting_by_hand():
    d = 0.5
    lm = NGramModel(2, 3, discount=d).fit(IDS)
    uni = {0: 4 / 9, 1: 3 / 9, 2: 2 / 9}
    # after 'a' (three times followed by: b, b, ... and the last a has no successor): c(a)=2 as a context,
    # c(a,b)=2, followers {b} -> P(b|a) = (2 - d)/2 + d*1/2 * P1(b)
    assert lm.prob((0,), 1) == pytest.approx((2 - d) / 2 + d * 1 / 2 * uni[1])
    assert lm.prob((0,), 2) == pytest.approx(d * 1 / 2 * uni[2])
    # after 'b': followed by a once and ' ' once; c(b)=2, followers {a, ' '}
    assert lm.prob((1,), 0) == pytest.approx((1 - d) / 2 + d * 2 / 2 * uni[0])
    # ' ' followed by a once
    assert lm.prob((2,), 0) == pytest.approx((1 - d) / 1 + d * 1 / 1 * uni[0])
    # only the last order-1 symbols of a longer context count
    assert lm.prob((2, 2, 0), 1) == lm.prob((0,), 1)


@pytest.mark.parametrize("order", [1, 2, 3])
def test_distributions_sum_to_one(order):
    lm = NGramModel(order, 3).fit(IDS)
    for ctx in [(), (0,), (1, 2), (2, 2), (0, 1)]:
        assert sum(lm.prob(ctx, w) for w in range(3)) == pytest.approx(1.0)


def test_nll_is_mean_of_log_probs():
    lm = NGramModel(2, 3).fit(IDS)
    seq = [0, 1, 2]
    expected = -(math.log(lm.prob((0,), 1)) + math.log(lm.prob((1,), 2))) / 2
    assert lm.nll(seq) == pytest.approx(expected)


def test_bad_input():
    with pytest.raises(ValueError, match="order"):
        NGramModel(0, 3)
    with pytest.raises(ValueError, match="ids must lie"):
        NGramModel(2, 3).fit([0, 5])
    with pytest.raises(ValueError, match="discount"):
        NGramModel(2, 3, discount=1.5)
