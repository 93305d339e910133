"""search.stats against hand calculations and published tables."""
from __future__ import annotations

import math

import pytest
from scipy import stats as sps

from search import stats


def test_mean_std_and_pooled_spread() -> None:
    assert stats.mean_std([1.0, 2.0, 3.0]) == (2.0, 1.0)
    assert stats.mean_std([5.0]) == (5.0, None)
    # (2 * 1^2 + 3 * var([4,5,6,7])) / (2 + 3) with var = 5/3
    sd, df = stats.pooled_std([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0, 7.0], [9.0]])
    assert df == 5 and sd == pytest.approx(math.sqrt((2 * 1.0 + 3 * 5 / 3) / 5))
    assert stats.pooled_std([[1.0], []]) == (None, 0)


def test_welch_by_hand_and_against_scipy() -> None:
    a, b = [1.0, 2.0, 3.0], [4.0, 5.0, 6.0, 7.0]
    d = stats.welch(2.0, 1.0, 3, 5.5, math.sqrt(5 / 3), 4)
    va, vb = 1 / 3, 5 / 12
    assert d.estimate == -3.5 and d.se == pytest.approx(math.sqrt(va + vb))
    assert d.df == pytest.approx((va + vb) ** 2 / (va ** 2 / 2 + vb ** 2 / 3))
    assert d.p_value() == pytest.approx(sps.ttest_ind(a, b, equal_var=False).pvalue, rel=1e-9)
    low, high = d.interval(0.95)
    half = sps.t.ppf(0.975, d.df) * d.se
    assert (low, high) == (pytest.approx(-3.5 - half), pytest.approx(-3.5 + half))


def test_zero_standard_error() -> None:
    assert stats.welch(1.0, 0.0, 2, 1.0, 0.0, 2).p_value() == 1.0
    assert stats.welch(1.1, 0.0, 2, 1.0, 0.0, 2).p_value() == 0.0


def test_holm_hand_computed() -> None:
    # sorted 0.01 (x3 = 0.03), 0.03 (x2 = 0.06), 0.04 (x1 = 0.04 -> stays at 0.06: monotone)
    adjusted, levels = stats.holm([0.01, 0.04, 0.03])
    assert adjusted == pytest.approx([0.03, 0.06, 0.06])
    assert levels == pytest.approx([1 / 3, 1.0, 1 / 2])
    assert stats.holm([0.5]) == ([0.5], [1.0])
    assert stats.holm([0.6, 0.7])[0] == [1.0, 1.0]  # capped at 1


@pytest.mark.parametrize("margin, equivalent", [(0.5, True), (0.25, False)])
def test_two_one_sided_tests(margin: float, equivalent: bool) -> None:
    d = stats.Difference(0.1, 0.1, 10)
    verdict, (low, high) = d.equivalent(margin, 0.05)
    half = 1.812461 * 0.1  # t(0.95, 10): the 90% interval
    assert (low, high) == (pytest.approx(0.1 - half, abs=1e-6), pytest.approx(0.1 + half, abs=1e-6))
    assert verdict is equivalent


def test_exact_permutation_p_by_hand() -> None:
    # 6 splits of {1, 2, 3, 4} into pairs; |mean gap| 2 in {3,4}|{1,2} and {1,2}|{3,4}
    assert stats.permutation_p([3.0, 4.0], [1.0, 2.0], stats.mean_gap) == pytest.approx(2 / 6)
    # 5 vs 5, fully separated: 2 of C(10, 5) = 252 splits
    assert stats.permutation_p([10.0 + i for i in range(5)], [float(i) for i in range(5)],
                               stats.mean_gap) == pytest.approx(2 / 252)


def test_rank_test_counts_a_failed_run_as_the_worst() -> None:
    leader = [41.0, 40.8, -math.inf, -math.inf]
    other = [40.0, 39.9, 40.1]
    # U = 2*3 (41, 40.8 beat all) + 0 = 6, expectation 6: no evidence at all
    assert stats.rank_gap(leader, other) == 0.0
    assert stats.permutation_p(leader, other, stats.rank_gap) == 1.0
    assert stats.rank_gap([1.0, 2.0], [1.0, 0.0]) == pytest.approx(3.5 - 2)  # a tie counts 1/2


def test_large_permutation_tests_are_seeded_draws() -> None:
    a, b = [float(i % 7) for i in range(12)], [float(i % 5) + 0.5 for i in range(12)]
    assert math.comb(24, 12) > stats.EXACT_LIMIT
    p = stats.permutation_p(a, b, stats.mean_gap)
    assert p == stats.permutation_p(a, b, stats.mean_gap)  # the same draws every time
    assert p == pytest.approx(sps.permutation_test((a, b), lambda x, y: sum(x) / 12 - sum(y) / 12,
                                                   n_resamples=20_000, random_state=0).pvalue, abs=0.02)


@pytest.mark.parametrize("effect, n", [(1.0, 17), (0.5, 64), (0.8, 26)])
def test_seeds_for_power_matches_the_t_test_tables(effect: float, n: int) -> None:
    # Cohen's tables (two-sided 5%, 80% power): d = 1.0 -> 17, d = 0.5 -> 64, d = 0.8 -> 26 per group
    assert stats.seeds_for_power(effect, 1.0, 0.05, 0.8, 1000) == n
    assert stats.power(n, effect, 1.0, 0.05) >= 0.8 > stats.power(n - 1, effect, 1.0, 0.05)


def test_seeds_for_power_edges() -> None:
    assert stats.seeds_for_power(0.0, 1.0, 0.05, 0.8, 1000) is None
    assert stats.seeds_for_power(1.0, 0.0, 0.05, 0.8, 1000) == 2
    assert stats.seeds_for_power(0.01, 5.0, 0.05, 0.8, 1000) is None


def test_std_interval_by_hand() -> None:
    # chi2(4): 0.95 quantile 9.4877, 0.05 quantile 0.7107
    low, high = stats.std_interval(1.0, 4, 0.9)
    assert low == pytest.approx(math.sqrt(4 / 9.487729), rel=1e-5)
    assert high == pytest.approx(math.sqrt(4 / 0.710723), rel=1e-5)
