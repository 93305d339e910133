"""The Ray Tune function trainable: one CVAE training run per trial.

Data: the driver decodes the dataset once and hands it to `tune.with_parameters`
as a dict of numpy uint8 arrays (the family's `share_data`). Ray puts it in the object store
once; each trial's `ray.get` on a node maps the same shared-memory buffers
(numpy arrays are deserialised zero-copy, read-only), and `torch.from_numpy`
wraps them without copying. Torch tensors would be unpickled into a private
copy per trial, so the arrays travel as numpy.

Per-trial files: each study trial has its own folder `runs/<name>/trials/<id>/`
(search.trial_files), written by the trial itself, so the run folder must be
reachable from every node (a local disk, or NFS on a cluster, as Ray's own
storage path). Each epoch, in this order: the row goes to `metrics.jsonl`
(flushed to disk), then a checkpoint (every `checkpoint_every` epochs, and the
last) to `checkpoints/epoch-NNNN/`, then `val_psnr_per_frame.json` and
`frames.png` (ground truth over prediction), and only then `tune.report`. An
attempt of the trial (a Ray retry, or a `--resume` after a kill) starts from the
newest complete checkpoint there, first cutting `metrics.jsonl` back to that
epoch, so no epoch is written twice and none is missing; Tune's own checkpoints
are not used.
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from search.precision import trial_precision
from search.space import SearchSpace
from search.trial_files import CHECKPOINT_FILE, PER_FRAME_KEY, TrialFiles

MAX_FRAMES_SHOWN = 10
# The worst PSNR of images in [0, 1]: MSE cannot exceed 1, so PSNR >= 0 dB.
# A diverged trial reports it, so ASHA and Optuna rank it last (ASHA never
# stops a trial whose value is NaN: NaN < cutoff is False).
WORST_VALUES = {"val_psnr": 0.0}
# Test hook (tests/search/test_reliability*.py), off unless both are set in the
# environment the Ray workers inherit (a local Ray started by this driver does):
# the worker process dies with os._exit(1) when the trial has trained epoch
# CRASH_AT_EPOCH and before reporting it, once per trial (a marker file
# <CRASH_DIR>/<study trial id> remembers that it crashed), so Ray's retry from the
# last checkpoint runs through. Simulates a killed or OOM-crashed worker.
CRASH_AT_EPOCH_ENV = "CVAE_SEARCH_CRASH_AT_EPOCH"
CRASH_DIR_ENV = "CVAE_SEARCH_CRASH_DIR"


def worst_value(metric: str, mode: str) -> float:
    return WORST_VALUES.get(metric, -math.inf if mode == "max" else math.inf)


def scalar_metrics(metrics: dict[str, Any], metric: str, mode: str) -> dict[str, Any]:
    """What a trial reports: plain numbers, the search metric never NaN."""
    out: dict[str, Any] = {}
    for key, value in metrics.items():
        if isinstance(value, bool):
            out[key] = value
        elif isinstance(value, (int, float)):
            out[key] = value
        elif isinstance(value, (list, tuple)) and key == PER_FRAME_KEY:
            out[key] = [float(v) for v in value]
    value = out.get(metric)
    if metrics.get("validated") is False and not metrics.get("diverged"):
        # An epoch that val_every skipped has no value: None (empty in trials.csv, no
        # point on a curve, no intermediate value in the study), never a stale or a 0.0.
        out[metric] = None
    elif value is None or not math.isfinite(float(value)):
        out[metric] = worst_value(metric, mode)
    # The metric and the epoch first: Ray's progress table shows the first four
    # numeric keys of a result, so val_psnr appears there instead of train_loss.
    first = {key: out[key] for key in (metric, "epoch") if key in out}
    return {**first, **out}


def frames_image(target: torch.Tensor, prediction: torch.Tensor, max_frames: int = MAX_FRAMES_SHOWN) -> np.ndarray:
    """Ground-truth row over predicted row, up to `max_frames` evenly spaced frames.

    target, prediction: uint8 (T, 3, H, W). Returns uint8 (2H, nW, 3).
    """
    count = min(int(target.shape[0]), int(prediction.shape[0]))
    picks = torch.linspace(0, count - 1, steps=min(max_frames, count)).round().long().unique()
    top = torch.cat(list(target[picks]), dim=2)  # (3, H, nW)
    bottom = torch.cat(list(prediction[picks]), dim=2)  # (3, H, nW)
    grid = torch.cat([top, bottom], dim=1)  # (3, 2H, nW)
    return grid.permute(1, 2, 0).contiguous().cpu().numpy()


def write_frames_png(path: Path, target: torch.Tensor, prediction: torch.Tensor) -> None:
    from PIL import Image

    Image.fromarray(frames_image(target.to(torch.uint8), prediction.to(torch.uint8))).save(path)


# Keys the searcher adds to a trial's config next to the sampled parameters
# (search/searcher.py); they describe the study, not the training.
STUDY_KEYS = ("phase", "stratum", "reeval_of", "study_trial")
# What a trial's numbers depend on besides its configuration; reported with
# every result and written into best.yaml.
EXECUTION_KEYS = ("torch_threads", "device", "precision")


def training_params(config: dict[str, Any]) -> dict[str, Any]:
    """A trial's config without the study keys: the model family's config fields only."""
    return {k: v for k, v in config.items() if k not in STUDY_KEYS}


def asha_epochs(space: SearchSpace, config: dict[str, Any] | None = None) -> list[int]:
    """Epochs at which ASHA may compare this trial: every bracket's rungs and the
    epochs its KL schedule lets it be judged at; validated even when val_every skips them."""
    if space.asha is None:
        return []
    epochs = {math.ceil(rung) for rung in space.asha.all_rungs()}
    if config is not None:
        from search.scheduler import judge_epochs

        epochs.update(judge_epochs(training_params(config), fixed=space.train_config({}).to_dict(),
                                   grace_period=space.asha.grace_period, num_epoch=space.num_epoch))
    return sorted(epochs)


class TrialDeviceError(RuntimeError):
    """Ray gave the trial a GPU that torch cannot use: the trial fails instead of
    silently training on the CPU while holding its GPU share."""


def trial_device(gpu_ids: list, cuda_available: bool, torch_cuda_version: str | None) -> str:
    """cuda when Ray gave this trial a GPU (Ray sets CUDA_VISIBLE_DEVICES), else cpu."""
    if not gpu_ids:
        return "cpu"
    if not cuda_available:
        build = (f"torch {torch.__version__} is built for CUDA {torch_cuda_version}" if torch_cuda_version
                 else f"torch {torch.__version__} is a CPU-only build")
        raise TrialDeviceError(
            f"Ray gave this trial GPU(s) {list(gpu_ids)}, but torch.cuda.is_available() is False ({build}; "
            "a driver older than that CUDA version, or a CPU-only torch, gives this): install a torch that "
            "matches the node's driver, or run with --gpus-per-trial 0")
    return "cuda"


def _trial_device() -> str:
    import ray

    return trial_device(ray.get_gpu_ids(), torch.cuda.is_available(), torch.version.cuda)


def _cpu_share() -> int:
    from ray import tune

    resources = tune.get_context().get_trial_resources().required_resources
    return max(1, int(resources.get("CPU", 1)))


def _save_checkpoint(trainer: Any, metrics: dict[str, Any], folder: Path) -> None:
    trainer.save_checkpoint(folder / CHECKPOINT_FILE)


def _write_pictures(files: TrialFiles, trainer: Any, metrics: dict[str, Any]) -> None:
    """The last validation's per-frame PSNR and frames, when this epoch validated."""
    per_frame = metrics.get(PER_FRAME_KEY)
    if not metrics.get("validated", True):
        return
    if per_frame:
        files.write_per_frame(int(metrics["epoch"]), per_frame)
    prediction = getattr(trainer, "last_prediction", None)
    target = getattr(trainer, "val_target", None)
    if prediction is not None and target is not None:
        files.write_frames(lambda path: write_frames_png(path, target, prediction), int(metrics["epoch"]))


