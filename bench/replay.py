"""Searches replayed on the learning-curve table of bench/curves.py: many repetitions, no training.

    .venv/bin/python bench/replay.py                     # 200 repetitions per arm on curves-small.csv
    .venv/bin/python bench/replay.py --smoke             # 5 repetitions: replay-<data>.smoke.json
    .venv/bin/python bench/replay.py --reanalyse bench/results/replay-small.json   # statistics + figure, no replay

The table (bench/results/curves-<data>.csv, full 6-epoch curves of configurations spread over the wide space
of bench/curves.py: lab.yaml's parameters at quick.yaml's dims) stands in for training. Each repetition runs
every arm over the same table with common random numbers (the same repetition seed gives every arm the same
tick orders, Ray's bracket draws and seed draws of repeated configurations; the samplers get it as their seed).

Simulation (bench/simulator.py, shared with bench/stop_rates.py): 2 asynchronous workers, time = epochs
(each epoch of each trial takes one unit). At the start of a tick every free worker asks its arm for a trial; then each running trial produces its next epoch, the
workers in a random order, each result going to the scheduler (Ray's `on_trial_result`) and, unless the
scheduler said STOP, to the searcher. A trial ends at STOP, at its last epoch, or when its table curve
diverged; the scheduler's and the searcher's `on_trial_complete` then get its last result, as Tune calls
them. The budget is epochs spent by all trials together; a search runs until 4x the hand grid's epochs.

Arms (bench/replay_arms.py; each as the project would run it; the searchers are the project's, driven
without starting Ray):
- grid: spaces/writeups-grid.yaml's 6 runs (the table's `grid` curves), then nothing more.
- random: Optuna's RandomSampler through search.searcher.StudySearcher, free strata, no stopping.
- qmc: a scrambled Sobol sequence over every parameter (torch.quasirandom, mapped as bench/curves.py maps
  its design; Optuna's QMCSampler needs scipy, which the project does not install), no stopping.
- tpe: TPE as quick.yaml's `sampler:` block configures it (search.sampler.make_base_sampler: multivariate,
  group, constant liar, quick.yaml's n_startup_trials) over the whole space, free strata, no stopping.
- tpe_asha: tpe + Ray's own ASHAScheduler (quick.yaml's grace period, reduction factor; max_t = 6), stopped
  trials PRUNED in Optuna (runfolder/status.py classify_end via search.record_scheduler.RecordingScheduler).
- ours: what quick.yaml ran before this benchmark set its defaults: balanced strata by KL type (StudySearcher._enqueue_next picks the
  stratum, search.sampler.make_sampler's StratifiedSampler draws the rest from that stratum's own TPE) and
  search.scheduler.ScheduleAwareASHA (per stratum, never before the KL warm-up ends).
- ours_random: ours with the random sampler in each stratum (what the design adds without TPE); the best arm
  of the first full run, so quick.yaml's, strategies.yaml's and lab.yaml's default since.
- strata9: ours with KL type x tfr as the strata (strategies.yaml's 9 cells).
- hyperband: ours with ScheduleAwareASHA brackets 2 (grace period 1: rungs at epochs 1, 3 and 3; quick.yaml's
  grace 2 leaves a second bracket only a rung at max_t).

Lookup rule (bench/table.py; a sampled configuration -> a table curve): only the table's designs (grid and Sobol rows,
training seed 1) in the same categorical cell (kl_anneal_type, tfr) are candidates; the distance is the RMS
over the cell's other active parameters of |a - b| on [0, 1] scales (lr on a log scale, integers and floats
by their range; a categorical parameter 0 if equal, else 1); the nearest wins (ties: first in the table).
When the chosen design was also trained with other seeds (`repeat` rows) one of its curves is drawn with
the repetition's seed (common across arms). Reported: the lookup distances per arm and how often a search
ran the same table curve twice.

Statistics (bench/stats.py; per arm, over repetitions), at budgets of 1x, 2x and 4x the grid's epochs
(6 runs x 6 = 36):
- incumbent = the best val_psnr any trial reported so far (any epoch: a stopped trial's value is real);
- normalised regret = (best in table - incumbent) / (best in table - median), best = the highest val_psnr
  of any table run at any epoch, median = the median over the table's designs of their best val_psnr;
- IQM = mean of the middle 50% (scipy's trim_mean(x, 0.25)), 95% percentile-bootstrap interval (2000
  resamples of repetitions);
- paired difference to random: IQM(arm) - IQM(random), 95% interval from a paired bootstrap (the same
  resampled repetitions for both arms: common random numbers);
- P(end above the grid's best): the share of repetitions whose incumbent is above the grid's best value;
- stop rates per KL type (trials stopped before max_t / trials ended) and lookup distances.

SUCCESS RULE (fixed before the first full run):
  an arm "beats random" when the 95% paired-bootstrap interval of IQM(arm) - IQM(random) of normalised
  regret at 2x the grid's epochs lies entirely below 0.
  Issue 12's targets, judged for the default arm (the arm quick.yaml's sampler/early_terminate lines
  select): (a) at 2x, IQM regret at least 25% below random's and the default arm beats random;
  (b) at 1x, at least 90% of repetitions end above the grid's best.
  A miss is reported as plainly as a hit; `best_arm` is the arm with the lowest IQM regret at 2x (ties:
  the lower mean regret at 2x, then the lower IQM at 1x).

Writes bench/results/replay-<data>.json (--smoke: replay-<data>.smoke.json) with the settings, machine,
per-arm statistics, the raw incumbents (for --reanalyse) and a markdown table, plus replay-<data>.html (an
offline plotly figure, git-ignored: regret vs epochs per arm, IQM with its bootstrap band).
"""
from __future__ import annotations

