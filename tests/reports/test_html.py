"""reports/html.py: one offline page; the summary and the sections in order; everything escaped."""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Callable

import plotly.offline

from reports import write_report
from reports.html import render
from reports.load import load_experiments


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


def test_report_when_no_trial_has_a_value(make_run_dir, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    nan = float("nan")
    run = make_run_dir(psnr={i: [nan] for i in range(10)}, status={i: "diverged" for i in range(10)})
    page = write_report([run], tmp_path / "report.html").read_text()
    assert "No trial has a val_psnr yet." in page


def test_page_has_the_summary_rows(reeval_run: Path) -> None:
    page = render(load_experiments([reeval_run]))
    assert "<td>search trials</td><td>10</td>" in page
    assert "<td>re-evaluation runs</td><td>7 (6 completed, 1 diverged; 26 epochs)</td>" in page
    assert page.index('id="summary"') < page.index('id="reeval"') < page.index('id="curves"')


def test_escaped_stratum_names(make_run_dir: Callable[..., Path]) -> None:
    run = make_run_dir(reeval=True)
    summary = json.loads((run / "summary.json").read_text())
    cmp: dict[str, Any] = summary["comparison"]
    evil = "<script>alert(1)</script>"
    cmp["strata"] = {(evil if k == "Monotonic" else k): v for k, v in cmp["strata"].items()}
    cmp["order"] = [evil if k == "Monotonic" else k for k in cmp["order"]]
    cmp["runner_up"] = evil
    (run / "summary.json").write_text(json.dumps(summary))
    page = render(load_experiments([run]))
    assert "<script>alert" not in page and "Runner-up: &lt;script&gt;alert(1)&lt;/script&gt;" in page
