"""search.comparison on constructed runs: no Ray, no training.

Every defect of issue 21 has a test with both outcomes: the search run that chose a
configuration is not counted (winner's curse), a diverged re-run counts, a zero
spread is floored, Holm corrects the comparisons, equivalence is an answer, and
seeds-to-separate is a power calculation (checked against Cohen's table).
"""
from __future__ import annotations

import json
import math
from typing import Any

import pytest

from search.comparison import DECISIVE, EQUIVALENT, UNDECIDED, RunOutcome, Settings, build_comparison, pick_best

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


def reruns(source: str, stratum: str, values: list[float | None]) -> list[RunOutcome]:
    """Re-runs of `source`; None is a diverged re-run."""
    return [run(f"{source}-r{k}", stratum, "completed" if v is not None else "diverged",
                v, NAN if v is None else v, phase="reeval", seed=k, source=source)
            for k, v in enumerate(values, start=1)]


def strata_of(**values: list[float | None]) -> list[RunOutcome]:
    """A search run (value 50: far above its re-runs) and its re-runs per stratum."""
    runs = []
    for name, vals in values.items():
        runs += [run(name.lower(), name, final=50.0, lr=1e-3), *reruns(name.lower(), name, vals)]
    return runs


def compare(runs: list[RunOutcome], mode: str = "max", strata: list[str] | None = None,
            **settings: Any) -> dict[str, Any]:
    names = strata if strata is not None else list(dict.fromkeys(r.stratum for r in runs))
    out = build_comparison(runs, strata=names, metric="val_psnr", mode=mode, settings=Settings(**settings))
    json.dumps(out, allow_nan=False)  # JSON-ready: no NaN, no numpy, no objects
    return out


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

def test_the_search_run_that_chose_a_configuration_is_shown_not_counted() -> None:
    runs = [run("c1", "Cyclical", final=22.0, lr=1e-3), run("c2", "Cyclical", "stopped", last=23.0),
            *reruns("c1", "Cyclical", [21.6, 21.9]), run("m1", "Monotonic", final=21.0),
            *reruns("m1", "Monotonic", [21.3, 21.2])]
    out = compare(runs)
    cyc = out["strata"]["Cyclical"]
    assert (cyc["trials"], cyc["stopped"], cyc["best_trial"], cyc["original_value"]) == (2, 1, "c1", 22.0)
    assert cyc["reeval_values"] == [21.6, 21.9] and cyc["n"] == 2
    assert cyc["mean"] == pytest.approx(21.75) and cyc["std"] == pytest.approx(math.sqrt(0.045))
    half = 12.706205 * math.sqrt(0.045) / math.sqrt(2)
    assert (cyc["ci_low"], cyc["ci_high"]) == (pytest.approx(21.75 - half, abs=1e-5),
                                               pytest.approx(21.75 + half, abs=1e-5))
    # Counted, the search runs would make Cyclical 21.83 vs 21.17 and decisive; uncounted: not.
    assert out["winner"] == "Cyclical" and out["verdict"] == UNDECIDED
    assert out["comparisons"]["Monotonic"]["difference"] == pytest.approx(0.5)
    counted = compare([run("c", "Cyclical", final=22.0), *reruns("c", "Cyclical", [21.6, 21.9, 22.0]),
                       run("m", "Monotonic", final=21.0), *reruns("m", "Monotonic", [21.3, 21.2, 21.0])])
    assert counted["verdict"] == DECISIVE  # the same re-runs, with a third: now enough


def test_a_diverged_rerun_counts_and_keeps_the_leader_from_winning() -> None:
    out = compare(strata_of(Cyclical=[41.0, None, None, 40.8], Monotonic=[40.0, 39.9, 40.1]))
    cyc = out["strata"]["Cyclical"]
    assert (cyc["n"], cyc["failed_reruns"], cyc["failed_statuses"]) == (2, 2, ["diverged"])
    assert out["winner"] == "Cyclical" and out["decisive"] is False and out["verdict"] == UNDECIDED
    c = out["comparisons"]["Monotonic"]
    assert c["p_values"]["rank"] == 1.0 and c["p_values"]["welch"] < 0.05  # the interval alone would say yes
    assert "2 of 4 re-runs of Cyclical diverged" in out["reason"]
    clean = compare(strata_of(Cyclical=[41.0, 40.8], Monotonic=[40.0, 39.9, 40.1]))
    assert clean["verdict"] == DECISIVE and "rank" not in clean["comparisons"]["Monotonic"]["p_values"]
    assert clean["reason"].startswith("Decisive: Cyclical wins; it beats Monotonic by +0.90 dB [")


def test_a_diverged_rerun_of_the_loser_is_named_and_rules_out_equivalence() -> None:
    out = compare(strata_of(Cyclical=[40.1, 40.2, 40.15, 40.05], Monotonic=[40.0, 40.1, 40.05, None, 40.0]),
                  equivalence=0.5)
    assert out["strata"]["Monotonic"]["failed_reruns"] == 1
    assert out["comparisons"]["Monotonic"]["equivalent"] is False and out["verdict"] == UNDECIDED
    assert "1 of 5 re-runs of Monotonic diverged" in out["reason"]


