"""Ray results -> the files of runs/<name>/ that docs/CONTRACTS.md lists.

These files are views: `SearchRecorder.load_record` builds one row per (trial,
epoch) from the study (search.record: which trials exist, their parameters and
how they ended) and each trial's own `trials/<id>/metrics.jsonl`
(search.trial_files), then `write` writes trials.csv, summary.json,
trials/<id>/trial.json (and best.yaml at the end), each atomically. They can be
deleted and rebuilt at any time; `--resume` rebuilds them first.
`ResultsCallback` refreshes them while the search runs (after the scheduler has
committed each result to the study).
"""
from __future__ import annotations

import json
import math
import shutil
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Optional

import yaml
from ray.tune import Callback

from runfolder.contract import (
    METRICS,
    SUMMARY_JSON,
    TRIALS_CSV,
    EpochRow,
    read_trials_csv,  # noqa: F401  (its old home: tests and users import it from here)
    write_trials_csv,
)
from runfolder.status import COMPLETED, FAILED, RUNNING, STATUSES
from search.comparison import RunOutcome, Settings, build_comparison
from search.strata import PHASE_KEY, REEVAL, SEARCH, STRATUM_KEY, TRIAL_KEY, stratum_key
from search.trainable import EXECUTION_KEYS
from search.trial_files import METRICS_FILE, atomic_write, epoch_rows

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
                 data_root: Optional[str] = None, strata: Iterable[str] = (), scientific: Iterable[str] = (),
                 verdict: Settings = Settings()) -> None:
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
        self.verdict = verdict  # what the comparison block is judged by (reeval: in the space)
        self.trials: dict[str, TrialRecord] = {}
        self.started_at = _iso_now()
        self._t0 = time.monotonic()
        self._wall_before = 0.0  # wall time of earlier (interrupted) sessions
        self._wall_loaded = False

    # --- input ------------------------------------------------------------
    def load_record(self, trials: Iterable[Any]) -> None:
        """Rebuild every trial from the study's trials (optuna FrozenTrials) and their files."""
        from optuna.trial import TrialState

        from search.record import FINAL_EPOCH_ATTR, REEVAL_OF_ATTR, SEED_ATTR, STATUS_ATTR, config_of, counted, key_of

        summary_path = self.run_dir / SUMMARY_JSON
        if summary_path.exists() and not self._wall_loaded:
            try:
                summary = json.loads(summary_path.read_text())
                self.started_at = summary.get("started_at", self.started_at)
                self._wall_before = float(summary.get("wall_time_s", 0.0) or 0.0)
            except (OSError, ValueError):
                pass
        self._wall_loaded = True
        self.trials = {}
        for frozen in trials:
            if frozen.state == TrialState.WAITING or not counted(frozen):
                continue  # enqueued, not yet a trial; or an abandoned ask
            attrs = frozen.user_attrs
            trial_id = key_of(frozen)
            config = config_of(frozen)
            params = {k: v for k, v in config.items() if k in self.param_names}
            finished = frozen.state.is_finished()
            status = str(attrs.get(STATUS_ATTR) or (FAILED if frozen.state == TrialState.FAIL else RUNNING))
            record = TrialRecord(trial_id, params, status=status if finished else RUNNING,
                                 phase=str(attrs.get(PHASE_KEY, SEARCH)),
                                 stratum=str(attrs.get(STRATUM_KEY) or stratum_key(params, self.scientific)),
                                 seed=attrs.get(SEED_ATTR, config.get("seed", self.fixed_config.get("seed"))),
                                 reeval_of=attrs.get(REEVAL_OF_ATTR))
            rows = epoch_rows(self.run_dir / "trials" / trial_id / METRICS_FILE)
            final_epoch = attrs.get(FINAL_EPOCH_ATTR)
            if finished and final_epoch is not None:
                # an epoch the worker ran after the end was committed (its STOP was on the way)
                rows = {e: r for e, r in rows.items() if e <= int(final_epoch)}
            for epoch in sorted(rows):
                result = rows[epoch]
                record.rows[epoch] = {k: v for k, v in result.items() if k in METRICS and k != "epoch"}
                if result.get("node_id"):
                    record.node_ids.add(str(result["node_id"]))
                if "data_zero_copy" in result:
                    record.data_zero_copy = bool(result["data_zero_copy"])
                record.execution.update({k: result[k] for k in EXECUTION_KEYS if k in result})
            self.trials[trial_id] = record

    # --- per-trial files ----------------------------------------------------
    def trial_dir(self, trial_id: str) -> Path:
        path = self.run_dir / "trials" / trial_id
        path.mkdir(parents=True, exist_ok=True)
        return path

    def _write_trial_info(self, record: TrialRecord) -> None:
        info = {"trial_id": record.trial_id, "status": record.status, "params": record.params,
                "phase": record.phase, "stratum": record.stratum, "seed": record.seed,
                "reeval_of": record.reeval_of, "execution": record.execution,
                "epochs": len(record.rows), "node_ids": sorted(record.node_ids),
                "data_zero_copy": record.data_zero_copy}
        atomic_write(self.trial_dir(record.trial_id) / "trial.json", json.dumps(info, indent=2))

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
        return build_comparison(self.outcomes(), strata=strata, metric=self.metric, mode=self.mode,
                                settings=self.verdict)

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
        atomic_write(self.run_dir / SUMMARY_JSON, json.dumps(summary, indent=2, allow_nan=False, default=str))

    def write_best_yaml(self, full_config: dict[str, Any]) -> Optional[Path]:
        best = self.best()
        if best is None:
            return None
        header = (f"# Best trial of search '{self.name}': {best[0]}, {self.metric} = {best[2]:.4f} at epoch {best[1]}.\n"
                  f"# Retrain: python -m cvae.train --config best.yaml"
                  f"{' --data ' + self.data_root if self.data_root else ''}\n")
        path = self.run_dir / "best.yaml"
        atomic_write(path, header + yaml.safe_dump(full_config, sort_keys=False))
        return path


def _finite_or_none(value: Any) -> Optional[float]:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


class ResultsCallback(Callback):
    """Tune callback on the driver: keeps the views of the record fresh while the search runs.

    Tune calls callbacks after the scheduler (search.record_scheduler) committed the
    result to the study, so a view never shows what the record does not hold.
    """

    def __init__(self, recorder: SearchRecorder, read_trials: Any, flush_every_s: float = 1.0) -> None:
        self.recorder = recorder
        self.read_trials = read_trials  # () -> the study's trials
        self.flush_every_s = flush_every_s
        self._last_flush = 0.0

    def refresh(self, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._last_flush >= self.flush_every_s:
            self.recorder.load_record(self.read_trials())
            self.recorder.write()
            self._last_flush = time.monotonic()

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        self.refresh()

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        self.refresh(force=True)

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        # Tune's error.txt sits in this session's scratch folder: keep a copy with the trial.
        key = (trial.config or {}).get(TRIAL_KEY)
        source = Path(trial.path) / "error.txt" if key and getattr(trial, "path", None) else None
        if source is not None and source.is_file():
            shutil.copyfile(source, self.recorder.trial_dir(str(key)) / "error.txt")
        self.refresh(force=True)

    def on_experiment_end(self, trials, **info) -> None:
        self.refresh(force=True)
