"""BairConfig: every training field of the 2023 BAIR template, with its defaults.

Shared fields (kl_anneal_*, kl_weight, tfr*, optimizer, lr, batch_size, num_epoch,
seed) have the names and meaning of the 2024 family's TrainConfig, so a KL x teacher-
forcing study means the same thing for both families. The template's own fields
keep the template's names (n_past, n_future, g_dim, ...). The template's spellings
of shared fields are accepted as aliases (ALIASES): tfr_start_decay_epoch,
tfr_decay_step, kl_anneal_cyclical (true -> Cyclical, false -> Monotonic), niter.

Template defaults (docs/BAIR-2023.md) where they differ from the 2024 family:
lr 0.002, batch 12, niter 300, epoch_size 600, tfr 1.0 with no decay
(tfr_start_decay_epoch 0, tfr_decay_step 0), kl_anneal_cyclical off (= Monotonic),
kl_anneal_ratio 0.5, kl_anneal_cycle 3, seed 1, no gradient clipping, no LR schedule.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
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

FRAME_SIZE = 64  # the VGG64 encoder needs 64 x 64 frames
COND_DIM = 7     # action (4) then end-effector position (3), per frame
SEQUENCE_FRAMES = 30  # frames per sequence on disk
# The config fields that shape the model: a checkpoint fits only a model with the same.
BAIR_DIM_FIELDS = ("g_dim", "z_dim", "rnn_size", "predictor_rnn_layers", "posterior_rnn_layers", "width",
                   "last_frame_skip")
# The template's spellings -> ours. kl_anneal_cyclical is a bool mapped onto kl_anneal_type.
ALIASES = {"tfr_start_decay_epoch": "tfr_sde", "tfr_decay_step": "tfr_d_step", "niter": "num_epoch",
           "kl_anneal_cyclical": "kl_anneal_type"}


@dataclass
class BairConfig(ConfigFile):
    # optimisation (template: one Adam over all modules, betas (0.9, 0.999))
    lr: float = 0.002
    optimizer: str = "Adam"
    beta1: float = 0.9
    weight_decay: float = 0.0
    momentum: float = 0.0
    batch_size: int = 12
    num_epoch: int = 300
    epoch_size: int = 600           # training iterations per epoch (random sequences each)
    grad_clip: float = 0.0          # 0: off, as in the template
    # sequence
    n_past: int = 2
    n_future: int = 10
    n_eval: int = 30                # frames an evaluation may read (the template's T); predict uses n_past + n_future
    last_frame_skip: bool = False
    # model (template: g 128, z 64, rnn 256, predictor 2 layers, posterior 1 layer)
    g_dim: int = 128
    z_dim: int = 64
    rnn_size: int = 256
    predictor_rnn_layers: int = 2
    posterior_rnn_layers: int = 1
    # Multiplies the VGG channel widths 64/128/256/512 (1.0 = the template); < 1 for CPU demos.
    width: float = 1.0
    # teacher forcing (shared names; template: tfr 1, decay from epoch 0 by 0 per epoch)
    tfr: float = 1.0
    tfr_sde: int = 0
    tfr_d_step: float = 0.0
    tfr_decay: str = "linear"
    tfr_lower_bound: float = 0.0
    # KL annealing (shared names; template: kl_anneal_cyclical off -> Monotonic, ratio 0.5, cycle 3)
    kl_anneal_type: str = "Monotonic"
    kl_anneal_cycle: int = 3
    kl_anneal_ratio: float = 0.5
    kl_weight: float = 1.0          # multiplies the annealed beta (1.0 = the template)
    # validation
    val_every: int = 5              # the template validates every 5 epochs (and on the last)
    val_batch_size: int = 32
    # execution
    precision: str = "fp32"
    seed: int = 1
    device: str = "auto"
    torch_threads: int | None = None

    def __post_init__(self) -> None:
        self.kl_anneal_type = KL_ANNEAL_ALIASES.get(self.kl_anneal_type, self.kl_anneal_type)
        _check_values(self)

    @property
    def seq_len(self) -> int:
        """Frames a training or validation sequence uses: n_past given + n_future predicted."""
        return self.n_past + self.n_future

    # --- construction (the rest: cvae.core.config.ConfigFile; a YAML file's `model:` key
    # is dropped whatever it says, ConfigFile's default) ----------------------------
    @classmethod
    def coerce_items(cls, values: Mapping[str, Any], source: str) -> dict[str, Any]:
        converted: dict[str, Any] = {}
        for key, value in values.items():
            name, value = resolve_alias(str(key), value, source)
            if name in converted:
                raise ConfigError(f"{source}: {key} and {name} both set {name}; give it once")
            converted[name] = coerce_field(name, value, source)
        return converted


def resolve_alias(key: str, value: Any, source: str = "config") -> tuple[str, Any]:
    """(field name, value) for a key that may be a template spelling."""
    if key == "kl_anneal_cyclical":
        if not isinstance(value, bool):
            raise ConfigError(f"{source}: kl_anneal_cyclical is {value!r}, but must be true or false "
                              "(the template's flag: true = Cyclical, false = Monotonic)")
        return "kl_anneal_type", "Cyclical" if value else "Monotonic"
    return ALIASES.get(key, key), value


def closest_field(name: str) -> str | None:
    return core_closest_field(name, BairConfig.field_names() + list(ALIASES))


def _field_type(name: str) -> str:
    return next(str(f.type) for f in dataclasses.fields(BairConfig) if f.name == name)


def coerce_field(key: str, value: Any, source: str = "config") -> Any:
    """Check one field's type; the key may be a template alias (its value is returned for the field)."""
    key, value = resolve_alias(key, value, source)
    if key not in BairConfig.field_names():
        hint = closest_field(key)
        suggestion = f" (did you mean '{hint}'?)" if hint else ""
        raise ConfigError(f"{source}: unknown BairConfig field '{key}' (model bair-2023){suggestion}")
    return coerce_value(key, value, _field_type(key), f"{source}: {key}")


