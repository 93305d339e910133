"""Racing the re-run seeds (issue 21, item 5): the rule on constructed verdicts, the
space keys, and the searcher's rounds on a real study (no Ray start)."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import optuna
import pytest

from search.comparison import RunOutcome, build_comparison
from search.racing import RaceBudget, in_contention, next_round
from search.runner import make_design, make_plan
from search.sampler import make_sampler
from search.space import load_space
from tests.search.study_harness import Harness, harness
from tests.search.test_study_design import rejects, space_file

optuna.logging.set_verbosity(optuna.logging.WARNING)
STRATA = ["A", "B", "C"]


def _verdict(values: dict[str, list[float | None]]) -> dict:
    """The comparison of re-runs with these final values (None: a diverged re-run)."""
    runs = []
    for stratum, finals in values.items():
        runs.append(RunOutcome(f"{stratum}-s", "search", stratum, "completed", 99.0, 99.0, {}, None))
        for i, v in enumerate(finals):
            runs.append(RunOutcome(f"{stratum}-r{i}", "reeval", stratum, "completed" if v is not None else "diverged",
                                   v, v, {}, 1000 + i, source_trial=f"{stratum}-s"))
    return build_comparison(runs, strata=list(values), metric="val_psnr", mode="max")


# --------------------------------------------------------------------------- #
# The rule
# --------------------------------------------------------------------------- #
def test_a_decided_verdict_ends_the_race():
    decisive = _verdict({"A": [40.0, 40.1, 40.2], "B": [30.0, 30.1, 30.2], "C": [20.0, 20.2, 20.1]})
    assert decisive["verdict"] == "decisive"
    assert in_contention(decisive) == [] and next_round(decisive, {"A": 3, "B": 3, "C": 3}, RaceBudget()) == []
    equivalent = _verdict({"A": [40.0, 40.01, 40.02, 40.0], "B": [40.0, 40.01, 39.99, 40.0]})
    assert equivalent["verdict"] == "equivalent"
    assert next_round(equivalent, {"A": 4, "B": 4}, RaceBudget()) == []


def test_only_the_leader_and_the_strata_still_open_get_a_seed():
    comparison = _verdict({"A": [30.0, 30.4], "B": [29.9, 30.5], "C": [20.0, 20.3]})
    assert comparison["verdict"] == "not enough evidence"
    assert comparison["comparisons"]["C"]["better"]          # clearly beaten: eliminated
    assert not comparison["comparisons"]["B"]["better"]
    leader = comparison["winner"]
    assert set(next_round(comparison, {"A": 2, "B": 2, "C": 2}, RaceBudget())) == {"A", "B"}
    assert next_round(comparison, {"A": 2, "B": 2, "C": 2}, RaceBudget())[0] == leader


def test_a_stratum_without_an_interval_after_a_failed_rerun_stays_in_contention():
    comparison = _verdict({"A": [40.0, 40.2], "B": [30.0, None], "C": [20.0, 20.3]})
    assert "B" in next_round(comparison, {"A": 2, "B": 2, "C": 2}, RaceBudget())


def test_max_seeds_and_the_epoch_budget_cap_the_rounds():
    comparison = _verdict({"A": [30.0, 30.4], "B": [29.9, 30.5], "C": [20.0, 20.3]})
    leader = comparison["winner"]
    other = "B" if leader == "A" else "A"
    capped = {leader: 4, other: 3, "C": 2}
    assert next_round(comparison, capped, RaceBudget(max_seeds=4)) == [other]
    # 9 runs of 10 epochs spent, 100 in all: one more run fits, and it goes to the leader
    assert next_round(comparison, {"A": 3, "B": 3, "C": 3}, RaceBudget(budget_epochs=100, num_epoch=10)) == [leader]
    assert next_round(comparison, {"A": 3, "B": 3, "C": 4}, RaceBudget(budget_epochs=100, num_epoch=10)) == []
    assert RaceBudget(max_seeds=6, budget_epochs=100, num_epoch=10).max_runs(3) == 10
    assert RaceBudget(max_seeds=3).max_runs(3) == 9


# --------------------------------------------------------------------------- #
# The space keys
# --------------------------------------------------------------------------- #
def test_seeds_auto_reads_the_racing_keys_and_the_plan_says_racing(tmp_path):
    space = load_space(space_file(tmp_path, lambda d: d.update(reeval={"seeds": "auto", "max_seeds": 5,
                                                                         "budget_epochs": 48})))
    assert space.reeval_racing and space.reeval_seeds == 2 and space.reeval_max_seeds == 5
    assert space.max_reeval_trials == 12  # 48 epochs / 4 per run < 5 seeds x 3 strata
    assert "racing" in space.describe() and "at most 5 seeds a stratum" in space.describe()
    default = load_space(space_file(tmp_path, lambda d: d.update(reeval={"seeds": "auto"})))
    assert default.reeval_max_seeds == 6 and default.max_reeval_trials == 18


@pytest.mark.parametrize("reeval, key, rule", [
    ({"seeds": "auto", "max_seeds": 1}, "reeval.max_seeds", "must be >= 2"),
    ({"seeds": "auto", "budget_epochs": 20}, "reeval.budget_epochs", "must be >= 24"),
    ({"seeds": 3, "max_seeds": 4}, "reeval.max_seeds", "applies only to reeval.seeds: auto"),
    ({"seeds": "some"}, "reeval.seeds", "must be an integer"),
])
def test_bad_racing_keys_name_the_key(tmp_path, reeval, key, rule):
    rejects(tmp_path, lambda d: d.update(reeval=reeval), key, rule)


# --------------------------------------------------------------------------- #
# The searcher's rounds on a real study
# --------------------------------------------------------------------------- #
def _racer(tmp_path: Path, db: str = "optuna.db", **reeval) -> Harness:
    path = space_file(tmp_path, lambda d: d.update(reeval={"seeds": "auto", **reeval},
                                                   trials={"num_samples": 6, "max_concurrent": 1}))
    plan = make_plan(path, storage_path=tmp_path / "runs")
    return harness(tmp_path, plan.space.define_by_run, max_t=plan.num_epoch, design=make_design(plan),
                   sampler=make_sampler(plan.space, 1), name="d", db=db)


def _finish(h: Harness, ray_id: str, value: float, epochs: int = 4) -> None:
    for epoch in range(1, epochs + 1):
        h.result(ray_id, {"val_psnr": value - (epochs - epoch) * 0.01, "epoch": epoch})
    h.complete(ray_id, {"val_psnr": value, "epoch": epochs})


def _search(h: Harness) -> None:
    for i in range(6):
        assert isinstance(h.suggest(f"t{i}"), dict)
        _finish(h, f"t{i}", 25.0 + i)


def _round(h: Harness, prefix: str, values: dict[str, list[float]], finished: Counter) -> Counter:
    """One round: ask until the searcher says 'not yet' or FINISHED (every run of the round
    running at once), then finish each with its stratum's next value. What each stratum got."""
    given, configs, i = Counter(), [], 0
    while isinstance(config := h.suggest(f"{prefix}{i}"), dict):
        configs.append((f"{prefix}{i}", config["stratum"]))
        given[config["stratum"]] += 1
        i += 1
    for ray_id, stratum in configs:
        _finish(h, ray_id, values[stratum][finished[stratum]])
        finished[stratum] += 1
    return given


