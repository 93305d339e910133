"""Issue 11 with a real Ray search at tiny dims, through run_search.py.

1. A conditional scientific pair (type x cycle: 4 strata) with 8 search trials
   gets 2 per stratum; no stopped trial was stopped before its beta first
   reached its maximum; each stratum's best is re-run with distinct seeds as
   `phase: reeval` rows; summary.json's comparison covers every stratum.
2. A 3-value scientific space with 9 trials gets 3/3/3.
3. sampler grid runs exactly the product of the values.
4. A search SIGKILLed during its re-evaluation phase, then resumed, re-runs each
   stratum's best exactly once per seed (no duplicates, none lost).
5. A search SIGKILLed right after ASHA stopped a trial (or one completed), then
   resumed, leaves that trial unchanged in the study and in trials.csv.
"""
from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from cvae.core.schedules import kl_beta
from runfolder.contract import rows_by_trial, study_trials
from search.processes import kill_driver_and_ray, kill_processes_using

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.slow]


def _space(path: Path, data_root: Path, tiny_fixed: dict, *, name: str, parameters: str, num_samples: int | None,
           reeval: int, sampler: str = "tpe", num_epoch: int = 3, grace: int = 1, extra: str = "") -> Path:
    fixed = {**tiny_fixed, "num_epoch": num_epoch, "kl_anneal_ratio": 0.5}
    fixed_yaml = "\n".join(f"  {k}: {v}" for k, v in fixed.items())
    samples = f"num_samples: {num_samples}, " if num_samples is not None else ""
    path.write_text(f"""\
name: {name}
metric: {{name: val_psnr, goal: maximize}}
data: {{root: {data_root}}}
trials: {{{samples}max_concurrent: 2, resources: {{cpu: 1, gpu: 0}}, max_failures: 0}}
sampler: {{type: {sampler}, seed: 0{", n_startup_trials: 1" if sampler == "tpe" else ""}}}
early_terminate: {{type: asha, grace_period: {grace}, reduction_factor: 2}}
reeval: {{seeds: {reeval}}}
{extra}fixed:
{fixed_yaml}
parameters:
{parameters}""")
    return path


def _rows(run_dir: Path) -> list[dict[str, str]]:
    from search.results import read_trials_csv

    return read_trials_csv(run_dir)


