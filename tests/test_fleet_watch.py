"""`station fleet watch` and the broker set-up of docs/fleet.md, against a real Mosquitto.

Stations are the simulated firmware in processes of their own (killed with SIGKILL for the last
will) or SimBench in the test's process; the watcher is the CLI in a subprocess. The TLS broker
is the set-up docs/fleet.md gives: a CA and a server certificate made with openssl, passwords
made with mosquitto_passwd, the per-station ACL pattern.
"""

from __future__ import annotations

import getpass
import json
import logging
import re
import signal
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import require_tool
from test_fleet import free_port, wait_for

from hw_sim.bench import SimBench
from station.config import Config
from station.fleet_watch import Floor, WatchError, cells, parse_broker, table

mqtt = pytest.importorskip("paho.mqtt.client", reason="paho-mqtt not installed (pip install -e '.[test]')")
from paho.mqtt.enums import CallbackAPIVersion  # noqa: E402

ROOT_DIR = Path(__file__).parent.parent


class Mosquitto:
    """A Mosquitto of the test's own on a free loopback port; its log (every subscription and
    denial) is read from its standard error."""

    def __init__(self, directory: Path, settings: str = "allow_anonymous true\n") -> None:
        self.port = free_port()
        self.conf = directory / "mosquitto.conf"
        self.conf.write_text(
            # run as the test's user (as root it would switch to `mosquitto`, who cannot read tmp files)
            f"user {getpass.getuser()}\nper_listener_settings false\npersistence false\n"
            f"log_dest stderr\nlog_type all\nlistener {self.port} 127.0.0.1\n{settings}",
            encoding="utf-8",
        )
        self.lines: list[str] = []
        self.proc = subprocess.Popen(["mosquitto", "-c", str(self.conf)], stderr=subprocess.PIPE, text=True)
        err = self.proc.stderr
        assert err is not None
        threading.Thread(target=lambda: self.lines.extend(iter(err.readline, "")), daemon=True).start()
        wait_for(lambda: self.logged("Opening ipv4 listen socket") or self.proc.poll() is not None, 10.0)
        assert self.proc.poll() is None, "".join(self.lines)

    def logged(self, text: str) -> bool:
        return any(text in line for line in list(self.lines))

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    require_tool("mosquitto", install="apt-get install mosquitto")
    b = Mosquitto(tmp_path)
    yield b
    b.stop()


def watch(*args: str, once: float = 3.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "station", "fleet", "watch", *args, "--once", str(once)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT_DIR,
    )


def start_watch(*args: str, once: float) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "station", "fleet", "watch", *args, "--once", str(once)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT_DIR,
    )


