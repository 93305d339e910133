"""The search's precision (issue 24, item 1): the plan shows it, a dry run never probes, the
trials get the driver's decision, and a resumed search keeps the one its study recorded."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

from cvae.core.precision_probe import CACHE_ENV, PrecisionDecision, probe_key, write_cached
from search.precision import PRECISION_ATTR, settle, trial_precision
from search.runner import make_plan

ROOT = Path(__file__).resolve().parents[2]


def _dry_run(space: str, storage: Path) -> str:
    proc = subprocess.run([sys.executable, str(ROOT / "run_search.py"), "--space", space, "--storage-path",
                           str(storage), "--dry-run"], cwd=ROOT, capture_output=True, text=True, timeout=240,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def _precision_line(out: str) -> str:
    [line] = [line for line in out.splitlines() if line.startswith("  precision:")]
    return line


def test_dry_run_of_quick_says_auto_will_be_measured_and_probes_nothing(tmp_path: Path) -> None:
    cache = Path(os.environ[CACHE_ENV])
    from cvae.core.precision import bf16_support

    line = _precision_line(_dry_run("spaces/quick.yaml", tmp_path / "runs"))
    if bf16_support().cpu_native:
        assert line.startswith("  precision:   auto (measured before the first trial: 3 fp32 vs bf16 training steps")
        assert str(cache) in line
    else:  # bf16 would be emulated here: fp32, nothing to measure
        assert line.startswith("  precision:   fp32 (the CPU has no native bf16"), line
        assert "nothing to measure" in line
    assert not cache.exists()  # no probe ran, nothing was cached


def test_dry_run_of_quick_shows_a_cached_decision(tmp_path: Path) -> None:
    # The key the driver computes for quick.yaml: its base config, on a CPU, with a trial's 1 thread.
    plan = make_plan(ROOT / "spaces/quick.yaml", storage_path=tmp_path / "runs")
    cfg = plan.space.train_config({})
    key = probe_key("cpu", 1, plan.space.family.probe_workload(cfg))
    timings = {"fp32": [1.0, 1.0, 1.0], "bf16": [0.45, 0.45, 0.45]}
    write_cached(key, timings, PrecisionDecision("bf16", "measured"))
    line = _precision_line(_dry_run("spaces/quick.yaml", tmp_path / "runs"))
    assert line == "  precision:   bf16 (measured 2.2x faster than fp32 here, cached)"


def test_a_forced_precision_is_shown_as_forced(tmp_path: Path, tiny_data, make_space) -> None:
    space = make_space(tmp_path / "tiny.yaml", name="forced", data_root=tiny_data)  # precision: fp32
    plan = make_plan(space, storage_path=tmp_path / "runs")
    assert _precision_line(plan.describe()) == "  precision:   fp32 (forced)"


def test_trials_take_the_drivers_decision_only_for_auto() -> None:
    assert trial_precision("auto", "bf16") == "bf16"
    assert trial_precision("auto", None) == "auto"  # nobody decided: the trainer's flag rule
    assert trial_precision("auto", "auto") == "auto"
    assert trial_precision("fp32", "bf16") == "fp32"  # a trial that samples or fixes a precision keeps it


class _Study:
    def __init__(self, attrs: dict[str, Any]) -> None:
        self.user_attrs = attrs

    def set_user_attr(self, key: str, value: Any) -> None:
        self.user_attrs[key] = value


class _Record:
    def __init__(self, attrs: dict[str, Any]) -> None:
        self.study = _Study(attrs)


def test_the_decision_is_recorded_in_the_study_and_kept_on_resume(tmp_path: Path, tiny_data, make_space) -> None:
    space = make_space(tmp_path / "tiny.yaml", name="rec", data_root=tiny_data)
    plan = make_plan(space, storage_path=tmp_path / "runs")
    plan.precision = PrecisionDecision("bf16", "measured", fp32_s=1.0, bf16_s=0.5, spread=0.01)
    record = _Record({})
    decision, changed = settle(plan, record)
    assert decision.precision == "bf16" and not changed
    assert record.study.user_attrs[PRECISION_ATTR]["text"] == "bf16 (measured 2x faster than fp32 here)"
    # --resume: the driver decided nothing yet; the study's decision wins over any new probe
    plan.precision = None
    again, changed = settle(plan, record)
    assert (again.precision, again.source, changed) == ("bf16", "recorded", True)
    assert again.describe() == "bf16 (recorded when this search started: bf16 (measured 2x faster than fp32 here))"


@pytest.mark.slow
@pytest.mark.timeout(500)
def test_a_real_search_trains_every_trial_in_the_drivers_decision(tmp_path: Path, tiny_data, make_space) -> None:
    import optuna
    import yaml

    from cvae.core.precision import bf16_support, choose_precision
    from runfolder.contract import rows_by_trial
    from search.results import read_trials_csv

    space = make_space(tmp_path / "auto.yaml", name="auto", data_root=tiny_data, num_samples=2, scientific=False,
                       fixed={"precision": "auto", "num_epoch": 1})
    plan = make_plan(space, storage_path=tmp_path / "runs")
    cfg = plan.space.train_config({})
    # Seed the cache with the answer the CPU flag rule would not give here, so the trials can only
    # train in it if they take the driver's decision (the trainer's own `auto` is the flag rule).
    flag_rule = choose_precision("cpu", bf16_support())[0]
    seeded = "fp32" if flag_rule == "bf16" else "bf16"
    timings = {"fp32": [1.0] * 3, "bf16": [0.5] * 3 if seeded == "bf16" else [1.2] * 3}
    write_cached(probe_key("cpu", 1, plan.space.family.probe_workload(cfg)), timings,
                 PrecisionDecision(seeded, "measured"))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RAY_TMPDIR": tempfile.mkdtemp(prefix="rsp", dir="/tmp")}
    proc = subprocess.run([sys.executable, str(ROOT / "run_search.py"), "--no-report", "--space", str(space),
                           "--storage-path", str(tmp_path / "runs")], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=450)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert f"  precision:   {seeded} (" in proc.stdout and ", cached)" in proc.stdout
    run_dir = tmp_path / "runs" / "auto"
    assert len(rows_by_trial(read_trials_csv(run_dir))) == 2
    # every trial's every epoch reports the precision it trained in (search.trainable's execution settings)
    rows = [json.loads(line) for path in sorted(run_dir.glob("trials/*/metrics.jsonl"))
            for line in path.read_text().splitlines()]
    assert len(rows) >= 2 and {row["precision"] for row in rows} == {seeded}
    assert yaml.safe_load((run_dir / "best.yaml").read_text())["precision"] == seeded
    study = optuna.load_study(study_name="auto", storage=f"sqlite:///{run_dir / 'optuna.db'}")
    assert study.user_attrs[PRECISION_ATTR]["precision"] == seeded
