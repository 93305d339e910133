"""The Ray Tune searcher: hands out the study's trials, on Optuna's public ask/enqueue API.

It decides *what runs next*; what a run's results and end are is committed to the
study by search.record_scheduler (the first driver hook Tune calls with a result).
In this order, each `suggest` gives a Ray trial:

1. a study trial that was interrupted (RUNNING when this driver started: its driver
   was killed), with the same config and seed. The trainable continues it from the
   newest complete checkpoint in its own trial folder, or from scratch;
2. a trial waiting in the study's queue (a balanced-strata or re-run enqueue that was
   never asked), popped by `ask`;
3. a new search trial until the study has `num_samples`. Balanced strata: the stratum
   with the fewest search trials so far (ties: file order) is enqueued with its
   scientific values fixed and `phase: search`, `stratum`; the sampler
   (search/sampler.py) draws the nuisance parameters from that stratum's history;
4. once every search trial has ended, each stratum's best configuration
   (search.comparison.pick_best) `reeval.seeds` times with the same parameters and
   `phase: reeval`, `stratum`, `seed`, `reeval_of`. Whether they were enqueued is
   read from the study, so a resumed search enqueues them exactly once;
5. racing (`reeval.seeds: auto`, search/racing.py): once every re-run so far has
   ended, one more seed for each stratum still in contention, judged on the study's
   re-runs alone, so a resumed search allocates the same seeds.
Until the search trials (or a racing round) have ended the answer is "not yet"
(None); after the last re-run, FINISHED.

Every Ray trial's config carries `study_trial` (the study trial it is an attempt
of), `phase` and `stratum` next to the sampled parameters (search.trainable drops
them before training).
"""
from __future__ import annotations

import logging
import math
from collections import deque
from typing import Any, Callable, Optional

import optuna
from optuna.trial import FrozenTrial, TrialState
from ray.tune.search import Searcher

from runfolder.status import COMPLETED, FAILED, classify_end
from search.comparison import RunOutcome, Settings, build_comparison, pick_best
from search.racing import INITIAL_SEEDS, RaceBudget, next_round
from search.record import (
    CONFIG_ATTR,
    REEVAL_OF_ATTR,
    SEED_ATTR,
    STATUS_ATTR,
    TRIAL_ID_ATTR,
    StudyRecord,
    config_of,
    counted,
    key_of,
    phase_of,
    stratum_of,
    trial_key,
)
from search.strata import PHASE_KEY, REEVAL, SEARCH, STRATUM_KEY, TRIAL_KEY

logger = logging.getLogger(__name__)

class StudyDesign:
    """What the searcher needs of the space: strata, balance, counts, re-run seeds."""

    def __init__(self, *, strata: Optional[dict[str, dict[str, Any]]] = None, scientific: tuple[str, ...] = (),
                 balanced: bool = False, num_search: int = 10**9, reeval_seed_values: tuple[int, ...] = (),
                 racing: Optional[RaceBudget] = None, verdict: Settings = Settings()) -> None:
        self.stratum_values = dict(strata or {})   # stratum key -> its scientific values
        self.strata = list(self.stratum_values)
        self.scientific = tuple(scientific)
        self.balanced = balanced and bool(self.strata)
        self.num_search = int(num_search)
        # Racing: every seed a stratum may get (max_seeds of them), the first round the
        # first INITIAL_SEEDS; fixed re-runs: the seeds every stratum gets.
        self.reeval_seed_values = tuple(reeval_seed_values)
        self.racing = racing
        self.verdict = verdict  # racing judges each round as the final verdict will

    @property
    def reeval_seeds(self) -> int:
        """Re-runs per stratum in the first (for fixed re-runs: the only) round."""
        if self.racing is not None:
            return min(INITIAL_SEEDS, len(self.reeval_seed_values))
        return len(self.reeval_seed_values)

    def stratum_of(self, params: dict[str, Any]) -> str:
        from search.strata import stratum_key

        return stratum_key(params, self.scientific)


