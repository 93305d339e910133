"""PruningOptunaSearch: trials ASHA stopped reach Optuna as PRUNED.

Synthetic results fed straight to the searcher, no training and no Ray
cluster (as Ray's own scheduler tests do), against a real SQLite study.
"""
from __future__ import annotations

import math
import pickle

import optuna
import pytest
from optuna.trial import TrialState

from search.optuna_bridge import PruningOptunaSearch

MAX_T = 4


def _space(trial: optuna.Trial) -> dict:
    return {"lr": trial.suggest_float("lr", 1e-4, 1e-2, log=True)}


def _searcher(tmp_path, name: str = "s") -> PruningOptunaSearch:
    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'optuna.db'}")
    return PruningOptunaSearch(_space, metric="val_psnr", mode="max", max_t=MAX_T,
                               sampler=optuna.samplers.TPESampler(seed=0), study_name=name, storage=storage)


def _result(epoch: int, value: float, diverged: bool = False) -> dict:
    return {"epoch": epoch, "training_iteration": epoch, "val_psnr": value, "diverged": diverged}


def _run(searcher, trial_id: str, values: list[float], *, stopped_by_scheduler: bool, diverged_at=None) -> None:
    """Ray's order: on_trial_result for every result except one the scheduler
    answers STOP, then on_trial_complete with the last result."""
    assert searcher.suggest(trial_id) is not None
    last = None
    for epoch, value in enumerate(values, start=1):
        last = _result(epoch, value, diverged=epoch == diverged_at)
        if not (stopped_by_scheduler and epoch == len(values)):
            searcher.on_trial_result(trial_id, last)
    searcher.on_trial_complete(trial_id, result=last)


def _study(tmp_path, name: str = "s") -> optuna.Study:
    return optuna.load_study(study_name=name, storage=f"sqlite:///{tmp_path / 'optuna.db'}")


def _by_status(study: optuna.Study) -> dict[str, optuna.trial.FrozenTrial]:
    return {t.user_attrs["status"]: t for t in study.get_trials()}


def test_stopped_trial_is_pruned_with_every_intermediate_value(tmp_path):
    s = _searcher(tmp_path)
    _run(s, "full", [20.0, 21.0, 22.0, 23.0], stopped_by_scheduler=True)  # ASHA also says STOP at max_t
    _run(s, "early", [15.0, 16.0], stopped_by_scheduler=True)
    trials = _by_status(_study(tmp_path))
    assert trials["completed"].state is TrialState.COMPLETE
    assert trials["completed"].value == 23.0
    assert trials["completed"].intermediate_values == {1: 20.0, 2: 21.0, 3: 22.0, 4: 23.0}
    stopped = trials["stopped"]
    assert stopped.state is TrialState.PRUNED
    # The epoch-2 value came only with on_trial_complete (Ray skips on_trial_result on STOP).
    assert stopped.intermediate_values == {1: 15.0, 2: 16.0}
    assert stopped.value == 16.0  # Optuna takes the last intermediate value of a pruned trial


def test_plain_ray_optuna_search_would_record_complete(tmp_path):
    """The trap this module exists for: Ray's class says COMPLETE with the partial value."""
    from ray.tune.search.optuna import OptunaSearch

    plain = OptunaSearch(_space, metric="val_psnr", mode="max", sampler=optuna.samplers.TPESampler(seed=0),
                         study_name="plain", storage=optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'optuna.db'}"))
    plain.suggest("early")
    plain.on_trial_result("early", _result(1, 15.0))
    plain.on_trial_complete("early", result=_result(2, 16.0))
    (trial,) = _study(tmp_path, "plain").get_trials()
    assert trial.state is TrialState.COMPLETE and trial.value == 16.0


def test_diverged_trial_with_nan_is_pruned_not_complete(tmp_path):
    s = _searcher(tmp_path)
    _run(s, "nan", [12.0, math.nan], stopped_by_scheduler=False, diverged_at=2)
    (trial,) = _study(tmp_path).get_trials()
    assert trial.state is TrialState.PRUNED
    assert trial.user_attrs["status"] == "diverged"
    assert trial.intermediate_values[1] == 12.0
    assert math.isnan(trial.intermediate_values[2])
    assert trial.value is None  # Optuna does not take NaN as a pruned trial's value


def test_nan_metric_without_diverged_flag_is_not_complete(tmp_path):
    s = _searcher(tmp_path)
    _run(s, "nan", [10.0, 11.0, 12.0, math.nan], stopped_by_scheduler=False)
    (trial,) = _study(tmp_path).get_trials()
    assert trial.state is TrialState.PRUNED and trial.user_attrs["status"] == "diverged"


def test_errored_trial_is_failed(tmp_path):
    s = _searcher(tmp_path)
    s.suggest("boom")
    s.on_trial_result("boom", _result(1, 10.0))
    s.on_trial_complete("boom", result=None, error=True)
    (trial,) = _study(tmp_path).get_trials()
    assert trial.state is TrialState.FAIL and trial.user_attrs["status"] == "failed"


def test_second_completion_is_ignored(tmp_path):
    s = _searcher(tmp_path)
    _run(s, "a", [1.0, 2.0], stopped_by_scheduler=True)
    s.on_trial_complete("a", result=_result(4, 99.0))
    (trial,) = _study(tmp_path).get_trials()
    assert trial.state is TrialState.PRUNED and trial.value == 2.0


def test_restore_reconciles_with_the_study(tmp_path):
    """Searcher state saved while trial 'a' ran; afterwards 'a' finished and 'b'
    was asked, then the driver died. Restoring must not crash on 'a' and must
    close the orphan 'b'."""
    s = _searcher(tmp_path)
    s.suggest("a")
    s.on_trial_result("a", _result(1, 10.0))
    state_file = tmp_path / "searcher.pkl"
    s.save(str(state_file))
    s.on_trial_result("a", _result(2, 11.0))
    s.on_trial_complete("a", result=_result(4, 13.0))  # finished after the save
    s.suggest("b")  # asked after the save: the saved state does not know it

    restored = _searcher(tmp_path)
    restored.restore(str(state_file))
    restored.on_trial_result("a", _result(3, 12.0))  # a late result: ignored, no UpdateFinishedTrialError
    restored.on_trial_complete("a", result=_result(4, 13.0))
    states = sorted(t.state.name for t in _study(tmp_path).get_trials())
    assert states == ["COMPLETE", "FAIL"]  # 'a' complete, orphan 'b' failed, nothing left RUNNING
    assert pickle.loads(state_file.read_bytes())  # the saved state stays loadable


@pytest.mark.parametrize("mode,worse,better", [("max", 1.0, 2.0), ("min", 2.0, 1.0)])
def test_direction_follows_mode(tmp_path, mode, worse, better):
    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'optuna.db'}")
    s = PruningOptunaSearch(_space, metric="val_psnr", mode=mode, max_t=1,
                            sampler=optuna.samplers.RandomSampler(seed=0), study_name="d", storage=storage)
    _run(s, "w", [worse], stopped_by_scheduler=True)
    _run(s, "b", [better], stopped_by_scheduler=True)
    assert _study(tmp_path, "d").best_value == better
