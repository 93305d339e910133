"""What `precision: auto` decides on this machine: the real probe (cvae/core/precision_probe.py)
at the demo dims (spaces/quick.yaml) and the lab dims (spaces/lab.yaml), with its timings.

    .venv/bin/python bench/precision_probe.py            # demo on 1 thread, lab on 2 threads (a trial's share)
    .venv/bin/python bench/precision_probe.py --smoke    # tiny dims, 1 thread, seconds
    .venv/bin/python bench/precision_probe.py --only lab --threads 1 --repeats 1 --out precision_probe.lab-1thread.json

Each case is probed `--repeats` times, each time with an empty cache of its own (so it
measures; the user's cache is neither read nor written), to show how stable the decision
is on a shared machine. Recorded per case: the space, device, threads, the probe's key
(CPU model, bf16 flags, torch version, workload), every probe's decision, timings and
wall time, and what the CPU flag rule (the fallback) would have said. Where bf16 would
be emulated (no AMX, avx512_bf16 or Arm bf16) `auto` measures nothing and picks fp32;
`--measure-emulated` times both precisions anyway, as the probe would. Writes
bench/results/precision_probe.json (smoke: precision_probe.smoke.json).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from the repo root
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from bench.common import command_line, load_average, machine_info, progress, versions, write_json  # noqa: E402
from cvae.core.precision_probe import (  # noqa: E402
    TIMED_STEPS,
    WARMUP_STEPS,
    decide_run_precision,
    emulated_bf16,
    pick_precision,
    probe_key,
    run_timings,
)
from search.space import load_space  # noqa: E402

# (name, space file, torch threads): a quick.yaml trial has 1 CPU, a lab.yaml trial 2.
CASES = [("demo", "spaces/quick.yaml", 1), ("lab", "spaces/lab.yaml", 2)]
SMOKE_VALUES = dict(batch_size=2, frame_H=8, frame_W=16, F_dim=8, L_dim=4, N_dim=4, D_out_dim=8,
                    train_vi_len=3, val_vi_len=4)


def probe_case(family: Any, cfg: Any, threads: int, repeats: int, measure_emulated: bool = False
               ) -> dict[str, Any]:
    """`repeats` real probes of `cfg` on the CPU, each from an empty cache.

    Where bf16 would be emulated, `auto` measures nothing (fp32 at once): that decision is
    recorded, or with `measure_emulated` the probe's own timing and rule run anyway, to show
    what skipping it saves."""
    cfg = cfg.replace(precision="auto")
    device = torch.device("cpu")
    key = probe_key(device, threads, family.probe_workload(cfg))
    emulated = emulated_bf16(device)
    runs = []
    for i in range(repeats):
        start = time.perf_counter()
        if emulated is not None and measure_emulated:
            timings = run_timings(family, cfg, device, threads)
            decision = pick_precision(timings)
        elif emulated is not None:
            decision = decide_run_precision(family, cfg, device, threads, cache=None)
            timings = None
        else:
            decision, timings = _measured(family, cfg, device, threads, key)
        wall = time.perf_counter() - start
        runs.append({**decision.as_dict(), "timings_s": timings, "wall_s": wall, "load_average": load_average()})
        progress(f"  probe {i + 1}/{repeats}: {decision.describe()} in {wall:.1f} s")
    picks = [r["precision"] for r in runs]
    return {"key": key, "runs": runs, "decisions": picks, "stable": len(set(picks)) == 1,
            "emulated_bf16": emulated is not None, "measured_anyway": bool(emulated is not None and measure_emulated)}


def _measured(family: Any, cfg: Any, device: torch.device, threads: int, key: dict[str, Any]
              ) -> tuple[Any, dict[str, list[float]]]:
    """One probe as `precision: auto` runs it, from an empty cache of its own."""
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "precision.json"
        decision = decide_run_precision(family, cfg, device, threads, cache=cache)
        if decision.source != "measured":
            raise RuntimeError(f"the probe did not measure: {decision.describe()}")
        [entry] = json.loads(cache.read_text())["entries"]
        if json.dumps(entry["key"], sort_keys=True) != json.dumps(key, sort_keys=True):
            raise RuntimeError(f"the probe cached under another key than {key}: {entry['key']}")
    return decision, entry["timings"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny dims, 1 thread, 1 probe")
    parser.add_argument("--repeats", type=int, default=None, help="probes per case (default 3, smoke 1)")
    parser.add_argument("--only", choices=[name for name, _, _ in CASES], help="probe one case only")
    parser.add_argument("--threads", type=int, default=None, help="override the cases' thread counts")
    parser.add_argument("--measure-emulated", action="store_true",
                        help="where bf16 would be emulated (auto measures nothing there), time both precisions anyway")
    parser.add_argument("--out", default=None, help="results file name in bench/results/ (default precision_probe.json)")
    args = parser.parse_args(argv)
    repeats = args.repeats or (1 if args.smoke else 3)
    from cvae.families import get_family

    report: dict[str, Any] = {"command": command_line(), "smoke": args.smoke, "machine": machine_info(),
                              "versions": versions(), "rule": {
                                  "warmup_steps": WARMUP_STEPS, "timed_steps": TIMED_STEPS,
                                  "bf16_if": "median bf16 step < median fp32 step * (1 - max(0.05, spread))"},
                              "cases": {}}
    fallback = report["machine"]["auto_precision"]["cpu"]
    if args.smoke:
        family = get_family("lab4-2024")
        cases = [("smoke", "(tiny lab4-2024 dims)", family, family.config_from_dict(SMOKE_VALUES), 1)]
    else:
        cases = []
        for name, path, threads in CASES:
            if args.only and name != args.only:
                continue
            space = load_space(ROOT / path)
            cases.append((name, path, space.family, space.train_config({}), args.threads or threads))
    for name, path, family, cfg, threads in cases:
        progress(f"{name}: {path}, {threads} thread(s)")
        result = probe_case(family, cfg, threads, repeats, args.measure_emulated)
        report["cases"][name] = {"space": path, "family": family.name, "threads": threads, "device": "cpu",
                                 **result, "flag_rule": fallback}
    path = write_json("precision_probe.smoke.json" if args.smoke else (args.out or "precision_probe.json"), report)
    for name, case in report["cases"].items():
        texts = "; ".join(r["text"] for r in case["runs"])
        print(f"{name} ({case['threads']} thread(s)): {texts}")
    print(f"flag rule (fallback): {fallback['precision']} ({fallback['reason']})")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
