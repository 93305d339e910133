"""`precision: auto` for a search: decided once in the driver, before the first trial.

The driver times the space's base configuration (its fixed values over the family's
defaults) in fp32 and in bf16 on the device and thread count a trial gets
(cvae.core.precision_probe, through the family's `decide_precision`), and every trial
whose configuration says `auto` trains in the chosen precision: the trials do not
probe again. The decision goes into the study (a study attribute), so `--resume`
keeps the precision the search started with even if the cache was cleared or the
machine measured differently since. A dry run never probes (`planned`): it shows the
forced choice, the cached decision, or that the first trial's start will measure.

On a multi-node cluster the driver measures its own machine: its answer holds for
workers of the same kind.
"""
from __future__ import annotations

from typing import Any, Mapping, Optional

from cvae.core.precision_probe import PrecisionDecision

PRECISION_ATTR = "precision_decision"  # the study's user attribute holding the decision


def run_device(plan: Any) -> str:
    """The device a trial trains on: a GPU where it is given a share of one."""
    return "cuda" if plan.gpu > 0 else "cpu"


def _base(plan: Any) -> tuple[Any, int]:
    """The base config and the torch threads a trial of it runs with (search.trainable's rule)."""
    cfg = plan.space.train_config({})
    return cfg, int(cfg.torch_threads or max(1, int(plan.cpu)))


def planned(plan: Any) -> PrecisionDecision:
    """What the search will train in, without probing: forced, cached, or to be measured."""
    cfg, threads = _base(plan)
    return plan.space.family.planned_precision(cfg, run_device(plan), threads)


def decide(plan: Any) -> PrecisionDecision:
    """Probe (or read the cache) for the search's base config; forced values pass through."""
    cfg, threads = _base(plan)
    return plan.space.family.decide_precision(cfg, run_device(plan), threads)


def recorded(attrs: Mapping[str, Any]) -> Optional[PrecisionDecision]:
    """The decision a study recorded when its search started (None: none recorded)."""
    saved = attrs.get(PRECISION_ATTR)
    if not isinstance(saved, Mapping) or not isinstance(saved.get("precision"), str):
        return None
    return PrecisionDecision(saved["precision"], "recorded", saved.get("fp32_s"), saved.get("bf16_s"),
                             saved.get("spread"), conclusive=bool(saved.get("conclusive", True)), note=f"recorded when this search started: {saved.get('text', '')}")


def settle(plan: Any, record: Any) -> tuple[PrecisionDecision, bool]:
    """The search's decision (recorded in the study, else plan.precision, else decided now),
    recorded in the study; and whether it differs from what plan.precision said before."""
    before = plan.precision
    decision = recorded(record.study.user_attrs)
    if decision is None:
        decision = before if before is not None else decide(plan)
        record.study.set_user_attr(PRECISION_ATTR, decision.as_dict())
    plan.precision = decision
    return decision, before is None or before.precision != decision.precision


def trial_precision(configured: str, decided: Optional[str]) -> str:
    """A trial's precision: the driver's decision where the trial's config says auto."""
    if configured == "auto" and decided not in (None, "auto"):
        return str(decided)
    return configured
