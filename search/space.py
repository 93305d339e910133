"""The search-space YAML: read, check every rule, sample define-by-run.

`load_space(path)` turns a file like spaces/quick.yaml into a `SearchSpace`.
Every rule is checked here, before Ray starts, and a broken rule raises
`SpaceError("<file>: <key.path> is <value>, but <rule>")`.

Parameters use W&B-sweep syntax (`values`, `value`, `distribution` with
`min`/`max`/`q`) plus two extensions: `when` (a conditional parameter) and
`role` (scientific | nuisance). How each W&B distribution maps onto Optuna:

| W&B distribution       | W&B draws                          | here (Optuna)                                         |
|------------------------|------------------------------------|-------------------------------------------------------|
| values / categorical   | one of the values                  | suggest_categorical                                   |
| value / constant       | the value                          | not suggested; returned with the sampled values       |
| int_uniform            | integer in [min, max]              | suggest_int(min, max)                                 |
| uniform                | float in [min, max]                | suggest_float(min, max)                               |
| q_uniform              | round(U(min, max) / q) * q         | the multiples of q in [min, max], uniformly:          |
|                        |                                    | suggest_float(step=q), or suggest_int(step=q) for an  |
|                        |                                    | integer field                                         |
| log_uniform_values     | exp(U(log min, log max))           | suggest_float(log=True)                               |
| q_log_uniform_values   | round(exp(U(log min, log max))/q)*q | suggest_int(log=True) for q=1 on an integer field;    |
|                        |                                    | else suggest_float(log=True) over the multiples of q  |
|                        |                                    | in [min, max], rounded to the nearest one             |
| log_uniform            | exp(U(min, max)): min/max exponents | log_uniform_values over [e^min, e^max]                |
| q_log_uniform          | round(exp(U(min, max)) / q) * q    | q_log_uniform_values over [e^min, e^max]              |
| inv_log_uniform        | exp(-U(min, max))                  | log_uniform_values over [e^-max, e^-min]              |
| inv_log_uniform_values | 1/X, X log-uniform in [1/max, 1/min] | log_uniform_values over [min, max] (the same law)   |
| normal, q_normal, log_normal, q_log_normal, beta, q_beta, categorical_w_probabilities | | refused: unbounded or weighted draws |

W&B's rounding can step outside [min, max] (min=0.05, q=0.1 can give 0.0);
here every value stays inside the bounds, on a multiple of q. For the rounded
log case Optuna records the continuous draw while `define_by_run` returns the
rounded value; Ray's OptunaSearch lays the returned dict over the recorded
values, so the trial trains with the rounded one. As in W&B, `q` defaults to
1 and a missing `distribution` is inferred: values -> categorical, value ->
constant, integer min/max -> int_uniform, other min/max -> uniform.

A W&B sweep file runs unchanged: `method` (bayes | random | grid) picks the
sampler (tpe | random | grid) when no `sampler` block does, `run_cap` is
trials.num_samples, `early_terminate: {type: hyperband, min_iter | max_iter,
eta, s}` becomes ASHA (see `_Parser.hyperband`), `program`, `command`,
`entity`, `project` and `metric.target` are ignored; `SearchSpace.notices`
says each of these in one line. `data` may be left out when --data is given,
`trials` altogether (16 samples, as many at a time as the cluster allows).

This module imports no Ray and no Optuna: it only calls the `suggest_*`
methods of the trial object it is handed.
"""
from __future__ import annotations

import dataclasses
import difflib
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, NoReturn

import yaml

from cvae.core.config import ConfigError
from cvae.core.schedules import describe_kl, kl_warmup_end
from cvae.families import DEFAULT_FAMILY, ModelFamily, UnknownFamilyError, family_names, get_family
from search.comparison import DEFAULT_EQUIVALENCE
from search.errors import SpaceError
from search.strata import Stratum, enumerate_strata, stratum_key

if TYPE_CHECKING:
    import optuna

# W&B sweep keys: `method` and `run_cap` are read (the sampler, num_samples); the
# others name W&B's agent and server and are ignored with one line saying so.
WANDB_METHODS = {"bayes": "tpe", "random": "random", "grid": "grid"}
WANDB_IGNORED_KEYS = ("program", "command", "entity", "project")
TOP_LEVEL_KEYS = ("name", "description", "model", "metric", "data", "trials", "sampler",
                  "early_terminate", "reeval", "fixed", "parameters", "method", "run_cap", *WANDB_IGNORED_KEYS)
PARAM_KEYS = ("values", "value", "distribution", "min", "max", "q", "when", "role")
CATEGORICAL, CONSTANT = "categorical", "constant"
INT_UNIFORM, UNIFORM, Q_UNIFORM = "int_uniform", "uniform", "q_uniform"
LOG_UNIFORM_VALUES, Q_LOG_UNIFORM_VALUES = "log_uniform_values", "q_log_uniform_values"
NUMERIC_KINDS = (INT_UNIFORM, UNIFORM, Q_UNIFORM, LOG_UNIFORM_VALUES, Q_LOG_UNIFORM_VALUES)
DISTRIBUTIONS = (CATEGORICAL, CONSTANT, *NUMERIC_KINDS)
# W&B distributions that are one of the above with other bounds: name -> (kind, bounds).
# W&B's log_uniform / q_log_uniform / inv_log_uniform take natural-log exponents as
# min/max (exp(U(min, max)), resp. exp(-U(min, max))); inv_log_uniform_values draws
# 1 / X with X log-uniform in [1/max, 1/min], which is log-uniform in [min, max].
WANDB_ALIASES = {
    "log_uniform": (LOG_UNIFORM_VALUES, "exp"),
    "q_log_uniform": (Q_LOG_UNIFORM_VALUES, "exp"),
    "inv_log_uniform": (LOG_UNIFORM_VALUES, "exp-neg"),
    "inv_log_uniform_values": (LOG_UNIFORM_VALUES, "values"),
}
SUPPORTED_DISTRIBUTIONS = (*DISTRIBUTIONS, *WANDB_ALIASES)
# W&B distributions Optuna cannot express: unbounded or weighted draws.
UNSUPPORTED_DISTRIBUTIONS = ("normal", "q_normal", "log_normal", "q_log_normal", "beta", "q_beta",
                             "categorical_w_probabilities")
