"""The README is the door and docs/ the rooms behind it: every YAML block in them
loads, a block that names a shipped file says what that file says, every link
(file and heading) resolves, and the README stays a door (16,000 bytes at most,
every docs page one link away)."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from search.space import load_space

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]
README_MAX_BYTES = 16_000
# A block right after this comment line is a fragment, not a whole space: skipped.
FRAGMENT = "<!-- yaml fragment -->"
_BLOCK = re.compile(r"^```yaml\n(.*?)^```", re.S | re.M)
_FENCE = re.compile(r"^```.*?^```", re.S | re.M)
_LINK = re.compile(r"\]\(([^)\s]+)\)")


def yaml_blocks(text: str) -> list[tuple[int, str]]:
    """(line number, body) of every ```yaml block not marked as a fragment."""
    blocks = []
    for m in _BLOCK.finditer(text):
        before = text[: m.start()].rstrip("\n").splitlines()
        if before and before[-1].strip() == FRAGMENT:
            continue
        blocks.append((text[: m.start()].count("\n") + 1, m.group(1)))
    return blocks


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]|\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = _FENCE.sub("", path.read_text())
    return {slug(m.group(1)) for m in re.finditer(r"^#{1,6} (.+)$", text, re.M)}


BLOCKS = [(page, line, body) for page in PAGES for line, body in yaml_blocks(page.read_text())]


def test_the_pages_have_yaml_blocks_and_the_fragment_marker_works():
    assert len([b for b in BLOCKS if b[0] == README]) >= 1 and len(BLOCKS) >= 2
    text = f"a\n{FRAGMENT}\n```yaml\nparameters: {{}}\n```\n```yaml\nname: x\n```\n"
    assert [body for _, body in yaml_blocks(text)] == ["name: x\n"]


@pytest.mark.parametrize("page,line,body", BLOCKS,
                         ids=[f"{p.relative_to(ROOT)}:{line}" for p, line, _ in BLOCKS])
def test_every_yaml_block_loads(tmp_path, page, line, body):
    path = tmp_path / f"block-line-{line}.yaml"
    path.write_text(body)
    doc = yaml.safe_load(body)
    # A W&B sweep file has no data block: run_search.py takes --data, so does this test.
    space = load_space(path, data=None if "data" in doc else str(tmp_path / "data"))
    assert space.parameters
    first = body.splitlines()[0]
    shipped = re.fullmatch(r"# (spaces/[\w.-]+\.yaml)", first)
    if shipped:  # the block shows a shipped file: it must not drift from it
        assert doc == yaml.safe_load((ROOT / shipped.group(1)).read_text()), shipped.group(1)


def broken_links(page: Path) -> list[str]:
    broken = []
    for target in _LINK.findall(_FENCE.sub("", page.read_text())):
        if re.match(r"[a-z]+:", target):  # https:, mailto: ...: outside the repository
            continue
        file_part, _, anchor = target.partition("#")
        dest = (page.parent / file_part).resolve() if file_part else page
        if not dest.exists():
            broken.append(f"{target}: no such file")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(f"{target}: no such heading in {dest.name}")
    return broken


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_every_link_resolves_to_a_file_and_heading(page):
    assert broken_links(page) == []


def test_the_readme_is_a_door():
    text = README.read_text()
    assert len(text.encode()) <= README_MAX_BYTES, f"README.md is {len(text.encode())} bytes"
    assert "# spaces/example.yaml" in text  # one example space, checked against the file
    assert text.index("make search") < text.index("## What it does")  # the two commands first
    linked = {(README.parent / t.partition("#")[0]).resolve() for t in _LINK.findall(text)}
    assert [p.name for p in PAGES[1:] if p.resolve() not in linked] == []  # every room one link away
    image = ROOT / "docs" / "images" / "report.png"
    assert "](docs/images/report.png)" in text
    assert image.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and image.stat().st_size < 200_000


def test_the_reference_shows_the_wandb_sweep_file():
    assert "# spaces/wandb-sweep.yaml" in (ROOT / "docs" / "SPACES.md").read_text()


def test_the_link_checker_finds_a_broken_link(tmp_path):
    page = tmp_path / "a.md"
    page.write_text("# Top\n[ok](#top) [bad](#nowhere) [gone](b.md)\n")
    assert slug("GPUs and Ray clusters") == "gpus-and-ray-clusters" and slug("The `seed` (issue 16)") == \
        "the-seed-issue-16"
    assert anchors(page) == {"top"}
    assert broken_links(page) == ["#nowhere: no such heading in a.md", "b.md: no such file"]
