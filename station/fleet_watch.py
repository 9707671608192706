"""`station fleet watch`: the live floor for a supervisor's terminal (docs/fleet.md).

Subscribes to every station's retained status (a new watcher sees the floor at once) and its
attempts, and shows one row per station seen: online, state, cassette and fluid left, the last
result, the current fault, the backlog the station reports (finished attempts the broker has not
acknowledged yet) and when it was last heard from. At a terminal the table is redrawn in place
every second; otherwise, or with `--once SECONDS`, it is printed once after that time.

paho-mqtt is the `fleet` extra; this module is imported only by `station fleet watch`.
"""

from __future__ import annotations

import json
import re
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TextIO

ROOT = "mpo-station"  # the default topic prefix is mpo-station/<station id>/
TOPICS = (f"{ROOT}/+/status", f"{ROOT}/+/attempts")
_URL = re.compile(r"(?P<scheme>mqtts?)://(?P<host>[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\]):(?P<port>[0-9]{1,5})")
NOT_YET = "-"
RETRY_MAX_S = 30.0


class WatchError(Exception):
    """A bad argument (URL, password file) or a broker that refuses the watcher: exit 2."""


@dataclass(frozen=True)
class Broker:
    tls: bool
    host: str
    port: int


def parse_broker(url: str) -> Broker:
    """mqtt://host:port or mqtts://host:port (TLS), as the station's [fleet] broker."""
    m = _URL.fullmatch(url.strip())
    if m is None or not 0 < int(m["port"]) < 65536:
        raise WatchError(f"--broker {url!r}: not a broker URL; write mqtt://host:port or mqtts://host:port (TLS)")
    return Broker(m["scheme"] == "mqtts", m["host"].strip("[]"), int(m["port"]))


def credentials(broker: Broker, username: str | None, password_file: str | None, ca_file: str | None) -> str | None:
    """The password a supervisor's tool logs in with (None: no password), its options checked
    together (watch and collect alike); WatchError names the option to fix."""
    from .fleet import FleetError, read_password

    if password_file and not username:
        raise WatchError("--password-file needs --username")
    if ca_file and not broker.tls:
        raise WatchError("--ca-file is for mqtts:// brokers")
    try:
        return read_password(password_file) if password_file else None
    except FleetError as exc:
        raise WatchError(str(exc).replace("fleet.password_file =", "--password-file")) from exc


@dataclass
class Row:
    """What the watcher knows of one station: the newest status fields and the last result."""

    station_id: str
    status: dict[str, Any] = field(default_factory=dict)
    online: bool | None = None
    last_attempt: dict[str, Any] | None = None
    seen: float | None = None  # when a message from it arrived (the watcher's clock; None: retained only)


