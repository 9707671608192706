"""`station fleet collect` and `station fleet records`: every attempt and event of every station
in one SQLite database, exactly once (docs/fleet.md, the collector).

The collector subscribes to `mpo-station/+/attempts`, `+/events` and `+/status` with QoS 1 in a
persistent session (clean session off, a fixed client id): what the stations publish while it is
down waits at the broker and is delivered when it comes back. Each message becomes one row keyed
by (station id, id), written with INSERT OR IGNORE and committed (synchronous=FULL) before the
message is acknowledged (paho's manual acknowledgement): a message the collector dies before
committing is delivered again; one it dies after committing and before acknowledging is delivered
again and ignored. So a station's at-least-once delivery lands exactly once.

The station id is the topic's second level (with the per-station ACL of docs/fleet.md, only that
station may publish there); a payload naming another station, or not the contract's JSON, is kept
in the `rejected` table with the reason, never silently dropped.

`station fleet records` gives the exports of `station records` over the whole floor: the same
writers and columns, with `station_id` first.

paho-mqtt is the `fleet` extra; it is imported only by `collect`.
"""

from __future__ import annotations

import json
import logging
import random
import signal
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from .fleet_watch import ROOT, Broker, WatchError, credentials, parse_broker
from .records import AUDIT_FIELDS, FIELDS, attempt_row, iso, parse_time, write_rows_csv, write_rows_json
from .store import AttemptRecord

CLIENT_ID = "mpo-fleet-collector"
TOPICS = (f"{ROOT}/+/attempts", f"{ROOT}/+/events", f"{ROOT}/+/status")
RETRY_MAX_S = 60.0
ATTEMPT_FIELDS = ["station_id", *FIELDS]  # the export's columns: station_id, then station records'
EVENT_FIELDS = ["station_id", *AUDIT_FIELDS]
_TIMES = ("started_at", "ended_at")
_REAL = {"started_at", "ended_at", "swipe_start_s", "pass_s"}
_INTEGER = {"id", "cassette_id", "first_position", "positions", "drops"}

SCHEMA = 1
_DDL = f"""
CREATE TABLE attempts (
    station_id TEXT NOT NULL,
    {", ".join(f'"{f}" {"REAL" if f in _REAL else "INTEGER" if f in _INTEGER else "TEXT"}' for f in FIELDS)},
    payload TEXT NOT NULL,
    received_at REAL NOT NULL,
    PRIMARY KEY (station_id, id)
);
CREATE INDEX attempts_by_start ON attempts(started_at);
CREATE INDEX attempts_by_connector ON attempts(connector) WHERE connector IS NOT NULL;
CREATE INDEX attempts_by_cable ON attempts(cable) WHERE cable IS NOT NULL;
CREATE INDEX attempts_by_operator ON attempts(operator) WHERE operator IS NOT NULL;
CREATE TABLE events (
    station_id TEXT NOT NULL,
    id INTEGER NOT NULL,
    t REAL,
    event TEXT NOT NULL,
    action TEXT NOT NULL,
    source TEXT NOT NULL,
    detail TEXT NOT NULL,
    payload TEXT NOT NULL,
    received_at REAL NOT NULL,
    PRIMARY KEY (station_id, id)
);
CREATE TABLE stations (
    station_id TEXT PRIMARY KEY,
    online INTEGER,
    status TEXT NOT NULL,
    received_at REAL NOT NULL
);
CREATE TABLE rejected (
    id INTEGER PRIMARY KEY,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    why TEXT NOT NULL,
    received_at REAL NOT NULL
);
PRAGMA user_version = {SCHEMA};
"""


log = logging.getLogger(__name__)


class CollectError(Exception):
    """A bad argument, a database that cannot be used, or a broker that refuses: exit 2."""


class _Rejected(ValueError):
    """A message that is not the contract's (docs/fleet.md): kept in `rejected` with this reason."""


@dataclass(frozen=True)
class Choice:
    """Which rows an export takes (None: any)."""

    station: str | None = None
    since: float | None = None
    until: float | None = None
    outcome: str | None = None
    connector: str | None = None
    cable: str | None = None
    operator: str | None = None


