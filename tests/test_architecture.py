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
# Each model family's own folder; and the top-level thin entry points and re-exports
# (cvae.train, cvae.data, ...) that lead into the 2024 family's folder.
FAMILY_MODULES = ("cvae.families.lab4_2024", "cvae.families.bair_2023", "cvae.data", "cvae.train", "cvae.predict",
                  "cvae.synthetic", "cvae.export")
# Today's exceptions to the rules (none: the list can only shrink, and has).
KNOWN_DEBTS: set[tuple[str, str]] = set()
MAX_LINES = 500  # a module longer than this holds more than one job (tests and bench/ aside)
# Today's modules over the limit (each in docs/ARCHITECTURE.md's debts): shrink-only, and empty.
LONG_MODULE_DEBTS: set[str] = set()


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
            elif mod.startswith("cvae.core") and _within(name, ("cvae.families",) + FAMILY_MODULES):
                bad.add((mod, name))  # the core knows no family (the registry finds them by module name)
            elif (_within(mod, ("cvae.families.bair_2023",)) and _within(name, ("cvae.families.lab4_2024",))) or (
                    _within(mod, ("cvae.families.lab4_2024",)) and _within(name, ("cvae.families.bair_2023",))):
                bad.add((mod, _family_module(name)))  # a family shares code through the core, not another family
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
    imports = {"cvae.families.lab4_2024.model": {"ray.tune", "torch"}, "search.results": {"reports.html"},
               "runfolder.contract": {"search.strata", "csv"},
               "reports.html": {"search.comparison.Settings", "pandas"},
               "search.trainable": {"cvae.families.bair_2023.data", "cvae.families"},
               "cvae.core.training": {"cvae.families.lab4_2024.train.fit", "cvae.core.config"},
               "cvae.families.bair_2023.data": {"cvae.families.lab4_2024.data", "cvae.core.images"}}
    assert violations(imports) == {("cvae.families.lab4_2024.model", "ray.tune"), ("search.results", "reports.html"),
                                   ("runfolder.contract", "search.strata"),
                                   ("reports.html", "search.comparison"),
                                   ("search.trainable", "cvae.families.bair_2023"),
                                   ("cvae.core.training", "cvae.families.lab4_2024.train.fit"),
                                   ("cvae.families.bair_2023.data", "cvae.families.lab4_2024")}


def import_graph(imports: dict[str, set[str]]) -> dict[str, set[str]]:
    """module -> the project modules it imports (a name `pkg.mod.func` counts as `pkg.mod`;
    `from pkg import mod` counts as `pkg.mod`, not as the package's __init__)."""
    graph = {}
    for mod, names in imports.items():
        targets = {_project_module(name, imports) for name in names} - {None, mod}
        graph[mod] = {t for t in targets if not any(o.startswith(t + ".") and o in names for o in targets)}
    return graph


def _project_module(name: str, modules: dict[str, set[str]]) -> str | None:
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One import circle per strongly connected group of modules (Tarjan), each as a path."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_circle_among_the_projects_modules():
    # Imports inside functions count too: a lazy import hides a circle, it does not remove it.
    assert cycles(import_graph(project_imports())) == []


def test_the_cycle_finder_finds_a_circle_through_a_function_level_import():
    imports = {"a": {"b.f"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(import_graph(imports)) == [["a", "b", "c"]]


def test_no_project_module_is_over_the_line_limit():
    files = [p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")] + [ROOT / "run_search.py"]
    long = {str(p.relative_to(ROOT)): n for p in files if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert set(long) - LONG_MODULE_DEBTS == set(), f"split these into modules with one job each (at most {MAX_LINES} lines)"
    assert LONG_MODULE_DEBTS - set(long) == set(), "a long module was split: take it off LONG_MODULE_DEBTS"


def test_both_families_have_the_same_file_names():
    folders = [ROOT / "cvae" / "families" / name for name in ("lab4_2024", "bair_2023")]
    expected = {"__init__.py", "config.py", "model.py", "data.py", "step.py", "train.py", "synthetic.py", "predict.py"}
    for folder in folders:
        assert expected <= {p.name for p in folder.glob("*.py")}, folder


def test_the_known_debts_are_written_down():
    text = (ROOT / "docs" / "ARCHITECTURE.md").read_text()
    assert [d for d in KNOWN_DEBTS if f"`{d[0]}` imports `{d[1]}`" not in text] == []
    assert [m for m in LONG_MODULE_DEBTS if f"`{m}`" not in text] == []


def test_nothing_points_outside_the_repository():
    pattern = re.compile(r"\.\./shared|\bDESIGN\.md|\bSTYLE\.md|LAB4_FACTS|BAIR_FACTS")
    files = [p for p in ROOT.rglob("*") if p.suffix in (".py", ".md", ".yaml", ".toml", ".txt")
             and p.is_file() and not set(p.relative_to(ROOT).parts[:1]) & {".venv", "runs", "data", ".git"}]
    assert len(files) > 50
    hits = [f"{p.relative_to(ROOT)}:{i}" for p in files if p.name != "test_architecture.py"
            for i, line in enumerate(p.read_text(errors="replace").splitlines(), 1) if pattern.search(line)]
    assert hits == []