def _maybe_crash(epoch: int, trial_id: str) -> None:
    """The crash test hook (see CRASH_AT_EPOCH_ENV); does nothing unless enabled."""
    at, folder = os.environ.get(CRASH_AT_EPOCH_ENV), os.environ.get(CRASH_DIR_ENV)
    if not at or not folder or epoch != int(at):
        return
    marker = Path(folder) / trial_id
    if marker.exists():
        return
    marker.write_text(str(epoch))
    os._exit(1)


def train_trial(config: dict[str, Any], *, data: dict[str, np.ndarray], space: Any, run_dir: str,
                precision: str | None = None) -> None:
    """Ray Tune function trainable: one attempt of the study trial `config["study_trial"]`.

    precision: what the driver decided `precision: auto` means (search.precision); None
    leaves auto to the trainer's flag rule."""
    import ray
    from ray import tune

    # The space's model family (cvae.families) trains the trial: no family is named here.
    family = space.family
    fit = family.fit

    device = _trial_device()
    cfg = space.train_config(training_params(config))
    # The trial's CPU share sets its threads (unless the space fixes torch_threads):
    # the reduction order, and so the numbers, depend on it.
    cfg = cfg.replace(torch_threads=cfg.torch_threads or _cpu_share(), device=device,
                      precision=trial_precision(cfg.precision, precision))
    execution = family.execution_settings(cfg, torch.device(device))
    lab_data, zero_copy = family.unshare_data(data)
    node_id = ray.get_runtime_context().get_node_id()
    every = max(1, int(getattr(space, "checkpoint_every", 1) or 1))
    files = TrialFiles(Path(run_dir), str(config.get("study_trial") or tune.get_context().get_trial_id()))
    checkpoint = files.start_attempt(tune.get_context().get_trial_id())

    def on_epoch(metrics: dict[str, Any], trainer: Any) -> None:
        _maybe_crash(int(metrics["epoch"]), files.trial_id)
        report = scalar_metrics(metrics, space.metric, space.mode)
        report["node_id"] = node_id
        report["data_zero_copy"] = zero_copy
        report.update(execution)
        epoch = int(metrics["epoch"])
        # 1) the row, on disk before anything else: a checkpoint never outruns its rows
        files.append_metrics({k: v for k, v in report.items() if k != PER_FRAME_KEY})
        # 2) the checkpoint, complete or absent (written beside, then renamed)
        if epoch >= cfg.num_epoch or bool(metrics.get("diverged", False)) or epoch % every == 0:
            files.save_checkpoint(epoch, lambda folder: _save_checkpoint(trainer, metrics, folder))
        _write_pictures(files, trainer, metrics)
        tune.report(report)

    validate_at = asha_epochs(space, config)
    done = files.last_row() if checkpoint is not None else None
    if done is not None and (int(done.get("epoch", 0)) >= cfg.num_epoch or done.get("diverged")):
        tune.report(done)  # nothing left to train: tell the driver how the trial ended
        return
    if checkpoint is None:
        fit(cfg, lab_data, on_epoch=on_epoch, device=device, validate_at=validate_at)
    else:
        fit(cfg, lab_data, on_epoch=on_epoch, resume_from=str(checkpoint / CHECKPOINT_FILE), device=device,
            validate_at=validate_at)
