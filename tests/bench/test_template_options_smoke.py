"""bench/template_options.py --smoke trains every arm and writes its results and verdicts."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_template_options_smoke_writes_every_arm(tmp_path: Path) -> None:
    out = tmp_path / "options.json"
    proc = subprocess.run([sys.executable, "bench/template_options.py", "--smoke", "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(out.read_text())
    assert set(result["val_psnr"]) == {"all three (shipped spaces)", "none (the template)", "without output_activation",
                                       "without leaky_slope", "without shuffle"}
    assert all(len(curve) == 1 for arm in result["val_psnr"].values() for curve in arm.values())
    assert set(result["verdicts"]) == {"output_activation", "leaky_slope", "shuffle"}
    assert result["machine"] and "rule" in result


def test_the_verdict_rule() -> None:
    sys.path.insert(0, str(ROOT))
    from bench.template_options import verdicts

    base = {"all three (shipped spaces)": {1: [30.0, 34.0], 2: [30.0, 33.0]}}
    clear = {**base, "without output_activation": {1: [20.0, 30.0], 2: [20.0, 29.0]},
             "without leaky_slope": {1: [30.0, 33.9], 2: [30.0, 33.5]}, "without shuffle": {1: [1, 34.5], 2: [1, 33.0]}}
    out = verdicts(clear)
    assert out["output_activation"].startswith("helpful") and out["leaky_slope"].startswith("within noise")
    assert out["shuffle"].startswith("within noise")
