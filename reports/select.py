"""Row selections and value labels that several figures, the summary and the verdict share.

Pure functions on the frames reports/load.py builds: which rows a figure
reads (the search phase, trials with a value, each strategy's best trial) and
how a parameter value is written. No Plotly, no files.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from reports.load import ALL_TRIALS, KL, NOT_SAMPLED, ExperimentSet, ParamAxis


def strategy(trials: pd.DataFrame) -> pd.Series:
    """The stratum (strategy) of each row: the `stratum` column (reports/load.py fills
    it for old folders), else the KL annealing type, else 'all trials'."""
    if "stratum" in trials:
        return trials["stratum"].fillna(NOT_SAMPLED).astype(str)
    if KL in trials:
        return trials[KL].fillna(NOT_SAMPLED).astype(str)
    return pd.Series(ALL_TRIALS, index=trials.index, dtype=object)


def search_only(df: pd.DataFrame) -> pd.DataFrame:
    """The search-phase rows: figures that describe the search itself (what it
    tried, what it found, what it cost) leave the re-evaluation runs out."""
    return df[df["phase"] == "search"] if "phase" in df else df


def finite(df: pd.DataFrame, col: str = "best_val_psnr") -> pd.DataFrame:
    """The rows whose `col` is a finite number (a diverged or unvalidated trial has none)."""
    return df[np.isfinite(pd.to_numeric(df[col], errors="coerce").astype(float))]


def best_row(trials: pd.DataFrame) -> pd.Series | None:
    """The trial with the highest best val_psnr; None when no trial has a value."""
    ok = finite(trials)
    if ok.empty:
        return None
    return ok.loc[ok["best_val_psnr"].astype(float).idxmax()]


def present(v: Any) -> bool:
    return v is not None and not (isinstance(v, float) and math.isnan(v))


def py(v: Any) -> Any:
    """numpy scalars -> plain Python (ints stay ints: 6.0 -> 6)."""
    v = v.item() if isinstance(v, np.generic) else v
    return int(v) if isinstance(v, float) and v.is_integer() else v


def label(v: Any) -> str:
    """A parameter value as text: 6.0 -> '6', NaN -> 'not sampled'."""
    if not present(v):
        return NOT_SAMPLED
    if isinstance(v, float):
        return str(int(v)) if v.is_integer() else f"{v:.4g}"
    return str(v)


def value_order(es: ExperimentSet, param: str, values: pd.Series) -> list[str]:
    """Values in the order space.yaml lists them, then numerically, 'not sampled' last."""
    listed = []
    for e in es.experiments:
        listed += [label(v) for v in e.space.get(param, ParamAxis(param)).values]
    rest = sorted(set(values) - set(listed) - {NOT_SAMPLED}, key=_num_key)
    order = list(dict.fromkeys(listed + rest))
    return [v for v in order if v in set(values)] + ([NOT_SAMPLED] if NOT_SAMPLED in set(values) else [])


def _num_key(s: str) -> tuple[int, float, str]:
    try:
        return (0, float(s), s)
    except ValueError:
        return (1, 0.0, s)


def baselines(es: ExperimentSet) -> dict[str, float | None]:
    """Each experiment's copy-last-given-frame PSNR from summary.json (None when unknown)."""
    out = {}
    for e in es.experiments:
        b = e.summary.get("baseline_psnr")
        out[e.name] = float(b) if isinstance(b, (int, float)) else None
    return out


# ---- each strategy's best trial: what the per-frame, loss and schedule figures show ----

def best_per_strategy(es: ExperimentSet) -> pd.DataFrame:
    """The best search trial of each strategy (stratum) in each experiment, with a legend label."""
    t = finite(search_only(es.trials))
    t = t.assign(strategy=strategy(t))
    rows = []
    for (exp, s), g in t.groupby(["experiment", "strategy"], sort=True):
        top = g.loc[g["best_val_psnr"].astype(float).idxmax()]
        name = s if len(es.experiments) == 1 else f"{exp} · {s}"
        rows.append({"experiment": exp, "strategy": s, "trial_id": top["trial_id"],
                     "best_val_psnr": float(top["best_val_psnr"]), "label": name})
    return pd.DataFrame(rows, columns=["experiment", "strategy", "trial_id", "best_val_psnr", "label"])


def epoch_metrics(es: ExperimentSet, best: pd.DataFrame, metrics: list[str]) -> pd.DataFrame:
    """Per-epoch metrics (losses, or beta/tfr/teacher_forcing) of each strategy's best trial;
    a metric trials.csv lacks is left out."""
    e = es.epochs.merge(best[["experiment", "trial_id", "strategy", "label"]], on=["experiment", "trial_id"])
    have = [m for m in metrics if m in e]
    return e[["experiment", "strategy", "label", "trial_id", "epoch", *have]].sort_values(
        ["experiment", "strategy", "epoch"]).reset_index(drop=True)
