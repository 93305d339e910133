"""Interrupted searches resume without losing, re-running or duplicating trials (issue 6, item 4).

A toy function trainable (0.5 s per iteration, a checkpoint every iteration)
runs under OptunaSearch (define-by-run, SQLite study) + ASHA + ConcurrencyLimiter
in a driver subprocess. The driver is killed with SIGINT or SIGKILL once some
trials finished and others run, then a second driver calls
`reconcile_for_resume` and `Tuner.restore(...).fit()`. Every executed iteration
leaves a marker line, so the test sees exactly what ran before and after.
"""
from __future__ import annotations

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

from search.processes import kill_driver_and_ray

from search.resume import ResumeError, check_experiment_dir, reconcile_for_resume

REPO = Path(__file__).resolve().parents[2]
NUM_SAMPLES = 6
MAX_ITER = 5

DRIVER = r'''
import json, os, sys, tempfile, time
from pathlib import Path
sys.path.insert(0, os.environ["REPO"])
import optuna, ray
from ray import tune
from ray.tune.schedulers import ASHAScheduler
from ray.tune.search import ConcurrencyLimiter
from ray.tune.search.optuna import OptunaSearch

MAX_ITER = int(os.environ["MAX_ITER"])

def space(trial):
    kind = trial.suggest_categorical("kind", ["a", "b"])
    trial.suggest_float("x", 0.0, 1.0)
    if kind == "a":
        trial.suggest_int("k", 1, 3)

def toy(config, marker_dir, phase):
    start = 0
    ckpt = tune.get_checkpoint()
    if ckpt:
        with ckpt.as_directory() as d:
            start = json.loads(Path(d, "state.json").read_text())["it"]
    tid = tune.get_context().get_trial_id()
    for it in range(start + 1, MAX_ITER + 1):
        time.sleep(0.5)
        with open(Path(marker_dir, tid + ".log"), "a") as f:
            f.write(json.dumps({"it": it, "start": start, "phase": phase}) + "\n")
        d = Path(tempfile.mkdtemp(dir=marker_dir, prefix="ck"))
        (d / "state.json").write_text(json.dumps({"it": it}))
        tune.report({"score": config["x"] * it + 0.1 * config.get("k", 0)},
                    checkpoint=tune.Checkpoint.from_directory(str(d)))

def main():
    mode, parent, name, markers, raytmp = sys.argv[1:6]
    exp = Path(parent, name)
    url = f"sqlite:///{exp / 'optuna.db'}"
    trainable = tune.with_parameters(toy, marker_dir=markers, phase=mode)
    if mode == "resume":
        from search.resume import reconcile_for_resume
        plan = reconcile_for_resume(exp, name, url)
        Path(markers, "plan.json").write_text(json.dumps(
            {"closed": plan.closed, "resumed": plan.resumed, "requeued": plan.requeued,
             "orphaned": plan.orphaned_trial_ids}))
    ray.init(num_cpus=2, include_dashboard=False, _temp_dir=raytmp, log_to_driver=False)
    if mode == "run":
        exp.mkdir(parents=True)
        searcher = OptunaSearch(space=space, metric="score", mode="max", study_name=name,
                                storage=optuna.storages.RDBStorage(url),
                                sampler=optuna.samplers.TPESampler(seed=0))
        tuner = tune.Tuner(trainable, tune_config=tune.TuneConfig(
            search_alg=ConcurrencyLimiter(searcher, max_concurrent=2),
            scheduler=ASHAScheduler(time_attr="training_iteration", max_t=MAX_ITER,
                                    grace_period=2, reduction_factor=2),
            num_samples=int(os.environ["NUM_SAMPLES"]), metric="score", mode="max"),
            run_config=tune.RunConfig(name=name, storage_path=parent,
                                      checkpoint_config=tune.CheckpointConfig(num_to_keep=2)))
    else:
        tuner = tune.Tuner.restore(str(exp), trainable=trainable,
                                   resume_unfinished=True, resume_errored=True)
    tuner.fit()
    print("FIT RETURNED", flush=True)

main()
'''


# --- helpers -------------------------------------------------------------------------
def _study_states(db: Path) -> list[tuple[int, str]]:
    if not db.exists():
        return []
    con = sqlite3.connect(db, timeout=10)
    try:
        return con.execute("SELECT number, state FROM trials ORDER BY number").fetchall()
    except sqlite3.OperationalError:  # tables not created yet
        return []
    finally:
        con.close()


def _markers(markers: Path) -> dict[str, list[dict]]:
    return {p.stem: [json.loads(line) for line in p.read_text().splitlines() if line.strip()]
            for p in markers.glob("*.log")}