def rows(output: str) -> dict[str, dict[str, str]]:
    """The watcher's table as {station: {column: cell}} (columns split at two or more spaces)."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("STATION"))
    header = re.split(r" {2,}", lines[start])
    return {
        (cells := re.split(r" {2,}", line))[0]: dict(zip(header, cells, strict=True)) for line in lines[start + 1 :]
    }


# -- a station in a process of its own: the simulated firmware publishing to the broker ---------

STATION = textwrap.dedent(
    """
    import sys, threading, queue
    from hw_sim.bench import SimBench
    from station.config import Config
    config = Config().replace("fleet", broker=sys.argv[1], station_id=sys.argv[2], keepalive_s=5)
    commands = queue.SimpleQueue()
    threading.Thread(target=lambda: [commands.put(line.strip()) for line in sys.stdin], daemon=True).start()
    with SimBench(config, sys.argv[3]) as bench:
        bench.station.start_fleet()
        while True:
            bench.run_for(0.05)  # the loop answers the publisher's status requests
            while not commands.empty():
                commands.get()
                print("cleaned", bench.clean("female").id, flush=True)
    """
)


@dataclass
class StationProcess:
    proc: subprocess.Popen[str]
    lines: list[str]

    def clean(self) -> int:
        before = len(self.lines)
        assert self.proc.stdin is not None
        self.proc.stdin.write("clean\n")
        self.proc.stdin.flush()
        wait_for(lambda: len(self.lines) > before, timeout=20.0)
        return int(self.lines[before].split()[1])


def start_station(port: int, station_id: str, state_dir: Path) -> StationProcess:
    proc = subprocess.Popen(
        [sys.executable, "-c", STATION, f"mqtt://127.0.0.1:{port}", station_id, str(state_dir)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=ROOT_DIR,
    )
    lines: list[str] = []
    assert proc.stdout is not None
    out = proc.stdout
    threading.Thread(target=lambda: lines.extend(iter(out.readline, "")), daemon=True).start()
    return StationProcess(proc, lines)


def retained_status(port: int, station_id: str, **auth: str) -> dict:
    """The status the broker keeps for `station_id` now (what a new subscriber gets first)."""
    got: list[dict] = []
    client = mqtt.Client(CallbackAPIVersion.VERSION2)
    client.on_connect = lambda c, *_: c.subscribe(f"mpo-station/{station_id}/status", qos=1)
    client.on_message = lambda _c, _u, msg: got.append(json.loads(msg.payload))
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        wait_for(lambda: got)
        return got[0]
    finally:
        client.disconnect()
        client.loop_stop()


def test_watch_shows_every_station_live_and_a_killed_one_offline(broker, tmp_path):
    stations = {sid: start_station(broker.port, sid, tmp_path / sid) for sid in ("MPO-0001", "MPO-0002")}
    try:
        for sid in stations:
            wait_for(lambda sid=sid: retained_status(broker.port, sid).get("online") is True, timeout=20.0)
        watcher = start_watch("--broker", f"mqtt://127.0.0.1:{broker.port}", once=8)
        # attempts are not retained: the watcher sees those published after it subscribed
        wait_for(lambda: broker.logged("mpo-station/+/attempts"), timeout=10.0)
        last = {sid: [s.clean(), s.clean()][-1] for sid, s in stations.items()}
        out, err = watcher.communicate(timeout=30)
        assert watcher.returncode == 0, err
        floor = rows(out)
        assert set(floor) == set(stations)
        for sid, row in floor.items():
            assert row["ONLINE"] == "yes" and row["STATE"] == "idle" and row["CASSETTE"] == "standard"
            assert row["LAST RESULT"] == f"#{last[sid]} cleaned"
            assert row["FLUID"].isdigit() and row["CLEANS LEFT"].isdigit() and row["BACKLOG"].isdigit()
            assert row["FAULT"] == "-" and row["SEEN"] != "-"

        stations["MPO-0001"].proc.send_signal(signal.SIGKILL)  # its socket closes: the broker sends its will
        stations["MPO-0001"].proc.wait()
        wait_for(lambda: retained_status(broker.port, "MPO-0001").get("online") is False)
        after = watch("--broker", f"mqtt://127.0.0.1:{broker.port}", once=2)
        assert after.returncode == 0, after.stderr
        floor = rows(after.stdout)
        assert floor["MPO-0001"]["ONLINE"] == "NO (connection lost)"
        assert floor["MPO-0002"]["ONLINE"] == "yes" and floor["MPO-0002"]["STATE"] == "idle"
    finally:
        for s in stations.values():
            if s.proc.poll() is None:
                s.proc.kill()
            s.proc.wait()


def test_the_floor_keeps_what_it_knew_of_a_station_that_went_offline():
    floor = Floor(clock=lambda: 1_800_000_000.0)
    status = {"kind": "status", "online": True, "station_id": "A", "state": "idle", "cassette": "standard"}
    floor.message("mpo-station/A/status", json.dumps({**status, "backlog": 3, "fault": "jam"}).encode(), True)
    for i in (5, 7, 6, 7):  # a backlog arrives oldest first; a repeat is dropped by id
        attempt = {"kind": "attempt", "station_id": "A", "id": i, "outcome": "failed" if i == 7 else "cleaned"}
        floor.message(
            "mpo-station/A/attempts", json.dumps({**attempt, "reason": "jam" if i == 7 else ""}).encode(), False
        )
    floor.message("mpo-station/A/status", b'{"kind": "status", "online": false, "why": "connection lost"}', False)
    floor.message("mpo-station/B/status", b"not json", False)  # not the contract: not a station
    floor.message("elsewhere/C/status", json.dumps(status).encode(), False)
    (row,) = floor.rows()
    assert cells(row) == (
        "A",
        "NO (connection lost)",
        "idle",
        "standard",
        "-",
        "-",
        "#7 failed (jam)",
        "jam",
        "3",
        "2027-01-15 08:00:00Z",
    )
    assert "(no station seen yet)" in table([], "fleet")


@pytest.mark.parametrize("url", ["foo", "http://host:1883", "mqtt://host", "mqtt://host:99999", "mqtt://a b:1"])
def test_a_bad_broker_url_is_named_and_exits_2(url):
    with pytest.raises(WatchError, match="not a broker URL"):
        parse_broker(url)
    result = watch("--broker", url, once=1)
    assert result.returncode == 2 and "not a broker URL" in result.stderr and "Traceback" not in result.stderr


def test_an_unreachable_broker_is_retried_and_said_plainly():
    port = free_port()  # nothing listens there
    result = watch("--broker", f"mqtt://127.0.0.1:{port}", once=2.5)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert f"cannot reach the broker at 127.0.0.1:{port}: Connection refused; retrying in 1 s" in result.stderr
    assert "gave up after 2.5 s" in result.stderr and result.stdout == ""


def test_watch_refuses_a_password_file_others_can_read(tmp_path):
    secret = tmp_path / "pw"
    secret.write_text("x\n", encoding="utf-8")
    secret.chmod(0o644)
    result = watch("--broker", "mqtt://127.0.0.1:1883", "--username", "sup", "--password-file", str(secret))
    assert result.returncode == 2 and "chmod 600" in result.stderr and "Traceback" not in result.stderr


# -- TLS, passwords and the per-station ACL: the set-up of docs/fleet.md -------------------------

PASSWORDS = {"MPO-0001": "one-secret", "MPO-0002": "two-secret", "supervisor": "sup-secret"}
ACL = "pattern readwrite mpo-station/%u/#\n\nuser supervisor\ntopic read mpo-station/#\n"


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture
def secure_broker(tmp_path: Path) -> Iterator[Mosquitto]:
    require_tool("mosquitto", "mosquitto_passwd", "openssl", install="apt-get install mosquitto openssl")
    d = tmp_path / "broker"
    d.mkdir()
    openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=MPO test CA",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        "-keyout", "ca.key", "-out", "ca.crt", cwd=d,
    )  # fmt: skip
    openssl(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=localhost",
        "-keyout",
        "broker.key",
        "-out",
        "broker.csr",
        cwd=d,
    )
    (d / "broker.ext").write_text(
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth\nauthorityKeyIdentifier=keyid\nsubjectKeyIdentifier=hash\n",
        encoding="utf-8",
    )
    openssl(
        "x509", "-req", "-in", "broker.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-days", "2",
        "-extfile", "broker.ext", "-out", "broker.crt", cwd=d,
    )  # fmt: skip
    passwd = d / "passwd"
    for i, (user, password) in enumerate(PASSWORDS.items()):
        create = ["-c"] if i == 0 else []
        subprocess.run(
            ["mosquitto_passwd", *create, "-b", str(passwd), user, password], check=True, capture_output=True
        )
    (d / "acl").write_text(ACL, encoding="utf-8")
    b = Mosquitto(
        d,
        f"certfile {d / 'broker.crt'}\nkeyfile {d / 'broker.key'}\ncafile {d / 'ca.crt'}\n"
        f"allow_anonymous false\npassword_file {passwd}\nacl_file {d / 'acl'}\n",
    )
    yield b
    b.stop()


def secret_file(directory: Path, user: str, password: str | None = None) -> str:
    path = directory / f"{user}.password"
    path.write_text((password or PASSWORDS[user]) + "\n", encoding="utf-8")
    path.chmod(0o600)
    return str(path)


def tls_station(broker: Mosquitto, tmp_path: Path, user: str, **fleet: str) -> Config:
    values = dict(
        broker=f"mqtts://127.0.0.1:{broker.port}",
        station_id=user,
        username=user,
        password_file=secret_file(tmp_path, user),
        ca_file=str(broker.conf.parent / "ca.crt"),
        keepalive_s=5,
    )
    return Config().replace("fleet", **{**values, **fleet})


class Supervisor:
    """A subscriber to mpo-station/# over TLS as the `supervisor` user."""

    def __init__(self, broker: Mosquitto) -> None:
        self.messages: list[tuple[str, dict]] = []
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2)
        self.client.username_pw_set("supervisor", PASSWORDS["supervisor"])
        self.client.tls_set(ca_certs=str(broker.conf.parent / "ca.crt"))
        self.client.on_connect = lambda c, *_: c.subscribe("mpo-station/#", qos=1)
        self.client.on_message = lambda _c, _u, msg: self.messages.append((msg.topic, json.loads(msg.payload)))
        self.client.connect("127.0.0.1", broker.port)
        self.client.loop_start()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def delivered(bench: SimBench) -> int:
    publisher = bench.station.fleet
    assert publisher is not None
    return publisher.delivered


