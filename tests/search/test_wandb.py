"""W&B sweep files (issue 14 item 1): every mapping onto the space, every refused
distribution, and the defaults a W&B file relies on (no data, no trials block).
The end-to-end run of spaces/wandb-sweep.yaml is in test_viewers.py."""
from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import yaml

from search.cluster import NodeResources, cluster_concurrency
from search.space import SUPPORTED_DISTRIBUTIONS, UNSUPPORTED_DISTRIBUTIONS, SpaceError, load_space

ROOT = Path(__file__).resolve().parents[2]
optuna.logging.set_verbosity(optuna.logging.WARNING)

# W&B's documentation pattern: program, method, metric, parameters, hyperband.
SWEEP = """\
program: train.py
method: bayes
name: sweep
metric:
  name: val_psnr
  goal: maximize
early_terminate:
  type: hyperband
  min_iter: 2
  eta: 3
parameters:
  lr:
    min: 1e-4
    max: 1e-2
  optimizer:
    values: [Adam, AdamW]
  num_epoch:
    value: 6
"""


def load(tmp_path: Path, text: str = SWEEP, edit=None, data: str | None = "data/x"):
    doc = yaml.safe_load(text)
    if edit:
        edit(doc)
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return load_space(path, data=data)


def refused(tmp_path: Path, edit, data: str | None = "data/x") -> str:
    with pytest.raises(SpaceError) as info:
        load(tmp_path, edit=edit, data=data)
    return str(info.value)


# --------------------------------------------------------------------------- #
# The top level
# --------------------------------------------------------------------------- #
def test_the_documentation_pattern_loads_with_its_defaults(tmp_path):
    space = load(tmp_path)
    assert space.sampler.type == "tpe"
    assert (space.num_samples, space.max_concurrent, space.cpu, space.gpu) == (16, None, 1, 0)
    assert space.data_root == Path("data/x") and space.synthetic is None
    assert space.fixed == {"num_epoch": 6}
    lr = space.parameter("lr")
    assert (lr.kind, lr.low, lr.high) == ("uniform", 1e-4, 1e-2)  # `1e-4` is a number, not a string
    assert "as many at a time as the cluster's CPUs/GPUs allow" in space.describe()


def test_data_is_optional_only_with_data_from_the_command_line(tmp_path):
    assert "data is missing, but it is required unless --data DIR is given" in refused(tmp_path, None, data=None)
    # a data block without root takes --data as its root
    space = load(tmp_path, edit=lambda d: d.update(data={"synthetic": "lab"}), data="data/y")
    assert (space.data_root, space.synthetic) == (Path("data/y"), "lab")


@pytest.mark.parametrize("method,sampler", [("bayes", "tpe"), ("random", "random"), ("grid", "grid")])
def test_method_selects_the_sampler(tmp_path, method, sampler):
    def edit(d):
        d["method"] = method
        if method == "grid":
            d["parameters"]["lr"] = {"values": [1e-3, 2e-3]}
    space = load(tmp_path, edit=edit)
    assert space.sampler.type == sampler
    assert f"method: {method} -> sampler type {sampler}" in space.notices
    if method == "grid":
        assert space.num_samples == 4  # the grid's size


def test_a_sampler_block_agrees_with_method_or_is_refused(tmp_path):
    space = load(tmp_path, edit=lambda d: d.update(sampler={"seed": 3}))
    assert (space.sampler.type, space.sampler.seed) == ("tpe", 3)
    message = refused(tmp_path, lambda d: d.update(sampler={"type": "random"}))
    assert "method is 'bayes', but it selects sampler type tpe, and sampler.type is 'random'" in message
    assert "must be one of ['bayes', 'random', 'grid']" in refused(tmp_path, lambda d: d.update(method="bohb"))


def test_grid_method_needs_values(tmp_path):
    message = refused(tmp_path, lambda d: d.update(method="grid"))
    assert "parameters.lr.distribution" in message and "sampler grid needs every parameter as values" in message