def _check_values(cfg: BairConfig) -> None:
    def finite(name: str) -> float:
        return finite_field(cfg, name)

    require(finite("lr") > 0, f"lr is {cfg.lr!r}, but must be > 0")
    require(0 <= finite("beta1") < 1, f"beta1 is {cfg.beta1!r}, but must be in [0, 1)")
    require(finite("weight_decay") >= 0, f"weight_decay is {cfg.weight_decay!r}, but must be >= 0")
    require(finite("momentum") >= 0, f"momentum is {cfg.momentum!r}, but must be >= 0")
    # BatchNorm1d in the LSTMs' output needs more than one value per channel in training.
    require(cfg.batch_size >= 2, f"batch_size is {cfg.batch_size}, but must be >= 2 (the LSTMs end in BatchNorm1d)")
    require(cfg.num_epoch >= 1, f"num_epoch is {cfg.num_epoch}, but must be >= 1")
    require(cfg.epoch_size >= 1, f"epoch_size is {cfg.epoch_size}, but must be >= 1")
    require(finite("grad_clip") >= 0, f"grad_clip is {cfg.grad_clip!r}, but must be >= 0 (0 turns clipping off)")
    require(cfg.n_past >= 1, f"n_past is {cfg.n_past}, but must be >= 1")
    require(cfg.n_future >= 1, f"n_future is {cfg.n_future}, but must be >= 1")
    require(cfg.n_past + cfg.n_future <= SEQUENCE_FRAMES,
             f"n_past + n_future is {cfg.n_past + cfg.n_future}, but must be <= {SEQUENCE_FRAMES} "
             f"(frames per sequence on disk)")
    require(1 <= cfg.n_eval <= SEQUENCE_FRAMES, f"n_eval is {cfg.n_eval}, but must be in [1, {SEQUENCE_FRAMES}]")
    for name in ("g_dim", "z_dim", "rnn_size", "predictor_rnn_layers", "posterior_rnn_layers"):
        require(getattr(cfg, name) >= 1, f"{name} is {getattr(cfg, name)}, but must be >= 1")
    require(0 < finite("width") <= 4 and round(64 * cfg.width) >= 1,
             f"width is {cfg.width!r}, but must be in (0, 4] with 64 * width >= 1 channel")
    require(cfg.val_batch_size >= 1, f"val_batch_size is {cfg.val_batch_size}, but must be >= 1")
    check_shared_values(cfg)
