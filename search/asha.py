"""Asynchronous successive halving, the bookkeeping only: rungs, cut-offs, decisions.

The same algorithm as Ray Tune's ASHA (Li et al. 2018; `ray.tune.schedulers.
AsyncHyperBandScheduler`, with `stop_last_trials`), written here so that the
search uses none of Ray's private classes and so that a resumed search can
rebuild the rungs from the study's intermediate values (`Bracket.record`).
Pure Python and numpy: values are "higher is better" (the caller multiplies by
its metric's sign once).

A bracket with first rung `min_t`, budget `max_t`, reduction factor `rf` and
index `s` has rungs at min_t * rf**(k + s) for k = 0 .. K-1, K = int(log(max_t /
min_t) / log(rf) - s + 1). A result at time t is recorded at the highest rung
<= t that the trial has not recorded yet; it is stopped when its value is below
the (1 - 1/rf) quantile of the values recorded there before it (or, given
`value_at`, of those trials' values at the same time t: `Bracket.on_result`).
"""
from __future__ import annotations

import random
from typing import Callable, Optional

import numpy as np

# (peer key, time, the value the peer recorded at the rung) -> the peer's value at that time
ValueAt = Callable[[str, float, float], float]


class Bracket:
    """One ASHA bracket: rung milestone -> {trial key: value recorded there}."""

    def __init__(self, min_t: float, max_t: float, reduction_factor: float, s: int = 0) -> None:
        self.rf = float(reduction_factor)
        count = int(np.log(max_t / min_t) / np.log(self.rf) - s + 1)
        # Highest milestone first: a result is recorded at the highest rung it reached.
        self.rungs: list[tuple[float, dict[str, float]]] = [
            (min_t * self.rf ** (k + s), {}) for k in reversed(range(count))]

    def cutoff(self, recorded: dict[str, float]) -> Optional[float]:
        """The value a trial must reach at this rung to continue; None while the rung is empty."""
        if not recorded:
            return None
        return float(np.nanpercentile(list(recorded.values()), (1 - 1 / self.rf) * 100))

    def on_result(self, key: str, t: float, value: float, value_at: Optional[ValueAt] = None) -> bool:
        """Record the result where it belongs; True when the trial must stop.

        value_at: (peer key, t, the value it recorded here) -> the peer's value at time t
        (its value at its last time <= t). Given, the cut-off compares this trial with its
        peers at the same time t, not with what they recorded at the rung, possibly earlier
        in their runs (a trial judged after the rung's milestone would otherwise meet
        early values; one judged at it, later ones). None: Ray's rule."""
        for milestone, recorded in self.rungs:
            if t < milestone or key in recorded:
                continue
            peers = recorded if value_at is None else {k: value_at(k, t, v) for k, v in recorded.items()}
            cutoff = self.cutoff(peers)
            recorded[key] = value
            # NaN is never below a cut-off (and nanpercentile leaves it out of them), as in Ray.
            return cutoff is not None and value < cutoff
        return False

    def record(self, key: str, t: float, value: float) -> None:
        """Replay a result from an earlier run of the search (resume): recorded, nothing decided."""
        self.on_result(key, t, value)

    def describe(self) -> str:
        return "Bracket: " + " | ".join(f"Iter {m:.3f}: {self.cutoff(r)}" for m, r in self.rungs)


def choose_bracket(brackets: list[Bracket], key: str) -> int:
    """Ray's draw (softmax over the brackets' numbers of rungs), seeded by the trial's key,
    so that a resumed search puts a trial in the bracket it had before the kill."""
    sizes = np.array([len(b.rungs) for b in brackets], dtype=float)
    weights = np.e ** (sizes - sizes.max())
    draw = random.Random(f"asha-bracket:{key}").random() * float(weights.sum())
    for index, weight in enumerate(weights):
        draw -= weight
        if draw < 0:
            return index
    return len(brackets) - 1
