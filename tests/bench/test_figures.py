"""Every figure bench/figures.yaml marks as checked is in the README as written, in a paragraph that names
its results file, and equals that file's value at the registered key, rounded as the README writes it.

A figure copied by hand and then left behind by a new run, or a figure whose file is renamed, fails here."""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
REGISTRY = ROOT / "bench" / "figures.yaml"
RESULTS = ROOT / "bench" / "results"
_MIN_S = re.compile(r"^(\d+) min (\d+) s$")
_NUMBER = re.compile(r"^[+-]?\d+(?:\.(\d+))?(%|x)?$")


def entries() -> list[dict[str, Any]]:
    return yaml.safe_load(REGISTRY.read_text())["readme"]


def lookup(data: Any, key: str) -> Any:
    """data at a slash-separated key path (list indices as numbers)."""
    for part in key.split("/"):
        data = data[int(part)] if isinstance(data, list) else data[part]
    return data


def as_written(value: float, quote: str) -> str:
    """value formatted the way the quoted figure is written: its decimals, a %, an x, 'N min M s'."""
    if _MIN_S.match(quote):
        total = round(value)
        return f"{total // 60} min {total % 60} s"
    m = _NUMBER.match(quote)
    if not m:
        raise ValueError(f"bench/figures.yaml: cannot read the figure {quote!r} (a number, N%, Nx or 'N min M s')")
    decimals, unit = len(m.group(1) or ""), m.group(2) or ""
    shown = value * 100 if unit == "%" else value
    sign = "+" if quote.startswith("+") and shown >= 0 else ""
    return f"{sign}{shown:.{decimals}f}{unit}"


def paragraphs(text: str) -> list[str]:
    """The README's paragraphs and list items, each joined into one line."""
    blocks = re.split(r"\n\s*\n|\n(?=- )", text)
    return [" ".join(b.split()) for b in blocks]


def test_the_registry_checks_figures_of_several_files() -> None:
    files = {e["file"] for e in entries()}
    assert len(entries()) >= 10 and len(files) >= 5


@pytest.mark.parametrize("entry", entries(), ids=lambda e: f"{e['file']}:{e['key']}")
def test_readme_figure_is_in_the_results_file_it_names(entry: dict[str, Any]) -> None:
    quote, file = entry["quote"], entry["file"]
    holding = [p for p in paragraphs((ROOT / "README.md").read_text()) if quote in p]
    assert holding, f"README.md no longer says {quote!r}"
    assert any(Path(file).name in p for p in holding), \
        f"README.md says {quote!r} without naming {file} in the same paragraph"
    value = lookup(json.loads((RESULTS / file).read_text()), entry["key"])
    assert as_written(float(value), quote) == quote, \
        f"README.md says {quote!r}; {file} {entry['key']} is {value} ({as_written(float(value), quote)})"


def test_the_check_catches_a_stale_figure() -> None:
    assert as_written(1.0067, "1.007") == "1.007"
    assert as_written(1.0067, "1.01") == "1.01" and as_written(1.0167, "1.01") != "1.01"
    assert as_written(530.2, "8 min 50 s") == "8 min 50 s" and as_written(545.0, "8 min 50 s") != "8 min 50 s"
    assert as_written(0.257, "25.7%") == "25.7%" and as_written(2.2639, "2.26x") == "2.26x"
    assert as_written(0.65, "+0.65") == "+0.65" and as_written(-0.65, "+0.65") != "+0.65"
    with pytest.raises(ValueError, match="cannot read the figure 'about 9'"):
        as_written(9.0, "about 9")
