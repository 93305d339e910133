"""Training-step throughput: frames/s and achieved FLOP/s of one CVAE training step.

    .venv/bin/python bench/train_step.py            # full: lab + demo dims, ~8 min on an idle 2-core CPU
    .venv/bin/python bench/train_step.py --smoke    # tiny dims, 1 repetition, < 30 s

One step = forward, loss, backward, grad clipping, optimizer step, at the lab dims
(F/L/N/D 128/32/12/192, 32x64, batch 2, 16 frames) and at the demo dims of
spaces/quick.yaml, teacher forcing on and off, for these variants:
  naive         the template's per-frame loop (sequence_loss_reference), fp32, NCHW
  perframe_cl   the same per-frame loop with a channels_last model (is batching what pays?)
  batched       cvae.families.lab4_2024.step.sequence_loss, fp32, NCHW
  batched_cl    + channels_last
  batched_cl_chunked  + the teacher-forced decode in cache-sized chunks on CPU (cvae.families.lab4_2024.step.decode_chunk_frames):
                      the trainer's default step
  batched_cl_bf16     + bf16 autocast, chunked (skipped at lab dims on CPUs without native bf16: see below)
  batched_cl_compile  + torch.compile (fp32, or bf16 where native; --compile); compile time reported apart
Variants are interleaved inside each repetition so that a noisy shared machine
slows them alike; every ratio comes from one run. The machine's own limit is a
large fp32 and bf16 matmul timed in the same run. Validation cost: one
autoregressive pass (inference mode) over the val length at each dims.
Writes bench/results/train_step.json (smoke: train_step.smoke.json) and prints
a markdown table.
"""
from __future__ import annotations

import argparse
import copy
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
import yaml

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from the repo root
    sys.path.insert(0, str(ROOT))

from bench.common import command_line, cpu_bf16_native, machine_info, median, progress, time_once, versions, write_json  # noqa: E402

# The step's pieces live in bench/step_parts.py (the GPU benchmark shares them); imported here
# by name, so `from bench.train_step import Dims, StepRunner, ...` keeps working.
from bench.step_parts import (  # noqa: E402
    LAB,
    SMOKE,
    TRAINER_STEP,
    Dims,
    StepRunner,
    Variant,
    count_step_flops,
    make_batch,
    matmul_peak,
    time_validation,
)
from cvae.core.cuda import use_deterministic_kernels  # noqa: E402
from cvae.families.lab4_2024.model import CVAE  # noqa: E402

_DEMO_DEFAULT = {"F_dim": 32, "L_dim": 8, "N_dim": 4, "D_out_dim": 32, "frame_H": 16, "frame_W": 32,
                 "batch_size": 4, "train_vi_len": 16, "val_vi_len": 64}


def demo_dims(space: Path = ROOT / "spaces" / "quick.yaml") -> Dims:
    """The fixed dims of the CPU demo search (spaces/quick.yaml), or its documented defaults."""
    values = dict(_DEMO_DEFAULT)
    if space.exists():
        fixed = (yaml.safe_load(space.read_text()) or {}).get("fixed") or {}
        values.update({k: fixed[k] for k in _DEMO_DEFAULT if k in fixed})
    return Dims("demo", values["F_dim"], values["L_dim"], values["N_dim"], values["D_out_dim"],
                values["frame_H"], values["frame_W"], values["batch_size"], values["train_vi_len"],
                values["val_vi_len"])


def variants(with_compile: bool, device: torch.device = torch.device("cpu")) -> list[Variant]:
    # Compile on top of the precision the trainer picks on the benchmarked device (cvae.core.precision's rule).
    from cvae.families.lab4_2024.train import resolve_precision

    compile_dtype = resolve_precision("auto", device)
    out = [
        Variant("naive", True, False, torch.float32),
        Variant("perframe_cl", True, True, torch.float32),
        Variant("batched", False, False, torch.float32),
        Variant("batched_cl", False, True, torch.float32),
        TRAINER_STEP,
        Variant("batched_cl_bf16", False, True, torch.bfloat16, chunked=True),
    ]
    if with_compile:
        out.append(Variant("batched_cl_compile", False, True, compile_dtype, compile=True, chunked=True))
    return out




