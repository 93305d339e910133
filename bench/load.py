"""Load benchmark: many more trials than slots, the driver's memory and the run folder's disk use.

    .venv/bin/python bench/load.py            # 40 tiny trials, 2 at a time, small synthetic preset
    .venv/bin/python bench/load.py --smoke    # 4 trials on a few frames, < 2 minutes

Runs `run_search.py` as a user does (a subprocess with its own local Ray), samples
the driver process's RSS (VmRSS in /proc, every 0.5 s) and the size of runs/<name> over
time, then checks that every trial is accounted for: num_samples rows in the
Optuna study, all finished, and num_samples trials in trials.csv, none left
`running` or `failed`. Writes bench/results/load.json (load.smoke.json with --smoke).

Only the driver's RSS is measured (Ray's raylet, GCS and worker processes are
separate and come and go with trials); the driver is the process that holds the
trial table, the Optuna study and the results recorder, so it is the one that
could grow with the number of trials.
"""
from __future__ import annotations

import argparse
import csv
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from the repo root
    sys.path.insert(0, str(ROOT))

from bench.common import command_line, machine_info, progress, versions, write_json  # noqa: E402
from search.processes import kill_processes_using  # noqa: E402

FIXED = {
    "batch_size": 4, "frame_H": 16, "frame_W": 32, "F_dim": 16, "L_dim": 8, "N_dim": 4, "D_out_dim": 16,
    "train_vi_len": 8, "val_vi_len": 32, "partial": 0.5, "milestones": [10], "seed": 1,
    "precision": "fp32", "channels_last": False,
}


def write_space(path: Path, *, data_root: Path, num_samples: int, num_epoch: int, synthetic: str | None) -> Path:
    fixed = {**FIXED, "num_epoch": num_epoch}
    fixed_yaml = "\n".join(f"  {k}: {v}" for k, v in fixed.items())
    synth = f", synthetic: {synthetic}" if synthetic else ""
    path.write_text(f"""\
name: load
metric: {{name: val_psnr, goal: maximize}}
data: {{root: {data_root}{synth}}}
trials: {{num_samples: {num_samples}, max_concurrent: 2, resources: {{cpu: 1, gpu: 0}}, max_failures: 1, checkpoint_every: 1}}
sampler: {{type: tpe, seed: 0, n_startup_trials: 8}}
early_terminate: {{type: asha, grace_period: 1, reduction_factor: 2}}
reeval: {{seeds: 0}}   # the load test accounts for num_samples trials, no re-runs
fixed:
{fixed_yaml}
parameters:
  kl_anneal_type: {{values: [Cyclical, Monotonic, None], role: scientific}}
  kl_anneal_cycle: {{distribution: int_uniform, min: 1, max: 3, when: {{kl_anneal_type: Cyclical}}}}
  tfr: {{distribution: uniform, min: 0.0, max: 1.0}}
  lr: {{distribution: log_uniform_values, min: 1.0e-4, max: 1.0e-2}}
""")
    return path


