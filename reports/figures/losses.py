"""Figure: the training loss of each strategy's best trial, total and its MSE and KL parts."""
from __future__ import annotations

from typing import NamedTuple

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from reports.figures._style import colour, dash, epoch_ticks, layout
from reports.load import ExperimentSet
from reports.markup import esc
from reports.select import best_per_strategy, epoch_metrics

LOSS_METRICS = ["train_loss", "train_mse", "train_kl"]
TITLES = {"train_loss": "total loss (MSE + beta·KL)", "train_mse": "reconstruction MSE", "train_kl": "KL"}


class _LossesInfo(NamedTuple):
    points: pd.DataFrame  # experiment, strategy, label, trial_id, epoch and the LOSS_METRICS trials.csv has
    metrics: list[str]  # the LOSS_METRICS present: one panel each


def plot_losses(es: ExperimentSet) -> go.Figure:
    return _get_losses_plot(_get_losses_info(es))


def _get_losses_info(es: ExperimentSet, best: pd.DataFrame | None = None) -> _LossesInfo:
    """`best`: select.best_per_strategy(es), when the caller has it already."""
    points = epoch_metrics(es, best_per_strategy(es) if best is None else best, LOSS_METRICS)
    return _LossesInfo(points, [m for m in LOSS_METRICS if m in points])


def _get_losses_plot(info: _LossesInfo) -> go.Figure:
    losses, metrics = info.points, info.metrics
    fig = make_subplots(rows=1, cols=max(1, len(metrics)), subplot_titles=[TITLES[m] for m in metrics] or [""],
                        horizontal_spacing=0.07)
    exps = list(dict.fromkeys(losses["experiment"]))
    strategies = list(dict.fromkeys(losses["strategy"]))
    for j, m in enumerate(metrics, start=1):
        for (exp, s), g in losses.groupby(["experiment", "strategy"], sort=False):
            fig.add_trace(go.Scatter(
                x=g["epoch"], y=g[m], mode="lines+markers", name=esc(g["label"].iloc[0]), legendgroup=esc(g["label"].iloc[0]),
                showlegend=j == 1, marker=dict(size=4), line=dict(color=colour(s, strategies), dash=dash(exps, exp)),
                hovertemplate="epoch %{x}: %{y:.4g}<extra>" + esc(g["label"].iloc[0]) + "</extra>"), row=1, col=j)
        vals = losses[m].astype(float)
        # Losses span decades early in training; a log axis keeps the late epochs readable.
        if (vals.dropna() > 0).all() and len(vals.dropna()):
            fig.update_yaxes(type="log", row=1, col=j)
        fig.update_xaxes(title_text="epoch", row=1, col=j)
    epoch_ticks(fig, losses["epoch"])
    return layout(fig, height=380)
