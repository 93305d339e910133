"""RecordingScheduler: every result and every end reaches the study before Tune acts on it.

Synthetic results fed in Tune's order (tests/search/study_harness.py), no training and
no Ray cluster, against a real SQLite study. A trial ASHA stopped reaches Optuna as
PRUNED with every epoch's value, never COMPLETE with a partial-budget value.
"""
from __future__ import annotations

import functools
import math

import optuna
import pytest
from optuna.trial import TrialState
from ray.tune.schedulers import TrialScheduler

from search.scheduler import ScheduleAwareASHA
from tests.search.study_harness import harness

MAX_T = 4


def _space(trial: optuna.Trial) -> dict:
    return {"lr": trial.suggest_float("lr", 1e-4, 1e-2, log=True)}


def _at(epoch: int, config: dict) -> int:
    return epoch


def _asha(mode: str = "max") -> ScheduleAwareASHA:
    return ScheduleAwareASHA(time_attr="epoch", metric="val_psnr", mode=mode, max_t=MAX_T, grace_period=1,
                             reduction_factor=2, earliest_stop=functools.partial(_at, 1))


def _by_status(study: optuna.Study) -> dict[str, optuna.trial.FrozenTrial]:
    return {t.user_attrs["status"]: t for t in study.get_trials()}


def test_an_asha_stop_is_pruned_in_the_study_before_the_decision_returns(tmp_path):
    h = harness(tmp_path, _space, max_t=MAX_T, inner=_asha())
    assert h.run("full", [20.0, 21.0, 22.0, 23.0]) == TrialScheduler.STOP  # ASHA also says STOP at max_t
    h.suggest("early")
    assert h.result("early", {"epoch": 1, "val_psnr": 15.0}) == TrialScheduler.STOP  # below the rung's cut-off
    # committed already: Tune has not called anything else yet
    early = h.study.get_trials()[1]
    assert early.state is TrialState.PRUNED and early.user_attrs["status"] == "stopped"
    assert early.user_attrs["final_epoch"] == 1 and early.intermediate_values == {1: 15.0}
    h.complete("early", {"epoch": 1, "val_psnr": 15.0})
    trials = _by_status(h.study)
    assert trials["completed"].state is TrialState.COMPLETE and trials["completed"].value == 23.0
    assert trials["completed"].intermediate_values == {1: 20.0, 2: 21.0, 3: 22.0, 4: 23.0}
    assert trials["stopped"].value == 15.0  # Optuna takes the last intermediate value of a pruned trial


def test_the_last_epoch_is_complete_before_tune_hears_of_the_end(tmp_path):
    h = harness(tmp_path, _space, max_t=MAX_T)
    h.suggest("a")
    for epoch in range(1, MAX_T + 1):
        h.result("a", {"epoch": epoch, "val_psnr": 10.0 + epoch})
    (trial,) = h.study.get_trials()
    assert trial.state is TrialState.COMPLETE and trial.value == 14.0  # before on_trial_complete


def test_diverged_trial_with_nan_is_pruned_not_complete(tmp_path):
    h = harness(tmp_path, _space, max_t=MAX_T)
    h.run("nan", [12.0, math.nan], diverged_at=2)
    (trial,) = h.study.get_trials()
    assert trial.state is TrialState.PRUNED and trial.user_attrs["status"] == "diverged"
    assert trial.intermediate_values[1] == 12.0 and math.isnan(trial.intermediate_values[2])


def test_nan_metric_without_diverged_flag_is_not_complete(tmp_path):
    h = harness(tmp_path, _space, max_t=MAX_T)
    h.run("nan", [10.0, 11.0, 12.0, math.nan])
    (trial,) = h.study.get_trials()
    assert trial.state is TrialState.PRUNED and trial.user_attrs["status"] == "diverged"


def test_errored_trial_is_failed_at_its_last_epoch(tmp_path):
    h = harness(tmp_path, _space, max_t=MAX_T)
    h.suggest("boom")
    h.result("boom", {"epoch": 1, "val_psnr": 10.0})
    h.error("boom", final=False)  # Tune retries it: still running
    assert h.study.get_trials()[0].state is TrialState.RUNNING
    h.error("boom")
    (trial,) = h.study.get_trials()
    assert trial.state is TrialState.FAIL and trial.user_attrs["status"] == "failed"
    assert trial.user_attrs["final_epoch"] == 1


def test_an_end_already_committed_is_never_changed(tmp_path):
    h = harness(tmp_path, _space, max_t=MAX_T, inner=_asha())
    h.run("a", [1.0, 2.0, 3.0, 4.0])
    h.result("a", {"epoch": 5, "val_psnr": 50.0})  # a result still in flight: no error, not recorded
    h.complete("a", {"epoch": 4, "val_psnr": 99.0})  # a second completion
    h.error("a")
    (trial,) = h.study.get_trials()
    assert trial.state is TrialState.COMPLETE and trial.value == 4.0


def test_each_ray_trial_is_an_attempt_of_its_study_trial(tmp_path):
    h = harness(tmp_path, _space, max_t=MAX_T)
    config = h.suggest("ray-1")
    assert config["study_trial"] == "t0000" and config["phase"] == "search"
    (trial,) = h.study.get_trials()
    assert trial.user_attrs["attempts"] == ["ray-1"] and trial.user_attrs["trial_id"] == "t0000"
    assert trial.user_attrs["config"] == {"lr": config["lr"]}


@pytest.mark.parametrize("mode,worse,better", [("max", 1.0, 2.0), ("min", 2.0, 1.0)])
def test_direction_follows_mode(tmp_path, mode, worse, better):
    h = harness(tmp_path, _space, max_t=1, mode=mode)
    h.run("w", [worse])
    h.run("b", [better])
    assert h.study.best_value == better
