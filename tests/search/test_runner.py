"""A short real search on a real Ray instance: ASHA, Optuna PRUNED, result files, shared data."""
from __future__ import annotations

import json
import shutil

import optuna
import pytest
import yaml

from cvae.families.lab4_2024.config import TrainConfig
from runfolder.contract import METRIC_COLUMNS, read_trials_csv
from search.runner import RunError, make_plan, prepare_data, run_search

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def ray_session():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def search_run(ray_session, tiny_data, make_space, tmp_path_factory):
    """One search of 6 tiny trials; the data folder is moved away before any trial starts."""
    base = tmp_path_factory.mktemp("search")
    data_root = base / "data"
    shutil.copytree(tiny_data, data_root)
    # One stratum (no scientific parameter) and short KL warm-ups (ratio 0.3: beta peaks
    # at epoch 2 of 3), so ASHA compares all 6 trials and can stop the weak ones.
    space = make_space(base / "tiny.yaml", name="tiny", data_root=data_root, scientific=False,
                       fixed={"kl_anneal_ratio": 0.3})
    plan = make_plan(space, storage_path=base / "runs")
    data = prepare_data(plan, progress=False)
    # Trials must use the decoded copy in the object store: with the folder
    # gone, a trial that decoded the data itself would fail.
    shutil.move(str(data_root), str(base / "moved-away"))
    outcome = run_search(plan, data)
    return plan, outcome




def test_asha_stops_some_trials_and_others_complete(search_run):
    plan, outcome = search_run
    counts = outcome.status_counts
    assert sum(counts.values()) == 6
    assert counts["stopped"] >= 1, counts
    assert counts["completed"] >= 1, counts
    assert counts["failed"] == 0 and counts["running"] == 0, counts
    assert counts["stopped"] + counts["completed"] + counts["diverged"] == 6


def test_stopped_trials_reach_optuna_as_pruned(search_run):
    plan, outcome = search_run
    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{plan.run_dir / 'optuna.db'}")
    trials = study.get_trials()
    assert len(trials) == 6
    csv_status = {row["trial_id"]: row["status"] for row in read_trials_csv(plan.run_dir)}
    expected_state = {"completed": "COMPLETE", "stopped": "PRUNED", "diverged": "PRUNED"}
    for trial in trials:
        ray_id = trial.user_attrs["trial_id"]
        assert trial.user_attrs["status"] == csv_status[ray_id]
        assert trial.state.name == expected_state[csv_status[ray_id]], (ray_id, trial.state)
        budget = plan.space.fixed["num_epoch"] if trial.state.name == "COMPLETE" else max(trial.intermediate_values)
        assert sorted(trial.intermediate_values) == list(range(1, budget + 1))
        if csv_status[ray_id] == "stopped":
            assert budget < plan.space.fixed["num_epoch"]


def test_trials_csv_has_one_row_per_trial_per_epoch(search_run):
    plan, outcome = search_run
    rows = read_trials_csv(plan.run_dir)
    header = list(rows[0])
    assert header[:3] == ["trial_id", "status", "epoch"]
    assert header[3:6] == ["phase", "stratum", "seed"]
    assert header[6:9] == ["kl_anneal_type", "kl_anneal_cycle", "lr"]
    # lr is searched and also a metric: the parameter is `lr`, the per-epoch value `lr_at_epoch`
    assert header[9:] == list(METRIC_COLUMNS) and "lr_at_epoch" in header and len(set(header)) == len(header)
    by_trial: dict[str, list[int]] = {}
    for row in rows:
        by_trial.setdefault(row["trial_id"], []).append(int(row["epoch"]))
        for metric in ("val_psnr", "train_loss", "train_mse", "train_kl", "beta", "tfr_at_epoch", "lr", "lr_at_epoch",
                       "epoch_time_s"):
            assert row[metric] != "", (metric, row)
        # A conditional parameter is empty exactly when its condition fails.
        assert (row["kl_anneal_cycle"] == "") == (row["kl_anneal_type"] != "Cyclical"), row
    assert len(by_trial) == 6
    statuses = {row["trial_id"]: row["status"] for row in rows}
    for trial_id, epochs in by_trial.items():
        assert epochs == list(range(1, len(epochs) + 1)), (trial_id, epochs)
        if statuses[trial_id] == "completed":
            assert len(epochs) == plan.space.fixed["num_epoch"]
        else:
            assert statuses[trial_id] in ("stopped", "diverged") and len(epochs) < plan.space.fixed["num_epoch"]


def test_dataset_came_from_the_object_store(search_run):
    plan, outcome = search_run
    for info_file in (plan.run_dir / "trials").glob("*/trial.json"):
        info = json.loads(info_file.read_text())
        # read-only arrays = mapped from Ray's shared memory, not a private copy
        assert info["data_zero_copy"] is True, info
        assert len(info["node_ids"]) == 1


def test_best_yaml_summary_and_trial_files(search_run):
    plan, outcome = search_run
    run_dir = plan.run_dir
    cfg = TrainConfig.from_yaml(outcome.best_yaml)  # loadable by python -m cvae.train --config
    best_rows = [r for r in read_trials_csv(run_dir) if r["trial_id"] == outcome.best_trial]
    assert cfg.lr == pytest.approx(float(best_rows[0]["lr"]))
    assert cfg.kl_anneal_type == best_rows[0]["kl_anneal_type"]
    assert cfg.F_dim == plan.space.fixed["F_dim"] and cfg.num_epoch == plan.space.fixed["num_epoch"]
    assert outcome.best_value == max(float(r["val_psnr"]) for r in read_trials_csv(run_dir))

    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["name"] == "tiny" and summary["num_epoch"] == 3 and summary["num_samples"] == 6
    assert summary["metric"] == "val_psnr" and summary["mode"] == "max"
    assert summary["best"]["trial_id"] == outcome.best_trial
    assert summary["best"]["config"]["lr"] == pytest.approx(cfg.lr)
    assert summary["baseline_psnr"] > 0 and summary["wall_time_s"] > 0 and summary["finished_at"]
    assert sum(summary["status_counts"].values()) == 6
    assert yaml.safe_load((run_dir / "space.yaml").read_text())["name"] == "tiny"

    for trial_id, status in {r["trial_id"]: r["status"] for r in read_trials_csv(run_dir)}.items():
        if status == "diverged":
            continue  # may have diverged before its first validation: nothing to show
        per_frame = json.loads((run_dir / "trials" / trial_id / "val_psnr_per_frame.json").read_text())
        assert per_frame["frame_index"] == list(range(1, plan.space.fixed["val_vi_len"]))
        assert len(per_frame["psnr"]) == plan.space.fixed["val_vi_len"] - 1
        assert (run_dir / "trials" / trial_id / "frames.png").stat().st_size > 0
    from PIL import Image

    with Image.open(run_dir / "trials" / outcome.best_trial / "frames.png") as image:
        # ground truth over prediction, 8 frames of 16x32 side by side
        assert image.size == (8 * plan.space.fixed["frame_W"], 2 * plan.space.fixed["frame_H"])


def test_a_second_fresh_run_into_the_same_folder_is_refused(search_run):
    plan, _ = search_run
    with pytest.raises(RunError, match="--resume"):
        make_plan(plan.space.path, storage_path=plan.storage_path)
