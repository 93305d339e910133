"""Training loop of the 2023 family: `Trainer` (one epoch at a time) and `fit`, with the
contract of cvae.train (docs/CONTRACTS.md), so search/ runs it unchanged.

One epoch = `epoch_size` iterations (template: 600), each on `batch_size` sequences
drawn at random from the training split (the template's dataset picks a random
folder per sample). Teacher forcing: one Bernoulli(tfr) draw per iteration covers the
whole sequence (docs/BAIR-2023.md); `teacher_forcing` reports the fraction of the
epoch's iterations that were teacher-forced. beta and tfr are the shared per-epoch
schedules (cvae.schedules), beta scaled by kl_weight.

Validation: every sequence of the validate split, n_past given frames, n_future
predicted with z ~ N(0, I) (noise seeded with cfg.seed at every validation);
`val_psnr_per_frame` is the PSNR of each future frame averaged over all sequences
and `val_psnr` their mean. The template averages only the last batch's PSNR (its
loop overwrites the sum): a bug not copied here.

    python -m cvae.train --model bair-2023 --config FILE.yaml [--data DIR] ...
"""
from __future__ import annotations

import argparse
import math
import random
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from cvae.core.checkpoint import CheckpointedTrainer, CheckpointError
from cvae.core.config import ConfigError
from cvae.core.cuda import use_deterministic_kernels
from cvae.core.images import DataError
from cvae.core.precision import GENERATION_DTYPE, resolve_precision
from cvae.core.schedules import kl_beta, teacher_forcing_ratio
from cvae.core.training import (
    autocast,
    build_optimizer,
    epoch_writer,
    format_metrics,
    optimizer_step,
    resolve_device,
    seed_everything,
    thread_count,
    to_unit_float,
    train_to_end,
)
from cvae.families.bair_2023.config import BAIR_DIM_FIELDS, BairConfig
from cvae.families.bair_2023.data import BairData, load_bair_data
from cvae.families.bair_2023.model import SVG
from cvae.families.bair_2023.step import copy_last_frame_psnr, psnr_frames, rollout, sequence_loss


def build_bair_optimizer(cfg: BairConfig, params, device_type: str = "cpu") -> torch.optim.Optimizer:
    if cfg.optimizer == "Adam":  # the template: betas (beta1, 0.999)
        return build_optimizer(cfg, params, device_type, betas=(cfg.beta1, 0.999))  # type: ignore[arg-type]
    return build_optimizer(cfg, params, device_type)  # type: ignore[arg-type]  (same field names)


def check_bair_data(cfg: BairConfig, data: BairData) -> None:
    for name in ("train_frames", "val_frames"):
        x = getattr(data, name)
        if x.dim() != 5 or tuple(x.shape[2:]) != (3, 64, 64) or x.dtype != torch.uint8:
            raise ConfigError(f"data.{name} is {x.dtype} of shape {tuple(x.shape)}, but must be uint8 (S, T, 3, 64, 64)")
        if x.shape[1] < cfg.seq_len:
            raise ConfigError(f"n_past + n_future is {cfg.seq_len}, but data.{name} holds only {x.shape[1]} frames "
                              "per sequence")
    if data.train_frames.shape[0] < 1 or data.val_frames.shape[0] < 1:
        raise ConfigError("the train and validate splits must each hold at least one sequence")


def copy_last_frame_baseline(cfg: BairConfig, data: BairData) -> float:
    """Mean PSNR over the validate split's n_future frames when each is the last given frame."""
    frames = to_unit_float(data.val_frames[:, : cfg.seq_len])
    return float(copy_last_frame_psnr(frames, cfg.n_past).mean())



def bair_teacher_forcing_ratio(epoch: int, cfg: Any) -> float:
    """The 2023 template's ratio in (0-based) `epoch`: it decays after each epoch whose
    0-based number is >= tfr_start_decay_epoch, so the first decayed epoch is
    tfr_sde + 1; the 2024 template (cvae.schedules) counts the epoch from 1."""
    return teacher_forcing_ratio(epoch, tfr=cfg.tfr, sde=cfg.tfr_sde + 1, d_step=cfg.tfr_d_step,
                                 decay=cfg.tfr_decay, lower_bound=cfg.tfr_lower_bound)

