"""runfolder.contract: one results contract, on the lowest floor, used by search/ and reports/ (issue 13)."""
from __future__ import annotations

import subprocess
import sys

import runfolder.contract as contract


def test_contract_imports_no_ray_optuna_plotly_or_pandas() -> None:
    code = ("import sys, runfolder.contract; heavy = [m for m in ('ray', 'optuna', 'plotly', 'pandas', 'torch') "
            "if m in sys.modules]; print(heavy); sys.exit(1 if heavy else 0)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_one_name_per_column_and_the_trainer_reports_every_metric() -> None:
    from cvae.core.training import METRIC_KEYS

    header = contract.trials_header(["kl_anneal_type", "lr", "tfr"])
    assert len(header) == len(set(header))
    assert set(contract.METRICS) == set(METRIC_KEYS) - {"epoch", "val_psnr_per_frame"}
    assert contract.METRIC_COLUMN == {"tfr": "tfr_at_epoch", "lr": "lr_at_epoch"}


def test_search_and_reports_use_the_contract() -> None:
    import reports.load
    import search.results
    from runfolder import status

    assert reports.load.STATUSES is contract.STATUSES is status.STATUSES
    assert reports.load.read_trials_table is contract.read_trials_table
    assert search.results.write_trials_csv is contract.write_trials_csv


def test_older_headers_get_todays_names() -> None:
    # before issue 11 (no study columns), the per-epoch lr under a second `lr`
    old = ["trial_id", "status", "epoch", "kl_anneal_type", "lr", *contract.METRICS]
    columns, params = contract.name_columns(old)
    assert params == ["kl_anneal_type", "lr"]
    assert columns[-len(contract.METRICS):] == list(contract.METRIC_COLUMNS)
    today = contract.trials_header(["kl_anneal_type", "lr"])
    assert contract.name_columns(today) == (today, ["kl_anneal_type", "lr"])


def test_reader_skips_rows_cut_short_and_gives_none_back(tmp_path) -> None:
    rows = [contract.EpochRow("t1", "running", 1, stratum="None", seed=3, params={"kl_anneal_type": "None"},
                              metrics={"val_psnr": 20.5, "lr": 1e-3, "validated": True})]
    contract.write_trials_csv(tmp_path / "trials.csv", ["kl_anneal_type"], rows)
    with open(tmp_path / "trials.csv", "a") as f:
        f.write("t1,running,2,search")  # a kill mid-write
    table = contract.read_trials_table(tmp_path)
    assert table.skipped == 1
    [row] = table.epoch_rows()
    assert row == contract.EpochRow("t1", "running", 1, "search", "None", 3, {"kl_anneal_type": "None"},
                                    {**{m: None for m in contract.METRICS}, "val_psnr": 20.5, "lr": 1e-3,
                                     "validated": True})


def test_summary_json_has_the_contract_fields(tmp_path) -> None:
    import json

    from search.results import SearchRecorder

    rec = SearchRecorder(tmp_path, name="r", param_names=["lr"], metric="val_psnr", mode="max", num_epoch=1,
                         num_samples=1, fixed_config={"num_epoch": 1}, baseline_psnr=15.0)
    from tests.search.record_builder import RecordBuilder

    built = RecordBuilder(tmp_path)
    built.add("a", {"lr": 0.01}, [{"epoch": 1, "val_psnr": 20.0, "validated": True, "diverged": False}],
              status="completed")
    rec.load_record(built.trials())
    rec.write(final=True)
    summary = json.loads((tmp_path / contract.SUMMARY_JSON).read_text())
    assert tuple(summary) == contract.SUMMARY_FIELDS
    assert [k if k != "val_psnr" else "<metric>" for k in summary["best"]] == list(contract.BEST_FIELDS)


def test_study_trials_and_rows_by_trial_read_a_runs_files(tmp_path):
    import optuna

    from runfolder.contract import rows_by_trial, study_trials

    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 'optuna.db'}", direction="maximize")
    trial = study.ask()
    trial.set_user_attr("phase", "reeval")
    trial.set_user_attr("seed", 1001)
    study.tell(trial, 1.0)
    study.ask()
    assert study_trials(tmp_path / "optuna.db") == [(0, "COMPLETE", {"phase": "reeval", "seed": "1001"}),
                                                   (1, "RUNNING", {})]
    rows = [{"trial_id": "a", "epoch": "1"}, {"trial_id": "b", "epoch": "1"}, {"trial_id": "a", "epoch": "2"}]
    assert rows_by_trial(rows) == {"a": [rows[0], rows[2]], "b": [rows[1]]}
