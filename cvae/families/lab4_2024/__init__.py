"""The 2024 Lab4 model family: the pose-conditioned dance CVAE of the course template,
registered as `lab4-2024` (the default).

config.py (TrainConfig), data.py (the Lab4 layout), synthetic.py (generated dancers in
that layout), model.py (the template's modules), step.py (the loss and the rollout),
train.py (Trainer, fit), predict.py (GIFs + submission.csv), export.py (the template's
checkpoint format).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from cvae.core.registry import ModelFamily, arrays_to_tensors, register_family

DATA_FIELDS = ("train_frames", "train_labels", "val_frames", "val_labels")


@register_family
class Lab4Family(ModelFamily):
    name = "lab4-2024"
    description = "Lab4 2024: pose-conditioned dance CVAE (1 given frame, pose labels)"
    default_data_root = "data/synthetic-small"

    @property
    def config_class(self) -> type:  # type: ignore[override]
        from cvae.families.lab4_2024.config import TrainConfig

        return TrainConfig

    @property
    def synthetic_presets(self) -> Mapping[str, Any]:  # type: ignore[override]
        from cvae.families.lab4_2024.synthetic import PRESETS

        return PRESETS

    def coerce_field(self, key: str, value: Any, source: str = "config") -> Any:
        from cvae.families.lab4_2024.config import coerce_field

        return coerce_field(key, value, source)

    def load_data(self, root: str | Path, cfg: Any, progress: bool = True) -> Any:
        from cvae.families.lab4_2024.data import load_lab_data

        return load_lab_data(root, cfg.frame_H, cfg.frame_W, progress=progress)

    def check_data(self, cfg: Any, data: Any, where: str) -> None:
        from cvae.core.config import ConfigError

        n_val = int(data.val_frames.shape[0])
        if cfg.val_vi_len > n_val:
            raise ConfigError(f"{where}: val_vi_len is {cfg.val_vi_len}, but the validation video has only "
                              f"{n_val} frames (expected val_vi_len <= {n_val})")
        n_train = int(data.train_frames.shape[0])
        if cfg.train_vi_len > n_train:
            raise ConfigError(f"{where}: train_vi_len is {cfg.train_vi_len}, but the training split has only "
                              f"{n_train} frames")

    def generate_synthetic(self, out: str | Path, preset: str, seed: int = 0, progress: bool = True) -> Path:
        from cvae.families.lab4_2024.synthetic import generate

        return generate(out, preset=preset, seed=seed, progress=progress)

    def length_rule(self, synthetic: str | None, name: str, value: Any) -> str | None:
        from cvae.families.lab4_2024.synthetic import PRESETS

        if synthetic is None or synthetic not in PRESETS or name not in ("val_vi_len", "train_vi_len"):
            return None
        preset = PRESETS[synthetic]
        if name == "val_vi_len" and value > preset.val_length:
            return f"must be <= {preset.val_length}, the val video length of synthetic preset '{synthetic}'"
        train_frames = sum(preset.train_video_lengths)
        if name == "train_vi_len" and value > train_frames:
            return f"must be <= {train_frames}, the train frames of synthetic preset '{synthetic}'"
        return None

    def share_data(self, data: Any) -> dict[str, Any]:
        return {name: getattr(data, name).contiguous().numpy() for name in DATA_FIELDS}

    def unshare_data(self, shared: Mapping[str, Any]) -> tuple[Any, bool]:
        from cvae.families.lab4_2024.data import LabData

        return LabData(**arrays_to_tensors(shared, DATA_FIELDS)), all(
            not shared[n].flags.writeable for n in DATA_FIELDS)

    def baseline_psnr(self, data: Any, cfg: Any) -> float | None:
        """Mean copy-first-frame PSNR of the validation video the trainer uses."""
        from cvae.core.metrics import copy_first_frame_psnr

        frames = data.val_frames[: cfg.val_vi_len]  # (T, 3, H, W)
        if frames.shape[0] < 2:
            return None
        values = [v for v in copy_first_frame_psnr(frames) if math.isfinite(v)]
        return float(sum(values) / len(values)) if values else None

    def fit(self, cfg: Any, data: Any, on_epoch: Callable[[dict, Any], None] | None = None,
            resume_from: str | Path | None = None, device: str | None = None,
            validate_at: Sequence[int] = ()) -> Any:
        from cvae.families.lab4_2024.train import fit

        return fit(cfg, data, on_epoch=on_epoch, resume_from=resume_from, device=device, validate_at=validate_at)

    def probe_workload(self, cfg: Any) -> dict[str, Any]:
        from cvae.families.lab4_2024.probe import probe_workload

        return probe_workload(cfg)

    def probe_step(self, cfg: Any, device: Any) -> Callable[[], None]:
        import torch

        from cvae.families.lab4_2024.probe import probe_step

        return probe_step(cfg, torch.device(device))

    def train_main(self, argv: Sequence[str]) -> int:
        from cvae.families.lab4_2024.train import main

        return main(list(argv))

    def predict_main(self, argv: Sequence[str]) -> int:
        from cvae.families.lab4_2024.predict import main

        return main(list(argv))

    def synthetic_main(self, argv: Sequence[str]) -> int:
        from cvae.families.lab4_2024.synthetic import main

        return main(list(argv))
