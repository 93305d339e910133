"""SearchRecorder: rows per (trial, epoch), resume without duplicates, best by mode. No Ray run."""
from __future__ import annotations

import csv
import json

import pytest

from search.results import METRIC_COLUMNS, SearchRecorder


def _recorder(run_dir, mode: str = "max") -> SearchRecorder:
    return SearchRecorder(run_dir, name="r", param_names=["kl_anneal_type", "kl_anneal_cycle", "lr"],
                          metric="val_psnr", mode=mode, num_epoch=3, num_samples=2,
                          fixed_config={"num_epoch": 3}, baseline_psnr=15.0)


def _result(epoch: int, psnr: float, lr: float = 1e-3, **extra) -> dict:
    return {"epoch": epoch, "val_psnr": psnr, "train_loss": 1.0, "train_mse": 0.5, "train_kl": 0.1,
            "beta": 0.5, "tfr": 1.0, "teacher_forcing": 1, "lr": lr, "epoch_time_s": 0.1, "val_time_s": 0.01,
            "validated": True, "diverged": False, "val_psnr_per_frame": [psnr, psnr], "node_id": "n1",
            "data_zero_copy": True, "training_iteration": epoch, "pid": 1, **extra}


def _lines(run_dir) -> list[list[str]]:
    with (run_dir / "trials.csv").open(newline="") as handle:
        return list(csv.reader(handle))


def test_resume_replaces_repeated_epochs(tmp_path):
    first = _recorder(tmp_path)
    params = {"kl_anneal_type": "Monotonic", "lr": 0.002}
    for epoch in (1, 2):
        first.add_result("a", params, _result(epoch, 10.0 + epoch, lr=0.002))
    first.write()
    # A new driver (resume) reloads the file; the trial restarts from its epoch-1 checkpoint.
    second = _recorder(tmp_path)
    second.load_existing()
    for epoch in (2, 3):
        second.add_result("a", params, _result(epoch, 20.0 + epoch, lr=0.002))
    second.set_status("a", second.classify_end("a", error=False))
    second.write(final=True)
    lines = _lines(tmp_path)
    assert lines[0] == ["trial_id", "status", "epoch", "phase", "stratum", "seed",
                        "kl_anneal_type", "kl_anneal_cycle", "lr", *METRIC_COLUMNS]
    assert [(l[0], l[1], l[2]) for l in lines[1:]] == [("a", "completed", "1"), ("a", "completed", "2"),
                                                        ("a", "completed", "3")]
    assert lines[2][9] == "22.0"  # the resumed run's epoch 2 replaced the first one
    assert lines[1][7] == ""  # kl_anneal_cycle not sampled for Monotonic
    per_frame = json.loads((tmp_path / "trials" / "a" / "val_psnr_per_frame.json").read_text())
    assert per_frame == {"epoch": 3, "frame_index": [1, 2], "psnr": [23.0, 23.0]}


@pytest.mark.parametrize("mode,best", [("max", "b"), ("min", "a")])
def test_best_follows_mode_and_skips_diverged(tmp_path, mode, best):
    rec = _recorder(tmp_path, mode)
    rec.add_result("a", {"lr": 0.1}, _result(1, 10.0))
    rec.add_result("b", {"lr": 0.2}, _result(1, 12.0))
    rec.add_result("c", {"lr": 9.0}, _result(1, float("nan"), diverged=True))
    assert rec.best()[0] == best
    assert rec.classify_end("c", error=False) == "diverged"
    assert rec.classify_end("a", error=False) == "stopped"  # 1 of 3 epochs
    path = rec.write_best_yaml({"lr": rec.trials[best].params["lr"]})
    assert "lr:" in path.read_text()
