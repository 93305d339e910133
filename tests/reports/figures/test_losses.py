"""reports/figures/losses.py: the training losses of each strategy's best trial."""
from __future__ import annotations

from pathlib import Path

from reports.figures.losses import _get_losses_info, plot_losses
from reports.load import load_experiments


def test_losses_of_each_strategys_best_trial(run_dir: Path) -> None:
    info = _get_losses_info(load_experiments([run_dir]))
    assert info.metrics == ["train_loss", "train_mse", "train_kl"]
    assert list(info.points.columns[-3:]) == ["train_loss", "train_mse", "train_kl"]
    assert info.points[info.points["strategy"] == "None"]["train_mse"].tolist() == [0.5, 0.25, 0.5 / 3, 0.125]


def test_losses_figure_one_panel_per_loss_on_log_axes(run_dir: Path) -> None:
    fig = plot_losses(load_experiments([run_dir]))
    assert [a.text for a in fig.layout.annotations] == ["total loss (MSE + beta·KL)", "reconstruction MSE", "KL"]
    assert len(fig.data) == 3 * 3 and sum(bool(t.showlegend) for t in fig.data) == 3
    assert fig.layout.yaxis2.type == "log"  # every MSE is > 0
