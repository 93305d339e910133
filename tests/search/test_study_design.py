"""Issue 11 without starting Ray: strata, their validation, the samplers a YAML
builds, balanced assignment and re-evaluation driven through the real searcher
and a real Optuna study, and the one status rule on the resume path."""
from __future__ import annotations

import copy
from collections import Counter
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml

from search._compat import StratumView
from search.runner import make_design, make_plan
from search.sampler import StratifiedSampler, make_sampler
from search.space import SpaceError, load_space
from search.strata import ALL, stratum_key
from tests.search.study_harness import Harness, harness

optuna.logging.set_verbosity(optuna.logging.WARNING)

BASE: dict[str, Any] = {
    "name": "d",
    "metric": {"name": "val_psnr", "goal": "maximize"},
    "data": {"root": "data/synthetic-small", "synthetic": "small"},
    "trials": {"num_samples": 9, "max_concurrent": 1},
    "sampler": {"type": "tpe", "seed": 0, "n_startup_trials": 1},
    "early_terminate": {"type": "asha", "grace_period": 1, "reduction_factor": 2},
    "fixed": {"num_epoch": 4, "val_vi_len": 16, "train_vi_len": 4},
    "parameters": {
        "kl_anneal_type": {"values": ["Cyclical", "Monotonic", "None"], "role": "scientific"},
        "kl_anneal_ratio": {"distribution": "uniform", "min": 0.25, "max": 1.0,
                            "when": {"kl_anneal_type": ["Cyclical", "Monotonic"]}},
        "lr": {"distribution": "log_uniform_values", "min": 1.0e-4, "max": 1.0e-2},
    },
}
PAIR = {  # a conditional scientific pair: type x cycle (cycle only under Cyclical)
    "kl_anneal_type": {"values": ["Cyclical", "Monotonic", "None"], "role": "scientific"},
    "kl_anneal_cycle": {"values": [1, 2], "when": {"kl_anneal_type": "Cyclical"}, "role": "scientific"},
    "lr": {"distribution": "log_uniform_values", "min": 1.0e-4, "max": 1.0e-2},
}


def space_file(tmp_path: Path, edit=None, name: str = "space.yaml") -> Path:
    doc = copy.deepcopy(BASE)
    if edit:
        edit(doc)
    path = tmp_path / name
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def rejects(tmp_path: Path, edit, key: str, rule: str) -> None:
    with pytest.raises(SpaceError) as info:
        load_space(space_file(tmp_path, edit))
    assert key in str(info.value) and rule in str(info.value), str(info.value)


# --------------------------------------------------------------------------- #
# Strata and their rules
# --------------------------------------------------------------------------- #
def test_strata_of_one_scientific_parameter_and_of_a_conditional_pair(tmp_path):
    one = load_space(space_file(tmp_path))
    assert [s.key for s in one.strata()] == ["Cyclical", "Monotonic", "None"]
    pair = load_space(space_file(tmp_path, lambda d: d.update(parameters=PAIR), "pair.yaml"))
    assert [s.key for s in pair.strata()] == [
        "kl_anneal_type=Cyclical, kl_anneal_cycle=1", "kl_anneal_type=Cyclical, kl_anneal_cycle=2",
        "kl_anneal_type=Monotonic", "kl_anneal_type=None"]
    assert pair.strata()[1].values == {"kl_anneal_type": "Cyclical", "kl_anneal_cycle": 2}
    assert stratum_key({"lr": 1.0}, []) == ALL


def test_defaults_balanced_with_three_reeval_seeds_and_free_without_scientific(tmp_path):
    space = load_space(space_file(tmp_path))
    assert space.strata_mode == "balanced" and space.reeval_seeds == 3
    assert [space.reeval_seed(i) for i in (1, 2, 3)] == [1001, 2001, 3001]  # fixed seed 1 (default)
    plain = load_space(space_file(tmp_path, lambda d: d["parameters"]["kl_anneal_type"].pop("role"), "p.yaml"))
    assert plain.strata_mode == "free" and plain.reeval_seeds == 0 and [s.key for s in plain.strata()] == [ALL]


