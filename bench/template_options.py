"""What the template's own function and loop cost on the demo, option by option.

The 2024 family's defaults are the template's (output_activation none,
leaky_slope 1.0, the loader's fixed order); the shipped spaces set
output_activation sigmoid, leaky_slope 0.01 and shuffle true. This trains one
good configuration of spaces/quick.yaml (tests/cvae/test_learning.py's) with
all three improvements, with none, and with each one taken away, for a few
training seeds, and writes every epoch's val_psnr.

Success rule, fixed before the run: an option is called helpful only if taking
it away lowers the final val_psnr in every seed by more than the seed-to-seed
spread of the all-improvements arm; otherwise the table says "within noise".

    python bench/template_options.py [--seeds 1 2] [--epochs 3] [--smoke] [--out FILE]
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import RESULTS_DIR, machine_info, progress, versions  # noqa: E402
from cvae.core.metrics import copy_first_frame_psnr  # noqa: E402
from cvae.families.lab4_2024.config import TrainConfig  # noqa: E402
from cvae.families.lab4_2024.data import load_lab_data  # noqa: E402
from cvae.families.lab4_2024.synthetic import PRESETS, generate  # noqa: E402
from cvae.families.lab4_2024.train import Trainer  # noqa: E402

IMPROVED = {"output_activation": "sigmoid", "leaky_slope": 0.01, "shuffle": True}
TEMPLATE = {"output_activation": "none", "leaky_slope": 1.0, "shuffle": False}
# One good configuration of quick.yaml's space at the demo's dims (tests/cvae/test_learning.py).
GOOD: dict[str, Any] = dict(
    frame_H=16, frame_W=32, F_dim=32, L_dim=8, N_dim=4, D_out_dim=64, batch_size=2, train_vi_len=4,
    val_vi_len=64, lr=2e-3, optimizer="Adam", milestones=[100], gamma=0.5, kl_anneal_type="None",
    kl_weight=1e-3, tfr=1.0, tfr_sde=10, tfr_d_step=0.1, val_every=1, precision="fp32", device="cpu")


def arms() -> dict[str, dict[str, Any]]:
    out = {"all three (shipped spaces)": dict(IMPROVED), "none (the template)": dict(TEMPLATE)}
    for key in IMPROVED:
        out[f"without {key}"] = {**IMPROVED, key: TEMPLATE[key]}
    return out


def verdicts(results: dict[str, dict[int, list[float]]]) -> dict[str, str]:
    best = results["all three (shipped spaces)"]
    finals = [curve[-1] for curve in best.values()]
    spread = statistics.pstdev(finals) if len(finals) > 1 else 0.0
    out = {}
    for key in IMPROVED:
        drops = [best[s][-1] - curve[-1] for s, curve in results[f"without {key}"].items()]
        out[key] = ("helpful" if all(d > spread for d in drops) else "within noise") + \
            f" (final drop per seed {', '.join(f'{d:+.2f}' for d in drops)} dB; spread {spread:.2f} dB)"
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--smoke", action="store_true", help="tiny frames, 1 epoch, 1 seed: checks the script runs")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "template_options.json")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    good = dict(GOOD)
    seeds, epochs = args.seeds, args.epochs
    if args.smoke:
        good.update(frame_H=8, frame_W=16, F_dim=8, L_dim=4, N_dim=4, D_out_dim=8, val_vi_len=8)
        seeds, epochs = seeds[:1], 1
    with tempfile.TemporaryDirectory() as tmp:
        progress("generating the small synthetic preset")
        root = generate(Path(tmp) / "small", PRESETS["small"], seed=0, progress=False)
        data = load_lab_data(root, good["frame_H"], good["frame_W"], progress=False)
        baseline = statistics.fmean(copy_first_frame_psnr(data.val_frames[: good["val_vi_len"]]))
        results: dict[str, dict[int, list[float]]] = {}
        for name, options in arms().items():
            for seed in seeds:
                cfg = TrainConfig(**{**good, **options, "num_epoch": epochs, "seed": seed})
                trainer = Trainer(cfg, data)
                curve = [round(float(trainer.run_epoch()["val_psnr"]), 3) for _ in range(epochs)]
                results.setdefault(name, {})[seed] = curve
                progress(f"{name}, seed {seed}: val_psnr per epoch {curve}")
    payload = {"machine": machine_info(), "versions": versions(), "config": good, "epochs": epochs,
               "seeds": seeds, "copy_first_frame_psnr": baseline, "val_psnr": results,
               "verdicts": verdicts(results),
               "rule": "an option is helpful only if taking it away lowers the final val_psnr in every seed by "
                       "more than the seed-to-seed spread of the all-improvements arm"}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(payload, indent=2) + "\n")
    progress(f"wrote {args.out}")
    for key, text in payload["verdicts"].items():
        print(f"{key}: {text}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