class BairTrainer(CheckpointedTrainer):
    dim_fields = BAIR_DIM_FIELDS

    def __init__(self, cfg: BairConfig, data: BairData, device: str | None = None,
                 validate_at: Sequence[int] = ()) -> None:
        self.cfg = cfg
        if cfg.torch_threads is not None:
            torch.set_num_threads(cfg.torch_threads)
        self.validate_at = frozenset(int(e) for e in validate_at)
        self.device = resolve_device(device or cfg.device)
        if self.device.type == "cuda":
            use_deterministic_kernels()  # resume continues identically (cvae/core/cuda.py)
        self.dtype = resolve_precision(cfg.precision, self.device)
        check_bair_data(cfg, data)
        seed_everything(cfg.seed)
        self.data = data
        self.model = SVG.from_config(cfg).to(self.device)
        self.optimizer = build_bair_optimizer(cfg, self.model.parameters(), self.device.type)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.dtype == torch.float16)
        self.sample_gen = torch.Generator().manual_seed(cfg.seed)
        self.epoch = 0
        self.diverged = False
        self._train = data.train_frames[:, : cfg.seq_len]                  # uint8 (S, T, 3, 64, 64)
        self._train_cond = data.train_cond[:, : cfg.seq_len].float()       # (S, T, 7)
        self.val_target = data.val_frames[0, : cfg.seq_len].clone()        # uint8 (T, 3, 64, 64)
        self.last_prediction: torch.Tensor | None = None
        self._last_val: tuple[float, list[float]] = (0.0, [])

    # --- one epoch -------------------------------------------------------------------
    def run_epoch(self) -> dict[str, Any]:
        if self.diverged:
            raise RuntimeError("training diverged (loss became NaN/inf); it cannot continue")
        cfg, epoch = self.cfg, self.epoch
        beta = kl_beta(epoch, kind=cfg.kl_anneal_type, num_epoch=cfg.num_epoch,
                       cycle=cfg.kl_anneal_cycle, ratio=cfg.kl_anneal_ratio)
        tfr = bair_teacher_forcing_ratio(epoch, cfg)
        lr = self.optimizer.param_groups[0]["lr"]
        start = time.perf_counter()
        loss, mse, kl, forced = self._train_epoch(beta * cfg.kl_weight, tfr)
        epoch_time = time.perf_counter() - start
        self.epoch += 1
        metrics = {"epoch": self.epoch, "train_loss": loss, "train_mse": mse, "train_kl": kl, "beta": beta,
                   "tfr": tfr, "teacher_forcing": forced, "lr": lr, "epoch_time_s": epoch_time, "diverged": False}
        if not all(math.isfinite(v) for v in (loss, mse, kl)):
            self.diverged = True
            return {**metrics, "val_psnr": 0.0, "val_psnr_per_frame": [], "val_time_s": 0.0,
                    "validated": False, "diverged": True}
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

    def _train_epoch(self, beta: float, tfr: float) -> tuple[float, float, float, float]:
        cfg = self.cfg
        self.model.train()
        totals = torch.zeros(3, device=self.device)
        forced = 0
        for _ in range(cfg.epoch_size):
            idx = torch.randint(0, self._train.shape[0], (cfg.batch_size,), generator=self.sample_gen)
            x = to_unit_float(self._train[idx].to(self.device))
            c = self._train_cond[idx].to(self.device)
            teacher_forcing = random.random() < tfr  # one draw per iteration, for the whole sequence
            forced += int(teacher_forcing)
            totals += self.train_step(x, c, beta, teacher_forcing)
        loss_m, mse_m, kl_m = (totals / cfg.epoch_size).tolist()
        return loss_m, mse_m, kl_m, forced / cfg.epoch_size

    def train_step(self, x: torch.Tensor, c: torch.Tensor, beta: float, teacher_forcing: bool) -> torch.Tensor:
        """One optimiser step on one batch: float (B, T, 3, 64, 64) frames in [0, 1] and (B, T, 7)
        conditions. Returns (loss, mse, kl) as one float tensor on the device (no host sync).
        The precision probe (cvae/families/bair_2023/probe.py) times this same step."""
        cfg = self.cfg
        with autocast(self.device, self.dtype):
            loss, mse, kl = sequence_loss(self.model, x, c, beta, teacher_forcing, cfg.n_past, cfg.last_frame_skip)
        return optimizer_step(self, loss, mse, kl)

    # --- validation --------------------------------------------------------------------
    def validate(self) -> tuple[float, list[float]]:
        """Mean PSNR over the n_future predicted frames of every validate sequence, and per frame."""
        psnr = predict_psnr(self.model, self.data.val_frames, self.data.val_cond, self.cfg, self.device,
                            keep_first=True)
        per_frame_t, first = psnr
        per_frame = per_frame_t.mean(dim=0).tolist()                          # (n_future,)
        self.last_prediction = first
        return float(np.mean(per_frame)), per_frame

    # --- checkpoints (the rest: cvae.core.checkpoint.CheckpointedTrainer) ----------------
    def rng_generators(self) -> dict[str, torch.Generator]:
        return {"sample": self.sample_gen}

    def extra_state(self) -> dict[str, Any]:
        return {"family": "bair-2023"}  # the template has no LR schedule: nothing else of its own


