"""reports/__main__.py: python -m reports, its arguments and its errors."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from reports.__main__ import main


def test_cli_writes_report_and_rejects_bad_folder(run_dir: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(run_dir), "-o", str(tmp_path / "a.html")]) == 0
    assert (tmp_path / "a.html").stat().st_size > 1_000_000
    assert main([str(tmp_path / "nope")]) == 2
    assert "nope: no such experiment folder" in capsys.readouterr().err


def test_a_reference_run_is_a_named_line(make_run_dir, tmp_path: Path,  # type: ignore[no-untyped-def]
                                         capsys: pytest.CaptureFixture[str]) -> None:
    run = make_run_dir(reeval=True)
    assert main([str(run), "-o", str(tmp_path / "r.html"), "--reference", "my template run=21.4"]) == 0
    assert "my template run: 21.40 dB (reference)" in (tmp_path / "r.html").read_text()
    for bad in ("21.4", "=21.4", "run=fast", "run=inf"):
        assert main([str(run), "-o", str(tmp_path / "x.html"), "--reference", bad]) == 2
        assert "--reference is" in capsys.readouterr().err
    assert not (tmp_path / "x.html").exists()


def test_cli_error_has_no_traceback(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "reports", str(tmp_path)], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 2
    assert "no trials.csv" in done.stderr and "Traceback" not in done.stderr