def rss_bytes(pid: int) -> int | None:
    """Resident set size of a process from /proc (psutil is not installed here); None once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        return None
    return None


def disk_bytes(folder: Path) -> int:
    total = 0
    for dirpath, _, files in os.walk(folder):
        for name in files:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except OSError:  # removed while walking (a rotated checkpoint)
                pass
    return total


def checkpoint_counts(run_dir: Path) -> list[int]:
    return [len(list(d.glob("checkpoint_*"))) for d in run_dir.iterdir()
            if d.is_dir() and (d / "params.json").exists()]


def account(run_dir: Path, num_samples: int) -> dict[str, Any]:
    """Every trial accounted for: in the study (finished) and in trials.csv (a final status)."""
    con = sqlite3.connect(run_dir / "optuna.db")
    try:
        states = [s for (s,) in con.execute("SELECT state FROM trials")]
    finally:
        con.close()
    with (run_dir / "trials.csv").open(newline="") as f:
        rows = list(csv.reader(f))[1:]
    status = {r[0]: r[1] for r in rows}
    per_trial_epochs: dict[str, list[int]] = {}
    for r in rows:
        per_trial_epochs.setdefault(r[0], []).append(int(r[2]))
    csv_ok = all(e == list(range(1, len(e) + 1)) for e in per_trial_epochs.values())
    study_counts = {s: states.count(s) for s in sorted(set(states))}
    csv_counts = {s: list(status.values()).count(s) for s in sorted(set(status.values()))}
    ok = (len(states) == num_samples and all(s in ("COMPLETE", "PRUNED") for s in states)
          and len(status) == num_samples and not set(status.values()) & {"running", "failed"} and csv_ok)
    return {"all_accounted_for": ok, "study_trials": len(states), "study_states": study_counts,
            "csv_trials": len(status), "csv_statuses": csv_counts, "csv_rows": len(rows),
            "csv_one_row_per_trial_per_epoch": csv_ok}


def run(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="cvae-load-"))
    ray_tmp = Path(tempfile.mkdtemp(prefix="rzl", dir="/tmp"))
    try:
        if args.smoke:
            from cvae.families.lab4_2024.synthetic import Preset, generate

            data_root = generate(work / "data", Preset(train_video_lengths=(32,), val_length=32,
                                                       test_sequences=1, test_length=4), seed=0, progress=False)
            synthetic = None
        else:
            data_root, synthetic = work / "data-small", "small"  # run_search.py generates it
        space = write_space(work / "load.yaml", data_root=data_root, num_samples=args.trials,
                            num_epoch=args.epochs, synthetic=synthetic)
        run_dir = work / "runs" / "load"
        env = {**os.environ, "RAY_TMPDIR": str(ray_tmp)}
        cmd = [sys.executable, str(ROOT / "run_search.py"), "--space", str(space),
               "--storage-path", str(work / "runs"), "--no-report"]
        progress(f"starting: {' '.join(cmd)}")
        start = time.perf_counter()
        log = open(work / "driver.log", "w")
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        samples: list[dict[str, float]] = []
        last_print = 0.0
        while proc.poll() is None:
            t = time.perf_counter() - start
            rss = rss_bytes(proc.pid)
            if rss is None:  # exiting (a zombie has no VmRSS): let poll() see it
                time.sleep(0.1)
                continue
            disk = disk_bytes(run_dir) if run_dir.exists() else 0
            samples.append({"t_s": round(t, 2), "driver_rss_mb": round(rss / 2**20, 1),
                            "run_dir_mb": round(disk / 2**20, 2)})
            if t - last_print > 15:
                progress(f"{t:5.0f}s driver RSS {rss / 2**20:.0f} MB, runs/load {disk / 2**20:.1f} MB")
                last_print = t
            time.sleep(0.5)
        proc.wait()
        wall = time.perf_counter() - start
        log.close()
        tail = (work / "driver.log").read_text()[-3000:]
        if proc.returncode != 0:
            raise SystemExit(f"run_search.py exited {proc.returncode}:\n{tail}")
        accounting = account(run_dir, args.trials)
        rss = [s["driver_rss_mb"] for s in samples]
        disk = [s["run_dir_mb"] for s in samples]
        ckpts = checkpoint_counts(run_dir)
        n = len(rss)
        return {
            "command": command_line(), "smoke": args.smoke, "machine": machine_info(), "versions": versions(),
            "search": {"trials": args.trials, "max_concurrent": 2, "num_epoch": args.epochs,
                       "asha": "grace 1, reduction 2", "data": "tiny preset" if args.smoke else "synthetic small"},
            "wall_time_s": round(wall, 1),
            "accounting": accounting,
            "driver_rss_mb": {"peak": max(rss), "first_quarter_peak": max(rss[: max(1, n // 4)]),
                              "last_quarter_peak": max(rss[-max(1, n // 4):]), "final": rss[-1]},
            "run_dir_mb": {"peak_during_run": max(disk), "final": round(disk_bytes(run_dir) / 2**20, 2),
                           "per_trial_final": round(disk_bytes(run_dir) / 2**20 / args.trials, 3)},
            "checkpoints_per_trial_max": max(ckpts) if ckpts else 0,
            "samples": samples[:: max(1, n // 400)],  # at most ~400 points
            "driver_log_tail": tail,
        }
    finally:
        # Ray's processes of this run, by process id: the driver's group, then holders of our RAY_TMPDIR.
        kill_processes_using(ray_tmp)
        shutil.rmtree(ray_tmp, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)




def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--smoke", action="store_true", help="4 trials of 2 epochs on a few frames")
    p.add_argument("--trials", type=int, default=None, help="number of trials (default 40; smoke 4)")
    p.add_argument("--epochs", type=int, default=None, help="epochs per trial (default 4; smoke 2)")
    args = p.parse_args(argv)
    args.trials = args.trials or (4 if args.smoke else 40)
    args.epochs = args.epochs or (2 if args.smoke else 4)
    report = run(args)
    path = write_json("load.smoke.json" if args.smoke else "load.json", report)
    a, r, d = report["accounting"], report["driver_rss_mb"], report["run_dir_mb"]
    print(f"{args.trials} trials in {report['wall_time_s']:.0f} s, all accounted for: {a['all_accounted_for']} "
          f"(study {a['study_states']}, trials.csv {a['csv_statuses']})")
    print(f"driver RSS peak {r['peak']:.0f} MB (first quarter {r['first_quarter_peak']:.0f}, "
          f"last quarter {r['last_quarter_peak']:.0f}); runs/load {d['final']:.1f} MB "
          f"({d['per_trial_final'] * 1024:.0f} KB per trial), at most {report['checkpoints_per_trial_max']} "
          f"checkpoints per trial")
    print(f"results: {path}")
    return 0 if a["all_accounted_for"] else 1


if __name__ == "__main__":
    sys.exit(main())
