"""A table of full learning curves (no early stopping) for replaying searches without training.

    .venv/bin/python bench/curves.py                  # 36 Sobol + 6 grid + 9 repeats, ~35-45 min on 2 shared cores
    .venv/bin/python bench/curves.py --n 72           # extend the same design (rows already built are kept)
    .venv/bin/python bench/curves.py --smoke          # 3 + 2 + 1 tiny runs of 2 epochs: curves-<data>.smoke.csv
    .venv/bin/python bench/curves.py --data DIR       # any folder in the Lab4 layout

What is trained (bench/replay.py replays searches over the result):
- the space: spaces/lab.yaml's parameters and ranges (Adam/AdamW/Adamax/ASGD, lr 1e-4..1e-2, all three KL
  types with their ratios, teacher forcing 0/0.5/1 with its decay start, step and kind, weight decay) at
  spaces/quick.yaml's dims, data and budget (its `fixed`: 6 epochs, 16x32 frames, F/L/N/D 32/8/4/64, kl_weight
  1e-3, milestones [4]); the two ranges counted in epochs are quick.yaml's, which scale lab.yaml's 100-epoch
  ranges to 6 epochs (kl_anneal_cycle 1..3, tfr_sde 0..6), and the teacher-forcing decay is sampled only when
  teacher forcing is on (as in quick.yaml). `table_space()` builds it; the sidecar JSON stores it.
- `sobol`: a scrambled Sobol design (torch.quasirandom; Optuna's QMCSampler needs scipy, which the
  project does not depend on) over the 8 nuisance dimensions, stratified over the 9 cells KL type x tfr:
  design point i goes to cell i mod 9, so every cell has n/9 curves. The first n points of one seed are the
  same whatever n is: a larger --n extends the table.
- `grid`: spaces/writeups-grid.yaml's 6 runs (KL type x tfr {1.0 decaying, 0.0}, Adam at lr 2e-3).
- `repeat`: the first `--repeats` Sobol designs (one per cell) again with training seed seed + 1000: the
  noise floor (how far the same configuration lands with another seed).
Every run uses the training seed of quick.yaml (1) unless it is a repeat.

Runs go through Ray Tune like a search (a Tuner, FIFO scheduler, the fixed configurations, 2 trials at a
time, 1 CPU and 1 torch thread each; reused actors). Each finished run appends all its epochs to
bench/results/curves-<data>.csv (one row per run per epoch: every metric the trainer reports, the
configuration as JSON); runs already in the table are skipped, so an interrupted build continues where it
stopped. bench/results/curves-<data>.json (the sidecar) records the space, the design and every build (command,
machine: CPU model and load average, versions, dates, runs added).
"""
from __future__ import annotations

import argparse
import copy
import csv
import datetime
import json
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from the repo root
    sys.path.insert(0, str(ROOT))

from bench.common import RESULTS_DIR, command_line, library_versions, load_average, machine_info, progress  # noqa: E402

SPACES = ROOT / "spaces"
DEFAULT_DATA = ROOT / "data" / "synthetic-small"
CELL_PARAMS = ("kl_anneal_type", "tfr")  # the categorical cell a curve belongs to (and a lookup stays in)
TRAINING_SEED = 1  # quick.yaml's fixed seed
REPEAT_SEED_OFFSET = 1000  # search.space's re-evaluation seeds are seed + 1000 * i too
METRICS = ("val_psnr", "train_loss", "train_mse", "train_kl", "beta", "tfr", "teacher_forcing", "lr",
           "epoch_time_s", "val_time_s", "diverged")
COLUMNS = ("run_id", "kind", "design", "cell", "seed", "config", "epoch", *METRICS)
SMOKE_FIXED = {"F_dim": 16, "L_dim": 8, "N_dim": 4, "D_out_dim": 16, "frame_H": 8, "frame_W": 16,
               "val_vi_len": 8, "partial": 0.25}


# --- the space and the design ---------------------------------------------------