ROLES = ("scientific", "nuisance")
METRICS = ("val_psnr", "train_loss", "train_mse", "train_kl")  # per-epoch metrics of cvae.train worth optimising
GOALS = {"maximize": "max", "minimize": "min"}
SAMPLERS = ("tpe", "random", "qmc", "grid")
STRATA_MODES = ("balanced", "free")
DEFAULT_REEVAL_SEEDS = 3
# Re-run i (1-based) of a stratum's best configuration trains with seed
# fixed seed + REEVAL_SEED_STEP * i: distinct from the original run's seed and
# from each other.
REEVAL_SEED_STEP = 1000
EARLY_TERMINATE = ("asha", "hyperband", "none")  # hyperband: W&B's, mapped onto ASHA
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")  # the name becomes the folder runs/<name>
_MISSING = object()


# --------------------------------------------------------------------------- #
# The parsed space
# --------------------------------------------------------------------------- #
@dataclass(frozen=True)
class SearchParameter:
    """One searched parameter as declared in the space: its distribution, its `when`
    condition and its role. `low`/`high` are the bounds actually sampled
    (for q kinds: the first and last multiple of q inside [min, max])."""

    name: str
    kind: str                                 # one of DISTRIBUTIONS
    field_type: str                           # TrainConfig annotation: int | float | str | bool
    choices: tuple[Any, ...] | None = None    # categorical values; (value,) for a constant
    low: float | int | None = None
    high: float | int | None = None
    q: float | int | None = None
    log: bool = False
    when: dict[str, tuple[Any, ...]] = field(default_factory=dict)  # all must hold
    role: str = "nuisance"
    wandb: str | None = None                  # the W&B distribution as written, when it was an alias

    def applies(self, sampled: Mapping[str, Any]) -> bool:
        """Whether this parameter is drawn, given the values drawn before it."""
        return all(sampled.get(dep, _MISSING) in allowed for dep, allowed in self.when.items())

    def can_take(self, value: Any) -> bool:
        """Whether `value` (already of the field's type) is a value this parameter can produce."""
        if self.kind in (CATEGORICAL, CONSTANT):
            return any(value == c and type(value) is type(c) for c in self.choices or ())
        if self.field_type != "int" or isinstance(value, bool) or not isinstance(value, int):
            return False  # continuous: equality never decides anything
        if not self.low <= value <= self.high:
            return False
        return self.q is None or (value - self.low) % self.q == 0

    def sample(self, trial: "optuna.Trial") -> Any:
        """Draw this parameter from `trial` (an optuna.Trial or Ray's wrapper of one)."""
        if self.kind == CONSTANT:
            return self.choices[0]
        if self.kind == CATEGORICAL:
            return trial.suggest_categorical(self.name, list(self.choices))
        if self.kind == INT_UNIFORM:
            return self._typed(trial.suggest_int(self.name, self.low, self.high))
        if self.kind == UNIFORM:
            return self._typed(trial.suggest_float(self.name, self.low, self.high))
        if self.kind == LOG_UNIFORM_VALUES:
            return self._typed(trial.suggest_float(self.name, self.low, self.high, log=True))
        if self.kind == Q_UNIFORM:
            if self.field_type == "int":
                return trial.suggest_int(self.name, self.low, self.high, step=self.q)
            return self._on_grid(trial.suggest_float(self.name, self.low, self.high, step=self.q))
        # q_log_uniform_values: Optuna has no log scale with a step, except step 1 on ints.
        if self.field_type == "int" and self.q == 1:
            return trial.suggest_int(self.name, self.low, self.high, log=True)
        return self._on_grid(trial.suggest_float(self.name, self.low, self.high, log=True))

    def _on_grid(self, x: float) -> Any:
        """The multiple of q nearest to x, inside [low, high]."""
        k = round(x / self.q)
        k = min(max(k, round(self.low / self.q)), round(self.high / self.q))
        return self._typed(_tidy(k * self.q))

    def _typed(self, x: Any) -> Any:
        # int_uniform on a float field gives ints; the config wants the field's type.
        return int(round(x)) if self.field_type == "int" else float(x)

    def distribution_text(self) -> str:
        if self.kind == CATEGORICAL:
            return f"one of {_show_list(self.choices)}"
        if self.kind == CONSTANT:
            return f"constant {_show(self.choices[0])}"
        text = f"{self.kind} [{_show(self.low)}, {_show(self.high)}]"
        text += f" step {_show(self.q)}" if self.q is not None else ""
        return text + (f" (W&B {self.wandb})" if self.wandb else "")

    def when_text(self) -> str:
        parts = []
        for dep, allowed in self.when.items():
            parts.append(f"{dep} = {_show(allowed[0])}" if len(allowed) == 1 else f"{dep} in {_show_list(allowed)}")
        return " and ".join(parts)


@dataclass(frozen=True)
class SamplerSpec:
    type: str = "tpe"                     # tpe | random | qmc
    seed: int | None = None
    n_startup_trials: int | None = None   # tpe only; None: Optuna's default (10)


@dataclass(frozen=True)
class AshaSpec:
    grace_period: int
    reduction_factor: float
    max_t: int  # = num_epoch
    brackets: int = 1  # Hyperband-style brackets (Ray's AsyncHyperBandScheduler `brackets`)
    source: str | None = None  # how a W&B `early_terminate: {type: hyperband}` became this spec

    def rungs(self, bracket: int = 0) -> list[float]:
        """Epochs at which ASHA compares trials, computed as Ray's
        AsyncHyperBandScheduler does (bracket s starts at grace_period * rf**s)."""
        count = int(math.log(self.max_t / self.grace_period) / math.log(self.reduction_factor) + 1 - bracket)
        return [_tidy(self.grace_period * self.reduction_factor ** (k + bracket)) for k in range(max(count, 0))]

    def all_rungs(self) -> list[float]:
        """Every bracket's rungs, sorted (the epochs a trial must validate at)."""
        return sorted({r for b in range(self.brackets) for r in self.rungs(b)})