class FleetDB:
    """The collector's database (one per floor): attempts and events keyed by (station_id, id),
    the newest status of each station, and the messages it could not take."""

    def __init__(self, path: str | Path, *, readonly: bool = False) -> None:
        self.path = str(path)
        try:
            if readonly:
                if not Path(path).exists():
                    raise CollectError(f"no fleet database at {path}; `station fleet collect --db {path}` makes it")
                self._db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
            else:
                self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
                self._db.execute("PRAGMA journal_mode = WAL")  # `fleet records` reads while it collects
                self._db.execute("PRAGMA synchronous = FULL")  # committed means on disk: then the PUBACK
            self._db.row_factory = sqlite3.Row
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version == 0 and not readonly:
                with self._tx() as db:
                    for statement in _DDL.split(";"):
                        if statement.strip():
                            db.execute(statement)
                version = SCHEMA
        except sqlite3.Error as exc:
            raise CollectError(f"{path}: not a fleet database, or it cannot be opened ({exc})") from exc
        if version != SCHEMA:
            self._db.close()
            raise CollectError(
                f"{path}: not a fleet database of this version (user_version {version}, expected {SCHEMA})"
            )

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    # -- taking messages ---------------------------------------------------------------------
    def take(self, topic: str, payload: bytes, received_at: float) -> str:
        """Store one message, committed when this returns: 'stored', 'duplicate' (that station's
        row with that id is already here), 'status' or 'rejected'. sqlite3.Error: nothing stored."""
        try:
            station_id, stream, text, data = _parse(topic, payload)
            with self._tx() as db:
                if stream == "status":
                    online = data.get("online")
                    db.execute(
                        "INSERT INTO stations(station_id, online, status, received_at) VALUES (?, ?, ?, ?) "
                        "ON CONFLICT(station_id) DO UPDATE SET online = excluded.online, status = excluded.status, "
                        "received_at = excluded.received_at",
                        (station_id, None if online is None else bool(online), text, received_at),
                    )
                    return "status"
                table, row = ("attempts", _attempt(data)) if stream == "attempts" else ("events", _event(data))
                row.update(station_id=station_id, payload=text, received_at=received_at)
                columns = ", ".join(f'"{c}"' for c in row)
                cursor = db.execute(
                    f"INSERT OR IGNORE INTO {table}({columns}) VALUES ({', '.join('?' * len(row))})", list(row.values())
                )
                return "stored" if cursor.rowcount == 1 else "duplicate"
        except _Rejected as exc:
            return self.reject(topic, payload, str(exc), received_at)

    def reject(self, topic: str, payload: bytes, why: str, received_at: float | None = None) -> str:
        """Keep a message outside the contract in `rejected`, with why (it is acknowledged)."""
        with self._tx() as db:
            db.execute(
                "INSERT INTO rejected(topic, payload, why, received_at) VALUES (?, ?, ?, ?)",
                (topic, bytes(payload), why, time.time() if received_at is None else received_at),
            )
        return "rejected"

    # -- reading -----------------------------------------------------------------------------
    def attempts(self, choice: Choice = Choice()) -> list[dict[str, object]]:
        """The attempts chosen, as `station records --format json` rows with station_id first;
        by station, each station's oldest first."""
        where, args = _where(choice, "started_at")
        for column, value in (
            ("outcome", choice.outcome),
            ("connector", choice.connector),
            ("cable", choice.cable),
            ("operator", choice.operator),
        ):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        sql = "SELECT * FROM attempts" + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY station_id, id"
        rows = []
        for r in self._db.execute(sql, args):
            record = AttemptRecord(**{f: r[f] for f in FIELDS})
            rows.append({"station_id": r["station_id"], **attempt_row(record)})
        return rows

    def events(self, choice: Choice = Choice()) -> list[dict[str, object]]:
        """The events chosen, as `station records --audit` rows with station_id first."""
        where, args = _where(choice, "t")
        sql = "SELECT * FROM events" + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY station_id, id"
        return [
            {
                "station_id": r["station_id"],
                "id": r["id"],
                "time": iso(r["t"]),
                "kind": r["event"],
                "action": r["action"],
                "source": r["source"],
                "detail": r["detail"],
            }
            for r in self._db.execute(sql, args)
        ]

    def summary(self) -> str:
        """One line per station: attempts by outcome, events, online or not, last heard."""
        stations: dict[str, dict[str, Any]] = {}
        for r in self._db.execute("SELECT station_id, outcome, count(*) AS n FROM attempts GROUP BY 1, 2"):
            stations.setdefault(r["station_id"], {}).setdefault("outcomes", {})[r["outcome"] or "open"] = r["n"]
        for r in self._db.execute("SELECT station_id, count(*) AS n FROM events GROUP BY 1"):
            stations.setdefault(r["station_id"], {})["events"] = r["n"]
        for r in self._db.execute("SELECT station_id, online, received_at FROM stations"):
            s = stations.setdefault(r["station_id"], {})
            s["online"], s["heard"] = r["online"], r["received_at"]
        lines = [f"fleet database {self.path}: {len(stations)} station{'s' if len(stations) != 1 else ''}"]
        for sid in sorted(stations):
            s = stations[sid]
            outcomes = s.get("outcomes", {})
            online = {None: "status unknown", 0: "offline", 1: "online"}[s.get("online")]
            heard = f", status heard {iso(s['heard'])}" if s.get("heard") else ""
            lines.append(
                f"{sid}: {sum(outcomes.values())} attempts ("
                + ", ".join(f"{o} {n}" for o, n in sorted(outcomes.items()))
                + f"), {s.get('events', 0)} events, {online}{heard}"
            )
        rejected = self._db.execute("SELECT count(*) FROM rejected").fetchone()[0]
        if rejected:
            lines.append(f"messages not taken (not the topic contract): {rejected}, kept in the table `rejected`")
        return "\n".join(lines)


