"""bench/simulator.replay_timed, bench/surrogate.py and bench/replay_seeded.py on constructed seeded tables.

Every figure is checked against a hand calculation; the script's --smoke mode runs end to end on a
constructed table (real Optuna searchers and the project's schedulers, no training).
"""
from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench.curves import append_run, cell_key, grid_design, plan_runs, table_space  # noqa: E402
from bench.replay_seeded import analyse, paired_test  # noqa: E402
from bench.simulator import ReplayTrial, TimedStart, incumbent_at, replay_timed  # noqa: E402
from bench.surrogate import loo_errors, predict, read_seeded, seed_noise  # noqa: E402

SPACE = table_space()
SEEDS = (101, 102, 103)


def seeded_table(path: Path, n: int = 9) -> Path:
    """Every design with 3 seeds: constant curves at base + seed offset (-1, 0, +1 dB), 10 s per epoch
    (2 s of it validation); grid designs at 20 + i dB, Sobol design i at 10 + 2 i dB."""
    path.unlink(missing_ok=True)
    for run in plan_runs(SPACE, n, 0, 1, training_seeds=SEEDS):
        index = int(run["design"].rsplit("-", 1)[1])
        base = 20.0 + index if run["kind"] == "grid" or run["design"].startswith("grid") else 10.0 + 2 * index
        value = base + (SEEDS.index(run["seed"]) - 1)
        epochs = [{"epoch": e, "val_psnr": value, "diverged": False, "epoch_time_s": 8.0, "val_time_s": 2.0}
                  for e in range(1, 7)]
        append_run(path, run, epochs)
    return path


def test_seeded_table_keeps_whole_designs_and_seed_means(tmp_path: Path) -> None:
    path = seeded_table(tmp_path / "t.csv")
    # a design whose build stopped after one seed: left out
    extra = {"run_id": "sobol-99-s101", "kind": "sobol", "design": "sobol-99", "seed": 101,
             "config": grid_design(SPACE)[0], "cell": cell_key(grid_design(SPACE)[0])}
    append_run(path, extra, [{"epoch": e, "val_psnr": 50.0, "epoch_time_s": 1.0, "val_time_s": 0.0} for e in range(1, 7)])
    seeded = read_seeded(path, 3)
    assert len(seeded.table.designs) == 15 and seeded.planned_designs == 16
    assert seeded.true_best[0] == pytest.approx(20.0)           # grid-0: 19, 20, 21
    assert seeded.table.best == pytest.approx(10.0 + 2 * 8)     # sobol-8's seed mean, 26
    assert seeded.table.grid_best == pytest.approx(25.0)
    assert seeded.seconds[0][0] == (10.0,) * 6
    assert seed_noise(seeded) == pytest.approx(1.0)             # sd of (-1, 0, +1)


def test_nearest_and_knn3_predictions_against_hand_values(tmp_path: Path) -> None:
    seeded = read_seeded(seeded_table(tmp_path / "t.csv", n=18), 3)
    design = seeded.table.designs[6]  # sobol-0
    curve, seconds, index = predict(seeded, "nearest", design["config"], 2)
    assert index == 6 and curve == (11.0,) * 6 and seconds == (10.0,) * 6   # itself, seed 103: +1 dB
    # left out, the nearest other design of its cell answers (sobol-9, the cell's other Sobol design)
    curve, _, index = predict(seeded, "nearest", design["config"], 1, exclude=6)
    assert seeded.table.designs[index]["cell"] == design["cell"] and index != 6
    errors = loo_errors(seeded)
    assert errors["seed_noise_db"] == pytest.approx(1.0)
    assert errors["chosen"] in ("nearest", "knn3") and errors["nearest"]["predicted"] > 0
    # the nearest-neighbour error by hand: each left-out design is predicted by its cell's nearest other
    by_hand = []
    for i, d in enumerate(seeded.table.designs):
        others = [j for j in seeded.table.by_cell[d["cell"]] if j != i]
        if others:
            _, _, j = predict(seeded, "nearest", d["config"], 0, exclude=i)
            by_hand.append(seeded.true_best[j] - seeded.true_best[i])
    assert errors["nearest"]["rms_error_db"] == pytest.approx(math.sqrt(np.mean(np.square(by_hand))))


def _starts(specs: list[tuple[list[float], list[float], float]]):
    queue = [TimedStart(ReplayTrial(f"t{i}", {}), c, s, v) for i, (c, s, v) in enumerate(specs)]
    return lambda: queue.pop(0) if queue else None