class StudySearcher(Searcher):
    """Suggests configurations from the study (see the module docstring for the order)."""

    def __init__(self, space: Callable[[optuna.Trial], dict], record: StudyRecord, *, metric: str, mode: str,
                 max_t: int, design: Optional[StudyDesign] = None) -> None:
        super().__init__(metric=metric, mode=mode)
        self._space = space
        self._record = record
        self._max_t = int(max_t)
        self._design = design or StudyDesign()
        # Interrupted trials, oldest first: each is run again once by this driver.
        self._interrupted = deque(record.interrupted())
        self._attempt_of: dict[str, int] = {}  # Ray trial id -> study trial number

    # --- asking ---------------------------------------------------------
    def suggest(self, trial_id: str) -> Optional[dict]:
        if trial_id in self._attempt_of:  # Tune asks once per trial; a repeat gets the same answer
            return self._config(self._record.trial(self._attempt_of[trial_id]))
        if self._interrupted:
            frozen = self._interrupted.popleft()
        else:
            trials = self._record.trials()
            if not any(t.state == TrialState.WAITING for t in trials):  # a waiting one is popped first
                decision = self._enqueue_next(trials)
                if decision != _ASK:
                    return decision  # _NOT_YET or FINISHED
            frozen = self._ask()
        self._attempt_of[trial_id] = frozen.number
        self._record.add_attempt(frozen.number, trial_id)
        return self._config(frozen)

    def _ask(self) -> FrozenTrial:
        ot_trial = self._record.ask()
        config = dict(self._space(ot_trial) or {})
        attrs = ot_trial.user_attrs
        number = ot_trial.number
        self._record.set_attr(number, TRIAL_ID_ATTR, trial_key(number))
        self._record.set_attr(number, CONFIG_ATTR, config)
        self._record.set_attr(number, PHASE_KEY, attrs.get(PHASE_KEY, SEARCH))
        self._record.set_attr(number, STRATUM_KEY, attrs.get(STRATUM_KEY) or self._design.stratum_of(config))
        return self._record.trial(number)

    def _config(self, frozen: FrozenTrial) -> dict[str, Any]:
        config = {**config_of(frozen), TRIAL_KEY: key_of(frozen), PHASE_KEY: phase_of(frozen),
                  STRATUM_KEY: stratum_of(frozen)}
        if phase_of(frozen) == REEVAL:
            config[SEED_ATTR] = int(frozen.user_attrs[SEED_ATTR])
            config[REEVAL_OF_ATTR] = frozen.user_attrs.get(REEVAL_OF_ATTR)
        return config

    def _enqueue_next(self, trials: list[FrozenTrial]) -> Optional[str]:
        """Prepare the next trial (_ASK), or say there is none yet (_NOT_YET) or ever (FINISHED)."""
        design = self._design
        trials = [t for t in trials if counted(t)]
        search = [t for t in trials if phase_of(t) == SEARCH]
        if len(search) < design.num_search:
            if design.balanced:
                stratum = _fewest(design.strata, search)
                self._record.enqueue(dict(design.stratum_values[stratum]),
                                     user_attrs={PHASE_KEY: SEARCH, STRATUM_KEY: stratum})
            return _ASK
        reevals = [t for t in trials if phase_of(t) == REEVAL]
        if design.reeval_seeds and not reevals:
            if any(not t.state.is_finished() for t in search):
                return _NOT_YET  # the best configurations are not known yet
            if self._enqueue_reevals(search):
                return _ASK
        elif design.racing is None and reevals:
            # A re-run a killed driver asked but never handed out (abandoned) is enqueued again.
            if self._enqueue_reevals(search, present={(stratum_of(t), t.user_attrs.get(SEED_ATTR)) for t in reevals}):
                return _ASK
        elif design.racing is not None and reevals:
            if any(not t.state.is_finished() for t in reevals):
                return _NOT_YET  # a round is judged once all its runs have ended
            if self._enqueue_race_round(search, reevals):
                return _ASK
        return Searcher.FINISHED

    def _enqueue_reevals(self, search: list[FrozenTrial], present: frozenset | set = frozenset()) -> int:
        """Enqueue each stratum's best configuration with every re-evaluation seed of the first
        round, but the (stratum, seed) pairs `present` in the study; how many."""
        design = self._design
        count = 0
        by_id = {key_of(t): t for t in search}
        for stratum in design.strata:
            runs = [outcome(t, self.metric, self._max_t) for t in search if stratum_of(t) == stratum]
            best = pick_best(runs, self.mode)
            if best is None:
                continue
            frozen = by_id[best.trial_id]
            for seed in design.reeval_seed_values[:design.reeval_seeds]:
                if (stratum, seed) in present:
                    continue
                self._record.enqueue(
                    dict(frozen.params),
                    user_attrs={PHASE_KEY: REEVAL, STRATUM_KEY: stratum, SEED_ATTR: seed,
                                REEVAL_OF_ATTR: best.trial_id})
                count += 1
        if count:
            logger.info("re-evaluation: %d runs enqueued", count)
        return count

    def _enqueue_race_round(self, search: list[FrozenTrial], reevals: list[FrozenTrial]) -> int:
        """One more seed for each stratum racing keeps in contention; how many were enqueued."""
        design = self._design
        runs = [outcome(t, self.metric, self._max_t) for t in search]
        runs += [outcome(t, self.metric, self._max_t, phase=REEVAL) for t in reevals]
        comparison = build_comparison(runs, strata=design.strata, metric=self.metric, mode=self.mode,
                                      settings=design.verdict)
        seeds_so_far = {s: sum(stratum_of(t) == s for t in reevals) for s in design.strata}
        chosen = next_round(comparison, seeds_so_far, design.racing)  # type: ignore[arg-type]
        for stratum in chosen:
            # the first seed this stratum has not run (an abandoned ask leaves a gap to fill)
            used = {t.user_attrs.get(SEED_ATTR) for t in reevals if stratum_of(t) == stratum}
            seed = next((v for v in design.reeval_seed_values if v not in used), None)
            if seed is None:
                continue
            source = next(t for t in reevals if stratum_of(t) == stratum)
            self._record.enqueue(
                dict(source.params),
                user_attrs={PHASE_KEY: REEVAL, STRATUM_KEY: stratum, SEED_ATTR: seed,
                            REEVAL_OF_ATTR: source.user_attrs.get(REEVAL_OF_ATTR)})
        logger.info("racing: %s get another seed (%s)", chosen or "no stratum", comparison["verdict"])
        return len(chosen)

    # --- state: the study is all of it ------------------------------------
    def save_to_dir(self, checkpoint_dir: str, session_str: str = "default") -> None:
        """Nothing to save: Tune's copy of the searcher would be a second record."""

    # --- results: committed by search.record_scheduler, but for the final error ------
    def on_trial_result(self, trial_id: str, result: dict) -> None:
        pass

    def on_trial_complete(self, trial_id: str, result: Optional[dict] = None, error: bool = False) -> None:
        """Tune calls this with error=True only once the trial's retries are spent: FAIL, at the
        last epoch the study holds for it."""
        number = self._attempt_of.get(trial_id)
        if error and number is not None:
            steps = self._record.trial(number).intermediate_values
            self._record.finish(number, FAILED, epoch=max(steps) if steps else None)


