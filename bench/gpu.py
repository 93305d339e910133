"""The GPU path measured: training step, a full fit, precision, determinism's cost and packing.

    python bench/gpu.py --out DIR          # on a CUDA machine: ~7 min on an H100 before compiling
    python bench/gpu.py --out DIR --sections steps,compile   # a subset (the lease's 10-minute calls)
    python bench/gpu.py --smoke --out DIR  # tiny dims, runs on a CPU too (checks the script)

Runs with torch alone (no Ray, Optuna or Plotly on its path). Every section runs
in its own child process with a time limit, and each writes its result as soon
as it has it: a section that crashes or runs out of time loses only itself, and
a run cut off early still leaves DIR/gpu.json with what finished.

Sections, in order (cheap and essential first, compiling last):
  environment   GPU, driver, torch/CUDA/cuDNN, native bf16, what `precision: auto` picks
  peak          bf16 and fp32 (TF32 off, as the trainer runs) matmul peaks, back-to-back 8192^3 products
  steps         the training-step table at lab dims: the naive per-frame fp32 loop, the trainer's
                batched step in fp32 / bf16, NCHW / channels_last; frames/s, TFLOP/s, % of the
                bf16 peak, peak memory, CUDA kernels per step (profiler)
  fit           cvae.families.lab4_2024.train.fit at lab dims on synthetic lab data made here (a reduced-length
                preset), fp32 vs bf16, same steps; and the bf16 model's validation generated in
                fp32 (what the trainer does) vs bf16
  determinism   the trainer's deterministic cuDNN without TF32 vs autotuned kernels with TF32
  packing       1, 2, 4, 8 trainer processes on the one GPU at once (CUDA_VISIBLE_DEVICES set as
                Ray sets it): aggregate frames/s, per-process slowdown, GPU memory per process
  compile       torch.compile of the trainer's step, default mode and "reduce-overhead" (CUDA
                graphs); compile time apart from the step time
Writes DIR/gpu.json and, unless --smoke, bench/results/gpu.json (gpu.<sections>.json for a
subset). Nothing else goes under DIR: the sections' parts and generated data live in a
temporary folder. Prints the tables last.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from the repo root
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from bench.common import progress, sync  # noqa: E402
from bench.gpu_sections import (  # noqa: E402
    bench_device,
    bench_dims_from,
    default_variant_name,
    dims_config,
    section_compile,
    section_determinism,
    section_environment,
    section_fit,
    section_peak,
    section_steps,
    write_part,
)

SECTIONS = ("environment", "peak", "steps", "fit", "determinism", "packing", "compile")
# Seconds each section may take at most. Measured on an H100: environment 4 s, peak 5 s,
# steps ~115 s, fit 74 s, packing 113 s; determinism and compile never finished inside
# the limits below (90 s, and what a 410-second budget left), so they are raised.
SECTION_LIMIT_S = {"environment": 60, "peak": 60, "steps": 180, "fit": 150, "determinism": 150,
                   "packing": 200, "compile": 400}
PACKING_LEVELS = (1, 2, 4, 8)
PACKING_SECONDS = 8.0  # the measured window every packed process trains in


# --- packing: several trainer processes on one GPU -------------------------------
# (The other sections live in bench/gpu_sections.py; packing stays with the command line
# because its workers are processes of this script: --packing-worker.)

def packing_worker(args: argparse.Namespace) -> int:
    """One packed 'trial': the trainer's default step at lab dims, epochs until the window ends."""
    from cvae.families.lab4_2024.config import TrainConfig
    from cvae.families.lab4_2024.data import LabData
    from cvae.families.lab4_2024.train import Trainer

    dims = bench_dims_from(args)
    device = bench_device()
    torch.manual_seed(args.worker_index)
    n_train = 16 * 40  # 40 sequences of 16 frames: 20 steps an epoch

    def frames(n: int) -> torch.Tensor:
        return torch.randint(0, 256, (n, 3, dims.H, dims.W), dtype=torch.uint8)

    data = LabData(frames(n_train), frames(n_train), frames(8), frames(8))
    cfg = TrainConfig(**dims_config(dims), val_vi_len=8, num_epoch=10**6,
                      val_every=10**6, tfr=1.0, tfr_sde=10**6, device=device.type, torch_threads=args.worker_threads,
                      seed=args.worker_index)
    trainer = Trainer(cfg, data)
    trainer.run_epoch()  # warm-up: cuDNN algorithm choice, allocator growth
    sync(device)
    Path(args.ready_file).write_text("ready")
    go = Path(args.go_file)
    while not go.exists():
        time.sleep(0.01)
    deadline = float(go.read_text()) + args.window_s
    sequences = trainer.sequences(1)[0].shape[0]
    start, epochs = time.perf_counter(), 0
    while time.time() < deadline:
        trainer.run_epoch()
        epochs += 1
    sync(device)
    seconds = time.perf_counter() - start
    frames_done = epochs * sequences * (dims.frames - 1)
    result = {"pid": os.getpid(), "epochs": epochs, "seconds": seconds, "frames_per_s": frames_done / seconds,
              "max_memory_reserved_mib": (torch.cuda.max_memory_reserved() / 2**20 if device.type == "cuda" else None),
              "visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES")}
    Path(args.result_file).write_text(json.dumps(result))
    return 0