def _where(choice: Choice, time_column: str) -> tuple[list[str], list[Any]]:
    where: list[str] = []
    args: list[Any] = []
    if choice.station is not None:
        where.append("station_id = ?")
        args.append(choice.station)
    if choice.since is not None:
        where.append(f"{time_column} >= ?")
        args.append(choice.since)
    if choice.until is not None:
        where.append(f"{time_column} < ?")
        args.append(choice.until)
    return where, args


def _parse(topic: str, payload: bytes) -> tuple[str, str, str, dict[str, Any]]:
    """(station id, stream, the payload's text, its JSON object) of a message of the contract."""
    levels = topic.split("/")
    if len(levels) != 3 or levels[0] != ROOT or levels[2] not in ("attempts", "events", "status"):
        raise _Rejected(f"topic {topic!r} is not {ROOT}/<station id>/attempts|events|status")
    try:
        text = bytes(payload).decode("utf-8")
        data = json.loads(text)
    except ValueError as exc:  # UnicodeDecodeError is one
        raise _Rejected(f"not JSON in UTF-8: {exc}") from None
    if not isinstance(data, dict):
        raise _Rejected("not a JSON object")
    if data.get("station_id", levels[1]) != levels[1]:
        raise _Rejected(f"station_id {data.get('station_id')!r} published under {levels[1]!r}'s topic")
    if not isinstance(data.get("schema"), int) or data["schema"] < 1:
        raise _Rejected("no schema version")
    return levels[1], levels[2], text, data


def _id(data: dict[str, Any]) -> int:
    value = data.get("id")
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value < 2**63:
        raise _Rejected(f"id {str(value)[:40]!r} is not a record id")
    return value


def _time(data: dict[str, Any], key: str) -> float | None:
    text = data.get(key)
    if text in (None, ""):
        return None
    try:
        return parse_time(str(text))
    except ValueError as exc:
        raise _Rejected(f"{key}: {exc}") from None


def _scalar(key: str, value: Any) -> Any:
    """A value a column can hold: text, a number SQLite can store, true/false or null."""
    if isinstance(value, bool) or value is None or isinstance(value, (str, float)):
        return value
    if isinstance(value, int) and -(2**63) <= value < 2**63:
        return value
    raise _Rejected(f"{key}: {type(value).__name__} {str(value)[:40]!r} is not a field's value")


def _attempt(data: dict[str, Any]) -> dict[str, Any]:
    if data.get("kind") != "attempt":
        raise _Rejected(f"kind {data.get('kind')!r} on an attempts topic")
    row = {f: _scalar(f, data.get(f)) for f in FIELDS}
    row["id"] = _id(data)
    for key in _TIMES:
        row[key] = _time(data, key)
    if row["started_at"] is None:
        raise _Rejected("an attempt without started_at")
    return row


