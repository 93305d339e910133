"""search.comparison on constructed runs: no Ray, no training.

The hand-computed case (mode max, 95%):
  Cyclical  best c1 (22.0) re-run 21.6 22.3 21.9 -> mean 21.95, std sqrt(0.25/3), half 3.1824*std/2
  Monotonic best m1 (21.0) re-run 20.8 21.3 20.5 -> mean 20.90, std sqrt(0.34/3)
  None      best n1 (17.2) re-run 17.0 17.4      -> mean 17.20, std 0.2,           half 4.3027*0.2/sqrt(3)
Cyclical's interval [21.49, 22.41] lies above Monotonic's [20.36, 21.44]: decisive.
"""
from __future__ import annotations

import json
import math
from typing import Any

import pytest

from search.comparison import RunOutcome, build_comparison, pick_best, seeds_to_separate, t_critical

NAN = float("nan")
STRATA = ["Cyclical", "Monotonic", "None"]


def run(tid: str, stratum: str, status: str = "completed", final: float | None = None,
        last: float | None = None, *, phase: str = "search", seed: int | None = 0,
        source: str | None = None, **params: Any) -> RunOutcome:
    if last is None:
        last = final
    return RunOutcome(trial_id=tid, phase=phase, stratum=stratum, status=status, final_value=final,
                      last_value=last, params={"kl_anneal_type": stratum, **params}, seed=seed,
                      source_trial=source)


def reruns(source: str, stratum: str, values: list[float], status: str = "completed") -> list[RunOutcome]:
    return [run(f"{source}-r{k}", stratum, status, v, phase="reeval", seed=k, source=source)
            for k, v in enumerate(values, start=1)]


def study(monotonic: list[float] = [20.8, 21.3, 20.5], none: list[float] = [17.0, 17.4]) -> list[RunOutcome]:
    return [
        run("c1", "Cyclical", final=22.0, lr=1e-3),
        run("c2", "Cyclical", "stopped", last=23.0, lr=5e-3),  # higher, but from fewer epochs
        run("c3", "Cyclical", final=20.4, lr=3e-4),
        run("m1", "Monotonic", final=21.0, lr=2e-3),
        run("m2", "Monotonic", "diverged", last=25.0),
        run("n1", "None", final=17.2, lr=1e-3),
        run("n2", "None", "failed", last=None),
        *reruns("c1", "Cyclical", [21.6, 22.3, 21.9]),
        *reruns("m1", "Monotonic", monotonic),
        *reruns("n1", "None", none),
    ]


def compare(runs: list[RunOutcome], mode: str = "max", strata: list[str] = STRATA) -> dict[str, Any]:
    out = build_comparison(runs, strata=strata, metric="val_psnr", mode=mode)
    json.dumps(out, allow_nan=False)  # JSON-ready: no NaN, no numpy, no objects
    return out


# ---- t quantile -------------------------------------------------------------------

@pytest.mark.parametrize("df, t", [(1, 12.706), (2, 4.303), (3, 3.182), (4, 2.776), (5, 2.571), (10, 2.228),
                                   (20, 2.086), (30, 2.042), (60, 2.000), (120, 1.980), (10**6, 1.960)])
def test_t_critical_95(df: int, t: float) -> None:
    assert t_critical(df) == pytest.approx(t, abs=5e-4)


@pytest.mark.parametrize("df, confidence, t", [(1, 0.99, 63.657), (5, 0.99, 4.032), (10, 0.90, 1.812),
                                               (3, 0.80, 1.638)])
def test_t_critical_other_levels(df: int, confidence: float, t: float) -> None:
    assert t_critical(df, confidence) == pytest.approx(t, abs=5e-4)


def test_t_critical_decreases_towards_the_normal_quantile() -> None:
    ts = [t_critical(df) for df in range(1, 200)]
    assert all(a > b for a, b in zip(ts, ts[1:])) and ts[-1] > 1.95996


@pytest.mark.parametrize("df", [0, -1, 2.5, True])
def test_t_critical_rejects_bad_df(df: Any) -> None:
    with pytest.raises(ValueError, match="`df` is"):
        t_critical(df)


@pytest.mark.parametrize("confidence", [0.0, 1.0, 95])
def test_t_critical_rejects_bad_confidence(confidence: float) -> None:
    with pytest.raises(ValueError, match="`confidence` is"):
        t_critical(3, confidence)


# ---- pick_best ----------------------------------------------------------------------

def test_full_budget_run_beats_a_higher_stopped_one() -> None:
    runs = [run("a", "S", "stopped", last=30.0), run("b", "S", final=20.0), run("c", "S", "running", last=29.0)]
    assert pick_best(runs, "max").trial_id == "b"
    assert pick_best([runs[0], runs[2]], "max").trial_id == "a"  # nothing finished: by last value


def test_failed_diverged_and_reeval_runs_never_win() -> None:
    runs = [run("f", "S", "failed", last=40.0), run("d", "S", "diverged", final=40.0),
            run("r", "S", final=40.0, phase="reeval", source="x"), run("ok", "S", "stopped", last=1.0)]
    assert pick_best(runs, "max").trial_id == "ok"
    assert pick_best(runs[:3], "max") is None


