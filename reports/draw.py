"""Draw steps: collected numbers (reports/collect.py) -> Plotly figures.

Drawing only: no computing here beyond layout. Every string that came from a
config or a CSV (parameter values, trial ids, experiment names) goes through
`esc` before it reaches Plotly: Plotly renders a subset of HTML in titles,
labels and hover text, and converts the escaped entities back for display.
"""
from __future__ import annotations

import html
import math
from typing import Any, Iterable

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from reports.collect import MEAN_OFFSET, Axes, Comparison, Importance, Parcoords

STRATEGY_COLOURS = {"Cyclical": "#1f77b4", "Monotonic": "#ff7f0e", "None": "#2ca02c"}
OTHER_COLOURS = ["#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf", "#d62728"]
DASHES = ["solid", "dash", "dot", "dashdot", "longdash"]
STATUS_SYMBOLS = {"completed": "circle", "stopped": "x", "diverged": "triangle-down",
                  "failed": "square", "running": "diamond-open"}
BASELINE_COLOUR = "#888888"
NO_EVIDENCE_COLOUR = "#bbbbbb"  # a stratum with too few full-budget runs for an interval: greyed, never ranked
REEVAL_DASH = "dot"
HEIGHT = 420


def esc(s: Any) -> str:
    return html.escape(str(s), quote=True)


def colour(strategy: str, known: Iterable[str] = ()) -> str:
    if strategy in STRATEGY_COLOURS:
        return STRATEGY_COLOURS[strategy]
    others = sorted(set(known) - set(STRATEGY_COLOURS)) or [strategy]
    i = others.index(strategy) if strategy in others else hash(strategy)
    return OTHER_COLOURS[i % len(OTHER_COLOURS)]


def _dash(experiments: list[str], exp: str) -> str:
    return DASHES[experiments.index(exp) % len(DASHES)] if exp in experiments else "solid"


def _layout(fig: go.Figure, height: int = HEIGHT, **kw: Any) -> go.Figure:
    kw.setdefault("margin", dict(l=60, r=20, t=30, b=50))
    fig.update_layout(template="plotly_white", height=height, font=dict(size=12), **kw)
    return fig


def _epoch_ticks(fig: go.Figure, epochs: pd.Series) -> None:
    """Whole-number epoch (or frame) ticks: Plotly would print 1.5, 2.5 on a short run."""
    if len(epochs) and epochs.max() <= 15:
        fig.update_xaxes(dtick=1)


def _baseline(fig: go.Figure, baselines: dict[str, float | None], **kw: Any) -> None:
    """Dashed grey line(s): the PSNR of repeating the last given frame (lab4-2024 gives one frame,
    so it is the copy-first-frame baseline; bair-2023 gives n_past), what doing nothing scores."""
    for exp, b in baselines.items():
        if b is not None and math.isfinite(b):
            label = "copy-last-given-frame baseline" + (f" ({esc(exp)})" if len(baselines) > 1 else "")
            fig.add_hline(y=b, line=dict(color=BASELINE_COLOUR, dash="dash", width=1),
                          annotation_text=f"{label}: {b:.2f} dB", annotation_position="bottom right",
                          annotation_font_color=BASELINE_COLOUR, **kw)


REFERENCE_COLOUR = "#8c564b"


def _references(fig: go.Figure, references: dict[str, float] | None) -> None:
    """Solid brown line(s): a named val_psnr to compare with (e.g. a hand-run template model)."""
    for name, value in (references or {}).items():
        fig.add_hline(y=value, line=dict(color=REFERENCE_COLOUR, width=1.5),
                      annotation_text=f"{esc(name)}: {value:.2f} dB (reference)", annotation_position="top left",
                      annotation_font_color=REFERENCE_COLOUR)


# ---- figures -------------------------------------------------------------------

def draw_curves(curves: pd.DataFrame, baselines: dict[str, float | None],
                references: dict[str, float] | None = None) -> go.Figure:
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
                      dash=REEVAL_DASH if reeval else _dash(exps, exp)),
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
    _baseline(fig, baselines)
    _references(fig, references)
    _epoch_ticks(fig, curves["epoch"])
    return _layout(fig, xaxis_title="epoch", yaxis_title="val_psnr (dB)")


def draw_isolation(iso: pd.DataFrame, param: str, baselines: dict[str, float | None]) -> go.Figure:
    fig = go.Figure()
    exps = list(dict.fromkeys(iso["experiment"]))
    values = list(dict.fromkeys(iso["value"]))
    for i, (exp, g) in enumerate(iso.groupby("experiment", sort=False)):
        # One experiment: colour by value (KL colours match the other figures); several: by experiment.
        if len(exps) > 1:
            colours: Any = OTHER_COLOURS[i % len(OTHER_COLOURS)]
        else:
            colours = [colour(v, values) if param == "kl_anneal_type" else "#1f77b4" for v in g["value"]]
        fig.add_trace(go.Bar(
            x=[esc(v) for v in g["value"]], y=g["best_val_psnr"], name=esc(exp), marker=dict(color=colours),
            text=[f"{v:.2f}" for v in g["best_val_psnr"]], textposition="outside",
            customdata=[[esc(t), n] for t, n in zip(g["trial_id"], g["n_trials"])],
            hovertemplate="%{x}: best %{y:.2f} dB<br>trial %{customdata[0]}, best of %{customdata[1]} trial(s)"
                          f"<extra>{esc(exp)}</extra>"))
    lo = min([*iso["best_val_psnr"], *[b for b in baselines.values() if b is not None]], default=0.0)
    hi = max(iso["best_val_psnr"], default=1.0)
    _baseline(fig, baselines)
    # dB differences of a few tenths vanish on an axis from 0: start near the lowest value.
    return _layout(fig, height=360, barmode="group", showlegend=len(exps) > 1,
                   xaxis_title=esc(param), yaxis=dict(title="best val_psnr (dB)", range=[lo - 1.5, hi + 1.0]))


