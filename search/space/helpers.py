"""Small helpers the space's modules share: values as YAML shows them, float tidying, name hints.

Kept apart so that the model, the parser and the dry-run text print a value,
and hint at a misspelt name, in one way.
"""
from __future__ import annotations

import difflib
from typing import Any

from cvae.core.config import ConfigError

# A key that is absent, told apart from one written as null.
_MISSING = object()


def _rule_of(err: ConfigError) -> str:
    """'<source>: lr is -1.0, but must be > 0' -> 'must be > 0'."""
    text = str(err)
    return text.split(", but ", 1)[1] if ", but " in text else text


def _did_you_mean(name: str, options: tuple[str, ...]) -> str:
    match = difflib.get_close_matches(name, options, n=1, cutoff=0.6)
    return f" (did you mean '{match[0]}'?)" if match else ""


def _join(prefix: str, key: Any) -> str:
    return f"{prefix}.{key}" if prefix else str(key)


def _tidy(x: float) -> float:
    """Drop float noise from grid arithmetic: 3 * 0.1 -> 0.3."""
    return float(f"{x:.12g}")


def _show(value: Any) -> str:
    """A value as the user would write it in YAML."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, float):
        return f"{value:.12g}"  # 0.0001, 1, 0.3
    return repr(value)


def _show_list(values: tuple[Any, ...] | list[Any]) -> str:
    return "[" + ", ".join(_show(v) for v in values) + "]"