def test_zero_spread_is_floored() -> None:
    out = compare(strata_of(Cyclical=[40.1, 40.1], Monotonic=[40.0, 40.0]), equivalence=0.0)
    assert out["pooled_std"] == 0.0 and out["spread_floor"] == 0.1
    c = out["comparisons"]["Monotonic"]
    assert c["se"] == pytest.approx(0.1) and c["df"] == pytest.approx(2.0)
    assert c["ci_low"] == pytest.approx(0.1 - 4.302653 * 0.1, abs=1e-5) and out["verdict"] == UNDECIDED
    wide = compare(strata_of(Cyclical=[41.0, 41.0], Monotonic=[40.0, 40.0]))
    assert wide["verdict"] == DECISIVE
    # the floor is the spread pooled across strata when that is larger
    pooled = compare(strata_of(Cyclical=[41.0, 41.0], Monotonic=[40.0, 42.0]))
    assert pooled["spread_floor"] == pytest.approx(1.0) and pooled["comparisons"]["Monotonic"]["se"] == \
        pytest.approx(math.sqrt(1.0 / 2 + 2.0 / 2))


@pytest.mark.parametrize("gap, verdict", [(0.5, UNDECIDED), (0.6, DECISIVE)])
def test_holm_corrects_over_the_comparisons(gap: float, verdict: str) -> None:
    # uncorrected p: Monotonic 0.028 either way; None 0.031 at gap 0.5, 0.015 at 0.6.
    # Holm: 2 x 0.028 = 0.056 fails; 2 x 0.015 = 0.030 and then 0.028 pass (Bonferroni would not).
    out = compare(strata_of(Cyclical=[40.0, 40.4, 40.2, 40.6],
                            Monotonic=[v - 0.5 for v in [40.1, 40.5, 40.2, 40.4]],
                            None_=[v - gap for v in [40.0, 40.6, 40.3, 40.3]]))
    c = out["comparisons"]
    assert all(x["p"] < 0.05 for x in c.values())
    assert out["verdict"] == verdict
    assert c["Monotonic"]["p"] == pytest.approx(0.0282, abs=5e-4)
    smallest = min(c.values(), key=lambda x: x["p"])
    assert smallest["p_holm"] == pytest.approx(2 * smallest["p"])
    assert smallest["interval_confidence"] == pytest.approx(0.975)
    assert max(c.values(), key=lambda x: x["p"])["interval_confidence"] == pytest.approx(0.95)
    assert [x for x in c.values() if x["better"] and x["ci_low"] <= 0] == []  # a won interval excludes 0
    # Holm's step-down stops at the first comparison it cannot reject, even where a later
    # interval alone would exclude 0; so a decisive verdict is every comparison won.
    assert all(x["better"] for x in c.values()) == (verdict == DECISIVE)


@pytest.mark.parametrize("margin, verdict", [(0.5, EQUIVALENT), (0.05, UNDECIDED)])
def test_equivalence_is_an_answer(margin: float, verdict: str) -> None:
    out = compare(strata_of(Cyclical=[40.0, 40.2, 40.1, 40.3], Monotonic=[40.05, 40.15, 40.1, 40.2]),
                  equivalence=margin)
    c = out["comparisons"]["Monotonic"]
    assert c["better"] is False and out["verdict"] == verdict
    assert -margin < c["equivalence_low"] if verdict == EQUIVALENT else c["equivalence_high"] > margin
    if verdict == EQUIVALENT:
        assert out["reason"].startswith("Equivalent within 0.50 dB: Cyclical and Monotonic (90% interval")
        assert out["seeds"] is None
    else:
        assert out["reason"].startswith("Not enough evidence: Cyclical vs Monotonic: +0.02 dB")


def test_equivalent_to_one_and_better_than_another() -> None:
    out = compare(strata_of(Cyclical=[40.0, 40.2, 40.1, 40.3], Monotonic=[40.05, 40.15, 40.1, 40.2],
                            None_=[38.0, 38.2, 38.1, 38.3]))
    assert out["verdict"] == EQUIVALENT and "Cyclical beats None_ by +2.00 dB" in out["reason"]


def test_seeds_to_separate_is_a_power_calculation() -> None:
    # gap 1, pooled spread 1: Cohen's table says 17 runs per group for 80% power at 5%
    out = compare(strata_of(Cyclical=[11.0, 12.0, 13.0], Monotonic=[10.0, 11.0, 12.0]), equivalence=0.5)
    assert out["verdict"] == UNDECIDED and out["pooled_std"] == pytest.approx(1.0)
    seeds = out["seeds"]
    assert (out["seeds_to_separate"], seeds["against"], seeds["power"]) == (17, "Monotonic", 0.8)
    assert seeds["low"] < 17 < seeds["high"]  # over the 90% interval of a spread with 4 df
    assert "About 17 re-runs per strategy" in out["reason"] and "80% power" in out["reason"]
    close = compare(strata_of(Cyclical=[10.0, 12.0], Monotonic=[10.0, 12.0]))
    assert close["seeds_to_separate"] is None and "too close" in close["reason"]


