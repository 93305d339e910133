"""Adam's fused kernel on a CPU: the optimizer step alone and the whole training step.

    .venv/bin/python bench/adam_fused.py            # demo dims on 1 thread (a quick.yaml trial), ~2 min
    .venv/bin/python bench/adam_fused.py --smoke    # tiny dims, seconds
    .venv/bin/python bench/adam_fused.py --trials 4 # + 4 whole demo trials per arm, ~6 min

torch's Adam on a CPU defaults to its per-tensor loop (foreach and fused are
off unless asked for); the lab4-2024 CVAE has 206 parameter tensors, so one
optimizer step is ~2000 small ops. The trainer now asks for the fused kernel
on every device (cvae.core.training.optimizer_device_options). This times, in one
run and interleaved, the trainer's step (bench/step_parts.StepRunner, channels_last,
chunked decode, clipping) with Adam default / foreach / fused, and the optimizer
step alone on random gradients.

With --trials K: K whole quick.yaml trials (6 epochs, validated every epoch as in
the search, on the small synthetic preset) trained with the default and with the
fused Adam, in ABBA order so that a drift of the machine's speed hits both arms
alike; their wall times say what the step's gain is worth to a search's trials.

Success rule, set before the run: fused is kept on CPUs if its whole step is at
least 3% faster than the default's with teacher forcing on and off (median of
the interleaved repetitions), and 5 optimizer steps on the same gradients leave
the parameters within 1e-6 of the default's (1% of one lr-1e-4 update). Whole
training runs then drift apart as any change in floating-point order makes them
(training is chaotic), which is why the rule compares the optimizer on the same
gradients. Writes bench/results/adam_fused.json (smoke:
adam_fused.smoke.json).
"""
from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

import torch

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from the repo root
    sys.path.insert(0, str(ROOT))

from bench.common import command_line, machine_info, progress, versions, write_json  # noqa: E402
from bench.step_parts import SMOKE, TRAINER_STEP, StepRunner, make_batch  # noqa: E402
from bench.train_step import demo_dims  # noqa: E402
from cvae.families.lab4_2024.model import CVAE  # noqa: E402

OPTIONS: dict[str, dict[str, bool]] = {"default": {}, "foreach": {"foreach": True}, "fused": {"fused": True}}
MIN_GAIN = 0.03
MAX_GAP = 1e-6  # 1% of one lr-1e-4 update: rounding, not another algorithm


def step_fn(runner: StepRunner, options: dict[str, bool]) -> Callable[[bool], None]:
    """The runner's training step with Adam built with `options`."""
    runner.optimizer = torch.optim.Adam(runner.model.parameters(), lr=1e-4, **options)
    return runner.step


def optimizer_alone(dims: Any, options: dict[str, bool], steps: int) -> float:
    """Milliseconds of one Adam step on random gradients (no forward or backward)."""
    torch.manual_seed(0)
    model = CVAE(dims.F, dims.L, dims.N, dims.D)
    for p in model.parameters():
        p.grad = torch.randn_like(p)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4, **options)
    optimizer.step()
    start = time.perf_counter()
    for _ in range(steps):
        optimizer.step()
    return (time.perf_counter() - start) / steps * 1000


def parameter_gap(dims: Any, steps: int) -> float:
    """Largest absolute difference between default and fused Adam's parameters after `steps`
    steps on the same gradients (random, magnitudes 1e-8 to 1, as a real backward's span)."""
    torch.manual_seed(0)
    models = {name: CVAE(dims.F, dims.L, dims.N, dims.D) for name in ("default", "fused")}
    models["fused"].load_state_dict(models["default"].state_dict())
    grads = [torch.randn_like(p) * 10 ** float(torch.empty(1).uniform_(-8, 0)) for p in models["default"].parameters()]
    optimizers = {name: torch.optim.Adam(m.parameters(), lr=1e-4, **OPTIONS[name]) for name, m in models.items()}
    for _ in range(steps):
        for name, model in models.items():
            for p, g in zip(model.parameters(), grads):
                p.grad = g.clone()
            optimizers[name].step()
    return max(float((a - b).detach().abs().max()) for a, b in zip(models["default"].parameters(),
                                                           models["fused"].parameters()))


TRIAL_SETTINGS = [  # one per KL strategy and teacher-forcing mode: the demo's arms
    {"kl_anneal_type": "Cyclical", "kl_anneal_cycle": 2, "kl_anneal_ratio": 0.5, "tfr": 0.0},
    {"kl_anneal_type": "Monotonic", "kl_anneal_ratio": 0.5, "tfr": 1.0},
    {"kl_anneal_type": "None", "tfr": 0.0},
    {"kl_anneal_type": "Cyclical", "kl_anneal_cycle": 3, "kl_anneal_ratio": 1.0, "tfr": 1.0},
]