@pytest.mark.parametrize("mode, best", [("max", "hi"), ("min", "lo")])
def test_pick_best_follows_the_mode(mode: str, best: str) -> None:
    runs = [run("mid", "S", final=2.0), run("hi", "S", final=3.0), run("lo", "S", final=1.0)]
    assert pick_best(runs, mode).trial_id == best


def test_pick_best_ties_go_to_the_first_and_nan_is_no_value() -> None:
    runs = [run("nan", "S", final=NAN, last=NAN), run("a", "S", final=5.0), run("b", "S", final=5.0),
            run("inf", "S", final=math.inf)]
    assert pick_best(runs, "max").trial_id == "a"
    assert pick_best([runs[0]], "max") is None and pick_best([], "min") is None


def test_pick_best_rejects_an_unknown_mode() -> None:
    with pytest.raises(ValueError, match="`mode` is 'maximize'"):
        pick_best([], "maximize")


# ---- build_comparison ----------------------------------------------------------------

def test_decisive_comparison_hand_computed() -> None:
    out = compare(study())
    cyc, mono, none = (out["strata"][s] for s in STRATA)
    assert (cyc["trials"], cyc["stopped"], cyc["best_trial"], cyc["best_config"]) == (
        3, 1, "c1", {"kl_anneal_type": "Cyclical", "lr": 1e-3})
    assert cyc["original_value"] == 22.0 and cyc["reeval_values"] == [21.6, 22.3, 21.9]
    assert cyc["values"] == [22.0, 21.6, 22.3, 21.9] and cyc["n"] == 4 and cyc["enough_evidence"] is True
    std = math.sqrt(0.25 / 3)
    half = 3.182446 * std / 2
    assert cyc["mean"] == pytest.approx(21.95) and cyc["std"] == pytest.approx(std)
    assert (cyc["ci_low"], cyc["ci_high"]) == (pytest.approx(21.95 - half, abs=1e-5),
                                               pytest.approx(21.95 + half, abs=1e-5))
    assert (mono["trials"], mono["stopped"], mono["best_trial"], mono["mean"]) == (2, 0, "m1", pytest.approx(20.9))
    assert mono["ci_high"] == pytest.approx(20.9 + 3.182446 * math.sqrt(0.34 / 3) / 2, abs=1e-5)
    assert none["std"] == pytest.approx(0.2) and none["ci_low"] == pytest.approx(17.2 - 4.302653 * 0.2 / math.sqrt(3))
    assert out["order"] == ["Cyclical", "Monotonic", "None"]
    assert (out["winner"], out["runner_up"], out["decisive"]) == ("Cyclical", "Monotonic", True)
    assert out["reason"].startswith("Decisive: Cyclical's interval [21.49, 22.41] lies entirely above")
    # n=4: 3.182 * (0.2887 + 0.3367) / 2 = 0.995 < 1.05; n=3: 4.303 * 0.6253 / 1.732 = 1.55: not yet.
    assert out["seeds_to_separate"] == 4
    assert (out["metric"], out["mode"], out["confidence"]) == ("val_psnr", "max", 0.95)
    assert "Student t interval of the mean" in out["interval"]


def test_overlapping_intervals_are_not_decisive_and_say_how_many_seeds() -> None:
    out = compare(study(monotonic=[21.5, 21.9, 20.6]))  # Monotonic: mean 21.25, std sqrt(0.97/3)
    mono = out["strata"]["Monotonic"]
    assert mono["mean"] == pytest.approx(21.25) and mono["std"] == pytest.approx(math.sqrt(0.97 / 3))
    assert (out["winner"], out["runner_up"], out["decisive"]) == ("Cyclical", "Monotonic", False)
    assert out["reason"] == ("Not decisive: Cyclical's interval [21.49, 22.41] overlaps Monotonic's "
                             "[20.35, 22.15].")
    # Hand computed: gap 0.7, s1 + s2 = 0.85730; n=9: t(8) 2.3060 / 3 * 0.8573 = 0.659 < 0.7,
    # n=8: t(7) 2.3646 / sqrt(8) * 0.8573 = 0.717: still overlapping.
    assert out["seeds_to_separate"] == 9


def test_a_stratum_with_one_run_is_not_enough_evidence_never_a_loser() -> None:
    runs = [r for r in study(none=[]) if r.trial_id != "n2"] + reruns("n1", "None", [NAN], "diverged")
    out = compare(runs, strata=[*STRATA, "Other"])
    none, other = out["strata"]["None"], out["strata"]["Other"]
    assert (none["values"], none["n"], none["enough_evidence"]) == ([17.2], 1, False)
    assert none["mean"] == 17.2 and none["std"] is None and none["ci_low"] is None and none["ci_high"] is None
    assert other == {"trials": 0, "stopped": 0, "best_trial": None, "best_config": None, "original_value": None,
                     "reeval_values": [], "values": [], "n": 0, "mean": None, "std": None, "ci_low": None,
                     "ci_high": None, "enough_evidence": False}
    assert out["order"] == ["Cyclical", "Monotonic", "None", "Other"]
    assert (out["winner"], out["runner_up"], out["decisive"]) == ("Cyclical", "Monotonic", False)
    assert out["reason"].startswith("Not decisive: not enough evidence for None, Other "
                                    "(fewer than 2 full-budget runs each)")
    assert out["seeds_to_separate"] == 4  # still estimated for the top two with intervals


