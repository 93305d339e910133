"""One study trial's own folder, `runs/<name>/trials/<id>/`: its epochs, checkpoints and pictures.

```
metrics.jsonl                one JSON object per epoch (what the trial reported), flushed before the report
attempts.jsonl               one line per attempt: the Ray trial id and the checkpoint epoch it started from
checkpoints/epoch-NNNN/      trainer.pt; complete or absent (written as a hidden sibling, then renamed)
val_psnr_per_frame.json      {"epoch", "frame_index", "psnr"} of the last validation
frames.png, frames.json      ground truth over prediction of the last validation, and its epoch
trial.json                   the view's summary of the trial (search.results)
```
Written by the trial's own process (search.trainable); read by the driver's views
(search.results) and by reports/. A kill can cut the last line of metrics.jsonl
short: readers skip a line that is not JSON.
"""
from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any, Callable, Optional

CHECKPOINT_FILE = "trainer.pt"
FRAMES_FILE = "frames.png"
FRAMES_META_FILE = "frames.json"
PER_FRAME_KEY = "val_psnr_per_frame"
PER_FRAME_FILE = "val_psnr_per_frame.json"
METRICS_FILE = "metrics.jsonl"
ATTEMPTS_FILE = "attempts.jsonl"
CHECKPOINTS_DIR = "checkpoints"
NUM_CHECKPOINTS_KEPT = 2


def atomic_write(path: Path, text: str) -> None:
    """Write via a temporary sibling so a reader (or a kill) never sees half a file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The complete lines of a JSON-lines file (a line a kill cut short is skipped)."""
    if not path.is_file():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict):
            out.append(value)
    return out


def epoch_rows(path: Path) -> dict[int, dict[str, Any]]:
    """metrics.jsonl as epoch -> row (a repeated epoch: the later row)."""
    rows: dict[int, dict[str, Any]] = {}
    for row in read_jsonl(path):
        if "epoch" in row:
            rows[int(row["epoch"])] = row
    return rows


class TrialFiles:
    def __init__(self, run_dir: Path, trial_id: str) -> None:
        self.trial_id = trial_id
        self.folder = Path(run_dir) / "trials" / trial_id
        self.folder.mkdir(parents=True, exist_ok=True)

    @property
    def metrics_path(self) -> Path:
        return self.folder / METRICS_FILE

    # --- checkpoints -------------------------------------------------------------
    def checkpoints(self) -> list[tuple[int, Path]]:
        """Complete checkpoints, oldest first."""
        root = self.folder / CHECKPOINTS_DIR
        if not root.is_dir():
            return []
        found = []
        for path in root.iterdir():
            if path.name.startswith("epoch-") and (path / CHECKPOINT_FILE).is_file():
                try:
                    found.append((int(path.name[len("epoch-"):]), path))
                except ValueError:
                    continue
        return sorted(found)

    def newest_checkpoint(self) -> Optional[tuple[int, Path]]:
        found = self.checkpoints()
        return found[-1] if found else None

    def save_checkpoint(self, epoch: int, write: Callable[[Path], None]) -> Path:
        root = self.folder / CHECKPOINTS_DIR
        root.mkdir(exist_ok=True)
        final = root / f"epoch-{epoch:04d}"
        tmp = root / f".epoch-{epoch:04d}.{os.getpid()}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        write(tmp)
        if final.exists():  # the same epoch again (a retry that re-ran it): same state, replace it
            shutil.rmtree(final)
        os.replace(tmp, final)
        for _, old in self.checkpoints()[:-NUM_CHECKPOINTS_KEPT]:
            shutil.rmtree(old, ignore_errors=True)
        return final

    # --- attempts ------------------------------------------------------------------
    def start_attempt(self, ray_trial_id: str) -> Optional[Path]:
        """Begin an attempt: cut metrics.jsonl back to the newest complete checkpoint (or to
        nothing), note the attempt, and return the checkpoint folder to continue from."""
        newest = self.newest_checkpoint()
        from_epoch = newest[0] if newest else 0
        rows = epoch_rows(self.metrics_path)
        kept = [rows[e] for e in sorted(rows) if e <= from_epoch]
        if self.metrics_path.exists():
            atomic_write(self.metrics_path, "".join(json.dumps(r) + "\n" for r in kept))
        with (self.folder / ATTEMPTS_FILE).open("a") as out:
            out.write(json.dumps({"ray_trial_id": ray_trial_id, "from_epoch": from_epoch,
                                  "started_at": time.time()}) + "\n")
        return newest[1] if newest else None

    def attempts(self) -> list[dict[str, Any]]:
        return read_jsonl(self.folder / ATTEMPTS_FILE)

    def last_row(self) -> Optional[dict[str, Any]]:
        rows = epoch_rows(self.metrics_path)
        return rows[max(rows)] if rows else None

    # --- per epoch -------------------------------------------------------------------
    def append_metrics(self, row: dict[str, Any]) -> None:
        with self.metrics_path.open("a") as out:
            out.write(json.dumps(row, allow_nan=True) + "\n")
            out.flush()
            os.fsync(out.fileno())

    def write_per_frame(self, epoch: int, per_frame: list[float]) -> None:
        payload = {"epoch": epoch, "frame_index": list(range(1, len(per_frame) + 1)),
                   "psnr": [float(v) for v in per_frame]}
        atomic_write(self.folder / PER_FRAME_FILE, json.dumps(payload))

    def write_frames(self, draw: Callable[[Path], None], epoch: int) -> None:
        tmp = self.folder / f".{FRAMES_FILE}.{os.getpid()}.tmp.png"
        draw(tmp)
        os.replace(tmp, self.folder / FRAMES_FILE)
        atomic_write(self.folder / FRAMES_META_FILE, json.dumps({"epoch": epoch}))
