"""The pre-registered real-run check (issue 25, item 5): the default search against random search.

bench/preregistration.yaml's `real_run_check`: spaces/quick.yaml's search (the default: balanced
KL strata, random sampling within each, schedule-aware ASHA) and the same file with sampler
random, free strata and no stopping (random search), each run with sampler seeds 0-4 on the demo
data through `run_search.py`, as a user runs it. Each search re-runs every KL stratum's best
configuration with 2 more training seeds (quick.yaml's `reeval`); a search's value is its best
stratum's re-run mean (the search run that chose the configuration is not counted, as in the
verdict). The difference default - random is reported with its 95% Welch interval beside the
seeded replay's predicted difference at the same budget (both spend about 2x the hand grid's
compute: 12 trials of at most 6 epochs).

Runs are interleaved (default seed 0, random seed 0, default seed 1, ...) and each finished run is
written to the results file at once, so a stopped check leaves whole pairs and `--resume`
continues it. Prints progress; writes bench/results/real_runs.json.

    python bench/real_runs.py                 # 5 + 5 searches, ~10 min each on 2 cores
    python bench/real_runs.py --resume        # continue a stopped check
    python bench/real_runs.py --smoke         # 1 + 1 tiny searches, for the tests
"""
from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import RESULTS_DIR, command_line, library_versions, load_average, machine_info, progress  # noqa: E402
from search import stats  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SPACE = ROOT / "spaces" / "quick.yaml"
ARMS = ("default", "random")
SEEDS = (0, 1, 2, 3, 4)


def arm_space(base: dict[str, Any], arm: str, seed: int) -> dict[str, Any]:
    """The space file one run searches: quick.yaml as it is (default) or as random search."""
    space = json.loads(json.dumps(base))  # a deep copy of plain YAML data
    space["name"] = f"{arm}-s{seed}"
    space["sampler"] = {"type": "random", "seed": seed}
    if arm == "random":
        space["trials"]["strata"] = "free"
        space["early_terminate"] = {"type": "none"}
    elif arm != "default":
        raise ValueError(f"unknown arm {arm!r}: expected one of {ARMS}")
    return space


def search_value(summary: dict[str, Any]) -> dict[str, Any]:
    """A finished search's value: the best stratum's mean over its re-runs (None without re-runs)."""
    strata = summary["comparison"]["strata"]
    means = {name: block["mean"] for name, block in strata.items() if block.get("n")}
    best = max(means, key=lambda name: means[name]) if means else None
    return {"value": means[best] if best else None, "best_stratum": best, "stratum_means": means,
            "failed_reruns": sum(int(block.get("failed_reruns") or 0) for block in strata.values()),
            "verdict": summary["comparison"].get("verdict")}


def run_one(space: dict[str, Any], work: Path) -> dict[str, Any]:
    """Run one search through run_search.py in its own process and Ray; return its value and cost."""
    space_file = work / f"{space['name']}.yaml"
    space_file.write_text(yaml.safe_dump(space, sort_keys=False))
    ray_tmp = Path(tempfile.mkdtemp(prefix="rrr", dir="/tmp"))  # short: Ray's socket paths are limited
    cmd = [sys.executable, str(ROOT / "run_search.py"), "--space", str(space_file),
           "--storage-path", str(work / "runs"), "--no-report"]
    start = time.perf_counter()
    with (work / f"{space['name']}.log").open("w") as log:
        proc = subprocess.run(cmd, cwd=ROOT, env={**os.environ, "RAY_TMPDIR": str(ray_tmp)},
                              stdout=log, stderr=subprocess.STDOUT)
    wall = time.perf_counter() - start
    console = (work / f"{space['name']}.log").read_text()
    if proc.returncode != 0:
        raise SystemExit(f"run_search.py exited {proc.returncode} for {space['name']}:\n{console[-3000:]}")
    summary = json.loads((work / "runs" / space["name"] / "summary.json").read_text())
    return {**search_value(summary), "wall_time_s": round(wall, 1), "console_lines": len(console.splitlines()),
            "status_counts": summary.get("status_counts"), "reeval_status_counts": summary.get("reeval_status_counts")}