@dataclass
class SearchSpace:
    path: Path
    name: str
    description: str | None
    metric: str
    mode: str                  # 'max' | 'min' (Ray/Optuna spelling of goal)
    data_root: Path            # as written, relative to the working directory
    synthetic: str | None      # cvae.synthetic preset generated when data_root is missing
    num_samples: int           # search trials (re-evaluation runs come on top)
    max_concurrent: int | None  # None: as many at a time as the cluster's CPUs/GPUs allow
    cpu: float
    gpu: float                 # fractional GPUs share one device
    max_failures: int
    checkpoint_every: int
    sampler: SamplerSpec
    asha: AshaSpec | None      # None: no early stopping
    fixed: dict[str, Any]      # TrainConfig fields, already of the field's type
    parameters: list[SearchParameter]  # in sampling order: a parameter comes after those its `when` names
    raw: dict[str, Any]        # the mapping read from the file
    strata_mode: str = "free"  # balanced: round-robin over the strata; free: as the sampler draws
    reeval_seeds: int = 0      # extra training seeds for each stratum's best configuration
    # reeval.equivalence_db: two strategies whose difference's 90% interval lies within
    # ± this are called equivalent (in the metric's units: dB for PSNR).
    reeval_equivalence: float = DEFAULT_EQUIVALENCE
    # W&B sweep keys read or ignored, one line each ("program, command: W&B-only, ignored").
    notices: list[str] = field(default_factory=list)
    # The model family (`model:` in the file; cvae.families): its config class checks
    # every fixed and searched field, and it decodes the data and trains each trial.
    model: str = DEFAULT_FAMILY

    @property
    def family(self) -> ModelFamily:
        return get_family(self.model)

    @property
    def num_epoch(self) -> int:
        return self.fixed.get("num_epoch", self.family.default_config().num_epoch)

    def parameter_names(self) -> list[str]:
        return [p.name for p in self.parameters]

    def scientific_parameters(self) -> list[str]:
        """Names of the parameters whose values the report compares."""
        return [p.name for p in self.parameters if p.role == "scientific"]

    def strata(self) -> list[Stratum]:
        """Every stratum (allowed combination of the scientific values), in file order."""
        return enumerate_strata(self.parameters)

    def stratum_of(self, sampled: Mapping[str, Any]) -> str:
        return stratum_key(sampled, self.scientific_parameters())

    @property
    def base_seed(self) -> int:
        return int(self.fixed.get("seed", self.family.default_config().seed))

    def reeval_seed(self, index: int) -> int:
        """Training seed of re-run `index` (1-based) of a best configuration."""
        return self.base_seed + REEVAL_SEED_STEP * index

    @property
    def max_reeval_trials(self) -> int:
        return self.reeval_seeds * len(self.strata())

    def grid_values(self) -> dict[str, list[Any]]:
        """The grid of sampler type grid: every parameter's values (constants as one value)."""
        return {p.name: list(p.choices or ()) for p in self.parameters}

    def grid_size(self) -> int:
        return math.prod(len(v) for v in self.grid_values().values())

    def earliest_stop(self, stratum: Stratum) -> tuple[int, int] | None:
        """(lowest, highest) first epoch at which early stopping may stop a trial of
        `stratum`: ASHA's first rung, or later when the KL warm-up ends later."""
        if self.asha is None:
            return None
        epochs = [max(self.asha.grace_period, kl_warmup_end(**kl))
                  for kl in self._kl_settings(stratum.values)]
        return min(epochs), max(epochs)

    def _kl_words(self, stratum_values: Mapping[str, Any]) -> str | None:
        """A stratum's beta schedule in words, over the ranges its trials can draw;
        None for a family without KL annealing fields."""
        defaults = self.family.default_config()
        if not all(hasattr(defaults, f) for f in ("kl_anneal_type", "kl_anneal_cycle", "kl_anneal_ratio")):
            return None

        def span(name: str) -> Any:
            if name in stratum_values:
                return stratum_values[name]
            if name in self.fixed:
                return self.fixed[name]
            spec = next((p for p in self.parameters if p.name == name), None)
            if spec is None:
                return getattr(defaults, name)
            values = list(spec.choices) if spec.choices is not None else [spec.low, spec.high]
            return values[0] if len(values) == 1 else (min(values), max(values))

        kinds = span("kl_anneal_type")
        if isinstance(kinds, tuple):  # KL type searched but not scientific: one line would mislead
            return "depends on the sampled kl_anneal_type"
        return describe_kl(kind=kinds, num_epoch=self.num_epoch, cycle=span("kl_anneal_cycle"),
                           ratio=span("kl_anneal_ratio"))

    def _kl_settings(self, stratum_values: Mapping[str, Any]) -> list[dict[str, Any]]:
        """KL schedules a stratum's trials can get: the corners of the searched ranges."""
        defaults = self.family.default_config()

        def candidates(name: str) -> list[Any]:
            if name in stratum_values:
                return [stratum_values[name]]
            if name in self.fixed:
                return [self.fixed[name]]
            spec = next((p for p in self.parameters if p.name == name), None)
            if spec is None:
                return [getattr(defaults, name)]
            if spec.choices is not None:
                return list(spec.choices)
            return [spec.low, spec.high]  # the warm-up end moves monotonically with ratio and cycle

        return [dict(kind=kind, num_epoch=self.num_epoch, cycle=int(cycle), ratio=float(ratio))
                for kind in candidates("kl_anneal_type") for cycle in candidates("kl_anneal_cycle")
                for ratio in candidates("kl_anneal_ratio")]

    def parameter(self, name: str) -> SearchParameter:
        for p in self.parameters:
            if p.name == name:
                return p
        raise KeyError(name)

    def define_by_run(self, trial: "optuna.Trial") -> dict[str, Any]:
        """Sample one configuration: each parameter whose `when` holds, in
        dependency order. Returns the sampled values, constants included
        (Ray's OptunaSearch accepts this function as its `space`)."""
        sampled: dict[str, Any] = {}
        for param in self.parameters:
            if param.applies(sampled):
                sampled[param.name] = param.sample(trial)
        return sampled

    def train_config(self, sampled: Mapping[str, Any]) -> Any:
        """The fixed values and `sampled` laid over the family's config defaults (a TrainConfig for lab4-2024)."""
        try:
            # Unconditional constants (W&B's `value:`) belong to every trial's config, the
            # base config ({}: what the data is decoded for) included.
            constants = {p.name: p.choices[0] for p in self.parameters if p.kind == CONSTANT and not p.when}
            return self.family.config_from_dict({**self.fixed, **constants, **sampled},
                                                source=f"{self.path} (trial config)")
        except ConfigError as err:
            raise SpaceError(str(err)) from None

    def describe(self) -> str:
        """The resolved space and plan, for --dry-run."""
        lines = [f"search space '{self.name}' ({self.path})"]
        if self.description:
            lines.append(f"  {self.description.strip()}")
        lines += [
            f"  model:    {self.model} ({self.family.description})",
            f"  metric:   {self.metric} ({'maximize' if self.mode == 'max' else 'minimize'})",
            f"  data:     {self.data_root}" + (f" (synthetic preset '{self.synthetic}' generated if missing)"
                                               if self.synthetic else " (must exist; not generated)"),
            f"  trials:   {self.num_samples} samples, {self._concurrency_text()}, "
            f"{_show(self.cpu)} CPU + {_show(self.gpu)} GPU each, "
            f"retried up to {self.max_failures} times on failure, checkpoint every {self.checkpoint_every} epoch(s)",
            f"  sampler:  {self._sampler_text()}",
            f"  stopping: {self._asha_text()}",
            f"  strata:   {self._strata_text()}",
            f"  reeval:   {self._reeval_text()}",
            f"  budget:   at most {self.num_samples} x {self.num_epoch} = {self.num_samples * self.num_epoch} epochs"
            + (f" + {self.max_reeval_trials} x {self.num_epoch} re-evaluation epochs" if self.reeval_seeds else ""),
        ]
        strata = self.strata()
        lines.append(f"strata ({len(strata)}; scientific: {', '.join(self.scientific_parameters()) or 'none'}):")
        for stratum in strata:
            stop = self.earliest_stop(stratum)
            when = ("never stopped early" if stop is None else
                    f"stopped no earlier than epoch {stop[0]}" if stop[0] == stop[1] else
                    f"stopped no earlier than epoch {stop[0]}..{stop[1]} (by its KL schedule)")
            lines.append(f"  {stratum.key}: {when}")
            kl = self._kl_words(stratum.values)
            if kl:
                lines.append(f"    beta: {kl}")
        lines.append(f"parameters (sampling order; {len(self.parameters)} searched):")
        width = max(len(p.name) for p in self.parameters)
        for p in self.parameters:
            cond = f"  when {p.when_text()}" if p.when else ""
            lines.append(f"  {p.name:<{width}}  {p.role:<10}  {p.distribution_text()}{cond}")
        lines.append(f"fixed ({len(self.fixed)}; every other {type(self.family.default_config()).__name__} field keeps its default):")
        for key, value in self.fixed.items():
            lines.append(f"  {key} = {_show(value)}")
        if self.notices:
            lines.append("W&B sweep keys:")
            lines += [f"  {n}" for n in self.notices]
        return "\n".join(lines)

    def _concurrency_text(self) -> str:
        if self.max_concurrent is None:
            return "as many at a time as the cluster's CPUs/GPUs allow"
        return f"{self.max_concurrent} at a time"

    def _sampler_text(self) -> str:
        s = self.sampler
        parts = [f"seed {s.seed}" if s.seed is not None else "unseeded"]
        if s.type == "tpe":
            startup = s.n_startup_trials if s.n_startup_trials is not None else "Optuna's default 10"
            parts.append(f"multivariate, group, {startup} random startup trials"
                         + (" per stratum" if self.strata_mode == "balanced" else ""))
        if s.type == "grid":
            parts.append(f"every combination once: {self.grid_size()} trials")
        return f"{s.type} ({', '.join(parts)})"

    def _strata_text(self) -> str:
        n = len(self.strata())
        if self.sampler.type == "grid":
            return f"the grid: each of the {n} strata gets the trials of its combinations"
        if self.strata_mode == "balanced":
            return (f"balanced: trials handed out round-robin over {n} strata "
                    f"(~{self.num_samples / n:.1f} each), nuisance parameters tuned within each")
        return f"free: the sampler decides how many trials each of the {n} strata gets"

    def _reeval_text(self) -> str:
        if not self.reeval_seeds:
            return "off"
        seeds = ", ".join(str(self.reeval_seed(i)) for i in range(1, self.reeval_seeds + 1))
        return (f"each stratum's best configuration re-run at full budget with {self.reeval_seeds} more "
                f"seeds ({seeds}) after the search: up to {self.max_reeval_trials} runs; strategies within "
                f"±{self.reeval_equivalence:g}{' dB' if self.metric.endswith('psnr') else ''} of each other "
                "(90% interval) are called equivalent")

    def _asha_text(self) -> str:
        if self.asha is None:
            return f"none (every trial runs all {self.num_epoch} epochs)"
        a = self.asha
        rungs = ", ".join(_show(r) for r in a.rungs())
        brackets = f", {a.brackets} brackets" if a.brackets > 1 else ""
        source = f" [{a.source}]" if a.source else ""
        return (f"ASHA per stratum, grace period {a.grace_period}, reduction factor {_show(a.reduction_factor)}, "
                f"max_t {a.max_t} (num_epoch){brackets}: trials compared at epochs {rungs}, "
                f"never before their KL warm-up ends{source}")


