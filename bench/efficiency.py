"""Search efficiency: best val_psnr vs cumulative epochs for TPE+ASHA, random search and the lab's hand grid.

    .venv/bin/python bench/efficiency.py               # full: 3 seeds, ~20 min on 2 quiet cores
    .venv/bin/python bench/efficiency.py --smoke       # 1 seed, 2 trials of 2 epochs, tiny frames
    .venv/bin/python bench/efficiency.py --reanalyse bench/results/efficiency.json   # table + figure, no training
    .venv/bin/python bench/efficiency.py --data DIR    # any dataset in the Lab4 layout (default: the small preset)

On the small synthetic preset, spaces/quick.yaml's dims and 6 epochs at most per trial:
  (a) ours:   quick.yaml's own `sampler` block (since issue 12: random within balanced strata; before: TPE
              with its start-up trials) and ASHA rungs through the runner (PruningOptunaSearch: PRUNED
              feedback; what `make search` runs), 12 trials
  (b) random: Optuna's RandomSampler over the same space, no early stopping, 6 trials (the grid's 36 epochs)
  (c) grid:   the hand grid of the lab reports: kl_anneal_type in {Cyclical, Monotonic, None}
              x teacher forcing {decaying: tfr 1.0, tfr_sde 0, tfr_d_step 0.1 | none: tfr 0.0},
              every other field at TrainConfig's default (Adam, lr 1e-3, kl cycle 10, ratio 1), full epochs
The budget that counts is epochs (what a user pays for): the methods are compared at the grid's 36
epochs. ASHA's point is to spend the epochs it saves on more configurations, so ours may start
more trials than the grid within those epochs; whatever it spends beyond them is shown, not counted.
(a) and (b) run through search.runner.run_search in one Ray session, 2 trials at a time; the grid
runs as Ray tasks 2 at a time. Every trial has its own training seed: the searches sample `seed`
(int_uniform 1..10**6, a noise dimension for TPE; --smoke too) and grid run i trains with seed 101 + i.
The samplers' seeds differ between methods (ours: s, random: 1000 + s), so ours' random start-up trials
are not the configurations random search draws first (with equal seeds they were, and both methods
trained the same first runs). The grid row reports the epoch the grid first reached its best (in its
run order) beside its total epochs.
Epochs are counted in order of completion (Ray's result timestamps). Writes
bench/results/efficiency.json (+ efficiency.html, an offline plotly figure).
"""
from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from the repo root
    sys.path.insert(0, str(ROOT))

from bench.common import (  # noqa: E402
    RESULTS_DIR,
    command_line,
    library_versions,
    load_average,
    machine_info,
    progress,
    read_trial_results,
    write_json,
    write_yaml,
)
from bench.stats import spearman  # noqa: E402

SMALL_DATA = ROOT / "data" / "synthetic-small"
BASE_SPACE = ROOT / "spaces" / "quick.yaml"
# Full mode runs quick.yaml as `make search` does (its dims, full training set, 6 epochs): at
# smaller dims (16/8/4/16, half the data) every configuration, the grid's included, ended within
# ~0.6 dB of the copy-first-frame baseline, so nothing could be told apart (measured 2026-11-22).
# "ours" is what `make search` runs: quick.yaml's own TPE warm-up and ASHA rungs (None: read from the
# space), only the sampler seed varies.
FULL = {"fixed": {"num_epoch": 6},
        "trials": 12, "random_trials": 6,
        "asha": None, "n_startup": None}
SMOKE = {"fixed": {"F_dim": 16, "L_dim": 8, "N_dim": 4, "D_out_dim": 16, "frame_H": 8, "frame_W": 16,
                   "val_vi_len": 8, "partial": 0.25, "num_epoch": 2},
         "trials": 2, "random_trials": 2,
         "asha": {"type": "asha", "grace_period": 1, "reduction_factor": 2}, "n_startup": 1}
GRID_TF = {"decaying": {"tfr": 1.0, "tfr_sde": 0, "tfr_d_step": 0.1}, "none": {"tfr": 0.0}}
GRID_KL = ("Cyclical", "Monotonic", "None")


GRID_SEED_BASE = 101  # grid run i trains with seed 101 + i
RANDOM_SAMPLER_SEED_OFFSET = 1000  # random search's sampler seed: 1000 + s (ours: s)
SEED_PARAMETER = {"distribution": "int_uniform", "min": 1, "max": 10 ** 6}  # a training seed per trial
TRAINING_SEEDS = ("every trial has its own training seed (searches: sampled 1..10**6; grid run i: 101 + i); "
                  "sampler seeds: ours s, random 1000 + s")


