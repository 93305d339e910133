"""Figure: parallel coordinates of one experiment, one line per trial through its
parameter values, coloured by best val_psnr."""
from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from reports.figures._style import layout
from reports.load import NOT_SAMPLED, Experiment, ParamAxis
from reports.markup import esc
from reports.select import finite, label, search_only


class _Dimension(NamedTuple):
    label: str
    values: list[float]
    tickvals: list[float] | None
    ticktext: list[str] | None


class _ParcoordsInfo(NamedTuple):
    experiment: str
    dimensions: list[_Dimension]  # one per varied parameter, then best val_psnr
    color: list[float]  # best val_psnr of each trial (line colour)
    trial_ids: list[str]


def plot_parcoords(exp: Experiment) -> go.Figure:
    return _get_parcoords_plot(_get_parcoords_info(exp))


def _get_parcoords_info(exp: Experiment) -> _ParcoordsInfo:
    """Trials with a val_psnr value; categorical values become integer ticks,
    log-scaled parameters their log10, and 'not sampled' a tick below the range."""
    searched = search_only(exp.trials)
    t = finite(searched).reset_index(drop=True)
    dims = []
    for p in exp.params:
        if searched[p].dropna().nunique() < 2 or t.empty:
            continue
        spec = exp.space.get(p, ParamAxis(p))
        if pd.api.types.is_numeric_dtype(searched[p]) and spec.kind != "categorical":
            dims.append(_numeric_dimension(p, t[p].astype(float), spec.log))
        else:
            dims.append(_categorical_dimension(p, t[p], [label(v) for v in spec.values]))
    psnr = t["best_val_psnr"].astype(float).round(4).tolist()
    dims.append(_Dimension("best val_psnr (dB)", psnr, None, None))
    return _ParcoordsInfo(exp.name, dims, psnr, t["trial_id"].tolist())


def _categorical_dimension(p: str, col: pd.Series, listed: list[str]) -> _Dimension:
    labels = col.map(label)
    seen = set(labels)
    cats = [v for v in listed if v in seen]
    cats += sorted(seen - set(cats) - {NOT_SAMPLED}) + ([NOT_SAMPLED] if NOT_SAMPLED in seen else [])
    return _Dimension(p, [float(cats.index(v)) for v in labels], [float(i) for i in range(len(cats))], cats)


def _numeric_dimension(p: str, col: pd.Series, log: bool) -> _Dimension:
    x = np.log10(col.where(col > 0)) if log else col
    ok = x.dropna()
    lo, hi = float(ok.min()), float(ok.max())
    if log and math.floor(hi) >= math.ceil(lo):  # decades inside the range, plus its ends
        ticks = sorted({lo, hi, *map(float, range(math.ceil(lo), math.floor(hi) + 1))})
    else:
        ticks = [float(v) for v in np.linspace(lo, hi, 5)] if hi > lo else [lo]
    text = [f"{10 ** v if log else v:.3g}" for v in ticks]
    values = x.copy()
    if x.isna().any():
        sentinel = lo - 0.15 * ((hi - lo) or 1.0)  # where 'not sampled' lines pass
        values = x.fillna(sentinel)
        ticks, text = [sentinel, *ticks], [NOT_SAMPLED, *text]
    name = f"{p} (log scale)" if log else p
    return _Dimension(name, [round(float(v), 6) for v in values], [round(v, 6) for v in ticks], text)


def _get_parcoords_plot(pc: _ParcoordsInfo) -> go.Figure:
    dims = []
    for d in pc.dimensions:
        dim: dict[str, Any] = dict(label=esc(d.label), values=d.values)
        if d.tickvals is not None:
            dim.update(tickvals=d.tickvals, ticktext=[esc(t) for t in (d.ticktext or [])])
        dims.append(dim)
    fig = go.Figure(go.Parcoords(
        line=dict(color=pc.color, colorscale="Viridis", showscale=True,
                  colorbar=dict(title=dict(text="best val_psnr (dB)", side="right"))),
        dimensions=dims, labelangle=-20, labelside="top"))
    return layout(fig, height=440, margin=dict(l=70, r=40, t=90, b=40))
