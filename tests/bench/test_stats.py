"""bench/stats.py: the shared statistics against values worked out by hand."""
from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.stats import at_budget, bootstrap_ci, iqm, rank_correlations, regret, spearman  # noqa: E402


def test_iqm_is_the_quarter_trimmed_mean() -> None:
    assert iqm(np.array([0.0, 1.0, 2.0, 100.0])) == pytest.approx(1.5)
    assert iqm(np.arange(8.0)) == pytest.approx(3.5)  # 2, 3, 4, 5
    # 5 values: int(5 / 4) = 1 cut from each end, unsorted input
    assert iqm(np.array([9.0, -50.0, 1.0, 3.0, 2.0])) == pytest.approx(2.0)
    # along the last axis, one IQM per row
    assert iqm(np.array([[0.0, 1.0, 2.0, 100.0], [4.0, 4.0, 4.0, -4.0]])).tolist() == pytest.approx([1.5, 4.0])


def test_spearman_by_hand_with_ties() -> None:
    # ranks of a: 1, 2, 3, 4 (centred -1.5, -0.5, 0.5, 1.5); ranks of b, ties averaged: 1.5, 1.5, 4, 3
    # (centred -1, -1, 1.5, 0.5): sum of products 3.5, sums of squares 5 and 4.5
    a, b = [1.0, 2.0, 3.0, 4.0], [5.0, 5.0, 9.0, 7.0]
    by_hand = 3.5 / math.sqrt(5 * 4.5)  # 0.7379
    assert spearman(a, b) == pytest.approx(by_hand)
    assert spearman([1.0, 2.0, 3.0, 4.0], [8.0, 6.0, 4.0, 2.0]) == pytest.approx(-1.0)
    assert spearman([1.0, 2.0], [2.0, 1.0]) is None  # fewer than 3 pairs
    assert math.isnan(spearman([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]))  # a constant side has no ranking


def test_rank_correlations_per_group_rounded() -> None:
    up = [(10.0, 1.0, 5.0), (10.0, 2.0, 6.0), (10.0, 3.0, 7.0)]      # epoch 2 order = final order
    down = [(10.0, 1.0, 7.0), (10.0, 2.0, 6.0), (10.0, 3.0, 5.0)]    # reversed
    out = rank_correlations([("A", v) for v in up] + [("B", v) for v in down[:2]], rung=2, groups=("A", "B", "C"))
    assert out["n"] == 5 and out["A"] == {"n": 3, "rho": 1.0}
    assert out["B"] == {"n": 2, "rho": None} and out["C"] == {"n": 0, "rho": None}
    # overall: rung values 1, 2, 3, 1, 2 vs finals 5, 6, 7, 7, 6
    assert out["overall"] == round(spearman([1, 2, 3, 1, 2], [5, 6, 7, 7, 6]), 3)


def test_regret_at_budget_and_bootstrap() -> None:
    stats = {"best": 30.0, "median": 20.0}
    assert regret(np.array([30.0, 25.0, 20.0, 10.0]), stats).tolist() == [0.0, 0.5, 1.0, 2.0]
    trace = [1.0, 2.0, 2.0, 5.0]
    assert at_budget(trace, 2) == 2.0 and at_budget(trace, 4) == 5.0
    assert at_budget(trace, 100) == 5.0  # a search that ended early keeps its last incumbent
    x = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8])
    low, high = bootstrap_ci({"x": x}, lambda s: iqm(s["x"]), 500, 0)
    assert 0.1 <= low < iqm(x) < high <= 0.8
    assert bootstrap_ci({"x": x}, lambda s: iqm(s["x"]), 500, 0) == (low, high)  # the seed fixes the resamples
    # paired: the same resampled rows for both samples, so x - x is exactly 0
    assert bootstrap_ci({"x": x, "y": x}, lambda s: iqm(s["x"]) - iqm(s["y"]), 200, 1) == (0.0, 0.0)
