"""The summary table: one column per experiment with what the search ran, what it
cost and what it found (the numbers, then the HTML table)."""
from __future__ import annotations

import datetime as dt
from typing import Any, NamedTuple

import pandas as pd

from reports.load import Experiment
from reports.markup import table
from reports.select import best_row, present, py, search_only

STATUS_ORDER = ("completed", "stopped", "diverged", "failed", "running")


class _SummaryInfo(NamedTuple):
    experiment: str
    n_trials: int  # search phase
    counts: dict[str, int]  # search phase: completed / stopped / diverged / failed / running
    epochs_spent: int  # search phase
    epochs_budget: int  # search trials x num_epoch
    epochs_saved_by_asha: int  # epochs stopped trials did not run
    wall_time_s: float | None  # summary.json (None while the search runs)
    compute_time_s: float  # sum of epoch_time_s over all trial-epochs (both phases)
    best_trial_id: str | None
    best_val_psnr: float | None
    best_epoch: int | None
    best_config: dict[str, Any]
    baseline_psnr: float | None  # copy-first-frame PSNR of the val video
    n_reeval: int = 0  # re-evaluation runs (phase reeval)
    reeval_counts: dict[str, int] = {}  # their statuses
    reeval_epochs: int = 0  # epochs they trained


def _status_counts(t: pd.DataFrame) -> dict[str, int]:
    return {s: int((t["status"] == s).sum()) for s in STATUS_ORDER}


def _get_summary_info(exp: Experiment) -> _SummaryInfo:
    t = search_only(exp.trials)
    re = exp.trials[exp.trials["phase"] == "reeval"] if "phase" in exp.trials else exp.trials.iloc[:0]
    counts = _status_counts(t)
    stopped = t[t["status"] == "stopped"]
    best = best_row(t)
    wall = exp.summary.get("wall_time_s")
    base = exp.summary.get("baseline_psnr")
    time_col = exp.epochs["epoch_time_s"] if "epoch_time_s" in exp.epochs else pd.Series(dtype=float)
    return _SummaryInfo(
        experiment=exp.name, n_trials=len(t), counts=counts,
        epochs_spent=int(t["epochs_run"].sum()), epochs_budget=int(t["epochs_budget"].sum()),
        epochs_saved_by_asha=int((stopped["epochs_budget"] - stopped["epochs_run"]).clip(lower=0).sum()),
        wall_time_s=float(wall) if isinstance(wall, (int, float)) else None,
        compute_time_s=float(time_col.fillna(0).sum()),
        best_trial_id=None if best is None else str(best["trial_id"]),
        best_val_psnr=None if best is None else float(best["best_val_psnr"]),
        best_epoch=None if best is None else int(best["best_epoch"]),
        best_config={} if best is None else {p: py(best[p]) for p in exp.params if present(best[p])},
        baseline_psnr=float(base) if isinstance(base, (int, float)) else None,
        n_reeval=len(re), reeval_counts=_status_counts(re), reeval_epochs=int(re["epochs_run"].sum()),
    )


def summary_table(summaries: list[_SummaryInfo]) -> str:
    """One column per experiment, so several experiments read side by side."""
    def hms(t: float | None) -> str:
        if t is None:
            return "unknown (no summary.json)"
        return str(dt.timedelta(seconds=round(t)))
    rows: dict[str, list[str]] = {k: [] for k in (
        "search trials", "completed", "stopped early (ASHA)", "diverged", "failed", "running / interrupted",
        "re-evaluation runs",
        "epochs spent / full budget", "epochs saved by ASHA", "wall time", "trial compute time (sum)",
        "best trial", "best val_psnr (dB)", "copy-last-given-frame baseline (dB)", "best configuration")}
    for s in summaries:
        c = s.counts
        vals = [s.n_trials, c["completed"], c["stopped"], c["diverged"], c["failed"], c["running"],
                _reeval_cell(s),
                f"{s.epochs_spent} / {s.epochs_budget}", s.epochs_saved_by_asha, hms(s.wall_time_s),
                hms(s.compute_time_s), s.best_trial_id or "-",
                "-" if s.best_val_psnr is None else f"{s.best_val_psnr:.2f} (epoch {s.best_epoch})",
                "unknown" if s.baseline_psnr is None else f"{s.baseline_psnr:.2f}",
                ", ".join(f"{k}={_fmt(v)}" for k, v in s.best_config.items()) or "-"]
        for k, v in zip(rows, vals):
            rows[k].append(str(v))
    df = pd.DataFrame([[k, *v] for k, v in rows.items()], columns=["", *[s.experiment for s in summaries]])
    return table(df, css_class="summary")


def _reeval_cell(s: _SummaryInfo) -> str:
    if not s.n_reeval:
        return "0"
    c = s.reeval_counts
    parts = [f"{c[k]} {k}" for k in STATUS_ORDER if c.get(k)]
    return f"{s.n_reeval} ({', '.join(parts)}; {s.reeval_epochs} epochs)"


def _fmt(v: object) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)
