"""What every family's synthetic-data generator shares: its error, the seed check,
and the staged output folder (written aside, renamed into place when complete)."""
from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path
from typing import Iterator


class SyntheticError(ValueError):
    """A bad argument to the generator (preset, output folder)."""


def check_seed(seed: object, error: type[Exception] = SyntheticError) -> None:
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise error(f"seed is {seed!r}, but must be a non-negative integer")


@contextlib.contextmanager
def staged_output(out_dir: str | Path, overwrite: bool, error: type[Exception] = SyntheticError) -> Iterator[Path]:
    """A temporary sibling of `out_dir` to write a dataset into, renamed into place when the
    block ends without error and removed when it fails, so that an interrupted run never
    leaves a half-written dataset that would later be taken for a complete one. Both
    families' generators use it; `error` is the generator's own exception class."""
    out = Path(out_dir)
    if out.exists():
        if not out.is_dir():
            raise error(f"{out}: exists and is not a folder; choose another --out")
        if any(out.iterdir()):
            if not overwrite:
                raise error(f"{out}: folder exists and is not empty; remove it or choose another --out")
            shutil.rmtree(out)
    tmp = out.parent / f".{out.name}.partial-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir(parents=True)
    except OSError as err:
        raise error(f"{tmp}: cannot create the output folder ({err.strerror})") from None
    try:
        yield tmp
        try:
            if out.exists():
                out.rmdir()  # empty when we started; not empty if another process finished first
            os.replace(tmp, out)
        except OSError:
            # Another process (a second search on the same node) finished the
            # same dataset first: same preset and seed give the same bytes, keep theirs.
            if not (out.is_dir() and any(out.iterdir())):
                raise
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
