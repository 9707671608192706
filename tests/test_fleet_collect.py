"""`station fleet collect` (station/fleet_collect.py) against a real Mosquitto on a free loopback port.

Two simulated stations (SimBench, each with its own database and [fleet] broker set to the test's
broker) publish their attempts and events; the collector, in this process or as a real
`station fleet collect` process, stores them. The collector is SIGKILLed and restarted while the
stations keep publishing; the broker is killed and restarted; a station re-sends what it never saw
acknowledged. The stations' own databases are the truth the collector's database is held to.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from test_fleet import Broker, free_port, wait_for

from hw_sim.bench import SimBench
from station.cli import main
from station.config import Config
from station.fleet_collect import Choice, Collector, FleetDB
from station.fleet_watch import parse_broker
from station.records import attempt_row, read_csv
from station.store import Outbox, Store

mqtt = pytest.importorskip("paho.mqtt.client", reason="paho-mqtt not installed (pip install -e '.[test]')")
from paho.mqtt.enums import CallbackAPIVersion  # noqa: E402

STATIONS = ("line-1", "line-2")


def station_config(port: int, station_id: str) -> Config:
    return Config().replace("fleet", broker=f"mqtt://127.0.0.1:{port}", station_id=station_id, keepalive_s=5)


class Floor:
    """Simulated stations publishing to the broker; pumped together (their status snapshots are
    posted to their loops)."""

    def __init__(self, port: int, root: Path) -> None:
        self.benches = {sid: SimBench(station_config(port, sid), root / sid) for sid in STATIONS}
        for bench in self.benches.values():
            bench.station.start_fleet()

    def run_for(self, seconds: float) -> None:
        for bench in self.benches.values():
            bench.run_for(seconds / len(self.benches))

    def clean(self, n: int, **kwargs: str) -> None:
        for _ in range(n):
            for bench in self.benches.values():
                result = bench.clean("female", **kwargs)
                assert result is not None and result.outcome == "cleaned"

    def truth(self, sid: str) -> list[dict[str, object]]:
        """The station's own records, as the export writes them."""
        return [attempt_row(r) for r in self.benches[sid].station.store.attempts(newest_first=False)]

    def audit_ids(self, sid: str) -> list[int]:
        return [r["id"] for r in reversed(self.benches[sid].station.store.audit_log(100_000))]

    def delivered(self, sid: str, stream: str = "attempts") -> int:
        s = Store(self.benches[sid].state_dir / "station.db", readonly=True)
        try:
            return Outbox(s).delivered(stream)
        finally:
            s.close()

    def all_acknowledged(self) -> bool:
        """Every finished attempt and every audit row of every station acknowledged by the broker."""
        return all(
            self.delivered(sid) == max([0, *(int(str(r["id"])) for r in self.truth(sid))])
            and self.delivered(sid, "events") == max([0, *self.audit_ids(sid)])
            for sid in STATIONS
        )

    def close(self) -> None:
        for bench in self.benches.values():
            bench.close()


def collected(db: Path) -> dict[str, list[int]]:
    """(station -> attempt ids) in the collector's database, as stored: duplicates would show."""
    con = sqlite3.connect(db)
    try:
        out: dict[str, list[int]] = {}
        for sid, attempt_id in con.execute("SELECT station_id, id FROM attempts ORDER BY station_id, id"):
            out.setdefault(sid, []).append(attempt_id)
        return out
    finally:
        con.close()


def stations_seen(db: Path) -> set[str]:
    """The stations whose status the collector has stored (it has subscribed once they are all there)."""
    if not db.exists():
        return set()
    con = sqlite3.connect(db)
    try:
        return {sid for (sid,) in con.execute("SELECT station_id FROM stations")}
    except sqlite3.OperationalError:  # the collector is making its tables
        return set()
    finally:
        con.close()


def holds_everything(db: Path, floor: Floor) -> bool:
    if not db.exists():
        return False
    got = collected(db)
    return all(got.get(sid) == [int(str(r["id"])) for r in floor.truth(sid)] for sid in STATIONS)


def holds_every_event(db: Path, floor: Floor) -> bool:
    if not db.exists():
        return False
    con = sqlite3.connect(db)
    try:
        for sid in STATIONS:
            got = [i for (i,) in con.execute("SELECT id FROM events WHERE station_id = ? ORDER BY id", (sid,))]
            if got != floor.audit_ids(sid):
                return False
        return True
    finally:
        con.close()


