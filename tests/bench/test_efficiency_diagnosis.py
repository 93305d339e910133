"""bench/efficiency.py's diagnosis of a missed target, on hand-made runs with known answers."""
from __future__ import annotations

import pytest

from bench.efficiency import _rank_correlation, diagnosis


def _rows(trial: str, config: dict, values: list[float]) -> list[dict]:
    return [{"trial_id": trial, "epoch": e, "val_psnr": v, "config": config} for e, v in enumerate(values, start=1)]


def test_diagnosis_counts_distinct_full_runs_ranks_and_rung_correlation() -> None:
    grid = _rows("g0", {"lr": 1e-3}, [20.0, 30.0, 35.0]) + _rows("g1", {"lr": 1e-3, "tfr": 0}, [21.0, 28.0, 33.0])
    # s0 appears in both searches (same seed, same first configuration): counted once
    shared = _rows("a", {"lr": 4e-3}, [22.0, 31.0, 36.0])
    rows = {"grid": grid,
            "ours": {"0": shared + _rows("b", {"lr": 5e-4}, [19.0, 25.0])},       # b stopped at epoch 2: not full
            "random": {"0": _rows("c", {"lr": 4e-3}, [22.0, 31.0, 36.0]) + _rows("d", {"lr": 3e-4}, [18.0, 24.0, 30.0])}}
    d = diagnosis(rows, max_epochs=3, rung_epoch=2)
    assert d["full_runs"] == 4 and d["searched_full_runs"] == 2
    assert d["beat_grid_best"] == 1                     # 36 > 35; 30 is not
    assert d["grid_ranks"] == [2, 3]                    # finals 36, 35, 33, 30
    assert d["rung_epoch"] == 2 and d["rung_rank_correlation"] == pytest.approx(1.0)  # epoch-2 order = final order
    assert d["searched_final_median"] == pytest.approx(33.0)


def test_rank_correlation_of_reversed_order_is_minus_one_and_needs_three_pairs() -> None:
    assert _rank_correlation([1.0, 2.0, 3.0, 4.0], [8.0, 6.0, 4.0, 2.0]) == pytest.approx(-1.0)
    assert _rank_correlation([1.0, 2.0], [2.0, 1.0]) is None
