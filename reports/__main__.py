"""python -m reports RUN_DIR [RUN_DIR ...] -o report.html [--reference NAME=PSNR ...]"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from reports.load import ReportError


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m reports", description=(
        "Write one self-contained, offline HTML report for one or more experiment folders "
        "(runs/<name>/ written by run_search.py); several folders are compared side by side."))
    ap.add_argument("run_dirs", nargs="+", type=Path, metavar="RUN_DIR")
    ap.add_argument("-o", "--out", type=Path, default=None,
                    help="output file (default: RUN_DIR/report.html for one folder, report.html for several)")
    ap.add_argument("--reference", action="append", default=[], metavar="NAME=PSNR",
                    help="a named val_psnr (dB) drawn as a line on the PSNR figures, e.g. "
                         "'template run=31.2' (a hand-run model); repeatable")
    args = ap.parse_args(argv)
    references = {}
    for text in args.reference:
        name, sep, value = text.rpartition("=")
        try:
            number = float(value)
        except ValueError:
            number = float("nan")
        if not sep or not name.strip() or number != number or number in (float("inf"), float("-inf")):
            print(f"error: --reference is {text!r}, but must be NAME=PSNR with a finite number in dB "
                  "(e.g. 'template run=31.2')", file=sys.stderr)
            return 2
        references[name.strip()] = number
    out = args.out or (args.run_dirs[0] / "report.html" if len(args.run_dirs) == 1 else Path("report.html"))
    from reports.html import write_report  # plotly import only once the arguments are fine

    try:
        path = write_report(args.run_dirs, out, references)
    except ReportError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
