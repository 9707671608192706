"""Driving the station with PyVISA, as a test lab drives any bench instrument.

Two transports, the same script: the serial console on a pty (`ASRL<device>::INSTR`, via
pyvisa-py's pyserial backend) and the loopback TCP console (`TCPIP::127.0.0.1::<port>::SOCKET`).
The station runs paced to the wall clock on its own thread.
"""

from __future__ import annotations

import json
import threading
import time
import warnings
from collections.abc import Iterator

import pytest

pyvisa = pytest.importorskip("pyvisa")
pytest.importorskip("pyvisa_py")

from hw_sim import SimBench  # noqa: E402
from hw_sim.headless import serial_ports  # noqa: E402
from station import MAKER, MODEL, __version__  # noqa: E402
from station.console.access import Lockout, Session, hash_pin  # noqa: E402
from station.console.commands import PIN_KEY, REGISTRY  # noqa: E402
from station.console.server import Dispatcher, TcpServer, console_context  # noqa: E402

PIN = "4711"
PIN_HASH = hash_pin(PIN)
IDN = f"{MAKER},{MODEL},SIM-0001,{__version__}"


@pytest.fixture
def bench(tmp_path) -> Iterator[SimBench]:
    """A station running paced on its own thread (overrides conftest's virtual-time bench)."""
    b = SimBench(state_dir=tmp_path)
    b.controller.store.set_setting(PIN_KEY, PIN_HASH, b.controller.wall(), source="test")
    stop = threading.Event()
    runner = threading.Thread(target=b.run_paced, args=(stop,), name="paced-bench", daemon=True)
    runner.start()
    end = time.monotonic() + 10.0
    while b.loop.thread is not runner:  # until then call_sync would run on the caller's thread
        assert time.monotonic() < end, "the paced loop did not start"
        time.sleep(0.01)
    try:
        yield b
    finally:
        stop.set()
        runner.join(10.0)
        b.close()


@pytest.fixture
def rm():
    manager = pyvisa.ResourceManager("@py")
    yield manager
    manager.close()


@pytest.fixture
def asrl_resource(bench) -> Iterator[str]:
    with serial_ports(bench, bench_port=False) as paths:
        yield f"ASRL{paths['console']}::INSTR"


@pytest.fixture
def tcp_resource(bench) -> Iterator[str]:
    make_ctx = console_context(bench.controller)

    def make(lockout: Lockout) -> Dispatcher:
        return Dispatcher(REGISTRY, make_ctx, Session("tcp:visa", 300.0, lockout=lockout))

    server = TcpServer(0, make)
    server.start()
    try:
        yield f"TCPIP::127.0.0.1::{server.port}::SOCKET"
    finally:
        server.stop()


@pytest.fixture(params=["asrl", "tcp"])
def resource(request) -> str:
    return request.getfixturevalue(f"{request.param}_resource")


def open_station(rm, resource: str):
    return rm.open_resource(resource, read_termination="\n", write_termination="\n", timeout=5000)


def read_until_final(inst) -> list[str]:
    lines = [inst.read()]
    while not (lines[-1] == "OK" or lines[-1].startswith(("OK ", "ERR "))):
        lines.append(inst.read())
    return lines


def test_a_lab_script_identifies_reads_status_and_errors(rm, resource):
    inst = open_station(rm, resource)
    try:
        assert inst.query("*IDN?") == IDN
        status = json.loads(inst.query("STAT?"))
        assert status["state"] == "idle" and status["cassette"] == "standard" and status["fault"] is None
        assert inst.query("SYST:ERR?") == '0,"No error"'
        assert inst.query("*OPC?") == "1"
    finally:
        inst.close()


def test_a_lab_script_logs_in_and_jogs_the_wheel(rm, resource, bench):
    inst = open_station(rm, resource)
    try:
        before = bench.loop.call_sync(lambda: bench.world.positions_total, 10.0)
        inst.write("jog 1")
        assert read_until_final(inst)[-1].startswith("ERR -203 ")
        assert inst.query("SYST:ERR?").startswith('-203,"')
        inst.write(f"login {PIN}")
        assert read_until_final(inst)[-1].startswith("OK")
        inst.write("jog 1")
        lines = read_until_final(inst)
        assert lines[-1] == "OK" and "1 of 1 positions confirmed" in lines[0]
        assert bench.loop.call_sync(lambda: bench.world.positions_total, 10.0) == before + 1
        assert json.loads(inst.query("STAT?"))["ribbon_remaining"] == 1500 - 1
        assert inst.query("SYST:ERR?") == '0,"No error"'
    finally:
        inst.close()
    assert bench.loop.call_sync(lambda: list(bench.world.violations), 10.0) == []


@pytest.mark.parametrize("termination", ["\n", "\r\n"], ids=["LF", "CRLF"])
def test_answers_end_as_the_script_ends_its_lines_so_pyvisa_strips_them_whole(rm, resource, termination):
    """The console answers a line in LF with LF (SCPI) and one in CR LF with CR LF, so a script
    with matching read and write terminations gets clean strings and no PyVISA warning ("read
    string doesn't end with termination characters"), and never a stray CR."""
    inst = rm.open_resource(resource, read_termination=termination, write_termination=termination, timeout=5000)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert inst.query("*IDN?") == IDN
            assert json.loads(inst.query("STAT?"))["state"] == "idle"
            inst.write("status")
            lines = read_until_final(inst)
            assert lines[0] == "state:    idle" and lines[-1] == "OK"
            assert not any("\r" in line or "\n" in line for line in lines), lines
            inst.write("login")
            assert read_until_final(inst) == ["ERR -109 Missing parameter; usage: login <PIN>"]
            assert inst.query("SYST:ERR?") == '-109,"Missing parameter; usage: login <PIN>"'
            inst.write("watch 1")
            assert read_until_final(inst) == ["OK 0 events in 1 s"]
    finally:
        inst.close()
