"""One search at a time in a run folder: an advisory lock the driver holds while it runs.

A second run_search.py on the same folder (a `--resume` typed in another terminal
while the first search still runs, or a driver on another node sharing the storage
path) would back up, rewrite and reconcile Tune's state and the Optuna study under
the running search. The driver holds an exclusive flock on `runs/<name>/.search.lock`
before it changes anything and until it ends. The kernel drops the lock when the
process dies, SIGKILL included, so a killed search never leaves a stale lock and
`--resume` after a kill is never refused. The file itself stays: unlinking it on
release would let two later drivers lock two different files.
"""
from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator, Optional

LOCK_NAME = ".search.lock"
# Folders this process holds already (or tried to, where flock is unsupported):
# run_search.py takes the lock before Ray starts and search.runner.run_search takes it
# again, and a second flock on a new descriptor would conflict with the first one even
# within one process.
_held: set[Path] = set()


class RunFolderBusy(ValueError):
    """Another live driver holds the run folder (a user error: exit 2, nothing changed)."""


def _holder(lock_path: Path) -> str:
    """'pid 1234 on host h, started 2026-...' from the lock file, or a plain phrase if unreadable."""
    try:
        info = json.loads(lock_path.read_text())
        return f"pid {info['pid']} on host {info['host']}, started {info['started_at']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "a process that has not written its details yet"


def _lock(handle, run_dir: Path, lock_path: Path) -> bool:
    """True once the lock is ours; False where the filesystem cannot lock (warned); RunFolderBusy if held."""
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        raise RunFolderBusy(
            f"{run_dir}: another search is running in this folder ({_holder(lock_path)}); "
            "wait for it to end or stop it, then run again (--resume continues it). "
            "Nothing was changed") from None
    except OSError as err:  # e.g. ENOLCK on a network filesystem without locks
        print(f"warning: {lock_path}: cannot lock the run folder ({err.strerror}); "
              "make sure no other search uses it", file=sys.stderr, flush=True)
        return False


@contextmanager
def hold_run_folder(run_dir: str | Path) -> Iterator[Optional[Path]]:
    """Hold `run_dir`'s lock for the duration of the block; RunFolderBusy if another process has it.

    Yields the lock file's path, or None on a filesystem without flock support (a warning is
    printed and the search goes on unguarded, as it did before the lock existed)."""
    run_dir = Path(run_dir).resolve()
    lock_path = run_dir / LOCK_NAME
    if run_dir in _held:
        yield lock_path
        return
    run_dir.mkdir(parents=True, exist_ok=True)
    # "a+": never truncate before the lock is ours, so a busy folder's holder details survive.
    handle = lock_path.open("a+")
    try:
        locked = _lock(handle, run_dir, lock_path)
        if locked:
            handle.seek(0)
            handle.truncate()
            handle.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                     "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}))
            handle.flush()
        _held.add(run_dir)  # unlockable too: the nested call must not warn a second time
        try:
            yield lock_path if locked else None
        finally:
            _held.discard(run_dir)
    finally:
        handle.close()  # closing the descriptor releases the flock
