"""A small but realistic `runs/<name>/` folder, written the way docs/CONTRACTS.md
("Results on disk") says search/ writes it, with a real Optuna study.

Ten trials of a 4-epoch search over the project's example space:

id  kl          cycle ratio tfr_d_step optimizer lr      status     val_psnr per epoch
 0  Cyclical    6     0.9   0.20       Adamax    5e-4    completed  17.5 19.0 20.0 20.4
 1  Monotonic   -     0.8   0.20       AdamW     3e-4    completed  17.0 19.0 20.5 21.0
 2  None        -     -     0.05       Adamax    5e-3    stopped    15.0
 3  Cyclical    8     0.3   0.29       ASGD      9.8e-3  stopped    16.0 17.5
 4  Monotonic   -     0.5   0.15       Adam      1e-3    diverged   16.5 nan
 5  None        -     -     0.10       Adam      2e-3    failed     14.0
 6  Cyclical    4     1.0   0.12       Adam      1e-3    running    17.0 19.5
 7  None        -     -     0.25       AdamW     2e-4    completed  15.5 16.5 17.0 17.2
 8  Cyclical    2     0.5   0.00       Adam      1e-3    completed  18.0 20.0 21.5 22.0
 9  Monotonic   -     0.2   0.08       Adam      1.5e-3  completed  17.0 18.5 20.0 20.6

Trial 8 is the best (22.0) and sits at the lower edge of tfr_d_step's range.
Trials 2 and 5 have no frames.png; trial 5 has no val_psnr_per_frame.json.

That folder has the format from before strata (no phase/stratum/seed columns, no
`comparison` in summary.json). `make_run(reeval=True)` writes today's format: the
same ten search trials (seed 0), then each stratum's best configuration re-run at
the full budget (phase reeval, seeds 1, 2, ...), and summary.json's comparison
block built by search.comparison.build_comparison from those runs:

id  stratum    re-runs trial  final val_psnr          counted (re-runs only)  search run (shown)
10-12 Cyclical   8            21.6 22.3 21.9          mean 21.93, n = 3       22.0
13-15 Monotonic  1            20.8 21.3 20.5          mean 20.87, n = 3       21.0
16  None         7            diverged (nan)          n = 0: not enough       17.2

Cyclical beats Monotonic, but None has no full-budget re-run (1 of 1 diverged):
not enough evidence. `reeval={"None": (7, [17.0, 17.4])}` makes it decisive;
`reeval={"Monotonic": (1, [21.5, 21.9, 20.6])}` leaves Cyclical and Monotonic undecided.
"""
from __future__ import annotations

import csv
import json
import math
import shutil
from pathlib import Path
from typing import Any, Callable

import optuna
import pytest
from PIL import Image

from search.comparison import RunOutcome, build_comparison

NUM_EPOCH = 4
NUM_FRAMES = 6  # validation video: frame 0 given, frames 1..5 predicted
EVIL = "<script>alert(1)</script>"

SPACE_YAML = """\
name: {name}
metric: {{name: val_psnr, goal: maximize}}
data: {{root: data/synthetic-small, synthetic: small}}
trials: {{num_samples: 10, max_concurrent: 2, resources: {{cpu: 1, gpu: 0}}}}
sampler: {{type: tpe, seed: 0}}
early_terminate: {{type: asha, grace_period: 1, reduction_factor: 2}}
fixed: {{num_epoch: 4, batch_size: 4, frame_H: 16, frame_W: 32}}
parameters:
  kl_anneal_type: {{values: [Cyclical, Monotonic, None], role: scientific}}
  kl_anneal_cycle: {{distribution: int_uniform, min: 1, max: 8, when: {{kl_anneal_type: Cyclical}}}}
  kl_anneal_ratio: {{distribution: uniform, min: 0.1, max: 1.0, when: {{kl_anneal_type: [Cyclical, Monotonic]}}}}
  tfr_d_step: {{distribution: uniform, min: 0.0, max: 0.3}}
  optimizer: {{values: [Adam, AdamW, Adamax, ASGD{extra_optimizer}]}}
  lr: {{distribution: log_uniform_values, min: 1.0e-4, max: 1.0e-2}}
"""

