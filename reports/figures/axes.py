"""Figure: every searched parameter, one panel each: each trial's best val_psnr
against the value it tried; and the warning when the best trial sits at the edge
of a numeric range."""
from __future__ import annotations

import math
from typing import Any, NamedTuple

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from reports.figures._style import STATUS_SYMBOLS, colour, layout
from reports.load import Experiment, ExperimentSet, ParamAxis
from reports.markup import esc
from reports.select import best_row, finite, label, present, search_only, strategy

EDGE_FRACTION = 0.05  # "at the edge": within 5% of the range from min or max


class _AxisParam(NamedTuple):
    experiment: str
    param: str
    kind: str  # numeric | categorical
    log: bool


class _AxesInfo(NamedTuple):
    params: list[_AxisParam]  # every parameter that varied, per experiment
    points: pd.DataFrame  # experiment, trial_id, param, value, best_val_psnr, status, strategy
    warnings: list[str]  # best trial at the edge of a numeric range
    n_without_value: int  # trials with no finite val_psnr (not drawn)


def plot_axes(es: ExperimentSet) -> go.Figure:
    return _get_axes_plot(_get_axes_info(es))


def _get_axes_info(es: ExperimentSet) -> _AxesInfo:
    params: list[_AxisParam] = []
    rows: list[dict[str, Any]] = []
    for exp in es.experiments:
        searched = search_only(exp.trials)
        t = finite(searched)
        stratum = strategy(t)
        for p in exp.params:
            vals = searched[p].dropna()
            if vals.nunique() < 2:
                continue  # a parameter that did not vary says nothing here
            spec = exp.space.get(p, ParamAxis(p))
            numeric = pd.api.types.is_numeric_dtype(searched[p]) and spec.kind != "categorical"
            params.append(_AxisParam(exp.name, p, "numeric" if numeric else "categorical", bool(numeric and spec.log)))
            for i, r in t.iterrows():
                if present(r[p]):
                    rows.append({"experiment": exp.name, "trial_id": r["trial_id"], "param": p,
                                 "value": float(r[p]) if numeric else label(r[p]),
                                 "best_val_psnr": float(r["best_val_psnr"]), "status": r["status"],
                                 "strategy": stratum[i]})
    searched_all = search_only(es.trials)
    n_without = int(len(searched_all) - len(finite(searched_all)))
    cols = ["experiment", "trial_id", "param", "value", "best_val_psnr", "status", "strategy"]
    return _AxesInfo(params, pd.DataFrame(rows, columns=cols), edge_warnings(es), n_without)


def edge_warnings(es: ExperimentSet) -> list[str]:
    """One sentence per experiment and parameter whose best trial sits within
    EDGE_FRACTION of its range's end: the optimum may lie outside the range."""
    return [w for exp in es.experiments for w in _edge_warnings(exp)]


def _edge_warnings(exp: Experiment) -> list[str]:
    best = best_row(search_only(exp.trials))
    if best is None:
        return []
    out = []
    for p in exp.params:
        spec = exp.space.get(p)
        if spec is None or spec.low is None or spec.high is None or not present(best[p]):
            continue
        pos = _position(float(best[p]), spec)
        if pos is None:
            continue
        if pos <= EDGE_FRACTION or pos >= 1 - EDGE_FRACTION:
            side, bound = ("lower", spec.low) if pos <= EDGE_FRACTION else ("upper", spec.high)
            out.append(f"{exp.name}: the best trial ({best['trial_id']}, {float(best['best_val_psnr']):.2f} dB) "
                       f"has {p} = {label(float(best[p]))}, at the {side} edge of its range "
                       f"[{label(spec.low)}, {label(spec.high)}]: the optimum may lie outside it; "
                       f"widen the range past {label(bound)} and search again.")
    return out


def _position(v: float, spec: ParamAxis) -> float | None:
    """Where v sits in [low, high] as a fraction (in log space for log distributions)."""
    lo, hi = float(spec.low), float(spec.high)  # type: ignore[arg-type]
    if spec.log:
        if lo <= 0 or hi <= 0 or v <= 0:
            return None
        lo, hi, v = math.log10(lo), math.log10(hi), math.log10(v)
    return None if hi <= lo else (v - lo) / (hi - lo)


def _get_axes_plot(axes: _AxesInfo) -> go.Figure:
    n = len(axes.params)
    cols = min(3, max(1, n))
    rows = max(1, math.ceil(n / cols))
    multi = len({a.experiment for a in axes.params}) > 1
    titles = [f"{esc(a.experiment)}: {esc(a.param)}" if multi else esc(a.param) for a in axes.params]
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=titles or [""], vertical_spacing=0.5 / rows,
                        horizontal_spacing=0.08)
    strategies = list(dict.fromkeys(axes.points["strategy"]))
    for i, a in enumerate(axes.params):
        r, c = i // cols + 1, i % cols + 1
        pts = axes.points[(axes.points["experiment"] == a.experiment) & (axes.points["param"] == a.param)]
        x = pts["value"] if a.kind == "numeric" else [esc(v) for v in pts["value"]]
        fig.add_trace(go.Scatter(
            x=x, y=pts["best_val_psnr"], mode="markers", showlegend=False,
            marker=dict(size=9, color=[colour(s, strategies) for s in pts["strategy"]],
                        symbol=[STATUS_SYMBOLS.get(s, "circle") for s in pts["status"]],
                        line=dict(width=1.5, color=[colour(s, strategies) for s in pts["strategy"]])),
            text=[f"trial {esc(t)} ({esc(s)})" for t, s in zip(pts["trial_id"], pts["status"])],
            hovertemplate="%{text}<br>" + esc(a.param) + " = %{x}<br>best %{y:.2f} dB<extra></extra>"),
            row=r, col=c)
        fig.update_xaxes(type="log" if a.log else ("category" if a.kind == "categorical" else "linear"),
                         row=r, col=c)
        fig.update_yaxes(title_text="best val_psnr (dB)" if c == 1 else None, row=r, col=c)
    # Legend-only traces: colour = KL strategy, symbol = status.
    for s in strategies:
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", name=esc(s),
                                 marker=dict(size=9, color=colour(s, strategies))))
    for status in dict.fromkeys(axes.points["status"]):
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", name=esc(status),
                                 marker=dict(size=9, color="#444", symbol=STATUS_SYMBOLS.get(status, "circle"))))
    return layout(fig, height=max(320, 290 * rows))
