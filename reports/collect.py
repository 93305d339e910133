"""The old name that code outside reports/ still imports (tests/search): the curve
points, now built in reports/figures/curves.py. New code imports from there."""
from __future__ import annotations

from reports.figures.curves import curve_points as collect_curves

__all__ = ["collect_curves"]
