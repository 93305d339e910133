"""bench/precision_probe.py --smoke runs the real probe end to end and writes a complete results file."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cvae.core.precision import Bf16Support, bf16_support

ROOT = Path(__file__).resolve().parents[2]
RESULT = ROOT / "bench" / "results" / "precision_probe.smoke.json"


@pytest.mark.timeout(300)
def test_precision_probe_smoke_writes_results(tmp_path: Path) -> None:
    RESULT.unlink(missing_ok=True)
    user_cache = tmp_path / "user-cache.json"
    proc = subprocess.run([sys.executable, "bench/precision_probe.py", "--smoke"], cwd=ROOT, capture_output=True,
                          text=True, timeout=280, env={**os.environ, "CVAE_PRECISION_CACHE": str(user_cache)})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "smoke (1 thread(s)): " in proc.stdout and "flag rule (fallback): " in proc.stdout

    report = json.loads(RESULT.read_text())
    assert report["smoke"] is True and report["machine"]["cpu_model"]
    assert report["versions"]["torch"] == __import__("torch").__version__
    case = report["cases"]["smoke"]
    assert case["threads"] == 1 and case["key"]["threads"] == 1 and case["key"]["workload"]["family"] == "lab4-2024"
    [run] = case["runs"]
    if bf16_support().cpu_native:
        assert run["source"] == "measured" and run["precision"] in ("fp32", "bf16") and not case["emulated_bf16"]
        assert len(run["timings_s"]["fp32"]) == len(run["timings_s"]["bf16"]) == report["rule"]["timed_steps"]
        assert run["fp32_s"] > 0 and run["bf16_s"] > 0 and run["wall_s"] > 0
    else:  # emulated bf16: auto picks fp32 and measures nothing
        assert case["emulated_bf16"] and (run["source"], run["precision"]) == ("fallback", "fp32")
        assert run["timings_s"] is None and "nothing to measure" in run["text"]
    assert case["flag_rule"]["precision"] in ("fp32", "bf16")
    assert not user_cache.exists()  # the benchmark probes from empty caches of its own


@pytest.mark.timeout(300)
def test_emulated_bf16_is_recorded_unmeasured_or_measured_on_request(monkeypatch) -> None:
    """Both paths of probe_case on any machine: this CPU made to read as one without native bf16."""
    import bench.precision_probe as bench_probe
    from cvae.core import precision_probe
    from cvae.families import get_family

    monkeypatch.setattr(precision_probe, "bf16_support", lambda: Bf16Support(source="test"))
    family = get_family("lab4-2024")
    cfg = family.config_from_dict(bench_probe.SMOKE_VALUES)
    skipped = bench_probe.probe_case(family, cfg, 1, 1)
    assert skipped["emulated_bf16"] and not skipped["measured_anyway"] and skipped["decisions"] == ["fp32"]
    assert skipped["runs"][0]["timings_s"] is None and skipped["runs"][0]["source"] == "fallback"
    measured = bench_probe.probe_case(family, cfg, 1, 1, measure_emulated=True)
    [run] = measured["runs"]
    assert measured["measured_anyway"] and run["source"] == "measured"
    assert len(run["timings_s"]["bf16"]) == bench_probe.TIMED_STEPS and run["bf16_s"] > 0
