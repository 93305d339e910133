"""KL-annealing and teacher-forcing schedules: pure functions of the epoch.

`epoch` is 0-based everywhere and the value returned is the one used *during*
that epoch.
"""
from __future__ import annotations

from cvae.core.config import KL_ANNEAL_ALIASES


def frange_cycle_linear(n_iter: int, start: float = 0.0, stop: float = 1.0,
                        n_cycle: int = 4, ratio: float = 0.5) -> list[float]:
    """Fu et al. 2019 (Cyclical Annealing Schedule), transcribed from their code.

    Kept as the paper writes it (an accumulating loop, not a closed form) so the
    values match the reference bit for bit, float rounding included.
    """
    values = [stop] * n_iter
    period = n_iter / n_cycle
    step = (stop - start) / (period * ratio)
    for c in range(n_cycle):
        v, i = start, 0
        while v <= stop and int(i + c * period) < n_iter:
            values[int(i + c * period)] = v
            v += step
            i += 1
    return values


def kl_beta(epoch: int, *, kind: str, num_epoch: int, cycle: int, ratio: float) -> float:
    """Weight of the KL term in epoch `epoch`.

    1) None: no annealing, beta is 1.
    2) Monotonic: one cycle of the cyclical schedule.
    3) Cyclical: `cycle` cycles, each rising linearly over its first `ratio` part.
    Past the last epoch (a run extended beyond num_epoch) the last value holds.
    """
    kind = KL_ANNEAL_ALIASES.get(kind, kind)
    if kind == "None":
        return 1.0
    if kind == "Monotonic":
        cycle = 1
    elif kind != "Cyclical":
        raise ValueError(f"kl_anneal_type is {kind!r}, but must be Cyclical, Monotonic or None")
    if epoch < 0:
        raise ValueError(f"epoch is {epoch}, but must be >= 0")
    schedule = frange_cycle_linear(num_epoch, start=0.0, stop=1.0, n_cycle=cycle, ratio=ratio)
    return float(schedule[min(epoch, num_epoch - 1)])


def kl_warmup_end(*, kind: str, num_epoch: int, cycle: int, ratio: float) -> int:
    """1-based count k of the first epoch whose beta is the schedule's maximum.

    The KL warm-up is over once beta has reached the largest value it takes in
    the `num_epoch` epochs (compared with a 1e-9 tolerance; the accumulating
    loop of Fu et al. can land a hair off): kl_beta(k - 1, ...) is that value.
    1) None: beta is 1 from the start, so 1.
    2) Monotonic: the end of its single rise (num_epoch=10, ratio=0.5 -> 6).
    3) Cyclical: the end of the first cycle's rise (20 epochs, 4 cycles, ratio 0.5 -> 4).
    A schedule that never reaches 1 (ratio 1.0: the next cycle starts before
    the rise ends) gives the epoch of its largest beta.
    """
    if num_epoch < 1:
        raise ValueError(f"num_epoch is {num_epoch}, but must be >= 1")
    schedule = [kl_beta(e, kind=kind, num_epoch=num_epoch, cycle=cycle, ratio=ratio) for e in range(num_epoch)]
    peak = max(schedule)
    return next(e + 1 for e, beta in enumerate(schedule) if beta >= peak - 1e-9)


def kl_judge_epochs(*, kind: str, num_epoch: int, cycle: int, ratio: float, from_epoch: int = 1) -> list[int]:
    """1-based epochs at which a run can be compared fairly with another: its KL
    term has its full weight and the run has trained under it.

    1) None: every epoch.
    2) Monotonic: every epoch from the end of its rise (kl_warmup_end) on.
    3) Cyclical: the end of each cycle's top (beta at the schedule's peak and the
       next epoch starting a new rise), and the last epoch. Just after the first
       ramp a short cycle is about to drop beta to 0 again; its metric says more
       at the end of the cycle, as the run would stand if it stopped there.
    Only epochs >= from_epoch (e.g. ASHA's grace period) are given; the last epoch
    always is.
    """
    epochs = _full_weight_epochs(kind=kind, num_epoch=num_epoch, cycle=cycle, ratio=ratio)
    return [e for e in epochs if e >= from_epoch] or [num_epoch]


