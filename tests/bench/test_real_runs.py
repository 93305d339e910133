"""bench/real_runs.py: the two arms' space files, a search's value, the Welch difference, and a smoke run
of both arms through run_search.py (real Ray, real training, tiny budget)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench.real_runs import arm_space, difference, search_value  # noqa: E402
from search.space.loader import load_space  # noqa: E402

QUICK = yaml.safe_load((ROOT / "spaces" / "quick.yaml").read_text())


def test_arm_spaces_are_quick_yaml_and_random_search_and_validate(tmp_path: Path) -> None:
    default, random = arm_space(QUICK, "default", 3), arm_space(QUICK, "random", 3)
    assert default["sampler"] == random["sampler"] == {"type": "random", "seed": 3}
    assert default["early_terminate"] == QUICK["early_terminate"] and "strata" not in default["trials"]
    assert random["early_terminate"] == {"type": "none"} and random["trials"]["strata"] == "free"
    assert default["parameters"] == random["parameters"] == QUICK["parameters"]
    assert QUICK["sampler"]["seed"] == 0 and "strata" not in QUICK["trials"]  # the base is not modified
    for space in (default, random):  # both are valid space files
        path = tmp_path / f"{space['name']}.yaml"
        path.write_text(yaml.safe_dump(space))
        assert load_space(path).name == space["name"]
    with pytest.raises(ValueError, match="unknown arm 'tpe'"):
        arm_space(QUICK, "tpe", 0)


def _summary(means: dict[str, list[float]]) -> dict:
    strata = {name: {"n": len(v), "mean": sum(v) / len(v) if v else None, "failed_reruns": 0} for name, v in means.items()}
    return {"comparison": {"strata": strata, "verdict": "not enough evidence"}}


def test_search_value_is_the_best_strata_rerun_mean_and_none_without_reruns() -> None:
    value = search_value(_summary({"Cyclical": [38.0, 39.0], "None": [40.0, 37.0], "Monotonic": []}))
    assert value["value"] == pytest.approx(38.5) and value["best_stratum"] in ("Cyclical", "None")
    assert "Monotonic" not in value["stratum_means"]
    assert search_value(_summary({"Cyclical": []}))["value"] is None


def test_difference_is_welch_over_finished_searches_and_counts_failed_ones() -> None:
    runs = [{"arm": "default", "value": v} for v in (40.0, 39.0, 41.0)] + \
           [{"arm": "random", "value": v} for v in (38.0, 39.0, None)]
    d = difference(runs)
    assert d["estimate_db"] == pytest.approx(40.0 - 38.5)
    assert d["n"] == {"default": 3, "random": 2} and d["failed_searches"] == 1
    # by hand: se^2 = 1/3 + 0.5/2, df from Welch-Satterthwaite
    va, vb = 1.0 / 3, 0.5 / 2
    assert d["welch_df"] == pytest.approx((va + vb) ** 2 / (va ** 2 / 2 + vb ** 2 / 1))
    assert d["ci95_db"][0] < 1.5 < d["ci95_db"][1]
    assert difference(runs[:4]) is None  # one random search: no interval


@pytest.mark.timeout(900)
def test_smoke_runs_both_arms_through_run_search(tmp_path: Path) -> None:
    out = tmp_path / "real_runs.json"
    proc = subprocess.run([sys.executable, "bench/real_runs.py", "--smoke", "--out", str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=880)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert [(r["arm"], r["seed"]) for r in report["runs"]] == [("default", 0), ("random", 0)]
    for run in report["runs"]:
        assert run["value"] is not None and 10.0 < run["value"] < 60.0
        assert run["reeval_status_counts"]["completed"] >= 1
        assert 10 < run["console_lines"] < 200  # run_search.py's own lines (Ray's go to ray.log)
    assert report["runs"][1]["status_counts"]["stopped"] == 0  # random search stops nothing
    assert "search 2/2: random, sampler seed 0" in proc.stderr
