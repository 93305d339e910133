"""`precision: auto` decided by measurement: the trainer's own step timed in fp32 and bf16 here.

The rule (`pick_precision`): bf16 only if its median step time is below fp32's by
more than the larger of MIN_GAIN (5%) and the steps' spread, the spread being the
largest (max - min) / median of the two precisions' timed steps; otherwise fp32.
fp32 is the side a tie falls to: it is the template's arithmetic, so an unclear
gain is not worth bf16's rounding. fp16 is never picked (it needs loss scaling).
A result is conclusive when bf16 wins by that margin or loses by it (its median above
fp32's by more than the same margin); an inconclusive one runs in fp32 and answers
nothing from the cache, so the next start measures again: bench/results/precision_probe.json has two
lab-dims probes on this 2-core machine under a load of 5 (steps 10x slower, spread
53% and 101%) that could not tell, and a third, quiet, that measured bf16 1.8x faster.

The probe (`time_steps`): the model family builds its real trainer twice (fp32 and
bf16, as configured otherwise: dims, batch size, channels_last, threads, device) and
hands over one training step of each (`ModelFamily.probe_step`; each family's
probe.py says which frames and teacher-forcing modes one step covers). WARMUP_STEPS
untimed then TIMED_STEPS timed steps per precision, the two interleaved so that a
change in the machine's load hits both. Seconds at the demo dims; under a minute
at the lab dims on one thread of a 2-core Xeon.

The cache: one JSON file (`cache_path()`: $CVAE_PRECISION_CACHE, else
$XDG_CACHE_HOME/cvae-search/precision.json, else ~/.cache/cvae-search/precision.json),
one entry per key: CPU model, the CPU's native bf16 flags, thread count, torch
version, device (with the GPU's name) and the family's workload (dims, batch size,
frames, layout). Any part changing means a new probe; deleting the file re-probes.

When no probe can run (a family without one, a GPU the driver cannot see, an error
in the probe), `cvae.core.precision.choose_precision`'s flag rule decides, and the
decision says why. Where bf16 would be emulated (a CPU without AMX, avx512_bf16 or
Arm bf16; a GPU without native bf16) nothing is measured: fp32 (`emulated_bf16`),
unless the cache already holds an answer for the key. Validation and prediction generate in fp32 whatever is picked
(cvae.core.precision.GENERATION_DTYPE).
"""
from __future__ import annotations

import contextlib
import json
import os
import platform
import random
import statistics
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np
import torch

from cvae.core.precision import bf16_support, choose_precision

PROBED = ("fp32", "bf16")
WARMUP_STEPS = 1
TIMED_STEPS = 3
MIN_GAIN = 0.05  # bf16 must save more than this fraction of the fp32 step (and more than the spread)
CACHE_ENV = "CVAE_PRECISION_CACHE"
CACHE_VERSION = 1
MAX_CACHE_ENTRIES = 64  # oldest dropped first: a key per machine x dims x threads stays small

Timings = Mapping[str, Sequence[float]]  # precision -> seconds per timed step


@dataclass(frozen=True)
class PrecisionDecision:
    """What `precision` a run computes in, and how that was decided.

    source: forced (the config names it) | measured (probed now) | cached (a probe's
    earlier answer for the same key) | fallback (no probe ran: `note` says why; the flag
    rule picked) | pending (dry run: the run will probe) | unresolved (the trials decide
    on their own device with the flag rule; precision stays "auto").
    """
    precision: str
    source: str
    fp32_s: float | None = None  # median step time
    bf16_s: float | None = None
    spread: float | None = None
    note: str = ""
    conclusive: bool = True  # measured: the timings decided beyond noise (only such answers are cached)

    @property
    def speedup(self) -> float | None:
        """fp32's step time over bf16's (> 1: bf16 faster)."""
        if self.fp32_s is None or self.bf16_s is None or self.bf16_s <= 0:
            return None
        return self.fp32_s / self.bf16_s

    def how(self) -> str:
        """How it was decided, in words: `measured 2.2x faster than fp32 here, cached`."""
        if self.source == "forced":
            return "forced"
        if self.source in ("measured", "cached"):
            suffix = ", cached" if self.source == "cached" else ""
            if self.precision == "bf16":
                return f"measured {self.speedup:.2g}x faster than fp32 here{suffix}"
            noise = "" if self.conclusive else ", within noise: measured again next time"
            return f"bf16 measured {self.speedup:.2g}x of fp32 here{noise}{suffix}"
        return self.note

    def describe(self) -> str:
        """The decision as printed: `bf16 (measured 2.2x faster than fp32 here, cached)`."""
        return f"{self.precision} ({self.how()})"

    def as_dict(self) -> dict[str, Any]:
        return {"precision": self.precision, "source": self.source, "fp32_s": self.fp32_s, "bf16_s": self.bf16_s,
                "spread": self.spread, "speedup": self.speedup, "conclusive": self.conclusive, "note": self.note,
                "text": self.describe()}


