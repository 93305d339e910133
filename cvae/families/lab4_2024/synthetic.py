"""Synthetic Lab4-style dance data: procedurally animated dancers and their poses.

Writes a dataset in exactly the Lab4 on-disk layout (data.py's docstring), so the
loader, the trainer and the search run unchanged on it:

    ROOT/train/train_img/frameN.png   + ROOT/train/train_label/frameN.png
    ROOT/val/val_img/frameN.png       + ROOT/val/val_label/frameN.png      (one video)
    ROOT/test/test_img/{i}/frame0.png + ROOT/test/test_label/{i}/frame0..K.png

Each video is one dancer: an articulated figure (skin-coloured head, torso,
arms and legs as thick limbs in clothing colours) over a studio background
(wall and floor gradients). Joint angles are smooth periodic functions of time
with per-dancer random frequencies, phases and amplitudes. The label is the
OpenPose-style skeleton of the same pose (a coloured line per limb, coloured
joint dots) on white. The task is learnable in the way Lab4's is: given the
dancer's appearance (the previous frame), the pose fixes the figure's pixels.

Everything is deterministic from the seed: each video draws from its own
generator seeded by (seed, kind, index), so the parallel generation of the lab
preset writes the same bytes as a serial one.

    python -m cvae.synthetic --out data/synthetic-small --preset small --seed 0
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
from PIL import Image

from cvae.core.staging import SyntheticError, check_seed, staged_output

# Stored images are twice the model's lab frame size (32 x 64) so that the
# loader's resize is exercised, as it is on the real (larger) Lab4 images.
IMAGE_H, IMAGE_W = 64, 128
PNG_COMPRESS_LEVEL = 1  # fast: these files are written once and read once

# Kinds of video; the number seeds each video's generator (_LOOK: a recurring look's).
_TRAIN, _VAL, _TEST, _LOOK = 0, 1, 2, 3
# Dancer fields that make up a look (body, clothes, studio); the rest is the dance.
_LOOK_FIELDS = ("height", "skin", "hair", "shirt", "sleeve", "pants", "shoes",
                "wall_top", "wall_bottom", "floor_near", "floor_far", "horizon")


@dataclass(frozen=True)
class Preset:
    train_video_lengths: tuple[int, ...]  # train videos, concatenated in this order
    val_length: int
    test_sequences: int
    test_length: int
    # 0: every video has its own dancer and studio. n > 0: n recurring looks
    # (dancer's body, clothes, studio), video i of each split wearing look
    # i % n, with its own dance (moves, position, sway) per video. Real dance
    # datasets film the same few dancers again and again, so the val dancer
    # is one the training videos show, dancing new moves.
    looks: int = 0

    @property
    def train_frames(self) -> int:
        return sum(self.train_video_lengths)

    def image_count(self) -> int:
        """PNG files written: train and val image+label, test 1 image + labels."""
        return 2 * (self.train_frames + self.val_length) + self.test_sequences * (1 + self.test_length)


def _split_evenly(total: int, parts: int) -> tuple[int, ...]:
    base, extra = divmod(total, parts)
    return tuple(base + (1 if i < extra else 0) for i in range(parts))


PRESETS: dict[str, Preset] = {
    # CPU demo: a few hundred frames, generated in about a second.
    # One recurring look (dancer and studio), a new dance in every video. With
    # six unrelated studios in 384 frames, a CPU-sized model spends the demo's
    # budget learning to copy the background through its autoregressive loop
    # and ends below the repeat-frame-0 baseline (~18-21 dB against 25 dB, also
    # with two looks); with one it learns the dancer's moves from the pose.
    "small": Preset(train_video_lengths=(64,) * 6, val_length=64, test_sequences=2, test_length=64, looks=1),
    # The real Lab4 2024 counts: 23410 train frames (here 37 videos of ~633
    # frames), one val video of 630 frames, 5 test sequences of 630 labels.
    "lab": Preset(train_video_lengths=_split_evenly(23410, 37), val_length=630, test_sequences=5, test_length=630),
}

# --- the skeleton (OpenPose COCO-18 order) ---------------------------------
# 0 nose, 1 neck, 2 r_shoulder, 3 r_elbow, 4 r_wrist, 5 l_shoulder, 6 l_elbow,
# 7 l_wrist, 8 r_hip, 9 r_knee, 10 r_ankle, 11 l_hip, 12 l_knee, 13 l_ankle,
# 14 r_eye, 15 l_eye, 16 r_ear, 17 l_ear. The figure faces the camera, so the
# dancer's right side is on the image's left.
NUM_JOINTS = 18
# OpenPose's limb sequence (0-based) and its palette, as drawn by its demo.
LIMBS: tuple[tuple[int, int], ...] = (
    (1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10),
    (1, 11), (11, 12), (12, 13), (1, 0), (0, 14), (14, 16), (0, 15), (15, 17),
)
OPENPOSE_COLORS = np.array([
    [255, 0, 0], [255, 85, 0], [255, 170, 0], [255, 255, 0], [170, 255, 0],
    [85, 255, 0], [0, 255, 0], [0, 255, 85], [0, 255, 170], [0, 255, 255],
    [0, 170, 255], [0, 85, 255], [0, 0, 255], [85, 0, 255], [170, 0, 255],
    [255, 0, 255], [255, 0, 85], [255, 0, 0],
], dtype=np.float32)

# Joint angles driven over time, each base + two sinusoids. Angles are radians
# from "straight down" (limbs) or "upright" (torso, head); positive = towards
# the image's right.
_ANGLES = ("lean", "head", "r_arm", "r_elbow", "l_arm", "l_elbow",
           "r_thigh", "r_knee", "l_thigh", "l_knee")


@dataclass(frozen=True)
class Dancer:
    """Appearance and motion parameters of one video's dancer (all in pixels)."""
    height: float           # head top to ankle, pixels
    center_x: float         # mean pelvis x
    sway_amp: float         # pelvis left-right sway (pixels)
    sway_freq: float        # cycles per frame
    sway_phase: float
    bob_amp: float          # pelvis up-down bob (pixels)
    bob_freq: float
    bob_phase: float
    angle_base: np.ndarray  # (A,)
    angle_amp: np.ndarray   # (A, 2)
    angle_freq: np.ndarray  # (A, 2) cycles per frame
    angle_phase: np.ndarray  # (A, 2)
    skin: np.ndarray        # (3,) float colours 0..255
    hair: np.ndarray
    shirt: np.ndarray
    sleeve: np.ndarray      # forearms: shirt colour or skin (short sleeves)
    pants: np.ndarray
    shoes: np.ndarray
    wall_top: np.ndarray
    wall_bottom: np.ndarray
    floor_near: np.ndarray
    floor_far: np.ndarray
    horizon: float          # y of the wall/floor boundary


