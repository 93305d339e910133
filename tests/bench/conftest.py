"""What the bench tests share: running a benchmark script's --smoke mode as a user would."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _run_smoke(script: str, out: Path, timeout: int = 300) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    """Run `python bench/<script> --smoke --out OUT` from the repository root; assert it exited 0 and
    return the process (its stdout and stderr) and the results file it wrote."""
    proc = subprocess.run([sys.executable, f"bench/{script}", "--smoke", "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc, json.loads(out.read_text())


@pytest.fixture
def run_smoke() -> Callable[..., tuple[subprocess.CompletedProcess[str], dict[str, Any]]]:
    """The smoke runner (a fixture, so that test modules need not import a conftest by name)."""
    return _run_smoke
