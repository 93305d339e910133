"""What bench/gpu.py's sections measure: environment, peak, steps, compile, determinism and
fit, each run by bench/gpu.py in a child process of its own. Also here: the step timing
those sections share (the variants, back-to-back step timing, CUDA kernels per step, the
step table), and write_part, which hands a section's result so far to the parent. They are
kept apart from bench/gpu.py, which starts the sections, merges their parts and prints the
tables. The packing section stays in that script because its workers are processes of the
script itself (--packing-worker).
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import torch

from bench.common import auto_precision, median, progress, sync
from bench.step_parts import LAB, SMOKE, Dims, StepRunner, Variant, count_step_flops, make_batch, matmul_peak
from cvae.core.cuda import use_deterministic_kernels
from cvae.families.lab4_2024.model import CVAE

# Timed steps per measurement x measurements. The first H100 run used (20, 5): the naive loop
# (~0.4 s a step, launch-bound) then took the step section past its limit.
STEPS_REPS = (5, 3)


# --- what each section measures ---------------------------------------------------

def bench_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def bench_dims_from(args: argparse.Namespace) -> Dims:
    return SMOKE if args.smoke else LAB


def write_part(args: argparse.Namespace, payload: dict[str, Any]) -> None:
    """A section's result so far (the parent merges it even if the section dies later)."""
    if args.section:
        Path(args.work, f"part-{args.section}.json").write_text(json.dumps(payload, indent=1))


def section_environment(args: argparse.Namespace) -> dict[str, Any]:
    device = bench_device()
    out: dict[str, Any] = {"device": device.type, "torch": torch.__version__, "cuda": torch.version.cuda,
                           "cudnn": torch.backends.cudnn.version(), "cpu_count": os.cpu_count(),
                           "python": sys.version.split()[0]}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(0)
        out.update(gpu=props.name, capability=f"{props.major}.{props.minor}", multiprocessors=props.multi_processor_count,
                   memory_gib=round(props.total_memory / 2**30, 1),
                   bf16_native=torch.cuda.is_bf16_supported(including_emulation=False),
                   bf16_including_emulation=torch.cuda.is_bf16_supported())
        try:
            smi = subprocess.run(["nvidia-smi", "--query-gpu=driver_version,name,clocks.max.sm", "--format=csv,noheader"],
                                 capture_output=True, text=True, timeout=20).stdout.strip()
            out["nvidia_smi"] = smi
            out["driver"] = smi.split(",")[0].strip()
        except (OSError, subprocess.SubprocessError) as err:
            out["nvidia_smi"] = f"unavailable: {err}"
    out["precision_auto"] = auto_precision(device.type)
    return out


