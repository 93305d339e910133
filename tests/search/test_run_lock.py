"""search.run_lock: one live search per run folder, and no stale lock after a kill."""
from __future__ import annotations

import fcntl
import json
import os
import signal
from pathlib import Path

import pytest

from search.run_lock import LOCK_NAME, RunFolderBusy, hold_run_folder


def locked_by_someone(lock_path: Path) -> bool:
    """Whether an flock is held on the file (a new descriptor conflicts even within this process)."""
    with lock_path.open("a") as probe:
        try:
            fcntl.flock(probe.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(probe.fileno(), fcntl.LOCK_UN)
        return False


def test_a_folder_held_by_a_live_process_is_refused_naming_the_holder(tmp_path, folder_holder) -> None:
    run_dir = tmp_path / "runs" / "busy"
    holder = folder_holder(run_dir)
    with pytest.raises(RunFolderBusy) as err:
        with hold_run_folder(run_dir):
            pytest.fail("the lock of a live holder was taken")
    message = str(err.value)
    assert str(run_dir.resolve()) in message and f"pid {holder.pid} on host" in message, message
    assert "Nothing was changed" in message
    # the refused attempt left the holder's details as they were
    assert json.loads((run_dir / LOCK_NAME).read_text())["pid"] == holder.pid
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=30)
    # SIGKILL leaves no stale lock: the kernel dropped it with the process
    with hold_run_folder(run_dir) as lock:
        assert lock == run_dir.resolve() / LOCK_NAME
        assert json.loads(lock.read_text())["pid"] == os.getpid()


def test_the_holder_may_take_its_own_lock_again_and_releases_it_at_the_end(tmp_path, folder_holder) -> None:
    run_dir = tmp_path / "runs" / "nested"
    with hold_run_folder(run_dir) as lock:
        with hold_run_folder(run_dir / ".." / "nested"):  # the same folder, spelled otherwise
            assert locked_by_someone(lock)
        assert locked_by_someone(lock)  # the inner block did not release the outer one's lock
    assert not locked_by_someone(lock)
    folder_holder(run_dir)  # released: another process takes it
    assert locked_by_someone(lock)


def test_a_filesystem_without_flock_warns_once_and_runs_unguarded(tmp_path, monkeypatch, capsys) -> None:
    # An NFS mount without lock support answers flock with ENOLCK; this machine's disks cannot.
    import errno

    def no_locks(fd: int, operation: int) -> None:
        raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))

    monkeypatch.setattr(fcntl, "flock", no_locks)
    run_dir = tmp_path / "runs" / "nfs"
    with hold_run_folder(run_dir) as lock:
        assert lock is None
        with hold_run_folder(run_dir):  # what run_search.py then search.runner do
            pass
    err = capsys.readouterr().err
    assert err.count("cannot lock the run folder") == 1 and "make sure no other search uses it" in err, err
