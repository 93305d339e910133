"""ScheduleAwareASHA fed synthetic results (no Ray start, no training), quick.yaml's rungs.

grace_period 2, reduction_factor 3, max_t 6: bracket 0 has rungs at epochs 2
and 6 (the one at 6 is never reached: max_t stops first), bracket 1 only 6.
"""
from __future__ import annotations

import functools
import math
import pickle

import numpy as np
import pytest
from ray import cloudpickle  # what Tune pickles experiment state with
from ray.tune.experiment import Trial
from ray.tune.schedulers import ASHAScheduler
from ray.tune.schedulers.trial_scheduler import TrialScheduler

from cvae.core.schedules import kl_judge_epochs
from search.scheduler import ScheduleAwareASHA, earliest_stop_epoch, judge_epochs

CONTINUE, STOP = TrialScheduler.CONTINUE, TrialScheduler.STOP
QUICK = {"time_attr": "epoch", "metric": "val_psnr", "max_t": 6, "grace_period": 2, "reduction_factor": 3}


def at_grace(config: dict) -> int:
    return 2


def make_scheduler(earliest=at_grace, **kw) -> ScheduleAwareASHA:
    return ScheduleAwareASHA(**{**QUICK, "mode": "max", "earliest_stop": earliest, **kw})


def trial(trial_id: str, **config) -> Trial:
    return Trial("__fake", config=config, trial_id=trial_id, stub=True)


def result(t: int, value) -> dict:
    return {"epoch": t, "val_psnr": value}


def add(sched, *trials):
    for t in trials:
        sched.on_trial_add(None, t)
    return trials


def rung(sched, stratum: str, milestone: float, bracket: int = 0) -> dict:
    return next(rec for m, rec in sched._strata[stratum][bracket].rungs if m == milestone)


def test_a_weak_stratum_is_not_cut_by_a_strong_one_but_a_weak_trial_within_it_is():
    sched = make_scheduler()
    plain = ASHAScheduler(**QUICK, mode="max")
    strong = [trial(f"s{i}", stratum="None") for i in range(3)]
    weak = [trial(f"w{i}", stratum="Monotonic") for i in range(4)]
    for s in (sched, plain):
        add(s, *strong, *weak)
        for t, v in zip(strong, (30.0, 31.0, 32.0)):
            assert s.on_trial_result(None, t, result(2, v)) == CONTINUE
    # The first annealed trial: well below every None trial, alone in its stratum.
    assert plain.on_trial_result(None, weak[0], result(2, 22.0)) == STOP
    assert sched.on_trial_result(None, weak[0], result(2, 22.0)) == CONTINUE
    assert sched.on_trial_result(None, weak[1], result(2, 23.0)) == CONTINUE
    assert sched.on_trial_result(None, weak[2], result(2, 24.0)) == CONTINUE
    # Within Monotonic, a trial below the top third of Monotonic values is stopped.
    assert sched.on_trial_result(None, weak[3], result(2, 22.5)) == STOP
    assert set(rung(sched, "Monotonic", 2)) == {"w0", "w1", "w2", "w3"}
    assert set(rung(sched, "None", 2)) == {"s0", "s1", "s2"}
    assert sched._num_stopped == 1


def test_a_trial_without_stratum_key_shares_one_stratum():
    sched = make_scheduler()
    a, b = add(sched, trial("a"), trial("b", stratum="x"))
    assert sched.on_trial_result(None, a, result(2, 30.0)) == CONTINUE
    assert sched.on_trial_result(None, b, result(2, 1.0)) == CONTINUE  # alone in "x"
    assert set(sched._strata) == {"", "x"}


def test_b_no_stop_before_the_earliest_epoch_and_a_stop_after():
    earliest = functools.partial(earliest_stop_epoch, fixed={}, grace_period=2, num_epoch=6)
    sched = make_scheduler(earliest)
    ones = add(sched, *(trial(f"n{i}", stratum="s", kl_anneal_type="None") for i in range(3)))
    # Monotonic, ratio 0.5 over 6 epochs: betas 0, 1/3, 2/3, 1, ...: the warm-up ends in epoch 4.
    late, = add(sched, trial("m", stratum="s", kl_anneal_type="Monotonic", kl_anneal_ratio=0.5))
    assert sched._earliest == {"n0": 2, "n1": 2, "n2": 2, "m": 4}
    for t, v in zip(ones, (30.0, 31.0, 32.0)):
        sched.on_trial_result(None, t, result(2, v))
    for epoch in (1, 2, 3):
        assert sched.on_trial_result(None, late, result(epoch, -1e9)) == CONTINUE
        assert "m" not in rung(sched, "s", 2)
    # At its warm-up end it enters the epoch-2 rung with its epoch-4 value: still far below.
    assert sched.on_trial_result(None, late, result(4, 5.0)) == STOP
    assert rung(sched, "s", 2)["m"] == 5.0


