"""The lab4-2024 family's half of the precision probe (cvae/core/precision_probe.py):
what its training step's cost depends on, and that step, ready to time.

The step is the trainer's own (`Trainer.train_step`) on a Trainer built from the
config (channels_last, decode chunking, compile and threads as configured), over
random frames at the configured frame size, dims and batch size. Two choices:

- Frames: min(train_vi_len, PROBE_MAX_FRAMES). The step's cost grows about linearly
  with the frames (encoder and posterior run once over all of them, the decoder in
  chunks, free running loops over them), so both precisions scale alike. 4 frames keep
  the lab-dims probe under a minute on one thread: at 8 frames one probe step (both
  modes) took 12-18 s in fp32 and ~5 s in bf16 on the 2-core Xeon this was written on.
- Teacher forcing: one probe step is one teacher-forced step plus one free-running
  step. An epoch's mode is drawn from tfr, which the search samples and the lab schedule
  decays from 1 to 0, and bf16's gain differs between the modes (0.94x vs 1.29x the
  fp32 step on a 2-core EPYC with avx512_bf16, docs/benchmarks.md), so the probe
  weighs both.
"""
from __future__ import annotations

from typing import Any, Callable

import torch

from cvae.core.training import to_unit_float
from cvae.families.lab4_2024.config import DIM_FIELDS, TrainConfig
from cvae.families.lab4_2024.data import LabData

PROBE_MAX_FRAMES = 4


def probe_frames(cfg: TrainConfig) -> int:
    return max(2, min(cfg.train_vi_len, PROBE_MAX_FRAMES))


def probe_workload(cfg: TrainConfig) -> dict[str, Any]:
    """The config values the probed step's cost depends on (the precision cache's model part)."""
    return {"family": "lab4-2024", **{name: getattr(cfg, name) for name in DIM_FIELDS},
            "frame_H": cfg.frame_H, "frame_W": cfg.frame_W, "batch_size": cfg.batch_size,
            "frames": probe_frames(cfg), "channels_last": cfg.channels_last, "compile": cfg.compile,
            "grad_clip": cfg.grad_clip > 0, "optimizer": cfg.optimizer}


def probe_step(cfg: TrainConfig, device: torch.device) -> Callable[[], None]:
    """One probe step (a teacher-forced and a free-running train_step) of a Trainer for `cfg`,
    in cfg.precision, on `device`; returns without a host sync (the timer syncs)."""
    from cvae.families.lab4_2024.train import Trainer  # the trainer imports torch's heavy parts

    gen = torch.Generator().manual_seed(0)
    frames = torch.randint(0, 256, (cfg.val_vi_len, 3, cfg.frame_H, cfg.frame_W), dtype=torch.uint8,
                           generator=gen)
    # The Trainer checks and keeps a dataset; the step below never reads it (one tensor, four roles).
    trainer = Trainer(cfg, LabData(frames, frames, frames, frames), device=device.type)
    shape = (cfg.batch_size, probe_frames(cfg), 3, cfg.frame_H, cfg.frame_W)
    x = to_unit_float(torch.randint(0, 256, shape, dtype=torch.uint8, generator=gen)).to(trainer.device)
    p = to_unit_float(torch.randint(0, 256, shape, dtype=torch.uint8, generator=gen)).to(trainer.device)

    def step() -> None:
        trainer.train_step(x, p, cfg.kl_weight, True)
        trainer.train_step(x, p, cfg.kl_weight, False)

    return step
