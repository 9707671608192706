"""Write failures at every durable write (issue 11; docs/design.md section 3, rules 1, 4, 6, 7, 8).

Each write the controller makes to its books during a dry clean, a wet-to-dry clean and the
maintenance actions (jog 3, prime 2, self-test, started on the console as a technician does)
fails in turn, as a full disk (SQLite's "database or disk is full" at COMMIT, when the pages go
to the WAL) and as an I/O error ("disk I/O error" at the transaction's first statement). The
failure is made beneath the Store: its SQLite connection is wrapped so that the k-th write
transaction (every write is one BEGIN IMMEDIATE ... COMMIT, `Store._tx`) meets the error and
the Store turns it into a StoreError exactly as on a real disk. A dry run first lists the
writes (by the Store method that made each).

The disk fails once (the next write goes through again), or stays failing until it is
repaired. For each write point and each way it fails, the station must end:
* safe (rule 7): stepper disabled, pump off, the red light alone, in the storage fault;
* with nothing moved or dispensed that is not on the books (rules 1, 4, 6): positions the
  wheel moved <= ribbon booked, drops that left the nozzle <= drops booked (the world's
  physical counters against the database file, read through an outside connection);
* with nothing lost (rule 8): no attempt left without its outcome once the disk takes
  writes again; a maintenance action that moved anything is audited;
and once the disk works again, `fault clear` on the console recovers: the station is ready and
its next clean is cleaned on fresh ribbon.
"""

from __future__ import annotations

import shutil
import sqlite3
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from hw_sim import SimBench
from station.app import DB_NAME
from station.console import protocol as P
from station.console.access import Session, hash_pin
from station.console.commands import PIN_KEY, REGISTRY, SERVICE_TIMEOUT_S, CommandError, Context
from station.console.server import Dispatcher
from station.domain import FaultCode, ServiceResult
from station.ports import Sensor
from station.store import Store

PIN = "4711"
PIN_HASH = hash_pin(PIN)  # scrypt is slow on purpose: once per module
FAILURES = {
    "disk full": ("COMMIT", "database or disk is full"),
    "I/O error": ("first statement", "disk I/O error"),
}
RESET_PHASES = ["identifying", "advancing", "dispensing", "swipe_ready", "swiping"]
ACTIONS = [
    "dry clean",
    "wet clean",
    "jog 3",
    "prime 2",
    "selftest",
    *(f"*RST while {phase}" for phase in RESET_PHASES),
]
MAINTENANCE = {"jog 3": "jog", "prime 2": "prime", "selftest": "selftest"}


# ---------------------------------------------------------------------------------- the failing disk
class FailingDisk:
    """The Store's SQLite connection on a disk that fails: counting write transactions from
    `arm()`, the `fail_at`-th meets `error`, and so does every later one while `broken` stays
    set (`once`: only that one). Reads always go through. `writes` names each write
    transaction by the Store method that made it."""

    def __init__(self, db: sqlite3.Connection, fail_at: int | None = None, error: str = "", once: bool = True):
        self._db = db
        self.fail_at = fail_at
        self.where, self.message = FAILURES[error] if error else ("", "")
        self.once = once
        self.armed = False
        self.count = 0
        self.broken = False
        self.failing = False  # the transaction under way is to fail
        self.writes: list[str] = []
        self.failed: list[str] = []

    def arm(self) -> None:
        self.armed, self.count = True, 0

    def repair(self) -> None:
        self.broken = False

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
        if sql == "BEGIN IMMEDIATE" and self.armed:
            self.count += 1
            self.writes.append(_store_method())
            if self.count == self.fail_at:
                self.broken = True
            self.failing = self.broken
            if self.failing and self.once:
                self.broken = False
        elif self.failing and sql != "ROLLBACK":
            if self.where == "first statement" or sql == "COMMIT":
                self.failing = False
                self.failed.append(self.writes[-1])
                raise sqlite3.OperationalError(self.message)
        return self._db.execute(sql, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._db, name)


def _store_method() -> str:
    frame = sys._getframe(2)
    while frame is not None:
        if isinstance(frame.f_locals.get("self"), Store) and not frame.f_code.co_name.startswith("_"):
            return frame.f_code.co_name
        frame = frame.f_back
    return "?"


# ---------------------------------------------------------------------------------- the console
class VirtualTimeContext(Context):
    """The console's context, with a maintenance action waited for in virtual time (as in
    tests/test_stateful.py): the same controller code, one thread."""

    def service(self, start: Callable[[Callable[[ServiceResult], None]], None]) -> ServiceResult:
        box: list[ServiceResult] = []
        self.call(lambda: start(box.append))
        self.controller.loop.run_while(lambda: not box, SERVICE_TIMEOUT_S)
        if not box:
            raise CommandError(P.EXECUTION_ERROR, "the action did not finish in time")
        return box[0]


