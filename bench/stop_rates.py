"""Stop rates per KL type: Ray's ASHA vs ScheduleAwareASHA, replaying stored full learning curves.

    .venv/bin/python bench/stop_rates.py            # 400 orders (seconds, no training)
    .venv/bin/python bench/stop_rates.py --smoke    # 5 orders, writes bench/results/stop_rates.smoke.json

Every full-length (6-epoch) val_psnr curve in bench/results/efficiency*.json
(spaces/quick.yaml's dims; identical curves counted once) is replayed through
(a) before: Ray's ASHAScheduler, (b) warmup: search.scheduler.ScheduleAwareASHA
judging a trial from the end of its KL warm-up on (stratum = kl_anneal_type,
earliest stop = earliest_stop_epoch; the rule until issue 21, item 6) and
(c) after: ScheduleAwareASHA as the runner builds it now, judging a trial only at
its judge_epochs (Monotonic after its ramp, Cyclical at the end of a cycle), all
with quick.yaml's grace_period 2, reduction_factor 3, max_t 6.
An asynchronous search is simulated (bench/simulator.py, as bench/replay.py
does): 2 workers, time = epochs (every epoch takes one unit), trials started
in a random order, each worker feeds one epoch result at a time to the
scheduler (results of the same tick in a random worker order), a STOP ends
that trial (and Tune's on_trial_complete follows).
Two replays per order: `pool` starts every distinct curve; `balanced` starts a
search's real size: quick.yaml's num_samples split evenly over the KL types
(balanced strata: 12 -> 4 curves of each type drawn), in a random order.

Per KL type and order: stop rate (trials stopped before max_t / trials),
whether the best final-value curve of that type was stopped ("regret"), the dB
lost to it (best final of the type minus the best final among its unstopped
trials) and the epochs spent. Also recomputed: the rank correlations between
val_psnr at the rung (epoch 2) and the final value that issue 11 quotes.

Success rule (issue 21, item 6; written before the run with judge epochs; judged
on the `pool` and the `balanced` replay): after, the best final-value curve of
every KL type (Cyclical, Monotonic, None) is stopped in < 10% of the orders, and
the mean stop rate of Monotonic and of Cyclical are each below 2/3 (= 1 -
1/reduction_factor, the share a rung cuts by design). The rule before it (issue
11: best curves < 5%, pool only) missed with the warm-up rule (best Cyclical
curve stopped in 73% of orders). A miss is reported as plainly as a hit.

Writes bench/results/stop_rates.json (--smoke: stop_rates.smoke.json, git-ignored)
and prints a markdown table.
"""
from __future__ import annotations

import argparse
import datetime
import functools
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from the repo root
    sys.path.insert(0, str(ROOT))

from bench.common import RESULTS_DIR, command_line, cpu_model, load_average, package_versions, progress, write_json  # noqa: E402
from bench.simulator import WORKERS, ReplayTrial, Started, replay  # noqa: E402
from bench.stats import rank_correlations  # noqa: E402
from bench.table import KL_TYPES, Curve, kl_type, load_curves  # noqa: E402

QUICK = ROOT / "spaces" / "quick.yaml"
SUCCESS_RULE = {
    "judged_on": ["pool", "balanced"],
    "text": "after: the best final-value curve of every KL type is stopped in < 10% of the orders (pool and "
            "balanced), and the mean stop rate of Monotonic and of Cyclical are each below 2/3 (1 - 1/reduction_factor)",
    "stop_rate_below": {"Monotonic": 2 / 3, "Cyclical": 2 / 3},
    "best_stopped_share_below": {kl: 0.10 for kl in KL_TYPES},
}
# Ray's ASHA; judged from the warm-up end; judged at judge_epochs; + compared with peers at the same epoch
ARMS = ("before", "warmup", "after", "same_epoch")


# --- the curves ---------------------------------------------------------------

