"""`python -m cvae.export --to lab4-template`: the entry point of the lab4-2024
family's checkpoint export (cvae/families/lab4_2024/export.py)."""
from __future__ import annotations

import sys

from cvae.families.lab4_2024.export import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
