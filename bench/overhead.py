"""Per-trial overhead: a search of N small trials through run_search vs the same configs without Ray.

    .venv/bin/python bench/overhead.py            # full: 4 trials of >= 30 s (quick.yaml dims), ~10 min
    .venv/bin/python bench/overhead.py --smoke    # 2 tiny trials, well under a minute of training

1. Search: `run_search.py` as a subprocess on a generated space (Ray + Optuna,
   random sampler with a seed, ASHA off, 1 trial at a time on 1 CPU: fair on 2
   noisy cores). Its stdout lines are time-stamped as they arrive.
2. Direct: the configs the search sampled (read back from Ray's result.json)
   trained back to back by `cvae.families.lab4_2024.train.fit` in one fresh process (this script
   with --direct-worker), 1 torch thread as each trial has, no Ray.
Both are whole commands (interpreter start, imports, data decode included), so
`overhead_ratio` = search wall / direct wall. Where the difference goes:
  before_ray_s        search process start -> plan printed (imports, data decode, checks)
  ray_start_s         plan printed -> "Ray dashboard:" line (ray.init)
  first_trial_start_s dashboard line -> first trial's training starts (Tuner setup, actor start)
  between_trials_s    sum of gaps between one trial's last result and the next one's start
  in_trial_start_s    per trial: first iteration's time_this_iter_s minus its epoch+val time
                      (data from the object store, Trainer init)
  per_epoch_report_s  later iterations' time_this_iter_s minus epoch+val time (checkpoint + report)
  after_last_trial_s  last result -> process exit (results files, ray.shutdown)
  training_s          sum of the trainer's epoch_time_s + val_time_s (search and direct)
Ray's `timestamp` has 1-second resolution: the gaps are +-1 s each.
Checkpointing is also timed on its own (save_checkpoint + frames.png, as the
trainable writes them), and the dataset transfer: ray.put once + ray.get in a
worker task, for the small preset and for the `lab` preset (23410 frames),
against decoding that preset from PNG without cache (what a trial would pay if
it decoded per trial). Writes bench/results/overhead.json (smoke: overhead.smoke.json).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from the repo root
    sys.path.insert(0, str(ROOT))

from bench.common import (  # noqa: E402
    command_line,
    library_versions,
    load_average,
    machine_info,
    median,
    progress,
    read_trial_results,
    write_json,
    write_yaml,
)

SMALL_DATA = ROOT / "data" / "synthetic-small"
LAB_DATA_DEFAULT = Path("/tmp/syn_lab")
# quick.yaml's dims; an epoch of the small preset takes ~4 s on one quiet core (2026-11-23) and ~10 s under
# load 7: 8 epochs keep a trial at 30 s or more, the length the 1.15 target is set for.
FULL_FIXED = {"num_epoch": 8, "batch_size": 4, "frame_H": 16, "frame_W": 32, "F_dim": 32, "L_dim": 8,
              "N_dim": 4, "D_out_dim": 32, "train_vi_len": 8, "val_vi_len": 64, "milestones": [6],
              "gamma": 0.5, "seed": 1, "device": "cpu"}
SMOKE_FIXED = {**FULL_FIXED, "num_epoch": 2, "frame_H": 8, "frame_W": 16, "F_dim": 16, "D_out_dim": 16,
               "val_vi_len": 8, "partial": 0.25}
# A narrow space: no lr that diverges (a diverged trial stops early and the two sides would train different epochs).
PARAMETERS = {
    "kl_anneal_type": {"values": ["Cyclical", "Monotonic", "None"]},
    "tfr": {"distribution": "uniform", "min": 0.0, "max": 1.0},
    "optimizer": {"values": ["Adam", "AdamW", "Adamax"]},
    "lr": {"distribution": "log_uniform_values", "min": 1.0e-4, "max": 2.0e-3},
}


def space_dict(fixed: dict[str, Any], trials: int, data_root: Path) -> dict[str, Any]:
    return {
        "name": "overhead", "description": "bench/overhead.py: per-trial overhead",
        "metric": {"name": "val_psnr", "goal": "maximize"},
        "data": {"root": str(data_root), "synthetic": "small"},
        "trials": {"num_samples": trials, "max_concurrent": 1, "resources": {"cpu": 1, "gpu": 0},
                   "max_failures": 0, "checkpoint_every": 1},
        "sampler": {"type": "random", "seed": 0},
        "early_terminate": {"type": "none"},
        "fixed": {k: v for k, v in fixed.items() if k != "device"},
        "parameters": PARAMETERS,
    }


# --- 1. the search ---------------------------------------------------------------

def run_search_timed(space_path: Path, storage: Path) -> dict[str, Any]:
    """run_search.py as a subprocess; every stdout line stamped with time.time() on arrival."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "RAY_DEDUP_LOGS": "0"}
    cmd = [sys.executable, "run_search.py", "--space", str(space_path), "--storage-path", str(storage),
           "--name", "overhead", "--no-report"]
    start = time.time()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    lines: list[tuple[float, str]] = []
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append((time.time(), line.rstrip("\n")))
    rc = proc.wait()
    end = time.time()
    if rc != 0:
        tail = "\n".join(text for _, text in lines[-30:])
        raise RuntimeError(f"run_search.py exited with {rc}:\n{tail}")

    def first(prefix: str) -> float | None:
        return next((t for t, text in lines if text.startswith(prefix)), None)

    return {"command": cmd, "start": start, "end": end, "wall_s": end - start,
            "plan_printed": first("plan:"), "dashboard_line": first("Ray dashboard:")}


