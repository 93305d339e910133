"""The only places search/ touches Ray's or Optuna's private API; each says why.

tests/search/test_compat.py checks each against the installed versions and fails
with a message naming the use when an upgrade changes it.
"""
from __future__ import annotations

from typing import Any, Optional, Sequence

import optuna
from optuna.trial import FrozenTrial, TrialState

from search.strata import PHASE_KEY, REEVAL, STRATUM_KEY


def dashboard_url() -> Optional[str]:
    """The dashboard of the Ray this process is already connected to.

    Why private: `ray.init` returns the URL, but a driver that joined Ray earlier
    (a test, a notebook) has no public way to ask for it again."""
    import ray._private.worker as worker  # the one import of ray._private in search/

    return worker.get_dashboard_url()


class StratumView:
    """A study as one stratum's sampler should see it: that stratum's search trials only.

    Why private: Optuna's samplers (TPE, its group search space, random, QMC) read a
    study's history through `Study._get_trials`, not `get_trials`; a sampler that
    conditions on a subset of the trials must answer that method. Everything else
    is the real study.
    """

    def __init__(self, study: optuna.Study, stratum: Optional[str]) -> None:
        self._study = study
        self._stratum = stratum

    def __getattr__(self, name: str) -> Any:
        return getattr(self._study, name)

    def _keep(self, trial: FrozenTrial) -> bool:
        if trial.user_attrs.get(PHASE_KEY) == REEVAL:
            return False
        return self._stratum is None or trial.user_attrs.get(STRATUM_KEY) == self._stratum

    def _get_trials(self, deepcopy: bool = True, states: Optional[Sequence[TrialState]] = None,
                    use_cache: bool = False) -> list[FrozenTrial]:
        # use_cache is dropped: Optuna's cache is keyed on the study, not on this view.
        trials = self._study._get_trials(deepcopy=deepcopy, states=states, use_cache=False)
        return [t for t in trials if self._keep(t)]

    def get_trials(self, deepcopy: bool = True, states: Optional[Sequence[TrialState]] = None) -> list[FrozenTrial]:
        return self._get_trials(deepcopy=deepcopy, states=states)

    @property
    def trials(self) -> list[FrozenTrial]:
        return self.get_trials()
