"""The report's sections: for each, the collect step (reports/collect.py) then
the draw step (reports/draw.py). The collect and draw functions are re-exported
here so `reports.figures` is the one place to find a figure.

A Section holds Plotly figures plus ready-made HTML (tables, warnings, images);
reports/html.py only lays sections out.
"""
from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import plotly.graph_objects as go

from reports.collect import (  # noqa: F401 - re-exported
    KL, Axes, Comparison, Frames, Importance, Parcoords, Summary, Verdict, collect_axes, collect_best_per_strategy,
    collect_best_so_far, collect_combinations, collect_comparison, collect_curves, collect_epoch_metrics,
    collect_frames, collect_importance, collect_isolation, collect_parcoords, collect_per_frame, collect_summary,
    collect_verdict)
from reports.draw import (  # noqa: F401 - re-exported
    draw_axes, draw_best_so_far, draw_comparison, draw_curves, draw_importance, draw_isolation, draw_losses,
    draw_parcoords, draw_per_frame, draw_schedules, esc)
from reports.load import ExperimentSet


@dataclass
class Section:
    id: str
    title: str
    caption: str  # one line: how to read it
    parts: list[Any] = field(default_factory=list)  # go.Figure or str (trusted, already escaped HTML)

    @property
    def figures(self) -> list[go.Figure]:
        return [p for p in self.parts if isinstance(p, go.Figure)]


def note(text: str) -> str:
    return f'<p class="note">{esc(text)}</p>'


def warning(text: str) -> str:
    return f'<p class="warning">&#9888; {esc(text)}</p>'


def table(df: pd.DataFrame, floats: str = "{:.2f}", css_class: str = "") -> str:
    """An HTML table with every cell escaped."""
    def cell(v: Any) -> str:
        if isinstance(v, float):
            return "" if v != v else esc(floats.format(v))
        return esc(v)
    head = "".join(f"<th>{esc(c)}</th>" for c in df.columns)
    body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in row) + "</tr>"
                   for row in df.itertuples(index=False))
    cls = f' class="{esc(css_class)}"' if css_class else ""
    return f'<table{cls}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def baselines(es: ExperimentSet) -> dict[str, float | None]:
    out = {}
    for e in es.experiments:
        b = e.summary.get("baseline_psnr")
        out[e.name] = float(b) if isinstance(b, (int, float)) else None
    return out


# ---- sections ------------------------------------------------------------------

def build_sections(es: ExperimentSet) -> list[Section]:
    if es.trials.empty:  # a search that has not finished its first epoch: nothing to draw yet
        return [_curves(es)]
    best = collect_best_per_strategy(es)
    sections = [
        _comparison(es), _curves(es), *_scientific(es), _axes(es), _per_frame(es, best), _losses(es, best),
        _schedules(es, best), _parcoords(es), _importance(es), _best_so_far(es), _frames(es),
    ]
    return [s for s in sections if s.parts]


def _comparison(es: ExperimentSet) -> Section:
    s = Section("reeval", "Re-evaluated best configurations",
                "Each strategy's best configuration from the search, run again at the full budget with other "
                "training seeds: open diamond = the search's own run, dots = the re-runs, bar = their mean with "
                "its Student t interval (level in the legend); the dashed line is the copy-last-given-frame baseline. Grey strategies have fewer "
                "than 2 full-budget runs: not enough evidence, not a loss.")
    for e in es.experiments:
        c = collect_comparison(e)
        if c is None:
            continue
        if len(es.experiments) > 1:
            s.parts.append(f"<h3>{esc(e.name)}</h3>")
        if c.strata:
            s.parts.append(draw_comparison(c, es.references))
        else:
            s.parts.append(note(f"{e.name}: the comparison block lists no stratum."))
    return s


def _curves(es: ExperimentSet) -> Section:
    curves = collect_curves(es)
    s = Section("curves", "Validation PSNR over epochs",
                "One line per trial, coloured by strategy; a red marker shows where a trial ended "
                "early (x: stopped by ASHA at its rung, triangle: diverged, square: failed); dotted thin lines "
                "are re-evaluation runs of the best configurations. Higher is better.")
    if curves.empty:
        s.parts.append(note("No trial has reported an epoch yet."))
    else:
        s.parts.append(draw_curves(curves, baselines(es), es.references))
    return s


def _scientific(es: ExperimentSet) -> list[Section]:
    params = list(dict.fromkeys(p for e in es.experiments for p in e.scientific))
    fallback = not params and KL in es.trials
    if fallback:
        params = [KL]  # no roles on disk: the question the report exists for is still KL annealing
    if not params:
        return []
    s = Section("scientific", "Scientific parameters: best over nuisance settings",
                "For each value of a scientific parameter, the best val_psnr any trial with that value reached, "
                "whatever its nuisance settings (lr, optimizer, ...): the fair way to compare strategies.")
    if fallback:
        s.parts.append(note("space.yaml marks no parameter `role: scientific`; kl_anneal_type is shown."))
    for p in params:
        iso = collect_isolation(es, p)
        if not iso.empty:
            s.parts += [f"<h3>{esc(p)}</h3>", draw_isolation(iso, p, baselines(es))]
    combos = collect_combinations(es, params)
    if not combos.empty:
        shown = combos.rename(columns={"best_val_psnr": "best val_psnr (dB)", "trial_id": "best trial",
                                       "n_trials": "trials"})
        if len(es.experiments) == 1:
            shown = shown.drop(columns="experiment")
        s.parts += ["<h3>Best val_psnr per combination of scientific values</h3>", table(shown)]
    return [s]