# --- the rule ----------------------------------------------------------------------
def spread(times: Sequence[float]) -> float:
    """(max - min) / median of one precision's timed steps."""
    middle = statistics.median(times)
    return (max(times) - min(times)) / middle if middle > 0 else 0.0


def pick_precision(timings: Timings) -> PrecisionDecision:
    """fp32 or bf16 from timed steps of each (the module's rule); source 'measured'."""
    for name in PROBED:
        if not timings.get(name):
            raise ValueError(f"timings has no {name} steps (got {sorted(timings)})")
    fp32, bf16 = (statistics.median(timings[name]) for name in PROBED)
    noise = max(spread(timings[name]) for name in PROBED)
    margin = max(MIN_GAIN, noise)
    faster, slower = bf16 < fp32 * (1 - margin), bf16 > fp32 * (1 + margin)
    return PrecisionDecision("bf16" if faster else "fp32", "measured", fp32_s=fp32, bf16_s=bf16, spread=noise,
                             conclusive=faster or slower)


# --- the probe ---------------------------------------------------------------------
@contextlib.contextmanager
def _threads_and_rng_kept(threads: int) -> Iterator[None]:
    """Run with `threads` torch threads, then give the caller back its count and RNG states
    (building a trainer seeds every generator; a search driver must not notice the probe)."""
    before = torch.get_num_threads()
    py_state, np_state = random.getstate(), np.random.get_state()
    torch.set_num_threads(threads)
    try:
        with torch.random.fork_rng(devices=[]):
            yield
    finally:
        torch.set_num_threads(before)
        random.setstate(py_state)
        np.random.set_state(np_state)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_steps(make_step: Callable[[str], Callable[[], None]], device: torch.device | str, threads: int,
               warmup: int = WARMUP_STEPS, timed: int = TIMED_STEPS) -> dict[str, list[float]]:
    """Seconds per step of `make_step(precision)()` for fp32 and bf16, interleaved, on `threads` threads."""
    device = torch.device(device)
    with _threads_and_rng_kept(threads):
        steps = {name: make_step(name) for name in PROBED}
        for _ in range(warmup):
            for step in steps.values():
                step()
        _sync(device)
        times: dict[str, list[float]] = {name: [] for name in PROBED}
        for _ in range(timed):
            for name, step in steps.items():
                start = time.perf_counter()
                step()
                _sync(device)
                times[name].append(time.perf_counter() - start)
    return times


# --- the key and the cache ---------------------------------------------------------------
def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo's 'model name', else the platform's word for it)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}"
    return device.type


def probe_key(device: torch.device | str, threads: int, workload: Mapping[str, Any]) -> dict[str, Any]:
    """Everything a probe's answer depends on: the machine, the software and the step's workload."""
    device = torch.device(device)
    support = bf16_support()
    return {"cpu": cpu_model(), "bf16_flags": {"amx_bf16": support.cpu_amx_bf16,
                                               "avx512_bf16": support.cpu_avx512_bf16,
                                               "arm_bf16": support.cpu_arm_bf16},
            "threads": int(threads), "torch": torch.__version__, "device": device_name(device),
            "workload": dict(workload)}


