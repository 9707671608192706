"""Cost of the durable books per clean, against a bare SQLite commit on the same disk.

    python -m bench.record_cost [--cleans 300] [--dir DIR]

Floor: one INSERT + COMMIT into a WAL database with synchronous=FULL (the least a durable
record can cost). Measured: the store calls one dry clean and one wet clean make, in the
order the controller makes them (begin, reserve ribbon, [drop], finish).
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

from bench.common import median, pct, table
from station.domain import CassetteType, Mode, Outcome
from station.store import Store


def bare_commits(path: Path, n: int) -> list[float]:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v REAL)")
    times = []
    for i in range(n):
        t0 = time.perf_counter()
        db.execute("BEGIN IMMEDIATE")
        db.execute("INSERT INTO t(v) VALUES (?)", (float(i),))
        db.execute("COMMIT")
        times.append(time.perf_counter() - t0)
    db.close()
    return times


def clean_books(store: Store, n: int, wet: bool) -> list[float]:
    cassette = store.new_cassette(CassetteType.STANDARD, 10 * n + 10, 0.0)
    times = []
    for i in range(n):
        t0 = time.perf_counter()
        attempt = store.begin_attempt(float(i), Mode.WET if wet else Mode.DRY)
        store.reserve_positions(cassette, 3, float(i), attempt_id=attempt, gender="female")
        if wet:
            store.record_drop(float(i), attempt_id=attempt)
        store.finish_attempt(attempt, Outcome.CLEANED, "", float(i), gender="female", swipe_start_s=0.5, pass_s=0.6)
        times.append(time.perf_counter() - t0)
    return times


def run(cleans: int, directory: Path) -> str:
    floor = bare_commits(directory / "bare.db", cleans)
    store = Store(directory / "station.db")
    dry = clean_books(store, cleans, wet=False)
    wet = clean_books(store, cleans, wet=True)
    store.close()
    f = median(floor)
    rows = [
        ("bare commit (floor)", 1, median(floor) * 1e3, pct(floor, 99) * 1e3, 1.0),
        ("dry clean books", 3, median(dry) * 1e3, pct(dry, 99) * 1e3, median(dry) / f),
        ("wet clean books", 4, median(wet) * 1e3, pct(wet, 99) * 1e3, median(wet) / f),
    ]
    return table(["what", "commits", "median ms", "p99 ms", "x floor (median)"], rows)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cleans", type=int, default=300)
    ap.add_argument("--dir", help="directory on the disk to measure (default: a temporary one)")
    args = ap.parse_args()
    if args.dir:
        print(run(args.cleans, Path(args.dir)))
    else:
        with tempfile.TemporaryDirectory(prefix="mpo-bench-") as tmp:
            print(run(args.cleans, Path(tmp)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
