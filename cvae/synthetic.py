"""`python -m cvae.synthetic`: the entry point; cvae.core.cli hands the arguments to the
model family the run is for (cvae/families/<name>/synthetic.py)."""
from __future__ import annotations

import sys

from cvae.core.cli import synthetic_main as main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
