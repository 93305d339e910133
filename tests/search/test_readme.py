"""The README is the door: every YAML block in it loads, a block that names a
shipped file says what that file says, and what it links to exists."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from search.space import load_space

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
# A block right after this comment line is a fragment, not a whole space: skipped.
FRAGMENT = "<!-- yaml fragment -->"
_BLOCK = re.compile(r"^```yaml\n(.*?)^```", re.S | re.M)


def yaml_blocks(text: str) -> list[tuple[int, str]]:
    """(line number, body) of every ```yaml block not marked as a fragment."""
    blocks = []
    for m in _BLOCK.finditer(text):
        before = text[: m.start()].rstrip("\n").splitlines()
        if before and before[-1].strip() == FRAGMENT:
            continue
        blocks.append((text[: m.start()].count("\n") + 1, m.group(1)))
    return blocks


BLOCKS = yaml_blocks(README.read_text())


def test_the_readme_has_yaml_blocks_and_the_fragment_marker_works():
    assert len(BLOCKS) >= 2
    text = f"a\n{FRAGMENT}\n```yaml\nparameters: {{}}\n```\n```yaml\nname: x\n```\n"
    assert [body for _, body in yaml_blocks(text)] == ["name: x\n"]


@pytest.mark.parametrize("line,body", BLOCKS, ids=[f"README.md:{line}" for line, _ in BLOCKS])
def test_every_yaml_block_of_the_readme_loads(tmp_path, line, body):
    path = tmp_path / f"readme-line-{line}.yaml"
    path.write_text(body)
    doc = yaml.safe_load(body)
    # A W&B sweep file has no data block: run_search.py takes --data, so does this test.
    space = load_space(path, data=None if "data" in doc else str(tmp_path / "data"))
    assert space.parameters
    first = body.splitlines()[0]
    shipped = re.fullmatch(r"# (spaces/[\w.-]+\.yaml)", first)
    if shipped:  # the block shows a shipped file: it must not drift from it
        assert doc == yaml.safe_load((ROOT / shipped.group(1)).read_text()), shipped.group(1)


def test_the_readme_shows_a_shipped_space_and_links_what_exists():
    text = README.read_text()
    assert "# spaces/example.yaml" in text and "# spaces/wandb-sweep.yaml" in text
    assert text.index("make search") < text.index("## What it does")  # the two commands first
    for target in re.findall(r"\]\(((?:docs|spaces)/[^)#]+)", text):
        assert (ROOT / target).exists(), target
    image = ROOT / "docs" / "images" / "report.png"
    assert "](docs/images/report.png)" in text
    assert image.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and image.stat().st_size < 200_000
