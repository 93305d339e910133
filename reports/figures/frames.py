"""Figure: the best trial's frames.png (ground truth over prediction), inlined as a data: URI.

Not a Plotly figure: its "plot" is an <img> in a <figure>, which reports in the
page whether the browser decoded it (data-loaded)."""
from __future__ import annotations

import base64
from pathlib import Path
from typing import NamedTuple

from reports.load import Experiment, read_png
from reports.markup import esc
from reports.select import best_row, search_only


class _FramesInfo(NamedTuple):
    experiment: str
    trial_id: str | None
    path: Path | None  # the best trial's frames.png, None when it has none
    note: str | None  # why there is no image, worded for the reader
    title: str  # the caption under the image
    png: bytes | None  # the image, read through reports/load.py


def plot_frames(exp: Experiment, with_name: bool = False) -> str | None:
    """The <figure> HTML, None when there is no image (the info's note says why)."""
    return _get_frames_plot(_get_frames_info(exp, with_name))


def _get_frames_info(exp: Experiment, with_name: bool = False) -> _FramesInfo:
    """`with_name`: caption the image with the experiment's name too (several on one page)."""
    best = best_row(search_only(exp.trials))
    if best is None:
        return _FramesInfo(exp.name, None, None, "no trial has a val_psnr yet", "", None)
    tid = str(best["trial_id"])
    path = exp.frames_png.get(tid)
    note = None if path else f"the best trial {tid} has no frames.png"
    title = f"{exp.name}: trial {tid}" if with_name else f"trial {tid}"
    return _FramesInfo(exp.name, tid, path, note, title, None if path is None else read_png(path))


def _get_frames_plot(info: _FramesInfo) -> str | None:
    if info.png is None:
        return None
    data = base64.b64encode(info.png).decode("ascii")
    return (f'<figure class="frames"><img src="data:image/png;base64,{data}" alt="{esc(info.title)}" data-frames="1" '
            "onload=\"this.dataset.loaded = this.naturalWidth > 0 ? '1' : '0'\" "
            "onerror=\"this.dataset.loaded = '0'\">"
            f"<figcaption>{esc(info.title)}</figcaption></figure>")
