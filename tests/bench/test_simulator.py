"""bench/simulator.py: stored curves through a real scheduler on 2 workers, epoch by epoch."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.simulator import ReplayTrial, Started, replay  # noqa: E402

ASHA = {"time_attr": "epoch", "metric": "val_psnr", "mode": "max", "max_t": 6, "grace_period": 2,
        "reduction_factor": 3}


def starter(curves: list[tuple[float, ...]]):
    queue = list(enumerate(curves))

    def start() -> Started | None:
        if not queue:
            return None
        i, curve = queue.pop(0)
        return Started(ReplayTrial(f"t{i}", {"i": i}), curve)
    return start


class Recorder:
    """A listener that keeps what the searcher side would see."""

    def __init__(self) -> None:
        self.results: list[tuple[str, int]] = []
        self.completed: dict[str, dict[str, Any]] = {}

    def result(self, trial_id: str, result: dict[str, Any]) -> None:
        self.results.append((trial_id, result["epoch"]))

    def complete(self, trial_id: str, result: dict[str, Any]) -> None:
        self.completed[trial_id] = result


def test_asha_stops_a_bad_curve_at_the_rung_and_the_searcher_sees_its_last_result() -> None:
    from ray.tune.schedulers import ASHAScheduler

    # Ticks 1-6: t0 and t1 run to max_t (equal values at the rung). Then t2 (bad) and t3 (good) start;
    # at epoch 2 t2's 10 dB is below the rung's cut-off: STOP.
    curves = [(30.0,) * 6, (30.0,) * 6, (10.0,) * 6, (40.0,) * 6]
    for seed in range(3):
        listener = Recorder()
        out = replay(starter(curves), ASHAScheduler(**ASHA), np.random.default_rng(seed), 6, listener=listener)
        by_id = {o.trial.trial_id: o for o in out.trials}
        assert [o.trial.trial_id for o in out.trials] == ["t0", "t1", "t2", "t3"]  # start order
        assert by_id["t2"].last_epoch == 2 and by_id["t2"].stopped and by_id["t2"].ended
        assert all(by_id[t].last_epoch == 6 and not by_id[t].stopped for t in ("t0", "t1", "t3"))
        # the STOP'd result reaches the searcher once, as the trial's last result (Tune's on_trial_complete)
        assert listener.completed["t2"]["epoch"] == 2 and ("t2", 2) not in listener.results
        assert ("t2", 1) in listener.results and len(listener.results) == 1 + 5 * 3
        assert len(out.trace) == 6 + 6 + 6 + 2 and out.trace[-1] == 40.0


def test_no_scheduler_runs_every_curve_to_its_end_within_the_budget() -> None:
    # t1 diverged after 2 epochs (a short curve): it ends there, not counted as stopped
    curves = [(1.0, 2.0, 3.0), (5.0, 4.0), (0.0, 9.0, 0.0)]
    out = replay(starter(curves), None, np.random.default_rng(0), 3)
    assert [(o.last_epoch, o.stopped, o.ended) for o in out.trials] == [(3, False, True), (2, False, True),
                                                                       (3, False, True)]
    # ticks: (t0 1, t1 5) (t0 2, t1 4) -> t2 starts on the freed worker: (t0 3, t2 0) (t2 9) (t2 0)
    assert sorted(out.trace[:2]) == [1.0, 5.0] and out.trace[2:] == [5.0, 5.0, 5.0, 5.0, 9.0, 9.0]
    # a budget of 5 epochs ends the search inside the third tick, t2 unfinished
    cut = replay(starter(curves), None, np.random.default_rng(0), 3, budget=5)
    assert len(cut.trace) == 5 and sum(o.last_epoch for o in cut.trials) == 5
    assert not cut.trials[2].ended and cut.trials[2].last_epoch <= 1
