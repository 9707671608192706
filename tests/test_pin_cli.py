"""`station pin set` / `station pin status` (installation), as real subprocesses.

`pin set` reads one line from standard input when that is not a terminal (install.sh); the PIN
is stored only as a salted scrypt hash. `pin status` only looks: it never creates the state
directory or a database."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

from station.console.access import verify_pin

REPO = Path(__file__).resolve().parent.parent


def station(*args: str, stdin: str = "") -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "STATE_DIRECTORY"}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run(
        [sys.executable, "-m", "station", "pin", *args],
        input=stdin,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_status_of_a_state_directory_that_does_not_exist_creates_nothing(tmp_path):
    state = tmp_path / "not-yet"
    done = station("status", "--state-dir", str(state))
    assert done.returncode == 1, done
    assert "no maintenance PIN is set" in done.stdout and "no database" in done.stdout
    assert not state.exists(), "pin status must not create the state directory"


def test_set_then_status_and_only_a_hash_is_stored(tmp_path):
    state = tmp_path / "state"
    done = station("set", "--state-dir", str(state), stdin="2468\n")
    assert done.returncode == 0, done.stderr
    status = station("status", "--state-dir", str(state))
    assert (status.returncode, status.stdout.strip()) == (0, "a maintenance PIN is set")
    with sqlite3.connect(state / "station.db") as db:
        (stored,) = db.execute("SELECT value FROM settings WHERE key = 'console.pin'").fetchone()
    assert "2468" not in stored and stored.startswith("scrypt$") and verify_pin("2468", stored)


def test_status_of_a_database_without_a_pin_exits_1(tmp_path):
    state = tmp_path / "state"
    assert station("set", "--state-dir", str(state), stdin="1357\n").returncode == 0
    with sqlite3.connect(state / "station.db") as db:
        db.execute("DELETE FROM settings WHERE key = 'console.pin'")
    done = station("status", "--state-dir", str(state))
    assert (done.returncode, done.stdout.strip()) == (1, "no maintenance PIN is set")


def test_a_bad_pin_is_refused_and_nothing_changes(tmp_path):
    state = tmp_path / "state"
    done = station("set", "--state-dir", str(state), stdin="12\n")
    assert done.returncode == 2 and "nothing changed" in done.stderr, done
    assert station("status", "--state-dir", str(state)).returncode == 1


def test_status_of_a_foreign_file_is_a_clear_error(tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    (state / "station.db").write_bytes(b"this is not a database" * 100)
    done = station("status", "--state-dir", str(state))
    assert done.returncode == 2 and "station pin:" in done.stderr and "station.db" in done.stderr, done


def test_status_of_a_database_it_cannot_read_exits_2_and_install_keeps_away(tmp_path):
    """A database without the settings table (as from before they existed): a clear error and
    exit 2, which install.sh treats as 'unreadable', never as 'no PIN: set one'."""
    state = tmp_path / "state"
    assert station("set", "--state-dir", str(state), stdin="1357\n").returncode == 0
    with sqlite3.connect(state / "station.db") as db:
        db.execute("DROP TABLE settings")
    done = station("status", "--state-dir", str(state))
    assert done.returncode == 2 and "cannot read" in done.stderr and "station.db" in done.stderr, done
    assert "Traceback" not in done.stderr
