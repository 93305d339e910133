"""The tests behind a strategy verdict (issue 21): Welch intervals of a difference,
Holm's step-down correction, two one-sided tests for equivalence, an exact
permutation check (on values or on ranks, where a failed run is the worst value),
and the seeds a two-sample t test needs for a stated power.

Every function takes plain numbers and returns plain numbers, so the rules can
be checked against a hand calculation (tests/search/test_stats.py).
"""
from __future__ import annotations

import itertools
import math
import random
from dataclasses import dataclass
from typing import Callable, Sequence

from scipy import stats

EXACT_LIMIT = 20_000  # splits a permutation test enumerates; beyond it, this many seeded draws


def mean_std(values: Sequence[float]) -> tuple[float, float | None]:
    """Mean, and the sample standard deviation (ddof=1; None for a single value)."""
    n = len(values)
    mean = math.fsum(values) / n
    if n < 2:
        return mean, None
    return mean, math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))


def pooled_std(groups: Sequence[Sequence[float]]) -> tuple[float | None, int]:
    """The spread pooled over groups of 2+ values: sqrt(sum (n_i - 1) s_i^2 / sum (n_i - 1)),
    with its degrees of freedom (None, 0 when no group has two values)."""
    squares, df = 0.0, 0
    for g in groups:
        if len(g) >= 2:
            _, s = mean_std(g)
            squares += (len(g) - 1) * s * s  # type: ignore[operator]
            df += len(g) - 1
    return (math.sqrt(squares / df), df) if df else (None, 0)


@dataclass(frozen=True)
class Difference:
    """mean_a - mean_b with its Welch standard error and Welch-Satterthwaite df."""
    estimate: float
    se: float
    df: float

    def interval(self, confidence: float) -> tuple[float, float]:
        half = float(stats.t.ppf(0.5 + confidence / 2, self.df)) * self.se
        return self.estimate - half, self.estimate + half

    def p_value(self) -> float:
        """Two-sided p of 'no difference'."""
        if self.se == 0.0:
            return 0.0 if self.estimate != 0.0 else 1.0
        return float(2 * stats.t.sf(abs(self.estimate) / self.se, self.df))

    def equivalent(self, margin: float, alpha: float) -> tuple[bool, tuple[float, float]]:
        """Two one-sided tests at level alpha: equivalent within ±margin when the
        1 - 2·alpha interval lies inside (-margin, margin). Returns (verdict, interval)."""
        low, high = self.interval(1 - 2 * alpha)
        return bool(-margin < low and high < margin), (low, high)


def welch(mean_a: float, std_a: float, n_a: int, mean_b: float, std_b: float, n_b: int) -> Difference:
    """The Welch difference of two means from their stds (ddof=1) and sizes (each >= 2)."""
    va, vb = std_a * std_a / n_a, std_b * std_b / n_b
    se = math.sqrt(va + vb)
    if se == 0.0:
        return Difference(mean_a - mean_b, 0.0, float(n_a + n_b - 2))
    df = (va + vb) ** 2 / (va * va / (n_a - 1) + vb * vb / (n_b - 1))
    return Difference(mean_a - mean_b, se, df)


def holm(p_values: Sequence[float]) -> tuple[list[float], list[float]]:
    """Holm's step-down correction of m p-values.
    Returns (adjusted p-values, the level each comparison is tested at: alpha/(m - rank)
    as a fraction of alpha, rank 0 for the smallest p). A comparison's interval at
    confidence 1 - alpha·level excludes 0 exactly when Holm rejects it, provided every
    smaller p was rejected: so 'every corrected interval excludes 0' is Holm rejecting all."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted, levels = [0.0] * m, [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
        levels[i] = 1.0 / (m - rank)
    return adjusted, levels


def permutation_p(a: Sequence[float], b: Sequence[float],
                  statistic: Callable[[Sequence[float], Sequence[float]], float]) -> float:
    """Two-sided permutation p of `statistic(a, b)` over every split of the pooled values
    into groups of len(a) and len(b) (seeded draws beyond EXACT_LIMIT splits).
    The observed split counts, so p >= 1 / number of splits."""
    pooled = list(a) + list(b)
    n_a, total = len(a), len(a) + len(b)
    observed = abs(statistic(a, b))
    tol = 1e-12 * max(1.0, observed)
    if math.comb(total, n_a) <= EXACT_LIMIT:
        splits = itertools.combinations(range(total), n_a)
        count = hits = 0
    else:
        rng = random.Random(0)
        splits = (rng.sample(range(total), n_a) for _ in range(EXACT_LIMIT - 1))
        count = hits = 1  # the observed split
    for chosen in splits:
        picked = set(chosen)
        ga = [pooled[i] for i in picked]
        gb = [pooled[i] for i in range(total) if i not in picked]
        count += 1
        hits += abs(statistic(ga, gb)) >= observed - tol
    return hits / count


def mean_gap(a: Sequence[float], b: Sequence[float]) -> float:
    return math.fsum(a) / len(a) - math.fsum(b) / len(b)


def rank_gap(a: Sequence[float], b: Sequence[float]) -> float:
    """Mann-Whitney's U of a minus its expectation (ties count one half): a rank
    statistic, so a failed run entered as -inf is simply the worst outcome."""
    u = sum(1.0 if x > y else 0.5 if x == y else 0.0 for x in a for y in b)
    return u - len(a) * len(b) / 2


def power(n: int, gap: float, std: float, alpha: float) -> float:
    """Power of a two-sided two-sample t test with n runs per group at level alpha,
    for a true difference `gap` and spread `std` (noncentral t)."""
    df = 2 * n - 2
    crit = stats.t.ppf(1 - alpha / 2, df)
    nc = abs(gap) / (std * math.sqrt(2.0 / n))
    upper = float(stats.nct.sf(crit, df, nc))
    lower = float(stats.nct.cdf(-crit, df, nc))  # the wrong-sign rejections: tiny, and NaN far out
    return 1.0 if math.isnan(upper) else upper + (0.0 if math.isnan(lower) else lower)


def seeds_for_power(gap: float, std: float, alpha: float, target: float, max_n: int) -> int | None:
    """The smallest n per group (2..max_n) whose t test reaches `target` power; None
    when the gap is 0 or max_n is not enough. A spread of 0 needs only 2."""
    if gap == 0.0:
        return None
    if std == 0.0:
        return 2
    if power(max_n, gap, std, alpha) < target:
        return None
    lo, hi = 2, max_n  # power grows with n: bisect
    while lo < hi:
        mid = (lo + hi) // 2
        if power(mid, gap, std, alpha) >= target:
            hi = mid
        else:
            lo = mid + 1
    return lo


def std_interval(std: float, df: int, confidence: float) -> tuple[float, float]:
    """Chi-square interval of a spread estimated with df degrees of freedom."""
    low = std * math.sqrt(df / stats.chi2.ppf(0.5 + confidence / 2, df))
    high = std * math.sqrt(df / stats.chi2.ppf(0.5 - confidence / 2, df))
    return low, high
