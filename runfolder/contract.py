"""The results contract: the names search/ writes into `runs/<name>/` and reports/ reads.

One module for both sides, on the lowest floor (standard library only: no Ray,
Optuna, Plotly or pandas), so a name cannot drift between writer and reader:

- the per-epoch metrics of `cvae.train.Trainer.run_epoch` that trials.csv keeps,
  and their column names there;
- run statuses (their one rule is `runfolder.status.classify_end`) and phases;
- trials.csv: its columns, `write_trials_csv` and `read_trials_csv`;
- summary.json's field names.

trials.csv, one row per trial per epoch:

    trial_id, status, epoch, phase, stratum, seed, <searched parameters...>, <metric columns...>

Every column name is unique. Two metrics share their name with a TrainConfig
field that a space may search (`lr`, `tfr`): the parameter column keeps the
field's name (the value the trial was configured with) and the metric column is
`lr_at_epoch` / `tfr_at_epoch` (the value in force during that epoch), so
pandas, a spreadsheet and the report read the file without renaming.

The KL type `None` is written `Without` (its alias, which cvae.core.config accepts)
in `kl_anneal_type` and `stratum` cells: `pandas.read_csv` reads the text
"None" as missing by default, which would drop that strategy from a
`groupby("kl_anneal_type")`. `read_trials_csv` gives it back as `None`; the
YAML files and the report show `None`.

Older folders still read: files written before the study columns (no phase,
stratum, seed) and files whose metric columns were named `lr` / `tfr`
(the name then appeared twice, parameter first).
"""
from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Optional

from runfolder.status import COMPLETED, DIVERGED, FAILED, RUNNING, STATUSES, STOPPED  # noqa: F401 (re-exported)

STRATUM_KEY = "stratum"  # trials.csv column, Optuna user attribute, Ray config key
PHASE_KEY = "phase"
# The study trial a Ray trial is an attempt of (trials.csv's trial_id, trials/<id>/, a Ray config key).
TRIAL_KEY = "study_trial"
SEARCH, REEVAL = "search", "reeval"
PHASES = (SEARCH, REEVAL)

# --- metrics -------------------------------------------------------------------------
# Trainer.run_epoch's per-epoch metrics that trials.csv keeps, in its column order
# (`epoch` has its own column; the per-frame list goes to val_psnr_per_frame.json).
METRICS = ("val_psnr", "train_loss", "train_mse", "train_kl", "beta", "tfr", "teacher_forcing",
           "lr", "epoch_time_s", "val_time_s", "validated", "diverged")
BOOL_METRICS = ("validated", "diverged")
AT_EPOCH = "_at_epoch"
# A metric whose name is also a TrainConfig field gets its own column name.
METRIC_COLUMN = {m: m + AT_EPOCH for m in ("tfr", "lr")}
METRIC_COLUMNS = tuple(METRIC_COLUMN.get(m, m) for m in METRICS)
METRIC_OF_COLUMN = {c: m for m, c in zip(METRICS, METRIC_COLUMNS)}

# --- trials.csv ----------------------------------------------------------------------
TRIALS_CSV = "trials.csv"
RUN_COLUMNS = ("trial_id", "status", "epoch")
SEED = "seed"
STUDY_COLUMNS = (PHASE_KEY, STRATUM_KEY, SEED)
KL = "kl_anneal_type"
# Text a plain pandas.read_csv would read as missing, and the spelling written instead
# (an alias cvae.core.config accepts for the same value), per column.
NA_SAFE_SPELLING = {"None": "Without"}
NA_SAFE_COLUMNS = (KL, STRATUM_KEY)
_NA_SAFE_READ = {v: k for k, v in NA_SAFE_SPELLING.items()}

# --- summary.json --------------------------------------------------------------------
SUMMARY_JSON = "summary.json"
SUMMARY_FIELDS = ("name", "num_epoch", "num_samples", "metric", "mode", "wall_time_s", "baseline_psnr",
                  "best", "status_counts", "reeval_status_counts", "comparison", "started_at", "finished_at")
BEST_FIELDS = ("trial_id", "epoch", "<metric>", "config")  # "<metric>": the value under the metric's own name


@dataclass
class EpochRow:
    """One row of trials.csv: one epoch of one run."""
    trial_id: str
    status: str
    epoch: int
    phase: str = SEARCH
    stratum: str = ""
    seed: Optional[int] = None
    params: dict[str, Any] = field(default_factory=dict)   # searched parameters (absent: not sampled)
    metrics: dict[str, Any] = field(default_factory=dict)  # by metric name (METRICS), not column name


def trials_header(param_names: Iterable[str]) -> list[str]:
    return [*RUN_COLUMNS, *STUDY_COLUMNS, *param_names, *METRIC_COLUMNS]


def _write_cell(column: str, value: Any) -> Any:
    if value is None:
        return ""
    if column in NA_SAFE_COLUMNS and isinstance(value, str):
        return NA_SAFE_SPELLING.get(value, value)
    return value


def write_trials_csv(path: str | Path, param_names: Iterable[str], rows: Iterable[EpochRow]) -> None:
    """Write trials.csv atomically (a temporary file, then a rename: a reader or a kill never sees half)."""
    path = Path(path)
    params = list(param_names)
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(trials_header(params))
        for r in rows:
            writer.writerow([r.trial_id, r.status, r.epoch, r.phase, _write_cell(STRATUM_KEY, r.stratum),
                             _write_cell(SEED, r.seed), *(_write_cell(p, r.params.get(p)) for p in params),
                             *(_write_cell(c, r.metrics.get(m)) for m, c in zip(METRICS, METRIC_COLUMNS))])
    os.replace(tmp, path)


