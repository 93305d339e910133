"""Chaos (issue 13 item 4): five seeded SIGKILLs of the driver's process group at random
moments, a `--resume` after each, then the whole study is checked.

The kills, in order (moments drawn from SEED):
  1. during start-up of the fresh search: once its run folder exists, before any
     trial reported (nothing saved yet: the next `--resume` starts it afresh);
  2. mid-search, after a random number of new epoch rows;
  3. during a `--resume`, within 2.5 s of its backup (reconciling, restoring);
  4. mid-search again;
  5. during the re-evaluation phase (after a random number of `reeval` rows).
Each kill is what a user's kill is: SIGKILL to the driver's process group, nothing
else; the next `--resume` must cope with whatever the kill left.

Checked at the end: exactly num_samples search trials (trials.csv and the study);
no duplicated (trial, epoch) row and no epoch gap; no study trial left RUNNING;
every trial finished before a kill has identical rows afterwards; every run's
per-epoch val_psnr equals an uninterrupted `cvae.train.fit` of its configuration
and seed, and interrupted trials continued from a checkpoint; each stratum's best
re-run exactly once per seed; no process of a killed driver (its process group,
or anything holding its Ray temp folder) is left after the final resume.
"""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import torch

from search.contract import parse_cell, read_trials_csv, rows_by_trial, study_trials
from search.processes import kill_processes_using
from search.resume import _newest, _read_experiment_state

ROOT = Path(__file__).resolve().parents[2]
SEED = 13
NUM_SAMPLES = 6
NUM_EPOCH = 4
REEVAL_SEEDS = 2
FINAL = ("completed", "stopped", "diverged", "failed")

pytestmark = [pytest.mark.slow]


def _space(path: Path, data_root: Path, tiny_fixed: dict) -> Path:
    fixed = {**tiny_fixed, "num_epoch": NUM_EPOCH, "kl_anneal_ratio": 0.5}
    fixed_yaml = "\n".join(f"  {k}: {v}" for k, v in fixed.items())
    path.write_text(f"""\
name: chaos
metric: {{name: val_psnr, goal: maximize}}
data: {{root: {data_root}}}
trials: {{num_samples: {NUM_SAMPLES}, max_concurrent: 2, resources: {{cpu: 1, gpu: 0}}, max_failures: 0, checkpoint_every: 1}}
sampler: {{type: tpe, seed: 0, n_startup_trials: 2}}
early_terminate: {{type: asha, grace_period: 1, reduction_factor: 2}}
reeval: {{seeds: {REEVAL_SEEDS}}}
fixed:
{fixed_yaml}
parameters:
  kl_anneal_type: {{values: [Monotonic, None], role: scientific}}
  lr: {{distribution: log_uniform_values, min: 1.0e-4, max: 3.0e-3}}  # up to 3e-2 diverged once (CI run, 2026-11-26): a diverged run's 0 dB cannot match a direct fit's NaN
""")
    return path


def _rows(run_dir: Path) -> list[dict[str, str]]:
    try:
        return read_trials_csv(run_dir)
    except (OSError, StopIteration, ValueError):
        return []


def _pgid_members(pgid: int) -> list[int]:
    found = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2:].split()
            if fields[0] != "Z" and int(fields[2]) == pgid:
                found.append(int(d.name))
    return found


def _holding(path: Path) -> list[str]:
    """'pid cmdline' of every live process with a file open under `path`."""
    found = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit() or int(d.name) == os.getpid():
            continue
        try:
            if any(str(path) in os.readlink(fd) for fd in (d / "fd").iterdir()):
                cmdline = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                found.append(f"{d.name} {cmdline[:120]}")
        except (OSError, ValueError):
            continue
    return found


class Driver:
    def __init__(self, space: Path, runs: Path, ray_tmp: Path, logs: Path) -> None:
        self.space, self.runs, self.ray_tmp, self.logs = space, runs, ray_tmp, logs
        self.killed_groups: list[int] = []
        self.n = 0

    def start(self, resume: bool) -> tuple[subprocess.Popen, Path]:
        # A kill before the run folder existed: a user starts again (--resume would say the
        # folder does not exist, which guards against a mistyped name).
        resume = resume and (self.runs / "chaos").exists()
        self.n += 1
        log = self.logs / f"run{self.n}.log"
        env = {**os.environ, "RAY_TMPDIR": str(self.ray_tmp), "PYTHONUNBUFFERED": "1"}
        args = ["--space", str(self.space), "--storage-path", str(self.runs), "--no-report",
                *(["--resume"] if resume else [])]
        proc = subprocess.Popen([sys.executable, str(ROOT / "run_search.py"), *args], cwd=ROOT, env=env,
                                stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)
        return proc, log

    def kill_when(self, proc: subprocess.Popen, log: Path, ready, within: float = 300) -> None:
        deadline = time.time() + within
        while not ready():
            assert proc.poll() is None, f"run {self.n} ended before its kill:\n{log.read_text()[-4000:]}"
            assert time.time() < deadline, f"run {self.n}: the moment to kill never came:\n{log.read_text()[-3000:]}"
            time.sleep(0.05)
        assert proc.poll() is None, f"run {self.n} ended before its kill:\n{log.read_text()[-4000:]}"
        os.killpg(proc.pid, signal.SIGKILL)  # what a user's kill does: the driver's process group, nothing else
        proc.wait(timeout=60)
        self.killed_groups.append(proc.pid)


