"""reports/figures/isolation.py: best val_psnr per scientific value, and per combination."""
from __future__ import annotations

from pathlib import Path

from reports.figures.isolation import _get_combinations_info, _get_isolation_info
from reports.load import load_experiments

TID = "5f3a1_{:05d}".format


def test_isolation_and_combinations(run_dir: Path) -> None:
    es = load_experiments([run_dir])
    iso = _get_isolation_info(es, "kl_anneal_type").points
    assert iso[["value", "best_val_psnr", "trial_id", "n_trials"]].values.tolist() == [
        ["Cyclical", 22.0, TID(8), 4], ["Monotonic", 21.0, TID(1), 3], ["None", 17.2, TID(7), 3]]
    combos = _get_combinations_info(es, ["kl_anneal_type", "optimizer"])
    got = {(r.kl_anneal_type, r.optimizer): (r.best_val_psnr, r.n_trials) for r in combos.itertuples()}
    assert got == {("Cyclical", "ASGD"): (17.5, 1), ("Cyclical", "Adam"): (22.0, 2), ("Cyclical", "Adamax"): (20.4, 1),
                   ("Monotonic", "Adam"): (20.6, 2), ("Monotonic", "AdamW"): (21.0, 1),
                   ("None", "Adam"): (14.0, 1), ("None", "AdamW"): (17.2, 1), ("None", "Adamax"): (15.0, 1)}


def test_isolation_of_numeric_parameter_orders_values_and_labels_unsampled(run_dir: Path) -> None:
    iso = _get_isolation_info(load_experiments([run_dir]), "kl_anneal_cycle").points
    assert iso["value"].tolist() == ["2", "4", "6", "8", "not sampled"]
    assert iso["best_val_psnr"].tolist() == [22.0, 19.5, 20.4, 17.5, 21.0]
