"""Ray results -> the files of runs/<name>/ that docs/CONTRACTS.md lists.

`SearchRecorder` holds one row per (trial, epoch) and writes trials.csv,
summary.json, best.yaml and trials/<id>/ files. `ResultsCallback` feeds it from
Tune's driver-side callback hooks as results arrive, so an interrupted search
still has its files; on resume the recorder reloads trials.csv and later rows
for the same (trial, epoch) replace the old ones (no duplicates).
"""
from __future__ import annotations

import json
import math
import os
import shutil
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Optional

import yaml
from ray.tune import Callback

from search.comparison import RunOutcome, build_comparison
from search.contract import METRICS, SUMMARY_JSON, TRIALS_CSV, EpochRow, read_trials_table, write_trials_csv
from search.contract import read_trials_csv  # noqa: F401  (its old home: tests and users import it from here)
from search.status import COMPLETED, FAILED, RUNNING, STATUSES, classify_end
from search.strata import PHASE_KEY, REEVAL, SEARCH, STRATUM_KEY, stratum_key
from search.trainable import EXECUTION_KEYS, FRAMES_FILE, FRAMES_META_FILE, PER_FRAME_KEY, training_params

# Keys a trial reports that are about where it ran, not how it trained.
INFO_KEYS = ("node_id", "data_zero_copy", *EXECUTION_KEYS)


def _iso_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass
class TrialRecord:
    trial_id: str
    params: dict[str, Any]
    status: str = RUNNING
    rows: dict[int, dict[str, Any]] = field(default_factory=dict)  # epoch -> metrics
    node_ids: set[str] = field(default_factory=set)
    data_zero_copy: Optional[bool] = None
    phase: str = SEARCH
    stratum: str = ""
    seed: Optional[int] = None
    reeval_of: Optional[str] = None  # reeval runs: the search trial whose configuration it repeats
    execution: dict[str, Any] = field(default_factory=dict)  # torch_threads, device, precision


