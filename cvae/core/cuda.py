"""What the "a resumed run continues identically" contract needs on CUDA.

1. RNG state of the trainer's own device only. `torch.cuda.get_rng_state_all()`
   saves one state per *visible* GPU, and `set_rng_state_all` fails
   (IndexError) in a process that sees fewer: a checkpoint written where 2 GPUs
   were visible could not be resumed by a Ray trial that sees 1
   (`CUDA_VISIBLE_DEVICES=0`). Checkpoints now hold the state of the device the
   trainer ran on; older ones (a list, one per visible GPU) give their entry 0,
   the device a trainer built with device "cuda" runs on (the current device,
   0 unless the process changed it).
2. Deterministic kernels. cuDNN may pick non-deterministic backward algorithms
   (`benchmark=True` autotunes, and some algorithms use atomics), and fp32
   convolutions and matmuls run in TF32 on Ampere and newer by default. The
   trainer turns both off on CUDA: determinism over speed, so resuming a trial
   from its checkpoint gives the same numbers as an uninterrupted run (a CUDA
   test checks it bit for bit on an H100). Its cost against autotuned kernels
   with TF32 was not measured (the H100 time ran out first); every measured
   step there is launch-bound (bench/results/gpu.json), so kernel choice moves
   only the small GPU-side share. `precision: auto` picks bf16 on GPUs with
   native bf16, where TF32 does not apply.

Only the pure choice (`pick_cuda_state`) runs without a GPU; the rest is
called only when the trainer's device is CUDA.
"""
from __future__ import annotations

from typing import Any, Optional

import torch


def pick_cuda_state(saved: Any) -> Optional[torch.Tensor]:
    """The RNG state to restore on the trainer's device from a checkpoint's "cuda" entry."""
    if isinstance(saved, (list, tuple)):  # older checkpoints: one state per visible GPU
        return saved[0] if saved else None
    return saved


def save_cuda_rng(device: torch.device) -> torch.Tensor:
    return torch.cuda.get_rng_state(device)


def restore_cuda_rng(saved: Any, device: torch.device) -> None:
    state = pick_cuda_state(saved)
    if state is not None:
        torch.cuda.set_rng_state(state, device)


def use_deterministic_kernels() -> None:
    """cuDNN without autotuning and with deterministic algorithms; no TF32 (see the module doc)."""
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
