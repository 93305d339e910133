"""Resume refuses rather than corrupts (issue 13 item 3): the ray/optuna version guard,
--force-resume, and the .resume-backup/ copy made before any change. No Ray start."""
from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

import pytest

import run_search
import search.resume as resume
from search.resume import BACKUP_DIR, TESTED_VERSIONS, ResumeError, backup_state, check_versions


def _snapshot(folder: Path) -> dict[str, tuple[str, int]]:
    return {str(p.relative_to(folder)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _fake_run_folder(runs: Path, name: str = "guard") -> Path:
    run_dir = runs / name
    run_dir.mkdir(parents=True)
    (run_dir / "tuner.pkl").write_bytes(b"not really a pickle")
    (run_dir / "experiment_state-2026-01-01_00-00-00.json").write_text('{"trial_data": []}')
    (run_dir / "searcher-state-2026-01-01_00-00-00.pkl").write_bytes(b"searcher")
    (run_dir / "search_gen_state-2026-01-01_00-00-00.json").write_bytes(b"gen")
    (run_dir / "trials.csv").write_text("trial_id,status,epoch\n")
    (run_dir / "summary.json").write_text("{}")
    con = sqlite3.connect(run_dir / "optuna.db")
    con.execute("CREATE TABLE trials (trial_id INTEGER, state TEXT)")
    con.execute("INSERT INTO trials VALUES (0, 'RUNNING')")
    con.commit()
    con.close()
    return run_dir


def _space(tmp_path: Path, tiny_fixed: dict) -> Path:
    fixed = "\n".join(f"  {k}: {v}" for k, v in tiny_fixed.items())
    path = tmp_path / "guard.yaml"
    path.write_text(f"""\
name: guard
metric: {{name: val_psnr, goal: maximize}}
data: {{root: {tmp_path / 'data'}, synthetic: small}}
trials: {{num_samples: 2, max_concurrent: 1, resources: {{cpu: 1, gpu: 0}}}}
fixed:
{fixed}
parameters:
  lr: {{distribution: log_uniform_values, min: 1.0e-4, max: 1.0e-2}}
""")
    return path


def test_versions_resume_was_tested_with_pass_and_others_are_refused() -> None:
    assert check_versions(installed=dict(TESTED_VERSIONS)) is None
    assert check_versions() is None  # this checkout's venv is the tested pair
    odd = {**TESTED_VERSIONS, "ray": "2.59.0"}
    with pytest.raises(ResumeError) as err:
        check_versions(installed=odd)
    message = str(err.value)
    assert "ray 2.59.0 (tested: 2.58.0)" in message and "--force-resume" in message and "Nothing was changed" in message
    warning = check_versions(force=True, installed=odd)
    assert warning.startswith("warning:") and "ray 2.59.0" in warning and BACKUP_DIR in warning
    with pytest.raises(ResumeError, match="optuna 4.9.0"):
        check_versions(installed={**TESTED_VERSIONS, "optuna": "4.9.0"})


def test_resume_with_a_faked_version_exits_2_and_changes_nothing(tmp_path, tiny_fixed, monkeypatch, capsys) -> None:
    run_dir = _fake_run_folder(tmp_path / "runs")
    before = _snapshot(run_dir)
    monkeypatch.setattr(resume, "installed_versions", lambda: {**TESTED_VERSIONS, "optuna": "5.1.0.dev0"})
    code = run_search.main(["--space", str(_space(tmp_path, tiny_fixed)), "--storage-path", str(tmp_path / "runs"),
                            "--resume", "--no-report"])
    assert code == 2
    err = capsys.readouterr().err
    assert "cannot resume safely with optuna 5.1.0.dev0 (tested: 5.0.0)" in err and "--force-resume" in err
    assert _snapshot(run_dir) == before  # not a byte, not a timestamp
    assert not (run_dir / BACKUP_DIR).exists()
    # reconcile_for_resume (what the runner calls) refuses the same way, before its backup
    with pytest.raises(ResumeError):
        resume.reconcile_for_resume(run_dir, study_name="guard", storage_url=f"sqlite:///{run_dir / 'optuna.db'}")
    assert _snapshot(run_dir) == before


def test_force_resume_warns_and_goes_on_to_the_folder_checks(tmp_path, tiny_fixed, monkeypatch, capsys) -> None:
    from search.runner import make_plan

    run_dir = _fake_run_folder(tmp_path / "runs")
    monkeypatch.setattr(resume, "installed_versions", lambda: {**TESTED_VERSIONS, "ray": "3.0.0"})
    plan = make_plan(_space(tmp_path, tiny_fixed), storage_path=tmp_path / "runs", force_resume=True)
    assert plan.resume and plan.force_resume  # --force-resume implies --resume
    assert "warning: resuming with ray 3.0.0" in capsys.readouterr().err
    assert run_search.parse_args(["--space", "s.yaml", "--force-resume"]).force_resume
    assert not (run_dir / BACKUP_DIR).exists()  # the plan changes nothing; the backup comes with the first change


def test_backup_copies_the_state_files_and_keeps_the_last_one(tmp_path) -> None:
    run_dir = _fake_run_folder(tmp_path / "runs")
    first = backup_state(run_dir)
    assert first == run_dir / BACKUP_DIR
    names = {p.name for p in first.iterdir()}
    assert names == {"tuner.pkl", "experiment_state-2026-01-01_00-00-00.json",
                     "searcher-state-2026-01-01_00-00-00.pkl", "search_gen_state-2026-01-01_00-00-00.json",
                     "trials.csv", "summary.json", "optuna.db", "backup.json"}
    con = sqlite3.connect(first / "optuna.db")
    assert con.execute("SELECT state FROM trials").fetchall() == [("RUNNING",)]
    con.close()
    assert json.loads((first / "backup.json").read_text())["versions"]["ray"]
    # a second resume replaces it with the folder as it is then
    (run_dir / "trials.csv").write_text("trial_id,status,epoch\nt,running,1\n")
    backup_state(run_dir)
    assert (run_dir / BACKUP_DIR / "trials.csv").read_text().endswith("t,running,1\n")
    assert not (run_dir / f"{BACKUP_DIR}.new").exists()


# A child that opens optuna.db, starts a transaction big enough to spill into the file, says
# so and waits to be SIGKILLed: what a driver killed during an Optuna write leaves on disk.
_WRITER_KILLED_MID_TRANSACTION = """
import sqlite3, sys, time
con = sqlite3.connect(sys.argv[1], isolation_level=None)
con.execute("PRAGMA cache_size=1")  # spill dirty pages into the db file before the commit
con.execute("BEGIN")
con.executemany("INSERT INTO trials (state) VALUES (?)", [("x" * 500,)] * 2000)
print("in transaction", flush=True)
time.sleep(600)
"""


def test_backup_rolls_back_the_hot_journal_a_sigkilled_writer_left(tmp_path) -> None:
    # CI once failed here: a resume right after a SIGKILL hit "attempt to write a readonly
    # database", because the backup opened optuna.db read-only and SQLite refuses to roll a hot
    # journal back through a read-only connection.
    import subprocess
    import sys

    run_dir = _fake_run_folder(tmp_path / "runs")
    writer = subprocess.Popen([sys.executable, "-c", _WRITER_KILLED_MID_TRANSACTION, str(run_dir / "optuna.db")],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline().strip() == "in transaction"
    finally:
        writer.kill()
        writer.wait(timeout=30)
    assert (run_dir / "optuna.db-journal").stat().st_size > 0  # the hot journal is really there
    with pytest.raises(sqlite3.OperationalError, match="readonly"):  # what the old read-only open met
        sqlite3.connect(f"file:{run_dir / 'optuna.db'}?mode=ro", uri=True).execute("SELECT 1 FROM trials").fetchall()

    backup = backup_state(run_dir)
    for db in (backup / "optuna.db", run_dir / "optuna.db"):  # only the unfinished transaction is gone
        con = sqlite3.connect(db)
        assert con.execute("SELECT state FROM trials").fetchall() == [("RUNNING",)], db
        con.close()
    assert not (run_dir / "optuna.db-journal").exists()


def test_a_search_killed_during_start_up_starts_afresh_on_resume(tmp_path, tiny_fixed, capsys) -> None:
    # What a driver killed before Tune's first save leaves: space.yaml, an optuna.db, ray.log.
    from search.resume import nothing_saved
    from search.runner import RunError, make_plan

    space = _space(tmp_path, tiny_fixed)
    run_dir = tmp_path / "runs" / "guard"
    run_dir.mkdir(parents=True)
    (run_dir / "space.yaml").write_text(space.read_text())
    (run_dir / "optuna.db").write_bytes(b"")
    (run_dir / "ray.log").write_text("starting\n")
    assert nothing_saved(run_dir)
    plan = make_plan(space, storage_path=tmp_path / "runs", resume=True)
    assert not plan.resume and "starting the search afresh" in capsys.readouterr().out
    assert make_plan(space, storage_path=tmp_path / "runs").run_dir == run_dir  # a plain start is allowed too
    assert sorted(p.name for p in run_dir.iterdir()) == ["optuna.db", "ray.log", "space.yaml"]  # the plan moved nothing
    resume.set_aside_unsaved(run_dir, keep=("ray.log",))
    assert sorted(p.name for p in run_dir.iterdir()) == [BACKUP_DIR, "ray.log"]
    assert sorted(p.name for p in (run_dir / BACKUP_DIR).iterdir()) == ["optuna.db", "space.yaml"]
    # anything else is not taken for such a folder: a folder someone made, or one Tune saved into
    (run_dir / "notes.txt").write_text("mine")
    (run_dir / "space.yaml").write_text(space.read_text())
    assert not nothing_saved(run_dir)
    with pytest.raises(RunError, match="already holds a search"):
        make_plan(space, storage_path=tmp_path / "runs")
    (run_dir / "notes.txt").unlink()
    (run_dir / "tuner.pkl").write_bytes(b"x")
    assert not nothing_saved(run_dir)
    # killed earlier still: only the console's ray.log
    only_log = tmp_path / "runs" / "early"
    only_log.mkdir()
    (only_log / "ray.log").write_text("")
    assert nothing_saved(only_log)
    assert not nothing_saved(tmp_path / "runs" / "absent")  # a mistyped name stays an error


def test_resume_while_the_search_still_runs_exits_2_and_changes_nothing(tmp_path, tiny_fixed, capsys,
                                                                       folder_holder) -> None:
    # A --resume typed in a second terminal while the first search runs: refused before Ray
    # starts, before the backup, reconciliation or any write to the folder.
    run_dir = _fake_run_folder(tmp_path / "runs")
    holder = folder_holder(run_dir)
    before = _snapshot(run_dir)
    code = run_search.main(["--space", str(_space(tmp_path, tiny_fixed)), "--storage-path", str(tmp_path / "runs"),
                            "--resume", "--no-report"])
    assert code == 2
    err = capsys.readouterr().err
    assert "another search is running in this folder" in err and f"pid {holder.pid}" in err, err
    assert _snapshot(run_dir) == before
    assert not (run_dir / BACKUP_DIR).exists()
