"""`--resume`: a new Tune run over the study, never a restore of Tune's saved state.

The study (search.record) is the search's only state. What `--resume` does, in the
driver, holding the run folder's lock (so no other driver writes to it):

1. `resume_mode` decides: a folder whose study holds no trial (killed during
   start-up, before anything was recorded) starts afresh; a folder with a record
   always resumes; a folder that is neither a search nor a start-up leftover is a
   ResumeError (exit 2) and nothing in it changes.
2. `backup_state` copies the record (optuna.db or a journal file) and the views
   (trials.csv, summary.json) to `.resume-backup/`, the previous backup replaced
   once the new one is complete.
3. The runner rebuilds the views from the record, then starts a fresh Tuner:
   finished trials (COMPLETE / PRUNED / FAIL) stay exactly as they are; each
   RUNNING one (its driver was killed) runs again with the same config and seed,
   continuing from the newest complete checkpoint in its own trial folder
   (search.trial_files), or from scratch when it has none; then new trials are asked
   until num_samples, then the re-runs. ASHA's rungs are rebuilt from the study's
   intermediate values (search.scheduler.ScheduleAwareASHA.rebuild).

What a kill can lose: the epoch in progress (its row is written before it is
reported, so a finished epoch survives, and an epoch after the newest checkpoint is
run again with the same numbers). Nothing here reads or writes Ray's or Optuna's
private state, so any Ray and Optuna version that keeps their public API resumes.
"""
from __future__ import annotations

import json
import os
import shutil
import sqlite3
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from runfolder.contract import SUMMARY_JSON, TRIALS_CSV
from search.record import journal_path, storage_has_study
from search.run_lock import LOCK_NAME

if TYPE_CHECKING:
    from search.record import StudyRecord

BACKUP_DIR = ".resume-backup"
AFRESH, RESUME = "afresh", "resume"
# What run_search.py writes into a run folder before the first trial is recorded.
STARTUP_FILES = ("space.yaml", "ray.log", "optuna.db", "optuna.db-journal", SUMMARY_JSON, TRIALS_CSV, "tune",
                 "trials", BACKUP_DIR, f"{BACKUP_DIR}.new", LOCK_NAME)


class ResumeError(ValueError):
    """The folder cannot be resumed (exit code 2); nothing in it was changed."""


def resume_mode(run_dir: Path, storage_url: str, study_name: str) -> str:
    """AFRESH or RESUME for `--resume` on `run_dir`, or ResumeError. Changes nothing."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ResumeError(f"cannot resume {run_dir}: the folder does not exist (check --name and --storage-path, "
                          "or leave out --resume to start a new search)")
    if storage_has_study(storage_url, study_name):
        return RESUME
    names = {p.name for p in run_dir.iterdir()}
    # what run_search.py writes first: its lock (taken before anything else), ray.log, space.yaml
    if names & {"space.yaml", "ray.log", LOCK_NAME} and names <= set(STARTUP_FILES):
        return AFRESH
    raise ResumeError(f"cannot resume {run_dir}: not a search folder (no study '{study_name}' in "
                      f"{storage_url} and no space.yaml); pass the run folder run_search.py made, or the "
                      "--storage it used")


def backup_state(run_dir: Path, storage_url: str) -> Path:
    """Copy the record and its views to `run_dir/.resume-backup/`; the previous backup is
    replaced once the new one is complete. A database server's record is not copied."""
    run_dir = Path(run_dir)
    new = run_dir / f"{BACKUP_DIR}.new"
    if new.exists():
        shutil.rmtree(new)
    new.mkdir()
    for name in (TRIALS_CSV, SUMMARY_JSON):
        if (run_dir / name).is_file():
            shutil.copy2(run_dir / name, new / name)
    copied = None
    journal = journal_path(storage_url)
    if journal is not None and journal.is_file():
        shutil.copy2(journal, new / journal.name)
        copied = journal.name
    elif storage_url.startswith("sqlite:///") and Path(storage_url[len("sqlite:///"):]).is_file():
        # SQLite's own copy: consistent even with a hot journal a SIGKILLed writer left. Read-write,
        # never mode=ro: a read-only connection refuses to roll that journal back
        # (SQLITE_READONLY_ROLLBACK); the rollback drops only the unfinished transaction, as
        # Optuna's own next open would, and mode=rw never creates a missing file.
        source = Path(storage_url[len("sqlite:///"):])
        src = sqlite3.connect(f"file:{source}?mode=rw", uri=True)
        dst = sqlite3.connect(new / "optuna.db")
        with dst:
            src.backup(dst)
        src.close()
        dst.close()
        copied = "optuna.db"
    (new / "backup.json").write_text(json.dumps(
        {"made_at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "storage": storage_url,
         "record": copied, "restore": "stop the search, copy these files back into the run folder"}, indent=2))
    old = run_dir / BACKUP_DIR
    if old.exists():
        shutil.rmtree(old)
    os.replace(new, old)
    return old


