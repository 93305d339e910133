"""PSNR as the Lab4 template and its Kaggle grader compute it."""
from __future__ import annotations

import math

import torch


def _as_float(x: torch.Tensor) -> torch.Tensor:
    # uint8 frames are scaled to [0, 1] so every PSNR here uses data_range 1.
    return x.float() / 255.0 if x.dtype == torch.uint8 else x.float()


def psnr(a: torch.Tensor, b: torch.Tensor, data_range: float = 1.0) -> float:
    """20 log10(range) - 10 log10(MSE) over one frame pair (inf when identical)."""
    mse = torch.mean((_as_float(a) - _as_float(b)) ** 2).item()
    if mse == 0:
        return math.inf
    return 20 * math.log10(data_range) - 10 * math.log10(mse)


def psnr_per_frame(pred: torch.Tensor, target: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """PSNR of each frame of (T, C, H, W) videos, as a (T,) float tensor on their device.

    One reduction for the whole video, so validation needs no host sync per frame.
    """
    if pred.shape != target.shape:
        raise ValueError(f"prediction shape {tuple(pred.shape)} differs from target shape {tuple(target.shape)}")
    mse = ((_as_float(pred) - _as_float(target)) ** 2).flatten(1).mean(dim=1)  # (T,)
    return 20 * math.log10(data_range) - 10 * torch.log10(mse)


def copy_first_frame_psnr(frames: torch.Tensor, data_range: float = 1.0) -> list[float]:
    """PSNR of frames 1..T-1 when every one is predicted by frame 0.

    The floor any predictor must beat: it knows the first frame and nothing else.
    """
    frames = _as_float(frames)  # (T, C, H, W)
    first = frames[:1].expand_as(frames[1:])
    return psnr_per_frame(first, frames[1:], data_range).tolist()