def whole_trials(count: int, smoke: bool) -> dict[str, Any]:
    """Wall seconds of `count` demo trials per arm (default, fused), ABBA-ordered, on 1 thread."""
    import tempfile

    import cvae.core.training as training
    from bench.common import demo_fixed, small_demo_data
    from cvae.families.lab4_2024.train import TrainConfig, fit

    fixed = {**demo_fixed(smoke, torch_threads=1, lr=2e-3, optimizer="Adam"), "val_every": 1}
    if smoke:
        fixed["num_epoch"] = 1
    fused_options = training.optimizer_device_options
    arms = {"default": lambda optimizer, device_type: {}, "fused": fused_options}
    times: dict[str, list[float]] = {"default": [], "fused": []}
    with tempfile.TemporaryDirectory() as tmp:
        data = small_demo_data(Path(tmp), fixed)
        for i in range(count):
            settings = TRIAL_SETTINGS[i % len(TRIAL_SETTINGS)]
            order = ("default", "fused") if i % 2 == 0 else ("fused", "default")
            for arm in order:
                training.optimizer_device_options = arms[arm]
                try:
                    start = time.perf_counter()
                    fit(TrainConfig(**{**fixed, **settings}), data)
                    times[arm].append(time.perf_counter() - start)
                finally:
                    training.optimizer_device_options = fused_options
                progress(f"trial {i + 1}/{count} ({arm}): {times[arm][-1]:.1f} s")
    total = {arm: sum(t) for arm, t in times.items()}
    return {"count": count, "settings": [TRIAL_SETTINGS[i % len(TRIAL_SETTINGS)] for i in range(count)],
            "num_epoch": fixed["num_epoch"], "wall_s": times, "total_s": total,
            "speedup": total["default"] / total["fused"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny dims, 2 repetitions")
    parser.add_argument("--reps", type=int, default=15, help="interleaved repetitions per teacher-forcing mode")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (a quick.yaml trial has 1)")
    parser.add_argument("--trials", type=int, default=0, help="also time this many whole demo trials per arm")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    dims = SMOKE if args.smoke else demo_dims()
    reps = 2 if args.smoke else args.reps
    torch.manual_seed(0)
    init = copy.deepcopy(CVAE(dims.F, dims.L, dims.N, dims.D).state_dict())
    batch = make_batch(dims, torch.device("cpu"))
    steps = {name: step_fn(StepRunner(TRAINER_STEP, dims, init, batch, torch.device("cpu")), options)
             for name, options in OPTIONS.items()}
    report: dict[str, Any] = {"benchmark": "adam_fused", "command": command_line(), "smoke": args.smoke,
                              "machine": machine_info(), "versions": versions(), "threads": args.threads,
                              "dims": dims.name, "repetitions": reps, "min_gain": MIN_GAIN, "step_ms": {}}
    for tf in (True, False):
        key = "tf_on" if tf else "tf_off"
        for step in steps.values():
            step(tf)
            step(tf)
        times: dict[str, list[float]] = {name: [] for name in steps}
        for rep in range(reps):
            for name, step in steps.items():
                start = time.perf_counter()
                step(tf)
                times[name].append((time.perf_counter() - start) * 1000)
            progress(f"{key}: repetition {rep + 1}/{reps}")
        report["step_ms"][key] = {name: {"times": t, "median": statistics.median(t)} for name, t in times.items()}
    report["optimizer_step_ms"] = {name: optimizer_alone(dims, options, 5 if args.smoke else 50)
                                   for name, options in OPTIONS.items()}
    report["parameter_gap_after_5_steps"] = parameter_gap(dims, 5)
    if args.trials:
        report["trials"] = whole_trials(args.trials, args.smoke)
    speedups = {key: {name: entry["default"]["median"] / entry[name]["median"] for name in entry}
                for key, entry in report["step_ms"].items()}
    report["speedup_vs_default"] = speedups
    report["rule_met"] = bool(all(s["fused"] >= 1 + MIN_GAIN for s in speedups.values())
                              and report["parameter_gap_after_5_steps"] <= MAX_GAP)
    path = write_json("adam_fused.smoke.json" if args.smoke else "adam_fused.json", report)
    print(f"Machine: {report['machine']['cpu_model']}, {args.threads} thread(s), {dims.name} dims")
    print("| Adam | step, tf on (ms) | step, tf off (ms) | vs default, on / off | optimizer step alone (ms) |")
    print("|---|---|---|---|---|")
    for name in OPTIONS:
        on, off = (report["step_ms"][k][name]["median"] for k in ("tf_on", "tf_off"))
        print(f"| {name} | {on:.1f} | {off:.1f} | {speedups['tf_on'][name]:.2f}x / {speedups['tf_off'][name]:.2f}x "
              f"| {report['optimizer_step_ms'][name]:.1f} |")
    print(f"parameters after 5 optimizer steps on the same gradients, fused vs default: "
          f"{report['parameter_gap_after_5_steps']:.1e} at most; rule (>= {1 + MIN_GAIN:.2f}x both modes, "
          f"gap <= {MAX_GAP:.0e}): {'met' if report['rule_met'] else 'missed'}")
    if args.trials:
        t = report["trials"]
        print(f"{t['count']} whole demo trials per arm: default {t['total_s']['default']:.0f} s, "
              f"fused {t['total_s']['fused']:.0f} s ({t['speedup']:.2f}x)")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
