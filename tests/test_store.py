"""The station's durable books (station.store.Store), used directly on real SQLite files.

docs/design.md section 3 rules 1, 6 and 8 and section 6: ribbon reserved durably and never past
the end of a cassette, counters derived from the ledgers, exactly one outcome per attempt,
an audit row for every maintenance action, and a database that refuses clearly (StoreError
with a hint) when it is newer, foreign, corrupt, read-only or full.
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

from station.domain import CassetteType, Mode, Outcome
from station.store import APPLICATION_ID, SCHEMA_VERSION, Store, StoreError

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
        for i in range(50):
            s.audit("fill", "more", 1.0, detail="y" * 500)
    # ... and a multi-statement write rolls back completely when it does not fit.
    for i in range(200):
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

    def step(name: str, fn):
        try:
            return True, fn()
        except StoreError as exc:
            assert "full" in str(exc), exc
            failed_steps[name] = failed_steps.get(name, 0) + 1
            return False, None

    for i in range(400):
        t = 10.0 + i
        if i % 40 == 0:  # a little space is freed now and then: the disk hovers at full
            limit = s._db.execute("PRAGMA max_page_count").fetchone()[0]
            s._db.execute(f"PRAGMA max_page_count = {limit + 1}")
        ok, a = step("begin", lambda: s.begin_attempt(t, Mode.WET if i % 2 else Mode.DRY))
        if not ok:
            continue
        begun.append(a)
        ok, first = step("reserve", lambda: s.reserve_positions(cassette, 3, t, attempt_id=a, gender="female"))
        if ok:
            reserved[a] = first
            if i % 2:
                ok, _ = step("drop", lambda: s.record_drop(t, attempt_id=a))
                if ok:
                    drops.append(a)
        outcome = Outcome.CLEANED if a in reserved else Outcome.FAILED
        ok, _ = step(
            "finish",
            lambda: s.finish_attempt(
                a, outcome, "" if a in reserved else "x" * (i % 97), t + 0.5, swipe_start_s=0.5, pass_s=0.6
            ),
        )
        if ok:
            outcomes[a] = outcome.value
        step("audit", lambda: s.audit("clean", "done", t, detail="p" * (i * 7 % 300)))

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