def test_replay_timed_orders_results_by_wall_time_and_respects_the_budget() -> None:
    # worker 0: a slow trial (10 s epochs, 30 dB); worker 1: fast ones (1 s epochs), then more
    specs = [([30.0, 31.0], [10.0, 10.0], 30.5), ([20.0, 21.0], [1.0, 1.0], 20.5),
             ([25.0, 26.0], [1.0, 1.0], 25.5), ([40.0, 41.0], [100.0, 100.0], 40.5)]
    out = replay_timed(_starts(specs), None, max_t=2, budget_s=25.0, workers=2)
    # t=1: 20 (t1 epoch 1), t=2: 21 (t1 ends; t2 starts), t=3: 25, t=4: 26 (t2 ends; t3 starts),
    # t=10: 30 (t0 epoch 1), t=20: 31; t3's first epoch would end at 104 > budget. Every better
    # reported value is a point; the trace holds the incumbent configuration's true value.
    assert out.trace == [(1.0, 20.5), (2.0, 20.5), (3.0, 25.5), (4.0, 25.5), (10.0, 30.5), (20.0, 30.5)]
    assert len(out.trials) == 4 and out.trials[3].last_epoch == 0
    assert incumbent_at(out.trace, 0.5) != incumbent_at(out.trace, 0.5)  # nan before the first result
    assert incumbent_at(out.trace, 9.9) == 25.5 and incumbent_at(out.trace, 25.0) == 30.5


def test_paired_test_and_holm_say_yes_and_no() -> None:
    rng = np.random.default_rng(0)
    y = rng.uniform(0.5, 1.0, 200)
    better = paired_test(y - 0.3, y, 2000, 0)
    assert better["diff_iqm"] == pytest.approx(-0.3) and better["ci_high"] < 0 and better["p"] < 0.01
    assert better["relative_reduction"] == pytest.approx(0.3 / float(np.mean(np.sort(y)[50:150])), rel=1e-6)
    same = paired_test(y[::-1].copy(), y, 2000, 0)
    assert same["ci_low"] < 0 < same["ci_high"] and same["p"] > 0.05
    regrets = {"random": {"2x@2": y, "1x@2": y}, "ours_random": {"2x@2": y - 0.3, "1x@2": y - 0.3},
               "grid": {"2x@2": y[::-1].copy(), "1x@2": y}}
    values = {a: {s: 30.0 - r for s, r in by.items()} for a, by in regrets.items()}
    result = analyse(regrets, values, grid_best=29.5, default="ours_random", resamples=2000, seed=0)
    assert result["comparisons_corrected"] == 2
    assert result["verdict"]["beats_random"] and result["verdict"]["target_met"]
    assert not result["arms"]["grid"]["2x@2"]["vs_random"]["beats_random"]
    # Holm: the smaller p times 2, the larger times 1, never below the one before
    ps = sorted([result["arms"][a]["2x@2"]["vs_random"]["p"] for a in ("ours_random", "grid")])
    holm = sorted([result["arms"][a]["2x@2"]["vs_random"]["p_holm"] for a in ("ours_random", "grid")])
    assert holm[0] == pytest.approx(min(1.0, 2 * ps[0])) and holm[1] == pytest.approx(max(holm[0], ps[1]))
    expected_above = float(np.mean(30.0 - (y - 0.3) > 29.5))
    assert result["verdict"]["p_above_grid_at_1x"] == pytest.approx(expected_above)


def test_replay_seeded_smoke_end_to_end(tmp_path: Path) -> None:
    table = seeded_table(tmp_path / "curves-small-seeded.csv", n=18)
    out = tmp_path / "replay.json"
    proc = subprocess.run([sys.executable, "bench/replay_seeded.py", "--smoke", "--table", str(table),
                           "--out", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["table"]["whole_designs"] == 24 and report["surrogate"]["chosen"] in ("nearest", "knn3")
    assert set(report["analysis"]["arms"]) == {"random", "ours_random", "grid"}
    assert report["analysis"]["verdict"]["p_holm"] is not None
    assert report["table"]["grid_compute_s"] == pytest.approx(6 * 60.0)
    assert "surrogate" in proc.stdout
    # the prediction bench/real_runs.py reports beside its own difference: the raw values' paired mean
    raw = report["raw"]
    prediction = report["prediction_for_real_runs"]
    diffs = np.subtract(raw["ours_random"]["2x@2"], raw["random"]["2x@2"])
    assert prediction["setting"] == "2x@2"
    page = out.with_suffix(".html").read_text()  # the figure, drawn from the same file
    assert "ours_random" in page and "Holm p" in page
    assert prediction["mean_db"] == pytest.approx(float(np.mean(diffs)), abs=1e-3)
    assert prediction["ci95_db"][0] <= prediction["mean_db"] + 1e-9 <= prediction["ci95_db"][1] + 2e-9