# --- the benchmark -------------------------------------------------------------

def skip_reason(variant: Variant, dims: Dims, device: torch.device, smoke: bool) -> str | None:
    if variant.compile and smoke:
        return "smoke mode: compiling takes longer than the smoke budget"
    if (variant.dtype == torch.bfloat16 and device.type == "cpu" and not cpu_bf16_native()
            and dims.name == "lab"):
        return ("this CPU has no native bf16 (neither AMX, avx512_bf16 nor Arm bf16 in torch.cpu.get_capabilities()), "
                "so bf16 convs run emulated and a lab-dims step would take minutes; "
                "measured at the smaller dims instead")
    return None


def bench_dims(dims: Dims, device: torch.device, variant_list: list[Variant], *, min_reps: int,
               max_reps: int, budget_s: float, smoke: bool) -> dict[str, Any]:
    """Warm up every (variant, teacher forcing) pair, then time them interleaved, rep after rep."""
    torch.manual_seed(0)
    init_state = copy.deepcopy(CVAE(dims.F, dims.L, dims.N, dims.D).state_dict())
    batch = make_batch(dims, device)
    results: dict[str, Any] = {"dims": asdict(dims), "variants": {}}
    runners: dict[str, StepRunner] = {}
    for variant in variant_list:
        reason = skip_reason(variant, dims, device, smoke)
        entry: dict[str, Any] = {"reference": variant.reference, "channels_last": variant.channels_last,
                                 "dtype": str(variant.dtype).replace("torch.", ""), "compile": variant.compile}
        if reason:
            entry["skipped"] = reason
            results["variants"][variant.name] = entry
            progress(f"{dims.name}: skip {variant.name}: {reason[:70]}...")
            continue
        try:
            runner = StepRunner(variant, dims, init_state, batch, device)
            entry["warmup_s"] = {}
            for tf in (True, False):
                progress(f"{dims.name}: warm-up {variant.name} tf={'on' if tf else 'off'}")
                entry["warmup_s"][_tf_key(tf)] = time_once(lambda: runner.step(tf), device)
        except Exception as err:  # noqa: BLE001 - e.g. torch.compile failing on this machine
            entry["skipped"] = f"failed: {type(err).__name__}: {str(err)[:300]}"
            results["variants"][variant.name] = entry
            progress(f"{dims.name}: {variant.name} failed ({type(err).__name__}); skipped")
            continue
        entry["times_s"] = {_tf_key(True): [], _tf_key(False): []}
        results["variants"][variant.name] = entry
        runners[variant.name] = runner

    start = time.perf_counter()
    rep = 0
    while rep < max_reps and (rep < min_reps or time.perf_counter() - start < budget_s):
        for name, runner in runners.items():
            for tf in (True, False):
                seconds = time_once(lambda: runner.step(tf), device)
                results["variants"][name]["times_s"][_tf_key(tf)].append(seconds)
        rep += 1
        progress(f"{dims.name}: repetition {rep} done ({time.perf_counter() - start:.0f}s)")
    results["repetitions"] = rep
    _summarise(results, dims, device)
    return results


def _tf_key(teacher_forcing: bool) -> str:
    return "tf_on" if teacher_forcing else "tf_off"


def _summarise(results: dict[str, Any], dims: Dims, device: torch.device) -> None:
    """Medians, frames/s, FLOP/s, the compile time, and ratios to the naive reference."""
    flops = {(ref, tf): count_step_flops(dims, ref, tf) for ref in (True, False) for tf in (True, False)}
    results["flops_per_step"] = {("reference" if ref else "batched") + "_" + _tf_key(tf): f
                                 for (ref, tf), f in flops.items()}
    for entry in results["variants"].values():
        if "times_s" not in entry:
            continue
        entry["median_s"], entry["frames_per_s"], entry["flops_per_s"] = {}, {}, {}
        for tf in (True, False):
            key = _tf_key(tf)
            med = median(entry["times_s"][key])
            entry["median_s"][key] = med
            entry["frames_per_s"][key] = dims.predicted_frames / med
            entry["flops_per_s"][key] = flops[(entry["reference"], tf)] / med
            if entry["compile"]:
                entry.setdefault("compile_time_s", {})[key] = max(0.0, entry["warmup_s"][key] - med)
    naive = results["variants"].get("naive", {})
    results["speedup_vs_naive"] = {}
    for tf in (True, False):
        key = _tf_key(tf)
        if "median_s" not in naive:
            continue
        results["speedup_vs_naive"][key] = {name: naive["median_s"][key] / e["median_s"][key]
                                            for name, e in results["variants"].items() if "median_s" in e}


