"""The parser's base: the file being read, the notices collected, and the value checks every section uses.

Every failure raises SpaceError("<file>: <key.path> is <value>, but <rule>"):
the sections (search.space.parser, .parameters, .wandb_sweep) say what a key
must be, these checks say it in one way.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping, NoReturn

from cvae.core.config import ConfigError
from cvae.families import DEFAULT_FAMILY, ModelFamily, get_family
from search.errors import SpaceError
from search.space.helpers import _did_you_mean, _join, _rule_of, _show


class _Checks:
    """One file's parse: its path, overrides, notices and family, and the checks of single values."""

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

    # --- fields of the family's config -----------------------------------------
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

    def check_length(self, synthetic: str | None, name: str, value: Any, key: str) -> None:
        rule = self.family.length_rule(synthetic, name, value)
        if rule:
            self.fail(key, value, rule)
