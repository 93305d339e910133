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
import copy
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

from bench.common import auto_precision, median, progress, sync  # noqa: E402
from bench.train_step import LAB, SMOKE, Dims, StepRunner, Variant, count_step_flops, make_batch, matmul_peak  # noqa: E402
from cvae.core.cuda import use_deterministic_kernels  # noqa: E402
from cvae.families.lab4_2024.model import CVAE  # noqa: E402

SECTIONS = ("environment", "peak", "steps", "fit", "determinism", "packing", "compile")
# Seconds each section may take at most. Measured on an H100: environment 4 s, peak 5 s,
# steps ~115 s, fit 74 s, packing 113 s; determinism and compile never finished inside
# the limits below (90 s, and what a 410-second budget left), so they are raised.
SECTION_LIMIT_S = {"environment": 60, "peak": 60, "steps": 180, "fit": 150, "determinism": 150,
                   "packing": 200, "compile": 400}
PACKING_LEVELS = (1, 2, 4, 8)
PACKING_SECONDS = 8.0  # the measured window every packed process trains in
# Timed steps per measurement x measurements. The first H100 run used (20, 5): the naive loop
# (~0.4 s a step, launch-bound) then took the step section past its limit.
STEPS_REPS = (5, 3)


# --- what each section measures ---------------------------------------------------

def _device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _dims(args: argparse.Namespace) -> Dims:
    return SMOKE if args.smoke else LAB


def section_environment(args: argparse.Namespace) -> dict[str, Any]:
    device = _device()
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
    device = _device()
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
    dims = _dims(args)
    torch.manual_seed(0)
    init_state = copy.deepcopy(CVAE(dims.F, dims.L, dims.N, dims.D).state_dict())
    steps, reps = (2, 1) if args.smoke else STEPS_REPS
    return dims, init_state, make_batch(dims, device), steps, reps


def _step_table(args: argparse.Namespace, variant_list: list[Variant], profile: bool,
                modes: tuple[bool, ...] = (True, False)) -> dict[str, Any]:
    device = _device()
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
    device = _device()
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
    device = _device()
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

    device = _device()
    dims = _dims(args)
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


# --- packing: several trainer processes on one GPU -------------------------------

def packing_worker(args: argparse.Namespace) -> int:
    """One packed 'trial': the trainer's default step at lab dims, epochs until the window ends."""
    from cvae.families.lab4_2024.config import TrainConfig
    from cvae.families.lab4_2024.data import LabData
    from cvae.families.lab4_2024.train import Trainer

    dims = _dims(args)
    device = _device()
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


def write_part(args: argparse.Namespace, payload: dict[str, Any]) -> None:
    """A section's result so far (the parent merges it even if the section dies later)."""
    if args.section:
        Path(args.work, f"part-{args.section}.json").write_text(json.dumps(payload, indent=1))


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
