"""Exact values of every collect step on the example folder (see conftest.py's table)."""
from __future__ import annotations

import math
from pathlib import Path

import pytest

from reports import collect as c
from reports.load import ExperimentSet, load_experiments

TID = "5f3a1_{:05d}".format


@pytest.fixture
def es(run_dir: Path) -> ExperimentSet:
    return load_experiments([run_dir])


def test_summary(es: ExperimentSet) -> None:
    s = c.collect_summary(es.experiments[0])
    assert s.counts == {"completed": 5, "stopped": 2, "diverged": 1, "failed": 1, "running": 1}
    assert (s.n_trials, s.epochs_spent, s.epochs_budget, s.epochs_saved_by_asha) == (10, 28, 40, 5)
    assert s.wall_time_s == 123.4 and s.compute_time_s == 56.0  # 28 epochs x 2.0 s
    assert (s.best_trial_id, s.best_val_psnr, s.best_epoch) == (TID(8), 22.0, 4)
    assert s.best_config == {"kl_anneal_type": "Cyclical", "kl_anneal_cycle": 2, "kl_anneal_ratio": 0.5,
                             "tfr_d_step": 0, "optimizer": "Adam", "lr": 0.001}
    assert s.baseline_psnr == 16.25


def test_verdict(es: ExperimentSet) -> None:
    v = c.collect_verdict(es.experiments[0])
    assert [(r.strategy, r.best_val_psnr, r.best_trial_id, r.n_trials, r.n_completed) for r in v.ranking] == [
        ("Cyclical", 22.0, TID(8), 4, 2), ("Monotonic", 21.0, TID(1), 3, 2), ("None", 17.2, TID(7), 3, 1)]
    win = v.ranking[0]
    assert win.spread_range == pytest.approx(1.6) and win.spread_std == pytest.approx(math.sqrt(1.28))
    assert v.ranking[2].spread_std is None  # one completed trial: no spread
    assert v.gap_db == pytest.approx(1.0) and v.gap_exceeds_spread is False
    assert v.still_improving_db == pytest.approx(0.5)  # 21.5 -> 22.0 over its last epoch


def test_curves_mark_trials_that_ended_early(es: ExperimentSet) -> None:
    cur = c.collect_curves(es)
    assert len(cur) == 28
    last = cur[cur["last"]].set_index("trial_id")
    assert last["ended_early"].to_dict() == {
        TID(0): False, TID(1): False, TID(2): True, TID(3): True, TID(4): True, TID(5): True,
        TID(6): False, TID(7): False, TID(8): False, TID(9): False}
    # The diverged trial's marker sits on its last finite value.
    assert last.loc[TID(4), ["epoch", "end_psnr"]].tolist() == [2, 16.5]
    assert last.loc[TID(3), ["epoch", "end_psnr", "strategy"]].tolist() == [2, 17.5, "Cyclical"]


def test_isolation_and_combinations(es: ExperimentSet) -> None:
    iso = c.collect_isolation(es, "kl_anneal_type")
    assert iso[["value", "best_val_psnr", "trial_id", "n_trials"]].values.tolist() == [
        ["Cyclical", 22.0, TID(8), 4], ["Monotonic", 21.0, TID(1), 3], ["None", 17.2, TID(7), 3]]
    combos = c.collect_combinations(es, ["kl_anneal_type", "optimizer"])
    got = {(r.kl_anneal_type, r.optimizer): (r.best_val_psnr, r.n_trials) for r in combos.itertuples()}
    assert got == {("Cyclical", "ASGD"): (17.5, 1), ("Cyclical", "Adam"): (22.0, 2), ("Cyclical", "Adamax"): (20.4, 1),
                   ("Monotonic", "Adam"): (20.6, 2), ("Monotonic", "AdamW"): (21.0, 1),
                   ("None", "Adam"): (14.0, 1), ("None", "AdamW"): (17.2, 1), ("None", "Adamax"): (15.0, 1)}


def test_isolation_of_numeric_parameter_orders_values_and_labels_unsampled(es: ExperimentSet) -> None:
    iso = c.collect_isolation(es, "kl_anneal_cycle")
    assert iso["value"].tolist() == ["2", "4", "6", "8", "not sampled"]
    assert iso["best_val_psnr"].tolist() == [22.0, 19.5, 20.4, 17.5, 21.0]


def test_axes_and_edge_warning(es: ExperimentSet) -> None:
    ax = c.collect_axes(es)
    assert [(a.param, a.kind, a.log) for a in ax.params] == [
        ("kl_anneal_type", "categorical", False), ("kl_anneal_cycle", "numeric", False),
        ("kl_anneal_ratio", "numeric", False), ("tfr_d_step", "numeric", False),
        ("optimizer", "categorical", False), ("lr", "numeric", True)]
    # 10 trials for 4 unconditional parameters, 4 for the cycle, 7 for the ratio
    assert ax.points.groupby("param").size().to_dict() == {
        "kl_anneal_type": 10, "kl_anneal_cycle": 4, "kl_anneal_ratio": 7, "tfr_d_step": 10, "optimizer": 10, "lr": 10}
    assert len(ax.warnings) == 1
    assert "tfr_d_step = 0, at the lower edge of its range [0, 0.3]" in ax.warnings[0]
    assert ax.n_without_value == 0


@pytest.mark.parametrize("value, edge", [(9.6e-3, "upper"), (1.04e-4, "lower"), (1e-3, None)])
def test_edge_warning_uses_log_scale_for_lr(run_dir: Path, value: float, edge: str | None) -> None:
    text = (run_dir / "trials.csv").read_text().replace("Adam,0.001,", f"Adam,{value},")  # trials 4, 6, 8
    (run_dir / "trials.csv").write_text(text)
    warnings = [w for w in c.collect_axes(load_experiments([run_dir])).warnings if "has lr" in w]
    # 9.6e-3 is 0.9% of the log range from the top, 1.04e-4 0.85% from the bottom; 1e-3 is mid-range.
    assert [edge in w for w in warnings] == ([True] if edge else [])


