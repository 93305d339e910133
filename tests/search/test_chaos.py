"""Chaos: SIGKILLs of the driver's process group at seeded random moments, a `--resume`
after each, then the whole record is checked (tests/search/chaos_support.py).

Test 1, five kills, in order (moments drawn from the seed):
  1. during start-up of the fresh search: once its run folder exists, before any
     trial reported (the next `--resume` starts afresh when nothing was recorded yet,
     and resumes when a trial was asked);
  2. mid-search, after a random number of new epoch rows;
  3. during a `--resume`, within 2.5 s of its backup (rebuilding views, starting trials);
  4. mid-search again;
  5. during the re-evaluation phase (after a random number of `reeval` rows).
Test 2: two kills, each within one second of a start, then a resume to the end.

Checked at the end: exactly num_samples search trials and the re-runs (trials.csv and
the study); no duplicated (trial, epoch) row and no epoch gap; nothing RUNNING; every
trial that had finished before a kill unchanged in the study and in trials.csv; every
interrupted trial's next attempt started from the checkpoint it had at the kill; every
run's per-epoch val_psnr equal to an uninterrupted fit of its configuration and seed;
each stratum's best re-run exactly once per seed; no process of a killed driver left.

The seed: CVAE_SEARCH_CHAOS_SEED (default 13), so the test can be run with others:
    for s in $(seq 1 10); do CVAE_SEARCH_CHAOS_SEED=$s pytest tests/search/test_chaos.py; done
"""
from __future__ import annotations

import os
import random
import time
from pathlib import Path

import pytest

from search.processes import kill_processes_using
from tests.search.chaos_support import Driver, chaos_space, csv_rows, study

SEED = int(os.environ.get("CVAE_SEARCH_CHAOS_SEED", "13"))
NUM_SAMPLES = 6
NUM_EPOCH = 4
REEVAL_SEEDS = 2
STRATA = ["Monotonic", "None"]

pytestmark = [pytest.mark.slow]


@pytest.fixture
def ray_tmp():
    import shutil
    import tempfile

    path = Path(tempfile.mkdtemp(prefix="rch", dir="/tmp"))  # short: unix socket paths
    yield path
    kill_processes_using(path)  # whatever still holds the folder (a failed run)
    shutil.rmtree(path, ignore_errors=True)


def _after(delay: float, condition):
    """A `ready` for kill_when: `delay` seconds after `condition` first held."""
    seen: dict[str, float] = {}

    def ready() -> bool:
        if condition():
            seen.setdefault("at", time.monotonic())
        return "at" in seen and time.monotonic() >= seen["at"] + delay
    return ready


def _finish(driver: Driver, space: Path, tmp_path: Path, t0: float, moments: list[str]) -> dict[str, list[str]]:
    proc, log = driver.start(True)
    assert proc.wait(timeout=600) == 0, log.read_text()[-4000:]
    print(f"chaos seed {SEED}: {len(moments)} kills, wall {time.monotonic() - t0:.0f}s;", "; ".join(moments))
    what = driver.check_consistent(num_samples=NUM_SAMPLES, num_epoch=NUM_EPOCH, reeval_seeds=REEVAL_SEEDS,
                                   seed_values=[1001, 2001], strata=STRATA)
    driver.check_numbers(space, tmp_path, NUM_EPOCH)
    print(f"chaos seed {SEED}: interrupted trials continued from a checkpoint {what['continued']}, "
          f"started again (no checkpoint yet) {what['from_scratch']}, ended by the resume (their last epoch was "
          f"checkpointed) {what['ended_at_resume']}; finished before a kill and unchanged: "
          f"{len(driver.finished)}")
    return what


