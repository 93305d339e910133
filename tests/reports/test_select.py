"""reports/select.py: the row selections the figures share: strata, the search phase,
each strategy's best trial and its per-epoch metrics."""
from __future__ import annotations

from pathlib import Path

from reports.figures.axes import _get_axes_info
from reports.figures.best_so_far import _get_best_so_far_info
from reports.figures.frames import _get_frames_info
from reports.figures.isolation import _get_isolation_info
from reports.figures.parcoords import _get_parcoords_info
from reports.load import load_experiment, load_experiments
from reports.select import best_per_strategy, epoch_metrics, strategy
from reports.summary import _get_summary_info

TID = "5f3a1_{:05d}".format


def test_strategy_of_an_old_folder_with_two_scientific_parameters(run_dir: Path) -> None:
    space = (run_dir / "space.yaml").read_text().replace(
        "optimizer: {values: [Adam, AdamW, Adamax, ASGD]}",
        "optimizer: {values: [Adam, AdamW, Adamax, ASGD], role: scientific}")
    (run_dir / "space.yaml").write_text(space)
    t = load_experiment(run_dir).trials.set_index("trial_id")
    assert t.loc[TID(0), "stratum"] == "kl_anneal_type=Cyclical, optimizer=Adamax"
    assert strategy(t).loc[TID(7)] == "kl_anneal_type=None, optimizer=AdamW"


def test_best_per_strategy_and_its_epoch_metrics(run_dir: Path) -> None:
    es = load_experiments([run_dir])
    best = best_per_strategy(es)
    assert best[["strategy", "trial_id", "best_val_psnr"]].values.tolist() == [
        ["Cyclical", TID(8), 22.0], ["Monotonic", TID(1), 21.0], ["None", TID(7), 17.2]]
    losses = epoch_metrics(es, best, ["train_loss", "train_mse", "train_kl", "not_a_metric"])
    assert list(losses.columns[-3:]) == ["train_loss", "train_mse", "train_kl"]  # not_a_metric left out
    assert losses[losses["strategy"] == "None"]["train_mse"].tolist() == [0.5, 0.25, 0.5 / 3, 0.125]


def test_search_figures_leave_the_reruns_out(reeval_run: Path, run_dir: Path) -> None:
    new, old = load_experiments([reeval_run]), load_experiments([run_dir])
    assert (_get_best_so_far_info(new).points["cum_epochs"].tolist()
            == _get_best_so_far_info(old).points["cum_epochs"].tolist())
    assert _get_isolation_info(new, "kl_anneal_type").points["n_trials"].tolist() == [4, 3, 3]
    assert len(_get_axes_info(new).points) == len(_get_axes_info(old).points)
    assert _get_parcoords_info(new.experiments[0]).color == _get_parcoords_info(old.experiments[0]).color
    assert best_per_strategy(new)["trial_id"].tolist() == [TID(8), TID(1), TID(7)]
    assert _get_frames_info(new.experiments[0]).trial_id == TID(8)
    s = _get_summary_info(new.experiments[0])
    assert (s.n_trials, s.epochs_spent, s.epochs_budget) == (10, 28, 40)
    assert s.counts == {"completed": 5, "stopped": 2, "diverged": 1, "failed": 1, "running": 1}
    assert (s.n_reeval, s.reeval_epochs) == (7, 26)
    assert s.reeval_counts == {"completed": 6, "stopped": 0, "diverged": 1, "failed": 0, "running": 0}
    assert s.compute_time_s == 2.0 * (28 + 26)  # the cost counts both phases