# The searcher's answer "no trial now, ask again later" (Ray's Searcher contract).
_NOT_YET = None
_ASK = "ask"  # internal: a trial is ready to be asked from the study


def _fewest(strata: list[str], search: list[FrozenTrial]) -> str:
    """The stratum with the fewest search trials so far; ties go to the first listed."""
    counts = {s: 0 for s in strata}
    for t in search:
        key = t.user_attrs.get(STRATUM_KEY)
        if key in counts:
            counts[key] += 1
    return min(strata, key=lambda s: (counts[s], strata.index(s)))


def outcome(frozen: FrozenTrial, metric: str, max_t: int, phase: str = SEARCH) -> RunOutcome:
    """A finished search (or re-evaluation) trial of the study as search.comparison sees it."""
    status = frozen.user_attrs.get(STATUS_ATTR)
    steps = sorted(frozen.intermediate_values)
    last_value = frozen.intermediate_values[steps[-1]] if steps else None
    final = frozen.value if frozen.state == TrialState.COMPLETE else None
    if status is None:
        last = {metric: last_value, "epoch": steps[-1]} if steps else None
        status = classify_end(last, error=frozen.state == TrialState.FAIL, metric=metric, num_epoch=max_t)
    return RunOutcome(
        trial_id=key_of(frozen), phase=phase, stratum=stratum_of(frozen), status=status,
        final_value=final if status == COMPLETED and _finite(final) else None,
        last_value=last_value if _finite(last_value) else None,
        params=dict(frozen.params), seed=frozen.user_attrs.get(SEED_ATTR) if phase == REEVAL else None,
        source_trial=frozen.user_attrs.get(REEVAL_OF_ATTR) if phase == REEVAL else None)


def _finite(value: Any) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False
