"""What the chaos tests share: a driver started and SIGKILLed like a user's, snapshots of
the record at each kill, and the checks every search must pass after its last resume."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Callable

import pytest
import torch

from runfolder.contract import parse_cell, read_trials_csv, rows_by_trial
from search.trial_files import TrialFiles, epoch_rows

ROOT = Path(__file__).resolve().parents[2]
FINAL = ("completed", "stopped", "diverged", "failed")


def chaos_space(path: Path, data_root: Path, tiny_fixed: dict, *, num_samples: int, num_epoch: int,
                reeval_seeds: int) -> Path:
    fixed = {**tiny_fixed, "num_epoch": num_epoch, "kl_anneal_ratio": 0.5}
    fixed_yaml = "\n".join(f"  {k}: {v}" for k, v in fixed.items())
    path.write_text(f"""\
name: chaos
metric: {{name: val_psnr, goal: maximize}}
data: {{root: {data_root}}}
trials: {{num_samples: {num_samples}, max_concurrent: 2, resources: {{cpu: 1, gpu: 0}}, max_failures: 0, checkpoint_every: 1}}
sampler: {{type: tpe, seed: 0, n_startup_trials: 2}}
early_terminate: {{type: asha, grace_period: 1, reduction_factor: 2}}
reeval: {{seeds: {reeval_seeds}}}
fixed:
{fixed_yaml}
parameters:
  kl_anneal_type: {{values: [Monotonic, None], role: scientific}}
  lr: {{distribution: log_uniform_values, min: 1.0e-4, max: 3.0e-3}}  # up to 3e-2 diverged once (CI run, 2026-11-26): a diverged run's 0 dB cannot match a direct fit's NaN
""")
    return path


def csv_rows(run_dir: Path) -> list[dict[str, str]]:
    try:
        return read_trials_csv(run_dir)
    except (OSError, StopIteration, ValueError):
        return []


def study(run_dir: Path) -> list:
    """The study's trials (optuna FrozenTrials), read after a kill (no driver is writing)."""
    import optuna

    db = run_dir / "optuna.db"
    if not db.is_file():
        return []
    try:
        return optuna.load_study(study_name="chaos", storage=f"sqlite:///{db}").get_trials(deepcopy=False)
    except KeyError:  # killed before the study was created
        return []


def pgid_members(pgid: int) -> list[int]:
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