def trial_timings(run_dir: Path) -> list[dict[str, Any]]:
    """Per trial, from Ray's result.json: start/end (epoch seconds), Ray vs trainer time per iteration."""
    out = []
    for trial_id, rows in read_trial_results(run_dir).items():
        iters = [{"epoch": r["epoch"], "time_this_iter_s": r["time_this_iter_s"],
                  "trainer_s": r["epoch_time_s"] + r["val_time_s"], "timestamp": r["timestamp"]} for r in rows]
        end = float(rows[-1]["timestamp"])
        out.append({"trial_id": trial_id, "config": rows[-1]["config"], "epochs": len(rows),
                    "start": end - float(rows[-1]["time_total_s"]), "end": end,
                    "time_total_s": float(rows[-1]["time_total_s"]), "iterations": iters,
                    "in_trial_start_s": iters[0]["time_this_iter_s"] - iters[0]["trainer_s"],
                    "per_epoch_report_s": [i["time_this_iter_s"] - i["trainer_s"] for i in iters[1:]]})
    out.sort(key=lambda t: t["start"])
    return out


# --- 2. the same configs without Ray -----------------------------------------------

def direct_worker(spec_path: Path, out_path: Path) -> int:
    """Train every config of spec_path back to back in this process; write timings to out_path."""
    t_process = time.time()  # set before the heavy imports below
    import torch

    torch.set_num_threads(1)  # as each trial (1 CPU) has
    from cvae.families.lab4_2024.config import TrainConfig
    from cvae.families.lab4_2024.data import load_lab_data
    from cvae.families.lab4_2024.train import fit

    spec = json.loads(spec_path.read_text())
    fixed = spec["fixed"]
    data = load_lab_data(spec["data_root"], fixed["frame_H"], fixed["frame_W"], progress=False)
    trials = []
    trainers = []
    for config in spec["configs"]:
        from search.trainable import training_params  # the trial config minus the study keys (phase, stratum)

        cfg = TrainConfig.from_dict({**fixed, **training_params(config)}, source="bench/overhead.py direct")
        epochs: list[dict[str, float]] = []
        t0 = time.time()
        trainer = fit(cfg, data, on_epoch=lambda m, _t: epochs.append(
            {"epoch": m["epoch"], "trainer_s": m["epoch_time_s"] + m["val_time_s"], "val_psnr": m["val_psnr"]}),
            device="cpu")
        trials.append({"config": config, "wall_s": time.time() - t0, "epochs": epochs})
        trainers.append(trainer)
    t_end = time.time()
    # Outside the timed region: what one checkpoint costs (trainer state + frames.png), as the trainable writes it.
    from search.trainable import _save_checkpoint

    ckpt_times = []
    with tempfile.TemporaryDirectory(prefix="bench-ckpt-") as tmp:
        for trainer in trainers:
            t0 = time.perf_counter()
            _save_checkpoint(trainer, {"epoch": trainer.epoch}, Path(tmp))
            ckpt_times.append(time.perf_counter() - t0)
    out_path.write_text(json.dumps({"process_start": t_process, "end": t_end, "trials": trials,
                                    "checkpoint_s": ckpt_times}))
    return 0


