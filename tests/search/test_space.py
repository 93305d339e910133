"""search.space: the shipped spaces load, every rule rejects with file + key + rule,
and define-by-run sampling follows `when` and the W&B distributions."""
from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any, Callable

import optuna
import pytest
import yaml

from cvae.families.lab4_2024.config import TrainConfig
from search.space import SearchSpace, SpaceError, load_space

REPO = Path(__file__).resolve().parents[2]
SHIPPED = sorted((REPO / "spaces").glob("*.yaml"))

optuna.logging.set_verbosity(optuna.logging.WARNING)

BASE: dict[str, Any] = {
    "name": "t",
    "metric": {"name": "val_psnr", "goal": "maximize"},
    "data": {"root": "data/synthetic-small", "synthetic": "small"},
    "trials": {"num_samples": 6, "max_concurrent": 2, "resources": {"cpu": 1, "gpu": 0}},
    "sampler": {"type": "random", "seed": 0},
    "early_terminate": {"type": "asha", "grace_period": 2, "reduction_factor": 3},
    "reeval": {"seeds": 0},  # tests below search `seed` as a plain int field
    "fixed": {"num_epoch": 8, "val_vi_len": 16, "train_vi_len": 4},
    "parameters": {
        "kl_anneal_type": {"values": ["Cyclical", "Monotonic", "None"], "role": "scientific"},
        "kl_anneal_cycle": {"distribution": "int_uniform", "min": 1, "max": 8,
                            "when": {"kl_anneal_type": "Cyclical"}},
        "kl_anneal_ratio": {"distribution": "uniform", "min": 0.1, "max": 1.0,
                            "when": {"kl_anneal_type": ["Cyclical", "Monotonic"]}},
        "optimizer": {"values": ["Adam", "AdamW"]},
        "lr": {"distribution": "log_uniform_values", "min": 1.0e-4, "max": 1.0e-2},
    },
}


def write(tmp_path: Path, doc: Any, name: str = "space.yaml") -> Path:
    path = tmp_path / name
    path.write_text(doc if isinstance(doc, str) else yaml.safe_dump(doc, sort_keys=False))
    return path


def edited(edit: Callable[[dict], None]) -> dict:
    doc = copy.deepcopy(BASE)
    edit(doc)
    return doc


def sample(space: SearchSpace, n: int, seed: int = 0) -> list[tuple[dict, dict]]:
    """(returned dict, Optuna's recorded params) for n trials of a real study."""
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed), direction="maximize")
    out = []
    for _ in range(n):
        trial = study.ask()
        values = space.define_by_run(trial)
        out.append((values, dict(trial.params)))
        study.tell(trial, 0.0)
    return out


# --------------------------------------------------------------------------- #
# Shipped spaces
# --------------------------------------------------------------------------- #
def test_all_shipped_spaces_are_present() -> None:
    assert {p.name for p in SHIPPED} >= {"quick.yaml", "lab.yaml", "strategies.yaml"}


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_space_loads_and_describes_itself(path: Path) -> None:
    # A W&B sweep file has no data block: run_search.py takes --data.
    has_data = "data" in yaml.safe_load(path.read_text())
    space = load_space(path, data=None if has_data else "data/synthetic-small")
    assert space.name == path.stem
    assert path.read_text().startswith("#")  # each file opens with what it is for and how long it takes
    text = space.describe()
    for name in space.parameter_names():
        assert name in text
    for key in space.fixed:
        assert f"{key} = " in text
    # every sampled configuration is a valid TrainConfig
    for values, _ in sample(space, 10):
        space.train_config(values)


def test_quick_space_is_the_cpu_demo() -> None:
    space = load_space(REPO / "spaces" / "quick.yaml")
    assert space.gpu == 0 and space.synthetic == "small"
    assert space.scientific_parameters() == ["kl_anneal_type"]
    # issue 11: every KL strategy gets at least 4 search trials and a re-evaluated best
    assert space.strata_mode == "balanced" and space.num_samples >= 4 * len(space.strata())
    assert space.reeval_seeds >= 2 and space.reeval_equivalence == 0.5  # the default margin
    assert space.asha is not None and space.asha.rungs() == [2, 6]
    cfg = space.train_config({})
    # the LR must not be cut 10x at epoch 2 (the template's milestones) in an 8-epoch demo
    assert min(cfg.milestones) > space.asha.grace_period


