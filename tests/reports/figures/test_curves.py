"""reports/figures/curves.py: val_psnr over epochs, trials that ended early, re-runs dotted."""
from __future__ import annotations

from pathlib import Path

from reports.figures._style import STRATEGY_COLOURS
from reports.figures.curves import REEVAL_DASH, _get_curves_info, plot_curves
from reports.load import ExperimentSet, load_experiments

TID = "5f3a1_{:05d}".format


def test_curves_mark_trials_that_ended_early(run_dir: Path) -> None:
    es: ExperimentSet = load_experiments([run_dir])
    cur = _get_curves_info(es).points
    assert len(cur) == 28
    last = cur[cur["last"]].set_index("trial_id")
    assert last["ended_early"].to_dict() == {
        TID(0): False, TID(1): False, TID(2): True, TID(3): True, TID(4): True, TID(5): True,
        TID(6): False, TID(7): False, TID(8): False, TID(9): False}
    # The diverged trial's marker sits on its last finite value.
    assert last.loc[TID(4), ["epoch", "end_psnr"]].tolist() == [2, 16.5]
    assert last.loc[TID(3), ["epoch", "end_psnr", "strategy"]].tolist() == [2, 17.5, "Cyclical"]


def test_curves_one_line_per_trial_and_end_markers(run_dir: Path) -> None:
    fig = plot_curves(load_experiments([run_dir]))
    lines = [t for t in fig.data if t.mode == "lines+markers"]
    ends = {t.name: list(t.x) for t in fig.data if t.mode == "markers"}
    assert len(lines) == 10
    assert {t.line.color for t in lines} == {STRATEGY_COLOURS[k] for k in ("Cyclical", "Monotonic", "None")}
    assert ends == {"diverged here": [2], "failed here": [1], "stopped here": [1, 2]}
    assert fig.layout.shapes[0].y0 == 16.25  # baseline line


def test_curves_keep_reruns_marked(reeval_run: Path) -> None:
    es = load_experiments([reeval_run])
    cur = _get_curves_info(es).points
    assert cur.groupby("phase")["trial_id"].nunique().to_dict() == {"reeval": 7, "search": 10}
    fig = plot_curves(es)
    dotted = [t for t in fig.data if t.mode == "lines+markers" and t.line.dash == REEVAL_DASH]
    assert len(dotted) == 7 and {t.name for t in dotted} == {"Cyclical · re-runs", "Monotonic · re-runs",
                                                              "None · re-runs"}
    assert "seed 2" in next(t for t in dotted if "5f3a1_00011" in t.hovertemplate).hovertemplate


def test_a_reference_is_a_named_line(run_dir: Path) -> None:
    from reports.figures._style import REFERENCE_COLOUR

    es = load_experiments([run_dir])
    es.references = {"my template run": 21.4}
    lines = [s for s in plot_curves(es).layout.shapes if s.line.color == REFERENCE_COLOUR]
    assert [(s.y0, s.y1) for s in lines] == [(21.4, 21.4)]
