"""KL-annealing and teacher-forcing schedules: pure functions of the epoch.

`epoch` is 0-based everywhere and the value returned is the one used *during*
that epoch.
"""
from __future__ import annotations

from cvae.config import KL_ANNEAL_ALIASES


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
