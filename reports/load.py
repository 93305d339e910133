"""Everything the report reads from disk: an experiment folder (`runs/<name>/`,
docs/CONTRACTS.md "Results on disk") -> tidy pandas frames, and the Optuna
study in its optuna.db.

No Plotly, and no other module of reports/ opens a file of the folder. Everything
optional (optuna.db, frames.png, per-frame JSON, summary.json, space.yaml) may
be missing, and a search that is still running may leave a half-written last
line: those become `notes` that the report prints, never a crash. Only a folder
without trials.csv is an error.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import pandas as pd
import yaml

from runfolder.contract import (
    AT_EPOCH,
    BOOL_METRICS,
    KL,
    METRIC_COLUMN,
    PHASES,
    RUN_COLUMNS,
    STATUSES,
    STUDY_COLUMNS,
    SUMMARY_JSON,
    TRIALS_CSV,
    read_trials_table,
)

NOT_SAMPLED = "not sampled"
ALL_TRIALS = "all trials"  # the stratum of an old folder with neither a scientific parameter nor kl_anneal_type
LOG_DISTRIBUTIONS = ("log_uniform_values", "q_log_uniform_values", "log_uniform")
DEFAULT_NUM_EPOCH = 70  # TrainConfig's default, used only when nothing on disk says


class ReportError(ValueError):
    """An experiment folder cannot be read; the message names the path and what is expected."""


@dataclass
class ParamAxis:
    """How the report places one searched parameter: its role from space.yaml, its scale (numeric
    bounds, log) or its listed values."""
    name: str
    role: str = "nuisance"  # scientific | nuisance
    kind: str = "numeric"  # numeric | categorical | constant
    low: float | None = None
    high: float | None = None
    log: bool = False
    values: list[Any] = field(default_factory=list)


@dataclass
class Experiment:
    name: str
    run_dir: Path
    epochs: pd.DataFrame  # one row per trial per epoch: experiment, trial_id, status, epoch, phase, stratum,
    #                       seed, params, metrics
    trials: pd.DataFrame  # one row per trial: see _trial_table
    per_frame: pd.DataFrame  # experiment, trial_id, epoch, frame, psnr
    frames_png: dict[str, Path]  # trial_id -> frames.png
    params: list[str]  # searched parameter columns, in CSV order
    space: dict[str, ParamAxis]  # from space.yaml ({} when it is missing)
    summary: dict[str, Any]  # summary.json ({} when missing)
    study_path: Path | None  # optuna.db
    num_epoch: int  # full budget of one trial
    notes: list[str]  # what was missing or odd, worded for the reader

    @property
    def scientific(self) -> list[str]:
        return [p for p in self.params if self.space.get(p, ParamAxis(p)).role == "scientific"]

    @property
    def comparison(self) -> dict[str, Any] | None:
        """summary.json's `comparison` block (search/comparison.py), None when absent or unusable."""
        block = self.summary.get("comparison")
        return block if _usable_comparison(block) else None


@dataclass
class ExperimentSet:
    """Several experiments; the frames are concatenated (the `experiment` column tells them apart)."""
    experiments: list[Experiment]
    epochs: pd.DataFrame
    trials: pd.DataFrame
    per_frame: pd.DataFrame
    # Named val_psnr values drawn as reference lines (python -m reports --reference NAME=PSNR),
    # e.g. a run of the course template trained by hand.
    references: dict[str, float] = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        return [e.name for e in self.experiments]


