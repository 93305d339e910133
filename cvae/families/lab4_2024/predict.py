"""Predict the test videos from a checkpoint: one GIF per sequence and the Kaggle submission.csv.

    python -m cvae.predict --checkpoint runs/x/best.pt --data data/lab4 --out predictions/

Each test sequence gives its first frame and T pose labels; frames 1..T-1 are
generated autoregressively with z ~ N(0, I), as in validation.

submission.csv follows the Lab4 2024 Tester exactly: the sequences' frames are
stacked in sequence order (frame 0, the given one, included), one row per
frame; `id` is the running row number 0..(S*T - 1) across all sequences (the
template's `df.insert(0, 'id', range(0, len(df)))`), then one column per value,
named 0..3*H*W-1, in the frame's (C, H, W) order (the template's
`reshape(630, -1)`), each rint(x * 255) as an int. We clip to 0..255, which the
template does not: with the sigmoid output it changes nothing, and without it
clipping can only bring a value closer to any real pixel.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import torch
from PIL import Image

from cvae.core.checkpoint import CheckpointError, check_model_state
from cvae.core.config import ConfigError
from cvae.core.images import DataError
from cvae.core.precision import GENERATION_DTYPE, resolve_precision
from cvae.core.training import autocast, resolve_device
from cvae.families.lab4_2024.config import DIM_FIELDS, TrainConfig
from cvae.families.lab4_2024.data import load_test_sequences
from cvae.families.lab4_2024.model import CVAE
from cvae.families.lab4_2024.saved import load_lab4_checkpoint
from cvae.families.lab4_2024.step import generate

GIF_FRAME_MS = 20  # the template's make_gif duration
TEMPLATE_FRAME_SIZE = (32, 64)  # the template's frame_H, frame_W defaults (not stored in its checkpoints)


def load_model(path: str | Path, device: torch.device) -> tuple[CVAE, TrainConfig]:
    """The trained model (eval mode) and its config from a cvae.train checkpoint."""
    state = load_lab4_checkpoint(path)
    cfg = TrainConfig.from_dict(state["config"], source=f"{path}: config")
    model = CVAE.from_config(cfg)
    check_model_state(path, model, state, cfg.to_dict(), DIM_FIELDS)
    model.load_state_dict(state["model"])
    return model.to(device).eval(), cfg


@torch.inference_mode()
def predict_sequence(model: CVAE, first_frame: torch.Tensor, labels: torch.Tensor, device: torch.device,
                     dtype: torch.dtype, generator: torch.Generator) -> torch.Tensor:
    """first_frame uint8 (3, H, W), labels uint8 (T, 3, H, W) -> float (T, 3, H, W), frame 0 the given one."""
    first = first_frame.to(device).float().div(255).unsqueeze(0)   # (1, 3, H, W)
    lab = labels.to(device).float().div(255).unsqueeze(0)          # (1, T, 3, H, W)
    with autocast(device, dtype):
        pred = generate(model, first, lab, generator=generator)[0]
    return pred.float().cpu()


def to_uint8(frames: torch.Tensor) -> torch.Tensor:
    return torch.round(frames * 255).clamp(0, 255).to(torch.uint8)  # torch.round = rint (half to even)


def write_gif(frames: torch.Tensor, path: str | Path) -> None:
    """uint8 (T, 3, H, W) -> animated GIF, looping."""
    images = [Image.fromarray(f.permute(1, 2, 0).numpy()) for f in frames]
    images[0].save(path, format="GIF", append_images=images[1:], save_all=True, duration=GIF_FRAME_MS, loop=0)


def write_submission(predictions: Sequence[torch.Tensor], path: str | Path) -> pd.DataFrame:
    """uint8 (T, 3, H, W) per sequence -> the Kaggle CSV (see the module docstring)."""
    rows = torch.cat([p.reshape(p.shape[0], -1) for p in predictions]).numpy().astype(np.int64)  # (S*T, 3*H*W)
    df = pd.DataFrame(rows)
    df.insert(0, "id", range(len(df)))
    df.to_csv(path, header=True, index=False)
    return df


def predict(checkpoint: str | Path, data: str | Path, out: str | Path, device: str = "auto", seed: int = 0,
            precision: str | None = None, from_format: str | None = None,
            frame_size: tuple[int, int] = TEMPLATE_FRAME_SIZE) -> list[Path]:
    """Write pred_seq{i}.gif per test sequence and submission.csv into `out`; returns the written paths.
    from_format "lab4-template": `checkpoint` was saved by the course template's Trainer."""
    dev = resolve_device(device)
    if from_format == "lab4-template":
        from cvae.families.lab4_2024.export import read_template_checkpoint

        model, cfg, _ = read_template_checkpoint(checkpoint, *frame_size)
        model = model.to(dev)
    else:
        model, cfg = load_model(checkpoint, dev)
    # fp32 unless asked otherwise, whatever the training precision (cvae.core.precision.GENERATION_DTYPE)
    dtype = resolve_precision(precision, dev) if precision else GENERATION_DTYPE
    sequences = load_test_sequences(data, cfg.frame_H, cfg.frame_W)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    generator = torch.Generator(device=dev).manual_seed(seed)
    written, predictions = [], []
    for i, (first, labels) in enumerate(sequences):
        frames = to_uint8(predict_sequence(model, first, labels, dev, dtype, generator))
        frames[0] = first  # the given frame, exactly
        predictions.append(frames)
        gif = out / f"pred_seq{i}.gif"  # the template's file name
        write_gif(frames, gif)
        written.append(gif)
    write_submission(predictions, out / "submission.csv")
    written.append(out / "submission.csv")
    return written


def main(argv: Sequence[str] | None = None) -> int:
    """The lab4-2024 family's `python -m cvae.predict` (cvae.core.cli picks the family)."""
    from cvae.core.registry import family_names

    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="python -m cvae.predict",
                                     description="Generate the Lab4 test videos (GIFs) and submission.csv from a checkpoint.")
    parser.add_argument("--model", default=None, choices=family_names(),
                        help="model family (default: the checkpoint's, else lab4-2024)")
    parser.add_argument("--checkpoint", required=True, help="a checkpoint written by cvae.train (last.pt / best.pt)")
    parser.add_argument("--data", required=True, help="dataset root holding test/test_img and test/test_label")
    parser.add_argument("--out", required=True, help="folder for pred_seq*.gif and submission.csv")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--precision", choices=["auto", "fp32", "bf16", "fp16"], default=None,
                        help="default: fp32, whatever the model trained in (bf16 drifts over 630 fed-back frames)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the prior noise z")
    parser.add_argument("--from", dest="from_format", choices=["lab4-template"], default=None,
                        help="the checkpoint was saved by the course template's Trainer.py")
    parser.add_argument("--frame-size", type=int, nargs=2, metavar=("H", "W"), default=list(TEMPLATE_FRAME_SIZE),
                        help="frame size of a --from lab4-template checkpoint (default: the template's 32 64)")
    args = parser.parse_args(argv)
    try:
        written = predict(args.checkpoint, args.data, args.out, args.device, args.seed, args.precision,
                          from_format=args.from_format, frame_size=tuple(args.frame_size))
    except (CheckpointError, ConfigError, DataError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for path in written:
        print(path)
    return 0
