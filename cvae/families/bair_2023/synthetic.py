"""Synthetic BAIR robot-pushing data, written in the processed BAIR layout (cvae.families.bair_2023.data).

Each sequence is 30 frames of 64 x 64: a textured table seen from above, 2-3
coloured objects on it and a robot arm (a grey link from the top edge to a
round end-effector whose size grows with its height z). The end-effector moves
smoothly towards random waypoints (often an object); when it is low (z < 0.5)
and touches an object it pushes the object along. Per frame t:

    endeffector_positions.csv  row t = (x_t, y_t, z_t): the end-effector in table coordinates
                               (x, y in [-1, 1], z in [0, 1]) when frame t was taken
    actions.csv                row t = (dx, dy, dz, gripper): the move from frame t to t+1
                               (x_{t+1} - x_t, ...) and the gripper command (+1 open, -1 closed:
                               a closed gripper draws the end-effector's centre dark)

so the condition carries real information: the position fixes where the arm
is drawn in frame t and the action says where it goes next; only the objects'
motion and the occluded table must be inferred.

Deterministic from the seed: sequence i of split s draws from its own generator
seeded by (seed, s, i), so a parallel run writes the same bytes as a serial one.

    python -m cvae.synthetic --preset bair-small [--out data/bair-small] [--seed 0]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from cvae.core.staging import SyntheticError, check_seed, staged_output
from cvae.families.bair_2023.config import FRAME_SIZE, SEQUENCE_FRAMES

PNG_COMPRESS_LEVEL = 1
EE_RADIUS = 4.5  # px at z = 0; + 3 px at z = 1
_SPLIT_IDS = {"train": 0, "validate": 1, "test": 2}


@dataclass(frozen=True)
class BairPreset:
    train_sequences: int
    validate_sequences: int
    test_sequences: int
    per_folder: int = 256   # sequences per trajectory folder (the real data: 256)

    def image_count(self) -> int:
        return SEQUENCE_FRAMES * (self.train_sequences + self.validate_sequences + self.test_sequences)


# bair-lab keeps the real split proportions (train 43,008 : validate 256 : test 256 = 168 : 1 : 1)
# at 1/8 of the size; bair-small is the CPU demo.
PRESETS: dict[str, BairPreset] = {
    "bair-small": BairPreset(train_sequences=256, validate_sequences=32, test_sequences=32, per_folder=128),
    "bair-lab": BairPreset(train_sequences=5376, validate_sequences=32, test_sequences=32, per_folder=256),
}


# --- drawing -----------------------------------------------------------------------------
_YY, _XX = np.mgrid[0:FRAME_SIZE, 0:FRAME_SIZE].astype(np.float32) + 0.5


def to_pixels(xy: np.ndarray) -> np.ndarray:
    """Table coordinates in [-1, 1] -> pixel coordinates (col, row) in [4, 60]."""
    return (np.asarray(xy, dtype=np.float32) + 1.0) * 28.0 + 4.0


def _coverage(dist: np.ndarray, radius: float) -> np.ndarray:
    """Antialiased coverage of a shape given the distance of each pixel centre to its core."""
    return np.clip(radius - dist + 0.5, 0.0, 1.0)[..., None]


def _blend(canvas: np.ndarray, alpha: np.ndarray, colour: np.ndarray) -> None:
    canvas *= 1.0 - alpha
    canvas += alpha * colour


def _segment_distance(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    d = q - p
    t = np.clip(((_XX - p[0]) * d[0] + (_YY - p[1]) * d[1]) / max(float(d @ d), 1e-6), 0.0, 1.0)
    return np.hypot(_XX - (p[0] + t * d[0]), _YY - (p[1] + t * d[1]))


def draw_table(rng: np.random.Generator) -> np.ndarray:
    """A wood-or-cloth table: a base colour, a few low-frequency waves and fine grain. float (64, 64, 3)."""
    base = rng.uniform(0.35, 0.75, size=3).astype(np.float32)
    field = np.zeros((FRAME_SIZE, FRAME_SIZE), np.float32)
    for _ in range(3):
        fx, fy = rng.uniform(-0.25, 0.25, size=2)
        field += rng.uniform(0.02, 0.06) * np.sin(fx * _XX + fy * _YY + rng.uniform(0, 2 * np.pi))
    grain = rng.normal(0.0, 0.02, size=(FRAME_SIZE, FRAME_SIZE)).astype(np.float32)
    return np.clip(base + (field + grain)[..., None], 0.0, 1.0)


@dataclass
class Scene:
    table: np.ndarray          # float (64, 64, 3)
    objects: np.ndarray        # (K, 2) table coordinates
    radii: np.ndarray          # (K,) table units
    colours: np.ndarray        # (K, 3)
    arm_colour: np.ndarray     # (3,)


def render(scene: Scene, position: np.ndarray, gripper: float) -> np.ndarray:
    """One frame: table, objects, arm link, end-effector. uint8 (64, 64, 3)."""
    canvas = scene.table.copy()
    for centre, radius, colour in zip(scene.objects, scene.radii, scene.colours):
        c = to_pixels(centre)
        dist = np.hypot(_XX - c[0], _YY - c[1])
        r_px = radius * 28.0
        _blend(canvas, _coverage(dist + 1.2, r_px + 1.0), np.zeros(3, np.float32) + 0.15)  # soft shadow ring
        shade = colour * (1.0 - 0.25 * np.clip(dist / max(r_px, 1e-3), 0, 1))[..., None]
        alpha = _coverage(dist, r_px)
        canvas *= 1.0 - alpha
        canvas += alpha * shade
    ee = to_pixels(position[:2])
    z = float(position[2])
    base = np.array([FRAME_SIZE / 2, -6.0], np.float32)
    _blend(canvas, _coverage(_segment_distance(base, ee), 2.5 + 1.5 * z), scene.arm_colour * 0.8)
    ee_r = EE_RADIUS + 3.0 * z
    dist = np.hypot(_XX - ee[0], _YY - ee[1])
    _blend(canvas, _coverage(dist, ee_r), scene.arm_colour)
    centre = np.array([0.1, 0.1, 0.1] if gripper < 0 else [0.95, 0.95, 0.95], np.float32)
    _blend(canvas, _coverage(dist, ee_r * 0.45), centre)
    return (np.clip(canvas, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def sequence(rng: np.random.Generator, frames: int = SEQUENCE_FRAMES
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draw and simulate one sequence: (images uint8 (T, 64, 64, 3), actions (T, 4), positions (T, 3))."""
    k = int(rng.integers(2, 4))
    objects = rng.uniform(-0.7, 0.7, size=(k, 2)).astype(np.float32)
    radii = rng.uniform(0.14, 0.22, size=k).astype(np.float32)
    colours = np.array([[0.85, 0.15, 0.15], [0.15, 0.35, 0.85], [0.95, 0.8, 0.1], [0.15, 0.7, 0.25]],
                       np.float32)[rng.permutation(4)[:k]]
    scene = Scene(table=draw_table(rng), objects=objects, radii=radii, colours=colours,
                  arm_colour=rng.uniform(0.1, 0.25, size=1).astype(np.float32).repeat(3))
    pos = np.array([*rng.uniform(-0.8, 0.8, size=2), rng.uniform(0.0, 1.0)], np.float32)
    vel = np.zeros(3, np.float32)
    waypoint = pos.copy()
    gripper = float(rng.choice([-1.0, 1.0]))
    positions, grippers, images = [], [], []
    for t in range(frames):
        positions.append(pos.copy())
        grippers.append(gripper)
        images.append(render(scene, pos, gripper))
        # next waypoint: usually an object (so the arm pushes), sometimes anywhere; low z when aiming at one
        if np.linalg.norm(waypoint[:2] - pos[:2]) < 0.08 or rng.random() < 0.05:
            if rng.random() < 0.6:
                target = scene.objects[int(rng.integers(len(scene.objects)))]
                waypoint = np.array([*(target + rng.normal(0, 0.1, 2)), rng.uniform(0.0, 0.3)], np.float32)
            else:
                waypoint = np.array([*rng.uniform(-0.9, 0.9, 2), rng.uniform(0.0, 1.0)], np.float32)
            if rng.random() < 0.2:
                gripper = -gripper
        direction = waypoint - pos
        vel = 0.5 * vel + 0.5 * np.clip(direction, -0.3, 0.3)
        new = np.clip(pos + vel, [-0.95, -0.95, 0.0], [0.95, 0.95, 1.0]).astype(np.float32)
        # push: a low end-effector moves any object it overlaps out of its way
        if new[2] < 0.5:
            ee_r = (EE_RADIUS + 3.0 * new[2]) / 28.0
            for j in range(len(scene.objects)):
                d = scene.objects[j] - new[:2]
                dist = float(np.linalg.norm(d))
                reach = ee_r + float(scene.radii[j])
                if dist < reach:
                    away = d / dist if dist > 1e-6 else np.array([1.0, 0.0], np.float32)
                    scene.objects[j] = np.clip(new[:2] + away * reach, -0.95, 0.95)
        pos = new
    positions_a = np.stack(positions).astype(np.float32)          # (T, 3)
    moves = np.diff(positions_a, axis=0, append=positions_a[-1:])  # (T, 3): frame t -> t+1 (0 after the last)
    actions = np.concatenate([moves, np.asarray(grippers, np.float32)[:, None]], axis=1)
    return np.stack(images), actions, positions_a