def set_aside_unsaved(run_dir: Path, keep: tuple[str, ...] = ()) -> Optional[Path]:
    """Move what a start-up-killed search left (space.yaml, an empty optuna.db, ...) into
    `.resume-backup/`, so the search can start afresh in the same folder. None when empty."""
    run_dir = Path(run_dir)
    # the lock stays where it is: the driver calling this holds it
    leftovers = [p for p in run_dir.iterdir() if p.name not in (BACKUP_DIR, f"{BACKUP_DIR}.new", LOCK_NAME, *keep)]
    if not leftovers:
        return None
    new = run_dir / f"{BACKUP_DIR}.new"
    if new.exists():
        shutil.rmtree(new)
    new.mkdir()
    for p in leftovers:
        shutil.move(str(p), str(new / p.name))
    if (run_dir / BACKUP_DIR).exists():
        shutil.rmtree(run_dir / BACKUP_DIR)
    os.replace(new, run_dir / BACKUP_DIR)
    return run_dir / BACKUP_DIR


def backfill_interrupted(record: "StudyRecord", run_dir: Path, metric: str,
                         num_epoch: int) -> tuple[dict[str, int], dict[str, str]]:
    """Give the study what an interrupted trial finished and checkpointed but the killed
    driver never heard (its row is in metrics.jsonl, written before the report), so ASHA's
    rebuilt rungs and Optuna see it; a trial whose newest checkpoint is its last epoch (or
    its divergence) is committed as ended here, with nothing left to run.
    Returns (trial id -> the epoch each trial still to run continues from, trial id -> the
    status of each trial ended here)."""
    from runfolder.status import COMPLETED, DIVERGED, classify_end
    from search.record import handed_out, key_of
    from search.trial_files import TrialFiles, epoch_rows

    continued: dict[str, int] = {}
    ended: dict[str, str] = {}
    for frozen in record.interrupted():
        if not handed_out(frozen):
            record.abandon(frozen.number)
            ended[key_of(frozen)] = "abandoned (asked, but killed before it was handed out; another is asked)"
            continue
        files = TrialFiles(run_dir, key_of(frozen))
        newest = files.newest_checkpoint()
        start = newest[0] if newest else 0
        rows = {e: row for e, row in epoch_rows(files.metrics_path).items() if e <= start and metric in row}
        for epoch, row in sorted(rows.items()):
            if row[metric] is not None and frozen.intermediate_values.get(epoch) != row[metric]:
                record.report(frozen.number, epoch, row[metric])
        last = rows.get(start)
        status = classify_end(last, error=False, metric=metric, num_epoch=num_epoch) if last else None
        if status in (COMPLETED, DIVERGED):
            record.finish(frozen.number, status, value=last[metric], epoch=start)
            ended[key_of(frozen)] = status
            continue
        continued[key_of(frozen)] = start
    return continued, ended
