"""The parsed search space: SearchParameter, SamplerSpec, AshaSpec and SearchSpace.

What a checked file becomes, and what the runner, the searcher and the
trainable ask of it: define-by-run sampling, the strata, the re-evaluation
seeds, ASHA's rungs and the epochs before which a stratum's trials are not
stopped. Building one from a file is search.space.parser's job; the text
`--dry-run` prints is search.space.describe's (mixed into SearchSpace).

This module imports no Ray and no Optuna: it only calls the `suggest_*`
methods of the trial object it is handed.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from cvae.core.config import ConfigError
from cvae.core.schedules import kl_judge_epochs
from cvae.families import DEFAULT_FAMILY, ModelFamily, get_family
from search.comparison import DEFAULT_EQUIVALENCE
from search.errors import SpaceError
from search.racing import RaceBudget
from search.space.describe import DryRunText
from search.space.helpers import _MISSING, _show, _show_list, _tidy
from search.strata import Stratum, enumerate_strata, stratum_key

if TYPE_CHECKING:
    import optuna

# The distributions a parameter is drawn from (W&B's names; its other names are
# mapped onto these by search.space.wandb_sweep).
CATEGORICAL, CONSTANT = "categorical", "constant"
INT_UNIFORM, UNIFORM, Q_UNIFORM = "int_uniform", "uniform", "q_uniform"
LOG_UNIFORM_VALUES, Q_LOG_UNIFORM_VALUES = "log_uniform_values", "q_log_uniform_values"
NUMERIC_KINDS = (INT_UNIFORM, UNIFORM, Q_UNIFORM, LOG_UNIFORM_VALUES, Q_LOG_UNIFORM_VALUES)
DISTRIBUTIONS = (CATEGORICAL, CONSTANT, *NUMERIC_KINDS)
# Re-run i (1-based) of a stratum's best configuration trains with seed
# fixed seed + REEVAL_SEED_STEP * i: distinct from the original run's seed and
# from each other.
REEVAL_SEED_STEP = 1000


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
class SearchSpace(DryRunText):
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
    # reeval.seeds: auto races the seeds (search/racing.py): reeval_seeds is then the
    # first round's count, and racing stops at max_seeds per stratum or budget_epochs.
    reeval_racing: bool = False
    reeval_max_seeds: int = 0
    reeval_budget_epochs: int | None = None
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
    def race_budget(self) -> RaceBudget | None:
        if not self.reeval_racing:
            return None
        return RaceBudget(max_seeds=self.reeval_max_seeds, budget_epochs=self.reeval_budget_epochs,
                          num_epoch=self.num_epoch)

    @property
    def max_reeval_trials(self) -> int:
        budget = self.race_budget
        if budget is not None:
            return budget.max_runs(len(self.strata()))
        return self.reeval_seeds * len(self.strata())

    @property
    def reeval_seed_count(self) -> int:
        """Seeds a stratum may get at most: the racing cap, or the fixed count."""
        return self.reeval_max_seeds if self.reeval_racing else self.reeval_seeds

    def grid_values(self) -> dict[str, list[Any]]:
        """The grid of sampler type grid: every parameter's values (constants as one value)."""
        return {p.name: list(p.choices or ()) for p in self.parameters}

    def grid_size(self) -> int:
        return math.prod(len(v) for v in self.grid_values().values())

    def earliest_stop(self, stratum: Stratum) -> tuple[int, int] | None:
        """(lowest, highest) first epoch at which early stopping may stop a trial of
        `stratum`: ASHA's first rung, or later when its KL schedule is judged later
        (the end of the ramp; for Cyclical the end of a cycle's top)."""
        if self.asha is None:
            return None
        grace = self.asha.grace_period
        epochs = [kl_judge_epochs(**kl, from_epoch=grace)[0] for kl in self._kl_settings(stratum.values)]
        return min(epochs), max(epochs)

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
