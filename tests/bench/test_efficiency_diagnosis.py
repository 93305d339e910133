"""bench/efficiency.py's diagnosis of a missed target, on hand-made runs with known answers."""
from __future__ import annotations

import pytest

from bench.efficiency import FULL, diagnosis, notes


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


def _report(gain: float, frac: float | None, random_gain: float) -> dict:
    return {"epochs_fraction_to_reach_grid_best": frac, "psnr_gain_at_equal_epochs_db": gain,
            "random_epochs_fraction_to_reach_grid_best": 0.5, "random_psnr_gain_at_equal_epochs_db": random_gain,
            "grid": {"best": 38.6},
            "diagnosis": {"full_runs": 10, "searched_full_runs": 4, "beat_grid_best": 2, "grid_ranks": [1, 3, 5, 6, 8, 9],
                          "rung_epoch": 2, "rung_rank_correlation": 0.45}}


@pytest.mark.parametrize("gain, frac, verdict", [(1.9, 0.28, "targets met"), (0.4, 0.28, "target(s) missed"),
                                                 (1.9, 0.5, "target(s) missed"), (1.9, None, "target(s) missed")])
def test_notes_give_the_verdict_the_diagnosis_and_random_search_beside_ours(gain, frac, verdict) -> None:
    mode = {**FULL, "asha": {"type": "asha", "grace_period": 2, "reduction_factor": 3}, "n_startup": 4}
    text = "\n".join(notes(_report(gain, frac, random_gain=2.03), mode))
    assert verdict in text and "Spearman rho 0.45" in text
    assert ("targets met" in text) != ("target(s) missed" in text)
    assert "gain at equal epochs +2.03 dB" in text and f"{gain:+.2f} dB" in text
