"""The verdict of a strategy study, with its confidence (issue 11, item 4).

After the search, each stratum's best configuration is re-run at the full
budget with other training seeds (phase `reeval`). `build_comparison` turns the
runs into summary.json's `comparison` block: per stratum the best configuration
and its full-budget values (the original run and its re-runs), their mean and a
Student t interval of that mean; then the winner, whether the win is decisive,
and how many seeds per stratum would separate the top two at the observed spread.

A stratum with fewer than 2 full-budget runs has no interval: it is "not enough
evidence", never a loser, and it keeps the comparison from being decisive.

Pure Python (stdlib only), so search/ writes the block and reports/ reads it
without Ray, Optuna, torch, pandas or Plotly.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Sequence

PHASES = ("search", "reeval")
UNUSABLE = ("failed", "diverged")  # runs whose value says nothing about the configuration
MIN_RUNS = 2  # full-budget runs a stratum needs for an interval
MAX_SEEDS = 1000  # seeds_to_separate looks no further


@dataclass(frozen=True)
class RunOutcome:
    trial_id: str
    phase: str  # "search" | "reeval"
    stratum: str
    status: str  # completed | stopped | diverged | failed | running
    final_value: float | None  # the metric at epoch num_epoch (full budget); None when not reached or not finite
    last_value: float | None  # the metric at the trial's last reported epoch (finite) or None
    params: dict[str, Any]  # the sampled parameters
    seed: int | None  # training seed
    source_trial: str | None = None  # reeval only: the search trial whose config it re-runs


# ---- choosing a stratum's best search run --------------------------------------

def _finite(v: Any) -> float | None:
    """A number that can go into JSON, or None (NaN, inf, None and non-numbers)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return float(v) if math.isfinite(v) else None


def _sign(mode: str) -> float:
    """Decide the direction once: after this, larger `sign * value` is better."""
    if mode == "max":
        return 1.0
    if mode == "min":
        return -1.0
    raise ValueError(f"The value of `mode` is {mode!r}, but must be 'max' or 'min'")


def _score(run: RunOutcome) -> tuple[int, float] | None:
    """(1, final value) for a full-budget run, (0, last value) for an unfinished one,
    None for a run that cannot be ranked."""
    if run.phase != "search" or run.status in UNUSABLE:
        return None
    final = _finite(run.final_value)
    if final is not None:
        return (1, final)
    last = _finite(run.last_value)
    return None if last is None else (0, last)


def pick_best(runs: Sequence[RunOutcome], mode: str) -> RunOutcome | None:
    """The best search-phase run: a run that reached the full budget beats any
    unfinished one (an ASHA-stopped run's value is from fewer epochs); then by
    its value in `mode`'s direction. Failed and diverged runs never win; ties go
    to the first given."""
    sign = _sign(mode)
    best, best_key = None, None
    for run in runs:
        score = _score(run)
        if score is None:
            continue
        key = (score[0], sign * score[1])
        if best_key is None or key > best_key:  # strict: the first of equals stays
            best, best_key = run, key
    return best


# ---- Student t quantile ----------------------------------------------------------

def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz)."""
    tiny, eps = 1e-300, 1e-15
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 10_000):
        m2 = 2 * m
        for num in (m * (b - m) * x / ((a + m2 - 1.0) * (a + m2)),
                    -(a + m) * (a + b + m) * x / ((a + m2) * (a + m2 + 1.0))):
            d = 1.0 + num * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + num / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < eps:
            break
    return h


def _betainc(a: float, b: float, x: float) -> float:
    """Regularized incomplete beta I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


