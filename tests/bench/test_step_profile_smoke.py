"""bench/step_profile.py --smoke: the profile's shares add up, and the 1x1-as-linear lever
computes what the convs compute (same loss) before it is timed."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RESULT = ROOT / "bench" / "results" / "step_profile.smoke.json"


@pytest.mark.timeout(300)
def test_step_profile_smoke_writes_results() -> None:
    RESULT.unlink(missing_ok=True)
    proc = subprocess.run([sys.executable, "bench/step_profile.py", "--smoke"], cwd=ROOT, capture_output=True,
                          text=True, timeout=280)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "1x1 convs as linear" in proc.stdout
    report = json.loads(RESULT.read_text())
    assert report["smoke"] is True and report["threads"] == 1
    for mode in ("tf_on", "tf_off"):
        prof = report["profile"][mode]
        assert sum(prof["share"].values()) == pytest.approx(1.0)
        assert prof["share"]["convolution"] > 0 and prof["share"]["optimizer"] > 0
        assert prof["top_ops"] and prof["self_cpu_ms_per_step"] > 0
        lever = report["conv1x1_as_linear"][mode]
        assert len(lever["times_ms"]["linear"]) == len(lever["times_ms"]["trainer"]) > 0
    lever = report["conv1x1_as_linear"]
    assert lever["convs_swapped"] > 0
    assert lever["loss_relative_gap"] < 1e-5  # the same arithmetic: the loss agrees to float rounding
    assert lever["rule_met"] == all(lever[m]["speedup"] >= 1.05 for m in ("tf_on", "tf_off"))