class InProcess:
    """The collector on a thread of the test's process."""

    def __init__(self, port: int, db: Path) -> None:
        self.db = FleetDB(db)
        self.collector = Collector(parse_broker(f"mqtt://127.0.0.1:{port}"), self.db, client_id="test-collector")
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.collector.serve, args=(self.stop,), daemon=True)
        self.thread.start()
        wait_for(self.collector.subscribed.is_set)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        assert not self.thread.is_alive()
        self.db.close()


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    from conftest import require_tool

    require_tool("mosquitto", install="apt-get install mosquitto")
    b = Broker(tmp_path)
    b.start()
    yield b
    b.stop()


@pytest.fixture
def make_floor(broker: Broker, tmp_path: Path) -> Iterator[Callable[[], Floor]]:
    """The stations, started once the collector has subscribed: a broker keeps nothing for a
    subscriber it has never seen (docs/fleet.md: start the collector first)."""
    made: list[Floor] = []

    def make() -> Floor:
        made.append(Floor(broker.port, tmp_path))
        return made[-1]

    yield make
    for f in made:
        f.close()


def subscribed(proc: subprocess.Popen[str]) -> str:
    """The collector process's report lines up to the one saying it has subscribed."""
    assert proc.stderr is not None
    lines = ""
    while "subscribed" not in lines:
        line = proc.stderr.readline()
        assert line, f"the collector ended: {lines}"
        lines += line
    return lines


