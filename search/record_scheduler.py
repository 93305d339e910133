"""Commit every result to the study before Tune acts on it.

Tune calls the scheduler's `on_trial_result` first with each result, before the
searcher, the callbacks and its own decision to stop the trial. `RecordingScheduler`
wraps the search's scheduler (ScheduleAwareASHA, or FIFO without early stopping):
it asks it for the decision, writes the epoch's value to the study, and when the
result ends the trial (the full budget, a divergence, or a STOP from ASHA) commits
the trial's final state, then returns the decision. A driver killed at any moment
after that leaves a finished trial finished; one killed before leaves it RUNNING,
to be continued by the next `--resume` from its own newest checkpoint.
"""
from __future__ import annotations

import os
import signal
from typing import TYPE_CHECKING, Any, Optional

from ray.tune.experiment import Trial
from ray.tune.schedulers import FIFOScheduler, TrialScheduler

from runfolder.status import COMPLETED, DIVERGED, classify_end, last_epoch
from search.record import StudyRecord, trial_number
from search.strata import TRIAL_KEY

if TYPE_CHECKING:
    from ray.tune.execution.tune_controller import TuneController


# Test hook (tests/search/test_study_ray.py), off unless set in the driver's environment:
# right after the first end with this status is committed, the driver SIGKILLs its own process
# group, as a user's kill would, before Tune hears of the end.
DIE_AFTER_END_ENV = "CVAE_SEARCH_DIE_AFTER_END"


def number_of(trial: Trial) -> Optional[int]:
    """The study trial number a Ray trial is an attempt of (its config's `study_trial`)."""
    key = (trial.config or {}).get(TRIAL_KEY)
    return trial_number(str(key)) if key else None


class RecordingScheduler(FIFOScheduler):
    """`inner`'s decisions, with each result and each end committed to `record` first."""

    # One result at a time: a buffered batch would let a STOP wait behind later epochs.
    _supports_buffered_results = False

    def __init__(self, inner: TrialScheduler, record: StudyRecord, *, metric: str, num_epoch: int) -> None:
        super().__init__()
        self.inner = inner
        self.record = record
        self._metric = metric
        self._num_epoch = int(num_epoch)
        self._last: dict[str, dict[str, Any]] = {}  # Ray trial id -> its last result

    @property
    def metric(self) -> str:
        return self._metric

    def set_search_properties(self, metric: Optional[str], mode: Optional[str], **spec) -> bool:
        return self.inner.set_search_properties(metric, mode, **spec)

    def on_trial_add(self, tune_controller: Optional["TuneController"], trial: Trial) -> None:
        self.inner.on_trial_add(tune_controller, trial)

    def on_trial_result(self, tune_controller: Optional["TuneController"], trial: Trial, result: dict) -> str:
        decision = self.inner.on_trial_result(tune_controller, trial, result)
        number = number_of(trial)
        epoch = last_epoch(result)
        if number is None or epoch is None or self._metric not in result:
            return decision
        self._last[trial.trial_id] = dict(result)
        if result[self._metric] is None:  # an epoch val_every skipped: nothing to record or judge
            return decision
        self.record.report(number, epoch, result[self._metric])
        status = classify_end(result, error=False, metric=self._metric, num_epoch=self._num_epoch)
        if status in (COMPLETED, DIVERGED) or decision == TrialScheduler.STOP:
            # (classify_end says `stopped` for a STOP before the full budget)
            if self.record.finish(number, status, value=result[self._metric], epoch=epoch):
                _maybe_die(status)
        return decision

    def on_trial_error(self, tune_controller: Optional["TuneController"], trial: Trial) -> None:
        # Tune calls this before a retry too, so the FAIL is committed where Tune says the
        # error is final: the searcher's on_trial_complete(error=True) (search.searcher).
        self.inner.on_trial_error(tune_controller, trial)

    def on_trial_complete(self, tune_controller: Optional["TuneController"], trial: Trial, result: dict) -> None:
        number = number_of(trial)
        if number is not None:
            last = self._last.pop(trial.trial_id, None) or result
            status = classify_end(last, error=False, metric=self._metric, num_epoch=self._num_epoch)
            self.record.finish(number, status, value=(last or {}).get(self._metric), epoch=last_epoch(last))
        self.inner.on_trial_complete(tune_controller, trial, result)

    def on_trial_remove(self, tune_controller: Optional["TuneController"], trial: Trial) -> None:
        self._last.pop(trial.trial_id, None)
        self.inner.on_trial_remove(tune_controller, trial)

    def choose_trial_to_run(self, tune_controller: "TuneController") -> Optional[Trial]:
        return self.inner.choose_trial_to_run(tune_controller)

    def debug_string(self) -> str:
        return self.inner.debug_string()


def _maybe_die(status: str) -> None:
    """The kill test hook (see DIE_AFTER_END_ENV); does nothing unless enabled."""
    if os.environ.get(DIE_AFTER_END_ENV) == status:
        os.killpg(os.getpgrp(), signal.SIGKILL)
