"""TrainConfig: every training field of the Lab4 template, with its defaults.

One dataclass is the single source of truth for what can be trained, searched
(search/space/ checks names against it) and fixed. Values are checked here so
that a bad value is reported with its key before any data is decoded.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from cvae.core.config import (
    KL_ANNEAL_ALIASES,
    ConfigError,
    ConfigFile,
    check_shared_values,
    coerce_value,
    finite_field,
    require,
)
from cvae.core.config import closest_field as core_closest_field

OUTPUT_ACTIVATIONS = ("none", "sigmoid")
# The config fields that shape the model: a checkpoint fits only a model with the same.
DIM_FIELDS = ("F_dim", "L_dim", "N_dim", "D_out_dim", "output_activation", "leaky_slope")
LEGACY_LEAKY_SLOPE = 0.01  # the fixed slope before `leaky_slope` existed


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
    precision: str = "auto"  # auto: fp32 or bf16, whichever measured faster here (cvae/core/precision_probe.py)
    channels_last: bool = True
    compile: bool = False
    val_every: int = 1
    # Prior draws averaged per validation (`validation: {samples: K}` in a space).
    # The template draws one z per frame; one draw's PSNR moves with the draw
    # (bench/noise.py measures by how much), K draws roll out as one batch.
    val_samples: int = 1
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
    return core_closest_field(name, TrainConfig.field_names())


def coerce_field(key: str, value: Any, source: str = "config") -> Any:
    """Check one field's type (int where int, list of ints for milestones...)."""
    if key not in TrainConfig.field_names():
        hint = closest_field(key)
        suggestion = f" (did you mean '{hint}'?)" if hint else ""
        raise ConfigError(f"{source}: unknown TrainConfig field '{key}'{suggestion}")
    return coerce_value(key, value, _field_type(key), f"{source}: {key}")


def _check_values(cfg: TrainConfig) -> None:
    def finite(name: str) -> float:
        return finite_field(cfg, name)

    require(finite("lr") > 0, f"lr is {cfg.lr!r}, but must be > 0")
    require(finite("weight_decay") >= 0, f"weight_decay is {cfg.weight_decay!r}, but must be >= 0")
    require(finite("momentum") >= 0, f"momentum is {cfg.momentum!r}, but must be >= 0")
    require(cfg.batch_size >= 1, f"batch_size is {cfg.batch_size}, but must be >= 1")
    require(cfg.num_epoch >= 1, f"num_epoch is {cfg.num_epoch}, but must be >= 1")
    require(all(m >= 1 for m in cfg.milestones), f"milestones is {cfg.milestones}, but every milestone must be >= 1")
    require(0 < finite("gamma") <= 1, f"gamma is {cfg.gamma!r}, but must be in (0, 1]")
    require(finite("grad_clip") >= 0, f"grad_clip is {cfg.grad_clip!r}, but must be >= 0 (0 turns clipping off)")
    require(cfg.train_vi_len >= 2, f"train_vi_len is {cfg.train_vi_len}, but must be >= 2 (one given frame plus one to predict)")
    require(cfg.val_vi_len >= 2, f"val_vi_len is {cfg.val_vi_len}, but must be >= 2 (one given frame plus one to predict)")
    # ReflectionPad2d(3) in the label encoder needs more than 3 pixels per side.
    require(cfg.frame_H >= 4 and cfg.frame_W >= 4,
             f"frame size is {cfg.frame_H}x{cfg.frame_W}, but frame_H and frame_W must be >= 4 (the label encoder pads by 3)")
    for name in ("partial", "fast_partial"):
        require(0 < finite(name) <= 1, f"{name} is {getattr(cfg, name)!r}, but must be in (0, 1]")
    require(cfg.fast_train_epoch >= 0, f"fast_train_epoch is {cfg.fast_train_epoch}, but must be >= 0")
    require(cfg.F_dim >= 8 and cfg.F_dim % 8 == 0, f"F_dim is {cfg.F_dim}, but must be a positive multiple of 8 (the encoder uses F/8)")
    require(cfg.L_dim >= 2 and cfg.L_dim % 2 == 0, f"L_dim is {cfg.L_dim}, but must be a positive multiple of 2 (the label encoder uses L/2)")
    require(cfg.N_dim >= 4 and cfg.N_dim % 4 == 0, f"N_dim is {cfg.N_dim}, but must be a positive multiple of 4 (the predictor uses N/4)")
    require(cfg.D_out_dim >= 8 and cfg.D_out_dim % 8 == 0, f"D_out_dim is {cfg.D_out_dim}, but must be a positive multiple of 8 (the generator uses D/8)")
    require(finite("leaky_slope") >= 0, f"leaky_slope is {cfg.leaky_slope!r}, but must be >= 0 (1.0: the template's identity)")
    require(cfg.output_activation in OUTPUT_ACTIVATIONS, f"output_activation is {cfg.output_activation!r}, but must be one of {list(OUTPUT_ACTIVATIONS)}")
    require(cfg.val_samples >= 1, f"val_samples is {cfg.val_samples}, but must be >= 1 (prior draws per validation)")
    check_shared_values(cfg)


def upgrade_saved_config(saved: Mapping[str, Any]) -> dict[str, Any]:
    """A checkpoint's config as today's fields: one written before leaky_slope was an
    option had those two slopes at 0.01."""
    saved = dict(saved)
    if "F_dim" in saved and "leaky_slope" not in saved:
        saved["leaky_slope"] = LEGACY_LEAKY_SLOPE
    return saved
