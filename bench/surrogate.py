"""The seeded table as the replay reads it, and the two surrogates bench/preregistration.yaml names.

A surrogate maps a sampled configuration to what the replay reports for it: a curve (val_psnr per epoch)
and the seconds each epoch takes. Both stay in the configuration's cell (KL type x tfr) and measure
distance as bench/table.distance does (RMS on unit scales, lr on a log scale):
- `nearest`: the nearest design's curve for the drawn seed (the first table's rule);
- `knn3`: the inverse-distance weighted mean, epoch by epoch, of the 3 nearest designs' curves for the
  drawn seed (an epoch a diverged neighbour never reached is left out of that epoch's mean).
Their error is measured leave-one-design-out against each design's seed-mean best, next to the seed
noise (the pooled sd of one run's best over a design's seeds).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.curves import active, cell_key, load_table
from bench.table import Table, distance, read_table

SURROGATES = ("nearest", "knn3")
K_NEIGHBOURS = 3


@dataclass
class SeededTable:
    table: Table                            # whole designs only (every training seed trained)
    seconds: list[list[tuple[float, ...]]]  # per design, per seed: training + validation s of each epoch
    true_best: list[float]                  # per design: the mean over seeds of each seed's best val_psnr
    seeds: int
    planned_designs: int                    # designs in the CSV, whole or not


def read_seeded(path: Path, seeds: int) -> SeededTable:
    """The table's whole designs (all `seeds` curves), with per-epoch seconds and seed-mean bests;
    best, median and the grid's best recomputed on the seed means."""
    table = read_table(path)
    times = {(r["design"], r["seed"]): tuple(float(m.get("epoch_time_s", 0.0)) + float(m.get("val_time_s", 0.0))
                                             for m in r["epochs"]) for r in load_table(path)}
    keep = [d for d in table.designs if len(d["curves"]) == seeds]
    seconds = [[times[(d["design"], s)] for s in d["seeds"]] for d in keep]
    true_best = [float(np.mean([max(c) for c in d["curves"]])) for d in keep]
    grid = [i for i, d in enumerate(keep) if d["design"].startswith("grid")]
    by_cell: dict[str, list[int]] = {}
    for i, d in enumerate(keep):
        by_cell.setdefault(d["cell"], []).append(i)
    whole = Table(space=table.space, designs=keep, grid=grid, max_t=table.max_t, best=max(true_best),
                  median=float(np.median(true_best)),
                  grid_best=max(true_best[i] for i in grid) if grid else math.nan, by_cell=by_cell)
    whole.noise = table.noise
    return SeededTable(whole, seconds, true_best, seeds, len(table.designs))


def seed_noise(seeded: SeededTable) -> float:
    """Pooled sd of one run's best val_psnr over a design's seeds."""
    variances = [np.var([max(c) for c in d["curves"]], ddof=1) for d in seeded.table.designs]
    return float(math.sqrt(np.mean(variances)))


def neighbours(seeded: SeededTable, config: dict[str, Any], k: int, exclude: int | None = None
               ) -> list[tuple[float, int]]:
    """The k nearest designs (distance, index) in the configuration's cell, nearest first."""
    table = seeded.table
    config = active(table.space, {n: v for n, v in config.items() if n in table.space["parameters"]})
    candidates = [i for i in table.by_cell.get(cell_key(config), []) if i != exclude]
    if not candidates:
        raise KeyError(f"the table has no other design in cell {cell_key(config)}")
    return sorted((distance(table.space, config, table.designs[i]["config"]), i) for i in candidates)[:k]


def _weights(near: list[tuple[float, int]]) -> list[float]:
    """Inverse-distance weights; an exact match takes all the weight."""
    if near[0][0] == 0.0:
        return [1.0 if d == 0.0 else 0.0 for d, _ in near]
    raw = [1.0 / d for d, _ in near]
    return [w / sum(raw) for w in raw]


def predict(seeded: SeededTable, surrogate: str, config: dict[str, Any], seed_index: int,
            exclude: int | None = None) -> tuple[tuple[float, ...], tuple[float, ...], int]:
    """(curve, seconds per epoch, nearest design) the surrogate reports for a configuration and seed."""
    k = 1 if surrogate == "nearest" else K_NEIGHBOURS
    near = neighbours(seeded, config, k, exclude)
    if surrogate == "nearest":
        index = near[0][1]
        return seeded.table.designs[index]["curves"][seed_index], seeded.seconds[index][seed_index], index
    weights = _weights(near)
    curves = [seeded.table.designs[i]["curves"][seed_index] for _, i in near]
    seconds = [seeded.seconds[i][seed_index] for _, i in near]
    length = max(len(c) for c in curves)

    def mix(series: list[tuple[float, ...]], epoch: int) -> float:
        pairs = [(w, s[epoch]) for w, s in zip(weights, series) if epoch < len(s) and w > 0]
        total = sum(w for w, _ in pairs)
        return sum(w * v for w, v in pairs) / total if total else math.nan

    curve = tuple(mix(curves, e) for e in range(length))
    cut = next((e for e, v in enumerate(curve) if math.isnan(v)), length)  # only zero-weight designs got here
    return curve[:cut], tuple(mix(seconds, e) for e in range(cut)), near[0][1]


def predicted_best(seeded: SeededTable, surrogate: str, index: int) -> float:
    """Leave-one-design-out: the seed-mean best the surrogate predicts for design `index` from the others."""
    config = seeded.table.designs[index]["config"]
    bests = [max(predict(seeded, surrogate, config, s, exclude=index)[0]) for s in range(seeded.seeds)]
    return float(np.mean(bests))


def loo_errors(seeded: SeededTable) -> dict[str, Any]:
    """Each surrogate's leave-one-design-out RMS error (dB) of the seed-mean best, the seed noise,
    and the registered choice (the lower error)."""
    out: dict[str, Any] = {"seed_noise_db": seed_noise(seeded), "designs": len(seeded.table.designs)}
    for name in SURROGATES:
        errors = []
        for i in range(len(seeded.table.designs)):
            try:
                errors.append(predicted_best(seeded, name, i) - seeded.true_best[i])
            except KeyError:  # the only design of its cell: nothing to predict it from
                continue
        out[name] = {"rms_error_db": float(math.sqrt(np.mean(np.square(errors)))), "predicted": len(errors),
                     "mean_error_db": float(np.mean(errors))}
    out["chosen"] = min(SURROGATES, key=lambda n: out[n]["rms_error_db"])
    out["error_exceeds_noise"] = out[out["chosen"]]["rms_error_db"] > out["seed_noise_db"]
    return out