@pytest.mark.parametrize("what, edit, key, rule", [
    ("too few trials for 2 per stratum", lambda d: d["trials"].update(num_samples=5),
     "trials.num_samples is 5", "must be >= 6 so that each of the 3 strata"),
    ("continuous scientific", lambda d: d["parameters"]["lr"].update(role="scientific"),
     "parameters.lr.role", "give it as values"),
    ("scientific depending on a nuisance", lambda d: d["parameters"].update(
        optimizer={"values": ["Adam", "AdamW"]},
        weight_decay={"values": [0.0, 0.1], "role": "scientific", "when": {"optimizer": "AdamW"}}),
     "parameters.weight_decay.when.optimizer", "may depend only on scientific parameters"),
    ("unknown strata mode", lambda d: d["trials"].update(strata="fair"), "trials.strata", "must be one of"),
    ("negative reeval seeds", lambda d: d.update(reeval={"seeds": -1}), "reeval.seeds", "must be >= 0"),
    ("unknown reeval key", lambda d: d.update(reeval={"seed": 2}), "reeval.seed", "is an unknown key"),
    ("seed searched while re-runs set it", lambda d: d["parameters"].update(seed={"values": [1, 2]}),
     "parameters.seed", "re-evaluation sets each re-run's training seed"),
    ("brackets without rungs", lambda d: d["early_terminate"].update(brackets=4),
     "early_terminate.brackets is 4", "must be <= 3"),
    ("grid over a range", lambda d: d["sampler"].update(type="grid", n_startup_trials=None) or
     d["sampler"].pop("n_startup_trials"), "parameters.kl_anneal_ratio.distribution", "sampler grid needs"),
])
def test_study_design_rules_name_the_key(tmp_path, what, edit, key, rule):
    rejects(tmp_path, edit, key, rule)


def _grid(d: dict) -> None:
    d["sampler"] = {"type": "grid", "seed": 0}
    d["trials"].pop("num_samples")
    d["parameters"] = {"kl_anneal_type": {"values": ["Cyclical", "Monotonic", "None"], "role": "scientific"},
                       "tfr": {"values": [1.0, 0.0], "role": "scientific"},
                       "optimizer": {"value": "Adam"}}


def test_grid_size_is_the_product_and_a_conflicting_count_is_an_error(tmp_path):
    space = load_space(space_file(tmp_path, _grid))
    assert space.num_samples == 6 and space.strata_mode == "free" and len(space.strata()) == 6
    rejects(tmp_path, lambda d: (_grid(d), d["trials"].update(num_samples=7)),
            "trials.num_samples is 7", "must be 6 (the number of combinations")
    rejects(tmp_path, lambda d: (_grid(d), d["parameters"].update(
        kl_anneal_cycle={"values": [1, 2], "when": {"kl_anneal_type": "Cyclical"}})),
        "parameters.kl_anneal_cycle.when", "conditional parameters are not supported")


def test_dry_run_text_names_each_stratum_and_when_it_can_first_be_stopped(tmp_path):
    text = load_space(space_file(tmp_path)).describe()
    # ratio in [0.25, 1] over 4 epochs: Monotonic's beta peaks at epoch 2 (ratio .25) .. 4 (ratio 1)
    assert "Monotonic: stopped no earlier than epoch 2..4 (by its KL schedule)" in text
    assert "None: stopped no earlier than epoch 1" in text
    assert "balanced: trials handed out round-robin over 3 strata" in text
    assert "3 more seeds (1001, 2001, 3001)" in text
    # each stratum's beta schedule in words, over the ranges its trials can draw
    assert "    beta: rising from 0 to 1 over the first 25%-100% of the 4 epochs, then 1" in text
    assert "    beta: 1 throughout (no annealing)" in text