class _Search:
    def __init__(self, tmp_path: Path) -> None:
        self.parent = tmp_path / "runs"
        self.name = "toy"
        self.exp = self.parent / self.name
        self.markers = tmp_path / "markers"
        self.markers.mkdir()
        self.script = tmp_path / "driver.py"
        self.script.write_text(DRIVER)
        # Short private Ray temp dir (unix socket paths are limited to ~107 chars).
        self.ray_tmp = Path(tempfile.mkdtemp(prefix="rzr", dir="/tmp"))
        self.procs: list[subprocess.Popen] = []

    def start(self, mode: str) -> subprocess.Popen:
        env = {**os.environ, "REPO": str(REPO), "MAX_ITER": str(MAX_ITER), "NUM_SAMPLES": str(NUM_SAMPLES)}
        log = open(self.markers.parent / f"{mode}.log", "w")
        proc = subprocess.Popen([sys.executable, str(self.script), mode, str(self.parent), self.name,
                                 str(self.markers), str(self.ray_tmp)],
                                env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append(proc)
        return proc

    def log(self, mode: str) -> str:
        return (self.markers.parent / f"{mode}.log").read_text()[-3000:]

    def cleanup(self) -> None:
        for proc in self.procs:
            kill_driver_and_ray(proc.pid, self.ray_tmp)
        shutil.rmtree(self.ray_tmp, ignore_errors=True)


@pytest.fixture
def search(tmp_path):
    s = _Search(tmp_path)
    yield s
    s.cleanup()


def _interrupt_then_resume(search: _Search, sig: signal.Signals) -> None:
    db = search.exp / "optuna.db"
    proc = search.start("run")
    # 1) wait until some trials finished and others run
    deadline = time.time() + 120
    while time.time() < deadline:
        states = [s for _, s in _study_states(db)]
        if states.count("RUNNING") >= 1 and sum(s in ("COMPLETE", "PRUNED") for s in states) >= 2:
            break
        assert proc.poll() is None, f"driver ended early:\n{search.log('run')}"
        time.sleep(0.3)
    else:
        pytest.fail(f"no progress in 120 s:\n{search.log('run')}")
    os.kill(proc.pid, sig)
    proc.wait(timeout=90)
    kill_driver_and_ray(proc.pid, search.ray_tmp)
    finished_before = {n for n, s in _study_states(db) if s in ("COMPLETE", "PRUNED", "FAIL")}
    before = _markers(search.markers)

    # 2) resume in a fresh driver
    res = search.start("resume")
    try:
        res.wait(timeout=150)
    except subprocess.TimeoutExpired:
        pytest.fail(f"resume did not finish in 150 s:\n{search.log('resume')}")
    assert res.returncode == 0, search.log("resume")
    assert "FIT RETURNED" in search.log("resume")
    plan = json.loads((search.markers / "plan.json").read_text())
    after = _markers(search.markers)

    # 3) the Optuna study: exactly num_samples trials, all finished, no duplicated configuration
    import optuna

    study = optuna.load_study(study_name=search.name, storage=f"sqlite:///{db}")
    trials = study.get_trials(deepcopy=False)
    assert len(trials) == NUM_SAMPLES, [(t.number, t.state) for t in trials]
    assert all(t.state.is_finished() for t in trials), [(t.number, t.state) for t in trials]
    params = [tuple(sorted(t.params.items())) for t in trials]
    assert len(set(params)) == NUM_SAMPLES, params
    assert {t.number for t in trials} >= finished_before

    # 4) Ray's experiment: num_samples trials, each iteration logged exactly once, 1..n
    state_file = sorted(search.exp.glob("experiment_state-*.json"))[-1]
    ray_trials = [json.loads(t) for t, _ in json.loads(state_file.read_text())["trial_data"]]
    assert len(ray_trials) == NUM_SAMPLES
    for t in ray_trials:
        assert t["status"] == "TERMINATED", (t["trial_id"], t["status"])
        lines = (search.exp / t["relative_logdir"] / "result.json").read_text().splitlines()
        iters = [json.loads(line)["training_iteration"] for line in lines]
        assert iters == list(range(1, len(iters) + 1)), (t["trial_id"], iters)
        ran = [m["it"] for m in after.get(t["trial_id"], [])]
        if t["trial_id"] not in plan["closed"]:  # a closed trial may have lost its unflushed last line
            assert len(iters) == max(ran), (t["trial_id"], iters, ran)

    # 5) trials that had finished are not re-run; unfinished ones continue from their checkpoint
    finished_ids = {tid for tid, ms in before.items()
                    if tid not in plan["resumed"] and tid not in plan["orphaned"]}
    for tid in finished_ids:
        assert [m for m in after[tid] if m["phase"] == "resume"] == [], tid
    for tid, ckpt_iter in plan["resumed"].items():
        resumed = [m for m in after.get(tid, []) if m["phase"] == "resume"]
        if resumed:  # ASHA may stop it right at its checkpoint's rung
            assert resumed[0]["it"] == ckpt_iter + 1 and resumed[0]["start"] == ckpt_iter, (tid, resumed)
            # every iteration ran once since its checkpoint
            its = [m["it"] for m in resumed]
            assert its == list(range(ckpt_iter + 1, ckpt_iter + 1 + len(its)))
    # trials asked after the last save were moved aside, never counted as trials
    for tid in plan["orphaned"]:
        assert tid not in {t["trial_id"] for t in ray_trials}


@pytest.mark.slow
@pytest.mark.timeout(400)
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["sigint", "sigkill"])
def test_interrupted_search_resumes(search, sig):
    _interrupt_then_resume(search, sig)


def test_resume_missing_folder_is_clear_error(tmp_path):
    with pytest.raises(ResumeError, match=r"does not exist"):
        check_experiment_dir(tmp_path / "nope")
    with pytest.raises(ResumeError, match=r"does not exist"):
        reconcile_for_resume(tmp_path / "nope", "nope", f"sqlite:///{tmp_path / 'x.db'}")


def test_resume_non_experiment_folder_is_clear_error(tmp_path):
    (tmp_path / "some.txt").write_text("x")
    with pytest.raises(ResumeError, match=r"not a search experiment folder: no tuner.pkl") as err:
        check_experiment_dir(tmp_path)
    assert str(tmp_path) in str(err.value)
    with pytest.raises(ResumeError, match=r"this is a file"):
        check_experiment_dir(tmp_path / "some.txt")
