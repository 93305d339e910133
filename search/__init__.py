"""Hyperparameter search: the YAML search space, the Ray Tune trainable and the runner.

Only the light search-space loader is re-exported here; the runner and the
trainable import Ray and Optuna, so they are imported from their own modules.
"""
from search.errors import SpaceError
from search.space import SearchParameter, SearchSpace, load_space

__all__ = ["SearchParameter", "SearchSpace", "SpaceError", "load_space"]