@pytest.mark.timeout(900)
def test_five_seeded_kills_then_resume_leave_a_consistent_study(tmp_path, tiny_data, tiny_fixed, ray_tmp):
    t0 = time.monotonic()
    rng = random.Random(SEED)
    space = chaos_space(tmp_path / "chaos.yaml", tiny_data, tiny_fixed, num_samples=NUM_SAMPLES,
                        num_epoch=NUM_EPOCH, reeval_seeds=REEVAL_SEEDS)
    driver = Driver(space, tmp_path / "runs", ray_tmp, tmp_path)
    run_dir = driver.run_dir
    moments: list[str] = []

    # 1) start-up: once the run folder exists, before any trial reported (a first row ends start-up)
    proc, log = driver.start(False)
    late = _after(rng.uniform(0.0, 6.0), run_dir.is_dir)
    driver.kill_when(proc, log, lambda: bool(csv_rows(run_dir)) or late())
    recorded = bool(study(run_dir))
    moments.append(f"kill 1 (start-up): {time.monotonic() - t0:.0f}s, trials recorded: {recorded}")

    def rows_kill(what: str, reeval: bool) -> str:
        proc, log = driver.start(True)
        before = csv_rows(run_dir)
        if reeval:
            need = rng.randint(1, 3)
            ready = lambda: sum(r["phase"] == "reeval" for r in csv_rows(run_dir)) >= need  # noqa: E731
        else:
            need = len(before) + rng.randint(1, 4)
            ready = lambda: len(csv_rows(run_dir)) >= need  # noqa: E731
        driver.kill_when(proc, log, _after(rng.uniform(0.0, 1.0), ready))
        moments.append(f"{what}: {time.monotonic() - t0:.0f}s, rows {len(before)} -> {len(csv_rows(run_dir))}")
        return log.read_text()

    # 2) mid-search, in the --resume after the start-up kill
    log2 = rows_kill("kill 2 (search)", reeval=False)
    if recorded:  # a folder with a record always resumes; one without starts afresh
        assert "resume:" in log2 and "starting the search afresh" not in log2, log2[-3000:]
    elif run_dir.exists():
        assert "starting the search afresh" in log2, log2[-3000:]
    # 3) during a --resume: seconds after it made its backup
    proc, log = driver.start(True)
    launched = time.time()
    marker = run_dir / ".resume-backup" / "backup.json"
    before = len(csv_rows(run_dir))
    driver.kill_when(proc, log, _after(rng.uniform(0.0, 2.5),
                                       lambda: marker.is_file() and marker.stat().st_mtime >= launched))
    moments.append(f"kill 3 (during --resume): {time.monotonic() - t0:.0f}s, rows {before} -> {len(csv_rows(run_dir))}")
    # 4) mid-search again; 5) during the re-evaluation phase
    rows_kill("kill 4 (search)", reeval=False)
    rows_kill("kill 5 (re-evaluation)", reeval=True)
    _finish(driver, space, tmp_path, t0, moments)
    assert any(driver.checkpoint_at_kill), "no kill caught a trial running"
    assert (run_dir / ".resume-backup" / "optuna.db").is_file()  # the last resume's backup


@pytest.mark.timeout(900)
def test_two_kills_within_a_second_of_a_start_then_resume(tmp_path, tiny_data, tiny_fixed, ray_tmp):
    t0 = time.monotonic()
    rng = random.Random(SEED + 1000)
    space = chaos_space(tmp_path / "chaos.yaml", tiny_data, tiny_fixed, num_samples=NUM_SAMPLES,
                        num_epoch=NUM_EPOCH, reeval_seeds=REEVAL_SEEDS)
    driver = Driver(space, tmp_path / "runs", ray_tmp, tmp_path)
    moments: list[str] = []
    for n in (1, 2):
        # "a start": the moment the driver begins to write the run folder (its lock taken),
        # before any trial is asked (1) or while the resumed one sets up (2)
        lock = driver.run_dir / ".search.lock"
        launched = time.time()
        proc, log = driver.start(n > 1)
        delay = rng.uniform(0.0, 1.0)
        driver.kill_when(proc, log, _after(delay, lambda: lock.is_file() and lock.stat().st_mtime >= launched - 1))
        moments.append(f"kill {n} ({delay:.2f}s after its start): rows {len(csv_rows(driver.run_dir))}, "
                       f"trials recorded {len(study(driver.run_dir))}")
    _finish(driver, space, tmp_path, t0, moments)