@dataclass
class Station:
    """A simulated bench, a logged-in console port and the disk under its books."""

    bench: SimBench
    disk: FailingDisk
    port: Dispatcher
    replies: list[list[str]] = field(default_factory=list)

    def console(self, text: str) -> list[str]:
        streamed: list[str] = []
        reply = [*streamed, *self.port.handle(P.Line(text), streamed.append)]
        self.replies.append(reply)
        words = text.lower().split()
        if words[:2] == ["mode", "set"] and reply[-1].startswith("OK"):  # the person knows what they chose
            self.bench.world.console_mode = None if words[2] == "switch" else words[2]
        self.bench.run_for(0.0)
        return reply


def close(bench: SimBench) -> None:
    """`bench.close()` without waiting for gpiozero's hold thread of the panel button, which
    looks for its stop signal only every 0.1 s: it is woken first."""
    button = bench.station.hardware.sensors.devices.get(Sensor.BUTTON)  # type: ignore[attr-defined]
    thread = getattr(button, "_hold_thread", None)
    if thread is not None:
        thread.stopping.set()
        thread.holding.set()
    bench.close()


@pytest.fixture
def state_dir(tmp_path):
    """The station's state directory: on tmpfs when there is one (every commit is an fsync; the
    test is about what fails, not about the disk's speed)."""
    shm = Path("/dev/shm")
    d = Path(tempfile.mkdtemp(prefix="mpo-writes-", dir=shm if shm.is_dir() else tmp_path))
    yield d
    shutil.rmtree(d, ignore_errors=True)


def station(state_dir: Path, fail_at: int | None = None, error: str = "", once: bool = True) -> Station:
    bench = SimBench(state_dir=state_dir)
    c = bench.controller
    c.store.set_setting(PIN_KEY, PIN_HASH, c.wall(), source="test")
    session = Session("maintenance", bench.config.console.idle_logout_s, clock=bench.clock.now)
    port = Dispatcher(
        REGISTRY,
        lambda write, session, errors: VirtualTimeContext(c, session, errors, write),
        session,
        clock=bench.clock.now,
    )
    disk = FailingDisk(c.store._db, fail_at, error, once)
    c.store._db = disk  # type: ignore[assignment]
    s = Station(bench, disk, port)
    assert s.console(f"login {PIN}")[-1].startswith("OK"), s.replies[-1]
    bench.run_for(1.0)
    return s


def act(s: Station, action: str) -> None:
    """The action as the operator or the technician does it; the disk counts from here (for
    `*RST while <phase>`: from the *RST, sent in that phase of a clean)."""
    b, w = s.bench, s.bench.world
    if action.startswith("*RST while "):
        phase = action.removeprefix("*RST while ")
        w.set_mode(phase == "dispensing")
        w.present("female")
        if phase == "swiping":
            assert b.wait_until(lambda: w.prompting, 20)
            w.swipe(direction="down", duration_s=1.0)
            b.run_for(0.3)
        else:
            assert b.wait_until(lambda: b.state == phase, 20)
        assert b.state == phase
        s.disk.arm()
        s.console("*RST")
        w.remove()
    else:
        s.disk.arm()
        if action in ("dry clean", "wet clean"):
            b.clean("female", wet=action == "wet clean")  # takes the connector away at the end
        else:
            s.console(action)
    b.run_for(2.0)


# ---------------------------------------------------------------------------------- the books
@dataclass(frozen=True)
class Books:
    attempts: dict[int, str | None]
    used: int
    drops: int
    audit: list[tuple[str, str]]


def read_books(state_dir: Path) -> Books:
    """The database file as an outside auditor reads it (its own read-only connection)."""
    db = sqlite3.connect(f"file:{state_dir / DB_NAME}?mode=ro", uri=True)
    try:
        return Books(
            dict(db.execute("SELECT id, outcome FROM attempts").fetchall()),
            db.execute("SELECT coalesce(sum(positions), 0) FROM ribbon").fetchone()[0],
            db.execute("SELECT count(*) FROM drops").fetchone()[0],
            [tuple(r) for r in db.execute("SELECT kind, action FROM audit ORDER BY id")],
        )
    finally:
        db.close()


def check_books(s: Station, state_dir: Path, where: str) -> Books:
    w = s.bench.world
    books = read_books(state_dir)
    assert w.fitted is not None
    assert w.fitted.position <= books.used, f"{where}: moved {w.fitted.position}, booked {books.used}"
    assert w.drops_total <= books.drops, f"{where}: dispensed {w.drops_total}, booked {books.drops}"
    return books


def writes_of(action: str) -> list[str]:
    """The dry run: the durable writes the action makes, in order."""
    shm = Path("/dev/shm")
    with tempfile.TemporaryDirectory(prefix="mpo-writes-", dir=shm if shm.is_dir() else None) as d:
        s = station(Path(d))
        try:
            act(s, action)
            assert s.bench.state == "idle", s.bench.state
            return list(s.disk.writes)
        finally:
            close(s.bench)


WRITES = {action: writes_of(action) for action in ACTIONS}
CASES = [
    pytest.param(action, k, error, once, id=f"{action}-{k}-{name}-{error}-{'once' if once else 'until repaired'}")
    for action, names in WRITES.items()
    for k, name in enumerate(names, start=1)
    for error in FAILURES
    for once in (True, False)
]