def _full_weight_epochs(*, kind: str, num_epoch: int, cycle: int, ratio: float) -> list[int]:
    kind = KL_ANNEAL_ALIASES.get(kind, kind)
    warmup = kl_warmup_end(kind=kind, num_epoch=num_epoch, cycle=cycle, ratio=ratio)
    if kind != "Cyclical":
        return list(range(warmup, num_epoch + 1))
    schedule = [kl_beta(e, kind=kind, num_epoch=num_epoch, cycle=cycle, ratio=ratio) for e in range(num_epoch)]
    peak = max(schedule)
    ends = {e + 1 for e in range(num_epoch - 1)
            if schedule[e] >= peak - 1e-9 and schedule[e + 1] < schedule[e] - 1e-9}
    if not ends:  # no cycle restarts within num_epoch (one long cycle, or a flat beta): as Monotonic
        return list(range(warmup, num_epoch + 1))
    return sorted(ends | {num_epoch})


def _span(value: float | tuple[float, float], fmt: str = "{:g}") -> str:
    if isinstance(value, tuple):
        low, high = value
        return fmt.format(low) if low == high else f"{fmt.format(low)}-{fmt.format(high)}"
    return fmt.format(value)


def describe_kl(*, kind: str, num_epoch: int, cycle: int | tuple[int, int],
                ratio: float | tuple[float, float]) -> str:
    """The KL schedule (beta) in words, e.g. "3 cycles of 2 epochs (...), each rising
    from 0 to 1 over its first 50%". `cycle` and `ratio` may be (low, high) ranges.

    `kl_anneal_cycle` is Fu et al.'s n_cycle, the number of cycles in the run (the
    template's frange_cycle_linear signature), not a period in epochs: said here,
    where a user sets it, because it is often read the other way."""
    kind = KL_ANNEAL_ALIASES.get(kind, kind)
    pct = "{:.0%}"
    if kind == "None":
        return "1 throughout (no annealing)"
    top = max(ratio) if isinstance(ratio, tuple) else ratio
    short = " (a ratio above 1 stops the rise at 1/ratio, below 1)" if top > 1 else ""
    if kind == "Monotonic":
        return f"rising from 0 to 1 over the first {_span(ratio, pct)} of the {num_epoch} epochs, then 1{short}"
    if kind != "Cyclical":
        raise ValueError(f"kl_anneal_type is {kind!r}, but must be Cyclical, Monotonic or None")
    cycles = cycle if isinstance(cycle, tuple) else (cycle, cycle)
    lengths = (num_epoch / cycles[1], num_epoch / cycles[0])
    plural = "" if cycles == (1, 1) else "s"
    return (f"{_span(cycles)} cycle{plural} of {_span(lengths, '{:.3g}')} epochs (kl_anneal_cycle counts cycles), "
            f"each rising from 0 to 1 over its first {_span(ratio, pct)}{short}")


def teacher_forcing_ratio(epoch: int, *, tfr: float, sde: int, d_step: float,
                          decay: str = "linear", lower_bound: float = 0.0) -> float:
    """Teacher-forcing ratio used during epoch `epoch`.

    Mirrors the Lab4 template, which updates the ratio at the end of every epoch
    whose 1-based number is >= `sde` (tfr_sde). So epoch 0 always uses `tfr`, and
    epoch e has been decayed max(0, e + 1 - max(sde, 1)) times:
    1) linear: subtract d_step per decay;
    2) exponential: multiply by (1 - d_step) per decay;
    3) a decayed value never goes below `lower_bound` (nor above `tfr`).
    """
    if epoch < 0:
        raise ValueError(f"epoch is {epoch}, but must be >= 0")
    n_decays = max(0, epoch + 1 - max(sde, 1))
    if n_decays == 0:
        return float(tfr)
    if decay == "linear":
        value = tfr - d_step * n_decays
    elif decay == "exponential":
        value = tfr * (1.0 - d_step) ** n_decays
    else:
        raise ValueError(f"tfr_decay is {decay!r}, but must be 'linear' or 'exponential'")
    return float(min(tfr, max(lower_bound, value)))
