"""Durable books: cassettes, ribbon positions, fluid, clean attempts, faults and audit.

SQLite in WAL mode with `synchronous=FULL`: a call returns only once its transaction is on
disk. Ribbon positions are reserved *before* the wheel moves, so a power cut at any instant
can only make the station believe it used more ribbon than it did, never less.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from .domain import CassetteType, Mode, Outcome

SCHEMA_VERSION = 1
APPLICATION_ID = 0x4D504F31  # "MPO1": marks the file as ours


class StoreError(RuntimeError):
    """The database cannot be used (read-only, full, corrupt or not ours)."""


MIGRATIONS: dict[int, str] = {
    1: """
    CREATE TABLE cassettes (
        id INTEGER PRIMARY KEY,
        type TEXT NOT NULL,
        capacity INTEGER NOT NULL CHECK (capacity > 0),
        used INTEGER NOT NULL DEFAULT 0 CHECK (used >= 0),
        fitted_at REAL NOT NULL,
        retired_at REAL,
        present INTEGER NOT NULL DEFAULT 0,
        note TEXT NOT NULL DEFAULT ''
    );
    CREATE TABLE attempts (
        id INTEGER PRIMARY KEY,
        started_at REAL NOT NULL,
        ended_at REAL,
        mode TEXT NOT NULL,
        gender TEXT,
        cassette_id INTEGER REFERENCES cassettes(id),
        positions INTEGER NOT NULL DEFAULT 0,
        first_position INTEGER,
        drops INTEGER NOT NULL DEFAULT 0,
        swipe_start_s REAL,
        pass_s REAL,
        outcome TEXT,
        reason TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX attempts_by_time ON attempts(started_at);
    CREATE TABLE fluid (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        capacity INTEGER NOT NULL,
        used INTEGER NOT NULL DEFAULT 0,
        refilled_at REAL
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
}


@dataclass(frozen=True)
class CassetteState:
    id: int
    type: CassetteType
    capacity: int
    used: int

    @property
    def remaining(self) -> int:
        return max(0, self.capacity - self.used)


@dataclass(frozen=True)
class AttemptRecord:
    id: int
    started_at: float
    ended_at: float | None
    mode: str
    gender: str | None
    cassette_id: int | None
    positions: int
    first_position: int | None
    drops: int
    swipe_start_s: float | None
    pass_s: float | None
    outcome: str | None
    reason: str


class Store:
    """The station's database. One connection, used only from the controller thread."""

    def __init__(self, path: str | Path, *, fluid_capacity: int = 2000) -> None:
        self.path = str(path)
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self._db.row_factory = sqlite3.Row
            self._check_ours()
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._migrate()
            with self._tx():
                self._db.execute(
                    "INSERT OR IGNORE INTO fluid(id, capacity, used) VALUES (1, ?, 0)", (fluid_capacity,)
                )
                self._db.execute("UPDATE fluid SET capacity = ? WHERE id = 1", (fluid_capacity,))
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"cannot use the database {self.path}: {exc}") from exc

    # -- plumbing --------------------------------------------------------------------------
    def _check_ours(self) -> None:
        app_id = self._db.execute("PRAGMA application_id").fetchone()[0]
        tables = self._db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
        if app_id not in (0, APPLICATION_ID) or (app_id == 0 and tables):
            raise StoreError(
                f"{self.path} is not a station database (another program's file?); "
                "move it away or choose another --state-dir"
            )

    def _migrate(self) -> None:
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{self.path} has schema version {version}, newer than this firmware ({SCHEMA_VERSION}); "
                "upgrade the firmware"
            )
        for v in range(version + 1, SCHEMA_VERSION + 1):
            with self._tx():
                for statement in MIGRATIONS[v].split(";"):
                    if statement.strip():
                        self._db.execute(statement)
                self._db.execute(f"PRAGMA user_version = {v}")
                self._db.execute(f"PRAGMA application_id = {APPLICATION_ID}")

    class _Tx:
        def __init__(self, db: sqlite3.Connection) -> None:
            self.db = db

        def __enter__(self) -> sqlite3.Connection:
            self.db.execute("BEGIN IMMEDIATE")
            return self.db

        def __exit__(self, exc_type: Any, *_: Any) -> None:
            if exc_type is None:
                try:
                    self.db.execute("COMMIT")
                except sqlite3.Error:
                    self.db.execute("ROLLBACK")
                    raise
            else:
                self.db.execute("ROLLBACK")

    def _tx(self) -> "_Tx":
        return Store._Tx(self._db)

    def _write(self, sql: str, args: tuple = ()) -> int:
        try:
            with self._tx() as db:
                return db.execute(sql, args).lastrowid or 0
        except sqlite3.Error as exc:
            raise StoreError(f"could not write to {self.path}: {exc}") from exc

    def close(self) -> None:
        try:
            self._db.close()
        except sqlite3.Error:
            pass

    # -- cassettes -------------------------------------------------------------------------
    def cassette(self, ctype: CassetteType) -> CassetteState | None:
        """The current (not retired) cassette of this type, if one was ever fitted."""
        row = self._db.execute(
            "SELECT id, type, capacity, used FROM cassettes WHERE type = ? AND retired_at IS NULL "
            "ORDER BY id DESC LIMIT 1",
            (ctype.value,),
        ).fetchone()
        return CassetteState(row["id"], CassetteType(row["type"]), row["capacity"], row["used"]) if row else None

    def new_cassette(self, ctype: CassetteType, capacity: int, t: float, *, note: str = "") -> CassetteState:
        """Retire the current cassette of this type and start a fresh count."""
        try:
            with self._tx() as db:
                db.execute(
                    "UPDATE cassettes SET retired_at = ?, present = 0 WHERE type = ? AND retired_at IS NULL",
                    (t, ctype.value),
                )
                cid = db.execute(
                    "INSERT INTO cassettes(type, capacity, used, fitted_at, present, note) VALUES (?, ?, 0, ?, 1, ?)",
                    (ctype.value, capacity, t, note),
                ).lastrowid
        except sqlite3.Error as exc:
            raise StoreError(f"could not write to {self.path}: {exc}") from exc
        return CassetteState(int(cid), ctype, capacity, 0)

    # -- clean attempts --------------------------------------------------------------------
    def begin_attempt(self, t: float, mode: Mode) -> int:
        return self._write("INSERT INTO attempts(started_at, mode) VALUES (?, ?)", (t, mode.value))

    def set_attempt(self, attempt_id: int, **fields: Any) -> None:
        allowed = {"gender", "cassette_id", "mode", "swipe_start_s", "pass_s"}
        bad = set(fields) - allowed
        if bad:
            raise ValueError(f"not attempt fields: {sorted(bad)}")
        cols = ", ".join(f"{k} = ?" for k in fields)
        self._write(f"UPDATE attempts SET {cols} WHERE id = ?", (*fields.values(), attempt_id))

    def reserve_positions(self, attempt_id: int, cassette_id: int, positions: int) -> int:
        """Durably mark `positions` ribbon positions used *before* the wheel moves.

        Returns the first reserved position (0-based). One transaction: the cassette count and
        the attempt record can never disagree."""
        try:
            with self._tx() as db:
                used = db.execute("SELECT used FROM cassettes WHERE id = ?", (cassette_id,)).fetchone()[0]
                db.execute("UPDATE cassettes SET used = used + ? WHERE id = ?", (positions, cassette_id))
                db.execute(
                    "UPDATE attempts SET positions = positions + ?, first_position = coalesce(first_position, ?), "
                    "cassette_id = ? WHERE id = ?",
                    (positions, used, cassette_id, attempt_id),
                )
        except sqlite3.Error as exc:
            raise StoreError(f"could not write to {self.path}: {exc}") from exc
        return int(used)

    def record_drop(self, attempt_id: int | None) -> None:
        try:
            with self._tx() as db:
                db.execute("UPDATE fluid SET used = used + 1 WHERE id = 1")
                if attempt_id is not None:
                    db.execute("UPDATE attempts SET drops = drops + 1 WHERE id = ?", (attempt_id,))
        except sqlite3.Error as exc:
            raise StoreError(f"could not write to {self.path}: {exc}") from exc

    def finish_attempt(self, attempt_id: int, outcome: Outcome, reason: str, t: float) -> None:
        self._write(
            "UPDATE attempts SET outcome = ?, reason = ?, ended_at = ? WHERE id = ? AND outcome IS NULL",
            (outcome.value, reason, t, attempt_id),
        )

    def close_open_attempts(self, t: float) -> list[int]:
        """Recovery after a power cut: attempts left open are closed as interrupted."""
        ids = [r[0] for r in self._db.execute("SELECT id FROM attempts WHERE outcome IS NULL")]
        if ids:
            self._write(
                "UPDATE attempts SET outcome = ?, reason = ?, ended_at = ? WHERE outcome IS NULL",
                (Outcome.INTERRUPTED.value, "power lost or station stopped during the clean", t),
            )
        return ids

    def attempts(self, limit: int | None = None) -> list[AttemptRecord]:
        sql = "SELECT * FROM attempts ORDER BY id DESC"
        rows = self._db.execute(sql + (" LIMIT ?" if limit else ""), (limit,) if limit else ()).fetchall()
        return [AttemptRecord(**dict(r)) for r in rows]

    def iter_attempts(self) -> Iterator[AttemptRecord]:
        for r in self._db.execute("SELECT * FROM attempts ORDER BY id"):
            yield AttemptRecord(**dict(r))

    # -- fluid -----------------------------------------------------------------------------
    def fluid(self) -> tuple[int, int]:
        """(drops used since the last refill, reservoir capacity in drops)."""
        row = self._db.execute("SELECT used, capacity FROM fluid WHERE id = 1").fetchone()
        return int(row[0]), int(row[1])

    def refill(self, t: float) -> None:
        self._write("UPDATE fluid SET used = 0, refilled_at = ? WHERE id = 1", (t,))

    # -- audit -----------------------------------------------------------------------------
    def audit(self, kind: str, action: str, t: float, *, detail: Any = "", source: str = "station") -> None:
        text = detail if isinstance(detail, str) else json.dumps(detail, sort_keys=True)
        self._write("INSERT INTO audit(t, kind, action, detail, source) VALUES (?, ?, ?, ?, ?)", (t, kind, action, text, source))

    def audit_log(self, limit: int = 50) -> list[sqlite3.Row]:
        return self._db.execute("SELECT * FROM audit ORDER BY id DESC LIMIT ?", (limit,)).fetchall()