def _colour(rng: np.random.Generator, low: float, high: float) -> np.ndarray:
    return rng.uniform(low, high, size=3).astype(np.float32)


def random_dancer(rng: np.random.Generator, image_h: int = IMAGE_H, image_w: int = IMAGE_W) -> Dancer:
    """Draw one dancer's look and moves. Frequencies give periods of 25-120 frames."""
    a = len(_ANGLES)
    # Amplitudes per angle (radians): arms move most, torso and head least.
    amp_scale = np.array([0.12, 0.15, 0.9, 0.7, 0.9, 0.7, 0.35, 0.45, 0.35, 0.45], dtype=np.float32)
    base = np.array([0.0, 0.0, -0.5, -0.3, 0.5, 0.3, -0.12, 0.1, 0.12, -0.1], dtype=np.float32)
    base = base + rng.normal(0.0, 0.15, size=a).astype(np.float32)
    skin_tone = rng.uniform(0.35, 1.0)
    skin = np.array([235, 190, 160], dtype=np.float32) * skin_tone + rng.uniform(-10, 10, 3).astype(np.float32)
    shirt = _colour(rng, 20, 240)
    short_sleeves = rng.random() < 0.5
    wall = _colour(rng, 110, 230)
    floor = _colour(rng, 60, 180)
    return Dancer(
        height=rng.uniform(0.72, 0.88) * image_h,
        center_x=rng.uniform(0.35, 0.65) * image_w,
        sway_amp=rng.uniform(0.02, 0.12) * image_w,
        sway_freq=rng.uniform(1 / 160, 1 / 60),
        sway_phase=rng.uniform(0, 2 * math.pi),
        bob_amp=rng.uniform(0.0, 0.04) * image_h,
        bob_freq=rng.uniform(1 / 40, 1 / 20),
        bob_phase=rng.uniform(0, 2 * math.pi),
        angle_base=base,
        angle_amp=(amp_scale[:, None] * rng.uniform(0.3, 1.0, size=(a, 2))).astype(np.float32),
        angle_freq=rng.uniform(1 / 120, 1 / 25, size=(a, 2)).astype(np.float32),
        angle_phase=rng.uniform(0, 2 * math.pi, size=(a, 2)).astype(np.float32),
        skin=np.clip(skin, 0, 255),
        hair=_colour(rng, 10, 90),
        shirt=shirt,
        sleeve=skin if short_sleeves else shirt,
        pants=_colour(rng, 15, 200),
        shoes=_colour(rng, 0, 60),
        wall_top=wall,
        wall_bottom=np.clip(wall * rng.uniform(0.7, 0.95), 0, 255),
        floor_near=floor,
        floor_far=np.clip(floor * rng.uniform(0.6, 0.9), 0, 255),
        horizon=rng.uniform(0.55, 0.7) * image_h,
    )