PARAMS = ["kl_anneal_type", "kl_anneal_cycle", "kl_anneal_ratio", "tfr_d_step", "optimizer", "lr"]
METRICS = ["val_psnr", "train_loss", "train_mse", "train_kl", "beta", "tfr", "teacher_forcing",
           "lr", "epoch_time_s", "val_time_s", "validated", "diverged"]

# (kl, cycle, ratio, tfr_d_step, optimizer, lr, status, val_psnr per epoch)
TRIALS: list[tuple[Any, ...]] = [
    ("Cyclical", 6, 0.9, 0.20, "Adamax", 5e-4, "completed", [17.5, 19.0, 20.0, 20.4]),
    ("Monotonic", None, 0.8, 0.20, "AdamW", 3e-4, "completed", [17.0, 19.0, 20.5, 21.0]),
    ("None", None, None, 0.05, "Adamax", 5e-3, "stopped", [15.0]),
    ("Cyclical", 8, 0.3, 0.29, "ASGD", 9.8e-3, "stopped", [16.0, 17.5]),
    ("Monotonic", None, 0.5, 0.15, "Adam", 1e-3, "diverged", [16.5, math.nan]),
    ("None", None, None, 0.10, "Adam", 2e-3, "failed", [14.0]),
    ("Cyclical", 4, 1.0, 0.12, "Adam", 1e-3, "running", [17.0, 19.5]),
    ("None", None, None, 0.25, "AdamW", 2e-4, "completed", [15.5, 16.5, 17.0, 17.2]),
    ("Cyclical", 2, 0.5, 0.00, "Adam", 1e-3, "completed", [18.0, 20.0, 21.5, 22.0]),
    ("Monotonic", None, 0.2, 0.08, "Adam", 1.5e-3, "completed", [17.0, 18.5, 20.0, 20.6]),
]
NO_FRAMES_PNG = {2, 5}
NO_PER_FRAME = {5}
STRATA = ["Cyclical", "Monotonic", "None"]
# stratum -> (search trial re-run, final val_psnr of each re-run; nan = the re-run diverged)
REEVAL: dict[str, tuple[int, list[float]]] = {
    "Cyclical": (8, [21.6, 22.3, 21.9]), "Monotonic": (1, [20.8, 21.3, 20.5]), "None": (7, [math.nan])}


def trial_id(i: int) -> str:
    return f"5f3a1_{i:05d}"


def _beta(kl: str, epoch: int) -> float:
    # Rough shapes are enough here: the report plots what the CSV says.
    if kl == "None":
        return 1.0
    if kl == "Monotonic":
        return min(1.0, (epoch - 1) / 2)
    return [0.0, 1.0, 0.0, 1.0][epoch - 1]


def _tfr(d_step: float, epoch: int) -> float:
    return max(0.0, 1.0 - d_step * max(0, epoch - 2))


def _rows(i: int, spec: tuple[Any, ...], run_columns: list[Any] | None = None) -> list[list[Any]]:
    """The trial's CSV rows; run_columns = [phase, stratum, seed] for today's format."""
    kl, cycle, ratio, d_step, opt, lr, status, psnrs = spec
    rows = []
    for e, psnr in enumerate(psnrs, start=1):
        diverged = math.isnan(psnr)
        beta = _beta(kl, e)
        mse = 0.5 / e
        kld = 2.0 / e
        loss = math.nan if diverged else mse + beta * kld
        # MultiStepLR milestones [2, 5], gamma 0.1: the lr in effect after this epoch.
        lr_now = lr * (0.1 if e >= 2 else 1.0)
        params = [kl, "" if cycle is None else cycle, "" if ratio is None else ratio, d_step, opt, lr]
        metrics = [psnr, loss, mse, kld, beta, _tfr(d_step, e), 1 if e <= 2 else 0, lr_now,
                   2.0, 0.5, True, diverged]
        rows.append([trial_id(i), status, e, *(run_columns or []), *params, *metrics])
    return rows


def _write_frames_png(path: Path, seed: int) -> None:
    # Two rows (ground truth over prediction) of 5 frames of 16x32, like search/ writes.
    img = Image.new("RGB", (5 * 32, 2 * 16), (255, 255, 255))
    for k in range(5):
        block = Image.new("RGB", (32, 16), ((40 * k + seed * 20) % 256, 120, 200 - 30 * k))
        img.paste(block, (32 * k, 0))
        img.paste(block.point(lambda v: min(255, v + 25)), (32 * k, 16))
    img.save(path)