def test_quick_space_samples_the_decay_only_when_teacher_forcing_is_on() -> None:
    space = load_space(REPO / "spaces" / "quick.yaml")
    drawn = [values for values, _ in sample(space, 60, seed=3)]
    off = [v for v in drawn if v["tfr"] == 0.0]
    on = [v for v in drawn if v["tfr"] > 0.0]
    assert off and on
    assert all("tfr_sde" not in v and "tfr_d_step" not in v for v in off)
    assert all("tfr_sde" in v and "tfr_d_step" in v for v in on)
    # the measured 6-epoch range (bench/efficiency.py): no lr below 1.2e-3, no Adamax/ASGD
    assert all(1.2e-3 <= v["lr"] <= 4.5e-3 and v["optimizer"] in ("Adam", "AdamW") for v in drawn)


def test_lab_space_uses_lab_dims_and_fractional_gpus() -> None:
    space = load_space(REPO / "spaces" / "lab.yaml")
    cfg = space.train_config({})
    assert (cfg.F_dim, cfg.L_dim, cfg.N_dim, cfg.D_out_dim) == (128, 32, 12, 192)
    assert (cfg.frame_H, cfg.frame_W, cfg.val_vi_len) == (32, 64, 630)
    assert space.num_epoch >= 70 and 0 < space.gpu < 1 and space.synthetic is None


# --------------------------------------------------------------------------- #
# Rejected inputs: (edit of BASE, key path named, rule named)
# --------------------------------------------------------------------------- #
def _set(path: str, value: Any) -> Callable[[dict], None]:
    def edit(doc: dict) -> None:
        *parents, last = path.split("/")
        node = doc
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value
    return edit


def _drop(path: str) -> Callable[[dict], None]:
    def edit(doc: dict) -> None:
        *parents, last = path.split("/")
        node = doc
        for p in parents:
            node = node[p]
        del node[last]
    return edit


