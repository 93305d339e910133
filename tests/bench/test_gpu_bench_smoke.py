"""bench/gpu.py --smoke runs every section but compile on the CPU at tiny dims: the script the
GPU run executes is checked here first (its CUDA-only parts: the profiler, nvidia-smi)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_gpu_bench_smoke_writes_every_section(tmp_path: Path) -> None:
    sections = "environment,peak,steps,fit,determinism,packing"
    proc = subprocess.run([sys.executable, "bench/gpu.py", "--smoke", "--out", str(tmp_path), "--sections", sections],
                          cwd=ROOT, capture_output=True, text=True, timeout=380)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads((tmp_path / "gpu.json").read_text())
    for section in sections.split(","):
        assert report[section].get("complete") is True, (section, report[section])
    assert "| naive | on |" in proc.stdout and "| processes on the GPU |" in proc.stdout
    steps = report["steps"]["variants"]
    assert set(steps) == {"naive", "batched_fp32", "batched_fp32_cl", "batched_bf16", "batched_bf16_cl"}
    assert all(steps[v][k]["median_s"] > 0 for v in steps for k in ("tf_on", "tf_off"))
    # the headline is the naive loop's time over the trainer's default step's, teacher forcing on
    default = steps[report["trainer_default_variant"]]["tf_on"]["median_s"]
    assert report["speedup_vs_naive_lab_dims"] == pytest.approx(steps["naive"]["tf_on"]["median_s"] / default)
    levels = report["packing"]["levels"]
    assert set(levels) == {"1", "2"} and levels["1"]["aggregate_over_one"] == 1.0
    assert all(f > 0 for f in levels["2"]["per_process_frames_per_s"]) and len(levels["2"]["per_process_frames_per_s"]) == 2
    fit = report["fit"]
    assert set(fit["runs"]) == {"fp32", "bf16"} and isinstance(fit["within_half_db"], bool)
    assert set(fit["generation_of_bf16_model"]) == {"fp32", "bf16"}
    assert report["environment"]["precision_auto"]["precision"] in ("fp32", "bf16")


def test_gpu_bench_refuses_to_run_without_cuda_unless_smoke(tmp_path: Path) -> None:
    if __import__("torch").cuda.is_available():
        pytest.skip("a GPU is present")
    proc = subprocess.run([sys.executable, "bench/gpu.py", "--out", str(tmp_path)], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2 and "needs a CUDA GPU" in proc.stderr


def test_a_subset_of_sections_never_overwrites_the_whole_runs_results() -> None:
    sys.path.insert(0, str(ROOT))
    from bench.gpu import SECTIONS, results_name

    assert results_name(list(SECTIONS)) == "gpu.json"
    assert results_name(["determinism", "compile"]) == "gpu.determinism-compile.json"
