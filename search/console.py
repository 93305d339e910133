"""What a search prints while it runs: one line per trial start and end, and a progress line.

Ray Tune's own console output (a boxed configuration table per trial, a status
table every few seconds, result tables) goes to `runs/<name>/ray.log` instead,
with the log lines of Ray, Optuna and the trial workers (`ray_output_to`);
`run_search.py --verbose` leaves it on the console. What stays on screen:

    start  4f1e2a3b  Monotonic
    end    4f1e2a3b  Monotonic  stopped at epoch 2/6  val_psnr 31.07
    progress: 5/18 trials done, 2 running | 27/108 epochs | best val_psnr 38.21 (9c0d1e2f) | 2m14s, ~3m10s left

In a terminal the progress line redraws in place; when the output is not a
terminal (a CI log, `make search > log`) it is printed as a plain line after a
trial ends, at most once every `PLAIN_EVERY_S` seconds, and once at the end.

`ConsoleCallback` is a Tune callback: Tune pickles it with the experiment, so
it keeps no stream in its state (`resume` gives it a fresh one).
"""
from __future__ import annotations

import contextlib
import logging
import math
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Iterator, Optional, TextIO

from ray.tune import Callback

from runfolder.status import COMPLETED, DIVERGED, FAILED, STOPPED, classify_end, last_epoch
from search.strata import PHASE_KEY, REEVAL, STRATUM_KEY, TRIAL_KEY

PLAIN_EVERY_S = 30.0   # plain mode: at most one progress line per this many seconds
REDRAW_EVERY_S = 1.0   # terminal mode: the elapsed time ticks once a second
_ALL = "all"           # the stratum of a space without scientific parameters (search.strata)


def duration(seconds: float) -> str:
    """12s, 3m05s, 1h02m."""
    s = int(round(max(seconds, 0)))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def _value(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.3g}"
    return str(v)


