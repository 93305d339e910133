"""Page assembly: the title, the summary (verdict sentences, edge warnings, summary
table, notes on the data) and the sections -> one self-contained HTML page that
works offline.

plotly.js is inlined once in <head>; each figure is a div plus a small script
(`fig.to_html(full_html=False, include_plotlyjs=False)`); images are data: URIs.
Every string from a config, CSV or folder name is escaped (markup.esc) before it
lands in the page.
"""
from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Iterable

import plotly.graph_objects as go
import plotly.offline

from reports.figures.axes import edge_warnings
from reports.load import ExperimentSet, load_experiments
from reports.markup import esc, warning
from reports.sections import Section, build_sections
from reports.summary import _get_summary_info, summary_table
from reports.verdict import verdict_sentences

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #222; margin: 0;
       background: #fafafa; line-height: 1.5; }
main { max-width: 1100px; margin: 0 auto; padding: 24px 28px 60px; background: #fff; }
h1 { font-size: 1.7em; margin: 0.2em 0 0.1em; }
h2 { font-size: 1.3em; margin-top: 2.2em; border-bottom: 1px solid #ddd; padding-bottom: 0.2em; }
h3 { font-size: 1.05em; margin: 1.4em 0 0.3em; }
.sub { color: #666; margin-top: 0; }
.caption { color: #555; margin: 0.2em 0 0.6em; font-size: 0.95em; }
.verdict { background: #f3f7fb; border-left: 4px solid #1f77b4; padding: 10px 16px; margin: 1em 0; }
.verdict p { margin: 0.4em 0; }
.note { color: #666; font-style: italic; }
.warning { background: #fff6e5; border-left: 4px solid #f0a020; padding: 6px 12px; }
table { border-collapse: collapse; margin: 0.6em 0 1em; font-size: 0.92em; }
th, td { border: 1px solid #ddd; padding: 4px 10px; text-align: left; vertical-align: top; }
th { background: #f4f4f4; font-weight: 600; }
tbody tr:nth-child(even) { background: #fbfbfb; }
table.summary td:first-child { white-space: nowrap; font-weight: 600; background: #f8f8f8; }
table.summary td { min-width: 12em; }
nav ol { columns: 2; padding-left: 1.2em; margin: 0.3em 0; }
.figure { margin: 0.4em 0 1em; }
figure.frames { margin: 0.6em 0 1.2em; }
figure.frames img { width: 100%; max-width: 960px; image-rendering: pixelated; border: 1px solid #ddd; }
figcaption { color: #555; font-size: 0.9em; }
code { background: #f2f2f2; padding: 0 3px; border-radius: 3px; }
"""


def write_report(run_dirs: Iterable[str | Path], out_path: str | Path,
                 references: dict[str, float] | None = None) -> Path:
    """Read the experiment folders and write one offline HTML report; returns its path.
    `references`: named val_psnr values drawn as lines on the PSNR figures."""
    es = load_experiments(list(run_dirs))
    es.references = dict(references or {})
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(es), encoding="utf-8")
    return out


def render(es: ExperimentSet) -> str:
    sections = build_sections(es)
    n_figures = sum(len(s.figures) for s in sections)
    names = ", ".join(es.names)
    body = [f"<h1>Search report: {esc(names)}</h1>",
            f'<p class="sub">{esc(_subtitle(es))}</p>',
            _nav(sections), _summary_section(es)]
    fig_no = 0
    for s in sections:
        body.append(f'<section id="{esc(s.id)}"><h2>{esc(s.title)}</h2><p class="caption">{esc(s.caption)}</p>')
        for part in s.parts:
            if isinstance(part, go.Figure):
                body.append(_figure_html(part, fig_no))
                fig_no += 1
            else:
                body.append(part)
        body.append("</section>")
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>Search report: {esc(names)}</title>"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<style>{CSS}</style>"
        f'<script type="text/javascript">{plotly.offline.get_plotlyjs()}</script>'
        f'</head><body data-figure-count="{n_figures}"><main>{"".join(body)}</main></body></html>\n')


def _figure_html(fig: go.Figure, i: int) -> str:
    h = fig.layout.height or 420
    div = fig.to_html(full_html=False, include_plotlyjs=False, div_id=f"fig-{i}", default_height=f"{h}px",
                      config={"displaylogo": False, "responsive": True})
    return f'<div class="figure">{div}</div>'


def _subtitle(es: ExperimentSet) -> str:
    parts = []
    for e in es.experiments:
        started = e.summary.get("started_at")
        parts.append(f"{e.name}: {e.run_dir}" + (f", started {started}" if started else ""))
    return "; ".join(parts) + f". Generated {dt.datetime.now().strftime('%Y-%m-%d %H:%M')}."


def _nav(sections: list[Section]) -> str:
    items = "".join(f'<li><a href="#{esc(s.id)}">{esc(s.title)}</a></li>' for s in sections)
    return f'<nav><ol><li><a href="#summary">Summary</a></li>{items}</ol></nav>'


# ---- the written summary ----------------------------------------------------------

def _summary_section(es: ExperimentSet) -> str:
    parts = ['<section id="summary"><h2>Summary</h2>']
    for e in es.experiments:
        if len(es.experiments) > 1:
            parts.append(f"<h3>{esc(e.name)}</h3>")
        parts.append('<div class="verdict">' + "".join(f"<p>{p}</p>" for p in verdict_sentences(e)) + "</div>")
    parts += [warning(w) for w in edge_warnings(es)]
    parts.append(summary_table([_get_summary_info(e) for e in es.experiments]))
    notes = [(e.name, n) for e in es.experiments for n in e.notes]
    if notes:
        parts.append("<h3>Notes on the data</h3><ul>" + "".join(
            f"<li>{esc(n if len(es.experiments) == 1 else f'{name}: {n}')}</li>" for name, n in notes) + "</ul>")
    parts.append("</section>")
    return "".join(parts)