# --------------------------------------------------------------------------- #
# Samplers: what the YAML turns into
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("kind", ["tpe", "random", "qmc", "grid"])
def test_make_sampler_builds_what_the_yaml_says(tmp_path, kind):
    def edit(d):
        if kind == "grid":
            _grid(d)
        else:
            d["sampler"] = {"type": kind, "seed": 7, **({"n_startup_trials": 5} if kind == "tpe" else {})}
    space = load_space(space_file(tmp_path, edit))
    sampler = make_sampler(space, max_concurrent=2)
    assert isinstance(sampler, StratifiedSampler)
    base = sampler.base
    expected = {"tpe": optuna.samplers.TPESampler, "random": optuna.samplers.RandomSampler,
                "qmc": optuna.samplers.QMCSampler, "grid": optuna.samplers.GridSampler}[kind]
    assert type(base) is expected
    if kind == "tpe":
        assert base._multivariate and base._group and base._constant_liar and base._n_startup_trials == 5
        assert not make_sampler(space, max_concurrent=1).base._constant_liar
        # each stratum has its own TPE with its own seed
        assert sampler.sampler_for("Cyclical") is not sampler.sampler_for("None")
    if kind == "qmc":
        assert base._qmc_type == "sobol" and base._scramble
    if kind == "grid":
        assert base._search_space == {"kl_anneal_type": ["Cyclical", "Monotonic", "None"], "optimizer": ["Adam"],
                                      "tfr": [1.0, 0.0]}


def test_stratum_view_shows_only_that_stratums_search_trials():
    study = optuna.create_study(direction="maximize")
    for stratum, phase in [("A", "search"), ("B", "search"), ("A", "reeval"), ("A", "search")]:
        trial = study.ask()
        trial.suggest_float("x", 0, 1)
        trial.set_user_attr("stratum", stratum)
        trial.set_user_attr("phase", phase)
        study.tell(trial, 1.0)
    view = StratumView(study, "A")
    assert [t.number for t in view._get_trials(deepcopy=False, states=None, use_cache=True)] == [0, 3]
    assert [t.number for t in StratumView(study, None).get_trials()] == [0, 1, 3]
    assert view.direction == study.direction  # everything else is the real study


# --------------------------------------------------------------------------- #
# The searcher: balance and re-evaluation on a real study (no Ray start)
# --------------------------------------------------------------------------- #
def _searcher(tmp_path: Path, space_path: Path) -> Harness:
    plan = make_plan(space_path, storage_path=tmp_path / "runs")
    return harness(tmp_path, plan.space.define_by_run, max_t=plan.num_epoch, design=make_design(plan),
                   sampler=make_sampler(plan.space, 1), name="d")


def _finish(searcher: Harness, trial_id: str, value: float, epochs: int) -> None:
    for epoch in range(1, epochs + 1):
        searcher.result(trial_id, {"val_psnr": value - (epochs - epoch), "epoch": epoch})
    searcher.complete(trial_id, {"val_psnr": value, "epoch": epochs})


def test_balanced_strata_get_three_each_and_nuisance_is_sampled_within(tmp_path):
    searcher = _searcher(tmp_path, space_file(tmp_path, lambda d: d.update(reeval={"seeds": 0})))
    configs = []
    for i in range(9):
        config = searcher.suggest(f"t{i}")
        configs.append(config)
        _finish(searcher, f"t{i}", 20.0 + i, epochs=4)
    assert Counter(c["stratum"] for c in configs) == {"Cyclical": 3, "Monotonic": 3, "None": 3}
    assert all(c["kl_anneal_type"] == c["stratum"] and c["phase"] == "search" for c in configs)
    assert searcher.suggest("t9") == "FINISHED"
    study = searcher.study
    assert [t.user_attrs["stratum"] for t in study.trials] == [c["stratum"] for c in configs]


