"""What every family's trainer shares: the device, threads and precision a run
uses, seeding, the optimiser, autocast, the loop that runs a trainer to its last
epoch, and the CLI's per-epoch printing and checkpoint files.

It knows no family: a family's Trainer (a `cvae.core.checkpoint.CheckpointedTrainer`)
brings its model, data and epoch."""
from __future__ import annotations

import argparse
import contextlib
import json
import math
import random
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from cvae.core.config import ConfigError
from cvae.core.precision import DTYPE_NAMES, resolve_precision

# The per-epoch metrics every family's Trainer.run_epoch returns (docs/CONTRACTS.md).
METRIC_KEYS = ("epoch", "val_psnr", "val_psnr_per_frame", "train_loss", "train_mse", "train_kl", "beta",
               "tfr", "teacher_forcing", "lr", "epoch_time_s", "val_time_s", "validated", "diverged")


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device not in ("cpu", "cuda"):
        raise ConfigError(f"device is {device!r}, but must be one of ['auto', 'cpu', 'cuda']")
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device is 'cuda', but no CUDA device is available (use device: cpu or auto)")
    return torch.device(device)


def apply_threads(cfg: Any) -> None:
    """Set torch's intra-op thread count from cfg.torch_threads (None: leave it as it is).

    Process-wide: the CPU kernels split their reductions by thread count, so the
    same config gives different floats with a different count.
    """
    if cfg.torch_threads is not None:
        torch.set_num_threads(cfg.torch_threads)


def execution_settings(cfg: Any, device: torch.device | str) -> dict[str, Any]:
    """What a run's numbers depend on besides its configuration, as a Trainer built now would run:
    {"torch_threads": int, "device": "cpu"|"cuda", "precision": "fp32"|"bf16"|"fp16"}.

    `precision: auto` and the default thread count are resolved, so the values can be
    written back into a config (best.yaml) to reproduce the run. Changes nothing.
    """
    device = torch.device(device)
    threads = cfg.torch_threads if cfg.torch_threads is not None else torch.get_num_threads()
    return {"torch_threads": threads, "device": device.type,
            "precision": DTYPE_NAMES[resolve_precision(cfg.precision, device)]}


def autocast(device: torch.device, dtype: torch.dtype) -> contextlib.AbstractContextManager:
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device


def optimizer_device_options(optimizer: str, device_type: str) -> dict[str, Any]:
    """Keyword arguments an optimizer gets on `device_type` beyond lr and weight decay.

    Adam and AdamW use the fused kernel on every device: one call for all
    parameters instead of a chain of small ops per parameter tensor (206 of them
    in the lab4-2024 CVAE). On a CPU thread the optimizer step alone is 5-6x
    shorter than torch's CPU default (per tensor), and whole demo trials ran
    1.06x faster (bench/results/adam_fused*.json). On CUDA, ASGD's default
    (capturable=False) reads its step counters on the host, one sync per
    parameter tensor per step (~200 here); capturable keeps them on the device.
    """
    if optimizer in ("Adam", "AdamW"):
        return {"fused": True}
    if device_type == "cuda" and optimizer == "ASGD":
        return {"capturable": True}
    return {}


def build_optimizer(cfg: Any, params, device_type: str = "cpu", **extra: Any) -> torch.optim.Optimizer:
    """The configured optimizer; `extra` (e.g. Adam's betas) goes to its constructor."""
    kwargs = {"lr": cfg.lr, "weight_decay": cfg.weight_decay,
              **optimizer_device_options(cfg.optimizer, device_type), **extra}
    if cfg.optimizer in ("SGD", "RMSprop"):
        kwargs["momentum"] = cfg.momentum
    optimizers = {"Adam": torch.optim.Adam, "AdamW": torch.optim.AdamW, "Adamax": torch.optim.Adamax,
                  "SGD": torch.optim.SGD, "ASGD": torch.optim.ASGD, "RMSprop": torch.optim.RMSprop}
    if cfg.optimizer not in optimizers:
        raise ConfigError(f"optimizer is {cfg.optimizer!r}, but must be one of {', '.join(optimizers)}")
    return optimizers[cfg.optimizer](params, **kwargs)


def optimizer_step(trainer: Any, loss: torch.Tensor, mse: torch.Tensor, kl: torch.Tensor) -> torch.Tensor:
    """Both families' step after the loss: backward through the trainer's GradScaler,
    clip at cfg.grad_clip (0: off), step. Returns (loss, mse, kl) as one float tensor on
    the device (no host sync)."""
    trainer.optimizer.zero_grad(set_to_none=True)
    trainer.scaler.scale(loss).backward()
    if trainer.cfg.grad_clip > 0:
        trainer.scaler.unscale_(trainer.optimizer)
        torch.nn.utils.clip_grad_norm_(trainer.model.parameters(), trainer.cfg.grad_clip)
    trainer.scaler.step(trainer.optimizer)
    trainer.scaler.update()
    return torch.stack([loss.detach(), mse.detach(), kl.detach()]).float()


def limit_compile_threads(threads: int) -> None:
    """Inductor compiles with a pool of min(32, cores) workers whatever the process's CPU
    share; several trials compiling at once would oversubscribe the node. Use the
    trial's share (its torch threads). Must run before the first compiled call."""
    import torch._inductor.config as inductor_config

    inductor_config.compile_threads = max(1, int(threads))


def to_unit_float(x: torch.Tensor) -> torch.Tensor:
    return x.float().div(255.0)  # uint8 -> float in [0, 1]


def train_to_end(trainer: Any, on_epoch: Callable[[dict, Any], None] | None = None,
                 resume_from: str | Path | None = None) -> Any:
    """Run a trainer (any family's) from its checkpoint, if given, to trainer.cfg.num_epoch,
    calling on_epoch after each epoch; stops early on divergence."""
    if resume_from is not None:
        trainer.load_checkpoint(resume_from)
    while trainer.epoch < trainer.cfg.num_epoch and not trainer.diverged:
        metrics = trainer.run_epoch()
        if on_epoch is not None:
            on_epoch(metrics, trainer)
    return trainer


def epoch_writer(out: Path | None, format_metrics: Callable[[dict[str, Any]], str]
                 ) -> Callable[[dict[str, Any], Any], None]:
    """The CLI's on_epoch (every family's): print the epoch; with `out`, append
    metrics.jsonl and save last.pt, and best.pt when the validated val_psnr improves."""
    best = -math.inf

    def on_epoch(metrics: dict[str, Any], trainer: Any) -> None:
        nonlocal best
        print(format_metrics(metrics), flush=True)
        if out is None:
            return
        out.mkdir(parents=True, exist_ok=True)
        with open(out / "metrics.jsonl", "a") as f:
            f.write(json.dumps(metrics) + "\n")
        trainer.save_checkpoint(out / "last.pt")
        if metrics["validated"] and metrics["val_psnr"] > best:
            best = metrics["val_psnr"]
            trainer.save_checkpoint(out / "best.pt")

    return on_epoch


def format_metrics(m: dict[str, Any]) -> str:
    val = f"val_psnr {m['val_psnr']:.3f}" + ("" if m["validated"] else " (not validated)")
    return (f"epoch {m['epoch']:4d}  {val}  loss {m['train_loss']:.5g}  mse {m['train_mse']:.5g}  "
            f"kl {m['train_kl']:.5g}  beta {m['beta']:.3f}  tfr {m['tfr']:.3f}  tf {m['teacher_forcing']}  "
            f"lr {m['lr']:.3g}  {m['epoch_time_s']:.2f}s" + ("  DIVERGED" if m["diverged"] else ""))


def thread_count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer >= 1")
    return value