def _gpu_memory_used_mib() -> float | None:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=10).stdout
        return float(out.split()[0])
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return None


def section_packing(args: argparse.Namespace) -> dict[str, Any]:
    levels = (1, 2) if args.smoke else PACKING_LEVELS
    window = 2.0 if args.smoke else PACKING_SECONDS
    cores = os.cpu_count() or 1
    out: dict[str, Any] = {"window_s": window, "levels": {}}
    work = Path(args.work) / "packing"
    for n in levels:
        folder = work / f"n{n}"
        folder.mkdir(parents=True, exist_ok=True)
        go = folder / "go"
        env = {**os.environ, "CUDA_VISIBLE_DEVICES": os.environ.get("CUDA_VISIBLE_DEVICES", "0").split(",")[0],
               "PYTHONUNBUFFERED": "1"}
        threads = max(1, cores // n)  # the CPU share Ray would give each trial on this node
        procs = [subprocess.Popen([sys.executable, __file__, "--packing-worker", "--worker-index", str(i),
                                   "--worker-threads", str(threads), "--window-s", str(window),
                                   "--ready-file", str(folder / f"ready{i}"), "--go-file", str(go),
                                   "--result-file", str(folder / f"result{i}.json"), "--work", str(folder)]
                                  + (["--smoke"] if args.smoke else []), env=env)
                 for i in range(n)]
        deadline = time.time() + 120
        while not all((folder / f"ready{i}").exists() for i in range(n)):
            if time.time() > deadline or any(p.poll() not in (None, 0) for p in procs):
                for p in procs:
                    p.kill()
                raise RuntimeError(f"packing {n}: workers did not all get ready")
            time.sleep(0.05)
        go.write_text(str(time.time() + 0.2))
        time.sleep(0.2 + window / 2)
        memory_used = _gpu_memory_used_mib()
        for p in procs:
            p.wait(timeout=window + 120)
        results = [json.loads((folder / f"result{i}.json").read_text()) for i in range(n)]
        per_process = [r["frames_per_s"] for r in results]
        one = out["levels"]["1"]["aggregate_frames_per_s"] if n > 1 else sum(per_process)
        out["levels"][str(n)] = {"processes": n, "threads_each": threads, "per_process_frames_per_s": per_process,
                                 "aggregate_frames_per_s": sum(per_process),
                                 "aggregate_over_one": sum(per_process) / one,
                                 "per_process_slowdown": one / (sum(per_process) / n),
                                 "max_memory_reserved_mib": [r["max_memory_reserved_mib"] for r in results],
                                 "gpu_memory_used_mib_during": memory_used}
        progress(f"packing {n}: aggregate {sum(per_process):.0f} frames/s")
        write_part(args, out)
    return out


# --- orchestration ---------------------------------------------------------------

RUNNERS: dict[str, Callable[[argparse.Namespace], dict[str, Any]]] = {
    "environment": section_environment, "peak": section_peak, "steps": section_steps, "fit": section_fit,
    "determinism": section_determinism, "packing": section_packing, "compile": section_compile}


def run_section(args: argparse.Namespace) -> int:
    result = RUNNERS[args.section](args)
    write_part(args, {**result, "complete": True})
    return 0


def headline(report: dict[str, Any], device_type: str) -> None:
    """The issue's two figures: the trainer's default step over the naive loop (lab dims, teacher
    forcing on), and 4 packed processes' aggregate frames/s over one's."""
    steps = report.get("steps", {}).get("variants", {})
    default = default_variant_name(torch.device(device_type))
    report["trainer_default_variant"] = default
    for key, name in (("tf_on", "speedup_vs_naive_lab_dims"), ("tf_off", "speedup_vs_naive_lab_dims_tf_off")):
        naive = steps.get("naive", {}).get(key, {}).get("median_s")
        mine = steps.get(default, {}).get(key, {}).get("median_s")
        if naive and mine:
            report[name] = naive / mine
    levels = report.get("packing", {}).get("levels", {})
    for n in ("4", "8"):
        if "aggregate_over_one" in levels.get(n, {}):
            report[f"packing_speedup_{n}"] = levels[n]["aggregate_over_one"]


def markdown(report: dict[str, Any]) -> str:
    env = report.get("environment", {})
    peak = report.get("peak", {})
    bf16_peak = peak.get("bf16", {}).get("flops_per_s")
    lines = [f"GPU: {env.get('gpu', env.get('device'))} (driver {env.get('driver')}), torch {env.get('torch')}, "
             f"CUDA {env.get('cuda')}; matmul peak bf16 "
             f"{(bf16_peak or 0) / 1e12:.0f} TFLOP/s, fp32 {peak.get('fp32', {}).get('flops_per_s', 0) / 1e12:.0f}, "
             f"tf32 {peak.get('tf32', {}).get('flops_per_s', 0) / 1e12:.0f}", ""]
    naive = report.get("steps", {}).get("variants", {}).get("naive", {})
    lines += ["| variant | teacher forcing | step (ms) | frames/s | TFLOP/s | % bf16 peak | kernels/step | peak MiB "
              "| compile (s) | vs naive |", "|---|---|---|---|---|---|---|---|---|---|"]
    for section in ("steps", "compile"):
        for name, e in report.get(section, {}).get("variants", {}).items():
            if "failed" in e:
                lines.append(f"| {name} | | failed: {e['failed'][:80]} | | | | | | | |")
                continue
            for key in ("tf_on", "tf_off"):
                if key not in e:
                    continue
                r = e[key]
                if "failed" in r:
                    lines.append(f"| {name} | {key[3:]} | failed: {r['failed'][:80]} | | | | | | | |")
                    continue
                vs = naive.get(key, {}).get("median_s", float("nan")) / r["median_s"]
                pct = 100 * r["tflops"] * 1e12 / bf16_peak if bf16_peak else float("nan")
                lines.append(f"| {name} | {key[3:]} | {r['median_s'] * 1e3:.2f} | {r['frames_per_s']:.0f} | "
                             f"{r['tflops']:.2f} | {pct:.2f}% | {r.get('kernels_per_step')} | "
                             f"{r['peak_memory_mib'] or 0:.0f} | {r.get('compile_time_s', 0):.1f} | {vs:.2f}x |")
    packing = report.get("packing", {}).get("levels", {})
    if packing:
        lines += ["", "| processes on the GPU | aggregate frames/s | vs 1 | per-process slowdown | GPU MiB used |",
                  "|---|---|---|---|---|"]
        for n, level in packing.items():
            lines.append(f"| {n} | {level['aggregate_frames_per_s']:.0f} | {level.get('aggregate_over_one', 0):.2f}x | "
                         f"{level.get('per_process_slowdown', 0):.2f}x | {level['gpu_memory_used_mib_during']} |")
    fit_ = report.get("fit", {})
    if "runs" in fit_:
        lines += ["", "fit: " + ", ".join(f"{p} val_psnr {r['val_psnr'][-1]:.2f} dB (epoch {r['epoch_time_s'][-1]:.2f} s, "
                                           f"val {r['val_time_s'][-1]:.2f} s)" for p, r in fit_["runs"].items())]
        if "generation_of_bf16_model" in fit_:
            g = fit_["generation_of_bf16_model"]
            lines.append(f"generation of the bf16 model: fp32 {g['fp32']['val_psnr']:.3f} dB in {g['fp32']['seconds']:.2f} s, "
                         f"bf16 {g['bf16']['val_psnr']:.3f} dB in {g['bf16']['seconds']:.2f} s")
    det = report.get("determinism", {}).get("autotuned_over_deterministic")
    if det:
        lines.append("determinism: autotuned+TF32 step time / deterministic: "
                     + ", ".join(f"{v} {k[3:]} {r:.2f}" for v, d in det.items() for k, r in d.items()))
    for key in ("speedup_vs_naive_lab_dims", "packing_speedup_4", "packing_speedup_8"):
        if key in report:
            lines.append(f"{key}: {report[key]:.2f}")
    return "\n".join(lines)


def orchestrate(args: argparse.Namespace) -> int:
    device_type = "cuda" if torch.cuda.is_available() else "cpu"
    if device_type != "cuda" and not args.smoke:
        print("error: bench/gpu.py needs a CUDA GPU (torch sees none); --smoke runs it on the CPU at tiny dims",
              file=sys.stderr)
        return 2
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    wanted = args.sections.split(",") if args.sections else list(SECTIONS)
    unknown = [s for s in wanted if s not in SECTIONS]
    if unknown:
        print(f"error: --sections: unknown {unknown}; known: {list(SECTIONS)}", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="cvae-gpu-bench-"))  # parts, generated data: not under --out
    report: dict[str, Any] = {"benchmark": "gpu", "smoke": args.smoke, "command": " ".join(sys.argv), "sections": wanted,
                              "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    budget_end = time.time() + args.budget_s
    for section in wanted:
        limit = min(SECTION_LIMIT_S[section], budget_end - time.time())
        if limit < 15:
            report[section] = {"skipped": f"out of the run's budget ({args.budget_s:.0f} s)"}
            continue
        progress(f"section {section} (limit {limit:.0f} s)")
        part = work / f"part-{section}.json"
        part.unlink(missing_ok=True)
        start = time.time()
        cmd = ([sys.executable, __file__, "--section", section, "--out", str(out_dir), "--work", str(work)]
               + (["--smoke"] if args.smoke else []))
        try:
            rc = subprocess.run(cmd, timeout=limit).returncode
        except subprocess.TimeoutExpired:
            rc = "timeout"
        result = json.loads(part.read_text()) if part.exists() else {}
        if rc != 0:
            result["incomplete"] = f"exit {rc} after {time.time() - start:.0f} s (limit {limit:.0f} s)"
        result["section_s"] = time.time() - start
        report[section] = result
        headline(report, device_type)
        write_report(report, out_dir, args.smoke)
    report["markdown"] = markdown(report)
    write_report(report, out_dir, args.smoke)
    shutil.rmtree(work, ignore_errors=True)
    print(report["markdown"])
    return 0


def results_name(sections: list[str]) -> str:
    """bench/results/gpu.json for a whole run; a subset (e.g. the sections an earlier lease
    did not reach) gets its own file, so it never overwrites the headline figures."""
    return "gpu.json" if list(sections) == list(SECTIONS) else f"gpu.{'-'.join(sections)}.json"


def write_report(report: dict[str, Any], out_dir: Path, smoke: bool) -> None:
    text = json.dumps(report, indent=1) + "\n"
    (out_dir / "gpu.json").write_text(text)
    if not smoke:
        results = ROOT / "bench" / "results"
        results.mkdir(parents=True, exist_ok=True)
        (results / results_name(report["sections"])).write_text(text)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "gpu-run"), help="folder for gpu.json")
    p.add_argument("--smoke", action="store_true", help="tiny dims and short windows; runs on a CPU")
    p.add_argument("--sections", default=None, help=f"comma-separated subset of {','.join(SECTIONS)}")
    p.add_argument("--budget-s", type=float, default=540.0, help="the whole run's seconds; later sections are skipped")
    # internal: one section in a child process, or one packed worker
    p.add_argument("--section", choices=SECTIONS, default=None, help=argparse.SUPPRESS)
    p.add_argument("--work", default=None, help=argparse.SUPPRESS)
    p.add_argument("--packing-worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--worker-index", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--worker-threads", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--window-s", type=float, default=PACKING_SECONDS, help=argparse.SUPPRESS)
    p.add_argument("--ready-file", default=None, help=argparse.SUPPRESS)
    p.add_argument("--go-file", default=None, help=argparse.SUPPRESS)
    p.add_argument("--result-file", default=None, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.packing_worker:
        return packing_worker(args)
    if args.section:
        return run_section(args)
    return orchestrate(args)


if __name__ == "__main__":
    sys.exit(main())
