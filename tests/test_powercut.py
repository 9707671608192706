"""Power cuts: the simulated station runs as a real subprocess and is killed with SIGKILL at
random moments and at chosen points of the cycle, then restarted on the same state directory.

After every kill the books are checked against physical truth (the simulator's world file
survives the kill, as a real bench would):
- no ribbon section was ever touched twice or offered twice (no simulator violation);
- every attempt the firmware started and every result it reported is in the database, once;
- the ribbon and fluid the books count are never less than what physically went, and never
  more than one clean's worth per interrupted attempt.

POWERCUT_KILLS sets the number of kills (default 40; 200+ for a release: see docs/benchmarks.md).

`test_sigkill_right_after_an_output_transition` kills the process right after chosen output
transitions (hw_sim.powercut --kill-at output[.ROLE]:N): the real-process variant of
tests/test_crash_points.py, which cuts in-process after every transition of a clean and of the
maintenance actions.
"""

from __future__ import annotations

import json
import os
import random
import select
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from station.config import Config
from station.store import Store

KILLS = int(os.environ.get("POWERCUT_KILLS", "40"))
N = 3  # positions per clean (default configuration, used by hw_sim.powercut)
EXACT_POINTS = [
    "attempt:1",
    "advanced:1",
    "advanced:2",
    "swipe_now:1",
    "swipe_now:3",
    "result:1",
    "result:2",
    "recovered:1",
]


SPP = Config().wheel.steps_per_position
OUTPUT_POINTS = [
    "output.led_busy:1",  # the first attempt's busy light, before its record (nothing consumed yet)
    "output.enable:1",  # the stepper driver enabled, before the first step
    "output.step:1",  # the first step pulse goes high
    f"output.step:{2 * SPP - 1}",  # the pulse that completes the first position goes high
    f"output.step:{2 * N * SPP}",  # the first move's last pulse goes low
    "output.enable:2",  # the driver disabled after the first move
    "output.pump:1",  # the first drop leaves the nozzle
    "output.pump:2",  # the pump stops
    "output:1000",  # wherever the 1000th output transition falls (a few cleans in)
]


def start(tmp: Path, seed: int, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "hw_sim.powercut",
            "--state-dir",
            str(tmp / "state"),
            "--world",
            str(tmp / "world.json"),
            "--log",
            str(tmp / "log.txt"),
            "--seed",
            str(seed),
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_ready(proc: subprocess.Popen, timeout: float = 60.0) -> bool:
    """True once the child says ready; False if it died first (e.g. killed itself at a point)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        ready, _, _ = select.select([proc.stdout], [], [], 0.2)
        if ready:
            line = proc.stdout.readline()
            if line.strip() == "ready":
                return True
            if line == "":
                return False
        elif proc.poll() is not None:
            return False
    raise AssertionError("the simulated station did not start in time")


def logged(tmp: Path) -> tuple[set[int], dict[int, str]]:
    attempts, results = set(), {}
    path = tmp / "log.txt"
    if path.exists():
        for line in path.read_text().splitlines():
            words = line.split()
            if words and words[0] == "attempt":
                attempts.add(int(words[1]))
            elif words and words[0] == "result":
                results[int(words[1])] = words[2]
    return attempts, results


def check_books(tmp: Path) -> dict[str, int]:
    world = json.loads((tmp / "world.json").read_text())
    assert world["violations"] == [], world["violations"]
    cassette = world["cassettes"]["standard"]
    assert all(n == 1 for n in cassette["touched"].values()), "a ribbon section was touched twice"
    assert len(cassette["offered"]) == len(set(cassette["offered"])), "a section was offered twice"

    db = sqlite3.connect(f"file:{tmp / 'state' / 'station.db'}?mode=ro", uri=True)
    rows = {r[0]: r[1] for r in db.execute("SELECT id, outcome FROM attempts")}
    used = db.execute("SELECT coalesce(sum(positions), 0) FROM ribbon").fetchone()[0]
    drops = db.execute("SELECT count(*) FROM drops").fetchone()[0]
    db.close()

    attempts, results = logged(tmp)
    assert attempts <= set(rows), f"attempts started but not recorded: {sorted(attempts - set(rows))}"
    for attempt_id, outcome in results.items():
        assert rows[attempt_id] == outcome, f"attempt {attempt_id}: reported {outcome}, recorded {rows[attempt_id]}"
    unfinished = sum(1 for o in rows.values() if o in (None, "interrupted"))
    # The books never count less than physically went, and over-count only what power cuts cost.
    assert cassette["position"] <= used <= cassette["position"] + N * unfinished
    physical_drops = world["totals"][0]
    assert physical_drops <= drops <= physical_drops + unfinished
    return {"attempts": len(rows), "unfinished": unfinished}


@pytest.mark.slow
def test_power_cut_at_any_instant_loses_nothing_and_reuses_no_ribbon(tmp_path):
    rng = random.Random(20261124)
    killed_running = 0
    for k in range(KILLS):
        point = EXACT_POINTS[k % len(EXACT_POINTS)] if k % 3 == 0 else None
        # An exact point may not come (no open attempt to recover): then the child ends by itself.
        proc = start(tmp_path, k, *(["--kill-at", point, "--cleans", "12"] if point else []))
        try:
            if wait_ready(proc) and point is None:
                time.sleep(rng.uniform(0.0, 0.6))  # a random instant of the cycle
                proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        stderr = proc.stderr.read()
        assert proc.returncode == -signal.SIGKILL or (point and proc.returncode == 0), (
            f"kill {k}: child ended {proc.returncode}: {stderr[-2000:]}"
        )
        killed_running += proc.returncode == -signal.SIGKILL
        check_books(tmp_path)

    # One last, uninterrupted life: recovery closes every open attempt, cleaning carries on.
    proc = start(tmp_path, 99_999, "--cleans", "3")
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-2000:]
    books = check_books(tmp_path)
    store = Store(tmp_path / "state" / "station.db", readonly=True)
    try:
        assert "open" not in store.summary()
        assert store.summary().get("interrupted", 0) <= killed_running
    finally:
        store.close()
    assert books["attempts"] >= KILLS


def test_sigkill_right_after_an_output_transition(tmp_path):
    """A real process killed right after one output transition, at the points that matter, then
    restarted on the same state directory and world file: nothing lost, nothing reused."""
    for i, point in enumerate(OUTPUT_POINTS):
        here = tmp_path / f"point{i}"
        here.mkdir()
        proc = start(here, i, "--kill-at", point, "--cleans", "30")
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == -signal.SIGKILL, f"{point}: child ended {proc.returncode}: {err[-2000:]}"
        check_books(here)
        proc = start(here, 1000 + i, "--cleans", "2")  # recovery, then two more cleans
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, f"after {point}: {err[-2000:]}"
        books = check_books(here)
        store = Store(here / "state" / "station.db", readonly=True)
        try:
            assert "open" not in store.summary(), point
        finally:
            store.close()
        assert books["attempts"] >= 2, point