def test_b_a_late_trial_with_a_good_value_continues_and_is_recorded_once():
    sched = make_scheduler(lambda config: config["earliest"])
    first, late = add(sched, trial("a", earliest=2), trial("b", earliest=3))
    assert sched.on_trial_result(None, first, result(2, 30.0)) == CONTINUE
    assert sched.on_trial_result(None, late, result(2, 10.0)) == CONTINUE
    assert sched.on_trial_result(None, late, result(3, 35.0)) == CONTINUE
    assert sched.on_trial_result(None, late, result(4, 1.0)) == CONTINUE  # rung 2 already recorded
    assert rung(sched, "", 2) == {"a": 30.0, "b": 35.0}


def test_earliest_stop_epoch_falls_back_to_fixed_then_train_config():
    f = functools.partial(earliest_stop_epoch, grace_period=2, num_epoch=6)
    assert f({"kl_anneal_type": "None"}, fixed={}) == 2
    assert f({"kl_anneal_type": "Monotonic", "kl_anneal_ratio": 0.5}, fixed={}) == 4
    # ratio from `fixed` when the config lacks it (or holds None: not sampled)
    assert f({"kl_anneal_type": "Monotonic", "kl_anneal_ratio": None}, fixed={"kl_anneal_ratio": 1.0}) == 6
    assert f({}, fixed={"kl_anneal_type": "Monotonic", "kl_anneal_ratio": 0.1}) == 2
    # TrainConfig: Cyclical, 10 cycles, ratio 1: over 6 epochs beta stays 0 (peak at epoch 1) -> grace period
    assert f({}, fixed={}) == 2
    # Cyclical, 2 cycles of 3 epochs, ratio 1: 0, .5, 1 | 0, .5, 1 -> 3 (the config's cycle beats fixed's)
    assert f({"kl_anneal_type": "Cyclical", "kl_anneal_cycle": 2}, fixed={"kl_anneal_cycle": 10}) == 3
    assert f({"kl_anneal_type": "Monotonic"}, fixed={}) == 6  # ratio 1.0 default: the peak is the last epoch
    assert earliest_stop_epoch({"kl_anneal_type": "None"}, fixed={}, grace_period=3, num_epoch=6) == 3


def test_c_reeval_trials_are_never_stopped_nor_recorded():
    sched = make_scheduler()
    reeval, = add(sched, trial("r", stratum="s", phase="reeval"))
    a, b = add(sched, trial("a", stratum="s", phase="search"), trial("b", stratum="s"))
    for epoch in (2, 3, 4, 5):
        assert sched.on_trial_result(None, reeval, result(epoch, 100.0 if epoch == 2 else -1e9)) == CONTINUE
    assert sched.on_trial_result(None, reeval, result(6, -1e9)) == STOP  # max_t, as Ray
    sched.on_trial_complete(None, reeval, result(6, -1e9))
    assert all(not rec for b_ in sched._strata["s"] for _, rec in b_.rungs)
    # Had the 100 dB been recorded, 30 would fall below the cut-off.
    assert sched.on_trial_result(None, a, result(2, 30.0)) == CONTINUE
    assert sched.on_trial_result(None, b, result(2, 20.0)) == STOP
    assert rung(sched, "s", 2) == {"a": 30.0, "b": 20.0}


def test_d_brackets_are_kept_per_stratum():
    np.random.seed(0)
    sched = make_scheduler(brackets=2)
    trials = add(sched, *(trial(f"t{i}", stratum="AB"[i % 2]) for i in range(200)))
    assert set(sched._strata) == {"A", "B"}
    for stratum in "AB":
        brackets = sched._strata[stratum]
        assert len(brackets) == 2
        assert [m for m, _ in brackets[0].rungs] == [6, 2]
        assert [m for m, _ in brackets[1].rungs] == [6]
        # Ray's softmax draw over the numbers of rungs (2 and 1): e / (e + 1) = 73% to bracket 0.
        in_first = sum(sched._bracket_of[t.trial_id] is brackets[0] for t in trials if t.config["stratum"] == stratum)
        assert 55 <= in_first <= 90
    assert not {id(b) for b in sched._strata["A"]} & {id(b) for b in sched._strata["B"]}
    # A trial in bracket 1 has no rung before max_t: never stopped early.
    in_second = next(t for t in trials if sched._bracket_of[t.trial_id] is sched._strata["A"][1])
    assert sched.on_trial_result(None, in_second, result(2, -1e9)) == CONTINUE
    assert len(sched.debug_string().splitlines()) == 1 + 4


