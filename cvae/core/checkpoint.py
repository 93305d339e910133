"""Checkpoint files: a dict of plain tensors and Python values, loadable with weights_only=True.

Errors name the file and what is wrong with it (truncated, not a checkpoint,
model of another size), so a user passing the wrong file knows which and why.
"""
from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import torch

FORMAT = "cvae-checkpoint-v1"
# The keys every family's checkpoint has; a family that stores more checks them in its
# own reader (`CheckpointedTrainer.read_checkpoint`).
REQUIRED_KEYS = ("format", "config", "epoch", "model", "optimizer", "rng")


class CheckpointError(ValueError):
    """A checkpoint file cannot be read or does not fit the configured model."""


def save_checkpoint(path: str | Path, state: Mapping[str, Any]) -> None:
    """Write atomically (temp file + rename) so a crash mid-write never leaves a truncated checkpoint."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save({"format": FORMAT, **state}, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu",
                    extra_keys: Sequence[str] = ()) -> dict[str, Any]:
    """The checkpoint's dict; CheckpointError naming the file when it is not one of
    ours or lacks one of REQUIRED_KEYS or `extra_keys`."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint file not found")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, ValueError) as err:
        raise CheckpointError(
            f"{path}: not a readable checkpoint (truncated, corrupt or not written by cvae.train): {_first_line(err)}"
        ) from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a cvae checkpoint (expected a dict with format {FORMAT!r})")
    missing = [k for k in (*REQUIRED_KEYS, *extra_keys) if k not in state]
    if missing:
        raise CheckpointError(f"{path}: checkpoint lacks the keys {missing}")
    return state


def check_model_state(path: str | Path, model: torch.nn.Module, state: Mapping[str, Any],
                      configured: Mapping[str, Any], dim_fields: Sequence[str] = ()) -> None:
    """Raise CheckpointError naming the dims (the family's `dim_fields`: the config fields
    that shape its model) and tensors that differ between checkpoint and model."""
    saved_cfg = state.get("config", {})
    dims = [f"{k} {saved_cfg.get(k)!r} in the checkpoint but {configured.get(k)!r} configured"
            for k in dim_fields if saved_cfg.get(k) != configured.get(k)]
    expected = model.state_dict()
    saved = state["model"]
    problems = [f"missing tensor {k}" for k in expected if k not in saved]
    problems += [f"unexpected tensor {k}" for k in saved if k not in expected]
    problems += [f"{k} has shape {tuple(saved[k].shape)} in the checkpoint but {tuple(v.shape)} in the model"
                 for k, v in expected.items() if k in saved and tuple(saved[k].shape) != tuple(v.shape)]
    if dims or problems:
        shown = problems[:3] + ([f"... {len(problems) - 3} more"] if len(problems) > 3 else [])
        raise CheckpointError(f"{path}: the checkpoint's model does not match the configured model: "
                              + "; ".join(dims + shown))


def check_optimizer(path: str | Path, state: Mapping[str, Any], configured: str) -> None:
    """An optimizer's saved state fits only the same optimizer: raise naming both."""
    saved = state["config"].get("optimizer")
    if saved != configured:
        raise CheckpointError(f"{path}: the checkpoint's optimizer is {saved!r}, but {configured!r} "
                              "is configured; its optimizer state cannot be resumed")


class CheckpointedTrainer:
    """state_dict / save_checkpoint / load_checkpoint, for both families' trainers.

    A trainer has cfg, device, model, optimizer, scaler, epoch, diverged,
    _last_val and last_prediction; it names its own random generators
    (`rng_generators`) and adds what only it has (`extra_state`, e.g. an LR
    scheduler) and restores that (`load_extra_state`). `dim_fields` are the config
    fields that shape its model; `read_checkpoint` is how its family reads a file
    (the family's own reader when it checks more keys or upgrades old configs).
    """

    dim_fields: tuple[str, ...] = ()
    read_checkpoint: Callable[[str | Path], dict[str, Any]] = staticmethod(load_checkpoint)

    def rng_generators(self) -> dict[str, torch.Generator]:
        raise NotImplementedError

    def extra_state(self) -> dict[str, Any]:
        return {}

    def load_extra_state(self, state: Mapping[str, Any]) -> None:
        pass

    def state_dict(self) -> dict[str, Any]:
        from cvae.core.rng_state import capture_rng_state

        val_psnr, per_frame = self._last_val
        return {"config": self.cfg.to_dict(), "epoch": self.epoch, "diverged": self.diverged,
                "model": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
                "optimizer": self.optimizer.state_dict(), "scaler": self.scaler.state_dict(),
                "rng": capture_rng_state(self.device, self.rng_generators()),
                "last_val": {"val_psnr": val_psnr, "per_frame": list(per_frame)},
                "last_prediction": self.last_prediction, **self.extra_state()}

    def save_checkpoint(self, path: str | Path) -> None:
        save_checkpoint(path, self.state_dict())

    def load_checkpoint(self, path: str | Path) -> None:
        from cvae.core.rng_state import restore_rng_state

        state = self.read_checkpoint(path)
        check_model_state(path, self.model, state, self.cfg.to_dict(), self.dim_fields)
        check_optimizer(path, state, self.cfg.optimizer)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.load_extra_state(state)
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.epoch = int(state["epoch"])
        self.diverged = bool(state.get("diverged", False))
        last = state.get("last_val", {})
        self._last_val = (float(last.get("val_psnr", 0.0)), list(last.get("per_frame", [])))
        self.last_prediction = state.get("last_prediction")
        restore_rng_state(state["rng"], self.device, self.rng_generators())


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__