def test_racing_gives_seeds_only_to_the_strata_in_contention_until_max_seeds(tmp_path):
    h = _racer(tmp_path, max_seeds=4)
    _search(h)
    # Cyclical and Monotonic stay within noise of each other; None is far below.
    values = {"Cyclical": [30.0, 30.4, 30.1, 30.3], "Monotonic": [29.9, 30.5, 30.2, 30.0],
              "None": [20.0, 20.3, 20.1, 20.2]}
    finished: Counter = Counter()
    assert _round(h, "r", values, finished) == {"Cyclical": 2, "Monotonic": 2, "None": 2}
    assert _round(h, "q", values, finished) == {"Cyclical": 1, "Monotonic": 1}  # None is beaten: eliminated
    assert _round(h, "p", values, finished) == {"Cyclical": 1, "Monotonic": 1}
    assert h.suggest("end") == "FINISHED"  # max_seeds 4 reached, the verdict still open
    reevals = [t for t in h.study.trials if t.user_attrs.get("phase") == "reeval"]
    assert sorted(t.user_attrs["seed"] for t in reevals if t.user_attrs["stratum"] == "Cyclical") == \
        [1001, 2001, 3001, 4001]
    for stratum in values:  # every seed of a stratum re-runs the same configuration
        assert len({t.user_attrs["reeval_of"] for t in reevals if t.user_attrs["stratum"] == stratum}) == 1