REJECTED = [
    ("unknown top-level key", _set("trails", {}), "trails", "did you mean 'trials'"),
    ("missing parameters", _drop("parameters"), "parameters is missing", "required"),
    ("unknown parameter key", _set("parameters/lr/mni", 1), "parameters.lr.mni", "did you mean 'min'"),
    ("unknown field searched", _set("parameters/lrr", {"values": [0.1]}), "parameters.lrr",
     "did you mean 'lr'"),
    ("unknown field fixed", _set("fixed/num_epochs", 3), "fixed.num_epochs", "did you mean 'num_epoch'"),
    ("fixed wrong type", _set("fixed/num_epoch", "eight"), "fixed.num_epoch", "must be an integer"),
    ("fixed out of range", _set("fixed/kl_anneal_ratio", -0.5), "fixed.kl_anneal_ratio", "must be > 0"),
    ("fixed and searched", _set("fixed/lr", 0.001), "parameters.lr is searched", "also fixed (fixed.lr = 0.001)"),
    ("min >= max", _set("parameters/lr", {"distribution": "uniform", "min": 0.01, "max": 0.001}),
     "parameters.lr.min", "must be < max"),
    ("min == max", _set("parameters/kl_anneal_cycle/max", 1), "parameters.kl_anneal_cycle.min", "must be < max"),
    ("log bound <= 0", _set("parameters/lr/min", 0), "parameters.lr.min", "must be > 0 for log_uniform_values"),
    ("empty values", _set("parameters/optimizer/values", []), "parameters.optimizer.values",
     "must be a non-empty list"),
    ("q <= 0", _set("parameters/tfr_d_step", {"distribution": "q_uniform", "min": 0, "max": 0.3, "q": 0}),
     "parameters.tfr_d_step.q", "must be > 0"),
    ("q without multiple in range",
     _set("parameters/tfr_d_step", {"distribution": "q_uniform", "min": 0.11, "max": 0.19, "q": 0.1}),
     "parameters.tfr_d_step.q", "has no multiple inside [min, max]"),
    ("fractional q on int field",
     _set("parameters/tfr_sde", {"distribution": "q_uniform", "min": 0, "max": 10, "q": 2.5}),
     "parameters.tfr_sde.q", "must be a whole number"),
    ("q on a distribution without q", _set("parameters/lr/q", 0.001), "parameters.lr.q", "does not apply"),
    ("bound invalid for field", _set("parameters/kl_anneal_ratio/min", -0.5), "parameters.kl_anneal_ratio.min",
     "kl_anneal_ratio must be > 0"),
    ("categorical value invalid", _set("parameters/optimizer/values", ["Adam", "Adamm"]),
     "parameters.optimizer.values[1]", "must be one of"),
    ("categorical value wrong type", _set("parameters/tfr_sde", {"values": [0, "ten"]}),
     "parameters.tfr_sde.values[1]", "must be an integer"),
    ("duplicate categorical value", _set("parameters/optimizer/values", ["Adam", "Adam"]),
     "parameters.optimizer.values[1]", "may appear once"),
    ("alias duplicates canonical value", _set("parameters/kl_anneal_type/values", ["Cyclical", "Cyclic"]),
     "parameters.kl_anneal_type.values[1]", "may appear once"),
    ("int_uniform with float bound", _set("parameters/kl_anneal_cycle/min", 1.5),
     "parameters.kl_anneal_cycle.min", "must be an integer"),
    ("float distribution on int field", _set("parameters/tfr_sde", {"distribution": "uniform", "min": 0, "max": 9.5}),
     "parameters.tfr_sde.distribution", "integer field"),
    ("range on a string field", _set("parameters/optimizer", {"distribution": "uniform", "min": 0, "max": 1}),
     "parameters.optimizer.distribution", "list its choices under values"),
    ("list field searched", _set("parameters/milestones", {"values": [[2, 5], [4, 6]]}),
     "parameters.milestones.values", "put it under fixed"),
    ("num_epoch searched", _set("parameters/num_epoch", {"values": [4, 8]}), "parameters.num_epoch",
     "put it under fixed"),
    ("unknown distribution", _set("parameters/lr/distribution", "loguniform"), "parameters.lr.distribution",
     "must be one of"),
    ("no values, value or range", _set("parameters/lr", {"role": "nuisance"}), "parameters.lr", "needs values"),
    ("missing max", _drop("parameters/lr/max"), "parameters.lr.max is missing", "needs"),
    ("values with min", _set("parameters/optimizer/min", 1), "parameters.optimizer.min", "does not apply"),
    ("bad role", _set("parameters/lr/role", "science"), "parameters.lr.role", "did you mean 'scientific'"),
    ("when names unknown parameter", _set("parameters/kl_anneal_cycle/when", {"kl_type": "Cyclical"}),
     "parameters.kl_anneal_cycle.when.kl_type", "did you mean 'kl_anneal_type'"),
    ("when names a fixed field",
     lambda d: (_set("fixed/tfr", 0.5)(d), _set("parameters/kl_anneal_cycle/when", {"tfr": 0.5})(d)),
     "parameters.kl_anneal_cycle.when.tfr", "is fixed, not searched"),
    ("when value never taken", _set("parameters/kl_anneal_cycle/when", {"kl_anneal_type": "Linear"}),
     "parameters.kl_anneal_cycle.when.kl_anneal_type", "never takes it"),
    ("when value outside an int range", _set("parameters/kl_anneal_ratio/when", {"kl_anneal_cycle": 9}),
     "parameters.kl_anneal_ratio.when.kl_anneal_cycle", "never takes it"),
    ("when on a continuous parameter", _set("parameters/optimizer/when", {"lr": 0.001}),
     "parameters.optimizer.when.lr", "needs a categorical or integer parameter"),
    ("when on itself", _set("parameters/optimizer/when", {"optimizer": "Adam"}),
     "parameters.optimizer.when.optimizer", "cannot depend on itself"),
    ("when cycle", lambda d: (_set("parameters/optimizer/when", {"kl_anneal_cycle": 2})(d),
                              _set("parameters/kl_anneal_cycle/when", {"optimizer": "Adam"})(d)),
     "parameters.", "form a cycle"),
    ("num_samples < 1", _set("trials/num_samples", 0), "trials.num_samples", "must be >= 1"),
    ("num_samples not an integer", _set("trials/num_samples", "many"), "trials.num_samples", "must be an integer"),
    ("max_concurrent < 1", _set("trials/max_concurrent", 0), "trials.max_concurrent", "must be >= 1"),
    ("gpu above 1 not whole", _set("trials/resources/gpu", 1.5), "trials.resources.gpu", "whole number"),
    ("negative gpu", _set("trials/resources/gpu", -1), "trials.resources.gpu", "must be >= 0"),
    ("zero cpu", _set("trials/resources/cpu", 0), "trials.resources.cpu", "must be > 0"),
    ("unknown resource", _set("trials/resources/gpus", 1), "trials.resources.gpus", "did you mean 'gpu'"),
    ("bad goal", _set("metric/goal", "maximise"), "metric.goal", "did you mean 'maximize'"),
    ("unknown metric", _set("metric/name", "psnr"), "metric.name", "must be one of"),
    ("bad sampler", _set("sampler/type", "cmaes"), "sampler.type", "must be one of"),
    ("startup trials for random", _set("sampler/n_startup_trials", 4), "sampler.n_startup_trials",
     "applies only to type tpe"),
    ("grace period past num_epoch", _set("early_terminate/grace_period", 9), "early_terminate.grace_period",
     "must be <= num_epoch (8)"),
    ("reduction factor 1", _set("early_terminate/reduction_factor", 1), "early_terminate.reduction_factor",
     "must be > 1"),
    ("asha settings without asha", lambda d: d.update(early_terminate={"type": "none", "grace_period": 2}),
     "early_terminate.grace_period", "applies only to type asha"),
    ("unknown synthetic preset", _set("data/synthetic", "tiny"), "data.synthetic", "must be one of"),
    ("val clip longer than the preset's video", _drop("fixed/val_vi_len"), "val_vi_len (the TrainConfig default; set fixed.val_vi_len)",
     "val video length of synthetic preset 'small'"),
    ("searched val clip too long", lambda d: (_drop("fixed/val_vi_len")(d),
                                              _set("parameters/val_vi_len", {"values": [16, 128]})(d)),
     "parameters.val_vi_len.values[1]", "val video length"),
    ("name not a folder name", _set("name", "a/b"), "name", "must be a folder name"),
    ("negative equivalence margin", _set("reeval", {"seeds": 0, "equivalence_db": -0.5}),
     "reeval.equivalence_db", "must be >= 0"),
    ("equivalence margin not a number", _set("reeval", {"seeds": 0, "equivalence_db": "half a dB"}),
     "reeval.equivalence_db", "must be a finite number"),
    ("parameters not a mapping", _set("parameters", ["lr"]), "parameters", "must be a mapping"),
]


