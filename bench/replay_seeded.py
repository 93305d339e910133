"""Searches replayed on the seeded table, judged once against bench/preregistration.yaml.

    .venv/bin/python bench/replay_seeded.py            # the registered analysis -> bench/results/replay-seeded.json
    .venv/bin/python bench/replay_seeded.py --smoke    # 4 repetitions, 3 arms, 300 resamples: checks the script

Everything it decides comes from the pre-registration: the table, the arms, the default, the workers, the
budgets, the repetitions and the success rule. What it adds to bench/replay.py (the first table's replay):
- noise: each trial draws one of its design's training seeds (common random numbers: the draw depends on
  the repetition, the trial's position and the design, so two arms reaching the same design at the same
  point see the same seed);
- cost: wall time (bench/simulator.replay_timed), each epoch taking the drawn seed's training + validation
  seconds; budgets are multiples of the hand grid's compute (its 6 designs, mean over seeds), spread over
  the workers (elapsed = compute / workers);
- the incumbent's regret counts its configuration's true value (the seed-mean best), not the lucky seed;
- a surrogate chosen by its leave-one-design-out error (bench/surrogate.py), reported next to the seed noise;
- Holm over the 8 arm-vs-random comparisons at 2x with 2 workers, on paired-bootstrap p-values.
"""
from __future__ import annotations

import argparse
import datetime
import json
import logging
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Optional

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import RESULTS_DIR, command_line, library_versions, load_average, machine_info, progress  # noqa: E402
from bench.replay_arms import ArmSpec, Proposer, make_arms  # noqa: E402
from bench.simulator import ReplayTrial, TimedStart, incumbent_at, replay_timed  # noqa: E402
from bench.stats import bootstrap_ci, iqm, regret  # noqa: E402
from bench.surrogate import SeededTable, loo_errors, predict, read_seeded  # noqa: E402
from search.stats import holm  # noqa: E402

PREREGISTRATION = ROOT / "bench" / "preregistration.yaml"
BUDGETS = {"1x": 1.0, "2x": 2.0, "4x": 4.0}
FIGURE_PNG = ROOT / "docs" / "images" / "replay-seeded.png"
PRIMARY = ("2x", 2)  # budget, workers of the judged comparisons
ALPHA = 0.05


def grid_compute_s(seeded: SeededTable) -> float:
    """The hand grid's compute: its designs' full-run seconds, mean over seeds, summed."""
    return float(sum(np.mean([sum(s) for s in seeded.seconds[i]]) for i in seeded.table.grid))


def simulate(arm: ArmSpec, seeded: SeededTable, surrogate: str, rep_seed: int, budget_s: float,
             workers: int) -> dict[str, Any]:
    """One search on the seeded table: its trace of (elapsed s, incumbent's true value)."""
    np.random.seed(rep_seed % 2 ** 32)  # Ray draws brackets from numpy's global generator
    proposer = Proposer(arm, seeded.table, rep_seed, seeded.table.max_t)
    scheduler = arm.scheduler() if arm.scheduler else None
    position = 0

    def start() -> Optional[TimedStart]:
        nonlocal position
        asked = proposer.ask()
        if asked is None:
            return None
        trial_id, config = asked
        _, _, design = predict(seeded, "nearest", config, 0)
        seed_index = int(np.random.default_rng([rep_seed, position, design]).integers(seeded.seeds))
        position += 1
        curve, seconds, nearest = predict(seeded, surrogate, config, seed_index)
        return TimedStart(ReplayTrial(trial_id, dict(config)), curve, seconds, seeded.true_best[nearest])

    out = replay_timed(start, scheduler, seeded.table.max_t, budget_s, listener=proposer, workers=workers)
    return {"trace": out.trace, "trials": len(out.trials), "stopped": sum(o.stopped for o in out.trials)}


def paired_test(x: np.ndarray, y: np.ndarray, resamples: int, seed: int) -> dict[str, float]:
    """IQM(x) - IQM(y) over paired repetitions: its 95% bootstrap interval and a two-sided p-value
    (twice the smaller share of resampled differences on either side of 0)."""
    idx = np.random.default_rng(seed).integers(0, len(x), size=(resamples, len(x)))
    diffs = iqm(x[idx]) - iqm(y[idx])
    p = min(1.0, 2 * min(float(np.mean(diffs <= 0)), float(np.mean(diffs >= 0))))
    base = float(iqm(y))
    diff = float(iqm(x) - base)
    return {"diff_iqm": diff, "ci_low": float(np.percentile(diffs, 2.5)), "ci_high": float(np.percentile(diffs, 97.5)),
            "p": p, "relative_reduction": None if base == 0 else -diff / base}


