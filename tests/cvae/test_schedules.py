import numpy as np
import pytest

from cvae.core.schedules import frange_cycle_linear, kl_beta, kl_warmup_end, teacher_forcing_ratio


def fu_reference(n_iter, start=0.0, stop=1.0, n_cycle=4, ratio=0.5):
    """Fu et al. 2019's frange_cycle_linear, verbatim in numpy (their repo)."""
    L = np.ones(n_iter) * stop
    period = n_iter / n_cycle
    step = (stop - start) / (period * ratio)
    for c in range(n_cycle):
        v, i = start, 0
        while v <= stop and (int(i + c * period) < n_iter):
            L[int(i + c * period)] = v
            v += step
            i += 1
    return L


def betas(kind, num_epoch, cycle, ratio):
    return [kl_beta(e, kind=kind, num_epoch=num_epoch, cycle=cycle, ratio=ratio) for e in range(num_epoch)]


def test_design_reference_values():
    assert betas("Cyclical", 20, 4, 0.5) == pytest.approx([0, .4, .8, 1, 1] * 4)
    assert betas("Monotonic", 10, 1, 0.5) == pytest.approx([0, .2, .4, .6, .8, 1, 1, 1, 1, 1])
    # Monotonic ignores the cycle count: one rise only.
    assert betas("Monotonic", 10, 7, 0.5) == pytest.approx([0, .2, .4, .6, .8, 1, 1, 1, 1, 1])


@pytest.mark.parametrize("num_epoch,cycle,ratio", [
    (20, 4, 0.5), (70, 10, 1.0), (100, 3, 0.25), (7, 3, 0.8), (13, 2, 0.3), (1, 1, 1.0), (50, 50, 0.5),
])
def test_cyclical_matches_fu_et_al(num_epoch, cycle, ratio):
    assert betas("Cyclical", num_epoch, cycle, ratio) == pytest.approx(list(fu_reference(num_epoch, n_cycle=cycle, ratio=ratio)))
    assert frange_cycle_linear(num_epoch, n_cycle=cycle, ratio=ratio) == pytest.approx(list(fu_reference(num_epoch, n_cycle=cycle, ratio=ratio)))


def test_none_and_aliases():
    assert betas("None", 5, 3, 0.5) == [1.0] * 5
    assert betas("Without", 5, 3, 0.5) == [1.0] * 5
    assert betas("Cyclic", 20, 4, 0.5) == betas("Cyclical", 20, 4, 0.5)


def test_beta_holds_after_last_epoch_and_rejects_unknown_kind():
    assert kl_beta(30, kind="Cyclical", num_epoch=20, cycle=4, ratio=0.5) == 1.0
    with pytest.raises(ValueError, match="kl_anneal_type"):
        kl_beta(0, kind="Sigmoid", num_epoch=10, cycle=1, ratio=0.5)


def warmup(kind, num_epoch, cycle, ratio):
    return kl_warmup_end(kind=kind, num_epoch=num_epoch, cycle=cycle, ratio=ratio)


def test_warmup_end_design_reference_values():
    # betas 0, .2, .4, .6, .8, 1, ...: the 6th epoch is the first at beta 1.
    assert warmup("Monotonic", 10, 1, 0.5) == 6
    # [0, .4, .8, 1, 1] x 4: the first cycle's rise ends in epoch 4.
    assert warmup("Cyclical", 20, 4, 0.5) == 4
    assert warmup("None", 10, 4, 0.5) == 1


def test_warmup_end_of_a_schedule_that_never_reaches_one():
    # ratio 1.0: the rise is cut by the end of the run / the next cycle; the peak is below 1.
    assert betas("Monotonic", 6, 1, 1.0)[-1] == pytest.approx(5 / 6)
    assert warmup("Monotonic", 6, 1, 1.0) == 6
    # 10 epochs, 4 cycles of 2.5: [0, .4 | 0, .4, .8 | 0, .4 | 0, .4, .8]: the peak .8 first comes in epoch 5.
    assert betas("Cyclical", 10, 4, 1.0) == pytest.approx([0, .4, 0, .4, .8, 0, .4, 0, .4, .8])
    assert warmup("Cyclical", 10, 4, 1.0) == 5
    # TrainConfig's default (10 cycles, ratio 1) over 6 epochs: beta stays 0, its peak is epoch 1.
    assert betas("Cyclical", 6, 10, 1.0) == [0.0] * 6
    assert warmup("Cyclical", 6, 10, 1.0) == 1