@pytest.mark.parametrize(("edit", "key", "rule"), [c[1:] for c in REJECTED], ids=[c[0] for c in REJECTED])
def test_rejected_input_names_file_key_and_rule(tmp_path: Path, edit: Callable, key: str, rule: str) -> None:
    path = write(tmp_path, edited(edit))
    with pytest.raises(SpaceError) as info:
        load_space(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ")
    assert key in message
    assert rule in message


def test_missing_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(SpaceError, match=r"nope\.yaml: cannot read the search space \(No such file"):
        load_space(path)


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    text = yaml.safe_dump(BASE, sort_keys=False).replace("trials:\n", "trials:\n  num_samples: [6\n", 1)
    line = text.splitlines().index("  num_samples: [6") + 1
    path = write(tmp_path, text)
    with pytest.raises(SpaceError) as info:
        load_space(path)
    assert str(info.value).startswith(f"{path}: line ")
    assert "is not valid YAML" in str(info.value)
    # the parser reports the first line it cannot continue from: at or just after the broken one
    reported = int(str(info.value).split("line ")[1].split(",")[0])
    assert line <= reported <= line + 2


def test_key_written_twice_is_an_error_not_a_silent_overwrite(tmp_path: Path) -> None:
    text = yaml.safe_dump(BASE, sort_keys=False)
    text += "  lr: {values: [0.1]}\n"  # a second `lr:` under parameters
    path = write(tmp_path, text)
    with pytest.raises(SpaceError) as info:
        load_space(path)
    assert f"{path}: line {len(text.splitlines())}" in str(info.value)
    assert "'lr' is written twice" in str(info.value)


def test_empty_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(SpaceError, match="the file is empty"):
        load_space(write(tmp_path, ""))


# --------------------------------------------------------------------------- #
# Parsing details
# --------------------------------------------------------------------------- #
def test_defaults_and_fields(tmp_path: Path) -> None:
    doc = edited(lambda d: (d.pop("metric"), d.pop("sampler"), d.pop("early_terminate"),
                            d["trials"].pop("resources"), d["trials"].pop("max_concurrent")))
    space = load_space(write(tmp_path, doc))
    assert (space.metric, space.mode) == ("val_psnr", "max")
    assert (space.cpu, space.gpu, space.max_concurrent, space.max_failures, space.checkpoint_every) == (1, 0, None, 2, 1)
    assert space.asha is None and space.sampler.type == "tpe" and space.sampler.seed is None
    assert space.data_root == Path("data/synthetic-small") and space.raw["name"] == "t"
    assert space.num_epoch == 8


def test_minimize_and_fractional_gpu(tmp_path: Path) -> None:
    doc = edited(lambda d: (_set("metric/goal", "minimize")(d), _set("metric/name", "train_loss")(d),
                            _set("trials/resources/gpu", 0.25)(d)))
    space = load_space(write(tmp_path, doc))
    assert space.mode == "min" and space.gpu == 0.25


def test_yaml_null_and_aliases_mean_kl_type_names(tmp_path: Path) -> None:
    text = yaml.safe_dump(BASE, sort_keys=False).replace(
        "    - Cyclical\n    - Monotonic\n    - None\n", "    - Cyclic\n    - Monotonic\n    - null\n")
    assert "null" in text
    space = load_space(write(tmp_path, text))
    assert space.parameter("kl_anneal_type").choices == ("Cyclical", "Monotonic", "None")


def test_exponent_without_dot_is_a_number(tmp_path: Path) -> None:
    # PyYAML alone reads 1e-4 as the string '1e-4'; W&B sweep files write it that way.
    text = yaml.safe_dump(BASE, sort_keys=False).replace("min: 0.0001", "min: 1e-4")
    assert "min: 1e-4" in text
    assert load_space(write(tmp_path, text)).parameter("lr").low == 1e-4


def test_distribution_is_inferred_as_wandb_does(tmp_path: Path) -> None:
    doc = edited(lambda d: d["parameters"].update(
        val_every={"min": 1, "max": 3}, gamma={"min": 0.1, "max": 0.9}, seed={"value": 7}))
    space = load_space(write(tmp_path, doc))
    assert space.parameter("val_every").kind == "int_uniform"
    assert space.parameter("gamma").kind == "uniform"
    assert space.parameter("seed").kind == "constant"


def test_when_may_name_a_parameter_defined_later(tmp_path: Path) -> None:
    # kl_anneal_cycle is written first, but is sampled after kl_anneal_type
    doc = edited(lambda d: d.update(parameters={
        "kl_anneal_cycle": d["parameters"]["kl_anneal_cycle"],
        "lr": d["parameters"]["lr"],
        "kl_anneal_type": d["parameters"]["kl_anneal_type"]}))
    space = load_space(write(tmp_path, doc))
    assert space.parameter_names() == ["lr", "kl_anneal_type", "kl_anneal_cycle"]


# --------------------------------------------------------------------------- #
# Sampling
# --------------------------------------------------------------------------- #
def test_conditional_parameters_are_sampled_only_when_their_condition_holds(tmp_path: Path) -> None:
    space = load_space(write(tmp_path, BASE))
    seen = set()
    for values, recorded in sample(space, 30):
        kind = values["kl_anneal_type"]
        seen.add(kind)
        assert ("kl_anneal_cycle" in values) == (kind == "Cyclical")
        assert ("kl_anneal_ratio" in values) == (kind in ("Cyclical", "Monotonic"))
        assert set(recorded) == set(values)  # Optuna saw exactly the parameters that were drawn
        cfg = space.train_config(values)
        assert cfg.kl_anneal_type == kind and cfg.num_epoch == 8
    assert seen == {"Cyclical", "Monotonic", "None"}


ALL_KINDS: dict[str, Any] = {
    "tfr_sde": {"distribution": "int_uniform", "min": 0, "max": 12},
    "tfr": {"distribution": "uniform", "min": 0.2, "max": 0.8},
    "tfr_d_step": {"distribution": "q_uniform", "min": 0.05, "max": 0.33, "q": 0.1},
    "fast_train_epoch": {"distribution": "q_uniform", "min": 3, "max": 31, "q": 5},
    "lr": {"distribution": "log_uniform_values", "min": 1.0e-4, "max": 1.0e-2},
    "kl_anneal_cycle": {"distribution": "q_log_uniform_values", "min": 1, "max": 64},
    "weight_decay": {"distribution": "q_log_uniform_values", "min": 1.0e-5, "max": 1.0e-2, "q": 1.0e-5},
    "val_every": {"distribution": "q_log_uniform_values", "min": 2, "max": 40, "q": 4},
    "grad_clip": {"distribution": "int_uniform", "min": 0, "max": 1},  # ints on a float field
    "fast_train": {"values": [True, False]},
    "seed": {"value": 3},
}


def test_every_distribution_stays_in_bounds_with_the_field_type_and_q(tmp_path: Path) -> None:
    doc = edited(lambda d: d.update(parameters=ALL_KINDS))
    space = load_space(write(tmp_path, doc))
    draws = [values for values, _ in sample(space, 80)]

    def column(name: str) -> list[Any]:
        return [d[name] for d in draws]

    def on_grid(v: float, q: float) -> bool:
        return math.isclose(v / q, round(v / q), abs_tol=1e-9)

    assert all(type(v) is int and 0 <= v <= 12 for v in column("tfr_sde"))
    assert all(type(v) is float and 0.2 <= v <= 0.8 for v in column("tfr"))
    # W&B would round 0.05 down to 0.0; here every value is a multiple of q inside [min, max]
    assert set(column("tfr_d_step")) == {0.1, 0.2, 0.3}
    assert set(column("fast_train_epoch")) <= {5, 10, 15, 20, 25, 30}
    assert all(type(v) is int for v in column("fast_train_epoch"))
    assert all(type(v) is float and 1e-4 <= v <= 1e-2 for v in column("lr"))
    assert all(type(v) is int and 1 <= v <= 64 for v in column("kl_anneal_cycle"))
    assert all(type(v) is float and 1e-5 <= v <= 1e-2 and on_grid(v, 1e-5) for v in column("weight_decay"))
    assert all(type(v) is int and 4 <= v <= 40 and v % 4 == 0 for v in column("val_every"))
    assert set(column("grad_clip")) == {0.0, 1.0} and all(type(v) is float for v in column("grad_clip"))
    assert set(column("fast_train")) == {True, False}
    assert set(column("seed")) == {3}
    # log scale: about half the draws fall below the geometric mean (1e-3), not ~10%
    low = sum(v < 1e-3 for v in column("lr")) / len(draws)
    assert 0.3 < low < 0.7
    for values in draws:
        cfg = space.train_config(values)
        assert cfg.num_epoch == 8 and cfg.val_vi_len == 16  # fixed values kept
        assert all(getattr(cfg, k) == v for k, v in values.items())


def test_tpe_sampler_draws_the_same_space(tmp_path: Path) -> None:
    space = load_space(write(tmp_path, BASE))
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=1, n_startup_trials=3), direction="maximize")
    for i in range(8):
        trial = study.ask()
        values = space.define_by_run(trial)
        assert ("kl_anneal_cycle" in values) == (values["kl_anneal_type"] == "Cyclical")
        study.tell(trial, float(i))


