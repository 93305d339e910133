"""OptunaSearch that tells Optuna the truth about stopped trials, balances the
strata and re-evaluates each stratum's best configuration.

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

(search/status.py is the one rule for those states.)

The study design (issue 11), all through Optuna's public ask/enqueue API so the
study stays one optuna.db:

1. Balanced strata: before each search trial the stratum with the fewest search
   trials so far (ties: file order) is chosen and its scientific values are
   enqueued as fixed parameters, with user attributes `phase: search` and
   `stratum`; the sampler (search/sampler.py) then draws the nuisance
   parameters from that stratum's own history. A trial put back in the queue
   by a resume is popped first, unchanged.
2. Re-evaluation: once all `num_samples` search trials have ended, each
   stratum's best configuration (search.comparison.pick_best) is enqueued
   `reeval.seeds` times with the same parameters, user attributes `phase:
   reeval`, `stratum`, `seed` and `reeval_of`, and runs as ordinary Ray trials
   (the config gets `seed`). Whether they were enqueued is read from the study,
   so a resumed search enqueues them exactly once. Until the search trials have
   ended the searcher answers "not yet" (None); after the last re-run, FINISHED.

Every Ray trial's config carries `phase` and `stratum` next to the sampled
parameters (search.trainable drops them before training). The Optuna trial's
user attributes `status` (completed / stopped / diverged / failed),
`ray_trial_id` (the trial_id of trials.csv), `phase` and `stratum` show in
optuna-dashboard.
"""
from __future__ import annotations

import logging
import math
from typing import Any, Callable, Optional

import optuna
from optuna.trial import FrozenTrial, TrialState
from ray.tune.search import Searcher
from ray.tune.search.optuna import OptunaSearch

from search.comparison import RunOutcome, pick_best
from search.status import COMPLETED, OPTUNA_STATE, classify_end, last_epoch
from search.strata import PHASE_KEY, REEVAL, SEARCH, STRATUM_KEY

logger = logging.getLogger(__name__)

SEED_KEY = "seed"
REEVAL_OF_KEY = "reeval_of"  # user attribute: the ray_trial_id a re-run repeats


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
        design: Optional["StudyDesign"] = None,
    ) -> None:
        self._max_t = int(max_t)
        self._design = design or StudyDesign()
        # trial_id -> steps already reported to Optuna (report ignores a
        # repeated step anyway; this saves a storage round trip and lets
        # on_trial_complete add the step the scheduler's STOP swallowed).
        self._reported_steps: dict[str, set[int]] = {}
        super().__init__(
            space=space, metric=metric, mode=mode, sampler=sampler,
            study_name=study_name, storage=storage,
        )

    # --- asking ---------------------------------------------------------
    def suggest(self, trial_id: str) -> Optional[dict]:
        if trial_id in self._ot_trials or self._ot_study is None:
            return super().suggest(trial_id)
        trials = self._ot_study.get_trials(deepcopy=False)
        if not any(t.state == TrialState.WAITING for t in trials):  # a waiting one is popped first
            decision = self._enqueue_next(trials)
            if decision != _ASK:
                return decision  # _NOT_YET or FINISHED
        ot_trial = self._ot_study.ask()
        self._ot_trials[trial_id] = ot_trial
        params = self._suggest_from_define_by_run_func(self._space, ot_trial)
        attrs = ot_trial.user_attrs
        phase = attrs.get(PHASE_KEY, SEARCH)
        stratum = attrs.get(STRATUM_KEY) or self._design.stratum_of(params)
        ot_trial.set_user_attr(PHASE_KEY, phase)
        ot_trial.set_user_attr(STRATUM_KEY, stratum)
        config = {**params, PHASE_KEY: phase, STRATUM_KEY: stratum}
        if phase == REEVAL:
            config[SEED_KEY] = int(attrs[SEED_KEY])
        return config

    def _enqueue_next(self, trials: list[FrozenTrial]) -> Optional[str]:
        """Prepare the next trial (_ASK), or say there is none yet (_NOT_YET) or ever (FINISHED)."""
        design = self._design
        search = [t for t in trials if t.user_attrs.get(PHASE_KEY, SEARCH) == SEARCH]
        if len(search) < design.num_search:
            if design.balanced:
                stratum = _fewest(design.strata, search)
                self._ot_study.enqueue_trial(dict(design.stratum_values[stratum]),
                                             user_attrs={PHASE_KEY: SEARCH, STRATUM_KEY: stratum})
            return _ASK
        reevals = [t for t in trials if t.user_attrs.get(PHASE_KEY) == REEVAL]
        if design.reeval_seeds and not reevals:
            if any(not t.state.is_finished() for t in search):
                return _NOT_YET  # the best configurations are not known yet
            if self._enqueue_reevals(search):
                return _ASK
        return Searcher.FINISHED

    def _enqueue_reevals(self, search: list[FrozenTrial]) -> int:
        """Enqueue each stratum's best configuration with every re-evaluation seed; how many."""
        design = self._design
        count = 0
        by_id = {_run_id(t): t for t in search}
        for stratum in design.strata:
            runs = [_outcome(t, self.metric, self._max_t) for t in search if t.user_attrs.get(STRATUM_KEY) == stratum]
            best = pick_best(runs, self.mode)
            if best is None:
                continue
            frozen = by_id[best.trial_id]
            for seed in design.reeval_seed_values:
                self._ot_study.enqueue_trial(
                    dict(frozen.params),
                    user_attrs={PHASE_KEY: REEVAL, STRATUM_KEY: stratum, SEED_KEY: seed,
                                REEVAL_OF_KEY: best.trial_id})
                count += 1
        logger.info("re-evaluation: %d runs enqueued", count)
        return count

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
        step = last_epoch(result)
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
        status = classify_end(result, error=error, metric=self.metric, num_epoch=self._max_t)
        state = TrialState[OPTUNA_STATE[status]]
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