def make_space(base: dict[str, Any], mode: dict[str, Any], method: str, seed: int, data_root: Path) -> dict[str, Any]:
    space = copy.deepcopy(base)
    space["name"] = f"{method}-s{seed}"
    space["data"] = {"root": str(data_root), "synthetic": "small"}
    space["fixed"] = {**space.get("fixed", {}), **mode["fixed"]}
    trials = mode["trials"] if method == "ours" else mode["random_trials"]
    space["trials"] = {**space.get("trials", {}), "num_samples": trials, "max_concurrent": 2,
                       "resources": {"cpu": 1, "gpu": 0}, "max_failures": 0}
    # Rungs must lie inside the (smaller) epoch budget: tfr_sde's range is capped to it.
    params = space["parameters"]
    params["seed"] = dict(SEED_PARAMETER)
    space["fixed"].pop("seed", None)
    if "tfr_sde" in params and "max" in params["tfr_sde"]:
        params["tfr_sde"]["max"] = min(params["tfr_sde"]["max"], mode["fixed"]["num_epoch"] - 1)
    # This benchmark compares how fast searches find good configurations: the
    # re-evaluation runs after a search (issue 11) would only add epochs to every
    # arm, and balanced strata need 2 trials per stratum (the smoke run has fewer).
    space["reeval"] = {"seeds": 0}
    space["trials"]["strata"] = "balanced" if method == "ours" and trials >= 6 else "free"
    if method == "ours":
        # quick.yaml's own sampler block (what `make search` runs), with this seed
        sampler = {**base.get("sampler", {}), "seed": seed}
        if sampler.get("type", "tpe") == "tpe" and mode["n_startup"] is not None:
            sampler["n_startup_trials"] = mode["n_startup"]
        space["sampler"] = sampler
        space["early_terminate"] = dict(mode["asha"])
    else:
        space["sampler"] = {"type": "random", "seed": RANDOM_SAMPLER_SEED_OFFSET + seed}
        space["early_terminate"] = {"type": "none"}
    return space


def run_one_search(space_path: Path, storage: Path, data) -> list[dict[str, Any]]:
    from search.runner import make_plan, run_search

    plan = make_plan(space_path, storage_path=storage)
    run_search(plan, data)
    rows = []
    for index, (trial_id, results) in enumerate(read_trial_results(plan.run_dir).items()):
        for r in results:
            rows.append({"trial_id": trial_id, "epoch": int(r["epoch"]), "val_psnr": float(r["val_psnr"]),
                         "timestamp": float(r["timestamp"]), "time_total_s": float(r["time_total_s"]),
                         "config": r["config"]})
    # Completion order; 1-second timestamps tie, then a trial's own time breaks the tie.
    rows.sort(key=lambda r: (r["timestamp"], r["time_total_s"]))
    return rows


def run_grid(base: dict[str, Any], mode: dict[str, Any], data_root: Path, data) -> list[dict[str, Any]]:
    """The 6 hand-grid runs as Ray tasks, 2 at a time; rows in trial order (a person runs them one by one)."""
    import ray

    from cvae.families import get_family

    fixed = {**base.get("fixed", {}), **mode["fixed"], "device": "cpu"}

    @ray.remote(num_cpus=1)
    def train(shared: dict, config: dict[str, Any]) -> list[dict[str, Any]]:
        import torch

        from cvae.families.lab4_2024.config import TrainConfig
        from cvae.families.lab4_2024.train import fit

        torch.set_num_threads(1)
        lab, _ = get_family("lab4-2024").unshare_data(shared)
        epochs: list[dict[str, Any]] = []
        fit(TrainConfig.from_dict({**fixed, **config}, source="bench/efficiency.py grid"), lab,
            on_epoch=lambda m, _t: epochs.append({"epoch": m["epoch"], "val_psnr": m["val_psnr"]}), device="cpu")
        return epochs

    ref = ray.put(get_family("lab4-2024").share_data(data))
    configs = [{"kl_anneal_type": kl, **tf} for kl in GRID_KL for tf in GRID_TF.values()]
    configs = [{**c, "seed": GRID_SEED_BASE + i} for i, c in enumerate(configs)]
    results = ray.get([train.remote(ref, c) for c in configs])
    rows = []
    for i, (config, epochs) in enumerate(zip(configs, results)):
        rows += [{"trial_id": f"grid{i}", "epoch": e["epoch"], "val_psnr": e["val_psnr"], "config": config}
                 for e in epochs]
    return rows