import argparse
import datetime
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Optional

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from the repo root
    sys.path.insert(0, str(ROOT))

from bench.common import RESULTS_DIR, command_line, cpu_model, library_versions, load_average, progress  # noqa: E402
from bench.replay_arms import ARM_TEXT, ARMS, ArmSpec, Proposer, default_arm_of, make_arms  # noqa: E402
from bench.simulator import WORKERS, ReplayTrial, Started, replay  # noqa: E402
from bench.stats import at_budget, bootstrap_ci, iqm, regret  # noqa: E402
from bench.table import KL_TYPES, Lookup, Table, draw_curve, read_table  # noqa: E402

SPACES = ROOT / "spaces"
BUDGETS = {"1x": 1, "2x": 2, "4x": 4}
FIGURE_STEP = 3  # epochs between the figure's budget points
ROUND = 4  # decimals of the stored incumbents (dB); the grid's best is compared at the same rounding
SUCCESS_RULE = {
    "text": "an arm beats random when the 95% paired-bootstrap interval of IQM(arm) - IQM(random) of "
            "normalised regret at 2x the grid's epochs lies entirely below 0",
    "budget": "2x",
    "targets": {"default_regret_reduction_vs_random_at_2x": 0.25, "default_beats_random_at_2x": True,
                "default_p_above_grid_at_1x": 0.90},
}


# --- one replayed search ----------------------------------------------------------------

def simulate(arm: ArmSpec, table: Table, lookup: Lookup, rep_seed: int, budget: int) -> dict[str, Any]:
    """One search of `budget` epochs on 2 workers: the incumbent after every epoch and what each trial did."""
    rng = np.random.default_rng(rep_seed)
    np.random.seed(rep_seed % 2 ** 32)  # Ray draws brackets from numpy's global generator
    proposer = Proposer(arm, table, rep_seed, table.max_t)
    scheduler = arm.scheduler() if arm.scheduler else None
    looked_up: list[dict[str, Any]] = []  # per started trial, in start order: its design, distance and KL type

    def start() -> Optional[Started]:
        asked = proposer.ask()
        if asked is None:
            return None
        trial_id, config = asked
        index, dist = lookup(config)
        looked_up.append({"design": index, "distance": dist, "kl": str(config.get("kl_anneal_type"))})
        return Started(ReplayTrial(trial_id, dict(config)), draw_curve(table, index, rep_seed))

    out = replay(start, scheduler, rng, table.max_t, budget=budget, listener=proposer)
    trials = [{**seen, "last_epoch": o.last_epoch, "stopped": o.stopped, "ended": o.ended}
              for seen, o in zip(looked_up, out.trials)]
    return {"trace": out.trace, "trials": trials}


# --- analysis -----------------------------------------------------------------------------

