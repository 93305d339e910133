"""Figure: parameter importance, Optuna's default evaluator (PED-ANOVA in optuna 5)
on the COMPLETE trials of the experiment's study."""
from __future__ import annotations

import warnings
from typing import NamedTuple

import plotly.graph_objects as go

from reports.figures._style import layout
from reports.load import Experiment, load_study
from reports.markup import esc

MIN_COMPLETE_FOR_IMPORTANCE = 4


class _ImportanceInfo(NamedTuple):
    experiment: str
    importances: dict[str, float]  # param -> normalised importance, largest first ({} with a note)
    n_complete: int
    note: str | None  # why there is no figure, worded for the reader


def plot_importance(exp: Experiment) -> go.Figure:
    return _get_importance_plot(_get_importance_info(exp))


def _get_importance_info(exp: Experiment) -> _ImportanceInfo:
    if exp.study_path is None:
        return _ImportanceInfo(exp.name, {}, 0, "no optuna.db in the folder, so importance cannot be computed")
    import optuna  # heavy; only this figure needs it

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = load_study(exp.study_path, exp.name)
        complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        if len(complete) < MIN_COMPLETE_FOR_IMPORTANCE:
            return _ImportanceInfo(exp.name, {}, len(complete),
                                   f"only {len(complete)} COMPLETE trial(s) in the study; importance needs "
                                   f"at least {MIN_COMPLETE_FOR_IMPORTANCE} to mean anything")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "some regimes have less than 2 trials": expected on small runs
            imp = optuna.importance.get_param_importances(study)
    except Exception as e:  # noqa: BLE001 - any failure of the study or the evaluator becomes a note, not a crash
        return _ImportanceInfo(exp.name, {}, 0, f"Optuna could not compute parameter importance: {e}")
    imp = {k: float(v) for k, v in sorted(imp.items(), key=lambda kv: -kv[1])}
    return _ImportanceInfo(exp.name, imp, len(complete), None)


def _get_importance_plot(imp: _ImportanceInfo) -> go.Figure:
    names = list(imp.importances)[::-1]  # largest on top
    fig = go.Figure(go.Bar(x=[imp.importances[n] for n in names], y=[esc(n) for n in names], orientation="h",
                           marker_color="#1f77b4", text=[f"{imp.importances[n]:.2f}" for n in names],
                           textposition="auto", hovertemplate="%{y}: %{x:.3f}<extra></extra>"))
    return layout(fig, height=max(240, 60 + 36 * len(names)), xaxis_title="importance (sums to 1)",
                  margin=dict(l=150, r=20, t=20, b=50))