def _run(args: list[str], ray_tmp: Path, timeout: float = 400) -> subprocess.CompletedProcess:
    env = {**os.environ, "RAY_TMPDIR": str(ray_tmp), "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, str(ROOT / "run_search.py"), "--no-report", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def ray_tmp(tmp_path_factory):
    import tempfile

    path = Path(tempfile.mkdtemp(prefix="rst", dir="/tmp"))  # short: unix socket paths
    yield path
    import shutil

    shutil.rmtree(path, ignore_errors=True)


PAIR = """\
  kl_anneal_type: {values: [Cyclical, Monotonic, None], role: scientific}
  kl_anneal_cycle: {values: [1, 2], when: {kl_anneal_type: Cyclical}, role: scientific}
  lr: {distribution: log_uniform_values, min: 1.0e-5, max: 3.0e-2}
"""


@pytest.mark.timeout(500)
def test_conditional_pair_balanced_schedule_aware_stops_and_reeval_rows(tmp_path, tiny_data, tiny_fixed, ray_tmp):
    space = _space(tmp_path / "pair.yaml", tiny_data, tiny_fixed, name="pair", parameters=PAIR, num_samples=8,
                   reeval=2, num_epoch=4)
    proc = _run(["--space", str(space), "--storage-path", str(tmp_path / "runs")], ray_tmp)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    run_dir = tmp_path / "runs" / "pair"
    trials = rows_by_trial(_rows(run_dir))
    search = {tid: rows for tid, rows in trials.items() if rows[0]["phase"] == "search"}
    reeval = {tid: rows for tid, rows in trials.items() if rows[0]["phase"] == "reeval"}
    counts = Counter(rows[0]["stratum"] for rows in search.values())
    assert counts == {"kl_anneal_type=Cyclical, kl_anneal_cycle=1": 2, "kl_anneal_type=Cyclical, kl_anneal_cycle=2": 2,
                      "kl_anneal_type=Monotonic": 2, "kl_anneal_type=None": 2}, counts
    # No trial was stopped before its beta first reached the maximum of its schedule.
    for tid, rows in search.items():
        if rows[0]["status"] != "stopped":
            continue
        kind, cycle = rows[0]["kl_anneal_type"], int(rows[0]["kl_anneal_cycle"] or 1)
        peak = max(kl_beta(e, kind=kind, num_epoch=4, cycle=cycle, ratio=0.5) for e in range(4))
        assert any(abs(float(r["beta"]) - peak) < 1e-9 for r in rows), (tid, [r["beta"] for r in rows])
    # Re-evaluation: each stratum's best search trial, 2 distinct seeds, full budget, never stopped.
    assert sorted(Counter(rows[0]["stratum"] for rows in reeval.values()).values()) == [2, 2, 2, 2]
    for stratum in counts:
        runs = [rows for rows in reeval.values() if rows[0]["stratum"] == stratum]
        assert sorted(int(rows[0]["seed"]) for rows in runs) == [1001, 2001]
        assert all(rows[0]["status"] == "completed" and len(rows) == 4 for rows in runs)
    assert {rows[0]["seed"] for rows in search.values()} == {"1"}
    import json

    summary = json.loads((run_dir / "summary.json").read_text())
    comparison = summary["comparison"]
    assert set(comparison["strata"]) == set(counts)
    for block in comparison["strata"].values():
        assert len(block["reeval_values"]) == 2 and block["trials"] == 2
    assert sum(summary["status_counts"].values()) == 8 and summary["reeval_status_counts"]["completed"] == 8
    # best.yaml records what the trial's numbers depend on besides its config (1 CPU per trial)
    import yaml

    best = yaml.safe_load((run_dir / "best.yaml").read_text())
    assert (best["torch_threads"], best["device"], best["precision"]) == (1, "cpu", "fp32")
    # optuna.db says what each trial is (optuna-dashboard shows these user attributes)
    study = study_trials(run_dir / "optuna.db")
    assert Counter(attrs["phase"] for _, _, attrs in study) == {"search": 8, "reeval": 8}
    assert all(state in ("COMPLETE", "PRUNED") for _, state, _ in study)


@pytest.mark.timeout(400)
def test_three_values_nine_trials_three_each_and_grid_runs_the_product(tmp_path, tiny_data, tiny_fixed, ray_tmp):
    three = _space(tmp_path / "three.yaml", tiny_data, tiny_fixed, name="three", num_samples=9, reeval=0,
                   num_epoch=2, parameters="""\
  kl_anneal_type: {values: [Cyclical, Monotonic, None], role: scientific}
  lr: {distribution: log_uniform_values, min: 1.0e-5, max: 3.0e-2}
""")
    proc = _run(["--space", str(three), "--storage-path", str(tmp_path / "runs")], ray_tmp)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    trials = rows_by_trial(_rows(tmp_path / "runs" / "three"))
    assert Counter(rows[0]["kl_anneal_type"] for rows in trials.values()) == {"Cyclical": 3, "Monotonic": 3, "None": 3}

    grid = _space(tmp_path / "grid.yaml", tiny_data, tiny_fixed, name="grid", num_samples=None, reeval=0,
                  sampler="grid", num_epoch=2, parameters="""\
  kl_anneal_type: {values: [Cyclical, Monotonic, None], role: scientific}
  tfr: {values: [1.0, 0.0], role: scientific}
""")
    proc = _run(["--space", str(grid), "--storage-path", str(tmp_path / "runs")], ray_tmp)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    trials = rows_by_trial(_rows(tmp_path / "runs" / "grid"))
    combos = Counter((rows[0]["kl_anneal_type"], float(rows[0]["tfr"])) for rows in trials.values())
    assert combos == {(k, t): 1 for k in ("Cyclical", "Monotonic", "None") for t in (1.0, 0.0)}


# --------------------------------------------------------------------------- #
# Kills
# --------------------------------------------------------------------------- #
def _start(args: list[str], ray_tmp: Path, log: Path) -> subprocess.Popen:
    env = {**os.environ, "RAY_TMPDIR": str(ray_tmp), "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, str(ROOT / "run_search.py"), "--no-report", *args], cwd=ROOT, env=env,
                            stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)


def _csv_statuses(run_dir: Path) -> list[tuple[str, str, str]]:
    """(trial_id, status, phase) per row; [] while trials.csv does not exist or is being replaced."""
    try:
        with (run_dir / "trials.csv").open(newline="") as f:
            return [(r["trial_id"], r["status"], r.get("phase", "")) for r in csv.DictReader(f)]
    except (OSError, csv.Error, KeyError):
        return []


def _kill_when(proc: subprocess.Popen, ray_tmp: Path, ready, log: Path, within: float = 300) -> None:
    deadline = time.time() + within
    while time.time() < deadline:
        if ready():
            break
        assert proc.poll() is None, f"the search ended before the kill:\n{log.read_text()[-3000:]}"
        time.sleep(0.1)
    else:
        pytest.fail(f"the moment to kill never came:\n{log.read_text()[-3000:]}")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    kill_driver_and_ray(proc.pid, ray_tmp)


@pytest.mark.timeout(600)
def test_sigkill_during_reeval_then_resume_reruns_each_best_exactly_once(tmp_path, tiny_data, tiny_fixed, ray_tmp):
    space = _space(tmp_path / "rk.yaml", tiny_data, tiny_fixed, name="rk", num_samples=6, reeval=2, num_epoch=4,
                   parameters="""\
  kl_anneal_type: {values: [Cyclical, Monotonic, None], role: scientific}
  lr: {distribution: log_uniform_values, min: 1.0e-4, max: 3.0e-3}
""")
    runs, run_dir = tmp_path / "runs", tmp_path / "runs" / "rk"
    proc = _start(["--space", str(space), "--storage-path", str(runs)], ray_tmp, tmp_path / "run.log")
    _kill_when(proc, ray_tmp, lambda: any(p == "reeval" for _, _, p in _csv_statuses(run_dir)), tmp_path / "run.log")
    resumed = _run(["--space", str(space), "--storage-path", str(runs), "--resume"], ray_tmp)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    trials = rows_by_trial(_rows(run_dir))
    reeval = [rows for rows in trials.values() if rows[0]["phase"] == "reeval"]
    per_stratum = Counter(rows[0]["stratum"] for rows in reeval)
    assert per_stratum == {"Cyclical": 2, "Monotonic": 2, "None": 2}, per_stratum
    for stratum in per_stratum:
        seeds = sorted(int(rows[0]["seed"]) for rows in reeval if rows[0]["stratum"] == stratum)
        assert seeds == [1001, 2001]
    for rows in trials.values():  # one row per epoch, every run finished
        assert [int(r["epoch"]) for r in rows] == sorted({int(r["epoch"]) for r in rows})
        assert rows[0]["status"] in ("completed", "stopped")
    study = study_trials(run_dir / "optuna.db")
    assert Counter(attrs.get("phase") for _, _, attrs in study) == {"search": 6, "reeval": 6}
    assert all(state in ("COMPLETE", "PRUNED") for _, state, _ in study), study


@pytest.mark.timeout(600)
@pytest.mark.parametrize("status", ["stopped", "completed"])
def test_a_kill_right_after_a_trial_ends_leaves_it_unchanged_after_resume(tmp_path, tiny_data, tiny_fixed, ray_tmp,
                                                                           status):
    """The driver SIGKILLs its process group right after it committed an ASHA stop (or a full
    run), before Tune heard of it (search.record_scheduler's test hook): after --resume that
    trial is the same in the study and in trials.csv, and it never ran again."""
    import optuna

    from search.record_scheduler import DIE_AFTER_END_ENV
    from search.trial_files import TrialFiles, epoch_rows

    # Plain lr search (one stratum), ASHA at epoch 1 and 2 of 4: weak lr values are stopped early.
    space = _space(tmp_path / "st.yaml", tiny_data, tiny_fixed, name="st", num_samples=8, reeval=0, num_epoch=4,
                   sampler="random", parameters="""\
  kl_anneal_type: {value: None}
  lr: {distribution: log_uniform_values, min: 1.0e-6, max: 3.0e-2}
""")
    runs, run_dir = tmp_path / "runs", tmp_path / "runs" / "st"
    env = {**os.environ, "RAY_TMPDIR": str(ray_tmp), "PYTHONUNBUFFERED": "1", DIE_AFTER_END_ENV: status}
    killed = subprocess.run([sys.executable, str(ROOT / "run_search.py"), "--no-report", "--space", str(space),
                             "--storage-path", str(runs)], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=400, start_new_session=True)
    assert killed.returncode == -signal.SIGKILL, killed.stdout[-3000:] + killed.stderr[-3000:]
    kill_processes_using(ray_tmp)  # a worker that outlived its group
    storage = f"sqlite:///{run_dir / 'optuna.db'}"
    ended = [t for t in optuna.load_study(study_name="st", storage=storage).get_trials()
             if t.user_attrs.get("status") == status]
    assert len(ended) == 1, [(t.number, t.state, t.user_attrs.get("status")) for t in ended]
    before = ended[0]
    key = before.user_attrs["trial_id"]
    rows = epoch_rows(TrialFiles(run_dir, key).metrics_path)
    psnr_before = [rows[e]["val_psnr"] for e in sorted(rows) if e <= before.user_attrs["final_epoch"]]
    attempts_before = TrialFiles(run_dir, key).attempts()

    resumed = _run(["--space", str(space), "--storage-path", str(runs), "--resume"], ray_tmp)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    after = optuna.load_study(study_name="st", storage=storage).trials[before.number]
    assert (after.state, after.value, after.intermediate_values, after.user_attrs) == (
        before.state, before.value, before.intermediate_values, before.user_attrs)
    assert after.state.name == {"stopped": "PRUNED", "completed": "COMPLETE"}[status]
    trial_rows = rows_by_trial(_rows(run_dir))[key]
    assert {r["status"] for r in trial_rows} == {status}
    assert [float(r["val_psnr"]) for r in trial_rows] == psnr_before
    assert TrialFiles(run_dir, key).attempts() == attempts_before  # never run again
    study = study_trials(run_dir / "optuna.db")
    assert len(study) == 8 and all(state in ("COMPLETE", "PRUNED") for _, state, _ in study)
