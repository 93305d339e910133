"""ASHA that waits for the KL schedule and compares a trial only within its stratum.

Ray's AsyncHyperBandScheduler cuts every trial at a rung against every other
trial. Here that loses the annealed runs: while beta is near 0 they dip, so at
quick.yaml's only rung (epoch 2) their val_psnr says little about where they
end (Spearman rho 0.09 within Monotonic vs 0.75 within None over the curves in
bench/results/efficiency*.json) and a plain cut stopped most of them.
`ScheduleAwareASHA` changes three things and keeps the rest of Ray's algorithm:

1) one set of brackets per stratum (`trial.config[stratum_key]`): a trial is
   compared only with trials of its own stratum, so a strategy that starts
   slowly is not cut because another one starts fast;
2) a trial is judged only at the epochs `judge_at(trial.config)` allows (for the
   runner: `judge_epochs`, from the grace period on, the epochs where its KL term
   has its full weight: every epoch for None, from the end of the ramp for
   Monotonic, the end of each cycle's top for Cyclical), and never before
   `earliest_stop(trial.config)`: its other results are not recorded in any rung;
3) with `same_epoch` (what the runner builds), a trial judged at epoch t is compared
   with the values its rung's other trials had at epoch t, since trials now enter a
   rung at different epochs.

Re-evaluation trials (`trial.config[phase_key] == "reeval"`) re-run a chosen
configuration with other seeds: they are never stopped before max_t and never
recorded, so they cannot shift a rung's cut-off.

The rung bookkeeping is search/asha.py (Ray's algorithm, on public classes only).
A trial is known by its study trial (`trial.config[TRIAL_KEY]`, else Ray's id), so
a resumed search rebuilds the rungs from the study's intermediate values
(`rebuild`) and judges a resumed trial against every earlier trial of its stratum.
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterable, Mapping, Optional

from ray.tune.experiment import Trial
from ray.tune.schedulers import FIFOScheduler, TrialScheduler

from cvae.core.schedules import kl_judge_epochs
from cvae.families import get_family
from search.asha import Bracket, choose_bracket
from search.strata import PHASE_KEY, REEVAL, STRATUM_KEY, TRIAL_KEY

if TYPE_CHECKING:
    from ray.tune.execution.tune_controller import TuneController

logger = logging.getLogger(__name__)

SHARED_STRATUM = ""  # the stratum of trials whose config has no stratum key

def judge_epochs(config: Mapping[str, Any], *, fixed: Mapping[str, Any], grace_period: int,
                 num_epoch: int) -> list[int]:
    """Epochs at which a trial with this config may be compared and stopped: from the
    grace period on, those where its KL term has its full weight (cvae.core.schedules.
    kl_judge_epochs), and always the last epoch.

    kl_anneal_type / kl_anneal_cycle / kl_anneal_ratio come from the trial's
    config, else from the space's `fixed` (the runner passes the space's whole
    config, defaults included), else from the default family's defaults (a
    conditional parameter that was not sampled is absent or None).
    Meant to be passed to ScheduleAwareASHA as `judge_at`, with
    `functools.partial(judge_epochs, fixed=..., grace_period=..., num_epoch=...)`.
    """
    return kl_judge_epochs(num_epoch=int(num_epoch), from_epoch=int(grace_period), **kl_settings(config, fixed))


def kl_settings(config: Mapping[str, Any], fixed: Mapping[str, Any]) -> dict[str, Any]:
    """A trial's kind / cycle / ratio of its KL schedule: from its config, else `fixed`,
    else the default family's defaults (a conditional parameter not sampled is absent or None)."""
    def setting(name: str) -> Any:
        for source in (config, fixed):
            value = source.get(name)
            if value is not None:
                return value
        return getattr(get_family().default_config(), name)

    return {"kind": str(setting("kl_anneal_type")), "cycle": int(setting("kl_anneal_cycle")),
            "ratio": float(setting("kl_anneal_ratio"))}


def earliest_stop_epoch(config: Mapping[str, Any], *, fixed: Mapping[str, Any], grace_period: int,
                        num_epoch: int) -> int:
    """First epoch at which a trial with this config may be stopped: the first of its
    judge_epochs (at least the grace period and the end of its KL warm-up)."""
    return judge_epochs(config, fixed=fixed, grace_period=grace_period, num_epoch=num_epoch)[0]


def _check(name: str, value: Any, ok: bool, rule: str) -> None:
    if not ok:
        raise ValueError(f"The value of `{name}` is {value!r}, but must be {rule}")


