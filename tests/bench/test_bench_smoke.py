"""bench/train_step.py --smoke runs end to end and writes a complete results file."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
RESULT = ROOT / "bench" / "results" / "train_step.smoke.json"


@pytest.mark.timeout(300)
def test_train_step_smoke_writes_results() -> None:
    RESULT.unlink(missing_ok=True)
    proc = subprocess.run([sys.executable, "bench/train_step.py", "--smoke"], cwd=ROOT,
                          capture_output=True, text=True, timeout=280)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "| smoke | 1 | naive | on |" in proc.stdout  # the markdown table is printed (dims, threads, variant)

    report = json.loads(RESULT.read_text())
    for key in ("command", "machine", "versions", "matmul_peak", "dims", "validation",
                "speedup_vs_naive_headline", "markdown"):
        assert key in report, key
    assert report["smoke"] is True
    assert report["versions"]["torch"] == __import__("torch").__version__
    assert report["machine"]["cpu_model"]
    for dtype in ("fp32", "bf16"):
        assert report["matmul_peak"][dtype]["flops_per_s"] > 0

    smoke = report["dims"]["smoke"]
    assert all(f > 0 for f in smoke["flops_per_step"].values())
    # the per-frame reference encodes every frame twice: it must count more FLOPs than the batched step
    assert smoke["flops_per_step"]["reference_tf_on"] > smoke["flops_per_step"]["batched_tf_on"]
    from cvae.families.lab4_2024.train import resolve_precision

    auto_bf16 = resolve_precision("auto", __import__("torch").device("cpu")) == __import__("torch").bfloat16
    assert report["trainer_default_variant"] == ("batched_cl_bf16" if auto_bf16 else "batched_cl_chunked")
    assert smoke["threads"] == 1 and report["matmul_peak_by_threads"]["1"]["fp32"]["flops_per_s"] > 0
    for name in ("naive", "batched", "batched_cl", "batched_cl_chunked"):
        entry = smoke["variants"][name]
        for tf in ("tf_on", "tf_off"):
            assert entry["times_s"][tf] and all(t > 0 for t in entry["times_s"][tf])
            assert entry["median_s"][tf] > 0 and entry["frames_per_s"][tf] > 0
            assert entry["flops_per_s"][tf] > 0
    assert smoke["speedup_vs_naive"]["tf_on"]["naive"] == pytest.approx(1.0)
    assert report["speedup_vs_naive_headline"]["speedup"] > 0
    for name, val in report["validation"]["smoke"].items():
        assert val["time_s"] > 0, name


def test_matmul_peak_is_the_fastest_timing_with_the_median_beside_it() -> None:
    from bench.step_parts import matmul_peak

    peak = matmul_peak(torch.float32, 64, 5, torch.device("cpu"))
    flops = 2 * 64 ** 3
    assert len(peak["times_s"]) == 5
    assert peak["flops_per_s"] == pytest.approx(flops / min(peak["times_s"]))
    assert peak["median_flops_per_s"] == pytest.approx(flops / peak["median_s"])
    assert peak["flops_per_s"] >= peak["median_flops_per_s"]