def load_experiment(run_dir: str | Path, name: str | None = None) -> Experiment:
    run_dir = Path(run_dir)
    csv_path = run_dir / TRIALS_CSV
    if not run_dir.is_dir():
        raise ReportError(f"{run_dir}: no such experiment folder; expected runs/<name>/ "
                          "as written by run_search.py (with trials.csv inside)")
    if not csv_path.is_file():
        raise ReportError(f"{run_dir}: no trials.csv in this folder; expected an experiment folder "
                          "written by run_search.py (runs/<name>/trials.csv, one row per trial per epoch)")
    notes: list[str] = []
    summary = _read_summary(run_dir / SUMMARY_JSON, notes)
    raw_space = _read_yaml(run_dir / "space.yaml", notes)
    space = _param_specs(raw_space, run_dir / "space.yaml")
    name = name or str(summary.get("name") or raw_space.get("name") or run_dir.name)
    epochs, params = _read_trials_csv(csv_path, space, notes)
    epochs.insert(0, "experiment", name)
    num_epoch = _num_epoch(summary, raw_space, epochs, notes)
    trials = _trial_table(epochs, params, num_epoch)
    per_frame = _read_per_frame(run_dir, name, trials["trial_id"], notes)
    frames_png = {t: run_dir / "trials" / t / "frames.png" for t in trials["trial_id"]
                  if (run_dir / "trials" / t / "frames.png").is_file()}
    study = run_dir / "optuna.db"
    if not study.is_file():
        notes.append("no optuna.db in the folder: parameter importance is left out")
    _check_status_counts(summary, trials, notes)
    if "comparison" in summary and not _usable_comparison(summary["comparison"]):
        notes.append("summary.json's comparison block is not an object with a `strata` object; ignored "
                     "(the verdict is read from the search trials instead)")
    return Experiment(name=name, run_dir=run_dir, epochs=epochs, trials=trials, per_frame=per_frame,
                      frames_png=frames_png, params=params, space=space, summary=summary,
                      study_path=study if study.is_file() else None, num_epoch=num_epoch, notes=notes)


def load_experiments(run_dirs: Iterable[str | Path]) -> ExperimentSet:
    exps: list[Experiment] = []
    for d in run_dirs:
        exp = load_experiment(d)
        # Two folders may carry the same experiment name: keep them apart.
        base, k = exp.name, 2
        while exp.name in {e.name for e in exps}:
            exp.name = f"{base} ({k})"
            k += 1
        for df in (exp.epochs, exp.trials, exp.per_frame):
            df["experiment"] = exp.name
        exps.append(exp)
    if not exps:
        raise ReportError("no experiment folder given; expected one or more runs/<name>/ folders")
    return ExperimentSet(
        experiments=exps,
        epochs=pd.concat([e.epochs for e in exps], ignore_index=True),
        trials=pd.concat([e.trials for e in exps], ignore_index=True),
        per_frame=pd.concat([e.per_frame for e in exps], ignore_index=True),
    )


def load_study(path: Path, name: str) -> Any:
    """The Optuna study in `path` (an optuna.db): the one called `name`, else the only
    one. Raises (ValueError or Optuna's own error) when it cannot be read; optuna is
    imported here, not at the top, because only the importance figure needs it."""
    import optuna

    storage = f"sqlite:///{path}"
    names = optuna.get_all_study_names(storage=storage)
    chosen = name if name in names else (names[0] if len(names) == 1 else None)
    if chosen is None:
        raise ValueError(f"{path} holds studies {names}, none named {name!r}")
    return optuna.load_study(study_name=chosen, storage=storage)


def read_png(path: Path) -> bytes:
    """A trial's frames.png, which the page inlines as a data: URI."""
    return path.read_bytes()


# ---- optional files -------------------------------------------------------

def _read_summary(path: Path, notes: list[str]) -> dict[str, Any]:
    if not path.is_file():
        notes.append("no summary.json (search still running or interrupted): "
                     "wall time and baseline PSNR are unknown")
        return {}
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        notes.append(f"summary.json could not be read ({e}); ignored")
        return {}
    if not isinstance(data, dict):
        notes.append("summary.json is not a JSON object; ignored")
        return {}
    return data


def _usable_comparison(block: Any) -> bool:
    return isinstance(block, dict) and isinstance(block.get("strata"), dict)


def _read_yaml(path: Path, notes: list[str]) -> dict[str, Any]:
    if not path.is_file():
        notes.append("no space.yaml: parameter roles and ranges are unknown "
                     "(kl_anneal_type is treated as the scientific parameter)")
        return {}
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        notes.append(f"space.yaml could not be parsed ({e}); roles and ranges are unknown")
        return {}
    return data if isinstance(data, dict) else {}


