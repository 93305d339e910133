"""The random state a checkpoint holds, so that a resumed run draws what an uninterrupted one would.

Python's, NumPy's and torch's global generators, the trainer's own named
generators (the 2024 family's shuffle order, the 2023 family's sampling) and,
on CUDA, the trainer's own device (cvae/core/cuda.py). Stored as tensors and plain
values, so checkpoints still load with weights_only=True. Both families'
trainers use these two functions; the key names are the checkpoint format.
"""
from __future__ import annotations

import random
from typing import Any, Mapping

import numpy as np
import torch

from cvae.core.cuda import restore_cuda_rng, save_cuda_rng


def capture_rng_state(device: torch.device, generators: Mapping[str, torch.Generator]) -> dict[str, Any]:
    """{"python", "numpy", "torch", <each generator's name>, and "cuda" on a CUDA device}."""
    rng: dict[str, Any] = {"python": _python_state(random.getstate()), "numpy": _numpy_state(np.random.get_state()),
                           "torch": torch.get_rng_state()}
    rng.update({name: gen.get_state() for name, gen in generators.items()})
    if device.type == "cuda":
        rng["cuda"] = save_cuda_rng(device)  # this device only (cvae/core/cuda.py)
    return rng


def restore_rng_state(rng: Mapping[str, Any], device: torch.device, generators: Mapping[str, torch.Generator]) -> None:
    """Put back what `capture_rng_state` saved (a CPU checkpoint resumed on CUDA keeps the device's seeding)."""
    random.setstate(_python_state_back(rng["python"]))
    np.random.set_state(_numpy_state_back(rng["numpy"]))
    torch.set_rng_state(rng["torch"])
    for name, gen in generators.items():
        gen.set_state(rng[name])
    if "cuda" in rng and device.type == "cuda":
        restore_cuda_rng(rng["cuda"], device)


def _python_state(state: tuple) -> list:
    version, internal, gauss = state
    return [version, list(internal), gauss]


def _python_state_back(state: list) -> tuple:
    return (state[0], tuple(state[1]), state[2])


def _numpy_state(state: tuple) -> dict[str, Any]:
    # ndarray is not allowed by weights_only loading: store the key array as a tensor.
    name, keys, pos, has_gauss, cached = state
    return {"name": name, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
            "has_gauss": int(has_gauss), "cached": float(cached)}


def _numpy_state_back(state: dict[str, Any]) -> tuple:
    return (state["name"], state["keys"].numpy().astype(np.uint32), state["pos"], state["has_gauss"], state["cached"])