def test_e_nan_and_none_values():
    sched = make_scheduler()
    a, b, c, d, e = add(sched, *(trial(x) for x in "abcde"))
    assert sched.on_trial_result(None, a, result(2, 30.0)) == CONTINUE
    assert sched.on_trial_result(None, b, result(2, float("nan"))) == CONTINUE  # recorded, as Ray does
    assert math.isnan(rung(sched, "", 2)["b"])
    assert sched.on_trial_result(None, c, result(2, None)) == CONTINUE  # logged, not recorded
    assert "c" not in rung(sched, "", 2)
    # The cut-off ignores the NaN (nanpercentile): 20 < 30 is stopped.
    assert sched.on_trial_result(None, d, result(2, 20.0)) == STOP
    # A NaN is never below a cut-off.
    assert sched.on_trial_result(None, e, result(2, float("nan"))) == CONTINUE
    # A result without the metric or the time is not judged.
    assert sched.on_trial_result(None, e, {"epoch": 3}) == CONTINUE
    assert sched.on_trial_result(None, e, {"val_psnr": 1.0}) == CONTINUE


def test_mode_min_flips_the_sign_once():
    sched = make_scheduler(mode="min")
    a, b = add(sched, trial("a"), trial("b"))
    sched.on_trial_result(None, a, result(2, 1.0))
    assert sched.on_trial_result(None, b, result(2, 2.0)) == STOP  # a larger loss
    assert rung(sched, "", 2) == {"a": -1.0, "b": -2.0}


def test_complete_records_in_its_own_stratum_and_remove_forgets_the_trial():
    sched = make_scheduler()
    a, b, c = add(sched, trial("a", stratum="x"), trial("b", stratum="y"), trial("c", stratum="y"))
    sched.on_trial_result(None, a, result(2, 30.0))
    sched.on_trial_complete(None, a, result(2, 30.0))  # the same result again: recorded once
    assert rung(sched, "x", 2) == {"a": 30.0} and not rung(sched, "y", 2)
    assert "a" not in sched._bracket_of and "a" not in sched._earliest
    sched.on_trial_remove(None, b)
    assert "b" not in sched._bracket_of and "b" not in sched._earliest
    sched.on_trial_complete(None, c, result(1, 5.0))  # before its earliest epoch: not recorded
    assert not rung(sched, "y", 2)


def test_f_pickle_round_trip_keeps_state_and_decisions(tmp_path):
    earliest = functools.partial(earliest_stop_epoch, fixed={"kl_anneal_ratio": 0.5}, grace_period=2, num_epoch=6)
    sched = make_scheduler(earliest)
    trials = add(sched, *(trial(f"t{i}", stratum="s", kl_anneal_type="Monotonic") for i in range(8)))
    for t in trials[:6]:
        sched.on_trial_result(None, t, result(4, 30.0 + int(t.trial_id[1:])))
    last = trials[-1]
    copies = [pickle.loads(pickle.dumps(sched)), cloudpickle.loads(cloudpickle.dumps(sched))]
    expected = [sched.on_trial_result(None, last, result(e, 10.0)) for e in (2, 3, 4)]
    assert expected == [CONTINUE, CONTINUE, STOP]  # warm-up until epoch 4, then far below the rung
    for copy in copies:
        assert copy._earliest == {t.trial_id: 4 for t in trials}
        assert [copy.on_trial_result(None, last, result(e, 10.0)) for e in (2, 3, 4)] == expected
        assert copy.debug_string() == sched.debug_string()


@pytest.mark.parametrize("kw,name", [
    ({"mode": "maximize"}, "mode"), ({"max_t": 0}, "max_t"), ({"grace_period": 0}, "grace_period"),
    ({"grace_period": 7}, "grace_period"), ({"reduction_factor": 1}, "reduction_factor"),
    ({"brackets": 0}, "brackets"), ({"earliest_stop": 2}, "earliest_stop"),
])
def test_bad_arguments_are_value_errors_that_name_them(kw, name):
    with pytest.raises(ValueError, match=f"`{name}`"):
        make_scheduler(**kw)


