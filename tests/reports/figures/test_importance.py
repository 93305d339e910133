"""reports/figures/importance.py: Optuna's parameter importance on the real study, or a note."""
from __future__ import annotations

from pathlib import Path

import pytest

from reports.figures.importance import _get_importance_info
from reports.load import load_experiments


def test_importance_from_the_real_study(run_dir: Path) -> None:
    imp = _get_importance_info(load_experiments([run_dir]).experiments[0])
    assert imp.note is None and imp.n_complete == 5
    assert set(imp.importances) == {"kl_anneal_type", "kl_anneal_cycle", "kl_anneal_ratio", "tfr_d_step",
                                    "optimizer", "lr"}
    assert sum(imp.importances.values()) == pytest.approx(1.0)
    assert list(imp.importances.values()) == sorted(imp.importances.values(), reverse=True)


def test_importance_notes(run_dir: Path) -> None:
    (run_dir / "optuna.db").write_bytes(b"not a database")
    imp = _get_importance_info(load_experiments([run_dir]).experiments[0])
    assert imp.importances == {} and "could not compute" in (imp.note or "")
    (run_dir / "optuna.db").unlink()
    imp = _get_importance_info(load_experiments([run_dir]).experiments[0])
    assert "no optuna.db" in (imp.note or "")


def test_importance_needs_enough_complete_trials(make_run_dir) -> None:  # type: ignore[no-untyped-def]
    run = make_run_dir(status={0: "stopped", 1: "stopped"})  # 3 COMPLETE trials left in the study
    imp = _get_importance_info(load_experiments([run]).experiments[0])
    assert imp.importances == {} and imp.n_complete == 3
    assert imp.note == "only 3 COMPLETE trial(s) in the study; importance needs at least 4 to mean anything"