def analyse(raw: dict[str, Any], table_stats: dict[str, Any], default_arm: str, resamples: int,
            seed: int) -> dict[str, Any]:
    """Per-arm regret IQM and intervals, paired differences to random, P(above grid), and the verdict."""
    points = raw["budget_points"]
    grid_epochs = table_stats["grid_epochs"]
    regrets = {arm: regret(np.array(v, dtype=float), table_stats) for arm, v in raw["incumbents"].items()}
    arms: dict[str, Any] = {}
    for arm, r in regrets.items():
        out: dict[str, Any] = {"budgets": {}, "paired_vs_random": {}}
        for label, mult in BUDGETS.items():
            col = points.index(mult * grid_epochs)
            x = r[:, col]
            low, high = bootstrap_ci({"x": x}, lambda s: iqm(s["x"]), resamples, seed)
            incumbent = np.array(raw["incumbents"][arm])[:, col]
            out["budgets"][label] = {"epochs": mult * grid_epochs, "iqm_regret": float(iqm(x)), "ci_low": low,
                                     "ci_high": high, "median_regret": float(np.median(x)),
                                     "mean_regret": float(np.mean(x)),
                                     "p_above_grid": float(np.mean(incumbent > round(table_stats["grid_best"], ROUND))),
                                     "incumbent_median_db": float(np.median(incumbent))}
            if "random" in regrets:
                y = regrets["random"][:, col]
                low, high = bootstrap_ci({"x": x, "y": y}, lambda s: iqm(s["x"]) - iqm(s["y"]), resamples, seed)
                diff = float(iqm(x) - iqm(y))
                rand = float(iqm(y))
                out["paired_vs_random"][label] = {
                    "diff_iqm": diff, "ci_low": low, "ci_high": high,
                    "relative_reduction": None if rand == 0 else -diff / rand,
                    "p_better": float(np.mean(x < y)), "p_worse": float(np.mean(x > y))}
        arms[arm] = out
    rule_budget = SUCCESS_RULE["budget"]
    for arm, out in arms.items():
        p = out["paired_vs_random"].get(rule_budget)
        out["beats_random"] = bool(p and arm != "random" and p["ci_high"] < 0)
    # Ties (IQM regret 0 when most searches found the table's best) go to the lower mean, then to 1x.
    best_arm = min(arms, key=lambda a: (arms[a]["budgets"][rule_budget]["iqm_regret"],
                                        arms[a]["budgets"][rule_budget]["mean_regret"],
                                        arms[a]["budgets"]["1x"]["iqm_regret"]))
    targets = {}
    if default_arm in arms and "random" in arms:
        d = arms[default_arm]
        t = SUCCESS_RULE["targets"]
        red = d["paired_vs_random"][rule_budget]["relative_reduction"]
        targets = {
            "regret_reduction_vs_random_at_2x": {"value": red, "target": t["default_regret_reduction_vs_random_at_2x"],
                                                 "met": red is not None and red >= t["default_regret_reduction_vs_random_at_2x"]},
            "beats_random_at_2x": {"value": d["beats_random"], "met": d["beats_random"]},
            "p_above_grid_at_1x": {"value": d["budgets"]["1x"]["p_above_grid"],
                                   "target": t["default_p_above_grid_at_1x"],
                                   "met": d["budgets"]["1x"]["p_above_grid"] >= t["default_p_above_grid_at_1x"]},
        }
    return {"arms": arms, "best_arm": best_arm, "default_arm": default_arm, "targets": targets,
            "targets_met": bool(targets) and all(v["met"] for v in targets.values())}


def trial_stats(trials_per_rep: list[list[dict[str, Any]]], max_t: int) -> dict[str, Any]:
    """Stop rates per KL type, lookup distances and repeated curves over every repetition of one arm."""
    ended = [t for rep in trials_per_rep for t in rep if t["ended"]]
    dists = np.array([t["distance"] for rep in trials_per_rep for t in rep]) if trials_per_rep else np.array([])
    out: dict[str, Any] = {"trials_per_rep_mean": float(np.mean([len(r) for r in trials_per_rep])),
                           "stop_rate": {}, "lookup_distance": {}, "repeated_curve_share": None}
    for kl in (*KL_TYPES, "all"):
        mine = [t for t in ended if kl == "all" or t["kl"] == kl]
        out["stop_rate"][kl] = {"ended": len(mine), "rate": (sum(t["stopped"] for t in mine) / len(mine)) if mine else None}
    if len(dists):
        out["lookup_distance"] = {"median": float(np.median(dists)), "p90": float(np.percentile(dists, 90)),
                                  "max": float(np.max(dists)), "exact_share": float(np.mean(dists == 0))}
    dup = [len(rep) - len({t["design"] for t in rep}) for rep in trials_per_rep]
    total = sum(len(rep) for rep in trials_per_rep)
    out["repeated_curve_share"] = sum(dup) / total if total else None
    return out


