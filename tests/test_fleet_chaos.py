"""Chaos on a floor of stations (issue 15's proof): nothing lost, nothing twice, in order.

Three simulated stations run as real processes (hw_sim/powercut.py with a `[fleet]` broker: the
firmware's own publisher, each with its own database and station id) cleaning continuously; one
`station fleet collect` process stores what they publish; one Mosquitto of the test's own, with
persistence on in a temporary directory (docs/fleet.md: the settings the guarantee needs). While
they clean, the broker is SIGKILLed and restarted on the same port three times, SIGSTOPped for
longer than the stations' keep-alive and continued, and one station is SIGKILLed while it has
attempts published and not yet acknowledged, then restarted on its own database (its outbox).
Then the stations stop cleaning, their backlogs drain, and each station's own database (the
truth) is held to the collector's: every attempt and every event there exactly once, stored in
each station's order; the retained status of each station right (online while up, offline
"stopped" after the orderly stop); the last will seen for the killed station while it was dead.

The counts go to standard output (`pytest -s`): the issue's closing note quotes them.
"""

from __future__ import annotations

import json
import os
import pwd
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from test_fleet import Broker, wait_for

from station.store import Outbox, Store

mqtt = pytest.importorskip("paho.mqtt.client", reason="paho-mqtt not installed (pip install -e '.[test]')")
from paho.mqtt.enums import CallbackAPIVersion  # noqa: E402

STATIONS = ("line-1", "line-2", "line-3")
VICTIM = "line-2"  # the station SIGKILLed mid-publish
KEEPALIVE_S = 5
BROKER_KILLS = 3
STOP_S = 2 * KEEPALIVE_S + 5  # the broker SIGSTOPped past the keep-alive (and past paho's ping timeout)
# What a restarted broker needs to keep what it acknowledged (docs/fleet.md, the collector): its
# database saved after every change, not every 30 minutes.
PERSISTENCE = "persistence true\nautosave_on_changes true\nautosave_interval 1\n"


class PersistentBroker(Broker):
    """The test's Mosquitto with persistence on in its own directory, restarted on its port."""

    def __init__(self, directory: Path) -> None:
        super().__init__(directory)
        store = directory / "mosquitto-db"
        store.mkdir()
        # run as root, Mosquitto drops to the user `mosquitto`, who may not write the test's
        # directory: then it persists nothing (and says so only in a log it cannot open either)
        self.conf.write_text(
            f"user {pwd.getpwuid(os.geteuid()).pw_name}\n"
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\n{PERSISTENCE}"
            f"persistence_location {store}/\nmax_queued_messages 0\n"
            f"log_dest file {directory / 'mosquitto.log'}\n"
            + "".join(f"log_type {t}\n" for t in ("error", "warning", "notice", "information"))
        )


class StatusWatch:
    """Every status message the broker delivers, (station, online, why), across broker restarts
    (paho reconnects; the subscription is made again on every connect)."""

    def __init__(self, port: int) -> None:
        self.seen: list[tuple[str, bool, str]] = []
        self._lock = threading.Lock()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="chaos-status-watch")
        self.client.reconnect_delay_set(0.2, 1)
        self.client.on_connect = lambda c, *_: c.subscribe("mpo-station/+/status", qos=1)
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port, keepalive=60)
        self.client.loop_start()

    def _on_message(self, _c: object, _u: object, msg: mqtt.MQTTMessage) -> None:
        status = json.loads(msg.payload)
        with self._lock:
            self.seen.append((msg.topic.split("/")[1], bool(status["online"]), str(status.get("why", ""))))

    def of(self, sid: str) -> list[tuple[bool, str]]:
        with self._lock:
            return [(online, why) for s, online, why in self.seen if s == sid]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def retained_status(port: int) -> dict[str, dict[str, object]]:
    """What a newcomer sees: each station's retained status."""
    got: dict[str, dict[str, object]] = {}
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="chaos-late-reader")
    client.on_connect = lambda c, *_: c.subscribe("mpo-station/+/status", qos=1)
    client.on_message = lambda _c, _u, msg: got.__setitem__(msg.topic.split("/")[1], json.loads(msg.payload))
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        wait_for(lambda: len(got) == len(STATIONS), timeout=10.0)
        return dict(got)
    finally:
        client.disconnect()
        client.loop_stop()


