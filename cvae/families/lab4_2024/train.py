"""The training loop: `Trainer` (one epoch at a time) and `fit` (all epochs).

It does not know about Ray or Optuna: search/ calls `Trainer.run_epoch` and
reports the returned metrics. See docs/CONTRACTS.md for the interface.

    python -m cvae.train --config FILE.yaml [--data DIR] [--device cpu|cuda] [--threads N] [--out DIR] [--resume CKPT]

The config's torch_threads, precision and device are used unless a flag overrides
them: a search's best.yaml records the ones its best trial ran with, so training
it again reproduces that trial's numbers.
"""
from __future__ import annotations

import argparse
import math
import random
import sys
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch

from cvae.core.checkpoint import CheckpointedTrainer, CheckpointError
from cvae.core.config import ConfigError
from cvae.core.cuda import use_deterministic_kernels
from cvae.core.images import DataError
from cvae.core.metrics import psnr_per_frame
from cvae.core.precision import GENERATION_DTYPE, resolve_precision
from cvae.core.registry import family_names, get_family
from cvae.core.schedules import kl_beta, teacher_forcing_ratio
from cvae.core.training import (
    apply_threads,
    autocast,
    build_optimizer,
    epoch_writer,
    execution_settings,
    format_metrics,
    limit_compile_threads,
    optimizer_step,
    resolve_device,
    seed_everything,
    thread_count,
    to_unit_float,
    train_to_end,
)
from cvae.families.lab4_2024.config import DIM_FIELDS, TrainConfig
from cvae.families.lab4_2024.data import LabData, load_lab_data, train_sequences
from cvae.families.lab4_2024.model import CVAE
from cvae.families.lab4_2024.saved import load_lab4_checkpoint
from cvae.families.lab4_2024.step import decode_chunk_frames, generate, sequence_loss

__all__ = ["Trainer", "fit", "TrainConfig", "ConfigError", "resolve_device", "resolve_precision",
           "execution_settings", "main"]

