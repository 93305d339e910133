"""The written verdict: the sentences at the top of the report that say which
strategy won and how sure that is (decisive, equivalent, not enough evidence),
and the numbers they rest on.

From summary.json's comparison block (re-evaluated best configurations) when the
folder has one, else from the search trials alone. Every sentence comes back as
escaped HTML, ready for the page.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from reports.figures.comparison import _ComparisonInfo, _get_comparison_info, _StratumInfo
from reports.load import Experiment
from reports.markup import esc
from reports.select import finite, search_only, strategy
from reports.summary import _get_summary_info, _SummaryInfo


class _StrategyResult(NamedTuple):
    strategy: str
    best_val_psnr: float
    best_trial_id: str
    n_trials: int  # with a value
    n_completed: int
    spread_std: float | None  # std (ddof=1) of completed trials' best val_psnr; None if < 2
    spread_range: float | None  # max - min of the same


class _VerdictInfo(NamedTuple):
    experiment: str
    ranking: list[_StrategyResult]  # best first
    gap_db: float | None  # winner minus runner-up
    gap_exceeds_spread: bool | None  # None when the spread is unknown
    baseline_psnr: float | None
    still_improving_db: float | None  # best trial's gain over the last quarter of its epochs


def _get_verdict_info(exp: Experiment) -> _VerdictInfo:
    """The verdict from the search trials alone (folders without a comparison block)."""
    t = finite(search_only(exp.trials)).assign(strategy=lambda d: strategy(d))
    ranking = []
    for s, g in t.groupby("strategy"):
        done = g[g["status"] == "completed"]["best_val_psnr"].astype(float)
        top = g.loc[g["best_val_psnr"].astype(float).idxmax()]
        ranking.append(_StrategyResult(
            strategy=str(s), best_val_psnr=float(top["best_val_psnr"]), best_trial_id=str(top["trial_id"]),
            n_trials=len(g), n_completed=len(done),
            spread_std=float(done.std(ddof=1)) if len(done) >= 2 else None,
            spread_range=float(done.max() - done.min()) if len(done) >= 2 else None))
    ranking.sort(key=lambda r: -r.best_val_psnr)
    gap = ranking[0].best_val_psnr - ranking[1].best_val_psnr if len(ranking) >= 2 else None
    spread = ranking[0].spread_range if ranking else None
    base = exp.summary.get("baseline_psnr")
    return _VerdictInfo(
        experiment=exp.name, ranking=ranking, gap_db=gap,
        gap_exceeds_spread=None if gap is None or spread is None else bool(gap > spread),
        baseline_psnr=float(base) if isinstance(base, (int, float)) else None,
        still_improving_db=still_improving(exp, ranking[0].best_trial_id) if ranking else None)


def still_improving(exp: Experiment, trial_id: str) -> float | None:
    """val_psnr gained over the last quarter of the trial's epochs (>0: it was still learning)."""
    g = exp.epochs[exp.epochs["trial_id"] == trial_id].sort_values("epoch")
    v = g["val_psnr"].astype(float).to_numpy() if "val_psnr" in g else np.array([])
    if len(v) < 2 or not np.isfinite(v[-1]):
        return None
    k = max(1, len(v) // 4)
    return float(v[-1] - v[-1 - k])


# ---- the sentences -------------------------------------------------------------------

def verdict_sentences(e: Experiment) -> list[str]:
    """The summary in words (already escaped HTML): who won, by how much, how sure."""
    s = _get_summary_info(e)
    c = _get_comparison_info(e)
    if c is not None:
        return comparison_sentences(e, s, c)
    v = _get_verdict_info(e)
    out = [esc(_progress_sentence(s))]
    if not v.ranking:
        return out + ["No trial has a val_psnr yet."]
    win = v.ranking[0]
    out.append(_ranking_sentence(v))
    if len(v.ranking) >= 2:
        out.append(esc(_sureness_sentence(win, v)))
    if v.baseline_psnr is not None:
        d = win.best_val_psnr - v.baseline_psnr
        out.append(esc(f"Copying the first frame into every later frame scores {v.baseline_psnr:.2f} dB; "
                       + (f"the best trial is {d:.2f} dB above it." if d > 0 else
                          f"the best trial is {-d:.2f} dB below it: the model has not yet learned more than copying.")))
    if v.still_improving_db is not None and v.still_improving_db > 0.1:
        out.append(esc(f"The best trial was still improving at its last epoch (+{v.still_improving_db:.2f} dB "
                       "over the last quarter of its epochs): a longer num_epoch may pay off."))
    return out


def _ranking_sentence(v: _VerdictInfo) -> str:
    win = v.ranking[0]
    first = (f"<b>{esc(win.strategy)}</b> KL annealing reached the best val_psnr, "
             f"<b>{win.best_val_psnr:.2f} dB</b> (trial {esc(win.best_trial_id)})")
    if len(v.ranking) >= 2:
        runner = v.ranking[1]
        rest = "; ".join(f"{esc(r.strategy)} {r.best_val_psnr:.2f} dB" for r in v.ranking[1:])
        return first + f", {v.gap_db:.2f} dB above {esc(runner.strategy)} ({rest})."
    return first + "; it was the only strategy with a result."


def comparison_sentences(e: Experiment, s: _SummaryInfo, c: _ComparisonInfo) -> list[str]:
    """The verdict from the comparison block, first: decisive, equivalent or not
    enough evidence and what it would take (search/comparison.py's sentence: one
    rule, written once); then what it rests on: the runs, the leader's mean and
    interval, the runner-up's, strata without enough evidence named as such
    (never as losers), the baseline, and whether the leader's best trial was
    still improving."""
    out = [esc(c.reason)] if c.reason else []
    out.append(esc(_progress_sentence(s)))
    if s.n_reeval:
        out.append(esc(_reeval_sentence(s)))
    by = {r.stratum: r for r in c.strata}
    lacking = [r for r in c.strata if not r.enough_evidence]
    w = by.get(c.winner) if c.winner is not None else None
    if w is None or w.mean is None or w.ci_low is None or w.ci_high is None:
        runs = ", ".join(f"{r.stratum} {r.n}" for r in c.strata) or "none"
        out.append(esc("No verdict yet: no strategy has enough evidence. An interval needs at least 2 full-budget "
                       f"re-runs of a strategy's best configuration (re-runs so far: {runs}); re-run the best "
                       "configurations with more seeds."))
        v = _get_verdict_info(e)
        if v.ranking:
            out.append("In the search alone (one seed per configuration): " + _ranking_sentence(v))
        return out
    fmt = _value_format(c)
    pct = f"{100 * c.confidence:g}%"
    out.append(f"<b>{esc(w.stratum)}</b> has the best mean {esc(c.metric)} over its best configuration's "
               f"full-budget re-runs: <b>{esc(_pm(w, fmt))}</b> ({esc(_interval(w, fmt, pct))}, "
               f"{esc(_runs_text(w, fmt))}; best trial {esc(w.best_trial or '-')}).")
    others = [by[n] for n in c.order if n in by and n != w.stratum and by[n].enough_evidence]
    others += [r for r in c.strata if r.enough_evidence and r.stratum != w.stratum and r not in others]
    if others:
        text = f"Runner-up: {others[0].stratum}, {_pm(others[0], fmt)} ({_interval(others[0], fmt, pct)}, " \
               f"n = {others[0].n})"
        if others[1:]:
            text += "; then " + "; ".join(f"{r.stratum} {_pm(r, fmt)} (n = {r.n})" for r in others[1:])
        out.append(esc(text + "."))
    if lacking:
        names = ", ".join(f"{r.stratum} ({r.n} full-budget re-run{'' if r.n == 1 else 's'}"
                          + (f"; {r.failed_text}" if r.failed_text else "") + ")" for r in lacking)
        out.append(esc(f"Not ranked: {names}. Too few re-runs for an interval is no verdict against a "
                       "strategy."))
    if c.baseline is not None and c.metric.endswith("psnr"):
        d = w.mean - c.baseline  # PSNR: higher is better
        out.append(esc(f"Copying the first frame into every later frame scores {c.baseline:.2f} dB; "
                       + (f"{w.stratum}'s mean is {d:.2f} dB above it." if d > 0 else
                          f"{w.stratum}'s mean is {-d:.2f} dB below it: the model has not yet learned more "
                          "than copying.")))
    gain = still_improving(e, w.best_trial) if w.best_trial else None
    if gain is not None and gain > 0.1:
        out.append(esc(f"{w.stratum}'s best trial was still improving at its last epoch (+{gain:.2f} dB over the "
                       "last quarter of its epochs): a longer num_epoch may pay off."))
    return out


class _Fmt(NamedTuple):
    """How the comparison's metric is written: PSNR in dB with 2 decimals, anything else plainly."""
    number: str
    unit: str

    def __call__(self, v: float | None) -> str:
        return "-" if v is None else self.number.format(v)


def _value_format(c: _ComparisonInfo) -> _Fmt:
    return _Fmt("{:.2f}", " dB") if c.metric.endswith("psnr") else _Fmt("{:.4g}", "")


def _pm(r: _StratumInfo, fmt: _Fmt) -> str:
    """mean ± half the interval, e.g. '21.95 ± 0.46 dB'."""
    if r.ci_high is None or r.ci_low is None:
        return fmt(r.mean) + fmt.unit
    return f"{fmt(r.mean)} ± {fmt((r.ci_high - r.ci_low) / 2)}{fmt.unit}"


def _interval(r: _StratumInfo, fmt: _Fmt, pct: str) -> str:
    return f"{pct} interval {fmt(r.ci_low)}–{fmt(r.ci_high)}{fmt.unit}"


def _runs_text(r: _StratumInfo, fmt: _Fmt) -> str:
    """'n = 3 re-runs, 1 of 4 re-runs diverged; the search run that chose it (22.00 dB) is not counted'."""
    text = f"n = {r.n} re-run{'' if r.n == 1 else 's'}" + (f", {r.failed_text}" if r.failed_text else "")
    if r.original_value is not None:
        # It was chosen for being the stratum's maximum: counting it would flatter the mean.
        text += f"; the search run that chose it ({fmt(r.original_value)}{fmt.unit}) is not counted"
    return text


def _reeval_sentence(s: _SummaryInfo) -> str:
    c = s.reeval_counts
    done = [f"{c[k]} {k}" for k in ("completed", "stopped", "diverged", "failed") if c.get(k)]
    if c.get("running"):
        done.append(f"{c['running']} still running or interrupted")
    return (f"Then each strategy's best configuration was re-run at the full budget with other seeds: "
            f"{s.n_reeval} re-evaluation run{'' if s.n_reeval == 1 else 's'} ({', '.join(done)}; "
            f"{s.reeval_epochs} epochs).")


def _progress_sentence(s: _SummaryInfo) -> str:
    c = s.counts
    parts = [f"{c['completed']} completed", f"{c['stopped']} stopped early by ASHA"]
    parts += [f"{c[k]} {k}" for k in ("diverged", "failed") if c[k]]
    if c["running"]:
        parts.append(f"{c['running']} still running or interrupted")
    pct = 100 * s.epochs_spent / s.epochs_budget if s.epochs_budget else 0
    what = "search trials" if s.n_reeval else "trials"
    text = (f"{s.n_trials} {what}: {', '.join(parts)}. They trained {s.epochs_spent} of the "
            f"{s.epochs_budget} epochs a full run of every trial would take ({pct:.0f}%)")
    if s.epochs_saved_by_asha:
        text += f"; ASHA saved {s.epochs_saved_by_asha} epochs"
    return text + "."


def _sureness_sentence(win: _StrategyResult, v: _VerdictInfo) -> str:
    if win.spread_range is None:
        return (f"How sure: {win.strategy} has {win.n_completed} completed trial(s), too few to measure how much "
                "its result varies between runs; rerun the best configuration of each strategy with several "
                "seeds before concluding.")
    spread = (f"{win.strategy}'s {win.n_completed} completed trials span {win.spread_range:.2f} dB "
              f"(std {win.spread_std:.2f} dB) across nuisance settings")
    if v.gap_exceeds_spread:
        return (f"How sure: {spread}; the {v.gap_db:.2f} dB gap is larger than that spread, so the lead is "
                "unlikely to be noise at this budget (still one seed per configuration).")
    return (f"How sure: {spread}; the {v.gap_db:.2f} dB gap is smaller than that spread, so another seed could "
            "change the order: rerun each strategy's best configuration with several seeds before concluding.")
