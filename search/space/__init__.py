"""The search-space YAML: read, check every rule, sample define-by-run.

`load_space(path)` turns a file like spaces/quick.yaml into a `SearchSpace`.
Every rule is checked here, before Ray starts, and a broken rule raises
`SpaceError("<file>: <key.path> is <value>, but <rule>")`.

One module per job:

- model.py: SearchParameter, SamplerSpec, AshaSpec, SearchSpace (what a file
  becomes, and define-by-run sampling);
- loader.py: the YAML loader and `load_space`;
- parser.py: the top level and every section but `parameters`; parameters.py:
  the `parameters:` block; checks.py: the value checks they share;
- wandb_sweep.py: W&B sweep syntax mapped onto Optuna and ASHA (its table of
  distributions);
- describe.py: the dry-run text, `SearchSpace.describe()`;
- helpers.py: how a value is shown, float tidying, "did you mean".

Nothing here imports Ray or Optuna. The names below are the package's
interface, as they were when it was one module: import them from `search.space`.
"""
from __future__ import annotations

from search.errors import SpaceError
from search.space.loader import load_space
from search.space.model import (
    CATEGORICAL,
    CONSTANT,
    DISTRIBUTIONS,
    INT_UNIFORM,
    LOG_UNIFORM_VALUES,
    NUMERIC_KINDS,
    Q_LOG_UNIFORM_VALUES,
    Q_UNIFORM,
    REEVAL_SEED_STEP,
    UNIFORM,
    AshaSpec,
    SamplerSpec,
    SearchParameter,
    SearchSpace,
)
from search.space.parameters import PARAM_KEYS, ROLES
from search.space.parser import (
    DEFAULT_REEVAL_SEEDS,
    EARLY_TERMINATE,
    GOALS,
    METRICS,
    SAMPLERS,
    STRATA_MODES,
    TOP_LEVEL_KEYS,
)
from search.space.wandb_sweep import (
    SUPPORTED_DISTRIBUTIONS,
    UNSUPPORTED_DISTRIBUTIONS,
    WANDB_ALIASES,
    WANDB_IGNORED_KEYS,
    WANDB_METHODS,
)

__all__ = [
    # imported from search.space in the repository today
    "AshaSpec", "SearchParameter", "SearchSpace", "SpaceError", "SUPPORTED_DISTRIBUTIONS",
    "UNSUPPORTED_DISTRIBUTIONS", "load_space",
    # the old module's other public names
    "CATEGORICAL", "CONSTANT", "DEFAULT_REEVAL_SEEDS", "DISTRIBUTIONS", "EARLY_TERMINATE", "GOALS",
    "INT_UNIFORM", "LOG_UNIFORM_VALUES", "METRICS", "NUMERIC_KINDS", "PARAM_KEYS", "Q_LOG_UNIFORM_VALUES",
    "Q_UNIFORM", "REEVAL_SEED_STEP", "ROLES", "SAMPLERS", "STRATA_MODES", "SamplerSpec", "TOP_LEVEL_KEYS",
    "UNIFORM", "WANDB_ALIASES", "WANDB_IGNORED_KEYS", "WANDB_METHODS",
]