class SearchRecorder:
    """Everything the search writes next to Ray's own files in runs/<name>/."""

    def __init__(self, run_dir: str | Path, *, name: str, param_names: Iterable[str], metric: str, mode: str,
                 num_epoch: int, num_samples: int, fixed_config: dict[str, Any], baseline_psnr: Optional[float],
                 data_root: Optional[str] = None, strata: Iterable[str] = (), scientific: Iterable[str] = ()) -> None:
        self.run_dir = Path(run_dir)
        self.name = name
        self.param_names = list(param_names)
        self.metric = metric
        self.mode = mode
        # Decide the sign once: below, larger `_sign * value` is always better.
        self._sign = 1.0 if mode == "max" else -1.0
        self.num_epoch = int(num_epoch)
        self.num_samples = int(num_samples)
        self.fixed_config = dict(fixed_config)
        self.baseline_psnr = baseline_psnr
        self.data_root = data_root
        self.strata = list(strata)
        self.scientific = list(scientific)
        self.trials: dict[str, TrialRecord] = {}
        self.started_at = _iso_now()
        self._t0 = time.monotonic()
        self._wall_before = 0.0  # wall time of earlier (interrupted) sessions

    # --- input ------------------------------------------------------------
    def load_existing(self) -> None:
        """Pick up trials.csv and summary.json of an interrupted run (resume)."""
        summary_path = self.run_dir / SUMMARY_JSON
        if summary_path.exists():
            summary = json.loads(summary_path.read_text())
            self.started_at = summary.get("started_at", self.started_at)
            self._wall_before = float(summary.get("wall_time_s", 0.0) or 0.0)
        csv_path = self.run_dir / TRIALS_CSV
        if csv_path.exists():
            self._load_rows(csv_path)
        self._load_trial_infos()

    def _load_rows(self, csv_path: Path) -> None:
        for row in read_trials_table(csv_path).epoch_rows():  # rows cut short by a kill are skipped
            params = {k: v for k, v in row.params.items() if k in self.param_names}
            record = self.trials.setdefault(row.trial_id, TrialRecord(row.trial_id, params))
            record.status = row.status
            record.rows[row.epoch] = row.metrics
            record.phase, record.stratum, record.seed = row.phase, row.stratum, row.seed
            if not record.stratum:
                record.stratum = stratum_key(params, self.scientific)

    def _load_trial_infos(self) -> None:
        """trials/<id>/trial.json: where each trial ran (nodes, execution, the run a re-run
        repeats), and the whole record of a trial that ended before its first epoch (a
        failure at start: a bad device, an out-of-memory first step). Such a trial has no
        trials.csv row; without its trial.json the final summary would not count it."""
        folder = self.run_dir / "trials"
        if not folder.is_dir():
            return
        for info_path in sorted(folder.glob("*/trial.json")):
            trial_id = info_path.parent.name
            try:
                info = json.loads(info_path.read_text())
            except (OSError, ValueError):
                continue  # written atomically, so only a stray file is unreadable
            record = self.trials.get(trial_id)
            if record is None:
                params = {k: v for k, v in (info.get("params") or {}).items() if k in self.param_names}
                record = TrialRecord(trial_id, params, status=str(info.get("status") or RUNNING),
                                     phase=str(info.get("phase") or SEARCH), seed=info.get("seed"))
                record.stratum = str(info.get("stratum") or stratum_key(params, self.scientific))
                self.trials[trial_id] = record
            record.node_ids.update(info.get("node_ids") or [])
            record.data_zero_copy = info.get("data_zero_copy")
            record.reeval_of = info.get("reeval_of")
            record.execution = dict(info.get("execution") or {})

    def add_result(self, trial_id: str, params: dict[str, Any], result: dict[str, Any]) -> None:
        """One epoch of one trial; a repeated epoch (resumed trial) replaces the old row."""
        if "epoch" not in result:
            return
        record = self.trials.setdefault(trial_id, TrialRecord(trial_id, dict(params)))
        self._set_study_fields(record, params)
        record.status = RUNNING
        epoch = int(result["epoch"])
        row: dict[str, Any] = {}
        for key, value in result.items():
            if key in ("epoch", PER_FRAME_KEY) or key in INFO_KEYS:
                continue
            if key in METRICS:
                row[key] = value
        record.rows[epoch] = row
        if result.get("node_id"):
            record.node_ids.add(str(result["node_id"]))
        if "data_zero_copy" in result:
            record.data_zero_copy = bool(result["data_zero_copy"])
        record.execution.update({k: result[k] for k in EXECUTION_KEYS if k in result})
        per_frame = result.get(PER_FRAME_KEY)
        if per_frame and result.get("validated", True):
            self._write_per_frame(trial_id, epoch, per_frame)

    def _set_study_fields(self, record: TrialRecord, config: dict[str, Any]) -> None:
        """Parameters, phase, stratum, seed and re-run source from a Ray trial config."""
        params = training_params(config)
        record.params = {k: v for k, v in params.items() if k in self.param_names}
        record.phase = str(config.get(PHASE_KEY, SEARCH))
        record.stratum = str(config.get(STRATUM_KEY) or stratum_key(record.params, self.scientific))
        record.seed = params.get("seed", self.fixed_config.get("seed"))
        record.reeval_of = config.get("reeval_of")

    def set_status(self, trial_id: str, status: str) -> None:
        if trial_id in self.trials:
            self.trials[trial_id].status = status

    def classify_end(self, trial_id: str, error: bool) -> str:
        """completed / stopped / diverged / failed, from the trial's last row (search.status's rule)."""
        record = self.trials.get(trial_id)
        last = None
        if record is not None and record.rows:
            epoch = max(record.rows)
            last = {**record.rows[epoch], "epoch": epoch}
        return classify_end(last, error=error, metric=self.metric, num_epoch=self.num_epoch)

    # --- per-trial files ----------------------------------------------------
    def trial_dir(self, trial_id: str) -> Path:
        path = self.run_dir / "trials" / trial_id
        path.mkdir(parents=True, exist_ok=True)
        return path

    def _write_per_frame(self, trial_id: str, epoch: int, per_frame: list[float]) -> None:
        payload = {"epoch": epoch, "frame_index": list(range(1, len(per_frame) + 1)),
                   "psnr": [float(v) for v in per_frame]}
        _atomic_write(self.trial_dir(trial_id) / "val_psnr_per_frame.json", json.dumps(payload))

    def copy_frames(self, trial_id: str, checkpoint_dir: str | Path) -> None:
        """Copy frames.png out of a (persisted) checkpoint folder."""
        source = Path(checkpoint_dir) / FRAMES_FILE
        if source.exists():
            target = self.trial_dir(trial_id)
            shutil.copyfile(source, target / FRAMES_FILE)
            meta = Path(checkpoint_dir) / FRAMES_META_FILE
            if meta.exists():
                shutil.copyfile(meta, target / FRAMES_META_FILE)

    def _write_trial_info(self, record: TrialRecord) -> None:
        info = {"trial_id": record.trial_id, "status": record.status, "params": record.params,
                "phase": record.phase, "stratum": record.stratum, "seed": record.seed,
                "reeval_of": record.reeval_of, "execution": record.execution,
                "epochs": len(record.rows), "node_ids": sorted(record.node_ids),
                "data_zero_copy": record.data_zero_copy}
        _atomic_write(self.trial_dir(record.trial_id) / "trial.json", json.dumps(info, indent=2))

    # --- output -----------------------------------------------------------
    def best(self) -> Optional[tuple[str, int, float]]:
        """(trial_id, epoch, value) of the best finite metric over every search row, or None.
        (Re-evaluation runs repeat a search trial's configuration with other seeds: they
        say how sure a result is, in summary.json's comparison, not which config is best.)"""
        found: Optional[tuple[str, int, float]] = None
        for record in self.trials.values():
            if record.phase != SEARCH:
                continue
            for epoch, row in record.rows.items():
                value = row.get(self.metric)
                if value is None or row.get("diverged"):
                    continue
                value = float(value)
                if not math.isfinite(value):
                    continue
                if found is None or self._sign * value > self._sign * found[2]:
                    found = (record.trial_id, epoch, value)
        return found

    def best_config(self, trial_id: str) -> dict[str, Any]:
        return {**self.fixed_config, **self.trials[trial_id].params}

    def write(self, final: bool = False) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._write_csv()
        for record in self.trials.values():
            self._write_trial_info(record)
        self._write_summary(final)

    def _write_csv(self) -> None:
        rows = (EpochRow(trial_id=r.trial_id, status=r.status, epoch=epoch, phase=r.phase, stratum=r.stratum,
                         seed=r.seed, params=r.params, metrics=r.rows[epoch])
                for r in sorted(self.trials.values(), key=lambda r: r.trial_id) for epoch in sorted(r.rows))
        write_trials_csv(self.run_dir / TRIALS_CSV, self.param_names, rows)

    def status_counts(self, phase: str = SEARCH) -> dict[str, int]:
        """Trials per status, of one phase (the search's by default: they add up to num_samples)."""
        counts = {status: 0 for status in STATUSES}
        for record in self.trials.values():
            if record.phase == phase:
                counts[record.status] = counts.get(record.status, 0) + 1
        return counts

    def outcomes(self) -> list[RunOutcome]:
        """Every run as search.comparison sees it."""
        runs = []
        for record in self.trials.values():
            last_value = final_value = None
            if record.rows:
                last_epoch = max(record.rows)
                last_value = _finite_or_none(record.rows[last_epoch].get(self.metric))
                if record.status == COMPLETED and last_epoch >= self.num_epoch:
                    final_value = last_value
            runs.append(RunOutcome(
                trial_id=record.trial_id, phase=record.phase, stratum=record.stratum, status=record.status,
                final_value=final_value, last_value=last_value if record.status != FAILED else None,
                params=dict(record.params), seed=record.seed, source_trial=record.reeval_of))
        return runs

    def comparison(self) -> dict[str, Any]:
        strata = list(self.strata)
        strata += sorted({r.stratum for r in self.trials.values()} - set(strata))
        return build_comparison(self.outcomes(), strata=strata, metric=self.metric, mode=self.mode)

    def _write_summary(self, final: bool) -> None:
        best = self.best()
        best_entry = None
        if best is not None:
            best_entry = {"trial_id": best[0], "epoch": best[1], self.metric: best[2],
                          "config": self.best_config(best[0])}
        summary = {
            "name": self.name, "num_epoch": self.num_epoch, "num_samples": self.num_samples,
            "metric": self.metric, "mode": self.mode,
            "wall_time_s": round(self._wall_before + time.monotonic() - self._t0, 3),
            "baseline_psnr": self.baseline_psnr, "best": best_entry,
            "status_counts": self.status_counts(),
            "reeval_status_counts": self.status_counts(REEVAL),
            "comparison": self.comparison(),
            "started_at": self.started_at, "finished_at": _iso_now() if final else None,
        }
        _atomic_write(self.run_dir / SUMMARY_JSON, json.dumps(summary, indent=2, allow_nan=False, default=str))

    def write_best_yaml(self, full_config: dict[str, Any]) -> Optional[Path]:
        best = self.best()
        if best is None:
            return None
        header = (f"# Best trial of search '{self.name}': {best[0]}, {self.metric} = {best[2]:.4f} at epoch {best[1]}.\n"
                  f"# Retrain: python -m cvae.train --config best.yaml"
                  f"{' --data ' + self.data_root if self.data_root else ''}\n")
        path = self.run_dir / "best.yaml"
        _atomic_write(path, header + yaml.safe_dump(full_config, sort_keys=False))
        return path


