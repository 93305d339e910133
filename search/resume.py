"""Make an interrupted search resumable: reconcile Ray Tune's saved state with the Optuna study.

Why this exists (measured with ray 2.58.0 + optuna 5.0.0): Tune saves its
experiment state, the searcher (OptunaSearch, pickled) and the search generator
together, at most every ~10 s or every few trial checkpoints; the Optuna study
(SQLite) is written on every result. After SIGKILL of the driver the study is
ahead of the saved state:

1. a trial Ray saved as RUNNING may be finished in the study (ASHA stopped it or
   it completed after the last save). `Tuner.restore` then resumes it and
   OptunaSearch's `report` crashes with `UpdateFinishedTrialError: Trial#3 has
   already finished and can not be updated`;
2. study trials asked after the last save have no Ray trial: they stay RUNNING
   forever, and the restored sampler (same RNG state) asks *new* trials with the
   same parameters, so the study ends with duplicates and more than num_samples;
3. result files can hold epochs after the checkpoint Ray will resume from, so a
   resumed trial would log those epochs twice.

After SIGINT Tune saves everything consistently; this module then changes nothing.

What `reconcile_for_resume` does (the study is the source of truth for "finished"):

- Ray trial unfinished, study trial finished  -> the trial is marked TERMINATED in
  Tune's experiment state (its last_result taken from its result.json) and added to
  the searcher's completed set: it is *not* re-run.
- Ray trial unfinished, study trial running   -> resumed by Tune from its last
  checkpoint; result.json / progress.csv rows after that checkpoint are dropped.
- Ray trial ERROR (Tune retries it with resume_errored=True), study FAIL -> the
  study trial is reopened (RUNNING, value cleared) so the retry's outcome is told.
- Study trial with no Ray trial (asked after the last save) -> put back in the
  queue (WAITING, values cleared): the next `study.ask()` of the resumed search pops
  it, with the same parameters, so nothing is duplicated or lost. Its half-written
  Ray trial folder is moved to `<experiment>/.orphaned/` and its rows leave trials.csv.
- The searcher pickle is rewritten: trial mapping and completed set as above, the
  study reopened at `storage_url` (so a moved experiment folder still finds its
  optuna.db). The ConcurrencyLimiter's live-trial set is rewritten to the trials
  that will run, so finished ones do not hold slots forever.

API for the runner (in this order, in the driver, before Ray starts any trial):

    from search.resume import check_experiment_dir, check_versions, reconcile_for_resume, ResumeError
    check_versions(force)                  # ResumeError unless ray/optuna are TESTED_VERSIONS (or force)
    check_experiment_dir(run_dir)          # ResumeError(ValueError) if not resumable (do it before ray.init)
    plan = reconcile_for_resume(run_dir, study_name=name, storage_url=f"sqlite:///{run_dir/'optuna.db'}")
    tuner = tune.Tuner.restore(str(run_dir), trainable=..., resume_unfinished=True, resume_errored=True)
    tuner.fit()

Nothing in the folder changes before the version check; `reconcile_for_resume`
checks again, then copies optuna.db, Tune's state files, trials.csv and
summary.json to `.resume-backup/` (the last backup is kept) before its first change.
`reconcile_for_resume` only needs the searcher's classes importable (the pickle
refers to them: the OptunaSearch subclass and the define-by-run space callable).
It is idempotent: running it twice, or after a SIGINT, changes nothing more.
Not guaranteed: a result line Ray had not yet flushed to result.json when killed
is lost (the epoch ran, its row is missing); Tune does not save ASHA's rung
state, so resumed trials are judged against the rungs of the resumed run only.
"""
from __future__ import annotations

import csv
import json
import logging
import os
import pickle
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from search.contract import SUMMARY_JSON, TRIALS_CSV, csv_trial_ids, drop_trials
from search.run_lock import LOCK_NAME

logger = logging.getLogger(__name__)

