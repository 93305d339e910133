"""The Optuna sampler a space asks for, and the stratified wrapper around it.

`make_sampler(space, max_concurrent)` is the one place a YAML `sampler:` block
becomes an Optuna sampler, with every option written at the call so a test can
assert what the YAML turns into:

| sampler.type | Optuna                                                                  |
|--------------|-------------------------------------------------------------------------|
| tpe          | TPESampler(multivariate=True, group=True, constant_liar=<concurrent>)   |
| random       | RandomSampler                                                           |
| qmc          | QMCSampler (Sobol, scrambled)                                           |
| grid         | GridSampler over every parameter's `values`                             |

TPE is multivariate with `group=True`: conditional parameters (kl_anneal_cycle
only under Cyclical) are modelled jointly within each group of parameters that
appear together, instead of one at a time outside the joint model.

`StratifiedSampler` wraps the base sampler. Each stratum (search.strata) gets
its own copy of the base sampler that sees only that stratum's search trials,
so TPE tunes the nuisance parameters *within* a stratum, conditioned on that
stratum's history, while the study stays one optuna.db. Re-evaluation trials
(phase `reeval`) are never shown to any sampler: they re-run a chosen
configuration with other seeds and say nothing about where to sample next.
The trial's stratum is its user attribute `stratum`, set when the searcher
enqueues it (balanced strata); without it (free strata) all search trials
share one sampler, as before.
"""
from __future__ import annotations

import functools
import warnings
from typing import TYPE_CHECKING, Any, Callable, Optional, Sequence

import optuna
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler
from optuna.trial import FrozenTrial, TrialState

from search._compat import StratumView
from search.strata import STRATUM_KEY

if TYPE_CHECKING:
    from search.space import SearchSpace

_SHARED = "\0shared"  # the base sampler of trials without a stratum (free strata)


def make_base_sampler(space: "SearchSpace", max_concurrent: int, seed_offset: int = 0) -> BaseSampler:
    """The sampler `space.sampler` names; `seed_offset` makes one copy per stratum differ."""
    spec = space.sampler
    seed = None if spec.seed is None else spec.seed + seed_offset
    if spec.type == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if spec.type == "qmc":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.samplers.QMCSampler(qmc_type="sobol", scramble=True, seed=seed,
                                              warn_independent_sampling=False)
    if spec.type == "grid":
        return optuna.samplers.GridSampler(space.grid_values(), seed=seed)
    kwargs: dict[str, Any] = {}
    if spec.n_startup_trials is not None:
        kwargs["n_startup_trials"] = spec.n_startup_trials
    # Several trials run at once: the constant liar keeps TPE from proposing
    # the same point to each of them.
    with warnings.catch_warnings():
        # multivariate, group and constant_liar are "experimental" in Optuna 5: said once in the README.
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True,
                                          constant_liar=max_concurrent > 1, **kwargs)


def make_sampler(space: "SearchSpace", max_concurrent: int) -> "StratifiedSampler":
    """The study's sampler: the base sampler per stratum (balanced) or one shared (free, grid)."""
    # A partial, not a lambda: Ray pickles the searcher (and this sampler) with the experiment.
    factory = functools.partial(make_base_sampler, space, max_concurrent)
    return StratifiedSampler(factory, strata=[s.key for s in space.strata()])


class StratifiedSampler(BaseSampler):
    """One base sampler per stratum, each fed only its stratum's search trials.

    `factory(offset)` builds a base sampler; stratum i gets offset i + 1 (its
    own seed), trials without a stratum share offset 0.
    """

    def __init__(self, factory: Callable[[int], BaseSampler], strata: Sequence[str]) -> None:
        self._factory = factory
        self._strata = list(strata)
        self._samplers: dict[str, BaseSampler] = {}

    # --- which sampler, which view ---------------------------------------------
    def _stratum_of(self, trial: FrozenTrial) -> Optional[str]:
        return trial.user_attrs.get(STRATUM_KEY)

    def sampler_for(self, stratum: Optional[str]) -> BaseSampler:
        key = _SHARED if stratum is None or stratum not in self._strata else stratum
        if key not in self._samplers:
            offset = 0 if key == _SHARED else self._strata.index(key) + 1
            self._samplers[key] = self._factory(offset)
        return self._samplers[key]

    def _route(self, study: optuna.Study, trial: FrozenTrial) -> tuple[BaseSampler, Any]:
        stratum = self._stratum_of(trial)
        if stratum is not None and stratum not in self._strata:
            stratum = None
        return self.sampler_for(stratum), StratumView(study, stratum)

    @property
    def base(self) -> BaseSampler:
        """The shared base sampler (what the YAML's sampler block built)."""
        return self.sampler_for(None)

    # --- BaseSampler ------------------------------------------------------------
    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        sampler, view = self._route(study, trial)
        return sampler.infer_relative_search_space(view, trial)

    def sample_relative(self, study: optuna.Study, trial: FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        sampler, view = self._route(study, trial)
        return sampler.sample_relative(view, trial, search_space)

    def sample_independent(self, study: optuna.Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        sampler, view = self._route(study, trial)
        return sampler.sample_independent(view, trial, param_name, param_distribution)

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        sampler, view = self._route(study, trial)
        sampler.before_trial(view, trial)

    def after_trial(self, study: optuna.Study, trial: FrozenTrial, state: TrialState,
                    values: Optional[Sequence[float]]) -> None:
        sampler, view = self._route(study, trial)
        if isinstance(sampler, optuna.samplers.GridSampler):
            # GridSampler.after_trial only calls study.stop() when the grid is used up,
            # which raises outside study.optimize (Ray asks and tells): the searcher
            # counts trials itself.
            return
        sampler.after_trial(view, trial, state, values)

    def reseed_rng(self) -> None:
        for sampler in self._samplers.values():
            sampler.reseed_rng()
