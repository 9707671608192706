"""The station's durable books (station.store.Store), used directly on real SQLite files.

docs/design.md section 3 rules 1, 6 and 8 and section 6: ribbon reserved durably and never past
the end of a cassette, counters equal to the ledgers (kept by triggers in the same transaction,
schema 3, and backfilled when an older database is opened), exactly one outcome per attempt,
an audit row for every maintenance action, and a database that refuses clearly (StoreError
with a hint) when it is newer, foreign, corrupt, read-only or full. Section 4, "the loop never
stalls": what the controller's loop asks of the store costs the same however long the history
(counted in SQLite virtual-machine steps, not timed).
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from station.domain import CassetteType, Mode, Outcome
from station.store import APPLICATION_ID, MIGRATIONS, SCHEMA_VERSION, Identity, Outbox, Store, StoreError

STD = CassetteType.STANDARD
MALE = CassetteType.MALE_MT


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "station.db"


@pytest.fixture
def store(db_path: Path):
    s = Store(db_path, fluid_capacity=10)
    yield s
    s.close()


def raw(path: Path) -> sqlite3.Connection:
    """A second, independent connection: what is really on disk."""
    return sqlite3.connect(path)


def table_rows(path: Path, table: str) -> list[tuple]:
    db = raw(path)
    try:
        return db.execute(f"SELECT * FROM {table} ORDER BY id").fetchall()
    finally:
        db.close()


# ---------------------------------------------------------------------------- opening


def test_new_database_has_current_schema_and_our_application_id(db_path):
    s = Store(db_path)
    try:
        assert s.schema_version == SCHEMA_VERSION
        assert s._db.execute("PRAGMA journal_mode").fetchone()[0].lower() == "wal"
        assert s._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    finally:
        s.close()
    db = raw(db_path)
    try:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert db.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    finally:
        db.close()
    assert {"cassettes", "cassette_fits", "attempts", "ribbon", "drops", "refills", "audit"} <= tables


def test_empty_existing_file_becomes_a_station_database(db_path):
    db_path.write_bytes(b"")
    s = Store(db_path)
    try:
        assert s.schema_version == SCHEMA_VERSION
    finally:
        s.close()


def test_reopening_is_idempotent_and_keeps_the_books(db_path):
    s = Store(db_path, fluid_capacity=10)
    c = s.new_cassette(STD, 30, 1.0)
    a = s.begin_attempt(2.0, Mode.WET)
    assert s.reserve_positions(c, 3, 2.1, attempt_id=a) == 0
    s.record_drop(2.2, attempt_id=a)
    s.finish_attempt(a, Outcome.CLEANED, "", 3.0)
    s.close()

    db = raw(db_path)
    schema_before = db.execute("SELECT type, name, sql FROM sqlite_master ORDER BY name").fetchall()
    db.close()

    for _ in range(3):
        s = Store(db_path, fluid_capacity=10)
        try:
            assert s.schema_version == SCHEMA_VERSION
            assert s.cassette(STD) == type(c)(c.id, STD, 30, 3)
            assert s.fluid() == (1, 10)
            [rec] = s.attempts()
            assert (rec.id, rec.outcome, rec.positions, rec.drops) == (a, "cleaned", 3, 1)
            assert len(s.cassettes()) == 1
        finally:
            s.close()

    db = raw(db_path)
    try:
        assert db.execute("SELECT type, name, sql FROM sqlite_master ORDER BY name").fetchall() == schema_before
        assert db.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    finally:
        db.close()


def test_newer_schema_version_asks_for_newer_firmware_and_leaves_the_file_alone(db_path):
    Store(db_path).close()
    db = raw(db_path)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.commit()
    db.close()

    with pytest.raises(StoreError) as info:
        Store(db_path)
    text = str(info.value)
    assert "newer firmware" in text
    assert str(SCHEMA_VERSION + 1) in text and str(db_path) in text

    db = raw(db_path)
    try:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION + 1
    finally:
        db.close()


def test_foreign_sqlite_file_is_refused_and_untouched(db_path):
    db = raw(db_path)
    db.execute("CREATE TABLE contacts (name TEXT, phone TEXT)")
    db.execute("INSERT INTO contacts VALUES ('Ada', '123')")
    db.commit()
    db.close()

    with pytest.raises(StoreError, match="not a station database"):
        Store(db_path)
    with pytest.raises(StoreError, match="not a station database"):
        Store(db_path, readonly=True)

    db = raw(db_path)
    try:
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert tables == {"contacts"}  # no station tables were added to someone else's file
        assert db.execute("SELECT * FROM contacts").fetchall() == [("Ada", "123")]
        assert db.execute("PRAGMA application_id").fetchone()[0] == 0
        assert db.execute("PRAGMA user_version").fetchone()[0] == 0
    finally:
        db.close()


def test_file_marked_by_another_application_is_refused_even_when_empty(db_path):
    db = raw(db_path)
    db.execute("PRAGMA application_id = 123")
    db.commit()
    db.close()
    with pytest.raises(StoreError, match="not a station database"):
        Store(db_path)


@pytest.mark.parametrize("header", [b"", b"SQLite format 3\x00"], ids=["random", "sqlite-header"])
def test_corrupt_file_raises_store_error_with_a_hint(db_path, header):
    content = header + os.urandom(8192 - len(header))
    db_path.write_bytes(content)
    with pytest.raises(StoreError) as info:
        Store(db_path)
    text = str(info.value)
    assert str(db_path) in text
    assert "damaged or not a database" in text and "backup" in text
    assert db_path.read_bytes() == content  # the evidence is not overwritten


def test_readonly_open_of_a_missing_file_explains_and_creates_nothing(tmp_path):
    path = tmp_path / "nothing-here.db"
    with pytest.raises(StoreError, match="cannot be opened"):
        Store(path, readonly=True)
    assert not path.exists()


# ---------------------------------------------------------------------------- read-only


def _write_attempts(s: Store, cassette) -> list:
    """Every kind of write the station makes."""
    return [
        lambda: s.begin_attempt(5.0, Mode.DRY),
        lambda: s.new_cassette(STD, 30, 5.0),
        lambda: s.reserve_positions(cassette, 3, 5.0),
        lambda: s.record_drop(5.0),
        lambda: s.refill(5.0, source="test"),
        lambda: s.audit("maintenance", "x", 5.0),
        lambda: s.close_open_attempts(5.0),
        lambda: s.cassette_removed(5.0),
    ]


def _seed(db_path: Path):
    s = Store(db_path, fluid_capacity=10)
    c = s.new_cassette(STD, 30, 1.0)
    s.reserve_positions(c, 3, 1.5)
    s.begin_attempt(2.0, Mode.DRY)  # left open on purpose: close_open_attempts would write
    s.close()
    return c


def _snapshot(db_path: Path) -> dict[str, list[tuple]]:
    return {
        t: table_rows(db_path, t)
        for t in ("cassettes", "cassette_fits", "attempts", "ribbon", "drops", "refills", "audit")
    }


def test_readonly_store_reads_and_every_write_raises_store_error(db_path):
    c = _seed(db_path)
    before = _snapshot(db_path)
    s = Store(db_path, readonly=True)
    try:
        assert s.cassette(STD).used == 3
        assert len(s.attempts()) == 1
        for write in _write_attempts(s, c):
            with pytest.raises(StoreError, match="read-only"):
                write()
    finally:
        s.close()
    assert _snapshot(db_path) == before


@contextmanager
def unwritable(directory: Path, *files: Path) -> Iterator[str | None]:
    """Make the files and their directory unwritable *for this process*.

    chmod does it for an ordinary user; root ignores permission bits, so there the immutable
    attribute (chattr +i) is used where the filesystem allows it. Yields how it was done, or
    None when this process cannot be stopped from writing at all."""
    paths = [*files, directory]
    how: str | None = None
    if os.geteuid() != 0:
        for f in files:
            os.chmod(f, 0o444)
        os.chmod(directory, 0o555)
        how = "chmod"
    elif shutil.which("chattr"):
        done = []
        for path in paths:
            if subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode != 0:
                break
            done.append(path)
        if len(done) == len(paths):
            how = "chattr"
        else:
            for path in done:
                subprocess.run(["chattr", "-i", str(path)], capture_output=True)
    if how is not None:  # prove it: this process really cannot create a file there
        try:
            (directory / "probe").write_text("x")
        except OSError:
            pass
        else:
            (directory / "probe").unlink()
            how = None
    try:
        yield how
    finally:
        if os.geteuid() == 0:
            for path in paths:
                subprocess.run(["chattr", "-i", str(path)], capture_output=True)
        os.chmod(directory, 0o755)
        for f in files:
            os.chmod(f, 0o644)


def test_read_only_file_and_directory_make_writes_raise_store_error(tmp_path):
    directory = tmp_path / "state"
    directory.mkdir()
    db_path = directory / "station.db"
    c = _seed(db_path)
    before = _snapshot(db_path)
    with unwritable(directory, db_path) as how:
        try:
            s = Store(db_path)
        except StoreError as exc:  # refusing at open is a fine answer too, if it says why
            assert how is not None
            text = str(exc)
            assert str(db_path) in text
            assert "read-only" in text or "writable" in text, text
        else:
            try:
                if how is None:
                    # Root without chattr: nothing stops this process writing the file, so make
                    # the connection itself refuse writes (what a read-only file does to SQLite).
                    s._db.execute("PRAGMA query_only = ON")
                for write in _write_attempts(s, c):
                    with pytest.raises(StoreError, match="read-only"):
                        write()
            finally:
                s.close()
    assert _snapshot(db_path) == before


def test_readonly_store_reads_a_database_in_a_read_only_directory(tmp_path):
    """QA reads the records where it may not write: the service's state directory as another
    user, or a backup on write-protected media. Reading must not need write access."""
    directory = tmp_path / "state"
    directory.mkdir()
    db_path = directory / "station.db"
    c = _seed(db_path)
    before = _snapshot(db_path)
    assert sorted(p.name for p in directory.iterdir()) == ["station.db"]  # closed cleanly: no -wal/-shm
    with unwritable(directory, db_path) as how:
        if how is None:
            pytest.skip("running as root without a usable chattr: cannot make the directory read-only")
        s = Store(db_path, readonly=True)
        try:
            assert s.cassette(STD).used == 3
            assert [r.outcome for r in s.attempts()] == [None]
            for write in _write_attempts(s, c):
                with pytest.raises(StoreError):
                    write()
        finally:
            s.close()
    assert _snapshot(db_path) == before


# ---------------------------------------------------------------------------- disk full


def _consistency(db_path: Path) -> None:
    db = raw(db_path)
    try:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        # every ribbon reservation of an attempt is reflected on the attempt (same transaction)
        bad = db.execute(
            "SELECT r.id FROM ribbon r JOIN attempts a ON a.id = r.attempt_id WHERE a.cassette_id IS NOT r.cassette_id"
        ).fetchall()
        assert bad == []
        # ledger positions are consecutive per cassette, no gaps or overlaps
        for (cid,) in db.execute("SELECT id FROM cassettes"):
            rows = db.execute(
                "SELECT first_position, positions FROM ribbon WHERE cassette_id = ? ORDER BY id", (cid,)
            ).fetchall()
            expected = 0
            for first, n in rows:
                assert first == expected
                expected += n
        # at most one current cassette per type
        for ctype in ("standard", "male_mt"):
            assert (
                db.execute("SELECT count(*) FROM cassettes WHERE type = ? AND retired_at IS NULL", (ctype,)).fetchone()[
                    0
                ]
                <= 1
            )
    finally:
        db.close()


def test_disk_full_raises_store_error_and_leaves_nothing_half_written(db_path):
    s = Store(db_path, fluid_capacity=100_000)
    cassette = s.new_cassette(STD, 1_000_000, 1.0)
    pages = s._db.execute("PRAGMA page_count").fetchone()[0]
    s._db.execute(f"PRAGMA max_page_count = {pages + 2}")

    begun: list[int] = []
    reserved = drops = finished = 0
    error: StoreError | None = None
    try:
        for i in range(100_000):
            t = 10.0 + i
            a = s.begin_attempt(t, Mode.WET)
            begun.append(a)
            s.reserve_positions(cassette, 3, t, attempt_id=a, gender="female")
            reserved += 1
            s.record_drop(t, attempt_id=a)
            drops += 1
            s.finish_attempt(a, Outcome.CLEANED, "", t + 0.5, gender="female", swipe_start_s=0.4, pass_s=0.6)
            finished += 1
            s.audit("clean", "done", t, detail={"attempt": a, "pad": "x" * 50})
    except StoreError as exc:
        error = exc
    assert error is not None, "max_page_count never filled the database"
    assert "full" in str(error)
    assert str(db_path) in str(error)

    # The books equal exactly the calls that returned: nothing half-written.
    assert s.cassette(STD).used == 3 * reserved
    recs = {r.id: r for r in s.attempts()}
    assert sorted(recs) == begun
    assert sum(r.positions for r in recs.values()) == 3 * reserved
    assert sum(r.drops for r in recs.values()) == drops
    assert s.fluid()[0] == drops
    assert sum(1 for r in recs.values() if r.outcome == "cleaned") == finished
    _consistency(db_path)

    # A full disk blocks further writes (each one raises, none half-applied) ...
    with pytest.raises(StoreError, match="full"):
        for _ in range(50):
            s.audit("fill", "more", 1.0, detail="y" * 500)
    # ... and a multi-statement write rolls back completely when it does not fit.
    for _ in range(200):
        try:
            s.audit("fill", "", 1.0)
        except StoreError:
            break
    old = s.cassette(STD)
    cassettes_before = [dict(r) for r in s.cassettes()]
    fits_before = table_rows(db_path, "cassette_fits")
    with pytest.raises(StoreError, match="full"):
        s.new_cassette(STD, 1_000_000, 99.0, note="n" * 200)
    assert s.cassette(STD) == old  # the current cassette was not retired
    assert [dict(r) for r in s.cassettes()] == cassettes_before
    assert table_rows(db_path, "cassette_fits") == fits_before
    _consistency(db_path)

    # Space comes back: the station carries on from the same books.
    s._db.execute("PRAGMA max_page_count = 1000000")
    assert s.reserve_positions(cassette, 3, 5000.0) == 3 * reserved
    s.close()


def test_every_write_against_a_nearly_full_disk_is_all_or_nothing(db_path):
    """Keep cleaning while the disk hovers at full: each call either fully lands or raises
    StoreError having changed nothing, whichever statement of its transaction hit the limit."""
    s = Store(db_path, fluid_capacity=100_000)
    cassette = s.new_cassette(STD, 1_000_000, 1.0)
    pages = s._db.execute("PRAGMA page_count").fetchone()[0]
    s._db.execute(f"PRAGMA max_page_count = {pages + 3}")

    begun: list[int] = []
    reserved: dict[int, int] = {}  # attempt -> first position the store returned
    drops: list[int] = []
    outcomes: dict[int, str] = {}
    failed_steps: dict[str, int] = {}

    def step(name: str, fn, *args, **kwargs):
        try:
            return True, fn(*args, **kwargs)
        except StoreError as exc:
            assert "full" in str(exc), exc
            failed_steps[name] = failed_steps.get(name, 0) + 1
            return False, None

    for i in range(400):
        t = 10.0 + i
        if i % 40 == 0:  # a little space is freed now and then: the disk hovers at full
            limit = s._db.execute("PRAGMA max_page_count").fetchone()[0]
            s._db.execute(f"PRAGMA max_page_count = {limit + 1}")
        ok, a = step("begin", s.begin_attempt, t, Mode.WET if i % 2 else Mode.DRY)
        if not ok:
            continue
        begun.append(a)
        ok, first = step("reserve", s.reserve_positions, cassette, 3, t, attempt_id=a, gender="female")
        if ok:
            reserved[a] = first
            if i % 2:
                ok, _ = step("drop", s.record_drop, t, attempt_id=a)
                if ok:
                    drops.append(a)
        outcome = Outcome.CLEANED if a in reserved else Outcome.FAILED
        reason = "" if a in reserved else "x" * (i % 97)
        ok, _ = step("finish", s.finish_attempt, a, outcome, reason, t + 0.5, swipe_start_s=0.5, pass_s=0.6)
        if ok:
            outcomes[a] = outcome.value
        step("audit", s.audit, "clean", "done", t, detail="p" * (i * 7 % 300))

    # the limit was hit inside several kinds of transaction, the two-statement reservation among them
    assert {"begin", "reserve", "audit"} <= set(failed_steps), failed_steps

    recs = {r.id: r for r in s.attempts()}
    assert sorted(recs) == begun
    for a, rec in recs.items():
        if a in reserved:
            assert (rec.positions, rec.first_position, rec.cassette_id, rec.gender) == (
                3,
                reserved[a],
                cassette.id,
                "female",
            )
        else:
            assert (rec.positions, rec.first_position, rec.cassette_id) == (0, None, None)
        assert rec.drops == drops.count(a)
        assert rec.outcome == outcomes.get(a)
    assert s.cassette(STD).used == 3 * len(reserved)
    assert sorted(reserved.values()) == [3 * k for k in range(len(reserved))]
    assert s.fluid()[0] == len(drops)
    _consistency(db_path)
    s.close()

    # What was durably written survives a reopen unchanged.
    s = Store(db_path, fluid_capacity=100_000)
    try:
        assert {r.id: (r.outcome, r.positions, r.drops) for r in s.attempts()} == {
            a: (rec.outcome, rec.positions, rec.drops) for a, rec in recs.items()
        }
    finally:
        s.close()


# ---------------------------------------------------------------------------- ribbon


def test_reserve_positions_returns_consecutive_first_positions(store):
    c = store.new_cassette(STD, 20, 1.0)
    assert [store.reserve_positions(c, 3, 2.0 + i) for i in range(3)] == [0, 3, 6]
    assert store.reserve_positions(c, 2, 6.0, source="jog") == 9
    assert store.reserve_positions(c, 3, 7.0) == 11
    assert store.cassette(STD).used == 14
    rows = table_rows(Path(store.path), "ribbon")
    assert [(r[4], r[5]) for r in rows] == [(0, 3), (3, 3), (6, 3), (9, 2), (11, 3)]


def test_reserve_positions_refuses_to_go_past_capacity_without_writing(store, db_path):
    c = store.new_cassette(STD, 10, 1.0)
    for _ in range(3):
        store.reserve_positions(c, 3, 2.0)
    a = store.begin_attempt(3.0, Mode.DRY)
    ribbon_before = table_rows(db_path, "ribbon")
    with pytest.raises(StoreError, match="1 positions left, 3 asked"):
        store.reserve_positions(c, 3, 3.1, attempt_id=a)
    assert table_rows(db_path, "ribbon") == ribbon_before
    [rec] = store.attempts(outcome=None, limit=1)
    assert rec.id == a and rec.cassette_id is None and rec.positions == 0
    assert store.cassette(STD).used == 9 and store.cassette(STD).remaining == 1
    # what is left can still be used exactly, but never more
    assert store.reserve_positions(c, 1, 4.0) == 9
    with pytest.raises(StoreError):
        store.reserve_positions(c, 1, 4.1)
    assert store.cassette(STD).used == 10 and store.cassette(STD).remaining == 0


def test_reserve_positions_uses_the_ledger_not_a_stale_cassette_state(store):
    stale = store.new_cassette(STD, 6, 1.0)  # used == 0 in this snapshot
    store.reserve_positions(stale, 3, 2.0)
    store.reserve_positions(stale, 3, 3.0)
    with pytest.raises(StoreError):
        store.reserve_positions(stale, 3, 4.0)
    assert store.cassette(STD).used == 6


def test_cassette_used_is_the_sum_of_its_reservations(store, db_path):
    std = store.new_cassette(STD, 100, 1.0)
    male = store.new_cassette(MALE, 50, 1.0)
    sizes_std = [3, 3, 1, 3]
    sizes_male = [3, 2]
    for i, n in enumerate(sizes_std):
        store.reserve_positions(std, n, 2.0 + i)
    for i, n in enumerate(sizes_male):
        store.reserve_positions(male, n, 2.0 + i)
    assert store.cassette(STD).used == sum(sizes_std) == 10
    assert store.cassette(STD).remaining == 90
    assert store.cassette(MALE).used == sum(sizes_male) == 5
    assert store.cassette(MALE).remaining == 45
    db = raw(db_path)
    try:
        by_cassette = dict(db.execute("SELECT cassette_id, sum(positions) FROM ribbon GROUP BY cassette_id"))
    finally:
        db.close()
    assert by_cassette == {std.id: 10, male.id: 5}
    rows = {r["id"]: r for r in store.cassettes()}
    assert rows[std.id]["used"] == 10 and rows[male.id]["used"] == 5


# ---------------------------------------------------------------------------- fluid


def test_fluid_counts_drops_since_the_last_refill(db_path):
    s = Store(db_path, fluid_capacity=10)
    try:
        assert s.fluid() == (0, 10)
        for i in range(4):
            s.record_drop(1.0 + i)
        assert s.fluid() == (4, 10)
        s.refill(10.0, source="console")
        assert s.fluid() == (0, 10)
        s.record_drop(11.0)
        s.record_drop(12.0, source="prime")
        assert s.fluid() == (2, 10)
        s.refill(20.0, source="panel")
        s.refill(21.0, source="panel")  # a second refill in a row is harmless
        assert s.fluid() == (0, 10)
        s.record_drop(22.0)
        assert s.fluid() == (1, 10)
    finally:
        s.close()
    db = raw(db_path)
    try:
        assert db.execute("SELECT count(*) FROM drops").fetchone()[0] == 7  # the ledger keeps every drop
        audit = db.execute("SELECT kind, action, source, detail FROM audit WHERE kind = 'fluid' ORDER BY id").fetchall()
    finally:
        db.close()
    assert [(k, a, src) for k, a, src, _ in audit] == [
        ("fluid", "refill", "console"),
        ("fluid", "refill", "panel"),
        ("fluid", "refill", "panel"),
    ]
    assert json.loads(audit[0][3]) == {"capacity": 10}


def test_fluid_capacity_is_the_one_the_reservoir_was_refilled_to(db_path):
    s = Store(db_path, fluid_capacity=10)
    s.record_drop(1.0)
    s.refill(2.0, source="console")
    s.record_drop(3.0)
    s.close()
    # a later configuration with a bigger reservoir does not invent fluid that was never filled
    s = Store(db_path, fluid_capacity=500)
    try:
        assert s.fluid() == (1, 10)
        s.refill(4.0, source="console")
        assert s.fluid() == (0, 500)
    finally:
        s.close()


# ---------------------------------------------------------------------------- attempts


def test_close_open_attempts_marks_only_open_ones_and_is_idempotent(store, db_path):
    done = store.begin_attempt(1.0, Mode.DRY)
    store.finish_attempt(done, Outcome.CLEANED, "", 1.5)
    rejected = store.begin_attempt(2.0, Mode.DRY)
    store.finish_attempt(rejected, Outcome.REJECTED, "male connector: fit the male MT cassette", 2.1)
    open1 = store.begin_attempt(3.0, Mode.WET)
    open2 = store.begin_attempt(4.0, Mode.DRY)

    assert store.close_open_attempts(50.0) == [open1, open2]
    recs = {r.id: r for r in store.attempts()}
    assert recs[done].outcome == "cleaned" and recs[done].ended_at == 1.5
    assert recs[rejected].outcome == "rejected" and recs[rejected].reason.startswith("male connector")
    for a in (open1, open2):
        assert recs[a].outcome == "interrupted"
        assert recs[a].ended_at == 50.0
        assert recs[a].reason
    audit = [r for r in store.audit_log() if r["kind"] == "recovery"]
    assert len(audit) == 1
    assert audit[0]["action"] == "interrupted" and audit[0]["t"] == 50.0
    assert json.loads(audit[0]["detail"]) == {"attempts": [open1, open2]}

    audit_before = table_rows(db_path, "audit")
    attempts_before = table_rows(db_path, "attempts")
    assert store.close_open_attempts(60.0) == []
    assert table_rows(db_path, "audit") == audit_before
    assert table_rows(db_path, "attempts") == attempts_before


def test_close_open_attempts_on_a_clean_database_writes_nothing(store, db_path):
    assert store.close_open_attempts(1.0) == []
    assert table_rows(db_path, "audit") == []


def test_finish_attempt_never_overwrites_an_outcome(store, db_path):
    a = store.begin_attempt(1.0, Mode.DRY)
    store.finish_attempt(a, Outcome.CLEANED, "", 2.0)
    store.finish_attempt(a, Outcome.FAILED, "swipe too fast", 3.0)
    store.finish_attempt(a, Outcome.INTERRUPTED, "x", 4.0)
    [rec] = store.attempts()
    assert (rec.outcome, rec.reason, rec.ended_at) == ("cleaned", "", 2.0)

    b = store.begin_attempt(5.0, Mode.DRY)
    assert store.close_open_attempts(6.0) == [b]
    store.finish_attempt(b, Outcome.CLEANED, "", 7.0)  # a late result after recovery
    rec = {r.id: r for r in store.attempts()}[b]
    assert (rec.outcome, rec.ended_at) == ("interrupted", 6.0)

    db = raw(db_path)
    try:
        assert db.execute("SELECT count(*) FROM attempts").fetchone()[0] == 2  # one row each, no duplicates
    finally:
        db.close()
    assert store.summary() == {"cleaned": 1, "interrupted": 1}


def test_finish_attempt_records_the_measurements_with_the_outcome(store):
    c = store.new_cassette(STD, 30, 1.0)
    a = store.begin_attempt(1.0, Mode.WET)
    store.reserve_positions(c, 3, 1.1, attempt_id=a, gender="female")
    [rec] = store.attempts()
    assert (rec.gender, rec.cassette_id, rec.outcome) == ("female", c.id, None)
    store.finish_attempt(a, Outcome.CLEANED, "", 2.0, swipe_start_s=0.5, pass_s=0.6)  # gender kept
    [rec] = store.attempts()
    assert (rec.gender, rec.swipe_start_s, rec.pass_s, rec.outcome, rec.ended_at) == (
        "female",
        0.5,
        0.6,
        "cleaned",
        2.0,
    )
    # a later finish cannot rewrite the measurements either
    store.finish_attempt(a, Outcome.FAILED, "swipe too slow", 3.0, gender="male", swipe_start_s=9.0, pass_s=9.0)
    [rec] = store.attempts()
    assert (rec.gender, rec.swipe_start_s, rec.pass_s, rec.outcome, rec.reason) == ("female", 0.5, 0.6, "cleaned", "")

    b = store.begin_attempt(4.0, Mode.DRY)
    store.finish_attempt(b, Outcome.REJECTED, "one guide pin sensed: check guide pins / re-seat", 4.2, gender="damaged")
    rec = {r.id: r for r in store.attempts()}[b]
    assert (rec.gender, rec.cassette_id, rec.positions, rec.swipe_start_s) == ("damaged", None, 0, None)


def test_attempts_filters_and_ordering(store):
    c = store.new_cassette(STD, 100, 0.0)
    plan = [
        (10.0, Outcome.CLEANED),
        (20.0, Outcome.FAILED),
        (30.0, Outcome.CLEANED),
        (40.0, Outcome.REJECTED),
        (50.0, None),
    ]
    ids = []
    for t, outcome in plan:
        a = store.begin_attempt(t, Mode.DRY)
        ids.append(a)
        if outcome is not Outcome.REJECTED:
            store.reserve_positions(c, 3, t, attempt_id=a)
        if outcome is not None:
            store.finish_attempt(a, outcome, "" if outcome is Outcome.CLEANED else "why, exactly", t + 1)

    assert [r.id for r in store.attempts()] == ids[::-1]
    assert [r.id for r in store.attempts(newest_first=False)] == ids
    assert [r.id for r in store.attempts(limit=2)] == ids[:-3:-1]
    assert [r.id for r in store.attempts(since=20.0, newest_first=False)] == ids[1:]  # since is inclusive
    assert [r.id for r in store.attempts(until=30.0, newest_first=False)] == ids[:2]  # until is exclusive
    assert [r.id for r in store.attempts(since=20.0, until=40.0, newest_first=False)] == ids[1:3]
    assert [r.id for r in store.attempts(outcome="cleaned", newest_first=False)] == [ids[0], ids[2]]
    assert [r.id for r in store.attempts(outcome="cleaned", since=15.0)] == [ids[2]]
    assert store.attempts(outcome="interrupted") == []
    assert store.attempts(since=1000.0) == []

    recs = {r.id: r for r in store.attempts()}
    assert recs[ids[0]].first_position == 0 and recs[ids[0]].positions == 3
    assert recs[ids[2]].first_position == 6 and recs[ids[2]].cassette_type == "standard"
    assert recs[ids[3]].first_position is None and recs[ids[3]].positions == 0 and recs[ids[3]].cassette_id is None
    assert recs[ids[1]].reason == "why, exactly"
    assert store.summary() == {"cleaned": 2, "failed": 1, "rejected": 1, "open": 1}


# ---------------------------------------------------------------------------- cassettes


def test_new_cassette_retires_only_the_previous_one_of_the_same_type(store, db_path):
    assert store.cassette(STD) is None and store.cassette(MALE) is None
    std1 = store.new_cassette(STD, 30, 1.0)
    male = store.new_cassette(MALE, 40, 2.0)
    store.reserve_positions(std1, 3, 3.0)
    store.reserve_positions(male, 3, 3.0)
    store.reserve_positions(male, 3, 3.5)

    std2 = store.new_cassette(STD, 45, 4.0, note="fresh box", source="console")
    assert std2.id not in (std1.id, male.id)
    assert store.cassette(STD) == type(std2)(std2.id, STD, 45, 0)
    assert store.cassette(MALE) == type(male)(male.id, MALE, 40, 6)  # the other type is untouched

    rows = {r["id"]: r for r in store.cassettes()}
    assert rows[std1.id]["retired_at"] == 4.0 and rows[std1.id]["used"] == 3  # history kept
    assert rows[male.id]["retired_at"] is None and rows[male.id]["used"] == 6
    assert rows[std2.id]["retired_at"] is None and rows[std2.id]["note"] == "fresh box"

    new_audit = [r for r in store.audit_log() if r["kind"] == "cassette" and r["action"] == "new"]
    assert len(new_audit) == 3
    latest = new_audit[0]
    assert latest["source"] == "console"
    assert json.loads(latest["detail"]) == {"id": std2.id, "type": "standard", "capacity": 45, "note": "fresh box"}

    # reserving on the retired cassette's state is impossible to confuse with the new one
    assert store.reserve_positions(store.cassette(STD), 3, 5.0) == 0


def test_cassette_fits_are_recorded_and_only_one_is_open(store, db_path):
    std = store.new_cassette(STD, 30, 1.0)
    store.cassette_removed(2.0)
    male = store.new_cassette(MALE, 30, 3.0)
    store.cassette_removed(4.0)
    store.cassette_fitted(std.id, 5.0)
    store.cassette_fitted(std.id, 6.0)  # fitted again without a removal seen (power cut): previous fit closed
    fits = table_rows(db_path, "cassette_fits")
    assert [(r[1], r[2], r[3]) for r in fits] == [
        (std.id, 1.0, 2.0),
        (male.id, 3.0, 4.0),
        (std.id, 5.0, 6.0),
        (std.id, 6.0, None),
    ]
    rows = {r["id"]: r for r in store.cassettes()}
    assert rows[std.id]["fits"] == 3 and rows[male.id]["fits"] == 1


# ---------------------------------------------------------------------------- totals (schema 3)


def recount(db: sqlite3.Connection) -> dict[str, object]:
    """Every total, counted again from the raw ledgers (what the totals must equal)."""
    return {
        "attempts": dict(db.execute("SELECT coalesce(outcome, 'open'), count(*) FROM attempts GROUP BY outcome")),
        "used": dict(
            db.execute(
                "SELECT c.id, (SELECT coalesce(sum(positions), 0) FROM ribbon r WHERE r.cassette_id = c.id) "
                "FROM cassettes c"
            )
        ),
        "drops": db.execute("SELECT count(*) FROM drops").fetchone()[0],
        "at_refill": dict(
            db.execute("SELECT f.id, (SELECT count(*) FROM drops d WHERE d.id <= f.last_drop_id) FROM refills f")
        ),
    }


def tallies(db: sqlite3.Connection) -> dict[str, object]:
    """The totals as stored."""
    return {
        "attempts": dict(db.execute("SELECT outcome, n FROM attempt_tally WHERE n != 0")),
        "used": dict(db.execute("SELECT id, used FROM cassettes")),
        "drops": db.execute("SELECT n FROM drop_tally").fetchone()[0],
        "at_refill": dict(db.execute("SELECT id, drop_total FROM refills")),
    }


def legacy_answers(db: sqlite3.Connection, fluid_capacity: int) -> dict[str, object]:
    """What summary(), cassette() and fluid() answered before schema 3, from the ledgers."""
    current = {}
    for ctype in CassetteType:
        row = db.execute(
            "SELECT c.id, c.capacity, (SELECT coalesce(sum(positions), 0) FROM ribbon r WHERE r.cassette_id = c.id) "
            "FROM cassettes c WHERE c.type = ? AND c.retired_at IS NULL ORDER BY c.id DESC LIMIT 1",
            (ctype.value,),
        ).fetchone()
        current[ctype] = None if row is None else tuple(row)
    last = db.execute("SELECT capacity, last_drop_id FROM refills ORDER BY id DESC LIMIT 1").fetchone()
    after, capacity = (last[1], last[0]) if last else (0, fluid_capacity)
    used = db.execute("SELECT count(*) FROM drops WHERE id > ?", (after,)).fetchone()[0]
    return {
        "summary": dict(db.execute("SELECT coalesce(outcome, 'open'), count(*) FROM attempts GROUP BY outcome")),
        "cassette": current,
        "fluid": (used, capacity),
        "count": db.execute("SELECT count(*) FROM cassettes").fetchone()[0],
    }


def store_answers(s: Store) -> dict[str, object]:
    return {
        "summary": s.summary(),
        "cassette": {t: None if (c := s.cassette(t)) is None else (c.id, c.capacity, c.used) for t in CassetteType},
        "fluid": s.fluid(),
        "count": s.cassette_count(),
    }


def assert_books_agree(s: Store) -> None:
    assert tallies(s._db) == recount(s._db)
    assert store_answers(s) == legacy_answers(s._db, s.fluid_capacity)
    by_type = [c for t in CassetteType if (c := s.cassette(t)) is not None]
    assert s.current_cassettes() == sorted(by_type, key=lambda c: c.id)
    rows = {r["id"]: r for r in s.cassettes()}
    assert {i: r["used"] for i, r in rows.items()} == recount(s._db)["used"]


def make_v2_database(path: Path) -> None:
    """A database as the release with schema 2 left it: its own SQL, rows as it wrote them
    (two cassettes of each type, one retired; attempts of every outcome and two left open;
    ribbon for some; drops with and without an attempt; two refills), not through Store."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("BEGIN")
    for v in (1, 2):
        for statement in MIGRATIONS[v].split(";"):  # what the schema-2 release ran
            if statement.strip():
                db.execute(statement)
    db.execute("PRAGMA user_version = 2")
    db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    db.executemany(
        "INSERT INTO cassettes(id, type, capacity, declared_at, retired_at, note) VALUES (?, ?, ?, ?, ?, '')",
        [(1, "standard", 30, 1.0, 50.0), (2, "male_mt", 40, 2.0, None), (3, "standard", 45, 50.0, None)],
    )
    db.executemany(
        "INSERT INTO cassette_fits(cassette_id, fitted_at, removed_at) VALUES (?, ?, ?)",
        [(1, 1.0, 2.0), (2, 2.0, 3.0), (1, 3.0, 50.0), (3, 50.0, None)],
    )
    plan = [  # (t, cassette, positions, drops, outcome)
        (10.0, 1, 3, 1, "cleaned"),
        (11.0, 1, 3, 0, "failed"),
        (12.0, None, 0, 0, "rejected"),
        (13.0, 2, 3, 1, "cleaned"),
        (14.0, 1, 3, 1, "interrupted"),
        (51.0, 3, 3, 0, "cleaned"),
        (52.0, 3, 3, 1, None),
        (53.0, 2, 2, 0, None),
    ]
    position = {1: 0, 2: 0, 3: 0}
    for t, cid, positions, drops, outcome in plan:
        a = db.execute(
            "INSERT INTO attempts(started_at, ended_at, mode, cassette_id, outcome, reason) "
            "VALUES (?, ?, 'wet', ?, ?, '')",
            (t, None if outcome is None else t + 1, cid, outcome),
        ).lastrowid
        if cid is not None:
            db.execute(
                "INSERT INTO ribbon(t, cassette_id, attempt_id, first_position, positions) VALUES (?, ?, ?, ?, ?)",
                (t, cid, a, position[cid], positions),
            )
            position[cid] += positions
        for _ in range(drops):
            db.execute("INSERT INTO drops(t, attempt_id) VALUES (?, ?)", (t, a))
        if t == 11.0:
            db.execute("INSERT INTO drops(t, source) VALUES (?, 'prime')", (t,))
            db.execute("INSERT INTO refills(t, capacity, last_drop_id, source) VALUES (?, 10, 2, 'console')", (t,))
        if t == 13.0:
            db.execute(
                "INSERT INTO ribbon(t, cassette_id, first_position, positions, source) VALUES (?, 2, 3, 1, 'jog')", (t,)
            )
            position[2] += 1
            db.execute("INSERT INTO refills(t, capacity, last_drop_id, source) VALUES (?, 12, 3, 'panel')", (t,))
    db.execute("INSERT INTO audit(t, kind, action) VALUES (60.0, 'fluid', 'refill')")
    db.execute("INSERT INTO settings(key, value, t) VALUES ('pin', 'hash', 1.0)")
    db.execute("COMMIT")
    db.close()