def write_sequence(folder: Path, images: np.ndarray, actions: np.ndarray, positions: np.ndarray) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for t, image in enumerate(images):
        Image.fromarray(image).save(folder / f"{t}.png", compress_level=PNG_COMPRESS_LEVEL)
    np.savetxt(folder / "actions.csv", actions, delimiter=",", fmt="%.6f")
    np.savetxt(folder / "endeffector_positions.csv", positions, delimiter=",", fmt="%.6f")


CHUNK = 16  # sequences per job: progress moves and workers stay busy


def _jobs(root: Path, preset: BairPreset) -> list[tuple[str, int, int, Path, int]]:
    """(split, first global index, count, trajectory folder, first k in it) per chunk of sequences."""
    jobs = []
    for split in ("train", "validate", "test"):
        total = getattr(preset, f"{split}_sequences")
        # Offsets mimic the real names: test traj_0_to_255, validate traj_256_to_511, train after.
        offset = {"test": 0, "validate": preset.per_folder, "train": 2 * preset.per_folder}[split]
        for start in range(0, total, preset.per_folder):
            count = min(preset.per_folder, total - start)
            a = offset + start
            folder = root / split / f"traj_{a}_to_{a + count - 1}.tfrecords"
            for k in range(0, count, CHUNK):
                jobs.append((split, start + k, min(CHUNK, count - k), folder, k))
    return jobs