def table_space(epochs: int | None = None, smoke: bool = False) -> dict[str, Any]:
    """The wide space (lab.yaml's parameters at quick.yaml's fixed settings) as a space-YAML mapping."""
    quick = yaml.safe_load((SPACES / "quick.yaml").read_text())
    lab = yaml.safe_load((SPACES / "lab.yaml").read_text())
    params = copy.deepcopy(lab["parameters"])
    for name in ("kl_anneal_cycle", "tfr_sde"):  # epoch-counted ranges: quick.yaml's 6-epoch scaling
        spec = dict(quick["parameters"][name])
        spec.pop("when", None)
        params[name] = {**params[name], **spec}
    teacher_forced = [v for v in params["tfr"]["values"] if v > 0]
    for name in ("tfr_sde", "tfr_d_step", "tfr_decay"):
        params[name]["when"] = {"tfr": teacher_forced}
    params["tfr"].pop("role", None)  # quick.yaml's design: the KL type is the one scientific parameter
    fixed = dict(quick["fixed"])
    if smoke:
        fixed.update(SMOKE_FIXED)
    if epochs:
        fixed["num_epoch"] = int(epochs)
        params["tfr_sde"]["max"] = min(params["tfr_sde"]["max"], int(epochs))
    return {"name": "curves", "description": "bench/curves.py's table space: lab.yaml's parameters at quick.yaml's dims",
            "metric": dict(quick["metric"]), "data": dict(quick["data"]),
            "trials": {"num_samples": 12, "max_concurrent": 2, "resources": {"cpu": 1, "gpu": 0}},
            "sampler": {"type": "random", "seed": 0}, "early_terminate": {"type": "none"},
            "reeval": {"seeds": 0}, "fixed": fixed, "parameters": params}


def cells(space: dict[str, Any]) -> list[dict[str, Any]]:
    p = space["parameters"]
    return [{"kl_anneal_type": kl, "tfr": tfr} for kl in p["kl_anneal_type"]["values"] for tfr in p["tfr"]["values"]]


def cell_key(config: dict[str, Any]) -> str:
    return "|".join(str(config.get(name)) for name in CELL_PARAMS)


def applies(spec: dict[str, Any], config: dict[str, Any]) -> bool:
    """A parameter's `when` holds for this configuration (search.space's rule: every named value matches)."""
    for name, allowed in (spec.get("when") or {}).items():
        allowed = allowed if isinstance(allowed, list) else [allowed]
        if config.get(name) not in allowed:
            return False
    return True


