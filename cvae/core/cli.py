"""The command lines `python -m cvae.train`, `cvae.predict` and `cvae.synthetic`:
each finds the model family a run is for and hands it the arguments.

cvae.train: --model, else the config file's `model:` key (a search's best.yaml
writes it), else the default family. cvae.predict: --model, else the family the
checkpoint records. cvae.synthetic: the family whose presets hold --preset.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Sequence

from cvae.core.checkpoint import CheckpointError, load_checkpoint
from cvae.core.registry import (
    DEFAULT_FAMILY,
    ModelFamily,
    UnknownFamilyError,
    family_from_argv,
    family_names,
    get_family,
)


def _config_model(path: str) -> Any:
    """The config file's `model:` key, else None."""
    import yaml

    try:
        values = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError):
        return None  # the family's own loader reports it, naming the file
    return values.get("model") if isinstance(values, dict) else None


def _checkpoint_family(path: str) -> str | None:
    """The `family` a checkpoint records (None: the default family's, or unreadable)."""
    try:
        return load_checkpoint(path).get("family")
    except CheckpointError:
        return None  # reported by the family's own loader, naming the file


def _preset_family(argv: Sequence[str]) -> ModelFamily:
    """The family whose synthetic presets hold --preset (the default family otherwise,
    whose parser then names the presets it has)."""
    for i, arg in enumerate(argv):
        value = arg.split("=", 1)[1] if arg.startswith("--preset=") else (
            argv[i + 1] if arg == "--preset" and i + 1 < len(argv) else None)
        if value is not None:
            for name in family_names():
                family = get_family(name)
                if value in family.synthetic_presets:
                    return family
    return get_family(DEFAULT_FAMILY)


def train_main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        family = family_from_argv(argv, "--config", _config_model)
    except UnknownFamilyError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return family.train_main(argv)


def predict_main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        family = family_from_argv(argv, "--checkpoint", _checkpoint_family)
    except UnknownFamilyError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return family.predict_main(argv)


def synthetic_main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    return _preset_family(argv).synthetic_main(argv)