def test_ignored_keys_are_said_in_one_line(tmp_path):
    space = load(tmp_path, edit=lambda d: d.update(command=["${env}", "python", "${program}"], entity="me",
                                                    project="p"))
    ignored = [n for n in space.notices if "ignored" in n]
    assert ignored == ["program, command, entity, project: W&B agent/server keys, ignored "
                       "(each trial trains cvae.train in a Ray worker)"]
    space = load(tmp_path, edit=lambda d: d["metric"].update(target=40))
    assert any(n.startswith("metric.target: 40, ignored") for n in space.notices)


def test_run_cap_sets_num_samples(tmp_path):
    space = load(tmp_path, edit=lambda d: d.update(run_cap=7))
    assert space.num_samples == 7 and "run_cap: 7 -> trials.num_samples 7" in space.notices
    assert "give the number of trials once" in refused(
        tmp_path, lambda d: d.update(run_cap=7, trials={"num_samples": 8}))
    # a rule on the number of trials names run_cap, where the user wrote it
    message = refused(tmp_path, lambda d: (d.update(run_cap=3),
                                           d["parameters"]["optimizer"].update(role="scientific")))
    assert "run_cap is 3, but must be >= 4" in message


def test_num_epoch_as_a_w_and_b_constant_is_fixed(tmp_path):
    assert "num_epoch is also fixed: give it once" in refused(tmp_path, lambda d: d.update(fixed={"num_epoch": 5}))


def test_constants_are_in_the_base_config(tmp_path):
    space = load(tmp_path, edit=lambda d: d["parameters"].update(frame_H={"value": 16}, frame_W={"value": 32}))
    cfg = space.train_config({})
    assert (cfg.frame_H, cfg.frame_W, cfg.num_epoch) == (16, 32, 6)


def test_trials_max_concurrent_defaults_to_what_the_cluster_holds():
    nodes = [NodeResources("a", "h1", cpu=16, gpu=2), NodeResources("b", "h2", cpu=4, gpu=0)]
    assert cluster_concurrency(1, 0, nodes) == 20
    assert cluster_concurrency(2, 0, nodes) == 10
    assert cluster_concurrency(1, 0.25, nodes) == 8   # GPUs bound it: 4 per GPU on the GPU node
    assert cluster_concurrency(1, 1, nodes) == 2
    assert cluster_concurrency(8, 0, [NodeResources("a", "h", cpu=2, gpu=0)]) == 1


# --------------------------------------------------------------------------- #
# early_terminate: hyperband -> ASHA
# --------------------------------------------------------------------------- #
def _hyperband(**kw):
    return lambda d: d.update(early_terminate={"type": "hyperband", **kw})


def test_hyperband_min_iter_is_the_grace_period_and_eta_the_reduction_factor(tmp_path):
    space = load(tmp_path)
    a = space.asha
    assert (a.grace_period, a.reduction_factor, a.brackets, a.max_t) == (2, 3, 1, 6)
    assert a.rungs() == [2, 6]
    assert a.source == "W&B hyperband (min_iter 2, eta 3) -> ASHA grace_period 2, reduction_factor 3, brackets 1"
    assert a.source in space.describe()


def test_hyperband_max_iter_and_s_give_the_lowest_bracket(tmp_path):
    # W&B's brackets below max_iter 27 with eta 3, s 2: 27/9 = 3 and 27/3 = 9
    space = load(tmp_path, edit=lambda d: (_hyperband(max_iter=27, eta=3, s=2)(d),
                                           d["parameters"].update(num_epoch={"value": 27})))
    assert (space.asha.grace_period, space.asha.reduction_factor) == (3, 3)
    assert space.asha.rungs() == [3, 9, 27]
    # max_iter other than num_epoch only places the rungs, and says so
    space = load(tmp_path, edit=_hyperband(max_iter=12, eta=2, s=2))
    assert space.asha.grace_period == 3 and space.asha.max_t == 6
    assert "max_iter 12 only places the rungs: every trial's budget is num_epoch = 6" in space.asha.source


def test_hyperband_defaults_eta_3_and_notes_what_it_does_not_use(tmp_path):
    space = load(tmp_path, edit=_hyperband(min_iter=1, s=2, strict=True))
    assert (space.asha.grace_period, space.asha.reduction_factor) == (1, 3)
    assert "s is not used with min_iter" in space.asha.source and "strict is ignored" in space.asha.source