# --- report ---------------------------------------------------------------------------------

def _f(x: Optional[float], fmt: str = ".2f") -> str:
    return "-" if x is None else format(x, fmt)


def markdown(report: dict[str, Any]) -> str:
    a = report["analysis"]
    lines = ["| arm | IQM regret 1x [95% CI] | 2x | 4x | mean 2x | IQM 2x minus random [95% CI] | P(above grid) 1x "
             "| 2x | trials/search | stop rate C / M / N | lookup distance median (p90) | repeated curves |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for arm, s in a["arms"].items():
        b = s["budgets"]
        p = s["paired_vs_random"].get("2x")
        t = report["trials"][arm]
        sr = t["stop_rate"]
        stops = " / ".join("-" if sr[k]["rate"] is None else f"{100 * sr[k]['rate']:.0f}%" for k in KL_TYPES)
        ld = t["lookup_distance"]
        paired = "-" if arm == "random" or not p else \
            f"{p['diff_iqm']:+.3f} [{p['ci_low']:+.3f}, {p['ci_high']:+.3f}]" + (" **beats**" if s["beats_random"] else "")
        lines.append(
            f"| {arm}{' (default)' if arm == a['default_arm'] else ''} "
            + "".join(f"| {b[k]['iqm_regret']:.3f} [{b[k]['ci_low']:.3f}, {b[k]['ci_high']:.3f}] " for k in BUDGETS)
            + f"| {b['2x']['mean_regret']:.3f} | {paired} | {100 * b['1x']['p_above_grid']:.0f}% | {100 * b['2x']['p_above_grid']:.0f}% "
            f"| {t['trials_per_rep_mean']:.1f} | {stops} "
            f"| {_f(ld.get('median'), '.3f')} ({_f(ld.get('p90'), '.3f')}) | {100 * (t['repeated_curve_share'] or 0):.0f}% |")
    ts = report["table"]
    lines += ["", f"Table: {ts['designs']} designs ({ts['runs']} runs), best {ts['best']:.2f} dB, median of designs' "
              f"best {ts['median']:.2f} dB, grid's best {ts['grid_best']:.2f} dB (regret "
              f"{(ts['best'] - ts['grid_best']) / (ts['best'] - ts['median']):.3f}); budgets 1x/2x/4x = "
              f"{ts['grid_epochs']}/{2 * ts['grid_epochs']}/{4 * ts['grid_epochs']} epochs; "
              f"{report['settings']['repetitions']} repetitions per arm."]
    n = ts["noise"]
    if n.get("repeated_designs"):
        lines.append(f"Noise floor: {n['repeated_designs']} designs re-run with another training seed: "
                     f"|best difference| mean {n['seed_abs_diff_best_db_mean']:.2f} dB, max "
                     f"{n['seed_abs_diff_best_db_max']:.2f} dB (one run's sd {n['seed_sd_best_db']:.2f} dB) vs the "
                     f"table's sd of best values {n['table_best_sd_db']:.2f} dB.")
    tg = a["targets"]
    if tg:
        lines.append(f"Targets for the default arm ({a['default_arm']}): "
                     + "; ".join(f"{k} = {_f(v['value'], '.3f') if isinstance(v['value'], float) else v['value']} "
                                 f"{'met' if v['met'] else 'MISSED'}" for k, v in tg.items())
                     + f". Best arm at 2x: {a['best_arm']}.")
    return "\n".join(lines)


def write_html(report: dict[str, Any], path: Path, resamples: int = 300) -> None:
    """Normalised regret vs epochs per arm: IQM line and 95% bootstrap band (offline, plotly.js inlined)."""
    import plotly.graph_objects as go
    from plotly.colors import qualitative

    raw, ts = report["raw"], report["table"]
    xs = raw["budget_points"]
    fig = go.Figure()
    for k, (arm, inc) in enumerate(raw["incumbents"].items()):
        r = regret(np.array(inc, dtype=float), ts)
        color = qualitative.Plotly[k % len(qualitative.Plotly)]
        mid = [float(iqm(r[:, j])) for j in range(len(xs))]
        band = [bootstrap_ci({"x": r[:, j]}, lambda s: iqm(s["x"]), resamples, 0) for j in range(len(xs))]
        fig.add_trace(go.Scatter(x=xs + xs[::-1], y=[b[1] for b in band] + [b[0] for b in band][::-1],
                                 fill="toself", fillcolor=color, opacity=0.15, line={"width": 0},
                                 hoverinfo="skip", showlegend=False, legendgroup=arm))
        fig.add_trace(go.Scatter(x=xs, y=mid, mode="lines", line={"color": color, "width": 2},
                                 name=ARM_TEXT.get(arm, arm), legendgroup=arm))
    for mult in BUDGETS.values():
        fig.add_vline(x=mult * ts["grid_epochs"], line={"dash": "dot", "color": "grey"})
    fig.update_layout(title=f"Normalised regret vs epochs spent ({report['settings']['repetitions']} replayed "
                            f"searches per arm; IQM and 95% bootstrap band; dotted: 1x/2x/4x the grid's epochs)",
                      xaxis_title="epochs spent by all trials (2 workers)",
                      yaxis_title="normalised regret (0 = table's best, 1 = table's median)")
    fig.write_html(path, include_plotlyjs=True, full_html=True)


# --- main ------------------------------------------------------------------------------------

def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="small", help="the table's data name: bench/results/curves-<data>.csv")
    p.add_argument("--table", default=None, help="a table CSV (default bench/results/curves-<data>.csv)")
    p.add_argument("--reps", type=int, default=None, help="repetitions per arm (default 200; smoke 5)")
    p.add_argument("--arms", default=",".join(ARMS), help=f"comma-separated arms (default all: {','.join(ARMS)})")
    p.add_argument("--seed", type=int, default=0, help="the first repetition's seed")
    p.add_argument("--resamples", type=int, default=None, help="bootstrap resamples (default 2000; smoke 200)")
    p.add_argument("--smoke", action="store_true", help="5 repetitions; writes replay-<data>.smoke.json")
    p.add_argument("--out", default=None, help="results file (default bench/results/replay-<data>[.smoke].json)")
    p.add_argument("--reanalyse", metavar="JSON", default=None,
                   help="recompute the statistics of a results file from its raw incumbents, redraw its figure")
    return p.parse_args(argv)