def _axes(es: ExperimentSet) -> Section:
    axes = collect_axes(es)
    s = Section("axes", "Every searched parameter",
                "Each point is one trial: its best val_psnr against the value it tried (colour: KL type; "
                "symbol: status, x = stopped early). Look for trends and for the best points crowding an edge.")
    if not axes.params:
        s.parts.append(note("No parameter took more than one value."))
        return s
    s.parts += [warning(w) for w in axes.warnings]
    s.parts.append(draw_axes(axes))
    if axes.n_without_value:
        s.parts.append(note(f"{axes.n_without_value} trial(s) have no finite val_psnr and are not drawn."))
    return s


def _per_frame(es: ExperimentSet, best: pd.DataFrame) -> Section:
    pf = collect_per_frame(es, best)
    s = Section("per-frame", "Per-frame PSNR of each strategy's best trial",
                "PSNR of every predicted frame of the validation video at the trial's last validation; "
                "error accumulates along the free-running sequence, so curves fall with the frame index.")
    if pf.empty:
        s.parts.append(note("No val_psnr_per_frame.json for the best trial of any strategy."))
        return s
    s.parts.append(draw_per_frame(pf))
    missing = set(zip(best["experiment"], best["trial_id"])) - set(zip(pf["experiment"], pf["trial_id"]))
    for exp, tid in sorted(missing):
        s.parts.append(note(f"{exp}: trial {tid} has no val_psnr_per_frame.json and is not drawn."))
    return s


def _losses(es: ExperimentSet, best: pd.DataFrame) -> Section:
    losses = collect_epoch_metrics(es, best, ["train_loss", "train_mse", "train_kl"])
    s = Section("losses", "Training loss of each strategy's best trial",
                "Total loss, its reconstruction (MSE) part and its KL part per epoch (log scale). "
                "The total jumps when beta rises: compare the MSE panel across strategies.")
    if not losses.empty and {"train_loss", "train_mse", "train_kl"} & set(losses.columns):
        s.parts.append(draw_losses(losses))
    return s


def _schedules(es: ExperimentSet, best: pd.DataFrame) -> Section:
    sched = collect_epoch_metrics(es, best, ["beta", "tfr_at_epoch", "teacher_forcing"])
    s = Section("schedules", "KL weight and teacher-forcing schedules",
                "What each strategy's best trial used: beta per epoch (top) and the teacher-forcing ratio "
                "(bottom); filled markers are the epochs the coin flip turned teacher forcing on.")
    if not sched.empty and {"beta", "tfr_at_epoch"} & set(sched.columns):
        s.parts.append(draw_schedules(sched))
    return s


def _parcoords(es: ExperimentSet) -> Section:
    s = Section("parcoords", "Parallel coordinates",
                "One line per trial through its parameter values, coloured by best val_psnr (yellow = best). "
                "Drag along an axis to keep only the lines through that range.")
    for e in es.experiments:
        pc = collect_parcoords(e)
        if len(pc.trial_ids) >= 2 and len(pc.dimensions) >= 2:
            if len(es.experiments) > 1:
                s.parts.append(f"<h3>{esc(e.name)}</h3>")
            s.parts.append(draw_parcoords(pc))
    return s


def _importance(es: ExperimentSet) -> Section:
    s = Section("importance", "Parameter importance",
                "How much of the variation in val_psnr each parameter explains (Optuna's PED-ANOVA on the "
                "study's COMPLETE trials). Small searches give rough estimates.")
    for e in es.experiments:
        imp = collect_importance(e)
        if len(es.experiments) > 1:
            s.parts.append(f"<h3>{esc(e.name)}</h3>")
        if imp.note:
            s.parts.append(note(imp.note))
        elif imp.importances:
            s.parts.append(draw_importance(imp))
    return s


def _best_so_far(es: ExperimentSet) -> Section:
    bsf = collect_best_so_far(es)
    s = Section("best-so-far", "Best so far vs epochs spent",
                "The best val_psnr found after each trial, against the training epochs spent up to it. "
                "A curve still climbing at the right edge says more trials would help.")
    if not bsf.empty:
        s.parts.append(draw_best_so_far(bsf, baselines(es)))
    return s


def _frames(es: ExperimentSet) -> Section:
    s = Section("frames", "Ground truth vs prediction (best trial)",
                "Top row: the validation video; bottom row: the best trial's prediction from the first frame "
                "and the pose labels (frames evenly spaced along the video).")
    for e in es.experiments:
        fr = collect_frames(e)
        title = f"{e.name}: trial {fr.trial_id}" if len(es.experiments) > 1 else f"trial {fr.trial_id}"
        if fr.path is None:
            s.parts.append(note(f"{e.name}: {fr.note}"))
            continue
        data = base64.b64encode(fr.path.read_bytes()).decode("ascii")
        s.parts.append(
            f'<figure class="frames"><img src="data:image/png;base64,{data}" alt="{esc(title)}" data-frames="1" '
            "onload=\"this.dataset.loaded = this.naturalWidth > 0 ? '1' : '0'\" "
            "onerror=\"this.dataset.loaded = '0'\">"
            f"<figcaption>{esc(title)}</figcaption></figure>")
    return s

