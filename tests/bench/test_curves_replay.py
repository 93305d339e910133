"""bench/curves.py (the learning-curve table), bench/table.py (reading it) and bench/replay.py (searches replayed on it).

The replay's numbers are checked against regret computed by hand on a constructed table; the smoke
modes of both scripts run end to end (curves.py trains a tiny table through a real Ray).
"""
from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench import replay as rp  # noqa: E402
from bench.curves import append_run, grid_design, load_table, plan_runs, sobol_design, table_space  # noqa: E402
from bench.replay_arms import ARMS, default_arm_of, make_arms  # noqa: E402
from bench.stats import at_budget  # noqa: E402
from bench.table import Lookup, distance, read_table  # noqa: E402

SPACE = table_space()


def _constant(run_id: str, kind: str, design: str, config: dict, value: float, seed: int = 1) -> tuple:
    from bench.curves import cell_key

    run = {"run_id": run_id, "kind": kind, "design": design, "seed": seed, "config": config,
           "cell": cell_key(config)}
    return run, [{"epoch": e, "val_psnr": value, "diverged": False} for e in range(1, 7)]


def constructed_table(path: Path) -> Path:
    """6 grid curves (constant 20..25 dB) and one Sobol design per cell (constant 10, 12, ..., 26 dB; the
    first also re-run with seed 1001 at 30 dB)."""
    path.unlink(missing_ok=True)
    for i, config in enumerate(grid_design(SPACE)):
        append_run(path, *_constant(f"grid-{i}-s1", "grid", f"grid-{i}", config, 20.0 + i))
    for i, config in enumerate(sobol_design(SPACE, 9, 0)):
        append_run(path, *_constant(f"sobol-{i}-s1", "sobol", f"sobol-{i}", config, 10.0 + 2 * i))
    append_run(path, *_constant("sobol-0-s1001", "repeat", "sobol-0", sobol_design(SPACE, 1, 0)[0], 30.0, 1001))
    return path


def test_design_is_stratified_over_the_cells_and_extends_with_n() -> None:
    runs = plan_runs(SPACE, 18, 9, 0)
    sobol = [r for r in runs if r["kind"] == "sobol"]
    cells = [r["cell"] for r in sobol]
    assert len(set(cells)) == 9 and all(cells.count(c) == 2 for c in set(cells))
    assert [r["config"] for r in sobol[:9]] == sobol_design(SPACE, 9, 0)  # a larger n keeps the first points
    assert [r["kind"] for r in runs].count("grid") == 6 and [r["kind"] for r in runs].count("repeat") == 9
    # teacher-forcing decay only when teacher forcing is on; Cyclical alone has a cycle count
    for r in sobol:
        c = r["config"]
        assert ("tfr_sde" in c) == (c["tfr"] > 0) and ("kl_anneal_cycle" in c) == (c["kl_anneal_type"] == "Cyclical")
        assert 1e-4 <= c["lr"] <= 1e-2 and c["optimizer"] in ("Adam", "AdamW", "Adamax", "ASGD")


def test_seeded_plan_trains_every_design_with_every_seed_design_by_design() -> None:
    seeds = (101, 102, 103)
    runs = plan_runs(SPACE, 9, 9, 1, training_seeds=seeds)
    assert len(runs) == (6 + 9) * 3 and len({r["run_id"] for r in runs}) == len(runs)
    # design by design: a build stopped after k runs holds floor(k / 3) whole designs
    assert [r["design"] for r in runs[:6]] == ["grid-0"] * 3 + ["grid-1"] * 3
    assert [r["seed"] for r in runs[:3]] == list(seeds)
    assert [r["kind"] for r in runs[:3]] == ["grid", "repeat", "repeat"]
    assert [r["kind"] for r in runs if r["design"] == "sobol-0"] == ["sobol", "repeat", "repeat"]
    assert all(len({json.dumps(r["config"], sort_keys=True) for r in runs if r["design"] == d}) == 1
               for d in {r["design"] for r in runs})
    # one seed keeps the first table's plan: grid, Sobol, then the repeats with seed + 1000
    first = plan_runs(SPACE, 9, 2, 0)
    assert [r["run_id"] for r in first][-3:] == ["sobol-8-s1", "sobol-0-s1001", "sobol-1-s1001"]