def parse_cell(text: str) -> Any:
    """A trials.csv cell -> Python value (numbers, booleans, empty = None)."""
    if text == "":
        return None
    if text in ("True", "False"):
        return text == "True"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def name_columns(header: list[str]) -> tuple[list[str], list[str]]:
    """(column names, searched parameters) of a trials.csv header, in today's names.

    Parameters are the columns between the run/study columns and the first metric.
    A metric column written under an older name (`lr`, the second `lr`) gets its
    `_at_epoch` name; a metric name before the first metric is a parameter.
    """
    fixed = (*RUN_COLUMNS, *STUDY_COLUMNS)
    metric_names = set(METRICS) | set(METRIC_COLUMNS)
    first_metric = next((i for i, c in enumerate(header) if c == "val_psnr"), None)
    if first_metric is None:
        first_metric = next((i for i, c in enumerate(header) if c in metric_names and c not in fixed), len(header))
    columns: list[str] = []
    params: list[str] = []
    for i, c in enumerate(header):
        if c in fixed:
            columns.append(c)
        elif i < first_metric:
            columns.append(c)
            params.append(c)
        else:
            columns.append(METRIC_COLUMN.get(c, c))
    return columns, params


@dataclass
class TrialsTable:
    """trials.csv as read: today's column names, the text cells of each complete row."""
    columns: list[str]
    params: list[str]
    rows: list[dict[str, str]]
    skipped: int = 0  # rows cut short (a kill or a search still writing)

    def epoch_rows(self) -> list[EpochRow]:
        """Typed rows; a folder without study columns gets phase `search`, no stratum, no seed."""
        out = []
        for r in self.rows:
            try:
                epoch = int(r["epoch"])
            except (KeyError, ValueError):
                continue
            params = {p: parse_cell(r[p]) for p in self.params if r.get(p, "") != ""}
            metrics = {METRIC_OF_COLUMN.get(c, c): parse_cell(r[c]) for c in self.columns
                       if c in METRIC_OF_COLUMN and c in r}
            seed = parse_cell(r.get(SEED, ""))
            out.append(EpochRow(trial_id=r["trial_id"], status=r.get("status") or RUNNING, epoch=epoch,
                                phase=r.get(PHASE_KEY) or SEARCH, stratum=r.get(STRATUM_KEY, ""),
                                seed=seed if isinstance(seed, int) else None, params=params, metrics=metrics))
        return out


def read_trials_table(path: str | Path, text: Optional[str] = None) -> TrialsTable:
    """Read trials.csv (or a run folder holding one): today's names, `Without` back to `None`."""
    path = Path(path)
    if path.is_dir():
        path = path / TRIALS_CSV
    if text is None:
        text = path.read_text(errors="replace")
    lines = list(csv.reader(text.splitlines()))
    if not lines:
        return TrialsTable(columns=[], params=[], rows=[])
    header, body = lines[0], lines[1:]
    columns, params = name_columns(header)
    na_safe = [i for i, c in enumerate(columns) if c in NA_SAFE_COLUMNS]
    rows: list[dict[str, str]] = []
    skipped = 0
    for line in body:
        if len(line) != len(header):
            skipped += 1
            continue
        for i in na_safe:
            line[i] = _NA_SAFE_READ.get(line[i], line[i])
        rows.append(dict(zip(columns, line)))
    return TrialsTable(columns=columns, params=params, rows=rows, skipped=skipped)


def read_trials_csv(run_dir: str | Path) -> list[dict[str, str]]:
    """trials.csv rows as dicts of text cells, by today's column names (see the module doc)."""
    return read_trials_table(run_dir).rows


def rows_by_trial(rows: Iterable[dict[str, str]]) -> dict[str, list[dict[str, str]]]:
    """trials.csv rows grouped per trial_id, in file order (epochs ascending)."""
    out: dict[str, list[dict[str, str]]] = {}
    for row in rows:
        out.setdefault(row["trial_id"], []).append(row)
    return out


OPTUNA_DB = "optuna.db"


def study_trials(db: str | Path) -> list[tuple[int, str, dict[str, str]]]:
    """(number, state, user attributes as text) of every trial in a run's optuna.db,
    read with sqlite3 (no Optuna import): the attributes are the contract's `phase`,
    `stratum`, `status`, `trial_id` (trials.csv's), `attempts` (the Ray trial ids that ran it), and
    for re-runs `seed` and `reeval_of`."""
    import sqlite3

    con = sqlite3.connect(str(db), timeout=10)
    try:
        states = con.execute("SELECT trial_id, number, state FROM trials ORDER BY number").fetchall()
        attrs = con.execute("SELECT trial_id, key, value_json FROM trial_user_attributes").fetchall()
    finally:
        con.close()
    by_id: dict[int, dict[str, str]] = {}
    for trial_id, key, value in attrs:
        by_id.setdefault(trial_id, {})[key] = value.strip('"')
    return [(number, state, by_id.get(trial_id, {})) for trial_id, number, state in states]
