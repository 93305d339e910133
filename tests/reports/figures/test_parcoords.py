"""reports/figures/parcoords.py: one line per trial through its parameter values."""
from __future__ import annotations

import math
from pathlib import Path

import pytest

from reports.figures.parcoords import _get_parcoords_info
from reports.load import load_experiments


def test_parcoords_maps_categories_and_unsampled_values(run_dir: Path) -> None:
    pc = _get_parcoords_info(load_experiments([run_dir]).experiments[0])
    dims = {d.label: d for d in pc.dimensions}
    assert list(dims) == ["kl_anneal_type", "kl_anneal_cycle", "kl_anneal_ratio", "tfr_d_step", "optimizer",
                          "lr (log scale)", "best val_psnr (dB)"]
    kl = dims["kl_anneal_type"]
    assert kl.ticktext == ["Cyclical", "Monotonic", "None"]
    assert kl.values == [0, 1, 2, 0, 1, 2, 0, 2, 0, 1]
    cyc = dims["kl_anneal_cycle"]
    assert cyc.ticktext[0] == "not sampled" and cyc.tickvals[0] == pytest.approx(2 - 0.15 * 6)
    assert cyc.values[:3] == [6.0, pytest.approx(1.1), pytest.approx(1.1)]
    assert dims["optimizer"].ticktext == ["Adam", "AdamW", "Adamax", "ASGD"]
    assert dims["lr (log scale)"].values[0] == pytest.approx(math.log10(5e-4), abs=1e-6)
    assert "0.001" in dims["lr (log scale)"].ticktext
    assert pc.color == [20.4, 21.0, 15.0, 17.5, 16.5, 14.0, 19.5, 17.2, 22.0, 20.6]
