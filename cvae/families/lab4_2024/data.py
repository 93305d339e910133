"""Lab4 dataset loading: decode a split once into uint8 tensors, cached on disk.

On-disk layout (the real Lab4 data and cvae.synthetic both):

    ROOT/train/train_img/frameN.png, ROOT/train/train_label/frameN.png (same names)
    ROOT/val/val_img/...,            ROOT/val/val_label/...
    ROOT/test/test_img/{i}/frame0.png, ROOT/test/test_label/{i}/frame0..K.png

Files are sorted by the number in their name (frame2 before frame10) and
resized with PIL's bilinear filter, which averages over the footprint when
shrinking (antialiased), like the template's torchvision Resize on PIL images.

A decoded split is cached as ROOT/.cache/<split>_<H>x<W>.pt, keyed by the file
names, sizes and modification times, so a changed dataset is decoded again.
Training trials never decode: the search decodes once and shares `LabData`.
"""
from __future__ import annotations

import hashlib
import os
import re
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image

from cvae.core.images import DataError, Progress, decode_workers, open_rgb, warn_data

SPLITS = ("train", "val")
# Bump when the decoded content for the same files would change (resize filter...).
_CACHE_VERSION = 1
_FRAME_NUMBER = re.compile(r"(\d+)(?!.*\d)")  # the last run of digits in the name
PROGRESS_MIN_FRAMES = 3000  # show progress only when decoding is slow enough to wonder


@dataclass
class LabData:
    """Both decoded splits; the object the search puts in Ray's object store once."""
    train_frames: torch.Tensor  # uint8 (N, 3, H, W)
    train_labels: torch.Tensor  # uint8 (N, 3, H, W)
    val_frames: torch.Tensor    # uint8 (M, 3, H, W)
    val_labels: torch.Tensor    # uint8 (M, 3, H, W)


# --- listing ------------------------------------------------------------------
def _check_root(root: Path) -> None:
    if not root.exists():
        raise DataError(f"{root}: data folder does not exist (expected train/, val/ and test/ in the Lab4 layout)")
    if not root.is_dir():
        raise DataError(f"{root}: is a file, but the data root must be a folder holding train/, val/ and test/")


def _require_dir(folder: Path, what: str) -> None:
    if not folder.exists():
        raise DataError(f"{folder}: folder missing (expected {what})")
    if not folder.is_dir():
        raise DataError(f"{folder}: is a file, but must be a folder of {what}")


def _png_entries(folder: Path) -> dict[str, os.stat_result]:
    """Name -> stat of each .png in folder (hidden files ignored)."""
    entries = {}
    with os.scandir(folder) as it:
        for entry in it:
            if entry.name.startswith(".") or not entry.name.lower().endswith(".png"):
                continue
            if not entry.is_file():
                continue
            entries[entry.name] = entry.stat()
    return entries


def _frame_number(folder: Path, name: str) -> int:
    match = _FRAME_NUMBER.search(name)
    if match is None:
        raise DataError(f"{folder / name}: name has no number to sort by (expected frame0.png, frame1.png, ... and sequence folders 0/, 1/, ...)")
    return int(match.group(1))


def sorted_frame_names(folder: Path, names: Sequence[str]) -> list[str]:
    """Sort by the number in the name (frame2 before frame10); name breaks ties."""
    return sorted(names, key=lambda n: (_frame_number(folder, n), n))


def _paired_names(img_dir: Path, label_dir: Path) -> tuple[list[str], dict[str, os.stat_result], dict[str, os.stat_result]]:
    images, labels = _png_entries(img_dir), _png_entries(label_dir)
    if not images and not labels:
        raise DataError(f"{img_dir}: no .png frames (expected frame0.png, frame1.png, ... with labels of the same names in {label_dir})")
    _check_pairs(img_dir, label_dir, images.keys(), labels.keys())
    extra = sorted(set(labels) - set(images))
    if extra:  # harmless: the model reads a label only with its image
        warn_data(f"{label_dir}: {len(extra)} label(s) without an image ignored (first: {extra[0]})")
        labels = {name: st for name, st in labels.items() if name in images}
    return sorted_frame_names(img_dir, list(images)), images, labels


def _check_pairs(img_dir: Path, label_dir: Path, images: Sequence[str] | set, labels: Sequence[str] | set) -> None:
    """An image without its label is refused: the model needs both (extra labels are _paired_names' to warn of)."""
    no_label = sorted(set(images) - set(labels))
    if no_label:
        raise DataError(f"{img_dir / no_label[0]}: image has no label (expected {label_dir / no_label[0]}; "
                        f"{len(no_label)} image(s) without a label)")


# --- decoding -----------------------------------------------------------------
def _decode_into(out: np.ndarray, index: int, path: Path, frame_h: int, frame_w: int,
                 sizes: list[tuple[int, int] | None]) -> None:
    img = open_rgb(path)
    sizes[index] = img.size
    if img.size != (frame_w, frame_h):
        img = img.resize((frame_w, frame_h), Image.BILINEAR)
    out[index] = np.asarray(img).transpose(2, 0, 1)  # (H, W, 3) -> (3, H, W)


