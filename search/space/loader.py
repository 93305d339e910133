"""Reading a search-space file: the YAML loader and `load_space`, the package's entry point.

The loader fixes two YAML 1.1 traps (see `_Loader`); a file that cannot be read
or is not valid YAML raises SpaceError naming the file and, where YAML says,
the line and column. Checking the mapping is search.space.parser's job.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from search.errors import SpaceError
from search.space.model import SearchSpace
from search.space.parser import _Parser


class _Loader(yaml.SafeLoader):
    """yaml.SafeLoader plus two fixes of YAML 1.1 traps:
    - `1e-4` is a number (PyYAML reads it as a string: its float needs a dot);
    - a key written twice in one mapping is an error (PyYAML keeps the last one silently).
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.setdefault(key, key_node.start_mark.line)
            except TypeError:
                continue  # unhashable key: SafeLoader reports it below
            if first != key_node.start_mark.line:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} is written twice (first on line {first + 1}), "
                    "but a key may appear only once in a mapping", key_node.start_mark)
        return super().construct_mapping(node, deep=deep)


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."))


def _read_yaml(path: Path) -> Any:
    try:
        text = path.read_text()
    except OSError as err:
        raise SpaceError(f"{path}: cannot read the search space ({err.strerror})") from None
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "somewhere"
        raise SpaceError(f"{path}: {where} is not valid YAML: {err.problem}") from None
    except yaml.YAMLError as err:
        raise SpaceError(f"{path}: not valid YAML: {err}") from None


def load_space(path: str | Path, data: str | Path | None = None, name: str | None = None) -> SearchSpace:
    """Read and check a search-space YAML file; raise SpaceError on the first broken rule.

    `data` is the command line's --data: it replaces data.root, and makes the
    `data` block optional (a W&B sweep file has none). `name` is the command
    line's --name: a file without `name` (W&B names sweeps itself) takes it,
    else the file's name."""
    path = Path(path)
    raw = _read_yaml(path)
    return _Parser(path, data=Path(data) if data is not None else None, name=name).space(raw)