def active(space: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    """The configuration without the parameters whose `when` does not hold (in file order)."""
    out: dict[str, Any] = {}
    for name, spec in space["parameters"].items():
        if name in config and applies(spec, {**config, **out}):
            out[name] = config[name]
    return out


def from_unit(spec: dict[str, Any], u: float) -> Any:
    """A point of [0, 1) mapped onto one parameter's distribution (as W&B/Optuna draw it)."""
    if "values" in spec:
        values = spec["values"]
        return values[min(int(u * len(values)), len(values) - 1)]
    lo, hi = spec["min"], spec["max"]
    kind = spec.get("distribution", "int_uniform" if isinstance(lo, int) and isinstance(hi, int) else "uniform")
    if kind == "int_uniform":
        return int(lo + min(int(u * (hi - lo + 1)), hi - lo))
    if kind == "log_uniform_values":
        return float(f"{math.exp(math.log(lo) + u * (math.log(hi) - math.log(lo))):.4g}")
    return float(f"{lo + u * (hi - lo):.4g}")


def sobol_design(space: dict[str, Any], n: int, seed: int) -> list[dict[str, Any]]:
    """n configurations: cell i mod 9, nuisance parameters from scrambled Sobol point i."""
    import torch

    nuisance = [name for name in space["parameters"] if name not in CELL_PARAMS]
    engine = torch.quasirandom.SobolEngine(len(nuisance), scramble=True, seed=seed)
    points = engine.draw(max(n, 1), dtype=torch.float64).tolist()
    all_cells = cells(space)
    out = []
    for i in range(n):
        config = dict(all_cells[i % len(all_cells)])
        for name, u in zip(nuisance, points[i]):
            config[name] = from_unit(space["parameters"][name], u)
        out.append(active(space, config))
    return out


def grid_design(space: dict[str, Any]) -> list[dict[str, Any]]:
    """spaces/writeups-grid.yaml's runs, in its order (KL type outer, tfr inner), as table-space configurations."""
    grid = yaml.safe_load((SPACES / "writeups-grid.yaml").read_text())
    keys = [k for k in space["parameters"] if k in grid["fixed"]]
    base = {k: grid["fixed"][k] for k in keys}
    p = grid["parameters"]
    return [active(space, {**base, "kl_anneal_type": kl, "tfr": tfr, "tfr_decay": "linear", "weight_decay": 0.0})
            for kl in p["kl_anneal_type"]["values"] for tfr in p["tfr"]["values"]]


def plan_runs(space: dict[str, Any], n: int, repeats: int, seed: int, grid_limit: int | None = None,
              training_seeds: tuple[int, ...] = (TRAINING_SEED,)) -> list[dict[str, Any]]:
    """Every run of the table in build order.

    One training seed (the first table): the grid, the Sobol design, then the first `repeats` Sobol
    designs again with seed + 1000. Several seeds (the seeded table): every design with every seed,
    design by design, so a build stopped part-way leaves whole designs (all their seeds) in the table.
    A design's first seed is its base run; the others are its `repeat` rows.
    """
    designs = [(f"grid-{i}", "grid", c) for i, c in enumerate(grid_design(space)[:grid_limit])]
    designs += [(f"sobol-{i}", "sobol", c) for i, c in enumerate(sobol_design(space, n, seed))]

    def run(design: str, kind: str, config: dict[str, Any], s: int) -> dict[str, Any]:
        return {"run_id": f"{design}-s{s}", "kind": kind, "design": design, "seed": s, "config": config,
                "cell": cell_key(config)}

    if len(training_seeds) > 1:
        return [run(d, kind if k == 0 else "repeat", c, s)
                for d, kind, c in designs for k, s in enumerate(training_seeds)]
    base = training_seeds[0]
    runs = [run(d, kind, c, base) for d, kind, c in designs]
    sobol = [(d, c) for d, kind, c in designs if kind == "sobol"]
    runs += [run(d, "repeat", c, base + REPEAT_SEED_OFFSET) for d, c in sobol[:repeats]]
    return runs


# --- the table on disk ------------------------------------------------------------

def table_paths(data_name: str, smoke: bool, out_dir: Path = RESULTS_DIR, tag: str | None = None
                ) -> tuple[Path, Path]:
    stem = f"curves-{data_name}" + (f"-{tag}" if tag else "") + (".smoke" if smoke else "")
    return out_dir / f"{stem}.csv", out_dir / f"{stem}.json"


def data_name(data_dir: Path) -> str:
    name = Path(data_dir).resolve().name
    return name[len("synthetic-"):] if name.startswith("synthetic-") else name


def done_runs(path: Path) -> set[str]:
    if not path.exists():
        return set()
    with path.open(newline="") as f:
        return {row["run_id"] for row in csv.DictReader(f)}


def append_run(path: Path, run: dict[str, Any], epochs: list[dict[str, Any]]) -> None:
    """All epochs of one finished run, appended at once (a run is in the table whole or not at all)."""
    new = not path.exists()
    with path.open("a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        if new:
            writer.writeheader()
        for m in epochs:
            writer.writerow({"run_id": run["run_id"], "kind": run["kind"], "design": run["design"],
                             "cell": run["cell"], "seed": run["seed"],
                             "config": json.dumps(run["config"], sort_keys=True),
                             **{k: m.get(k) for k in ("epoch", *METRICS)}})


def load_table(path: Path) -> list[dict[str, Any]]:
    """The table as runs: {run_id, kind, design, cell, seed, config, epochs: [metrics per epoch]}."""
    runs: dict[str, dict[str, Any]] = {}
    with Path(path).open(newline="") as f:
        for row in csv.DictReader(f):
            run = runs.setdefault(row["run_id"], {"run_id": row["run_id"], "kind": row["kind"],
                                                  "design": row["design"], "cell": row["cell"],
                                                  "seed": int(row["seed"]), "config": json.loads(row["config"]),
                                                  "epochs": []})
            metrics = {}
            for k in ("epoch", *METRICS):
                v = row.get(k)
                if v in (None, ""):
                    continue
                metrics[k] = (v == "True") if k == "diverged" else (int(v) if k == "epoch" else float(v))
            run["epochs"].append(metrics)
    for run in runs.values():
        run["epochs"].sort(key=lambda m: m["epoch"])
    return list(runs.values())


# --- training through Ray ------------------------------------------------------------

def _train_run(config: dict[str, Any], *, data: dict, fixed: dict[str, Any]) -> None:
    """Ray Tune function trainable: one full run, every epoch reported (no early stopping)."""
    import torch
    from ray import tune

    from cvae.families import get_family
    from cvae.families.lab4_2024.config import TrainConfig
    from cvae.families.lab4_2024.train import fit

    torch.set_num_threads(1)
    run = config["run"]
    lab, _ = get_family("lab4-2024").unshare_data(data)
    cfg = TrainConfig.from_dict({**fixed, **run["config"], "seed": run["seed"], "device": "cpu",
                                 "torch_threads": 1}, source=f"bench/curves.py {run['run_id']}")

    def on_epoch(metrics: dict[str, Any], _trainer: Any) -> None:
        tune.report({k: metrics[k] for k in ("epoch", *METRICS) if k in metrics})

    fit(cfg, lab, on_epoch=on_epoch, device="cpu")


def _callback(table: Path, total: int, already: int, on_run_done):
    from ray.tune import Callback

    class TableWriter(Callback):
        """Collects each trial's epochs on the driver and appends them when the trial ends."""

        def __init__(self) -> None:
            self.epochs: dict[str, list[dict[str, Any]]] = {}
            self.finished = already

        def on_trial_result(self, iteration, trials, trial, result, **info):
            run = trial.config["run"]
            self.epochs.setdefault(trial.trial_id, []).append({k: result.get(k) for k in ("epoch", *METRICS)})
            progress(f"{run['run_id']:>16} epoch {result.get('epoch')}: val_psnr {result.get('val_psnr', float('nan')):.2f} "
                     f"({result.get('epoch_time_s', 0):.0f} s/epoch; {self.finished}/{total} runs in the table)")

        def on_trial_complete(self, iteration, trials, trial, **info):
            run = trial.config["run"]
            append_run(table, run, self.epochs.pop(trial.trial_id, []))
            self.finished += 1
            on_run_done(self.finished)
            progress(f"{run['run_id']} done: {self.finished}/{total} runs in {table.name}")

        def on_trial_error(self, iteration, trials, trial, **info):
            progress(f"{trial.config['run']['run_id']} FAILED (not in the table; a rerun retries it)")

    return TableWriter()


def build(runs: list[dict[str, Any]], table: Path, fixed: dict[str, Any], data_dir: Path, total: int,
          on_run_done, concurrent: int = 2) -> None:
    import ray
    from ray import tune
    from ray.tune.schedulers import FIFOScheduler

    from cvae.families import get_family
    from cvae.families.lab4_2024.data import load_lab_data

    data = load_lab_data(data_dir, fixed["frame_H"], fixed["frame_W"], progress=False)
    ray.init(num_cpus=concurrent, include_dashboard=False, log_to_driver=False)
    try:
        with tempfile.TemporaryDirectory(prefix="bench-curves-") as tmp:
            trainable = tune.with_resources(tune.with_parameters(_train_run, data=get_family("lab4-2024").share_data(data), fixed=fixed),
                                            {"cpu": 1})
            tuner = tune.Tuner(
                trainable, param_space={"run": tune.grid_search(runs)},
                tune_config=tune.TuneConfig(scheduler=FIFOScheduler(), max_concurrent_trials=concurrent,
                                            reuse_actors=True),
                run_config=tune.RunConfig(name="curves", storage_path=tmp, verbose=0,
                                          callbacks=[_callback(table, total, total - len(runs), on_run_done)],
                                          failure_config=tune.FailureConfig(max_failures=1)))
            tuner.fit()
    finally:
        ray.shutdown()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default=str(DEFAULT_DATA), help="a dataset in the Lab4 layout (default: the small "
                   "synthetic preset, generated if missing)")
    p.add_argument("--n", type=int, default=None, help="Sobol configurations (default 36 = 4 per cell; smoke 3)")
    p.add_argument("--repeats", type=int, default=None, help="Sobol configurations re-run with seed+1000 "
                   "(default 9 = one per cell; smoke 1)")
    p.add_argument("--epochs", type=int, default=None, help="epochs per run (default quick.yaml's 6; smoke 2)")
    p.add_argument("--seed", type=int, default=0, help="the Sobol scramble seed")
    p.add_argument("--training-seeds", type=int, nargs="+", default=None,
                   help=f"train every design with each of these seeds (default: {TRAINING_SEED} plus --repeats)")
    p.add_argument("--tag", default=None, help="a second table beside the first: curves-<data>-<tag>.csv")
    p.add_argument("--smoke", action="store_true", help="tiny dims, 3 Sobol + 2 grid + 1 repeat of 2 epochs")
    p.add_argument("--out-dir", default=str(RESULTS_DIR), help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    n = args.n if args.n is not None else (3 if args.smoke else 36)
    repeats = args.repeats if args.repeats is not None else (1 if args.smoke else 9)
    epochs = args.epochs or (2 if args.smoke else None)
    data_dir = Path(args.data)
    if not data_dir.exists():
        if data_dir.resolve() != DEFAULT_DATA.resolve():
            print(f"error: --data {data_dir}: no such folder", file=sys.stderr)
            return 2
        from cvae.families.lab4_2024.synthetic import generate

        generate(DEFAULT_DATA, preset="small", seed=0, progress=False)
    space = table_space(epochs, smoke=args.smoke)
    fixed = space["fixed"]
    seeds = tuple(args.training_seeds or (TRAINING_SEED,))
    if len(set(seeds)) != len(seeds):
        print(f"error: --training-seeds {' '.join(map(str, seeds))}: each seed once", file=sys.stderr)
        return 2
    runs = plan_runs(space, n, repeats, args.seed, grid_limit=2 if args.smoke else None, training_seeds=seeds)
    table, sidecar = table_paths(data_name(data_dir), args.smoke, Path(args.out_dir), args.tag)
    table.parent.mkdir(parents=True, exist_ok=True)
    settings = {"space": space, "data": str(data_dir), "sobol_seed": args.seed, "training_seed": seeds[0],
                "repeat_seed": seeds[0] + REPEAT_SEED_OFFSET if len(seeds) == 1 else None,
                "cell_params": list(CELL_PARAMS)}
    if len(seeds) > 1:
        settings["training_seeds"] = list(seeds)
    meta = json.loads(sidecar.read_text()) if sidecar.exists() else {"benchmark": "curves", "table": table.name,
                                                                     "builds": []}
    if meta.get("settings") and {k: v for k, v in meta["settings"].items() if k != "data"} != \
            {k: v for k, v in settings.items() if k != "data"}:
        print(f"error: {table} was built with other settings (space, seeds); move it away or use those",
              file=sys.stderr)
        return 2
    meta["settings"] = settings
    meta["smoke"] = args.smoke
    done = done_runs(table)
    todo = [r for r in runs if r["run_id"] not in done]
    meta["planned_runs"] = {kind: sum(r["kind"] == kind for r in runs) for kind in ("grid", "sobol", "repeat")}
    record = {"command": command_line(), "date_start": _now(), "date_end": None, "machine": machine_info(),
              "versions": library_versions(), "load_average_start": load_average(), "load_average_end": None,
              "runs_in_table_before": len(done & {r["run_id"] for r in runs}), "runs_to_train": len(todo),
              "runs_added": 0, "wall_s": None}
    meta["builds"].append(record)
    start = time.perf_counter()

    def save(finished: int) -> None:
        record.update(runs_added=finished - record["runs_in_table_before"], date_end=_now(),
                      load_average_end=load_average(), wall_s=round(time.perf_counter() - start, 1))
        meta["runs_in_table"] = len(done_runs(table))
        sidecar.write_text(json.dumps(meta, indent=2) + "\n")

    save(record["runs_in_table_before"])
    progress(f"{len(runs)} runs planned ({meta['planned_runs']}), {len(runs) - len(todo)} already in {table.name}, "
             f"{len(todo)} to train, 2 at a time, {fixed['num_epoch']} epochs each")
    if todo:
        build(todo, table, fixed, data_dir, len(runs), save)
    save(len(done_runs(table) & {r["run_id"] for r in runs}))
    progress(f"wrote {table} ({meta['runs_in_table']} runs) and {sidecar.name}")
    return 0


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


if __name__ == "__main__":
    raise SystemExit(main())
