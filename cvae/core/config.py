"""What every family's config shares: the shared fields' allowed values, the
error a bad value raises, the dataclass base (built from a mapping or a YAML file,
errors naming the source and the key), the field-type checks, the one
did-you-mean for field names, and the checks of the shared fields' values."""
from __future__ import annotations

import dataclasses
import difflib
import math
import sys
from pathlib import Path
from typing import Any, Iterable, Mapping, Self

import yaml

OPTIMIZERS = ("Adam", "AdamW", "Adamax", "SGD", "ASGD", "RMSprop")
# "Cyclic" and "Without" are spellings found in Lab4 write-ups.
KL_ANNEAL_TYPES = ("Cyclical", "Monotonic", "None")
KL_ANNEAL_ALIASES = {"Cyclic": "Cyclical", "Without": "None"}
TFR_DECAYS = ("linear", "exponential")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
DEVICES = ("auto", "cpu", "cuda")


class ConfigError(ValueError):
    """A configuration value or key a user wrote is not acceptable."""


class ConfigFile:
    """What every family's config dataclass shares: built from a mapping or a YAML file
    with errors that name the source and the key, and turned back into a dict.

    A subclass gives `coerce_items` (its keys' checks and spellings) and may check the
    `model:` key a search's best.yaml writes (`check_model_key`)."""

    # The course template's argument names that differ from a field's (Trainer.py's
    # --optim): accepted wherever a field name is, in configs, spaces and W&B files.
    TEMPLATE_ALIASES: dict[str, str] = {}
    TEMPLATE_IGNORED: dict[str, str] = {}

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]

    @classmethod
    def with_field_names(cls, values: Mapping[str, Any], source: str) -> dict[str, Any]:
        """`values` with the template's argument names turned into field names."""
        out: dict[str, Any] = {}
        for key, value in values.items():
            if key in cls.TEMPLATE_IGNORED and key not in cls.field_names():
                print(f"warning: {source}: {key} is the template's Trainer.py argument, ignored "
                      f"({cls.TEMPLATE_IGNORED[key]})", file=sys.stderr, flush=True)
                continue
            name = cls.TEMPLATE_ALIASES.get(key, key)
            if name in out:
                alias = next(a for a, field in cls.TEMPLATE_ALIASES.items() if field == name)
                raise ConfigError(f"{source}: {alias} and {name} are the same field (the template calls "
                                  f"{name} {alias}): give it once")
            out[name] = value
        return out

    @classmethod
    def coerce_items(cls, values: Mapping[str, Any], source: str) -> dict[str, Any]:
        raise NotImplementedError

    @classmethod
    def check_model_key(cls, path: Path, model: Any) -> None:
        """Called with the `model:` value of a YAML file; the key itself is not a field."""

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], source: str = "config") -> Self:
        """Build a config, naming `source` and the key in every error."""
        if not isinstance(values, Mapping):
            raise ConfigError(f"{source}: expected a mapping of {cls.__name__} fields, got {type(values).__name__}")
        converted = cls.coerce_items(cls.with_field_names(values, source), source)
        try:
            return cls(**converted)
        except ConfigError as err:
            raise ConfigError(f"{source}: {err}") from None

    @classmethod
    def from_yaml(cls, path: str | Path) -> Self:
        path = Path(path)
        try:
            text = path.read_text()
        except OSError as err:
            raise ConfigError(f"{path}: cannot read config file ({err.strerror})") from None
        try:
            values = yaml.safe_load(text) or {}
        except yaml.YAMLError as err:
            raise ConfigError(f"{path}: not valid YAML: {err}") from None
        if isinstance(values, dict) and "model" in values:  # a best.yaml names its model family
            values = dict(values)
            cls.check_model_key(path, values.pop("model"))
        return cls.from_dict(values, source=str(path))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    def replace(self, **changes: Any) -> Self:
        return type(self).from_dict({**self.to_dict(), **changes})