class Floor:
    """Every station seen, from the messages on TOPICS (called from paho's network thread)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._rows: dict[str, Row] = {}
        self._lock = threading.Lock()
        self._clock = clock

    def message(self, topic: str, payload: bytes | bytearray, retained: bool) -> None:
        levels = topic.split("/")
        if len(levels) != 3 or levels[0] != ROOT:
            return
        try:
            data = json.loads(payload)
        except (UnicodeDecodeError, ValueError):
            return  # not ours: the floor shows what the contract (docs/fleet.md) defines
        if not isinstance(data, dict):
            return
        with self._lock:
            row = self._rows.setdefault(levels[1], Row(levels[1]))
            if not retained:
                row.seen = self._clock()
            if levels[2] == "status" and data.get("kind") == "status":
                row.online = data.get("online") is True
                if row.online:
                    row.status = data  # the last will carries no state: the last known one stays
                elif "why" in data:
                    row.status = {**row.status, "why": data["why"]}
            elif levels[2] == "attempts" and data.get("kind") == "attempt" and isinstance(data.get("id"), int):
                if row.last_attempt is None or data["id"] >= row.last_attempt["id"]:
                    row.last_attempt = data  # the newest by id: a backlog arrives oldest first, repeats dropped

    def rows(self) -> list[Row]:
        with self._lock:
            return [Row(r.station_id, dict(r.status), r.online, r.last_attempt, r.seen) for r in self._rows.values()]


COLUMNS = ("STATION", "ONLINE", "STATE", "CASSETTE", "CLEANS LEFT", "FLUID", "LAST RESULT", "FAULT", "BACKLOG", "SEEN")


def _text(value: object) -> str:
    return NOT_YET if value is None or value == "" else str(value)


def _seen(row: Row) -> str:
    """The newest of: a live message's arrival, the time the station stamped on its status."""
    times = [row.seen] if row.seen is not None else []
    at = row.status.get("at")
    if isinstance(at, str):
        try:
            times.append(datetime.fromisoformat(at.replace("Z", "+00:00")).timestamp())
        except ValueError:
            pass
    if not times:
        return NOT_YET
    return datetime.fromtimestamp(max(times), UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def cells(row: Row) -> tuple[str, ...]:
    s = row.status
    online = NOT_YET if row.online is None else "yes" if row.online else f"NO ({s.get('why', 'offline')})"
    fluid = _text(s.get("fluid_drops_left"))
    if s.get("fluid_low"):
        fluid += " LOW"
    last = row.last_attempt
    result = NOT_YET
    if last is not None:
        result = f"#{last['id']} {last.get('outcome')}"
        if last.get("reason"):
            result += f" ({last['reason']})"
    return (
        row.station_id,
        online,
        _text(s.get("state")),
        _text(s.get("cassette")),
        _text(s.get("cleans_remaining")),
        fluid,
        result,
        _text(s.get("fault")),
        _text(s.get("backlog")),
        _seen(row),
    )


def table(rows: list[Row], header: str) -> str:
    """The floor as a plain text table, one station a line, sorted by station id."""
    lines = [tuple(COLUMNS)] + [cells(r) for r in sorted(rows, key=lambda r: r.station_id)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(COLUMNS))]
    text = [header] + ["  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in lines]
    if not rows:
        text.append("(no station seen yet)")
    return "\n".join(text) + "\n"


class Watcher:
    """The MQTT side: connects (retrying while the broker cannot be reached), subscribes, feeds
    the Floor; `problem` says what is wrong with the connection now (None: connected)."""

    def __init__(self, broker: Broker, username: str | None, password: str | None, ca_file: str | None) -> None:
        try:
            import paho.mqtt.client as mqtt
            from paho.mqtt.enums import CallbackAPIVersion
        except ImportError as exc:
            raise WatchError("paho-mqtt is not installed: pip install 'mpo-station[fleet]'") from exc
        self.broker = broker
        self.floor = Floor()
        self.problem: str | None = "connecting"
        self.refused: str | None = None  # the broker said no (user, password): retrying will not help
        client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)  # random id, clean session
        if username:
            client.username_pw_set(username, password)
        if broker.tls:
            try:
                client.tls_set(ca_certs=ca_file or None)
            except OSError as exc:  # an unreadable CA file, say
                raise WatchError(f"--ca-file {ca_file!r}: {exc}") from exc
        client.reconnect_delay_set(1, int(RETRY_MAX_S))
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = lambda _c, _u, msg: self.floor.message(msg.topic, msg.payload, bool(msg.retain))
        self._client = client

    def connect(self, give_up_at: float | None, report: Callable[[str], None]) -> bool:
        """Connect, retrying with back-off while the broker cannot be reached (reported each
        time); then paho's thread keeps the connection. False: `give_up_at` came first."""
        delay = 1.0
        where = f"{self.broker.host}:{self.broker.port}"
        while True:
            try:
                self._client.connect(self.broker.host, self.broker.port, keepalive=30)
                break
            except (OSError, ValueError) as exc:  # refused, unreachable, no such host, TLS handshake
                reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
                self.problem = f"cannot reach the broker at {where}: {reason}"
                if give_up_at is not None and time.monotonic() + delay > give_up_at:
                    return False
                report(f"{self.problem}; retrying in {delay:.0f} s")
                time.sleep(delay)
                delay = min(2 * delay, RETRY_MAX_S)
        self._client.loop_start()
        return True

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def _on_connect(self, client: Any, _u: Any, _flags: Any, reason: Any, _props: Any) -> None:
        if reason.is_failure:
            self.refused = f"the broker at {self.broker.host}:{self.broker.port} refused the watcher: {reason}"
            self.problem = self.refused
            return
        self.problem = None
        for topic in TOPICS:
            client.subscribe(topic, qos=1)

    def _on_disconnect(self, _c: Any, _u: Any, _flags: Any, reason: Any, _props: Any) -> None:
        if self.refused is None:
            self.problem = f"connection to the broker lost ({reason}); reconnecting"


def header(watcher: Watcher) -> str:
    b = watcher.broker
    url = f"{'mqtts' if b.tls else 'mqtt'}://{b.host}:{b.port}"
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    return f"fleet at {url}, {now}: {watcher.problem or 'connected'}"


def run(
    url: str,
    *,
    username: str | None = None,
    password_file: str | None = None,
    ca_file: str | None = None,
    once: float | None = None,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
) -> int:
    """The watch: 0 after a printed table, 1 when the broker was never reached within --once,
    2 for a bad argument or a broker that refuses the watcher's credentials."""
    try:
        broker = parse_broker(url)
        watcher = Watcher(broker, username, credentials(broker, username, password_file, ca_file), ca_file)
    except WatchError as exc:
        print(f"station fleet watch: {exc}", file=err)
        return 2
    live = once is None and out.isatty()
    wait = 3.0 if once is None else once
    give_up_at = None if live else time.monotonic() + wait

    def report(text: str) -> None:
        print(f"station fleet watch: {text}", file=err, flush=True)

    try:
        if not watcher.connect(give_up_at, report):
            report(f"{watcher.problem}; gave up after {wait:g} s")
            return 1
        try:
            while True:
                if watcher.refused:
                    report(f"{watcher.refused}; check --username and --password-file (and the broker's ACL)")
                    return 2
                if not live:
                    if time.monotonic() >= (give_up_at or 0):
                        break
                    time.sleep(0.1)
                    continue
                out.write("\x1b[H\x1b[2J" + table(watcher.floor.rows(), header(watcher)))  # home, clear, draw
                out.flush()
                time.sleep(1.0)
            out.write(table(watcher.floor.rows(), header(watcher)))
            out.flush()
            return 0
        finally:
            watcher.close()
    except KeyboardInterrupt:
        return 0
