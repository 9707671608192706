"""Durable books: cassettes, ribbon, fluid, clean attempts, faults and maintenance audit.

SQLite in WAL mode with `synchronous=FULL`: a call returns only once its transaction is on
disk. The counters are totals kept by SQLite triggers in the same transaction as the records
they count (schema 3): attempts by outcome, ribbon used per cassette (the sum of its ribbon
ledger), drops ever dispensed and, on each refill, the total at that refill (fluid used is the
difference). So the counters equal what the records say by construction, also after a power
cut at any instant, and reading them costs the same on a station ten years old as on a new one
(design section 4: the loop never stalls). Every read the controller makes is a primary-key or
index lookup; only the exports (`cassettes()`, `attempts()` without a limit) grow with history,
and they run in the CLI or off the loop thread.

Ribbon positions are reserved *before* the wheel moves: a power cut can only make the
station believe it used more ribbon than it did, never less.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .domain import CassetteType, Mode, Outcome

SCHEMA_VERSION = 6
APPLICATION_ID = 0x4D504F31  # "MPO1": marks the file as a station database


class StoreError(RuntimeError):
    """The database cannot be used (read-only, full, corrupt or not ours)."""


# One entry per schema version; a database is brought up to date one step at a time.
MIGRATIONS: dict[int, str] = {
    1: """
    CREATE TABLE cassettes (
        id INTEGER PRIMARY KEY,
        type TEXT NOT NULL CHECK (type IN ('standard', 'male_mt')),
        capacity INTEGER NOT NULL CHECK (capacity > 0),
        declared_at REAL NOT NULL,
        retired_at REAL,
        note TEXT NOT NULL DEFAULT ''
    );
    CREATE TABLE cassette_fits (
        id INTEGER PRIMARY KEY,
        cassette_id INTEGER NOT NULL REFERENCES cassettes(id),
        fitted_at REAL NOT NULL,
        removed_at REAL
    );
    CREATE TABLE attempts (
        id INTEGER PRIMARY KEY,
        started_at REAL NOT NULL,
        ended_at REAL,
        mode TEXT NOT NULL,
        gender TEXT,
        cassette_id INTEGER REFERENCES cassettes(id),
        swipe_start_s REAL,
        pass_s REAL,
        outcome TEXT CHECK (outcome IN ('cleaned', 'failed', 'rejected', 'interrupted')),
        reason TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX attempts_by_time ON attempts(started_at);
    CREATE TABLE ribbon (
        id INTEGER PRIMARY KEY,
        t REAL NOT NULL,
        cassette_id INTEGER NOT NULL REFERENCES cassettes(id),
        attempt_id INTEGER REFERENCES attempts(id),
        first_position INTEGER NOT NULL,
        positions INTEGER NOT NULL CHECK (positions > 0),
        source TEXT NOT NULL DEFAULT 'clean'
    );
    CREATE INDEX ribbon_by_cassette ON ribbon(cassette_id);
    CREATE INDEX ribbon_by_attempt ON ribbon(attempt_id);
    CREATE TABLE drops (
        id INTEGER PRIMARY KEY,
        t REAL NOT NULL,
        attempt_id INTEGER REFERENCES attempts(id),
        source TEXT NOT NULL DEFAULT 'clean'
    );
    CREATE INDEX drops_by_attempt ON drops(attempt_id);
    CREATE TABLE refills (
        id INTEGER PRIMARY KEY,
        t REAL NOT NULL,
        capacity INTEGER NOT NULL,
        last_drop_id INTEGER NOT NULL,
        source TEXT NOT NULL
    );
    CREATE TABLE audit (
        id INTEGER PRIMARY KEY,
        t REAL NOT NULL,
        kind TEXT NOT NULL,
        action TEXT NOT NULL,
        detail TEXT NOT NULL DEFAULT '',
        source TEXT NOT NULL DEFAULT 'station'
    );
    """,
    # 2: the console's settings: the maintenance PIN hash and configuration changes
    2: """
    CREATE TABLE settings (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL,
        t REAL NOT NULL
    );
    """,
    # 3: totals kept by triggers in the transaction of the records they count (the loop never
    # stalls: nothing the controller reads grows with history), backfilled from the records;
    # indexes for the rows the controller looks for (open attempts, current cassettes, open fits)
    3: """
    CREATE TABLE attempt_tally (
        outcome TEXT PRIMARY KEY,
        n INTEGER NOT NULL
    ) WITHOUT ROWID;
    INSERT INTO attempt_tally(outcome, n)
        SELECT coalesce(outcome, 'open'), count(*) FROM attempts GROUP BY outcome;
    CREATE TRIGGER attempt_tally_insert AFTER INSERT ON attempts BEGIN
        INSERT INTO attempt_tally(outcome, n) VALUES (coalesce(NEW.outcome, 'open'), 1)
            ON CONFLICT(outcome) DO UPDATE SET n = n + 1;
    END;
    CREATE TRIGGER attempt_tally_update AFTER UPDATE OF outcome ON attempts
    WHEN OLD.outcome IS NOT NEW.outcome BEGIN
        UPDATE attempt_tally SET n = n - 1 WHERE outcome = coalesce(OLD.outcome, 'open');
        INSERT INTO attempt_tally(outcome, n) VALUES (coalesce(NEW.outcome, 'open'), 1)
            ON CONFLICT(outcome) DO UPDATE SET n = n + 1;
    END;
    CREATE TRIGGER attempt_tally_delete AFTER DELETE ON attempts BEGIN
        UPDATE attempt_tally SET n = n - 1 WHERE outcome = coalesce(OLD.outcome, 'open');
    END;

    ALTER TABLE cassettes ADD COLUMN used INTEGER NOT NULL DEFAULT 0;
    UPDATE cassettes SET used = (SELECT coalesce(sum(positions), 0) FROM ribbon r WHERE r.cassette_id = cassettes.id);
    CREATE TRIGGER ribbon_used_insert AFTER INSERT ON ribbon BEGIN
        UPDATE cassettes SET used = used + NEW.positions WHERE id = NEW.cassette_id;
    END;
    CREATE TRIGGER ribbon_used_update AFTER UPDATE OF cassette_id, positions ON ribbon BEGIN
        UPDATE cassettes SET used = used - OLD.positions WHERE id = OLD.cassette_id;
        UPDATE cassettes SET used = used + NEW.positions WHERE id = NEW.cassette_id;
    END;
    CREATE TRIGGER ribbon_used_delete AFTER DELETE ON ribbon BEGIN
        UPDATE cassettes SET used = used - OLD.positions WHERE id = OLD.cassette_id;
    END;

    CREATE TABLE drop_tally (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        n INTEGER NOT NULL
    );
    INSERT INTO drop_tally(id, n) VALUES (1, (SELECT count(*) FROM drops));
    CREATE TRIGGER drop_tally_insert AFTER INSERT ON drops BEGIN
        UPDATE drop_tally SET n = n + 1 WHERE id = 1;
    END;
    CREATE TRIGGER drop_tally_delete AFTER DELETE ON drops BEGIN
        UPDATE drop_tally SET n = n - 1 WHERE id = 1;
    END;
    ALTER TABLE refills ADD COLUMN drop_total INTEGER NOT NULL DEFAULT 0;
    UPDATE refills SET drop_total = k.total
    FROM (SELECT id, sum(n) OVER (ORDER BY id) AS total
          FROM (SELECT id, (SELECT count(*) FROM drops d WHERE d.id > after_id AND d.id <= last_drop_id) AS n
                FROM (SELECT id, last_drop_id, coalesce(lag(last_drop_id) OVER (ORDER BY id), 0) AS after_id
                      FROM refills))) AS k
    WHERE k.id = refills.id;

    CREATE INDEX attempts_open ON attempts(id) WHERE outcome IS NULL;
    CREATE INDEX cassettes_current ON cassettes(type, id) WHERE retired_at IS NULL;
    CREATE INDEX cassette_fits_open ON cassette_fits(id) WHERE removed_at IS NULL;
    CREATE INDEX cassette_fits_by_cassette ON cassette_fits(cassette_id);
    """,
    # 4: traceability (docs/design.md section 9): each attempt's connector (code, cable, end),
    # operator and cassette label, when known; a cassette's label identifies it among others
    # of its type. Rows written before have none (NULL: not known).
    4: """
    ALTER TABLE attempts ADD COLUMN connector TEXT;
    ALTER TABLE attempts ADD COLUMN cable TEXT;
    ALTER TABLE attempts ADD COLUMN cable_end TEXT;
    ALTER TABLE attempts ADD COLUMN operator TEXT;
    ALTER TABLE attempts ADD COLUMN cassette_label TEXT;
    CREATE INDEX attempts_by_connector ON attempts(connector) WHERE connector IS NOT NULL;
    CREATE INDEX attempts_by_cable ON attempts(cable) WHERE cable IS NOT NULL;
    CREATE INDEX attempts_by_operator ON attempts(operator) WHERE operator IS NOT NULL;
    ALTER TABLE cassettes ADD COLUMN label TEXT;
    CREATE UNIQUE INDEX cassettes_by_label ON cassettes(label) WHERE label IS NOT NULL;
    """,
    # 5: the fleet's outbox (docs/design.md section 11): per stream, the last row the broker
    # acknowledged ("attempts": finished attempts by id, "events": the audit by id). The
    # records themselves are the outbox; this is only how far delivery got.
    5: """
    CREATE TABLE delivered (
        stream TEXT PRIMARY KEY,
        last_id INTEGER NOT NULL CHECK (last_id >= 0)
    );
    """,
    # 6: inspection (docs/design.md section 10): every verdict received (or none in time), what
    # it applied to and where it came from; connectors quarantined until a person releases them
    6: """
    CREATE TABLE inspections (
        id INTEGER PRIMARY KEY,
        t REAL NOT NULL,
        attempt_id INTEGER REFERENCES attempts(id),
        connector TEXT,
        verdict TEXT NOT NULL CHECK (verdict IN ('pass', 'fail', 'no_verdict')),
        detail TEXT NOT NULL DEFAULT '',
        source TEXT NOT NULL
    );
    CREATE INDEX inspections_by_attempt ON inspections(attempt_id);
    CREATE INDEX inspections_by_connector ON inspections(connector) WHERE connector IS NOT NULL;
    CREATE TABLE quarantine (
        id INTEGER PRIMARY KEY,
        t REAL NOT NULL,
        connector TEXT,
        attempt_id INTEGER REFERENCES attempts(id),
        reason TEXT NOT NULL,
        released_at REAL,
        released_by TEXT
    );
    CREATE INDEX quarantine_open ON quarantine(connector) WHERE released_at IS NULL;
    """,
}

DELIVERY_STREAMS = ("attempts", "events")


@dataclass(frozen=True)
class CassetteState:
    id: int
    type: CassetteType
    capacity: int
    used: int
    label: str | None = None

    @property
    def remaining(self) -> int:
        return max(0, self.capacity - self.used)


@dataclass(frozen=True)
class AttemptRecord:
    """One clean attempt as exported for QA."""

    id: int
    started_at: float
    ended_at: float | None
    mode: str
    gender: str | None
    cassette_id: int | None
    cassette_type: str | None
    first_position: int | None
    positions: int
    drops: int
    swipe_start_s: float | None
    pass_s: float | None
    outcome: str | None
    reason: str
    connector: str | None = None
    cable: str | None = None
    end: str | None = None
    operator: str | None = None
    cassette_label: str | None = None


@dataclass(frozen=True)
class Identity:
    """Who and what an attempt is tied to, when known (docs/design.md section 9)."""

    connector: str | None = None
    cable: str | None = None
    end: str | None = None
    operator: str | None = None


_ATTEMPT_COLUMNS = """
SELECT a.id, a.started_at, a.ended_at, a.mode, a.gender, a.cassette_id, c.type AS cassette_type,
       (SELECT min(first_position) FROM ribbon r WHERE r.attempt_id = a.id) AS first_position,
       (SELECT coalesce(sum(positions), 0) FROM ribbon r WHERE r.attempt_id = a.id) AS positions,
       (SELECT count(*) FROM drops d WHERE d.attempt_id = a.id) AS drops,
       a.swipe_start_s, a.pass_s, a.outcome, a.reason"""
_TRACE_COLUMNS = """,
       a.connector, a.cable, a.cable_end AS "end", a.operator, a.cassette_label"""
_ATTEMPT_FROM = """
FROM attempts a LEFT JOIN cassettes c ON c.id = a.cassette_id
"""
ATTEMPT_QUERY = _ATTEMPT_COLUMNS + _TRACE_COLUMNS + _ATTEMPT_FROM
ATTEMPT_QUERY_V3 = _ATTEMPT_COLUMNS + _ATTEMPT_FROM  # a read-only look at an older database


# ribbon used by cassette c, counted from the ledger (databases without the schema 3 totals)
_USED_FROM_LEDGER = "(SELECT coalesce(sum(positions), 0) FROM ribbon r WHERE r.cassette_id = c.id)"


def _cassette_state(row: sqlite3.Row) -> CassetteState:
    return CassetteState(
        int(row["id"]), CassetteType(row["type"]), int(row["capacity"]), int(row["used"]), row["label"]
    )


class Store:
    """The station's database. One connection, used from the controller thread only."""

    def __init__(self, path: str | Path, *, fluid_capacity: int = 2000, readonly: bool = False) -> None:
        self.path = str(path)
        self.fluid_capacity = fluid_capacity
        self.durable = self.path != ":memory:"  # False: a stand-in while the real database is unusable
        try:
            if readonly:
                self._db = self._open_readonly()
            else:
                self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self._db.row_factory = sqlite3.Row
            self._check_ours(readonly)
            if not readonly:
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=FULL")
                self._db.execute("PRAGMA foreign_keys=ON")
                self._migrate()
            # A read-only look at a database of an older release (a backup, another station's
            # file) cannot add the totals: it counts the ledgers instead (the CLI, not the loop).
            self._tallied = self.schema_version >= 3
        except sqlite3.DatabaseError as exc:
            raise StoreError(_explain(self.path, exc)) from exc
        self._used = "c.used" if self._tallied else _USED_FROM_LEDGER
        self._label = "c.label" if self.schema_version >= 4 else "NULL AS label"

    # -- plumbing --------------------------------------------------------------------------
    def _open_readonly(self) -> sqlite3.Connection:
        """Read without writing anything. A WAL database normally needs its -shm file created
        beside it; in a directory we may not write (QA reading the Pi's state as another
        user, write-protected media) and with no -wal file (no station writing), SQLite's
        immutable mode reads the file as it is."""
        uri = Path(self.path).resolve().as_uri()
        try:
            db = sqlite3.connect(uri + "?mode=ro", uri=True, isolation_level=None, check_same_thread=False)
            db.execute("SELECT count(*) FROM sqlite_master").fetchone()
            return db
        except sqlite3.OperationalError:
            if Path(self.path + "-wal").exists() or not Path(self.path).exists():
                raise
        return sqlite3.connect(uri + "?mode=ro&immutable=1", uri=True, isolation_level=None, check_same_thread=False)

    def _check_ours(self, readonly: bool) -> None:
        app_id = self._db.execute("PRAGMA application_id").fetchone()[0]
        tables = self._db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
        if app_id != APPLICATION_ID and (app_id != 0 or tables or readonly):
            raise StoreError(
                f"{self.path} is not a station database (another program's file?); "
                "move it away or choose another --state-dir"
            )

    def _migrate(self) -> None:
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{self.path} has schema version {version}, newer than this firmware understands "
                f"({SCHEMA_VERSION}); install the newer firmware"
            )
        for v in range(version + 1, SCHEMA_VERSION + 1):
            with self._tx() as db:
                for statement in _statements(MIGRATIONS[v]):
                    db.execute(statement)
                db.execute(f"PRAGMA user_version = {v}")
                db.execute(f"PRAGMA application_id = {APPLICATION_ID}")

    @property
    def schema_version(self) -> int:
        return int(self._db.execute("PRAGMA user_version").fetchone()[0])

    def _tx(self) -> _Transaction:
        return _Transaction(self)

    def _write(self, sql: str, args: tuple[Any, ...] = ()) -> int:
        with self._tx() as db:
            return db.execute(sql, args).lastrowid or 0

    def close(self) -> None:
        try:
            self._db.close()
        except sqlite3.Error:
            pass

    # -- cassettes -------------------------------------------------------------------------
    def cassette(self, ctype: CassetteType) -> CassetteState | None:
        """The current (not retired) cassette of this type, if one was ever declared."""
        row = self._db.execute(
            f"SELECT c.id, c.type, c.capacity, {self._used} AS used, {self._label} FROM cassettes c "
            "WHERE c.type = ? AND c.retired_at IS NULL ORDER BY c.id DESC LIMIT 1",
            (ctype.value,),
        ).fetchone()
        return _cassette_state(row) if row else None

    def current_cassettes(self) -> list[CassetteState]:
        """The cassettes in use (not retired): at most one per type, oldest first."""
        rows = self._db.execute(
            f"SELECT c.id, c.type, c.capacity, {self._used} AS used, {self._label} FROM cassettes c "
            "WHERE c.retired_at IS NULL ORDER BY c.type, c.id"  # the partial index's order: no full scan
        ).fetchall()
        return sorted((_cassette_state(r) for r in rows), key=lambda c: c.id)

    def cassette_count(self) -> int:
        """How many cassettes were ever declared (ids are never reused: nothing deletes one)."""
        return int(self._db.execute("SELECT coalesce(max(id), 0) FROM cassettes").fetchone()[0])

    def new_cassette(
        self,
        ctype: CassetteType,
        capacity: int,
        t: float,
        *,
        note: str = "",
        source: str = "station",
        label: str | None = None,
    ) -> CassetteState:
        """Retire the current cassette of this type and start a fresh count for a new one
        (`label`: the code on a labelled cassette, never seen before)."""
        with self._tx() as db:
            db.execute("UPDATE cassette_fits SET removed_at = ? WHERE removed_at IS NULL", (t,))
            db.execute("UPDATE cassettes SET retired_at = ? WHERE type = ? AND retired_at IS NULL", (t, ctype.value))
            cid = db.execute(
                "INSERT INTO cassettes(type, capacity, declared_at, note, label) VALUES (?, ?, ?, ?, ?)",
                (ctype.value, capacity, t, note, label),
            ).lastrowid
            db.execute("INSERT INTO cassette_fits(cassette_id, fitted_at) VALUES (?, ?)", (cid, t))
            detail = {"id": cid, "type": ctype.value, "capacity": capacity, "note": note}
            if label is not None:
                detail["label"] = label
            db.execute(
                "INSERT INTO audit(t, kind, action, detail, source) VALUES (?, 'cassette', 'new', ?, ?)",
                (t, json.dumps(detail), source),
            )
        return CassetteState(int(cid), ctype, capacity, 0, label)  # type: ignore[arg-type]

    def cassette_by_label(self, label: str) -> CassetteState | None:
        """The cassette that carries this label, whether in use or set aside."""
        row = self._db.execute(
            f"SELECT c.id, c.type, c.capacity, {self._used} AS used, {self._label} FROM cassettes c WHERE c.label = ?",
            (label,),
        ).fetchone()
        return _cassette_state(row) if row else None

    def label_cassette(self, cassette: CassetteState, label: str, t: float, *, source: str) -> None:
        """The cassette counted so far gets its label (its count stays), audited."""
        with self._tx() as db:
            db.execute("UPDATE cassettes SET label = ? WHERE id = ? AND label IS NULL", (label, cassette.id))
            db.execute(
                "INSERT INTO audit(t, kind, action, detail, source) VALUES (?, 'cassette', 'labelled', ?, ?)",
                (t, json.dumps({"id": cassette.id, "label": label, "used": cassette.used}), source),
            )

    def resume_cassette(self, cassette: CassetteState, t: float, *, source: str) -> None:
        """A labelled cassette set aside earlier is back in the cradle: it becomes the current one
        of its type again, with its own count (the one it replaces is set aside, not lost)."""
        with self._tx() as db:
            db.execute(
                "UPDATE cassettes SET retired_at = ? WHERE type = ? AND retired_at IS NULL AND id != ?",
                (t, cassette.type.value, cassette.id),
            )
            db.execute("UPDATE cassettes SET retired_at = NULL WHERE id = ?", (cassette.id,))
            db.execute("UPDATE cassette_fits SET removed_at = ? WHERE removed_at IS NULL", (t,))
            db.execute("INSERT INTO cassette_fits(cassette_id, fitted_at) VALUES (?, ?)", (cassette.id, t))
            db.execute(
                "INSERT INTO audit(t, kind, action, detail, source) VALUES (?, 'cassette', 'resumed', ?, ?)",
                (t, json.dumps({"id": cassette.id, "label": cassette.label, "used": cassette.used}), source),
            )

    def cassette_fitted(self, cassette_id: int, t: float) -> None:
        """A cassette went into the cradle (ends any fit left open by a power cut)."""
        with self._tx() as db:
            db.execute("UPDATE cassette_fits SET removed_at = ? WHERE removed_at IS NULL", (t,))
            db.execute("INSERT INTO cassette_fits(cassette_id, fitted_at) VALUES (?, ?)", (cassette_id, t))

    def fitted_cassette_id(self) -> int | None:
        """The cassette the books say is in the cradle (its open fit), if any."""
        row = self._db.execute(
            "SELECT cassette_id FROM cassette_fits WHERE removed_at IS NULL ORDER BY id DESC LIMIT 1"
        ).fetchone()
        return None if row is None else int(row[0])

    def cassette_removed(self, t: float) -> None:
        self._write("UPDATE cassette_fits SET removed_at = ? WHERE removed_at IS NULL", (t,))

    def cassettes(self) -> list[sqlite3.Row]:
        """Every cassette ever declared, oldest first, with positions used and times fitted.
        Grows with history: for exports and the CLI, not the controller's loop."""
        return self._db.execute(
            f"SELECT c.id, c.type, c.capacity, c.declared_at, c.retired_at, c.note, {self._used} AS used, "
            f"{self._label}, "
            "(SELECT count(*) FROM cassette_fits f WHERE f.cassette_id = c.id) AS fits FROM cassettes c ORDER BY c.id"
        ).fetchall()

    # -- ribbon ----------------------------------------------------------------------------
    def reserve_positions(
        self,
        cassette: CassetteState,
        positions: int,
        t: float,
        *,
        attempt_id: int | None = None,
        gender: str | None = None,
        source: str = "clean",
    ) -> int:
        """Durably mark ribbon positions used *before* the wheel moves; returns the first one.

        Refuses to reserve past the end of the cassette (the books never claim ribbon that
        is not there)."""
        with self._tx() as db:
            row = db.execute(f"SELECT {self._used} FROM cassettes c WHERE c.id = ?", (cassette.id,)).fetchone()
            used = row[0] if row else 0
            if used + positions > cassette.capacity:
                raise StoreError(
                    f"cassette #{cassette.id} has {cassette.capacity - used} positions left, {positions} asked"
                )
            db.execute(
                "INSERT INTO ribbon(t, cassette_id, attempt_id, first_position, positions, source) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (t, cassette.id, attempt_id, used, positions, source),
            )
            if attempt_id is not None:
                db.execute(
                    "UPDATE attempts SET cassette_id = ?, gender = coalesce(?, gender), cassette_label = ? "
                    "WHERE id = ?",
                    (cassette.id, gender, cassette.label, attempt_id),
                )
        return int(used)

    # -- fluid -----------------------------------------------------------------------------
    def record_drop(self, t: float, *, attempt_id: int | None = None, source: str = "clean") -> None:
        """Durably count a drop *before* the pump pulses: fluid is never under-counted."""
        self._write("INSERT INTO drops(t, attempt_id, source) VALUES (?, ?, ?)", (t, attempt_id, source))

    def fluid(self) -> tuple[int, int]:
        """(drops dispensed since the last refill, reservoir capacity in drops)."""
        if not self._tallied:
            last = self._db.execute("SELECT capacity, last_drop_id FROM refills ORDER BY id DESC LIMIT 1").fetchone()
            after, capacity = (last["last_drop_id"], last["capacity"]) if last else (0, self.fluid_capacity)
            used = self._db.execute("SELECT count(*) FROM drops WHERE id > ?", (after,)).fetchone()[0]
            return int(used), int(capacity)
        total = self._db.execute("SELECT n FROM drop_tally WHERE id = 1").fetchone()[0]
        last = self._db.execute("SELECT capacity, drop_total FROM refills ORDER BY id DESC LIMIT 1").fetchone()
        at_refill, capacity = (last["drop_total"], last["capacity"]) if last else (0, self.fluid_capacity)
        return int(total - at_refill), int(capacity)

    def refill(self, t: float, *, source: str) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO refills(t, capacity, last_drop_id, drop_total, source) "
                "VALUES (?, ?, (SELECT coalesce(max(id), 0) FROM drops), (SELECT n FROM drop_tally WHERE id = 1), ?)",
                (t, self.fluid_capacity, source),
            )
            db.execute(
                "INSERT INTO audit(t, kind, action, detail, source) VALUES (?, 'fluid', 'refill', ?, ?)",
                (t, json.dumps({"capacity": self.fluid_capacity}), source),
            )

    # -- clean attempts --------------------------------------------------------------------
    def begin_attempt(self, t: float, mode: Mode, identity: Identity | None = None) -> int:
        """The attempt on record, with the connector and operator it is tied to (when known)."""
        who = identity or Identity()
        return self._write(
            "INSERT INTO attempts(started_at, mode, connector, cable, cable_end, operator) VALUES (?, ?, ?, ?, ?, ?)",
            (t, mode.value, who.connector, who.cable, who.end, who.operator),
        )

    def attempt_mode(self, attempt_id: int, mode: Mode) -> None:
        """The mode an open attempt is now cleaned in (switched to dry before its drop)."""
        self._write("UPDATE attempts SET mode = ? WHERE id = ? AND outcome IS NULL", (mode.value, attempt_id))

    def finish_attempt(
        self,
        attempt_id: int,
        outcome: Outcome,
        reason: str,
        t: float,
        *,
        gender: str | None = None,
        swipe_start_s: float | None = None,
        pass_s: float | None = None,
    ) -> None:
        """The one outcome of an attempt, with what was measured; never overwrites an outcome."""
        self._write(
            "UPDATE attempts SET outcome = ?, reason = ?, ended_at = ?, gender = coalesce(?, gender), "
            "swipe_start_s = ?, pass_s = ? WHERE id = ? AND outcome IS NULL",
            (outcome.value, reason, t, gender, swipe_start_s, pass_s, attempt_id),
        )

    def close_open_attempts(self, t: float) -> list[int]:
        """Recovery after a power cut: attempts left open are closed as interrupted."""
        with self._tx() as db:
            ids = [r[0] for r in db.execute("SELECT id FROM attempts WHERE outcome IS NULL ORDER BY id")]
            if ids:
                db.execute(
                    "UPDATE attempts SET outcome = ?, reason = ?, ended_at = ? WHERE outcome IS NULL",
                    (Outcome.INTERRUPTED.value, "power lost or station stopped during the clean", t),
                )
                db.execute(
                    "INSERT INTO audit(t, kind, action, detail) VALUES (?, 'recovery', 'interrupted', ?)",
                    (t, json.dumps({"attempts": ids})),
                )
        return ids

    def attempts(
        self,
        *,
        limit: int | None = None,
        since: float | None = None,
        until: float | None = None,
        outcome: str | None = None,
        connector: str | None = None,
        cable: str | None = None,
        operator: str | None = None,
        newest_first: bool = True,
    ) -> list[AttemptRecord]:
        where, args = _time_range("a.started_at", since, until)
        traced = self.schema_version >= 4
        for column, value in (("outcome", outcome), ("connector", connector), ("cable", cable), ("operator", operator)):
            if value is None:
                continue
            if column != "outcome" and not traced:
                return []  # a database from before traceability: no attempt is tied to anything
            where.append(f"a.{column} = ?")
            args.append(value)
        query = ATTEMPT_QUERY if traced else ATTEMPT_QUERY_V3
        sql = query + (" WHERE " + " AND ".join(where) if where else "")
        sql += f" ORDER BY a.id {'DESC' if newest_first else 'ASC'}"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(limit)
        return [AttemptRecord(**dict(r)) for r in self._db.execute(sql, args)]

    def summary(self) -> dict[str, int]:
        """Attempts by outcome ("open" for those not finished), only outcomes that occurred."""
        if not self._tallied:
            rows = self._db.execute("SELECT coalesce(outcome, 'open'), count(*) FROM attempts GROUP BY outcome")
        else:  # the order GROUP BY gave: open (NULL) first, then the outcomes alphabetically
            rows = self._db.execute(
                "SELECT outcome, n FROM attempt_tally WHERE n > 0 ORDER BY outcome != 'open', outcome"
            )
        return {r[0]: int(r[1]) for r in rows}

    def backup(self, destination: str | Path) -> None:
        """A consistent copy while the station runs (SQLite online backup, WAL included)."""
        target = sqlite3.connect(str(destination))
        try:
            self._db.backup(target)
        except sqlite3.Error as exc:
            raise StoreError(_explain(str(destination), exc)) from exc
        finally:
            target.close()

    # -- settings --------------------------------------------------------------------------
    def setting(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_setting(
        self, key: str, value: str, t: float, *, source: str, audit_detail: Any = "", audit: bool = True
    ) -> None:
        """Change a setting and audit it in one transaction (the value itself is not audited:
        it may be a PIN hash). `audit=False` only for what the station records of itself."""
        with self._tx() as db:
            db.execute(
                "INSERT INTO settings(key, value, t) VALUES (?, ?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value, t = excluded.t",
                (key, value, t),
            )
            if not audit:
                return
            detail = audit_detail if isinstance(audit_detail, str) else json.dumps(audit_detail, sort_keys=True)
            db.execute(
                "INSERT INTO audit(t, kind, action, detail, source) VALUES (?, 'setting', ?, ?, ?)",
                (t, key, detail, source),
            )

    # -- audit -----------------------------------------------------------------------------
    def audit(self, kind: str, action: str, t: float, *, detail: Any = "", source: str = "station") -> None:
        text = detail if isinstance(detail, str) else json.dumps(detail, sort_keys=True)
        self._write(
            "INSERT INTO audit(t, kind, action, detail, source) VALUES (?, ?, ?, ?, ?)", (t, kind, action, text, source)
        )

    def audit_log(self, limit: int = 50) -> list[sqlite3.Row]:
        return self._db.execute("SELECT * FROM audit ORDER BY id DESC LIMIT ?", (limit,)).fetchall()

    def audit_entries(self, *, since: float | None = None, until: float | None = None) -> list[sqlite3.Row]:
        """The audit oldest first, chosen by time like `attempts` (for the export: it grows
        with history, so never on the loop thread)."""
        where, args = _time_range("t", since, until)
        sql = "SELECT * FROM audit" + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY id"
        return self._db.execute(sql, args).fetchall()


class Outbox:
    """The fleet's outbox on a store's connection (schema 5, docs/design.md section 11): the
    records are the outbox, the `delivered` cursor per stream is how far delivery got. The
    fleet publisher uses it on connections of its own, never the controller's."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def delivered(self, stream: str) -> int:
        """The last id of `stream` the broker acknowledged (0: nothing yet, or no outbox)."""
        if stream not in DELIVERY_STREAMS:
            raise ValueError(f"unknown delivery stream {stream!r}; streams are {', '.join(DELIVERY_STREAMS)}")
        if self._store.schema_version < 5:  # a read-only look at an older database: nothing delivered
            return 0
        row = self._store._db.execute("SELECT last_id FROM delivered WHERE stream = ?", (stream,)).fetchone()
        return 0 if row is None else int(row[0])

    def advance_delivered(self, stream: str, last_id: int) -> int:
        """Move the cursor of `stream` forward to `last_id` (never back), in one transaction;
        the cursor after the call."""
        if stream not in DELIVERY_STREAMS:
            raise ValueError(f"unknown delivery stream {stream!r}; streams are {', '.join(DELIVERY_STREAMS)}")
        with self._store._tx() as db:
            db.execute(
                "INSERT INTO delivered(stream, last_id) VALUES (?, ?) "
                "ON CONFLICT(stream) DO UPDATE SET last_id = max(last_id, excluded.last_id)",
                (stream, last_id),
            )
            return int(db.execute("SELECT last_id FROM delivered WHERE stream = ?", (stream,)).fetchone()[0])

    def finished_attempts_after(self, after_id: int, limit: int) -> list[AttemptRecord]:
        """Up to `limit` finished attempts with ids above `after_id`, oldest first, stopping
        before the first attempt still open (delivery never skips an attempt that will finish
        later). An index range read: its cost does not grow with history."""
        query = ATTEMPT_QUERY if self._store.schema_version >= 4 else ATTEMPT_QUERY_V3
        sql = (
            query + " WHERE a.id > ? AND a.outcome IS NOT NULL"
            " AND a.id < coalesce((SELECT min(id) FROM attempts WHERE outcome IS NULL AND id > ?), 9223372036854775807)"
            " ORDER BY a.id LIMIT ?"
        )
        return [AttemptRecord(**dict(r)) for r in self._store._db.execute(sql, (after_id, after_id, limit))]

    def finished_attempts_count_after(self, after_id: int) -> int:
        """How many finished attempts have ids above `after_id` (the backlog past the cursor)."""
        sql = "SELECT count(*) FROM attempts WHERE id > ? AND outcome IS NOT NULL"
        return int(self._store._db.execute(sql, (after_id,)).fetchone()[0])

    def audit_after(self, after_id: int, limit: int) -> list[sqlite3.Row]:
        """Up to `limit` audit entries with ids above `after_id`, oldest first (the events stream)."""
        sql = "SELECT * FROM audit WHERE id > ? ORDER BY id LIMIT ?"
        return self._store._db.execute(sql, (after_id, limit)).fetchall()


class InspectionBook:
    """Verdicts and quarantine on a store's connection (schema 6, docs/design.md section 10).
    Every write is one transaction with its audit row; every read the loop makes is an index
    lookup."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def record(
        self,
        t: float,
        verdict: str,
        *,
        attempt_id: int | None,
        connector: str | None,
        detail: str,
        source: str,
        quarantine: str | None = None,
    ) -> int:
        """A verdict received (or `no_verdict`: none in time), durably, audited; with `quarantine`
        (its reason) the connector's quarantine in the same transaction."""
        with self._store._tx() as db:
            row = db.execute(
                "INSERT INTO inspections(t, attempt_id, connector, verdict, detail, source) VALUES (?, ?, ?, ?, ?, ?)",
                (t, attempt_id, connector, verdict, detail, source),
            ).lastrowid
            db.execute(
                "INSERT INTO audit(t, kind, action, detail, source) VALUES (?, 'inspection', ?, ?, ?)",
                (t, verdict, json.dumps({"attempt": attempt_id, "connector": connector}), source),
            )
            if quarantine is not None:
                self._quarantine(db, t, connector=connector, attempt_id=attempt_id, reason=quarantine)
        return int(row or 0)

    def quarantine(self, t: float, *, connector: str | None, attempt_id: int | None, reason: str) -> None:
        with self._store._tx() as db:
            self._quarantine(db, t, connector=connector, attempt_id=attempt_id, reason=reason)

    @staticmethod
    def _quarantine(
        db: sqlite3.Connection, t: float, *, connector: str | None, attempt_id: int | None, reason: str
    ) -> None:
        db.execute(
            "INSERT INTO quarantine(t, connector, attempt_id, reason) VALUES (?, ?, ?, ?)",
            (t, connector, attempt_id, reason),
        )
        db.execute(
            "INSERT INTO audit(t, kind, action, detail) VALUES (?, 'inspection', 'quarantined', ?)",
            (t, json.dumps({"connector": connector, "attempt": attempt_id, "reason": reason})),
        )

    def quarantined(self, connector: str) -> bool:
        row = self._store._db.execute(
            "SELECT 1 FROM quarantine WHERE connector = ? AND released_at IS NULL LIMIT 1", (connector,)
        ).fetchone()
        return row is not None

    def open_quarantine(self) -> list[sqlite3.Row]:
        """Connectors in quarantine now (the console's list), oldest first."""
        return self._store._db.execute(
            "SELECT * FROM quarantine WHERE released_at IS NULL AND connector IS NOT NULL ORDER BY id"
        ).fetchall()

    def release(self, connector: str, t: float, *, source: str) -> bool:
        """A person releases a repaired (or replaced) connector; False when it was not quarantined."""
        with self._store._tx() as db:
            n = db.execute(
                "UPDATE quarantine SET released_at = ?, released_by = ? WHERE connector = ? AND released_at IS NULL",
                (t, source, connector),
            ).rowcount
            if n:
                db.execute(
                    "INSERT INTO audit(t, kind, action, detail, source) VALUES (?, 'inspection', 'released', ?, ?)",
                    (t, json.dumps({"connector": connector}), source),
                )
        return bool(n)

    def loop_modes(self, connector: str) -> list[str]:
        """The modes (dry, wet) of `connector`'s cleans since its loop began (its last PASS or
        its release from quarantine), oldest first: what the re-clean sequence has used so far."""
        db = self._store._db
        since = db.execute(
            "SELECT max(t) FROM (SELECT max(t) AS t FROM inspections WHERE connector = ? AND verdict = 'pass'"
            " UNION ALL SELECT max(released_at) FROM quarantine WHERE connector = ?)",
            (connector, connector),
        ).fetchone()[0]
        rows = db.execute(
            "SELECT mode FROM attempts WHERE connector = ? AND outcome = 'cleaned' AND ended_at > ? ORDER BY id",
            (connector, since if since is not None else -1e300),
        )
        return [str(r[0]) for r in rows]

    def last_verdict(self, connector: str) -> str | None:
        """The connector's last verdict (pass, fail, no_verdict), None when never inspected."""
        row = self._store._db.execute(
            "SELECT verdict FROM inspections WHERE connector = ? ORDER BY id DESC LIMIT 1", (connector,)
        ).fetchone()
        return None if row is None else str(row[0])

    def unsettled_clean(self) -> sqlite3.Row | None:
        """The last cleaned attempt if no verdict was recorded for it (its verdict was awaited
        when the station stopped)."""
        row: sqlite3.Row | None = self._store._db.execute(
            "SELECT a.id, a.connector FROM attempts a WHERE a.outcome = 'cleaned' AND a.id = "
            "(SELECT max(id) FROM attempts WHERE outcome IS NOT NULL) "
            "AND NOT EXISTS (SELECT 1 FROM inspections i WHERE i.attempt_id = a.id)"
        ).fetchone()
        return row

    def verdicts(self, *, attempt_id: int | None = None, connector: str | None = None) -> list[sqlite3.Row]:
        """The verdicts on record for an attempt or a connector, oldest first (exports, certificate)."""
        if self._store.schema_version < 6:
            return []
        column, value = ("attempt_id", attempt_id) if attempt_id is not None else ("connector", connector)
        return self._store._db.execute(f"SELECT * FROM inspections WHERE {column} = ? ORDER BY id", (value,)).fetchall()


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT; any SQLite error becomes a StoreError naming the file."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.db = store._db

    def __enter__(self) -> sqlite3.Connection:
        try:
            self.db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise StoreError(_explain(self.store.path, exc)) from exc
        return self.db

    def __exit__(self, exc_type: Any, exc: Any, _tb: Any) -> None:
        if exc_type is None:
            try:
                self.db.execute("COMMIT")
                return
            except sqlite3.Error as commit_error:
                exc = commit_error
        try:
            self.db.execute("ROLLBACK")
        except sqlite3.Error:
            pass
        if isinstance(exc, sqlite3.Error):
            raise StoreError(_explain(self.store.path, exc)) from exc