def run_direct(configs: list[dict[str, Any]], fixed: dict[str, Any], data_root: Path, tmp: Path) -> dict[str, Any]:
    spec, out = tmp / "direct_spec.json", tmp / "direct_out.json"
    spec.write_text(json.dumps({"configs": configs, "fixed": fixed, "data_root": str(data_root)}))
    start = time.time()
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--direct-worker", str(spec), str(out)],
                          cwd=ROOT, capture_output=True, text=True)
    end = time.time()
    if proc.returncode != 0:
        raise RuntimeError(f"direct worker failed:\n{proc.stderr[-3000:]}")
    result = json.loads(out.read_text())
    result.update(start=start, wall_s=end - start)
    return result


# --- 3. dataset transfer and decoding --------------------------------------------------

def data_transfer(small_root: Path, small_hw: tuple[int, int], lab_root: Path | None) -> dict[str, Any]:
    """Decode (no cache) vs ray.put once + ray.get in a worker task, per dataset."""
    import ray

    from cvae.families import get_family
    from cvae.families.lab4_2024.data import load_lab_data

    @ray.remote(num_cpus=1)
    def fetch(refs: list) -> dict[str, Any]:
        # The ref travels inside a list so Ray does not resolve it before the timer starts.
        t0 = time.perf_counter()
        shared = ray.get(refs[0])
        _, zero_copy = get_family("lab4-2024").unshare_data(shared)
        return {"get_s": time.perf_counter() - t0, "zero_copy": zero_copy}

    @ray.remote(num_cpus=1)
    def warm_up() -> None:
        return None

    sets = [("small", small_root, small_hw)]
    if lab_root is not None:
        sets.append(("lab", lab_root, (32, 64)))
    out: dict[str, Any] = {}
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    try:
        ray.get(warm_up.remote())  # start the worker process outside the timings
        for name, root, (h, w) in sets:
            progress(f"data transfer: decoding {name} ({root}) without cache")
            t0 = time.perf_counter()
            data = load_lab_data(root, h, w, progress=False, cache=False)
            decode_s = time.perf_counter() - t0
            arrays = get_family("lab4-2024").share_data(data)
            t0 = time.perf_counter()
            ref = ray.put(arrays)
            put_s = time.perf_counter() - t0
            gets = [ray.get(fetch.remote([ref])) for _ in range(3)]
            out[name] = {"root": str(root), "frame_hw": [h, w], "train_frames": int(data.train_frames.shape[0]),
                         "val_frames": int(data.val_frames.shape[0]),
                         "bytes": int(sum(a.nbytes for a in arrays.values())),
                         "decode_no_cache_s": decode_s, "put_once_s": put_s,
                         "get_in_worker_s": [g["get_s"] for g in gets],
                         "get_in_worker_median_s": median([g["get_s"] for g in gets]),
                         "zero_copy": all(g["zero_copy"] for g in gets)}
            out[name]["decode_per_trial_vs_get"] = decode_s / max(out[name]["get_in_worker_median_s"], 1e-9)
            del ref, arrays, data
    finally:
        ray.shutdown()
    return out


# --- the report ---------------------------------------------------------------------

def breakdown(search: dict[str, Any], trials: list[dict[str, Any]], direct: dict[str, Any]) -> dict[str, Any]:
    training_search = sum(i["trainer_s"] for t in trials for i in t["iterations"])
    training_direct = sum(e["trainer_s"] for t in direct["trials"] for e in t["epochs"])
    gaps = [b["start"] - a["end"] for a, b in zip(trials, trials[1:])]
    plan, dash = search["plan_printed"], search["dashboard_line"]
    return {
        "before_ray_s": (plan - search["start"]) if plan else None,
        "ray_start_s": (dash - plan) if plan and dash else None,
        "first_trial_start_s": (trials[0]["start"] - dash) if dash and trials else None,
        "between_trials_s": sum(gaps), "between_trials_each_s": gaps,
        "in_trial_start_s": sum(t["in_trial_start_s"] for t in trials),
        "in_trial_start_each_s": [t["in_trial_start_s"] for t in trials],
        "per_epoch_report_s": sum(sum(t["per_epoch_report_s"]) for t in trials),
        "per_epoch_report_median_s": median([x for t in trials for x in t["per_epoch_report_s"]]),
        "after_last_trial_s": (search["end"] - trials[-1]["end"]) if trials else None,
        "training_s_search": training_search,
        "training_s_direct": training_direct,
        "training_slowdown_search_vs_direct": training_search / training_direct if training_direct else None,
        "direct_non_training_s": direct["wall_s"] - training_direct,
        "search_extra_s": search["wall_s"] - direct["wall_s"],
    }