_UNFINISHED = ("RUNNING", "PENDING", "PAUSED")
_EXPERIMENT_STATE = "experiment_state-*.json"
_SEARCHER_STATE = "searcher-state-*.pkl"
_SEARCH_GEN_STATE = "search_gen_state-*.json"
ORPHAN_DIR = ".orphaned"
BACKUP_DIR = ".resume-backup"
# What a run folder can hold before Tune's first save (the driver killed during start-up).
STARTUP_FILES = ("space.yaml", "ray.log", "optuna.db", SUMMARY_JSON, TRIALS_CSV, BACKUP_DIR, f"{BACKUP_DIR}.new",
                 LOCK_NAME)
# Everything below reads and rewrites Tune's pickles and Optuna's SQLite tables through
# private attributes and raw SQL: it is tested with exactly these versions. With any
# other, `--resume` refuses (exit 2) before touching the folder unless --force-resume.
TESTED_VERSIONS = {"ray": "2.58.0", "optuna": "5.0.0"}


class ResumeError(ValueError):
    """An experiment folder cannot be resumed; the message names the folder and what is expected."""


@dataclass
class ResumePlan:
    """What `reconcile_for_resume` found and changed (Ray trial ids, Optuna trial numbers)."""

    experiment_dir: Path
    finished: list[str] = field(default_factory=list)          # kept as they are, not re-run
    closed: list[str] = field(default_factory=list)            # finished after the last save: marked TERMINATED
    resumed: dict[str, int] = field(default_factory=dict)      # trial id -> checkpoint iteration it continues from
    reopened: list[str] = field(default_factory=list)          # errored, retried by Tune: study trial reopened
    requeued: list[int] = field(default_factory=list)          # study trial numbers put back in the queue
    orphaned_trial_ids: list[str] = field(default_factory=list)  # Ray trials asked after the save (folders moved)
    rows_dropped: dict[str, int] = field(default_factory=dict)   # trial id -> result rows after its checkpoint

    @property
    def changed(self) -> bool:
        return bool(self.closed or self.reopened or self.requeued or self.orphaned_trial_ids
                    or self.rows_dropped)


@dataclass
class _RayTrial:
    trial_id: str
    status: str
    logdir: str               # relative to the experiment folder
    config: dict[str, Any]
    checkpoint_iter: int      # training_iteration of the checkpoint Tune resumes from (0: none)


# --- finding the files -------------------------------------------------------
def _newest(exp: Path, pattern: str) -> Optional[Path]:
    # Tune picks the newest state file by the largest name (the names hold the session time).
    found = sorted(exp.glob(pattern))
    return found[-1] if found else None


def check_experiment_dir(experiment_dir: str | Path) -> Path:
    """The resolved folder, or ResumeError saying what is missing (call before ray.init)."""
    exp = Path(experiment_dir).expanduser().resolve()
    if not exp.exists():
        raise ResumeError(f"{exp}: cannot resume, the folder does not exist "
                          "(expected the experiment folder runs/<name> of an earlier search)")
    if not exp.is_dir():
        raise ResumeError(f"{exp}: cannot resume, this is a file, but must be an experiment folder (runs/<name>)")
    missing = [what for what, ok in (("tuner.pkl", (exp / "tuner.pkl").is_file()),
                                     (_EXPERIMENT_STATE, _newest(exp, _EXPERIMENT_STATE) is not None))
               if not ok]
    if missing:
        raise ResumeError(f"{exp}: cannot resume, not a search experiment folder: no {' and no '.join(missing)} "
                          "(expected the folder a search wrote, runs/<name>, after at least one state save)")
    return exp


# --- the version guard and the backup ---------------------------------------------
def installed_versions() -> dict[str, str]:
    """The installed versions of the packages whose private state resume rewrites."""
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in TESTED_VERSIONS:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "not installed"
    return found


