"""Find and stop the Ray processes one driver started, by process id only.

A Ray worker or agent can outlive a killed driver (it stays in the driver's
process group, sometimes under a renamed command line), and `ray stop` would
also stop other people's Ray on a shared machine. So tests and benchmarks give
each driver a private Ray temp dir and stop exactly the processes holding
files in it, plus the driver's process group.
"""
from __future__ import annotations

import os
import signal
from pathlib import Path


def kill_processes_using(path: str | Path) -> list[int]:
    """SIGKILL every process (but this one) with a file open under `path`; returns their pids."""
    killed: list[int] = []
    needle = str(path)
    for pid_dir in Path("/proc").iterdir():
        if not pid_dir.name.isdigit() or int(pid_dir.name) == os.getpid():
            continue
        try:
            if any(needle in os.readlink(fd) for fd in (pid_dir / "fd").iterdir()):
                os.kill(int(pid_dir.name), signal.SIGKILL)
                killed.append(int(pid_dir.name))
        except (OSError, ValueError):  # the process ended meanwhile, or is not ours to read
            continue
    return killed


def kill_driver_and_ray(driver_pid: int, ray_temp_dir: str | Path) -> None:
    """The driver's process group (started with start_new_session), then what holds its Ray temp dir."""
    try:
        os.killpg(driver_pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    kill_processes_using(ray_temp_dir)