def _statements(script: str) -> list[str]:
    """The statements of a migration, one by one, in one transaction (executescript would
    commit on its own). A trigger's body has semicolons of its own: pieces are joined until
    SQLite says the statement is complete."""
    statements, pending = [], ""
    for piece in script.split(";"):
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \n;"):
                statements.append(pending)
            pending = ""
    if pending.strip(" \n;"):
        raise ValueError(f"incomplete SQL statement in a migration: {pending!r}")
    return statements


def _time_range(column: str, since: float | None, until: float | None) -> tuple[list[str], list[Any]]:
    """WHERE terms and arguments choosing rows from `since` (inclusive) to `until` (exclusive)."""
    where: list[str] = []
    args: list[Any] = []
    if since is not None:
        where.append(f"{column} >= ?")
        args.append(since)
    if until is not None:
        where.append(f"{column} < ?")
        args.append(until)
    return where, args


def _explain(path: str, exc: BaseException) -> str:
    text = str(exc)
    low = text.lower()
    if "readonly" in low or "read-only" in low:
        hint = "the file or its directory is read-only; fix permissions or use another --state-dir"
    elif "full" in low:
        hint = "the disk is full; free space, the station keeps its records until then"
    elif "not a database" in low or "malformed" in low or "corrupt" in low:
        hint = "the file is damaged or not a database; restore the last backup or move it away"
    elif "locked" in low or "busy" in low:
        hint = "another program holds the database; stop it (is a second station running?)"
    elif "unable to open" in low:
        hint = "the file cannot be opened; check that the state directory exists and is writable"
    else:
        hint = "check the state directory"
    return f"database {path}: {text} ({hint})"
