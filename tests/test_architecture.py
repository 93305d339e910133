"""The floors of the house (docs/ARCHITECTURE.md), checked on the source: what
each package imports, and that nothing points at files outside the repository.

KNOWN_DEBTS are today's exceptions to the rules (each is also listed in
docs/ARCHITECTURE.md): a new one fails the test, and a fixed one must be taken
off the list, so the list can only shrink."""
from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("cvae", "runfolder", "search", "reports")
# Modules that hold one family's own model/data/training code (the 2024 family's
# still sit at the top of cvae/: the debt below).
FAMILY_MODULES = ("cvae.bair", "cvae.families.lab4_2024", "cvae.families.bair_2023", "cvae.config",
                  "cvae.data", "cvae.model", "cvae.step", "cvae.train", "cvae.predict", "cvae.synthetic")
KNOWN_DEBTS = {
    ("search.runner", "cvae.data"),  # DataError: a 2024-family name used for every family's data errors
    ("search.scheduler", "cvae.config"),  # TrainConfig defaults when a config lacks a KL field
    ("search.space", "cvae.config"),  # ConfigError
    ("search.trainable", "cvae.data"),  # LabData
}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every module `path` imports, at the top or inside a function."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}
    return found


def project_imports() -> dict[str, set[str]]:
    files = [p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")]
    return {module_name(p): imports_of(p) for p in files}


def _within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def violations(imports: dict[str, set[str]]) -> set[tuple[str, str]]:
    """(importer, imported) pairs that break a floor rule."""
    bad = set()
    for mod, names in imports.items():
        for name in names:
            top = name.split(".")[0]
            if mod.startswith("cvae") and top in ("search", "reports", "ray", "optuna", "plotly"):
                bad.add((mod, name))  # the model floor knows no search, report or search library
            elif mod.startswith("runfolder") and top in ("search", "reports", "cvae", "ray", "optuna", "torch"):
                bad.add((mod, name))  # the run folder's contract sits below everything that reads or writes it
            elif mod.startswith("search") and top == "reports":
                bad.add((mod, name))  # search writes, reports reads: never the other way
            elif mod.startswith("reports") and top == "search":
                bad.add((mod, name.rsplit(".", 1)[0] if name.count(".") > 1 else name))
            elif mod.startswith(("search", "reports")) and _within(name, FAMILY_MODULES):
                bad.add((mod, _family_module(name)))  # search and reports reach families via the registry
    return bad


def _family_module(name: str) -> str:
    return next(p for p in sorted(FAMILY_MODULES, key=len, reverse=True) if _within(name, (p,)))


def test_the_floor_rules_hold_but_for_the_known_debts():
    found = violations(project_imports())
    assert found - KNOWN_DEBTS == set(), "new imports across floors (docs/ARCHITECTURE.md)"
    assert KNOWN_DEBTS - found == set(), "a debt was paid: take it off KNOWN_DEBTS and docs/ARCHITECTURE.md"


def test_the_rule_checker_catches_each_kind_of_violation():
    imports = {"cvae.model": {"ray.tune", "torch"}, "search.results": {"reports.html"},
               "runfolder.contract": {"search.strata", "csv"},
               "reports.html": {"search.comparison.Settings", "pandas"},
               "search.trainable": {"cvae.bair.data", "cvae.families"}}
    assert violations(imports) == {("cvae.model", "ray.tune"), ("search.results", "reports.html"),
                                   ("runfolder.contract", "search.strata"),
                                   ("reports.html", "search.comparison"), ("search.trainable", "cvae.bair")}


def test_the_known_debts_are_written_down():
    text = (ROOT / "docs" / "ARCHITECTURE.md").read_text()
    assert [d for d in KNOWN_DEBTS if f"`{d[0]}` imports `{d[1]}`" not in text] == []


def test_nothing_points_outside_the_repository():
    pattern = re.compile(r"\.\./shared|\bDESIGN\.md|\bSTYLE\.md|LAB4_FACTS|BAIR_FACTS")
    files = [p for p in ROOT.rglob("*") if p.suffix in (".py", ".md", ".yaml", ".toml", ".txt")
             and p.is_file() and not set(p.relative_to(ROOT).parts[:1]) & {".venv", "runs", "data", ".git"}]
    assert len(files) > 50
    hits = [f"{p.relative_to(ROOT)}:{i}" for p in files if p.name != "test_architecture.py"
            for i, line in enumerate(p.read_text(errors="replace").splitlines(), 1) if pattern.search(line)]
    assert hits == []
