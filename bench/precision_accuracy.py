"""Does bf16 training cost accuracy at the demo's dims? The accuracy guard of `precision: auto` (issue 24, item 2).

`precision: auto` picks bf16 where a probe measures it faster (cvae/core/precision_probe.py). Speed is
not enough: the choice must not change what a search finds. This trains one demo configuration
(spaces/quick.yaml's fixed settings, the noise benchmark's None / tfr 0 / Adam 3e-3 configuration)
with the same training seeds in fp32 and in bf16 (the trainer's own step, channels_last; validation
generates in fp32 either way), on one thread as a demo trial runs, and compares the final val_psnr
seed by seed (paired: a seed fixes the initial weights, the batch order and the coins, so the pair
differs only by the precision).

Success rule, fixed before the run: bf16 is accurate enough when the 90% paired t interval of
mean(bf16 - fp32) lies inside +-TOLERANCE_DB (two one-sided tests at 5%). TOLERANCE_DB is half the
demo's measured training-seed sd (1.56 dB, bench/results/noise.json): a precision switch may move a
result by no more than half of what a new seed moves it. Also reported: the step-time ratio in the
same run, and the wall time of the fits.

    python bench/precision_accuracy.py [--seeds 1 2 3 4] [--smoke] [--out FILE]
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (  # noqa: E402
    RESULTS_DIR,
    command_line,
    demo_fixed,
    load_average,
    machine_info,
    progress,
    small_demo_data,
    versions,
)
from cvae.families.lab4_2024.config import TrainConfig  # noqa: E402
from cvae.families.lab4_2024.train import Trainer  # noqa: E402
from search import stats  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CONFIG = dict(kl_anneal_type="None", tfr=0.0, optimizer="Adam", lr=3e-3)
NOISE_FILE = RESULTS_DIR / "noise.json"
SEED_SD_FALLBACK_DB = 1.56  # noise.json's run_sd when the file is absent (a fresh smoke run)
PRECISIONS = ("fp32", "bf16")


def seed_sd_db() -> float:
    """The demo's training-seed sd of one run's val_psnr, from the committed noise benchmark."""
    if NOISE_FILE.exists():
        return float(json.loads(NOISE_FILE.read_text())["analysis"]["seeds_before"]["run_sd"])
    return SEED_SD_FALLBACK_DB


def fit(config: dict[str, Any], data: Any) -> dict[str, Any]:
    """Train one configuration to the end and validate once: val_psnr, training seconds, the dtype used."""
    cfg = TrainConfig(**config)
    trainer = Trainer(cfg, data)
    start = time.perf_counter()
    for _ in range(cfg.num_epoch):
        trainer.run_epoch()
    train_s = time.perf_counter() - start
    psnr = float(trainer.validate_draws(1, cfg.seed).mean())
    return {"val_psnr": psnr, "train_s": train_s, "dtype": str(trainer.dtype)}  # what the trainer really used


def paired_equivalence(fp32: list[float], bf16: list[float], tolerance: float) -> dict[str, Any]:
    """mean(bf16 - fp32) over seeds, its 90% paired t interval, and the two one-sided tests' verdict."""
    diffs = [b - a for a, b in zip(fp32, bf16)]
    mean, sd = stats.mean_std(diffs)
    if sd is None:
        return {"mean_db": mean, "ci90_db": None, "equivalent": False, "diffs_db": diffs}
    diff = stats.Difference(mean, sd / math.sqrt(len(diffs)), float(len(diffs) - 1))
    equivalent, (low, high) = diff.equivalent(tolerance, 0.05)
    return {"mean_db": mean, "ci90_db": [low, high], "equivalent": equivalent, "diffs_db": diffs,
            "sd_of_diff_db": sd}


