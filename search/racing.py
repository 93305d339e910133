"""Racing the re-run seeds (`reeval: {seeds: auto}`): which strata get another seed.

Re-running every stratum's best configuration with a fixed number of seeds
spends as much on a stratum that is clearly beaten as on the two that are
close. Racing, as in F-Race / irace (statistical elimination of candidates),
spends them where the verdict is still open:

1. a first round gives every stratum INITIAL_SEEDS re-runs;
2. after each round the verdict is judged on every re-run so far (search.comparison:
   Welch + Holm, equivalence by TOST, failed re-runs counted);
3. it stops when the verdict is decisive or equivalent, or when no stratum in
   contention may get another seed (max_seeds per stratum, or the epoch budget);
4. otherwise each stratum still in contention gets one more seed: the leader, and
   every stratum whose difference from the leader is neither significant nor
   within the equivalence margin (a stratum without an interval yet, e.g. after a
   failed re-run, is in contention too).

`next_round` decides from the comparison block alone, so a search resumed from its
study after a kill makes the same decision as the run that was killed.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from search.comparison import DECISIVE, EQUIVALENT, undecided

INITIAL_SEEDS = 2  # the first round: the fewest runs an interval can be built from
DEFAULT_MAX_SEEDS = 6


@dataclass(frozen=True)
class RaceBudget:
    """What racing may spend: seeds per stratum and re-run epochs in all (None: no cap)."""
    max_seeds: int = DEFAULT_MAX_SEEDS
    budget_epochs: int | None = None
    num_epoch: int = 1  # one re-run's epochs (the full budget)

    def max_runs(self, strata: int) -> int:
        """The most re-runs racing can start over `strata` strata."""
        runs = self.max_seeds * strata
        if self.budget_epochs is not None:
            runs = min(runs, self.budget_epochs // self.num_epoch)
        return runs


def in_contention(comparison: Mapping[str, Any]) -> list[str]:
    """The strata racing would give another seed to: none once the verdict is decided."""
    if comparison["verdict"] in (DECISIVE, EQUIVALENT):
        return []
    blocks = comparison["strata"]
    leader = comparison["winner"]
    lacking = [s for s in comparison["order"] if not blocks[s]["enough_evidence"]]
    open_ = undecided(comparison["comparisons"])
    if leader is None:
        return lacking
    contenders = [leader, *open_, *lacking] if (open_ or lacking) else []
    return list(dict.fromkeys(contenders))


def next_round(comparison: Mapping[str, Any], seeds_so_far: Mapping[str, int], budget: RaceBudget) -> list[str]:
    """The strata that get one more seed now, in the comparison's order; [] ends the race.

    `seeds_so_far` counts every re-run each stratum has had (failed ones too). When the
    epoch budget cannot pay a seed for every contender, the ones first in the
    comparison's order (best mean first) get them."""
    contenders = [s for s in in_contention(comparison) if seeds_so_far.get(s, 0) < budget.max_seeds]
    if budget.budget_epochs is not None:
        spent = sum(seeds_so_far.values()) * budget.num_epoch
        affordable = max((budget.budget_epochs - spent) // budget.num_epoch, 0)
        contenders = contenders[:affordable]
    return contenders
