"""Stored learning curves, as the replays read them: the one place that turns results on disk into curves.

- `read_table`: bench/curves.py's table (curves-<data>.csv, built for replaying) as a `Table` of designs,
  each with the curve of every training seed, plus its best, median, grid's best and noise floor;
  bench/replay.py replays searches on it, `Lookup` mapping a sampled configuration to its nearest design.
- `load_curves`: the full-length curves that bench/efficiency.py's searches left in their results files,
  as `Curve`s (identical value sequences counted once); bench/stop_rates.py replays them.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench.curves import CELL_PARAMS, active, cell_key, load_table, table_space
from cvae.core.config import KL_ANNEAL_ALIASES, KL_ANNEAL_TYPES

KL_TYPES = tuple(KL_ANNEAL_TYPES)  # Cyclical, Monotonic, None


def kl_type(config: dict[str, Any]) -> str:
    """The configuration's KL annealing type under its canonical name (the trainer's default: Cyclical)."""
    kind = str(config.get("kl_anneal_type", "Cyclical"))
    return KL_ANNEAL_ALIASES.get(kind, kind)


# --- bench/curves.py's table ----------------------------------------------------------

@dataclass
class Table:
    space: dict[str, Any]
    designs: list[dict[str, Any]]          # seed-1 grid and Sobol runs: {design, cell, config, curves: [...]}
    grid: list[int]                        # indices into designs of the hand grid, in its order
    max_t: int
    best: float                            # highest val_psnr of any run at any epoch
    median: float                          # median over designs of their best val_psnr (seed 1)
    grid_best: float
    noise: dict[str, Any] = field(default_factory=dict)
    by_cell: dict[str, list[int]] = field(default_factory=dict)

    @property
    def grid_epochs(self) -> int:
        return sum(len(self.designs[i]["curves"][0]) for i in self.grid)


def _values(run: dict[str, Any]) -> tuple[float, ...]:
    return tuple(float(m["val_psnr"]) for m in run["epochs"])


def read_table(path: Path) -> Table:
    """Designs with every seed's curve; best, median and the grid's best; the noise floor of the repeats."""
    sidecar = path.with_suffix(".json")
    runs = load_table(path)
    max_t = max(m["epoch"] for r in runs for m in r["epochs"])
    if sidecar.exists():
        space = json.loads(sidecar.read_text())["settings"]["space"]
    else:
        space = table_space(max_t)
    designs: dict[str, dict[str, Any]] = {}
    for run in sorted(runs, key=lambda r: (r["kind"] == "repeat", r["run_id"])):
        d = designs.setdefault(run["design"], {"design": run["design"], "cell": run["cell"],
                                               "config": run["config"], "curves": [], "seeds": [],
                                               "base": run["kind"] != "repeat"})
        d["curves"].append(_values(run))
        d["seeds"].append(run["seed"])
    # Build order: grid-0.., sobol-0.. (numeric, not text order).
    order = sorted(designs, key=lambda k: (not k.startswith("grid"), int(k.rsplit("-", 1)[1])))
    items = [designs[k] for k in order if designs[k]["base"]]  # a repeat without its seed-1 run is left out
    grid = [i for i, d in enumerate(items) if d["design"].startswith("grid")]
    best = max(max(c) for d in items for c in d["curves"])
    median = float(np.median([max(d["curves"][0]) for d in items]))
    grid_best = max(max(items[i]["curves"][0]) for i in grid) if grid else float("nan")
    by_cell: dict[str, list[int]] = {}
    for i, d in enumerate(items):
        by_cell.setdefault(d["cell"], []).append(i)
    table = Table(space=space, designs=items, grid=grid, max_t=max_t, best=best, median=median,
                  grid_best=grid_best, by_cell=by_cell)
    table.noise = noise_floor(items)
    return table


def noise_floor(designs: list[dict[str, Any]]) -> dict[str, Any]:
    """Seed-to-seed spread of the repeated designs vs the spread of the table (final and best values)."""
    pairs = [(max(d["curves"][0]), max(d["curves"][1]), d["curves"][0][-1], d["curves"][1][-1], d["design"])
             for d in designs if len(d["curves"]) > 1]
    finals = [d["curves"][0][-1] for d in designs]
    out: dict[str, Any] = {"repeated_designs": len(pairs),
                           "table_best_sd_db": float(np.std([max(d["curves"][0]) for d in designs], ddof=1))
                           if len(designs) > 1 else None,
                           "table_final_sd_db": float(np.std(finals, ddof=1)) if len(finals) > 1 else None}
    if pairs:
        diffs = np.array([a - b for a, b, *_ in pairs])
        out.update(seed_abs_diff_best_db_mean=float(np.mean(np.abs(diffs))),
                   seed_abs_diff_best_db_max=float(np.max(np.abs(diffs))),
                   # sd of one run's value from pairs: sd(a - b) / sqrt(2)
                   seed_sd_best_db=float(np.sqrt(np.mean(diffs ** 2) / 2)),
                   pairs=[{"design": p[4], "best_db": [round(p[0], 2), round(p[1], 2)],
                           "final_db": [round(p[2], 2), round(p[3], 2)]} for p in pairs])
    return out


def draw_curve(table: Table, index: int, rep_seed: int) -> tuple[float, ...]:
    """The design's curve for this repetition: one of its seeds, the same draw for every arm."""
    curves = table.designs[index]["curves"]
    if len(curves) == 1:
        return curves[0]
    return curves[int(np.random.default_rng([rep_seed, index]).integers(len(curves)))]


