"""reports/figures/frames.py: the best trial's frames.png, inlined."""
from __future__ import annotations

from pathlib import Path

from reports.figures.frames import _get_frames_info, plot_frames
from reports.load import load_experiments

TID = "5f3a1_{:05d}".format


def test_frames_of_best_trial(run_dir: Path) -> None:
    exp = load_experiments([run_dir]).experiments[0]
    f = _get_frames_info(exp)
    assert (f.trial_id, f.path, f.note) == (TID(8), run_dir / "trials" / TID(8) / "frames.png", None)
    assert f.png == f.path.read_bytes() and f.title == f"trial {TID(8)}"  # type: ignore[union-attr]
    assert _get_frames_info(exp, with_name=True).title == f"quick: trial {TID(8)}"
    html = plot_frames(exp) or ""
    assert html.startswith('<figure class="frames"><img src="data:image/png;base64,')
    assert html.endswith(f"<figcaption>trial {TID(8)}</figcaption></figure>")


def test_a_best_trial_without_frames_png_is_a_note(run_dir: Path) -> None:
    (run_dir / "trials" / TID(8) / "frames.png").unlink()
    exp = load_experiments([run_dir]).experiments[0]
    assert _get_frames_info(exp).note == f"the best trial {TID(8)} has no frames.png"
    assert plot_frames(exp) is None
