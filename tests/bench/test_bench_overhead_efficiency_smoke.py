"""bench/overhead.py and bench/efficiency.py in their smallest modes run end to end and write complete results.

Both start a real Ray (and overhead.py a real run_search.py subprocess): on an
idle 2-core machine each takes well under a minute of training, but Ray's start
alone took ~50 s under a load average of 12, hence the generous timeouts.
"""
from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "bench" / "results"


def _run(args: list[str], timeout: int) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


@pytest.mark.timeout(420)
def test_overhead_smoke_writes_ratio_and_breakdown() -> None:
    out = RESULTS / "overhead.test.json"
    out.unlink(missing_ok=True)
    proc = _run(["bench/overhead.py", "--smoke", "--trials", "2", "--epochs", "1", "--skip-lab",
                 "--out", out.name], timeout=400)
    assert "overhead ratio" in proc.stdout
    report = json.loads(out.read_text())
    for key in ("command", "machine", "versions", "load_average_before", "breakdown", "raw", "markdown",
                "checkpoint_s", "data_transfer"):
        assert key in report, key
    assert report["versions"]["ray"] and report["versions"]["optuna"]
    # The search wraps the same training in Ray: it cannot be faster than training alone.
    assert report["overhead_ratio"] == pytest.approx(report["search_wall_s"] / report["direct_wall_s"])
    # With the training time made equal, what is left is Ray's start, trial starts and results: > 1.
    assert report["overhead_ratio_equal_training"] > 1.0
    assert report["search_wall_s"] > report["breakdown"]["training_s_search"] > 0
    assert report["breakdown"]["ray_start_s"] > 0
    # The direct run trained exactly the configs the search sampled, one epoch each.
    direct = report["raw"]["direct"]["trials"]
    assert [t["config"] for t in direct] == [t["config"] for t in report["raw"]["trials"]]
    assert all(len(t["epochs"]) == 1 for t in direct)
    assert all(t > 0 for t in report["checkpoint_s"])
    small = report["data_transfer"]["small"]
    assert small["zero_copy"] is True and small["decode_no_cache_s"] > 0
    out.unlink()


@pytest.mark.timeout(420)
def test_efficiency_smoke_writes_curves_and_metrics() -> None:
    out = RESULTS / "efficiency.test.json"
    out.unlink(missing_ok=True)
    proc = _run(["bench/efficiency.py", "--smoke", "--out", out.name], timeout=400)
    assert "| hand grid |" in proc.stdout
    report = json.loads(out.read_text())
    epochs = report["settings"]["max_epochs"]
    # 6 grid runs x full epochs; every curve is monotone (best so far).
    assert report["grid"]["total_epochs"] == 6 * epochs
    grid_x, grid_y = report["curves"]["grid"]
    assert grid_x == list(range(1, 6 * epochs + 1))
    for method in ("ours", "random"):
        for xs, ys in report["curves"][method].values():
            assert all(b >= a for a, b in zip(ys, ys[1:]))
            assert len(xs) <= report["settings"]["trials"] * epochs
    gain = report["psnr_gain_at_equal_epochs_db"]
    assert gain is not None and math.isfinite(gain)
    seed0 = report["per_seed"]["ours"]["0"]
    assert gain == pytest.approx(seed0["best_at_grid_epochs"] - report["grid"]["best"])
    assert report["notes"] and "load_average_before" in report
    # the diagnosis counts the grid's 6 full runs among the distinct full-length runs
    d = report["diagnosis"]
    assert d["full_runs"] >= 6 and len(d["grid_ranks"]) == 6 and d["full_runs"] == 6 + d["searched_full_runs"]
    assert 0 <= d["beat_grid_best"] <= d["searched_full_runs"]
    html = RESULTS / "efficiency.test.html"
    text = html.read_text()
    # Offline: plotly.js is inlined, not loaded from a CDN script tag.
    assert "Plotly.newPlot" in text and '<script src="http' not in text
    # --reanalyse rebuilds the same table and redraws the figure from the JSON alone (no training)
    html.unlink()
    again = _run(["bench/efficiency.py", "--reanalyse", str(out)], timeout=120)
    assert report["markdown"] in again.stdout and html.exists()
    assert json.loads(out.read_text())["diagnosis"] == d
    out.unlink()
    html.unlink()