# --- the lookup rule: a sampled configuration -> a table design -------------------------

def _unit(spec: dict[str, Any], value: Any) -> float | None:
    """A numeric value on [0, 1] of its range (log scale for log distributions); None for categoricals."""
    if "values" in spec:
        return None
    lo, hi = float(spec["min"]), float(spec["max"])
    if spec.get("distribution", "").startswith("log") or spec.get("distribution", "").startswith("q_log"):
        lo, hi, value = math.log(lo), math.log(hi), math.log(float(value))
    return 0.0 if hi == lo else (float(value) - lo) / (hi - lo)


def distance(space: dict[str, Any], a: dict[str, Any], b: dict[str, Any]) -> float:
    """RMS over the non-cell parameters active in either config: |a - b| on [0, 1], categoricals 0/1."""
    terms = []
    for name, spec in space["parameters"].items():
        if name in CELL_PARAMS or (name not in a and name not in b):
            continue
        if name not in a or name not in b:
            terms.append(1.0)
        elif "values" in spec:
            terms.append(0.0 if a[name] == b[name] else 1.0)
        else:
            terms.append(abs(_unit(spec, a[name]) - _unit(spec, b[name])) ** 2)
    return math.sqrt(sum(terms) / len(terms)) if terms else 0.0


class Lookup:
    def __init__(self, table: Table) -> None:
        self.table = table
        self._cache: dict[tuple, tuple[int, float]] = {}

    def __call__(self, config: dict[str, Any]) -> tuple[int, float]:
        """(design index, distance) of the nearest table design in the config's cell."""
        config = active(self.table.space, {k: v for k, v in config.items() if k in self.table.space["parameters"]})
        key = tuple(sorted(config.items()))
        if key not in self._cache:
            candidates = self.table.by_cell.get(cell_key(config))
            if not candidates:
                raise KeyError(f"the table has no curve in cell {cell_key(config)} (config {config})")
            d = [(distance(self.table.space, config, self.table.designs[i]["config"]), i) for i in candidates]
            dist, index = min(d)
            self._cache[key] = (index, dist)
        return self._cache[key]


# --- the searches' own curves (bench/efficiency.py's results files) ------------------------

@dataclass
class Curve:
    values: tuple[float, ...]  # val_psnr at epochs 1..max_t
    config: dict[str, Any]
    kl: str
    sources: list[str] = field(default_factory=list)  # "file:method:seed:trial_id" of every copy

    @property
    def final(self) -> float:
        return self.values[-1]


def load_curves(paths: list[Path], max_t: int) -> tuple[list[Curve], list[dict[str, Any]]]:
    """Distinct full curves (identical value sequences counted once) and every full copy found."""
    copies: list[dict[str, Any]] = []
    for path in paths:
        raw = json.loads(path.read_text())["raw"]
        groups = [(m, s, rows) for m in ("ours", "random") for s, rows in raw.get(m, {}).items()]
        groups.append(("grid", "-", raw.get("grid", [])))
        for method, seed, rows in groups:
            by_trial: dict[str, dict[str, Any]] = {}
            for r in rows:
                entry = by_trial.setdefault(r["trial_id"], {"config": r["config"], "values": {}})
                entry["values"][int(r["epoch"])] = float(r["val_psnr"])
            for trial_id, entry in by_trial.items():
                if set(entry["values"]) >= set(range(1, max_t + 1)):
                    copies.append({"source": f"{path.name}:{method}:{seed}:{trial_id}", "method": method,
                                   "config": entry["config"],
                                   "values": tuple(entry["values"][e] for e in range(1, max_t + 1))})
    distinct: dict[tuple[float, ...], Curve] = {}
    for c in copies:
        curve = distinct.setdefault(c["values"], Curve(c["values"], dict(c["config"]), kl_type(c["config"])))
        curve.sources.append(c["source"])
    return list(distinct.values()), copies
