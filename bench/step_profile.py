"""Where the demo-dims training step spends its time, and one lever tried on it.

    .venv/bin/python bench/step_profile.py            # demo dims, 1 thread (a quick.yaml trial), ~1 min
    .venv/bin/python bench/step_profile.py --smoke    # tiny dims, seconds

1) torch.profiler over 10 of the trainer's steps (bench/step_parts.StepRunner:
   channels_last, chunked decode, clipping, Adam as the trainer builds it), per
   teacher-forcing mode: self CPU time per op, grouped into convolutions (forward
   and backward; THNN's `_slow_conv2d` is the path PyTorch picks for 1x1 convs on
   one thread at small batches), the optimizer, and everything else.
2) The lever the profile suggests: the 1x1 convs as a matmul over channels
   (F.linear on the channels_last view, the same arithmetic), timed against the
   unchanged step, interleaved. Kept only if it is at least 5% faster in both
   modes (rule set before the run).
Writes bench/results/step_profile.json (smoke: step_profile.smoke.json).
"""
from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
import types
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from the repo root
    sys.path.insert(0, str(ROOT))

from bench.common import command_line, machine_info, progress, versions, write_json  # noqa: E402
from bench.step_parts import SMOKE, TRAINER_STEP, StepRunner, make_batch  # noqa: E402
from bench.train_step import demo_dims  # noqa: E402
from cvae.families.lab4_2024.model import CVAE  # noqa: E402

MIN_GAIN = 0.05
GROUPS = {"convolution": ("conv", "Convolution"), "optimizer": ("Optimizer.step", "Adam", "_fused_adam")}


def conv1x1_as_linear(model: torch.nn.Module) -> int:
    """Route every plain 1x1 conv through F.linear on the channels_last view; returns how many."""
    def forward(self: torch.nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
        weight = self.weight.view(self.out_channels, self.in_channels)
        return F.linear(x.permute(0, 2, 3, 1), weight, self.bias).permute(0, 3, 1, 2)

    count = 0
    for module in model.modules():
        if (isinstance(module, torch.nn.Conv2d) and module.kernel_size == (1, 1) and module.groups == 1
                and module.stride == (1, 1) and module.padding == (0, 0)):
            module.forward = types.MethodType(forward, module)
            count += 1
    return count


def profile_ops(runner: StepRunner, teacher_forcing: bool, steps: int) -> dict[str, Any]:
    from torch.profiler import ProfilerActivity, profile

    for _ in range(2):
        runner.step(teacher_forcing)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            runner.step(teacher_forcing)
    events = prof.key_averages()
    # Self times add up to the total; the optimizer's record_function holds its ops' self time apart.
    total = sum(e.self_cpu_time_total for e in events)
    top = sorted(events, key=lambda e: e.self_cpu_time_total, reverse=True)[:15]
    grouped = {name: 0.0 for name in (*GROUPS, "other")}
    for e in events:
        group = next((g for g, marks in GROUPS.items() if any(m in e.key for m in marks)), "other")
        grouped[group] += e.self_cpu_time_total
    return {"steps": steps, "self_cpu_ms_per_step": total / 1000 / steps,
            "share": {g: v / total for g, v in grouped.items()},
            "top_ops": [{"op": e.key, "calls_per_step": e.count / steps,
                         "self_ms_per_step": e.self_cpu_time_total / 1000 / steps} for e in top]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny dims, few steps")
    parser.add_argument("--reps", type=int, default=15, help="interleaved timed repetitions per mode")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    dims = SMOKE if args.smoke else demo_dims()
    reps, steps = (2, 2) if args.smoke else (args.reps, 10)
    torch.manual_seed(0)
    init = copy.deepcopy(CVAE(dims.F, dims.L, dims.N, dims.D).state_dict())
    batch = make_batch(dims, torch.device("cpu"))
    # StepRunner builds Adam as the trainer does (cvae.core.training.optimizer_device_options).
    base, linear = (StepRunner(TRAINER_STEP, dims, init, batch, torch.device("cpu")) for _ in range(2))
    swapped = conv1x1_as_linear(linear.model)
    report: dict[str, Any] = {"benchmark": "step_profile", "command": command_line(), "smoke": args.smoke,
                              "machine": machine_info(), "versions": versions(), "threads": 1, "dims": dims.name,
                              "profile": {}, "conv1x1_as_linear": {"convs_swapped": swapped, "min_gain": MIN_GAIN}}
    with torch.no_grad():
        reference = base.loss(True)
        gap = float((reference - linear.loss(True)).abs() / reference.abs())
    report["conv1x1_as_linear"]["loss_relative_gap"] = gap
    for tf in (True, False):
        key = "tf_on" if tf else "tf_off"
        progress(f"{key}: profiling {steps} steps")
        report["profile"][key] = profile_ops(base, tf, steps)
        times: dict[str, list[float]] = {"trainer": [], "linear": []}
        for runner in (base, linear):
            runner.step(tf)
        for _ in range(reps):
            for name, runner in (("trainer", base), ("linear", linear)):
                start = time.perf_counter()
                runner.step(tf)
                times[name].append((time.perf_counter() - start) * 1000)
        medians = {name: statistics.median(t) for name, t in times.items()}
        report["conv1x1_as_linear"][key] = {"times_ms": times, "median_ms": medians,
                                            "speedup": medians["trainer"] / medians["linear"]}
        progress(f"{key}: 1x1 convs as linear {report['conv1x1_as_linear'][key]['speedup']:.2f}x")
    lever = report["conv1x1_as_linear"]
    lever["rule_met"] = all(lever[k]["speedup"] >= 1 + MIN_GAIN for k in ("tf_on", "tf_off"))
    path = write_json("step_profile.smoke.json" if args.smoke else "step_profile.json", report)
    print(f"Machine: {report['machine']['cpu_model']}, 1 thread, {dims.name} dims")
    for key, prof in report["profile"].items():
        shares = ", ".join(f"{g} {v:.0%}" for g, v in prof["share"].items())
        print(f"{key}: {prof['self_cpu_ms_per_step']:.1f} ms of CPU per step: {shares}")
    print(f"1x1 convs as linear ({swapped} convs): {lever['tf_on']['speedup']:.2f}x / {lever['tf_off']['speedup']:.2f}x "
          f"(tf on / off); rule (>= {1 + MIN_GAIN:.2f}x both): {'met' if lever['rule_met'] else 'missed'}")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