@pytest.mark.parametrize("kw,expected", [
    ({"min_iter": 2, "max_iter": 9}, "has both min_iter and max_iter, but type hyperband needs exactly one"),
    ({"eta": 3}, "has neither min_iter and max_iter"),
    ({"max_iter": 9}, "early_terminate.s is missing"),
    ({"max_iter": 4, "s": 2, "eta": 3}, "early_terminate.s is 2, but must leave max_iter / eta^s >= 1"),
    ({"min_iter": 7}, "early_terminate.min_iter is 7, but gives a first rung at epoch 7, after num_epoch (6)"),
    ({"min_iter": 2, "eta": 1}, "early_terminate.eta is 1, but must be > 1"),
    ({"min_iter": 2, "brackets": 2}, "early_terminate.brackets is an unknown key"),
])
def test_hyperband_mistakes_are_refused(tmp_path, kw, expected):
    assert expected in refused(tmp_path, _hyperband(**kw))


def test_other_early_terminate_types_are_refused_with_the_list(tmp_path):
    message = refused(tmp_path, lambda d: d.update(early_terminate={"type": "envelope"}))
    assert "early_terminate.type is 'envelope', but must be one of ['asha', 'hyperband', 'none']" in message


# --------------------------------------------------------------------------- #
# Distributions
# --------------------------------------------------------------------------- #
def _draws(space, n=40):
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    out = []
    for _ in range(n):
        trial = study.ask()
        out.append(space.define_by_run(trial))
        study.tell(trial, 0.0)
    return out


@pytest.mark.parametrize("spec,kind,low,high", [
    ({"distribution": "categorical", "values": [0.001, 0.002]}, "categorical", None, None),
    ({"distribution": "uniform", "min": 1e-4, "max": 1e-2}, "uniform", 1e-4, 1e-2),
    ({"distribution": "q_uniform", "min": 1e-3, "max": 1e-2, "q": 1e-3}, "q_uniform", 1e-3, 1e-2),
    ({"distribution": "log_uniform_values", "min": 1e-4, "max": 1e-2}, "log_uniform_values", 1e-4, 1e-2),
    ({"distribution": "q_log_uniform_values", "min": 1e-4, "max": 1e-2, "q": 1e-4},
     "q_log_uniform_values", 1e-4, 1e-2),
    # W&B's bounds are natural-log exponents: e^-9.21 .. e^-4.61
    ({"distribution": "log_uniform", "min": math.log(1e-4), "max": math.log(1e-2)}, "log_uniform_values", 1e-4, 1e-2),
    ({"distribution": "q_log_uniform", "min": math.log(1e-4), "max": math.log(1e-2), "q": 1e-4},
     "q_log_uniform_values", 1e-4, 1e-2),
    # exp(-U(min, max)): e^-max .. e^-min
    ({"distribution": "inv_log_uniform", "min": math.log(1e2), "max": math.log(1e4)},
     "log_uniform_values", 1e-4, 1e-2),
    # 1/X with X log-uniform in [1/max, 1/min]: log-uniform in [min, max]
    ({"distribution": "inv_log_uniform_values", "min": 1e-4, "max": 1e-2}, "log_uniform_values", 1e-4, 1e-2),
])
def test_every_w_and_b_distribution_optuna_can_draw(tmp_path, spec, kind, low, high):
    space = load(tmp_path, edit=lambda d: d["parameters"].update(lr=spec))
    lr = space.parameter("lr")
    assert lr.kind == kind
    if low is not None:
        assert (lr.low, lr.high) == (pytest.approx(low), pytest.approx(high))
        values = [v["lr"] for v in _draws(space)]
        assert all(low * (1 - 1e-9) <= v <= high * (1 + 1e-9) for v in values)
    alias = spec["distribution"]
    if alias not in ("categorical", kind):
        assert lr.wandb == alias and f"(W&B {alias})" in space.describe()


def test_integer_fields_take_int_uniform_and_q_log_uniform(tmp_path):
    space = load(tmp_path, edit=lambda d: d["parameters"].update(
        kl_anneal_cycle={"distribution": "int_uniform", "min": 1, "max": 8},
        batch_size={"distribution": "q_log_uniform", "min": 0, "max": math.log(16), "q": 1}))
    for v in _draws(space):
        assert isinstance(v["kl_anneal_cycle"], int) and 1 <= v["kl_anneal_cycle"] <= 8
        assert isinstance(v["batch_size"], int) and 1 <= v["batch_size"] <= 16