# --------------------------------------------------------------------------- #
# Reading the file
# --------------------------------------------------------------------------- #
class _Loader(yaml.SafeLoader):
    """yaml.SafeLoader plus two fixes of YAML 1.1 traps:
    - `1e-4` is a number (PyYAML reads it as a string: its float needs a dot);
    - a key written twice in one mapping is an error (PyYAML keeps the last one silently).
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.setdefault(key, key_node.start_mark.line)
            except TypeError:
                continue  # unhashable key: SafeLoader reports it below
            if first != key_node.start_mark.line:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} is written twice (first on line {first + 1}), "
                    "but a key may appear only once in a mapping", key_node.start_mark)
        return super().construct_mapping(node, deep=deep)


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."))


def _read_yaml(path: Path) -> Any:
    try:
        text = path.read_text()
    except OSError as err:
        raise SpaceError(f"{path}: cannot read the search space ({err.strerror})") from None
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "somewhere"
        raise SpaceError(f"{path}: {where} is not valid YAML: {err.problem}") from None
    except yaml.YAMLError as err:
        raise SpaceError(f"{path}: not valid YAML: {err}") from None


def load_space(path: str | Path, data: str | Path | None = None, name: str | None = None) -> SearchSpace:
    """Read and check a search-space YAML file; raise SpaceError on the first broken rule.

    `data` is the command line's --data: it replaces data.root, and makes the
    `data` block optional (a W&B sweep file has none). `name` is the command
    line's --name: a file without `name` (W&B names sweeps itself) takes it,
    else the file's name."""
    path = Path(path)
    raw = _read_yaml(path)
    return _Parser(path, data=Path(data) if data is not None else None, name=name).space(raw)


