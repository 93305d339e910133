"""Strata: the combinations of the scientific parameters' values a study compares.

A *stratum* is one combination of the `role: scientific` parameters' values
that their `when` conditions allow. With `kl_anneal_type` scientific over
[Cyclical, Monotonic, None] there are three; with `kl_anneal_cycle` scientific
too and conditional on Cyclical, there is one stratum per cycle value plus
Monotonic and None.

Each trial belongs to exactly one stratum; its *key* (the text in trials.csv's
`stratum` column, the user attribute `stratum` in optuna.db and the keys of
summary.json's `comparison.strata`) is the value itself for one scientific
parameter (`Cyclical`) and `name=value` pairs joined by ", " for several
(`kl_anneal_type=Cyclical, kl_anneal_cycle=2`). A space without a scientific
parameter has one stratum, `all`.

Pure Python: no Ray, no Optuna.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

# The names a run folder holds live in its contract (runfolder/); re-exported here.
from runfolder.contract import PHASE_KEY, PHASES, REEVAL, SEARCH, STRATUM_KEY, TRIAL_KEY  # noqa: F401

ALL = "all"  # the one stratum of a space with no scientific parameter



@dataclass(frozen=True)
class Stratum:
    key: str
    values: dict[str, Any]  # scientific parameter -> value (absent when its `when` does not hold)


def _text(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.12g}"
    return str(value)


def stratum_key(values: Mapping[str, Any], scientific: Sequence[str]) -> str:
    """The key of the stratum whose scientific values are `values` (extra keys ignored)."""
    present = [(name, values[name]) for name in scientific if name in values]
    if not scientific:
        return ALL
    if len(scientific) == 1:
        return _text(present[0][1]) if present else ALL
    return ", ".join(f"{name}={_text(value)}" for name, value in present) or ALL


def enumerate_strata(parameters: Sequence[Any]) -> list[Stratum]:
    """Every allowed combination of the scientific parameters' values, in file order.

    `parameters` are search.space.SearchParameter objects in sampling order (a
    parameter after those its `when` names); the scientific ones must be
    categorical or constant and their conditions must name scientific
    parameters only (search.space checks both before calling this).
    """
    scientific = [p for p in parameters if p.role == "scientific"]
    names = [p.name for p in scientific]
    partial: list[dict[str, Any]] = [{}]
    for param in scientific:
        grown: list[dict[str, Any]] = []
        for combo in partial:
            if param.applies(combo):
                grown.extend({**combo, param.name: choice} for choice in param.choices)
            else:
                grown.append(combo)
        partial = grown
    return [Stratum(key=stratum_key(combo, names), values=combo) for combo in partial]
