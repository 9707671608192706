"""The service's conversation with systemd and its orderly stop.

The notify protocol is checked against a real AF_UNIX datagram socket standing in for
systemd; SIGTERM against a real subprocess of the simulated station.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import uuid

import pytest
import serial
from gpiozero.pins.mock import MockFactory

from station.config import Config
from station.domain import FaultCode, Reason
from station.reports import station_status
from station.sdnotify import Notifier
from station.service import Service


class FakeSystemd:
    """Receives notify datagrams like systemd does."""

    def __init__(self, address: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(address)
        self.sock.settimeout(0.05)
        self.messages: list[tuple[float, str]] = []

    def collect(self, seconds: float) -> list[tuple[float, str]]:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            self.messages.append((time.monotonic(), data.decode()))
        return self.messages

    def wait_for(self, field: str, timeout: float = 10.0) -> float:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            for t, msg in self.messages:
                if field in msg.split("\n"):
                    return t
            self.collect(0.1)
        raise AssertionError(f"no {field} within {timeout} s; got {[m for _, m in self.messages]}")

    def pings(self) -> list[float]:
        return [t for t, msg in self.messages if "WATCHDOG=1" in msg.split("\n")]

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def systemd(tmp_path):
    fake = FakeSystemd(str(tmp_path / "notify.sock"))
    yield fake
    fake.close()


def test_notifier_talks_to_a_path_socket(systemd, tmp_path):
    n = Notifier({"NOTIFY_SOCKET": str(tmp_path / "notify.sock")})
    n.ready("idle")
    n.status("fault (jam)")
    n.stopping()
    n.close()
    got = [m for _, m in systemd.collect(0.3)]
    assert got == ["READY=1\nSTATUS=idle", "STATUS=fault (jam)", "STOPPING=1\nSTATUS=stopping"]


def test_notifier_talks_to_an_abstract_socket():
    name = f"mpo-test-{uuid.uuid4().hex}"
    fake = FakeSystemd("\0" + name)
    try:
        n = Notifier({"NOTIFY_SOCKET": "@" + name})
        n.ready("idle")
        assert [m for _, m in fake.collect(0.3)] == ["READY=1\nSTATUS=idle"]
    finally:
        fake.close()


def test_without_systemd_every_call_is_a_no_op():
    n = Notifier({})
    assert not n.enabled and n.watchdog_interval is None
    n.ready("idle")
    n.heartbeat()
    assert n.send("READY=1") is False


def test_watchdog_is_for_this_process_only():
    assert Notifier({"WATCHDOG_USEC": "4000000", "WATCHDOG_PID": "1"}).watchdog_interval is None
    assert Notifier({"WATCHDOG_USEC": "4000000", "WATCHDOG_PID": str(os.getpid())}).watchdog_interval == 2.0


def make_service(tmp_path, address: str, factory: MockFactory) -> Service:
    config = Config().replace("console", port="")  # no serial console in this test
    notifier = Notifier({"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "200000"})
    return Service(config, str(tmp_path / "state"), factory, notifier)


def test_ready_after_start_up_then_pings_from_the_controller_loop_which_stop_when_it_hangs(systemd, tmp_path):
    factory = MockFactory()
    service = make_service(tmp_path, str(tmp_path / "notify.sock"), factory)
    try:
        service.start()
        ready_at = systemd.wait_for("READY=1")
        systemd.collect(1.0)
        pings = [t for t in systemd.pings() if t >= ready_at]
        assert len(pings) >= 4, "the controller loop should ping about every 0.1 s"

        # The controller hangs: a handler that does not return. The pings must stop.
        service.loop.post(lambda: time.sleep(1.5))
        time.sleep(0.2)
        hung_from = time.monotonic()
        systemd.collect(1.0)
        assert not [t for t in systemd.pings() if hung_from <= t < hung_from + 1.0]
        systemd.collect(1.0)  # and resume once it runs again
        assert [t for t in systemd.pings() if t > hung_from + 1.0]
    finally:
        service.stop("test over")
    systemd.wait_for("STOPPING=1")


def test_a_failed_start_up_check_leaves_the_station_in_fault_with_ready_sent(systemd, tmp_path):
    factory = MockFactory()
    service = make_service(tmp_path, str(tmp_path / "notify.sock"), factory)
    try:
        factory.pin(Config().pins.cassette_present).drive_low()  # a cassette is fitted
        factory.pin(Config().pins.gate_a).drive_low()  # gate A reads blocked at rest
        service.start()
        systemd.wait_for("READY=1")
        status = service.loop.call_sync(lambda: station_status(service.controller))
        assert status.state == "fault" and status.fault is FaultCode.STARTUP
        assert "gate A" in service.controller.faults.detail
        msgs = " ".join(m for _, m in systemd.messages)
        assert "STATUS=fault: swipe gate A" in msgs
        # outputs safe while it waits for a technician
        assert service.station.hardware.wheel.enabled is False
        assert service.station.hardware.dispenser.pumping is False
        # the cause goes, the fault clears
        factory.pin(Config().pins.gate_a).drive_high()
        result = service.loop.call_sync(lambda: service.controller.request_fault_clear("test"))
        assert result.ok, result.error
        assert service.loop.call_sync(lambda: service.controller.state) == "idle"
    finally:
        service.stop("test over")


def test_an_unusable_state_directory_is_a_fault_not_a_crash(systemd, tmp_path):
    blocker = tmp_path / "state"
    blocker.write_text("a file where the state directory should be")
    service = make_service(tmp_path, str(tmp_path / "notify.sock"), MockFactory())
    try:
        service.start()
        systemd.wait_for("READY=1")
        assert service.loop.call_sync(lambda: service.controller.faults.code) is FaultCode.STORAGE
        # a stand-in store cannot be cleared into service: only a restart with a usable disk
        assert not service.loop.call_sync(lambda: service.controller.request_fault_clear("test")).ok
    finally:
        service.stop("test over")


@pytest.mark.slow
def test_sigterm_during_a_clean_is_recorded_interrupted_with_safe_outputs_and_exit_0(tmp_path):
    state = tmp_path / "state"
    proc = subprocess.Popen(
        [sys.executable, "-m", "station", "sim", "--headless", "--state-dir", str(state)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        paths = {}
        while len(paths) < 2:
            line = proc.stdout.readline()
            assert line, proc.stderr.read()
            if m := re.match(r"(console|bench): (\S+)", line):
                paths[m.group(1)] = m.group(2)
        bench = serial.Serial(paths["bench"], 115200, timeout=5)
        bench.write(b"present female\n")
        assert bench.readline().startswith(b"OK")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            bench.write(b"STATE?\n")
            if bench.readline().strip() == b"swipe_ready":
                break
            time.sleep(0.1)
        else:
            pytest.fail("the clean never reached swipe-now")
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert "stopped" in out
    db = sqlite3.connect(f"file:{state / 'station.db'}?mode=ro", uri=True)
    rows = db.execute("SELECT outcome, reason FROM attempts").fetchall()
    audit = db.execute("SELECT action, detail FROM audit WHERE kind = 'station'").fetchall()
    db.close()
    assert rows == [("interrupted", "interrupted: station stopped (SIGTERM)")]
    assert ("shutdown", "station stopped (SIGTERM)") in audit
    outputs = json.loads((state / "sim-world.json").read_text())["outputs"]
    assert outputs == {"stepper_enabled": False, "pump_on": False, "leds": [False, False, True]}


# ---------------------------------------------------------------------------------- the controller's shutdown
def test_shutdown_mid_clean_records_the_attempt_interrupted_and_audits_the_stop(tmp_path):
    """What the service's SIGTERM handler runs, on the loop (virtual time here)."""
    from hw_sim import SimBench

    with SimBench(state_dir=tmp_path) as bench:
        w, c = bench.world, bench.controller
        assert bench.clean("female").outcome == "cleaned"  # a finished attempt stays as it was
        w.present("female")
        assert bench.wait_until(lambda: w.prompting, 20)
        c.shutdown("station stopped (SIGTERM)")
        assert not w.stepper_enabled and not w.pump_on
        first, second = sorted(c.store.attempts(), key=lambda r: r.id)
        assert (first.outcome, first.reason) == ("cleaned", "")
        assert (second.outcome, second.reason) == ("interrupted", "interrupted: station stopped (SIGTERM)")
        row = dict(c.store.audit_log(1)[0])
        assert (row["kind"], row["action"], row["detail"]) == ("station", "shutdown", "station stopped (SIGTERM)")
        assert row["t"] == pytest.approx(c.wall())
        result = bench.last_result()
        assert (result.outcome, result.reason) == ("interrupted", Reason.INTERRUPTED)


