"""`--resume` on the record (search/resume.py): which folders resume, start afresh or are
refused; the backup made first; interrupted trials given back what their files hold; the
views rebuilt from the record; a journal-file storage killed and resumed for real."""
from __future__ import annotations

import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

import run_search
from search.record import StudyRecord, default_storage_url, trial_key
from search.resume import (
    AFRESH,
    BACKUP_DIR,
    RESUME,
    ResumeError,
    backfill_interrupted,
    backup_state,
    resume_mode,
    set_aside_unsaved,
)
from search.trial_files import TrialFiles

ROOT = Path(__file__).resolve().parents[2]
optuna.logging.set_verbosity(optuna.logging.WARNING)


def _snapshot(folder: Path) -> dict[str, tuple[str, int]]:
    return {str(p.relative_to(folder)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _record(run_dir: Path, name: str = "guard") -> StudyRecord:
    run_dir.mkdir(parents=True, exist_ok=True)
    return StudyRecord(default_storage_url(run_dir), name, mode="max", sampler=optuna.samplers.RandomSampler(0))


def _asked(record: StudyRecord, lr: float = 1e-3) -> int:
    trial = record.ask()
    trial.suggest_float("lr", 1e-4, 1e-2, log=True)
    record.set_attr(trial.number, "trial_id", trial_key(trial.number))
    record.set_attr(trial.number, "config", {"lr": lr})
    return trial.number


def _space(tmp_path: Path, tiny_fixed: dict, name: str = "guard", data: Path | None = None, samples: int = 2) -> Path:
    fixed = "\n".join(f"  {k}: {v}" for k, v in tiny_fixed.items())
    path = tmp_path / f"{name}.yaml"
    path.write_text(f"""\
name: {name}
metric: {{name: val_psnr, goal: maximize}}
data: {{root: {data or tmp_path / 'data'}, synthetic: small}}
trials: {{num_samples: {samples}, max_concurrent: 2, resources: {{cpu: 1, gpu: 0}}, checkpoint_every: 1}}
fixed:
{fixed}
parameters:
  lr: {{distribution: log_uniform_values, min: 1.0e-4, max: 3.0e-3}}
""")
    return path


def test_which_folders_resume_start_afresh_or_are_refused(tmp_path) -> None:
    url = default_storage_url(tmp_path / "runs" / "guard")
    with pytest.raises(ResumeError, match="does not exist"):
        resume_mode(tmp_path / "runs" / "guard", url, "guard")
    run_dir = tmp_path / "runs" / "guard"
    run_dir.mkdir(parents=True)
    (run_dir / "notes.txt").write_text("mine")
    with pytest.raises(ResumeError, match="not a search folder") as err:
        resume_mode(run_dir, url, "guard")
    assert str(run_dir) in str(err.value)
    (run_dir / "notes.txt").unlink()
    # killed during start-up: space.yaml, ray.log, a study with no trial yet
    (run_dir / "space.yaml").write_text("name: guard\n")
    (run_dir / "ray.log").write_text("starting\n")
    record = _record(run_dir)
    assert resume_mode(run_dir, url, "guard") == AFRESH
    _asked(record)  # one trial asked: a record, which always resumes
    assert resume_mode(run_dir, url, "guard") == RESUME


def test_backup_copies_the_record_and_views_and_keeps_the_last_one(tmp_path) -> None:
    run_dir = tmp_path / "runs" / "guard"
    record = _record(run_dir)
    _asked(record)
    (run_dir / "trials.csv").write_text("trial_id,status,epoch\n")
    (run_dir / "summary.json").write_text("{}")
    first = backup_state(run_dir, record.storage_url)
    assert {p.name for p in first.iterdir()} == {"trials.csv", "summary.json", "optuna.db", "backup.json"}
    copy = optuna.load_study(study_name="guard", storage=f"sqlite:///{first / 'optuna.db'}")
    assert [t.state for t in copy.get_trials()] == [TrialState.RUNNING]
    assert json.loads((first / "backup.json").read_text())["record"] == "optuna.db"
    (run_dir / "trials.csv").write_text("trial_id,status,epoch\nt,running,1\n")
    backup_state(run_dir, record.storage_url)  # a second resume replaces it
    assert (run_dir / BACKUP_DIR / "trials.csv").read_text().endswith("t,running,1\n")
    assert not (run_dir / f"{BACKUP_DIR}.new").exists()
    # a journal-file record is copied as it is
    journal = tmp_path / "shared" / "guard.log"
    StudyRecord(f"journal://{journal}", "guard", mode="max")
    backup = backup_state(run_dir, f"journal://{journal}")
    assert (backup / "guard.log").read_bytes() == journal.read_bytes()


# A child that opens optuna.db, starts a transaction big enough to spill into the file, says
# so and waits to be SIGKILLed: what a driver killed during an Optuna write leaves on disk.
_WRITER_KILLED_MID_TRANSACTION = """
import sqlite3, sys, time
con = sqlite3.connect(sys.argv[1], isolation_level=None)
con.execute("PRAGMA cache_size=1")  # spill dirty pages into the db file before the commit
con.execute("BEGIN")
con.executemany("INSERT INTO trial_user_attributes (trial_id, key, value_json) VALUES (?, ?, ?)",
                [(1, f"k{i}", "x" * 500) for i in range(2000)])
print("in transaction", flush=True)
time.sleep(600)
"""


def test_backup_rolls_back_the_hot_journal_a_sigkilled_writer_left(tmp_path) -> None:
    # CI once failed here: a resume right after a SIGKILL hit "attempt to write a readonly
    # database", because the backup opened optuna.db read-only and SQLite refuses to roll a hot
    # journal back through a read-only connection.
    run_dir = tmp_path / "runs" / "guard"
    record = _record(run_dir)
    _asked(record)
    db = run_dir / "optuna.db"
    writer = subprocess.Popen([sys.executable, "-c", _WRITER_KILLED_MID_TRANSACTION, str(db)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline().strip() == "in transaction"
    finally:
        writer.kill()
        writer.wait(timeout=30)
    assert (run_dir / "optuna.db-journal").stat().st_size > 0  # the hot journal is really there
    with pytest.raises(sqlite3.OperationalError, match="readonly"):  # what a read-only open meets
        sqlite3.connect(f"file:{db}?mode=ro", uri=True).execute("SELECT 1 FROM trials").fetchall()
    backup = backup_state(run_dir, record.storage_url)
    for path in (backup / "optuna.db", db):  # only the unfinished transaction is gone
        study = optuna.load_study(study_name="guard", storage=f"sqlite:///{path}")
        (trial,) = study.get_trials()
        assert set(trial.user_attrs) == {"trial_id", "config"}, path
    assert not (run_dir / "optuna.db-journal").exists()


def test_a_search_killed_during_start_up_starts_afresh_on_resume(tmp_path, tiny_fixed, capsys) -> None:
    from search.runner import RunError, make_plan

    space = _space(tmp_path, tiny_fixed)
    run_dir = tmp_path / "runs" / "guard"
    run_dir.mkdir(parents=True)
    (run_dir / "space.yaml").write_text(space.read_text())
    (run_dir / "ray.log").write_text("starting\n")
    _record(run_dir)  # the study exists, with no trial
    plan = make_plan(space, storage_path=tmp_path / "runs", resume=True)
    assert not plan.resume and "starting the search afresh" in capsys.readouterr().out
    assert make_plan(space, storage_path=tmp_path / "runs").run_dir == run_dir  # a plain start is allowed too
    assert sorted(p.name for p in run_dir.iterdir()) == ["optuna.db", "ray.log", "space.yaml"]  # nothing moved
    set_aside_unsaved(run_dir, keep=("ray.log",))
    assert sorted(p.name for p in run_dir.iterdir()) == [BACKUP_DIR, "ray.log"]
    assert sorted(p.name for p in (run_dir / BACKUP_DIR).iterdir()) == ["optuna.db", "space.yaml"]
    # a folder holding something else, or a recorded trial, is never started over
    (run_dir / "notes.txt").write_text("mine")
    with pytest.raises(RunError, match="already holds a search"):
        make_plan(space, storage_path=tmp_path / "runs")
    (run_dir / "notes.txt").unlink()
    _asked(_record(run_dir))
    with pytest.raises(RunError, match="already holds a search"):
        make_plan(space, storage_path=tmp_path / "runs")
    assert make_plan(space, storage_path=tmp_path / "runs", resume=True).resume


def test_resume_while_the_search_still_runs_exits_2_and_changes_nothing(tmp_path, tiny_fixed, capsys,
                                                                       folder_holder) -> None:
    # A --resume typed in a second terminal while the first search runs: refused before Ray
    # starts, before the backup or any write to the folder.
    run_dir = tmp_path / "runs" / "guard"
    _asked(_record(run_dir))
    (run_dir / "space.yaml").write_text("name: guard\n")
    holder = folder_holder(run_dir)
    before = _snapshot(run_dir)
    code = run_search.main(["--space", str(_space(tmp_path, tiny_fixed)), "--storage-path", str(tmp_path / "runs"),
                            "--resume", "--no-report"])
    assert code == 2
    err = capsys.readouterr().err
    assert "another search is running in this folder" in err and f"pid {holder.pid}" in err, err
    assert _snapshot(run_dir) == before
    assert not (run_dir / BACKUP_DIR).exists()


def test_a_bad_storage_url_is_a_clear_error(tmp_path, tiny_fixed, capsys) -> None:
    code = run_search.main(["--space", str(_space(tmp_path, tiny_fixed)), "--storage-path", str(tmp_path / "runs"),
                            "--storage", "nosuchdb://x", "--dry-run"])
    assert code == 2
    err = capsys.readouterr().err
    assert "--storage 'nosuchdb://x'" in err and "journal:///" in err, err


def _rows(files: TrialFiles, values: dict[int, float], diverged_at: int | None = None) -> None:
    for epoch, value in values.items():
        files.append_metrics({"epoch": epoch, "val_psnr": value, "diverged": epoch == diverged_at})


def test_interrupted_trials_get_what_their_files_hold_before_they_continue(tmp_path) -> None:
    run_dir = tmp_path / "runs" / "guard"
    record = _record(run_dir)
    mid, done, fresh = (_asked(record) for _ in range(3))
    record.report(mid, 1, 20.0)  # the driver heard epoch 1 only
    files = TrialFiles(run_dir, trial_key(mid))
    _rows(files, {1: 20.0, 2: 21.0, 3: 22.0})  # epoch 3 ran after the newest checkpoint (2)
    for epoch in (1, 2):
        files.save_checkpoint(epoch, lambda folder: (folder / "trainer.pt").write_bytes(b"x"))
    finished = TrialFiles(run_dir, trial_key(done))
    _rows(finished, {1: 10.0, 2: 11.0, 3: 12.0, 4: 13.0})
    finished.save_checkpoint(4, lambda folder: (folder / "trainer.pt").write_bytes(b"x"))
    starts, ended = backfill_interrupted(record, run_dir, "val_psnr", num_epoch=4)
    assert starts == {trial_key(mid): 2, trial_key(fresh): 0} and ended == {trial_key(done): "completed"}
    assert record.trial(mid).intermediate_values == {1: 20.0, 2: 21.0}  # not epoch 3: it runs again
    ended = record.trial(done)
    assert ended.state is TrialState.COMPLETE and ended.value == 13.0 and ended.user_attrs["status"] == "completed"
    # the attempt then cuts metrics.jsonl back to its checkpoint
    assert files.start_attempt("ray-2") == run_dir / "trials" / trial_key(mid) / "checkpoints" / "epoch-0002"
    assert [json.loads(line)["epoch"] for line in files.metrics_path.read_text().splitlines()] == [1, 2]
    assert files.attempts()[-1]["from_epoch"] == 2


def test_a_trial_asked_but_never_handed_out_is_abandoned_and_replaced(tmp_path) -> None:
    from search.searcher import StudyDesign, StudySearcher

    run_dir = tmp_path / "runs" / "guard"
    record = _record(run_dir)
    half = record.ask()  # the driver died between the ask and writing the trial's config
    half.suggest_float("lr", 1e-4, 1e-2, log=True)
    starts, ended = backfill_interrupted(record, run_dir, "val_psnr", num_epoch=4)
    assert starts == {} and ended[trial_key(half.number)].startswith("abandoned")
    frozen = record.trial(half.number)
    assert frozen.state is TrialState.FAIL and frozen.user_attrs["abandoned"] is True

    def space(trial):
        return {"lr": trial.suggest_float("lr", 1e-4, 1e-2, log=True)}

    searcher = StudySearcher(space, record, metric="val_psnr", mode="max", max_t=4,
                             design=StudyDesign(num_search=2))
    configs = [searcher.suggest(f"ray-{i}") for i in range(3)]
    assert [c["study_trial"] for c in configs[:2]] == ["t0001", "t0002"]  # two real trials besides it
    assert configs[2] == "FINISHED"


def test_the_views_are_rebuilt_from_the_record_byte_for_byte(tmp_path) -> None:
    from search.results import SearchRecorder

    run_dir = tmp_path / "runs" / "guard"
    record = _record(run_dir)
    stopped, running = _asked(record, 1e-3), _asked(record, 2e-3)
    for epoch in (1, 2):
        record.report(stopped, epoch, 20.0 + epoch)
    record.finish(stopped, "stopped", epoch=2)
    # the worker ran epoch 3 before the STOP reached it: not part of the trial
    _rows(TrialFiles(run_dir, trial_key(stopped)), {1: 21.0, 2: 22.0, 3: 23.0})
    _rows(TrialFiles(run_dir, trial_key(running)), {1: 19.0})

    def rebuilt() -> bytes:
        recorder = SearchRecorder(run_dir, name="guard", param_names=["lr"], metric="val_psnr", mode="max",
                                  num_epoch=4, num_samples=2, fixed_config={"seed": 1}, baseline_psnr=None)
        recorder.load_record(record.trials())
        recorder.write()
        return (run_dir / "trials.csv").read_bytes()

    first = rebuilt()
    lines = first.decode().splitlines()
    assert [line.split(",")[:3] for line in lines[1:]] == [
        ["t0000", "stopped", "1"], ["t0000", "stopped", "2"], ["t0001", "running", "1"]]
    (run_dir / "trials.csv").unlink()
    (run_dir / "summary.json").unlink()
    assert rebuilt() == first
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status_counts"]["stopped"] == 1 and summary["status_counts"]["running"] == 1


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_journal_file_record_is_killed_and_resumed(tmp_path, tiny_data, tiny_fixed) -> None:
    """--storage journal:///...: the record lives outside the run folder (a cluster's shared disk)."""
    import tempfile

    from search.processes import kill_processes_using

    space = _space(tmp_path, {**tiny_fixed, "num_epoch": 3}, name="journal", data=tiny_data, samples=4)
    journal = tmp_path / "shared" / "journal.log"
    ray_tmp = Path(tempfile.mkdtemp(prefix="rjo", dir="/tmp"))
    env = {**os.environ, "RAY_TMPDIR": str(ray_tmp), "PYTHONUNBUFFERED": "1"}
    args = [sys.executable, str(ROOT / "run_search.py"), "--space", str(space), "--storage-path",
            str(tmp_path / "runs"), "--storage", f"journal://{journal}", "--no-report"]
    run_dir = tmp_path / "runs" / "journal"
    try:
        proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=(tmp_path / "run1.log").open("w"),
                                stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.time() + 300
        while not ((run_dir / "trials.csv").is_file() and len((run_dir / "trials.csv").read_text().splitlines()) >= 3):
            assert proc.poll() is None and time.time() < deadline, (tmp_path / "run1.log").read_text()[-3000:]
            time.sleep(0.1)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
        kill_processes_using(ray_tmp)
        done = subprocess.run([*args, "--resume"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=500)
        assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
        assert "resume: continuing" in done.stdout, done.stdout[-3000:]
    finally:
        kill_processes_using(ray_tmp)
    study = optuna.load_study(study_name="journal", storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(journal))))
    assert len(study.trials) == 4 and all(t.state.is_finished() for t in study.trials)
    assert not (run_dir / "optuna.db").exists()  # the record is the journal, nowhere else
    assert (run_dir / BACKUP_DIR / "journal.log").is_file()
