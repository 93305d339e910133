"""Errors of the search package that a user can cause (and a CLI reports with exit code 2)."""
from __future__ import annotations


class SpaceError(ValueError):
    """A search-space YAML file breaks a rule.

    The message reads `<file>: <key.path> is <value>, but <rule>` so that the
    user can fix the file without reading a traceback.
    """
