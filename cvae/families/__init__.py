"""Model families, one folder each (lab4_2024/, bair_2023/), behind one interface.

The interface and the registry live in cvae.core.registry; this package re-exports
them so that `from cvae.families import get_family` is the one way in
(docs/FAMILIES.md). Importing it imports no family: `get_family(name)` imports a
built-in family's folder on first use.
"""
from __future__ import annotations

from cvae.core.registry import (
                                BUILTIN_FAMILIES,
                                DEFAULT_FAMILY,
                                SHARED_FIELDS,
                                ModelFamily,
                                UnknownFamilyError,
                                arrays_to_tensors,
                                family_from_argv,
                                family_names,
                                get_family,
                                register_family,
                                split_model_key,
)

__all__ = ["BUILTIN_FAMILIES", "DEFAULT_FAMILY", "SHARED_FIELDS", "ModelFamily", "UnknownFamilyError",
           "arrays_to_tensors", "family_from_argv", "family_names", "get_family", "register_family",
           "split_model_key"]
