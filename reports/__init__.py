"""Experiment folder -> tidy pandas frames (load) -> one module per figure (figures/<name>.py) ->
sections (sections) -> one offline HTML page (html)."""
from __future__ import annotations

from reports.load import Experiment, ExperimentSet, ReportError, load_experiment, load_experiments

__all__ = ["Experiment", "ExperimentSet", "ReportError", "load_experiment", "load_experiments", "write_report"]


def write_report(run_dirs, out_path):  # type: ignore[no-untyped-def]
    """See reports.html.write_report (imported lazily: plotly is heavy)."""
    from reports.html import write_report as _write
    return _write(run_dirs, out_path)