def test_a_resumed_trial_is_judged_against_the_trials_from_before_the_kill():
    """rebuild replays the study's intermediate values: a fresh scheduler (the resumed
    search's) stops a weak trial the old run's rung would have stopped, and not without them."""
    history = [(f"t000{i}", {"stratum": "s", "phase": "search"}, {1: 29.0 + i, 2: 30.0 + i, 3: 31.0 + i})
               for i in range(3)]
    history.append(("t0009", {"stratum": "s", "phase": "reeval"}, {2: 1.0}))  # re-runs are never recorded
    history.append(("t0008", {"stratum": "other", "phase": "search"}, {2: 99.0}))  # another stratum
    resumed = make_scheduler()
    assert resumed.rebuild(history) == 3 * 2 + 1  # epochs >= the earliest (2) of the search trials
    assert rung(resumed, "s", 2) == {"t0000": 30.0, "t0001": 31.0, "t0002": 32.0}
    weak, = add(resumed, trial("ray-new", stratum="s", study_trial="t0005"))
    assert resumed.on_trial_result(None, weak, result(2, 29.5)) == STOP
    fresh = make_scheduler()  # without the history: alone in its rung, it continues
    weak2, = add(fresh, trial("ray-new", stratum="s", study_trial="t0005"))
    assert fresh.on_trial_result(None, weak2, result(2, 29.5)) == CONTINUE


def test_an_interrupted_trial_keeps_its_rung_and_its_bracket_after_a_rebuild():
    sched = make_scheduler(brackets=2)
    history = [("t0003", {"stratum": "s"}, {2: 30.0})]
    sched.rebuild(history)
    # the same study trial, continued by a new Ray trial: rung 2 is recorded already, not judged twice
    again, = add(sched, trial("ray-2", stratum="s", study_trial="t0003"))
    assert sched.on_trial_result(None, again, result(3, 1.0)) == CONTINUE
    index = next(i for i, b in enumerate(sched._strata["s"]) if "t0003" in next(iter(b.rungs[-1:]), (0, {}))[1])
    assert sched._bracket_of["ray-2"] is sched._strata["s"][index]


def test_a_cyclical_trial_is_judged_only_at_the_end_of_a_cycle():
    """Issue 21, item 6: 3 cycles of 2 epochs over 6 (ratio 0.5: betas 0, 1 | 0, 1 | 0, 1) are judged
    at 2, 4, 6; 2 cycles of 3 (betas 0, .67, 1 | 0, .67, 1) at 3 and 6; one cycle (Monotonic's shape)
    from the end of its ramp on."""
    judge = functools.partial(judge_epochs, fixed={}, grace_period=2, num_epoch=6)
    assert judge({"kl_anneal_type": "Cyclical", "kl_anneal_cycle": 3, "kl_anneal_ratio": 0.5}) == [2, 4, 6]
    assert judge({"kl_anneal_type": "Cyclical", "kl_anneal_cycle": 2, "kl_anneal_ratio": 0.5}) == [3, 6]
    assert judge({"kl_anneal_type": "Cyclical", "kl_anneal_cycle": 1, "kl_anneal_ratio": 0.5}) == [4, 5, 6]
    assert judge({"kl_anneal_type": "Monotonic", "kl_anneal_ratio": 0.5}) == [4, 5, 6]
    assert judge({"kl_anneal_type": "None"}) == [2, 3, 4, 5, 6]
    assert kl_judge_epochs(kind="Cyclical", num_epoch=20, cycle=4, ratio=0.5) == [5, 10, 15, 20]

    earliest = functools.partial(earliest_stop_epoch, fixed={}, grace_period=2, num_epoch=6)
    sched = make_scheduler(earliest, judge_at=judge)
    ones = add(sched, *(trial(f"n{i}", stratum="s", kl_anneal_type="None") for i in range(3)))
    for t, v in zip(ones, (30.0, 31.0, 32.0)):
        sched.on_trial_result(None, t, result(2, v))
    # 2 cycles of 3 epochs, ratio 0.3: betas 0, 1, 1 | 0, 1, 1: the ramp ends at epoch 2, the cycle at 3.
    cyc, = add(sched, trial("c", stratum="s", kl_anneal_type="Cyclical", kl_anneal_cycle=2, kl_anneal_ratio=0.3))
    assert judge(cyc.config) == [3, 6]
    # Epoch 2 is the end of the first cycle's ramp, not of the cycle: not judged, however low.
    assert sched.on_trial_result(None, cyc, result(2, -1e9)) == CONTINUE
    assert "c" not in rung(sched, "s", 2)
    assert sched.on_trial_result(None, cyc, result(3, 5.0)) == STOP  # the end of cycle 1: judged, far below
    assert rung(sched, "s", 2)["c"] == 5.0
    # Judged from its warm-up end on (the rule before), the same trial was stopped at epoch 2.
    plain = make_scheduler(at_grace)
    add(plain, *ones)
    for t, v in zip(ones, (30.0, 31.0, 32.0)):
        plain.on_trial_result(None, t, result(2, v))
    add(plain, cyc)
    assert plain.on_trial_result(None, cyc, result(2, -1e9)) == STOP


