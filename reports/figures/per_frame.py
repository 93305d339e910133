"""Figure: per-frame PSNR along the validation video of each strategy's best trial."""
from __future__ import annotations

from typing import NamedTuple

import pandas as pd
import plotly.graph_objects as go

from reports.figures._style import colour, dash, epoch_ticks, layout
from reports.load import ExperimentSet
from reports.markup import esc
from reports.select import best_per_strategy


class _PerFrameInfo(NamedTuple):
    points: pd.DataFrame  # experiment, strategy, label, trial_id, frame, psnr (the trial's last validation)
    missing: list[tuple[str, str]]  # (experiment, trial_id) of best trials without val_psnr_per_frame.json


def plot_per_frame(es: ExperimentSet) -> go.Figure:
    return _get_per_frame_plot(_get_per_frame_info(es))


def _get_per_frame_info(es: ExperimentSet, best: pd.DataFrame | None = None) -> _PerFrameInfo:
    """`best`: select.best_per_strategy(es), when the caller has it already."""
    best = best_per_strategy(es) if best is None else best
    pf = es.per_frame.merge(best[["experiment", "trial_id", "strategy", "label"]], on=["experiment", "trial_id"])
    pf = pf[["experiment", "strategy", "label", "trial_id", "frame", "psnr"]].sort_values(
        ["experiment", "strategy", "frame"]).reset_index(drop=True)
    missing = set(zip(best["experiment"], best["trial_id"])) - set(zip(pf["experiment"], pf["trial_id"]))
    return _PerFrameInfo(pf, sorted(missing))


def _get_per_frame_plot(info: _PerFrameInfo) -> go.Figure:
    pf = info.points
    fig = go.Figure()
    exps = list(dict.fromkeys(pf["experiment"]))
    strategies = list(dict.fromkeys(pf["strategy"]))
    for (exp, s), g in pf.groupby(["experiment", "strategy"], sort=False):
        fig.add_trace(go.Scatter(
            x=g["frame"], y=g["psnr"], mode="lines", name=f"{esc(g['label'].iloc[0])} (trial {esc(g['trial_id'].iloc[0])})",
            line=dict(color=colour(s, strategies), dash=dash(exps, exp), width=1.5),
            hovertemplate="frame %{x}: %{y:.2f} dB<extra></extra>"))
    epoch_ticks(fig, pf["frame"])
    return layout(fig, xaxis_title="frame of the validation video", yaxis_title="PSNR (dB)")
