"""Folders with strata and re-evaluation runs (issue 11): phase/stratum/seed columns
and summary.json's comparison block (see conftest.py's second table)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import pandas as pd
import pytest

from reports import collect as c
from reports import draw as d
from reports.figures import build_sections
from reports.html import render, verdict_sentences
from reports.load import load_experiment, load_experiments

TID = "5f3a1_{:05d}".format
DECISIVE = {"None": (7, [17.0, 17.4])}
OVERLAP = {"Monotonic": (1, [21.5, 21.9, 20.6]), "None": (7, [17.0, 17.4])}


@pytest.fixture(scope="module")
def reeval_run(tmp_path_factory: pytest.TempPathFactory, make_run_at: Callable[..., Path]) -> Path:
    return make_run_at(tmp_path_factory.mktemp("reeval"), reeval=True)


def _verdict(run: Path) -> str:
    return " ".join(verdict_sentences(load_experiment(run)))


# ---- load -------------------------------------------------------------------------

def test_phase_stratum_seed_columns_load(reeval_run: Path) -> None:
    e = load_experiment(reeval_run)
    assert e.params == ["kl_anneal_type", "kl_anneal_cycle", "kl_anneal_ratio", "tfr_d_step", "optimizer", "lr"]
    assert len(e.epochs) == 28 + 6 * 4 + 2
    t = e.trials.set_index("trial_id")
    assert t["phase"].value_counts().to_dict() == {"search": 10, "reeval": 7}
    assert t.loc[[TID(10), TID(13), TID(16)], ["stratum", "seed", "status"]].values.tolist() == [
        ["Cyclical", 1, "completed"], ["Monotonic", 1, "completed"], ["None", 1, "diverged"]]
    assert t["seed"].dtype == "Int64" and set(t.loc[[TID(i) for i in range(10)], "seed"]) == {0}
    # lr is still both a parameter (first column) and a metric (second).
    r = e.epochs[e.epochs["trial_id"] == TID(11)]
    assert r["lr"].tolist() == [1e-3] * 4 and r["lr_at_epoch"].tolist() == pytest.approx([1e-3, 1e-4, 1e-4, 1e-4])
    assert e.comparison is not None and e.comparison["winner"] == "Cyclical"
    assert not [n for n in e.notes if "phase" in n or "comparison" in n]


def test_old_folder_gets_search_phase_and_computed_stratum(run_dir: Path) -> None:
    e = load_experiment(run_dir)
    assert set(e.epochs["phase"]) == {"search"} and e.epochs["seed"].isna().all()
    assert (e.epochs["stratum"] == e.epochs["kl_anneal_type"]).all()
    assert e.comparison is None


def test_old_folder_with_two_scientific_parameters(run_dir: Path) -> None:
    space = (run_dir / "space.yaml").read_text().replace(
        "optimizer: {values: [Adam, AdamW, Adamax, ASGD]}",
        "optimizer: {values: [Adam, AdamW, Adamax, ASGD], role: scientific}")
    (run_dir / "space.yaml").write_text(space)
    t = load_experiment(run_dir).trials.set_index("trial_id")
    assert t.loc[TID(0), "stratum"] == "kl_anneal_type=Cyclical, optimizer=Adamax"
    assert c.strategy(t).loc[TID(7)] == "kl_anneal_type=None, optimizer=AdamW"


def test_old_folder_without_space_yaml_falls_back_to_kl(run_dir: Path) -> None:
    (run_dir / "space.yaml").unlink()
    t = load_experiment(run_dir).trials
    assert t["stratum"].tolist() == [s for s in ("Cyclical", "Monotonic", "None", "Cyclical", "Monotonic",
                                                  "None", "Cyclical", "None", "Cyclical", "Monotonic")]


def test_unknown_phase_and_bad_comparison_become_notes(make_run_dir: Callable[..., Path]) -> None:
    run = make_run_dir(reeval=True)
    text = (run / "trials.csv").read_text().replace(",reeval,", ",later,", 1)
    (run / "trials.csv").write_text(text)
    summary = json.loads((run / "summary.json").read_text())
    summary["comparison"] = ["not", "a", "block"]
    (run / "summary.json").write_text(json.dumps(summary))
    e = load_experiment(run)
    assert any("unknown phase value(s) ['later']" in n for n in e.notes)
    assert any("comparison block is not an object" in n for n in e.notes)
    assert "KL annealing reached the best val_psnr" in " ".join(verdict_sentences(e))  # today's verdict


# ---- collect ------------------------------------------------------------------------

def test_collect_comparison_exact(reeval_run: Path) -> None:
    cmp = c.collect_comparison(load_experiment(reeval_run))
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


def test_collect_comparison_of_an_old_folder_is_none(run_dir: Path) -> None:
    assert c.collect_comparison(load_experiment(run_dir)) is None


def test_reevaluation_values_without_a_trial_are_still_shown(make_run_dir: Callable[..., Path]) -> None:
    run = make_run_dir(reeval=True)
    summary = json.loads((run / "summary.json").read_text())
    summary["comparison"]["strata"]["Cyclical"]["reeval_values"].append(23.5)  # no such run in trials.csv
    (run / "summary.json").write_text(json.dumps(summary))
    p = c.collect_comparison(load_experiment(run)).points  # type: ignore[union-attr]
    last = p[p["stratum"] == "Cyclical"].iloc[-1]
    assert last["value"] == 23.5 and pd.isna(last["trial_id"]) and pd.isna(last["seed"])


def test_search_figures_leave_the_reruns_out(reeval_run: Path, run_dir: Path) -> None:
    new, old = load_experiments([reeval_run]), load_experiments([run_dir])
    assert c.collect_best_so_far(new)["cum_epochs"].tolist() == c.collect_best_so_far(old)["cum_epochs"].tolist()
    assert c.collect_isolation(new, "kl_anneal_type")["n_trials"].tolist() == [4, 3, 3]
    assert len(c.collect_axes(new).points) == len(c.collect_axes(old).points)
    assert c.collect_parcoords(new.experiments[0]).color == c.collect_parcoords(old.experiments[0]).color
    assert c.collect_best_per_strategy(new)["trial_id"].tolist() == [TID(8), TID(1), TID(7)]
    assert c.collect_frames(new.experiments[0]).trial_id == TID(8)
    s = c.collect_summary(new.experiments[0])
    assert (s.n_trials, s.epochs_spent, s.epochs_budget) == (10, 28, 40)
    assert s.counts == {"completed": 5, "stopped": 2, "diverged": 1, "failed": 1, "running": 1}
    assert (s.n_reeval, s.reeval_epochs) == (7, 26)
    assert s.reeval_counts == {"completed": 6, "stopped": 0, "diverged": 1, "failed": 0, "running": 0}
    assert s.compute_time_s == 2.0 * (28 + 26)  # the cost counts both phases


def test_curves_keep_reruns_marked(reeval_run: Path) -> None:
    es = load_experiments([reeval_run])
    cur = c.collect_curves(es)
    assert cur.groupby("phase")["trial_id"].nunique().to_dict() == {"reeval": 7, "search": 10}
    fig = d.draw_curves(cur, {"quick": 16.25})
    dotted = [t for t in fig.data if t.mode == "lines+markers" and t.line.dash == d.REEVAL_DASH]
    assert len(dotted) == 7 and {t.name for t in dotted} == {"Cyclical · re-runs", "Monotonic · re-runs",
                                                              "None · re-runs"}
    assert "seed 2" in next(t for t in dotted if "5f3a1_00011" in t.hovertemplate).hovertemplate


# ---- draw and sections ------------------------------------------------------------------

def test_comparison_figure(reeval_run: Path) -> None:
    cmp = c.collect_comparison(load_experiment(reeval_run))
    fig = d.draw_comparison(cmp)  # type: ignore[arg-type]
    by = {t.name: t for t in fig.data}
    assert list(by) == ["search run (not counted)", "re-run (another seed)", "mean and 95% interval"]
    assert list(by["search run (not counted)"].y) == [22.0, 21.0, 17.2]
    assert by["search run (not counted)"].marker.color[2] == d.NO_EVIDENCE_COLOUR  # None: greyed
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
    fig = d.draw_comparison(c.collect_comparison(load_experiment(run)))  # type: ignore[arg-type]
    note = [a for a in fig.layout.annotations if "0 full-budget re-runs" in a.text]
    assert [a.x for a in note] == [2, 3] and note[1].y == 16.25  # None (its re-run diverged) and Other
    assert note[1].x == 3 and note[0].y == 16.25  # over the baseline


def test_sections_start_with_the_reevaluation(reeval_run: Path) -> None:
    sections = build_sections(load_experiments([reeval_run]))
    assert [s.id for s in sections][:2] == ["reeval", "curves"]
    assert sections[0].title == "Re-evaluated best configurations" and len(sections[0].figures) == 1
    assert sum(len(s.figures) for s in sections) == 10


def test_page_has_the_summary_rows(reeval_run: Path) -> None:
    page = render(load_experiments([reeval_run]))
    assert "<td>search trials</td><td>10</td>" in page
    assert "<td>re-evaluation runs</td><td>7 (6 completed, 1 diverged; 26 epochs)</td>" in page
    assert page.index('id="summary"') < page.index('id="reeval"') < page.index('id="curves"')


# ---- the written verdict -----------------------------------------------------------------

def test_verdict_not_enough_evidence(reeval_run: Path) -> None:
    text = _verdict(reeval_run)
    # Cyclical's re-runs 21.6, 22.3, 21.9: mean 21.93, half-width 4.3027 x 0.3512 / sqrt(3) = 0.87
    assert ("<b>Cyclical</b> has the best mean val_psnr over its best configuration's full-budget re-runs: "
            "<b>21.93 ± 0.87 dB</b> (95% interval 21.06–22.81 dB, n = 3 re-runs; the search run that chose it "
            "(22.00 dB) is not counted; best trial 5f3a1_00008).") in text
    assert "Runner-up: Monotonic, 20.87 ± 1.00 dB (95% interval 19.86–21.87 dB, n = 3)." in text
    # None's one re-run diverged: it is named, and it keeps any strategy from being called the winner
    assert ("Not enough evidence: None has fewer than 2 full-budget re-runs (1 of 1 re-run of None diverged), "
            "so no strategy can be called the winner") in text
    assert "Of the others, Cyclical beats Monotonic by +1.07 dB [" in text
    assert "Not ranked: None (0 full-budget re-runs; 1 of 1 re-run diverged)" in text
    assert "no verdict against" in text
    assert text.startswith("Not enough evidence: None has fewer than 2")  # the verdict comes first
    assert "10 search trials: 5 completed, 2 stopped early by ASHA" in text
    assert "7 re-evaluation runs (6 completed, 1 diverged; 26 epochs)" in text
    assert "scores 16.25 dB; Cyclical&#x27;s mean is 5.68 dB above it." in text
    assert "still improving" in text
    assert "None 17.20" not in text  # never ranked, never a loser


def test_verdict_decisive(make_run_dir: Callable[..., Path]) -> None:
    text = _verdict(make_run_dir(reeval=DECISIVE))
    assert ("Decisive: Cyclical wins; it beats Monotonic by +1.07 dB [+0.19, +1.94]; None by +4.73 dB "
            "[+2.97, +6.50] (Holm-corrected 95% Welch intervals over 2 comparisons).") in text
    assert "then None 17.20 ± 2.54 dB (n = 2)" in text
    assert "Not enough evidence" not in text and "Not ranked" not in text


def test_verdict_overlapping_intervals(make_run_dir: Callable[..., Path]) -> None:
    text = _verdict(make_run_dir(reeval=OVERLAP))
    assert "Runner-up: Monotonic, 21.33 ± 1.65 dB (95% interval 19.68–22.99 dB, n = 3)" in text
    assert ("Not enough evidence: Cyclical vs Monotonic: +0.60 dB, corrected interval [-0.77, +1.97] dB, which "
            "neither excludes 0 nor lies within ±0.50 dB. About 12 re-runs per strategy (from 6 to 48 over the "
            "spread&#x27;s 90% interval) would give 80% power to separate Cyclical and Monotonic") in text


def test_verdict_when_no_stratum_has_enough_evidence(make_run_dir: Callable[..., Path]) -> None:
    nan = float("nan")
    text = _verdict(make_run_dir(reeval={k: (i, [nan]) for k, i in (("Cyclical", 8), ("Monotonic", 1), ("None", 7))}))
    assert "No verdict yet: no strategy has enough evidence" in text
    assert "(re-runs so far: Cyclical 0, Monotonic 0, None 0)" in text
    assert "In the search alone (one seed per configuration): <b>Cyclical</b> KL annealing reached" in text


def test_escaped_stratum_names(make_run_dir: Callable[..., Path]) -> None:
    run = make_run_dir(reeval=True)
    summary = json.loads((run / "summary.json").read_text())
    cmp: dict[str, Any] = summary["comparison"]
    evil = "<script>alert(1)</script>"
    cmp["strata"] = {(evil if k == "Monotonic" else k): v for k, v in cmp["strata"].items()}
    cmp["order"] = [evil if k == "Monotonic" else k for k in cmp["order"]]
    cmp["runner_up"] = evil
    (run / "summary.json").write_text(json.dumps(summary))
    page = render(load_experiments([run]))
    assert "<script>alert" not in page and "Runner-up: &lt;script&gt;alert(1)&lt;/script&gt;" in page