def test_train_config_lays_sampled_over_fixed_over_defaults(tmp_path: Path) -> None:
    space = load_space(write(tmp_path, BASE))
    cfg = space.train_config({"lr": 0.005, "kl_anneal_type": "Monotonic"})
    assert (cfg.lr, cfg.kl_anneal_type, cfg.num_epoch, cfg.val_vi_len) == (0.005, "Monotonic", 8, 16)
    assert cfg.batch_size == TrainConfig().batch_size
    with pytest.raises(SpaceError, match="unknown TrainConfig field 'lrr'"):
        space.train_config({"lrr": 0.1})


def test_describe_shows_parameters_conditions_roles_and_plan(tmp_path: Path) -> None:
    space = load_space(write(tmp_path, BASE))
    text = space.describe()
    for name in BASE["parameters"]:
        assert name in text
    assert "when kl_anneal_type = 'Cyclical'" in text
    assert "when kl_anneal_type in ['Cyclical', 'Monotonic']" in text
    assert "scientific" in text and "log_uniform_values [0.0001, 0.01]" in text
    assert "num_epoch = 8" in text and "epochs 2, 6" in text
    assert "6 samples, 2 at a time" in text


@pytest.mark.parametrize(("grace", "factor", "max_t"), [(2, 3, 8), (1, 2, 16), (10, 3, 100), (3, 4, 3)])
def test_asha_rungs_match_ray(grace: int, factor: float, max_t: int) -> None:
    from ray.tune.schedulers import AsyncHyperBandScheduler

    from search.space import AshaSpec

    ray_rungs = AsyncHyperBandScheduler(time_attr="training_iteration", grace_period=grace,
                                        reduction_factor=factor, max_t=max_t)._brackets[0]._rungs
    assert AshaSpec(grace, factor, max_t).rungs() == sorted(m for m, _ in ray_rungs)