def _event(data: dict[str, Any]) -> dict[str, Any]:
    if data.get("kind") != "event":
        raise _Rejected(f"kind {data.get('kind')!r} on an events topic")
    missing = [k for k in ("event", "action") if not isinstance(data.get(k), str)]
    if missing:
        raise _Rejected(f"an event without {' and '.join(missing)}")
    return {
        "id": _id(data),
        "t": _time(data, "time"),
        "event": data["event"],
        "action": data["action"],
        "source": str(data.get("source", "")),
        "detail": data["detail"] if isinstance(data.get("detail"), str) else json.dumps(data.get("detail", "")),
    }


class Collector:
    """The MQTT side: a persistent session, messages committed to the FleetDB and only then
    acknowledged. `serve` runs on the caller's thread until `stop` is set."""

    def __init__(
        self,
        broker: Broker,
        db: FleetDB,
        *,
        client_id: str = CLIENT_ID,
        username: str | None = None,
        password: str | None = None,
        ca_file: str | None = None,
        report: Callable[[str], None] = lambda _text: None,
    ) -> None:
        try:
            import paho.mqtt.client as mqtt
            from paho.mqtt.enums import CallbackAPIVersion
        except ImportError as exc:
            raise CollectError("paho-mqtt is not installed: pip install 'mpo-station[fleet]'") from exc
        self.broker, self.db, self.client_id = broker, db, client_id
        self.counts = {"stored": 0, "duplicate": 0, "status": 0, "rejected": 0}
        self.connected = threading.Event()
        self.subscribed = threading.Event()  # the broker confirmed the subscriptions of this connection
        self.refused: str | None = None  # the broker said no (user, password): retrying will not help
        self._report = report
        self._success = mqtt.MQTT_ERR_SUCCESS
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=False,  # the broker keeps our subscriptions and queues what comes meanwhile
            protocol=mqtt.MQTTv311,
            manual_ack=True,  # the PUBACK goes after the commit, not when paho hands the message over
        )
        if username:
            client.username_pw_set(username, password)
        if broker.tls:
            try:
                client.tls_set(ca_certs=ca_file or None)
            except OSError as exc:
                raise CollectError(f"--ca-file {ca_file!r}: {exc}") from exc
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        self._client = client
        self._db_problem: str | None = None
        self._resumed = False

    @property
    def where(self) -> str:
        return f"{self.broker.host}:{self.broker.port}"

    def serve(self, stop: threading.Event) -> None:
        """Connect, collect, reconnect with back-off (doubling to 60 s, with jitter) until `stop`;
        then disconnect (what was not acknowledged is delivered again next time).
        CollectError: the broker refused the collector's credentials."""
        delay = 1.0
        while not stop.is_set():
            try:
                self._client.connect(self.broker.host, self.broker.port, keepalive=30)
            except (OSError, ValueError) as exc:  # refused, unreachable, no such host, TLS handshake
                reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
                self._report(f"cannot reach the broker at {self.where}: {reason}; retrying in {delay:.0f} s")
                stop.wait(delay * random.uniform(1.0, 1.25))
                delay = min(2 * delay, RETRY_MAX_S)
                continue
            while not stop.is_set() and self._client.loop(timeout=0.5) == self._success:
                if self.refused:
                    break
            if self.refused:
                self._client.disconnect()
                raise CollectError(f"{self.refused}; check --username and --password-file (and the broker's ACL)")
            if self.connected.is_set():
                delay = 1.0  # it was up: the next try comes soon
            self.connected.clear()
            if not stop.is_set():
                why = self._db_problem or "the connection dropped"
                self._db_problem = None
                self._report(f"lost the broker at {self.where} ({why}); reconnecting in {delay:.0f} s")
                stop.wait(delay * random.uniform(1.0, 1.25))
                delay = min(2 * delay, RETRY_MAX_S)
        if self._client.is_connected():
            self._client.disconnect()
            self._client.loop(timeout=0.5)

    def _on_connect(self, client: Any, _u: Any, flags: Any, reason: Any, _props: Any) -> None:
        if reason.is_failure:
            self.refused = f"the broker at {self.where} refused the collector: {reason}"
            return
        self._resumed = bool(flags.session_present)
        # again after every connect: a broker restarted without persistence forgot them
        client.subscribe([(topic, 1) for topic in TOPICS])
        self.connected.set()

    def _on_subscribe(self, _c: Any, _u: Any, _mid: int, reasons: Any, _props: Any) -> None:
        failed = [r for r in reasons if r.is_failure]
        if failed:  # the ACL: this user may not read the stations' topics
            self.refused = f"the broker at {self.where} refused the subscriptions ({failed[0]})"
            return
        resumed = "session resumed: what came meanwhile follows" if self._resumed else "a new session"
        self._report(f"connected to {self.where} as {self.client_id}, subscribed ({resumed})")
        self.subscribed.set()

    def _on_disconnect(self, _c: Any, _u: Any, _flags: Any, _reason: Any, _props: Any) -> None:
        self.connected.clear()
        self.subscribed.clear()

    def _on_message(self, client: Any, _u: Any, msg: Any) -> None:
        try:
            outcome = self.db.take(msg.topic, msg.payload, time.time())
        except sqlite3.OperationalError as exc:
            # the disk (full, locked, gone): not committed, so not acknowledged: drop the connection
            # and the broker delivers it again when the collector is back (MQTT redelivers only on
            # a new connection)
            self._db_problem = f"cannot write {self.db.path}: {exc}"
            client.disconnect()
            return
        except Exception as exc:  # this message, not the disk: keep it apart, never stall the floor on it
            log.exception("message on %s could not be stored", msg.topic)
            outcome = self.db.reject(msg.topic, msg.payload, f"could not be stored: {type(exc).__name__}: {exc}")
        self.counts[outcome] += 1
        if outcome == "rejected":
            self._report(f"kept a message on {msg.topic} that is not the topic contract in the table `rejected`")
        client.ack(msg.mid, msg.qos)


