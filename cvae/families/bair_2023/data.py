"""The processed BAIR robot-pushing layout, read unchanged (docs/BAIR-2023.md):

    ROOT/{train,validate,test}/<trajectory folder>/<k>/
        0.png ... 29.png              64 x 64 RGB frames
        actions.csv                   30 rows x 4 values, no header
        endeffector_positions.csv     30 rows x 3 values, no header

Trajectory folders (`traj_0_to_255.tfrecords` in the real data) and sequence
folders (0 .. 255) are taken in natural order (the numbers in the names), so
`traj_2...` comes before `traj_10...`. The condition of frame t is
cat(action_t, position_t): 7 raw values (no normalisation, as the template).
Frames are ToTensor-scaled to [0, 1] by the trainer; here they stay uint8.

Every sequence is checked completely (all 30 frames present, both CSVs with
30 rows of the right width, every decoded frame 64 x 64) even when fewer frames
are decoded, and every error is a DataError naming the folder or file.
A split is decoded once (`load_bair_data`) and shared with every trial
through Ray's object store, like the dance data.
"""
from __future__ import annotations

import os
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from cvae.core.images import DataError, Progress, decode_workers, open_rgb, warn_data
from cvae.families.bair_2023.config import COND_DIM, FRAME_SIZE, SEQUENCE_FRAMES

SPLITS = ("train", "validate", "test")
ACTIONS_CSV, POSITIONS_CSV = "actions.csv", "endeffector_positions.csv"
ACTION_DIM, POSITION_DIM = 4, 3
PROGRESS_MIN_IMAGES = 2000
_NUMBERS = re.compile(r"\d+")

LAYOUT = ("ROOT/{train,validate,test}/<trajectory folder>/<k>/ holding 0.png ... 29.png (64x64 RGB), "
          "actions.csv (30 x 4) and endeffector_positions.csv (30 x 3)")


@dataclass
class BairData:
    """The decoded train and validate splits (the object shared through Ray's object store)."""
    train_frames: torch.Tensor  # uint8 (S, T, 3, 64, 64)
    train_cond: torch.Tensor    # float32 (S, T, 7): action (4) then end-effector position (3)
    val_frames: torch.Tensor    # uint8 (V, T, 3, 64, 64)
    val_cond: torch.Tensor      # float32 (V, T, 7)


def _natural_key(name: str) -> tuple:
    return tuple(int(n) for n in _NUMBERS.findall(name)), name


def _subdirs(folder: Path) -> list[Path]:
    with os.scandir(folder) as it:
        names = [e.name for e in it if e.is_dir() and not e.name.startswith(".")]
    return [folder / n for n in sorted(names, key=_natural_key)]


def sequence_folders(root: str | Path, split: str) -> list[Path]:
    """Every <trajectory>/<k>/ folder of a split, in natural order; checks the folders exist."""
    if split not in SPLITS:
        raise DataError(f"split is {split!r}, but must be one of {list(SPLITS)}")
    root = Path(root)
    if not root.exists():
        raise DataError(f"{root}: data folder does not exist (expected the processed BAIR layout: {LAYOUT})")
    if not root.is_dir():
        raise DataError(f"{root}: is a file, but the data root must be a folder holding train/, validate/ and test/")
    split_dir = root / split
    if not split_dir.is_dir():
        raise DataError(f"{split_dir}: folder missing (expected {split}/<trajectory folder>/<k>/ of the "
                        f"processed BAIR layout: {LAYOUT})")
    trajectories = _subdirs(split_dir)
    if not trajectories:
        raise DataError(f"{split_dir}: no trajectory folders (expected e.g. traj_0_to_255.tfrecords/0/ ...)")
    sequences = []
    for traj in trajectories:
        seqs = _subdirs(traj)
        if not seqs:
            raise DataError(f"{traj}: no sequence folders (expected 0/, 1/, ... each holding 0.png ... 29.png, "
                            f"{ACTIONS_CSV} and {POSITIONS_CSV})")
        sequences.extend(seqs)
    return sequences


