"""bench/preregistration.yaml: what it fixes still matches the code that will be judged by it."""
from __future__ import annotations

import shlex
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench.curves import parse_args  # noqa: E402
from bench.replay_arms import ARMS, default_arm_of  # noqa: E402

PREREG = yaml.safe_load((ROOT / "bench" / "preregistration.yaml").read_text())


def test_the_registered_default_is_the_one_quick_yaml_runs() -> None:
    # Changing quick.yaml's design without a new pre-registration would judge a default the
    # table was not registered for: this fails until both change together.
    quick = yaml.safe_load((ROOT / "spaces" / "quick.yaml").read_text())
    assert PREREG["default_arm"] == default_arm_of(quick)


def test_the_registered_arms_and_table_command_exist() -> None:
    assert set(PREREG["replay"]["arms"]) <= set(ARMS) and PREREG["default_arm"] in PREREG["replay"]["arms"]
    command = shlex.split(PREREG["table"]["command"])
    assert command[:2] == ["python", "bench/curves.py"]
    args = parse_args(command[2:])
    assert args.training_seeds == PREREG["table"]["training_seeds"]
    assert args.n == PREREG["table"]["designs"]["sobol"] and args.tag == "seeded"
    assert Path(PREREG["table"]["file"]).name == f"curves-small-{args.tag}.csv"