def test_a_station_publishes_over_tls_with_its_password_and_the_watcher_logs_in(secure_broker, tmp_path):
    with SimBench(tls_station(secure_broker, tmp_path, "MPO-0001"), tmp_path / "s1") as bench:
        bench.station.start_fleet()
        attempt = bench.clean("female")
        assert attempt is not None
        wait_for(lambda: delivered(bench) == attempt.id, pump=bench)  # the broker acknowledged it
        creds = ["--username", "supervisor", "--password-file", secret_file(tmp_path, "supervisor")]
        url = f"mqtts://127.0.0.1:{secure_broker.port}"
        ca = ["--ca-file", str(secure_broker.conf.parent / "ca.crt")]
        seen = watch("--broker", url, *creds, *ca, once=2)
        assert seen.returncode == 0, seen.stderr
        row = rows(seen.stdout)["MPO-0001"]
        assert row["ONLINE"] == "yes" and row["STATE"] == "idle"
        # the watcher with a wrong password is refused: said plainly, exit 2
        wrong = watch(
            "--broker", url, "--username", "supervisor", "--password-file", secret_file(tmp_path, "x", "no"), *ca
        )
        assert wrong.returncode == 2 and "Traceback" not in wrong.stderr
        assert "refused the watcher: Not authorized" in wrong.stderr
        # and without the CA the broker's certificate is not trusted: retried, said plainly
        untrusted = watch("--broker", url, *creds, once=1.5)
        assert untrusted.returncode == 1 and "CERTIFICATE_VERIFY_FAILED" in untrusted.stderr