def read_csv(path: Path, columns: int) -> np.ndarray:
    """A headerless CSV of SEQUENCE_FRAMES rows x `columns` numbers -> float32 array."""
    if not path.is_file():
        raise DataError(f"{path}: file missing (expected {SEQUENCE_FRAMES} rows x {columns} numbers, no header)")
    try:
        lines = [line for line in path.read_text().splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: cannot read ({err})") from None
    if len(lines) < SEQUENCE_FRAMES:
        raise DataError(f"{path}: has {len(lines)} rows, but must have {SEQUENCE_FRAMES} (one per frame)")
    if len(lines) > SEQUENCE_FRAMES:  # harmless: rows past the last frame belong to no frame
        warn_data(f"{path}: {len(lines)} rows; the {len(lines) - SEQUENCE_FRAMES} after row {SEQUENCE_FRAMES} "
                  "are ignored (one row per frame)")
        lines = lines[:SEQUENCE_FRAMES]
    rows = []
    for i, line in enumerate(lines):
        cells = line.split(",")
        if len(cells) != columns:
            raise DataError(f"{path}: row {i + 1} has {len(cells)} values, but must have {columns}")
        try:
            rows.append([float(c) for c in cells])
        except ValueError:
            raise DataError(f"{path}: row {i + 1} is {line!r}, but must hold {columns} numbers") from None
    values = np.asarray(rows, dtype=np.float32)
    if not np.isfinite(values).all():
        raise DataError(f"{path}: holds a non-finite number (nan or inf)")
    return values


def check_sequence(folder: Path, decoded: int = SEQUENCE_FRAMES) -> None:
    """All frames 0.png ... 29.png present (the first missing one is named), and those
    past the `decoded` ones 64 x 64 too: read from their headers, so a corrupt data set
    is refused whichever frames a run decodes."""
    missing = [i for i in range(SEQUENCE_FRAMES) if not (folder / f"{i}.png").is_file()]
    if missing:
        raise DataError(f"{folder}: sequence has missing frames: {missing[0]}.png"
                        + (f" and {len(missing) - 1} more" if len(missing) > 1 else "")
                        + f" (expected 0.png ... {SEQUENCE_FRAMES - 1}.png)")
    extra = sorted(int(p.stem) for p in folder.glob("*.png") if p.stem.isdigit() and int(p.stem) >= SEQUENCE_FRAMES)
    if extra:  # harmless: a sequence is frames 0..29
        warn_data(f"{folder}: {len(extra)} frame(s) past {SEQUENCE_FRAMES - 1}.png ignored (first: {extra[0]}.png)")
    for t in range(decoded, SEQUENCE_FRAMES):
        path = folder / f"{t}.png"
        try:
            with Image.open(path) as img:
                size = img.size
        except (OSError, SyntaxError) as err:
            raise DataError(f"{path}: cannot read as an image ({err})") from None
        if size != (FRAME_SIZE, FRAME_SIZE):
            raise DataError(f"{path}: image is {size[0]}x{size[1]} (WxH), but BAIR frames must be "
                            f"{FRAME_SIZE}x{FRAME_SIZE}")


def read_condition(folder: Path) -> np.ndarray:
    """(30, 7) float32: actions then end-effector positions, per frame."""
    actions = read_csv(folder / ACTIONS_CSV, ACTION_DIM)
    positions = read_csv(folder / POSITIONS_CSV, POSITION_DIM)
    return np.concatenate([actions, positions], axis=1)


def _decode_frame(path: Path) -> np.ndarray:
    img = open_rgb(path)
    if img.size != (FRAME_SIZE, FRAME_SIZE):
        raise DataError(f"{path}: image is {img.size[0]}x{img.size[1]} (WxH), but BAIR frames must be "
                        f"{FRAME_SIZE}x{FRAME_SIZE}")
    return np.asarray(img).transpose(2, 0, 1)  # (3, 64, 64)


def load_bair_split(root: str | Path, split: str, frames: int = SEQUENCE_FRAMES, progress: bool = False,
                    limit: int | None = None) -> tuple[torch.Tensor, torch.Tensor, list[Path]]:
    """Decode the first `frames` frames of every sequence of a split.

    Returns (frames uint8 (S, frames, 3, 64, 64), cond float32 (S, frames, 7), sequence folders).
    `limit` keeps the first `limit` sequences (tests, quick looks).
    """
    if not 1 <= frames <= SEQUENCE_FRAMES:
        raise DataError(f"frames is {frames}, but must be in [1, {SEQUENCE_FRAMES}]")
    folders = sequence_folders(root, split)
    if limit is not None:
        folders = folders[:limit]
    conds = []
    for folder in folders:
        check_sequence(folder, decoded=frames)
        conds.append(read_condition(folder)[:frames])
    out = np.empty((len(folders), frames, 3, FRAME_SIZE, FRAME_SIZE), dtype=np.uint8)
    bar = Progress(f"decoding BAIR {split} ({len(folders)} sequences)", len(folders) * frames,
                    progress and len(folders) * frames > PROGRESS_MIN_IMAGES)

    def work(i: int) -> None:
        for t in range(frames):
            out[i, t] = _decode_frame(folders[i] / f"{t}.png")
        bar.add(frames)

    with ThreadPoolExecutor(max_workers=decode_workers()) as pool:
        for future in [pool.submit(work, i) for i in range(len(folders))]:
            future.result()  # re-raises the first DataError
    cond = torch.from_numpy(np.stack(conds)) if conds else torch.empty((0, frames, COND_DIM))
    return torch.from_numpy(out), cond, folders


def load_bair_data(root: str | Path, frames: int, progress: bool = True) -> BairData:
    """Decode train and validate once (the first `frames` frames of each sequence)."""
    train_x, train_c, _ = load_bair_split(root, "train", frames, progress=progress)
    val_x, val_c, _ = load_bair_split(root, "validate", frames, progress=progress)
    return BairData(train_frames=train_x, train_cond=train_c, val_frames=val_x, val_cond=val_c)
