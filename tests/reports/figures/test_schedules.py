"""reports/figures/schedules.py: beta and teacher forcing of each strategy's best trial."""
from __future__ import annotations

from pathlib import Path

from reports.figures.schedules import _get_schedules_info, plot_schedules
from reports.load import load_experiments


def test_schedules_of_each_strategys_best_trial(run_dir: Path) -> None:
    sched = _get_schedules_info(load_experiments([run_dir])).points
    cyc = sched[sched["strategy"] == "Cyclical"]
    assert cyc["beta"].tolist() == [0.0, 1.0, 0.0, 1.0]
    assert cyc["teacher_forcing"].tolist() == [1, 1, 0, 0]
    assert cyc["tfr_at_epoch"].tolist() == [1.0, 1.0, 1.0, 1.0]  # tfr_d_step = 0


def test_schedules_figure_marks_the_teacher_forced_epochs(run_dir: Path) -> None:
    fig = plot_schedules(load_experiments([run_dir]))
    on = [t for t in fig.data if t.mode == "markers"]
    assert len(on) == 3 and all(list(t.x) == [1, 2] for t in on)  # every trial: teacher forcing on in epochs 1-2
