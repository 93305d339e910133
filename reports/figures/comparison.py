"""Figure: the re-evaluated best configurations (summary.json's `comparison` block,
written by search/comparison.py): each stratum's full-budget re-runs, their mean
and interval, the search run that chose the configuration."""
from __future__ import annotations

import math
from typing import Any, NamedTuple

import pandas as pd
import plotly.graph_objects as go

from reports.figures._style import baseline_lines, colour, layout, reference_lines
from reports.load import Experiment
from reports.markup import esc
from reports.select import finite

NO_EVIDENCE_COLOUR = "#bbbbbb"  # a stratum with too few full-budget runs for an interval: greyed, never ranked
# Where a stratum's marks sit around its tick (x = position): its runs spread over
# POINTS_SPREAD centred at POINTS_OFFSET, the mean with its interval at MEAN_OFFSET.
POINTS_OFFSET, POINTS_SPREAD, MEAN_OFFSET = -0.1, 0.16, 0.15


class _StratumInfo(NamedTuple):
    stratum: str
    position: int  # display order (the block's strata order), the figure's x
    trials: int  # search trials of the stratum
    stopped: int
    best_trial: str | None
    n: int  # full-budget re-runs of the best configuration (the search run that chose it is not counted)
    mean: float | None
    std: float | None
    ci_low: float | None
    ci_high: float | None
    enough_evidence: bool
    original_value: float | None  # the search run's own value: shown, never counted (it was selected by it)
    failed_reruns: int  # re-runs that failed, diverged or were stopped: counted against the stratum
    failed_text: str  # e.g. "1 of 3 re-runs diverged", "" when none failed


class _ComparisonInfo(NamedTuple):
    experiment: str
    metric: str
    mode: str  # max | min
    confidence: float
    strata: list[_StratumInfo]  # display order
    order: list[str]  # best mean first, strata without evidence last
    winner: str | None
    runner_up: str | None
    verdict: str  # decisive | equivalent | not enough evidence
    decisive: bool
    reason: str  # the verdict as search/comparison.py wrote it
    seeds_to_separate: int | None
    points: pd.DataFrame  # stratum, position, x, kind (original | re-run), value, trial_id, seed
    baseline: float | None
    references: dict[str, float] = {}  # named val_psnr lines (python -m reports --reference)


def plot_comparison(exp: Experiment, references: dict[str, float] | None = None) -> go.Figure | None:
    """None for a folder without a comparison block."""
    info = _get_comparison_info(exp, references)
    return None if info is None else _get_comparison_plot(info)


def _get_comparison_info(exp: Experiment, references: dict[str, float] | None = None) -> _ComparisonInfo | None:
    """The `comparison` block as numbers to show: None for folders written before it
    existed. Run values are matched to the re-evaluation trials of trials.csv (by
    stratum and final val_psnr) to name their trial and seed; a value without a
    match is still shown, unnamed."""
    block = exp.comparison
    if block is None:
        return None
    strata = []
    rows: list[dict[str, Any]] = []
    reruns = _reeval_finals(exp)
    for pos, (name, b) in enumerate(block["strata"].items()):
        b = b if isinstance(b, dict) else {}
        name = str(name)
        strata.append(_StratumInfo(
            stratum=name, position=pos, trials=_int(b.get("trials")), stopped=_int(b.get("stopped")),
            best_trial=None if b.get("best_trial") is None else str(b["best_trial"]), n=_int(b.get("n")),
            mean=_num(b.get("mean")), std=_num(b.get("std")), ci_low=_num(b.get("ci_low")),
            ci_high=_num(b.get("ci_high")), enough_evidence=bool(b.get("enough_evidence")),
            original_value=_num(b.get("original_value")), failed_reruns=_int(b.get("failed_reruns")),
            failed_text=str(b.get("failed_text") or "")))
        original = strata[-1].original_value
        runs = [("original", original, strata[-1].best_trial)] if original is not None else []
        runs += [("re-run", v, None) for v in map(_num, _list(b.get("reeval_values"))) if v is not None]
        left = list(reruns.get(name, []))
        for k, (kind, value, tid) in enumerate(runs):
            seed: Any = _seed_of(exp, tid) if tid else None
            if kind == "re-run":
                hit = next((m for m in left if math.isclose(m[1], value, rel_tol=1e-9, abs_tol=1e-9)), None)
                if hit is not None:
                    left.remove(hit)
                    tid, seed = hit[0], hit[2]
            shift = POINTS_SPREAD * (k / (len(runs) - 1) - 0.5) if len(runs) > 1 else 0.0
            rows.append({"stratum": name, "position": pos, "x": round(pos + POINTS_OFFSET + shift, 6),
                         "kind": kind, "value": value, "trial_id": tid, "seed": seed})
    base = exp.summary.get("baseline_psnr")
    winner, runner = block.get("winner"), block.get("runner_up")
    seeds = block.get("seeds_to_separate")
    return _ComparisonInfo(
        experiment=exp.name, metric=str(block.get("metric", "val_psnr")),
        mode="min" if block.get("mode") == "min" else "max",
        confidence=_num(block.get("confidence")) or 0.95, strata=strata,
        order=[str(o) for o in _list(block.get("order"))],
        winner=None if winner is None else str(winner), runner_up=None if runner is None else str(runner),
        verdict=str(block.get("verdict") or ("decisive" if block.get("decisive") else "not enough evidence")),
        decisive=bool(block.get("decisive")), reason=str(block.get("reason", "")),
        seeds_to_separate=int(seeds) if isinstance(seeds, int) and not isinstance(seeds, bool) else None,
        points=pd.DataFrame(rows, columns=["stratum", "position", "x", "kind", "value", "trial_id", "seed"]),
        baseline=float(base) if isinstance(base, (int, float)) else None, references=dict(references or {}))