@dataclass
class StationProc:
    sid: str
    root: Path
    port: int
    proc: subprocess.Popen[str] | None = None

    @property
    def db(self) -> Path:
        return self.root / "state" / "station.db"

    def start(self) -> None:
        self.root.mkdir(exist_ok=True)
        config = self.root / "station.toml"
        config.write_text(
            f'[fleet]\nbroker = "mqtt://127.0.0.1:{self.port}"\nstation_id = "{self.sid}"\n'
            f"keepalive_s = {KEEPALIVE_S}\n",
            encoding="utf-8",
        )
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "hw_sim.powercut", "--state-dir", str(self.root / "state")]
            + ["--world", str(self.root / "world.json"), "--log", str(self.root / "log.txt")]
            + ["--seed", str(STATIONS.index(self.sid)), "--config", str(config), "--pace", "0.1"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        assert self.proc.stdout is not None
        assert self.proc.stdout.readline().strip() == "ready", self.proc.stderr.read() if self.proc.stderr else ""

    def signal(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def truth(self) -> tuple[list[int], list[int], int, int]:
        """From the station's own database, read-only: its finished attempt ids, its audit ids,
        and its two delivered cursors (attempts, events)."""
        store = Store(self.db, readonly=True)
        try:
            outbox = Outbox(store)
            attempts = [r.id for r in store.attempts(newest_first=False) if r.outcome]
            audit = [r["id"] for r in reversed(store.audit_log(1_000_000))]
            return attempts, audit, outbox.delivered("attempts"), outbox.delivered("events")
        finally:
            store.close()

    def drained(self) -> bool:
        """No attempt open, and the broker has acknowledged every attempt and event."""
        store = Store(self.db, readonly=True)
        try:
            if any(r.outcome is None for r in store.attempts(limit=5)):
                return False
        finally:
            store.close()
        attempts, audit, delivered, events_delivered = self.truth()
        return delivered == max(attempts, default=0) and events_delivered == max(audit, default=0)

    def backlog(self) -> int:
        attempts, _, delivered, _ = self.truth()
        return sum(1 for i in attempts if i > delivered)


def collected(db: Path, table: str) -> dict[str, list[int]]:
    """Station -> ids in the collector's table, in the order the collector stored them (rowid)."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        out: dict[str, list[int]] = {}
        for sid, row_id in con.execute(f"SELECT station_id, id FROM {table} ORDER BY rowid"):
            out.setdefault(sid, []).append(row_id)
        return out
    except sqlite3.OperationalError:  # the collector is making its tables
        return {}
    finally:
        con.close()


def rows(db: Path) -> int:
    return sum(map(len, collected(db, "attempts").values())) if db.exists() else 0


def grows(db: Path, timeout: float = 30.0) -> Callable[[], None]:
    """Wait until the collector has stored more attempts than now (the floor flows again)."""
    before = rows(db)
    return lambda: wait_for(lambda: rows(db) > before + len(STATIONS), timeout=timeout)


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[PersistentBroker]:
    from conftest import require_tool

    require_tool("mosquitto", install="apt-get install mosquitto")
    b = PersistentBroker(tmp_path)
    b.start()
    yield b
    b.stop()


def test_chaos_every_attempt_lands_once_in_order_with_the_right_status_and_last_wills(broker, tmp_path):
    began = time.monotonic()
    db = tmp_path / "fleet.db"
    collector = subprocess.Popen(
        [sys.executable, "-m", "station", "fleet", "collect", "--broker", f"mqtt://127.0.0.1:{broker.port}"]
        + ["--db", str(db)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    stations = {sid: StationProc(sid, tmp_path / sid, broker.port) for sid in STATIONS}
    watch = StatusWatch(broker.port)
    try:
        assert collector.stderr is not None
        lines = ""
        while "subscribed" not in lines:  # the collector's session exists before the stations publish
            line = collector.stderr.readline()
            assert line, f"the collector ended: {lines}"
            lines += line
        for station in stations.values():
            station.start()
        wait_for(lambda: all((True, "") in watch.of(sid) for sid in STATIONS), timeout=15.0)
        grows(db)()

        for _ in range(BROKER_KILLS):  # the broker dies mid-stream and comes back on its port
            time.sleep(2.0)
            broker.kill()
            time.sleep(1.0)  # the stations clean on: their records are the outbox
            broker.start()
            grows(db)()

        broker.signal(signal.SIGSTOP)  # the broker hangs: its sockets take bytes, nothing answers
        time.sleep(STOP_S)
        broker.signal(signal.SIGCONT)
        grows(db)()

        victim = stations[VICTIM]
        wait_for(lambda: victim.backlog() > 0, timeout=10.0)  # published, not all acknowledged
        victim.signal(signal.SIGKILL)
        assert victim.proc is not None
        victim.proc.wait()
        killed_with_backlog = victim.backlog()
        wait_for(lambda: watch.of(VICTIM)[-1] == (False, "connection lost"), timeout=10.0)  # its last will
        victim.start()  # the same database: its outbox
        wait_for(lambda: watch.of(VICTIM)[-1] == (True, ""), timeout=15.0)
        grows(db)()

        for station in stations.values():
            station.signal(signal.SIGUSR1)  # stop cleaning; the publishers drain their backlogs
        wait_for(lambda: all(s.drained() for s in stations.values()), timeout=60.0)
        truth = {sid: s.truth() for sid, s in stations.items()}
        deadline = time.monotonic() + 30.0  # the collector catches up (or the counts below say what it lacks)
        while time.monotonic() < deadline and not all(
            sorted(collected(db, "attempts").get(sid, [])) == truth[sid][0]
            and sorted(collected(db, "events").get(sid, [])) == truth[sid][1]
            for sid in STATIONS
        ):
            time.sleep(0.2)
        for sid in STATIONS:  # said at once, before anything else may fail
            have = collected(db, "attempts").get(sid, [])
            missing = sorted(set(truth[sid][0]) - set(have))
            print(f"{sid}: {len(truth[sid][0])} attempts, collected {len(have)}, missing {missing}")
        # each station's retained status: online, and (within the 5 s the backlog alone may lag) nothing pending
        wait_for(
            lambda: (
                {sid: (s["online"], s["backlog"]) for sid, s in retained_status(broker.port).items()}
                == dict.fromkeys(STATIONS, (True, 0))
            ),
            timeout=15.0,
        )

        for station in stations.values():
            station.signal(signal.SIGTERM)  # the orderly stop: offline, "stopped", retained
        for station in stations.values():
            assert station.proc is not None
            _, err = station.proc.communicate(timeout=20)
            assert station.proc.returncode == 0, err
        stopped = retained_status(broker.port)
        assert {sid: (s["online"], s["why"]) for sid, s in stopped.items()} == dict.fromkeys(
            STATIONS, (False, "stopped")
        )
        collector.send_signal(signal.SIGINT)
        _, err = collector.communicate(timeout=15)
        assert collector.returncode == 0 and "Traceback" not in err, err
    finally:
        watch.close()
        for p in [collector, *(s.proc for s in stations.values())]:
            if p is not None and p.poll() is None:
                p.kill()
                p.wait()

    report = next(line for line in err.splitlines() if "stopped:" in line)
    attempts, events = collected(db, "attempts"), collected(db, "events")
    final = {sid: s.truth() for sid, s in stations.items()}
    counts = {}
    for sid in STATIONS:
        # the orderly stop audits itself as its publisher stops: that event may be acknowledged
        # too late to move the cursor (it is then sent again at the next start, and ignored); it
        # may be in the collector or not, but nothing at or below a cursor may be missing
        assert final[sid][0] == truth[sid][0] and final[sid][1][: len(truth[sid][1])] == truth[sid][1]
        acked_events = [i for i in final[sid][1] if i <= final[sid][3]]
        got, got_events = attempts.get(sid, []), events.get(sid, [])
        counts[sid] = {
            "attempts": len(final[sid][0]),
            "events": len(final[sid][1]),
            "lost": len(set(final[sid][0]) - set(got)) + len(set(acked_events) - set(got_events)),
            "extra": len(set(got) - set(final[sid][0])) + len(set(got_events) - set(final[sid][1])),
            "in_order": got == sorted(got) and got_events == sorted(got_events),
            "wills": watch.of(sid).count((False, "connection lost")),
        }
    print(
        f"\nfleet chaos: {BROKER_KILLS} broker kills, broker stopped {STOP_S} s (keep-alive {KEEPALIVE_S} s), "
        f"{VICTIM} SIGKILLed with {killed_with_backlog} attempts unacknowledged; collector: {report.strip()}; "
        f"ran {time.monotonic() - began:.0f} s"
    )
    for sid, c in counts.items():
        print(f"  {sid}: {c}")
    for sid in STATIONS:
        # every attempt and every event of the station's own books in the collector, once each
        # (the table's key makes a second row impossible: the duplicates were ignored, counted above)
        assert attempts[sid] == final[sid][0], counts[sid]  # all of them, each once, in the station's order
        assert events[sid] == final[sid][1][: len(events[sid])], counts[sid]
        assert counts[sid]["lost"] == 0 and counts[sid]["extra"] == 0
    assert counts[VICTIM]["wills"] >= 1  # the broker published its last will when it died
