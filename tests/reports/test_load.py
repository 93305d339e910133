"""reports/load.py: the run folder's files -> frames, and the Optuna study; and that no
other module of reports/ reads the folder."""
from __future__ import annotations

import ast
import csv
import json
import math
from pathlib import Path
from typing import Callable

import optuna
import pandas as pd
import pytest

from reports.load import ReportError, load_experiment, load_experiments, load_study, read_png
from reports.verdict import verdict_sentences

TID = "5f3a1_{:05d}".format
REPORTS = Path(__file__).resolve().parents[2] / "reports"


def test_epochs_frame_has_every_parameter_and_metric(run_dir: Path) -> None:
    e = load_experiment(run_dir)
    assert e.name == "quick"
    assert len(e.epochs) == 28  # 4+4+1+2+2+1+2+4+4+4 trial-epochs
    assert e.params == ["kl_anneal_type", "kl_anneal_cycle", "kl_anneal_ratio", "tfr_d_step", "optimizer", "lr"]
    t0 = e.epochs[e.epochs["trial_id"] == "5f3a1_00000"]
    assert t0["val_psnr"].tolist() == [17.5, 19.0, 20.0, 20.4]
    # lr is searched and reported: the first column is the searched value, the second the per-epoch lr.
    assert t0["lr"].tolist() == [5e-4] * 4
    assert t0["lr_at_epoch"].tolist() == pytest.approx([5e-4, 5e-5, 5e-5, 5e-5])
    assert set(e.epochs["experiment"]) == {"quick"}
    # "None" is a KL type, not a missing value.
    assert sorted(e.epochs["kl_anneal_type"].unique()) == ["Cyclical", "Monotonic", "None"]
    mono = e.epochs[e.epochs["kl_anneal_type"] == "Monotonic"]
    assert mono["kl_anneal_cycle"].isna().all()  # conditional parameter not sampled
    div = e.epochs[(e.epochs["trial_id"] == "5f3a1_00004") & (e.epochs["epoch"] == 2)].iloc[0]
    assert math.isnan(div["val_psnr"]) and bool(div["diverged"]) is True


def test_trials_table(run_dir: Path) -> None:
    t = load_experiment(run_dir).trials.set_index("trial_id")
    assert t["status"].tolist() == ["completed", "completed", "stopped", "stopped", "diverged", "failed",
                                    "running", "completed", "completed", "completed"]
    assert t["epochs_run"].tolist() == [4, 4, 1, 2, 2, 1, 2, 4, 4, 4]
    assert t["epochs_budget"].tolist() == [4] * 10
    assert t.loc["5f3a1_00008", "best_val_psnr"] == 22.0
    assert t.loc["5f3a1_00004", "best_val_psnr"] == 16.5  # the NaN after divergence is skipped
    assert math.isnan(t.loc["5f3a1_00004", "final_val_psnr"])
    assert t.loc["5f3a1_00003", ["kl_anneal_cycle", "optimizer"]].tolist() == [8.0, "ASGD"]
    assert t["order"].tolist() == list(range(10))


def test_per_frame_frames_space_and_summary(run_dir: Path) -> None:
    e = load_experiment(run_dir)
    assert len(e.per_frame) == 9 * 5  # trial 5 has no json
    best = e.per_frame[e.per_frame["trial_id"] == "5f3a1_00008"]
    assert best["frame"].tolist() == [1, 2, 3, 4, 5]
    assert best["psnr"].tolist() == [25.0, 23.5, 22.0, 20.5, 19.0]
    assert set(e.frames_png) == {f"5f3a1_{i:05d}" for i in (0, 1, 3, 4, 6, 7, 8, 9)}
    assert e.scientific == ["kl_anneal_type"]
    assert e.space["lr"].log and (e.space["lr"].low, e.space["lr"].high) == (1e-4, 1e-2)
    assert e.space["optimizer"].values == ["Adam", "AdamW", "Adamax", "ASGD"]
    assert e.num_epoch == 4 and e.summary["baseline_psnr"] == 16.25
    assert e.study_path == run_dir / "optuna.db"
    assert e.notes == ["1 trial(s) without val_psnr_per_frame.json: 5f3a1_00005"]


def test_missing_folder_and_missing_csv_are_report_errors(tmp_path: Path) -> None:
    with pytest.raises(ReportError, match="nowhere.*no such experiment folder"):
        load_experiment(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ReportError, match=r"empty: no trials\.csv"):
        load_experiment(tmp_path / "empty")


