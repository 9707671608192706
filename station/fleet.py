"""Fleet telemetry over MQTT (docs/design.md section 11, the topic contract in docs/fleet.md).

The records are the outbox. The publisher reads finished attempts, and the audit (faults raised
and cleared, maintenance, cassette and fluid changes, logins, settings, scans: the events), from
the station database through its own read-only connection, publishes each row as one QoS 1
message, and moves each stream's `delivered` cursor (store schema 5) only when the broker has
acknowledged every row up to it (PUBACK): a broker away for days loses nothing, and a restart
re-sends at most the windows that were in flight (consumers drop duplicates by station id and id).

It never runs on the controller's loop: paho-mqtt's network thread does the socket, the
publisher's own thread reads the database, publishes and writes the cursor (on a separate
writable connection). The controller's only cost is an event listener that sets a flag, and a
status snapshot posted to its loop after a change. At most `window` attempts and `window` events
are in flight: a broker that accepts but never acknowledges stops the reading, it does not grow
memory.

paho-mqtt is the `fleet` extra; this module is imported only when `[fleet] broker` is set.
"""

from __future__ import annotations

import hashlib
import json
import logging
import queue
import random
import sqlite3
import stat
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import __version__
from .config import Config, dumps, fleet_prefix, fleet_station_id
from .events import (
    AttemptFinished,
    CassetteDeclared,
    Event,
    EventBus,
    FaultCleared,
    FaultRaised,
    FluidRefilled,
    ModeSet,
    StateChanged,
)
from .records import attempt_row, iso
from .store import Outbox, Store, StoreError

log = logging.getLogger(__name__)

PAYLOAD_SCHEMA = 1
# what changes the retained status (state, cassette and fluid left, fault, mode)
STATUS_EVENTS = (StateChanged, AttemptFinished, CassetteDeclared, FluidRefilled, FaultRaised, FaultCleared, ModeSet)
RECONNECT_MIN_S, RECONNECT_MAX_S = 1, 60  # paho's back-off doubles from the first to the last
BACKLOG_STATUS_S = 5.0  # a change of the backlog alone republishes the status at most this often

# Asks the controller's loop for a status snapshot (StationStatus.to_json()) and hands it to
# the callback from that loop; the publisher never waits for it.
StatusRequest = Callable[[Callable[[dict[str, Any]], None]], None]


class FleetError(RuntimeError):
    """The fleet publisher cannot start (no client library, a password file others can read)."""


def read_password(path: str) -> str:
    """The broker password from `path`, which only its owner may read (mode 0600 or 0400)."""
    p = Path(path)
    try:
        mode = p.stat().st_mode
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise FleetError(f"fleet.password_file = {path!r}: cannot read it ({exc.strerror})") from exc
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise FleetError(
            f"fleet.password_file = {path!r}: readable by others (mode {stat.S_IMODE(mode):04o}); "
            f"only the station's service user may read it: chmod 600 {path}"
        )
    return text.strip("\r\n")


def config_hash(config: Config) -> str:
    """sha256 of the configuration's TOML text: stations with the same hash run the same settings."""
    return hashlib.sha256(dumps(config).encode("utf-8")).hexdigest()


class _Window:
    """One stream's rows published and not yet acknowledged, in id order: the cursor may move
    up to the highest id below which every row is acknowledged. A message id (mid) not of this
    stream is ignored, so each acknowledgement may be offered to every window."""

    def __init__(self) -> None:
        self._ids: OrderedDict[int, bool] = OrderedDict()  # row id -> acknowledged
        self._by_mid: dict[int, int] = {}

    def __len__(self) -> int:
        return len(self._ids)

    def sent(self, mid: int, attempt_id: int) -> None:
        self._ids[attempt_id] = False
        self._by_mid[mid] = attempt_id

    def acked(self, mid: int) -> None:
        attempt_id = self._by_mid.pop(mid, None)
        if attempt_id is not None and attempt_id in self._ids:
            self._ids[attempt_id] = True

    def contiguous(self) -> int | None:
        """Pop the acknowledged run at the front; its last id (None: nothing new)."""
        last = None
        while self._ids and self._ids[next(iter(self._ids))]:
            last, _ = self._ids.popitem(last=False)
        return last