def _param_specs(raw: dict[str, Any], path: Path) -> dict[str, ParamAxis]:
    specs: dict[str, ParamAxis] = {}
    params = raw.get("parameters") or {}
    if not isinstance(params, dict):
        return specs
    for name, p in params.items():
        if not isinstance(p, dict):
            continue
        spec = ParamAxis(str(name), role=str(p.get("role", "nuisance")))
        if "values" in p and isinstance(p["values"], list):
            spec.kind, spec.values = "categorical", list(p["values"])
        elif "value" in p:
            spec.kind, spec.values = "constant", [p["value"]]
        else:
            spec.low, spec.high = _float_or_none(p.get("min")), _float_or_none(p.get("max"))
            spec.log = str(p.get("distribution", "")) in LOG_DISTRIBUTIONS
        specs[str(name)] = spec
    return specs


def _float_or_none(v: Any) -> float | None:
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def _num_epoch(summary: dict, raw_space: dict, epochs: pd.DataFrame, notes: list[str]) -> int:
    for source in (summary.get("num_epoch"), (raw_space.get("fixed") or {}).get("num_epoch")):
        try:
            if source is not None and int(source) > 0:
                return int(source)
        except (TypeError, ValueError):
            pass
    notes.append(f"num_epoch is in neither summary.json nor space.yaml's fixed: "
                 f"the budget assumes TrainConfig's default {DEFAULT_NUM_EPOCH}")
    return max(DEFAULT_NUM_EPOCH, int(epochs["epoch"].max()) if len(epochs) else 0)


# ---- trials.csv -----------------------------------------------------------

def _read_trials_csv(path: Path, space: dict[str, ParamAxis], notes: list[str]
                     ) -> tuple[pd.DataFrame, list[str]]:
    """trials.csv through runfolder.contract's reader: today's column names whatever the
    folder's age (the per-epoch `lr`/`tfr` are `lr_at_epoch`/`tfr_at_epoch`)."""
    table = read_trials_table(path)
    if not table.columns:
        notes.append("trials.csv is empty: no trial has reported an epoch yet")
        return pd.DataFrame(columns=[*RUN_COLUMNS, *STUDY_COLUMNS]), []
    for col in ("trial_id", "epoch"):
        if col not in table.columns:
            raise ReportError(f"{path}: column {col!r} is missing; expected the header "
                              "trial_id,status,epoch,phase,stratum,seed,<parameters>,<metrics> "
                              "(docs/CONTRACTS.md)")
    if table.skipped:
        # A row cut short at the end of the file is a search still writing; say so plainly.
        notes.append(f"trials.csv: skipped {table.skipped} incomplete row(s) "
                     "(the search may still be writing the file)")
    params = list(table.params)
    df = pd.DataFrame(table.rows, columns=table.columns, dtype=object)
    for p, column in METRIC_COLUMN.items():
        # An old file with one column for both the searched value and the per-epoch
        # metric: it is the metric; the parameter comes from each trial's first epoch.
        if p in params and column not in df:
            df = df.rename(columns={p: column})
        elif not (p in space and p not in params and column in df):
            continue
        params = [q for q in params if q != p] + [p]
        notes.append(f"trials.csv has one {p!r} column for both the searched value and the "
                     f"per-epoch metric; each trial's searched {p} is taken from its first epoch")
    df = df[df["trial_id"].astype(str).str.len() > 0]
    df = _typed(df, params, notes)
    return _run_columns(df, params, space, notes), params


