"""Interrupted searches through the real CLI (issue 6, items 4 and 5).

`run_search.py` runs a tiny search in a subprocess; once some trials completed
and others are running, the driver gets SIGINT or SIGKILL. `run_search.py
--resume` (same name) must finish it: completed trials keep their rows (same
epoch_time_s: not re-run), unfinished ones continue from their own newest
checkpoints (their attempts.jsonl says from which epoch), the Optuna study
holds exactly num_samples finished trials, and trials.csv has one row per trial
per epoch. In the SIGINT case the run folder is first moved to another parent
folder and resumed there with --storage-path (a self-contained run folder).

Ray's processes are killed by process id only: the driver's process group and
any process holding files in this test's private RAY_TMPDIR (never `ray stop`).
"""
from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from cvae.families.lab4_2024.synthetic import Preset, generate
from search.processes import kill_driver_and_ray
from search.trial_files import TrialFiles

ROOT = Path(__file__).resolve().parents[2]
NUM_SAMPLES = 3
NUM_EPOCH = 8
# A trial counts as caught mid-run with at least this many epochs left: SIGINT lets Tune
# stop gracefully (about a second here), and a trial one epoch from its end finishes in it.
EPOCHS_LEFT_AT_KILL = 4
TINY = Preset(train_video_lengths=(32, 32), val_length=8, test_sequences=1, test_length=4)

pytestmark = [pytest.mark.slow]


def _space(path: Path, data_root: Path, tiny_fixed: dict) -> Path:
    fixed = {**tiny_fixed, "num_epoch": NUM_EPOCH, "partial": 1.0}
    fixed_yaml = "\n".join(f"  {k}: {v}" for k, v in fixed.items())
    path.write_text(f"""\
name: irq
metric: {{name: val_psnr, goal: maximize}}
data: {{root: {data_root}}}
trials: {{num_samples: {NUM_SAMPLES}, max_concurrent: 2, resources: {{cpu: 1, gpu: 0}}, max_failures: 1, checkpoint_every: 1}}
sampler: {{type: tpe, seed: 0, n_startup_trials: 2}}
fixed:
{fixed_yaml}
parameters:
  kl_anneal_type: {{values: [Cyclical, Monotonic, None]}}
  lr: {{distribution: log_uniform_values, min: 1.0e-4, max: 3.0e-3}}
""")
    return path


def _study_states(db: Path) -> list[tuple[int, str]]:
    if not db.exists():
        return []
    con = sqlite3.connect(db, timeout=10)
    try:
        return con.execute("SELECT number, state FROM trials ORDER BY number").fetchall()
    except sqlite3.OperationalError:
        return []
    finally:
        con.close()


def _csv_rows(run_dir: Path) -> list[list[str]]:
    with (run_dir / "trials.csv").open(newline="") as f:
        return list(csv.reader(f))