def ratio_equal_training(report: dict[str, Any]) -> float:
    """The search's wall time with its training replaced by the direct run's, over the direct wall.

    The same configs train at slightly different speeds in the two runs (a shared
    machine's load drifts between them): this ratio counts only what Ray, Optuna
    and the results files add, whichever run the noise favoured.
    """
    b = report["breakdown"]
    return (report["search_wall_s"] - b["training_s_search"] + b["training_s_direct"]) / report["direct_wall_s"]


def markdown(report: dict[str, Any]) -> str:
    b, d = report["breakdown"], report["data_transfer"]

    def f(x: Any) -> str:
        return "n/a" if x is None else f"{x:.2f}"

    lines = ["| trials | mean trial (s) | search wall (s) | direct wall (s) | overhead ratio |",
             "|---|---|---|---|---|",
             f"| {report['trials']} | {report['mean_trial_s']:.1f} | {report['search_wall_s']:.1f} | "
             f"{report['direct_wall_s']:.1f} | {report['overhead_ratio']:.3f} |", "",
             f"With equal training time on both sides: ratio {report['overhead_ratio_equal_training']:.3f}.",
             f"Per-trial overhead {report['per_trial_overhead_s']:.1f} s (steady-state ratio "
             f"{report['steady_state_ratio']:.3f}); fixed per search {report['fixed_overhead_s']:.1f} s; "
             f"load average {report['load_average_before']} -> {report['load_average_after']}.", "",
             "| where the search's extra time goes | seconds |", "|---|---|",
             f"| before Ray (imports, data, checks) | {f(b['before_ray_s'])} |",
             f"| Ray start (ray.init, dashboard) | {f(b['ray_start_s'])} |",
             f"| first trial start (Tuner setup, worker start) | {f(b['first_trial_start_s'])} |",
             f"| between trials (all gaps, +-1 s each) | {f(b['between_trials_s'])} |",
             f"| in-trial start (object store get, Trainer init) | {f(b['in_trial_start_s'])} |",
             f"| per-epoch checkpoint + report (all epochs after the first) | {f(b['per_epoch_report_s'])} |",
             f"| after last trial (results files, shutdown) | {f(b['after_last_trial_s'])} |",
             f"| training itself, search vs direct | {f(b['training_s_search'])} vs {f(b['training_s_direct'])} |",
             f"| one checkpoint (state + frames.png), timed alone | {f(median(report['checkpoint_s']))} |", "",
             "| dataset | frames | MB | decode, no cache (s) | ray.put once (s) | ray.get in a trial (s) |",
             "|---|---|---|---|---|---|"]
    for name, e in d.items():
        lines.append(f"| {name} | {e['train_frames'] + e['val_frames']} | {e['bytes'] / 1e6:.1f} | "
                     f"{e['decode_no_cache_s']:.2f} | {e['put_once_s']:.3f} | {e['get_in_worker_median_s']:.4f} |")
    return "\n".join(lines)


def ensure_small(root: Path) -> Path:
    if not root.exists():
        from cvae.families.lab4_2024.synthetic import generate

        generate(root, preset="small", seed=0, progress=False)
    return root