def _with_look(dancer: Dancer, look: Dancer) -> Dancer:
    """`dancer`'s moves performed with `look`'s body, clothes and studio."""
    return dataclasses.replace(dancer, **{name: getattr(look, name) for name in _LOOK_FIELDS})


def _unit(angle: float) -> np.ndarray:
    """Direction of a limb hanging down and rotated by `angle` (image y points down)."""
    return np.array([math.sin(angle), math.cos(angle)], dtype=np.float32)


def pose_at(dancer: Dancer, t: float, image_h: int = IMAGE_H) -> np.ndarray:
    """Keypoints (18, 2) as (x, y) pixels of the dancer at frame t."""
    d = dancer
    phase = 2 * math.pi * d.angle_freq * t + d.angle_phase  # (A, 2)
    ang = dict(zip(_ANGLES, (d.angle_base + (d.angle_amp * np.sin(phase)).sum(axis=1)).tolist()))
    h = d.height
    torso, head_off, shoulder_w, hip_w = 0.30 * h, 0.13 * h, 0.11 * h, 0.07 * h
    upper_arm, forearm, thigh, shin = 0.16 * h, 0.15 * h, 0.22 * h, 0.21 * h

    pelvis = np.array([
        d.center_x + d.sway_amp * math.sin(2 * math.pi * d.sway_freq * t + d.sway_phase),
        image_h * 0.94 - (thigh + shin) * 0.97 + d.bob_amp * math.sin(2 * math.pi * d.bob_freq * t + d.bob_phase),
    ], dtype=np.float32)
    up = -_unit(ang["lean"])                  # torso direction, pointing up
    across = np.array([-up[1], up[0]])        # towards the image's right... for up=(0,-1): (1, 0)
    neck = pelvis + torso * up
    head_dir = -_unit(ang["lean"] + ang["head"])
    nose = neck + head_off * head_dir
    k = np.zeros((NUM_JOINTS, 2), dtype=np.float32)
    k[0], k[1] = nose, neck
    k[2], k[5] = neck - shoulder_w * across, neck + shoulder_w * across
    k[8], k[11] = pelvis - hip_w * across, pelvis + hip_w * across
    # Arms and legs: each segment's angle adds to its parent's.
    k[3] = k[2] + upper_arm * _unit(ang["r_arm"])
    k[4] = k[3] + forearm * _unit(ang["r_arm"] + ang["r_elbow"])
    k[6] = k[5] + upper_arm * _unit(ang["l_arm"])
    k[7] = k[6] + forearm * _unit(ang["l_arm"] + ang["l_elbow"])
    k[9] = k[8] + thigh * _unit(ang["r_thigh"])
    k[10] = k[9] + shin * _unit(ang["r_thigh"] + ang["r_knee"])
    k[12] = k[11] + thigh * _unit(ang["l_thigh"])
    k[13] = k[12] + shin * _unit(ang["l_thigh"] + ang["l_knee"])
    # Eyes and ears sit on the face, turned with the head.
    head_across = np.array([-head_dir[1], head_dir[0]])
    k[14] = nose - 0.035 * h * head_across + 0.02 * h * head_dir
    k[15] = nose + 0.035 * h * head_across + 0.02 * h * head_dir
    k[16] = nose - 0.07 * h * head_across
    k[17] = nose + 0.07 * h * head_across
    return k