def test_a_station_with_a_wrong_password_is_refused_and_keeps_cleaning(secure_broker, tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="station.fleet")
    config = tls_station(
        secure_broker, tmp_path, "MPO-0001", password_file=secret_file(tmp_path, "wrong", "not-the-password")
    )
    with SimBench(config, tmp_path / "s1") as bench:
        bench.station.start_fleet()
        wait_for(lambda: "refused the connection: Not authorized" in caplog.text, pump=bench)
        results = [bench.clean("female") for _ in range(2)]
        assert [r.outcome for r in results if r is not None] == ["cleaned", "cleaned"]
        assert delivered(bench) == 0  # nothing acknowledged: it all stays in the outbox


def test_the_acl_stops_a_station_publishing_under_another_stations_prefix(secure_broker, tmp_path):
    supervisor = Supervisor(secure_broker)
    honest = tls_station(secure_broker, tmp_path, "MPO-0001")
    # MPO-0002 logs in with its own user and password, and publishes under MPO-0001's prefix
    rogue = tls_station(secure_broker, tmp_path, "MPO-0002", topic_prefix="mpo-station/MPO-0001/")
    try:
        with SimBench(honest, tmp_path / "s1") as good, SimBench(rogue, tmp_path / "s2") as bad:
            good.station.start_fleet()
            bad.station.start_fleet()
            ok, forged = good.clean("female"), bad.clean("female")
            assert ok is not None and forged is not None
            wait_for(lambda: delivered(good) == ok.id and delivered(bad) == forged.id, pump=good)
            wait_for(lambda: any(t.endswith("/attempts") for t, _ in supervisor.messages))
            assert secure_broker.logged("Denied PUBLISH from mpo-station-MPO-0002")
        senders = {(topic, payload["station_id"]) for topic, payload in supervisor.messages}
        assert ("mpo-station/MPO-0001/attempts", "MPO-0001") in senders
        assert not any(station == "MPO-0002" for _, station in senders), senders
    finally:
        supervisor.close()