def check_versions(force: bool = False, installed: Optional[dict[str, str]] = None) -> Optional[str]:
    """None when ray and optuna are the versions resume was tested with. Otherwise
    ResumeError (exit 2), or with `force` the warning to print. Reads nothing on disk."""
    installed = installed_versions() if installed is None else installed
    odd = [f"{name} {installed.get(name)} (tested: {tested})" for name, tested in TESTED_VERSIONS.items()
           if installed.get(name) != tested]
    if not odd:
        return None
    what = ", ".join(odd)
    if not force:
        raise ResumeError(f"cannot resume safely with {what}: resume rewrites Tune's saved state and the Optuna "
                          f"study through private APIs checked only with "
                          f"{', '.join(f'{n} {v}' for n, v in TESTED_VERSIONS.items())}, and another version may "
                          "corrupt the study. Nothing was changed. Install those versions (constraints.txt), or "
                          f"pass --force-resume to try anyway (a copy of the state files goes to {BACKUP_DIR}/ first)")
    return (f"warning: resuming with {what} because of --force-resume; the state files before the attempt are "
            f"in {BACKUP_DIR}/")


def backup_state(exp: Path) -> Path:
    """Copy optuna.db, Tune's state files, trials.csv and summary.json to `exp/.resume-backup/`
    (the previous backup is replaced once the new one is complete)."""
    import sqlite3
    from datetime import datetime, timezone

    new = exp / f"{BACKUP_DIR}.new"
    if new.exists():
        shutil.rmtree(new)
    new.mkdir()
    names = ["tuner.pkl", TRIALS_CSV, SUMMARY_JSON]
    for pattern in (_EXPERIMENT_STATE, _SEARCHER_STATE, _SEARCH_GEN_STATE):
        names += sorted(p.name for p in exp.glob(pattern))
    for name in names:
        if (exp / name).is_file():
            shutil.copy2(exp / name, new / name)
    if (exp / "optuna.db").is_file():  # SQLite's own copy: consistent even with a journal left by the kill
        # Read-write, never mode=ro: a driver SIGKILLed inside a transaction leaves a hot journal,
        # and a read-only connection refuses to roll it back (SQLITE_READONLY_ROLLBACK, "attempt to
        # write a readonly database"). The rollback only drops that unfinished transaction, as
        # Optuna's own next open would; mode=rw still never creates a missing file.
        src = sqlite3.connect(f"file:{exp / 'optuna.db'}?mode=rw", uri=True)
        dst = sqlite3.connect(new / "optuna.db")
        with dst:
            src.backup(dst)
        src.close()
        dst.close()
    (new / "backup.json").write_text(json.dumps(
        {"made_at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "versions": installed_versions(),
         "restore": "stop the search, copy these files back into the run folder"}, indent=2))
    old = exp / BACKUP_DIR
    if old.exists():
        shutil.rmtree(old)
    os.replace(new, old)
    return old


# --- a search stopped during start-up -----------------------------------------------
def nothing_saved(experiment_dir: str | Path) -> bool:
    """True for a run folder that exists but holds no search to continue: a driver killed
    during start-up left it before Tune saved anything (no tuner.pkl, no experiment
    state, no trial folder) and before any trial reported (no trials.csv row). Reads only."""
    exp = Path(experiment_dir)
    if not exp.is_dir():
        return False
    names = {p.name for p in exp.iterdir()}
    # only what run_search.py writes before Tune's first save, with its space.yaml or ray.log
    # among it (so a folder someone else made is never taken for one)
    return (bool(names & {"space.yaml", "ray.log"}) and names <= set(STARTUP_FILES)
            and not csv_trial_ids(exp / TRIALS_CSV))


def set_aside_unsaved(exp: Path, keep: tuple[str, ...] = ()) -> Optional[Path]:
    """Move what a start-up-killed search left (space.yaml, an empty optuna.db, ...) into
    `.resume-backup/`, so the search can start afresh in the same folder. None when empty."""
    # the lock stays where it is: the driver calling this holds it
    leftovers = [p for p in exp.iterdir() if p.name not in (BACKUP_DIR, LOCK_NAME, *keep)]
    if not leftovers:
        return None
    new = exp / f"{BACKUP_DIR}.new"
    if new.exists():
        shutil.rmtree(new)
    new.mkdir()
    for p in leftovers:
        if p.name != new.name:
            shutil.move(str(p), str(new / p.name))
    if (exp / BACKUP_DIR).exists():
        shutil.rmtree(exp / BACKUP_DIR)
    os.replace(new, exp / BACKUP_DIR)
    return exp / BACKUP_DIR