# --- rasterisation (numpy, anti-aliased) -----------------------------------
def _paint_capsule(canvas: np.ndarray, p: np.ndarray, q: np.ndarray, radius: float,
                   colour: np.ndarray, alpha: float = 1.0) -> None:
    """Blend a thick segment p-q (a capsule; p == q gives a disc) into canvas (H, W, 3) float.

    Coverage is 1 inside, falling linearly over a one-pixel edge (anti-aliasing).
    Only the capsule's bounding box is computed: whole-image masks made the
    lab preset ~5x slower.
    """
    h, w = canvas.shape[:2]
    # Python floats: numpy scalar arithmetic here cost more than the pixels.
    px, py, qx, qy = float(p[0]), float(p[1]), float(q[0]), float(q[1])
    reach = radius + 1.0
    x0, x1 = max(int(math.floor(min(px, qx) - reach)), 0), min(int(math.ceil(max(px, qx) + reach)), w)
    y0, y1 = max(int(math.floor(min(py, qy) - reach)), 0), min(int(math.ceil(max(py, qy) + reach)), h)
    if x0 >= x1 or y0 >= y1:
        return  # entirely off-canvas
    xs = np.arange(x0, x1, dtype=np.float32)[None, :] + (0.5 - px)  # pixel centres relative to p (1, w')
    ys = np.arange(y0, y1, dtype=np.float32)[:, None] + (0.5 - py)  # (h', 1)
    dx, dy = qx - px, qy - py
    length2 = dx * dx + dy * dy
    if length2 < 1e-12:
        dist = np.sqrt(xs * xs + ys * ys)
    else:
        t = np.minimum(np.maximum((xs * dx + ys * dy) * (1.0 / length2), 0.0), 1.0)
        dist = np.sqrt((xs - t * dx) ** 2 + (ys - t * dy) ** 2)
    cover = np.minimum(np.maximum(radius + 0.5 - dist, 0.0), 1.0)[..., None] * alpha  # (h', w', 1)
    region = canvas[y0:y1, x0:x1]
    region += cover * (colour - region)


def draw_background(dancer: Dancer, h: int = IMAGE_H, w: int = IMAGE_W) -> np.ndarray:
    """Studio: a vertical wall gradient above the horizon, a floor gradient below. (H, W, 3) float."""
    y = (np.arange(h, dtype=np.float32) + 0.5)[:, None]
    wall_t = np.clip(y / dancer.horizon, 0, 1)
    floor_t = np.clip((y - dancer.horizon) / max(h - dancer.horizon, 1.0), 0, 1)
    wall = dancer.wall_top * (1 - wall_t) + dancer.wall_bottom * wall_t
    floor = dancer.floor_far * (1 - floor_t) + dancer.floor_near * floor_t
    column = np.where(y < dancer.horizon, wall, floor)  # (H, 3)
    return np.broadcast_to(column[:, None, :], (h, w, 3)).copy()


def draw_dancer(background: np.ndarray, dancer: Dancer, k: np.ndarray) -> np.ndarray:
    """The figure over the background, back to front in a fixed order. (H, W, 3) uint8."""
    canvas = background.copy()
    r = dancer.height / 64.0  # limb thickness unit (pixels per 64 px of body height)

    def limb(a: np.ndarray, b: np.ndarray, radius: float, colour: np.ndarray) -> None:
        _paint_capsule(canvas, a, b, radius * r, colour)

    # Legs, then torso, then arms, then head: a fixed back-to-front order, so the
    # pixels are a function of the pose and the dancer's look.
    for hip, knee, ankle in ((8, 9, 10), (11, 12, 13)):
        limb(k[hip], k[knee], 2.6, dancer.pants)
        limb(k[knee], k[ankle], 2.2, dancer.pants)
        limb(k[ankle], k[ankle], 1.8, dancer.shoes)
    limb(k[8], k[11], 3.0, dancer.pants)
    limb((k[8] + k[11]) / 2, k[1], 4.5, dancer.shirt)
    limb(k[2], k[5], 2.4, dancer.shirt)
    for shoulder, elbow, wrist in ((2, 3, 4), (5, 6, 7)):
        limb(k[shoulder], k[elbow], 2.0, dancer.shirt)
        limb(k[elbow], k[wrist], 1.7, dancer.sleeve)
        limb(k[wrist], k[wrist], 1.5, dancer.skin)
    # Neck, then the head: hair as a slightly larger disc shifted up behind the face.
    limb(k[1], k[0], 1.4, dancer.skin)
    head_up = k[0] + (k[0] - k[1]) * 0.25
    limb(head_up, head_up, 4.4, dancer.hair)
    limb(k[0], k[0], 3.9, dancer.skin)
    return np.clip(np.rint(canvas), 0, 255).astype(np.uint8)