def decode_images(paths: Sequence[Path], frame_h: int, frame_w: int, progress: Progress | None = None,
                  folder: Path | None = None) -> torch.Tensor:
    """Decode and resize PNGs in parallel threads -> uint8 (N, 3, H, W).

    All source images must have one size: mixed sizes mean frames from different
    sources, which a resize would silently distort.
    """
    # Written channels-first in place: no second full-size copy for a permute.
    out = np.empty((len(paths), 3, frame_h, frame_w), dtype=np.uint8)  # (N, 3, H, W)
    sizes: list[tuple[int, int] | None] = [None] * len(paths)

    def work(chunk: range) -> None:
        for i in chunk:
            _decode_into(out, i, paths[i], frame_h, frame_w, sizes)
            if progress is not None:
                progress.add()

    # Chunks amortise the executor overhead; PIL releases the GIL while decoding.
    step = max(1, min(256, len(paths) // (4 * decode_workers()) or 1))
    chunks = [range(s, min(s + step, len(paths))) for s in range(0, len(paths), step)]
    with ThreadPoolExecutor(max_workers=decode_workers()) as pool:
        for future in [pool.submit(work, c) for c in chunks]:
            future.result()  # re-raises the first DataError
    _check_same_size(paths, sizes, folder)
    return torch.from_numpy(out)  # (N, 3, H, W)


def _check_same_size(paths: Sequence[Path], sizes: Sequence[tuple[int, int] | None], folder: Path | None) -> None:
    if not sizes:
        return
    first = sizes[0]
    for path, size in zip(paths, sizes):
        if size != first:
            where = folder if folder is not None else path.parent
            raise DataError(f"{where}: images of mixed sizes: {paths[0].name} is {first[0]}x{first[1]} (WxH) "
                            f"but {path.name} is {size[0]}x{size[1]}; every frame of a split must have one size")


# --- cache ----------------------------------------------------------------------
def _cache_key(split: str, frame_h: int, frame_w: int, names: Sequence[str],
               images: dict[str, os.stat_result], labels: dict[str, os.stat_result]) -> str:
    digest = hashlib.sha256(f"v{_CACHE_VERSION} {split} {frame_h}x{frame_w}\n".encode())
    for name in names:
        a, b = images[name], labels[name]
        digest.update(f"{name} {a.st_size} {a.st_mtime_ns} {b.st_size} {b.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def cache_path(root: str | Path, split: str, frame_h: int, frame_w: int) -> Path:
    return Path(root) / ".cache" / f"{split}_{frame_h}x{frame_w}.pt"


def _read_cache(path: Path, key: str) -> tuple[torch.Tensor, torch.Tensor] | None:
    if not path.is_file():
        return None
    try:
        saved = torch.load(path, weights_only=True)
    except Exception:  # a corrupt or foreign cache file is just a cache miss
        return None
    if not isinstance(saved, dict) or saved.get("key") != key:
        return None
    return saved["frames"], saved["labels"]


def _write_cache(path: Path, key: str, frames: torch.Tensor, labels: torch.Tensor) -> None:
    """Atomic write (temp file + rename): concurrent loaders never see half a file.
    A read-only data folder just goes without a cache."""
    try:
        path.parent.mkdir(exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=path.name, suffix=".tmp", dir=path.parent)
    except OSError:
        return
    try:
        os.chmod(tmp, 0o644)  # mkstemp makes it private; the data folder is shared
        with os.fdopen(fd, "wb") as f:
            torch.save({"key": key, "frames": frames, "labels": labels}, f)
        os.replace(tmp, path)
    except OSError:
        try:
            os.unlink(tmp)
        except OSError:
            pass


# --- public API -------------------------------------------------------------------
def _check_size_args(frame_h: int, frame_w: int) -> None:
    for name, value in (("frame_H", frame_h), ("frame_W", frame_w)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise DataError(f"{name} is {value!r}, but must be a positive integer")


def load_split(root: str | Path, split: str, frame_H: int, frame_W: int, *,
               progress: bool = False, cache: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Decode ROOT/<split>/<split>_img and _label -> (frames, labels), uint8 (N, 3, H, W), sorted by frame number."""
    if split not in SPLITS:
        raise DataError(f"split is {split!r}, but must be one of {list(SPLITS)}")
    _check_size_args(frame_H, frame_W)
    root = Path(root)
    _check_root(root)
    split_dir = root / split
    _require_dir(split_dir, f"{split}_img/ and {split}_label/ of the Lab4 layout")
    img_dir, label_dir = split_dir / f"{split}_img", split_dir / f"{split}_label"
    _require_dir(img_dir, "frame0.png, frame1.png, ... (RGB frames)")
    _require_dir(label_dir, "frame0.png, frame1.png, ... (pose labels, same names as the frames)")
    names, images, labels = _paired_names(img_dir, label_dir)

    key = _cache_key(split, frame_H, frame_W, names, images, labels)
    where = cache_path(root, split, frame_H, frame_W)
    if cache:
        hit = _read_cache(where, key)
        if hit is not None:
            return hit
    bar = Progress(f"decoding {split} ({len(names)} frames)", 2 * len(names),
                    progress and len(names) > PROGRESS_MIN_FRAMES)
    frames = decode_images([img_dir / n for n in names], frame_H, frame_W, bar, img_dir)
    label_t = decode_images([label_dir / n for n in names], frame_H, frame_W, bar, label_dir)
    if cache:
        _write_cache(where, key, frames, label_t)
    return frames, label_t


def load_lab_data(root: str | Path, frame_H: int, frame_W: int, progress: bool = True,
                  cache: bool = True) -> LabData:
    """Decode train and val once (from the cache when the files are unchanged)."""
    train = load_split(root, "train", frame_H, frame_W, progress=progress, cache=cache)
    val = load_split(root, "val", frame_H, frame_W, progress=progress, cache=cache)
    return LabData(train_frames=train[0], train_labels=train[1], val_frames=val[0], val_labels=val[1])


def train_sequences(frames: torch.Tensor, labels: torch.Tensor, vi_len: int, partial: float = 1.0
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """Consecutive non-overlapping chunks of vi_len frames -> views (S, T, 3, H, W).

    The incomplete tail is dropped. As in the template (len = int(N * partial)
    // video_len), `partial` keeps the first fraction of the sequences, at least one.
    """
    if frames.shape != labels.shape or frames.dim() != 4:
        raise DataError(f"frames {tuple(frames.shape)} and labels {tuple(labels.shape)} must both be (N, 3, H, W) of one shape")
    if isinstance(vi_len, bool) or not isinstance(vi_len, int) or vi_len < 1:
        raise DataError(f"train_vi_len is {vi_len!r}, but must be a positive integer")
    if not 0 < partial <= 1:
        raise DataError(f"partial is {partial!r}, but must be in (0, 1]")
    n = frames.shape[0]
    if n < vi_len:
        raise DataError(f"the train split has {n} frames, fewer than train_vi_len={vi_len}: not one full sequence")
    count = max(1, int(n * partial) // vi_len)
    used = count * vi_len
    shape = (count, vi_len) + tuple(frames.shape[1:])
    return frames[:used].view(shape), labels[:used].view(shape)  # (S, T, 3, H, W)


def load_test_sequences(root: str | Path, frame_H: int, frame_W: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """ROOT/test -> [(first frame uint8 (3, H, W), labels uint8 (T, 3, H, W))], sorted by sequence number."""
    _check_size_args(frame_H, frame_W)
    root = Path(root)
    _check_root(root)
    img_root, label_root = root / "test" / "test_img", root / "test" / "test_label"
    _require_dir(img_root, "one folder per test sequence (0/, 1/, ...) holding frame0.png")
    _require_dir(label_root, "one folder per test sequence (0/, 1/, ...) holding frame0.png ... frameK.png")
    img_seqs = {e.name for e in os.scandir(img_root) if e.is_dir() and not e.name.startswith(".")}
    label_seqs = {e.name for e in os.scandir(label_root) if e.is_dir() and not e.name.startswith(".")}
    if not img_seqs and not label_seqs:
        raise DataError(f"{img_root}: no test sequence folders (expected 0/, 1/, ... each holding frame0.png)")
    _check_pair_folders(img_root, label_root, img_seqs, label_seqs)
    sequences = []
    for seq in sorted(img_seqs, key=lambda s: (_frame_number(img_root, s), s)):
        img_dir, label_dir = img_root / seq, label_root / seq
        label_names = sorted_frame_names(label_dir, list(_png_entries(label_dir)))
        if not label_names:
            raise DataError(f"{label_dir}: no .png labels (expected frame0.png ... frameK.png)")
        first_name = label_names[0]
        first_path = img_dir / first_name
        if not first_path.is_file():
            raise DataError(f"{first_path}: first frame missing (test sequence {seq} needs the image of its first label)")
        first = decode_images([first_path], frame_H, frame_W, folder=img_dir)[0]  # (3, H, W)
        label_t = decode_images([label_dir / n for n in label_names], frame_H, frame_W, folder=label_dir)
        sequences.append((first, label_t))
    return sequences


def _check_pair_folders(img_root: Path, label_root: Path, img_seqs: set[str], label_seqs: set[str]) -> None:
    if img_seqs - label_seqs:
        seq = sorted(img_seqs - label_seqs)[0]
        raise DataError(f"{img_root / seq}: test sequence has no labels (expected {label_root / seq}/frame0.png ...)")
    if label_seqs - img_seqs:
        seq = sorted(label_seqs - img_seqs)[0]
        raise DataError(f"{label_root / seq}: test labels have no first frame (expected {img_root / seq}/frame0.png)")
