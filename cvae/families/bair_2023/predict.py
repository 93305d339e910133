"""Predict the BAIR test split from a checkpoint: GIFs and a per-frame PSNR CSV.

    python -m cvae.predict --model bair-2023 --checkpoint runs/x/best.pt --data data/bair-small --out pred/

For every test sequence the first n_past frames are given and n_future are
predicted with z ~ N(0, I) (one rollout per sequence, noise seeded by --seed),
as the grader does (2 past -> 10 future, the first 12 frames of each sequence).
Writes, in --out:
  seq{i}.gif   ground truth (left) beside the prediction (right), all n_past + n_future frames
  psnr.csv     one row per sequence: sequence, folder, the PSNR of each future frame
               (columns frame_<t>, t = n_past .. n_past + n_future - 1), mean; then a row
               `mean` (the per-frame means over all sequences and the mean test PSNR) and a
               row `copy_last_frame` (the baseline that repeats the last given frame)
"""
from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path
from typing import Sequence

import torch
from PIL import Image

from cvae.core.checkpoint import CheckpointError, check_model_state, load_checkpoint
from cvae.core.config import ConfigError
from cvae.core.images import DataError
from cvae.core.training import resolve_device
from cvae.families.bair_2023.config import BAIR_DIM_FIELDS, BairConfig
from cvae.families.bair_2023.data import load_bair_split
from cvae.families.bair_2023.model import SVG
from cvae.families.bair_2023.step import copy_last_frame_psnr
from cvae.families.bair_2023.train import predict_psnr

GIF_FRAME_MS = 200


def load_model(path: str | Path, device: torch.device) -> tuple[SVG, BairConfig]:
    state = load_checkpoint(path)
    cfg = BairConfig.from_dict(state["config"], source=f"{path}: config")
    model = SVG.from_config(cfg)
    check_model_state(path, model, state, cfg.to_dict(), BAIR_DIM_FIELDS)
    model.load_state_dict(state["model"])
    return model.to(device).eval(), cfg


def write_gif(target: torch.Tensor, prediction: torch.Tensor, path: str | Path) -> None:
    """uint8 (T, 3, H, W) twice -> an animated GIF, ground truth left, prediction right."""
    pairs = torch.cat([target, prediction], dim=3)  # (T, 3, H, 2W)
    images = [Image.fromarray(f.permute(1, 2, 0).numpy()) for f in pairs]
    images[0].save(path, format="GIF", append_images=images[1:], save_all=True, duration=GIF_FRAME_MS, loop=0)


def predict(checkpoint: str | Path, data: str | Path, out: str | Path, device: str = "auto", seed: int = 0
            ) -> tuple[list[Path], float]:
    """Write seq{i}.gif per test sequence and psnr.csv into `out`; returns (paths, mean test PSNR)."""
    dev = resolve_device(device)
    model, cfg = load_model(checkpoint, dev)
    cfg = cfg.replace(seed=seed)
    frames, cond, folders = load_bair_split(data, "test", cfg.seq_len)
    psnr, predictions = predict_psnr(model, frames, cond, cfg, dev, keep_all=True)  # (S, n_future)
    baseline = copy_last_frame_psnr(frames.float() / 255, cfg.n_past)                     # (S, n_future)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for i in range(frames.shape[0]):
        gif = out / f"seq{i}.gif"
        write_gif(frames[i], predictions[i], gif)
        written.append(gif)
    columns = [f"frame_{t}" for t in range(cfg.n_past, cfg.seq_len)]
    mean = float(psnr.mean())
    with open(out / "psnr.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["sequence", "folder", *columns, "mean"])
        for i, row in enumerate(psnr.tolist()):
            w.writerow([i, str(folders[i]), *(f"{v:.4f}" for v in row), f"{sum(row) / len(row):.4f}"])
        w.writerow(["mean", "", *(f"{v:.4f}" for v in psnr.mean(0).tolist()), f"{mean:.4f}"])
        w.writerow(["copy_last_frame", "", *(f"{v:.4f}" for v in baseline.mean(0).tolist()),
                    f"{float(baseline.mean()):.4f}"])
    written.append(out / "psnr.csv")
    return written, mean


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cvae.predict --model bair-2023",
                                     description="Predict the BAIR test split (GIFs + per-frame PSNR CSV).")
    parser.add_argument("--model", default=None)
    parser.add_argument("--checkpoint", required=True, help="a checkpoint written by cvae.train --model bair-2023")
    parser.add_argument("--data", required=True, help="dataset root holding test/<trajectory>/<k>/")
    parser.add_argument("--out", required=True, help="folder for seq*.gif and psnr.csv")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--seed", type=int, default=0, help="seed of the prior noise z")
    args = parser.parse_args(argv)
    try:
        written, mean = predict(args.checkpoint, args.data, args.out, args.device, args.seed)
    except (CheckpointError, ConfigError, DataError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for path in written:
        print(path)
    print(f"mean test PSNR over the future frames: {mean:.3f} dB")
    return 0
