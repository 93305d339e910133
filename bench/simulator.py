"""One asynchronous search replayed on stored learning curves: the real scheduler decides, nothing trains.

Shared by bench/replay.py (whole searches: a searcher proposes, a table curve answers) and
bench/stop_rates.py (fixed orders of stored curves through two schedulers).

The model of time: `workers` asynchronous workers (2, as the searches run), time = epochs (every epoch of
every trial takes one unit). At the start of a tick every free worker starts the next trial, if there is
one; then each running trial produces its next epoch, the workers in a random order (`rng`), each result
going to the scheduler (Ray's `on_trial_result`) and, unless the scheduler said STOP, to the listener (the
searcher's side). A trial ends at STOP, at its last epoch, or where its curve ends early (it diverged);
the scheduler's `on_trial_complete` and the listener's `complete` then get its last result, as Tune calls
them. A replay ends when nothing runs and nothing more starts, or after `budget` epochs in all.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Protocol, Sequence

import numpy as np

WORKERS = 2


@dataclass
class ReplayTrial:
    """What a scheduler reads of a Tune trial: its id and config."""
    trial_id: str
    config: dict[str, Any]


@dataclass
class Started:
    """A trial a worker starts and the stored curve it will report, one value per epoch."""
    trial: ReplayTrial
    curve: Sequence[float]


@dataclass
class Outcome:
    """How far one trial ran: `stopped` is a STOP before max_t (not its last epoch, not a divergence)."""
    trial: ReplayTrial
    last_epoch: int = 0
    ended: bool = False
    stopped: bool = False


@dataclass
class Replayed:
    trace: list[float] = field(default_factory=list)    # the incumbent (best value so far) after each epoch
    trials: list[Outcome] = field(default_factory=list)  # in start order


class Listener(Protocol):
    """The searcher's side: results the scheduler let through, and each trial's last result."""

    def result(self, trial_id: str, result: dict[str, Any]) -> None: ...

    def complete(self, trial_id: str, result: dict[str, Any]) -> None: ...


@dataclass
class _Running:
    started: Started
    outcome: Outcome
    epoch: int = 1


def replay(start: Callable[[], Optional[Started]], scheduler: Any, rng: np.random.Generator, max_t: int,
           budget: float = math.inf, listener: Optional[Listener] = None, workers: int = WORKERS) -> Replayed:
    """Feed curves through `scheduler` (None: run every trial to its end) as `workers` workers would.

    `start()` gives the next trial to run, or None once there is none (it is not asked again).
    """

    out = Replayed()
    running: dict[int, _Running] = {}
    best, exhausted = -math.inf, False
    while len(out.trace) < budget:
        for worker in range(workers):
            if worker in running or exhausted:
                continue
            begun = begin(start, out.trials, scheduler)
            if begun is None:
                exhausted = True
                break
            running[worker] = _Running(*begun)
        if not running:
            break
        order = list(running)
        rng.shuffle(order)  # results of the same tick reach the scheduler in a random order
        for worker in order:
            if len(out.trace) >= budget:
                break
            state = running[worker]
            best = max(best, state.started.curve[state.epoch - 1])
            out.trace.append(best)
            if deliver(state.started.trial, state.started.curve, state.epoch, state.outcome, scheduler, listener,
                       max_t):
                del running[worker]
            else:
                state.epoch += 1
    return out


def begin(start: Callable[[], Any], trials: list[Outcome], scheduler: Any) -> Optional[tuple[Any, Outcome]]:
    """Ask for the next trial and register it (its outcome in `trials`, the trial with the scheduler);
    None when the searcher has nothing more to propose. Shared by the tick and the wall-time replays."""
    started = start()
    if started is None:
        return None
    outcome = Outcome(started.trial)
    trials.append(outcome)
    if scheduler is not None:
        scheduler.on_trial_add(None, started.trial)
    return started, outcome


def deliver(trial: ReplayTrial, curve: Sequence[float], epoch: int, outcome: Outcome, scheduler: Any,
            listener: Optional[Listener], max_t: int) -> bool:
    """One epoch's result, as Tune hands it on: to the scheduler, then (unless it ended the trial) to
    the listener; at a STOP, the curve's last epoch or a divergence, `on_trial_complete` to both.
    Returns whether the trial ended."""
    from ray.tune.schedulers.trial_scheduler import TrialScheduler

    diverged = epoch == len(curve) and len(curve) < max_t
    result = {"epoch": epoch, "training_iteration": epoch, "val_psnr": curve[epoch - 1], "diverged": diverged}
    outcome.last_epoch = epoch
    decision = scheduler.on_trial_result(None, trial, result) if scheduler else TrialScheduler.CONTINUE
    if decision == TrialScheduler.STOP or epoch >= len(curve):
        if scheduler is not None:
            scheduler.on_trial_complete(None, trial, result)
        if listener is not None:
            listener.complete(trial.trial_id, result)
        outcome.ended = True
        outcome.stopped = epoch < max_t and not diverged
        return True
    if listener is not None:
        listener.result(trial.trial_id, result)
    return False


# --- the seeded table's replay: wall time instead of ticks -------------------------------

@dataclass
class TimedStart:
    """A trial, the curve it reports, how long each of its epochs takes (training + validation, s),
    and what its configuration is worth (`true_value`, the incumbent's regret is counted on it)."""
    trial: ReplayTrial
    curve: Sequence[float]
    seconds: Sequence[float]
    true_value: float


@dataclass
class TimedReplay:
    trace: list[tuple[float, float]] = field(default_factory=list)  # (elapsed s, incumbent's true value)
    trials: list[Outcome] = field(default_factory=list)


def replay_timed(start: Callable[[], Optional[TimedStart]], scheduler: Any, max_t: int, budget_s: float,
                 listener: Optional[Listener] = None, workers: int = WORKERS) -> TimedReplay:
    """`workers` asynchronous workers in wall time: each epoch ends `seconds[epoch - 1]` after the last.

    Results reach the scheduler in the order they finish (ties: the lower worker first); a worker that
    frees up starts the next trial at once. The incumbent is the trial with the best reported value so
    far (what the search sees); the trace records its `true_value` (what that configuration is worth).
    Stops when the next result would finish after `budget_s`, or when nothing runs and nothing starts.
    """
    import heapq

    out = TimedReplay()
    running: dict[int, tuple[TimedStart, Outcome, int]] = {}
    events: list[tuple[float, int]] = []  # (finish time of the running epoch, worker)
    seen_best, exhausted = -math.inf, False

    def launch(worker: int, now: float) -> None:
        nonlocal exhausted
        if exhausted:
            return
        begun = begin(start, out.trials, scheduler)
        if begun is None:
            exhausted = True
            return
        started, outcome = begun
        running[worker] = (started, outcome, 1)
        heapq.heappush(events, (now + started.seconds[0], worker))

    for worker in range(workers):
        launch(worker, 0.0)
    while events:
        now, worker = heapq.heappop(events)
        if now > budget_s:
            break
        started, outcome, epoch = running[worker]
        if started.curve[epoch - 1] > seen_best:
            seen_best = started.curve[epoch - 1]
            out.trace.append((now, started.true_value))
        if deliver(started.trial, started.curve, epoch, outcome, scheduler, listener, max_t):
            del running[worker]
            launch(worker, now)
        else:
            running[worker] = (started, outcome, epoch + 1)
            heapq.heappush(events, (now + started.seconds[epoch], worker))
    return out


def incumbent_at(trace: list[tuple[float, float]], seconds: float) -> float:
    """The incumbent's true value at `seconds` (nan before the first result)."""
    value = math.nan
    for t, v in trace:
        if t > seconds:
            break
        value = v
    return value