def _write_study(path: Path, name: str, trials: list[tuple[Any, ...]]) -> None:
    dists = {
        "kl_anneal_type": optuna.distributions.CategoricalDistribution(["Cyclical", "Monotonic", "None"]),
        "kl_anneal_cycle": optuna.distributions.IntDistribution(1, 8),
        "kl_anneal_ratio": optuna.distributions.FloatDistribution(0.1, 1.0),
        "tfr_d_step": optuna.distributions.FloatDistribution(0.0, 0.3),
        "optimizer": optuna.distributions.CategoricalDistribution(
            sorted({t[4] for t in trials} | {"Adam", "AdamW", "Adamax", "ASGD"})),
        "lr": optuna.distributions.FloatDistribution(1e-4, 1e-2, log=True),
    }
    study = optuna.create_study(storage=f"sqlite:///{path}", study_name=name, direction="maximize")
    state_of = {"completed": optuna.trial.TrialState.COMPLETE, "stopped": optuna.trial.TrialState.PRUNED,
                "diverged": optuna.trial.TrialState.FAIL, "failed": optuna.trial.TrialState.FAIL}
    for spec in trials:
        kl, cycle, ratio, d_step, opt, lr, status, psnrs = spec
        params = {"kl_anneal_type": kl, "kl_anneal_cycle": cycle, "kl_anneal_ratio": ratio,
                  "tfr_d_step": d_step, "optimizer": opt, "lr": lr}
        params = {k: v for k, v in params.items() if v is not None}
        if status == "running":
            study.enqueue_trial(params)
            study.ask({k: dists[k] for k in params})  # stays RUNNING
            continue
        state = state_of[status]
        finite = [p for p in psnrs if not math.isnan(p)]
        if state == optuna.trial.TrialState.COMPLETE and not finite:
            state = optuna.trial.TrialState.FAIL
        study.add_trial(optuna.trial.create_trial(
            params=params, distributions={k: dists[k] for k in params},
            value=finite[-1] if state == optuna.trial.TrialState.COMPLETE else None,
            intermediate_values={e: p for e, p in enumerate(finite, start=1)},
            state=state))


def _reeval_trials(trials: list[tuple[Any, ...]], reeval: dict[str, tuple[int, list[float]]]
                   ) -> list[tuple[tuple[Any, ...], int, int]]:
    """(spec, source trial, seed) of every re-run: the source's parameters at the full budget."""
    out = []
    for stratum in STRATA:
        if stratum not in reeval:
            continue
        source, finals = reeval[stratum]
        for seed, v in enumerate(finals, start=1):
            psnrs = [17.0, math.nan] if math.isnan(v) else [v - 4.0, v - 2.0, v - 0.5, v]
            status = "diverged" if math.isnan(v) else "completed"
            out.append(((*trials[source][:6], status, psnrs), source, seed))
    return out


def _outcome(i: int, spec: tuple[Any, ...], phase: str, seed: int, source: int | None = None) -> RunOutcome:
    kl, cycle, ratio, d_step, opt, lr, status, psnrs = spec
    finite = [p for p in psnrs if not math.isnan(p)]
    full = len(psnrs) == NUM_EPOCH and not math.isnan(psnrs[-1])
    params = {"kl_anneal_type": kl, "kl_anneal_cycle": cycle, "kl_anneal_ratio": ratio, "tfr_d_step": d_step,
              "optimizer": opt, "lr": lr}
    return RunOutcome(trial_id=trial_id(i), phase=phase, stratum=kl, status=status,
                      final_value=psnrs[-1] if full else None, last_value=finite[-1] if finite else None,
                      params={k: v for k, v in params.items() if v is not None}, seed=seed,
                      source_trial=None if source is None else trial_id(source))