def cache_path() -> Path:
    """$CVAE_PRECISION_CACHE, else $XDG_CACHE_HOME/cvae-search/precision.json, else ~/.cache/..."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    root = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(root) / "cvae-search" / "precision.json"


def _same(a: Any, b: Any) -> bool:
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def _read_entries(path: Path) -> list[dict[str, Any]]:
    """The cache's entries; a missing, unreadable or foreign file counts as empty (it is only a cache,
    rewritten on the next probe)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return []
    if not isinstance(data, dict) or data.get("version") != CACHE_VERSION or not isinstance(data.get("entries"), list):
        return []
    return [e for e in data["entries"] if isinstance(e, dict) and "key" in e]


def read_cached(key: Mapping[str, Any], path: Path | None = None) -> PrecisionDecision | None:
    """The cached decision for `key`, or None (no probe runs)."""
    for entry in _read_entries(path or cache_path()):
        if _same(entry["key"], key):
            try:
                timings = {name: [float(t) for t in entry["timings"][name]] for name in PROBED}
                decision = pick_precision(timings)
            except (KeyError, TypeError, ValueError):
                return None  # a damaged entry: probe again
            if not decision.conclusive:
                return None
            return PrecisionDecision(decision.precision, "cached", decision.fp32_s, decision.bf16_s,
                                     decision.spread)
    return None


def write_cached(key: Mapping[str, Any], timings: Timings, decision: PrecisionDecision,
                 path: Path | None = None) -> Path:
    """Record a probe under `key` (replacing an older one); written beside, then renamed.
    An inconclusive probe is recorded too (its timings are worth reading) but read_cached
    ignores it, so the next start measures again."""
    path = path or cache_path()
    entries = [e for e in _read_entries(path) if not _same(e["key"], key)]
    entries.append({"key": dict(key), "precision": decision.precision, "conclusive": decision.conclusive,
                    "timings": {name: list(timings[name]) for name in PROBED},
                    "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds")})
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"version": CACHE_VERSION, "entries": entries[-MAX_CACHE_ENTRIES:]}, indent=1))
    tmp.replace(path)
    return path


# --- the decision -----------------------------------------------------------------
def emulated_bf16(device: torch.device | str) -> PrecisionDecision | None:
    """fp32, with nothing measured, where bf16 would be emulated; None where it is native.

    Emulated bf16 is never faster, and timing it is not free: on an AVX2-only EPYC
    the bf16 step measured 0.11x of fp32 at the demo dims and 0.088x at the lab
    dims, where probing it took 174 s (bench/results/precision_probe.avx2.before.json).
    On a GPU: a T4 or V100."""
    device = torch.device(device)
    support = bf16_support()
    if device.type == "cuda" and not support.cuda_bf16:
        return PrecisionDecision("fp32", "fallback", note="the GPU has no native bf16: nothing to measure")
    if device.type == "cpu" and not support.cpu_native:
        return PrecisionDecision("fp32", "fallback", note="the CPU has no native bf16 (no AMX, avx512_bf16 or "
                                                          "Arm bf16), so it would be emulated: nothing to measure")
    return None


def fallback(device: torch.device | str, why: str) -> PrecisionDecision:
    """The flag rule's answer (cvae.core.precision), saying why no probe decided."""
    device = torch.device(device)
    name, reason = choose_precision(device.type, bf16_support())
    return PrecisionDecision(name, "fallback", note=f"not measured: {why}; flag rule: {reason}")


def decide_precision(configured: str, *, key: Mapping[str, Any] | None, measure: Callable[[], Timings] | None,
                     device: torch.device | str = "cpu", cache: Path | None = None,
                     why_not: str = "") -> PrecisionDecision:
    """What a run configured with `configured` computes in.

    fp32/bf16/fp16: forced, nothing runs. auto: the cached answer for `key`, else
    `measure()` (then cached), else the flag rule (`why_not`, or the probe's error, says why).
    """
    if configured != "auto":
        return PrecisionDecision(configured, "forced")
    device = torch.device(device)
    if key is None or measure is None:
        return fallback(device, why_not or "no probe for this run")
    hit = read_cached(key, cache)
    if hit is not None:
        return hit
    emulated = emulated_bf16(device)
    if emulated is not None:
        return emulated
    try:
        timings = measure()
    except Exception as err:  # noqa: BLE001 - the probe is an optimisation: any failure falls back to the rule
        return fallback(device, f"the probe failed ({type(err).__name__}: {err})")
    decision = pick_precision(timings)
    write_cached(key, timings, decision, cache)  # an inconclusive entry is kept, but answers nothing
    return decision