def curve(rows: list[dict[str, Any]]) -> tuple[list[int], list[float]]:
    """Best val_psnr so far after each epoch spent (in completion order)."""
    xs, ys, best = [], [], float("-inf")
    for i, r in enumerate(rows, start=1):
        if r["val_psnr"] == r["val_psnr"]:  # NaN never counts as best
            best = max(best, r["val_psnr"])
        xs.append(i)
        ys.append(best)
    return xs, ys


def first_reach(xy: tuple[list[int], list[float]] | list, target: float) -> int | None:
    """The first epoch (x) at which a best-so-far curve reaches `target`; None if never."""
    return next((x for x, y in zip(*xy) if y >= target), None)


def compare(ours: tuple[list[int], list[float]], grid: tuple[list[int], list[float]]) -> dict[str, Any]:
    grid_best, grid_epochs = grid[1][-1], grid[0][-1]
    reach = first_reach(ours, grid_best)
    at = min(grid_epochs, ours[0][-1])
    return {"epochs_to_reach_grid_best": reach,
            "epochs_fraction_to_reach_grid_best": None if reach is None else reach / grid_epochs,
            "best_at_grid_epochs": ours[1][at - 1], "compared_at_epochs": at,
            "psnr_gain_at_equal_epochs_db": ours[1][at - 1] - grid_best,
            "final_best": ours[1][-1], "total_epochs": ours[0][-1]}


def median_or_none(values: list[float | None], missing: float) -> float | None:
    """Median where a None (never reached) counts as `missing` (e.g. inf); None if all are None."""
    if all(v is None for v in values):
        return None
    return float(statistics.median([missing if v is None else v for v in values]))


def write_html(report: dict[str, Any], path: Path) -> None:
    import plotly.graph_objects as go

    fig = go.Figure()
    colors = {"ours": "#1f77b4", "random": "#ff7f0e", "grid": "#2ca02c"}
    gx, gy = report["curves"]["grid"]
    fig.add_trace(go.Scatter(x=gx, y=gy, mode="lines", line={"shape": "hv", "color": colors["grid"], "width": 3},
                             name="hand grid (6 runs)"))
    for method in ("ours", "random"):
        for seed, (xs, ys) in report["curves"][method].items():
            fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", line={"shape": "hv", "color": colors[method]},
                                     name=f"{'TPE + ASHA' if method == 'ours' else 'random, no stopping'} seed {seed}"))
    fig.update_layout(title="Best val_psnr vs cumulative epochs (small synthetic preset)",
                      xaxis_title="epochs spent (all trials)", yaxis_title="best val_psnr so far (dB)")
    fig.write_html(path, include_plotlyjs=True, full_html=True)  # offline: plotly.js inlined


def _fraction_text(frac: float | None) -> str:
    """An epochs fraction as the tables and notes print it; None means the grid's best was never reached."""
    return "never" if frac is None else f"{frac:.2f}"


def markdown(report: dict[str, Any]) -> str:
    lines = ["| method | seed | epochs spent | final best val_psnr (dB) | epochs to reach grid best "
             "| best at grid's epochs (dB) | gain vs grid at equal epochs (dB) |", "|---|---|---|---|---|---|---|"]
    g = report["grid"]
    # The grid reaches its own best before its last epoch (it is 6 runs in a row): that epoch, not its total.
    reach = g.get("epochs_to_reach_best") or first_reach(report["curves"]["grid"], g["best"])
    lines.append(f"| hand grid | - | {g['total_epochs']} | {g['best']:.2f} | {reach} (of {g['total_epochs']}) "
                 f"| {g['best']:.2f} | 0 |")
    for method in ("ours", "random"):
        for seed, c in report["per_seed"][method].items():
            reach = c["epochs_to_reach_grid_best"]
            lines.append(f"| {method} | {seed} | {c['total_epochs']} | {c['final_best']:.2f} | "
                         f"{'never' if reach is None else reach} | {c['best_at_grid_epochs']:.2f} | "
                         f"{c['psnr_gain_at_equal_epochs_db']:+.2f} |")
    frac, gain = report["epochs_fraction_to_reach_grid_best"], report["psnr_gain_at_equal_epochs_db"]
    lines += ["", f"Median over seeds, ours: epochs fraction to reach the grid's best = "
              f"{_fraction_text(frac)} (target <= 0.33); gain at equal epochs = "
              f"{gain:+.2f} dB (target >= +1 dB)."]
    return "\n".join(lines)


