"""The wheel installs what a user needs: every package (the 2023 family, the
registry, the run folder's contract), and the two entry points run from outside
the checkout on the wheel's code alone (not the editable install)."""
from __future__ import annotations

import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wheel_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                           "-w", str(out), str(ROOT)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    wheel = next(out.glob("cvae_search-*.whl"))
    unpacked = out / "site"
    with zipfile.ZipFile(wheel) as z:
        z.extractall(unpacked)
    return unpacked


def _run_from_wheel(site: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    # -S: no .pth files, so the editable install of the checkout is not on the path; the
    # dependencies come from this interpreter's site-packages, the project from the wheel.
    deps = sysconfig.get_paths()["purelib"]
    env = {"PYTHONPATH": f"{site}:{deps}", "PATH": "/usr/bin:/bin", "HOME": str(cwd)}
    return subprocess.run([sys.executable, "-S", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)


def test_the_wheel_holds_every_package(wheel_dir: Path) -> None:
    for package in ("cvae", "cvae/core", "cvae/families", "cvae/families/lab4_2024", "cvae/families/bair_2023",
                    "runfolder", "search", "reports"):
        assert (wheel_dir / package / "__init__.py").is_file(), package
    assert (wheel_dir / "run_search.py").is_file()


def test_the_entry_points_run_from_the_wheel_outside_the_checkout(wheel_dir: Path, tmp_path: Path) -> None:
    where = _run_from_wheel(wheel_dir, tmp_path, "-c", "import cvae.families.bair_2023, cvae.families.lab4_2024, "
                            "runfolder.contract, reports.html, search.runner, cvae; print(cvae.__file__)")
    assert where.returncode == 0, where.stderr[-2000:]
    assert where.stdout.strip().startswith(str(wheel_dir))  # the wheel's code, not the checkout's
    space = tmp_path / "quick.yaml"
    space.write_text((ROOT / "spaces" / "quick.yaml").read_text())
    dry = _run_from_wheel(wheel_dir, tmp_path, "-m", "run_search", "--space", str(space), "--dry-run")
    assert dry.returncode == 0, dry.stderr[-2000:]
    assert "search space 'quick'" in dry.stdout and "strata (3; scientific: kl_anneal_type)" in dry.stdout
    train = _run_from_wheel(wheel_dir, tmp_path, "-m", "cvae.train", "--help")
    assert train.returncode == 0 and "--from {lab4-template}" in train.stdout, train.stderr[-2000:]