class FleetPublisher:
    """Publishes this station's status and attempts to `[fleet] broker` (see the module doc)."""

    def __init__(
        self,
        config: Config,
        db_path: str | Path,
        request_status: StatusRequest,
        events: EventBus,
        *,
        window: int = 20,
        poll_s: float = 1.0,
    ) -> None:
        try:
            import paho.mqtt.client as mqtt
            from paho.mqtt.enums import CallbackAPIVersion
        except ImportError as exc:
            raise FleetError(
                "[fleet] broker is set but paho-mqtt is not installed: pip install 'mpo-station[fleet]'"
            ) from exc
        f = config.fleet
        self.station_id = fleet_station_id(config)
        self.prefix = fleet_prefix(config)
        self.window = window
        self.poll_s = poll_s
        self.rate = f.backlog_rate_per_s
        self._request_status = request_status
        self._events = events
        self._db_path = str(db_path)
        self._identity = {"station_id": self.station_id, "firmware": __version__, "config_sha256": config_hash(config)}
        password = read_password(f.password_file) if f.password_file else None
        scheme, rest = f.broker.split("://", 1)
        host, _, port = rest.rpartition(":")
        self.host, self.port = host.strip("[]"), int(port)

        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"mpo-station-{self.station_id}",
            clean_session=False,  # a persistent session: the broker keeps our state across drops
            protocol=mqtt.MQTTv311,
        )
        if f.username:
            client.username_pw_set(f.username, password)
        if scheme == "mqtts":
            client.tls_set(ca_certs=f.ca_file or None)
        client.will_set(self.topic("status"), self._offline("connection lost"), qos=1, retain=True)
        client.max_inflight_messages_set(2 * window + 4)  # the attempts' and events' windows, plus status
        client.reconnect_delay_set(RECONNECT_MIN_S, RECONNECT_MAX_S)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        self._client = client
        self._keepalive = f.keepalive_s

        self._wake = threading.Event()
        self._stop = threading.Event()
        self._acks: queue.SimpleQueue[int] = queue.SimpleQueue()  # mids acknowledged (paho's thread)
        self._connected = threading.Event()
        self._birth_due = False
        self._status_dirty = True
        self._status_asked = False
        self._snapshot: dict[str, Any] | None = None  # the newest, handed over by the loop
        self._published_status: dict[str, Any] | None = None
        self._published_backlog = -1
        self._backlog_checked = 0.0  # monotonic time the backlog was last counted
        self._window = _Window()  # attempts
        self._events_window = _Window()  # audit rows
        self._thread: threading.Thread | None = None
        self._reader: Store | None = None
        self._cursor: Store | None = None
        self.delivered = 0  # the attempts cursor, as last written
        self._read_upto = 0  # the newest attempt handed to the client
        self.events_delivered = 0  # the events cursor (audit ids), as last written
        self._events_read_upto = 0

    def topic(self, name: str) -> str:
        return f"{self.prefix}{name}"

    def connected(self) -> bool:
        """Connected to the broker now (CONNACK received, no drop seen since)."""
        return self._connected.is_set()

    @property
    def in_flight(self) -> int:
        """Attempts published and not yet acknowledged (at most `window`)."""
        return len(self._window)

    @property
    def events_in_flight(self) -> int:
        """Events (audit rows) published and not yet acknowledged (at most `window`)."""
        return len(self._events_window)

    # -- life --------------------------------------------------------------------------------
    def start(self) -> None:
        """Open the database connections, subscribe to the controller's events, start the
        thread; the connection to the broker is made (and re-made) in the background."""
        try:
            self._reader = Store(self._db_path, readonly=True)
            self._cursor = Store(self._db_path)  # its own connection: cursor writes only
        except StoreError as exc:
            raise FleetError(f"fleet: cannot open the station database: {exc}") from exc
        self.delivered = Outbox(self._reader).delivered("attempts")
        self._read_upto = self.delivered
        self.events_delivered = Outbox(self._reader).delivered("events")
        self._events_read_upto = self.events_delivered
        self._events.subscribe(self._on_event)
        self._client.connect_async(self.host, self.port, keepalive=self._keepalive)
        self._client.loop_start()
        self._thread = threading.Thread(target=self._run, name="fleet", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 3.0) -> None:
        """Announce offline (retained: a clean disconnect sends no last will) and disconnect.
        What was not acknowledged stays in the outbox for the next start."""
        self._events.unsubscribe(self._on_event)
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        if self._connected.is_set():
            info = self._client.publish(self.topic("status"), self._offline("stopped"), qos=1, retain=True)
            try:
                info.wait_for_publish(timeout)
            except (RuntimeError, ValueError):
                pass  # the connection went meanwhile: the broker's last will says offline
        self._client.disconnect()
        self._client.loop_stop()
        for store in (self._reader, self._cursor):
            if store is not None:
                store.close()

    # -- callbacks (paho's network thread, or the controller's loop): flags only ---------------
    def _on_event(self, event: Event) -> None:
        if isinstance(event, STATUS_EVENTS):
            self._status_dirty = True
            self._wake.set()

    def _on_status(self, snapshot: dict[str, Any]) -> None:
        self._snapshot = snapshot
        self._status_asked = False
        self._wake.set()

    def _on_connect(self, client: Any, _userdata: Any, _flags: Any, reason: Any, _props: Any) -> None:
        if reason.is_failure:
            log.warning("fleet: broker %s:%s refused the connection: %s", self.host, self.port, reason)
            return
        log.info("fleet: connected to %s:%s", self.host, self.port)
        self._birth_due = True
        self._connected.set()
        self._wake.set()

    def _on_disconnect(self, client: Any, _userdata: Any, _flags: Any, reason: Any, _props: Any) -> None:
        self._connected.clear()
        if not self._stop.is_set():
            log.warning("fleet: disconnected from %s:%s (%s); reconnecting", self.host, self.port, reason)
            # jitter: a floor of stations that lost the same broker does not come back in step
            client.reconnect_delay_set(random.randint(RECONNECT_MIN_S, 3 * RECONNECT_MIN_S), RECONNECT_MAX_S)

    def _on_publish(self, _client: Any, _userdata: Any, mid: int, _reason: Any, _props: Any) -> None:
        self._acks.put(mid)  # the broker has it (PUBACK); the cursor moves on the publisher's thread
        self._wake.set()

    # -- the publisher's thread ---------------------------------------------------------------
    def _run(self) -> None:
        tokens, last = 1.0, time.monotonic()
        while not self._stop.is_set():
            self._wake.wait(self.poll_s)
            self._wake.clear()
            try:
                self._take_acks()
                self._status()
                now = time.monotonic()
                tokens, last = min(max(1.0, self.rate), tokens + (now - last) * self.rate), now
                tokens -= self._publish_attempts(int(tokens))
                tokens -= self._publish_events(int(tokens))
                if tokens < 1.0 and self._connected.is_set():
                    self._wake.wait((1.0 - tokens) / self.rate)  # the next token; stop wakes it
            except (StoreError, sqlite3.Error) as exc:  # the database busy, locked or failing: try again
                log.error("fleet: %s; retrying", exc)
                self._stop.wait(self.poll_s)
            except Exception:  # never a silent end: the records wait in the outbox, the thread goes on
                log.exception("fleet: unexpected error in the publisher; retrying")
                self._stop.wait(self.poll_s)

    def _take_acks(self) -> None:
        while True:
            try:
                mid = self._acks.get_nowait()
            except queue.Empty:
                break
            self._window.acked(mid)
            self._events_window.acked(mid)
        if self._cursor is None:
            return
        upto = self._window.contiguous()
        if upto is not None:
            self.delivered = Outbox(self._cursor).advance_delivered("attempts", upto)
        upto = self._events_window.contiguous()
        if upto is not None:
            self.events_delivered = Outbox(self._cursor).advance_delivered("events", upto)

    def _status(self) -> None:
        if self._status_dirty and not self._status_asked:
            self._status_dirty = False
            self._status_asked = True
            self._request_status(self._on_status)
        snapshot = self._snapshot
        if snapshot is None or not self._connected.is_set() or self._reader is None:
            return
        changed = self._birth_due or snapshot != self._published_status
        now = time.monotonic()
        if not changed and now - self._backlog_checked < BACKLOG_STATUS_S:
            return  # the backlog alone (attempts not yet acknowledged) is republished at most every 5 s
        self._backlog_checked = now
        backlog = Outbox(self._reader).finished_attempts_count_after(self.delivered)
        if changed or backlog != self._published_backlog:
            self._birth_due = False
            self._published_status, self._published_backlog = snapshot, backlog
            status = {**snapshot, "schema": PAYLOAD_SCHEMA, "kind": "status", "online": True, **self._identity}
            status.update(backlog=backlog, at=iso(time.time()))
            self._client.publish(self.topic("status"), json.dumps(status), qos=1, retain=True)

    def _publish_attempts(self, budget: int) -> int:
        room = min(budget, self.window - len(self._window))
        if room <= 0 or not self._connected.is_set() or self._reader is None:
            return 0
        records = Outbox(self._reader).finished_attempts_after(self._read_upto, room)
        for record in records:
            payload = {"schema": PAYLOAD_SCHEMA, "kind": "attempt", "station_id": self.station_id}
            payload.update(attempt_row(record))
            info = self._client.publish(self.topic("attempts"), json.dumps(payload), qos=1)
            # paho keeps a QoS 1 message it could not send yet and sends it on reconnect: in flight
            self._window.sent(info.mid, record.id)
            self._read_upto = record.id
        return len(records)

    def _publish_events(self, budget: int) -> int:
        """The audit after the events cursor, one message per row (docs/fleet.md, events)."""
        room = min(budget, self.window - len(self._events_window))
        if room <= 0 or not self._connected.is_set() or self._reader is None:
            return 0
        rows = Outbox(self._reader).audit_after(self._events_read_upto, room)
        for row in rows:
            payload = {
                "schema": PAYLOAD_SCHEMA,
                "kind": "event",
                "station_id": self.station_id,
                "id": row["id"],
                "time": iso(row["t"]),
                "event": row["kind"],  # the audit's kind: fault, maintenance, cassette, fluid, ...
                "action": row["action"],
                "source": row["source"],
                "detail": row["detail"],
            }
            info = self._client.publish(self.topic("events"), json.dumps(payload), qos=1)
            self._events_window.sent(info.mid, row["id"])
            self._events_read_upto = row["id"]
        return len(rows)

    def _offline(self, why: str) -> str:
        return json.dumps({"schema": PAYLOAD_SCHEMA, "kind": "status", "online": False, "why": why, **self._identity})


def status_request(loop_post: Callable[[Callable[[], None]], None], snapshot: Callable[[], Any]) -> StatusRequest:
    """A StatusRequest that computes `snapshot()` (a StationStatus) on the controller's loop."""

    def request(deliver: Callable[[dict[str, Any]], None]) -> None:
        loop_post(lambda: deliver(snapshot().to_json()))

    return request