def notes(report: dict[str, Any], mode: dict[str, Any]) -> list[str]:
    out = [f"space: spaces/quick.yaml (its dims and parameters) with {mode['fixed']}; ours: {mode['trials']} trials, "
           f"ASHA {mode['asha']}, sampler {mode.get('sampler', 'tpe')} (TPE n_startup_trials {mode['n_startup']}); random: {mode['random_trials']} trials "
           "without stopping; compared at the grid's epochs",
           "grid: teacher forcing 'decaying' = tfr 1.0, tfr_sde 0, tfr_d_step 0.1; 'none' = tfr 0.0 (never "
           "teacher-forced; a fixed tfr 1.0 would validate autoregressively after training only teacher-forced, "
           "a straw man); other fields at TrainConfig defaults (Adam, lr 1e-3, kl_anneal_cycle 10, ratio 1)",
           TRAINING_SEEDS if report.get("settings", {}).get("training_seeds") == TRAINING_SEEDS else
           "the training seed is fixed (1): the grid is deterministic and ran once; seeds vary the samplers"]
    frac, gain = report["epochs_fraction_to_reach_grid_best"], report["psnr_gain_at_equal_epochs_db"]
    d = report["diagnosis"]
    missed = frac is None or frac > 1 / 3 or gain is None or gain < 1.0
    out.append(f"{'target(s) missed' if missed else 'targets met'}; from this run's {d['full_runs']} distinct "
               f"full-length runs: {d['beat_grid_best']} of the {d['searched_full_runs']} searched ones ended above "
               f"the grid's best ({report['grid']['best']:.2f} dB; the grid's runs rank {d['grid_ranks']} of "
               f"{d['full_runs']}); val_psnr at the first ASHA rung (epoch {d['rung_epoch']}) has Spearman rho "
               f"{d['rung_rank_correlation']} with the final value")
    # What the space gives every sampler vs what TPE + ASHA add: the same medians for random search.
    r_frac, r_gain = report["random_epochs_fraction_to_reach_grid_best"], report["random_psnr_gain_at_equal_epochs_db"]
    if r_gain is not None and gain is not None:
        out.append(f"random search without stopping over the same space, same seeds: epochs fraction "
                   f"{_fraction_text(r_frac)}, gain at equal epochs {r_gain:+.2f} dB "
                   f"(ours {_fraction_text(frac)}, {gain:+.2f} dB): what one method gains "
                   "over the other is the sampler and the stopping; what both gain over the grid is the space")
    return out


def diagnosis(rows: dict[str, Any], max_epochs: int, rung_epoch: int) -> dict[str, Any]:
    """What the runs say about the space and the rung schedule (every full-length run, deduplicated:
    ours and random share their first, random, configurations when their seeds match)."""
    runs: dict[str, dict[str, Any]] = {}
    searched = [r for method in ("ours", "random") for seed_rows in rows[method].values() for r in seed_rows]
    for source, method_rows in (("grid", rows["grid"]), ("search", searched)):
        by_trial: dict[str, dict[int, float]] = {}
        configs: dict[str, Any] = {}
        for r in method_rows:
            by_trial.setdefault(r["trial_id"], {})[int(r["epoch"])] = float(r["val_psnr"])
            configs[r["trial_id"]] = r["config"]
        for trial, values in by_trial.items():
            if len(values) == max_epochs:
                key = repr(sorted(configs[trial].items()))
                runs.setdefault(key, {"source": source, "values": [values[e] for e in range(1, max_epochs + 1)]})
    finals = sorted((r["values"][-1] for r in runs.values()), reverse=True)
    grid_best = max((r["values"][-1] for r in runs.values() if r["source"] == "grid"), default=float("nan"))
    searched_runs = [r for r in runs.values() if r["source"] == "search"]
    rho = spearman([r["values"][rung_epoch - 1] for r in runs.values()], [r["values"][-1] for r in runs.values()])
    return {"full_runs": len(runs), "searched_full_runs": len(searched_runs),
            "beat_grid_best": sum(r["values"][-1] > grid_best for r in searched_runs),
            "grid_ranks": sorted(finals.index(r["values"][-1]) + 1 for r in runs.values() if r["source"] == "grid"),
            "rung_epoch": rung_epoch, "rung_rank_correlation": None if rho is None else round(rho, 2),
            "searched_final_median": float(statistics.median([r["values"][-1] for r in searched_runs]))
            if searched_runs else None}