def lab_root_for(args: argparse.Namespace) -> tuple[Path | None, str]:
    root = Path(args.lab_data)
    if (root / "train").exists():
        return root, "existing lab preset"
    if args.smoke:
        return None, f"smoke mode: no lab preset at {root}; not generated (takes minutes)"
    from cvae.families.lab4_2024.synthetic import generate

    progress(f"generating the lab preset into {root} (1-6 min)")
    generate(root, preset="lab", seed=0, progress=False)
    return root, "generated by this run"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--smoke", action="store_true", help="2 tiny trials; the lab preset only if already there")
    p.add_argument("--trials", type=int, default=None, help="trials N (default 4, smoke 2)")
    p.add_argument("--epochs", type=int, default=None, help="epochs per trial (default 8 = 30 s or more, smoke 2)")
    p.add_argument("--lab-data", default=str(LAB_DATA_DEFAULT), help="lab preset folder (generated if missing, full mode)")
    p.add_argument("--skip-lab", action="store_true", help="do not time the lab preset's decoding and transfer")
    p.add_argument("--out", default=None, help="results file name under bench/results/")
    p.add_argument("--direct-worker", nargs=2, metavar=("SPEC", "OUT"), help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.direct_worker:
        return direct_worker(Path(args.direct_worker[0]), Path(args.direct_worker[1]))
    fixed = dict(SMOKE_FIXED if args.smoke else FULL_FIXED)
    if args.epochs:
        fixed["num_epoch"] = args.epochs
    trials_n = args.trials or (2 if args.smoke else 4)
    if trials_n < 1 or fixed["num_epoch"] < 1:
        print("error: --trials and --epochs must be >= 1", file=sys.stderr)
        return 2
    load_before = load_average()
    data_root = ensure_small(SMALL_DATA)
    with tempfile.TemporaryDirectory(prefix="bench-overhead-") as tmp_name:
        tmp = Path(tmp_name)
        space_path = write_yaml(tmp / "overhead.yaml", space_dict(fixed, trials_n, data_root))
        progress(f"search: {trials_n} trials x {fixed['num_epoch']} epochs through run_search.py")
        search = run_search_timed(space_path, tmp / "runs")
        trials = trial_timings(tmp / "runs" / "overhead")
        if len(trials) != trials_n:
            raise RuntimeError(f"expected {trials_n} trials in the search's results, found {len(trials)}")
        progress("direct: the same configs back to back without Ray")
        direct = run_direct([t["config"] for t in trials], fixed, data_root, tmp)
    lab_root, lab_note = (None, "--skip-lab") if args.skip_lab else lab_root_for(args)
    transfer = data_transfer(data_root, (fixed["frame_H"], fixed["frame_W"]), lab_root)
    ratio = search["wall_s"] / direct["wall_s"]
    report: dict[str, Any] = {
        "benchmark": "overhead", "command": command_line(), "smoke": args.smoke,
        "machine": machine_info(), "versions": library_versions(),
        "load_average_before": load_before, "load_average_after": load_average(),
        "trials": trials_n, "epochs_per_trial": fixed["num_epoch"], "fixed": fixed,
        "mean_trial_s": sum(t["time_total_s"] for t in trials) / len(trials),
        "overhead_ratio": ratio, "target": "overhead_ratio <= 1.15 for trials of 30 s or more",
        "search_wall_s": search["wall_s"], "direct_wall_s": direct["wall_s"],
        "breakdown": breakdown(search, trials, direct), "checkpoint_s": direct["checkpoint_s"],
        "data_transfer": transfer, "lab_preset": lab_note,
        "raw": {"search": search, "trials": trials, "direct": direct},
    }
    # Ray's start and the results files are paid once per search; what grows with N is the
    # per-trial part. Steady-state ratio: (trial + its start gap) / the same trial trained directly.
    b = report["breakdown"]
    per_trial = (b["between_trials_s"] + b["in_trial_start_s"] + b["per_epoch_report_s"]) / trials_n
    direct_trial = median([t["wall_s"] for t in direct["trials"]])
    report["per_trial_overhead_s"] = per_trial
    report["steady_state_ratio"] = (direct_trial + per_trial) / direct_trial
    report["fixed_overhead_s"] = sum(x or 0.0 for x in (b["before_ray_s"], b["ray_start_s"], b["first_trial_start_s"],
                                                          b["after_last_trial_s"])) - b["direct_non_training_s"]
    report["overhead_ratio_equal_training"] = ratio_equal_training(report)
    report["target_met"] = bool(ratio <= 1.15) if report["mean_trial_s"] >= 30 else None
    report["markdown"] = markdown(report)  # after the derived figures: the table shows them
    path = write_json(args.out or ("overhead.smoke.json" if args.smoke else "overhead.json"), report)
    print(report["markdown"])
    print(f"\noverhead ratio {ratio:.3f} (mean trial {report['mean_trial_s']:.1f} s); wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