def analyse(regrets: dict[str, dict[str, np.ndarray]], true_values: dict[str, dict[str, np.ndarray]],
            grid_best: float, default: str, resamples: int, seed: int) -> dict[str, Any]:
    """Per arm and setting (budget x workers): IQM regret; each arm vs random paired; Holm at the primary
    setting; the registered verdict for the default."""
    arms: dict[str, Any] = {}
    for arm, by_setting in regrets.items():
        arms[arm] = {}
        for setting, r in by_setting.items():
            entry: dict[str, Any] = {"iqm_regret": float(iqm(r)), "mean_regret": float(np.mean(r)),
                                     "p_above_grid": float(np.mean(true_values[arm][setting] > grid_best))}
            if arm != "random" and "random" in regrets:
                entry["vs_random"] = paired_test(r, regrets["random"][setting], resamples, seed)
            arms[arm][setting] = entry
    primary = f"{PRIMARY[0]}@{PRIMARY[1]}"
    judged = [a for a in arms if a != "random" and "vs_random" in arms[a].get(primary, {})]
    adjusted, _ = holm([arms[a][primary]["vs_random"]["p"] for a in judged]) if judged else ([], [])
    for a, p in zip(judged, adjusted):
        arms[a][primary]["vs_random"]["p_holm"] = p
        arms[a][primary]["vs_random"]["beats_random"] = p < ALPHA and arms[a][primary]["vs_random"]["diff_iqm"] < 0
    verdict: dict[str, Any] = {}
    if default in judged:
        v = arms[default][primary]["vs_random"]
        red = v["relative_reduction"]
        above = arms[default].get(f"1x@{PRIMARY[1]}", {}).get("p_above_grid")
        verdict = {"beats_random": v["beats_random"], "p_holm": v["p_holm"], "diff_iqm": v["diff_iqm"],
                   "ci": [v["ci_low"], v["ci_high"]], "relative_reduction": red,
                   "target_met": bool(v["beats_random"] and red is not None and red >= 0.25),
                   "p_above_grid_at_1x": above, "grid_target_met": above is not None and above >= 0.90}
    return {"arms": arms, "comparisons_corrected": len(judged), "primary": primary, "verdict": verdict}


def predicted_difference(true_values: dict[str, dict[str, np.ndarray]], default: str, setting: str,
                         resamples: int, seed: int) -> dict[str, Any] | None:
    """What the replay predicts for bench/real_runs.py: the mean difference default - random of the
    incumbent's true value (dB) at one setting, with its 95% paired-bootstrap interval, and the sd of one
    search pair's difference (what 5 real pairs are up against)."""
    if default not in true_values or "random" not in true_values or setting not in true_values[default]:
        return None
    x, y = true_values[default][setting], true_values["random"][setting]
    low, high = bootstrap_ci({"x": x, "y": y}, lambda r: r["x"].mean(axis=1) - r["y"].mean(axis=1), resamples, seed)
    return {"setting": setting, "mean_db": float(np.mean(x - y)), "ci95_db": [low, high],
            "sd_of_one_pair_db": float(np.std(x - y, ddof=1)) if len(x) > 1 else None}


