"""The one rule that decides how a trial ended.

The searcher (what Optuna is told), the recorder (trials.csv's `status`) and
the resume path (closing a trial Tune finished but the study never heard of)
all call `classify_end`, so a trial ASHA stopped is `stopped` / PRUNED
everywhere, never COMPLETE with a partial-budget value.

| status    | when                                                | Optuna state |
|-----------|-----------------------------------------------------|--------------|
| failed    | it raised (after Ray's retries)                     | FAIL         |
| diverged  | loss became NaN/inf, or the metric is not finite    | PRUNED       |
| stopped   | no result, or it ended before epoch num_epoch       | PRUNED       |
| completed | it reported epoch num_epoch                         | COMPLETE     |

Diverged trials are PRUNED, not FAIL, so TPE learns the region is bad instead
of ignoring it. Pure Python: Optuna's states are named, not imported.
"""
from __future__ import annotations

import math
from typing import Any, Mapping, Optional

COMPLETED, STOPPED, DIVERGED, FAILED, RUNNING = "completed", "stopped", "diverged", "failed", "running"
STATUSES = (COMPLETED, STOPPED, DIVERGED, FAILED, RUNNING)
OPTUNA_STATE = {COMPLETED: "COMPLETE", STOPPED: "PRUNED", DIVERGED: "PRUNED", FAILED: "FAIL"}
EPOCH_KEY = "epoch"  # the trainer's 1-based epoch: right after a resume from a checkpoint too


def _finite(value: Any) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def last_epoch(result: Optional[Mapping[str, Any]]) -> Optional[int]:
    """The epoch of a result (Ray's training_iteration when the trainer's epoch is missing)."""
    if not result:
        return None
    step = result.get(EPOCH_KEY, result.get("training_iteration"))
    return None if step is None else int(step)


def classify_end(last: Optional[Mapping[str, Any]], *, error: bool, metric: str, num_epoch: int) -> str:
    """completed / stopped / diverged / failed, from the trial's last result (or trials.csv row
    with its `epoch`)."""
    # 1) an exception after retries
    if error:
        return FAILED
    # 2) removed before it reported anything (e.g. pending when the search ended)
    if not last or metric not in last:
        return STOPPED
    # 3) loss became NaN/inf, or the metric itself is not a number (None: an epoch
    #    that was not validated, which says nothing of divergence)
    if bool(last.get("diverged", False)) or (last[metric] is not None and not _finite(last[metric])):
        return DIVERGED
    # 4) ended before the full budget: early stopping
    epoch = last_epoch(last)
    if epoch is not None and epoch < num_epoch:
        return STOPPED
    # 5) ran every epoch
    return COMPLETED
