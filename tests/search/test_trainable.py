"""search/trainable.py's pure helpers: what a trial reports."""
from __future__ import annotations

import math

from search.trainable import PER_FRAME_KEY, scalar_metrics


def test_scalar_metrics_puts_the_metric_first_for_rays_progress_table() -> None:
    # Ray's progress table shows the first four numeric keys of a result.
    metrics = {"train_loss": 0.1, "train_mse": 0.01, "train_kl": 3.0, "beta": 0.5, "epoch": 2, "val_psnr": 31.5}
    out = scalar_metrics(metrics, "val_psnr", "max")
    assert list(out)[:2] == ["val_psnr", "epoch"]
    assert out == metrics  # same values, only the order changes


def test_scalar_metrics_replaces_nan_metric_by_worst_and_keeps_only_plain_values() -> None:
    metrics = {"val_psnr": math.nan, "diverged": True, PER_FRAME_KEY: (30, 29.5), "other_list": [1, 2], "name": "x"}
    out = scalar_metrics(metrics, "val_psnr", "max")
    assert out["val_psnr"] == 0.0 and out["diverged"] is True
    assert out[PER_FRAME_KEY] == [30.0, 29.5]
    assert "other_list" not in out and "name" not in out
    assert scalar_metrics({"loss": math.inf}, "loss", "min")["loss"] == math.inf  # worst for minimise


def test_a_trial_given_a_gpu_torch_cannot_use_fails_with_the_cause():
    import pytest

    from search.trainable import TrialDeviceError, trial_device

    assert trial_device([], cuda_available=False, torch_cuda_version=None) == "cpu"
    assert trial_device(["0"], cuda_available=True, torch_cuda_version="13.0") == "cuda"
    with pytest.raises(TrialDeviceError) as info:
        trial_device(["0"], cuda_available=False, torch_cuda_version="13.0")
    assert "GPU(s) ['0']" in str(info.value) and "built for CUDA 13.0" in str(info.value)
    with pytest.raises(TrialDeviceError, match="CPU-only build"):
        trial_device([1], cuda_available=False, torch_cuda_version=None)


def test_an_epoch_that_was_not_validated_reports_no_value() -> None:
    stale = {"epoch": 3, "val_psnr": 31.5, "validated": False, "diverged": False}
    assert scalar_metrics(stale, "val_psnr", "max")["val_psnr"] is None  # not the last validation's 31.5
    validated = {**stale, "validated": True}
    assert scalar_metrics(validated, "val_psnr", "max")["val_psnr"] == 31.5
    diverged = {"epoch": 3, "val_psnr": 0.0, "validated": False, "diverged": True}
    assert scalar_metrics(diverged, "val_psnr", "max")["val_psnr"] == 0.0  # the worst, as before


def test_a_result_without_a_value_is_not_a_divergence() -> None:
    from runfolder.status import COMPLETED, DIVERGED, STOPPED, classify_end

    assert classify_end({"epoch": 2, "val_psnr": None}, error=False, metric="val_psnr", num_epoch=4) == STOPPED
    assert classify_end({"epoch": 4, "val_psnr": None}, error=False, metric="val_psnr", num_epoch=4) == COMPLETED
    assert classify_end({"epoch": 4, "val_psnr": math.nan}, error=False, metric="val_psnr", num_epoch=4) == DIVERGED
