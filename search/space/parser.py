"""The parser: one file's mapping, section by section, checked into a SearchSpace.

`_Parser.space(raw)` reads the top level and every block but `parameters`
(search.space.parameters) and W&B's own keys (search.space.wandb_sweep); the
value checks all sections share are search.space.checks. The first broken
rule raises SpaceError("<file>: <key.path> is <value>, but <rule>").
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Mapping

from cvae.core.config import ConfigError
from cvae.families import DEFAULT_FAMILY, ModelFamily, UnknownFamilyError, family_names, get_family
from search.comparison import DEFAULT_EQUIVALENCE
from search.errors import SpaceError
from search.racing import DEFAULT_MAX_SEEDS, INITIAL_SEEDS
from search.space.helpers import _MISSING, _did_you_mean, _show
from search.space.model import CATEGORICAL, CONSTANT, AshaSpec, SamplerSpec, SearchSpace
from search.space.parameters import _ParameterParser
from search.space.wandb_sweep import WANDB_IGNORED_KEYS

TOP_LEVEL_KEYS = ("name", "description", "model", "metric", "data", "trials", "sampler",
                  "early_terminate", "reeval", "validation", "fixed", "parameters", "method", "run_cap", *WANDB_IGNORED_KEYS)
METRICS = ("val_psnr", "train_loss", "train_mse", "train_kl")  # per-epoch metrics of cvae.train worth optimising
GOALS = {"maximize": "max", "minimize": "min"}
SAMPLERS = ("tpe", "random", "qmc", "grid")
STRATA_MODES = ("balanced", "free")
DEFAULT_REEVAL_SEEDS = 3
EARLY_TERMINATE = ("asha", "hyperband", "none")  # hyperband: W&B's, mapped onto ASHA
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")  # the name becomes the folder runs/<name>


class _Parser(_ParameterParser):
    """Checks one file's mapping; every failure names self.path and a key path."""

    def model(self, value: Any) -> ModelFamily:
        """The `model:` key: a registered model family (cvae.families)."""
        if not isinstance(value, str):
            self.fail("model", value, f"must be one of {family_names()}")
        try:
            return get_family(value)
        except UnknownFamilyError:
            self.fail("model", value, f"must be one of {family_names()}{_did_you_mean(value, tuple(family_names()))}")

    def template_names(self, top: dict[str, Any]) -> None:
        """Rename the template's argument names (e.g. optim) under parameters and fixed
        to their field names, in place, with one notice each."""
        aliases = self.family.config_class.TEMPLATE_ALIASES
        ignored = self.family.config_class.TEMPLATE_IGNORED
        for section in ("parameters", "fixed"):
            block = top.get(section)
            if not isinstance(block, dict) or not set(block) & (set(aliases) | set(ignored)):
                continue
            renamed: dict[Any, Any] = {}
            for key, value in block.items():
                if key in ignored and key not in self.family.field_names():
                    self.notices.append(f"{section}.{key}: the template's Trainer.py argument, ignored "
                                        f"({ignored[key]})")
                    continue
                name = aliases.get(key, key)
                if name in renamed or (name != key and name in block):
                    self.fail(f"{section}.{key}", value, f"is the template's name for {name}, which is "
                              "given too: give it once")
                if name != key:
                    self.notices.append(f"{section}.{key}: the template's name for {name}, read as {name}")
                renamed[name] = value
            top[section] = renamed

    # --- the whole file ---------------------------------------------------------
    def space(self, raw: Any) -> SearchSpace:
        if raw is None:
            raise SpaceError(f"{self.path}: the file is empty, but a search space needs at least "
                             "name and parameters")
        top = self.mapping(raw, "", TOP_LEVEL_KEYS, required=("parameters",))
        top = dict(top)  # hoist_constant_epochs edits it; space.raw stays what the file says
        self.sweep_only_keys(top)
        name = top["name"]
        if not isinstance(name, str) or not _NAME_RE.match(name):
            self.fail("name", name, "must be a folder name (letters, digits, '.', '_', '-'): runs/<name> is written")
        description = top.get("description")
        if description is not None and not isinstance(description, str):
            self.fail("description", description, "must be text")
        self.family = self.model(top.get("model", DEFAULT_FAMILY))
        self.template_names(top)
        metric, mode = self.metric(top.get("metric", {"name": "val_psnr", "goal": "maximize"}))
        data_root, synthetic = self.data(top.get("data"))
        trials_raw = self.with_run_cap(top.get("trials"), top.get("run_cap", _MISSING))
        trials = self.trials(trials_raw)
        sampler = self.sampler(top.get("sampler"), top.get("method", _MISSING))
        fixed = self.fixed(self.hoist_constant_epochs(top))
        self.validation(top.get("validation"), fixed)
        num_epoch = fixed.get("num_epoch", self.family.default_config().num_epoch)
        asha = self.early_terminate(top.get("early_terminate", {"type": "none"}), num_epoch)
        parameters = self.parameters(top["parameters"], fixed, synthetic)
        self.check_synthetic_lengths(synthetic, fixed, {p.name for p in parameters})
        has_scientific = any(p.role == "scientific" for p in parameters)
        reeval = self.reeval(top.get("reeval", {}), has_scientific, num_epoch)
        space = SearchSpace(
            path=self.path, name=name, description=description, metric=metric, mode=mode,
            data_root=data_root, synthetic=synthetic, sampler=sampler, asha=asha,
            fixed=fixed, parameters=parameters, raw=raw, **reeval, notices=self.notices,
            model=self.family.name, **trials)
        self.study_design(space, trials_raw)
        self.check_race_budget(space)
        return space

    def validation(self, value: Any, fixed: dict[str, Any]) -> None:
        """`validation: {samples: K}`: K prior draws averaged per validation, as fixed.val_samples."""
        if value is None:
            return
        v = self.mapping(value, "validation", ("samples",))
        if "samples" not in v:
            return
        if "val_samples" not in self.family.field_names():
            self.fail("validation.samples", v["samples"], f"is not an option of the {self.family.name} family "
                      "(it validates over its whole validation set, not over prior draws of one video)")
        if "val_samples" in fixed:
            self.fail("validation.samples", v["samples"], "is fixed.val_samples too: give it once")
        samples = self.integer(v["samples"], "validation.samples", 1)
        fixed["val_samples"] = samples

    def reeval(self, value: Any, has_scientific: bool, num_epoch: int) -> dict[str, Any]:
        """SearchSpace's reeval_* fields from `reeval:`: seeds (a count, or auto to race
        them), max_seeds and budget_epochs (racing only), equivalence_db."""
        # A strategy study (a scientific parameter) re-runs its winners by default; a
        # plain tuning space has no comparison for an interval to settle, so it does not.
        r = self.mapping(value if value is not None else {}, "reeval",
                         ("seeds", "equivalence_db", "max_seeds", "budget_epochs"))
        default = DEFAULT_REEVAL_SEEDS if has_scientific else 0
        margin = self.number(r.get("equivalence_db", DEFAULT_EQUIVALENCE), "reeval.equivalence_db")
        if margin < 0:
            self.fail("reeval.equivalence_db", margin, "must be >= 0 (0: never call two strategies equivalent)")
        out: dict[str, Any] = {"reeval_equivalence": float(margin)}
        if r.get("seeds") != "auto":
            for key in ("max_seeds", "budget_epochs"):
                if key in r:
                    self.fail(f"reeval.{key}", r[key], "applies only to reeval.seeds: auto (racing the seeds)")
            out["reeval_seeds"] = self.integer(r.get("seeds", default), "reeval.seeds", 0)
            return out
        if not has_scientific:
            self.fail("reeval.seeds", "auto", "races the strata of a scientific parameter, and this space has "
                      "none (give a parameter role: scientific, or a number of seeds)")
        max_seeds = self.integer(r.get("max_seeds", DEFAULT_MAX_SEEDS), "reeval.max_seeds", INITIAL_SEEDS)
        budget = r.get("budget_epochs")
        if budget is not None:
            budget = self.integer(budget, "reeval.budget_epochs", 1)
        out.update(reeval_seeds=INITIAL_SEEDS, reeval_racing=True, reeval_max_seeds=max_seeds,
                   reeval_budget_epochs=budget)
        return out

    def check_race_budget(self, space: SearchSpace) -> None:
        """The epoch budget must pay for the first round (INITIAL_SEEDS re-runs per stratum)."""
        budget = space.reeval_budget_epochs
        first = INITIAL_SEEDS * len(space.strata()) * space.num_epoch
        if space.reeval_racing and budget is not None and budget < first:
            self.fail("reeval.budget_epochs", budget, f"must be >= {first}: the first round re-runs each of the "
                      f"{len(space.strata())} strata {INITIAL_SEEDS} times at {space.num_epoch} epochs")

    def study_design(self, space: SearchSpace, trials: dict) -> None:
        """Rules that tie the parameters, the sampler and the trial count together."""
        scientific = [p for p in space.parameters if p.role == "scientific"]
        for p in scientific:
            if p.kind not in (CATEGORICAL, CONSTANT):
                self.fail(f"parameters.{p.name}.role", "scientific",
                          f"a scientific parameter is compared value by value: give it as values "
                          f"(e.g. values: [...]), not as {p.kind}")
            for dep in p.when:
                if space.parameter(dep).role != "scientific":
                    self.fail(f"parameters.{p.name}.when.{dep}", p.when_text(),
                              f"a scientific parameter may depend only on scientific parameters "
                              f"({dep} is nuisance), or its strata are not fixed before sampling")
        if space.reeval_seeds and "seed" in space.parameter_names():
            self.fail("parameters.seed", "searched", "re-evaluation sets each re-run's training seed: "
                      "fix seed under fixed, or set reeval.seeds: 0")
        mode = trials.get("strata", "balanced" if scientific else "free")
        mode = self.choice(mode, "trials.strata", STRATA_MODES)
        if space.sampler.type == "grid":
            self.grid(space, trials)
            if "strata" in trials and mode == "balanced":
                self.fail("trials.strata", mode, "sampler grid runs every combination once: "
                          "the grid balances itself; write strata: free or drop the key")
            mode = "free"
        space.strata_mode = mode
        if mode == "balanced":
            n = len(space.strata())
            if space.num_samples < 2 * n:
                self.fail(self.samples_key, space.num_samples,
                          f"must be >= {2 * n} so that each of the {n} strata "
                          f"({', '.join(s.key for s in space.strata())}) gets at least 2 trials")

    def grid(self, space: SearchSpace, trials: dict) -> None:
        for p in space.parameters:
            if p.kind not in (CATEGORICAL, CONSTANT):
                self.fail(f"parameters.{p.name}.distribution", p.kind,
                          "sampler grid needs every parameter as values: [...] (or value: ...)")
            if p.when:
                self.fail(f"parameters.{p.name}.when", p.when_text(),
                          "sampler grid runs the full product of the values: conditional parameters "
                          "are not supported with it")
        size = space.grid_size()
        if "num_samples" in trials and space.num_samples != size:
            self.fail(self.samples_key, space.num_samples,
                      f"must be {size} (the number of combinations of the values) for sampler grid, "
                      "or left out")
        space.num_samples = size

    def metric(self, value: Any) -> tuple[str, str]:
        m = self.mapping(value, "metric", ("name", "goal", "target"), required=("name", "goal"))
        if "target" in m:
            self.notices.append(f"metric.target: {_show(m['target'])}, ignored (every trial runs; "
                                "the search stops after num_samples trials)")
        name = self.choice(m["name"], "metric.name", METRICS)
        goal = self.choice(m["goal"], "metric.goal", tuple(GOALS))
        return name, GOALS[goal]

    def data(self, value: Any) -> tuple[Path, str | None]:
        if value is None:
            if self.data_override is None:
                raise SpaceError(f"{self.path}: data is missing, but it is required unless --data DIR is given "
                                 "(write data: {root: DIR} in the file, or pass --data)")
            return self.data_override, None
        d = self.mapping(value, "data", ("root", "synthetic"), required=() if self.data_override else ("root",))
        root = d.get("root")
        if root is not None and (not isinstance(root, str) or not root):
            self.fail("data.root", root, "must be a folder path")
        synthetic = d.get("synthetic")
        if synthetic is not None:
            synthetic = self.choice(synthetic, "data.synthetic", tuple(self.family.synthetic_presets))
        return (self.data_override if self.data_override is not None else Path(root)), synthetic

    def trials(self, value: Any) -> dict[str, Any]:
        t = self.mapping(value, "trials", ("num_samples", "max_concurrent", "resources", "max_failures",
                                           "checkpoint_every", "strata"))
        res = self.mapping(t.get("resources", {}), "trials.resources", ("cpu", "gpu"))
        cpu = self.resource(res.get("cpu", 1), "trials.resources.cpu", zero_ok=False)
        gpu = self.resource(res.get("gpu", 0), "trials.resources.gpu", zero_ok=True)
        return dict(
            num_samples=self.integer(t.get("num_samples", 16), "trials.num_samples", 1),
            max_concurrent=(None if t.get("max_concurrent") is None
                            else self.integer(t["max_concurrent"], "trials.max_concurrent", 1)),
            cpu=cpu, gpu=gpu,
            max_failures=self.integer(t.get("max_failures", 2), "trials.max_failures", 0),
            checkpoint_every=self.integer(t.get("checkpoint_every", 1), "trials.checkpoint_every", 1),
        )

    def resource(self, value: Any, key: str, zero_ok: bool) -> float:
        amount = float(self.number(value, key))
        if amount < 0 or (amount == 0 and not zero_ok):
            self.fail(key, value, "must be >= 0" if zero_ok else "must be > 0")
        if amount > 1 and not amount.is_integer():
            # Ray's rule: a trial may take a fraction of one unit, or whole units.
            self.fail(key, value, "must be a fraction below 1 or a whole number (Ray's resource rule)")
        return amount

    def sampler(self, value: Any, method: Any = _MISSING) -> SamplerSpec:
        s = self.mapping({} if value is None else value, "sampler", ("type", "seed", "n_startup_trials"))
        default = "tpe"
        if method is not _MISSING:  # W&B's method picks the sampler when the sampler block does not
            default = self.wandb_method(method, s)
        kind = self.choice(s.get("type", default), "sampler.type", SAMPLERS)
        seed = s.get("seed")
        if seed is not None:
            seed = self.integer(seed, "sampler.seed", 0)
        startup = s.get("n_startup_trials")
        if startup is not None:
            if kind != "tpe":
                self.fail("sampler.n_startup_trials", startup, f"it applies only to type tpe, not {kind}")
            startup = self.integer(startup, "sampler.n_startup_trials", 0)
        return SamplerSpec(type=kind, seed=seed, n_startup_trials=startup)

    def early_terminate(self, value: Any, num_epoch: int) -> AshaSpec | None:
        if isinstance(value, dict) and value.get("type") == "hyperband":
            return self.hyperband(value, num_epoch)
        e = self.mapping(value, "early_terminate", ("type", "grace_period", "reduction_factor", "brackets"))
        kind = self.choice(e.get("type", "none"), "early_terminate.type", EARLY_TERMINATE)
        if kind == "none":
            for k in ("grace_period", "reduction_factor", "brackets"):
                if k in e:
                    self.fail(f"early_terminate.{k}", e[k], "it applies only to type asha")
            return None
        grace = self.integer(e.get("grace_period", 1), "early_terminate.grace_period", 1)
        if grace > num_epoch:
            self.fail("early_terminate.grace_period", grace,
                      f"must be <= num_epoch ({num_epoch}), or ASHA never compares trials")
        rf = self.number(e.get("reduction_factor", 3), "early_terminate.reduction_factor")
        if rf <= 1:
            self.fail("early_terminate.reduction_factor", rf, "must be > 1")
        brackets = self.integer(e.get("brackets", 1), "early_terminate.brackets", 1)
        asha = AshaSpec(grace_period=grace, reduction_factor=rf, max_t=num_epoch, brackets=brackets)
        if brackets > 1 and not asha.rungs(brackets - 1):
            self.fail("early_terminate.brackets", brackets,
                      f"must be <= {len(asha.rungs())}: with grace period {grace} and reduction factor "
                      f"{_show(rf)} over {num_epoch} epochs, bracket {brackets} would have no rung")
        return asha

    # --- fixed values -----------------------------------------------------------
    def fixed(self, value: Any) -> dict[str, Any]:
        if not isinstance(value, dict):
            self.fail("fixed", value, f"must be a mapping of {self.config_name} fields to values")
        fixed: dict[str, Any] = {}
        for key, v in value.items():
            self.known_field(str(key), f"fixed.{key}")
            fixed[key] = self.field_value(key, v, f"fixed.{key}", {})
        try:  # fields that are fine alone may clash together (frame size)
            self.family.check_fields(fixed)
        except ConfigError as err:
            raise SpaceError(f"{self.path}: fixed: {err}") from None
        return fixed

    def check_synthetic_lengths(self, synthetic: str | None, fixed: Mapping[str, Any], searched: set[str]) -> None:
        """A synthetic preset has a known size: catch clip lengths it cannot serve now, not in a trial.
        (Searched lengths were checked with their parameter.)"""
        defaults = self.family.default_config()
        for name in ("val_vi_len", "train_vi_len"):
            if not hasattr(defaults, name):
                continue
            if name in searched:
                continue
            value = fixed.get(name, getattr(defaults, name))
            rule = self.family.length_rule(synthetic, name, value)
            if rule:
                if name in fixed:
                    self.fail(f"fixed.{name}", value, rule)
                self.fail(f"{name} (the {self.config_name} default; set fixed.{name})", value, rule)
