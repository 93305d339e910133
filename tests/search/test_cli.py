"""run_search.py as a user runs it: a subprocess, its exit code, stdout and stderr."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _run(*args: str, code: str | None = None, timeout: float = 240) -> subprocess.CompletedProcess:
    """run_search.py ARGS; `code` replaces the plain call (to inspect the process afterwards)."""
    if code is None:
        cmd = [sys.executable, str(ROOT / "run_search.py"), *args]
    else:
        cmd = [sys.executable, "-c", code, *args]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def _one_line_error(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("run_search.py: error:")]
    assert len(errors) == 1, proc.stderr
    return errors[0]


def test_dry_run_prints_space_and_plan_and_starts_no_ray(tmp_path, tiny_data, make_space):
    space = make_space(tmp_path / "tiny.yaml", name="dry", data_root=tiny_data)
    code = ("import sys; sys.path.insert(0, '.'); import run_search; "
            "rc = run_search.main(sys.argv[1:]); "
            "print('RAY_IMPORTED', 'ray' in sys.modules); sys.exit(rc)")
    proc = _run("--space", str(space), "--storage-path", str(tmp_path / "runs"), "--num-samples", "7",
                "--dry-run", code=code)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "search space 'dry'" in out  # space.describe()
    assert "kl_anneal_cycle" in out and "when kl_anneal_type" in out
    assert "trials:      7, 2 at a time" in out  # the plan, with the --num-samples override
    assert str(tmp_path / "runs" / "dry") in out
    assert "RAY_IMPORTED False" in out  # Ray was not even imported, let alone started
    assert not (tmp_path / "runs").exists()


def test_missing_space_file_exits_2_naming_it(tmp_path):
    missing = tmp_path / "nope.yaml"
    line = _one_line_error(_run("--space", str(missing), "--dry-run"))
    assert str(missing) in line


def test_invalid_space_exits_2_naming_file_and_key(tmp_path, tiny_data, make_space):
    space = make_space(tmp_path / "bad.yaml", name="bad", data_root=tiny_data, fixed={"batch_sise": 4})
    line = _one_line_error(_run("--space", str(space)))
    assert str(space) in line and "batch_sise" in line


def test_data_that_is_a_file_exits_2(tmp_path, tiny_data, make_space):
    space = make_space(tmp_path / "tiny.yaml", name="tiny", data_root=tiny_data)
    a_file = tmp_path / "data.txt"
    a_file.write_text("not a dataset")
    line = _one_line_error(_run("--space", str(space), "--data", str(a_file), "--dry-run"))
    assert str(a_file) in line


def test_resume_of_a_missing_experiment_exits_2(tmp_path, tiny_data, make_space):
    space = make_space(tmp_path / "tiny.yaml", name="ghost", data_root=tiny_data)
    line = _one_line_error(_run("--space", str(space), "--storage-path", str(tmp_path / "runs"), "--resume"))
    assert str(tmp_path / "runs" / "ghost") in line and "resume" in line


def test_bad_resource_flags_exit_2_before_ray(tmp_path, tiny_data, make_space):
    space = make_space(tmp_path / "tiny.yaml", name="tiny", data_root=tiny_data)
    line = _one_line_error(_run("--space", str(space), "--gpus-per-trial", "1.5", "--dry-run"))
    assert "1.5" in line


@pytest.mark.slow
def test_gpus_on_a_cpu_only_cluster_exit_2_after_printing_the_dashboard(tmp_path, tiny_data, make_space):
    """Starts a real local Ray: the dashboard URL is printed, the public bind warned
    about, then the GPU request is refused before any trial starts."""
    space = make_space(tmp_path / "tiny.yaml", name="gpu", data_root=tiny_data)
    proc = _run("--space", str(space), "--storage-path", str(tmp_path / "runs"), "--gpus-per-trial", "1",
                "--dashboard-host", "0.0.0.0")
    line = _one_line_error(proc)
    assert "GPU" in line and "no GPUs" in line
    assert "CVE-2023-48022" in proc.stderr and "no authentication" in proc.stderr
    dashboard = [l for l in proc.stdout.splitlines() if l.startswith("Ray dashboard: http://")]
    assert dashboard, proc.stdout
    assert not list((tmp_path / "runs" / "gpu").glob("**/result.json"))  # no trial ran