def draw_skeleton(k: np.ndarray, h: int = IMAGE_H, w: int = IMAGE_W, scale: float = 1.0) -> np.ndarray:
    """OpenPose-style label: joint dots, then limbs blended at 0.6 opacity, on white. (H, W, 3) uint8."""
    canvas = np.full((h, w, 3), 255.0, dtype=np.float32)
    for j in range(NUM_JOINTS):
        _paint_capsule(canvas, k[j], k[j], 1.6 * scale, OPENPOSE_COLORS[j])
    for i, (a, b) in enumerate(LIMBS):
        _paint_capsule(canvas, k[a], k[b], 1.0 * scale, OPENPOSE_COLORS[i], alpha=0.6)
    return np.clip(np.rint(canvas), 0, 255).astype(np.uint8)


def render_video(dancer: Dancer, length: int, image_h: int = IMAGE_H, image_w: int = IMAGE_W
                 ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield (frame, label) uint8 (H, W, 3) pairs for frames 0..length-1."""
    background = draw_background(dancer, image_h, image_w)
    scale = dancer.height / 48.0  # skeleton line width follows the figure's size
    for t in range(length):
        k = pose_at(dancer, float(t), image_h)
        yield draw_dancer(background, dancer, k), draw_skeleton(k, image_h, image_w, scale)


# --- writing the dataset ----------------------------------------------------
@dataclass(frozen=True)
class _Job:
    """One video to write. Frames t of the video go to frame{first_index + t}.png."""
    kind: int
    index: int
    length: int
    img_dir: str
    label_dir: str
    first_index: int
    images: int  # how many frames of the video get an image (test: only frame 0)
    look: int = -1  # recurring look index (Preset.looks), -1: the video's own look


def _save_png(array: np.ndarray, path: str) -> None:
    Image.fromarray(array).save(path, compress_level=PNG_COMPRESS_LEVEL)


def _write_video(job: _Job, seed: int) -> int:
    rng = np.random.default_rng([seed, job.kind, job.index])
    dancer = random_dancer(rng)
    if job.look >= 0:
        dancer = _with_look(dancer, random_dancer(np.random.default_rng([seed, _LOOK, job.look])))
    written = 0
    for t, (frame, label) in enumerate(render_video(dancer, job.length)):
        name = f"frame{job.first_index + t}.png"
        if t < job.images:
            _save_png(frame, os.path.join(job.img_dir, name))
            written += 1
        _save_png(label, os.path.join(job.label_dir, name))
        written += 1
    return written


def _look(preset: Preset, index: int) -> int:
    return index % preset.looks if preset.looks > 0 else -1


def _jobs(root: Path, preset: Preset) -> list[_Job]:
    train_img, train_label = root / "train" / "train_img", root / "train" / "train_label"
    val_img, val_label = root / "val" / "val_img", root / "val" / "val_label"
    jobs = []
    first = 0
    for i, length in enumerate(preset.train_video_lengths):
        jobs.append(_Job(_TRAIN, i, length, str(train_img), str(train_label), first, length, _look(preset, i)))
        first += length
    jobs.append(_Job(_VAL, 0, preset.val_length, str(val_img), str(val_label), 0, preset.val_length, _look(preset, 0)))
    for i in range(preset.test_sequences):
        img = root / "test" / "test_img" / str(i)
        label = root / "test" / "test_label" / str(i)
        jobs.append(_Job(_TEST, i, preset.test_length, str(img), str(label), 0, 1, _look(preset, i)))
    for job in jobs:
        Path(job.img_dir).mkdir(parents=True, exist_ok=True)
        Path(job.label_dir).mkdir(parents=True, exist_ok=True)
    return jobs


class _Progress:
    """A single updating line on stderr: 'synthetic lab: 12000/51230 images (23%)'."""

    def __init__(self, label: str, total: int, enabled: bool) -> None:
        self.label, self.total, self.enabled, self.done = label, total, enabled, 0
        self.start = time.perf_counter()

    def add(self, n: int) -> None:
        self.done += n
        if self.enabled:
            pct = 100 * self.done // max(self.total, 1)
            end = "\n" if self.done >= self.total else ""
            print(f"\r{self.label}: {self.done}/{self.total} images ({pct}%) "
                  f"{time.perf_counter() - self.start:.1f}s", end=end, file=sys.stderr, flush=True)


def _run_jobs(jobs: Sequence[_Job], seed: int, workers: int, progress: _Progress) -> None:
    if workers <= 1:
        for job in jobs:
            progress.add(_write_video(job, seed))
        return
    # Longest videos first keeps both workers busy to the end.
    order = sorted(jobs, key=lambda j: -j.length)
    with ProcessPoolExecutor(max_workers=workers) as pool:
        for written in pool.map(_write_video, order, [seed] * len(order)):
            progress.add(written)


def _default_workers(preset: Preset) -> int:
    # Process start-up costs more than the small preset takes; the lab one is
    # worth spreading over the cores.
    if preset.image_count() < 5000:
        return 1
    return max(1, min(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1, 8))


def generate(out_dir: str | Path, preset: str | Preset = "small", seed: int = 0, progress: bool = True,
             workers: int | None = None, overwrite: bool = False) -> Path:
    """Write a synthetic dataset to `out_dir` and return its path.

    `preset` is a name in PRESETS or a `Preset` (tests use tiny ones).

    The data is written to a temporary sibling folder and renamed into place at
    the end, so an interrupted run never leaves a half-written dataset that
    would later be taken for a complete one.
    """
    if isinstance(preset, Preset):
        spec, preset_name = preset, "custom"
    elif preset in PRESETS:
        spec, preset_name = PRESETS[preset], preset
    else:
        raise SyntheticError(f"preset is {preset!r}, but must be one of {sorted(PRESETS)}")
    check_seed(seed)
    with staged_output(out_dir, overwrite) as tmp:
        jobs = _jobs(tmp, spec)
        bar = _Progress(f"synthetic {preset_name}", spec.image_count(), progress)
        _run_jobs(jobs, seed, workers if workers is not None else _default_workers(spec), bar)
        meta = {"generator": "cvae.synthetic", "preset": preset_name, "seed": seed,
                "image_size": [IMAGE_H, IMAGE_W], "train_frames": spec.train_frames,
                "train_video_lengths": list(spec.train_video_lengths), "val_frames": spec.val_length,
                "test_sequences": spec.test_sequences, "test_length": spec.test_length,
                "looks": spec.looks}
        (tmp / "synthetic.json").write_text(json.dumps(meta, indent=2) + "\n")
    return Path(out_dir)


def main(argv: Sequence[str] | None = None) -> int:
    """The lab4-2024 family's `python -m cvae.synthetic` (cvae.core.cli picks the family by --preset)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="python -m cvae.synthetic", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="output folder (created; must not exist or be empty)")
    parser.add_argument("--preset", default="small", choices=sorted(PRESETS),
                        help="small: CPU demo (384 train frames); lab: the real Lab4 counts "
                             "(bair-small / bair-lab: the 2023 family's BAIR robot pushing data)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=None, help="processes (default: 1 for small, all cores for lab)")
    parser.add_argument("--overwrite", action="store_true", help="replace a non-empty --out folder")
    parser.add_argument("--quiet", action="store_true", help="no progress line")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    try:
        path = generate(args.out, args.preset, args.seed, progress=not args.quiet,
                        workers=args.workers, overwrite=args.overwrite)
    except SyntheticError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {path} ({args.preset}, seed {args.seed}) in {time.perf_counter() - start:.1f}s")
    return 0
