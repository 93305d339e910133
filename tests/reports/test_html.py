from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import plotly.offline
import pytest

from reports import write_report
from reports.__main__ import main
from reports.html import verdict_sentences
from reports.load import load_experiment


def test_report_is_one_offline_file(run_dir: Path, tmp_path: Path) -> None:
    out = write_report([run_dir], tmp_path / "r" / "report.html")
    page = out.read_text()
    js = plotly.offline.get_plotlyjs()
    assert page.count(js[:200]) == 1  # plotly.js inlined exactly once
    n = int(re.search(r'data-figure-count="(\d+)"', page).group(1))  # type: ignore[union-attr]
    assert n == 9 and page.count("Plotly.newPlot(") == n
    assert not re.search(r'<script[^>]+src=|<link[^>]+href=|<img[^>]+src="(?!data:)', page)  # nothing fetched
    assert page.count('<img src="data:image/png;base64,') == 1 and page.count('data-frames="1"') == 1
    for heading in ("Summary", "Validation PSNR over epochs", "Per-frame PSNR", "Parameter importance"):
        assert f">{heading}" in page


def test_written_summary(run_dir: Path) -> None:
    text = " ".join(verdict_sentences(load_experiment(run_dir)))
    assert ("10 trials: 5 completed, 2 stopped early by ASHA, 1 diverged, 1 failed, 1 still running or "
            "interrupted. They trained 28 of the 40 epochs") in text
    assert "<b>Cyclical</b> KL annealing reached the best val_psnr, <b>22.00 dB</b>" in text
    assert "1.00 dB above Monotonic (Monotonic 21.00 dB; None 17.20 dB)" in text
    assert "span 1.60 dB (std 1.13 dB)" in text and "gap is smaller than that spread" in text
    assert "scores 16.25 dB; the best trial is 5.75 dB above it" in text


def test_script_in_a_parameter_value_stays_text(run_dir: Path, make_run_dir, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    evil = make_run_dir(name="x<script>alert(1)</script>", evil=True)
    page = write_report([run_dir, evil], tmp_path / "report.html").read_text()
    assert "<script>alert" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    # Two experiments side by side: one summary column each.
    assert page.count('<table class="summary">') == 1 and ">quick</th>" in page


def test_report_of_a_search_that_just_started(run_dir: Path, tmp_path: Path) -> None:
    header = (run_dir / "trials.csv").read_text().splitlines()[0]
    (run_dir / "trials.csv").write_text(header + "\n")
    (run_dir / "summary.json").unlink()
    page = write_report([run_dir], tmp_path / "report.html").read_text()
    assert "No trial has reported an epoch yet." in page and "no summary.json" in page


def test_cli_writes_report_and_rejects_bad_folder(run_dir: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(run_dir), "-o", str(tmp_path / "a.html")]) == 0
    assert (tmp_path / "a.html").stat().st_size > 1_000_000
    assert main([str(tmp_path / "nope")]) == 2
    assert "nope: no such experiment folder" in capsys.readouterr().err


def test_a_reference_run_is_a_named_line(make_run_dir, tmp_path: Path,  # type: ignore[no-untyped-def]
                                         capsys: pytest.CaptureFixture[str]) -> None:
    from reports import draw as d
    from reports.collect import collect_comparison, collect_curves
    from reports.load import load_experiment, load_experiments

    run = make_run_dir(reeval=True)
    assert main([str(run), "-o", str(tmp_path / "r.html"), "--reference", "my template run=21.4"]) == 0
    assert "my template run: 21.40 dB (reference)" in (tmp_path / "r.html").read_text()
    es = load_experiments([run])
    for fig in (d.draw_curves(collect_curves(es), {}, {"my template run": 21.4}),
                d.draw_comparison(collect_comparison(load_experiment(run)), {"my template run": 21.4})):  # type: ignore[arg-type]
        lines = [s for s in fig.layout.shapes if s.line.color == d.REFERENCE_COLOUR]
        assert [(s.y0, s.y1) for s in lines] == [(21.4, 21.4)]
    for bad in ("21.4", "=21.4", "run=fast", "run=inf"):
        assert main([str(run), "-o", str(tmp_path / "x.html"), "--reference", bad]) == 2
        assert "--reference is" in capsys.readouterr().err
    assert not (tmp_path / "x.html").exists()


def test_cli_error_has_no_traceback(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "reports", str(tmp_path)], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 2
    assert "no trials.csv" in done.stderr and "Traceback" not in done.stderr


def test_report_when_no_trial_has_a_value(make_run_dir, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    nan = float("nan")
    run = make_run_dir(psnr={i: [nan] for i in range(10)}, status={i: "diverged" for i in range(10)})
    page = write_report([run], tmp_path / "report.html").read_text()
    assert "No trial has a val_psnr yet." in page