def test_shutdown_when_ready_records_no_attempt_and_survives_a_broken_store(tmp_path, monkeypatch):
    from hw_sim import SimBench
    from station.store import StoreError

    with SimBench(state_dir=tmp_path) as bench:
        c = bench.controller
        n = len(c.store.attempts())

        def broken(*args, **kwargs):
            raise StoreError("disk gone (test)")

        monkeypatch.setattr(c.store, "audit", broken)
        c.shutdown("station stopped (SIGINT)")  # logs, does not raise: the stop goes on
        assert len(c.store.attempts()) == n
        assert not bench.world.stepper_enabled and not bench.world.pump_on


def test_saved_console_settings_the_file_no_longer_accepts_start_in_fault_not_a_crash_loop(systemd, tmp_path):
    """Saved console changes that do not fit the configuration file (an edited file, a new
    release's rule): the station starts on the file alone, in a start-up fault naming the
    problem, with its console up; `config reset` repairs it and the fault then clears."""
    from station.config import OVERRIDES_SETTING
    from station.store import Store

    (tmp_path / "state").mkdir()
    store = Store(tmp_path / "state" / "station.db")
    store.set_setting(
        OVERRIDES_SETTING, json.dumps({"dispenser": {"drop_timeout_s": 0.02}}), time.time(), source="test"
    )
    store.close()
    factory = MockFactory()
    service = make_service(tmp_path, str(tmp_path / "notify.sock"), factory)
    try:
        factory.pin(Config().pins.cassette_present).drive_low()
        service.start()
        systemd.wait_for("READY=1")
        c = service.controller
        assert service.loop.call_sync(lambda: (c.state, c.faults.code)) == ("fault", FaultCode.STARTUP)
        assert c.faults.detail.startswith(
            "saved console settings are not valid with this configuration file: "
            "dispenser.drop_timeout_s = 0.02: must be longer than dispenser.pulse_s"
        )
        assert c.config.dispenser.drop_timeout_s == Config().dispenser.drop_timeout_s  # the file's value runs
        assert not service.loop.call_sync(lambda: c.request_fault_clear("test")).ok
        result = service.loop.call_sync(
            lambda: c.settings.reset(["dispenser.drop_timeout_s"], source="test", busy=c.busy())
        )
        assert result.ok, result.error
        assert service.loop.call_sync(lambda: c.request_fault_clear("test")).ok
        assert service.loop.call_sync(lambda: c.state) == "idle"
    finally:
        service.stop("test over")


