"""Shared helpers for the benchmarks: machine and version info, timing, JSON results.

Benchmarks are not tests: they time real work on whatever machine runs them and
write everything they measured (raw timings included) to bench/results/ so the
README's figures can be traced back to a run.
"""
from __future__ import annotations

import importlib
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import torch

from cvae.core.precision import bf16_support, choose_precision
from cvae.core.precision_probe import cpu_model as cpu_model_name

RESULTS_DIR = Path(__file__).resolve().parent / "results"
_START = time.perf_counter()
# CPU flags that decide which precisions are fast (bf16 needs avx512_bf16 or AMX).
_FLAGS_OF_INTEREST = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_fp16", "amx_bf16", "amx_tile", "avx_vnni")


def progress(message: str) -> None:
    """One progress line on stderr with the seconds since the benchmark started."""
    print(f"[{time.perf_counter() - _START:7.1f}s] {message}", file=sys.stderr, flush=True)


def _lscpu() -> dict[str, str]:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    info = {}
    for line in out.splitlines():
        key, _, value = line.partition(":")
        info[key.strip()] = value.strip()
    return info


def cpu_bf16_native() -> bool:
    """True where the CPU computes bf16 natively (AMX, avx512_bf16 or Arm bf16: cvae.core.precision's
    reading of torch.cpu.get_capabilities); elsewhere bf16 is emulated and slow. Native is not
    the same as faster: what `precision: auto` picks is `auto_precision()`."""
    return bf16_support().cpu_native


def auto_precision(device_type: str = "cpu") -> dict[str, str]:
    """What `precision: auto` resolves to here, and why (the trainer's own rule)."""
    name, reason = choose_precision(device_type, bf16_support())
    return {"precision": name, "reason": reason}


def cpu_model(lscpu: dict[str, str] | None = None) -> str:
    """The CPU's model name: lscpu's, else the precision cache key's (/proc/cpuinfo, then platform)."""
    return (_lscpu() if lscpu is None else lscpu).get("Model name") or cpu_model_name()


def machine_info() -> dict[str, Any]:
    lscpu = _lscpu()
    flags = set(lscpu.get("Flags", "").split())
    info: dict[str, Any] = {
        "cpu_model": cpu_model(lscpu),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cpu_flags": {flag: flag in flags for flag in _FLAGS_OF_INTEREST},
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "mkldnn_bf16_supported": bool(torch.ops.mkldnn._is_mkldnn_bf16_supported()),
        "bf16_support": bf16_support().as_dict(),
        "cpu_bf16_native": cpu_bf16_native(),
        "auto_precision": {"cpu": auto_precision("cpu"),
                           **({"cuda": auto_precision("cuda")} if torch.cuda.is_available() else {})},
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "platform": platform.platform(),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def versions() -> dict[str, str]:
    return package_versions("torch")


def command_line() -> str:
    return " ".join(shlex.quote(a) for a in [Path(sys.executable).name, *sys.argv])


def sync(device: torch.device) -> None:
    """Wait for queued GPU work so a timer measures it (a no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_once(fn: Callable[[], Any], device: torch.device) -> float:
    sync(device)
    start = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - start


def median(values: list[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def write_json(name: str, payload: dict[str, Any]) -> Path:
    """Write bench/results/<name> (pretty JSON) and return its path."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / name
    path.write_text(json.dumps(payload, indent=2, sort_keys=False) + "\n")
    return path


# --- the demo fits of the noise and precision benchmarks ------------------------

QUICK_SPACE = Path(__file__).resolve().parents[1] / "spaces" / "quick.yaml"
# A smoke run's dims: seconds instead of minutes, the same code path.
SMOKE_DEMO_DIMS = dict(frame_H=8, frame_W=16, F_dim=8, L_dim=4, N_dim=4, D_out_dim=8, val_vi_len=8, num_epoch=1)


def demo_fixed(smoke: bool, **settings: Any) -> dict[str, Any]:
    """spaces/quick.yaml's fixed settings on the CPU, validated at the end only (val_every past the last
    epoch), with `settings` on top; the smoke dims for a smoke run."""
    from search.space import load_space

    fixed = dict(load_space(QUICK_SPACE).fixed)
    fixed.update(device="cpu", val_every=10_000, **settings)
    if smoke:
        fixed.update(SMOKE_DEMO_DIMS)
    return fixed


def small_demo_data(folder: Path, fixed: dict[str, Any]) -> Any:
    """The small synthetic preset (seed 0) generated under `folder`, loaded at `fixed`'s frame size."""
    from cvae.families.lab4_2024.data import load_lab_data
    from cvae.families.lab4_2024.synthetic import PRESETS, generate

    root = generate(folder / "small", PRESETS["small"], seed=0, progress=False)
    return load_lab_data(root, fixed["frame_H"], fixed["frame_W"], progress=False)


# --- helpers for the search benchmarks (overhead.py, efficiency.py) -----------

def load_average() -> list[float] | None:
    """1/5/15-minute load average: the search benchmarks share 2 cores with other work."""
    return list(os.getloadavg()) if hasattr(os, "getloadavg") else None


def package_versions(*names: str) -> dict[str, str]:
    """Python's version and each named package's ("not installed" where it is missing), in that order."""
    out = {"python": platform.python_version()}
    for name in names:
        try:
            out[name] = importlib.import_module(name).__version__
        except ImportError:
            out[name] = "not installed"
    return out


def library_versions() -> dict[str, str]:
    """versions() plus the search stack (Ray, Optuna), for the search benchmarks."""
    return package_versions("torch", "ray", "optuna")


def write_yaml(path: Path, payload: dict[str, Any]) -> Path:
    """Write a generated space YAML (the runner reads spaces from files only)."""
    import yaml

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(payload, sort_keys=False))
    return path


def read_trial_results(run_dir: Path) -> dict[str, list[dict[str, Any]]]:
    """Ray Tune's per-iteration results of every trial under run_dir: {trial_id: [result, ...]}.

    Read from each Ray trial folder's result.json (one JSON object a line; under
    run_dir/tune/session-*/ for a search, one folder per session), which carries
    Ray's timing fields (timestamp, time_this_iter_s, time_total_s) next to the
    trainer's metrics and the sampled config. Keyed by the study trial (trials.csv's
    trial_id) when the config names it, else by Ray's trial id.
    """
    trials: dict[str, list[dict[str, Any]]] = {}
    for path in sorted(Path(run_dir).glob("**/result.json")):
        rows = []
        for line in path.read_text().splitlines():
            line = line.strip()
            if line:
                # Ray writes NaN for diverged losses: Python's json accepts it.
                rows.append(json.loads(line))
        if rows:
            key = (rows[0].get("config") or {}).get("study_trial") or rows[0]["trial_id"]
            trials.setdefault(str(key), []).extend(rows)
    for rows in trials.values():
        rows.sort(key=lambda r: r.get("training_iteration", 0))
    return trials