def build_report(args: argparse.Namespace, mode: dict[str, Any], seeds: list[int], rows: dict[str, Any],
                 timings: dict[str, float], load_before: list[float] | None, wall_start: float,
                 complete: bool) -> dict[str, Any]:
    """Curves, per-seed comparisons and medians over the searches finished so far."""
    fixed = mode["fixed_all"]
    grid_curve = curve(rows["grid"])
    report: dict[str, Any] = {
        "benchmark": "efficiency", "complete": complete, "command": command_line(), "smoke": args.smoke,
        "machine": machine_info(), "versions": library_versions(),
        "load_average_before": load_before, "load_average_after": load_average(),
        "wall_s": time.perf_counter() - wall_start, "wall_s_each": timings,
        "settings": {"data": mode.get("data"), "training_seeds": TRAINING_SEEDS, "fixed": fixed, "trials": mode["trials"],
                     "random_trials": mode["random_trials"],
                     "max_epochs": fixed["num_epoch"],
                     "asha": mode["asha"], "tpe_n_startup_trials": mode["n_startup"], "seeds": seeds,
                     "grid": {"kl_anneal_type": list(GRID_KL), "teacher_forcing": GRID_TF}},
        "grid": {"best": grid_curve[1][-1], "total_epochs": grid_curve[0][-1],
                 "epochs_to_reach_best": first_reach(grid_curve, grid_curve[1][-1])},
        "curves": {"grid": list(grid_curve), "ours": {}, "random": {}},
        "per_seed": {"ours": {}, "random": {}},
        "raw": rows,
    }
    for method in ("ours", "random"):
        for seed, method_rows in rows[method].items():
            c = curve(method_rows)
            report["curves"][method][seed] = list(c)
            report["per_seed"][method][seed] = compare(c, grid_curve)
    for method, prefix in (("ours", ""), ("random", "random_")):
        per = list(report["per_seed"][method].values())
        report[f"{prefix}epochs_fraction_to_reach_grid_best"] = median_or_none(
            [c["epochs_fraction_to_reach_grid_best"] for c in per], float("inf"))
        report[f"{prefix}psnr_gain_at_equal_epochs_db"] = median_or_none(
            [c["psnr_gain_at_equal_epochs_db"] for c in per], float("nan"))
    frac, gain = report["epochs_fraction_to_reach_grid_best"], report["psnr_gain_at_equal_epochs_db"]
    report["targets"] = {"epochs_fraction_to_reach_grid_best <= 1/3": frac is not None and frac <= 1 / 3,
                         "psnr_gain_at_equal_epochs_db >= 1": gain is not None and gain >= 1.0}
    report["diagnosis"] = diagnosis(rows, fixed["num_epoch"], min(mode["asha"]["grace_period"], fixed["num_epoch"]))
    report["notes"] = notes(report, mode)
    report["markdown"] = markdown(report)
    return report


def save(args: argparse.Namespace, report: dict[str, Any]) -> tuple[Path, Path]:
    name = args.out or ("efficiency.smoke.json" if args.smoke else "efficiency.json")
    path = write_json(name, report)
    html = RESULTS_DIR / (Path(name).stem + ".html")
    write_html(report, html)
    return path, html


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--smoke", action="store_true", help="1 seed, 2 trials of 2 epochs, tiny frames")
    p.add_argument("--seeds", type=int, default=None, help="sampler seeds (default 3; smoke 1)")
    p.add_argument("--trials", type=int, default=None, help="trials of ours (TPE + ASHA; default 12; smoke 2)")
    p.add_argument("--out", default=None, help="results file name under bench/results/")
    p.add_argument("--data", default=None, help="a dataset in the Lab4 layout (default: data/synthetic-small, "
                   "generated if missing)")
    p.add_argument("--reanalyse", metavar="JSON", default=None,
                   help="recompute the diagnosis, notes and table of a results file from its raw runs and "
                        "redraw its .html figure (trains nothing)")
    return p.parse_args(argv)


