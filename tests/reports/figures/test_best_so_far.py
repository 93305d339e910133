"""reports/figures/best_so_far.py: the best val_psnr found so far against the epochs spent."""
from __future__ import annotations

from pathlib import Path

from reports.figures.best_so_far import _get_best_so_far_info
from reports.load import load_experiments


def test_best_so_far(run_dir: Path) -> None:
    b = _get_best_so_far_info(load_experiments([run_dir])).points
    assert b["cum_epochs"].tolist() == [4, 8, 9, 11, 13, 14, 16, 20, 24, 28]
    assert b["best_so_far"].tolist() == [20.4, 21.0, 21.0, 21.0, 21.0, 21.0, 21.0, 21.0, 22.0, 22.0]
