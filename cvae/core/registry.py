"""Model families: one interface, one registry (docs/FAMILIES.md).

`cvae.families` re-exports everything here; a family's folder
(cvae/families/<name>/__init__.py) subclasses `ModelFamily` and registers itself.

A family is everything that is specific to one model: its config dataclass,
its data loader and synthetic generator, its training loop (one `fit` with the
contract of `cvae.train.fit`), its validation, its copy baseline and its
prediction CLI. search/, reports/ and run_search.py find a family by the name
written as `model:` in a space YAML (or `--model`) and call only the methods of
`ModelFamily`; none of them branches on a family's name.

    from cvae.families import get_family
    family = get_family("bair-2023")
    cfg = family.config_from_dict({"lr": 1e-3})
    data = family.load_data("data/bair-small", cfg)
    trainer = family.fit(cfg, data)

Built in:
  lab4-2024  the 2024 pose-conditioned dance CVAE (cvae/families/lab4_2024/; the default)
  bair-2023  the 2023 SVG-style CVAE on BAIR robot pushing (cvae/families/bair_2023/)

Adding a third family: one new folder cvae/families/<name>/ with the same file
names as the others, whose __init__.py subclasses `ModelFamily` (every abstract
method: registration refuses a family that lacks one) and decorates it with
`@register_family`; then one line in BUILTIN_FAMILIES (or import it before use).
Nothing in search/, reports/ or run_search.py changes.
"""
from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

DEFAULT_FAMILY = "lab4-2024"
# name -> module that registers it when imported (imported on first use, so that
# `import cvae.families` stays cheap and a family's heavy imports load only when used).
BUILTIN_FAMILIES: dict[str, str] = {
    "lab4-2024": "cvae.families.lab4_2024",
    "bair-2023": "cvae.families.bair_2023",
}
# The schedule and optimisation fields every family has, with one meaning
# (so a KL x teacher-forcing comparison means the same thing for both).
SHARED_FIELDS = ("kl_anneal_type", "kl_anneal_cycle", "kl_anneal_ratio", "kl_weight", "tfr", "tfr_sde",
                 "tfr_d_step", "tfr_decay", "tfr_lower_bound", "optimizer", "lr", "batch_size", "num_epoch", "seed")

_REGISTRY: dict[str, "ModelFamily"] = {}


class UnknownFamilyError(ValueError):
    """A `model:` / `--model` name no family is registered under."""


class ModelFamily(ABC):
    """The interface a model family implements. Subclasses set the class attributes
    and implement the abstract methods; `@register_family` makes one instance
    findable by name, and refuses a class that misses one."""

    name: str = ""
    description: str = ""
    config_class: type = object          # dataclass with from_dict/from_yaml/to_dict/replace/field_names
    synthetic_presets: Mapping[str, Any] = {}
    default_data_root: str = ""
    # Index of the first frame validation predicts: `val_psnr_per_frame` is frames
    # first_predicted_frame, first_predicted_frame + 1, ... (lab4-2024: 1; bair-2023: n_past).
    def first_predicted_frame(self, cfg: Any) -> int:
        return 1

    # --- configuration ------------------------------------------------------------
    def field_names(self) -> list[str]:
        return list(self.config_class.field_names())

    def field_type(self, name: str) -> str:
        """The annotation of field `name` as text: int | float | str | bool | int | None | list[int]."""
        import dataclasses

        return next(str(f.type) for f in dataclasses.fields(self.config_class) if f.name == name)

    def default_config(self) -> Any:
        return self.config_class()

    def config_from_dict(self, values: Mapping[str, Any], source: str = "config") -> Any:
        return self.config_class.from_dict(values, source=source)

    @abstractmethod
    def coerce_field(self, key: str, value: Any, source: str = "config") -> Any:
        raise NotImplementedError

    def closest_field(self, name: str) -> str | None:
        from cvae.core.config import closest_field

        return closest_field(name, self.field_names())

    def canonical_value(self, name: str, value: Any) -> Any:
        """A value in its canonical spelling (kl_anneal_type 'Cyclic' -> 'Cyclical')."""
        from cvae.core.config import KL_ANNEAL_ALIASES

        return KL_ANNEAL_ALIASES.get(value, value) if name == "kl_anneal_type" else value

    def check_fields(self, values: Mapping[str, Any]) -> None:
        """Build a config from `values` over the defaults; raises the config's error."""
        self.config_class(**values)

    # --- data -----------------------------------------------------------------------
    @abstractmethod
    def load_data(self, root: str | Path, cfg: Any, progress: bool = True) -> Any:
        raise NotImplementedError

    def check_data(self, cfg: Any, data: Any, where: str) -> None:
        """Raise ConfigError (naming `where`) when fixed settings cannot be served by `data`."""

    @abstractmethod
    def generate_synthetic(self, out: str | Path, preset: str, seed: int = 0, progress: bool = True) -> Path:
        raise NotImplementedError

    def length_rule(self, synthetic: str | None, name: str, value: Any) -> str | None:
        """Why `value` of field `name` cannot be served by synthetic preset `synthetic` (None: it can)."""
        return None

    @abstractmethod
    def share_data(self, data: Any) -> dict[str, Any]:
        """The decoded data as numpy arrays (zero-copy through Ray's object store)."""
        raise NotImplementedError

    @abstractmethod
    def unshare_data(self, shared: Mapping[str, Any]) -> tuple[Any, bool]:
        """The data object over shared arrays, and whether they were object-store memory."""
        raise NotImplementedError

    @abstractmethod
    def baseline_psnr(self, data: Any, cfg: Any) -> float | None:
        """Validation PSNR of the copy baseline (the floor a model must beat)."""
        raise NotImplementedError

    # --- training and prediction ------------------------------------------------------
    @abstractmethod
    def fit(self, cfg: Any, data: Any, on_epoch: Callable[[dict, Any], None] | None = None,
            resume_from: str | Path | None = None, device: str | None = None,
            validate_at: Sequence[int] = ()) -> Any:
        raise NotImplementedError

    def execution_settings(self, cfg: Any, device: Any) -> dict[str, Any]:
        from cvae.core.training import execution_settings

        return execution_settings(cfg, device)

    # --- `precision: auto` by measurement (cvae.core.precision_probe) ---------------------
    def probe_workload(self, cfg: Any) -> dict[str, Any]:
        """The config values one training step's cost depends on (the probe cache's model part)."""
        raise NotImplementedError(f"model family {self.name!r} has no precision probe (probe_workload)")

    def probe_step(self, cfg: Any, device: Any) -> Callable[[], None]:
        """One real training step of `cfg` (in cfg.precision) on `device`, ready to call repeatedly
        over fixed random data at cfg's dims; returns without a host sync."""
        raise NotImplementedError(f"model family {self.name!r} has no precision probe (probe_step)")

    def decide_precision(self, cfg: Any, device: Any, threads: int | None = None,
                         cache: Path | None = None) -> Any:
        """cfg.precision resolved for a run on `device` (a PrecisionDecision): forced, or
        `auto` measured here (cached), or the flag rule where no probe can run."""
        from cvae.core.precision_probe import decide_run_precision

        return decide_run_precision(self, cfg, device, threads, cache)

    def planned_precision(self, cfg: Any, device: Any, threads: int | None = None,
                          cache: Path | None = None) -> Any:
        """What decide_precision would answer, without probing (a dry run)."""
        from cvae.core.precision_probe import planned_run_precision

        return planned_run_precision(self, cfg, device, threads, cache)

    @abstractmethod
    def predict_main(self, argv: Sequence[str]) -> int:
        raise NotImplementedError

    @abstractmethod
    def train_main(self, argv: Sequence[str]) -> int:
        raise NotImplementedError

    @abstractmethod
    def synthetic_main(self, argv: Sequence[str]) -> int:
        """`python -m cvae.synthetic` for a preset of this family's."""
        raise NotImplementedError


