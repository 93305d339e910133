"""Racing through a real Ray Tune search (issue 21, item 5): it stops once the verdict is
decisive, and a driver killed mid-round then resumed with `run_search.py --resume`
ends with the allocation the racing rule gives on the study's own re-runs."""
from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import optuna
import pytest

from search.comparison import Settings, build_comparison
from search.processes import kill_driver_and_ray
from search.racing import INITIAL_SEEDS, RaceBudget, next_round
from search.record import SEED_ATTR, counted
from search.searcher import outcome
from search.strata import PHASE_KEY, REEVAL, SEARCH, STRATUM_KEY

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.slow]


def _space(path: Path, data_root: Path, fixed: dict, *, name: str, scientific: str, reeval: str,
           num_samples: int = 4) -> Path:
    fixed_yaml = "\n".join(f"  {k}: {v}" for k, v in fixed.items())
    path.write_text(f"""\
name: {name}
metric: {{name: val_psnr, goal: maximize}}
data: {{root: {data_root}}}
trials: {{num_samples: {num_samples}, max_concurrent: 2, resources: {{cpu: 1, gpu: 0}}, max_failures: 1, checkpoint_every: 1}}
sampler: {{type: random, seed: 0}}
early_terminate: {{type: none}}
reeval: {reeval}
fixed:
{fixed_yaml}
parameters:
{scientific}
""")
    return path


def _study(run_dir: Path, name: str) -> list[optuna.trial.FrozenTrial]:
    """The study's trials, less those a killed driver asked but never handed out (abandoned:
    nothing ran them, and the search asked again in their place)."""
    trials = optuna.load_study(study_name=name, storage=f"sqlite:///{run_dir / 'optuna.db'}").trials
    return [t for t in trials if counted(t)]


def _seed_index(frozen, base_seed: int) -> int:
    return (int(frozen.user_attrs[SEED_ATTR]) - base_seed) // 1000


def _replayed_rounds(trials, *, base_seed: int, num_epoch: int, budget: RaceBudget, settings: Settings,
                     strata: list[str]) -> tuple[list[set[str]], list[set[str]]]:
    """(each round's strata as the study holds them, as the racing rule gives them from the rounds
    before). Round k >= 2 gives seed index k + 1; the first round gives indices 1 and 2."""
    search = [t for t in trials if t.user_attrs.get(PHASE_KEY) == SEARCH]
    reevals = [t for t in trials if t.user_attrs.get(PHASE_KEY) == REEVAL]
    last = max(_seed_index(t, base_seed) for t in reevals)
    actual, expected = [], []
    for index in range(INITIAL_SEEDS + 1, last + 2):
        before = [t for t in reevals if _seed_index(t, base_seed) < index]
        runs = [outcome(t, "val_psnr", num_epoch) for t in search]
        runs += [outcome(t, "val_psnr", num_epoch, phase=REEVAL) for t in before]
        comparison = build_comparison(runs, strata=strata, metric="val_psnr", mode="max", settings=settings)
        seeds_so_far = Counter(t.user_attrs[STRATUM_KEY] for t in before)
        expected.append(set(next_round(comparison, seeds_so_far, budget)))
        actual.append({t.user_attrs[STRATUM_KEY] for t in reevals if _seed_index(t, base_seed) == index})
    return actual, expected


# Two strata that train bit for bit alike at each seed: with kl_weight 0 the KL schedule
# multiplies a zero, so Monotonic and Cyclical differ in nothing (the difference of their
# re-runs' means is exactly 0, whatever the seeds' spread).
TWINS = "  kl_anneal_type: {values: [Monotonic, Cyclical], role: scientific}"


def _twin_fixed(tiny_fixed: dict, num_epoch: int) -> dict:
    return {**tiny_fixed, "num_epoch": num_epoch, "kl_weight": 0.0, "lr": 3.0e-3}


