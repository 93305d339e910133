"""The 2023 Lab4 (Lab5 in some years) model family: an SVG-style CVAE on BAIR robot
pushing, registered as `bair-2023` (docs/BAIR-2023.md).

config.py (BairConfig), data.py (the processed BAIR layout), synthetic.py (generated
data in that layout), model.py (VGG64 encoder/decoder, LSTMs), step.py (the loss and
the rollout), train.py (validation, Trainer, fit), predict.py (GIFs + PSNR CSV).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from cvae.core.registry import ModelFamily, arrays_to_tensors, register_family

DATA_FIELDS = ("train_frames", "train_cond", "val_frames", "val_cond")


@register_family
class BairFamily(ModelFamily):
    name = "bair-2023"
    description = "Lab4 2023: SVG-style CVAE on BAIR robot pushing (2 past -> 10 future frames, action + position)"
    default_data_root = "data/bair-small"

    @property
    def config_class(self) -> type:  # type: ignore[override]
        from cvae.families.bair_2023.config import BairConfig

        return BairConfig

    @property
    def synthetic_presets(self) -> Mapping[str, Any]:  # type: ignore[override]
        from cvae.families.bair_2023.synthetic import PRESETS

        return PRESETS

    def coerce_field(self, key: str, value: Any, source: str = "config") -> Any:
        from cvae.families.bair_2023.config import coerce_field

        return coerce_field(key, value, source)

    def closest_field(self, name: str) -> str | None:
        from cvae.families.bair_2023.config import closest_field

        return closest_field(name)

    def first_predicted_frame(self, cfg: Any) -> int:
        return int(cfg.n_past)

    def load_data(self, root: str | Path, cfg: Any, progress: bool = True) -> Any:
        from cvae.families.bair_2023.data import load_bair_data

        return load_bair_data(root, cfg.seq_len, progress=progress)

    def check_data(self, cfg: Any, data: Any, where: str) -> None:
        from cvae.core.config import ConfigError
        from cvae.families.bair_2023.train import check_bair_data

        try:
            check_bair_data(cfg, data)
        except ConfigError as err:
            raise ConfigError(f"{where}: {err}") from None

    def generate_synthetic(self, out: str | Path, preset: str, seed: int = 0, progress: bool = True) -> Path:
        from cvae.families.bair_2023.synthetic import generate

        return generate(out, preset=preset, seed=seed, progress=progress)

    def share_data(self, data: Any) -> dict[str, Any]:
        return {name: getattr(data, name).contiguous().numpy() for name in DATA_FIELDS}

    def unshare_data(self, shared: Mapping[str, Any]) -> tuple[Any, bool]:
        from cvae.families.bair_2023.data import BairData

        return BairData(**arrays_to_tensors(shared, DATA_FIELDS)), all(
            not shared[n].flags.writeable for n in DATA_FIELDS)

    def baseline_psnr(self, data: Any, cfg: Any) -> float | None:
        from cvae.families.bair_2023.train import copy_last_frame_baseline

        return copy_last_frame_baseline(cfg, data)

    def fit(self, cfg: Any, data: Any, on_epoch: Callable[[dict, Any], None] | None = None,
            resume_from: str | Path | None = None, device: str | None = None,
            validate_at: Sequence[int] = ()) -> Any:
        from cvae.families.bair_2023.train import fit

        return fit(cfg, data, on_epoch=on_epoch, resume_from=resume_from, device=device, validate_at=validate_at)

    def probe_workload(self, cfg: Any) -> dict[str, Any]:
        from cvae.families.bair_2023.probe import probe_workload

        return probe_workload(cfg)

    def probe_step(self, cfg: Any, device: Any) -> Callable[[], None]:
        import torch

        from cvae.families.bair_2023.probe import probe_step

        return probe_step(cfg, torch.device(device))

    def train_main(self, argv: Sequence[str]) -> int:
        from cvae.families.bair_2023.train import main

        return main(list(argv))

    def predict_main(self, argv: Sequence[str]) -> int:
        from cvae.families.bair_2023.predict import main

        return main(list(argv))

    def synthetic_main(self, argv: Sequence[str]) -> int:
        from cvae.families.bair_2023.synthetic import main

        return main(list(argv))