def read_earlier_stage(path: Path, fixed: dict[str, Any], seeds: list[int]) -> dict[str, Any]:
    """The results file --extend names, checked before anything trains: the same settings, no seed twice."""
    earlier = json.loads(path.read_text())
    if earlier["fixed"] != fixed or earlier["config"] != CONFIG:
        raise SystemExit(f"error: {path}: other settings than this run's; --extend joins the same settings only")
    clash = set(earlier["seeds"]) & set(seeds)
    if clash:
        raise SystemExit(f"error: {path} already has seeds {sorted(clash)}; give new --seeds")
    return earlier


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4])
    p.add_argument("--smoke", action="store_true", help="tiny dims, 1 epoch, 2 seeds: checks the script")
    p.add_argument("--out", type=Path, default=None, help="default bench/results/precision_accuracy.json")
    p.add_argument("--extend", type=Path, default=None, metavar="JSON",
                   help="an earlier results file of the same settings: its seeds join this run's analysis "
                        "(a second stage; both stages are kept in the new file)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out = args.out or RESULTS_DIR / "precision_accuracy.json"
    torch.set_num_threads(1)  # as a demo trial runs (trials.resources.cpu 1)
    fixed = demo_fixed(args.smoke)
    seeds = args.seeds[:2] if args.smoke else args.seeds
    stage_seeds = list(seeds)
    earlier = read_earlier_stage(args.extend, fixed, seeds) if args.extend is not None else None
    # a one-stage file has no "stages": its own seeds and command are its stage
    earlier_stages = [] if earlier is None else earlier.get(
        "stages", [{"seeds": earlier["seeds"], "command": earlier["command"]}])
    tolerance = seed_sd_db() / 2
    runs: dict[str, list[dict[str, Any]]] = {p: [] for p in PRECISIONS}
    load_start = load_average()
    with tempfile.TemporaryDirectory() as tmp:
        progress("generating the small synthetic preset")
        data = small_demo_data(Path(tmp), fixed)
        total = len(seeds) * len(PRECISIONS)
        for i, seed in enumerate(seeds):
            for j, precision in enumerate(PRECISIONS):  # interleaved: load drifts hit both alike
                row = {"seed": seed, **fit({**fixed, **CONFIG, "seed": seed, "precision": precision}, data)}
                runs[precision].append(row)
                progress(f"[{2 * i + j + 1}/{total}] seed {seed} {precision}: {row['val_psnr']:.2f} dB "
                         f"(train {row['train_s']:.0f} s)")
    if earlier is not None:  # the earlier stage's pairs come first, in seed order as they ran
        for precision in PRECISIONS:
            runs[precision] = earlier["runs"][precision] + runs[precision]
        seeds = earlier["seeds"] + seeds
    result = paired_equivalence([r["val_psnr"] for r in runs["fp32"]], [r["val_psnr"] for r in runs["bf16"]],
                                tolerance)
    train_ratio = statistics.median(r["train_s"] for r in runs["fp32"]) / statistics.median(
        r["train_s"] for r in runs["bf16"])
    payload = {
        "benchmark": "precision_accuracy", "command": command_line(), "smoke": args.smoke,
        "machine": machine_info(), "versions": versions(), "load_average": [load_start, load_average()],
        "fixed": fixed, "config": CONFIG, "seeds": seeds, "threads": 1,
        "stages": earlier_stages + [{"seeds": stage_seeds, "command": command_line()}],
        "rule": "bf16 accurate enough when the 90% paired t interval of mean(bf16 - fp32) lies inside "
                "+-tolerance; tolerance = half the demo's training-seed sd (bench/results/noise.json)",
        "tolerance_db": tolerance, "runs": runs, "analysis": {**result, "fp32_over_bf16_train_time": train_ratio},
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(payload, indent=2) + "\n")
    progress(f"wrote {out}")
    ci = result["ci90_db"]
    print(f"bf16 - fp32: {result['mean_db']:+.2f} dB"
          + (f", 90% [{ci[0]:+.2f}, {ci[1]:+.2f}]" if ci else "")
          + f" vs tolerance +-{tolerance:.2f} dB: {'equivalent' if result['equivalent'] else 'not shown equivalent'}; "
          f"training fp32/bf16 time {train_ratio:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