class _Cli:
    def __init__(self, tmp_path: Path) -> None:
        self.tmp = tmp_path
        self.ray_tmp = Path(tempfile.mkdtemp(prefix="rzq", dir="/tmp"))  # short: unix socket paths
        self.procs: list[subprocess.Popen] = []

    def start(self, tag: str, *args: str) -> subprocess.Popen:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CVAE_SEARCH_CRASH")}
        env.update(RAY_TMPDIR=str(self.ray_tmp), PYTHONUNBUFFERED="1")
        log = open(self.tmp / f"{tag}.log", "w")
        proc = subprocess.Popen([sys.executable, str(ROOT / "run_search.py"), "--no-report", *args], cwd=ROOT,
                                env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append(proc)
        return proc

    def log(self, tag: str) -> str:
        return (self.tmp / f"{tag}.log").read_text()[-4000:]

    def cleanup(self) -> None:
        for proc in self.procs:
            kill_driver_and_ray(proc.pid, self.ray_tmp)
        shutil.rmtree(self.ray_tmp, ignore_errors=True)


@pytest.fixture
def cli(tmp_path):
    c = _Cli(tmp_path)
    yield c
    c.cleanup()


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    return generate(tmp_path_factory.mktemp("irq") / "data", TINY, seed=0, progress=False)


def _mid_run(run_dir: Path, db: Path) -> dict[str, int]:
    """Trials the study still has RUNNING that have a checkpoint before their last epoch
    (trial id -> newest checkpoint epoch)."""
    running = {f"t{n:04d}" for n, s in _study_states(db) if s == "RUNNING"}
    caught = {}
    for tid in running:
        newest = TrialFiles(run_dir, tid).newest_checkpoint()
        if newest and 1 <= newest[0] < NUM_EPOCH:
            caught[tid] = newest[0]
    return caught


@pytest.mark.timeout(420)
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["sigint-moved", "sigkill"])
def test_killed_search_resumes_with_run_search(cli, data_root, tiny_fixed, tmp_path, sig):
    space = _space(tmp_path / "irq.yaml", data_root, tiny_fixed)
    parent = tmp_path / "runs"
    run_dir = parent / "irq"
    db = run_dir / "optuna.db"
    proc = cli.start("run", "--space", str(space), "--storage-path", str(parent))
    deadline = time.time() + 150
    while time.time() < deadline:
        states = [s for _, s in _study_states(db)]
        if states.count("COMPLETE") >= 1 and any(
                e <= NUM_EPOCH - EPOCHS_LEFT_AT_KILL for e in _mid_run(run_dir, db).values()):
            break
        assert proc.poll() is None, f"driver ended early:\n{cli.log('run')}"
        time.sleep(0.2)
    else:
        pytest.fail(f"no completed trial in 150 s:\n{cli.log('run')}")
    os.kill(proc.pid, sig)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        pass
    kill_driver_and_ray(proc.pid, cli.ray_tmp)
    interrupted = _mid_run(run_dir, db)  # what the dead driver left mid-run, by its files
    assert interrupted, "no trial was left mid-run by the kill"
    done_before = {n for n, s in _study_states(db) if s == "COMPLETE"}
    assert len(done_before) < NUM_SAMPLES, "the search ended before the kill: nothing to resume"
    header, *rows = _csv_rows(run_dir)
    completed_rows = {tuple(r) for r in rows if r[1] == "completed"}
    completed_ids = {r[0] for r in completed_rows}
    assert completed_ids, rows

    if sig == signal.SIGINT:  # move the whole run folder, resume it from its new parent
        parent = tmp_path / "moved"
        parent.mkdir()
        shutil.move(str(run_dir), str(parent / "irq"))
        run_dir, db = parent / "irq", parent / "irq" / "optuna.db"
    res = cli.start("resume", "--space", str(space), "--storage-path", str(parent), "--resume")
    try:
        res.wait(timeout=200)
    except subprocess.TimeoutExpired:
        pytest.fail(f"resume did not finish in 200 s:\n{cli.log('resume')}")
    assert res.returncode == 0, cli.log("resume")
    assert "best trial:" in cli.log("resume")

    # the study: exactly num_samples trials, none left RUNNING or WAITING
    states = _study_states(db)
    assert len(states) == NUM_SAMPLES, states
    assert all(s in ("COMPLETE", "PRUNED") for _, s in states), states
    assert done_before <= {n for n, s in states if s == "COMPLETE"}

    # trials.csv: one row per trial per epoch, every trial ran to the end
    header2, *rows2 = _csv_rows(run_dir)
    assert header2 == header
    by_trial: dict[str, list[int]] = {}
    for r in rows2:
        by_trial.setdefault(r[0], []).append(int(r[2]))
    assert len(by_trial) == NUM_SAMPLES, by_trial
    for tid, epochs in by_trial.items():
        assert epochs == list(range(1, NUM_EPOCH + 1)), (tid, epochs)
    assert {r[1] for r in rows2} == {"completed"}
    # completed trials kept their rows exactly (epoch_time_s too: they did not run again)
    assert completed_rows <= {tuple(r) for r in rows2}

    # unfinished trials continued from their own newest checkpoint (attempts.jsonl: one line per attempt)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert sum(summary["status_counts"].values()) == NUM_SAMPLES and summary["finished_at"]
    for tid in by_trial:
        assert TrialFiles(run_dir, tid).attempts()[0]["from_epoch"] == 0, tid
    for tid, epoch in interrupted.items():
        attempts = TrialFiles(run_dir, tid).attempts()
        assert [a["from_epoch"] for a in attempts] == [0, epoch], (tid, attempts)
    # nothing refers to the old folder
    if sig == signal.SIGINT:
        assert not (tmp_path / "runs" / "irq").exists()