def test_csv_without_epoch_column_is_a_report_error(run_dir: Path) -> None:
    (run_dir / "trials.csv").write_text("trial_id,status,val_psnr\na,completed,20\n")
    with pytest.raises(ReportError, match=r"trials\.csv: column 'epoch' is missing"):
        load_experiment(run_dir)


def test_optional_files_missing_become_notes(run_dir: Path) -> None:
    for f in ("optuna.db", "summary.json", "space.yaml"):
        (run_dir / f).unlink()
    (run_dir / "trials" / "5f3a1_00008" / "frames.png").unlink()
    e = load_experiment(run_dir)
    assert e.name == "quick"  # the folder's name
    assert e.study_path is None and e.summary == {} and e.space == {}
    assert "5f3a1_00008" not in e.frames_png
    # Without space.yaml, parameters are the columns between epoch and the first metric.
    assert e.params == ["kl_anneal_type", "kl_anneal_cycle", "kl_anneal_ratio", "tfr_d_step", "optimizer", "lr"]
    assert e.num_epoch == 70
    text = " ".join(e.notes)
    for word in ("optuna.db", "summary.json", "space.yaml", "num_epoch"):
        assert word in text


def test_running_search_with_half_written_line(run_dir: Path) -> None:
    with open(run_dir / "trials.csv", "a") as f:
        f.write("5f3a1_00006,running,3,Cycl")  # the writer was interrupted mid-row
    e = load_experiment(run_dir)
    assert len(e.epochs) == 28
    assert any("skipped 1 incomplete row" in n for n in e.notes)


def test_header_only_csv_loads_empty(run_dir: Path) -> None:
    header = (run_dir / "trials.csv").read_text().splitlines()[0]
    (run_dir / "trials.csv").write_text(header + "\n")
    e = load_experiment(run_dir)
    assert e.epochs.empty and e.trials.empty


def test_one_lr_column_serves_parameter_and_metric(run_dir: Path) -> None:
    rows = list(csv.reader((run_dir / "trials.csv").read_text().splitlines()))
    drop = len(rows[0]) - 1 - rows[0][::-1].index("lr")  # the metric's lr column
    with open(run_dir / "trials.csv", "w", newline="") as f:
        csv.writer(f).writerows([r[:drop] + r[drop + 1:] for r in rows])
    e = load_experiment(run_dir)
    t0 = e.epochs[e.epochs["trial_id"] == "5f3a1_00000"]
    assert t0["lr"].tolist() == [5e-4] * 4  # the first epoch's value, not the decayed one
    assert any("one 'lr' column" in n for n in e.notes)


def test_load_experiments_concatenates_and_keeps_names_apart(run_dir: Path, make_run_dir) -> None:  # type: ignore[no-untyped-def]
    other = make_run_dir(name="quick")  # same experiment name, another folder
    es = load_experiments([run_dir, other])
    assert es.names == ["quick", "quick (2)"]
    assert len(es.trials) == 20 and len(es.epochs) == 56
    assert sorted(es.trials["experiment"].unique()) == ["quick", "quick (2)"]
    assert set(es.per_frame["experiment"]) == {"quick", "quick (2)"}


def test_todays_and_older_trials_csv_load_alike(run_dir: Path, tmp_path: Path) -> None:
    # The fixture writes the older layout (the per-epoch lr under a second `lr` column);
    # rewrite it in today's (unique names: lr_at_epoch, tfr_at_epoch) and compare.
    from runfolder.contract import METRIC_COLUMNS, read_trials_table, write_trials_csv

    old = load_experiment(run_dir)
    table = read_trials_table(run_dir / "trials.csv")
    write_trials_csv(run_dir / "trials.csv", table.params, table.epoch_rows())
    header = (run_dir / "trials.csv").read_text().splitlines()[0].split(",")
    assert len(header) == len(set(header)) and header[-len(METRIC_COLUMNS):] == list(METRIC_COLUMNS)
    new = load_experiment(run_dir)
    pd.testing.assert_frame_equal(old.epochs, new.epochs[list(old.epochs.columns)], check_dtype=False)
    assert old.params == new.params and "lr_at_epoch" in new.epochs and "tfr_at_epoch" in new.epochs


# ---- folders with strata and re-evaluation runs (issue 11) ----------------------------