# --- trainer ---------------------------------------------------------------------
class Trainer(CheckpointedTrainer):
    """Trains one configuration epoch by epoch; `run_epoch` returns plain-Python metrics."""

    dim_fields = DIM_FIELDS
    read_checkpoint = staticmethod(load_lab4_checkpoint)  # its scheduler key, and old configs upgraded

    def __init__(self, cfg: TrainConfig, data: LabData, device: str | None = None,
                 validate_at: Sequence[int] = ()) -> None:
        self.cfg = cfg
        apply_threads(cfg)  # before any compute
        # Epochs (1-based) validated whatever val_every says: an early-stopping
        # scheduler's milestones must compare fresh values, not stale ones.
        self.validate_at = frozenset(int(e) for e in validate_at)
        self.device = resolve_device(device or cfg.device)
        if self.device.type == "cuda":
            use_deterministic_kernels()  # resume continues identically (cvae/core/cuda.py)
        self.dtype = resolve_precision(cfg.precision, self.device)
        _check_data(cfg, data)
        seed_everything(cfg.seed)
        self.data = data
        self.model = CVAE.from_config(cfg).to(self.device)
        if cfg.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.optimizer = build_optimizer(cfg, self.model.parameters(), self.device.type)
        self.decode_chunk = decode_chunk_frames(self.device, cfg.D_out_dim, cfg.frame_H, cfg.frame_W,
                                                element_bytes=torch.finfo(self.dtype).bits // 8)
        self.scheduler = torch.optim.lr_scheduler.MultiStepLR(self.optimizer, milestones=cfg.milestones, gamma=cfg.gamma)
        # fp16 needs loss scaling; bf16 and fp32 do not.
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.dtype == torch.float16)
        self.shuffle_gen = torch.Generator().manual_seed(cfg.seed)
        if cfg.compile:
            limit_compile_threads(cfg.torch_threads or torch.get_num_threads())
            for module in self.model.children():
                module.compile()  # in place: state_dict keys stay as they are
        self.epoch = 0
        self.diverged = False
        self.val_target = data.val_frames[: cfg.val_vi_len].clone()            # uint8 (T, 3, H, W)
        self._val_labels = data.val_labels[: cfg.val_vi_len]
        self.last_prediction: torch.Tensor | None = None                       # uint8 (T, 3, H, W)
        self._last_val: tuple[float, list[float]] = (0.0, [])
        self._sequences: dict[float, tuple[torch.Tensor, torch.Tensor]] = {}

    # --- data ------------------------------------------------------------------
    def _partial_for(self, epoch: int) -> float:
        # The template clears fast_train only after building the loader of the epoch
        # whose (0-based) number exceeds fast_train_epoch: epochs 0 .. fast_train_epoch + 1.
        fast = self.cfg.fast_train and epoch <= self.cfg.fast_train_epoch + 1
        return self.cfg.fast_partial if fast else self.cfg.partial

    def sequences(self, epoch: int) -> tuple[torch.Tensor, torch.Tensor]:
        """uint8 (S, T, 3, H, W) frames and labels used in `epoch` (cached per partial, on the device)."""
        partial = self._partial_for(epoch)
        if partial not in self._sequences:
            frames, labels = train_sequences(self.data.train_frames, self.data.train_labels,
                                             self.cfg.train_vi_len, partial)
            if frames.shape[0] == 0:
                raise ConfigError(
                    f"train_vi_len {self.cfg.train_vi_len} with partial {partial} leaves no training sequence "
                    f"(the training split has {self.data.train_frames.shape[0]} frames)")
            self._sequences[partial] = (frames.to(self.device), labels.to(self.device))
        return self._sequences[partial]

    # --- one epoch -------------------------------------------------------------
    def run_epoch(self) -> dict[str, Any]:
        if self.diverged:
            raise RuntimeError("training diverged (loss became NaN/inf); it cannot continue")
        cfg, epoch = self.cfg, self.epoch
        beta = kl_beta(epoch, kind=cfg.kl_anneal_type, num_epoch=cfg.num_epoch,
                       cycle=cfg.kl_anneal_cycle, ratio=cfg.kl_anneal_ratio)
        tfr = teacher_forcing_ratio(epoch, tfr=cfg.tfr, sde=cfg.tfr_sde, d_step=cfg.tfr_d_step,
                                    decay=cfg.tfr_decay, lower_bound=cfg.tfr_lower_bound)
        teacher_forcing = random.random() < tfr  # once per epoch, as the template does
        lr = self.optimizer.param_groups[0]["lr"]

        start = time.perf_counter()
        loss, mse, kl = self._train_epoch(epoch, beta * cfg.kl_weight, teacher_forcing)
        epoch_time = time.perf_counter() - start
        self.epoch += 1
        metrics = {"epoch": self.epoch, "train_loss": loss, "train_mse": mse, "train_kl": kl, "beta": beta,
                   "tfr": tfr, "teacher_forcing": int(teacher_forcing), "lr": lr,
                   "epoch_time_s": epoch_time, "diverged": False}
        if not all(math.isfinite(v) for v in (loss, mse, kl)):
            self.diverged = True
            return {**metrics, "val_psnr": 0.0, "val_psnr_per_frame": [], "val_time_s": 0.0,
                    "validated": False, "diverged": True}
        self.scheduler.step()  # MultiStepLR counts epochs
        validated = (self.epoch % cfg.val_every == 0 or self.epoch >= cfg.num_epoch
                     or self.epoch in self.validate_at)
        val_time = 0.0
        if validated:
            start = time.perf_counter()
            self._last_val = self.validate()
            val_time = time.perf_counter() - start
        val_psnr, per_frame = self._last_val
        return {**metrics, "val_psnr": val_psnr, "val_psnr_per_frame": list(per_frame),
                "val_time_s": val_time, "validated": validated}

    def _train_epoch(self, epoch: int, beta: float, teacher_forcing: bool) -> tuple[float, float, float]:
        """Mean loss, MSE and KL over the epoch's batches; one host sync at the end.

        Divergence is therefore detected at the end of the epoch, not at the step
        that produced the NaN: a per-step check would sync the GPU every step.
        """
        frames, labels = self.sequences(epoch)  # uint8 (S, T, 3, H, W)
        order = self._batches(frames.shape[0])
        self.model.train()
        totals = torch.zeros(3, device=self.device)
        batches = 0
        for idx in order:
            x, p = to_unit_float(frames[idx]), to_unit_float(labels[idx])  # (B, T, 3, H, W)
            totals += self.train_step(x, p, beta, teacher_forcing)
            batches += 1
        loss_m, mse_m, kl_m = (totals / batches).tolist()
        return loss_m, mse_m, kl_m

    def train_step(self, x: torch.Tensor, p: torch.Tensor, beta: float, teacher_forcing: bool) -> torch.Tensor:
        """One optimiser step on one batch: float (B, T, 3, H, W) frames and labels in [0, 1].
        Returns (loss, mse, kl) as one float tensor on the device (no host sync). The
        precision probe (cvae/families/lab4_2024/probe.py) times this same step."""
        with autocast(self.device, self.dtype):
            loss, mse, kl = sequence_loss(self.model, x, p, beta, teacher_forcing,
                                          channels_last=self.cfg.channels_last,
                                          decode_chunk=self.decode_chunk)
        return optimizer_step(self, loss, mse, kl)

    def _batches(self, n: int) -> list[torch.Tensor]:
        """Index batches of one epoch: the template's order (0, 1, ...) and whole
        batches only, unless shuffle / drop_last say otherwise."""
        cfg = self.cfg
        order = (torch.randperm(n, generator=self.shuffle_gen) if cfg.shuffle else torch.arange(n)).to(self.device)
        batches = list(order.split(cfg.batch_size))
        if cfg.drop_last and batches and len(batches[-1]) < cfg.batch_size:
            batches.pop()  # a kept short batch is fine too: the KL term divides by the actual batch size
        if not batches:
            raise ConfigError(f"batch_size is {cfg.batch_size}, but this epoch has only {n} training sequences and "
                              "drop_last is true (the template's loader): lower batch_size, or set drop_last: false")
        return batches

    # --- validation ------------------------------------------------------------
    def validate(self) -> tuple[float, list[float]]:
        """PSNR of the validation video generated from its first frame; mean over frames 1..T-1
        and over cfg.val_samples prior draws.

        The prior noise comes from a generator seeded with cfg.seed at every
        validation: epochs are compared on the same z, and validation does not
        move the training RNG. With val_samples 1 the draw is the template's one.
        """
        draws = self.validate_draws(self.cfg.val_samples, self.cfg.seed)  # (K, T-1)
        per_frame = draws.mean(dim=0).tolist()
        # A perfectly predicted frame has infinite PSNR; the mean is then infinite too.
        return float(np.mean(per_frame)), per_frame

    def validate_draws(self, samples: int, noise_seed: int) -> torch.Tensor:
        """Per-frame PSNR (samples, T-1) of `samples` free-running rollouts of the
        validation video, each with its own prior draws, generated as one batch
        (z from a generator seeded with `noise_seed`). Keeps the first rollout as
        last_prediction."""
        self.model.eval()
        target = self.val_target.to(self.device)                              # uint8 (T, 3, H, W)
        labels = to_unit_float(self._val_labels.to(self.device)).unsqueeze(0)    # (1, T, 3, H, W)
        labels = labels.expand(samples, *labels.shape[1:])                     # (K, T, 3, H, W)
        first = to_unit_float(target[:1]).expand(samples, *target.shape[1:])   # (K, 3, H, W)
        noise_gen = torch.Generator(device=self.device).manual_seed(noise_seed)
        # in fp32 whatever the training precision (cvae.core.precision.GENERATION_DTYPE)
        with torch.inference_mode(), autocast(self.device, GENERATION_DTYPE):
            pred = generate(self.model, first.contiguous(), labels.contiguous(), generator=noise_gen,
                            channels_last=self.cfg.channels_last).float()     # (K, T, 3, H, W)
        # PSNR on the raw float prediction, as the template computes it.
        truth = to_unit_float(target[1:])
        per_draw = torch.stack([psnr_per_frame(p[1:], truth) for p in pred])   # (K, T-1)
        self.last_prediction = (pred[0].clamp(0, 1) * 255).round().to(torch.uint8).cpu()
        self.last_prediction[0] = self.val_target[0]
        return per_draw.cpu()

    # --- checkpoints (the rest: cvae.core.checkpoint.CheckpointedTrainer) ------------
    def rng_generators(self) -> dict[str, torch.Generator]:
        return {"shuffle": self.shuffle_gen}

    def extra_state(self) -> dict[str, Any]:
        return {"scheduler": self.scheduler.state_dict()}

    def load_extra_state(self, state: Mapping[str, Any]) -> None:
        self.scheduler.load_state_dict(state["scheduler"])