def _typed(df: pd.DataFrame, params: list[str], notes: list[str]) -> pd.DataFrame:
    df["trial_id"] = df["trial_id"].astype(str)
    if "status" not in df:
        notes.append("trials.csv has no status column: every trial is shown as 'running'")
        df["status"] = "running"
    df["status"] = df["status"].astype(str).str.strip().str.lower().replace("", "running")
    odd = sorted(set(df["status"]) - set(STATUSES))
    if odd:
        notes.append(f"trials.csv: unknown status value(s) {odd}; expected one of {list(STATUSES)}")
    df["epoch"] = pd.to_numeric(df["epoch"], errors="coerce")
    df = df[df["epoch"].notna()].copy()
    df["epoch"] = df["epoch"].astype(int)
    for p in params:
        if p not in df:  # shared with a metric (see _name_columns): first epoch's value
            first = df.sort_values("epoch").groupby("trial_id")[p + AT_EPOCH].first()
            df[p] = df["trial_id"].map(first)
        df[p] = _param_column(df[p])
    for c in df.columns:
        if c in ("experiment", *RUN_COLUMNS, *STUDY_COLUMNS) or c in params:
            continue
        if c in BOOL_METRICS:
            df[c] = df[c].astype(str).str.strip().str.lower().isin(("true", "1", "1.0"))
        else:
            df[c] = pd.to_numeric(df[c], errors="coerce")  # "nan"/"inf" from a diverged trial parse
    return df.sort_values(["trial_id", "epoch"], kind="stable").reset_index(drop=True)


def _run_columns(df: pd.DataFrame, params: list[str], space: dict[str, ParamAxis], notes: list[str]
                 ) -> pd.DataFrame:
    """phase, stratum and seed, also for folders written before they existed."""
    phase = df["phase"].astype(str).str.strip().str.lower() if "phase" in df else pd.Series("", index=df.index)
    df["phase"] = phase.replace("", "search")
    odd = sorted(set(df["phase"]) - set(PHASES))
    if odd:
        notes.append(f"trials.csv: unknown phase value(s) {odd}; expected one of {list(PHASES)}")
    computed = _strata(df, params, space)
    if "stratum" in df:
        given = df["stratum"].astype(str).str.strip()
        df["stratum"] = given.where(given.str.len() > 0, computed)
    else:
        df["stratum"] = computed
    seed = pd.to_numeric(df["seed"], errors="coerce") if "seed" in df else pd.Series(math.nan, index=df.index)
    df["seed"] = seed.round().astype("Int64")
    return df


def _strata(df: pd.DataFrame, params: list[str], space: dict[str, ParamAxis]) -> pd.Series:
    """The stratum of each row from its scientific values, worded as search/strata.py
    words it (`Cyclical`; `kl_anneal_type=Cyclical, kl_anneal_cycle=2` for several).
    Without a scientific parameter: kl_anneal_type when it was searched (what the
    report compared before strata existed), else one stratum for all trials."""
    scientific = [p for p in params if space.get(p, ParamAxis(p)).role == "scientific"]
    if not scientific:
        if KL in params:
            return df[KL].map(lambda v: NOT_SAMPLED if _missing(v) else _key_text(v)).astype(object)
        return pd.Series(ALL_TRIALS, index=df.index, dtype=object)

    def key(row: pd.Series) -> str:
        present = [(p, row[p]) for p in scientific if not _missing(row[p])]
        if len(scientific) == 1:
            return _key_text(present[0][1]) if present else "all"
        return ", ".join(f"{p}={_key_text(v)}" for p, v in present) or "all"
    if df.empty:
        return pd.Series([], index=df.index, dtype=object)
    return df[scientific].apply(key, axis=1).astype(object)


def _missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def _key_text(v: Any) -> str:
    return f"{v:.12g}" if isinstance(v, float) else str(v)


def _param_column(col: pd.Series) -> pd.Series:
    """Numbers where every sampled value is a number, else strings; not sampled -> NaN."""
    s = col.astype(object).where(col.astype(str).str.len() > 0, None)
    nums = pd.to_numeric(s, errors="coerce")
    if (nums.notna() == s.notna()).all() and s.notna().any():
        return nums.astype(float)
    return s.map(lambda v: v if v is None else str(v)).astype(object)