@pytest.mark.parametrize("num_epoch,cycle,ratio",
                         [(6, 2, 0.37), (6, 3, 0.9), (70, 10, 1.0), (13, 2, 0.3), (6, 1, 0.59)])
@pytest.mark.parametrize("kind", ["Cyclical", "Monotonic"])
def test_warmup_end_is_the_first_epoch_at_the_peak(kind, num_epoch, cycle, ratio):
    got = betas(kind, num_epoch, cycle, ratio)
    k = warmup(kind, num_epoch, cycle, ratio)
    assert 1 <= k <= num_epoch
    assert got[k - 1] == pytest.approx(max(got), abs=1e-9)
    assert all(b < max(got) - 1e-9 for b in got[:k - 1])


def test_warmup_end_aliases_and_errors():
    assert warmup("Cyclic", 20, 4, 0.5) == warmup("Cyclical", 20, 4, 0.5) == 4
    assert warmup("Without", 20, 4, 0.5) == 1
    with pytest.raises(ValueError, match="kl_anneal_type"):
        warmup("Sigmoid", 10, 1, 0.5)
    with pytest.raises(ValueError, match="num_epoch"):
        warmup("Monotonic", 0, 1, 0.5)


def tfrs(n, **kw):
    return [teacher_forcing_ratio(e, **kw) for e in range(n)]


def test_linear_decay_starts_at_sde():
    # The template decays at the end of each epoch whose 1-based number is >= sde:
    # with sde=3 the first decay follows the third epoch (index 2).
    got = tfrs(8, tfr=1.0, sde=3, d_step=0.1, decay="linear", lower_bound=0.0)
    assert got == pytest.approx([1.0, 1.0, 1.0, 0.9, 0.8, 0.7, 0.6, 0.5])


def test_sde_zero_still_starts_at_tfr():
    got = tfrs(4, tfr=0.5, sde=0, d_step=0.2, decay="linear", lower_bound=0.0)
    assert got == pytest.approx([0.5, 0.3, 0.1, 0.0])


def test_exponential_decay():
    got = tfrs(5, tfr=1.0, sde=1, d_step=0.05, decay="exponential", lower_bound=0.0)
    assert got == pytest.approx([1.0, 0.95, 0.95 ** 2, 0.95 ** 3, 0.95 ** 4])


@pytest.mark.parametrize("decay", ["linear", "exponential"])
def test_lower_bound_holds(decay):
    got = tfrs(40, tfr=1.0, sde=2, d_step=0.3, decay=decay, lower_bound=0.25)
    assert min(got) == pytest.approx(0.25)
    assert got[-1] == pytest.approx(0.25)
    assert all(a >= b for a, b in zip(got, got[1:]))


def test_zero_step_and_no_teacher_forcing():
    assert tfrs(5, tfr=0.7, sde=0, d_step=0.0, decay="linear", lower_bound=0.0) == pytest.approx([0.7] * 5)
    assert tfrs(5, tfr=0.0, sde=0, d_step=0.1, decay="linear", lower_bound=0.2) == [0.0] * 5


def test_unknown_decay_rejected():
    with pytest.raises(ValueError, match="tfr_decay"):
        teacher_forcing_ratio(3, tfr=1.0, sde=0, d_step=0.1, decay="cosine", lower_bound=0.0)


def test_describe_kl_says_what_cycle_and_ratio_mean() -> None:
    from cvae.core.schedules import describe_kl

    assert describe_kl(kind="Cyclical", num_epoch=6, cycle=3, ratio=0.5) == (
        "3 cycles of 2 epochs (kl_anneal_cycle counts cycles), each rising from 0 to 1 over its first 50%")
    assert describe_kl(kind="Cyclical", num_epoch=6, cycle=(1, 3), ratio=(0.1, 1.0)) == (
        "1-3 cycles of 2-6 epochs (kl_anneal_cycle counts cycles), each rising from 0 to 1 over its first 10%-100%")
    assert describe_kl(kind="Monotonic", num_epoch=10, cycle=7, ratio=0.25) == (
        "rising from 0 to 1 over the first 25% of the 10 epochs, then 1")  # Monotonic ignores the cycle
    assert describe_kl(kind="Without", num_epoch=10, cycle=7, ratio=0.25) == "1 throughout (no annealing)"
    # the words agree with the schedule: 3 cycles of 2 epochs, ratio 0.5 -> 0, 1 in each cycle
    assert [kl_beta(e, kind="Cyclical", num_epoch=6, cycle=3, ratio=0.5) for e in range(6)] == [0, 1, 0, 1, 0, 1]