def test_lookup_stays_in_the_cell_and_measures_rms_on_unit_scales(tmp_path: Path) -> None:
    table = read_table(constructed_table(tmp_path / "t.csv"))
    lookup = Lookup(table)
    for i, d in enumerate(table.designs):
        assert lookup(d["config"]) == (i, 0.0)  # every design finds itself
    grid_none_tf0 = dict(table.designs[table.grid[5]]["config"])  # None, tfr 0: Adam, lr 2e-3, wd 0
    # lr is searched on 1e-4..1e-2, 2 decades on a log scale; optimizer and weight decay equal
    moved = {**grid_none_tf0, "lr": 2e-3 * 10 ** 0.5}  # half a decade: du = 0.25
    by_hand = math.sqrt(0.25 ** 2 / 3)  # RMS over optimizer, lr, weight_decay
    assert distance(SPACE, moved, grid_none_tf0) == pytest.approx(by_hand)
    index, dist = lookup(moved)
    assert table.designs[index]["cell"] == "None|0.0"


def test_grid_arm_regret_by_hand_on_a_constructed_table(tmp_path: Path) -> None:
    table = read_table(constructed_table(tmp_path / "t.csv"))
    # best: the repeat at 30 dB; median of the 15 designs' (seed 1) bests (10..26 step 2 and 20..25): 21
    assert table.best == 30.0 and table.median == 21.0 and table.grid_best == 25.0 and table.grid_epochs == 36
    lookup = Lookup(table)
    arms = make_arms(table, {"sampler": {"type": "tpe", "n_startup_trials": 2},
                             "early_terminate": {"type": "asha", "grace_period": 2, "reduction_factor": 3}},
                     ("grid",), tmp_path)
    out = rp.simulate(arms["grid"], table, lookup, 0, 144)
    # 2 workers: grid 0 and 1 run epochs 1-12 (values 20, 21), then 2 and 3, then 4 and 5; then nothing
    assert len(out["trace"]) == 36
    # (the first result of each pair's first tick is either worker's: the workers report in a random order)
    assert out["trace"][0] in (20.0, 21.0) and out["trace"][1:12] == [21.0] * 11
    assert out["trace"][12] in (22.0, 23.0) and out["trace"][13:24] == [23.0] * 11
    assert out["trace"][24] in (24.0, 25.0) and out["trace"][25:] == [25.0] * 11
    assert at_budget(out["trace"], 144) == 25.0
    stats = {"best": 30.0, "median": 20.0, "grid_best": 25.0, "grid_epochs": 36}
    points = [36, 72, 144]
    raw = {"budget_points": points, "incumbents": {"grid": [[25.0] * 3] * 4,
                                                   "random": [[20.0, 26.0, 30.0], [30.0, 30.0, 30.0],
                                                              [24.0, 28.0, 30.0], [26.0, 26.0, 26.0]]}}
    a = rp.analyse(raw, stats, "grid", resamples=200, seed=0)
    g, r = a["arms"]["grid"], a["arms"]["random"]
    assert g["budgets"]["1x"]["iqm_regret"] == pytest.approx(0.5)  # (30 - 25) / (30 - 20)
    assert g["budgets"]["1x"]["p_above_grid"] == 0.0
    # random at 1x: regrets 1.0, 0.0, 0.6, 0.4 -> IQM = mean of the middle two (0.4, 0.6) = 0.5
    assert r["budgets"]["1x"]["iqm_regret"] == pytest.approx(0.5)
    assert r["budgets"]["1x"]["p_above_grid"] == pytest.approx(0.5)  # 30 and 26 are above 25
    # at 2x: random regrets 0.4, 0.0, 0.2, 0.4 -> middle (0.2, 0.4) = 0.3; grid 0.5 - 0.3 = +0.2
    assert r["budgets"]["2x"]["iqm_regret"] == pytest.approx(0.3)
    assert g["paired_vs_random"]["2x"]["diff_iqm"] == pytest.approx(0.2)
    assert g["paired_vs_random"]["2x"]["relative_reduction"] == pytest.approx(-0.2 / 0.3)
    assert not g["beats_random"] and a["best_arm"] == "random"
    assert a["targets"]["p_above_grid_at_1x"]["met"] is False


def test_default_arm_follows_the_quick_yaml_lines() -> None:
    asha = {"type": "asha", "grace_period": 2, "reduction_factor": 3}
    assert default_arm_of({"sampler": {"type": "tpe"}, "early_terminate": asha}) == "ours"
    assert default_arm_of({"sampler": {"type": "random"}, "early_terminate": asha}) == "ours_random"
    assert default_arm_of({"sampler": {"type": "random"}, "early_terminate": {"type": "none"}}) == "random"
    assert default_arm_of({"sampler": {"type": "tpe"}, "early_terminate": {**asha, "brackets": 2}}) == "hyperband"