@pytest.fixture
def ray_tmp():
    import shutil
    import tempfile

    path = Path(tempfile.mkdtemp(prefix="rch", dir="/tmp"))  # short: unix socket paths
    yield path
    kill_processes_using(path)  # whatever still holds the folder (a failed run)
    shutil.rmtree(path, ignore_errors=True)


@pytest.mark.timeout(900)
def test_five_seeded_kills_then_resume_leave_a_consistent_study(tmp_path, tiny_data, tiny_fixed, ray_tmp):
    t0 = time.monotonic()
    rng = random.Random(SEED)
    space = _space(tmp_path / "chaos.yaml", tiny_data, tiny_fixed)
    runs, run_dir = tmp_path / "runs", tmp_path / "runs" / "chaos"
    driver = Driver(space, runs, ray_tmp, tmp_path)
    finished_before: dict[str, list[dict[str, str]]] = {}
    interrupted: set[str] = set()
    # per kill: trial id -> the checkpoint epoch Tune's saved state holds for it (None: not saved)
    at_kill: list[dict[str, int | None]] = []
    moments: list[str] = []

    def after_kill() -> None:
        saved: dict[str, int] = {}
        state = _newest(run_dir, "experiment_state-*.json") if run_dir.is_dir() else None
        if state is not None:
            saved = {t.trial_id: t.checkpoint_iter for t in _read_experiment_state(state)[1]}
        running = {}
        for tid, rows in rows_by_trial(_rows(run_dir)).items():
            if rows[0]["status"] in FINAL:
                finished_before.setdefault(tid, rows)
            else:
                interrupted.add(tid)
                running[tid] = saved.get(tid)
        at_kill.append(running)

    def folder() -> str:
        return str(sorted(p.name for p in run_dir.iterdir())) if run_dir.is_dir() else "no run folder"

    def after(delay: float, condition):
        """A `ready` for kill_when: `delay` seconds after `condition` first held."""
        seen: dict[str, float] = {}

        def ready() -> bool:
            if condition():
                seen.setdefault("at", time.monotonic())
            return "at" in seen and time.monotonic() >= seen["at"] + delay
        return ready

    def startup_kill(what: str) -> None:
        # once the run folder exists, before any trial reported (a first row ends start-up: kill then)
        proc, log = driver.start(False)
        late = after(rng.uniform(0.0, 6.0), run_dir.is_dir)
        driver.kill_when(proc, log, lambda: bool(_rows(run_dir)) or late())
        moments.append(f"{what}: {time.monotonic() - t0:.0f}s, rows {len(_rows(run_dir))}, folder {folder()}")
        after_kill()

    def resume_kill(what: str) -> None:
        # during a --resume: seconds after it made its backup (reconciling, restoring, restarting trials)
        proc, log = driver.start(True)
        launched = time.time()
        marker = run_dir / ".resume-backup" / "backup.json"
        before = len(_rows(run_dir))
        driver.kill_when(proc, log, after(rng.uniform(0.0, 2.5),
                                          lambda: marker.is_file() and marker.stat().st_mtime >= launched))
        moments.append(f"{what}: {time.monotonic() - t0:.0f}s, rows {before} -> {len(_rows(run_dir))}")
        after_kill()

    def rows_kill(what: str, reeval: bool) -> str:
        proc, log = driver.start(True)
        before = _rows(run_dir)
        if reeval:
            need = rng.randint(1, 3)
            ready = lambda: sum(r["phase"] == "reeval" for r in _rows(run_dir)) >= need  # noqa: E731
        else:
            need = len(before) + rng.randint(1, 4)
            ready = lambda: len(_rows(run_dir)) >= need  # noqa: E731
        driver.kill_when(proc, log, after(rng.uniform(0.0, 1.0), ready))
        moments.append(f"{what}: {time.monotonic() - t0:.0f}s, rows {len(before)} -> {len(_rows(run_dir))}")
        after_kill()
        return log.read_text()

    startup_kill("kill 1 (start-up)")
    log2 = rows_kill("kill 2 (search, in the --resume after a start-up kill)", reeval=False)
    assert "starting the search afresh" in log2, log2[-3000:]  # nothing was saved: --resume starts it
    resume_kill("kill 3 (during --resume)")
    rows_kill("kill 4 (search)", reeval=False)
    rows_kill("kill 5 (re-evaluation)", reeval=True)
    proc, log = driver.start(True)
    assert proc.wait(timeout=600) == 0, log.read_text()[-4000:]
    wall = time.monotonic() - t0
    print(f"chaos: {len(moments)} kills, wall {wall:.0f}s;", "; ".join(moments))

    rows = _rows(run_dir)
    trials = rows_by_trial(rows)
    search = {t: r for t, r in trials.items() if r[0]["phase"] == "search"}
    reeval = {t: r for t, r in trials.items() if r[0]["phase"] == "reeval"}
    # exactly num_samples search trials, every run finished
    assert len(search) == NUM_SAMPLES, sorted(search)
    assert all(r[0]["status"] in ("completed", "stopped") for r in trials.values()), \
        {t: r[0]["status"] for t, r in trials.items()}
    # one row per (trial, epoch), no gap
    for tid, r in trials.items():
        assert [int(x["epoch"]) for x in r] == list(range(1, len(r) + 1)), (tid, [x["epoch"] for x in r])
    # the study: num_samples search trials, REEVAL_SEEDS re-runs per stratum, nothing RUNNING
    study = study_trials(run_dir / "optuna.db")
    assert Counter(a.get("phase") for _, _, a in study) == {"search": NUM_SAMPLES, "reeval": 2 * REEVAL_SEEDS}, study
    assert all(state in ("COMPLETE", "PRUNED") for _, state, _ in study), study
    assert {a.get("ray_trial_id") for _, _, a in study} == set(trials)
    # each stratum's best re-run exactly once per seed
    per_stratum = Counter(r[0]["stratum"] for r in reeval.values())
    assert per_stratum == {"Monotonic": REEVAL_SEEDS, "None": REEVAL_SEEDS}, per_stratum
    for stratum in per_stratum:
        assert sorted(int(r[0]["seed"]) for r in reeval.values() if r[0]["stratum"] == stratum) == [1001, 2001]
    # a trial finished before a kill is untouched afterwards
    for tid, before in finished_before.items():
        assert trials.get(tid) == before, (tid, before, trials.get(tid))
    # the numbers: every run equals an uninterrupted fit of its configuration and seed
    from cvae.train import fit
    from search.runner import make_plan, prepare_data

    plan = make_plan(space, storage_path=tmp_path / "refit")
    data = prepare_data(plan, progress=False)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in a trial (1 CPU): the same kernels, the same floats
    try:
        for tid, r in trials.items():
            params = {name: parse_cell(r[0][name]) for name in plan.space.parameter_names() if r[0].get(name, "")}
            cfg = plan.space.train_config({**params, "seed": int(r[0]["seed"])})
            expected: list[float] = []
            fit(cfg.replace(num_epoch=NUM_EPOCH), data, device="cpu",
                on_epoch=lambda m, t: expected.append(m["val_psnr"]))
            got = [float(x["val_psnr"]) for x in r]
            assert got == pytest.approx(expected[:len(got)], rel=1e-6, abs=1e-9), (tid, got, expected)
    finally:
        torch.set_num_threads(threads)
    # An interrupted trial continues from the checkpoint Tune's saved state holds for it (Ray's
    # iterations_since_restore restarts at 1 on the epoch after it); one Tune never saved (asked
    # after its last save) is set aside in .orphaned/ and its configuration and seed run again.
    results = {}
    for d in run_dir.iterdir():
        if (d / "result.json").is_file():
            lines = [json.loads(line) for line in (d / "result.json").read_text().splitlines()]
            assert [x["training_iteration"] for x in lines] == list(range(1, len(lines) + 1)), d.name
            results[lines[0]["trial_id"]] = {x["training_iteration"]: x for x in lines}
    orphaned = {p.name for p in (run_dir / ".orphaned").iterdir()} if (run_dir / ".orphaned").is_dir() else set()

    def same_run(r: list[dict[str, str]]) -> tuple:
        return tuple((k, v) for k, v in r[0].items() if k in ("phase", "stratum", "seed", *plan.space.parameter_names()))

    continued, rerun, from_scratch = set(), set(), set()
    for kill in at_kill:
        for tid, checkpoint in kill.items():
            if checkpoint is None:  # not in Tune's saved state
                assert tid not in trials and any(tid in name for name in orphaned), (tid, sorted(orphaned))
                rerun.add(tid)
            elif checkpoint > 0 and checkpoint < NUM_EPOCH:
                after = results[tid].get(checkpoint + 1, {})
                assert after.get("iterations_since_restore") == 1, (tid, checkpoint, after)
                continued.add(tid)
            else:
                from_scratch.add(tid)  # no checkpoint saved yet: it starts again, with the same numbers
    assert interrupted, "no kill caught a trial running"
    assert continued, "no interrupted trial had a saved checkpoint to continue from"
    final_runs = Counter(same_run(r) for r in trials.values())
    assert all(n == 1 for n in final_runs.values()), final_runs  # nothing ran twice under two ids
    # the backup of the last resume
    assert (run_dir / ".resume-backup" / "optuna.db").is_file()
    # nothing of a killed driver is left: its process group, or anything holding the Ray temp folder
    left = {g: _pgid_members(g) for g in driver.killed_groups if _pgid_members(g)}
    holding = _holding(ray_tmp)
    print(f"chaos: interrupted {sorted(interrupted)}: continued from a checkpoint {sorted(continued)}, "
          f"set aside and run again (asked after Tune's last save) {sorted(rerun)}, started again (no checkpoint "
          f"saved) {sorted(from_scratch)}; finished before a kill and unchanged: {len(finished_before)}")
    assert not left and not holding, (left, holding)