def _check_data(cfg: TrainConfig, data: LabData) -> None:
    for name in ("train_frames", "train_labels", "val_frames", "val_labels"):
        tensor = getattr(data, name)
        if tensor.dim() != 4 or tuple(tensor.shape[1:]) != (3, cfg.frame_H, cfg.frame_W) or tensor.dtype != torch.uint8:
            raise ConfigError(f"data.{name} is {tensor.dtype} of shape {tuple(tensor.shape)}, but frame_H/frame_W "
                              f"{cfg.frame_H}/{cfg.frame_W} expect uint8 (N, 3, {cfg.frame_H}, {cfg.frame_W})")
    n_val = data.val_frames.shape[0]
    if cfg.val_vi_len > n_val:
        raise ConfigError(f"val_vi_len is {cfg.val_vi_len}, but the validation video has only {n_val} frames")


# --- the whole run -----------------------------------------------------------------
def fit(cfg: TrainConfig, data: LabData, on_epoch: Callable[[dict, Trainer], None] | None = None,
        resume_from: str | Path | None = None, device: str | None = None,
        validate_at: Sequence[int] = ()) -> Trainer:
    """Train to cfg.num_epoch (continuing a checkpoint if given); stops early on divergence."""
    return train_to_end(Trainer(cfg, data, device, validate_at=validate_at), on_epoch, resume_from)