def make_run(root: Path, name: str = "quick", evil: bool = False,
             psnr: dict[int, list[float]] | None = None, status: dict[int, str] | None = None,
             reeval: bool | dict[str, tuple[int, list[float]]] = False) -> Path:
    """Write runs/<name>/ under root; evil=True puts a script tag in a parameter value;
    psnr / status replace the val_psnr list / status of the trials with those numbers;
    reeval=True writes today's format with REEVAL's re-runs and the comparison block
    (a dict replaces REEVAL's entries for those strata)."""
    trials = [list(t) for t in TRIALS]
    for i, values in (psnr or {}).items():
        trials[i][7] = values
    for i, st in (status or {}).items():
        trials[i][6] = st
    if evil:
        trials[3][4] = EVIL
    trials = [tuple(t) for t in trials]
    run = root / name
    (run / "trials").mkdir(parents=True)
    (run / "space.yaml").write_text(SPACE_YAML.format(
        name=name, extra_optimizer=', "<script>alert(1)</script>"' if evil else ""))
    reruns = _reeval_trials(trials, {**REEVAL, **reeval} if isinstance(reeval, dict) else REEVAL) if reeval else []
    with open(run / "trials.csv", "w", newline="") as f:
        w = csv.writer(f)
        run_header = ["phase", "stratum", "seed"] if reeval else []
        w.writerow(["trial_id", "status", "epoch", *run_header, *PARAMS, *METRICS])  # `lr` twice: param, metric
        for i, spec in enumerate(trials):
            w.writerows(_rows(i, spec, ["search", spec[0], 0] if reeval else None))
        for k, (spec, _, seed) in enumerate(reruns):
            w.writerows(_rows(len(trials) + k, spec, ["reeval", spec[0], seed]))
    for i, spec in enumerate([*trials, *(r[0] for r in reruns)]):
        d = run / "trials" / trial_id(i)
        d.mkdir()
        psnrs = [p for p in spec[7] if not math.isnan(p)]
        if i not in NO_PER_FRAME and psnrs:
            last = psnrs[-1]
            per_frame = [round(last + 3.0 - 1.5 * k, 2) for k in range(NUM_FRAMES - 1)]
            (d / "val_psnr_per_frame.json").write_text(json.dumps(
                {"epoch": len(psnrs), "frame_index": list(range(1, NUM_FRAMES)), "psnr": per_frame}))
        if i not in NO_FRAMES_PNG:
            _write_frames_png(d / "frames.png", i)
    best = 8
    kl, cycle, ratio, d_step, opt, lr, _, _ = trials[best]
    summary: dict[str, Any] = {
        "name": name, "num_epoch": NUM_EPOCH, "num_samples": len(trials), "metric": "val_psnr",
        "mode": "max", "wall_time_s": 123.4, "baseline_psnr": 16.25,
        "best": {"trial_id": trial_id(best), "val_psnr": 22.0,
                 "config": {"kl_anneal_type": kl, "kl_anneal_cycle": cycle, "kl_anneal_ratio": ratio,
                            "tfr_d_step": d_step, "optimizer": opt, "lr": lr, "num_epoch": NUM_EPOCH}},
        "status_counts": {"completed": 5, "stopped": 2, "diverged": 1, "failed": 1, "running": 1},
        "started_at": "2025-01-01T10:00:00", "finished_at": "2025-01-01T10:02:03"}
    if reeval:
        outcomes = [_outcome(i, spec, "search", 0) for i, spec in enumerate(trials)]
        outcomes += [_outcome(len(trials) + k, spec, "reeval", seed, source)
                     for k, (spec, source, seed) in enumerate(reruns)]
        summary["comparison"] = build_comparison(outcomes, strata=STRATA, metric="val_psnr", mode="max")
    (run / "summary.json").write_text(json.dumps(summary, allow_nan=False))
    _write_study(run / "optuna.db", name, trials)
    return run


@pytest.fixture(scope="session")
def _master_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_run(tmp_path_factory.mktemp("master"))


@pytest.fixture
def run_dir(_master_run: Path, tmp_path: Path) -> Path:
    """A private copy of the example run folder (tests may damage it)."""
    return Path(shutil.copytree(_master_run, tmp_path / "runs" / _master_run.name))


@pytest.fixture
def make_run_dir(tmp_path: Path) -> Callable[..., Path]:
    """Builds further run folders: make_run_dir(name="other", evil=True)."""
    def _make(**kw: Any) -> Path:
        return make_run(tmp_path / "more", **kw)
    return _make


@pytest.fixture(scope="session")
def make_run_at() -> Callable[..., Path]:
    """make_run itself, for module-scoped fixtures: make_run_at(root, name=..., evil=...)."""
    return make_run


@pytest.fixture(scope="session")
def reeval_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Today's format with re-evaluation runs and the comparison block (the second table
    above); shared by every test, so read it, never change it (make_run_dir makes a copy to damage)."""
    return make_run(tmp_path_factory.mktemp("reeval"), reeval=True)