def predict_psnr(model: SVG, frames_u8: torch.Tensor, cond: torch.Tensor, cfg: BairConfig, device: torch.device,
                 keep_first: bool = False, keep_all: bool = False):
    """Roll out every sequence (batches of cfg.val_batch_size, z from a generator seeded with cfg.seed).

    Returns (psnr (S, n_future), extra): extra is the first sequence's frames uint8 (T, 3, 64, 64)
    (keep_first) or all predicted sequences uint8 (S, T, 3, 64, 64) (keep_all), else None.
    """
    model.eval()
    gen = torch.Generator(device=device).manual_seed(cfg.seed)
    T = cfg.seq_len
    rows, kept = [], []
    # in fp32 whatever the training precision (cvae.core.precision.GENERATION_DTYPE)
    with torch.inference_mode(), autocast(device, GENERATION_DTYPE):
        for start in range(0, frames_u8.shape[0], cfg.val_batch_size):
            x = to_unit_float(frames_u8[start:start + cfg.val_batch_size, :T].to(device))
            c = cond[start:start + cfg.val_batch_size, :T].float().to(device)
            pred = rollout(model, x, c, cfg.n_past, cfg.last_frame_skip, generator=gen).float()
            rows.append(psnr_frames(pred[:, cfg.n_past:], x[:, cfg.n_past:]).cpu())
            if keep_all or (keep_first and start == 0):
                u8 = (pred.clamp(0, 1) * 255).round().to(torch.uint8).cpu()
                u8[:, : cfg.n_past] = frames_u8[start:start + cfg.val_batch_size, : cfg.n_past]
                kept.append(u8 if keep_all else u8[0])
    psnr = torch.cat(rows)
    if keep_all:
        return psnr, torch.cat(kept)
    return psnr, (kept[0] if kept else None)


def fit(cfg: BairConfig, data: BairData, on_epoch: Callable[[dict, BairTrainer], None] | None = None,
        resume_from: str | Path | None = None, device: str | None = None,
        validate_at: Sequence[int] = ()) -> BairTrainer:
    """Train to cfg.num_epoch (continuing a checkpoint if given); stops early on divergence."""
    return train_to_end(BairTrainer(cfg, data, device, validate_at=validate_at), on_epoch, resume_from)


def main(argv: Sequence[str] | None = None) -> int:
    """python -m cvae.train --model bair-2023 --config FILE.yaml [--data DIR] [--device ...] [--threads N] [--out DIR]"""
    from cvae.core.registry import get_family, split_model_key

    parser = argparse.ArgumentParser(prog="python -m cvae.train --model bair-2023",
                                     description="Train the 2023 SVG-style CVAE on BAIR robot pushing.")
    parser.add_argument("--model", default=None)
    parser.add_argument("--config", required=True, help="YAML of BairConfig fields (template aliases accepted)")
    parser.add_argument("--data", default="data/bair-small", help="dataset root in the processed BAIR layout")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default=None)
    parser.add_argument("--threads", type=thread_count, default=None, metavar="N")
    parser.add_argument("--out", default=None, help="folder for last.pt, best.pt and metrics.jsonl")
    parser.add_argument("--resume", default=None, help="checkpoint to continue from")
    args = parser.parse_args(argv)
    try:
        import yaml

        try:
            raw = yaml.safe_load(Path(args.config).read_text()) or {}
        except OSError as err:
            raise ConfigError(f"{args.config}: cannot read config file ({err.strerror})") from None
        if not isinstance(raw, dict):
            raise ConfigError(f"{args.config}: expected a mapping of BairConfig fields")
        _, values = split_model_key(raw, "bair-2023", source=args.config)
        cfg = BairConfig.from_dict(values, source=args.config)
        if args.device is not None:
            cfg = cfg.replace(device=args.device)
        if args.threads is not None:
            cfg = cfg.replace(torch_threads=args.threads)
        device = resolve_device(cfg.device)
        threads = cfg.torch_threads if cfg.torch_threads is not None else torch.get_num_threads()
        data = load_bair_data(args.data, cfg.seq_len)  # a data error before the probe's seconds
        # `precision: auto`: measured here (fp32 vs bf16 steps of this config), or cached
        decision = get_family("bair-2023").decide_precision(cfg, device, threads)
        print(f"model bair-2023: running with torch_threads {threads}, device {device.type}, "
              f"precision {decision.describe()}", flush=True)
        cfg = cfg.replace(precision=decision.precision)
        print(f"copy-last-frame baseline (validate): {copy_last_frame_baseline(cfg, data):.3f} dB", flush=True)
        on_epoch = epoch_writer(Path(args.out) if args.out else None, format_metrics)
        trainer = fit(cfg, data, on_epoch=on_epoch, resume_from=args.resume)
    except (ConfigError, DataError, CheckpointError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 1 if trainer.diverged else 0