@lru_cache(maxsize=4096)
def t_critical(df: int, confidence: float = 0.95) -> float:
    """Two-sided Student t quantile: P(|T| <= t) = confidence for T with `df`
    degrees of freedom (df=1: 12.706, df=10: 2.228, large df: 1.960 at 95%).

    P(|T| > t) = I_x(df/2, 1/2) with x = df / (df + t^2), increasing in x, so
    bisect on x and turn it back into t."""
    if isinstance(df, bool) or not isinstance(df, int) or df < 1:
        raise ValueError(f"The value of `df` is {df!r}, but must be an integer >= 1")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"The value of `confidence` is {confidence!r}, but must be 0 < confidence < 1")
    alpha = 1.0 - confidence
    lo, hi = 0.0, 1.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if _betainc(df / 2.0, 0.5, mid) < alpha:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-16 * max(hi, 1e-300):
            break
    x = 0.5 * (lo + hi)
    return math.sqrt(df * (1.0 - x) / x)


# ---- the comparison block --------------------------------------------------------

def _fmt(v: float) -> str:
    return f"{v:.4g}"


def _interval_sentence(confidence: float) -> str:
    pct = f"{100 * confidence:g}%"
    return (f"{pct} Student t interval of the mean over the best configuration's full-budget runs "
            "(the original run and its re-runs): mean ± t(n-1) · std / sqrt(n), std with ddof=1.")


def _stratum_block(runs: list[RunOutcome], mode: str, confidence: float) -> dict[str, Any]:
    search = [r for r in runs if r.phase == "search"]
    reeval = [r for r in runs if r.phase == "reeval"]
    best = pick_best(search, mode)
    # The re-runs name the configuration they repeat: that is the stratum's best
    # trial, whatever the search-phase ranking says (they were chosen when the
    # search ended). If they name several, the most re-run one counts.
    sources = [r.source_trial for r in reeval if r.source_trial is not None]
    if sources:
        source = max(dict.fromkeys(sources), key=sources.count)
        best = next((r for r in search if r.trial_id == source), None)
        best_id: str | None = source
        config = dict(best.params) if best else dict(next(r for r in reeval if r.source_trial == source).params)
        reeval = [r for r in reeval if r.source_trial in (source, None)]
    else:
        best_id = best.trial_id if best else None
        config = dict(best.params) if best else None
    original = _finite(best.final_value) if best and best.status not in UNUSABLE else None
    reeval_values = [v for v in (_finite(r.final_value) for r in reeval if r.status == "completed") if v is not None]
    values = ([original] if original is not None else []) + reeval_values
    n = len(values)
    mean = math.fsum(values) / n if n else None
    std = ci_low = ci_high = None
    if n >= MIN_RUNS:
        std = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))  # type: ignore[operator]
        half = t_critical(n - 1, confidence) * std / math.sqrt(n)
        ci_low, ci_high = mean - half, mean + half  # type: ignore[operator]
    return {
        "trials": len(search), "stopped": sum(r.status == "stopped" for r in search),
        "best_trial": best_id, "best_config": config, "original_value": original,
        "reeval_values": reeval_values, "values": values, "n": n,
        "mean": mean, "std": std, "ci_low": ci_low, "ci_high": ci_high, "enough_evidence": n >= MIN_RUNS,
    }


def _separated(a: dict[str, Any], b: dict[str, Any], sign: float) -> bool:
    """a's interval lies entirely on the better side of b's."""
    if sign > 0:
        return a["ci_low"] > b["ci_high"]
    return a["ci_high"] < b["ci_low"]


def seeds_to_separate(m1: float | None, s1: float | None, m2: float | None, s2: float | None,
                      confidence: float = 0.95) -> int | None:
    """The smallest n in 2..1000 for which two intervals of n runs each, with these
    stds, would not overlap at these means: t(n-1) * (s1 + s2) / sqrt(n) < |m1 - m2|.
    None when a mean or std is missing, the means are equal, or 1000 is not enough."""
    if m1 is None or m2 is None or s1 is None or s2 is None:
        return None
    gap = abs(m1 - m2)
    if gap == 0.0:
        return None

    def apart(n: int) -> bool:
        return t_critical(n - 1, confidence) * (s1 + s2) / math.sqrt(n) < gap

    if not apart(MAX_SEEDS):
        return None
    lo, hi = 2, MAX_SEEDS  # apart() only turns from False to True as n grows: bisect
    while lo < hi:
        mid = (lo + hi) // 2
        if apart(mid):
            hi = mid
        else:
            lo = mid + 1
    return lo


