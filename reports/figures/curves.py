"""Figure: validation PSNR over epochs, one line per trial (re-evaluation runs dotted)."""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from reports.figures._style import STATUS_SYMBOLS, baseline_lines, colour, dash, epoch_ticks, layout, reference_lines
from reports.load import ExperimentSet
from reports.markup import esc
from reports.select import baselines, strategy

ENDED_EARLY = ("stopped", "diverged", "failed")
REEVAL_DASH = "dot"


class _CurvesInfo(NamedTuple):
    points: pd.DataFrame  # see curve_points
    baselines: dict[str, float | None]  # experiment -> copy-last-given-frame PSNR
    references: dict[str, float]  # named val_psnr lines (python -m reports --reference)


def plot_curves(es: ExperimentSet) -> go.Figure:
    return _get_curves_plot(_get_curves_info(es))


def _get_curves_info(es: ExperimentSet) -> _CurvesInfo:
    return _CurvesInfo(curve_points(es), baselines(es), dict(es.references))


def curve_points(es: ExperimentSet) -> pd.DataFrame:
    """One row per trial per epoch; `last` marks a trial's final row, `ended_early`
    a trial ASHA stopped (or that diverged or failed) before its budget.

    Re-evaluation runs stay in (phase column): they show how much a configuration's
    curve moves with the seed, and the figure dots them so they never pass for
    search trials."""
    e = es.epochs.merge(es.trials[["experiment", "trial_id", "epochs_budget", "order"]],
                        on=["experiment", "trial_id"])
    e = e.assign(strategy=strategy(e))
    e = e.sort_values(["experiment", "order", "epoch"]).reset_index(drop=True)
    last = e.groupby(["experiment", "trial_id"])["epoch"].transform("max") == e["epoch"]
    early = e["status"].isin(ENDED_EARLY) & (e["epoch"] < e["epochs_budget"])
    # A diverged trial's last val_psnr is NaN: its end marker sits on its last finite value.
    end = e["val_psnr"].where(np.isfinite(e["val_psnr"].astype(float))).groupby(
        [e["experiment"], e["trial_id"]]).ffill()
    cols = ["experiment", "trial_id", "status", "phase", "seed", "strategy", "epoch", "val_psnr"]
    out = e[cols].assign(last=last.to_numpy(), ended_early=(last & early).to_numpy(),
                         end_psnr=end.where(last).to_numpy())
    # An epoch that was not validated (val_every) has no val_psnr: no point, and the
    # line joins the validated epochs around it (a NaN would cut it into dots).
    return out[out["val_psnr"].notna() | out["last"]].reset_index(drop=True)


def _get_curves_plot(info: _CurvesInfo) -> go.Figure:
    curves = info.points
    fig = go.Figure()
    exps = list(dict.fromkeys(curves["experiment"]))
    strategies = list(dict.fromkeys(curves["strategy"]))
    seen: set[str] = set()
    for (exp, tid), g in curves.groupby(["experiment", "trial_id"], sort=False):
        s = g["strategy"].iloc[0]
        name = esc(s) if len(exps) == 1 else f"{esc(exp)} · {esc(s)}"
        # Re-evaluation runs (the best configurations re-run with other seeds) are
        # dotted, thinner and listed apart in the legend: they are not search trials.
        reeval = "phase" in g and g["phase"].iloc[0] == "reeval"
        if reeval:
            name += " · re-runs"
            seed = g["seed"].iloc[0] if "seed" in g else None
            what = f"re-run of the best configuration, seed {esc(seed)}" if pd.notna(seed) else "re-run"
        else:
            what = esc(g["status"].iloc[0])
        fig.add_trace(go.Scatter(
            x=g["epoch"], y=g["val_psnr"], mode="lines+markers", name=name, legendgroup=name,
            showlegend=name not in seen, marker=dict(size=3 if reeval else 4, color=colour(s, strategies)),
            line=dict(color=colour(s, strategies), width=1 if reeval else 1.5,
                      dash=REEVAL_DASH if reeval else dash(exps, exp)),
            hovertemplate=f"trial {esc(tid)} ({what})<br>epoch %{{x}}: %{{y:.2f}} dB<extra>{name}</extra>"))
        seen.add(name)
    ends = curves[curves["ended_early"]]
    for status, g in ends.groupby("status"):
        fig.add_trace(go.Scatter(
            x=g["epoch"], y=g["end_psnr"], mode="markers", name=f"{esc(status)} here",
            marker=dict(symbol=STATUS_SYMBOLS.get(str(status), "x"), size=11, color="#d62728",
                        line=dict(width=2, color="#d62728")),
            text=[esc(t) for t in g["trial_id"]],
            hovertemplate="trial %{text} " + esc(status) + " after epoch %{x}<extra></extra>"))
    baseline_lines(fig, info.baselines)
    reference_lines(fig, info.references)
    epoch_ticks(fig, curves["epoch"])
    return layout(fig, xaxis_title="epoch", yaxis_title="val_psnr (dB)")