def generate(out_dir: str | Path, preset: str | BairPreset = "bair-small", seed: int = 0, progress: bool = True,
             workers: int | None = None, overwrite: bool = False) -> Path:
    """Write a synthetic BAIR dataset to `out_dir` (via a temporary sibling renamed at the end)."""
    if isinstance(preset, BairPreset):
        spec, name = preset, "custom"
    elif preset in PRESETS:
        spec, name = PRESETS[preset], preset
    else:
        raise SyntheticError(f"preset is {preset!r}, but must be one of {sorted(PRESETS)}")
    check_seed(seed, SyntheticError)
    with staged_output(out_dir, overwrite, SyntheticError) as tmp:
        total, done, start = spec.image_count(), 0, time.perf_counter()

        def tick(n: int) -> None:
            nonlocal done
            done += n
            if progress:
                end = "\n" if done >= total else ""
                print(f"\rsynthetic {name}: {done}/{total} images ({100 * done // max(total, 1)}%) "
                      f"{time.perf_counter() - start:.1f}s", end=end, file=sys.stderr, flush=True)

        if workers is None:
            cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
            workers = 1 if total < 20000 else max(1, min(cores, 8))
        jobs = _jobs(tmp, spec)
        if workers <= 1:
            for job in jobs:
                tick(_write_chunk(job, seed))
        else:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                for n in pool.map(_write_chunk, jobs, [seed] * len(jobs)):
                    tick(n)
        meta = {"generator": "cvae.families.bair_2023.synthetic", "preset": name, "seed": seed, "frames": SEQUENCE_FRAMES,
                "image_size": [FRAME_SIZE, FRAME_SIZE], "train_sequences": spec.train_sequences,
                "validate_sequences": spec.validate_sequences, "test_sequences": spec.test_sequences}
        (tmp / "synthetic.json").write_text(json.dumps(meta, indent=2) + "\n")
    return Path(out_dir)


def _write_chunk(job: tuple[str, int, int, Path, int], seed: int) -> int:
    """Sequences start..start+count-1 of a split (global index seeds), written as k = local.. in folder."""
    split, start, count, folder, local = job
    for i in range(count):
        rng = np.random.default_rng([seed, _SPLIT_IDS[split], start + i])
        write_sequence(folder / str(local + i), *sequence(rng))
    return count * SEQUENCE_FRAMES


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cvae.synthetic",
                                     description="Synthetic BAIR robot-pushing data in the processed BAIR layout.")
    parser.add_argument("--out", default=None, help="output folder (default: data/<preset>)")
    parser.add_argument("--preset", default="bair-small", choices=sorted(PRESETS),
                        help="bair-small: CPU demo (256 train sequences); bair-lab: the real proportions at 1/8")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=None, help="processes (default: 1 for bair-small)")
    parser.add_argument("--overwrite", action="store_true", help="replace a non-empty --out folder")
    parser.add_argument("--quiet", action="store_true", help="no progress line")
    args = parser.parse_args(argv)
    out = args.out or f"data/{args.preset}"
    start = time.perf_counter()
    try:
        path = generate(out, args.preset, args.seed, progress=not args.quiet, workers=args.workers,
                        overwrite=args.overwrite)
    except SyntheticError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {path} ({args.preset}, seed {args.seed}) in {time.perf_counter() - start:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
