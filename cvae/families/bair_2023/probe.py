"""The bair-2023 family's half of the precision probe (cvae/core/precision_probe.py):
what its training step's cost depends on, and that step, ready to time.

The step is the trainer's own (`BairTrainer.train_step`) on a BairTrainer built from
the config, over random 64x64 frames and conditions at the configured batch size and
the full n_past + n_future frames (the template's 12: short enough to time as it is).
One probe step is one teacher-forced step plus one free-running step: the trainer
draws the mode per iteration from tfr, and the two run different code (a batched
encoder call vs the per-step loop), so bf16 may gain differently in each.
"""
from __future__ import annotations

from typing import Any, Callable

import torch

from cvae.core.training import to_unit_float
from cvae.families.bair_2023.config import BAIR_DIM_FIELDS, COND_DIM, FRAME_SIZE, BairConfig
from cvae.families.bair_2023.data import BairData


def probe_workload(cfg: BairConfig) -> dict[str, Any]:
    """The config values the probed step's cost depends on (the precision cache's model part)."""
    return {"family": "bair-2023", **{name: getattr(cfg, name) for name in BAIR_DIM_FIELDS},
            "batch_size": cfg.batch_size, "frames": cfg.seq_len, "n_past": cfg.n_past,
            "grad_clip": cfg.grad_clip > 0, "optimizer": cfg.optimizer}


def probe_step(cfg: BairConfig, device: torch.device) -> Callable[[], None]:
    """One probe step (a teacher-forced and a free-running train_step) of a BairTrainer for
    `cfg`, in cfg.precision, on `device`; returns without a host sync (the timer syncs)."""
    from cvae.families.bair_2023.train import BairTrainer

    gen = torch.Generator().manual_seed(0)
    shape = (cfg.batch_size, cfg.seq_len, 3, FRAME_SIZE, FRAME_SIZE)
    frames = torch.randint(0, 256, shape, dtype=torch.uint8, generator=gen)
    cond = torch.rand((cfg.batch_size, cfg.seq_len, COND_DIM), generator=gen)
    # The trainer checks and keeps a dataset; the step below is given its batch directly.
    trainer = BairTrainer(cfg, BairData(frames, cond, frames, cond), device=device.type)
    x, c = to_unit_float(frames).to(trainer.device), cond.to(trainer.device)

    def step() -> None:
        trainer.train_step(x, c, cfg.kl_weight, True)
        trainer.train_step(x, c, cfg.kl_weight, False)

    return step
