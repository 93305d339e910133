"""SearchRecorder: the views (trials.csv, summary.json) built from the record and the trials'
files, best by mode. No Ray run."""
from __future__ import annotations

import csv
import json

import pytest

from runfolder.contract import METRIC_COLUMNS
from search.results import SearchRecorder
from tests.search.record_builder import RecordBuilder


def _recorder(run_dir, mode: str = "max") -> SearchRecorder:
    return SearchRecorder(run_dir, name="r", param_names=["kl_anneal_type", "kl_anneal_cycle", "lr"],
                          metric="val_psnr", mode=mode, num_epoch=3, num_samples=2,
                          fixed_config={"num_epoch": 3}, baseline_psnr=15.0)


def _result(epoch: int, psnr: float, lr: float = 1e-3, **extra) -> dict:
    return {"epoch": epoch, "val_psnr": psnr, "train_loss": 1.0, "train_mse": 0.5, "train_kl": 0.1,
            "beta": 0.5, "tfr": 1.0, "teacher_forcing": 1, "lr": lr, "epoch_time_s": 0.1, "val_time_s": 0.01,
            "validated": True, "diverged": False, "val_psnr_per_frame": [psnr, psnr], "node_id": "n1",
            "data_zero_copy": True, "training_iteration": epoch, "pid": 1, **extra}


def _lines(run_dir) -> list[list[str]]:
    with (run_dir / "trials.csv").open(newline="") as handle:
        return list(csv.reader(handle))


def test_rows_come_from_the_trials_files_and_end_where_the_record_ends(tmp_path):
    built = RecordBuilder(tmp_path)
    params = {"kl_anneal_type": "Monotonic", "lr": 0.002}
    a = built.add("a", params, [_result(e, 20.0 + e, lr=0.002) for e in (1, 2, 3)], status="completed")
    built.add("b", {"kl_anneal_type": "None", "lr": 0.001}, [_result(1, 9.0), _result(2, 9.5)], status="stopped")
    # b's worker ran one more epoch before the STOP reached it: not part of the trial
    from search.trial_files import TrialFiles

    b = built.keys["b"]
    TrialFiles(tmp_path, b).append_metrics(_result(3, 99.0))
    rec = _recorder(tmp_path)
    rec.load_record(built.trials())
    rec.write(final=True)
    lines = _lines(tmp_path)
    assert lines[0] == ["trial_id", "status", "epoch", "phase", "stratum", "seed",
                        "kl_anneal_type", "kl_anneal_cycle", "lr", *METRIC_COLUMNS]
    assert [(l[0], l[1], l[2]) for l in lines[1:]] == [(a, "completed", "1"), (a, "completed", "2"),
                                                        (a, "completed", "3"), (b, "stopped", "1"),
                                                        (b, "stopped", "2")]
    assert lines[2][9] == "22.0"
    assert lines[1][7] == ""  # kl_anneal_cycle not sampled for Monotonic
    assert rec.best()[0] == a  # b's 99 dB epoch is not the trial's
    info = json.loads((tmp_path / "trials" / a / "trial.json").read_text())
    assert info["node_ids"] == ["n1"] and info["status"] == "completed" and info["epochs"] == 3


@pytest.mark.parametrize("mode,best", [("max", "b"), ("min", "a")])
def test_best_follows_mode_and_skips_diverged(tmp_path, mode, best):
    built = RecordBuilder(tmp_path, mode=mode)
    built.add("a", {"lr": 0.1}, [_result(1, 10.0)], status="stopped")
    built.add("b", {"lr": 0.2}, [_result(1, 12.0)], status="stopped")
    built.add("c", {"lr": 9.0}, [_result(1, float("nan"), diverged=True)], status="diverged")
    rec = _recorder(tmp_path, mode)
    rec.load_record(built.trials())
    assert rec.best()[0] == built.keys[best]
    assert rec.trials[built.keys["c"]].status == "diverged"
    path = rec.write_best_yaml({"lr": rec.trials[built.keys[best]].params["lr"]})
    assert "lr:" in path.read_text()


