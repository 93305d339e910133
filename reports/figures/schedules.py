"""Figure: the KL weight (beta) and teacher-forcing schedules each strategy's best trial used."""
from __future__ import annotations

from typing import NamedTuple

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from reports.figures._style import colour, dash, epoch_ticks, layout
from reports.load import ExperimentSet
from reports.markup import esc
from reports.select import best_per_strategy, epoch_metrics

SCHEDULE_METRICS = ["beta", "tfr_at_epoch", "teacher_forcing"]


class _SchedulesInfo(NamedTuple):
    points: pd.DataFrame  # experiment, strategy, label, trial_id, epoch and the SCHEDULE_METRICS trials.csv has


def plot_schedules(es: ExperimentSet) -> go.Figure:
    return _get_schedules_plot(_get_schedules_info(es))


def _get_schedules_info(es: ExperimentSet, best: pd.DataFrame | None = None) -> _SchedulesInfo:
    """`best`: select.best_per_strategy(es), when the caller has it already."""
    return _SchedulesInfo(epoch_metrics(es, best_per_strategy(es) if best is None else best, SCHEDULE_METRICS))


def _get_schedules_plot(info: _SchedulesInfo) -> go.Figure:
    sched = info.points
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.1,
                        subplot_titles=["KL weight beta", "teacher-forcing ratio (filled marker: teacher forcing on that epoch)"])
    exps = list(dict.fromkeys(sched["experiment"]))
    strategies = list(dict.fromkeys(sched["strategy"]))
    for (exp, s), g in sched.groupby(["experiment", "strategy"], sort=False):
        name, col = esc(g["label"].iloc[0]), colour(s, strategies)
        line = dict(color=col, dash=dash(exps, exp), shape="hv")
        if "beta" in g:
            fig.add_trace(go.Scatter(x=g["epoch"], y=g["beta"], mode="lines", name=name, legendgroup=name,
                                     line=line, hovertemplate="epoch %{x}: beta %{y:.3g}<extra>" + name + "</extra>"),
                          row=1, col=1)
        if "tfr_at_epoch" in g:
            fig.add_trace(go.Scatter(x=g["epoch"], y=g["tfr_at_epoch"], mode="lines", name=name, legendgroup=name,
                                     showlegend="beta" not in g, line=line,
                                     hovertemplate="epoch %{x}: tfr %{y:.3g}<extra>" + name + "</extra>"), row=2, col=1)
            if "teacher_forcing" in g:
                on = g[g["teacher_forcing"].astype(float) == 1]
                fig.add_trace(go.Scatter(x=on["epoch"], y=on["tfr_at_epoch"], mode="markers", legendgroup=name,
                                         name=f"{name}: teacher forcing on", showlegend=False,
                                         marker=dict(color=col, size=8, symbol="circle"),
                                         hovertemplate="epoch %{x}: teacher forcing on<extra>" + name + "</extra>"),
                              row=2, col=1)
    fig.update_yaxes(range=[-0.05, 1.05], row=1, col=1)
    fig.update_yaxes(range=[-0.05, 1.05], row=2, col=1)
    fig.update_xaxes(title_text="epoch", row=2, col=1)
    epoch_ticks(fig, sched["epoch"])
    return layout(fig, height=460)