def test_a_schema_2_database_opens_with_totals_equal_to_its_records(db_path):
    make_v2_database(db_path)
    db = raw(db_path)
    before = legacy_answers(db, 2000)
    rows_before = {t: db.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall() for t in ("attempts", "ribbon", "drops")}
    db.close()
    assert before["summary"] == {"open": 2, "cleaned": 3, "failed": 1, "interrupted": 1, "rejected": 1}
    assert before["fluid"] == (2, 12)  # drops 4 and 5 after the refill at drop 3

    s = Store(db_path, fluid_capacity=2000)
    try:
        assert s.schema_version == SCHEMA_VERSION == 6
        assert tallies(s._db) == recount(s._db)
        assert tallies(s._db)["used"] == {1: 9, 2: 6, 3: 6}
        assert tallies(s._db)["at_refill"] == {1: 2, 2: 3}
        assert store_answers(s) == before  # the same answers as the release that wrote it
        assert s.current_cassettes() == [s.cassette(MALE), s.cassette(STD)]
        assert s.setting("pin") == "hash"
        for t, rows in rows_before.items():  # the records themselves are untouched (new columns after)
            assert [tuple(r)[: len(rows[0])] for r in s._db.execute(f"SELECT * FROM {t} ORDER BY 1")] == rows
        # and the station carries on from there
        assert s.close_open_attempts(70.0) == [7, 8]
        a = s.begin_attempt(71.0, Mode.WET)
        assert s.reserve_positions(s.cassette(STD), 3, 71.0, attempt_id=a) == 6
        s.record_drop(71.1, attempt_id=a)
        s.finish_attempt(a, Outcome.CLEANED, "", 72.0)
        assert s.fluid() == (3, 12)
        s.refill(73.0, source="console")
        assert s.fluid() == (0, 2000)
        assert_books_agree(s)
    finally:
        s.close()