def _finite_or_none(value: Any) -> Optional[float]:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _atomic_write(path: Path, text: str) -> None:
    """Write via a temporary file so a reader (or a kill) never sees half a file."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


class ResultsCallback(Callback):
    """Tune callback on the driver: every result goes to the recorder and to disk.

    Module-level (not built in a function) because Tune pickles the callbacks
    with the experiment, and Tuner.restore unpickles them.
    """

    # Every result is written before Tune registers its checkpoint (Tune calls
    # on_trial_result first): a driver killed in between can then never resume
    # a trial from a checkpoint whose epoch row trials.csv lacks. Rewriting the
    # files per result costs milliseconds; epochs take seconds to hours.
    def __init__(self, recorder: SearchRecorder, flush_every_s: float = 0.0) -> None:
        self.recorder = recorder
        self.flush_every_s = flush_every_s
        self._last_flush = 0.0

    def setup(self, **info: Any) -> None:
        # On resume this is an unpickled copy made before any result: reload what
        # the interrupted run wrote, so rows are replaced rather than lost.
        self.recorder.load_existing()

    def _flush(self, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._last_flush >= self.flush_every_s:
            self.recorder.write()
            self._last_flush = now

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        self.recorder.add_result(trial.trial_id, dict(trial.config), result)
        self._flush()

    def on_checkpoint(self, iteration, trials, trial, checkpoint, **info) -> None:
        try:
            with checkpoint.as_directory() as folder:
                self.recorder.copy_frames(trial.trial_id, folder)
        except Exception:  # a missing picture must never stop a search
            pass

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        self.recorder.set_status(trial.trial_id, self.recorder.classify_end(trial.trial_id, error=False))
        self._flush(force=True)

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        record = self.recorder.trials.setdefault(trial.trial_id, TrialRecord(trial.trial_id, {}))
        self.recorder._set_study_fields(record, dict(trial.config))
        self.recorder.set_status(trial.trial_id, FAILED)
        self._flush(force=True)

    def on_experiment_end(self, trials, **info) -> None:
        self._flush(force=True)
