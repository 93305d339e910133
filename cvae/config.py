"""TrainConfig: every training field of the Lab4 template, with its defaults.

One dataclass is the single source of truth for what can be trained, searched
(search/space.py checks names against it) and fixed. Values are checked here so
that a bad value is reported with its key before any data is decoded.
"""
from __future__ import annotations

import dataclasses
import difflib
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Self

import yaml

OPTIMIZERS = ("Adam", "AdamW", "Adamax", "SGD", "ASGD", "RMSprop")
# "Cyclic" and "Without" are spellings found in Lab4 write-ups.
KL_ANNEAL_TYPES = ("Cyclical", "Monotonic", "None")
KL_ANNEAL_ALIASES = {"Cyclic": "Cyclical", "Without": "None"}
TFR_DECAYS = ("linear", "exponential")
OUTPUT_ACTIVATIONS = ("none", "sigmoid")
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


@dataclass
class TrainConfig(ConfigFile):
    # optimisation (template defaults)
    lr: float = 1e-3
    optimizer: str = "Adam"
    weight_decay: float = 0.0
    momentum: float = 0.0  # used by SGD and RMSprop only
    batch_size: int = 2
    num_epoch: int = 70
    milestones: list[int] = field(default_factory=lambda: [2, 5])
    gamma: float = 0.1
    grad_clip: float = 1.0
    # data
    train_vi_len: int = 16
    val_vi_len: int = 630
    frame_H: int = 32
    frame_W: int = 64
    partial: float = 1.0
    # The template's train loader: shuffle=False, drop_last=True. shuffle: a new
    # order every epoch (seeded); drop_last false keeps the last short batch.
    shuffle: bool = False
    drop_last: bool = True
    fast_train: bool = False
    fast_partial: float = 0.4
    fast_train_epoch: int = 5
    # model dims (lab: 128 / 32 / 12 / 192)
    F_dim: int = 128
    L_dim: int = 32
    N_dim: int = 12
    D_out_dim: int = 192
    # The template's Generator ends in Conv2d(D/8, 3, 1) with no activation: "none"
    # is its function. "sigmoid" keeps frames in [0, 1] (the shipped spaces set it).
    output_activation: str = "none"
    # nn.LeakyReLU(True) in the template's label encoder and Gaussian predictor is
    # slope 1.0, the identity; 0.01 makes them real non-linearities (the shipped
    # spaces set it).
    leaky_slope: float = 1.0
    # teacher forcing
    tfr: float = 1.0
    tfr_sde: int = 10
    tfr_d_step: float = 0.1
    tfr_decay: str = "linear"
    tfr_lower_bound: float = 0.0
    # KL annealing
    kl_anneal_type: str = "Cyclical"
    kl_anneal_cycle: int = 10
    kl_anneal_ratio: float = 1.0
    # Multiplies the annealed beta (1.0 = the template). The template's KL sums
    # over every latent element (N*H*W per frame) while its MSE averages over
    # pixels, so at beta 1 the KL term outweighs reconstruction ~1000x early on:
    # the lab's ~100k steps ride that out, a CPU demo of a few hundred cannot.
    kl_weight: float = 1.0
    # execution
    precision: str = "auto"  # auto: bf16 where the hardware has it, else fp32
    channels_last: bool = True
    compile: bool = False
    val_every: int = 1
    seed: int = 1
    device: str = "auto"
    # None leaves torch's default (one thread per core, or OMP_NUM_THREADS). The
    # thread count changes the reduction order of the CPU kernels, so a trial is
    # reproduced bit for bit only with the count it ran with (best.yaml records it).
    torch_threads: int | None = None

    def __post_init__(self) -> None:
        self.kl_anneal_type = KL_ANNEAL_ALIASES.get(self.kl_anneal_type, self.kl_anneal_type)
        _check_values(self)

    # --- construction (the rest: ConfigFile) -----------------------------------
    @classmethod
    def coerce_items(cls, values: Mapping[str, Any], source: str) -> dict[str, Any]:
        return {key: coerce_field(key, value, source) for key, value in values.items()}

    TEMPLATE_ALIASES = {"optim": "optimizer"}  # the template's Trainer.py: --optim
    # The template's Trainer.py arguments that are no training field here, and what
    # takes their place: a space or W&B file naming them is read with a notice.
    TEMPLATE_IGNORED = {
        "DR": "the data root is data.root or --data", "save_root": "results go to --storage-path",
        "num_workers": "the data set is decoded once and shared", "per_save": "trials checkpoint every "
        "trials.checkpoint_every epochs", "ckpt_path": "--resume continues a search", "test": "cvae.predict "
        "predicts the test set", "store_visualization": "each trial writes frames.png", "gpu": "trials.resources.gpu"}

    @classmethod
    def check_model_key(cls, path: Path, model: Any) -> None:
        if model != "lab4-2024":
            raise ConfigError(f"{path}: model is {model!r}, but a TrainConfig is the lab4-2024 family's "
                              f"config (python -m cvae.train --config {path} reads the model key)")