def test_a_schema_2_database_read_only_is_not_upgraded_and_answers_the_same(db_path):
    make_v2_database(db_path)
    db = raw(db_path)
    before = legacy_answers(db, 2000)
    db.close()
    s = Store(db_path, fluid_capacity=2000, readonly=True)
    try:
        assert s.schema_version == 2
        assert store_answers(s) == before
        assert [c.id for c in s.current_cassettes()] == [2, 3]
        assert [(r["id"], r["used"], r["fits"]) for r in s.cassettes()] == [(1, 9, 2), (2, 6, 1), (3, 6, 1)]
    finally:
        s.close()
    db = raw(db_path)
    try:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 2
    finally:
        db.close()


def test_migrations_run_in_one_transaction_each_triggers_included():
    s = Store(":memory:")
    try:
        triggers = {r[0] for r in s._db.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")}
        assert {"attempt_tally_insert", "attempt_tally_update", "ribbon_used_insert", "drop_tally_insert"} <= triggers
    finally:
        s.close()


OPS = st.lists(
    st.tuples(
        st.sampled_from(
            [
                "new_std",
                "new_male",
                "begin",
                "begin",
                "reserve",
                "reserve",
                "jog",
                "drop",
                "drop",
                "prime",
                "finish",
                "finish",
                "mode",
                "refill",
                "close_open",
                "fit",
                "remove",
                "audit",
            ]
        ),
        st.integers(0, 5),
    ),
    max_size=60,
)


@given(ops=OPS)
def test_totals_equal_a_recount_after_any_sequence_of_operations(ops):
    s = Store(":memory:", fluid_capacity=7)
    opened: list[int] = []
    try:
        for i, (op, k) in enumerate(ops):
            t = float(i)
            ctype = STD if k % 2 == 0 else MALE
            cassette = s.cassette(ctype)
            if op in ("new_std", "new_male"):
                s.new_cassette(STD if op == "new_std" else MALE, 3 + 2 * k, t)
            elif op == "begin":
                opened.append(s.begin_attempt(t, Mode.WET if k % 2 else Mode.DRY))
            elif op in ("reserve", "jog") and cassette is not None:
                attempt = opened[-1] if op == "reserve" and opened else None
                try:
                    s.reserve_positions(cassette, 1 + k % 3, t, attempt_id=attempt, source=op)
                except StoreError:
                    assert cassette.used + 1 + k % 3 > cassette.capacity
            elif op in ("drop", "prime"):
                s.record_drop(t, attempt_id=opened[-1] if op == "drop" and opened else None, source=op)
            elif op == "finish" and opened:
                s.finish_attempt(opened[k % len(opened)], list(Outcome)[k % len(Outcome)], "", t)
            elif op == "mode" and opened:
                s.attempt_mode(opened[-1], Mode.DRY)
            elif op == "refill":
                s.refill(t, source="console")
            elif op == "close_open":
                s.close_open_attempts(t)
            elif op == "fit" and cassette is not None:
                s.cassette_fitted(cassette.id, t)
            elif op == "remove":
                s.cassette_removed(t)
            elif op == "audit":
                s.audit("maintenance", "x", t)
            if i % 7 == 0:
                assert_books_agree(s)
        assert_books_agree(s)
    finally:
        s.close()


def test_totals_survive_reopening_and_equal_the_records_on_disk(db_path):
    s = Store(db_path, fluid_capacity=5)
    c = s.new_cassette(STD, 30, 1.0)
    for i in range(4):
        a = s.begin_attempt(2.0 + i, Mode.WET)
        s.reserve_positions(c, 3, 2.0 + i, attempt_id=a)
        s.record_drop(2.0 + i, attempt_id=a)
        if i < 3:
            s.finish_attempt(a, Outcome.CLEANED if i else Outcome.FAILED, "", 2.5 + i)
    s.refill(9.0, source="panel")
    s.record_drop(9.5, source="prime")
    s.close()
    s = Store(db_path, fluid_capacity=5)
    try:
        assert s.summary() == {"open": 1, "cleaned": 2, "failed": 1}
        assert s.fluid() == (1, 5)
        assert s.cassette(STD).used == 12
        assert s.cassette_count() == 1
        assert_books_agree(s)
    finally:
        s.close()


# ---------------------------------------------------------------------------- the loop never stalls


def vm_steps(s: Store, call) -> int:
    """SQLite virtual-machine instructions a call executes: a measure of work that does not
    depend on the machine's speed or load (unlike a timing)."""
    steps = 0

    def count() -> int:
        nonlocal steps
        steps += 1
        return 0

    s._db.set_progress_handler(count, 1)
    try:
        call()
    finally:
        s._db.set_progress_handler(None, 1)
    return steps


def grow_history(s: Store, cassettes: int, attempts: int) -> None:
    """Years of use, added with SQL in one transaction (the triggers keep the totals)."""
    db = s._db
    db.execute("BEGIN")
    db.executemany(
        "INSERT INTO cassettes(type, capacity, declared_at, retired_at) VALUES (?, 1500, ?, ?)",
        [("standard" if i % 3 else "male_mt", float(i), float(i) + 1) for i in range(cassettes)],
    )
    first = db.execute("SELECT min(id) FROM cassettes").fetchone()[0]
    db.executemany(
        "INSERT INTO cassette_fits(cassette_id, fitted_at, removed_at) VALUES (?, ?, ?)",
        [(first + i % cassettes, float(i), float(i) + 0.5) for i in range(2 * cassettes)],
    )
    for i in range(attempts):
        outcome = ("cleaned", "failed", "rejected", "interrupted")[i % 4]
        a = db.execute(
            "INSERT INTO attempts(started_at, ended_at, mode, cassette_id, outcome) VALUES (?, ?, 'wet', ?, ?)",
            (float(i), float(i) + 1, first + i % cassettes, outcome),
        ).lastrowid
        db.execute(
            "INSERT INTO ribbon(t, cassette_id, attempt_id, first_position, positions) VALUES (?, ?, ?, 0, 3)",
            (float(i), first + i % cassettes, a),
        )
        db.execute("INSERT INTO drops(t, attempt_id) VALUES (?, ?)", (float(i), a))
    db.execute("COMMIT")


def test_what_the_loop_asks_costs_the_same_on_a_long_history(tmp_path):
    """Design section 4: every store call the controller makes during a clean, at start-up and
    for the console's STAT?/counters/log costs as many SQLite steps with 4,000 attempts and
    300 cassettes in the books as with a handful (it would grow with a count or a sum)."""

    def books(s: Store) -> dict[str, int]:
        cost: dict[str, int] = {}
        std = s.cassette(STD)
        assert std is not None
        cost["close_open_attempts"] = vm_steps(s, lambda: s.close_open_attempts(1e6))
        cost["cassette"] = vm_steps(s, lambda: s.cassette(STD))
        cost["current_cassettes"] = vm_steps(s, s.current_cassettes)
        cost["cassette_count"] = vm_steps(s, s.cassette_count)
        cost["fluid"] = vm_steps(s, s.fluid)
        cost["summary"] = vm_steps(s, s.summary)
        cost["log 10"] = vm_steps(s, lambda: s.attempts(limit=10))
        attempt = [0]
        cost["begin_attempt"] = vm_steps(s, lambda: attempt.__setitem__(0, s.begin_attempt(1e6, Mode.WET)))
        cost["reserve_positions"] = vm_steps(s, lambda: s.reserve_positions(std, 3, 1e6, attempt_id=attempt[0]))
        cost["record_drop"] = vm_steps(s, lambda: s.record_drop(1e6, attempt_id=attempt[0]))
        cost["finish_attempt"] = vm_steps(s, lambda: s.finish_attempt(attempt[0], Outcome.CLEANED, "", 1e6))
        cost["cassette_removed"] = vm_steps(s, lambda: s.cassette_removed(1e6))
        cost["cassette_fitted"] = vm_steps(s, lambda: s.cassette_fitted(std.id, 1e6))
        cost["refill"] = vm_steps(s, lambda: s.refill(1e6, source="console"))
        cost["new_cassette"] = vm_steps(s, lambda: s.new_cassette(MALE, 100, 1e6))
        return cost

    def fresh(name: str) -> Store:
        s = Store(tmp_path / name, fluid_capacity=2000)
        s.new_cassette(MALE, 1500, 0.0)
        return s

    small, big = fresh("small.db"), fresh("big.db")
    try:
        grow_history(small, 2, 10)
        grow_history(big, 300, 4000)
        for s in (small, big):
            s.new_cassette(STD, 1_000_000, 1e5)
            s.begin_attempt(1e5, Mode.DRY)  # one left open: close_open_attempts has work to do
            s.reserve_positions(s.cassette(STD), 3, 1e5)
        assert big.summary()["cleaned"] == 1000 and big.cassette_count() == 302
        cost_small, cost_big = books(small), books(big)
        assert cost_big == cost_small
        assert_books_agree(big)
    finally:
        small.close()
        big.close()


@pytest.mark.parametrize(
    "query",
    [
        "SELECT id FROM attempts WHERE outcome IS NULL ORDER BY id",
        "UPDATE attempts SET outcome = 'interrupted' WHERE outcome IS NULL",
        "UPDATE cassette_fits SET removed_at = 1 WHERE removed_at IS NULL",
        "UPDATE cassettes SET retired_at = 1 WHERE type = 'standard' AND retired_at IS NULL",
    ],
)
def test_the_rows_the_loop_looks_for_are_found_by_index(store, query):
    plan = " / ".join(r[3] for r in store._db.execute("EXPLAIN QUERY PLAN " + query))
    assert "USING INDEX" in plan, plan


# --- schema 4: traceability -------------------------------------------------------------------

RELEASE_3_DB = Path(__file__).parent / "data" / "station-schema3.db"


def test_a_database_made_by_the_schema_3_release_migrates_to_traceability(tmp_path):
    path = tmp_path / "station.db"
    shutil.copyfile(RELEASE_3_DB, path)
    db = raw(path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == 3
    before = legacy_answers(db, 2000)
    rows_before = [tuple(r) for r in db.execute("SELECT * FROM attempts ORDER BY id")]
    db.close()

    s = Store(path, fluid_capacity=2000)
    try:
        assert s.schema_version == SCHEMA_VERSION == 6  # through 4 (traceability), 5 (the outbox), 6 (inspection)
        assert store_answers(s) == before  # the same answers as the release that wrote it
        assert tallies(s._db) == recount(s._db)
        old = s.attempts(newest_first=False)
        assert [(r.id, r.outcome) for r in old] == [(row[0], row[8]) for row in rows_before]
        assert all((r.connector, r.cable, r.end, r.operator, r.cassette_label) == (None,) * 5 for r in old), (
            "nothing known about the old attempts: empty, not made up"
        )
        assert [tuple(r)[: len(rows_before[0])] for r in s._db.execute("SELECT * FROM attempts ORDER BY id")] == (
            rows_before
        )
        assert [c.label for c in s.current_cassettes()] == [None, None]
        # and the station carries on, its new attempts tied to what was scanned
        who = Identity(connector="CBL-0001-A", cable="CBL-0001", end="A", operator="OP-7")
        a = s.begin_attempt(1_790_000_100.0, Mode.DRY, who)
        s.reserve_positions(s.cassette(STD), 3, 1_790_000_100.0, attempt_id=a)
        s.finish_attempt(a, Outcome.CLEANED, "", 1_790_000_101.0)
        (rec,) = s.attempts(connector="CBL-0001-A")
        assert (rec.id, rec.cable, rec.end, rec.operator, rec.cassette_label) == (a, "CBL-0001", "A", "OP-7", None)
        assert [r.id for r in s.attempts(cable="CBL-0001")] == [a] and s.attempts(operator="OP-8") == []
        assert_books_agree(s)
    finally:
        s.close()


def test_a_schema_3_database_read_only_answers_without_traceability(tmp_path):
    path = tmp_path / "station.db"
    shutil.copyfile(RELEASE_3_DB, path)
    s = Store(path, readonly=True)
    try:
        assert s.schema_version == 3
        assert len(s.attempts()) == 7 and s.attempts(connector="CBL-0001-A") == []
        assert all(r.connector is None for r in s.attempts())
        assert [c.label for c in s.current_cassettes()] == [None, None]
    finally:
        s.close()


def test_a_labelled_cassette_set_aside_comes_back_with_its_own_count(db_path):
    s = Store(db_path)
    try:
        first = s.new_cassette(STD, 30, 1.0, label="CAS-1", source="scanner")
        s.reserve_positions(first, 6, 2.0)
        second = s.new_cassette(STD, 30, 3.0, label="CAS-2", source="scanner")
        assert s.cassette(STD) == second and second.label == "CAS-2"
        back = s.cassette_by_label("CAS-1")
        assert back is not None and back.used == 6
        s.resume_cassette(back, 4.0, source="scanner")
        assert s.cassette(STD) == back  # the current standard cassette again, its 6 positions used
        assert s.cassette_by_label("CAS-2") == second and s.cassette_by_label("CAS-9") is None
        with pytest.raises(StoreError):
            s.new_cassette(STD, 30, 5.0, label="CAS-2")  # a label names one cassette only
        assert s.cassette(STD) == back, "the refused declaration changed nothing"
        a = s.begin_attempt(6.0, Mode.DRY)
        s.reserve_positions(back, 3, 6.0, attempt_id=a)
        assert s.attempts()[0].cassette_label == "CAS-1"
        actions = [(r["action"], r["source"]) for r in s.audit_entries() if r["kind"] == "cassette"]
        assert actions == [("new", "scanner"), ("new", "scanner"), ("resumed", "scanner")]
        assert_books_agree(s)
    finally:
        s.close()


# --- schema 5: the fleet's outbox (delivered cursors) -----------------------------------------


def finish(s: Store, t: float, outcome: Outcome = Outcome.CLEANED) -> int:
    a = s.begin_attempt(t, Mode.DRY)
    s.finish_attempt(a, outcome, "", t + 1.0)
    return a


def test_a_schema_4_database_migrates_to_the_outbox_with_nothing_delivered(tmp_path, monkeypatch):
    path = tmp_path / "station.db"
    shutil.copyfile(RELEASE_3_DB, path)
    import station.store as store_module

    with monkeypatch.context() as m:  # the schema 4 release: Store as it was, migrating to 4 only
        m.setattr(store_module, "SCHEMA_VERSION", 4)
        s4 = Store(path)
        extra = finish(s4, 1_790_000_100.0)
        before = s4.attempts(newest_first=False)
        s4.close()
    db = raw(path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == 4
    assert not db.execute("SELECT name FROM sqlite_master WHERE name = 'delivered'").fetchall()
    db.close()
    looked = Store(path, readonly=True)  # a read-only look at the schema 4 file: nothing delivered, not migrated
    assert Outbox(looked).delivered("attempts") == 0 and looked.schema_version == 4
    looked.close()

    s = Store(path)
    try:
        assert s.schema_version == SCHEMA_VERSION == 6
        assert s.attempts(newest_first=False) == before  # every answer kept
        assert (Outbox(s).delivered("attempts"), Outbox(s).delivered("events")) == (0, 0)
        backlog = Outbox(s).finished_attempts_after(0, 100)
        assert backlog == before and backlog[-1].id == extra  # the whole history is the backlog, oldest first
        assert [r["id"] for r in Outbox(s).audit_after(0, 1000)] == [r["id"] for r in s.audit_entries()]
    finally:
        s.close()


def test_the_delivered_cursor_only_moves_forward_and_survives_a_restart(db_path):
    s = Store(db_path)
    try:
        ids = [finish(s, float(t)) for t in range(5)]
        assert [r.id for r in Outbox(s).finished_attempts_after(0, 2)] == ids[:2]  # at most `limit`, in id order
        assert Outbox(s).advance_delivered("attempts", ids[2]) == ids[2]
        assert Outbox(s).advance_delivered("attempts", ids[0]) == ids[2], "a late acknowledgement never moves it back"
        assert Outbox(s).delivered("attempts") == ids[2] and Outbox(s).delivered("events") == 0  # one cursor per stream
        assert [r.id for r in Outbox(s).finished_attempts_after(Outbox(s).delivered("attempts"), 100)] == ids[3:]
        with pytest.raises(ValueError, match="unknown delivery stream 'attempt'"):
            Outbox(s).advance_delivered("attempt", 1)
    finally:
        s.close()
    assert table_rows_by_key(db_path) == [("attempts", ids[2])]  # on disk
    again = Store(db_path)
    try:
        assert Outbox(again).delivered("attempts") == ids[2]
    finally:
        again.close()


def table_rows_by_key(path: Path) -> list[tuple]:
    db = raw(path)
    try:
        return db.execute("SELECT stream, last_id FROM delivered ORDER BY stream").fetchall()
    finally:
        db.close()


def test_delivery_never_skips_an_attempt_still_open(db_path):
    s = Store(db_path)
    try:
        done = finish(s, 1.0)
        open_one = s.begin_attempt(2.0, Mode.DRY)  # cleaning now
        assert [r.id for r in Outbox(s).finished_attempts_after(0, 10)] == [done]
        # after a power cut the open one is closed (interrupted) and the next attempts follow it
        s.close_open_attempts(3.0)
        later = finish(s, 4.0, Outcome.FAILED)
        got = Outbox(s).finished_attempts_after(done, 10)
        assert [(r.id, r.outcome) for r in got] == [(open_one, "interrupted"), (later, "failed")]
    finally:
        s.close()


def test_a_reader_on_its_own_connection_sees_the_writers_records_and_cursor(db_path):
    writer = Store(db_path)
    reader = Store(db_path, readonly=True)  # the fleet publisher's own connection
    try:
        a = finish(writer, 1.0)
        assert [r.id for r in Outbox(reader).finished_attempts_after(Outbox(reader).delivered("attempts"), 10)] == [a]
        cursor = Store(db_path)  # the publisher's separate writable connection, for the cursor only
        try:
            Outbox(cursor).advance_delivered("attempts", a)
        finally:
            cursor.close()
        assert Outbox(reader).delivered("attempts") == a and Outbox(reader).finished_attempts_after(a, 10) == []
    finally:
        reader.close()
        writer.close()


# --- schema 6: inspection ----------------------------------------------------------------------


def test_a_schema_3_release_database_migrates_to_inspection_with_no_verdicts(tmp_path):
    from station.store import InspectionBook

    path = tmp_path / "station.db"
    shutil.copyfile(RELEASE_3_DB, path)
    s = Store(path)
    try:
        assert s.schema_version == SCHEMA_VERSION == 6
        book = InspectionBook(s)
        assert book.verdicts(attempt_id=1) == [] and book.open_quarantine() == [] and not book.quarantined("X")
        who = Identity(connector="CBL-1-A", cable="CBL-1", end="A")
        a = s.begin_attempt(1_790_000_100.0, Mode.DRY, who)
        s.finish_attempt(a, Outcome.CLEANED, "", 1_790_000_101.0)
        assert book.loop_modes("CBL-1-A") == ["dry"]
        book.record(1_790_000_102.0, "fail", attempt_id=a, connector="CBL-1-A", detail="", source="gpio")
        book.quarantine(1_790_000_103.0, connector="CBL-1-A", attempt_id=a, reason="1 cleans and no PASS")
        assert book.quarantined("CBL-1-A") and [r["connector"] for r in book.open_quarantine()] == ["CBL-1-A"]
        assert book.release("CBL-1-A", 1_790_000_104.0, source="console:x") and not book.quarantined("CBL-1-A")
        assert not book.release("CBL-1-A", 1_790_000_105.0, source="console:x")  # nothing left to release
        assert book.loop_modes("CBL-1-A") == []  # the loop begins again at the release
        kinds = [(r["kind"], r["action"]) for r in s.audit_entries() if r["kind"] == "inspection"]
        assert kinds == [("inspection", "fail"), ("inspection", "quarantined"), ("inspection", "released")]
    finally:
        s.close()