# The searcher's answer "no trial now, ask again later" (Ray's Searcher contract).
_NOT_YET = None
_ASK = "ask"  # internal: a trial is ready to be asked from the study


def _run_id(frozen: FrozenTrial) -> str:
    """The Ray trial id told at the end of the trial (the Optuna number before that)."""
    return str(frozen.user_attrs.get("ray_trial_id", frozen.number))


class StudyDesign:
    """What the searcher needs of the space: strata, balance, counts, re-run seeds.

    Plain data (pickled with the searcher when Tune saves the experiment).
    """

    def __init__(self, *, strata: Optional[dict[str, dict[str, Any]]] = None, scientific: tuple[str, ...] = (),
                 balanced: bool = False, num_search: int = 10**9, reeval_seed_values: tuple[int, ...] = ()) -> None:
        self.stratum_values = dict(strata or {})   # stratum key -> its scientific values
        self.strata = list(self.stratum_values)
        self.scientific = tuple(scientific)
        self.balanced = balanced and bool(self.strata)
        self.num_search = int(num_search)
        self.reeval_seed_values = tuple(reeval_seed_values)

    @property
    def reeval_seeds(self) -> int:
        return len(self.reeval_seed_values)

    def stratum_of(self, params: dict[str, Any]) -> str:
        from search.strata import stratum_key

        return stratum_key(params, self.scientific)


def _fewest(strata: list[str], search: list[FrozenTrial]) -> str:
    """The stratum with the fewest search trials so far; ties go to the first listed."""
    counts = {s: 0 for s in strata}
    for t in search:
        key = t.user_attrs.get(STRATUM_KEY)
        if key in counts:
            counts[key] += 1
    return min(strata, key=lambda s: (counts[s], strata.index(s)))


def _outcome(frozen: FrozenTrial, metric: str, max_t: int) -> RunOutcome:
    """A finished search trial of the study as search.comparison sees it."""
    status = frozen.user_attrs.get("status")
    steps = sorted(frozen.intermediate_values)
    last_value = frozen.intermediate_values[steps[-1]] if steps else None
    final = frozen.value if frozen.state == TrialState.COMPLETE else None
    if status is None:  # told by an older searcher: derive it the same way
        last = {metric: last_value, "epoch": steps[-1]} if steps else None
        status = classify_end(last, error=frozen.state == TrialState.FAIL, metric=metric, num_epoch=max_t)
    return RunOutcome(
        trial_id=_run_id(frozen), phase=SEARCH,
        stratum=str(frozen.user_attrs.get(STRATUM_KEY)), status=status,
        final_value=final if status == COMPLETED and _finite(final) else None,
        last_value=last_value if _finite(last_value) else None,
        params=dict(frozen.params), seed=None)


def _finite(value: Any) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False
