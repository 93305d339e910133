"""The look every figure shares: colours, line dashes, status symbols, the layout,
and the baseline and reference lines drawn on the PSNR figures."""
from __future__ import annotations

import math
from typing import Any, Iterable

import pandas as pd
import plotly.graph_objects as go

from reports.markup import esc

STRATEGY_COLOURS = {"Cyclical": "#1f77b4", "Monotonic": "#ff7f0e", "None": "#2ca02c"}
OTHER_COLOURS = ["#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf", "#d62728"]
DASHES = ["solid", "dash", "dot", "dashdot", "longdash"]
STATUS_SYMBOLS = {"completed": "circle", "stopped": "x", "diverged": "triangle-down",
                  "failed": "square", "running": "diamond-open"}
BASELINE_COLOUR = "#888888"
REFERENCE_COLOUR = "#8c564b"
HEIGHT = 420


def colour(strategy: str, known: Iterable[str] = ()) -> str:
    if strategy in STRATEGY_COLOURS:
        return STRATEGY_COLOURS[strategy]
    others = sorted(set(known) - set(STRATEGY_COLOURS)) or [strategy]
    i = others.index(strategy) if strategy in others else hash(strategy)
    return OTHER_COLOURS[i % len(OTHER_COLOURS)]


def dash(experiments: list[str], exp: str) -> str:
    """One line dash per experiment, so several experiments on one figure stay apart."""
    return DASHES[experiments.index(exp) % len(DASHES)] if exp in experiments else "solid"


def layout(fig: go.Figure, height: int = HEIGHT, **kw: Any) -> go.Figure:
    kw.setdefault("margin", dict(l=60, r=20, t=30, b=50))
    fig.update_layout(template="plotly_white", height=height, font=dict(size=12), **kw)
    return fig


def epoch_ticks(fig: go.Figure, epochs: pd.Series) -> None:
    """Whole-number epoch (or frame) ticks: Plotly would print 1.5, 2.5 on a short run."""
    if len(epochs) and epochs.max() <= 15:
        fig.update_xaxes(dtick=1)


def baseline_lines(fig: go.Figure, baselines: dict[str, float | None]) -> None:
    """Dashed grey line(s): the PSNR of repeating the last given frame (lab4-2024 gives one frame,
    so it is the copy-first-frame baseline; bair-2023 gives n_past), what doing nothing scores."""
    for exp, b in baselines.items():
        if b is not None and math.isfinite(b):
            text = "copy-last-given-frame baseline" + (f" ({esc(exp)})" if len(baselines) > 1 else "")
            fig.add_hline(y=b, line=dict(color=BASELINE_COLOUR, dash="dash", width=1),
                          annotation_text=f"{text}: {b:.2f} dB", annotation_position="bottom right",
                          annotation_font_color=BASELINE_COLOUR)


def reference_lines(fig: go.Figure, references: dict[str, float] | None) -> None:
    """Solid brown line(s): a named val_psnr to compare with (e.g. a hand-run template model)."""
    for name, value in (references or {}).items():
        fig.add_hline(y=value, line=dict(color=REFERENCE_COLOUR, width=1.5),
                      annotation_text=f"{esc(name)}: {value:.2f} dB (reference)", annotation_position="top left",
                      annotation_font_color=REFERENCE_COLOUR)