@pytest.mark.timeout(900)
def test_racing_stops_after_the_first_round_once_decided(search_in_ray, tiny_data, tiny_fixed, tmp_path):
    """Constructed to decide at once: twin strata and an equivalence margin (30 dB) wider than
    any seed spread here: the first round shows them equivalent, and racing gives no third
    seed though max_seeds allows 4."""
    space = _space(tmp_path / "easy.yaml", tiny_data, _twin_fixed(tiny_fixed, 2), name="easy", scientific=TWINS,
                   reeval="{seeds: auto, max_seeds: 4, equivalence_db: 30}")
    plan, _, result = search_in_ray(space, tmp_path / "runs")
    comparison = result.comparison
    assert comparison["verdict"] == "equivalent", comparison["reason"]
    trials = _study(plan.run_dir, plan.name)
    reevals = Counter(t.user_attrs[STRATUM_KEY] for t in trials if t.user_attrs.get(PHASE_KEY) == REEVAL)
    assert reevals == {"Monotonic": INITIAL_SEEDS, "Cyclical": INITIAL_SEEDS}, reevals  # max_seeds allowed 4
    assert len(trials) == 4 + 2 * INITIAL_SEEDS


def _running_in_round_two(db: Path) -> bool:
    if not db.exists():
        return False
    con = sqlite3.connect(db, timeout=10)
    try:
        rows = con.execute(
            "SELECT t.state FROM trials t JOIN trial_user_attributes a ON a.trial_id = t.trial_id "
            "WHERE a.key = 'seed' AND a.value_json = '3001'").fetchall()
    except sqlite3.OperationalError:
        return False
    finally:
        con.close()
    return any(state == "RUNNING" for (state,) in rows)


@pytest.mark.timeout(900)
def test_a_kill_mid_round_then_resume_ends_with_the_racing_rules_allocation(tiny_data, tiny_fixed, tmp_path):
    """Twin strata and no equivalence margin: the verdict can never be decided, so racing goes
    on to max_seeds 3 (a second round). The driver is SIGKILLed while a second-round re-run
    runs; --resume must finish the race, and every round's strata must be the ones the
    racing rule gives on the study's re-runs of the rounds before it."""
    space = _space(tmp_path / "race.yaml", tiny_data, _twin_fixed(tiny_fixed, 3), name="race", scientific=TWINS,
                   reeval="{seeds: auto, max_seeds: 3, equivalence_db: 0}")
    parent = tmp_path / "runs"
    run_dir, db = parent / "race", parent / "race" / "optuna.db"
    ray_tmp = Path(tempfile.mkdtemp(prefix="rrc", dir="/tmp"))  # short: unix socket paths
    env = {**os.environ, "RAY_TMPDIR": str(ray_tmp), "PYTHONUNBUFFERED": "1"}
    procs: list[subprocess.Popen] = []

    def start(tag: str, *args: str) -> subprocess.Popen:
        log = open(tmp_path / f"{tag}.log", "w")
        proc = subprocess.Popen([sys.executable, str(ROOT / "run_search.py"), "--no-report", "--space", str(space),
                                 "--storage-path", str(parent), *args], cwd=ROOT, env=env, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
        procs.append(proc)
        return proc

    def log(tag: str) -> str:
        return (tmp_path / f"{tag}.log").read_text()[-4000:]

    try:
        first = start("run")
        deadline = time.time() + 400
        while not _running_in_round_two(db):
            if first.poll() is not None:
                pytest.fail(f"the search ended before a second round ran (decided in round 1?):\n{log('run')}")
            assert time.time() < deadline, f"no second round in 400 s:\n{log('run')}"
            time.sleep(0.2)
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=60)
        kill_driver_and_ray(first.pid, ray_tmp)
        resumed = start("resume", "--resume")
        resumed.wait(timeout=400)
        assert resumed.returncode == 0, log("resume")
    finally:
        for proc in procs:
            kill_driver_and_ray(proc.pid, ray_tmp)

    trials = _study(run_dir, "race")
    assert all(t.state.is_finished() for t in trials), [t.state for t in trials]
    reevals = [t for t in trials if t.user_attrs.get(PHASE_KEY) == REEVAL]
    seeds = Counter((t.user_attrs[STRATUM_KEY], t.user_attrs[SEED_ATTR]) for t in reevals)
    assert max(seeds.values()) == 1, seeds  # no seed was run twice for a stratum
    actual, expected = _replayed_rounds(trials, base_seed=1, num_epoch=3, budget=RaceBudget(max_seeds=3, num_epoch=3),
                                        settings=Settings(equivalence=0.0), strata=["Monotonic", "Cyclical"])
    assert actual == expected == [{"Monotonic", "Cyclical"}, set()]  # round 2 gave both a third seed; then the end