def difference(runs: list[dict[str, Any]]) -> dict[str, Any] | None:
    """default - random over the finished runs' values, with its 95% Welch interval."""
    values = {arm: [r["value"] for r in runs if r["arm"] == arm and r["value"] is not None] for arm in ARMS}
    if min(len(v) for v in values.values()) < 2:
        return None
    a, b = (stats.mean_std(values[arm]) for arm in ARMS)
    diff = stats.welch(a[0], a[1], len(values["default"]), b[0], b[1], len(values["random"]))
    low, high = diff.interval(0.95)
    return {"default_mean": a[0], "default_sd": a[1], "random_mean": b[0], "random_sd": b[1],
            "n": {arm: len(values[arm]) for arm in ARMS}, "estimate_db": diff.estimate,
            "ci95_db": [low, high], "welch_df": diff.df, "p_value": diff.p_value(),
            "failed_searches": sum(1 for r in runs if r["value"] is None)}


def replay_prediction(path: Path) -> dict[str, Any] | None:
    """The seeded replay's predicted default - random difference in dB at 2x, 2 workers (if it exists)."""
    if not path.exists():
        return None
    replay = json.loads(path.read_text())
    return replay.get("prediction_for_real_runs")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    p.add_argument("--resume", action="store_true", help="keep the runs already in the results file")
    p.add_argument("--smoke", action="store_true", help="1 + 1 searches of 6 trials x 2 epochs, 1 re-run a stratum")
    p.add_argument("--out", default=None, help="default bench/results/real_runs[.smoke].json")
    return p.parse_args(argv)


def smoke_space(space: dict[str, Any]) -> dict[str, Any]:
    """A tiny version of a run's space: 6 trials (2 a stratum) of 2 epochs on the small data, 1 re-run each."""
    space["trials"]["num_samples"] = 6
    space["fixed"].update(num_epoch=2, val_vi_len=16, milestones=[1])
    space["reeval"] = {"seeds": 1}
    if space["early_terminate"].get("type") == "asha":
        space["early_terminate"] = {"type": "asha", "grace_period": 1, "reduction_factor": 3}
    return space


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out = Path(args.out) if args.out else RESULTS_DIR / ("real_runs.smoke.json" if args.smoke else "real_runs.json")
    base = yaml.safe_load(DEFAULT_SPACE.read_text())
    seeds = args.seeds[:1] if args.smoke else args.seeds
    done: list[dict[str, Any]] = []
    if args.resume and out.exists():
        done = json.loads(out.read_text())["runs"]
    payload: dict[str, Any] = {
        "benchmark": "real_runs", "command": command_line(), "smoke": args.smoke,
        "preregistration": "bench/preregistration.yaml real_run_check", "machine": machine_info(),
        "versions": library_versions(), "load_average_start": load_average(),
        "space": str(DEFAULT_SPACE.relative_to(ROOT)), "arms": {
            "default": "quick.yaml as it is (balanced strata, random within each, schedule-aware ASHA)",
            "random": "quick.yaml with strata free and early_terminate none (sampler random)"},
        "value": "best stratum's mean over its re-runs (the choosing search run not counted)",
        "runs": done}
    todo = [(seed, arm) for seed in seeds for arm in ARMS
            if not any(r["arm"] == arm and r["seed"] == seed for r in done)]

    def write() -> None:
        """The results file as it stands: every finished search and the difference so far."""
        payload.update(runs=done, difference=difference(done), load_average_end=load_average(),
                       replay_prediction=replay_prediction(RESULTS_DIR / "replay-seeded.json"))
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(payload, indent=2) + "\n")

    with tempfile.TemporaryDirectory(prefix="cvae-real-runs-") as tmp:
        work = Path(tmp)
        for i, (seed, arm) in enumerate(todo, 1):
            space = arm_space(base, arm, seed)
            if args.smoke:
                space = smoke_space(space)
            progress(f"search {i}/{len(todo)}: {arm}, sampler seed {seed}")
            result = run_one(space, work)
            value = result["value"]
            progress(f"  {arm} seed {seed}: {'no re-run finished' if value is None else f'{value:.2f} dB'}"
                     f" ({result['best_stratum']}), {result['wall_time_s']:.0f} s")
            done.append({"arm": arm, "seed": seed, **result})
            write()  # after every search: a stopped check keeps what it finished
    if not todo:  # a --resume with nothing left: the analysis, recomputed
        write()
    d = payload["difference"]
    if d:
        progress(f"default - random: {d['estimate_db']:+.2f} dB, 95% [{d['ci95_db'][0]:+.2f}, {d['ci95_db'][1]:+.2f}]"
                 f" over {d['n']} searches -> {out}")
    else:
        progress(f"fewer than 2 searches an arm: no interval -> {out}")
    return 0 if all(math.isfinite(r["value"]) for r in done if r["value"] is not None) else 1


if __name__ == "__main__":
    raise SystemExit(main())