def test_min_mode_ranks_the_lowest_mean_first() -> None:
    runs = [run("a", "A", final=1.0), *reruns("a", "A", [1.1, 0.9]),
            run("b", "B", final=2.0), *reruns("b", "B", [2.2, 1.8]),
            run("c", "C", final=1.5), *reruns("c", "C", [1.3, 1.7])]
    out = compare(runs, mode="min", strata=["C", "B", "A"])
    assert out["order"] == ["A", "C", "B"] and (out["winner"], out["runner_up"]) == ("A", "C")
    # A: mean 1, std 0.1, half 4.3027 * 0.1 / sqrt(3) = 0.248 -> [0.752, 1.248]; C: [1.003, 1.997]: overlap
    assert out["decisive"] is False and "overlaps C's" in out["reason"]
    tight = compare(runs[:6], mode="min", strata=["A", "B"])  # A [0.75, 1.25], B [1.50, 2.50]
    assert tight["decisive"] is True and "lies entirely below" in tight["reason"]


def test_reeval_source_names_the_best_trial() -> None:
    runs = [run("c1", "Cyclical", final=22.0), run("c3", "Cyclical", final=20.4, lr=3e-4),
            *reruns("c3", "Cyclical", [20.0, 20.8])]
    s = compare(runs, strata=["Cyclical"])["strata"]["Cyclical"]
    assert (s["best_trial"], s["original_value"], s["values"]) == ("c3", 20.4, [20.4, 20.0, 20.8])
    assert s["best_config"] == {"kl_anneal_type": "Cyclical", "lr": 3e-4}


def test_failed_and_unfinished_reruns_do_not_count() -> None:
    runs = [run("c1", "S", final=22.0), *reruns("c1", "S", [21.0]),
            run("c1-r2", "S", "failed", None, 3.0, phase="reeval", source="c1"),
            run("c1-r3", "S", "running", None, 19.0, phase="reeval", source="c1")]
    s = compare(runs, strata=["S"])["strata"]["S"]
    assert s["reeval_values"] == [21.0] and s["n"] == 2


def test_best_search_run_stopped_has_no_original_value() -> None:
    runs = [run("s", "S", "stopped", last=19.0), *reruns("s", "S", [21.0, 21.4])]
    s = compare(runs, strata=["S"])["strata"]["S"]
    assert (s["best_trial"], s["original_value"], s["values"]) == ("s", None, [21.0, 21.4])


def test_one_stratum_is_never_decisive() -> None:
    out = compare(study(), strata=["Cyclical"])  # the others are appended after the listed one
    assert list(out["strata"]) == STRATA
    solo = compare([r for r in study() if r.stratum == "Cyclical"], strata=["Cyclical"])
    assert (solo["winner"], solo["runner_up"], solo["decisive"], solo["seeds_to_separate"]) == (
        "Cyclical", None, False, None)
    assert "only one stratum" in solo["reason"]


@pytest.mark.parametrize("runs", [[], [run("a", "A", "failed", NAN, NAN), run("b", "B", "running", None, NAN),
                                       run("r", "A", final=NAN, phase="reeval", source="a")]])
def test_empty_and_all_nan_inputs(runs: list[RunOutcome]) -> None:
    out = compare(runs, strata=["A", "B"])
    assert (out["winner"], out["runner_up"], out["decisive"], out["seeds_to_separate"]) == (None, None, False, None)
    assert all(s["n"] == 0 and s["mean"] is None for s in out["strata"].values())
    assert out["order"] == ["A", "B"] and "No stratum has the 2 full-budget runs" in out["reason"]
    assert compare([], strata=[])["reason"] == "There is no stratum to compare."


def test_seeds_to_separate_edges() -> None:
    assert seeds_to_separate(22.0, 0.3, 21.0, 0.3) == 4  # n=4: 3.182 * 0.6 / 2 = 0.955 < 1; n=3: 1.49
    assert seeds_to_separate(1.0, 0.0, 2.0, 0.0) == 2  # no spread: any two runs separate
    assert seeds_to_separate(1.0, 0.1, 1.0, 0.1) is None  # equal means never separate
    assert seeds_to_separate(1.0, None, 2.0, 0.1) is None
    assert seeds_to_separate(1.0, 50.0, 1.01, 50.0) is None  # more than 1000 seeds


def test_build_comparison_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="`mode` is 'up'"):
        build_comparison([], strata=[], metric="val_psnr", mode="up")
    with pytest.raises(ValueError, match="`confidence` is 1.5"):
        build_comparison([], strata=[], metric="val_psnr", mode="max", confidence=1.5)