# --- same_epoch: peers compared at the epoch the trial is judged (issue 21, item 6's next step) ----
def _late_judging(config: dict) -> int:
    return 3 if config.get("late") else 2


def test_same_epoch_compares_a_late_entry_with_its_peers_values_at_that_epoch():
    """Two trials record 30 and 31 at epoch 2 and reach 35 and 36 at epoch 3; a third, first
    judged at epoch 3 with 32, enters the epoch-2 rung. Ray's rule compares 32 with the epoch-2
    values (cut-off 30.67: continue); same_epoch with their epoch-3 values (35.67: stop)."""
    decisions = {}
    for same in (False, True):
        sched = make_scheduler(earliest=_late_judging, same_epoch=same)
        a, b, late = add(sched, trial("a"), trial("b"), trial("c", late=True))
        for t, (va, vb) in ((2, (30.0, 31.0)), (3, (35.0, 36.0))):
            assert sched.on_trial_result(None, a, result(t, va)) == CONTINUE
            assert sched.on_trial_result(None, b, result(t, vb)) == CONTINUE
        assert sched.on_trial_result(None, late, result(2, 20.0)) == CONTINUE  # before its earliest epoch
        decisions[same] = sched.on_trial_result(None, late, result(3, 32.0))
        assert rung(sched, "", 2)["c"] == 32.0  # recorded with its own value either way
    assert decisions == {False: CONTINUE, True: STOP}


def test_same_epoch_judges_an_on_time_trial_against_a_late_entrys_earlier_value():
    """A late entry recorded 40 at the epoch-2 rung (its epoch-3 value) but had 25 at epoch 2.
    A trial judged at epoch 2 with 31 meets 40 under Ray's rule (stop: 31 < 40) and 25 under
    same_epoch (continue)."""
    decisions = {}
    for same in (False, True):
        sched = make_scheduler(earliest=_late_judging, same_epoch=same)
        late, on_time = add(sched, trial("c", late=True), trial("d"))
        assert sched.on_trial_result(None, late, result(2, 25.0)) == CONTINUE
        assert sched.on_trial_result(None, late, result(3, 40.0)) == CONTINUE  # first in its rung
        decisions[same] = sched.on_trial_result(None, on_time, result(2, 31.0))
    assert decisions == {False: STOP, True: CONTINUE}


def test_same_epoch_history_is_rebuilt_on_resume():
    """After a kill, `rebuild` replays every epoch of the study's values: the late entry's epoch-2
    value is known again, so the decision is the one the live search would have made."""
    sched = make_scheduler(earliest=_late_judging, same_epoch=True)
    sched.rebuild([("c", {"late": True}, {2: 25.0, 3: 40.0})])
    (on_time,) = add(sched, trial("d"))
    assert sched.on_trial_result(None, on_time, result(2, 31.0)) == CONTINUE


def test_the_runner_builds_the_same_epoch_rule_for_quick_yaml(tmp_path):
    from pathlib import Path

    from search.runner import make_plan, make_scheduler

    quick = Path(__file__).resolve().parents[2] / "spaces" / "quick.yaml"
    sched = make_scheduler(make_plan(quick, storage_path=tmp_path / "runs"))
    assert isinstance(sched, ScheduleAwareASHA) and sched._same_epoch
    # and it acts on it: the late-entry case above, through the runner's own scheduler settings
    late, on_time = (trial("c", kl_anneal_type="Monotonic", kl_anneal_ratio=0.5, stratum="Monotonic"),
                     trial("d", kl_anneal_type="Monotonic", kl_anneal_ratio=0.1, stratum="Monotonic"))
    add(sched, late, on_time)
    assert sched._earliest == {"c": 4, "d": 2}  # c's ramp (ratio 0.5 of 6 epochs) ends after epoch 3
    for t, v in ((1, 20.0), (2, 25.0), (3, 30.0), (4, 40.0)):  # c enters the epoch-2 rung with 40
        assert sched.on_trial_result(None, late, result(t, v)) == CONTINUE
    assert sched.on_trial_result(None, on_time, result(1, 20.0)) == CONTINUE
    assert sched.on_trial_result(None, on_time, result(2, 31.0)) == CONTINUE  # 31 > c's 25 at epoch 2 (not 40)
