"""A real small search with trials that diverge and trials whose worker dies
(issue 6, items 2, 3 and 5): diverged trials end cleanly with the worst value and
reach Optuna as PRUNED; a crashed trial is retried from its last checkpoint and
ends with exactly the metrics of an uninterrupted run; checkpoints are bounded;
the run folder can be moved and still be reported.

The crash comes from the test hook in search/trainable.py (CVAE_SEARCH_CRASH_AT_EPOCH,
CVAE_SEARCH_CRASH_DIR): set in this process's environment before ray.init, so the
local Ray's workers inherit it.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import torch

from cvae.families.lab4_2024.synthetic import Preset, generate
from search.results import read_trials_csv
from search.runner import NUM_CHECKPOINTS_KEPT
from search.trial_files import TrialFiles

ray = pytest.importorskip("ray")
ROOT = Path(__file__).resolve().parents[2]
NUM_EPOCH = 3
CRASH_AT = 2
TINY = Preset(train_video_lengths=(16, 16), val_length=8, test_sequences=1, test_length=4)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def write_space(path: Path, *, name: str, data_root: Path, fixed: dict, num_samples: int,
                max_failures: int, parameters: str) -> Path:
    fixed_yaml = "\n".join(f"  {k}: {v}" for k, v in fixed.items())
    path.write_text(f"""\
name: {name}
metric: {{name: val_psnr, goal: maximize}}
data: {{root: {data_root}}}
trials: {{num_samples: {num_samples}, max_concurrent: 2, resources: {{cpu: 1, gpu: 0}}, max_failures: {max_failures}, checkpoint_every: 1}}
sampler: {{type: random, seed: 0}}
fixed:
{fixed_yaml}
parameters:
{parameters}""")
    return path


@pytest.fixture(scope="module")
def crash_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("crash")
    old = {k: os.environ.get(k) for k in ("CVAE_SEARCH_CRASH_AT_EPOCH", "CVAE_SEARCH_CRASH_DIR")}
    os.environ["CVAE_SEARCH_CRASH_AT_EPOCH"] = str(CRASH_AT)
    os.environ["CVAE_SEARCH_CRASH_DIR"] = str(folder)
    yield folder
    for k, v in old.items():
        os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)


@pytest.fixture(scope="module")
def searched(crash_dir, tiny_fixed, tmp_path_factory, search_in_ray):
    """3 trials, lr 1e-3 or 10 (Adam): lr 10 diverges in epoch 1; the others crash once at epoch 2."""
    base = tmp_path_factory.mktemp("rel")
    data_root = generate(base / "data", TINY, seed=0, progress=False)
    fixed = {**tiny_fixed, "num_epoch": NUM_EPOCH, "partial": 1.0, "optimizer": "Adam", "kl_anneal_type": "Monotonic"}
    space = write_space(base / "rel.yaml", name="rel", data_root=data_root, fixed=fixed, num_samples=3,
                        max_failures=2, parameters="  lr: {values: [0.001, 10.0]}\n")
    plan, data, outcome = search_in_ray(space, base / "runs")
    return plan, outcome, data




def _by_trial(rows):
    out: dict[str, list[dict[str, str]]] = {}
    for row in rows:
        out.setdefault(row["trial_id"], []).append(row)
    return out


def test_diverged_trials_end_cleanly_with_the_worst_value(searched):
    plan, outcome, _ = searched
    trials = _by_trial(read_trials_csv(plan.run_dir))
    assert len(trials) == 3
    diverged = {tid: rows for tid, rows in trials.items() if float(rows[0]["lr"]) == 10.0}
    assert diverged, "the sampler drew no lr=10 trial"
    for tid, rows in diverged.items():
        assert [r["status"] for r in rows] == ["diverged"], rows  # stopped after epoch 1, one row
        assert rows[0]["diverged"] == "True" and float(rows[0]["val_psnr"]) == 0.0  # worst PSNR, not NaN
    summary = json.loads((plan.run_dir / "summary.json").read_text())
    assert summary["status_counts"]["diverged"] == len(diverged)
    assert summary["status_counts"]["completed"] == 3 - len(diverged)  # the search went on
    assert summary["best"]["trial_id"] not in diverged
    study = optuna.load_study(study_name="rel", storage=f"sqlite:///{plan.run_dir / 'optuna.db'}")
    for t in study.get_trials():
        if t.user_attrs["trial_id"] in diverged:
            assert t.state.name == "PRUNED" and t.user_attrs["status"] == "diverged"
        else:
            assert t.state.name == "COMPLETE"


def test_crashed_trial_resumes_from_its_checkpoint_with_identical_metrics(searched, crash_dir):
    plan, outcome, data = searched
    trials = _by_trial(read_trials_csv(plan.run_dir))
    good = {tid: rows for tid, rows in trials.items() if float(rows[0]["lr"]) == 0.001}
    assert good, "the sampler drew no lr=1e-3 trial"
    from cvae.families.lab4_2024.train import fit

    expected: list[dict] = []
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in the trial (1 CPU): the same kernels, the same floats
    try:
        fit(plan.space.train_config({"lr": 0.001}), data, device="cpu", on_epoch=lambda m, t: expected.append(m))
    finally:
        torch.set_num_threads(threads)
    for tid, rows in good.items():
        assert (crash_dir / tid).read_text() == str(CRASH_AT)  # its worker really died at epoch 2
        assert [int(r["epoch"]) for r in rows] == list(range(1, NUM_EPOCH + 1))  # each epoch once
        assert {r["status"] for r in rows} == {"completed"}
        for row, ref in zip(rows, expected):
            for key, column in (("val_psnr", "val_psnr"), ("train_loss", "train_loss"), ("train_kl", "train_kl"),
                                ("beta", "beta"), ("tfr", "tfr_at_epoch")):
                assert float(row[column]) == pytest.approx(ref[key], rel=1e-6, abs=1e-9), (tid, row["epoch"], key)
    # Retried from the checkpoint, not from scratch: two attempts in the trial's own folder, the
    # second by Ray's retry of the same Ray trial, from the newest checkpoint before the crash.
    for tid in good:
        attempts = TrialFiles(plan.run_dir, tid).attempts()
        assert [a["from_epoch"] for a in attempts] == [0, CRASH_AT - 1], (tid, attempts)
        assert attempts[0]["ray_trial_id"] == attempts[1]["ray_trial_id"], attempts  # a retry, not a resume


def test_checkpoints_are_bounded_per_trial(searched):
    plan, _, _ = searched
    trial_dirs = sorted((plan.run_dir / "trials").iterdir())
    assert len(trial_dirs) == 3
    for d in trial_dirs:
        kept = sorted(p.name for p in (d / "checkpoints").glob("epoch-*"))
        assert 1 <= len(kept) <= NUM_CHECKPOINTS_KEPT, (d.name, kept)


def test_moved_run_folder_is_still_reported(searched, tmp_path):
    plan, _, _ = searched
    moved = tmp_path / "elsewhere" / "rel"
    shutil.copytree(plan.run_dir, moved)
    out = tmp_path / "x.html"
    proc = subprocess.run([sys.executable, "-m", "reports", str(moved), "-o", str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    html = out.read_text()
    assert "rel" in html and "diverged" in html
    assert str(plan.run_dir) not in html  # nothing read from the old place