def reanalyse(path: Path) -> int:
    report = json.loads(path.read_text())
    quick = yaml.safe_load((SPACES / "quick.yaml").read_text())
    report["analysis"] = analyse(report["raw"], report["table"], default_arm_of(quick),
                                 report["settings"]["resamples"], report["settings"]["seed"])
    _copy_keys(report)
    report["markdown"] = markdown(report)
    path.write_text(json.dumps(report, indent=1) + "\n")
    html = path.with_suffix(".html")
    write_html(report, html)
    print(report["markdown"], f"\nwrote {path} and {html}", sep="\n")
    return 0


def _copy_keys(report: dict[str, Any]) -> None:
    """The issue's top-level keys: repetitions, default_arm, success_rule, per arm budgets and paired_vs_random."""
    a = report["analysis"]
    report["repetitions"] = report["settings"]["repetitions"]
    report["default_arm"] = a["default_arm"]
    report["best_arm"] = a["best_arm"]
    report["success_rule"] = SUCCESS_RULE
    report["targets"] = a["targets"]
    report["targets_met"] = a["targets_met"]
    report["arms"] = {arm: {"budgets": {k: {x: s["budgets"][k][x] for x in ("iqm_regret", "ci_low", "ci_high",
                                                                             "p_above_grid")} for k in BUDGETS},
                            "paired_vs_random": {"2x": {x: s["paired_vs_random"]["2x"][x]
                                                        for x in ("diff_iqm", "ci_low", "ci_high")}}
                            if "2x" in s["paired_vs_random"] else {},
                            "beats_random": s["beats_random"]}
                      for arm, s in a["arms"].items()}


