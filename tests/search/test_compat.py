"""search/_compat.py is the only place search/ and reports/ touch Ray's or Optuna's private
API; each use is checked here against the installed versions, with a message naming it."""
from __future__ import annotations

import inspect
import re
from pathlib import Path

import optuna

ROOT = Path(__file__).resolve().parents[2]
PRIVATE = re.compile(r"_private|__dict__|cloudpickle|pickle\.load|DELETE FROM|UPDATE trials")


def test_nothing_outside_compat_uses_private_state():
    found = []
    for folder in ("search", "reports"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            if path.name == "_compat.py":
                continue
            for number, line in enumerate(path.read_text().splitlines(), start=1):
                if PRIVATE.search(line):
                    found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not found, "private Ray/Optuna use outside search/_compat.py:\n" + "\n".join(found)


def test_ray_still_has_the_dashboard_url_compat_reads():
    import ray._private.worker as worker

    assert callable(getattr(worker, "get_dashboard_url", None)), (
        "search/_compat.py dashboard_url: ray._private.worker.get_dashboard_url is gone in this Ray; "
        "find where this Ray keeps the dashboard URL of a connected driver")


def test_optuna_samplers_still_read_history_through_study_get_trials():
    """StratumView answers Study._get_trials: the method Optuna's samplers call for a study's history."""
    method = getattr(optuna.Study, "_get_trials", None)
    assert method is not None, ("search/_compat.py StratumView: optuna.Study._get_trials is gone; the samplers "
                                "read history elsewhere now, and a stratum's sampler would see every trial")
    assert list(inspect.signature(method).parameters) == ["self", "deepcopy", "states", "use_cache"], (
        "search/_compat.py StratumView: optuna.Study._get_trials changed its arguments")
    from optuna.samplers import TPESampler  # (the random sampler reads no history)

    source = inspect.getsource(inspect.getmodule(TPESampler))
    assert "_get_trials(" in source, "search/_compat.py StratumView: TPESampler no longer calls study._get_trials"
