"""A real (tiny) search of the 2023 family through Ray: `model: bair-2023` picks the family's data,
trainer and baseline; best.yaml names the model; the report renders (in Chromium when installed);
an epoch that val_every skips has no val_psnr anywhere (missing is missing, never 0.0)."""
from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest
import yaml

from cvae.families.bair_2023.synthetic import BairPreset, generate
from runfolder.contract import read_trials_csv

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.slow

TINY_SET = BairPreset(train_sequences=4, validate_sequences=2, test_sequences=2, per_folder=4)
SPACE = """name: bair-tiny
model: bair-2023
data: {{root: {root}}}
trials: {{num_samples: 4, max_concurrent: 2, resources: {{cpu: 1, gpu: 0}}}}
sampler: {{type: tpe, seed: 0}}
reeval: {{seeds: 0}}
fixed: {{num_epoch: 3, epoch_size: 2, batch_size: 2, n_future: 3, width: 0.0625, g_dim: 8, z_dim: 2, rnn_size: 8,
        val_every: 2, kl_weight: 0.01}}
parameters:
  kl_anneal_type: {{values: [Cyclical, Monotonic], role: scientific}}
  lr: {{distribution: log_uniform_values, min: 1.0e-3, max: 5.0e-3}}
"""


@pytest.fixture(scope="module")
def bair_run(tmp_path_factory, search_in_ray):
    base = tmp_path_factory.mktemp("bair-search")
    root = generate(base / "data", TINY_SET, seed=0, progress=False)
    (base / "space.yaml").write_text(SPACE.format(root=root))
    plan, _, outcome = search_in_ray(base / "space.yaml", base / "runs")
    return plan, outcome


def test_bair_trials_complete_with_the_family_metrics(bair_run):
    plan, outcome = bair_run
    assert outcome.status_counts.get("completed") == 4, outcome.status_counts
    rows = read_trials_csv(plan.run_dir)
    assert {r["kl_anneal_type"] for r in rows} == {"Cyclical", "Monotonic"}
    per_frame = json.loads(next((plan.run_dir / "trials").glob("*/val_psnr_per_frame.json")).read_text())
    assert len(per_frame["psnr"]) == 3  # the n_future predicted frames
    assert (next((plan.run_dir / "trials").glob("*/frames.png"))).is_file()  # past + predicted strip


def test_an_epoch_that_was_not_validated_has_no_value(bair_run):
    import optuna

    plan, _ = bair_run
    from runfolder.contract import parse_cell

    rows = [{k: parse_cell(v) for k, v in r.items()} for r in read_trials_csv(plan.run_dir)]
    by_epoch = {e: [r for r in rows if r["epoch"] == e] for e in (1, 2, 3)}
    assert all(len(v) == 4 for v in by_epoch.values())
    # val_every 2: epoch 2 and the last (3) are validated, epoch 1 is not
    assert {(r["validated"], r["val_psnr"]) for r in by_epoch[1]} == {(False, None)}
    assert all(r["validated"] and r["val_psnr"] > 5 for e in (2, 3) for r in by_epoch[e])
    study = optuna.load_study(study_name=plan.name, storage=f"sqlite:///{plan.run_dir / 'optuna.db'}")
    assert {tuple(sorted(t.intermediate_values)) for t in study.trials} == {(2, 3)}
    from reports.figures.curves import curve_points as collect_curves
    from reports.load import load_experiments

    curves = collect_curves(load_experiments([plan.run_dir]))
    assert sorted(set(curves["epoch"])) == [2, 3] and curves["val_psnr"].notna().all()


def test_summary_has_the_copy_last_frame_baseline_and_best_yaml_names_the_model(bair_run):
    plan, outcome = bair_run
    summary = json.loads((plan.run_dir / "summary.json").read_text())
    assert 5 < summary["baseline_psnr"] < 40
    best = yaml.safe_load(outcome.best_yaml.read_text())
    assert best["model"] == "bair-2023" and best["n_future"] == 3 and "F_dim" not in best


def test_report_renders_for_a_bair_run(bair_run, tmp_path):
    from reports.html import write_report

    plan, _ = bair_run
    report = write_report([plan.run_dir], tmp_path / "report.html")
    html = report.read_text()
    assert "kl_anneal_type" in html and "data:image/png;base64" in html
    chromium = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
    if chromium is None:
        pytest.skip("headless Chromium is not installed")
    done = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--enable-unsafe-swiftshader",
                           "--proxy-server=127.0.0.1:9", "--enable-logging=stderr", "--v=0",
                           "--virtual-time-budget=10000", f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom",
                           report.as_uri()], capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    bad = [l for l in done.stderr.splitlines() if "CONSOLE" in l and re.search(r"uncaught|error|WARN:", l, re.I)]
    assert not bad, "console errors:\n" + "\n".join(bad)
    assert done.stdout.count('class="main-svg"') >= 5  # Plotly drew its figures
