"""bench/seed_levers.py: the summary and its rules by hand, weight averaging, and --smoke writes every lever."""
from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench.seed_levers import average_weights, summarise  # noqa: E402


def _rows(values: list[float], train_s: float) -> list[dict[str, Any]]:
    return [{"seed": i, "val_psnr": v, "train_s": train_s} for i, v in enumerate(values)]


def test_summary_pools_the_seed_spread_and_applies_each_rule() -> None:
    runs = {
        # sd 2 in each configuration -> pooled 2; mean 40
        "baseline": {"A": _rows([39.0, 41.0, 43.0], 10.0), "B": _rows([35.0, 37.0, 39.0], 10.0)},
        # sd 0.2 a configuration (0.1x), mean 0.3 dB lower, 1.2x the time: adopted, and decides
        "tight": {"A": _rows([40.5, 40.7, 40.9], 12.0), "B": _rows([38.5, 38.7, 38.9], 12.0)},
        # sd 1 (0.5x), mean the same, but 1.5x the time: not adopted
        "slow": {"A": _rows([40.0, 41.0, 42.0], 15.0), "B": _rows([37.0, 38.0, 39.0], 15.0)},
        # sd 0.2 but 2 dB lower: not adopted
        "worse": {"A": _rows([37.8, 38.0, 38.2], 10.0), "B": _rows([35.8, 36.0, 36.2], 10.0)},
    }
    out = summarise(runs)
    assert out["baseline"]["pooled_sd"] == pytest.approx(2.0) and out["baseline"]["df"] == 4
    assert out["baseline"]["gap"] == pytest.approx(4.0) and out["baseline"]["mean_all"] == pytest.approx(39.0)
    assert out["tight"]["sd_ratio"] == pytest.approx(0.1) and out["tight"]["mean_change"] == pytest.approx(0.7)
    assert out["tight"]["adopt"] and out["tight"]["demo_can_decide"]
    assert out["slow"]["sd_ratio"] == pytest.approx(0.5) and out["slow"]["time_ratio"] == pytest.approx(1.5)
    assert not out["slow"]["adopt"] and not out["slow"]["demo_can_decide"]
    assert out["worse"]["mean_change"] == pytest.approx(-2.0) and not out["worse"]["adopt"]
    assert not out["baseline"]["adopt"]  # the baseline is never "adopted" against itself
    lo, hi = out["baseline"]["pooled_sd_90"]
    assert lo < 2.0 < hi and out["baseline"]["seeds_for_power"] is not None


def test_weights_are_averaged_and_counters_kept() -> None:
    snaps = [{"w": torch.tensor([1.0, 2.0]), "n": torch.tensor(3)}, {"w": torch.tensor([3.0, 6.0]), "n": torch.tensor(7)}]
    avg = average_weights(snaps)
    assert torch.equal(avg["w"], torch.tensor([2.0, 4.0])) and int(avg["n"]) == 7


def test_smoke_writes_every_lever_with_both_configurations(tmp_path: Path, run_smoke) -> None:  # type: ignore[no-untyped-def]
    proc, result = run_smoke("seed_levers.py", tmp_path / "seed_levers.json")
    assert set(result["summary"]) == {"baseline", "cooldown", "longer", "swa"}
    for lever, by_config in result["runs"].items():
        assert set(by_config) == {"Cyclical", "None"}
        assert all(len(rows) == 2 and all(math.isfinite(r["val_psnr"]) for r in rows) for rows in by_config.values())
    assert "rule" in result and result["machine"] and "pooled seed sd" in proc.stdout


def test_one_seed_is_refused_with_a_clear_message() -> None:
    import subprocess

    proc = subprocess.run([sys.executable, "bench/seed_levers.py", "--seeds", "3"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "--seeds 3: a seed spread needs at least 2 distinct seeds" in proc.stderr