def main(argv: list[str] | None = None) -> int:
    import logging

    args = parse_args(argv)
    if args.reanalyse:
        return reanalyse(Path(args.reanalyse))
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.getLogger("search.searcher").setLevel(logging.ERROR)
    reps = args.reps or (5 if args.smoke else 200)
    resamples = args.resamples or (200 if args.smoke else 2000)
    names = tuple(a.strip() for a in args.arms.split(",") if a.strip())
    unknown = [a for a in names if a not in ARMS]
    if unknown:
        print(f"error: --arms {unknown}: unknown (known: {', '.join(ARMS)})", file=sys.stderr)
        return 2
    table_path = Path(args.table) if args.table else RESULTS_DIR / f"curves-{args.data}.csv"
    if not table_path.exists():
        print(f"error: {table_path}: no table (build it with bench/curves.py)", file=sys.stderr)
        return 2
    wall_start = time.perf_counter()
    table = read_table(table_path)
    lookup = Lookup(table)
    quick = yaml.safe_load((SPACES / "quick.yaml").read_text())
    budget = max(BUDGETS.values()) * table.grid_epochs
    points = sorted({*range(FIGURE_STEP, budget + 1, FIGURE_STEP), *(m * table.grid_epochs for m in BUDGETS.values())})
    incumbents: dict[str, list[list[float]]] = {}
    trials: dict[str, list[list[dict[str, Any]]]] = {}
    arm_wall: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="bench-replay-") as tmp:
        arms = make_arms(table, quick, names, Path(tmp))
        for name, arm in arms.items():
            t0 = time.perf_counter()
            incumbents[name], trials[name] = [], []
            for k in range(reps):
                out = simulate(arm, table, lookup, args.seed + k, budget)
                incumbents[name].append([round(at_budget(out["trace"], x), ROUND) for x in points])
                trials[name].append(out["trials"])
                if (k + 1) % 50 == 0 or k + 1 == reps:
                    progress(f"{name}: {k + 1}/{reps} searches")
            arm_wall[name] = round(time.perf_counter() - t0, 1)
    table_stats = {"runs": sum(len(d["curves"]) for d in table.designs), "designs": len(table.designs),
                   "best": table.best, "median": table.median, "grid_best": table.grid_best,
                   "grid_epochs": table.grid_epochs, "max_t": table.max_t, "noise": table.noise,
                   "cells": {c: len(v) for c, v in table.by_cell.items()}}
    raw = {"budget_points": points, "incumbents": incumbents}
    report: dict[str, Any] = {
        "benchmark": "replay", "smoke": args.smoke, "command": command_line(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cpu_model": cpu_model(), "load_average": load_average()},
        "versions": library_versions(), "wall_s": None, "wall_s_per_arm": arm_wall,
        "settings": {"table": str(table_path.relative_to(ROOT)) if table_path.is_relative_to(ROOT) else str(table_path),
                     "repetitions": reps, "seed": args.seed, "resamples": resamples, "workers": WORKERS,
                     "budget_epochs": budget, "arms": {n: {"text": ARM_TEXT[n], **a.settings} for n, a in arms.items()},
                     "lookup": "nearest design in the same (kl_anneal_type, tfr) cell; RMS of |a-b| on [0,1] "
                               "scales (lr log), categoricals 0/1; repeated designs: one seed's curve drawn per "
                               "repetition"},
        "table": table_stats,
        "trials": {n: trial_stats(t, table.max_t) for n, t in trials.items()},
        "raw": raw,
    }
    report["analysis"] = analyse(raw, table_stats, default_arm_of(quick), resamples, args.seed)
    _copy_keys(report)
    report["markdown"] = markdown(report)
    report["wall_s"] = round(time.perf_counter() - wall_start, 1)
    name = args.out or f"replay-{args.data}{'.smoke' if args.smoke else ''}.json"
    path = Path(name) if Path(name).is_absolute() or "/" in name else RESULTS_DIR / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=1) + "\n")
    write_html(report, path.with_suffix(".html"))
    progress(f"wrote {path} and {path.with_suffix('.html').name}")
    print(report["markdown"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
