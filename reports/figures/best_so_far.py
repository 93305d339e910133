"""Figure: the best val_psnr found so far against the training epochs spent, in trial start order."""
from __future__ import annotations

from typing import NamedTuple

import pandas as pd
import plotly.graph_objects as go

from reports.figures._style import OTHER_COLOURS, baseline_lines, layout
from reports.load import ExperimentSet
from reports.markup import esc
from reports.select import baselines, search_only


class _BestSoFarInfo(NamedTuple):
    points: pd.DataFrame  # experiment, order, trial_id, cum_epochs, val_psnr (the trial's best), best_so_far
    baselines: dict[str, float | None]  # experiment -> copy-last-given-frame PSNR


def plot_best_so_far(es: ExperimentSet) -> go.Figure:
    return _get_best_so_far_plot(_get_best_so_far_info(es))


def _get_best_so_far_info(es: ExperimentSet) -> _BestSoFarInfo:
    """In trial start order: cumulative epochs spent and the best val_psnr seen so far."""
    out = []
    for exp in es.experiments:
        t = search_only(exp.trials).sort_values("order")
        psnr = t["best_val_psnr"].astype(float)
        out.append(pd.DataFrame({
            "experiment": exp.name, "order": t["order"].to_numpy(), "trial_id": t["trial_id"].to_numpy(),
            "cum_epochs": t["epochs_run"].cumsum().to_numpy(), "val_psnr": psnr.to_numpy(),
            "best_so_far": psnr.cummax().to_numpy()}))  # cummax skips NaN rows but keeps them NaN
    df = pd.concat(out, ignore_index=True) if out else pd.DataFrame()
    if not df.empty:
        df["best_so_far"] = df.groupby("experiment")["best_so_far"].ffill()
    return _BestSoFarInfo(df, baselines(es))


def _get_best_so_far_plot(info: _BestSoFarInfo) -> go.Figure:
    bsf = info.points
    fig = go.Figure()
    exps = list(dict.fromkeys(bsf["experiment"]))
    for i, (exp, g) in enumerate(bsf.groupby("experiment", sort=False)):
        col = OTHER_COLOURS[i % len(OTHER_COLOURS)] if len(exps) > 1 else "#1f77b4"
        suffix = f" ({esc(exp)})" if len(exps) > 1 else ""
        fig.add_trace(go.Scatter(x=g["cum_epochs"], y=g["best_so_far"], mode="lines", line=dict(shape="hv", color=col, width=2),
                                 name="best so far" + suffix, hovertemplate="%{x} epochs: best %{y:.2f} dB<extra></extra>"))
        fig.add_trace(go.Scatter(x=g["cum_epochs"], y=g["val_psnr"], mode="markers", name="each trial's best" + suffix,
                                 marker=dict(color=col, size=6, opacity=0.45), text=[esc(t) for t in g["trial_id"]],
                                 hovertemplate="trial %{text}: %{y:.2f} dB<extra></extra>"))
    baseline_lines(fig, info.baselines)
    return layout(fig, height=380, xaxis_title="epochs spent (cumulative, in trial start order)",
                  yaxis_title="val_psnr (dB)")
