"""Where a configuration's val_psnr noise comes from: training seeds or the validation draw.

A re-run of a configuration differs from the first run in two ways: its training
seed (initial weights, teacher-forcing coins, batch order) and the prior z drawn
for the free-running validation rollout (seeded with the same seed). This trains
each of two demo configurations (spaces/quick.yaml's fixed settings) with
several training seeds, then validates every trained model with many prior
draws, and splits the variance of one run's val_psnr (one-way random effects):

    within a model   sigma_v^2 = mean over models of the variance over draws
    between models   var(mean over K draws) = sigma_t^2 + sigma_v^2 / K

so one run with K draws has variance sigma_t^2 + sigma_v^2 / K. From that, the
re-runs per strategy a two-sample t test needs (80% power, alpha 0.05) to
separate the two configurations' observed gap, with one draw (the template) and
with K draws (`validation: {samples: K}`).

Success rule, fixed before the run: averaging draws is worth offering when the
validation share sigma_v^2 / (sigma_t^2 + sigma_v^2) is at least 25%; it is
worth making the demo's default when K draws cost under 2x one draw's
validation time and the seeds needed fall by at least a third.

    python bench/noise.py [--set kl|tfr] [--seeds 1 2 3 4] [--draws 16] [--smoke] [--out FILE]
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import RESULTS_DIR, demo_fixed, machine_info, progress, small_demo_data, versions  # noqa: E402
from cvae.families.lab4_2024.config import TrainConfig  # noqa: E402
from cvae.families.lab4_2024.train import Trainer  # noqa: E402
from search import stats  # noqa: E402

# Two configurations of quick.yaml's space in different strata, both in its
# measured good region (tfr 0, Adam, lr inside 1.2e-3..4.5e-3).
CONFIG_SETS: dict[str, dict[str, dict[str, Any]]] = {
    # the KL question (the default set): the gap is computed between the first two
    "kl": {
        "Cyclical": dict(kl_anneal_type="Cyclical", kl_anneal_cycle=2, kl_anneal_ratio=0.5, tfr=0.0,
                         optimizer="Adam", lr=3e-3),
        "None": dict(kl_anneal_type="None", tfr=0.0, optimizer="Adam", lr=3e-3),
    },
    # the teacher-forcing question: is its effect large enough to be the demo's?
    "tfr": {
        "tfr 0": dict(kl_anneal_type="None", tfr=0.0, optimizer="Adam", lr=3e-3),
        "tfr 1": dict(kl_anneal_type="None", tfr=1.0, tfr_sde=6, tfr_d_step=0.0, optimizer="Adam", lr=3e-3),
        "tfr 0.5": dict(kl_anneal_type="None", tfr=0.5, tfr_sde=6, tfr_d_step=0.0, optimizer="Adam", lr=3e-3),
    },
}
AFTER_DRAWS = 8  # the K the "after" figures use
POWER, ALPHA = 0.8, 0.05


def components(per_model_draws: list[list[float]]) -> dict[str, float]:
    """sigma_v^2 (within models, over draws) and sigma_t^2 (between models, net of the
    draws' share) of one configuration; sigma_t^2 is floored at 0."""
    k = len(per_model_draws[0])
    within = statistics.fmean(statistics.variance(d) for d in per_model_draws)
    means = [statistics.fmean(d) for d in per_model_draws]
    between = statistics.variance(means) if len(means) > 1 else 0.0
    return {"sigma_v2": within, "sigma_t2": max(between - within / k, 0.0), "draws": k,
            "models": len(per_model_draws)}


def run_sd(parts: dict[str, float], draws: int) -> float:
    """The spread of one run's val_psnr validated with `draws` prior draws."""
    return math.sqrt(parts["sigma_t2"] + parts["sigma_v2"] / draws)


def pooled(parts: list[dict[str, float]]) -> dict[str, float]:
    """Components pooled over configurations, weighted by their degrees of freedom."""
    w_v = [p["models"] * (p["draws"] - 1) for p in parts]
    w_t = [p["models"] - 1 for p in parts]
    return {"sigma_v2": sum(w * p["sigma_v2"] for w, p in zip(w_v, parts)) / sum(w_v),
            "sigma_t2": sum(w * p["sigma_t2"] for w, p in zip(w_t, parts)) / max(sum(w_t), 1),
            "draws": parts[0]["draws"], "models": sum(p["models"] for p in parts), "df_t": sum(w_t)}


def train_and_draw(config: dict[str, Any], seed: int, data: Any, draws: int) -> dict[str, Any]:
    cfg = TrainConfig(**{**config, "seed": seed})
    trainer = Trainer(cfg, data)
    start = time.perf_counter()
    for _ in range(cfg.num_epoch):
        trainer.run_epoch()
    train_s = time.perf_counter() - start
    start = time.perf_counter()
    one = trainer.validate_draws(1, seed)
    one_s = time.perf_counter() - start
    start = time.perf_counter()
    many = trainer.validate_draws(draws, 10_000 + seed)  # draws independent of the training seed
    many_s = time.perf_counter() - start
    start = time.perf_counter()
    trainer.validate_draws(min(AFTER_DRAWS, draws), seed)
    after_s = time.perf_counter() - start
    return {"seed": seed, "val_psnr_one_draw": float(one.mean()), "draws": many.mean(dim=1).tolist(),
            "train_s": train_s, "validate_1_s": one_s, f"validate_{draws}_s": many_s,
            f"validate_{min(AFTER_DRAWS, draws)}_s": after_s}


def analyse(results: dict[str, list[dict[str, Any]]], draws: int) -> dict[str, Any]:
    parts = {name: components([r["draws"] for r in runs]) for name, runs in results.items()}
    both = pooled(list(parts.values()))
    means = {name: statistics.fmean(statistics.fmean(r["draws"]) for r in runs) for name, runs in results.items()}
    names = list(results)
    gap = means[names[0]] - means[names[1]]
    after = min(AFTER_DRAWS, draws)
    sd_before, sd_after = run_sd(both, 1), run_sd(both, after)
    df = max(int(both["df_t"]), 1)

    def seeds(sd: float) -> dict[str, Any]:
        low, high = stats.std_interval(sd, df, 0.9)
        need = [stats.seeds_for_power(gap, s, ALPHA, POWER, 1000) for s in (sd, low, high)]
        return {"run_sd": sd, "n": need[0], "n_low": need[1], "n_high": need[2]}

    share = both["sigma_v2"] / (both["sigma_v2"] + both["sigma_t2"])
    val_1 = statistics.fmean(r["validate_1_s"] for runs in results.values() for r in runs)
    val_k = statistics.fmean(r[f"validate_{after}_s"] for runs in results.values() for r in runs)
    before, with_k = seeds(sd_before), seeds(sd_after)
    fewer = (before["n"] is not None and with_k["n"] is not None and with_k["n"] <= before["n"] * 2 / 3)
    return {
        "components": parts, "pooled": both, "validation_share": share, "means": means, "gap": gap,
        "seeds_before": before, f"seeds_after_{after}_draws": with_k,
        "validation_cost_ratio": val_k / val_1,
        "offer": share >= 0.25, "make_default": share >= 0.25 and val_k / val_1 < 2.0 and fewer,
        "rule": "offer K draws when the validation share of one run's variance is >= 25%; make it the demo's "
                "default when K draws cost < 2x one draw's validation time and the seeds needed fall by >= 1/3",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4])
    parser.add_argument("--draws", type=int, default=16)
    parser.add_argument("--smoke", action="store_true", help="tiny dims, 1 epoch, 2 seeds, 3 draws: checks the script")
    parser.add_argument("--set", choices=sorted(CONFIG_SETS), default="kl", help="which configurations (default kl)")
    parser.add_argument("--out", type=Path, default=None, help="default bench/results/noise.json (--set tfr: noise.tfr.json)")
    args = parser.parse_args(argv)
    configs = CONFIG_SETS[args.set]
    out = args.out or RESULTS_DIR / ("noise.json" if args.set == "kl" else f"noise.{args.set}.json")
    torch.set_num_threads(1)  # as a demo trial runs (trials.resources.cpu 1)
    fixed = demo_fixed(args.smoke, precision="fp32")
    seeds, draws = args.seeds, args.draws
    if args.smoke:
        seeds, draws = seeds[:2], 3
    results: dict[str, list[dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        progress("generating the small synthetic preset")
        data = small_demo_data(Path(tmp), fixed)
        total, done = len(configs) * len(seeds), 0
        for name, config in configs.items():
            for seed in seeds:
                row = train_and_draw({**fixed, **config}, seed, data, draws)
                results.setdefault(name, []).append(row)
                done += 1
                progress(f"[{done}/{total}] {name} seed {seed}: one draw {row['val_psnr_one_draw']:.2f} dB, "
                         f"{draws} draws {min(row['draws']):.2f}..{max(row['draws']):.2f} dB "
                         f"(train {row['train_s']:.0f} s)")
    payload = {"machine": machine_info(), "versions": versions(), "fixed": fixed, "configs": configs,
               "seeds": seeds, "draws": draws, "runs": results, "analysis": analyse(results, draws),
               "left_out": "the Lab4-dims preset: one lab-dims step takes seconds on this 2-core machine, "
                           "a seeds x draws grid there does not fit a session"}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(payload, indent=2) + "\n")
    a = payload["analysis"]
    after = min(AFTER_DRAWS, draws)
    progress(f"wrote {out}")
    print(f"validation share of one run's variance: {100 * a['validation_share']:.0f}% "
          f"(sigma_t {math.sqrt(a['pooled']['sigma_t2']):.2f} dB, sigma_v {math.sqrt(a['pooled']['sigma_v2']):.2f} dB)")
    print(f"gap {a['gap']:+.2f} dB; seeds for 80% power: 1 draw {a['seeds_before']['n']}, "
          f"{after} draws {a[f'seeds_after_{after}_draws']['n']}; {after} draws cost "
          f"{a['validation_cost_ratio']:.2f}x one draw's validation")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