def cut_at_rung(items: list[tuple[str, tuple[float, ...]]], rung: int, rf: float) -> dict[str, list[int]]:
    """A one-shot cut of the bottom 1 - 1/rf at the rung over all curves: [stopped, total] per KL type."""
    import pandas as pd

    threshold = pd.Series([v[rung - 1] for _, v in items]).quantile(1 - 1 / rf)
    return {kl: [int(sum(v[rung - 1] < threshold for k, v in items if k == kl)), sum(k == kl for k, _ in items)]
            for kl in KL_TYPES}


# --- the replay -----------------------------------------------------------------

def replay_order(curves: list[Curve], order: list[int], scheduler, rng: np.random.Generator,
                 max_t: int, stratified: bool) -> dict[int, int]:
    """Start the curves in this order on 2 asynchronous workers (bench/simulator.py); {curve index: last epoch run}."""
    queue = list(order)

    def start() -> Started | None:
        if not queue:
            return None
        index = queue.pop(0)
        config = dict(curves[index].config)
        if stratified:
            config["stratum"] = curves[index].kl
        return Started(ReplayTrial(str(index), config), curves[index].values)

    out = replay(start, scheduler, rng, max_t)
    return {int(o.trial.trial_id): o.last_epoch for o in out.trials}


def order_stats(curves: list[Curve], started: list[int], last_epoch: dict[int, int], max_t: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kl in KL_TYPES:
        mine = [i for i in started if curves[i].kl == kl]
        if not mine:
            continue
        stopped = [i for i in mine if last_epoch[i] < max_t]
        best = max(mine, key=lambda i: curves[i].final)
        kept = [curves[i].final for i in mine if last_epoch[i] >= max_t]
        out[kl] = {"n": len(mine), "stopped": len(stopped), "stop_rate": len(stopped) / len(mine),
                   "best_stopped": best in stopped,
                   # dB between the type's best final and the best among its unstopped trials (None: all stopped)
                   "best_lost_db": curves[best].final - max(kept) if kept else None,
                   "epochs": sum(last_epoch[i] for i in mine)}
    return out


def summarise(per_order: list[dict[str, Any]], max_t: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kl in KL_TYPES:
        rows = [o[kl] for o in per_order if kl in o]
        if not rows:
            continue
        rates = [r["stop_rate"] for r in rows]
        lost = [r["best_lost_db"] for r in rows if r["best_lost_db"] is not None]
        out[kl] = {"orders": len(rows), "mean_trials": statistics.fmean(r["n"] for r in rows),
                   "stop_rate_mean": statistics.fmean(rates),
                   "stop_rate_p05": float(np.percentile(rates, 5)), "stop_rate_p95": float(np.percentile(rates, 95)),
                   "best_stopped_share": statistics.fmean(r["best_stopped"] for r in rows),
                   "all_stopped_share": statistics.fmean(r["best_lost_db"] is None for r in rows),
                   "best_lost_db_mean": statistics.fmean(lost) if lost else None,
                   "epochs_fraction": sum(r["epochs"] for r in rows) / sum(r["n"] * max_t for r in rows)}
    rates = [sum(o[kl]["stopped"] for kl in o) / sum(o[kl]["n"] for kl in o) for o in per_order]
    out["all"] = {"orders": len(per_order),
                  "mean_trials": statistics.fmean(sum(o[kl]["n"] for kl in o) for o in per_order),
                  "stop_rate_mean": statistics.fmean(rates),
                  "stop_rate_p05": float(np.percentile(rates, 5)), "stop_rate_p95": float(np.percentile(rates, 95)),
                  "epochs_fraction": sum(o[kl]["epochs"] for o in per_order for kl in o)
                  / sum(o[kl]["n"] * max_t for o in per_order for kl in o)}
    return out


def run_orders(curves: list[Curve], variant: str, orders: int, seed: int, settings: dict[str, Any],
               factories: dict[str, Callable[[], Any]]) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    by_kl = {kl: [i for i, c in enumerate(curves) if c.kl == kl] for kl in KL_TYPES}
    per_order: dict[str, list[dict[str, Any]]] = {name: [] for name in factories}
    for k in range(orders):
        if variant == "pool":
            started = [int(i) for i in rng.permutation(len(curves))]
        else:
            per_kl = settings["balanced_per_kl"]
            drawn = [i for kl in KL_TYPES for i in rng.choice(by_kl[kl], size=min(per_kl, len(by_kl[kl])),
                                                               replace=False)]
            started = [int(i) for i in rng.permutation(drawn)]
        tick_seed = int(rng.integers(2 ** 31))
        for name, factory in factories.items():
            # The same order and the same tie-breaking for both schedulers.
            np.random.seed(tick_seed)  # Ray draws brackets from numpy's global generator
            last = replay_order(curves, started, factory(), np.random.default_rng(tick_seed), settings["max_t"],
                          stratified=name != "before")
            per_order[name].append(order_stats(curves, started, last, settings["max_t"]))
        if (k + 1) % 50 == 0 or k + 1 == orders:
            progress(f"{variant}: {k + 1}/{orders} orders")
    return {name: {"summary": summarise(rows, settings["max_t"])} for name, rows in per_order.items()}


def judge(result: dict[str, Any], arm: str = "after") -> dict[str, Any]:
    checks = {}
    for variant in SUCCESS_RULE["judged_on"]:
        after = result[variant][arm]["summary"]
        for kl, limit in SUCCESS_RULE["stop_rate_below"].items():
            got = after[kl]["stop_rate_mean"]
            checks[f"{variant}: {kl} stop rate < {limit:.3f}"] = {"value": round(got, 3), "met": got < limit}
        for kl, limit in SUCCESS_RULE["best_stopped_share_below"].items():
            got = after[kl]["best_stopped_share"]
            checks[f"{variant}: best {kl} curve stopped in < {limit:.0%} of orders"] = {
                "value": round(got, 3), "met": got < limit}
    return {"met": all(c["met"] for c in checks.values()), "checks": checks}


# --- report -----------------------------------------------------------------------

def _pct(x: float) -> str:
    return f"{100 * x:.0f}%"


def _rate(row: dict[str, Any]) -> str:
    return f"{_pct(row['stop_rate_mean'])} ({_pct(row['stop_rate_p05'])}-{_pct(row['stop_rate_p95'])})"


def _db(row: dict[str, Any]) -> str:
    text = "-" if row["best_lost_db_mean"] is None else f"{row['best_lost_db_mean']:.2f}"
    return text + (f" (all stopped in {_pct(row['all_stopped_share'])})" if row["all_stopped_share"] else "")


def markdown(result: dict[str, Any], earliest_hist: dict[str, dict[int, int]], per_kl: int) -> str:
    lines = []
    for variant in ("pool", "balanced"):
        if variant not in result:
            continue
        arms = [result[variant][arm]["summary"] for arm in ARMS]
        lines += [f"**{variant}** ({result[variant]['orders']} orders, "
                  f"{'every distinct curve' if variant == 'pool' else f'{per_kl} curves of each KL type'} per order; "
                  f"each cell: {' / '.join(ARMS)})",
                  "",
                  "| KL type | trials/order | stop rate (5-95%) | best curve stopped | dB lost | epochs run |",
                  "|---|---|---|---|---|---|"]
        for kl in [*KL_TYPES, "all"]:
            if kl not in arms[0]:
                continue
            best = " / ".join(_pct(a[kl]["best_stopped_share"]) for a in arms) if kl != "all" else ""
            lost = " / ".join(_db(a[kl]) for a in arms) if kl != "all" else ""
            lines.append(f"| {kl} | {arms[0][kl]['mean_trials']:.1f} | {' / '.join(_rate(a[kl]) for a in arms)} "
                         f"| {best} | {lost} | {' / '.join(_pct(a[kl]['epochs_fraction']) for a in arms)} |")
        lines.append("")
    hist = "; ".join(f"{kl}: " + ", ".join(f"{e}->{n}" for e, n in sorted(h.items()))
                     for kl, h in earliest_hist.items())
    lines.append(f"earliest stop epoch (after) -> curves: {hist}")
    verdict = result["success"]
    lines.append(f"success rule ({SUCCESS_RULE['text']}): {'MET' if verdict['met'] else 'MISSED'}: "
                 + "; ".join(f"{k}: {v['value']} {'ok' if v['met'] else 'MISS'}" for k, v in verdict["checks"].items()))
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--smoke", action="store_true", help="5 orders; writes stop_rates.smoke.json")
    p.add_argument("--orders", type=int, default=None, help="random orders per replay (default 400; smoke 5)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--reduction-factor", type=float, default=None,
                   help="replay with this reduction factor instead of quick.yaml's (a what-if)")
    p.add_argument("--grace-period", type=int, default=None, help="replay with this grace period (a what-if)")
    p.add_argument("--out", default=None, help="results file name under bench/results/ (default stop_rates.json)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    orders = args.orders or (5 if args.smoke else 400)
    wall_start = time.perf_counter()
    from ray.tune.schedulers import ASHAScheduler

    from cvae.core.schedules import kl_warmup_end
    from search.scheduler import ScheduleAwareASHA, earliest_stop_epoch, judge_epochs, kl_settings

    space = yaml.safe_load(QUICK.read_text())
    et = space["early_terminate"]
    settings = {"space": str(QUICK.relative_to(ROOT)), "grace_period": int(et["grace_period"]),
                "reduction_factor": float(et["reduction_factor"]), "max_t": int(space["fixed"]["num_epoch"]),
                "workers": WORKERS, "num_samples": int(space["trials"]["num_samples"]),
                "balanced_per_kl": int(space["trials"]["num_samples"]) // len(KL_TYPES),
                "orders": orders, "seed": args.seed,
                "time_attr": "epoch", "metric": "val_psnr", "mode": "max"}
    if args.reduction_factor is not None:
        settings["reduction_factor"] = float(args.reduction_factor)
    if args.grace_period is not None:
        settings["grace_period"] = int(args.grace_period)
    max_t, grace, rf = settings["max_t"], settings["grace_period"], settings["reduction_factor"]

    paths = sorted(p for p in RESULTS_DIR.glob("efficiency*.json")
                   if ".smoke." not in p.name and ".test." not in p.name)
    curves, copies = load_curves(paths, max_t)
    progress(f"{len(copies)} full curves in {len(paths)} files, {len(curves)} distinct")
    earliest = functools.partial(earliest_stop_epoch, fixed=space["fixed"], grace_period=grace, num_epoch=max_t)
    judge_at = functools.partial(judge_epochs, fixed=space["fixed"], grace_period=grace, num_epoch=max_t)

    def warmup_end(config: dict[str, Any]) -> int:  # the rule before judge epochs
        return max(grace, kl_warmup_end(num_epoch=max_t, **kl_settings(config, space["fixed"])))
    earliest_hist: dict[str, dict[int, int]] = {}
    for c in curves:
        h = earliest_hist.setdefault(c.kl, {})
        h[earliest(c.config)] = h.get(earliest(c.config), 0) + 1

    factories = {
        "before": lambda: ASHAScheduler(time_attr="epoch", metric="val_psnr", mode="max", max_t=max_t,
                                        grace_period=grace, reduction_factor=rf),
        "warmup": lambda: ScheduleAwareASHA(time_attr="epoch", metric="val_psnr", mode="max", max_t=max_t,
                                            grace_period=grace, reduction_factor=rf, earliest_stop=warmup_end,
                                            stratum_key="stratum"),
        "after": lambda: ScheduleAwareASHA(time_attr="epoch", metric="val_psnr", mode="max", max_t=max_t,
                                           grace_period=grace, reduction_factor=rf, earliest_stop=earliest,
                                           judge_at=judge_at, stratum_key="stratum"),
        "same_epoch": lambda: ScheduleAwareASHA(time_attr="epoch", metric="val_psnr", mode="max", max_t=max_t,
                                                grace_period=grace, reduction_factor=rf, earliest_stop=earliest,
                                                judge_at=judge_at, stratum_key="stratum", same_epoch=True),
    }
    result: dict[str, Any] = {}
    for i, variant in enumerate(("pool", "balanced")):
        result[variant] = {"orders": orders, **run_orders(curves, variant, orders, args.seed + i, settings, factories)}
    result["success"] = judge(result)
    result["success_by_arm"] = {arm: judge(result, arm) for arm in ("after", "same_epoch")}

    searched = [(c["method"], kl_type(c["config"]), c["values"]) for c in copies]
    distinct_searched = {v: kl for m, kl, v in searched if m != "grid"}
    issue_items = [(kl, v) for v, kl in distinct_searched.items()] + [(kl, v) for m, kl, v in searched if m == "grid"]
    rung = grace
    correlations = {
        "rung_epoch": rung,
        "distinct_curves": rank_correlations([(c.kl, c.values) for c in curves], rung, KL_TYPES),
        "issue_108": {"what": "distinct searched curves plus every grid curve of every file (the grid is "
                              "deterministic: 6 curves stored 3 times), the count issue 11 quotes",
                      **rank_correlations(issue_items, rung, KL_TYPES)},
        "cut_bottom_two_thirds_at_rung_of_distinct_searched": cut_at_rung(
            [(kl, v) for v, kl in distinct_searched.items()], rung, rf),
    }
    best_curves = {}
    for kl in KL_TYPES:
        mine = [c for c in curves if c.kl == kl]
        best = max(mine, key=lambda c: c.final)
        at_rung = sorted((c.values[rung - 1] for c in mine), reverse=True)
        best_curves[kl] = {"values": [round(v, 2) for v in best.values], "config": best.config,
                           "earliest_stop_epoch": earliest(best.config), "judge_epochs": judge_at(best.config),
                           "source": best.sources[0],
                           "rank_at_rung": f"{at_rung.index(best.values[rung - 1]) + 1} of {len(mine)}"}
    report = {
        "benchmark": "stop_rates", "smoke": args.smoke, "command": command_line(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cpu_model": cpu_model(), "platform": platform.platform(), "load_average": load_average()},
        "versions": package_versions("ray", "numpy", "pandas"), "wall_s": None, "success_rule": SUCCESS_RULE, "settings": settings,
        "inputs": {"files": [p.name for p in paths], "full_curve_copies": len(copies),
                   "distinct_curves": len(curves),
                   "distinct_by_kl": {kl: sum(c.kl == kl for c in curves) for kl in KL_TYPES}},
        "earliest_stop_epoch_histogram": {kl: {str(e): n for e, n in sorted(h.items())}
                                          for kl, h in earliest_hist.items()},
        "rank_correlations": correlations,
        "best_curves": best_curves,
        "results": {v: result[v] for v in ("pool", "balanced")},
        "success": result["success"],
        "success_by_arm": result["success_by_arm"],
    }
    report["markdown"] = markdown(result, earliest_hist, settings["balanced_per_kl"]) + "\n" + "\n".join(
        f"best {kl} curve: {b['values']} (judged at epochs {b['judge_epochs']}, "
        f"rank {b['rank_at_rung']} at epoch {rung}, {b['source']})" for kl, b in best_curves.items())
    report["wall_s"] = round(time.perf_counter() - wall_start, 2)
    path = write_json("stop_rates.smoke.json" if args.smoke else (args.out or "stop_rates.json"), report)
    progress(f"wrote {path.relative_to(ROOT)}")
    c = correlations
    print(report["markdown"])
    print(f"\nSpearman rho (epoch {rung} vs final): distinct {c['distinct_curves']['n']} curves: overall "
          f"{c['distinct_curves']['overall']}, "
          + ", ".join(f"{kl} {c['distinct_curves'][kl]['rho']}" for kl in KL_TYPES)
          + f"; as issue 11 counted ({c['issue_108']['n']}): overall {c['issue_108']['overall']}, "
          + ", ".join(f"{kl} {c['issue_108'][kl]['rho']}" for kl in KL_TYPES))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