def draw_axes(axes: Axes) -> go.Figure:
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
    return _layout(fig, height=max(320, 290 * rows))


def draw_per_frame(pf: pd.DataFrame) -> go.Figure:
    fig = go.Figure()
    exps = list(dict.fromkeys(pf["experiment"]))
    strategies = list(dict.fromkeys(pf["strategy"]))
    for (exp, s), g in pf.groupby(["experiment", "strategy"], sort=False):
        fig.add_trace(go.Scatter(
            x=g["frame"], y=g["psnr"], mode="lines", name=f"{esc(g['label'].iloc[0])} (trial {esc(g['trial_id'].iloc[0])})",
            line=dict(color=colour(s, strategies), dash=_dash(exps, exp), width=1.5),
            hovertemplate="frame %{x}: %{y:.2f} dB<extra></extra>"))
    _epoch_ticks(fig, pf["frame"])
    return _layout(fig, xaxis_title="frame of the validation video", yaxis_title="PSNR (dB)")


def draw_losses(losses: pd.DataFrame) -> go.Figure:
    metrics = [m for m in ("train_loss", "train_mse", "train_kl") if m in losses]
    titles = {"train_loss": "total loss (MSE + beta·KL)", "train_mse": "reconstruction MSE", "train_kl": "KL"}
    fig = make_subplots(rows=1, cols=max(1, len(metrics)), subplot_titles=[titles[m] for m in metrics] or [""],
                        horizontal_spacing=0.07)
    exps = list(dict.fromkeys(losses["experiment"]))
    strategies = list(dict.fromkeys(losses["strategy"]))
    for j, m in enumerate(metrics, start=1):
        for (exp, s), g in losses.groupby(["experiment", "strategy"], sort=False):
            fig.add_trace(go.Scatter(
                x=g["epoch"], y=g[m], mode="lines+markers", name=esc(g["label"].iloc[0]), legendgroup=esc(g["label"].iloc[0]),
                showlegend=j == 1, marker=dict(size=4), line=dict(color=colour(s, strategies), dash=_dash(exps, exp)),
                hovertemplate="epoch %{x}: %{y:.4g}<extra>" + esc(g["label"].iloc[0]) + "</extra>"), row=1, col=j)
        vals = losses[m].astype(float)
        # Losses span decades early in training; a log axis keeps the late epochs readable.
        if (vals.dropna() > 0).all() and len(vals.dropna()):
            fig.update_yaxes(type="log", row=1, col=j)
        fig.update_xaxes(title_text="epoch", row=1, col=j)
    _epoch_ticks(fig, losses["epoch"])
    return _layout(fig, height=380)


def draw_schedules(sched: pd.DataFrame) -> go.Figure:
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.1,
                        subplot_titles=["KL weight beta", "teacher-forcing ratio (filled marker: teacher forcing on that epoch)"])
    exps = list(dict.fromkeys(sched["experiment"]))
    strategies = list(dict.fromkeys(sched["strategy"]))
    for (exp, s), g in sched.groupby(["experiment", "strategy"], sort=False):
        name, col = esc(g["label"].iloc[0]), colour(s, strategies)
        line = dict(color=col, dash=_dash(exps, exp), shape="hv")
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
    _epoch_ticks(fig, sched["epoch"])
    return _layout(fig, height=460)


def draw_parcoords(pc: Parcoords) -> go.Figure:
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
    return _layout(fig, height=440, margin=dict(l=70, r=40, t=90, b=40))


def draw_importance(imp: Importance) -> go.Figure:
    names = list(imp.importances)[::-1]  # largest on top
    fig = go.Figure(go.Bar(x=[imp.importances[n] for n in names], y=[esc(n) for n in names], orientation="h",
                           marker_color="#1f77b4", text=[f"{imp.importances[n]:.2f}" for n in names],
                           textposition="auto", hovertemplate="%{y}: %{x:.3f}<extra></extra>"))
    return _layout(fig, height=max(240, 60 + 36 * len(names)), xaxis_title="importance (sums to 1)",
                   margin=dict(l=150, r=20, t=20, b=50))


def draw_best_so_far(bsf: pd.DataFrame, baselines: dict[str, float | None]) -> go.Figure:
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
    _baseline(fig, baselines)
    return _layout(fig, height=380, xaxis_title="epochs spent (cumulative, in trial start order)",
                   yaxis_title="val_psnr (dB)")


def draw_comparison(c: Comparison, references: dict[str, float] | None = None) -> go.Figure:
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
    _baseline(fig, {c.experiment: c.baseline})
    _references(fig, references)
    ticks = [(f"<b>{esc(n)}</b>" if n == c.winner else esc(n))
             + (f"<br><span style='font-size:11px;color:#b22'>{esc(by_name[n].failed_text)}</span>"
                if by_name[n].failed_text else "") for n in names]
    fig.update_xaxes(tickvals=list(range(len(names))), ticktext=ticks, range=[-0.6, len(names) - 0.4],
                     zeroline=False, showgrid=False)
    return _layout(fig, height=400, yaxis_title=f"{esc(c.metric)} at the full budget{unit and ' (dB)'}",
                   legend=dict(orientation="h", y=-0.15))