def section_peak(args: argparse.Namespace) -> dict[str, Any]:
    device = bench_device()
    if device.type == "cuda":
        use_deterministic_kernels()  # the trainer's settings: fp32 without TF32
    n = 256 if args.smoke else 8192
    reps, b2b = (1, 1) if args.smoke else (5, 10)
    out = {"bf16": matmul_peak(torch.bfloat16, n, reps, device, b2b),
           "fp32": matmul_peak(torch.float32, n, reps, device, max(1, b2b // 3))}
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        out["tf32"] = matmul_peak(torch.float32, n, reps, device, b2b)
        torch.backends.cuda.matmul.allow_tf32 = False
    return out


def trainer_dtype(device: torch.device) -> torch.dtype:
    from cvae.core.precision import resolve_precision

    return resolve_precision("auto", device)


def step_variants() -> list[Variant]:
    """The naive loop and the batched step in each precision and layout; the trainer's default is
    the batched step with channels_last in the dtype `precision: auto` picks here."""
    return [Variant("naive", True, False, torch.float32),
            Variant("batched_fp32", False, False, torch.float32),
            Variant("batched_fp32_cl", False, True, torch.float32),
            Variant("batched_bf16", False, False, torch.bfloat16),
            Variant("batched_bf16_cl", False, True, torch.bfloat16)]


def default_variant_name(device: torch.device) -> str:
    return "batched_bf16_cl" if trainer_dtype(device) == torch.bfloat16 else "batched_fp32_cl"


def time_steps(step: Callable[[], None], device: torch.device, steps: int, reps: int) -> list[float]:
    """Seconds per step: `steps` steps queued back to back (no sync between them, as the
    trainer runs), synchronised and timed `reps` times."""
    times = []
    for _ in range(reps):
        sync(device)
        start = time.perf_counter()
        for _ in range(steps):
            step()
        sync(device)
        times.append((time.perf_counter() - start) / steps)
    return times


def kernels_per_step(step: Callable[[], None], device: torch.device) -> int | None:
    """CUDA kernels one step launches (the profiler's count): a launch-bound step's cost is ~this x a few us."""
    if device.type != "cuda":
        return None
    from torch.profiler import ProfilerActivity, profile

    sync(device)
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        step()
        sync(device)
    return int(sum(e.count for e in prof.key_averages() if e.device_type.name == "CUDA"))


def _measure_mode(runner: StepRunner, tf: bool, variant: Variant, dims: Dims, device: torch.device, steps: int,
                  reps: int, profile_kernels: bool) -> dict[str, Any]:
    step = lambda: runner.step(tf)  # noqa: E731
    sync(device)
    start = time.perf_counter()
    step()  # the first step compiles where compiling, picks cuDNN algorithms otherwise
    sync(device)
    first = time.perf_counter() - start
    for _ in range(2):
        step()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = time_steps(step, device, steps, reps)
    med = median(times)
    flops = count_step_flops(dims, variant.reference, tf)
    result: dict[str, Any] = {
        "median_s": med, "times_s": times, "frames_per_s": dims.predicted_frames / med, "tflops": flops / med / 1e12,
        "flops_per_step": flops, "first_step_s": first,
        "peak_memory_mib": torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None}
    if variant.compile:
        result["compile_time_s"] = max(0.0, first - med)
    if profile_kernels:
        try:
            result["kernels_per_step"] = kernels_per_step(step, device)
        except Exception as err:  # noqa: BLE001 - the profiler is a diagnosis, not the measurement
            result["kernels_per_step_error"] = f"{type(err).__name__}: {str(err)[:200]}"
    return result


def measure_variant(variant: Variant, dims: Dims, init_state: dict, batch: tuple, device: torch.device,
                    steps: int, reps: int, profile_kernels: bool, modes: tuple[bool, ...] = (True, False)
                    ) -> dict[str, Any]:
    runner = StepRunner(variant, dims, init_state, batch, device)
    entry: dict[str, Any] = {"dtype": str(variant.dtype).replace("torch.", ""), "channels_last": variant.channels_last,
                             "reference": variant.reference, "compile": variant.compile,
                             "compile_mode": variant.compile_mode}
    for tf in modes:
        key = "tf_on" if tf else "tf_off"
        try:
            entry[key] = _measure_mode(runner, tf, variant, dims, device, steps, reps, profile_kernels)
        except Exception as err:  # noqa: BLE001 - e.g. CUDA graphs refusing the free-running loop
            entry[key] = {"failed": f"{type(err).__name__}: {str(err)[:500]}"}
            progress(f"steps: {variant.name} {key} failed: {type(err).__name__}: {str(err)[:200]}")
            continue
        progress(f"steps: {variant.name} {key}: {entry[key]['median_s'] * 1e3:.2f} ms/step")
    return entry


def _step_inputs(args: argparse.Namespace, device: torch.device) -> tuple[Dims, dict, tuple, int, int]:
    """Dims, the initial weights every variant starts from, one batch, and steps x reps per timing."""
    dims = bench_dims_from(args)
    torch.manual_seed(0)
    init_state = copy.deepcopy(CVAE(dims.F, dims.L, dims.N, dims.D).state_dict())
    steps, reps = (2, 1) if args.smoke else STEPS_REPS
    return dims, init_state, make_batch(dims, device), steps, reps


def _step_table(args: argparse.Namespace, variant_list: list[Variant], profile: bool,
                modes: tuple[bool, ...] = (True, False)) -> dict[str, Any]:
    device = bench_device()
    if device.type == "cuda":
        use_deterministic_kernels()  # the trainer's kernels (cvae/core/cuda.py)
    dims, init_state, batch, steps, reps = _step_inputs(args, device)
    out: dict[str, Any] = {"dims": dims.__dict__, "variants": {}, "steps_x_reps": [steps, reps]}
    for variant in variant_list:
        try:
            out["variants"][variant.name] = measure_variant(variant, dims, init_state, batch, device, steps, reps,
                                                            profile, modes)
        except Exception as err:  # noqa: BLE001 - one variant failing (e.g. compile) must not lose the others
            out["variants"][variant.name] = {"failed": f"{type(err).__name__}: {str(err)[:500]}"}
            progress(f"steps: {variant.name} failed: {type(err).__name__}: {str(err)[:200]}")
        write_part(args, out)  # a cut-off run keeps the variants already timed
    return out


def section_steps(args: argparse.Namespace) -> dict[str, Any]:
    return _step_table(args, step_variants(), profile=True)


def section_compile(args: argparse.Namespace) -> dict[str, Any]:
    device = bench_device()
    from cvae.families.lab4_2024.train import limit_compile_threads

    limit_compile_threads(os.cpu_count() or 1)  # one process on the machine: every core may compile
    dtype = trainer_dtype(device)
    # CUDA graphs first: what they recover is the question for a launch-bound step. Teacher
    # forcing on only (the headline mode): free-running changes shapes step by step and
    # recompiles, which the first run's budget could not afford.
    variant_list = [Variant("compile_reduce_overhead", False, True, dtype, compile=True,
                            compile_mode="reduce-overhead"),
                    Variant("compile_default", False, True, dtype, compile=True)]
    return _step_table(args, variant_list, profile=True, modes=(True,))


def section_determinism(args: argparse.Namespace) -> dict[str, Any]:
    """The trainer's step with its deterministic kernels vs autotuned cuDNN with TF32."""
    device = bench_device()
    dims, init_state, batch, steps, reps = _step_inputs(args, device)
    out: dict[str, Any] = {}
    for label, flags in (("deterministic", (False, True, False)), ("autotuned_tf32", (True, False, True))):
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic, tf32 = flags
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = tf32
        for variant in (Variant("fp32_cl", False, True, torch.float32), Variant("bf16_cl", False, True, torch.bfloat16)):
            entry = measure_variant(variant, dims, init_state, batch, device, steps, reps, profile_kernels=False)
            out.setdefault(label, {})[variant.name] = {k: entry[k].get("median_s") for k in ("tf_on", "tf_off")}
            write_part(args, out)
    out["autotuned_over_deterministic"] = {
        v: {k: out["autotuned_tf32"][v][k] / out["deterministic"][v][k] for k in ("tf_on", "tf_off")
            if out["autotuned_tf32"][v][k] and out["deterministic"][v][k]}
        for v in out["deterministic"]}
    return out


def dims_config(dims: Dims) -> dict[str, int]:
    """The TrainConfig fields a benchmark's Dims fix (model widths, frame size, batch, length)."""
    return dict(F_dim=dims.F, L_dim=dims.L, N_dim=dims.N, D_out_dim=dims.D, frame_H=dims.H, frame_W=dims.W,
                batch_size=dims.batch, train_vi_len=dims.frames)


def lab_preset(smoke: bool):
    """A reduced-length lab preset: lab frame size and val length, fewer training frames."""
    from cvae.families.lab4_2024.synthetic import Preset

    if smoke:
        return Preset(train_video_lengths=(16, 16), val_length=8, test_sequences=1, test_length=4, looks=1)
    return Preset(train_video_lengths=(320,) * 4, val_length=630, test_sequences=1, test_length=16, looks=1)


def section_fit(args: argparse.Namespace) -> dict[str, Any]:
    """cvae.families.lab4_2024.train.fit at lab dims, fp32 vs bf16 after the same steps; then the bf16 model's
    validation generated in fp32 (the trainer's) and in bf16."""
    from cvae.core.metrics import psnr_per_frame
    from cvae.families.lab4_2024.config import TrainConfig
    from cvae.families.lab4_2024.data import load_lab_data
    from cvae.families.lab4_2024.step import generate
    from cvae.families.lab4_2024.synthetic import generate as make_data
    from cvae.families.lab4_2024.train import fit

    device = bench_device()
    dims = bench_dims_from(args)
    work = Path(args.work) / "fit-data"
    start = time.perf_counter()
    root = make_data(work, lab_preset(args.smoke), seed=0, progress=False, workers=os.cpu_count(), overwrite=True)
    data = load_lab_data(root, dims.H, dims.W, progress=False, cache=False)
    out: dict[str, Any] = {"data_s": time.perf_counter() - start, "train_frames": int(data.train_frames.shape[0]),
                           "val_frames": int(data.val_frames.shape[0]), "runs": {}}
    base = dict(**dims_config(dims), val_vi_len=min(dims.val_frames, out["val_frames"]),
                num_epoch=1 if args.smoke else 4, kl_anneal_type="Monotonic", kl_anneal_ratio=1.0, tfr=1.0, tfr_sde=10,
                lr=1e-3, milestones=[100], device=device.type, seed=0)
    trainers = {}
    for precision in ("fp32", "bf16"):
        history: list[dict] = []
        trainer = fit(TrainConfig(**base, precision=precision), data, on_epoch=lambda m, t: history.append(m))
        trainers[precision] = trainer
        out["runs"][precision] = {"val_psnr": [m["val_psnr"] for m in history],
                                  "train_loss": [m["train_loss"] for m in history],
                                  "epoch_time_s": [m["epoch_time_s"] for m in history],
                                  "val_time_s": [m["val_time_s"] for m in history]}
        progress(f"fit {precision}: val_psnr {history[-1]['val_psnr']:.2f} dB, "
                 f"epoch {history[-1]['epoch_time_s']:.2f} s, val {history[-1]['val_time_s']:.2f} s")
        write_part(args, out)
    final = {p: r["val_psnr"][-1] for p, r in out["runs"].items()}
    out["bf16_minus_fp32_db"] = final["bf16"] - final["fp32"]
    out["within_half_db"] = abs(out["bf16_minus_fp32_db"]) < 0.5  # the CPU precision test's tolerance

    # The bf16-trained model's validation video generated in fp32 (the trainer) and in bf16 autocast.
    trainer = trainers["bf16"]
    model = trainer.model.eval()
    first = trainer.val_target[:1].to(device).float() / 255
    labels = trainer._val_labels.to(device).float().div(255).unsqueeze(0)
    target = trainer.val_target.to(device).float() / 255
    generation = {}
    for name, autocast in (("fp32", False), ("bf16", True)):
        gen = torch.Generator(device=device).manual_seed(0)
        sync(device)
        t0 = time.perf_counter()
        with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            pred = generate(model, first, labels, generator=gen, channels_last=True)[0].float()
        sync(device)
        seconds = time.perf_counter() - t0
        generation[name] = {"val_psnr": float(psnr_per_frame(pred[1:], target[1:]).mean()), "seconds": seconds,
                            "frames": int(pred.shape[0])}
    out["generation_of_bf16_model"] = generation
    out["generation_bf16_minus_fp32_db"] = generation["bf16"]["val_psnr"] - generation["fp32"]["val_psnr"]
    return out