# --- reading Tune's state ------------------------------------------------------
def _checkpoint_iteration(meta: dict[str, Any]) -> int:
    """training_iteration of the latest checkpoint Tune registered for a trial (0 when none)."""
    import ray.cloudpickle as cloudpickle

    blob = meta.get("checkpoint_manager")
    if not isinstance(blob, dict) or "value" not in blob:
        return 0
    manager = cloudpickle.loads(bytes.fromhex(blob["value"]))
    latest = getattr(manager, "latest_checkpoint_result", None)
    if latest is None:
        return 0
    return int(latest.metrics.get("training_iteration", 0) or 0)


def _read_experiment_state(path: Path) -> tuple[dict[str, Any], list[_RayTrial]]:
    state = json.loads(path.read_text())
    trials = []
    for trial_json, meta_json in state["trial_data"]:
        t, meta = json.loads(trial_json), json.loads(meta_json)
        trials.append(_RayTrial(trial_id=t["trial_id"], status=t["status"], logdir=t["relative_logdir"],
                                config=dict(t.get("config") or {}), checkpoint_iter=_checkpoint_iteration(meta)))
    return state, trials


def _set_trial_status(state: dict[str, Any], trial_id: str, status: str,
                      last_result: Optional[dict[str, Any]]) -> None:
    """Edit one trial's status (and last_result) in Tune's experiment-state dict in place."""
    for entry in state["trial_data"]:
        t = json.loads(entry[0])
        if t["trial_id"] != trial_id:
            continue
        t["status"] = status
        entry[0] = json.dumps(t)
        if last_result is not None:
            meta = json.loads(entry[1])
            meta["last_result"] = last_result
            entry[1] = json.dumps(meta)


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


# --- pickles that name absolute paths -------------------------------------------------
def _portable_load(path: Path, storage_url: str, run_dir: Path) -> Any:
    """Unpickle a searcher / tuner pickle, re-pointing what names the old folder.

    A pickled optuna RDBStorage reconnects to its URL while it is unpickled: when
    the run folder was moved, the old sqlite path no longer exists ("unable to
    open database file"), or still exists and is the wrong study. A pickled
    SearchRecorder (in the ResultsCallback of tuner.pkl) holds the old run_dir.
    Both are swapped for this folder's as they are rebuilt.
    """
    import pickle as std_pickle

    from optuna.storages import RDBStorage

    try:
        from search.results import SearchRecorder
    except ImportError:  # ray not importable: no recorder can be in the pickle either
        SearchRecorder = None  # type: ignore[assignment,misc]

    class _Storage(RDBStorage):
        def __setstate__(self, state: dict[str, Any]) -> None:
            url = str(state.get("url", ""))
            if url.startswith("sqlite:") and url != storage_url:
                state = {**state, "url": storage_url}
            self.__class__ = RDBStorage  # a plain RDBStorage once rebuilt (re-pickled by its own name)
            RDBStorage.__setstate__(self, state)

    swaps: dict[tuple[str, str], type] = {(RDBStorage.__module__, RDBStorage.__name__): _Storage}
    if SearchRecorder is not None:
        class _Recorder(SearchRecorder):  # type: ignore[misc,valid-type]
            def __setstate__(self, state: dict[str, Any]) -> None:
                self.__dict__.update(state)
                self.run_dir = run_dir
                self.__class__ = SearchRecorder

        swaps[(SearchRecorder.__module__, SearchRecorder.__name__)] = _Recorder

    class _Unpickler(std_pickle.Unpickler):
        def find_class(self, module: str, name: str) -> Any:
            return swaps.get((module, name)) or super().find_class(module, name)

    with open(path, "rb") as f:
        return _Unpickler(f).load()


