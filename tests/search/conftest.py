"""Shared fixtures for the search tests: a tiny synthetic dataset and tiny spaces."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

TINY_FIXED = {
    "num_epoch": 3, "batch_size": 4, "frame_H": 16, "frame_W": 32,
    "F_dim": 16, "L_dim": 8, "N_dim": 4, "D_out_dim": 16,
    "train_vi_len": 4, "val_vi_len": 8, "partial": 0.25, "milestones": [10], "seed": 1,
    "precision": "fp32", "channels_last": False,
    # the shipped spaces' options over the template's function: with the template's
    # (no output activation, LeakyReLU(True)) a re-run at lr 3e-2 could diverge
    "output_activation": "sigmoid", "leaky_slope": 0.01, "shuffle": True,
}


def write_space(path: Path, *, name: str, data_root: Path, num_samples: int = 6, max_concurrent: int = 2,
                cpu: float = 1, gpu: float = 0, grace: int = 1, rf: float = 2, sampler: str = "random",
                fixed: dict | None = None, extra: str = "", reeval_seeds: int = 0,
                strata: str | None = None, scientific: bool = True) -> Path:
    """A tiny space over three KL strata. Re-evaluation is off unless asked for
    (reeval_seeds), so a test's trial count is num_samples."""
    fixed = {**TINY_FIXED, **(fixed or {})}
    fixed_yaml = "\n".join(f"  {k}: {v}" for k, v in fixed.items())
    strata_yaml = f", strata: {strata}" if strata else ""
    role = ", role: scientific" if scientific else ""
    path.write_text(f"""\
name: {name}
metric: {{name: val_psnr, goal: maximize}}
data: {{root: {data_root}}}
trials: {{num_samples: {num_samples}, max_concurrent: {max_concurrent}, resources: {{cpu: {cpu}, gpu: {gpu}}}, max_failures: 0, checkpoint_every: 1{strata_yaml}}}
sampler: {{type: {sampler}, seed: 0}}
reeval: {{seeds: {reeval_seeds}}}
early_terminate: {{type: asha, grace_period: {grace}, reduction_factor: {rf}}}
fixed:
{fixed_yaml}
parameters:
  kl_anneal_type: {{values: [Cyclical, Monotonic, None]{role}}}
  kl_anneal_cycle: {{distribution: int_uniform, min: 1, max: 3, when: {{kl_anneal_type: Cyclical}}}}
  lr: {{distribution: log_uniform_values, min: 1.0e-5, max: 3.0e-2}}
{extra}""")
    return path


@pytest.fixture(scope="session")
def make_space():
    """write_space(path, name=..., data_root=..., ...) -> path of a tiny search-space YAML."""
    return write_space


@pytest.fixture(scope="session")
def search_in_ray():
    """run(space_path, storage_path) -> (plan, data, outcome): the whole search on a fresh
    in-process Ray of 2 CPUs, shut down after (for module-scoped fixtures that search once)."""
    import ray

    from search.runner import make_plan, prepare_data, run_search

    def run(space: Path, storage_path: Path):
        plan = make_plan(space, storage_path=storage_path)
        data = prepare_data(plan, progress=False)
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        try:
            outcome = run_search(plan, data)
        finally:
            ray.shutdown()
        return plan, data, outcome

    return run


@pytest.fixture(scope="session")
def tiny_fixed() -> dict:
    return dict(TINY_FIXED)


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    from cvae.families.lab4_2024.synthetic import generate

    return generate(tmp_path_factory.mktemp("data") / "small", preset="small", seed=0, progress=False)


# A driver stand-in: holds a run folder's lock (search.run_lock), says so, waits to be killed.
FOLDER_HOLDER = """
import sys, time
from search.run_lock import hold_run_folder
with hold_run_folder(sys.argv[1]):
    print("holding", flush=True)
    time.sleep(600)
"""


@pytest.fixture()
def folder_holder():
    """start(run_dir) -> a child process holding run_dir's lock (returned once it holds it);
    every one still alive is SIGKILLed at the end of the test."""
    started: list[subprocess.Popen] = []

    def start(run_dir: Path) -> subprocess.Popen:
        proc = subprocess.Popen([sys.executable, "-c", FOLDER_HOLDER, str(run_dir)], cwd=ROOT, stdout=subprocess.PIPE,
                                text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
        started.append(proc)
        assert proc.stdout.readline().strip() == "holding"
        return proc

    yield start
    for proc in started:
        proc.kill()
        proc.wait(timeout=30)
