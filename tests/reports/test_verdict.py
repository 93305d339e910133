"""reports/verdict.py: the written verdict, from the search trials alone (old folders)
and from summary.json's comparison block (see conftest.py's tables)."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Callable

import pytest

from reports.load import load_experiment, load_experiments
from reports.verdict import _get_verdict_info, verdict_sentences

TID = "5f3a1_{:05d}".format
DECISIVE = {"None": (7, [17.0, 17.4])}
OVERLAP = {"Monotonic": (1, [21.5, 21.9, 20.6]), "None": (7, [17.0, 17.4])}


def _verdict(run: Path) -> str:
    return " ".join(verdict_sentences(load_experiment(run)))


# ---- from the search trials alone ---------------------------------------------------

def test_verdict(run_dir: Path) -> None:
    v = _get_verdict_info(load_experiments([run_dir]).experiments[0])
    assert [(r.strategy, r.best_val_psnr, r.best_trial_id, r.n_trials, r.n_completed) for r in v.ranking] == [
        ("Cyclical", 22.0, TID(8), 4, 2), ("Monotonic", 21.0, TID(1), 3, 2), ("None", 17.2, TID(7), 3, 1)]
    win = v.ranking[0]
    assert win.spread_range == pytest.approx(1.6) and win.spread_std == pytest.approx(math.sqrt(1.28))
    assert v.ranking[2].spread_std is None  # one completed trial: no spread
    assert v.gap_db == pytest.approx(1.0) and v.gap_exceeds_spread is False
    assert v.still_improving_db == pytest.approx(0.5)  # 21.5 -> 22.0 over its last epoch


def test_verdict_when_the_gap_exceeds_the_spread(make_run_dir) -> None:  # type: ignore[no-untyped-def]
    run = make_run_dir(psnr={0: [17.5, 19.0, 20.0, 21.8]})  # Cyclical's completed trials: 21.8 and 22.0
    v = _get_verdict_info(load_experiments([run]).experiments[0])
    assert v.ranking[0].spread_range == pytest.approx(0.2)
    assert v.gap_db == pytest.approx(1.0) and v.gap_exceeds_spread is True


def test_written_summary(run_dir: Path) -> None:
    text = _verdict(run_dir)
    assert ("10 trials: 5 completed, 2 stopped early by ASHA, 1 diverged, 1 failed, 1 still running or "
            "interrupted. They trained 28 of the 40 epochs") in text
    assert "<b>Cyclical</b> KL annealing reached the best val_psnr, <b>22.00 dB</b>" in text
    assert "1.00 dB above Monotonic (Monotonic 21.00 dB; None 17.20 dB)" in text
    assert "span 1.60 dB (std 1.13 dB)" in text and "gap is smaller than that spread" in text
    assert "scores 16.25 dB; the best trial is 5.75 dB above it" in text


# ---- from the comparison block ---------------------------------------------------------

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