def test_shutdown_goes_on_when_the_attempt_cannot_be_recorded(tmp_path, monkeypatch):
    """The disk fails as the service stops mid-clean: outputs are still made safe, the stop is
    still audited, and nothing raises out of the stop (the attempt is closed as interrupted
    at the next start instead)."""
    from hw_sim import SimBench
    from station.store import StoreError

    with SimBench(state_dir=tmp_path) as bench:
        w, c = bench.world, bench.controller
        w.present("female")
        assert bench.wait_until(lambda: w.prompting, 20)

        def broken(*args, **kwargs):
            raise StoreError("disk gone (test)")

        monkeypatch.setattr(c.store, "finish_attempt", broken)
        c.shutdown("station stopped (SIGTERM)")
        assert not w.stepper_enabled and not w.pump_on
        assert c.store.attempts(limit=1)[0].outcome is None  # left open: recovery closes it
        row = dict(c.store.audit_log(1)[0])
        assert (row["kind"], row["action"]) == ("station", "shutdown")


def test_no_cassette_at_start_up_is_a_self_clearing_fault_that_says_so(systemd, tmp_path):
    factory = MockFactory()
    service = make_service(tmp_path, str(tmp_path / "notify.sock"), factory)
    try:
        service.start()  # the cassette switch reads open: nothing fitted
        systemd.wait_for("READY=1")
        c = service.controller
        assert service.loop.call_sync(lambda: (c.state, c.faults.code, c.faults.detail)) == (
            "fault",
            FaultCode.NO_CASSETTE,
            "the cradle is empty; fit a cassette (the fault clears by itself)",
        )
        factory.pin(Config().pins.cassette_present).drive_low()  # fitted
        deadline = time.monotonic() + 5
        while service.loop.call_sync(lambda: c.state) != "idle" and time.monotonic() < deadline:
            time.sleep(0.02)
        assert service.loop.call_sync(lambda: c.state) == "idle"
    finally:
        service.stop("test over")
