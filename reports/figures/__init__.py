"""One module per figure, in Optuna's visualization shape: `_get_<figure>_info(...)`
turns the loaded frames into a NamedTuple of exactly the numbers the figure
shows (tested exactly), `_get_<figure>_plot(info)` draws it with Plotly from
that alone, and `plot_<figure>(...)` does both. The underscored functions are
private to reports/ (reports/sections.py and reports/verdict.py call them), not
to their module.

Figures share their look through `_style` and their row selections through
reports/select.py; none of them opens a file (reports/load.py does).
"""
from __future__ import annotations

from reports.figures.axes import plot_axes
from reports.figures.best_so_far import plot_best_so_far
from reports.figures.comparison import plot_comparison
from reports.figures.curves import plot_curves
from reports.figures.frames import plot_frames
from reports.figures.importance import plot_importance
from reports.figures.isolation import plot_isolation
from reports.figures.losses import plot_losses
from reports.figures.parcoords import plot_parcoords
from reports.figures.per_frame import plot_per_frame
from reports.figures.schedules import plot_schedules

__all__ = ["plot_axes", "plot_best_so_far", "plot_comparison", "plot_curves", "plot_frames", "plot_importance",
           "plot_isolation", "plot_losses", "plot_parcoords", "plot_per_frame", "plot_schedules"]
