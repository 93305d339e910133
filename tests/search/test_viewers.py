"""Issue 14 with one real search: the shipped W&B sweep file (spaces/wandb-sweep.yaml),
unchanged but for tiny dims, run end to end by run_search.py with --data; then
what a user looks at: the console, runs/<name>/ray.log, TensorBoard's event
files and optuna-dashboard's API.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
NUM_TRIALS = 4

pytestmark = [pytest.mark.slow]


def tiny_wandb_sweep(path: Path, tiny_fixed: dict) -> Path:
    """spaces/wandb-sweep.yaml with the tiny dims as W&B constants (`value:`), 3 epochs,
    4 runs, hyperband's first bracket at epoch 1. Everything W&B-specific stays."""
    doc = yaml.safe_load((ROOT / "spaces" / "wandb-sweep.yaml").read_text())
    for key in ("program", "command", "entity", "project", "method", "run_cap", "early_terminate"):
        assert key in doc, key
    assert "data" not in doc and "trials" not in doc and "sampler" not in doc
    params = doc["parameters"]
    for key, value in tiny_fixed.items():
        if key != "milestones":  # a list: W&B constants are scalars here
            params[key] = {"value": value}
    params["num_epoch"] = {"value": 3}
    doc["run_cap"] = NUM_TRIALS
    doc["early_terminate"]["min_iter"] = 1
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def wandb_run(tmp_path_factory, tiny_data, tiny_fixed):
    tmp = tmp_path_factory.mktemp("wandb")
    space = tiny_wandb_sweep(tmp / "sweep.yaml", tiny_fixed)
    ray_tmp = Path(tempfile.mkdtemp(prefix="rsv", dir="/tmp"))  # short: unix socket paths
    env = {**os.environ, "RAY_TMPDIR": str(ray_tmp), "PYTHONUNBUFFERED": "1"}
    try:
        proc = subprocess.run(
            [sys.executable, str(ROOT / "run_search.py"), "--space", str(space), "--data", str(tiny_data),
             "--storage-path", str(tmp / "runs"), "--no-report"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=500)
    finally:
        import shutil

        shutil.rmtree(ray_tmp, ignore_errors=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc, tmp / "runs" / "wandb-sweep"


def _trials_csv(run_dir: Path) -> dict[str, list[dict[str, str]]]:
    from search.results import read_trials_csv

    out: dict[str, list[dict[str, str]]] = defaultdict(list)
    for row in read_trials_csv(run_dir):
        out[row["trial_id"]].append(row)
    return out


def _stop_epoch(params: dict[str, str]) -> int:
    """The epoch at which ASHA may stop this trial: the first of its judge epochs
    (search.scheduler), which records it at the rung of epoch 1. A Monotonic ramp
    that ends after epoch 1 is first judged at epoch 2 (ratio < 0.5 over 3 epochs)
    or not before the end; Cyclical and None from epoch 1."""
    from search.scheduler import earliest_stop_epoch

    return earliest_stop_epoch(params, fixed={}, grace_period=1, num_epoch=3)


@pytest.mark.timeout(600)
def test_wandb_sweep_file_runs_end_to_end_with_data(wandb_run):
    proc, run_dir = wandb_run
    out = proc.stdout
    # every W&B mapping said in one line
    assert "W&B sweep file: program, command, entity, project: W&B agent/server keys, ignored" in out
    assert "W&B sweep file: method: bayes -> sampler type tpe" in out
    assert f"W&B sweep file: run_cap: {NUM_TRIALS} -> trials.num_samples {NUM_TRIALS}" in out
    assert "W&B hyperband (min_iter 1, eta 3) -> ASHA grace_period 1, reduction_factor 3" in out
    # no trials block: as many at a time as the cluster allows (this machine's CPUs, 1 each)
    assert "as many at a time as the cluster allows" in out
    trials = _trials_csv(run_dir)
    assert len(trials) == NUM_TRIALS
    for rows in trials.values():
        # completed: all 3 epochs; stopped: ended at its first judge epoch, the one ASHA records
        # at the rung of epoch 1 (a trial is never stopped between rungs)
        assert rows[0]["status"] in ("completed", "stopped"), rows[0]
        expected = 3 if rows[0]["status"] == "completed" else _stop_epoch(rows[0])
        assert len(rows) == expected < 4, (rows[0]["status"], len(rows), rows[0])
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["num_samples"] == NUM_TRIALS and summary["num_epoch"] == 3
    best = yaml.safe_load((run_dir / "best.yaml").read_text())
    assert (best["frame_H"], best["F_dim"], best["num_epoch"]) == (16, 16, 3)  # the W&B constants


@pytest.mark.timeout(600)
def test_console_is_short_and_ray_output_is_in_ray_log(wandb_run):
    proc, run_dir = wandb_run
    lines = proc.stdout.splitlines()
    assert not any("╭" in line or "│" in line for line in lines), "Ray's boxed tables reached the console"
    starts = [line for line in lines if line.startswith("start  ")]
    ends = [line for line in lines if line.startswith("end    ")]
    assert len(starts) == NUM_TRIALS and len(ends) == NUM_TRIALS
    # the console says how each trial ended as trials.csv has it: completed, or stopped
    # at its first judge epoch (1, or 2 for a Monotonic ramp that ends after epoch 1)
    stopped_csv = sorted(len(rows) for rows in _trials_csv(run_dir).values() if rows[0]["status"] == "stopped")
    stopped_console = sorted(int(line.split("stopped at epoch ")[1].split("/")[0])
                             for line in ends if "stopped at epoch" in line)
    assert stopped_console == stopped_csv, (ends, stopped_csv)
    assert all("val_psnr" in line and ("completed 3/3" in line or "stopped at epoch" in line) for line in ends)
    progress = [line for line in lines if line.startswith("progress: ")]
    assert progress and progress[-1].startswith(f"progress: {NUM_TRIALS}/{NUM_TRIALS} trials done, 0 running")
    assert "best val_psnr" in progress[-1]
    assert len(lines) < 60, proc.stdout
    log = (run_dir / "ray.log").read_text()
    assert "Trial status" in log and "╭" in log  # Tune's tables
    assert "Started a local Ray instance" in log  # Ray's own log lines
    assert f"Ray's own output: {run_dir / 'ray.log'}" in proc.stdout
    assert "Started a local Ray instance" not in proc.stdout + proc.stderr


@pytest.mark.timeout(600)
def test_tensorboard_hint_and_per_epoch_val_psnr_in_the_trial_event_files(wandb_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    proc, run_dir = wandb_run
    hint = f"TensorBoard: tensorboard --logdir {run_dir}"
    assert proc.stdout.count(hint) == 2  # at the start and at the end
    assert "tensorboard --logdir /tmp/ray" not in proc.stdout
    trials = _trials_csv(run_dir)
    seen = 0
    for trial_id, rows in trials.items():
        from search.trial_files import TrialFiles

        ray_id = TrialFiles(run_dir, trial_id).attempts()[0]["ray_trial_id"]  # Tune names its folder by it
        events = list(run_dir.glob(f"tune/session-*/*{ray_id}*/events.out.tfevents.*"))
        assert len(events) == 1, (trial_id, list(run_dir.iterdir()))
        acc = EventAccumulator(str(events[0]))
        acc.Reload()
        scalars = {e.step: e.value for e in acc.Scalars("ray/tune/val_psnr")}
        assert scalars == pytest.approx({int(r["epoch"]): float(r["val_psnr"]) for r in rows}, rel=1e-6)
        seen += len(scalars)
    assert seen == sum(len(rows) for rows in trials.values())


@pytest.mark.timeout(600)
def test_optuna_dashboard_serves_the_study_with_states_and_intermediate_values(wandb_run):
    from wsgiref.util import setup_testing_defaults

    import optuna_dashboard

    proc, run_dir = wandb_run
    db = run_dir / "optuna.db"
    assert f"Optuna dashboard: optuna-dashboard sqlite:///{db}" in proc.stdout
    app = optuna_dashboard.wsgi(f"sqlite:///{db}")

    def get(path: str) -> dict:
        environ: dict = {}
        setup_testing_defaults(environ)
        environ.update(PATH_INFO=path, REQUEST_METHOD="GET")
        status = []
        body = b"".join(app(environ, lambda s, headers, exc_info=None: status.append(s)))
        assert status[0].startswith("200"), (path, status, body[:300])
        return json.loads(body)

    studies = get("/api/studies")["study_summaries"]
    assert [s["study_name"] for s in studies] == ["wandb-sweep"]
    study = get(f"/api/studies/{studies[0]['study_id']}")
    trials = _trials_csv(run_dir)
    by_ray_id = {next(a["value"] for a in t["user_attrs"] if a["key"] == "trial_id"): t for t in study["trials"]}
    assert set(by_ray_id) == set(trials)
    for trial_id, rows in trials.items():
        shown = by_ray_id[trial_id]
        assert shown["state"] == {"completed": "Complete", "stopped": "Pruned"}[rows[0]["status"]]
        steps = {v["step"]: v["value"] for v in shown["intermediate_values"]}
        assert steps == pytest.approx({int(r["epoch"]): float(r["val_psnr"]) for r in rows})
