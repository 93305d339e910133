"""The page's small HTML pieces, every one escaped: `esc`, notes, warnings, tables.

Every string that came from a config, a CSV or a folder name (parameter
values, trial ids, experiment names) goes through `esc` before it reaches the
page or a Plotly figure: Plotly renders a subset of HTML in titles, labels and
hover text, and converts the escaped entities back for display.
"""
from __future__ import annotations

import html
from typing import Any

import pandas as pd


def esc(s: Any) -> str:
    return html.escape(str(s), quote=True)


def note(text: str) -> str:
    return f'<p class="note">{esc(text)}</p>'


def warning(text: str) -> str:
    return f'<p class="warning">&#9888; {esc(text)}</p>'


def table(df: pd.DataFrame, floats: str = "{:.2f}", css_class: str = "") -> str:
    """An HTML table with every cell escaped."""
    def cell(v: Any) -> str:
        if isinstance(v, float):
            return "" if v != v else esc(floats.format(v))
        return esc(v)
    head = "".join(f"<th>{esc(c)}</th>" for c in df.columns)
    body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in row) + "</tr>"
                   for row in df.itertuples(index=False))
    cls = f' class="{esc(css_class)}"' if css_class else ""
    return f'<table{cls}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'