def _repoint_tuner_pkl(exp: Path, storage_url: str) -> None:
    """Rewrite tuner.pkl so Tuner.restore rebuilds the searcher and callback for this folder."""
    import ray.cloudpickle as cloudpickle

    path = exp / "tuner.pkl"
    state = _portable_load(path, storage_url, exp)
    _atomic_write_bytes(path, cloudpickle.dumps(state))


# --- result files --------------------------------------------------------------
def _last_result(trial_dir: Path) -> Optional[dict[str, Any]]:
    lines = (trial_dir / "result.json").read_text().splitlines() if (trial_dir / "result.json").is_file() else []
    for line in reversed(lines):
        try:
            return json.loads(line)
        except json.JSONDecodeError:  # a line cut by the kill
            continue
    return None


def _truncate_results(trial_dir: Path, keep_upto: int) -> int:
    """Drop result.json / progress.csv rows with training_iteration > keep_upto; rows dropped (result.json)."""
    dropped = 0
    rj = trial_dir / "result.json"
    if rj.is_file():
        kept = []
        for line in rj.read_text().splitlines():
            try:
                it = int(json.loads(line).get("training_iteration", 0))
            except (json.JSONDecodeError, TypeError, ValueError):
                dropped += 1  # a half-written line from the kill
                continue
            if it <= keep_upto:
                kept.append(line)
            else:
                dropped += 1
        if dropped:
            _atomic_write_bytes(rj, "".join(f"{line}\n" for line in kept).encode())
    pc = trial_dir / "progress.csv"
    if pc.is_file():
        with open(pc, newline="") as f:
            rows = list(csv.reader(f))
        if rows and "training_iteration" in rows[0]:
            col = rows[0].index("training_iteration")
            body = [r for r in rows[1:] if len(r) == len(rows[0]) and r[col].isdigit() and int(r[col]) <= keep_upto]
            if len(body) != len(rows) - 1:
                with open(pc, "w", newline="") as f:
                    csv.writer(f).writerows([rows[0], *body])
    return dropped


_TRIAL_DIR_RE = re.compile(r"^[A-Za-z0-9]+(?:_[A-Za-z0-9]+)*?_([0-9a-f]{8})_\d+_")  # train_trial_<id>_<n>_...


def _trial_id_in_name(name: str) -> Optional[str]:
    """The trial id in a Ray trial folder name (`train_trial_275266ca_7_...`), or None."""
    match = _TRIAL_DIR_RE.match(name)
    return match.group(1) if match else None


# --- the Optuna study ------------------------------------------------------------
def _load_study(study_name: str, storage_url: str, sampler=None):
    import optuna

    try:
        return optuna.load_study(study_name=study_name, storage=storage_url, sampler=sampler)
    except KeyError as err:
        raise ResumeError(f"{storage_url}: cannot resume, no Optuna study named {study_name!r} in it "
                          "(expected the optuna.db the search wrote)") from err


def _reset_trial(storage_url: str, trial_id: int, state: str) -> None:
    """Reopen a study trial (WAITING or RUNNING), clearing its value(s).

    Optuna has no API to reopen a finished trial (UpdateFinishedTrialError), so this
    writes the RDB tables directly; intermediate values are cleared for a requeued
    trial (its Ray trial restarts from scratch) and kept for a reopened one (it
    continues from a checkpoint and later steps are re-reported).
    """
    import sqlalchemy as sa
    from optuna.storages import RDBStorage

    engine = RDBStorage(storage_url).engine
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM trial_values WHERE trial_id = :t"), {"t": trial_id})
        if state == "WAITING":
            conn.execute(sa.text("DELETE FROM trial_intermediate_values WHERE trial_id = :t"), {"t": trial_id})
        conn.execute(sa.text("UPDATE trials SET state = :s, datetime_complete = NULL WHERE trial_id = :t"),
                     {"s": state, "t": trial_id})
    engine.dispose()


