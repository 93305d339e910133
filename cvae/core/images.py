"""Image I/O every family's data loader shares: the data error, the odd-data
warning, decoding one PNG to RGB, the decode progress line and the decode
thread count."""
from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

from PIL import Image


class DataError(ValueError):
    """The dataset on disk is missing, incomplete or unreadable; names the file or folder."""


def warn_data(message: str) -> None:
    """One warning line on stderr for data that is odd but harmless (it is ignored, and said so)."""
    print(f"warning: {message}", file=sys.stderr, flush=True)


def open_rgb(path: Path) -> Image.Image:
    """Decode fully (truncation shows here, not later) and convert to RGB."""
    try:
        with Image.open(path) as img:
            img.load()
            if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
                # Transparent pixels become white, the labels' background.
                rgba = img.convert("RGBA")
                white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
                return Image.alpha_composite(white, rgba).convert("RGB")
            return img.convert("RGB")
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise DataError(f"{path}: cannot decode as an image ({err})") from None


class Progress:
    """A one-line decode progress counter on stderr, safe to call from decode threads."""

    def __init__(self, label: str, total: int, enabled: bool) -> None:
        self.label, self.total, self.enabled = label, total, enabled
        self.done, self.start, self.lock = 0, time.perf_counter(), threading.Lock()
        self.last_print = 0.0

    def add(self, n: int = 1) -> None:
        if not self.enabled:
            return
        with self.lock:
            self.done += n
            now = time.perf_counter()
            if self.done < self.total and now - self.last_print < 0.5:
                return
            self.last_print = now
            end = "\n" if self.done >= self.total else ""
            print(f"\r{self.label}: {self.done}/{self.total} images ({100 * self.done // self.total}%) "
                  f"{now - self.start:.1f}s", end=end, file=sys.stderr, flush=True)


def decode_workers() -> int:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(cores, 8))