class ConsoleCallback(Callback):
    """One line per trial start/end plus a live progress line, on `stream`."""

    def __init__(self, *, metric: str, mode: str, num_epoch: int, num_search: int, max_reeval: int,
                 param_names: tuple[str, ...] = (), stream: Optional[TextIO] = None,
                 live: Optional[bool] = None) -> None:
        self.metric, self.num_epoch = metric, num_epoch
        self.sign = 1.0 if mode == "max" else -1.0  # "higher is better" from here on
        self.num_search, self.max_reeval = num_search, max_reeval
        self.param_names = tuple(param_names)
        self._stream = stream
        self._live = live
        self._reset()

    def _reset(self) -> None:
        self.started: dict[str, float] = {}       # trial_id -> start time
        self.epochs: dict[str, int] = {}          # trial_id -> epochs reported
        self.ended: dict[str, str] = {}           # trial_id -> status
        self.best: Optional[tuple[float, str]] = None
        self.t0: Optional[float] = None
        self._last_plain = -math.inf  # plain mode: the first trial end prints a progress line
        self._last_draw = 0.0
        self._drawn = False

    # --- pickling: Tune saves callbacks with the experiment ------------------
    def __getstate__(self) -> dict:
        state = dict(vars(self))
        state["_stream"] = None
        return state

    def __setstate__(self, state: dict) -> None:
        vars(self).update(state)

    @property
    def stream(self) -> TextIO:
        return self._stream or sys.stdout

    @property
    def live(self) -> bool:
        """Redraw in place: only on a terminal."""
        if self._live is None:
            isatty = getattr(self.stream, "isatty", None)
            self._live = bool(isatty and isatty())
        return self._live

    # --- what a trial is -------------------------------------------------------
    def label(self, trial) -> str:
        config = getattr(trial, "config", {}) or {}
        stratum = config.get(STRATUM_KEY)
        if stratum and stratum != _ALL:
            text = str(stratum)
        else:
            shown = [f"{k}={_value(config[k])}" for k in self.param_names if k in config][:4]
            text = " ".join(shown)
        if config.get(PHASE_KEY) == REEVAL:
            text += f"  re-run, seed {config.get('seed', '?')}"
        return text

    # --- Tune callback hooks -----------------------------------------------------
    def on_trial_start(self, iteration: int, trials: list, trial, **info) -> None:
        now = time.time()
        if self.t0 is None:
            self.t0 = now
        if _tid(trial) in self.started:  # a retry after a failure or a resumed trial
            self.say(f"resume {_tid(trial)}  {self.label(trial)}")
        else:
            self.say(f"start  {_tid(trial)}  {self.label(trial)}")
        self.started[_tid(trial)] = now
        self.ended.pop(_tid(trial), None)

    def on_trial_result(self, iteration: int, trials: list, trial, result: dict, **info) -> None:
        epoch = last_epoch(result)
        if epoch is not None:
            self.epochs[_tid(trial)] = max(epoch, self.epochs.get(_tid(trial), 0))
        value = result.get(self.metric)
        try:
            value = float(value)
        except (TypeError, ValueError):
            return
        if math.isfinite(value) and (self.best is None or self.sign * value > self.sign * self.best[0]):
            self.best = (value, _tid(trial))
        self.draw()

    def on_trial_complete(self, iteration: int, trials: list, trial, **info) -> None:
        self._end(trial, error=False)

    def on_trial_error(self, iteration: int, trials: list, trial, **info) -> None:
        self._end(trial, error=True)

    def on_step_end(self, iteration: int, trials: list, **info) -> None:
        if self.live and time.time() - self._last_draw >= REDRAW_EVERY_S:
            self.draw()

    def on_experiment_end(self, trials: list, **info) -> None:
        self.draw(final=True)

    # --- the lines -----------------------------------------------------------------
    def _end(self, trial, *, error: bool) -> None:
        last = getattr(trial, "last_result", None) or {}
        status = classify_end(last, error=error, metric=self.metric, num_epoch=self.num_epoch)
        self.ended[_tid(trial)] = status
        epoch = last_epoch(last) or self.epochs.get(_tid(trial), 0)
        self.epochs[_tid(trial)] = max(epoch, self.epochs.get(_tid(trial), 0))
        value = last.get(self.metric)
        shown = (f"  {self.metric} {value:.2f}" if status != FAILED and isinstance(value, (int, float))
                 and math.isfinite(value) else "")
        what = {COMPLETED: f"completed {epoch}/{self.num_epoch} epochs",
                STOPPED: f"stopped at epoch {epoch}/{self.num_epoch}",
                DIVERGED: f"diverged at epoch {epoch}",
                FAILED: "failed" + (f" (see {trial.path}/error.txt)" if getattr(trial, "path", None) else "")}[status]
        self.say(f"end    {_tid(trial)}  {self.label(trial)}  {what}{shown}")
        if not self.live and time.time() - self._last_plain >= PLAIN_EVERY_S:
            self.draw(force=True)

    def progress(self, now: Optional[float] = None) -> str:
        now = time.time() if now is None else now
        done = len(self.ended)
        running = len([t for t in self.started if t not in self.ended])
        total = self.num_search + self.max_reeval
        spent = sum(self.epochs.values())
        budget = total * self.num_epoch
        parts = [f"{done}/{total} trials done, {running} running"
                 + (f" (incl. up to {self.max_reeval} re-runs)" if self.max_reeval else ""),
                 f"{spent}/{budget} epochs"]
        if self.best is not None:
            parts.append(f"best {self.metric} {self.best[0]:.2f} ({self.best[1]})")
        elapsed = now - self.t0 if self.t0 else 0.0
        timing = duration(elapsed)
        left = self.seconds_left(elapsed, spent, done, running, total)
        if left is not None:
            timing += f", ~{duration(left)} left"
        parts.append(timing)
        return "progress: " + " | ".join(parts)

    def seconds_left(self, elapsed: float, spent: int, done: int, running: int, total: int) -> Optional[float]:
        """Remaining epochs at the rate seen so far: running trials to num_epoch (at most),
        trials not started yet at the mean length of the ended ones (num_epoch before any ended)."""
        if spent <= 0 or elapsed <= 0:
            return None
        ended = [self.epochs.get(t, 0) for t in self.ended]
        mean = sum(ended) / len(ended) if ended else self.num_epoch
        remaining = sum(self.num_epoch - self.epochs.get(t, 0) for t in self.started if t not in self.ended)
        remaining += max(total - done - running, 0) * mean
        return remaining * elapsed / spent

    def say(self, line: str) -> None:
        stream = self.stream
        if self.live and self._drawn:
            stream.write("\r\x1b[K")
        stream.write(line + "\n")
        self._drawn = False
        if self.live:
            self.draw()
        stream.flush()

    def draw(self, *, final: bool = False, force: bool = False) -> None:
        now = time.time()
        line = self.progress(now)
        stream = self.stream
        if self.live:
            width = shutil.get_terminal_size((120, 24)).columns
            stream.write("\r\x1b[K" + line[: max(width - 1, 20)] + ("\n" if final else ""))
            self._drawn = not final
        elif final or force:
            stream.write(line + "\n")
            self._last_plain = now
        stream.flush()
        self._last_draw = now


# --------------------------------------------------------------------------- #
# Ray's own output -> ray.log
# --------------------------------------------------------------------------- #
def _stream_handlers() -> Iterator[logging.StreamHandler]:
    loggers = [logging.getLogger()] + [logging.getLogger(name) for name in list(logging.root.manager.loggerDict)]
    for logger in loggers:
        for handler in list(getattr(logger, "handlers", [])):
            if isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler):
                yield handler


@contextlib.contextmanager
def ray_output_to(log_path: Optional[Path]) -> Iterator[TextIO]:
    """Send everything Ray, Tune, Optuna and the trial workers print to `log_path`
    (appended: a resumed search adds to it) and yield the real stdout for the
    console. `log_path=None` (--verbose) changes nothing."""
    console = sys.stdout
    if log_path is None:
        yield console
        return
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = open(log_path, "a", buffering=1, encoding="utf-8", errors="replace")  # noqa: SIM115 - closed below
    old_out, old_err = sys.stdout, sys.stderr
    moved: list[tuple[logging.StreamHandler, Any]] = []
    for handler in _stream_handlers():
        if handler.stream in (old_out, old_err, sys.__stdout__, sys.__stderr__):
            moved.append((handler, handler.stream))
            handler.setStream(log)
    sys.stdout, sys.stderr = log, log
    try:
        yield console
    finally:
        sys.stdout, sys.stderr = old_out, old_err
        for handler, stream in moved:
            handler.setStream(stream)
        for handler in _stream_handlers():  # handlers created while redirected (Optuna's, lazily)
            if handler.stream is log:
                handler.setStream(old_err)
        log.close()


def _tid(trial: Any) -> str:
    """The study trial a Ray trial is an attempt of (search.record), else Ray's own id."""
    return str((trial.config or {}).get(TRIAL_KEY) or trial.trial_id)