def _map_ray_to_optuna(ray_trials: list[_RayTrial], ot_trials: dict[str, Any], study) -> dict[str, int]:
    """Ray trial id -> Optuna storage trial id, from the searcher pickle; else the
    `ray_trial_id` user attribute; else the unique unclaimed study trial with the same params."""
    mapping = {tid: int(t._trial_id) for tid, t in ot_trials.items()}
    frozen = study.get_trials(deepcopy=False)
    for rt in ray_trials:
        if rt.trial_id in mapping:
            continue
        claimed = set(mapping.values())
        by_attr = [f for f in frozen if f.user_attrs.get("ray_trial_id") == rt.trial_id]
        same = by_attr or [f for f in frozen if f._trial_id not in claimed and f.params
                           and all(rt.config.get(k) == v for k, v in f.params.items())]
        if len(same) == 1:
            mapping[rt.trial_id] = same[0]._trial_id
    return mapping


# --- the searcher pickles ----------------------------------------------------------
def _rewrite_searcher(path: Path, mapping: dict[str, int], completed: set[str], study, storage_url: str) -> None:
    """Rewrite OptunaSearch's pickled __dict__ so it agrees with the study."""
    import optuna

    state = _portable_load(path, storage_url, path.parent)
    if not isinstance(state, dict) or "_ot_trials" not in state:
        raise ResumeError(f"{path}: cannot resume, this searcher state is not an OptunaSearch's "
                          "(expected the searcher-state file of a search run by run_search.py)")
    storage = study._storage
    ot_trials = {}
    for tid, ot_id in mapping.items():
        trial = state["_ot_trials"].get(tid)
        if trial is None or int(trial._trial_id) != ot_id:
            trial = optuna.Trial.__new__(optuna.Trial)  # no sampler hooks on a possibly finished trial
            trial.__dict__.update(_trial_id=ot_id, relative_search_space=None, _relative_params=None,
                                  _fixed_params={})
        # Rebind to the study at storage_url (the pickled one may point to a moved folder).
        trial.study, trial.storage = study, storage
        trial._cached_frozen_trial = storage.get_trial(ot_id)
        ot_trials[tid] = trial
    state["_ot_trials"] = ot_trials
    state["_completed_trials"] = set(completed)
    state["_ot_study"] = study
    if "_sampler" in state:
        state["_sampler"] = study.sampler  # one sampler object, as before pickling
    state["_storage"] = optuna.storages.RDBStorage(storage_url)
    if "_reported_steps" in state:  # PruningOptunaSearch: steps the study already holds
        state["_reported_steps"] = {tid: set(t._cached_frozen_trial.intermediate_values)
                                    for tid, t in ot_trials.items()}
    _atomic_write_bytes(path, pickle.dumps(state))


def _rewrite_search_gen(path: Optional[Path], live: set[str], exp: Path) -> None:
    """Set the ConcurrencyLimiter's live trials to the ones Tune will run again, and
    point the saved Experiment (it makes every new trial's storage) at this folder.

    Tune re-points the trials it restores when the experiment folder moved, but not
    the Experiment inside this file: trials created after a move would write
    checkpoints under the old path ("Unable to set up cluster storage").
    """
    if path is None:
        return
    import copy

    import ray.cloudpickle as cloudpickle

    with open(path, "rb") as f:
        state = cloudpickle.load(f)
    limiter = state.get("name:ConcurrencyLimiter")
    if limiter is not None:
        limiter["live_trials"] = set(live)
        limiter["num_unfinished_live_trials"] = len(live)
        limiter["cached_results"] = {}
    experiment = state.get("experiment")
    storage = getattr(experiment, "storage", None)
    if storage is not None and getattr(storage, "custom_fs_provided", False) is False:
        moved = copy.copy(storage)
        moved.storage_fs_path = str(exp.parent)
        moved.experiment_dir_name = exp.name
        experiment.storage = moved
        if isinstance(getattr(experiment, "spec", None), dict) and "storage" in experiment.spec:
            experiment.spec["storage"] = moved
    _atomic_write_bytes(path, cloudpickle.dumps(state))


