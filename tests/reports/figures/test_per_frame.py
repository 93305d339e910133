"""reports/figures/per_frame.py: per-frame PSNR of each strategy's best trial."""
from __future__ import annotations

from pathlib import Path

from reports.figures.per_frame import _get_per_frame_info, plot_per_frame
from reports.load import load_experiments
from reports.select import best_per_strategy

TID = "5f3a1_{:05d}".format


def test_per_frame_of_each_strategys_best_trial(run_dir: Path) -> None:
    es = load_experiments([run_dir])
    info = _get_per_frame_info(es, best_per_strategy(es))
    assert info.points.groupby("strategy")["psnr"].first().to_dict() == {
        "Cyclical": 25.0, "Monotonic": 24.0, "None": 20.2}
    assert info.missing == []  # trial 5 has no json, but it is no strategy's best
    assert [t.name for t in plot_per_frame(es).data] == [
        f"Cyclical (trial {TID(8)})", f"Monotonic (trial {TID(1)})", f"None (trial {TID(7)})"]


def test_a_best_trial_without_per_frame_json_is_named(run_dir: Path) -> None:
    (run_dir / "trials" / TID(8) / "val_psnr_per_frame.json").unlink()
    info = _get_per_frame_info(load_experiments([run_dir]))
    assert info.missing == [("quick", TID(8))] and set(info.points["strategy"]) == {"Monotonic", "None"}
