"""bench/noise.py: the variance split by hand, and --smoke writes every run and the analysis."""
from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench.noise import components, pooled, run_sd  # noqa: E402


def test_components_against_a_hand_calculation() -> None:
    # Two models, 3 draws each: within variances 1 and 1 -> sigma_v^2 = 1; means 10 and 14 ->
    # variance of means 8, net of sigma_v^2 / 3: sigma_t^2 = 8 - 1/3.
    parts = components([[9.0, 10.0, 11.0], [13.0, 14.0, 15.0]])
    assert parts["sigma_v2"] == pytest.approx(1.0)
    assert parts["sigma_t2"] == pytest.approx(8.0 - 1.0 / 3.0)
    assert run_sd(parts, 1) == pytest.approx(math.sqrt(8.0 - 1.0 / 3.0 + 1.0))
    # draws that vary more than the models' means: the training share is floored at 0
    assert components([[0.0, 10.0], [1.0, 9.0]])["sigma_t2"] == 0.0
    both = pooled([parts, components([[9.0, 10.0, 11.0], [9.0, 10.0, 11.0]])])
    assert both["sigma_v2"] == pytest.approx(1.0) and both["sigma_t2"] == pytest.approx((8.0 - 1 / 3) / 2)


def test_noise_smoke_writes_every_run_and_the_split(tmp_path: Path, run_smoke) -> None:  # type: ignore[no-untyped-def]
    proc, result = run_smoke("noise.py", tmp_path / "noise.json")
    assert set(result["runs"]) == {"Cyclical", "None"}
    assert all(len(runs) == 2 and all(len(r["draws"]) == 3 for r in runs) for runs in result["runs"].values())
    analysis = result["analysis"]
    assert 0.0 <= analysis["validation_share"] <= 1.0 and "rule" in analysis
    assert result["machine"] and "validation share" in proc.stdout