def from_template_weights(cfg: TrainConfig, data: LabData, checkpoint: str | Path | None) -> Trainer:
    """A trainer for `cfg` whose model starts from a checkpoint the template's Trainer
    saved. The config must describe that model: the same dims and the template's
    function (else the weights would compute something else, silently)."""
    from cvae.families.lab4_2024.export import read_template_checkpoint, template_differences

    if checkpoint is None:
        raise ConfigError("--from lab4-template needs --resume CHECKPOINT (the template's .ckpt file)")
    model, saved_cfg, _ = read_template_checkpoint(checkpoint, cfg.frame_H, cfg.frame_W)
    dims = [f"{k} is {getattr(cfg, k)} in the config but {getattr(saved_cfg, k)} in {checkpoint}"
            for k in ("F_dim", "L_dim", "N_dim", "D_out_dim") if getattr(cfg, k) != getattr(saved_cfg, k)]
    problems = dims + template_differences(cfg)
    if problems:
        raise ConfigError(f"{checkpoint}: the config does not describe the template's model: {'; '.join(problems)}")
    trainer = Trainer(cfg, data)
    trainer.model.load_state_dict(model.state_dict())
    return trainer


def _settings_line(cfg: TrainConfig, device: torch.device, flags: set[str], decision: Any = None) -> str:
    """One line: the threads/device/precision this run uses and where each came from.
    `decision` (a cvae.core.precision_probe.PrecisionDecision): how `precision: auto`
    was resolved (measured, cached or the flag rule), shown after `config: auto`."""
    used = execution_settings(cfg, device)

    def origin(key: str, flag: str | None) -> str:
        if flag in flags:
            return flag
        written = getattr(cfg, key)
        if written is None:
            return "torch default; config: null"
        return "config" if str(written) == str(used[key]) else f"config: {written}"

    precision = f"precision {used['precision']} ({origin('precision', None)})"
    if decision is not None and cfg.precision == "auto":
        precision = f"precision {decision.precision} (config: auto; {decision.how()})"
    return (f"running with torch_threads {used['torch_threads']} ({origin('torch_threads', '--threads')}), "
            f"device {used['device']} ({origin('device', '--device')}), {precision}")


def main(argv: Sequence[str] | None = None) -> int:
    """The lab4-2024 family's `python -m cvae.train` (cvae.core.cli picks the family)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="python -m cvae.train", description="Train the Lab4 CVAE on one configuration.")
    parser.add_argument("--model", default=None, choices=family_names(),
                        help="model family (default: the config's model key, else lab4-2024)")
    parser.add_argument("--config", required=True, help="YAML file of TrainConfig fields (e.g. a search's best.yaml)")
    parser.add_argument("--data", default="data/synthetic-small", help="dataset root in the Lab4 layout")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default=None, help="overrides the config's device")
    parser.add_argument("--threads", type=thread_count, default=None, metavar="N",
                        help="overrides the config's torch_threads (torch's intra-op thread count)")
    parser.add_argument("--out", default=None, help="folder for last.pt, best.pt and metrics.jsonl")
    parser.add_argument("--resume", default=None, help="checkpoint to continue from")
    parser.add_argument("--from", dest="from_format", choices=["lab4-template"], default=None,
                        help="--resume names a checkpoint the course template's Trainer.py saved: its weights "
                             "start a new run of this config (a fine-tune; the template saves no optimizer state)")
    args = parser.parse_args(argv)
    try:
        cfg = TrainConfig.from_yaml(args.config)
        flags: set[str] = set()
        if args.device is not None:
            cfg = cfg.replace(device=args.device)
            flags.add("--device")
        if args.threads is not None:
            cfg = cfg.replace(torch_threads=args.threads)
            flags.add("--threads")
        device = resolve_device(cfg.device)
        data = load_lab_data(args.data, cfg.frame_H, cfg.frame_W)  # a data error before the probe's seconds
        # `precision: auto`: measured here (fp32 vs bf16 steps of this config), or cached
        decision = get_family("lab4-2024").decide_precision(cfg, device)
        print(_settings_line(cfg, device, flags, decision), flush=True)
        cfg = cfg.replace(precision=decision.precision)
        on_epoch = epoch_writer(Path(args.out) if args.out else None, format_metrics)
        if args.from_format == "lab4-template":
            trainer = train_to_end(from_template_weights(cfg, data, args.resume), on_epoch)
        else:
            trainer = fit(cfg, data, on_epoch=on_epoch, resume_from=args.resume)
    except (ConfigError, DataError, CheckpointError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 1 if trainer.diverged else 0
