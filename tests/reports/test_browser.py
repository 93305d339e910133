"""Open the generated report in real headless Chromium, offline, from a file:// URL.

Checks: no console errors or Plotly warnings, every figure drew its SVG, the
frame images loaded. Leaves a screenshot in test-artifacts/ (not committed).
"""
from __future__ import annotations

import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from reports.html import write_report

CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium is not installed "
                       "(apt-get install -y chromium chromium-driver; .ci/run installs it)"),
]

# No network at all; --enable-unsafe-swiftshader lets the parallel-coordinates
# plot (WebGL) use software GL instead of Chromium's deprecated silent fallback.
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-quic",
         "--no-first-run", "--disable-component-update", "--disable-sync", "--enable-unsafe-swiftshader",
         "--proxy-server=127.0.0.1:9", "--proxy-bypass-list=<-loopback>",
         "--enable-logging=stderr", "--v=0", "--virtual-time-budget=10000"]


def _chromium(url: str, profile: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *extra, url],  # type: ignore[list-item]
                          capture_output=True, text=True, timeout=240)


class _PlotCounter(HTMLParser):
    """Counts .js-plotly-plot divs and how many of them hold a drawn svg.main-svg;
    collects the data-loaded attribute of every frame image."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[tuple[str, int | None]] = []  # (tag, index of the plot it opens)
        self.plots: list[bool] = []
        self.images: list[str | None] = []
        self.figure_count: int | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        classes = (a.get("class") or "").split()
        if tag == "body" and a.get("data-figure-count"):
            self.figure_count = int(a["data-figure-count"] or 0)
        if tag == "img" and "data-frames" in a:
            self.images.append(a.get("data-loaded"))
        if tag == "svg" and "main-svg" in classes:
            for _, plot in reversed(self.stack):
                if plot is not None:
                    self.plots[plot] = True
                    break
        if tag in ("img", "br", "meta", "link", "input", "hr", "path", "rect", "line", "circle", "image"):
            return  # void or usually self-closed: never on the stack
        plot = None
        if tag == "div" and "js-plotly-plot" in classes:
            self.plots.append(False)
            plot = len(self.plots) - 1
        self.stack.append((tag, plot))

    def handle_endtag(self, tag: str) -> None:
        for i in range(len(self.stack) - 1, -1, -1):
            if self.stack[i][0] == tag:
                del self.stack[i:]
                break


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory, make_run_at) -> Path:  # type: ignore[no-untyped-def]
    # Two experiments, one with re-evaluation runs and a comparison block, one in the format from
    # before strata with a script tag in a parameter value: the hardest page we make.
    root = tmp_path_factory.mktemp("browser")
    runs = [make_run_at(root / "a", name="quick", reeval=True), make_run_at(root / "b", name="other", evil=True)]
    return write_report(runs, root / "report.html")


def test_report_renders_offline_in_chromium(report: Path, tmp_path: Path) -> None:
    done = _chromium(report.as_uri(), tmp_path / "profile", "--dump-dom")
    assert done.returncode == 0, done.stderr[-2000:]
    console = [l for l in done.stderr.splitlines() if "CONSOLE" in l]
    bad = [l for l in console if re.search(r"uncaught|error|WARN:", l, re.IGNORECASE)]
    assert not bad, "console errors:\n" + "\n".join(bad)
    page = _PlotCounter()
    page.feed(done.stdout)
    assert page.figure_count and page.figure_count >= 11  # the re-evaluation figure included
    assert len(page.plots) == page.figure_count
    assert sum(page.plots) == page.figure_count, f"drawn: {page.plots}"
    assert page.images and all(v == "1" for v in page.images), page.images
    # The script tag from the parameter value ended up as text, never as markup.
    assert "<script>alert" not in done.stdout


def test_report_screenshot(report: Path, tmp_path: Path) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "report.png"
    shot.unlink(missing_ok=True)
    done = _chromium(report.as_uri(), tmp_path / "profile", f"--screenshot={shot}", "--window-size=1280,4000",
                     "--hide-scrollbars")
    assert done.returncode == 0, done.stderr[-2000:]
    assert shot.is_file() and shot.stat().st_size > 50_000  # a blank page is a few kB
