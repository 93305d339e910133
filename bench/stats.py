"""The statistics the replay benchmarks report: one definition each, shared by bench/replay.py,
bench/stop_rates.py and bench/efficiency.py.

- iqm: the interquartile mean (scipy's trim_mean(x, 0.25)), robust to a few lucky or unlucky searches;
- bootstrap_ci: a 95% percentile interval over paired resamples of repetitions (common random numbers:
  every arm is resampled with the same rows);
- regret: normalised regret against a table's best and median;
- at_budget: the incumbent of a trace after a number of epochs;
- spearman and rank_correlations: Spearman's rho (Pearson on ranks, ties averaged), e.g. of val_psnr at
  an ASHA rung against the final value.
"""
from __future__ import annotations

import warnings
from typing import Any, Callable, Sequence

import numpy as np


def iqm(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """Interquartile mean: the mean after cutting int(n/4) values from each end (scipy's trim_mean(x, 0.25))."""
    x = np.sort(np.asarray(x, dtype=float), axis=axis)
    n = x.shape[axis]
    cut = int(0.25 * n)
    return np.take(x, range(cut, n - cut), axis=axis).mean(axis=axis)


def bootstrap_ci(samples: dict[str, np.ndarray], stat: Callable[[dict[str, np.ndarray]], np.ndarray],
                 resamples: int, seed: int) -> tuple[float, float]:
    """95% percentile interval of stat over paired resamples of repetitions (the same rows for every arm)."""
    n = len(next(iter(samples.values())))
    idx = np.random.default_rng(seed).integers(0, n, size=(resamples, n))
    values = stat({k: v[idx] for k, v in samples.items()})
    return float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))


def regret(incumbent: np.ndarray, table_stats: dict[str, float]) -> np.ndarray:
    """(best - incumbent) / (best - median): 0 at the table's best, 1 at the median of its designs."""
    return (table_stats["best"] - incumbent) / (table_stats["best"] - table_stats["median"])


def at_budget(trace: list[float], epochs: int) -> float:
    """The incumbent after `epochs` epochs (a search that ended earlier keeps its last incumbent)."""
    return trace[min(epochs, len(trace)) - 1]


def spearman(a: Sequence[float], b: Sequence[float]) -> float | None:
    """Spearman's rho (Pearson on ranks, ties averaged); None for fewer than 3 pairs, nan for a constant side."""
    from scipy.stats import ConstantInputWarning, spearmanr

    if len(a) < 3:
        return None
    with warnings.catch_warnings():
        # A constant side has no ranking: rho is nan, which is the answer, not a problem to warn about.
        warnings.simplefilter("ignore", ConstantInputWarning)
        return float(spearmanr(a, b).statistic)


def rank_correlations(items: list[tuple[str, tuple[float, ...]]], rung: int,
                      groups: Sequence[str]) -> dict[str, Any]:
    """rho(value at the rung epoch, final value) over all (group, curve) items and within each group
    (rounded to 3 decimals)."""
    def rho(curves: list[tuple[float, ...]]) -> float | None:
        r = spearman([v[rung - 1] for v in curves], [v[-1] for v in curves])
        return None if r is None else round(r, 3)

    out: dict[str, Any] = {"n": len(items), "overall": rho([v for _, v in items])}
    for group in groups:
        sub = [v for k, v in items if k == group]
        out[group] = {"n": len(sub), "rho": rho(sub)}
    return out