def arrays_to_tensors(shared: Mapping[str, Any], names: Sequence[str]) -> dict[str, Any]:
    """torch tensors over numpy arrays without copying (read-only object-store arrays included)."""
    import warnings

    import torch

    with warnings.catch_warnings():
        # torch warns that the tensors are not writable: training only reads them.
        warnings.simplefilter("ignore", UserWarning)
        return {name: torch.from_numpy(shared[name]) for name in names}


def register_family(cls: type[ModelFamily]) -> type[ModelFamily]:
    """Class decorator: register one instance of `cls` under `cls.name`."""
    if not cls.name:
        raise ValueError(f"{cls.__name__}: a model family needs a name")
    missing = sorted(getattr(cls, "__abstractmethods__", ()))
    if missing:  # here, at import, not later inside a Ray worker
        raise TypeError(f"model family {cls.name!r} ({cls.__name__}) does not implement {', '.join(missing)} "
                        f"(every abstract method of cvae.families.ModelFamily)")
    if cls.config_class is object:
        raise TypeError(f"model family {cls.name!r} ({cls.__name__}) sets no config_class")
    existing = _REGISTRY.get(cls.name)
    if existing is not None and type(existing).__qualname__ != cls.__qualname__:
        raise ValueError(f"model family {cls.name!r} is already registered by {type(existing).__name__}")
    _REGISTRY[cls.name] = cls()
    return cls


def family_names() -> list[str]:
    return sorted(set(BUILTIN_FAMILIES) | set(_REGISTRY))


def get_family(name: str | None = None) -> ModelFamily:
    """The family registered as `name` (None: the default, lab4-2024)."""
    name = DEFAULT_FAMILY if name is None else name
    if name not in _REGISTRY and name in BUILTIN_FAMILIES:
        importlib.import_module(BUILTIN_FAMILIES[name])
    if name not in _REGISTRY:
        raise UnknownFamilyError(f"model is {name!r}, but must be one of {family_names()}")
    return _REGISTRY[name]


def family_from_argv(argv: Sequence[str], file_flag: str, read_model: Callable[[str], Any]) -> ModelFamily:
    """The family a CLI runs: --model, else what `read_model` finds in the file `file_flag`
    names (None where it cannot read it: the family's own loader then reports the file),
    else the default. Raises UnknownFamilyError for a name no family has."""
    import argparse

    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--model")
    pre.add_argument(file_flag, dest="file")
    known, _ = pre.parse_known_args(list(argv))
    name = known.model
    if name is None and known.file is not None:
        name = read_model(known.file)
    return get_family(name)


def split_model_key(values: Mapping[str, Any], override: str | None = None,
                    source: str = "config") -> tuple[ModelFamily, dict[str, Any]]:
    """(family, the other keys) of a config mapping that may hold `model:` (a best.yaml does).

    `override` (a --model flag) wins over the file's key.
    """
    rest = dict(values)
    written = rest.pop("model", None)
    name = override if override is not None else written
    if name is not None and not isinstance(name, str):
        raise UnknownFamilyError(f"{source}: model is {name!r}, but must be one of {family_names()}")
    try:
        return get_family(name), rest
    except UnknownFamilyError as err:
        raise UnknownFamilyError(f"{source}: {err}") from None
