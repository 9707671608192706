"""The fleet publisher (station/fleet.py) against a real Mosquitto on a free loopback port.

The station is the simulated bench on a real database file; a paho subscriber on the test's side
collects what the broker delivers. The broker is stopped (SIGSTOP), killed (SIGKILL) and
restarted on the same port; the station's process is killed for the last will.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import require_tool

from hw_sim.bench import SimBench
from station.config import Config
from station.fleet import FleetError, read_password
from station.reports import station_status
from station.store import Outbox, Store

mqtt = pytest.importorskip("paho.mqtt.client", reason="paho-mqtt not installed (pip install -e '.[test]')")
from paho.mqtt.enums import CallbackAPIVersion  # noqa: E402

PREFIX = "mpo-station/bench-1/"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(cond: Callable[[], object], timeout: float = 8.0, pump: SimBench | None = None) -> None:
    """Until `cond()` holds; the bench's loop runs meanwhile (its status snapshots are posted to it)."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {cond}")
        if pump is not None:
            pump.run_for(0.05)
        time.sleep(0.02)


class Broker:
    """A Mosquitto of the test's own: no persistence, anonymous, loopback only."""

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.conf = directory / "mosquitto.conf"
        self.conf.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["mosquitto", "-c", str(self.conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )

        def listening() -> bool:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return True
            except OSError:
                return False

        wait_for(listening, 10.0)

    def signal(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.kill()


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    require_tool("mosquitto", install="apt-get install mosquitto")
    b = Broker(tmp_path)
    b.start()
    yield b
    b.stop()


class Subscriber:
    """What the broker delivers under the station's prefix: (topic, payload, retained)."""

    def __init__(self, port: int) -> None:
        self.messages: list[tuple[str, dict, bool]] = []
        self._lock = threading.Lock()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="test-subscriber")
        self.client.on_connect = lambda c, *_: c.subscribe(PREFIX + "#", qos=1)
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _on_message(self, _c, _u, msg) -> None:
        with self._lock:
            self.messages.append((msg.topic, json.loads(msg.payload), bool(msg.retain)))

    def on(self, topic: str) -> list[tuple[dict, bool]]:
        with self._lock:
            return [(payload, retained) for t, payload, retained in self.messages if t == PREFIX + topic]

    def attempt_ids(self) -> list[int]:
        return [p["id"] for p, _ in self.on("attempts")]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def fleet_config(port: int) -> Config:
    return Config().replace("fleet", broker=f"mqtt://127.0.0.1:{port}", station_id="bench-1", keepalive_s=5)


def cursor(bench: SimBench) -> int:
    s = Store(bench.state_dir / "station.db", readonly=True)
    try:
        return Outbox(s).delivered("attempts")
    finally:
        s.close()


def clean_n(bench: SimBench, n: int) -> list[int]:
    ids = []
    for _ in range(n):
        result = bench.clean("female")
        assert result is not None and result.outcome == "cleaned"
        ids.append(result.id)
    return ids


def test_birth_is_a_retained_status_online_and_each_attempt_goes_out_once(broker, tmp_path):
    with SimBench(fleet_config(broker.port), tmp_path / "state") as bench:
        bench.station.start_fleet()
        assert bench.station.fleet is not None
        watch = Subscriber(broker.port)
        wait_for(lambda: watch.on("status"), pump=bench)
        born = watch.on("status")[0][0]
        ids = clean_n(bench, 3)
        wait_for(lambda: cursor(bench) == ids[-1], pump=bench)
        # updated on change: the newest status is the station's now, three cleans on
        now = station_status(bench.controller).to_json()
        assert now["cleans_remaining"] == born["cleans_remaining"] - 3
        wait_for(lambda: {**watch.on("status")[-1][0], **now} == watch.on("status")[-1][0], pump=bench)
        watch.close()
        # a subscriber that comes later gets it retained
        sub = Subscriber(broker.port)
        try:
            wait_for(lambda: sub.on("status"))
            (status, retained), *_ = sub.on("status")
            assert retained and status["online"] is True
            assert (status["schema"], status["kind"], status["station_id"]) == (1, "status", "bench-1")
            assert status["state"] == "idle" and status["cleans_remaining"] > 0 and "fluid_drops_left" in status
            assert len(status["config_sha256"]) == 64 and status["firmware"]
            assert sub.on("attempts") == [], "attempts are not retained: a late subscriber gets none"
            more = clean_n(bench, 2)
            wait_for(lambda: sub.attempt_ids() == more, pump=bench)
            wait_for(lambda: cursor(bench) == more[-1], pump=bench)
        finally:
            sub.close()
    assert len(set(ids + more)) == 5


def test_attempts_carry_the_station_and_the_full_record_in_order(broker, tmp_path):
    sub = Subscriber(broker.port)
    try:
        with SimBench(fleet_config(broker.port), tmp_path / "state") as bench:
            ids = clean_n(bench, 2)  # before the publisher starts: a backlog
            bench.station.start_fleet()
            ids += clean_n(bench, 2)
            wait_for(lambda: len(sub.attempt_ids()) == 4, pump=bench)
            records = {r.id: r for r in bench.station.store.attempts()}
        payloads = [p for p, _ in sub.on("attempts")]
        assert [p["id"] for p in payloads] == ids  # once each, oldest first
        for p in payloads:
            assert (p["schema"], p["kind"], p["station_id"]) == (1, "attempt", "bench-1")
            r = records[p["id"]]
            assert (p["outcome"], p["mode"], p["positions"], p["cassette_type"]) == (
                r.outcome,
                r.mode,
                r.positions,
                r.cassette_type,
            )
            assert p["started_at"].endswith("Z") and p["pass_s"] == r.pass_s
        # the orderly stop left the status retained offline (a clean disconnect sends no will)
        wait_for(lambda: sub.on("status") and sub.on("status")[-1][0]["online"] is False)
        assert sub.on("status")[-1][0]["why"] == "stopped"
    finally:
        sub.close()


def test_the_cursor_moves_only_after_the_broker_acknowledges(broker, tmp_path):
    with SimBench(fleet_config(broker.port), tmp_path / "state") as bench:
        bench.station.start_fleet()
        first = clean_n(bench, 1)
        wait_for(lambda: cursor(bench) == first[-1], pump=bench)
        broker.signal(signal.SIGSTOP)  # the broker takes the bytes (the kernel does) but answers nothing
        try:
            held = clean_n(bench, 2)
            time.sleep(1.5)  # the publisher has read and sent them meanwhile (poll 1 s, woken at once)
            bench.run_for(0.1)
            assert cursor(bench) == first[-1], "not acknowledged: not delivered"
        finally:
            broker.signal(signal.SIGCONT)
        wait_for(lambda: cursor(bench) == held[-1], pump=bench)


def test_a_broker_killed_and_restarted_gets_the_backlog_in_order_nothing_lost(broker, tmp_path):
    sub = None
    with SimBench(fleet_config(broker.port), tmp_path / "state") as bench:
        bench.station.start_fleet()
        before = clean_n(bench, 2)
        wait_for(lambda: cursor(bench) == before[-1], pump=bench)
        broker.kill()  # no persistence: the broker forgets everything, sessions included
        during = clean_n(bench, 5)  # the station cleans on: the records are the outbox
        assert cursor(bench) == before[-1]
        broker.start()  # the same port
        sub = Subscriber(broker.port)
        try:
            wait_for(lambda: cursor(bench) == during[-1], timeout=10.0, pump=bench)
            got = sub.attempt_ids()
            # what the subscriber saw: the backlog from the cursor on, oldest first (a message in
            # flight when the broker died may come twice: consumers drop duplicates by id)
            assert sorted(set(got)) == during and got == sorted(got), got
            assert [p["online"] for p, _ in sub.on("status")][-1] is True  # born again on the new broker
        finally:
            sub.close()


def test_a_broker_that_never_acknowledges_holds_at_most_the_window_in_flight(broker, tmp_path):
    with SimBench(fleet_config(broker.port), tmp_path / "state") as bench:
        bench.station.start_fleet()
        publisher = bench.station.fleet
        assert publisher is not None
        publisher.window = 3
        wait_for(publisher.connected, pump=bench)
        broker.signal(signal.SIGSTOP)  # connected, then silent: the kernel accepts the bytes, no PUBACK comes
        try:
            ids = clean_n(bench, 8)
            wait_for(lambda: publisher.in_flight == 3, pump=bench)
            time.sleep(1.5)  # more polls and wake-ups: nothing more is read from the database
            bench.run_for(0.1)
            assert publisher.in_flight == 3 and cursor(bench) == 0
        finally:
            broker.signal(signal.SIGCONT)
        wait_for(lambda: cursor(bench) == ids[-1], pump=bench)
        assert publisher.in_flight == 0


def test_the_last_will_says_offline_when_the_station_process_is_killed(broker, tmp_path):
    config = tmp_path / "station.toml"
    config.write_text(
        f'[fleet]\nbroker = "mqtt://127.0.0.1:{broker.port}"\nstation_id = "bench-1"\nkeepalive_s = 5\n',
        encoding="utf-8",
    )
    sub = Subscriber(broker.port)
    station = subprocess.Popen(
        [sys.executable, "-m", "station", "sim", "--headless", "--config", str(config), "--state-dir", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        wait_for(lambda: any(p["online"] for p, _ in sub.on("status")), timeout=15.0)
        station.send_signal(signal.SIGKILL)
        station.wait()
        wait_for(lambda: sub.on("status")[-1][0]["online"] is False)
        (will, retained) = sub.on("status")[-1]
        assert will["why"] == "connection lost" and will["station_id"] == "bench-1"
    finally:
        if station.poll() is None:
            station.kill()
        sub.close()
    late = Subscriber(broker.port)  # retained: whoever looks later sees the station offline
    try:
        wait_for(lambda: late.on("status"))
        assert late.on("status")[0] == (will, True)
    finally:
        late.close()


def test_a_password_file_others_can_read_is_refused(tmp_path):
    secret = tmp_path / "mqtt-password"
    secret.write_text("s3cret\n", encoding="utf-8")
    secret.chmod(0o640)
    with pytest.raises(FleetError, match=r"readable by others \(mode 0640\).*chmod 600"):
        read_password(str(secret))
    secret.chmod(0o600)
    assert read_password(str(secret)) == "s3cret"
    with pytest.raises(FleetError, match="cannot read it"):
        read_password(str(tmp_path / "missing"))


def test_station_run_does_not_import_paho_without_a_broker():
    code = "import sys, station.service, station.app; sys.exit('paho' in ' '.join(sys.modules))"
    assert subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).parent.parent).returncode == 0


def events_cursor(bench: SimBench) -> int:
    s = Store(bench.state_dir / "station.db", readonly=True)
    try:
        return Outbox(s).delivered("events")
    finally:
        s.close()


def test_the_audit_goes_out_as_events_a_fault_raised_and_cleared_a_refill_a_new_cassette(broker, tmp_path):
    from hw_sim import Fault

    sub = Subscriber(broker.port)
    try:
        with SimBench(fleet_config(broker.port), tmp_path / "state") as bench:
            bench.station.start_fleet()
            w, c = bench.world, bench.controller
            w.inject(Fault.JAM)
            bench.clean("female", remove=False)
            assert c.faults.code is not None
            w.remove()
            w.clear(Fault.JAM)
            w.press_button(0.1)  # the technician acknowledges at the panel
            bench.run_for(0.5)
            assert c.faults.code is None
            c.consumables.refill("console:test")
            c.consumables.declare_new("console:test")
            last = c.store.audit_log(1)[0]["id"]
            wait_for(lambda: events_cursor(bench) == last, pump=bench)
            audit = [dict(r) for r in reversed(c.store.audit_log(1000))]
        events = [p for p, _ in sub.on("events")][: len(audit)]  # then the orderly stop's own
        # every audit row once, oldest first, as the audit export writes it (kind -> event)
        assert [p["id"] for p in events] == [r["id"] for r in audit]
        for p, r in zip(events, audit, strict=True):
            assert (p["schema"], p["kind"], p["station_id"]) == (1, "event", "bench-1")
            assert (p["event"], p["action"], p["source"], p["detail"]) == (
                r["kind"],
                r["action"],
                r["source"],
                r["detail"],
            )
            assert p["time"].endswith("Z")
        seen = [(p["event"], p["action"]) for p in events]
        for expected in [("fault", "jam"), ("maintenance", "fault_clear"), ("fluid", "refill"), ("cassette", "new")]:
            assert expected in seen, (expected, seen)
        assert seen.index(("fault", "jam")) < seen.index(("maintenance", "fault_clear"))
    finally:
        sub.close()


def test_events_wait_in_the_outbox_while_the_broker_is_away(broker, tmp_path):
    with SimBench(fleet_config(broker.port), tmp_path / "state") as bench:
        bench.station.start_fleet()
        publisher = bench.station.fleet
        assert publisher is not None
        c = bench.controller
        delivered = max([r["id"] for r in c.store.audit_log(1)], default=0)
        wait_for(lambda: events_cursor(bench) == delivered, pump=bench)  # the audit so far is out
        broker.kill()
        for _ in range(3):
            c.consumables.refill("console:test")
        bench.run_for(0.5)
        assert events_cursor(bench) == delivered, "no broker: nothing acknowledged, nothing delivered"
        last = c.store.audit_log(1)[0]["id"]
        broker.start()
        sub = Subscriber(broker.port)
        try:
            wait_for(lambda: events_cursor(bench) == last, timeout=10.0, pump=bench)
            got = [p["id"] for p, _ in sub.on("events")]
            assert sorted(set(got)) == list(range(delivered + 1, last + 1)) and got == sorted(got), got
        finally:
            sub.close()
