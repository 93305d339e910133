"""Figure: a scientific parameter's isolation plot (the Tuning Playbook's): the best
val_psnr reached for each of its values over all nuisance settings; and the table
of the best val_psnr per combination of scientific values."""
from __future__ import annotations

from typing import Any, NamedTuple

import pandas as pd
import plotly.graph_objects as go

from reports.figures._style import OTHER_COLOURS, baseline_lines, colour, layout
from reports.load import KL, ExperimentSet
from reports.markup import esc
from reports.select import baselines, finite, label, search_only, value_order


class _IsolationInfo(NamedTuple):
    param: str
    points: pd.DataFrame  # experiment, value (text), best_val_psnr, trial_id, n_trials; values in display order
    baselines: dict[str, float | None]  # experiment -> copy-last-given-frame PSNR


def plot_isolation(es: ExperimentSet, param: str) -> go.Figure:
    return _get_isolation_plot(_get_isolation_info(es, param))


def _get_isolation_info(es: ExperimentSet, param: str) -> _IsolationInfo:
    """Best val_psnr reached for each value of `param`, over all nuisance settings."""
    t = finite(search_only(es.trials))
    if param not in t or t.empty:
        empty = pd.DataFrame(columns=["experiment", "value", "best_val_psnr", "trial_id", "n_trials"])
        return _IsolationInfo(param, empty, baselines(es))
    t = t.assign(value=t[param].map(label))
    rows = []
    for (exp, val), g in t.groupby(["experiment", "value"], sort=False):
        top = g.loc[g["best_val_psnr"].astype(float).idxmax()]
        rows.append({"experiment": exp, "value": val, "best_val_psnr": float(top["best_val_psnr"]),
                     "trial_id": top["trial_id"], "n_trials": len(g)})
    out = pd.DataFrame(rows)
    order = value_order(es, param, out["value"])
    points = (out.assign(_k=out["value"].map(order.index)).sort_values(["experiment", "_k"])
              .drop(columns="_k").reset_index(drop=True))
    return _IsolationInfo(param, points, baselines(es))


def _get_combinations_info(es: ExperimentSet, params: list[str]) -> pd.DataFrame:
    """Best val_psnr per combination of scientific values (e.g. KL strategy x
    teacher-forcing setting): one row per experiment and combination."""
    t = finite(search_only(es.trials))
    params = [p for p in params if p in t]
    cols = ["experiment", *params, "best_val_psnr", "trial_id", "n_trials"]
    if not params:
        return pd.DataFrame(columns=cols)
    t = t.assign(**{p: t[p].map(label) for p in params})
    rows = []
    for key, g in t.groupby(["experiment", *params], sort=True):
        top = g.loc[g["best_val_psnr"].astype(float).idxmax()]
        rows.append(dict(zip(["experiment", *params], key)) | {
            "best_val_psnr": float(top["best_val_psnr"]), "trial_id": top["trial_id"], "n_trials": len(g)})
    return pd.DataFrame(rows, columns=cols)


def _get_isolation_plot(info: _IsolationInfo) -> go.Figure:
    iso, param = info.points, info.param
    fig = go.Figure()
    exps = list(dict.fromkeys(iso["experiment"]))
    values = list(dict.fromkeys(iso["value"]))
    for i, (exp, g) in enumerate(iso.groupby("experiment", sort=False)):
        # One experiment: colour by value (KL colours match the other figures); several: by experiment.
        if len(exps) > 1:
            colours: Any = OTHER_COLOURS[i % len(OTHER_COLOURS)]
        else:
            colours = [colour(v, values) if param == KL else "#1f77b4" for v in g["value"]]
        fig.add_trace(go.Bar(
            x=[esc(v) for v in g["value"]], y=g["best_val_psnr"], name=esc(exp), marker=dict(color=colours),
            text=[f"{v:.2f}" for v in g["best_val_psnr"]], textposition="outside",
            customdata=[[esc(t), n] for t, n in zip(g["trial_id"], g["n_trials"])],
            hovertemplate="%{x}: best %{y:.2f} dB<br>trial %{customdata[0]}, best of %{customdata[1]} trial(s)"
                          f"<extra>{esc(exp)}</extra>"))
    lo = min([*iso["best_val_psnr"], *[b for b in info.baselines.values() if b is not None]], default=0.0)
    hi = max(iso["best_val_psnr"], default=1.0)
    baseline_lines(fig, info.baselines)
    # dB differences of a few tenths vanish on an axis from 0: start near the lowest value.
    return layout(fig, height=360, barmode="group", showlegend=len(exps) > 1,
                  xaxis_title=esc(param), yaxis=dict(title="best val_psnr (dB)", range=[lo - 1.5, hi + 1.0]))