def test_a_conditional_scientific_pair_is_balanced_over_its_allowed_combinations(tmp_path):
    path = space_file(tmp_path, lambda d: d.update(parameters=PAIR, reeval={"seeds": 0},
                                                  trials={"num_samples": 8}))
    searcher = _searcher(tmp_path, path)
    configs = [searcher.suggest(f"t{i}") for i in range(8)]  # all running at once: counts include running
    counts = Counter((c["kl_anneal_type"], c.get("kl_anneal_cycle")) for c in configs)
    assert counts == {("Cyclical", 1): 2, ("Cyclical", 2): 2, ("Monotonic", None): 2, ("None", None): 2}


def test_reeval_waits_for_the_search_then_reruns_each_best_once(tmp_path):
    searcher = _searcher(tmp_path, space_file(tmp_path, lambda d: d.update(reeval={"seeds": 2}, trials={
        "num_samples": 6})))
    configs = {f"t{i}": searcher.suggest(f"t{i}") for i in range(6)}
    finals = {"t0": 30.0, "t1": 25.0, "t2": 21.0, "t3": 29.0, "t4": 26.0, "t5": 22.0}
    for tid in ("t0", "t1", "t2", "t3", "t4"):
        _finish(searcher, tid, finals[tid], epochs=4)
    assert searcher.suggest("early") is None  # t5 still runs: the bests are not known yet
    _finish(searcher, "t5", finals["t5"], epochs=2)  # stopped early: PRUNED, not COMPLETE
    reevals = {f"r{i}": searcher.suggest(f"r{i}") for i in range(6)}
    assert searcher.suggest("r6") == "FINISHED"
    # Round-robin: t0/t3 Cyclical, t1/t4 Monotonic, t2/t5 None. None's best is t2 (completed, 21 dB):
    # a completed run beats t5, stopped at 22 dB after 2 of 4 epochs.
    assert [configs[f"t{i}"]["stratum"] for i in range(6)] == ["Cyclical", "Monotonic", "None"] * 2
    best = {"Cyclical": "t0", "Monotonic": "t4", "None": "t2"}
    by_stratum: dict[str, list[dict]] = {}
    for config in reevals.values():
        assert config["phase"] == "reeval"
        by_stratum.setdefault(config["stratum"], []).append(config)
    assert sorted(by_stratum) == ["Cyclical", "Monotonic", "None"]
    for stratum, runs in by_stratum.items():
        assert sorted(r["seed"] for r in runs) == [1001, 2001]
        original = configs[best[stratum]]
        assert all(r["lr"] == original["lr"] for r in runs)  # the same configuration again
    # the re-runs never reach a stratum's sampler, and the study says what each trial is
    study = searcher.study
    phases = Counter(t.user_attrs["phase"] for t in study.trials)
    assert phases == {"search": 6, "reeval": 6}
    stopped = next(t for t in study.trials if t.user_attrs.get("attempts") == ["t5"])
    assert stopped.state == optuna.trial.TrialState.PRUNED
    assert all(t.user_attrs["reeval_of"] == configs[best[t.user_attrs["stratum"]]]["study_trial"]
               for t in study.trials if t.user_attrs["phase"] == "reeval")


def test_qmc_sampler_really_samples_within_strata(tmp_path):
    """sampler: qmc draws (Optuna's QMCSampler needs scipy at the first draw, not at construction)."""
    searcher = _searcher(tmp_path, space_file(tmp_path, lambda d: d.update(
        reeval={"seeds": 0}, sampler={"type": "qmc", "seed": 0}, trials={"num_samples": 6})))
    configs = []
    for i in range(6):
        configs.append(searcher.suggest(f"t{i}"))
        _finish(searcher, f"t{i}", 20.0 + i, epochs=4)
    assert Counter(c["stratum"] for c in configs) == {"Cyclical": 2, "Monotonic": 2, "None": 2}
    assert all(1e-4 <= c["lr"] <= 1e-2 for c in configs) and len({c["lr"] for c in configs}) == 6