def holding(path: Path) -> list[str]:
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
    """run_search.py in its own session, killed as a user kills it: SIGKILL to its process group."""

    def __init__(self, space: Path, runs: Path, ray_tmp: Path, logs: Path) -> None:
        self.space, self.runs, self.ray_tmp, self.logs = space, runs, ray_tmp, logs
        self.run_dir = runs / "chaos"
        self.killed_groups: list[int] = []
        self.n = 0
        # per kill: what the record said right after it
        self.finished: dict[str, dict] = {}          # trial id -> its end and rows, first seen finished
        self.finished_rows: dict[str, list[dict[str, str]]] = {}  # trials.csv rows of trials final there
        # per kill: running trial -> (its newest checkpoint epoch, how many attempts it had)
        self.checkpoint_at_kill: list[dict[str, tuple[int, int]]] = []

    def start(self, resume: bool) -> tuple[subprocess.Popen, Path]:
        # A kill before the run folder existed: a user starts again (--resume would say the
        # folder does not exist, which guards against a mistyped name).
        resume = resume and self.run_dir.exists()
        self.n += 1
        log = self.logs / f"run{self.n}.log"
        env = {**os.environ, "RAY_TMPDIR": str(self.ray_tmp), "PYTHONUNBUFFERED": "1"}
        args = ["--space", str(self.space), "--storage-path", str(self.runs), "--no-report",
                *(["--resume"] if resume else [])]
        proc = subprocess.Popen([sys.executable, str(ROOT / "run_search.py"), *args], cwd=ROOT, env=env,
                                stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)
        return proc, log

    def kill_when(self, proc: subprocess.Popen, log: Path, ready: Callable[[], bool], within: float = 300) -> None:
        deadline = time.time() + within
        while not ready():
            assert proc.poll() is None, f"run {self.n} ended before its kill:\n{log.read_text()[-4000:]}"
            assert time.time() < deadline, f"run {self.n}: the moment to kill never came:\n{log.read_text()[-3000:]}"
            time.sleep(0.05)
        assert proc.poll() is None, f"run {self.n} ended before its kill:\n{log.read_text()[-4000:]}"
        os.killpg(proc.pid, signal.SIGKILL)  # the driver's process group, nothing else
        proc.wait(timeout=60)
        self.killed_groups.append(proc.pid)
        self.snapshot()

    def snapshot(self) -> None:
        """What the record holds right after a kill: finished trials (to compare at the end)
        and each running trial's newest complete checkpoint (it must continue from there)."""
        running: dict[str, tuple[int, int]] = {}
        for t in study(self.run_dir):
            key = t.user_attrs.get("trial_id")
            if key is None or "config" not in t.user_attrs:
                continue  # asked, never handed out: the resume abandons it (search.record.abandon)
            if t.state.is_finished():
                rows = epoch_rows(self.run_dir / "trials" / key / "metrics.jsonl")
                final = t.user_attrs.get("final_epoch")
                self.finished.setdefault(key, {
                    "state": t.state.name, "value": t.value, "status": t.user_attrs.get("status"),
                    "steps": dict(t.intermediate_values),
                    "val_psnr": [rows[e]["val_psnr"] for e in sorted(rows) if final is None or e <= final]})
            elif t.state.name == "RUNNING":
                newest = TrialFiles(self.run_dir, key).newest_checkpoint()
                running[key] = (newest[0] if newest else 0, len(TrialFiles(self.run_dir, key).attempts()))
        self.checkpoint_at_kill.append(running)
        for tid, rows in rows_by_trial(csv_rows(self.run_dir)).items():
            if rows[0]["status"] in FINAL:
                self.finished_rows.setdefault(tid, rows)

    def check_consistent(self, *, num_samples: int, num_epoch: int, reeval_seeds: int,
                         seed_values: list[int], strata: list[str]) -> dict[str, list[str]]:
        """Every check of a search after its last resume; returns what happened to interrupted trials."""
        run_dir = self.run_dir
        trials = rows_by_trial(csv_rows(run_dir))
        search = {t: r for t, r in trials.items() if r[0]["phase"] == "search"}
        reeval = {t: r for t, r in trials.items() if r[0]["phase"] == "reeval"}
        # exactly num_samples search trials and the re-runs, every run finished
        assert len(search) == num_samples, sorted(search)
        assert all(r[0]["status"] in ("completed", "stopped") for r in trials.values()), \
            {t: r[0]["status"] for t, r in trials.items()}
        # one row per (trial, epoch), no gap
        for tid, r in trials.items():
            assert [int(x["epoch"]) for x in r] == list(range(1, len(r) + 1)), (tid, [x["epoch"] for x in r])
        # the study: the same trials, nothing RUNNING or WAITING
        everything = study(run_dir)
        abandoned = [t for t in everything if t.user_attrs.get("abandoned")]
        assert all(t.state.name == "FAIL" and not (run_dir / "trials" / t.user_attrs.get("trial_id", "-")).exists()
                   for t in abandoned), abandoned  # an abandoned ask never ran
        record = [t for t in everything if not t.user_attrs.get("abandoned")]
        assert Counter(t.user_attrs.get("phase") for t in record) == {
            "search": num_samples, "reeval": len(strata) * reeval_seeds}, [(t.number, t.user_attrs) for t in record]
        assert all(t.state.name in ("COMPLETE", "PRUNED") for t in record), [(t.number, t.state) for t in record]
        assert {t.user_attrs["trial_id"] for t in record} == set(trials)
        # each stratum's best re-run exactly once per seed
        per_stratum = Counter(r[0]["stratum"] for r in reeval.values())
        assert per_stratum == {s: reeval_seeds for s in strata}, per_stratum
        for stratum in per_stratum:
            assert sorted(int(r[0]["seed"]) for r in reeval.values() if r[0]["stratum"] == stratum) == seed_values
        # a trial finished before a kill is untouched afterwards: in the study and in trials.csv
        by_key = {t.user_attrs["trial_id"]: t for t in record}
        for key, before in self.finished.items():
            t = by_key[key]
            assert (t.state.name, t.value, t.user_attrs.get("status"), dict(t.intermediate_values)) == (
                before["state"], before["value"], before["status"], before["steps"]), (key, before)
            assert [float(x["val_psnr"]) for x in trials[key]] == before["val_psnr"], (key, before)
        for tid, before in self.finished_rows.items():
            assert trials.get(tid) == before, (tid, before, trials.get(tid))
        # an interrupted trial's next attempt starts from the checkpoint it had at the kill (or a
        # newer one a dying worker finished): attempts.jsonl has one line per attempt
        what: dict[str, list[str]] = {"continued": [], "from_scratch": [], "ended_at_resume": []}
        for kill in self.checkpoint_at_kill:
            for key, (epoch, attempts_then) in kill.items():
                attempts = TrialFiles(run_dir, key).attempts()
                if len(attempts) == attempts_then:
                    # not run again: only when its newest checkpoint was its end (the resume committed it)
                    t = by_key[key]
                    assert t.user_attrs.get("status") in ("completed", "diverged"), (key, attempts, t.user_attrs)
                    assert t.user_attrs["final_epoch"] >= epoch, (key, epoch, t.user_attrs)
                    what["ended_at_resume"].append(key)
                    continue
                start = attempts[attempts_then]["from_epoch"]
                assert start >= epoch, (key, epoch, attempts)
                (what["continued"] if start > 0 else what["from_scratch"]).append(key)
        # every attempt that ran is in the study, in order (the study may also name an attempt a
        # kill stopped between its suggestion and its start)
        for key, t in by_key.items():
            ran = [a["ray_trial_id"] for a in TrialFiles(run_dir, key).attempts()]
            known = list(t.user_attrs.get("attempts", []))
            assert [a for a in known if a in ran] == ran, (key, known, ran)
        # nothing of a killed driver is left: its process group, or anything holding the Ray temp folder
        # (Ray's processes exit a moment after the driver: wait for them, up to 30 s)
        deadline = time.monotonic() + 30
        while True:
            left = {g: pgid_members(g) for g in self.killed_groups if pgid_members(g)}
            held = holding(self.ray_tmp)
            if (not left and not held) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert not left and not held, (left, held)
        return what

    def check_numbers(self, space: Path, tmp_path: Path, num_epoch: int) -> None:
        """Every run's per-epoch val_psnr equals an uninterrupted fit of its configuration and seed."""
        from cvae.families.lab4_2024.train import fit
        from search.runner import make_plan, prepare_data

        trials = rows_by_trial(csv_rows(self.run_dir))
        plan = make_plan(space, storage_path=tmp_path / "refit")
        data = prepare_data(plan, progress=False)
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # as in a trial (1 CPU): the same kernels, the same floats
        try:
            for tid, r in trials.items():
                params = {name: parse_cell(r[0][name]) for name in plan.space.parameter_names() if r[0].get(name, "")}
                cfg = plan.space.train_config({**params, "seed": int(r[0]["seed"])})
                expected: list[float] = []
                fit(cfg.replace(num_epoch=num_epoch), data, device="cpu",
                    on_epoch=lambda m, t: expected.append(m["val_psnr"]))
                got = [float(x["val_psnr"]) for x in r]
                assert got == pytest.approx(expected[:len(got)], rel=1e-6, abs=1e-9), (tid, got, expected)
        finally:
            torch.set_num_threads(threads)


def read_json(path: Path) -> dict:
    return json.loads(path.read_text())