def test_permutation_check_from_five_runs() -> None:
    lead = [41.0, 41.2, 40.9, 41.1, 41.3]
    out = compare(strata_of(Cyclical=lead, Monotonic=[v - 1.5 for v in lead]))
    p = out["comparisons"]["Monotonic"]["p_values"]
    assert p["permutation"] == pytest.approx(2 / 252) and out["verdict"] == DECISIVE
    few = compare(strata_of(Cyclical=lead[:4], Monotonic=[v - 1.5 for v in lead[:4]]))
    assert "permutation" not in few["comparisons"]["Monotonic"]["p_values"]


def test_a_stratum_with_one_rerun_is_not_enough_evidence_never_a_loser() -> None:
    runs = strata_of(Cyclical=[41.0, 41.2, 40.9], Monotonic=[39.0, 39.1, 39.2], None_=[38.0, None])
    out = compare(runs, strata=["Cyclical", "Monotonic", "None_", "Other"])
    none, other = out["strata"]["None_"], out["strata"]["Other"]
    assert (none["reeval_values"], none["n"], none["enough_evidence"], none["ci_low"]) == ([38.0], 1, False, None)
    assert (other["n"], other["best_trial"], other["mean"], other["reeval_runs"]) == (0, None, None, [])
    assert out["order"] == ["Cyclical", "Monotonic", "None_", "Other"]
    assert out["verdict"] == UNDECIDED and out["comparisons"]["Monotonic"]["better"] is True
    assert out["reason"].startswith("Not enough evidence: None_, Other have fewer than 2 full-budget re-runs "
                                    "(1 of 2 re-runs of None_ diverged)")


def test_min_mode_ranks_the_lowest_mean_first() -> None:
    runs = strata_of(C=[1.3, 1.7], B=[2.2, 1.8], A=[1.1, 0.9])
    out = compare(runs, mode="min", strata=["C", "B", "A"])
    assert out["order"] == ["A", "C", "B"] and (out["winner"], out["runner_up"]) == ("A", "C")
    assert out["comparisons"]["C"]["difference"] == pytest.approx(0.5)  # positive: the leader is better
    tight = compare(strata_of(A=[1.0, 1.02, 0.98], B=[2.0, 2.02, 1.98]), mode="min")
    assert tight["verdict"] == DECISIVE and tight["reason"].startswith("Decisive: A wins")


def test_reeval_source_names_the_best_trial() -> None:
    runs = [run("c1", "Cyclical", final=22.0), run("c3", "Cyclical", final=20.4, lr=3e-4),
            *reruns("c3", "Cyclical", [20.0, 20.8])]
    s = compare(runs, strata=["Cyclical"])["strata"]["Cyclical"]
    assert (s["best_trial"], s["original_value"], s["reeval_values"]) == ("c3", 20.4, [20.0, 20.8])
    assert s["best_config"] == {"kl_anneal_type": "Cyclical", "lr": 3e-4}


def test_failed_stopped_and_running_reruns() -> None:
    runs = [run("c1", "S", final=22.0), *reruns("c1", "S", [21.0]),
            run("c1-r2", "S", "failed", None, 3.0, phase="reeval", source="c1"),
            run("c1-r3", "S", "running", None, 19.0, phase="reeval", source="c1"),
            run("c1-r4", "S", "stopped", None, 19.0, phase="reeval", source="c1")]
    s = compare(runs, strata=["S"])["strata"]["S"]
    assert s["reeval_values"] == [21.0] and s["n"] == 1
    assert (s["failed_reruns"], s["failed_statuses"], s["pending_reruns"]) == (2, ["failed", "stopped"], 1)


def test_one_stratum_is_never_decisive() -> None:
    solo = compare(strata_of(Cyclical=[1.0, 2.0]))
    assert (solo["winner"], solo["runner_up"], solo["decisive"], solo["seeds_to_separate"]) == (
        "Cyclical", None, False, None)
    assert "only one stratum" in solo["reason"]


@pytest.mark.parametrize("runs", [[], [run("a", "A", "failed", NAN, NAN), run("b", "B", "running", None, NAN),
                                       run("r", "A", final=NAN, phase="reeval", source="a")]])
def test_empty_and_all_nan_inputs(runs: list[RunOutcome]) -> None:
    out = compare(runs, strata=["A", "B"])
    assert (out["winner"], out["runner_up"], out["decisive"], out["seeds_to_separate"]) == (None, None, False, None)
    assert all(s["n"] == 0 and s["mean"] is None for s in out["strata"].values())
    assert out["order"] == ["A", "B"] and "no stratum has 2 full-budget re-runs" in out["reason"]
    assert compare([], strata=[])["reason"] == "Not enough evidence: there is no stratum to compare."


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="`mode` is 'up'"):
        build_comparison([], strata=[], metric="val_psnr", mode="up")
    with pytest.raises(ValueError, match="`confidence` is 1.5"):
        Settings(confidence=1.5)
    with pytest.raises(ValueError, match="`equivalence` is -1"):
        Settings(equivalence=-1)
