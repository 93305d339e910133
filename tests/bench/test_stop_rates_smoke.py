"""bench/stop_rates.py: the replay feeds a scheduler as 2 workers would, and --smoke writes a complete results file."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
RESULT = ROOT / "bench" / "results" / "stop_rates.smoke.json"
sys.path.insert(0, str(ROOT))

from bench.stop_rates import replay_order  # noqa: E402
from bench.table import Curve  # noqa: E402

QUICK = {"time_attr": "epoch", "metric": "val_psnr", "mode": "max", "max_t": 6, "grace_period": 2,
         "reduction_factor": 3}


def curves() -> list[Curve]:
    flat = {0: 30.0, 1: 30.0, 2: 10.0, 3: 40.0}
    kls = {0: "None", 1: "None", 2: "Monotonic", 3: "None"}
    return [Curve((flat[i],) * 6, {"kl_anneal_type": kls[i]}, kls[i]) for i in range(4)]


def test_replay_two_workers_one_epoch_at_a_time():
    from ray.tune.schedulers import ASHAScheduler

    from search.scheduler import ScheduleAwareASHA

    # Ticks 1-6: curves 0 and 1 (equal values at the rung: neither is below the cut-off) run to max_t.
    # Ticks 7-8: curves 2 and 3 start; at epoch 2 the weak curve 2 is below the rung's cut-off (30 or 33.3).
    for seed in range(5):
        last = replay_order(curves(), [0, 1, 2, 3], ASHAScheduler(**QUICK), np.random.default_rng(seed), 6,
                      stratified=False)
        assert last == {0: 6, 1: 6, 2: 2, 3: 6}
    # Stratified by KL type, curve 2 is alone in Monotonic: not stopped.
    after = ScheduleAwareASHA(**QUICK, earliest_stop=lambda config: 2)
    assert replay_order(curves(), [0, 1, 2, 3], after, np.random.default_rng(0), 6, stratified=True) == \
        {0: 6, 1: 6, 2: 6, 3: 6}


@pytest.mark.timeout(120)
def test_stop_rates_smoke_writes_results() -> None:
    RESULT.unlink(missing_ok=True)
    proc = subprocess.run([sys.executable, "bench/stop_rates.py", "--smoke"], cwd=ROOT,
                          capture_output=True, text=True, timeout=110)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "| Monotonic |" in proc.stdout and "success rule" in proc.stdout
    assert "orders" in proc.stderr  # progress

    report = json.loads(RESULT.read_text())
    for key in ("command", "date", "machine", "versions", "success_rule", "settings", "inputs",
                "rank_correlations", "results", "success", "markdown"):
        assert key in report, key
    assert report["smoke"] is True and report["settings"]["orders"] == 5
    assert report["machine"]["cpu_model"]
    assert report["versions"]["ray"] == __import__("ray").__version__
    assert report["settings"]["grace_period"] == 2 and report["settings"]["max_t"] == 6
    assert report["inputs"]["distinct_curves"] > 0
    for variant in ("pool", "balanced"):
        for name in ("before", "after"):
            summary = report["results"][variant][name]["summary"]
            for kl, row in summary.items():
                assert 0.0 <= row["stop_rate_p05"] <= row["stop_rate_mean"] <= row["stop_rate_p95"] <= 1.0, kl
                assert 0.0 < row["epochs_fraction"] <= 1.0, kl
    assert isinstance(report["success"]["met"], bool)
    RESULT.unlink()