def start_collector(port: int, db: Path, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "station", "fleet", "collect", "--broker", f"mqtt://127.0.0.1:{port}", "--db", str(db)]
        + list(extra),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def fleet_records(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["fleet", "records", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_every_attempt_and_event_of_two_stations_is_collected_once_with_the_full_record(make_floor, broker, tmp_path):
    db = tmp_path / "fleet.db"
    collector = InProcess(broker.port, db)
    floor = make_floor()
    try:
        floor.clean(3)
        wait_for(lambda: holds_everything(db, floor), pump=floor)
        wait_for(floor.all_acknowledged, pump=floor)
        wait_for(lambda: holds_every_event(db, floor), pump=floor)
        for sid in STATIONS:
            # the collector's row is the station's own export row, station_id first
            assert [
                {k: v for k, v in row.items() if k != "station_id"}
                for row in collector.db.attempts(Choice(station=sid))
            ] == floor.truth(sid)
            events = collector.db.events(Choice(station=sid))
            assert [e["id"] for e in events] == floor.audit_ids(sid)
            assert all(e["station_id"] == sid for e in events)
        assert collector.collector.counts["duplicate"] == 0 and collector.collector.counts["rejected"] == 0
        # the stations' retained status is kept too: one row per station
        con = sqlite3.connect(db)
        try:
            statuses = dict(con.execute("SELECT station_id, online FROM stations").fetchall())
        finally:
            con.close()
        assert statuses == dict.fromkeys(STATIONS, 1)
    finally:
        collector.close()


def test_a_collector_sigkilled_while_stations_publish_loses_nothing_stores_nothing_twice(make_floor, broker, tmp_path):
    db = tmp_path / "fleet.db"
    first = start_collector(broker.port, db)
    try:
        assert "a new session" in subscribed(first)  # from now on the broker keeps what comes for it
        floor = make_floor()
        floor.clean(2)
        first.send_signal(signal.SIGKILL)  # mid-stream: whatever it was committing or acknowledging
        first.wait()
        floor.clean(3)  # the stations clean on; the broker queues for the collector's session
        wait_for(floor.all_acknowledged, pump=floor)
        assert not holds_everything(db, floor), "the killed collector cannot have the later attempts"
    finally:
        if first.poll() is None:
            first.kill()
    second = start_collector(broker.port, db)
    try:
        assert "session resumed" in subscribed(second)
        wait_for(lambda: holds_everything(db, floor), timeout=15.0, pump=floor)
        floor.clean(1)  # and it goes on collecting live
        wait_for(lambda: holds_everything(db, floor) and holds_every_event(db, floor), pump=floor)
        second.send_signal(signal.SIGINT)  # Ctrl-C
        _, err = second.communicate(timeout=10)
    finally:
        if second.poll() is None:
            second.kill()
    assert second.returncode == 0, err
    assert "Traceback" not in err and "stopped:" in err, err
    got = collected(db)
    for sid in STATIONS:
        ids = [int(str(r["id"])) for r in floor.truth(sid)]
        assert len(ids) == 6 and got[sid] == ids  # 6 each: every one, once, in order
    assert sum(map(len, got.values())) == 12


def test_what_a_station_resends_after_a_broker_restart_is_stored_once(make_floor, broker, tmp_path):
    db = tmp_path / "fleet.db"
    collector = InProcess(broker.port, db)
    floor = make_floor()
    try:
        floor.clean(2)
        wait_for(lambda: holds_everything(db, floor), pump=floor)
        wait_for(floor.all_acknowledged, pump=floor)
        station = floor.benches["line-1"].station
        station.stop_fleet()
        broker.kill()
        broker.start()  # no persistence: the collector's session is gone, it subscribes again
        wait_for(collector.collector.subscribed.is_set, timeout=10.0)
        # the station's acknowledgements went with the broker: its cursors are back at 0, so its
        # publisher sends everything again, as it does for what was in flight at a broker's death
        con = sqlite3.connect(floor.benches["line-1"].state_dir / "station.db")
        with con:
            con.execute("UPDATE delivered SET last_id = 0")
        con.close()
        resent = len(floor.truth("line-1")) + len(floor.audit_ids("line-1"))
        station.start_fleet()
        wait_for(lambda: collector.collector.counts["duplicate"] >= resent, timeout=10.0, pump=floor)
        floor.clean(1)  # new ones still land
        wait_for(lambda: holds_everything(db, floor), timeout=10.0, pump=floor)
        got = collected(db)
        assert got["line-1"] == [int(str(r["id"])) for r in floor.truth("line-1")] and len(got["line-1"]) == 3
        wait_for(lambda: holds_every_event(db, floor), pump=floor)  # each event once too
    finally:
        collector.close()


def test_the_floors_exports_filter_by_station_and_connector(make_floor, broker, tmp_path, capsys):
    db = tmp_path / "fleet.db"
    collector = InProcess(broker.port, db)
    floor = make_floor()
    try:
        floor.clean(1, scan="CBL-0001-A")
        floor.clean(1, scan="CBL-0002-A")
        floor.clean(1)
        wait_for(lambda: holds_everything(db, floor) and holds_every_event(db, floor), pump=floor)
    finally:
        collector.close()
    code, out, err = fleet_records(capsys, "--db", str(db), "--format", "csv")
    assert code == 0, err
    rows = read_csv(out)
    assert len(rows) == 6 and list(rows[0])[:3] == ["station_id", "id", "started_at"]
    code, out, err = fleet_records(capsys, "--db", str(db), "--format", "csv", "--connector", "CBL-0001-A")
    assert code == 0, err
    assert sorted((r["station_id"], r["connector"], r["cable"]) for r in read_csv(out)) == [
        ("line-1", "CBL-0001-A", "CBL-0001"),
        ("line-2", "CBL-0001-A", "CBL-0001"),
    ]
    code, out, err = fleet_records(capsys, "--db", str(db), "--format", "json", "--station", "line-2")
    assert code == 0, err
    mine = json.loads(out)
    assert [r["station_id"] for r in mine] == ["line-2"] * 3
    assert [{k: v for k, v in r.items() if k != "station_id"} for r in mine] == floor.truth("line-2")
    code, out, err = fleet_records(
        capsys, "--db", str(db), "--format", "json", "--station", "line-1", "--cable", "CBL-0002"
    )
    assert [(r["station_id"], r["connector"]) for r in json.loads(out)] == [("line-1", "CBL-0002-A")]
    code, out, err = fleet_records(capsys, "--db", str(db), "--format", "csv", "--events", "--station", "line-1")
    assert code == 0, err
    events = read_csv(out)
    assert list(events[0]) == ["station_id", "id", "time", "kind", "action", "source", "detail"]
    assert [int(e["id"]) for e in events] == floor.audit_ids("line-1")
    assert ("scan", "connector", "CBL-0001-A") in [(e["kind"], e["action"], e["detail"]) for e in events]
    code, out, err = fleet_records(capsys, "--db", str(db))  # no format: the summary
    assert code == 0 and "line-1: 3 attempts (cleaned 3)" in out and "line-2: 3 attempts (cleaned 3)" in out, out
    code, out, err = fleet_records(capsys, "--db", str(db), "--format", "csv", "--events", "--connector", "X")
    assert code == 2 and "--connector chooses attempts" in err
    code, out, err = fleet_records(capsys, "--db", str(tmp_path / "none.db"), "--format", "csv")
    assert code == 2 and "no fleet database" in err and not (tmp_path / "none.db").exists()
    code, out, err = fleet_records(capsys, "--db", str(db), "--format", "csv", "--since", "yesterday")
    assert code == 2 and "not a date" in err


def test_messages_outside_the_contract_are_kept_apart_and_collecting_goes_on(broker, tmp_path):
    db = tmp_path / "fleet.db"
    collector = InProcess(broker.port, db)
    try:
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="not-a-station")
        client.connect("127.0.0.1", broker.port)
        client.loop_start()
        good = {"schema": 1, "kind": "event", "station_id": "line-9", "id": 1, "time": "2026-11-24T10:00:00.000Z"}
        good.update(event="fluid", action="refill", source="panel", detail="")
        for topic, payload in [
            ("mpo-station/line-9/attempts", b"not json"),
            (
                "mpo-station/line-9/attempts",
                json.dumps({"schema": 1, "kind": "attempt", "station_id": "line-8", "id": 1}),
            ),
            ("mpo-station/line-9/events", json.dumps({**good, "id": "one"})),
            # valid JSON with values no column holds (the collector must neither stall nor die)
            (
                "mpo-station/line-9/attempts",
                json.dumps({**good, "kind": "attempt", "started_at": good["time"], "connector": {"x": 1}}),
            ),
            ("mpo-station/line-9/events", json.dumps({**good, "id": 2**64})),
            ("mpo-station/line-9/events", json.dumps(good)),
        ]:
            client.publish(topic, payload, qos=1).wait_for_publish(5)
        client.disconnect()
        client.loop_stop()
        wait_for(lambda: sum(collector.collector.counts.values()) == 6)
        assert collector.collector.counts == {"stored": 1, "duplicate": 0, "status": 0, "rejected": 5}
        assert collector.db.events() == [
            {
                "station_id": "line-9",
                "id": 1,
                "time": "2026-11-24T10:00:00.000Z",
                "kind": "fluid",
                "action": "refill",
                "source": "panel",
                "detail": "",
            }
        ]
        con = sqlite3.connect(db)
        try:
            whys = [why for (why,) in con.execute("SELECT why FROM rejected ORDER BY id")]
        finally:
            con.close()
        assert whys[0].startswith("not JSON") and "'line-8' published under 'line-9'" in whys[1]
        assert "id 'one'" in whys[2]
        assert "connector: dict" in whys[3] and "is not a record id" in whys[4]
        assert collector.db.attempts() == []
    finally:
        collector.close()


def test_an_unreachable_broker_is_said_and_retried_then_collected_from_and_ctrl_c_exits_0(tmp_path):
    from conftest import require_tool

    require_tool("mosquitto", install="apt-get install mosquitto")
    port = free_port()
    db = tmp_path / "fleet.db"
    proc = start_collector(port, db)
    broker = Broker(tmp_path)
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        assert "collecting every station's attempts and events" in line, line
        line = proc.stderr.readline()
        assert f"cannot reach the broker at 127.0.0.1:{port}" in line and "retrying in 1 s" in line, line
        broker.port = port  # the broker comes up where the collector looks
        broker.conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
        broker.start()
        subscribed(proc)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=10)
        assert proc.returncode == 0 and "Traceback" not in err and "stopped: 0 new rows" in err, err
    finally:
        if proc.poll() is None:
            proc.kill()
        broker.stop()


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--broker", "http://x:1"], "not a broker URL"),
        (["--broker", "mqtt://127.0.0.1:1883", "--password-file", "pw"], "--password-file needs --username"),
        (["--broker", "mqtt://127.0.0.1:1883", "--ca-file", "ca.pem"], "--ca-file is for mqtts://"),
        (["--broker", "mqtt://127.0.0.1:1883", "--client-id", "a/b"], "--client-id 'a/b'"),
    ],
)
def test_bad_collect_arguments_are_named_and_exit_2(args, says, tmp_path, capsys):
    code = main(["fleet", "collect", "--db", str(tmp_path / "fleet.db"), *args])
    assert code == 2 and says in capsys.readouterr().err