def reanalyse(path: Path) -> int:
    """Re-derive the diagnosis, notes and markdown of a finished run from its `raw` rows, in place,
    and redraw its figure beside it (the HTML is not committed: plotly.js inlined is ~5 MB)."""
    report = json.loads(path.read_text())
    settings = report["settings"]
    mode = {**copy.deepcopy(SMOKE if report.get("smoke") else FULL), "trials": settings["trials"],
            "random_trials": settings.get("random_trials", settings["trials"]), "asha": settings["asha"],
            "n_startup": settings["tpe_n_startup_trials"]}
    report["diagnosis"] = diagnosis(report["raw"], settings["max_epochs"],
                                    min(settings["asha"]["grace_period"], settings["max_epochs"]))
    report["notes"] = notes(report, mode)
    report["markdown"] = markdown(report)
    path.write_text(json.dumps(report, indent=2) + "\n")
    html = path.with_suffix(".html")
    write_html(report, html)
    print(report["markdown"], *report["notes"], f"wrote {path} and {html}", sep="\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.reanalyse:
        return reanalyse(Path(args.reanalyse))
    mode = copy.deepcopy(SMOKE if args.smoke else FULL)
    base = yaml.safe_load(BASE_SPACE.read_text())
    if mode["asha"] is None:
        mode["asha"] = dict(base["early_terminate"])
    tpe = base.get("sampler", {}).get("type", "tpe") == "tpe"
    mode["sampler"] = base.get("sampler", {}).get("type", "tpe")
    if not tpe:
        mode["n_startup"] = None  # quick.yaml's sampler has no start-up trials
    elif mode["n_startup"] is None:
        mode["n_startup"] = int(base.get("sampler", {}).get("n_startup_trials", 10))
    if args.trials:
        mode["trials"] = args.trials
    if args.trials and tpe:
        # at most half the trials random, whatever the budget (5 of 6 random is no TPE at all)
        mode["n_startup"] = max(1, min(mode["n_startup"], args.trials // 2))
    seeds = list(range(args.seeds if args.seeds is not None else (1 if args.smoke else 3)))
    if not seeds or mode["trials"] < 1:
        print("error: --seeds and --trials must be >= 1", file=sys.stderr)
        return 2
    import ray
    import torch

    from cvae.families.lab4_2024.data import load_lab_data

    torch.set_num_threads(1)
    load_before, wall_start = load_average(), time.perf_counter()
    data_root = Path(args.data).resolve() if args.data else SMALL_DATA
    if not data_root.exists():
        if args.data:
            print(f"error: --data {args.data}: no such folder", file=sys.stderr)
            return 2
        from cvae.families.lab4_2024.synthetic import generate

        generate(SMALL_DATA, preset="small", seed=0, progress=False)
    fixed = {**base.get("fixed", {}), **mode["fixed"]}
    fixed.pop("seed", None)  # every trial has its own
    mode["fixed_all"] = fixed
    mode["data"] = str(data_root)
    data = load_lab_data(data_root, fixed["frame_H"], fixed["frame_W"], progress=False)
    rows: dict[str, Any] = {"ours": {}, "random": {}}
    timings: dict[str, float] = {}
    ray.init(include_dashboard=False, log_to_driver=False)  # one Ray session for every search
    try:
        with tempfile.TemporaryDirectory(prefix="bench-efficiency-") as tmp_name:
            tmp = Path(tmp_name)
            progress("grid: 6 hand-tuned runs")
            t0 = time.perf_counter()
            rows["grid"] = run_grid(base, mode, data_root, data)
            timings["grid"] = time.perf_counter() - t0
            for seed in seeds:
                for method in ("ours", "random"):
                    progress(f"{method}, seed {seed}: {mode['trials'] if method == 'ours' else mode['random_trials']} trials")
                    path = write_yaml(tmp / f"{method}-s{seed}.yaml", make_space(base, mode, method, seed, data_root))
                    t0 = time.perf_counter()
                    rows[method][str(seed)] = run_one_search(path, tmp / "runs", data)
                    timings[f"{method}-s{seed}"] = time.perf_counter() - t0
                    # Partial results after every search: a long run cut short still leaves its figures.
                    save(args, build_report(args, mode, seeds, rows, timings, load_before, wall_start,
                                            complete=False))
    finally:
        ray.shutdown()

    report = build_report(args, mode, seeds, rows, timings, load_before, wall_start, complete=True)
    path, html = save(args, report)
    print(report["markdown"])
    print(f"\nwrote {path} and {html}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
