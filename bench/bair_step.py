"""Training-step time of the 2023 family (bair-2023) beside the 2024 family's default step.

    .venv/bin/python bench/bair_step.py            # demo dims of spaces/bair-quick.yaml and the template dims
    .venv/bin/python bench/bair_step.py --smoke    # demo dims only, 1 repetition

One step = forward, loss, backward, Adam step, teacher forcing on and off, for
  per_step   the template's loop: one encoder call per frame (cvae.families.bair_2023.step.sequence_loss_reference)
  batched    cvae.families.bair_2023.step.sequence_loss: under teacher forcing the encoder runs once over all
             B x T ground-truth frames and the decoder once over all B x (T-1) steps. Without
             teacher forcing it runs the per-step loop since bench/results/bair_step.json
             (2026-11-26) measured the batched free-running variant slower (x0.84 demo, x0.73 template)
and, in the same run, the 2024 family's default step (cvae.families.lab4_2024.step.sequence_loss) at the dims of
spaces/quick.yaml for scale. Variants are interleaved inside each repetition so a noisy shared
machine slows them alike. Writes bench/results/bair_step.json (smoke: bair_step.smoke.json).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Callable

import torch

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import command_line, machine_info, median, progress, time_once, versions, write_json  # noqa: E402
from cvae.families.bair_2023.config import BairConfig  # noqa: E402
from cvae.families.bair_2023.model import SVG  # noqa: E402
from cvae.families.bair_2023.step import sequence_loss, sequence_loss_reference  # noqa: E402

DEMO = dict(width=0.125, g_dim=32, z_dim=4, rnn_size=64, batch_size=4, n_past=2, n_future=5)
TEMPLATE = dict(width=1.0, g_dim=128, z_dim=64, rnn_size=256, batch_size=12, n_past=2, n_future=10)


def bair_step_fn(cfg: BairConfig, loss_fn: Callable, teacher_forcing: bool) -> Callable[[], None]:
    torch.manual_seed(0)
    model = SVG.from_config(cfg).train()
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    x = torch.rand(cfg.batch_size, cfg.seq_len, 3, 64, 64)
    c = torch.randn(cfg.batch_size, cfg.seq_len, 7)

    def step() -> None:
        loss, _, _ = loss_fn(model, x, c, 0.1, teacher_forcing, cfg.n_past)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return step


def lab4_step_fn(teacher_forcing: bool) -> Callable[[], None]:
    import yaml

    from cvae.families.lab4_2024.config import TrainConfig
    from cvae.families.lab4_2024.model import CVAE
    from cvae.families.lab4_2024.step import sequence_loss as lab4_loss

    fixed = yaml.safe_load((ROOT / "spaces" / "quick.yaml").read_text())["fixed"]
    cfg = TrainConfig(**{k: v for k, v in fixed.items() if k in TrainConfig.field_names()})
    torch.manual_seed(0)
    model = CVAE.from_config(cfg).train()
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    x = torch.rand(cfg.batch_size, cfg.train_vi_len, 3, cfg.frame_H, cfg.frame_W)
    p = torch.rand_like(x)

    def step() -> None:
        loss, _, _ = lab4_loss(model, x, p, 0.1, teacher_forcing)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return step


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    reps = 1 if args.smoke else args.reps
    dims = {"demo": DEMO} if args.smoke else {"demo": DEMO, "template": TEMPLATE}
    results: dict[str, Any] = {}
    for name, d in dims.items():
        cfg = BairConfig(**d)
        for tf in (True, False):
            fns = {"per_step": bair_step_fn(cfg, sequence_loss_reference, tf),
                   "batched": bair_step_fn(cfg, sequence_loss, tf)}
            if name == "demo":
                fns["lab4_2024_default (quick.yaml dims)"] = lab4_step_fn(tf)
            for fn in fns.values():
                fn()  # warm-up
            times: dict[str, list[float]] = {k: [] for k in fns}
            for r in range(reps):
                for k, fn in fns.items():
                    times[k].append(time_once(fn, torch.device("cpu")))
                progress(f"{name} tf={int(tf)} rep {r + 1}/{reps}: " +
                         ", ".join(f"{k} {v[-1]:.3f}s" for k, v in times.items()))
            frames = cfg.batch_size * cfg.seq_len
            results[f"{name}/tf{int(tf)}"] = {
                "dims": d, "frames_per_step": frames, "step_s": {k: median(v) for k, v in times.items()},
                "raw_s": times,
                "batched_speedup": median(times["per_step"]) / median(times["batched"])}
    payload = {"command": command_line(), "machine": machine_info(), "versions": versions(), "results": results}
    path = write_json("bair_step.smoke.json" if args.smoke else "bair_step.json", payload)
    print(f"wrote {path}")
    for key, r in results.items():
        print(f"{key:14s} " + "  ".join(f"{k} {v:.3f}s" for k, v in r["step_s"].items())
              + f"  batched x{r['batched_speedup']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