_FIELD_TYPES: dict[str, Any] = {}


def _field_type(name: str) -> Any:
    if not _FIELD_TYPES:
        hints = {f.name: f.type for f in dataclasses.fields(TrainConfig)}
        _FIELD_TYPES.update(hints)
    return _FIELD_TYPES[name]


def closest_field(name: str) -> str | None:
    matches = difflib.get_close_matches(name, TrainConfig.field_names(), n=1, cutoff=0.6)
    return matches[0] if matches else None


def coerce_field(key: str, value: Any, source: str = "config") -> Any:
    """Check one field's type (int where int, list of ints for milestones...)."""
    if key not in TrainConfig.field_names():
        hint = closest_field(key)
        suggestion = f" (did you mean '{hint}'?)" if hint else ""
        raise ConfigError(f"{source}: unknown TrainConfig field '{key}'{suggestion}")
    return coerce_value(key, value, _field_type(key), f"{source}: {key}")


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


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


def _check_values(cfg: TrainConfig) -> None:
    def finite(name: str) -> float:
        value = getattr(cfg, name)
        _require(math.isfinite(value), f"{name} is {value!r}, but must be a finite number")
        return value

    _require(finite("lr") > 0, f"lr is {cfg.lr!r}, but must be > 0")
    _require(finite("weight_decay") >= 0, f"weight_decay is {cfg.weight_decay!r}, but must be >= 0")
    _require(finite("momentum") >= 0, f"momentum is {cfg.momentum!r}, but must be >= 0")
    _require(cfg.batch_size >= 1, f"batch_size is {cfg.batch_size}, but must be >= 1")
    _require(cfg.num_epoch >= 1, f"num_epoch is {cfg.num_epoch}, but must be >= 1")
    _require(all(m >= 1 for m in cfg.milestones), f"milestones is {cfg.milestones}, but every milestone must be >= 1")
    _require(0 < finite("gamma") <= 1, f"gamma is {cfg.gamma!r}, but must be in (0, 1]")
    _require(finite("grad_clip") >= 0, f"grad_clip is {cfg.grad_clip!r}, but must be >= 0 (0 turns clipping off)")
    _require(cfg.train_vi_len >= 2, f"train_vi_len is {cfg.train_vi_len}, but must be >= 2 (one given frame plus one to predict)")
    _require(cfg.val_vi_len >= 2, f"val_vi_len is {cfg.val_vi_len}, but must be >= 2 (one given frame plus one to predict)")
    # ReflectionPad2d(3) in the label encoder needs more than 3 pixels per side.
    _require(cfg.frame_H >= 4 and cfg.frame_W >= 4,
             f"frame size is {cfg.frame_H}x{cfg.frame_W}, but frame_H and frame_W must be >= 4 (the label encoder pads by 3)")
    for name in ("partial", "fast_partial"):
        _require(0 < finite(name) <= 1, f"{name} is {getattr(cfg, name)!r}, but must be in (0, 1]")
    _require(cfg.fast_train_epoch >= 0, f"fast_train_epoch is {cfg.fast_train_epoch}, but must be >= 0")
    _require(cfg.F_dim >= 8 and cfg.F_dim % 8 == 0, f"F_dim is {cfg.F_dim}, but must be a positive multiple of 8 (the encoder uses F/8)")
    _require(cfg.L_dim >= 2 and cfg.L_dim % 2 == 0, f"L_dim is {cfg.L_dim}, but must be a positive multiple of 2 (the label encoder uses L/2)")
    _require(cfg.N_dim >= 4 and cfg.N_dim % 4 == 0, f"N_dim is {cfg.N_dim}, but must be a positive multiple of 4 (the predictor uses N/4)")
    _require(cfg.D_out_dim >= 8 and cfg.D_out_dim % 8 == 0, f"D_out_dim is {cfg.D_out_dim}, but must be a positive multiple of 8 (the generator uses D/8)")
    _require(finite("leaky_slope") >= 0, f"leaky_slope is {cfg.leaky_slope!r}, but must be >= 0 (1.0: the template's identity)")
    _require(cfg.output_activation in OUTPUT_ACTIVATIONS, f"output_activation is {cfg.output_activation!r}, but must be one of {list(OUTPUT_ACTIVATIONS)}")
    _require(0 <= finite("tfr") <= 1, f"tfr is {cfg.tfr!r}, but must be in [0, 1]")
    _require(cfg.tfr_sde >= 0, f"tfr_sde is {cfg.tfr_sde}, but must be >= 0")
    _require(0 <= finite("tfr_d_step") <= 1, f"tfr_d_step is {cfg.tfr_d_step!r}, but must be in [0, 1]")
    _require(cfg.tfr_decay in TFR_DECAYS, f"tfr_decay is {cfg.tfr_decay!r}, but must be one of {list(TFR_DECAYS)}")
    _require(0 <= finite("tfr_lower_bound") <= 1, f"tfr_lower_bound is {cfg.tfr_lower_bound!r}, but must be in [0, 1]")
    _require(cfg.kl_anneal_type in KL_ANNEAL_TYPES,
             f"kl_anneal_type is {cfg.kl_anneal_type!r}, but must be one of {list(KL_ANNEAL_TYPES)} (or the aliases {list(KL_ANNEAL_ALIASES)})")
    _require(cfg.kl_anneal_cycle >= 1, f"kl_anneal_cycle is {cfg.kl_anneal_cycle}, but must be >= 1")
    # > 1 is a slower rise that ends the cycle below 1 (older templates' default is 2): Fu's schedule computes it.
    _require(finite("kl_anneal_ratio") > 0, f"kl_anneal_ratio is {cfg.kl_anneal_ratio!r}, but must be > 0")
    _require(finite("kl_weight") >= 0, f"kl_weight is {cfg.kl_weight!r}, but must be >= 0")
    _require(cfg.optimizer in OPTIMIZERS, f"optimizer is {cfg.optimizer!r}, but must be one of {list(OPTIMIZERS)}")
    _require(cfg.precision in PRECISIONS, f"precision is {cfg.precision!r}, but must be one of {list(PRECISIONS)}")
    _require(cfg.device in DEVICES, f"device is {cfg.device!r}, but must be one of {list(DEVICES)}")
    _require(cfg.val_every >= 1, f"val_every is {cfg.val_every}, but must be >= 1")
    threads = cfg.torch_threads
    _require(threads is None or (isinstance(threads, int) and not isinstance(threads, bool) and threads >= 1),
             f"torch_threads is {threads!r}, but must be an integer >= 1 (or null for torch's default)")