def planned_precision(configured: str, *, key: Mapping[str, Any] | None, cache: Path | None = None,
                      why_not: str = "", device: torch.device | str = "cpu") -> PrecisionDecision:
    """What `decide_precision` would say without running anything (a dry run): forced, cached,
    fp32 where bf16 would be emulated, or 'auto (measured at the first trial ...)'."""
    if configured != "auto":
        return PrecisionDecision(configured, "forced")
    if key is None:
        return PrecisionDecision("auto", "pending", note=f"not measured: {why_not}; each trial applies the flag rule")
    hit = read_cached(key, cache)
    if hit is not None:
        return hit
    emulated = emulated_bf16(device)
    if emulated is not None:
        return emulated
    return PrecisionDecision("auto", "pending", note=f"measured before the first trial: {TIMED_STEPS} fp32 vs bf16 "
                                                     f"training steps here, then cached in {cache or cache_path()}")


# --- a model family's run ----------------------------------------------------------------
def _family_key(family: Any, cfg: Any, device: torch.device, threads: int
                ) -> tuple[dict[str, Any] | None, str]:
    """(the cache key of `family`'s step for `cfg`, '') or (None, why no probe can run)."""
    if device.type == "cuda" and not torch.cuda.is_available():
        return None, "the run's GPU is not visible to this process"
    try:
        workload = family.probe_workload(cfg)
    except NotImplementedError as err:
        return None, str(err)
    return probe_key(device, threads, workload), ""


def _threads(cfg: Any, threads: int | None) -> int:
    return int(threads or getattr(cfg, "torch_threads", None) or torch.get_num_threads())


def decide_run_precision(family: Any, cfg: Any, device: torch.device | str, threads: int | None = None,
                         cache: Path | None = None) -> PrecisionDecision:
    """`decide_precision` for a run of `family` (a cvae.core.registry.ModelFamily) with `cfg` on
    `device` with `threads` torch threads (default: cfg.torch_threads, else torch's count)."""
    device = torch.device(device)
    threads = _threads(cfg, threads)
    if cfg.precision != "auto":
        return PrecisionDecision(cfg.precision, "forced")
    key, why = _family_key(family, cfg, device, threads)
    if key is None and device.type == "cuda" and not torch.cuda.is_available():
        return PrecisionDecision("auto", "unresolved", note=f"not measured: {why}; each trial applies the flag rule")

    return decide_precision(cfg.precision, key=key, measure=(lambda: run_timings(family, cfg, device, threads)),
                            device=device, cache=cache, why_not=why)


def run_timings(family: Any, cfg: Any, device: torch.device, threads: int) -> Timings:
    """The probe's measurement for a run of `family` with `cfg`: its own training step timed in
    fp32 and in bf16 (`time_steps`), as configured otherwise, on `device` with `threads` threads."""
    def make_step(name: str) -> Callable[[], None]:
        return family.probe_step(cfg.replace(precision=name, torch_threads=threads, device=device.type), device)

    return time_steps(make_step, device, threads)


def planned_run_precision(family: Any, cfg: Any, device: torch.device | str, threads: int | None = None,
                          cache: Path | None = None) -> PrecisionDecision:
    """What `decide_run_precision` would answer, without running a probe (a dry run)."""
    device = torch.device(device)
    threads = _threads(cfg, threads)
    if cfg.precision != "auto":
        return PrecisionDecision(cfg.precision, "forced")
    key, why = _family_key(family, cfg, device, threads)
    return planned_precision(cfg.precision, key=key, cache=cache, why_not=why, device=device)