def trainer_variant(device: torch.device) -> str:
    """The variant the trainer runs with its defaults (precision auto, channels_last, chunked decode)."""
    from cvae.families.lab4_2024.train import resolve_precision

    return "batched_cl_bf16" if resolve_precision("auto", device) == torch.bfloat16 else "batched_cl_chunked"


def precision_evidence(report: dict[str, Any], device: torch.device) -> dict[str, Any]:
    """The data `precision: auto` is decided from: this machine's native bf16 paths, what auto
    picks here (cvae.core.precision), and the bf16 step's time over the fp32 one (< 1: bf16 faster)."""
    from cvae.core.precision import bf16_support, choose_precision

    picked, reason = choose_precision(device.type, bf16_support())
    ratios: dict[str, dict[str, float]] = {}
    for dims_name, res in report["dims"].items():
        fp32 = res["variants"].get("batched_cl_chunked", {}).get("median_s", {})
        bf16 = res["variants"].get("batched_cl_bf16", {}).get("median_s", {})
        ratios[dims_name] = {tf: bf16[tf] / fp32[tf] for tf in fp32 if tf in bf16 and fp32[tf] > 0}
    return {"bf16_support": bf16_support().as_dict(), "auto": picked, "reason": reason,
            "bf16_over_fp32_step_time": ratios}


def best_real_step(dims_result: dict[str, Any], key: str) -> tuple[str, float] | None:
    """The fastest variant other than the naive reference (the steps we would train with)."""
    timed = {name: e["median_s"][key] for name, e in dims_result["variants"].items()
             if "median_s" in e and name != "naive"}
    if not timed:
        return None
    name = min(timed, key=timed.get)
    return name, timed[name]


def markdown_table(report: dict[str, Any]) -> str:
    by_threads = report.get("matmul_peak_by_threads") or {str(report["machine"]["torch_threads"]): report["matmul_peak"]}
    peaks_text = "; ".join(f"{n} thread(s): fp32 {p['fp32']['flops_per_s'] / 1e9:.1f} GFLOP/s (n={p['fp32']['n']}), "
                           f"bf16 {p['bf16']['flops_per_s'] / 1e9:.2f} GFLOP/s (n={p['bf16']['n']})"
                           for n, p in by_threads.items())
    lines = [f"Machine: {report['machine']['cpu_model']}, torch {report['versions']['torch']}. "
             f"Matmul peak, {peaks_text}.",
             "",
             "| dims | threads | variant | teacher forcing | step (s, median) | frames/s | GFLOP/s | % of fp32 matmul | vs naive |",
             "|---|---|---|---|---|---|---|---|---|"]
    for dims_name, res in report["dims"].items():
        n = res.get("threads", report["machine"]["torch_threads"])
        peak32 = by_threads.get(str(n), report["matmul_peak"])["fp32"]["flops_per_s"]
        for name, e in res["variants"].items():
            for key in ("tf_on", "tf_off"):
                if "median_s" not in e:
                    if key == "tf_on":
                        lines.append(f"| {dims_name} | {n} | {name} | - | skipped | | | | |")
                    continue
                speedup = res["speedup_vs_naive"].get(key, {}).get(name, float("nan"))
                lines.append(f"| {dims_name} | {n} | {name} | {key[3:]} | {e['median_s'][key]:.3f} | "
                             f"{e['frames_per_s'][key]:.1f} | {e['flops_per_s'][key] / 1e9:.1f} | "
                             f"{100 * e['flops_per_s'][key] / peak32:.0f}% | {speedup:.2f}x |")
    lines += ["", "| dims | validation pass | frames | seconds | frames/s |", "|---|---|---|---|---|"]
    for dims_name, res in report["validation"].items():
        for name, v in res.items():
            if "time_s" in v:
                lines.append(f"| {dims_name} | {name} | {v['frames']} | {v['time_s']:.2f} | {v['frames_per_s']:.1f} |")
            else:
                lines.append(f"| {dims_name} | {name} | | skipped | |")
    return "\n".join(lines)


