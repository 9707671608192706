"""Fault matrix: every injectable fault at every phase of a clean, printed as a table.

    python -m bench.fault_matrix [--write docs/reliability.md] [--expected]

The harness and the expected outcomes (a table, fault x phase) are in `hw_sim/fault_matrix.py`;
tests/test_fault_matrix.py runs every cell. Without options this runs the matrix and prints the
generated section; `--write FILE` replaces the part of FILE between the fault-matrix markers (or
writes a new skeleton document); `--expected` prints the expected outcomes without running.
Exit status 1 when a cell fails.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from hw_sim import fault_matrix as fm


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument(
        "--write", metavar="FILE", help="replace the fault-matrix section of FILE (e.g. docs/reliability.md)"
    )
    ap.add_argument("--expected", action="store_true", help="print the expected outcomes only (nothing is run)")
    args = ap.parse_args(argv)
    if args.expected:
        print(fm.expectations_markdown(), end="")
        return 0
    logging.basicConfig(level=logging.CRITICAL)  # the firmware logs every fault it handles
    cells = fm.run_matrix()
    body = fm.markdown(cells)
    if args.write:
        fm.write(Path(args.write), body)
        print(f"{sum(c.passed for c in cells)} of {len(cells)} cells pass; wrote {args.write}")
    else:
        print(body)
    return 0 if all(c.passed for c in cells) else 1


if __name__ == "__main__":
    sys.exit(main())
