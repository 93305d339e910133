"""Reading this family's checkpoints: the core's format, with the config read as
today's fields (a checkpoint from before `leaky_slope` existed)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from cvae.core.checkpoint import load_checkpoint
from cvae.families.lab4_2024.config import upgrade_saved_config

# The keys a lab4-2024 checkpoint has beyond the core's: its LR scheduler's state.
EXTRA_KEYS = ("scheduler",)


def load_lab4_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """A lab4-2024 checkpoint's dict, its config read as today's fields (upgrade_saved_config)."""
    state = load_checkpoint(path, map_location, extra_keys=EXTRA_KEYS)
    state["config"] = upgrade_saved_config(state["config"])
    return state