def dims_threads(dims: Dims, args: argparse.Namespace) -> int:
    """Torch threads for these dims: the demo's are what a quick.yaml trial gets (its CPUs per trial)."""
    if dims.name != "demo":
        return args.threads
    if args.demo_threads:
        return args.demo_threads
    space = yaml.safe_load((ROOT / "spaces" / "quick.yaml").read_text()) or {}
    return int(((space.get("trials") or {}).get("resources") or {}).get("cpu", 1))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--smoke", action="store_true", help="tiny dims, 1 repetition (a few seconds)")
    # Opt-in: on the 2-core CPU, compiling the five modules took ~4 min per
    # teacher-forcing mode at demo dims, more than the whole benchmark's budget.
    p.add_argument("--compile", action="store_true", help="add the torch.compile variant (slow to compile on small CPUs)")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--threads", type=int, default=2, help="torch threads at the lab dims (default 2)")
    p.add_argument("--demo-threads", type=int, default=None,
                   help="torch threads at the demo dims (default: quick.yaml's CPUs per trial, what a trial gets)")
    p.add_argument("--min-reps", type=int, default=3, help="timed repetitions at least (after warm-up)")
    p.add_argument("--max-reps", type=int, default=7, help="timed repetitions at most")
    p.add_argument("--lab-budget-s", type=float, default=120.0,
                   help="after --min-reps, add repetitions at lab dims only while under this many seconds")
    p.add_argument("--val-frames", type=int, default=None,
                   help="frames of the lab-dims validation pass (default: the val length, 630)")
    p.add_argument("--variants", default=None,
                   help="comma-separated subset of variants to time (naive is always kept: ratios need it)")
    p.add_argument("--only", choices=["lab", "demo"], default=None, help="run one dims set only")
    p.add_argument("--out", default=None, help="results file name under bench/results/")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("error: --device cuda given, but torch sees no CUDA device", file=sys.stderr)
        return 2
    torch.set_num_threads(1 if args.smoke else args.threads)
    if device.type == "cuda":
        use_deterministic_kernels()  # the trainer's kernels: no TF32, no autotuning (cvae/core/cuda.py)
    if args.smoke:
        dims_list, min_reps, max_reps, budget = [SMOKE], 1, 1, 0.0
    else:
        dims_list = [d for d in (LAB, demo_dims()) if args.only in (None, d.name)]
        min_reps, max_reps, budget = args.min_reps, args.max_reps, args.lab_budget_s
    variant_list = variants(with_compile=args.compile, device=device)
    if args.variants:
        wanted = {"naive", *args.variants.split(",")}
        unknown = wanted - {v.name for v in variants(with_compile=True, device=device)}
        if unknown:
            print(f"error: --variants: unknown variant(s) {sorted(unknown)}", file=sys.stderr)
            return 2
        variant_list = [v for v in variants(with_compile=True, device=device) if v.name in wanted]

    progress(f"matmul peak on {device.type}")
    n32 = 256 if args.smoke else (8192 if device.type == "cuda" else 2048)
    # Emulated bf16 (no avx512_bf16/AMX) runs near 0.3 GFLOP/s: a 2048^3 product would take a minute.
    n16 = n32 if (device.type == "cuda" or cpu_bf16_native()) else min(n32, 256 if args.smoke else 512)
    back_to_back = 10 if device.type == "cuda" else 1

    def peaks_at(threads: int) -> dict[str, Any]:
        torch.set_num_threads(threads)
        return {"threads": threads,
                "fp32": matmul_peak(torch.float32, n32, 1 if args.smoke else 5, device, back_to_back),
                "bf16": matmul_peak(torch.bfloat16, n16, 1 if args.smoke else 3, device, back_to_back)}

    threads = {d.name: (1 if args.smoke else dims_threads(d, args)) for d in dims_list}
    peaks_by_threads = {n: peaks_at(n) for n in sorted(set(threads.values()), reverse=True)}
    peaks = peaks_by_threads[max(peaks_by_threads)]

    report: dict[str, Any] = {
        "benchmark": "train_step", "command": command_line(), "smoke": args.smoke, "device": device.type,
        "machine": machine_info(), "versions": versions(), "matmul_peak": peaks,
        "matmul_peak_by_threads": {str(n): p for n, p in peaks_by_threads.items()}, "threads": threads,
        "dims": {}, "validation": {},
    }
    for dims in dims_list:
        torch.set_num_threads(threads[dims.name])
        peak = peaks_by_threads[threads[dims.name]]
        # the demo dims are cheap: give them the same repetitions, but no extra budget
        res = bench_dims(dims, device, variant_list, min_reps=min_reps, max_reps=max_reps if dims.name == "lab" else min_reps,
                         budget_s=budget if dims.name == "lab" else 0.0, smoke=args.smoke)
        for entry in res["variants"].values():
            if "flops_per_s" in entry:
                entry["fraction_of_fp32_matmul"] = {k: v / peak["fp32"]["flops_per_s"] for k, v in entry["flops_per_s"].items()}
                entry["fraction_of_bf16_matmul"] = {k: v / peak["bf16"]["flops_per_s"] for k, v in entry["flops_per_s"].items()}
        res["threads"] = threads[dims.name]
        report["dims"][dims.name] = res
        report["validation"][dims.name] = bench_validation(dims, device, args)

    headline = report["dims"][dims_list[0].name]
    best = best_real_step(headline, "tf_on")
    naive = headline["variants"]["naive"]["median_s"]["tf_on"]
    # Headline: teacher forcing on (the template's first epochs run with tfr = 1).
    report["speedup_vs_naive_headline"] = {"dims": dims_list[0].name, "teacher_forcing": "on",
                                           "best_variant": best[0], "naive_median_s": naive,
                                           "best_median_s": best[1], "speedup": naive / best[1]}
    # "yours" in the definition: the step the trainer runs by default, not the best variant
    default = trainer_variant(device)
    default_s = headline["variants"].get(default, {}).get("median_s", {}).get("tf_on")
    report["trainer_default_variant"] = default
    if "lab" in report["dims"] and default_s:
        report["speedup_vs_naive_lab_dims"] = naive / default_s
        report["speedup_vs_naive_lab_dims_tf_off"] = (
            headline["variants"]["naive"]["median_s"]["tf_off"] / headline["variants"][default]["median_s"]["tf_off"])
    report["precision_rule"] = precision_evidence(report, device)
    report["markdown"] = markdown_table(report)
    name = args.out or ("train_step.smoke.json" if args.smoke else "train_step.json")
    path = write_json(name, report)
    print(report["markdown"])
    print(f"\nspeedup vs naive ({dims_list[0].name} dims, tf on): {naive / best[1]:.2f}x ({best[0]}); wrote {path}")
    return 0


def bench_validation(dims: Dims, device: torch.device, args: argparse.Namespace) -> dict[str, Any]:
    frames = dims.val_frames
    if dims.name == "lab" and args.val_frames:
        frames = args.val_frames
    init_state = CVAE(dims.F, dims.L, dims.N, dims.D).state_dict()
    out: dict[str, Any] = {}
    for name, cl, dtype in (("fp32_nchw", False, torch.float32), ("fp32_cl", True, torch.float32),
                            ("bf16_cl", True, torch.bfloat16)):
        if (dtype == torch.bfloat16 and device.type == "cpu" and not cpu_bf16_native() and dims.name == "lab"):
            out[name] = {"skipped": "no native bf16 on this CPU (see the step variants)"}
            continue
        progress(f"{dims.name}: validation pass {name} over {frames} frames")
        out[name] = time_validation(dims, init_state, device, cl, dtype, frames)
    return out


if __name__ == "__main__":
    sys.exit(main())