def test_best_per_strategy_feeds_per_frame_losses_schedules(es: ExperimentSet) -> None:
    best = c.collect_best_per_strategy(es)
    assert best[["strategy", "trial_id", "best_val_psnr"]].values.tolist() == [
        ["Cyclical", TID(8), 22.0], ["Monotonic", TID(1), 21.0], ["None", TID(7), 17.2]]
    pf = c.collect_per_frame(es, best)
    assert pf.groupby("strategy")["psnr"].first().to_dict() == {"Cyclical": 25.0, "Monotonic": 24.0, "None": 20.2}
    sched = c.collect_epoch_metrics(es, best, ["beta", "tfr_at_epoch", "teacher_forcing"])
    cyc = sched[sched["strategy"] == "Cyclical"]
    assert cyc["beta"].tolist() == [0.0, 1.0, 0.0, 1.0]
    assert cyc["teacher_forcing"].tolist() == [1, 1, 0, 0]
    assert cyc["tfr_at_epoch"].tolist() == [1.0, 1.0, 1.0, 1.0]  # tfr_d_step = 0
    losses = c.collect_epoch_metrics(es, best, ["train_loss", "train_mse", "train_kl", "not_a_metric"])
    assert list(losses.columns[-3:]) == ["train_loss", "train_mse", "train_kl"]
    assert losses[losses["strategy"] == "None"]["train_mse"].tolist() == [0.5, 0.25, 0.5 / 3, 0.125]


def test_parcoords_maps_categories_and_unsampled_values(es: ExperimentSet) -> None:
    pc = c.collect_parcoords(es.experiments[0])
    dims = {d.label: d for d in pc.dimensions}
    assert list(dims) == ["kl_anneal_type", "kl_anneal_cycle", "kl_anneal_ratio", "tfr_d_step", "optimizer",
                          "lr (log scale)", "best val_psnr (dB)"]
    kl = dims["kl_anneal_type"]
    assert kl.ticktext == ["Cyclical", "Monotonic", "None"]
    assert kl.values == [0, 1, 2, 0, 1, 2, 0, 2, 0, 1]
    cyc = dims["kl_anneal_cycle"]
    assert cyc.ticktext[0] == "not sampled" and cyc.tickvals[0] == pytest.approx(2 - 0.15 * 6)
    assert cyc.values[:3] == [6.0, pytest.approx(1.1), pytest.approx(1.1)]
    assert dims["optimizer"].ticktext == ["Adam", "AdamW", "Adamax", "ASGD"]
    assert dims["lr (log scale)"].values[0] == pytest.approx(math.log10(5e-4), abs=1e-6)
    assert "0.001" in dims["lr (log scale)"].ticktext
    assert pc.color == [20.4, 21.0, 15.0, 17.5, 16.5, 14.0, 19.5, 17.2, 22.0, 20.6]


def test_importance_from_the_real_study(es: ExperimentSet) -> None:
    imp = c.collect_importance(es.experiments[0])
    assert imp.note is None and imp.n_complete == 5
    assert set(imp.importances) == {"kl_anneal_type", "kl_anneal_cycle", "kl_anneal_ratio", "tfr_d_step",
                                    "optimizer", "lr"}
    assert sum(imp.importances.values()) == pytest.approx(1.0)
    assert list(imp.importances.values()) == sorted(imp.importances.values(), reverse=True)


def test_importance_notes(run_dir: Path) -> None:
    (run_dir / "optuna.db").write_bytes(b"not a database")
    imp = c.collect_importance(load_experiments([run_dir]).experiments[0])
    assert imp.importances == {} and "could not compute" in (imp.note or "")
    (run_dir / "optuna.db").unlink()
    imp = c.collect_importance(load_experiments([run_dir]).experiments[0])
    assert "no optuna.db" in (imp.note or "")


def test_importance_needs_enough_complete_trials(make_run_dir) -> None:  # type: ignore[no-untyped-def]
    run = make_run_dir(status={0: "stopped", 1: "stopped"})  # 3 COMPLETE trials left in the study
    imp = c.collect_importance(load_experiments([run]).experiments[0])
    assert imp.importances == {} and imp.n_complete == 3
    assert imp.note == "only 3 COMPLETE trial(s) in the study; importance needs at least 4 to mean anything"


def test_verdict_when_the_gap_exceeds_the_spread(make_run_dir) -> None:  # type: ignore[no-untyped-def]
    run = make_run_dir(psnr={0: [17.5, 19.0, 20.0, 21.8]})  # Cyclical's completed trials: 21.8 and 22.0
    v = c.collect_verdict(load_experiments([run]).experiments[0])
    assert v.ranking[0].spread_range == pytest.approx(0.2)
    assert v.gap_db == pytest.approx(1.0) and v.gap_exceeds_spread is True


def test_best_so_far(es: ExperimentSet) -> None:
    b = c.collect_best_so_far(es)
    assert b["cum_epochs"].tolist() == [4, 8, 9, 11, 13, 14, 16, 20, 24, 28]
    assert b["best_so_far"].tolist() == [20.4, 21.0, 21.0, 21.0, 21.0, 21.0, 21.0, 21.0, 22.0, 22.0]


def test_frames_of_best_trial(es: ExperimentSet, run_dir: Path) -> None:
    f = c.collect_frames(es.experiments[0])
    assert (f.trial_id, f.path, f.note) == (TID(8), run_dir / "trials" / TID(8) / "frames.png", None)