def _trial_table(epochs: pd.DataFrame, params: list[str], num_epoch: int) -> pd.DataFrame:
    """One row per trial: status, epochs run, best and final val_psnr, its parameters."""
    cols = ["experiment", "trial_id", "order", "status", "phase", "stratum", "seed", "epochs_run", "epochs_budget",
            "best_val_psnr", "best_epoch", "final_val_psnr", *params]
    if epochs.empty:
        return pd.DataFrame(columns=cols)
    rows = []
    for order, (tid, g) in enumerate(_start_order(epochs)):
        g = g.sort_values("epoch")
        psnr = g["val_psnr"] if "val_psnr" in g else pd.Series([math.nan] * len(g), index=g.index)
        finite = psnr[psnr.map(lambda v: math.isfinite(v))]
        budget = g["num_epoch"].iloc[0] if "num_epoch" in params else num_epoch
        rows.append({
            "experiment": g["experiment"].iloc[0], "trial_id": tid, "order": order,
            "status": g["status"].iloc[-1], "phase": g["phase"].iloc[0], "stratum": g["stratum"].iloc[0],
            "seed": g["seed"].iloc[0], "epochs_run": int(g["epoch"].max()),
            "epochs_budget": int(budget) if pd.notna(budget) else num_epoch,
            "best_val_psnr": float(finite.max()) if len(finite) else math.nan,
            "best_epoch": int(g.loc[finite.idxmax(), "epoch"]) if len(finite) else -1,
            "final_val_psnr": float(psnr.iloc[-1]),
            **{p: g[p].iloc[0] for p in params},
        })
    out = pd.DataFrame(rows, columns=cols)
    out["seed"] = out["seed"].astype("Int64")
    return out


def _start_order(epochs: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """Trials in the order they started: Ray's trial ids end in a counter (_00007);
    otherwise the order of first appearance in trials.csv."""
    groups = {tid: g for tid, g in epochs.groupby("trial_id", sort=False)}
    counters = {t: re.search(r"_(\d+)$", t) for t in groups}
    if all(counters.values()):
        ids = sorted(groups, key=lambda t: (int(counters[t].group(1)), t))  # type: ignore[union-attr]
    else:
        ids = list(dict.fromkeys(epochs["trial_id"]))
    return [(t, groups[t]) for t in ids]


def _read_per_frame(run_dir: Path, name: str, trial_ids: Iterable[str], notes: list[str]) -> pd.DataFrame:
    rows: list[dict[str, Any]] = []
    missing: list[str] = []
    for tid in trial_ids:
        path = run_dir / "trials" / tid / "val_psnr_per_frame.json"
        if not path.is_file():
            missing.append(tid)
            continue
        try:
            data = json.loads(path.read_text())
            frames, psnr = list(data["frame_index"]), list(data["psnr"])
            if len(frames) != len(psnr):
                raise ValueError(f"{len(frames)} frame indices but {len(psnr)} PSNR values")
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
            notes.append(f"{path.relative_to(run_dir)}: unreadable ({e}); expected "
                         '{"epoch": e, "frame_index": [...], "psnr": [...]}')
            continue
        epoch = data.get("epoch", -1)
        rows += [{"experiment": name, "trial_id": tid, "epoch": epoch, "frame": int(f), "psnr": float(p)}
                 for f, p in zip(frames, psnr)]
    if missing:
        notes.append(f"{len(missing)} trial(s) without val_psnr_per_frame.json: {', '.join(missing)}")
    return pd.DataFrame(rows, columns=["experiment", "trial_id", "epoch", "frame", "psnr"])


def _check_status_counts(summary: dict, trials: pd.DataFrame, notes: list[str]) -> None:
    """Trials that failed before their first epoch have no rows in trials.csv;
    summary.json still counts them, so say how many are not shown."""
    counts = summary.get("status_counts")
    if not isinstance(counts, dict):
        return
    seen = trials["status"].value_counts().to_dict()
    for status, n in counts.items():
        try:
            extra = int(n) - int(seen.get(status, 0))
        except (TypeError, ValueError):
            continue
        if extra > 0:
            notes.append(f"summary.json counts {extra} more '{status}' trial(s) than trials.csv "
                         "has rows for (they ended before their first epoch)")