def collect(
    url: str,
    db_path: str,
    *,
    username: str | None = None,
    password_file: str | None = None,
    ca_file: str | None = None,
    client_id: str = CLIENT_ID,
    err: TextIO | None = None,
) -> int:
    """`station fleet collect`: until SIGINT or SIGTERM (exit 0); 2 for a bad argument, a database
    that cannot be used or a broker that refuses the collector's credentials."""

    def report(text: str) -> None:
        print(f"station fleet collect: {text}", file=err or sys.stderr, flush=True)

    stop = threading.Event()
    db = None
    try:
        try:
            broker = parse_broker(url)
            password = credentials(broker, username, password_file, ca_file)
        except WatchError as exc:
            raise CollectError(str(exc)) from None
        if not client_id.strip() or any(c in client_id for c in "+#/"):
            raise CollectError(f"--client-id {client_id!r}: a name without +, # or /")
        db = FleetDB(db_path)
        collector = Collector(
            broker, db, client_id=client_id, username=username, password=password, ca_file=ca_file, report=report
        )
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())  # the loop ends within its 0.5 s poll
        report(f"collecting every station's attempts and events from {url} into {db_path}")
        collector.serve(stop)
    except CollectError as exc:
        report(str(exc))
        return 2
    except KeyboardInterrupt:  # before the handler was in place
        return 0
    finally:
        if db is not None:
            db.close()
    c = collector.counts
    report(
        f"stopped: {c['stored']} new rows stored, {c['duplicate']} duplicates ignored, "
        f"{c['rejected']} messages not taken"
    )
    return 0


def export(
    db_path: str,
    fmt: str | None,
    out: TextIO,
    *,
    events: bool = False,
    choice: Choice = Choice(),
) -> int:
    """Write the floor's attempts (or events) as CSV or JSON, `station records`'s columns with
    station_id first; without a format, the summary. Returns how many rows (or 0)."""
    db = FleetDB(db_path, readonly=True)
    try:
        if fmt is None:
            out.write(db.summary() + "\n")
            return 0
        rows = db.events(choice) if events else db.attempts(choice)
        fields = EVENT_FIELDS if events else ATTEMPT_FIELDS
        return write_rows_csv(rows, fields, out) if fmt == "csv" else write_rows_json(rows, out)
    except sqlite3.Error as exc:
        raise CollectError(f"{db_path}: cannot read it ({exc})") from exc
    finally:
        db.close()