def _close_unheard(study, frozen, last: Optional[dict[str, Any]], ray_status: str, saved: dict[str, Any]) -> None:
    """Tell the study how a trial Tune finished (TERMINATED) ended, as the searcher would have.

    A trial ASHA stopped ends TERMINATED in Tune like a completed one: only its
    last epoch tells them apart, so it must not be closed COMPLETE with a
    partial-budget value (the mistake search.status exists to prevent).
    """
    from optuna.trial import TrialState

    from search.status import OPTUNA_STATE, classify_end

    metric = saved.get("_metric") or "val_psnr"
    max_t = int(saved.get("_max_t") or 0)
    status = classify_end(last, error=ray_status == "ERROR", metric=metric, num_epoch=max_t)
    state = TrialState[OPTUNA_STATE[status]]
    value = float(last[metric]) if state == TrialState.COMPLETE else None
    step = (last or {}).get("epoch")
    if state != TrialState.FAIL and step is not None and last and metric in last \
            and int(step) not in frozen.intermediate_values:
        study._storage.set_trial_intermediate_value(frozen._trial_id, int(step), float(last[metric]))
    study._storage.set_trial_user_attr(frozen._trial_id, "status", status)
    study.tell(frozen.number, value, state=state)


def restored_run_config(tuner) -> Any:
    """The RunConfig of a `Tuner.restore`d tuner, to swap its callbacks (Tune's private
    `_local_tuner`: here so that every private API resume relies on is in this module)."""
    return tuner._local_tuner.get_run_config()