def test_racing_stops_after_the_first_round_when_it_is_decisive(tmp_path):
    h = _racer(tmp_path)
    _search(h)
    values = {"Cyclical": [40.0, 40.1], "Monotonic": [30.0, 30.2], "None": [20.0, 20.1]}
    assert _round(h, "r", values, Counter()) == {"Cyclical": 2, "Monotonic": 2, "None": 2}
    assert h.suggest("end") == "FINISHED"
    assert Counter(t.user_attrs["phase"] for t in h.study.trials) == {"search": 6, "reeval": 6}


def test_a_new_driver_on_the_same_study_makes_the_same_allocation(tmp_path):
    """A driver killed after the first round ended: the next one (resume) judges the
    same re-runs from the study and gives the same strata their next seed."""
    values = {"Cyclical": [30.0, 30.4, 30.1], "Monotonic": [29.9, 30.5, 30.2], "None": [20.0, 20.3, 20.1]}
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    straight = _racer(tmp_path / "a")
    _search(straight)
    _round(straight, "r", values, Counter())
    expected = _round(straight, "q", values, Counter({"Cyclical": 2, "Monotonic": 2, "None": 2}))
    killed = _racer(tmp_path / "b")
    _search(killed)
    _round(killed, "r", values, Counter())
    resumed = _racer(tmp_path / "b")  # a new searcher over the same study
    assert _round(resumed, "q", values, Counter({"Cyclical": 2, "Monotonic": 2, "None": 2})) == expected
    assert expected == {"Cyclical": 1, "Monotonic": 1}


def _abandon_one_first_round_rerun(h: Harness) -> tuple[str, int]:
    """Ask one first-round re-run and abandon it, as a resumed driver does with a trial its
    killed predecessor asked but never handed out; its (stratum, seed)."""
    config = h.searcher._record.ask()  # the queue's first re-run, asked and never handed out
    frozen = h.record.trial(config.number)
    h.record.abandon(config.number)
    return frozen.user_attrs["stratum"], frozen.user_attrs["seed"]


@pytest.mark.parametrize("reeval", [{"seeds": 2}, {"seeds": "auto", "max_seeds": 3}], ids=["fixed", "racing"])
def test_an_abandoned_rerun_is_run_again_with_its_own_seed(tmp_path, reeval):
    path = space_file(tmp_path, lambda d: d.update(reeval=reeval, trials={"num_samples": 6, "max_concurrent": 1}))
    plan = make_plan(path, storage_path=tmp_path / "runs")
    h = harness(tmp_path, plan.space.define_by_run, max_t=plan.num_epoch, design=make_design(plan),
                sampler=make_sampler(plan.space, 1), name="d")
    _search(h)
    assert isinstance(h.suggest("r0"), dict)  # the first round is enqueued; one of it is handed out
    lost = _abandon_one_first_round_rerun(h)
    values = {"Cyclical": [40.0, 40.1, 40.05], "Monotonic": [30.0, 30.2, 30.1], "None": [20.0, 20.1, 20.05]}
    _finish(h, "r0", values[h.trials["r0"].config["stratum"]][0])
    _round(h, "q", values, Counter({h.trials["r0"].config["stratum"]: 1}))
    while isinstance(h.suggest(f"x{len(h.trials)}"), dict):
        _finish(h, f"x{len(h.trials) - 1}", 35.0)
    counted_reevals = [t for t in h.study.trials
                       if t.user_attrs.get("phase") == "reeval" and not t.user_attrs.get("abandoned")]
    pairs = Counter((t.user_attrs["stratum"], t.user_attrs["seed"]) for t in counted_reevals)
    assert pairs[lost] == 1  # run again, once
    assert max(pairs.values()) == 1
    seeds_each = Counter(s for s, _ in pairs)
    if "max_seeds" not in reeval:  # fixed: exactly the first round; racing may go on (the 35 dB runs tie)
        assert seeds_each == {"Cyclical": 2, "Monotonic": 2, "None": 2}
    assert min(seeds_each.values()) >= 2