class ScheduleAwareASHA(FIFOScheduler):
    """Async successive halving with brackets per stratum and no stop before a trial's earliest epoch.

    Args:
        time_attr: the result key that measures progress (the runner: epochs).
        metric, mode: the objective and its direction ("min" | "max").
        max_t: a trial is stopped when time_attr reaches it.
        grace_period, reduction_factor, brackets: Ray's ASHA arguments. Each
            stratum gets its own `brackets` brackets (Hyperband-style: bracket s
            has its first rung at grace_period * reduction_factor ** s), built on
            the stratum's first trial; a trial draws its bracket within its
            stratum as Ray draws (softmax over the brackets' numbers of rungs),
            seeded by its key so a resume draws the same.
        earliest_stop: config -> the first value of time_attr at which the trial
            may be stopped. Before it the trial continues and nothing is
            recorded. From it on, results go to the bracket as in Ray, whose
            bracket records a result at the highest rung at or below the current
            time that the trial has not recorded yet: a trial whose warm-up ends
            after a rung enters that rung with its value at the end of its
            warm-up (compared with the values others recorded there, possibly
            earlier in their runs).
        judge_at: config -> the values of time_attr at which the trial may be
            recorded and stopped (None: every one from earliest_stop on); a
            result at any other time is neither recorded nor judged.
        stratum_key: the config key naming a trial's stratum (absent: one shared stratum "").
        phase_key: the config key whose value "reeval" marks a re-evaluation trial.
        same_epoch: a trial judged at epoch t is compared with the values its rung's other
            trials had at epoch t (their last value at or before t), not with the values
            they recorded at the rung (search.asha.Bracket.on_result's value_at). With
            judge epochs, trials enter a rung at different epochs: without this a trial
            judged late meets its peers' early values, and one judged at the milestone
            meets late entrants' later, higher values.

    Values: None is logged and ignored (never recorded, never stopped); NaN is
    recorded as Ray does (nanpercentile leaves it out of cut-offs, and a NaN is
    never below a cut-off, so it is not stopped at that rung).
    """

    def __init__(self, *, time_attr: str, metric: str, mode: str, max_t: int, grace_period: int,
                 reduction_factor: float, brackets: int = 1, earliest_stop: Callable[[dict], int],
                 judge_at: Optional[Callable[[dict], Iterable[int]]] = None,
                 stratum_key: str = STRATUM_KEY, phase_key: str = PHASE_KEY, same_epoch: bool = False) -> None:
        _check("mode", mode, mode in ("min", "max"), "'min' or 'max'")
        _check("max_t", max_t, max_t > 0, "> 0")
        _check("grace_period", grace_period, 0 < grace_period <= max_t, f"> 0 and <= max_t ({max_t})")
        _check("reduction_factor", reduction_factor, reduction_factor > 1, "> 1")
        _check("brackets", brackets, isinstance(brackets, int) and brackets >= 1, "an integer >= 1")
        _check("earliest_stop", earliest_stop, callable(earliest_stop), "callable (config -> epoch)")
        super().__init__()
        self._time_attr = time_attr
        self._metric = metric
        self._mode = mode
        self._metric_op = 1.0 if mode == "max" else -1.0  # decide the sign once: higher is better below
        self._max_t = max_t
        self._grace_period = grace_period
        self._reduction_factor = reduction_factor
        self._num_brackets = brackets
        self._earliest_stop = earliest_stop
        self._judge_at = judge_at
        self._stratum_key = stratum_key
        self._phase_key = phase_key
        self._strata: Dict[str, list[Bracket]] = {}
        self._bracket_of: Dict[str, Optional[Bracket]] = {}  # Ray trial id -> its bracket (None: re-run)
        self._earliest: Dict[str, int] = {}  # Ray trial id -> first epoch it may be stopped
        self._judge_epochs: Dict[str, Optional[frozenset]] = {}  # Ray trial id -> judge_at(config)
        self._num_stopped = 0
        self._same_epoch = bool(same_epoch)
        # trial key -> {epoch: signed value}: every result seen (or rebuilt), for same_epoch
        self._history: Dict[str, Dict[int, float]] = {}

    # --- helpers -------------------------------------------------------------

    @property
    def metric(self) -> str:
        return self._metric

    def _stratum(self, config: Mapping[str, Any]) -> str:
        value = (config or {}).get(self._stratum_key)
        return SHARED_STRATUM if value is None else str(value)

    def _is_reeval(self, config: Mapping[str, Any]) -> bool:
        return (config or {}).get(self._phase_key) == REEVAL

    @staticmethod
    def _key(trial: Trial) -> str:
        return str((trial.config or {}).get(TRIAL_KEY) or trial.trial_id)

    def _brackets_of(self, stratum: str) -> list[Bracket]:
        if stratum not in self._strata:
            self._strata[stratum] = [Bracket(self._grace_period, self._max_t, self._reduction_factor, s)
                                     for s in range(self._num_brackets)]
        return self._strata[stratum]

    def _bracket_for(self, key: str, config: Mapping[str, Any]) -> Optional[Bracket]:
        if self._is_reeval(config):
            return None  # never recorded: needs no bracket
        brackets = self._brackets_of(self._stratum(config))
        return brackets[choose_bracket(brackets, key)]

    def _judge_set(self, config: Mapping[str, Any]) -> Optional[frozenset]:
        return None if self._judge_at is None else frozenset(self._judge_at(dict(config)))

    def _may_judge(self, epoch: Any, earliest: int, judge: Optional[frozenset]) -> bool:
        return epoch >= earliest and (judge is None or epoch in judge)

    def _remember(self, key: str, epoch: Any, value: Any) -> None:
        """Keep a result for `_value_at`; only same_epoch ever reads it."""
        if self._same_epoch and value is not None:
            self._history.setdefault(key, {})[int(epoch)] = self._metric_op * float(value)

    def _value_at(self, key: str, t: float, recorded: float) -> float:
        """A peer's signed value at epoch t: its last result at or before t (else what it recorded)."""
        history = self._history.get(key) or {}
        earlier = [epoch for epoch in history if epoch <= t]
        return history[max(earlier)] if earlier else recorded

    def _record(self, trial: Trial, result: Dict) -> bool:
        """Record the result in the trial's bracket; True when it must stop."""
        return self._bracket_of[trial.trial_id].on_result(
            self._key(trial), result[self._time_attr], self._metric_op * result[self._metric],
            value_at=self._value_at if self._same_epoch else None)

    def _judged(self, trial: Trial, result: Dict) -> bool:
        """Whether this result may be recorded in a rung (and the trial stopped)."""
        return (self._bracket_of.get(trial.trial_id) is not None
                and self._may_judge(result[self._time_attr], self._earliest[trial.trial_id],
                                    self._judge_epochs.get(trial.trial_id)))

    # --- resume ----------------------------------------------------------------

    def rebuild(self, history: Iterable[tuple[str, Mapping[str, Any], Mapping[int, float]]]) -> int:
        """Replay earlier runs' results into the rungs: (trial key, config, {epoch: value}) each,
        as the study holds them. Only what the live search would have recorded is recorded
        (not re-runs, not before a trial's earliest epoch). Returns how many results."""
        count = 0
        for key, config, values in history:
            bracket = self._bracket_for(key, config)
            if bracket is None:
                continue
            earliest = int(self._earliest_stop(dict(config)))
            judge = self._judge_set(config)
            for epoch in sorted(values):
                value = values[epoch]
                self._remember(key, epoch, value)
                if self._may_judge(epoch, earliest, judge) and value is not None:
                    bracket.record(key, epoch, self._metric_op * float(value))
                    count += 1
        return count

    # --- TrialScheduler hooks ------------------------------------------------

    def on_trial_add(self, tune_controller: Optional["TuneController"], trial: Trial) -> None:
        self._bracket_of[trial.trial_id] = self._bracket_for(self._key(trial), trial.config)
        self._earliest[trial.trial_id] = int(self._earliest_stop(trial.config))
        self._judge_epochs[trial.trial_id] = self._judge_set(trial.config)

    def on_trial_result(self, tune_controller: Optional["TuneController"], trial: Trial,
                        result: Dict) -> str:
        action = TrialScheduler.CONTINUE
        if self._time_attr not in result or self._metric not in result:
            return action
        if self._bracket_of.get(trial.trial_id) is not None:  # not a re-run's
            self._remember(self._key(trial), result[self._time_attr], result.get(self._metric))
        if result[self._time_attr] >= self._max_t:
            action = TrialScheduler.STOP
        elif not self._judged(trial, result):
            action = TrialScheduler.CONTINUE
        elif result.get(self._metric) is None:
            pass  # an epoch that val_every skipped (its rungs are always validated): not judged
        elif self._record(trial, result):
            action = TrialScheduler.STOP
        if action == TrialScheduler.STOP:
            self._num_stopped += 1
        return action

    def on_trial_complete(self, tune_controller: Optional["TuneController"], trial: Trial,
                          result: Dict) -> None:
        if (result and self._time_attr in result and self._metric in result
                and result[self._metric] is not None and self._judged(trial, result)):
            self._record(trial, result)
        self._forget(trial)

    def on_trial_remove(self, tune_controller: Optional["TuneController"], trial: Trial) -> None:
        self._forget(trial)

    def on_trial_error(self, tune_controller: Optional["TuneController"], trial: Trial) -> None:
        self._forget(trial)

    def _forget(self, trial: Trial) -> None:
        self._bracket_of.pop(trial.trial_id, None)
        self._earliest.pop(trial.trial_id, None)
        self._judge_epochs.pop(trial.trial_id, None)

    def debug_string(self) -> str:
        out = f"Using ScheduleAwareASHA: num_stopped={self._num_stopped}"
        for stratum, brackets in sorted(self._strata.items()):
            out += "\n" + "\n".join(f"[{stratum or 'shared'}] {b.describe()}" for b in brackets)
        return out
