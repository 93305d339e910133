"""reports/sections.py: which sections the page has, in which order, and that every
string from the data reaches the figures escaped."""
from __future__ import annotations

from pathlib import Path

import plotly.graph_objects as go

from reports.load import load_experiments
from reports.sections import build_sections


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


def test_sections_start_with_the_reevaluation(reeval_run: Path) -> None:
    sections = build_sections(load_experiments([reeval_run]))
    assert [s.id for s in sections][:2] == ["reeval", "curves"]
    assert sections[0].title == "Re-evaluated best configurations" and len(sections[0].figures) == 1
    assert sum(len(s.figures) for s in sections) == 10


def test_a_best_trial_without_its_files_is_a_note(run_dir: Path) -> None:
    for name in ("val_psnr_per_frame.json", "frames.png"):
        (run_dir / "trials" / "5f3a1_00008" / name).unlink()
    by = {s.id: s for s in build_sections(load_experiments([run_dir]))}
    assert "quick: trial 5f3a1_00008 has no val_psnr_per_frame.json and is not drawn." in by["per-frame"].parts[-1]
    assert by["frames"].parts == ['<p class="note">quick: the best trial 5f3a1_00008 has no frames.png</p>']
