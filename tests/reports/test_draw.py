"""Draw steps: smoke tests on the figures' structure (what is drawn where), not pixels."""
from __future__ import annotations

from pathlib import Path

import plotly.graph_objects as go

from reports import collect as c
from reports import draw as d
from reports.figures import build_sections
from reports.load import load_experiments


def test_curves_one_line_per_trial_and_end_markers(run_dir: Path) -> None:
    es = load_experiments([run_dir])
    fig = d.draw_curves(c.collect_curves(es), {"quick": 16.25})
    lines = [t for t in fig.data if t.mode == "lines+markers"]
    ends = {t.name: list(t.x) for t in fig.data if t.mode == "markers"}
    assert len(lines) == 10
    assert {t.line.color for t in lines} == {d.STRATEGY_COLOURS[k] for k in ("Cyclical", "Monotonic", "None")}
    assert ends == {"diverged here": [2], "failed here": [1], "stopped here": [1, 2]}
    assert fig.layout.shapes[0].y0 == 16.25  # baseline line


def test_axes_figure_uses_log_axis_for_lr_and_categories(run_dir: Path) -> None:
    fig = d.draw_axes(c.collect_axes(load_experiments([run_dir])))
    titles = [a.text for a in fig.layout.annotations]
    assert titles == ["kl_anneal_type", "kl_anneal_cycle", "kl_anneal_ratio", "tfr_d_step", "optimizer", "lr"]
    assert fig.layout.xaxis6.type == "log" and fig.layout.xaxis5.type == "category"
    assert fig.layout.xaxis4.type == "linear"


def _strings(obj: object) -> list[str]:
    if isinstance(obj, str):
        return [obj]
    if isinstance(obj, dict):
        return [t for v in obj.values() for t in _strings(v)]
    if isinstance(obj, (list, tuple)):
        return [t for v in obj for t in _strings(v)]
    return []


def test_user_strings_are_escaped_in_figures(make_run_dir) -> None:  # type: ignore[no-untyped-def]
    es = load_experiments([make_run_dir(evil=True)])
    figs = [f for s in build_sections(es) for f in s.figures]
    strings = [t for f in figs for t in _strings(f.to_plotly_json())]
    assert not [t for t in strings if "<script>" in t]
    assert any("&lt;script&gt;alert(1)&lt;/script&gt;" in t for t in strings)
    pc = next(f for f in figs if isinstance(f.data[0], go.Parcoords))
    opt = next(dim for dim in pc.data[0].dimensions if dim.label == "optimizer")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in opt.ticktext


def test_every_section_has_a_caption_and_counts_its_figures(run_dir: Path) -> None:
    sections = build_sections(load_experiments([run_dir]))
    assert [s.id for s in sections] == ["curves", "scientific", "axes", "per-frame", "losses", "schedules",
                                        "parcoords", "importance", "best-so-far", "frames"]
    assert all(s.caption.endswith(".") for s in sections)
    assert sum(len(s.figures) for s in sections) == 9  # frames is an <img>, not a figure