def write_figure(report: dict[str, Any], html: Path, png: Path | None = None, resamples: int = 1000) -> None:
    """IQM normalised regret per arm at 1x/2x/4x, 2 and 8 workers, with 95% bootstrap intervals: an offline
    plotly page (plotly.js inlined), and a PNG of it when a headless Chromium is on the PATH."""
    import shutil
    import subprocess

    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    table, raw = report["table"], report["raw"]
    table_stats = {"best": table["best_db"], "median": table["median_db"]}
    default = report["preregistration"]["default_arm"]
    workers = report["settings"]["workers"]
    fig = make_subplots(rows=1, cols=len(workers), shared_yaxes=True, horizontal_spacing=0.04,
                        subplot_titles=[f"{w} workers" for w in workers])
    colors = {"1x": "#9ecae1", "2x": "#3182bd", "4x": "#08306b"}
    arms = list(raw)
    for col, w in enumerate(workers, 1):
        for label, color in colors.items():
            mids, lows, highs = [], [], []
            for arm in arms:
                r = regret(np.array(raw[arm][f"{label}@{w}"], dtype=float), table_stats)
                low, high = bootstrap_ci({"r": r}, lambda s: iqm(s["r"]), resamples, 0)
                mids.append(float(iqm(r)))
                lows.append(low)
                highs.append(high)
            fig.add_trace(go.Scatter(
                x=mids, y=[f"<b>{a}</b>" if a == default else a for a in arms], mode="markers",
                marker={"color": color, "size": 9}, name=f"{label} the grid's compute", legendgroup=label,
                showlegend=col == 1, error_x={"type": "data", "symmetric": False,
                                              "array": np.subtract(highs, mids).tolist(),
                                              "arrayminus": np.subtract(mids, lows).tolist()}), row=1, col=col)
        fig.update_xaxes(title_text="IQM normalised regret (0 = table's best, 1 = its median)", row=1, col=col)
    verdict = report["analysis"]["verdict"]
    fig.update_layout(
        title=(f"Replayed searches on the seeded table, {report['settings']['repetitions']} per arm, IQM with 95% "
               f"bootstrap intervals<br><sup>default {default} minus random at 2x, 2 workers: "
               f"{verdict.get('diff_iqm', float('nan')):+.3f}, Holm p {verdict.get('p_holm', float('nan')):.3f}"
               f"{'; ' + verdict['caveat'] if verdict.get('caveat') else ''}</sup>"),
        width=1240, height=560, template="plotly_white", legend={"orientation": "h", "y": -0.2})
    fig.write_html(html, include_plotlyjs=True, full_html=True, config={"displayModeBar": False})
    chromium = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
    if png is not None and chromium:
        with tempfile.TemporaryDirectory() as profile:
            subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                            f"--user-data-dir={profile}", f"--screenshot={png}", "--window-size=1260,580", "--hide-scrollbars",
                            "--virtual-time-budget=5000", html.resolve().as_uri()], capture_output=True, timeout=120)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preregistration", default=str(PREREGISTRATION))
    p.add_argument("--table", default=None, help="override the registered table (tests)")
    p.add_argument("--smoke", action="store_true", help="4 repetitions of 3 arms, 300 resamples")
    p.add_argument("--out", default=None, help="default bench/results/replay-seeded[.smoke].json")
    p.add_argument("--figure", metavar="JSON", default=None,
                   help="only redraw the figure of a written results file: JSON's .html beside it and, with a "
                        "headless Chromium, docs/images/replay-seeded.png (seconds, no replay)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.figure:
        written = Path(args.figure)
        write_figure(json.loads(written.read_text()), written.with_suffix(".html"), FIGURE_PNG)
        progress(f"wrote {written.with_suffix('.html')} and {FIGURE_PNG}")
        return 0
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.getLogger("search.searcher").setLevel(logging.ERROR)
    prereg = yaml.safe_load(Path(args.preregistration).read_text())
    table_path = Path(args.table) if args.table else ROOT / prereg["table"]["file"]
    if not table_path.exists():
        print(f"error: {table_path}: no table; build it with `{prereg['table']['command']}`", file=sys.stderr)
        return 2
    seeds = len(prereg["table"]["training_seeds"])
    seeded = read_seeded(table_path, seeds)
    sobol = sum(d["design"].startswith("sobol") for d in seeded.table.designs)
    need = prereg["table"]["minimum_for_analysis"]
    if not args.smoke and (sobol < need["sobol_designs"] or len(seeded.table.grid) < need["grid_designs"]):
        print(f"error: {table_path}: {sobol} whole Sobol and {len(seeded.table.grid)} grid designs, the "
              f"pre-registration needs {need['sobol_designs']} and {need['grid_designs']}", file=sys.stderr)
        return 2
    reps = 4 if args.smoke else int(prereg["replay"]["repetitions"])
    resamples = 300 if args.smoke else 10_000
    names = ("random", prereg["default_arm"], "grid") if args.smoke else tuple(prereg["replay"]["arms"])
    workers_list = [int(w) for w in prereg["replay"]["workers"]]
    start_wall = time.perf_counter()
    progress("surrogate errors (leave one design out)")
    errors = loo_errors(seeded)
    surrogate = errors["chosen"]
    grid_s = grid_compute_s(seeded)
    quick = yaml.safe_load((ROOT / "spaces" / "quick.yaml").read_text())
    regrets: dict[str, dict[str, np.ndarray]] = {}
    true_values: dict[str, dict[str, np.ndarray]] = {}
    counts: dict[str, dict[str, Any]] = {}
    span = seeded.table.best - seeded.table.median
    with tempfile.TemporaryDirectory(prefix="bench-replay-seeded-") as tmp:
        arms = make_arms(seeded.table, quick, names, Path(tmp))
        for name, arm in arms.items():
            for workers in workers_list:
                budget = max(BUDGETS.values()) * grid_s / workers
                values = {label: [] for label in BUDGETS}
                trials = []
                for k in range(reps):
                    out = simulate(arm, seeded, surrogate, k, budget, workers)
                    trials.append((out["trials"], out["stopped"]))
                    for label, mult in BUDGETS.items():
                        values[label].append(incumbent_at(out["trace"], mult * grid_s / workers))
                for label, v in values.items():
                    key = f"{label}@{workers}"
                    true_values.setdefault(name, {})[key] = np.array(v, dtype=float)
                    regrets.setdefault(name, {})[key] = (seeded.table.best - np.array(v, dtype=float)) / span
                counts.setdefault(name, {})[str(workers)] = {
                    "trials_mean": float(np.mean([t for t, _ in trials])),
                    "stopped_mean": float(np.mean([s for _, s in trials]))}
                progress(f"{name}, {workers} workers: {reps} searches")
    analysis = analyse(regrets, true_values, seeded.table.grid_best, prereg["default_arm"], resamples, 0)
    if errors["error_exceeds_noise"]:
        analysis["verdict"]["caveat"] = (f"surrogate error {errors[surrogate]['rms_error_db']:.2f} dB > seed noise "
                                         f"{errors['seed_noise_db']:.2f} dB")
    report = {
        "benchmark": "replay_seeded", "smoke": args.smoke, "command": command_line(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_info(), "load_average_end": load_average(), "versions": library_versions(),
        "preregistration": prereg,
        "table": {"file": str(table_path.name), "whole_designs": len(seeded.table.designs),
                  "designs_in_csv": seeded.planned_designs, "sobol_designs": sobol, "grid_designs": len(seeded.table.grid),
                  "best_db": seeded.table.best, "median_db": seeded.table.median, "grid_best_db": seeded.table.grid_best,
                  "grid_compute_s": grid_s},
        "surrogate": errors, "settings": {"repetitions": reps, "resamples": resamples, "arms": list(names),
                                          "workers": workers_list, "budgets": BUDGETS},
        "trials": counts, "analysis": analysis,
        "prediction_for_real_runs": predicted_difference(true_values, prereg["default_arm"],
                                                         f"{PRIMARY[0]}@{PRIMARY[1]}", resamples, 1),
        "raw": {a: {s: v.round(4).tolist() for s, v in by.items()} for a, by in true_values.items()},
    }
    report["wall_s"] = round(time.perf_counter() - start_wall, 1)
    path = Path(args.out) if args.out else RESULTS_DIR / f"replay-seeded{'.smoke' if args.smoke else ''}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=1, default=str) + "\n")  # the YAML date
    write_figure(json.loads(path.read_text()), path.with_suffix(".html"), None if args.smoke else FIGURE_PNG)
    v = analysis["verdict"]
    progress(f"wrote {path} and {path.with_suffix('.html').name}")
    print(f"surrogate {surrogate}: LOO error {errors[surrogate]['rms_error_db']:.2f} dB vs seed noise "
          f"{errors['seed_noise_db']:.2f} dB")
    if v:
        print(f"default {prereg['default_arm']} vs random at {analysis['primary']}: IQM regret diff "
              f"{v['diff_iqm']:+.3f} [{v['ci'][0]:+.3f}, {v['ci'][1]:+.3f}], Holm p {v['p_holm']:.3f}, "
              f"reduction {v['relative_reduction']}; beats random: {v['beats_random']}, target met: {v['target_met']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
