"""bench/precision_accuracy.py: the paired equivalence rule by hand, and --smoke trains both precisions."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench.precision_accuracy import paired_equivalence  # noqa: E402


def test_paired_equivalence_against_a_hand_calculation() -> None:
    # diffs 0.1, 0.3, 0.2: mean 0.2, sd 0.1, se 0.1/sqrt(3); t(0.95, 2) = 2.919986
    r = paired_equivalence([30.0, 31.0, 32.0], [30.1, 31.3, 32.2], tolerance=0.5)
    half = 2.919986 * 0.1 / 3 ** 0.5
    assert r["mean_db"] == pytest.approx(0.2)
    assert r["ci90_db"] == pytest.approx([0.2 - half, 0.2 + half], abs=1e-5)
    assert r["equivalent"] is True
    # the same pairs against a tolerance the interval crosses: not equivalent
    assert paired_equivalence([30.0, 31.0, 32.0], [30.1, 31.3, 32.2], tolerance=0.3)["equivalent"] is False
    # a noisy pair difference: the interval is wide, so no equivalence even at a zero mean
    assert paired_equivalence([30.0, 31.0, 32.0], [31.0, 30.0, 32.0], tolerance=0.5)["equivalent"] is False
    # one seed: no interval, never equivalent
    assert paired_equivalence([30.0], [30.0], tolerance=1.0) == {"mean_db": 0.0, "ci90_db": None,
                                                                 "equivalent": False, "diffs_db": [0.0]}


def test_smoke_trains_both_precisions_with_the_same_seeds(tmp_path: Path, run_smoke) -> None:  # type: ignore[no-untyped-def]
    proc, result = run_smoke("precision_accuracy.py", tmp_path / "precision_accuracy.json")
    assert [r["seed"] for r in result["runs"]["fp32"]] == [r["seed"] for r in result["runs"]["bf16"]] == [1, 2]
    assert {r["dtype"] for r in result["runs"]["fp32"]} == {"torch.float32"}
    assert {r["dtype"] for r in result["runs"]["bf16"]} == {"torch.bfloat16"}
    assert result["tolerance_db"] == pytest.approx(0.78, abs=0.01)  # half of noise.json's 1.56 dB
    assert "bf16 - fp32" in proc.stdout


def test_extend_joins_an_earlier_stage_and_refuses_its_seeds(tmp_path: Path, run_smoke) -> None:  # type: ignore[no-untyped-def]
    first = tmp_path / "first.json"
    run_smoke("precision_accuracy.py", first)
    second = tmp_path / "second.json"
    cmd = [sys.executable, "bench/precision_accuracy.py", "--smoke", "--seeds", "3", "4", "--extend", str(first),
           "--out", str(second)]
    assert subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300).returncode == 0
    joined = json.loads(second.read_text())
    assert joined["seeds"] == [1, 2, 3, 4] and [r["seed"] for r in joined["runs"]["bf16"]] == [1, 2, 3, 4]
    assert [s["seeds"] for s in joined["stages"]] == [[1, 2], [3, 4]]
    assert len(joined["analysis"]["diffs_db"]) == 4
    again = subprocess.run(cmd[:-2] + ["--extend", str(second), "--out", str(tmp_path / "x.json")], cwd=ROOT,
                           capture_output=True, text=True, timeout=300)
    assert again.returncode != 0 and "already has seeds [3, 4]" in again.stderr