@pytest.mark.timeout(300)
def test_replay_smoke_every_arm_writes_the_issue_keys(tmp_path: Path) -> None:
    table = constructed_table(tmp_path / "curves-t.csv")
    out = tmp_path / "replay-t.json"
    proc = subprocess.run([sys.executable, "bench/replay.py", "--smoke", "--table", str(table), "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=280)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["repetitions"] == 5 and report["default_arm"] in ARMS and report["success_rule"]
    for arm in ARMS:
        budgets = report["arms"][arm]["budgets"]
        for k in ("1x", "2x", "4x"):
            assert set(budgets[k]) == {"iqm_regret", "ci_low", "ci_high", "p_above_grid"}
            assert budgets[k]["ci_low"] <= budgets[k]["iqm_regret"] + 1e-9 <= budgets[k]["ci_high"] + 2e-9
        if arm != "random":
            assert set(report["arms"][arm]["paired_vs_random"]["2x"]) == {"diff_iqm", "ci_low", "ci_high"}
    # the grid arm is deterministic: regret (30 - 25) / (30 - 21) at every budget
    assert report["arms"]["grid"]["budgets"]["4x"]["iqm_regret"] == pytest.approx(5 / 9)
    # early-stopping arms stop trials (every curve is flat: ties are not stopped by ASHA, so only check keys)
    assert set(report["trials"]["ours"]["stop_rate"]) == {"Cyclical", "Monotonic", "None", "all"}
    assert out.with_suffix(".html").exists()
    again = subprocess.run([sys.executable, "bench/replay.py", "--reanalyse", str(out)], cwd=ROOT,
                           capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr[-2000:]
    assert json.loads(out.read_text())["arms"]["grid"] == report["arms"]["grid"]


@pytest.mark.slow
@pytest.mark.timeout(480)
def test_curves_smoke_builds_a_tiny_table_through_ray_and_continues(tmp_path: Path) -> None:
    cmd = [sys.executable, "bench/curves.py", "--smoke", "--out-dir", str(tmp_path)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=420)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "runs in the table" in proc.stderr  # progress lines
    runs = load_table(tmp_path / "curves-small.smoke.csv")
    assert sorted(r["run_id"] for r in runs) == sorted(
        ["grid-0-s1", "grid-1-s1", "sobol-0-s1", "sobol-1-s1", "sobol-2-s1", "sobol-0-s1001"])
    assert all([m["epoch"] for m in r["epochs"]] == [1, 2] for r in runs)
    assert all(math.isfinite(m["val_psnr"]) and "beta" in m and "train_loss" in m for r in runs for m in r["epochs"])
    meta = json.loads((tmp_path / "curves-small.smoke.json").read_text())
    assert meta["builds"][0]["machine"]["cpu_model"] and meta["builds"][0]["runs_added"] == 6
    assert meta["settings"]["space"]["fixed"]["num_epoch"] == 2
    # an interrupted (here: finished) build continues: nothing left to train, the table unchanged
    again = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "0 to train" in again.stderr
    assert len(load_table(tmp_path / "curves-small.smoke.csv")) == 6
    assert len(json.loads((tmp_path / "curves-small.smoke.json").read_text())["builds"]) == 2


def test_efficiency_grid_row_reports_the_epoch_the_grid_first_hit_its_best() -> None:
    from bench.efficiency import curve, first_reach, markdown

    rows = [{"trial_id": f"g{i}", "epoch": e, "val_psnr": v}
            for i, values in enumerate([[20.0, 30.0], [25.0, 38.6], [30.0, 31.0]]) for e, v in enumerate(values, 1)]
    grid = curve(rows)
    assert grid == ([1, 2, 3, 4, 5, 6], [20.0, 30.0, 30.0, 38.6, 38.6, 38.6])
    assert first_reach(grid, 38.6) == 4 and first_reach(grid, 50.0) is None
    report = {"grid": {"best": 38.6, "total_epochs": 6}, "curves": {"grid": list(grid)},  # an older file: no key
              "per_seed": {"ours": {}, "random": {}}, "epochs_fraction_to_reach_grid_best": None,
              "psnr_gain_at_equal_epochs_db": 0.0}
    assert "| hand grid | - | 6 | 38.60 | 4 (of 6) | 38.60 | 0 |" in markdown(report)


def test_efficiency_gives_every_trial_its_own_seed_and_the_methods_other_sampler_seeds() -> None:
    import yaml

    from bench.efficiency import BASE_SPACE, FULL, make_space

    base = yaml.safe_load(BASE_SPACE.read_text())
    mode = {**FULL, "asha": base["early_terminate"], "n_startup": 2}
    ours = make_space(base, mode, "ours", 0, ROOT / "data")
    rand = make_space(base, mode, "random", 0, ROOT / "data")
    assert "seed" not in ours["fixed"] and ours["parameters"]["seed"]["distribution"] == "int_uniform"
    assert ours["sampler"]["seed"] != rand["sampler"]["seed"]