def _num(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return float(v) if math.isfinite(v) else None


def _int(v: Any) -> int:
    return int(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) else 0


def _list(v: Any) -> list[Any]:
    return list(v) if isinstance(v, list) else []


def _reeval_finals(exp: Experiment) -> dict[str, list[tuple[str, float, Any]]]:
    """stratum -> (trial_id, final val_psnr, seed) of its completed re-evaluation runs."""
    t = exp.trials
    if "phase" not in t:
        return {}
    t = finite(t[(t["phase"] == "reeval") & (t["status"] == "completed")], "final_val_psnr")
    out: dict[str, list[tuple[str, float, Any]]] = {}
    for r in t.itertuples():
        seed = None if pd.isna(r.seed) else int(r.seed)
        out.setdefault(str(r.stratum), []).append((str(r.trial_id), float(r.final_val_psnr), seed))
    return out


def _seed_of(exp: Experiment, trial_id: str) -> int | None:
    hit = exp.trials[exp.trials["trial_id"] == trial_id]
    if hit.empty or "seed" not in hit or pd.isna(hit["seed"].iloc[0]):
        return None
    return int(hit["seed"].iloc[0])


def _get_comparison_plot(c: _ComparisonInfo) -> go.Figure:
    """Each stratum's full-budget runs of its best configuration (open diamond: the
    search run that chose it, shown but not counted; dots: the re-runs), the mean
    of the re-runs with its interval as an error bar, the copy-first-frame
    baseline as a line. Strata without enough evidence are grey and say so; a
    stratum's failed or diverged re-runs are named under its tick."""
    fig = go.Figure()
    names = [r.stratum for r in c.strata]
    by_name = {r.stratum: r for r in c.strata}
    unit = " dB" if c.metric.endswith("psnr") else ""
    pct = f"{100 * c.confidence:g}%"

    def col(stratum: str) -> str:
        return colour(stratum, names) if by_name[stratum].enough_evidence else NO_EVIDENCE_COLOUR

    for kind, symbol, label in (("original", "diamond-open", "search run (not counted)"),
                                ("re-run", "circle", "re-run (another seed)")):
        pts = c.points[c.points["kind"] == kind]
        if pts.empty:
            continue
        text = [f"{esc(s)}: trial {esc(t) if isinstance(t, str) else '?'}" + (f", seed {int(sd)}" if pd.notna(sd) else "")
                for s, t, sd in zip(pts["stratum"], pts["trial_id"], pts["seed"])]
        fig.add_trace(go.Scatter(
            x=pts["x"], y=pts["value"], mode="markers", name=label, text=text,
            marker=dict(symbol=symbol, size=11 if kind == "original" else 8,
                        color=[col(s) for s in pts["stratum"]],
                        line=dict(width=2, color=[col(s) for s in pts["stratum"]])),
            hovertemplate="%{text}<br>%{y:.2f}" + unit + "<extra>" + label + "</extra>"))
    ok = [r for r in c.strata if r.enough_evidence and r.mean is not None and r.ci_low is not None]
    if ok:
        fig.add_trace(go.Scatter(
            x=[r.position + MEAN_OFFSET for r in ok], y=[r.mean for r in ok], mode="markers",
            name=f"mean and {pct} interval",
            marker=dict(symbol="line-ew", size=18, color=[col(r.stratum) for r in ok],
                        line=dict(width=3, color=[col(r.stratum) for r in ok])),
            error_y=dict(type="data", symmetric=False, array=[r.ci_high - r.mean for r in ok],  # type: ignore[operator]
                         arrayminus=[r.mean - r.ci_low for r in ok], thickness=2, width=8, color="#444"),
            text=[f"{esc(r.stratum)}: mean {r.mean:.2f}{unit}, {pct} interval {r.ci_low:.2f} to "
                  f"{r.ci_high:.2f}{unit}, n = {r.n}" for r in ok],
            hovertemplate="%{text}<extra></extra>"))
    for r in c.strata:
        if r.enough_evidence:
            continue
        # Over its lone run, else over the baseline, else mid-height.
        y = r.mean if r.mean is not None else c.baseline
        fig.add_annotation(x=r.position, y=0.5 if y is None else y, yref="paper" if y is None else "y",
                           text=f"not enough evidence<br>({r.n} full-budget re-run{'s' if r.n != 1 else ''})",
                           showarrow=False, yshift=0 if y is None else 28, font=dict(color="#777", size=11))
    baseline_lines(fig, {c.experiment: c.baseline})
    reference_lines(fig, c.references)
    ticks = [(f"<b>{esc(n)}</b>" if n == c.winner else esc(n))
             + (f"<br><span style='font-size:11px;color:#b22'>{esc(by_name[n].failed_text)}</span>"
                if by_name[n].failed_text else "") for n in names]
    fig.update_xaxes(tickvals=list(range(len(names))), ticktext=ticks, range=[-0.6, len(names) - 0.4],
                     zeroline=False, showgrid=False)
    return layout(fig, height=400, yaxis_title=f"{esc(c.metric)} at the full budget{unit and ' (dB)'}",
                  legend=dict(orientation="h", y=-0.15))
