"""bench/adam_fused.py --smoke runs end to end: every Adam variant timed in both teacher-forcing
modes, and fused Adam computes the default's update to rounding."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RESULT = ROOT / "bench" / "results" / "adam_fused.smoke.json"


@pytest.mark.timeout(300)
def test_adam_fused_smoke_writes_results() -> None:
    RESULT.unlink(missing_ok=True)
    proc = subprocess.run([sys.executable, "bench/adam_fused.py", "--smoke", "--trials", "2"], cwd=ROOT, capture_output=True,
                          text=True, timeout=280)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "| fused |" in proc.stdout and "rule (>= 1.03x both modes" in proc.stdout
    report = json.loads(RESULT.read_text())
    assert report["smoke"] is True and report["machine"]["cpu_model"] and report["threads"] == 1
    for mode in ("tf_on", "tf_off"):
        for name in ("default", "foreach", "fused"):
            entry = report["step_ms"][mode][name]
            assert len(entry["times"]) == report["repetitions"] and entry["median"] > 0
        assert report["speedup_vs_default"][mode]["default"] == pytest.approx(1.0)
    assert all(ms > 0 for ms in report["optimizer_step_ms"].values())
    # the same update up to float rounding: far below one lr-1e-4 step
    assert report["parameter_gap_after_5_steps"] <= 1e-6
    # whole demo trials, both arms, ABBA: the second trial starts with the fused arm
    trials = report["trials"]
    assert trials["count"] == 2 and len(trials["wall_s"]["default"]) == len(trials["wall_s"]["fused"]) == 2
    assert trials["speedup"] == pytest.approx(trials["total_s"]["default"] / trials["total_s"]["fused"])
    assert "2 whole demo trials per arm" in proc.stdout
    assert report["rule_met"] == (all(s["fused"] >= 1.03 for s in report["speedup_vs_default"].values()))