def test_phase_stratum_seed_columns_load(reeval_run: Path) -> None:
    e = load_experiment(reeval_run)
    assert e.params == ["kl_anneal_type", "kl_anneal_cycle", "kl_anneal_ratio", "tfr_d_step", "optimizer", "lr"]
    assert len(e.epochs) == 28 + 6 * 4 + 2
    t = e.trials.set_index("trial_id")
    assert t["phase"].value_counts().to_dict() == {"search": 10, "reeval": 7}
    assert t.loc[[TID(10), TID(13), TID(16)], ["stratum", "seed", "status"]].values.tolist() == [
        ["Cyclical", 1, "completed"], ["Monotonic", 1, "completed"], ["None", 1, "diverged"]]
    assert t["seed"].dtype == "Int64" and set(t.loc[[TID(i) for i in range(10)], "seed"]) == {0}
    # lr is still both a parameter (first column) and a metric (second).
    r = e.epochs[e.epochs["trial_id"] == TID(11)]
    assert r["lr"].tolist() == [1e-3] * 4 and r["lr_at_epoch"].tolist() == pytest.approx([1e-3, 1e-4, 1e-4, 1e-4])
    assert e.comparison is not None and e.comparison["winner"] == "Cyclical"
    assert not [n for n in e.notes if "phase" in n or "comparison" in n]


def test_old_folder_gets_search_phase_and_computed_stratum(run_dir: Path) -> None:
    e = load_experiment(run_dir)
    assert set(e.epochs["phase"]) == {"search"} and e.epochs["seed"].isna().all()
    assert (e.epochs["stratum"] == e.epochs["kl_anneal_type"]).all()
    assert e.comparison is None


def test_old_folder_without_space_yaml_falls_back_to_kl(run_dir: Path) -> None:
    (run_dir / "space.yaml").unlink()
    t = load_experiment(run_dir).trials
    assert t["stratum"].tolist() == [s for s in ("Cyclical", "Monotonic", "None", "Cyclical", "Monotonic",
                                                  "None", "Cyclical", "None", "Cyclical", "Monotonic")]


def test_unknown_phase_and_bad_comparison_become_notes(make_run_dir: Callable[..., Path]) -> None:
    run = make_run_dir(reeval=True)
    text = (run / "trials.csv").read_text().replace(",reeval,", ",later,", 1)
    (run / "trials.csv").write_text(text)
    summary = json.loads((run / "summary.json").read_text())
    summary["comparison"] = ["not", "a", "block"]
    (run / "summary.json").write_text(json.dumps(summary))
    e = load_experiment(run)
    assert any("unknown phase value(s) ['later']" in n for n in e.notes)
    assert any("comparison block is not an object" in n for n in e.notes)
    assert "KL annealing reached the best val_psnr" in " ".join(verdict_sentences(e))  # today's verdict


# ---- the study and the images --------------------------------------------------------

def test_load_study_by_the_experiments_name_or_the_only_one(run_dir: Path) -> None:
    study = load_study(run_dir / "optuna.db", "quick")
    assert study.study_name == "quick" and len(study.trials) == 10
    assert load_study(run_dir / "optuna.db", "renamed").study_name == "quick"  # the only study
    optuna.create_study(storage=f"sqlite:///{run_dir / 'optuna.db'}", study_name="other")
    with pytest.raises(ValueError, match=r"holds studies .*none named 'renamed'"):
        load_study(run_dir / "optuna.db", "renamed")


def test_read_png(run_dir: Path) -> None:
    path = load_experiment(run_dir).frames_png[TID(8)]
    assert read_png(path).startswith(b"\x89PNG")


# What reading a file or a study looks like in the source: a module other than
# load.py doing one of these reads the run folder behind load.py's back.
FILE_READERS = {"open", "read_text", "read_bytes"}
STUDY_READERS = {"load_study", "get_all_study_names"}  # as optuna.<name>; load.load_study is the way
READER_MODULES = {"json", "yaml", "sqlite3", "csv"}


def _reads(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Call):
            f = node.func
            name = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""
            owner = f.value.id if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) else ""
            if name in FILE_READERS or (owner == "optuna" and name in STUDY_READERS):
                found.append(f"{owner + '.' if owner else ''}{name}()")
        elif isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name in READER_MODULES]
        elif isinstance(node, ast.ImportFrom) and node.module in READER_MODULES:
            found.append(node.module)
    return found


def test_only_load_reads_the_run_folder() -> None:
    modules = [p for p in REPORTS.rglob("*.py") if p.name != "load.py"]
    assert len(modules) > 15
    assert {str(p.relative_to(REPORTS)): r for p in modules if (r := _reads(p))} == {}