# --- the one entry point ---------------------------------------------------------------
def reconcile_for_resume(experiment_dir: str | Path, study_name: str, storage_url: str, *,
                         force: bool = False) -> ResumePlan:
    """Make Tune's saved state, the searcher pickle and the Optuna study agree; see the module doc.

    First the version guard (`check_versions`: ResumeError unless `force`), then the
    backup (`backup_state`), then the first change to the folder."""
    check_versions(force)
    from optuna.trial import TrialState

    exp = check_experiment_dir(experiment_dir)
    backup_state(exp)
    state_path = _newest(exp, _EXPERIMENT_STATE)
    searcher_path = _newest(exp, _SEARCHER_STATE)
    if searcher_path is None:
        raise ResumeError(f"{exp}: cannot resume, no {_SEARCHER_STATE} (expected the searcher state "
                          "Tune saves next to experiment_state-*.json)")
    exp_state, ray_trials = _read_experiment_state(state_path)
    saved = _portable_load(searcher_path, storage_url, exp)
    pickled_study = saved.get("_ot_study") if isinstance(saved, dict) else None
    study = _load_study(study_name, storage_url, getattr(pickled_study, "sampler", None))
    mapping = _map_ray_to_optuna(ray_trials, saved.get("_ot_trials", {}) if isinstance(saved, dict) else {}, study)
    states = {f._trial_id: f for f in study.get_trials(deepcopy=False)}

    plan = ResumePlan(experiment_dir=exp)
    completed: set[str] = set()
    live: set[str] = set()
    for rt in ray_trials:
        ot_id = mapping.get(rt.trial_id)
        frozen = states.get(ot_id) if ot_id is not None else None
        if frozen is None:
            raise ResumeError(f"{exp}: cannot resume, Ray trial {rt.trial_id} has no trial in the Optuna study "
                              f"{study_name!r} at {storage_url} (expected the optuna.db of this experiment)")
        study_done = frozen.state.is_finished()
        if rt.status in _UNFINISHED and study_done:
            # 1) finished after the last save: keep it finished, do not re-run it
            _set_trial_status(exp_state, rt.trial_id, "TERMINATED", _last_result(exp / rt.logdir))
            plan.closed.append(rt.trial_id)
            completed.add(rt.trial_id)
        elif rt.status in _UNFINISHED:
            # 2) continues from its checkpoint: drop rows logged after it
            plan.resumed[rt.trial_id] = rt.checkpoint_iter
            live.add(rt.trial_id)
        elif rt.status == "ERROR":
            # 3) Tune retries errored trials (resume_errored=True): let Optuna hear the retry's outcome
            if study_done:
                _reset_trial(storage_url, ot_id, "RUNNING")
            plan.reopened.append(rt.trial_id)
            plan.resumed[rt.trial_id] = rt.checkpoint_iter
            live.add(rt.trial_id)
        else:
            plan.finished.append(rt.trial_id)
            completed.add(rt.trial_id)
            if not study_done:  # Tune finished it but the study never heard: close it by search.status's rule
                _close_unheard(study, frozen, _last_result(exp / rt.logdir), rt.status,
                               saved if isinstance(saved, dict) else {})
    for tid, it in plan.resumed.items():
        rt = next(r for r in ray_trials if r.trial_id == tid)
        n = _truncate_results(exp / rt.logdir, it)
        if n:
            plan.rows_dropped[tid] = n

    # 4) study trials no saved Ray trial owns: asked after the last save -> back in the queue
    claimed = set(mapping[r.trial_id] for r in ray_trials)
    for ot_id, frozen in sorted(states.items()):
        if ot_id in claimed or frozen.state == TrialState.WAITING:
            continue
        _reset_trial(storage_url, ot_id, "WAITING")
        plan.requeued.append(frozen.number)

    # 5) Ray trial folders Tune's state does not know (their study trial was requeued).
    # A folder killed early may hold only a checkpoint (no params.json, no result.json
    # yet), while trials.csv already has its rows: the id comes from the folder name.
    known_dirs = {r.logdir for r in ray_trials}
    known_ids = {r.trial_id for r in ray_trials}
    for d in sorted(exp.iterdir()):
        if not d.is_dir() or d.name in known_dirs or d.name.startswith("."):
            continue
        trial_id = str((_last_result(d) or {}).get("trial_id") or _trial_id_in_name(d.name) or "")
        if not trial_id or trial_id in known_ids:
            continue
        plan.orphaned_trial_ids.append(trial_id)
        (exp / ORPHAN_DIR).mkdir(exist_ok=True)
        shutil.move(str(d), str(exp / ORPHAN_DIR / d.name))
        logger.info("moved %s (trial asked after the last save) to %s", d.name, ORPHAN_DIR)
    # Rows of trials Tune never saved, even where no folder was left.
    plan.orphaned_trial_ids += sorted(csv_trial_ids(exp / TRIALS_CSV) - known_ids - set(plan.orphaned_trial_ids))
    for trial_id in plan.orphaned_trial_ids:  # their per-trial files (frames, trial.json) go too
        files = exp / "trials" / trial_id
        if files.is_dir():
            (exp / ORPHAN_DIR / "trials").mkdir(parents=True, exist_ok=True)
            shutil.move(str(files), str(exp / ORPHAN_DIR / "trials" / trial_id))
    drop_trials(exp / TRIALS_CSV, set(plan.orphaned_trial_ids))

    # 6) write Tune's files last: a crash above leaves them as Tune wrote them
    fresh_study = _load_study(study_name, storage_url, study.sampler)
    if plan.requeued:
        # The saved sampler RNG is from before those trials were asked: it would draw
        # their parameters again for the next new trials (measured: trial 6 == trial 4).
        fresh_study.sampler.reseed_rng()
    _rewrite_searcher(searcher_path, {r.trial_id: mapping[r.trial_id] for r in ray_trials}, completed,
                      fresh_study, storage_url)
    _rewrite_search_gen(_newest(exp, _SEARCH_GEN_STATE), live, exp)
    _repoint_tuner_pkl(exp, storage_url)
    if plan.closed:
        _atomic_write_bytes(state_path, json.dumps(exp_state).encode())
    logger.info("resume plan for %s: %s", exp, plan)
    return plan
