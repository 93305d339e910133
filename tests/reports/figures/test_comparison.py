"""reports/figures/comparison.py: summary.json's comparison block (issue 11) as numbers and as a figure."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import pandas as pd
import pytest

from reports.figures._style import REFERENCE_COLOUR
from reports.figures.comparison import NO_EVIDENCE_COLOUR, _get_comparison_info, _get_comparison_plot, plot_comparison
from reports.load import load_experiment

TID = "5f3a1_{:05d}".format


def test_comparison_info_exact(reeval_run: Path) -> None:
    cmp = _get_comparison_info(load_experiment(reeval_run))
    assert cmp is not None
    # Only the re-runs count: the search run was chosen for its value (shown as original_value).
    assert [(r.stratum, r.position, r.trials, r.stopped, r.best_trial, r.n, r.enough_evidence, r.original_value)
            for r in cmp.strata] == [
        ("Cyclical", 0, 4, 1, TID(8), 3, True, 22.0), ("Monotonic", 1, 3, 0, TID(1), 3, True, 21.0),
        ("None", 2, 3, 1, TID(7), 0, False, 17.2)]
    cyc, mono, none = cmp.strata
    # Cyclical's re-runs 21.6, 22.3, 21.9: sd sqrt(0.37/3), t(0.975, 2) = 4.302653
    assert cyc.mean == pytest.approx(65.8 / 3) and cyc.ci_low == pytest.approx(65.8 / 3 - 4.302653 * (0.37 / 3 / 3) ** 0.5)
    assert mono.mean == pytest.approx(62.6 / 3) and none.mean is None and none.ci_low is None
    assert (none.failed_reruns, none.failed_text, cyc.failed_reruns, cyc.failed_text) == (
        1, "1 of 1 re-run diverged", 0, "")
    assert (cmp.winner, cmp.runner_up, cmp.verdict, cmp.decisive, cmp.seeds_to_separate) == (
        "Cyclical", "Monotonic", "not enough evidence", False, None)
    assert (cmp.metric, cmp.mode, cmp.confidence, cmp.baseline) == ("val_psnr", "max", 0.95, 16.25)
    p = cmp.points
    assert p[["stratum", "kind", "value", "trial_id", "seed"]].values.tolist() == [
        ["Cyclical", "original", 22.0, TID(8), 0], ["Cyclical", "re-run", 21.6, TID(10), 1],
        ["Cyclical", "re-run", 22.3, TID(11), 2], ["Cyclical", "re-run", 21.9, TID(12), 3],
        ["Monotonic", "original", 21.0, TID(1), 0], ["Monotonic", "re-run", 20.8, TID(13), 1],
        ["Monotonic", "re-run", 21.3, TID(14), 2], ["Monotonic", "re-run", 20.5, TID(15), 3],
        ["None", "original", 17.2, TID(7), 0]]
    # Four runs spread over 0.16 around 0.1 left of their tick; a lone run sits at the centre.
    assert p["x"].tolist() == pytest.approx([-0.18, -0.126667, -0.073333, -0.02, 0.82, 0.873333, 0.926667, 0.98, 1.9],
                                            abs=1e-6)


def test_an_old_folder_has_no_comparison(run_dir: Path) -> None:
    assert _get_comparison_info(load_experiment(run_dir)) is None
    assert plot_comparison(load_experiment(run_dir)) is None


def test_reevaluation_values_without_a_trial_are_still_shown(make_run_dir: Callable[..., Path]) -> None:
    run = make_run_dir(reeval=True)
    summary = json.loads((run / "summary.json").read_text())
    summary["comparison"]["strata"]["Cyclical"]["reeval_values"].append(23.5)  # no such run in trials.csv
    (run / "summary.json").write_text(json.dumps(summary))
    p = _get_comparison_info(load_experiment(run)).points  # type: ignore[union-attr]
    last = p[p["stratum"] == "Cyclical"].iloc[-1]
    assert last["value"] == 23.5 and pd.isna(last["trial_id"]) and pd.isna(last["seed"])


def test_comparison_figure(reeval_run: Path) -> None:
    cmp = _get_comparison_info(load_experiment(reeval_run))
    fig = _get_comparison_plot(cmp)  # type: ignore[arg-type]
    by = {t.name: t for t in fig.data}
    assert list(by) == ["search run (not counted)", "re-run (another seed)", "mean and 95% interval"]
    assert list(by["search run (not counted)"].y) == [22.0, 21.0, 17.2]
    assert by["search run (not counted)"].marker.color[2] == NO_EVIDENCE_COLOUR  # None: greyed
    assert len(by["re-run (another seed)"].y) == 6
    mean = by["mean and 95% interval"]
    means = [65.8 / 3, 62.6 / 3]  # of the re-runs alone
    assert list(mean.x) == [0.15, 1.15] and list(mean.y) == pytest.approx(means)
    assert list(mean.error_y.array) == pytest.approx([cmp.strata[0].ci_high - means[0], cmp.strata[1].ci_high - means[1]])
    assert [a.text for a in fig.layout.annotations if "evidence" in a.text] == [
        "not enough evidence<br>(0 full-budget re-runs)"]
    assert fig.layout.shapes[0].y0 == 16.25  # baseline
    assert list(fig.layout.xaxis.ticktext) == [
        "<b>Cyclical</b>", "Monotonic", "None<br><span style='font-size:11px;color:#b22'>1 of 1 re-run diverged</span>"]


def test_comparison_figure_with_a_stratum_without_runs(make_run_dir: Callable[..., Path]) -> None:
    run = make_run_dir(reeval=True)
    summary = json.loads((run / "summary.json").read_text())
    summary["comparison"]["strata"]["Other"] = {"trials": 0, "n": 0, "reeval_values": [],
                                                "original_value": None, "mean": None, "enough_evidence": False}
    (run / "summary.json").write_text(json.dumps(summary))
    fig = plot_comparison(load_experiment(run))
    note = [a for a in fig.layout.annotations if "0 full-budget re-runs" in a.text]  # type: ignore[union-attr]
    assert [a.x for a in note] == [2, 3] and note[1].y == 16.25  # None (its re-run diverged) and Other
    assert note[1].x == 3 and note[0].y == 16.25  # over the baseline


def test_a_reference_is_a_named_line(reeval_run: Path) -> None:
    fig = plot_comparison(load_experiment(reeval_run), {"my template run": 21.4})
    lines = [s for s in fig.layout.shapes if s.line.color == REFERENCE_COLOUR]  # type: ignore[union-attr]
    assert [(s.y0, s.y1) for s in lines] == [(21.4, 21.4)]