@pytest.mark.parametrize("name", UNSUPPORTED_DISTRIBUTIONS)
def test_distributions_optuna_cannot_draw_are_refused_by_name(tmp_path, name):
    spec = {"distribution": name, "mu": -7, "sigma": 1, "a": 2, "b": 5, "q": 1e-4,
            "values": [1e-3, 2e-3], "probabilities": [0.5, 0.5]}
    message = refused(tmp_path, lambda d: d["parameters"].update(lr=spec))
    assert f"parameters.lr.distribution is '{name}', but Optuna cannot draw it" in message
    assert "supported: " + ", ".join(SUPPORTED_DISTRIBUTIONS) in message


def test_unknown_distribution_names_the_supported_list(tmp_path):
    message = refused(tmp_path, lambda d: d["parameters"]["lr"].update(distribution="loguniform"))
    assert "parameters.lr.distribution is 'loguniform', but must be one of" in message
    assert "'inv_log_uniform_values'" in message


def test_exponent_bounds_that_overflow_are_refused(tmp_path):
    message = refused(tmp_path, lambda d: d["parameters"].update(
        lr={"distribution": "log_uniform", "min": 1e-4, "max": 1e3}))
    assert "parameters.lr.max is 1000, but is an exponent for log_uniform" in message


# --------------------------------------------------------------------------- #
# --dry-run says the mapping
# --------------------------------------------------------------------------- #
def test_dry_run_of_the_shipped_sweep_file_prints_every_mapping(tmp_path):
    data = tmp_path / "data"  # a dry run reads no data, but the folder must exist (the file has no synthetic preset)
    data.mkdir()
    proc = subprocess.run([sys.executable, str(ROOT / "run_search.py"), "--space", "spaces/wandb-sweep.yaml",
                           "--data", str(data), "--storage-path", str(tmp_path), "--dry-run"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "W&B sweep keys:" in out
    assert "program, command, entity, project: W&B agent/server keys, ignored" in out
    assert "method: bayes -> sampler type tpe" in out
    assert "run_cap: 12 -> trials.num_samples 12" in out
    assert "W&B hyperband (min_iter 2, eta 3) -> ASHA grace_period 2, reduction_factor 3, brackets 1" in out
    assert "parameters.num_epoch: {value: 6} -> fixed.num_epoch" in out
    assert "as many at a time as the cluster allows" in out


TEMPLATE_SWEEP = """\
program: Trainer.py
method: bayes
metric:
  name: val_psnr
  goal: maximize
parameters:
  lr:
    min: !!float 1e-4
    max: !!float 1e-2
  optim:
    values: [Adam, AdamW]
  kl_anneal_type:
    values: [Cyclical, Monotonic, None]
  kl_anneal_cycle:
    min: 1
    max: 10
  num_epoch:
    value: 2
  num_workers:
    value: 4
  DR:
    value: ../LAB4_Dataset
command:
  - ${env}
  - python
  - ${program}
  - ${args}
"""


def test_a_sweep_written_for_the_templates_trainer_runs_unchanged(tmp_path):
    # what a student writes for the course template: no name, the template's `optim`,
    # inferred distributions, !!float, program/command for the W&B agent
    from search.space import load_space

    path = tmp_path / "sweep.yaml"
    path.write_text(TEMPLATE_SWEEP)
    space = load_space(path, data=str(tmp_path / "data"))
    assert space.name == "sweep" and space.fixed["num_epoch"] == 2
    by_name = {p.name: p for p in space.parameters}
    assert set(by_name) == {"lr", "optimizer", "kl_anneal_type", "kl_anneal_cycle"}
    assert by_name["lr"].kind == "uniform" and by_name["kl_anneal_cycle"].kind == "int_uniform"
    assert space.sampler.type == "tpe"
    assert "parameters.num_workers: the template's Trainer.py argument, ignored" in space.describe()
    assert "parameters.DR: the template's Trainer.py argument, ignored (the data root is data.root or --data)" \
        in space.describe()