def test_the_writes_enumerated():
    """What the dry run found (the write points below): each booking before its action."""
    assert WRITES == {
        "dry clean": ["begin_attempt", "reserve_positions", "finish_attempt"],
        "wet clean": ["begin_attempt", "reserve_positions", "record_drop", "finish_attempt"],
        "jog 3": ["audit", "reserve_positions"],
        "prime 2": ["audit", "record_drop", "record_drop"],
        "selftest": ["audit", "reserve_positions", "record_drop"],
        **{f"*RST while {phase}": ["audit", "finish_attempt"] for phase in RESET_PHASES},
    }


@pytest.mark.parametrize("action, k, error, once", CASES)
def test_a_failing_write_ends_safe_in_the_storage_fault_with_nothing_off_the_books(state_dir, action, k, error, once):
    s = station(state_dir, fail_at=k, error=error, once=once)
    try:
        check_write_failure(s, state_dir, action, k, error, once)
    finally:
        close(s.bench)


def check_write_failure(s: Station, state_dir: Path, action: str, k: int, error: str, once: bool) -> None:
    bench, w, c = s.bench, s.bench.world, s.bench.controller
    where = f"{action}, write {k} ({WRITES[action][k - 1]}) fails: {error}{'' if once else ' until repaired'}"
    act(s, action)
    assert s.disk.failed[:1] == [WRITES[action][k - 1]], f"{where}: {s.disk.failed}"

    # rule 7: safe, red light alone, in the storage fault
    assert (bench.state, c.faults.code) == ("fault", FaultCode.STORAGE), f"{where}: {bench.state} {c.faults.code}"
    assert not w.stepper_enabled and not w.pump_on, where
    assert w.leds() == (False, False, True), f"{where}: lights {w.leds()}"
    if action not in ("dry clean", "wet clean"):
        reply = s.replies[1][-1]  # (the first was the login)
        assert reply.startswith("ERR ") and "fault" in reply, f"{where}: the console said {reply}"

    # rules 1, 4, 6: nothing moved or dispensed that is not on the books
    books = check_books(s, state_dir, where)
    if action in MAINTENANCE and ("maintenance", MAINTENANCE[action]) not in books.audit:
        assert (w.fitted.position, w.drops_total) == (0, 0), f"{where}: moved or pumped without an audit record"

    # the disk works again: fault clear recovers
    s.disk.repair()
    assert s.console("fault clear")[-1].startswith("OK"), f"{where}: {s.replies[-1]}"
    assert bench.state == "idle", where
    # rule 8: every attempt has its one outcome once the disk takes writes again
    books = check_books(s, state_dir, where)
    assert None not in books.attempts.values(), f"{where}: attempts {books.attempts}"

    result = bench.clean("female")
    assert result is not None and result.outcome.value == "cleaned", f"{where}: next clean {result}"
    assert not w.stepper_enabled and not w.pump_on and bench.state == "idle", where
    books = check_books(s, state_dir, where)
    assert None not in books.attempts.values(), f"{where}: attempts {books.attempts}"


# ---------------------------------------------------------------------------------- the console's other writes
SETTING_COMMANDS = {
    # command -> what it would change, read from the station
    "mode set wet": lambda c: (c.mode.override, c.mode.current()),
    "mode set switch": lambda c: (c.mode.override, c.mode.current()),
    "cassette new": lambda c: [(x.id, x.used) for x in c.store.current_cassettes()],
    "fluid refill": lambda c: c.store.fluid(),
    "config set swipe.max_pass_s 2.5": lambda c: (c.config.swipe.max_pass_s, c.settings.saved_changes()),
}


@pytest.mark.parametrize("error", FAILURES)
@pytest.mark.parametrize("command", SETTING_COMMANDS)
def test_a_console_change_the_disk_refuses_does_not_happen(state_dir, command, error):
    """The console's commands that only change the books or the settings are written before they
    apply: refused by the disk, the console says ERR and nothing changed (found: `mode set` used
    to change the mode and then fail to audit it, so the station cleaned in a mode the console
    said it had refused, with no record of the change)."""
    s = station(state_dir, fail_at=1, error=error)
    try:
        c, w = s.bench.controller, s.bench.world
        if command == "mode set switch":
            assert s.console("mode set dry")[-1].startswith("OK")
        before = SETTING_COMMANDS[command](c)
        s.disk.arm()
        reply = s.console(command)
        assert reply[-1].startswith("ERR "), reply
        assert s.disk.failed == [s.disk.writes[0]]
        assert SETTING_COMMANDS[command](c) == before, command
        assert s.bench.state == "idle"
        w.set_mode(command == "mode set switch")  # the panel switch reads WET; the console's DRY still holds
        result = s.bench.clean("female")
        assert result is not None and result.outcome.value == "cleaned" and w.drops_total == 0, result
    finally:
        close(s.bench)