def test_trials_csv_opens_cleanly_in_pandas(tmp_path):
    # Issue 14 item 4: unique column names, and the KL type None survives a plain read_csv
    # (pandas reads the text "None" as missing by default, so it is written as its alias Without).
    import pandas as pd

    from runfolder.contract import read_trials_csv

    rec = SearchRecorder(tmp_path, name="r", param_names=["kl_anneal_type", "lr", "tfr"], metric="val_psnr",
                         mode="max", num_epoch=2, num_samples=3, fixed_config={"num_epoch": 2}, baseline_psnr=15.0,
                         scientific=["kl_anneal_type"])
    built = RecordBuilder(tmp_path)
    for trial, kl in (("a", "Cyclical"), ("b", "Monotonic"), ("c", "None")):
        built.add(trial, {"kl_anneal_type": kl, "lr": 0.002, "tfr": 0.5},
                  [_result(epoch, 20.0 + epoch, lr=0.002 / epoch) for epoch in (1, 2)])
    rec.load_record(built.trials())
    rec.write()
    df = pd.read_csv(tmp_path / "trials.csv")
    assert df.columns.is_unique
    assert list(df.columns[-len(METRIC_COLUMNS):]) == list(METRIC_COLUMNS)
    assert df["kl_anneal_type"].notna().all() and df["stratum"].notna().all()
    assert sorted(df.groupby("kl_anneal_type").size().index) == ["Cyclical", "Monotonic", "Without"]
    none_rows = df[df["trial_id"] == built.keys["c"]]
    assert none_rows["kl_anneal_type"].tolist() == ["Without", "Without"]  # cvae.core.config's alias of None
    assert none_rows["stratum"].tolist() == ["Without", "Without"]
    # the parameter and the per-epoch value: one name each
    assert df["lr"].tolist() == [0.002] * 6 and df["lr_at_epoch"].tolist() == [0.002, 0.001] * 3
    assert df["tfr"].tolist() == [0.5] * 6 and df["tfr_at_epoch"].tolist() == [1.0] * 6
    # the project's own reader (reports, resume) gives the value back as None
    rows = [r for r in read_trials_csv(tmp_path) if r["trial_id"] == built.keys["c"]]
    assert {r["kl_anneal_type"] for r in rows} == {"None"} and {r["stratum"] for r in rows} == {"None"}
    again = SearchRecorder(tmp_path, name="r", param_names=["kl_anneal_type", "lr", "tfr"], metric="val_psnr",
                           mode="max", num_epoch=2, num_samples=3, fixed_config={"num_epoch": 2},
                           baseline_psnr=15.0, scientific=["kl_anneal_type"])
    again.load_record(built.trials())
    c, a = built.keys["c"], built.keys["a"]
    assert again.trials[c].params["kl_anneal_type"] == "None" and again.trials[c].stratum == "None"
    assert again.trials[a].rows[2]["lr"] == 0.001  # metrics keep the trainer's names inside the program


def test_report_shows_none_for_the_without_spelling(tmp_path):
    from reports.load import load_experiment

    rec = SearchRecorder(tmp_path, name="r", param_names=["kl_anneal_type"], metric="val_psnr", mode="max",
                         num_epoch=1, num_samples=2, fixed_config={"num_epoch": 1}, baseline_psnr=15.0,
                         scientific=["kl_anneal_type"])
    built = RecordBuilder(tmp_path)
    built.add("a", {"kl_anneal_type": "Cyclical"}, [_result(1, 20.0)], status="completed")
    built.add("b", {"kl_anneal_type": "None"}, [_result(1, 21.0)], status="completed")
    rec.load_record(built.trials())
    rec.write(final=True)
    exp = load_experiment(tmp_path)
    assert sorted(exp.trials["kl_anneal_type"]) == ["Cyclical", "None"]
    assert sorted(exp.trials["stratum"]) == ["Cyclical", "None"]


def test_a_trial_that_failed_before_its_first_epoch_is_counted(tmp_path):
    # A trial with no epoch (it failed at start) has no trials.csv row, but the record knows it.
    built = RecordBuilder(tmp_path)
    built.add("a", {"kl_anneal_type": "Monotonic", "lr": 0.002}, [_result(1, 12.0, lr=0.002)])
    built.add("b", {"kl_anneal_type": "Cyclical", "kl_anneal_cycle": 2, "lr": 0.01}, [], status="failed",
              stratum="Cyclical")
    rec = _recorder(tmp_path)
    rec.load_record(built.trials())
    b = built.keys["b"]
    assert rec.status_counts()["failed"] == 1 and rec.status_counts()["running"] == 1
    assert rec.trials[b].params == {"kl_anneal_type": "Cyclical", "kl_anneal_cycle": 2, "lr": 0.01}
    assert rec.trials[b].stratum == "Cyclical"
    rec.write(final=True)
    assert [line[0] for line in _lines(tmp_path)[1:]] == [built.keys["a"]]  # trials.csv: rows per epoch only
    assert json.loads((tmp_path / "summary.json").read_text())["status_counts"]["failed"] == 1


@pytest.mark.parametrize("margin, verdict", [(1.0, "equivalent"), (0.0, "not enough evidence")])
def test_the_equivalence_margin_reaches_the_summary_verdict(tmp_path, margin, verdict):
    # reeval.equivalence_db -> SearchRecorder(verdict=Settings(...)) -> summary.json's comparison
    from search.comparison import Settings
    from search.record import REEVAL_OF_ATTR, SEED_ATTR

    rec = SearchRecorder(tmp_path, name="r", param_names=["kl_anneal_type"], metric="val_psnr", mode="max",
                         num_epoch=1, num_samples=2, fixed_config={"num_epoch": 1}, baseline_psnr=15.0,
                         strata=["Cyclical", "Monotonic"], scientific=["kl_anneal_type"],
                         verdict=Settings(equivalence=margin))
    built = RecordBuilder(tmp_path)
    reruns = {"Cyclical": [30.0, 30.2, 30.1], "Monotonic": [30.05, 30.15, 30.1]}
    for kl, values in reruns.items():
        source = built.add(kl, {"kl_anneal_type": kl}, [_result(1, 31.0)], status="completed", stratum=kl)
        for seed, v in enumerate(values, start=1):
            built.add(f"{kl}-{seed}", {"kl_anneal_type": kl}, [_result(1, v)], status="completed",
                      phase="reeval", stratum=kl, extra_attrs={SEED_ATTR: seed, REEVAL_OF_ATTR: source})
    rec.load_record(built.trials())
    rec.write(final=True)
    block = json.loads((tmp_path / "summary.json").read_text())["comparison"]
    assert block["equivalence_margin"] == margin and block["verdict"] == verdict
    assert block["strata"]["Cyclical"]["reeval_values"] == [30.0, 30.2, 30.1]
    assert block["strata"]["Cyclical"]["original_value"] == 31.0  # shown, not counted
