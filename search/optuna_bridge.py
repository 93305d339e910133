"""OptunaSearch that tells Optuna the truth about trials ASHA stopped early.

Ray's `OptunaSearch.on_trial_complete` tells Optuna that every trial that ended
without an error is COMPLETE with its last value. A trial ASHA stopped after 2
of 8 epochs then sits in the study as COMPLETE with a 2-epoch PSNR, and TPE
treats that partial-budget value as what the configuration achieves: it learns
that slow starters are bad configurations. Here a trial reaches Optuna as:

- COMPLETE with its last value when it ran the full budget (epoch == max_t);
- PRUNED when it ended earlier without an error (stopped by ASHA), with every
  epoch's value as an intermediate value, so TPE ranks it by how far it got;
- PRUNED when it diverged (loss NaN/inf; the trainable reports the worst value),
  so TPE learns the region is bad instead of ignoring it as it would a FAIL;
- FAIL when it raised (after Ray's retries are spent).

The Optuna trial's user attributes `status` (completed / stopped / diverged /
failed) and `ray_trial_id` (the trial_id of trials.csv) show in optuna-dashboard.
"""
from __future__ import annotations

import logging
import math
from typing import Any, Callable, Optional

import optuna
from optuna.trial import TrialState
from ray.tune.result import TRAINING_ITERATION
from ray.tune.search.optuna import OptunaSearch

logger = logging.getLogger(__name__)

# The trainable reports the trainer's 1-based epoch; it equals Ray's
# training_iteration for a fresh trial, and stays right when a trial resumes
# from a checkpoint.
EPOCH_KEY = "epoch"


def _step_of(result: dict[str, Any]) -> Optional[int]:
    step = result.get(EPOCH_KEY, result.get(TRAINING_ITERATION))
    return None if step is None else int(step)


def _finite(value: Any) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


class PruningOptunaSearch(OptunaSearch):
    """OptunaSearch whose stopped-early trials reach Optuna as PRUNED.

    `max_t` is the full budget in epochs (the ASHA scheduler's max_t): a trial
    that ends without error before it is "stopped early".
    """

    def __init__(
        self,
        space: Callable[[optuna.Trial], Optional[dict]],
        *,
        metric: str,
        mode: str,
        max_t: int,
        sampler: optuna.samplers.BaseSampler,
        study_name: str,
        storage: Optional[optuna.storages.BaseStorage] = None,
    ) -> None:
        self._max_t = int(max_t)
        # trial_id -> steps already reported to Optuna (report ignores a
        # repeated step anyway; this saves a storage round trip and lets
        # on_trial_complete add the step the scheduler's STOP swallowed).
        self._reported_steps: dict[str, set[int]] = {}
        super().__init__(
            space=space, metric=metric, mode=mode, sampler=sampler,
            study_name=study_name, storage=storage,
        )

    # --- results --------------------------------------------------------
    def on_trial_result(self, trial_id: str, result: dict) -> None:
        if trial_id in self._completed_trials:
            return
        self._report(trial_id, result)

    def _report(self, trial_id: str, result: Optional[dict]) -> None:
        """Report the metric at the trial's epoch as an Optuna intermediate value."""
        ot_trial = self._ot_trials.get(trial_id)
        if ot_trial is None or not result or self.metric not in result:
            return
        step = _step_of(result)
        if step is None:
            return
        steps = self._reported_steps.setdefault(trial_id, set())
        if step in steps:
            return
        value = float(result[self.metric])
        try:
            ot_trial.report(value, step)
        except (optuna.exceptions.UpdateFinishedTrialError, ValueError, TypeError) as err:
            logger.warning("Optuna did not take trial %s's value at step %s: %s", trial_id, step, err)
            return
        steps.add(step)

    def on_trial_complete(self, trial_id: str, result: Optional[dict] = None, error: bool = False) -> None:
        if trial_id in self._completed_trials:
            return
        ot_trial = self._ot_trials.get(trial_id)
        if ot_trial is None:
            # A trial the searcher never suggested (e.g. the searcher state was
            # older than the experiment state on resume): nothing to tell.
            self._completed_trials.add(trial_id)
            return
        status, state = self._classify(result, error)
        if state is not TrialState.FAIL:
            # When ASHA decides STOP on a result, Ray does not pass that result
            # to on_trial_result: report it here so the last epoch is not lost.
            self._report(trial_id, result)
        value = None
        if state is TrialState.COMPLETE:
            value = float(result[self.metric])
        try:
            self._ot_study._storage.set_trial_user_attr(ot_trial._trial_id, "status", status)
            self._ot_study._storage.set_trial_user_attr(ot_trial._trial_id, "ray_trial_id", trial_id)
            self._ot_study.tell(ot_trial, value, state=state)
        except Exception as err:  # optuna raises several types; never crash the search for it
            logger.warning("Optuna did not take the end of trial %s (%s): %s", trial_id, status, err)
        self._completed_trials.add(trial_id)

    def _classify(self, result: Optional[dict], error: bool) -> tuple[str, TrialState]:
        """(status for people, state for Optuna) of a trial that just ended."""
        # 1) an exception after retries, or no result at all with an error
        if error:
            return "failed", TrialState.FAIL
        # 2) removed before it reported anything (e.g. pending when the search ended)
        if not result or self.metric not in result:
            return "stopped", TrialState.PRUNED
        # 3) loss became NaN/inf, or the metric itself is not a number
        if bool(result.get("diverged", False)) or not _finite(result[self.metric]):
            return "diverged", TrialState.PRUNED
        step = _step_of(result)
        # 4) ended before the full budget: ASHA stopped it
        if step is not None and step < self._max_t:
            return "stopped", TrialState.PRUNED
        # 5) ran every epoch
        return "completed", TrialState.COMPLETE

    # --- resume ---------------------------------------------------------
    def restore(self, checkpoint_path: str) -> None:
        super().restore(checkpoint_path)
        self.reconcile()

    def reconcile(self) -> None:
        """Make the saved searcher state and the Optuna study agree again.

        The searcher state is saved with Tune's experiment state, but the
        study is written on every result. After the driver is killed:
        - a trial the searcher thinks is running may already be finished in the
          study (Optuna then raises UpdateFinishedTrialError on its next report):
          it is treated as finished here, and its late results are ignored;
        - a study trial still RUNNING that the searcher does not know (asked
          after the last save) is orphaned: it is marked FAIL so it does not
          sit RUNNING forever.
        """
        storage = self._ot_study._storage
        known = {t._trial_id for t in self._ot_trials.values()}
        for trial_id, ot_trial in self._ot_trials.items():
            if trial_id in self._completed_trials:
                continue
            if storage.get_trial(ot_trial._trial_id).state.is_finished():
                self._completed_trials.add(trial_id)
        for frozen in self._ot_study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            if frozen._trial_id not in known:
                try:
                    storage.set_trial_user_attr(frozen._trial_id, "status", "failed")
                    self._ot_study.tell(frozen.number, state=TrialState.FAIL)
                except Exception as err:
                    logger.warning("could not close orphaned Optuna trial %s: %s", frozen.number, err)
        # Steps reported after the save are in the study already.
        for trial_id, ot_trial in self._ot_trials.items():
            frozen = storage.get_trial(ot_trial._trial_id)
            self._reported_steps.setdefault(trial_id, set()).update(frozen.intermediate_values)
