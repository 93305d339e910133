"""The report's sections: which figures, tables and notes each one shows, under
which title and caption, in which order. The numbers and the drawing of each
figure are in reports/figures/<name>.py; reports/html.py lays the sections out.

A Section holds Plotly figures plus ready-made HTML (tables, warnings, images).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import plotly.graph_objects as go

from reports.figures.axes import _get_axes_info, _get_axes_plot
from reports.figures.best_so_far import _get_best_so_far_info, _get_best_so_far_plot
from reports.figures.comparison import _get_comparison_info, _get_comparison_plot
from reports.figures.curves import _get_curves_info, _get_curves_plot
from reports.figures.frames import _get_frames_info, _get_frames_plot
from reports.figures.importance import _get_importance_info, _get_importance_plot
from reports.figures.isolation import _get_combinations_info, _get_isolation_info, _get_isolation_plot
from reports.figures.losses import _get_losses_info, _get_losses_plot
from reports.figures.parcoords import _get_parcoords_info, _get_parcoords_plot
from reports.figures.per_frame import _get_per_frame_info, _get_per_frame_plot
from reports.figures.schedules import _get_schedules_info, _get_schedules_plot
from reports.load import KL, ExperimentSet
from reports.markup import esc, note, table, warning
from reports.select import best_per_strategy


@dataclass
class Section:
    id: str
    title: str
    caption: str  # one line: how to read it
    parts: list[Any] = field(default_factory=list)  # go.Figure or str (trusted, already escaped HTML)

    @property
    def figures(self) -> list[go.Figure]:
        return [p for p in self.parts if isinstance(p, go.Figure)]


def build_sections(es: ExperimentSet) -> list[Section]:
    if es.trials.empty:  # a search that has not finished its first epoch: nothing to draw yet
        return [_curves(es)]
    best = best_per_strategy(es)  # shared by the per-frame, loss and schedule figures
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
        c = _get_comparison_info(e, es.references)
        if c is None:
            continue
        if len(es.experiments) > 1:
            s.parts.append(f"<h3>{esc(e.name)}</h3>")
        if c.strata:
            s.parts.append(_get_comparison_plot(c))
        else:
            s.parts.append(note(f"{e.name}: the comparison block lists no stratum."))
    return s


def _curves(es: ExperimentSet) -> Section:
    info = _get_curves_info(es)
    s = Section("curves", "Validation PSNR over epochs",
                "One line per trial, coloured by strategy; a red marker shows where a trial ended "
                "early (x: stopped by ASHA at its rung, triangle: diverged, square: failed); dotted thin lines "
                "are re-evaluation runs of the best configurations. Higher is better.")
    if info.points.empty:
        s.parts.append(note("No trial has reported an epoch yet."))
    else:
        s.parts.append(_get_curves_plot(info))
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
        iso = _get_isolation_info(es, p)
        if not iso.points.empty:
            s.parts += [f"<h3>{esc(p)}</h3>", _get_isolation_plot(iso)]
    combos = _get_combinations_info(es, params)
    if not combos.empty:
        shown = combos.rename(columns={"best_val_psnr": "best val_psnr (dB)", "trial_id": "best trial",
                                       "n_trials": "trials"})
        if len(es.experiments) == 1:
            shown = shown.drop(columns="experiment")
        s.parts += ["<h3>Best val_psnr per combination of scientific values</h3>", table(shown)]
    return [s]


def _axes(es: ExperimentSet) -> Section:
    axes = _get_axes_info(es)
    s = Section("axes", "Every searched parameter",
                "Each point is one trial: its best val_psnr against the value it tried (colour: KL type; "
                "symbol: status, x = stopped early). Look for trends and for the best points crowding an edge.")
    if not axes.params:
        s.parts.append(note("No parameter took more than one value."))
        return s
    s.parts += [warning(w) for w in axes.warnings]
    s.parts.append(_get_axes_plot(axes))
    if axes.n_without_value:
        s.parts.append(note(f"{axes.n_without_value} trial(s) have no finite val_psnr and are not drawn."))
    return s


def _per_frame(es: ExperimentSet, best: pd.DataFrame) -> Section:
    info = _get_per_frame_info(es, best)
    s = Section("per-frame", "Per-frame PSNR of each strategy's best trial",
                "PSNR of every predicted frame of the validation video at the trial's last validation; "
                "error accumulates along the free-running sequence, so curves fall with the frame index.")
    if info.points.empty:
        s.parts.append(note("No val_psnr_per_frame.json for the best trial of any strategy."))
        return s
    s.parts.append(_get_per_frame_plot(info))
    for exp, tid in info.missing:
        s.parts.append(note(f"{exp}: trial {tid} has no val_psnr_per_frame.json and is not drawn."))
    return s


def _losses(es: ExperimentSet, best: pd.DataFrame) -> Section:
    info = _get_losses_info(es, best)
    s = Section("losses", "Training loss of each strategy's best trial",
                "Total loss, its reconstruction (MSE) part and its KL part per epoch (log scale). "
                "The total jumps when beta rises: compare the MSE panel across strategies.")
    if not info.points.empty and info.metrics:
        s.parts.append(_get_losses_plot(info))
    return s


def _schedules(es: ExperimentSet, best: pd.DataFrame) -> Section:
    info = _get_schedules_info(es, best)
    s = Section("schedules", "KL weight and teacher-forcing schedules",
                "What each strategy's best trial used: beta per epoch (top) and the teacher-forcing ratio "
                "(bottom); filled markers are the epochs the coin flip turned teacher forcing on.")
    if not info.points.empty and {"beta", "tfr_at_epoch"} & set(info.points.columns):
        s.parts.append(_get_schedules_plot(info))
    return s


def _parcoords(es: ExperimentSet) -> Section:
    s = Section("parcoords", "Parallel coordinates",
                "One line per trial through its parameter values, coloured by best val_psnr (yellow = best). "
                "Drag along an axis to keep only the lines through that range.")
    for e in es.experiments:
        pc = _get_parcoords_info(e)
        if len(pc.trial_ids) >= 2 and len(pc.dimensions) >= 2:
            if len(es.experiments) > 1:
                s.parts.append(f"<h3>{esc(e.name)}</h3>")
            s.parts.append(_get_parcoords_plot(pc))
    return s


def _importance(es: ExperimentSet) -> Section:
    s = Section("importance", "Parameter importance",
                "How much of the variation in val_psnr each parameter explains (Optuna's PED-ANOVA on the "
                "study's COMPLETE trials). Small searches give rough estimates.")
    for e in es.experiments:
        imp = _get_importance_info(e)
        if len(es.experiments) > 1:
            s.parts.append(f"<h3>{esc(e.name)}</h3>")
        if imp.note:
            s.parts.append(note(imp.note))
        elif imp.importances:
            s.parts.append(_get_importance_plot(imp))
    return s


def _best_so_far(es: ExperimentSet) -> Section:
    info = _get_best_so_far_info(es)
    s = Section("best-so-far", "Best so far vs epochs spent",
                "The best val_psnr found after each trial, against the training epochs spent up to it. "
                "A curve still climbing at the right edge says more trials would help.")
    if not info.points.empty:
        s.parts.append(_get_best_so_far_plot(info))
    return s


def _frames(es: ExperimentSet) -> Section:
    s = Section("frames", "Ground truth vs prediction (best trial)",
                "Top row: the validation video; bottom row: the best trial's prediction from the first frame "
                "and the pose labels (frames evenly spaced along the video).")
    for e in es.experiments:
        info = _get_frames_info(e, with_name=len(es.experiments) > 1)
        image = _get_frames_plot(info)
        s.parts.append(note(f"{e.name}: {info.note}") if image is None else image)
    return s
