"""reports/summary.py: the summary table's numbers (see conftest.py's table) and its rows."""
from __future__ import annotations

from pathlib import Path

from reports.load import load_experiments
from reports.summary import _get_summary_info, summary_table

TID = "5f3a1_{:05d}".format


def test_summary(run_dir: Path) -> None:
    s = _get_summary_info(load_experiments([run_dir]).experiments[0])
    assert s.counts == {"completed": 5, "stopped": 2, "diverged": 1, "failed": 1, "running": 1}
    assert (s.n_trials, s.epochs_spent, s.epochs_budget, s.epochs_saved_by_asha) == (10, 28, 40, 5)
    assert s.wall_time_s == 123.4 and s.compute_time_s == 56.0  # 28 epochs x 2.0 s
    assert (s.best_trial_id, s.best_val_psnr, s.best_epoch) == (TID(8), 22.0, 4)
    assert s.best_config == {"kl_anneal_type": "Cyclical", "kl_anneal_cycle": 2, "kl_anneal_ratio": 0.5,
                             "tfr_d_step": 0, "optimizer": "Adam", "lr": 0.001}
    assert s.baseline_psnr == 16.25


def test_summary_table_has_one_column_per_experiment(run_dir: Path, reeval_run: Path) -> None:
    html = summary_table([_get_summary_info(e) for e in load_experiments([run_dir, reeval_run]).experiments])
    assert html.startswith('<table class="summary"><thead><tr><th></th><th>quick</th><th>quick (2)</th></tr>')
    assert "<td>re-evaluation runs</td><td>0</td><td>7 (6 completed, 1 diverged; 26 epochs)</td>" in html
    assert "<td>wall time</td><td>0:02:03</td><td>0:02:03</td>" in html
