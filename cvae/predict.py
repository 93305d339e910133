"""`python -m cvae.predict`: the entry point; cvae.core.cli hands the arguments to the
model family the run is for (cvae/families/<name>/predict.py)."""
from __future__ import annotations

import sys

from cvae.core.cli import predict_main as main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
