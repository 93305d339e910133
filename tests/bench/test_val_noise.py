"""bench/val_noise.py: the two-way split by hand, and --smoke writes every run and the analysis."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench.val_noise import two_way  # noqa: E402


def test_two_way_separates_the_model_from_the_video() -> None:
    # Models differ by 4 dB everywhere, videos by a constant: no interaction at all.
    additive = [[10.0, 11.0, 12.0], [14.0, 15.0, 16.0]]
    parts = two_way(additive)
    assert parts["sigma_i2"] == pytest.approx(0.0)
    # between-model mean square 3 * (2^2 + 2^2) / 1 = 24, net of nothing, per video: 8
    assert parts["sigma_m2"] == pytest.approx(8.0)
    # the same means, but each model good on a different video: all interaction, no model effect
    crossed = [[12.0, 10.0], [10.0, 12.0]]
    parts = two_way(crossed)
    assert parts["sigma_m2"] == 0.0 and parts["sigma_i2"] == pytest.approx(4.0)


def test_val_noise_smoke_writes_every_run_and_the_rule(tmp_path: Path, run_smoke) -> None:  # type: ignore[no-untyped-def]
    proc, result = run_smoke("val_noise.py", tmp_path / "val_noise.json")
    assert set(result["runs"]) == {"Cyclical", "None"}
    assert all(len(runs) == 2 and all(len(r["videos"]) == 3 for r in runs) for runs in result["runs"].values())
    analysis = result["analysis"]
    assert 0.0 <= analysis["interaction_share"] <= 1.0 and set(analysis["adopt"]) == {"3_videos", "long_video"}
    assert "interaction share" in proc.stdout