# --------------------------------------------------------------------------- #
# Checking it
# --------------------------------------------------------------------------- #
class _Parser:
    """Checks one file's mapping; every failure names self.path and a key path."""

    def __init__(self, path: Path, data: Path | None = None, name: str | None = None) -> None:
        self.path = path
        self.data_override = data
        self.name_override = name
        self.notices: list[str] = []
        self.samples_key = "trials.num_samples"  # where num_samples was written (run_cap in a W&B file)
        self.family: ModelFamily = get_family(DEFAULT_FAMILY)

    # --- generic checks ---------------------------------------------------------
    def fail(self, key: str, value: Any, rule: str) -> NoReturn:
        raise SpaceError(f"{self.path}: {key} is {_show(value)}, but {rule}")

    def mapping(self, value: Any, key: str, allowed: tuple[str, ...], required: tuple[str, ...] = ()) -> dict:
        if not isinstance(value, dict):
            self.fail(key, value, f"must be a mapping with keys {list(allowed)}")
        for k in value:
            if k not in allowed:
                hint = _did_you_mean(str(k), allowed)
                raise SpaceError(f"{self.path}: {_join(key, k)} is an unknown key, "
                                 f"but {key or 'the top level'} takes only {list(allowed)}{hint}")
        for k in required:
            if k not in value:
                raise SpaceError(f"{self.path}: {_join(key, k)} is missing, but it is required")
        return value

    def integer(self, value: Any, key: str, minimum: int) -> int:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(key, value, "must be an integer")
        if value < minimum:
            self.fail(key, value, f"must be >= {minimum}")
        return value

    def number(self, value: Any, key: str) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            self.fail(key, value, "must be a finite number")
        return value

    def choice(self, value: Any, key: str, allowed: tuple[str, ...]) -> str:
        if value not in allowed:
            self.fail(key, value, f"must be one of {list(allowed)}{_did_you_mean(str(value), allowed)}")
        return value

    @property
    def config_name(self) -> str:
        return self.family.config_class.__name__

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
        ignored = [k for k in WANDB_IGNORED_KEYS if k in top]
        if ignored:
            self.notices.append(f"{', '.join(ignored)}: W&B agent/server keys, ignored "
                                "(each trial trains cvae.train in a Ray worker)")
        if "name" not in top:  # W&B names a sweep itself: --name, else the file's name
            top["name"] = self.name_override or self.path.stem
            self.notices.append(f"name: not in the file; {top['name']!r} from "
                                + ("--name" if self.name_override else "the file's name"))
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
        num_epoch = fixed.get("num_epoch", self.family.default_config().num_epoch)
        asha = self.early_terminate(top.get("early_terminate", {"type": "none"}), num_epoch)
        parameters = self.parameters(top["parameters"], fixed, synthetic)
        self.check_synthetic_lengths(synthetic, fixed, {p.name for p in parameters})
        has_scientific = any(p.role == "scientific" for p in parameters)
        reeval_seeds, reeval_equivalence = self.reeval(top.get("reeval", {}), has_scientific)
        space = SearchSpace(
            path=self.path, name=name, description=description, metric=metric, mode=mode,
            data_root=data_root, synthetic=synthetic, sampler=sampler, asha=asha,
            fixed=fixed, parameters=parameters, raw=raw, reeval_seeds=reeval_seeds,
            reeval_equivalence=reeval_equivalence, notices=self.notices,
            model=self.family.name, **trials)
        self.study_design(space, trials_raw)
        return space

    def hoist_constant_epochs(self, top: dict) -> dict:
        """`fixed`, plus W&B's way of fixing the epoch count: parameters.num_epoch: {value: N}."""
        fixed = top.get("fixed") or {}
        params = top.get("parameters")
        spec = params.get("num_epoch") if isinstance(params, dict) else None
        if not (isinstance(spec, dict) and set(spec) == {"value"} and isinstance(fixed, dict)):
            return fixed
        if "num_epoch" in fixed:
            self.fail("parameters.num_epoch.value", spec["value"], "num_epoch is also fixed: give it once")
        top["parameters"] = {k: v for k, v in params.items() if k != "num_epoch"}
        self.notices.append(f"parameters.num_epoch: {{value: {_show(spec['value'])}}} -> fixed.num_epoch "
                            "(every trial's budget and ASHA's max_t)")
        return {**fixed, "num_epoch": spec["value"]}

    def with_run_cap(self, trials: Any, run_cap: Any) -> Any:
        """The trials block with W&B's run_cap as its num_samples."""
        trials = {} if trials is None else trials
        if run_cap is _MISSING:
            return trials
        cap = self.integer(run_cap, "run_cap", 1)
        if isinstance(trials, dict) and "num_samples" in trials and trials["num_samples"] != cap:
            self.fail("run_cap", cap, f"trials.num_samples is {_show(trials['num_samples'])}: "
                                      "give the number of trials once")
        self.samples_key = "run_cap"
        self.notices.append(f"run_cap: {cap} -> trials.num_samples {cap}")
        return {**trials, "num_samples": cap} if isinstance(trials, dict) else trials

    def reeval(self, value: Any, has_scientific: bool) -> tuple[int, float]:
        """(seeds, equivalence margin) of `reeval:`."""
        # A strategy study (a scientific parameter) re-runs its winners by default; a
        # plain tuning space has no comparison for an interval to settle, so it does not.
        r = self.mapping(value if value is not None else {}, "reeval", ("seeds", "equivalence_db"))
        default = DEFAULT_REEVAL_SEEDS if has_scientific else 0
        seeds = self.integer(r.get("seeds", default), "reeval.seeds", 0)
        margin = self.number(r.get("equivalence_db", DEFAULT_EQUIVALENCE), "reeval.equivalence_db")
        if margin < 0:
            self.fail("reeval.equivalence_db", margin, "must be >= 0 (0: never call two strategies equivalent)")
        return seeds, float(margin)

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
            method = self.choice(method, "method", tuple(WANDB_METHODS))
            default = WANDB_METHODS[method]
            if "type" in s and s["type"] != default:
                self.fail("method", method, f"it selects sampler type {default}, and sampler.type is "
                                            f"{_show(s['type'])}: give one of them")
            self.notices.append(f"method: {method} -> sampler type {default}")
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

    def hyperband(self, value: dict, num_epoch: int) -> AshaSpec:
        """W&B's `early_terminate: {type: hyperband}` as ASHA.

        W&B stops a run at fixed iterations ("brackets"): min_iter, min_iter*eta,
        min_iter*eta^2, ... or, from above, max_iter/eta^s, ..., max_iter/eta. ASHA
        compares trials at grace_period * reduction_factor^k up to max_t = num_epoch:
        the same epochs with grace_period = min_iter (or the lowest of the max_iter
        brackets) and reduction_factor = eta, in one ASHA bracket.
        """
        key = "early_terminate"
        e = self.mapping(value, key, ("type", "min_iter", "max_iter", "eta", "s", "strict"))
        eta = self.number(e.get("eta", 3), f"{key}.eta")  # W&B's default eta is 3
        if eta <= 1:
            self.fail(f"{key}.eta", eta, "must be > 1")
        if ("min_iter" in e) == ("max_iter" in e):
            raise SpaceError(f"{self.path}: {key} has {'both' if 'min_iter' in e else 'neither'} min_iter and "
                             "max_iter, but type hyperband needs exactly one of them")
        notes = []
        if "min_iter" in e:
            grace = self.integer(e["min_iter"], f"{key}.min_iter", 1)
            written = f"min_iter {grace}, eta {_show(eta)}"
            if "s" in e:
                s = self.integer(e["s"], f"{key}.s", 1)
                written += f", s {s}"
                notes.append("s is not used with min_iter: the rungs go up to num_epoch")
        else:
            max_iter = self.integer(e["max_iter"], f"{key}.max_iter", 1)
            if "s" not in e:
                raise SpaceError(f"{self.path}: {key}.s is missing, but type hyperband with max_iter needs s "
                                 "(the number of brackets below max_iter)")
            s = self.integer(e["s"], f"{key}.s", 1)
            grace = int(max_iter / eta ** s)  # W&B's lowest bracket, int() as W&B does
            if grace < 1:
                self.fail(f"{key}.s", s, f"must leave max_iter / eta^s >= 1 (it is {max_iter / eta ** s:.3g})")
            written = f"max_iter {max_iter}, eta {_show(eta)}, s {s}"
            if max_iter != num_epoch:
                notes.append(f"max_iter {max_iter} only places the rungs: every trial's budget is "
                             f"num_epoch = {num_epoch}")
        if "strict" in e:
            notes.append("strict is ignored")
        if grace > num_epoch:
            self.fail(f"{key}.{'min_iter' if 'min_iter' in e else 's'}", e.get("min_iter", e.get("s")),
                      f"gives a first rung at epoch {grace}, after num_epoch ({num_epoch}): ASHA would never "
                      "compare trials")
        source = (f"W&B hyperband ({written}) -> ASHA grace_period {grace}, reduction_factor {_show(eta)}, "
                  f"brackets 1" + (f"; {'; '.join(notes)}" if notes else ""))
        self.notices.append(f"early_terminate: {source}")
        return AshaSpec(grace_period=grace, reduction_factor=eta, max_t=num_epoch, brackets=1, source=source)

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

    def known_field(self, name: str, key: str) -> None:
        if name not in self.family.field_names():
            hint = self.family.closest_field(name)
            suggestion = f" (did you mean '{hint}'?)" if hint else ""
            raise SpaceError(f"{self.path}: {key} is not a {self.config_name} field, "
                             f"but every fixed or searched name must be one{suggestion}")

    def field_value(self, name: str, value: Any, key: str, fixed: Mapping[str, Any]) -> Any:
        """`value` converted to field `name`'s type, checked by TrainConfig with `fixed` around it."""
        try:
            value = self.family.coerce_field(name, value, source="")
        except ConfigError as err:
            self.fail(key, value, _rule_of(err))
        value = self.family.canonical_value(name, value)
        try:
            self.family.check_fields({**fixed, name: value})
        except ConfigError as err:
            rule = _rule_of(err)
            self.fail(key, value, f"{name} {rule}" if rule.startswith("must") else rule)
        return value

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

    # --- parameters -------------------------------------------------------------
    def parameters(self, value: Any, fixed: dict[str, Any], synthetic: str | None) -> list[SearchParameter]:
        if not isinstance(value, dict) or not value:
            self.fail("parameters", value, "must be a mapping with at least one parameter")
        specs: dict[str, SearchParameter] = {}
        raw_when: dict[str, Any] = {}
        for name, spec in value.items():
            specs[name] = self.param(str(name), spec, fixed, synthetic)
            raw_when[name] = spec.get("when")
        for name, when in raw_when.items():
            if when is not None:
                specs[name] = dataclasses.replace(specs[name], when=self.when(name, when, specs, fixed))
        return self.dependency_order(specs)

    def param(self, name: str, spec: Any, fixed: dict[str, Any], synthetic: str | None) -> SearchParameter:
        key = f"parameters.{name}"
        self.known_field(name, key)
        if name == "num_epoch":
            raise SpaceError(f"{self.path}: {key} is searched, but num_epoch is every trial's budget "
                             "and ASHA's max_t: put it under fixed")
        if name in fixed:
            raise SpaceError(f"{self.path}: {key} is searched, but it is also fixed (fixed.{name} = "
                             f"{_show(fixed[name])}); a field is either fixed or searched")
        if not isinstance(spec, dict):
            self.fail(key, spec, "must be a mapping such as {values: [...]} (to fix a value, "
                                 "write {value: ...} or put it under fixed)")
        if spec.get("distribution") in UNSUPPORTED_DISTRIBUTIONS:
            self.fail(f"{key}.distribution", spec["distribution"],
                      "Optuna cannot draw it (unbounded or weighted); supported: "
                      f"{', '.join(SUPPORTED_DISTRIBUTIONS)}")
        self.mapping(spec, key, PARAM_KEYS)
        kind = self.kind(key, spec)
        wandb = None
        if kind in WANDB_ALIASES:
            wandb, (kind, spec) = kind, self.wandb_alias(key, kind, spec)
        ftype = self.family.field_type(name)
        role = self.choice(spec.get("role", "nuisance"), f"{key}.role", ROLES)
        extra = {CATEGORICAL: ("values",), CONSTANT: ("value",)}.get(kind, ("min", "max"))
        extra += ("q",) if kind in (Q_UNIFORM, Q_LOG_UNIFORM_VALUES) else ()
        for k in ("values", "value", "min", "max", "q"):
            if k in spec and k not in extra:
                self.fail(f"{key}.{k}", spec[k], f"{k} does not apply to distribution {kind}")
        for k in extra:
            if k not in spec and k != "q":
                raise SpaceError(f"{self.path}: {key}.{k} is missing, but distribution {kind} needs {list(extra)}")
        if kind == CATEGORICAL:
            choices = self.categorical(name, key, spec["values"], ftype, fixed, synthetic)
            return SearchParameter(name=name, kind=kind, field_type=ftype, choices=choices, role=role)
        if kind == CONSTANT:
            if ftype == "list[int]":
                self.fail(key, spec["value"], f"{name} is a list field: put it under fixed")
            choice = self.field_value(name, spec["value"], f"{key}.value", fixed)
            self.check_length(synthetic, name, choice, f"{key}.value")
            return SearchParameter(name=name, kind=kind, field_type=ftype, choices=(choice,), role=role)
        param = self.numeric(name, key, kind, spec, ftype, fixed, role)
        self.check_length(synthetic, name, param.high, f"{key}.max")
        return dataclasses.replace(param, wandb=wandb) if wandb else param

    def wandb_alias(self, key: str, alias: str, spec: dict) -> tuple[str, dict]:
        """A W&B distribution as the kind it is, with min/max as values."""
        kind, bounds = WANDB_ALIASES[alias]
        if bounds == "values":
            return kind, spec
        for k in ("min", "max"):
            if k not in spec:
                raise SpaceError(f"{self.path}: {key}.{k} is missing, but distribution {alias} needs min and max "
                                 "(natural-log exponents)")
        lo, hi = self.number(spec["min"], f"{key}.min"), self.number(spec["max"], f"{key}.max")
        if lo >= hi:
            self.fail(f"{key}.min", lo, f"must be < max ({_show(hi)})")
        if max(abs(lo), abs(hi)) > 700:
            self.fail(f"{key}.max" if abs(hi) > 700 else f"{key}.min", hi if abs(hi) > 700 else lo,
                      f"is an exponent for {alias} (the value is e^max): it must be within +-700")
        lo, hi = (math.exp(lo), math.exp(hi)) if bounds == "exp" else (math.exp(-hi), math.exp(-lo))
        return kind, {**spec, "min": _tidy(lo), "max": _tidy(hi)}

    def kind(self, key: str, spec: dict) -> str:
        kind = spec.get("distribution")
        if kind is None:  # W&B's inference
            if "values" in spec:
                return CATEGORICAL
            if "value" in spec:
                return CONSTANT
            if "min" in spec and "max" in spec:
                ints = all(isinstance(spec[k], int) and not isinstance(spec[k], bool) for k in ("min", "max"))
                return INT_UNIFORM if ints else UNIFORM
            raise SpaceError(f"{self.path}: {key} has no values, value or min/max, but a parameter needs "
                             "values (categorical), value (constant) or min and max (a range)")
        return self.choice(kind, f"{key}.distribution", SUPPORTED_DISTRIBUTIONS)

    def categorical(self, name: str, key: str, values: Any, ftype: str, fixed: dict,
                    synthetic: str | None) -> tuple[Any, ...]:
        if not isinstance(values, list) or not values:
            self.fail(f"{key}.values", values, "must be a non-empty list")
        if ftype == "list[int]":
            # Optuna's categorical choices must be scalars.
            self.fail(f"{key}.values", values, f"{name} is a list field and cannot be searched: put it under fixed")
        choices: list[Any] = []
        for i, v in enumerate(values):
            c = self.field_value(name, v, f"{key}.values[{i}]", fixed)
            self.check_length(synthetic, name, c, f"{key}.values[{i}]")
            if any(c == seen and type(c) is type(seen) for seen in choices):
                self.fail(f"{key}.values[{i}]", v, f"each value may appear once ({c!r} is already listed)")
            choices.append(c)
        return tuple(choices)

    def numeric(self, name: str, key: str, kind: str, spec: dict, ftype: str, fixed: dict,
                role: str) -> SearchParameter:
        if ftype not in ("int", "float"):
            self.fail(f"{key}.distribution", kind, f"{name} is a {ftype} field: list its choices under values")
        lo = self.number(spec["min"], f"{key}.min")
        hi = self.number(spec["max"], f"{key}.max")
        if kind == INT_UNIFORM:
            lo, hi = self.integer(lo, f"{key}.min", -2**62), self.integer(hi, f"{key}.max", -2**62)
        if ftype == "int" and kind in (UNIFORM, LOG_UNIFORM_VALUES):
            self.fail(f"{key}.distribution", kind, f"{name} is an integer field: use int_uniform, "
                                                    "q_uniform or q_log_uniform_values")
        if lo >= hi:
            self.fail(f"{key}.min", lo, f"must be < max ({_show(hi)})")
        log = kind in (LOG_UNIFORM_VALUES, Q_LOG_UNIFORM_VALUES)
        if log and lo <= 0:
            self.fail(f"{key}.min", lo, f"must be > 0 for {kind}")
        q = None
        if kind in (Q_UNIFORM, Q_LOG_UNIFORM_VALUES):
            q = self.number(spec.get("q", 1), f"{key}.q")  # W&B's default q is 1
            if q <= 0:
                self.fail(f"{key}.q", q, "must be > 0")
            if ftype == "int":
                if not float(q).is_integer():
                    self.fail(f"{key}.q", q, f"must be a whole number: {name} is an integer field")
                q = int(q)
            lo, hi = self.grid_ends(key, lo, hi, q)
            if lo == hi:
                self.fail(f"{key}.q", q, f"leaves one multiple of q ({_show(lo)}) in [min, max], so nothing is searched")
        lo = self.field_value(name, lo, f"{key}.min", fixed)
        hi = self.field_value(name, hi, f"{key}.max", fixed)
        return SearchParameter(name=name, kind=kind, field_type=ftype, low=lo, high=hi, q=q, log=log, role=role)

    def grid_ends(self, key: str, lo: float, hi: float, q: float) -> tuple[float, float]:
        """First and last multiple of q inside [lo, hi] (with float slack: 0.3 / 0.1 = 2.9999999999999996)."""
        first = _tidy(math.ceil(lo / q - 1e-9) * q)
        last = _tidy(math.floor(hi / q + 1e-9) * q)
        if first > last:
            self.fail(f"{key}.q", q, f"has no multiple inside [min, max] = [{_show(lo)}, {_show(hi)}]")
        return first, last

    def check_length(self, synthetic: str | None, name: str, value: Any, key: str) -> None:
        rule = self.family.length_rule(synthetic, name, value)
        if rule:
            self.fail(key, value, rule)

    def when(self, name: str, when: Any, specs: dict[str, SearchParameter], fixed: dict) -> dict[str, tuple]:
        key = f"parameters.{name}.when"
        if not isinstance(when, dict) or not when:
            self.fail(key, when, "must be a mapping {other_parameter: value or [values]}")
        resolved: dict[str, tuple] = {}
        for dep, wanted in when.items():
            dkey = f"{key}.{dep}"
            if dep == name:
                self.fail(dkey, wanted, "a parameter cannot depend on itself")
            if dep not in specs:
                if dep in fixed:
                    rule = f"{dep} is fixed, not searched, so the condition is always decided: drop it"
                else:
                    rule = f"when must name a searched parameter{_did_you_mean(str(dep), tuple(specs))}"
                raise SpaceError(f"{self.path}: {dkey} names no parameter in parameters, but {rule}")
            target = specs[dep]
            if target.kind not in (CATEGORICAL, CONSTANT) and target.field_type != "int":
                self.fail(dkey, wanted, f"{dep} is continuous ({target.kind}): a condition needs a "
                                        "categorical or integer parameter")
            wanted_list = wanted if isinstance(wanted, list) else [wanted]
            if not wanted_list:
                self.fail(dkey, wanted, "must list at least one value")
            values: list[Any] = []
            for v in wanted_list:
                try:
                    c = self.family.coerce_field(dep, v, source="")
                except ConfigError as err:
                    self.fail(dkey, v, _rule_of(err))
                c = self.family.canonical_value(dep, c)
                if not target.can_take(c):
                    self.fail(dkey, v, f"{dep} never takes it ({target.distribution_text()})")
                values.append(c)
            resolved[dep] = tuple(values)
        return resolved

    def dependency_order(self, specs: dict[str, SearchParameter]) -> list[SearchParameter]:
        """File order, except that a parameter follows every parameter its `when` names."""
        ordered: list[SearchParameter] = []
        placed: set[str] = set()
        pending = list(specs.values())
        while pending:
            ready = next((p for p in pending if set(p.when) <= placed), None)
            if ready is None:
                names = ", ".join(p.name for p in pending)
                raise SpaceError(f"{self.path}: parameters.{pending[0].name}.when is "
                                 f"{pending[0].when_text()}, but the conditions of {names} form a "
                                 "cycle: each waits for another")
            ordered.append(ready)
            placed.add(ready.name)
            pending.remove(ready)
        return ordered


# --------------------------------------------------------------------------- #
# Small helpers
# --------------------------------------------------------------------------- #
def _rule_of(err: ConfigError) -> str:
    """'<source>: lr is -1.0, but must be > 0' -> 'must be > 0'."""
    text = str(err)
    return text.split(", but ", 1)[1] if ", but " in text else text


def _did_you_mean(name: str, options: tuple[str, ...]) -> str:
    match = difflib.get_close_matches(name, options, n=1, cutoff=0.6)
    return f" (did you mean '{match[0]}'?)" if match else ""


def _join(prefix: str, key: Any) -> str:
    return f"{prefix}.{key}" if prefix else str(key)


def _tidy(x: float) -> float:
    """Drop float noise from grid arithmetic: 3 * 0.1 -> 0.3."""
    return float(f"{x:.12g}")


def _show(value: Any) -> str:
    """A value as the user would write it in YAML."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, float):
        return f"{value:.12g}"  # 0.0001, 1, 0.3
    return repr(value)


def _show_list(values: tuple[Any, ...] | list[Any]) -> str:
    return "[" + ", ".join(_show(v) for v in values) + "]"
