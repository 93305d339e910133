"""reports/figures/axes.py: every searched parameter's panel, and the edge warning."""
from __future__ import annotations

from pathlib import Path

import pytest

from reports.figures.axes import _get_axes_info, edge_warnings, plot_axes
from reports.load import load_experiments


def test_axes_and_edge_warning(run_dir: Path) -> None:
    es = load_experiments([run_dir])
    ax = _get_axes_info(es)
    assert [(a.param, a.kind, a.log) for a in ax.params] == [
        ("kl_anneal_type", "categorical", False), ("kl_anneal_cycle", "numeric", False),
        ("kl_anneal_ratio", "numeric", False), ("tfr_d_step", "numeric", False),
        ("optimizer", "categorical", False), ("lr", "numeric", True)]
    # 10 trials for 4 unconditional parameters, 4 for the cycle, 7 for the ratio
    assert ax.points.groupby("param").size().to_dict() == {
        "kl_anneal_type": 10, "kl_anneal_cycle": 4, "kl_anneal_ratio": 7, "tfr_d_step": 10, "optimizer": 10, "lr": 10}
    assert len(ax.warnings) == 1
    assert "tfr_d_step = 0, at the lower edge of its range [0, 0.3]" in ax.warnings[0]
    assert ax.n_without_value == 0
    assert edge_warnings(es) == ax.warnings  # the summary section prints the same sentence


@pytest.mark.parametrize("value, edge", [(9.6e-3, "upper"), (1.04e-4, "lower"), (1e-3, None)])
def test_edge_warning_uses_log_scale_for_lr(run_dir: Path, value: float, edge: str | None) -> None:
    text = (run_dir / "trials.csv").read_text().replace("Adam,0.001,", f"Adam,{value},")  # trials 4, 6, 8
    (run_dir / "trials.csv").write_text(text)
    warnings = [w for w in _get_axes_info(load_experiments([run_dir])).warnings if "has lr" in w]
    # 9.6e-3 is 0.9% of the log range from the top, 1.04e-4 0.85% from the bottom; 1e-3 is mid-range.
    assert [edge in w for w in warnings] == ([True] if edge else [])


def test_axes_figure_uses_log_axis_for_lr_and_categories(run_dir: Path) -> None:
    fig = plot_axes(load_experiments([run_dir]))
    titles = [a.text for a in fig.layout.annotations]
    assert titles == ["kl_anneal_type", "kl_anneal_cycle", "kl_anneal_ratio", "tfr_d_step", "optimizer", "lr"]
    assert fig.layout.xaxis6.type == "log" and fig.layout.xaxis5.type == "category"
    assert fig.layout.xaxis4.type == "linear"