def coerce_value(key: str, value: Any, kind: str, where: str) -> Any:
    """`value` as a field of type `kind` (the dataclass annotation: int, int | None,
    float, bool, str, list[int]), or ConfigError naming `where` (file: key) and the rule.
    Shared by every model family's config."""
    if kind == "int | None":
        if value is None:  # YAML null: the default
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise ConfigError(f"{where} is {value!r}, but must be an integer or null")
        return value
    if kind == "bool":
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where} is {value!r}, but must be true or false")
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise ConfigError(f"{where} is {value!r}, but must be an integer")
        return value
    if kind == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where} is {value!r}, but must be a number")
        return float(value)
    if kind == "str":
        if not isinstance(value, str):
            # YAML reads a bare None as null: the KL type "None" is meant.
            if value is None and key == "kl_anneal_type":
                return "None"
            raise ConfigError(f"{where} is {value!r}, but must be a string")
        return value
    if kind == "list[int]":
        if not isinstance(value, (list, tuple)) or any(isinstance(v, bool) or not isinstance(v, int) for v in value):
            raise ConfigError(f"{where} is {value!r}, but must be a list of integers")
        return list(value)
    raise AssertionError(f"unhandled field type {kind} for {key}")  # programming error, not user input


def closest_field(name: str, names: Iterable[str]) -> str | None:
    """The field name `name` was most likely meant to be (a typo), or None."""
    matches = difflib.get_close_matches(name, list(names), n=1, cutoff=0.6)
    return matches[0] if matches else None


def require(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


def finite_field(cfg: Any, name: str) -> float:
    value = getattr(cfg, name)
    require(math.isfinite(value), f"{name} is {value!r}, but must be a finite number")
    return value


def check_shared_values(cfg: Any) -> None:
    """The checks of the fields every family has with one meaning (the schedules, the
    optimiser, execution); a family's own `_check_values` adds its own fields'."""
    require(0 <= finite_field(cfg, "tfr") <= 1, f"tfr is {cfg.tfr!r}, but must be in [0, 1]")
    require(cfg.tfr_sde >= 0, f"tfr_sde is {cfg.tfr_sde}, but must be >= 0")
    require(0 <= finite_field(cfg, "tfr_d_step") <= 1, f"tfr_d_step is {cfg.tfr_d_step!r}, but must be in [0, 1]")
    require(cfg.tfr_decay in TFR_DECAYS, f"tfr_decay is {cfg.tfr_decay!r}, but must be one of {list(TFR_DECAYS)}")
    require(0 <= finite_field(cfg, "tfr_lower_bound") <= 1,
            f"tfr_lower_bound is {cfg.tfr_lower_bound!r}, but must be in [0, 1]")
    require(cfg.kl_anneal_type in KL_ANNEAL_TYPES,
            f"kl_anneal_type is {cfg.kl_anneal_type!r}, but must be one of {list(KL_ANNEAL_TYPES)} "
            f"(or the aliases {list(KL_ANNEAL_ALIASES)})")
    require(cfg.kl_anneal_cycle >= 1, f"kl_anneal_cycle is {cfg.kl_anneal_cycle}, but must be >= 1")
    # > 1 is a slower rise that ends the cycle below 1 (older templates' default is 2): Fu's schedule computes it.
    require(finite_field(cfg, "kl_anneal_ratio") > 0, f"kl_anneal_ratio is {cfg.kl_anneal_ratio!r}, but must be > 0")
    require(finite_field(cfg, "kl_weight") >= 0, f"kl_weight is {cfg.kl_weight!r}, but must be >= 0")
    require(cfg.optimizer in OPTIMIZERS, f"optimizer is {cfg.optimizer!r}, but must be one of {list(OPTIMIZERS)}")
    require(cfg.precision in PRECISIONS, f"precision is {cfg.precision!r}, but must be one of {list(PRECISIONS)}")
    require(cfg.device in DEVICES, f"device is {cfg.device!r}, but must be one of {list(DEVICES)}")
    require(cfg.val_every >= 1, f"val_every is {cfg.val_every}, but must be >= 1")
    threads = cfg.torch_threads
    require(threads is None or (isinstance(threads, int) and not isinstance(threads, bool) and threads >= 1),
            f"torch_threads is {threads!r}, but must be an integer >= 1 (or null for torch's default)")