def _reason(blocks: dict[str, dict[str, Any]], winner: str | None, sign: float) -> tuple[bool, str]:
    names = list(blocks)
    if not names:
        return False, "There is no stratum to compare."
    if len(names) == 1:
        return False, f"There is only one stratum ({names[0]}): nothing to compare it with."
    lacking = [s for s in names if not blocks[s]["enough_evidence"]]
    each = " each" if len(lacking) > 1 else ""
    lacking_text = f"not enough evidence for {', '.join(lacking)} (fewer than {MIN_RUNS} full-budget runs{each})"
    if winner is None:
        return False, f"No stratum has the {MIN_RUNS} full-budget runs an interval needs: {lacking_text}."
    w = blocks[winner]
    others = [s for s in names if s != winner and blocks[s]["enough_evidence"]]
    overlapping = [s for s in others if not _separated(w, blocks[s], sign)]
    side = "above" if sign > 0 else "below"
    w_iv = f"[{_fmt(w['ci_low'])}, {_fmt(w['ci_high'])}]"
    if lacking:
        them = "them" if len(lacking) > 1 else "it"
        text = f"Not decisive: {lacking_text}, so {winner} cannot be called the winner over {them}"
        if overlapping:
            text += f"; {winner}'s interval {w_iv} also overlaps " + ", ".join(
                f"{s}'s [{_fmt(blocks[s]['ci_low'])}, {_fmt(blocks[s]['ci_high'])}]" for s in overlapping)
        return False, text + "."
    if overlapping:
        return False, (f"Not decisive: {winner}'s interval {w_iv} overlaps " + ", ".join(
            f"{s}'s [{_fmt(blocks[s]['ci_low'])}, {_fmt(blocks[s]['ci_high'])}]" for s in overlapping) + ".")
    return True, f"Decisive: {winner}'s interval {w_iv} lies entirely {side} every other stratum's interval."


def build_comparison(runs: Sequence[RunOutcome], *, strata: Sequence[str], metric: str, mode: str,
                     confidence: float = 0.95) -> dict[str, Any]:
    """summary.json's `comparison` block (JSON-ready: plain types, None for a missing number).

    `strata` lists every stratum in display order, also those without runs;
    a run whose stratum is not listed is appended after them."""
    sign = _sign(mode)
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"The value of `confidence` is {confidence!r}, but must be 0 < confidence < 1")
    names = list(dict.fromkeys([*strata, *(r.stratum for r in runs)]))
    blocks = {s: _stratum_block([r for r in runs if r.stratum == s], mode, confidence) for s in names}
    ranked = sorted((s for s in names if blocks[s]["enough_evidence"]),
                    key=lambda s: -sign * blocks[s]["mean"])  # stable: equal means keep display order
    order = ranked + [s for s in names if not blocks[s]["enough_evidence"]]
    winner = ranked[0] if ranked else None
    runner_up = ranked[1] if len(ranked) > 1 else None
    decisive, reason = _reason(blocks, winner, sign)
    seeds = None
    if winner is not None and runner_up is not None:
        w, r = blocks[winner], blocks[runner_up]
        seeds = seeds_to_separate(w["mean"], w["std"], r["mean"], r["std"], confidence)
    return {
        "metric": metric, "mode": mode, "confidence": confidence, "interval": _interval_sentence(confidence),
        "strata": blocks, "order": order, "winner": winner, "runner_up": runner_up,
        "decisive": decisive, "reason": reason, "seeds_to_separate": seeds,
    }