def test_trainable_validates_at_every_asha_rung() -> None:
    from search.trainable import asha_epochs

    space = load_space(REPO / "spaces" / "lab.yaml")
    assert space.asha is not None
    assert asha_epochs(space) == [math.ceil(r) for r in space.asha.rungs()]
    assert asha_epochs(space)[0] == space.asha.grace_period


def test_the_templates_argument_names_work_in_a_space(tmp_path: Path) -> None:
    doc = edited(lambda d: d["parameters"].update(optim={"values": ["Adam", "AdamW"]}))
    del doc["parameters"]["optimizer"]
    space = load_space(write(tmp_path, doc))
    assert "optimizer" in space.parameter_names() and "optim" not in space.parameter_names()
    assert "parameters.optim: the template's name for optimizer, read as optimizer" in space.describe()
    both = edited(lambda d: d["parameters"].update(optim={"values": ["Adam"]}))
    with pytest.raises(SpaceError, match=r"parameters\.optim .*is the template's name for optimizer, which is given too"):
        load_space(write(tmp_path, both, "both.yaml"))
    fixed = edited(lambda d: (d["parameters"].pop("optimizer"), d["fixed"].update(optim="AdamW")))
    assert load_space(write(tmp_path, fixed, "fixed.yaml")).fixed["optimizer"] == "AdamW"


def test_a_space_without_a_name_takes_it_from_name_or_the_file(tmp_path: Path) -> None:
    doc = edited(lambda d: d.pop("name"))
    path = write(tmp_path, doc, "my-sweep.yaml")
    assert load_space(path).name == "my-sweep"
    space = load_space(path, name="lab4-run")
    assert space.name == "lab4-run" and "name: not in the file; 'lab4-run' from --name" in space.describe()
    bad = write(tmp_path, doc, "my sweep.yaml")  # a file name that is no folder name
    with pytest.raises(SpaceError, match="name is 'my sweep', but must be a folder name"):
        load_space(bad)
