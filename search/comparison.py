"""The verdict of a strategy study, with its confidence (issues 11 and 21).

After the search, each stratum's best configuration is re-run at the full
budget with other training seeds (phase `reeval`). `build_comparison` turns the
runs into summary.json's `comparison` block:

- A stratum's estimate is the mean of its **re-runs only**. The search run that
  made the configuration the stratum's best was selected by its own value (it is
  the maximum of the stratum's trials: a winner's curse), so it is shown
  (`original_value`) but never counted.
- A re-run that failed, diverged or was stopped counts: it is named in the
  verdict ("1 of 3 re-runs diverged"), it is the worst outcome in a rank test,
  and a leader with one is never decisive on the parametric interval alone.
- The leader (best mean) is compared with every other stratum by a Welch
  interval of the difference, Holm-corrected over the comparisons, with each
  stratum's spread floored at the spread pooled across strata (and at
  `min_spread`), so that a zero spread cannot make a tiny gap decisive; with 5+
  runs on both sides an exact permutation test must agree.
- Two strategies are *equivalent within δ* when the 90% interval of their
  difference lies inside ±δ (two one-sided tests; an intersection-union test
  over several comparisons needs no correction).
- `verdict` is "decisive", "equivalent" or "not enough evidence"; `reason` is
  the sentence that says it, and what more seeds would give.

search/stats.py holds the tests themselves; this module only decides which runs
go into them. reports/ reads the block from summary.json without importing this.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

from search import stats

PHASES = ("search", "reeval")
UNUSABLE = ("failed", "diverged")  # runs whose value says nothing about the configuration
FAILED_RERUN = ("failed", "diverged", "stopped")  # a re-run that ended without a full-budget value
MIN_RUNS = 2  # full-budget re-runs a stratum needs for an interval
PERMUTATION_MIN_RUNS = 5  # from this many runs on both sides a permutation test must agree
MAX_SEEDS = 1000  # seeds_to_separate looks no further
TARGET_POWER = 0.8
DEFAULT_EQUIVALENCE = 0.5  # reeval.equivalence_db: in the metric's units (dB for PSNR)
DEFAULT_MIN_SPREAD = 0.1  # no stratum's seed spread is taken as smaller than this
DECISIVE, EQUIVALENT, UNDECIDED = "decisive", "equivalent", "not enough evidence"


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


@dataclass(frozen=True)
class Settings:
    """What the verdict is judged by (`reeval:` in the space file)."""
    confidence: float = 0.95
    equivalence: float = DEFAULT_EQUIVALENCE
    min_spread: float = DEFAULT_MIN_SPREAD
    power: float = TARGET_POWER

    def __post_init__(self) -> None:
        for name, value, ok, expected in (
                ("confidence", self.confidence, 0.5 <= self.confidence < 1.0, "0.5 <= confidence < 1"),
                ("equivalence", self.equivalence, self.equivalence >= 0.0, ">= 0"),
                ("min_spread", self.min_spread, self.min_spread >= 0.0, ">= 0"),
                ("power", self.power, 0.0 < self.power < 1.0, "0 < power < 1")):
            if not ok:
                raise ValueError(f"The value of `{name}` is {value!r}, but must be {expected}")

    @property
    def alpha(self) -> float:
        return 1.0 - self.confidence


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


# ---- one stratum ---------------------------------------------------------------------

def _rerun_entry(r: RunOutcome) -> dict[str, Any]:
    value = _finite(r.final_value) if r.status == "completed" else None
    status = r.status if r.status != "completed" or value is not None else "failed"
    return {"trial_id": r.trial_id, "seed": r.seed, "status": status, "value": value}


def _failed_text(entries: list[dict[str, Any]], of: str = "") -> str:
    """'1 of 3 re-runs diverged' ('... re-runs of Monotonic ...' with `of`); '' when none failed."""
    failed = [e for e in entries if e["status"] in FAILED_RERUN]
    if not failed:
        return ""
    ended = sum(e["status"] != "running" for e in entries)
    how = " or ".join(sorted({e["status"] for e in failed}))
    return f"{len(failed)} of {ended} re-run{'' if ended == 1 else 's'}{f' of {of}' if of else ''} {how}"


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
    entries = [_rerun_entry(r) for r in reeval]
    values = [e["value"] for e in entries if e["value"] is not None]
    failed = [e for e in entries if e["status"] in FAILED_RERUN]
    n = len(values)
    mean, std = stats.mean_std(values) if n else (None, None)
    ci_low = ci_high = None
    if n >= MIN_RUNS:
        ci_low, ci_high = stats.Difference(mean, std / math.sqrt(n), n - 1).interval(confidence)  # type: ignore[operator]
    return {
        "trials": len(search), "stopped": sum(r.status == "stopped" for r in search),
        "best_trial": best_id, "best_config": config, "original_value": original,
        "reeval_runs": entries, "reeval_values": values, "failed_reruns": len(failed),
        "failed_statuses": sorted({e["status"] for e in failed}), "failed_text": _failed_text(entries),
        "pending_reruns": sum(e["status"] == "running" for e in entries),
        "n": n, "mean": mean, "std": std, "ci_low": ci_low, "ci_high": ci_high, "enough_evidence": n >= MIN_RUNS,
    }


# ---- the leader against each other stratum ----------------------------------------------

def _signed(values: Sequence[float], failed: int, sign: float) -> list[float]:
    """Values turned so that larger is better, a failed run as the worst (-inf)."""
    return [sign * v for v in values] + [-math.inf] * failed


def _compare(leader: dict[str, Any], other: dict[str, Any], floor: float, sign: float,
             settings: Settings) -> dict[str, Any]:
    """The leader minus `other` (larger: the leader is better), before correction."""
    diff = stats.welch(sign * leader["mean"], max(leader["std"], floor), leader["n"],
                       sign * other["mean"], max(other["std"], floor), other["n"])
    checks = {"welch": diff.p_value()}
    if leader["failed_reruns"]:
        # A failed re-run has no value for the interval: the rank test counts it as the
        # leader's worst outcome, and the leader must win that test too.
        checks["rank"] = stats.permutation_p(_signed(leader["reeval_values"], leader["failed_reruns"], sign),
                                             _signed(other["reeval_values"], other["failed_reruns"], sign),
                                             stats.rank_gap)
    elif leader["n"] >= PERMUTATION_MIN_RUNS and other["n"] >= PERMUTATION_MIN_RUNS:
        checks["permutation"] = stats.permutation_p(_signed(leader["reeval_values"], 0, sign),
                                                    _signed(other["reeval_values"], 0, sign), stats.mean_gap)
    equivalent, (eq_low, eq_high) = diff.equivalent(settings.equivalence, settings.alpha)
    equivalent = equivalent and not leader["failed_reruns"] and not other["failed_reruns"]
    return {"difference": diff.estimate, "se": diff.se, "df": diff.df, "p_values": checks,
            "p": max(checks.values()), "equivalence_low": eq_low, "equivalence_high": eq_high,
            "equivalent": equivalent, "_diff": diff}


def _correct(comparisons: dict[str, dict[str, Any]], settings: Settings) -> None:
    """Holm over the comparisons: adjusted p, the confidence of each corrected interval,
    and whether the leader is better than each other stratum."""
    names = list(comparisons)
    adjusted, levels = stats.holm([comparisons[s]["p"] for s in names])
    for s, p_adj, level in zip(names, adjusted, levels):
        c = comparisons[s]
        confidence = 1.0 - settings.alpha * level
        low, high = c.pop("_diff").interval(confidence)
        c.update(p_holm=p_adj, interval_confidence=confidence, ci_low=low, ci_high=high,
                 better=p_adj < settings.alpha)


def undecided(comparisons: dict[str, dict[str, Any]]) -> list[str]:
    """The strata whose difference from the leader is neither significant (after Holm) nor
    within the equivalence margin: what more seeds could still decide."""
    return [s for s, c in comparisons.items() if not c["better"] and not c["equivalent"]]


# ---- the verdict sentence ------------------------------------------------------------

class _Units:
    def __init__(self, metric: str) -> None:
        self.unit = " dB" if metric.endswith("psnr") else ""
        self.digits = 2 if self.unit else 3

    def value(self, v: float) -> str:
        return f"{v:.{self.digits}f}{self.unit}"

    def signed(self, v: float) -> str:
        return f"{v:+.{self.digits}f}{self.unit}"

    def interval(self, low: float, high: float, unit: bool = True) -> str:
        return f"[{low:+.{self.digits}f}, {high:+.{self.digits}f}]{self.unit if unit else ''}"


def _verdict(blocks: dict[str, dict[str, Any]], leader: str | None, comparisons: dict[str, dict[str, Any]],
             seeds: dict[str, Any] | None, units: _Units, settings: Settings) -> tuple[str, str]:
    names = list(blocks)
    failures = [_failed_text(b["reeval_runs"], of=s) for s, b in blocks.items() if b["failed_reruns"]]
    failed_text = (" (" + "; ".join(failures) + ")") if failures else ""
    if not names:
        return UNDECIDED, "Not enough evidence: there is no stratum to compare."
    if len(names) == 1:
        return UNDECIDED, f"Not enough evidence: there is only one stratum ({names[0]}), nothing to compare it with."
    lacking = [s for s in names if not blocks[s]["enough_evidence"]]
    need = (f"re-run {'their' if len(lacking) > 1 else 'its'} best configuration with more seeds "
            f"(an interval needs {MIN_RUNS} full-budget re-runs)")
    if leader is None:
        return UNDECIDED, f"Not enough evidence: no stratum has {MIN_RUNS} full-budget re-runs{failed_text}; {need}."
    pct = f"{100 * settings.confidence:g}%"
    better = [s for s, c in comparisons.items() if c["better"]]
    equivalent = [s for s, c in comparisons.items() if not c["better"] and c["equivalent"]]
    open_ = undecided(comparisons)
    beats = "; ".join(f"{s} by {units.signed(comparisons[s]['difference'])} "
                      f"{units.interval(comparisons[s]['ci_low'], comparisons[s]['ci_high'], unit=False)}" for s in better)
    corrected = (f"Holm-corrected {pct} Welch intervals over {len(comparisons)} comparison"
                 f"{'s' if len(comparisons) != 1 else ''}")
    if lacking:
        text = (f"Not enough evidence: {', '.join(lacking)} {'have' if len(lacking) > 1 else 'has'} fewer than "
                f"{MIN_RUNS} full-budget re-runs{failed_text}, so no strategy can be called the winner; {need}")
        if better:
            text += f". Of the others, {leader} beats {beats} ({corrected})"
        return UNDECIDED, text + "."
    if not open_ and not equivalent:
        return DECISIVE, f"Decisive: {leader} wins; it beats {beats} ({corrected}){failed_text}."
    if not open_:
        margin = units.value(settings.equivalence)
        eq = "; ".join(f"{s} (90% interval of the difference "
                       f"{units.interval(comparisons[s]['equivalence_low'], comparisons[s]['equivalence_high'])})"
                       for s in equivalent)
        text = f"Equivalent within {margin}: {leader} and {eq}"
        if better:
            text += f"; {leader} beats {beats} ({corrected})"
        return EQUIVALENT, text + "."
    parts = []
    for s in open_:
        c = comparisons[s]
        parts.append(f"{leader} vs {s}: {units.signed(c['difference'])}, corrected interval "
                     f"{units.interval(c['ci_low'], c['ci_high'])}")
    text = f"Not enough evidence: {'; '.join(parts)}, which neither excludes 0 nor lies within ±" \
           f"{units.value(settings.equivalence)}{failed_text}"
    if seeds is not None and seeds["n"] is not None:
        text += (f". About {seeds['n']} re-runs per strategy (from {seeds['low']} to {seeds['high']} over the "
                 f"spread's 90% interval) would give {100 * settings.power:g}% power to separate {leader} and "
                 f"{seeds['against']} at the observed gap")
    elif seeds is not None:
        text += (f". {leader} and {seeds['against']} are too close for {MAX_SEEDS} re-runs to separate at the "
                 f"observed spread; more re-runs may still show them equivalent")
    return UNDECIDED, text + "."


def _seeds(leader: str, comparisons: dict[str, dict[str, Any]], spread: float, df: int,
           settings: Settings) -> dict[str, Any] | None:
    """Re-runs per strategy for `settings.power` against the closest undecided stratum."""
    open_ = undecided(comparisons)
    if not open_:
        return None
    against = min(open_, key=lambda s: abs(comparisons[s]["difference"]))
    gap = comparisons[against]["difference"]

    def need(sd: float) -> int | None:
        return stats.seeds_for_power(gap, sd, settings.alpha, settings.power, MAX_SEEDS)

    low_sd, high_sd = stats.std_interval(spread, df, 0.9) if df else (spread, spread)
    return {"against": against, "n": need(spread), "low": need(max(low_sd, settings.min_spread)),
            "high": need(high_sd), "gap": gap, "std": spread, "power": settings.power, "alpha": settings.alpha}


def build_comparison(runs: Sequence[RunOutcome], *, strata: Sequence[str], metric: str, mode: str,
                     settings: Settings = Settings()) -> dict[str, Any]:
    """summary.json's `comparison` block (JSON-ready: plain types, None for a missing number).

    `strata` lists every stratum in display order, also those without runs;
    a run whose stratum is not listed is appended after them."""
    sign = _sign(mode)
    names = list(dict.fromkeys([*strata, *(r.stratum for r in runs)]))
    blocks = {s: _stratum_block([r for r in runs if r.stratum == s], mode, settings.confidence) for s in names}
    ranked = sorted((s for s in names if blocks[s]["enough_evidence"]),
                    key=lambda s: -sign * blocks[s]["mean"])  # stable: equal means keep display order
    order = ranked + [s for s in names if not blocks[s]["enough_evidence"]]
    leader = ranked[0] if ranked else None
    pooled, df = stats.pooled_std([blocks[s]["reeval_values"] for s in ranked])
    spread = max(pooled or 0.0, settings.min_spread)
    comparisons = {s: _compare(blocks[leader], blocks[s], spread, sign, settings)  # type: ignore[index]
                   for s in ranked[1:]}
    if comparisons:
        _correct(comparisons, settings)
    seeds = _seeds(leader, comparisons, spread, df, settings) if leader and comparisons else None
    verdict, reason = _verdict(blocks, leader, comparisons, seeds, _Units(metric), settings)
    return {
        "metric": metric, "mode": mode, "confidence": settings.confidence,
        "equivalence_margin": settings.equivalence, "min_spread": settings.min_spread,
        "interval": (f"{100 * settings.confidence:g}% Student t interval of the mean over the best "
                     "configuration's full-budget re-runs (the search run that chose it is shown, not counted)."),
        "strata": blocks, "order": order, "winner": leader, "runner_up": ranked[1] if len(ranked) > 1 else None,
        "pooled_std": pooled, "spread_floor": spread, "spread_df": df, "comparisons": comparisons,
        "verdict": verdict, "decisive": verdict == DECISIVE, "reason": reason,
        "seeds_to_separate": None if seeds is None else seeds["n"], "seeds": seeds,
    }
