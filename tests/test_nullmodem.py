"""The simulated null-modem cable over real pseudo-terminals, pyserial on both ends.

It must behave as a cable with hardware flow control: every byte arrives, in order, however
slowly the far end reads; a sender whose reader lags is held back (its writes block) instead
of losing bytes; the cable's own memory stays bounded; a client that goes away does not break
it; closing it is quick even with a sender blocked on it.

Nothing here asserts how fast the cable is: every wait has a generous limit.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator

import pytest
import serial

from hw_sim import SimBench
from hw_sim.headless import serial_ports
from hw_sim.nullmodem import PENDING_CAP, NullModem
from station.console.commands import REGISTRY, Command, Context, Reply

MB = 1 << 20


def payload(n: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(n)


@pytest.fixture
def cable() -> Iterator[NullModem]:
    c = NullModem()
    yield c
    c.close()


def open_end(path: str, timeout: float = 1.0) -> serial.Serial:
    # write_timeout None: a write blocks while the cable holds the sender back (flow control)
    return serial.Serial(path, 115200, timeout=timeout, write_timeout=None)


class Writer(threading.Thread):
    """Writes `data` to a port in chunks; `sent` counts what pyserial has accepted so far."""

    def __init__(self, port: serial.Serial, data: bytes, chunk: int = 16384) -> None:
        super().__init__(name="writer", daemon=True)
        self.port, self.data, self.chunk = port, data, chunk
        self.sent = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            for i in range(0, len(self.data), self.chunk):
                self.port.write(self.data[i : i + self.chunk])
                self.sent = i + len(self.data[i : i + self.chunk])
        except BaseException as exc:  # reported by the test
            self.error = exc


def read_slowly(port: serial.Serial, n: int, seed: int, limit_s: float = 120.0) -> bytes:
    """Read `n` bytes in small random pieces with short pauses: a reader slower than the writer."""
    rng = random.Random(seed)
    got = bytearray()
    end = time.monotonic() + limit_s
    while len(got) < n:
        assert time.monotonic() < end, f"only {len(got)} of {n} bytes arrived within {limit_s} s"
        got += port.read(min(n - len(got), rng.choice((1, 7, 100, 1000, 4096, 20000))))
        if rng.random() < 0.02:
            time.sleep(0.01)
    return bytes(got)


def test_a_megabyte_to_a_slow_reader_arrives_complete_and_in_order(cable):
    data = payload(MB, 1)
    user, station = open_end(cable.user_end), open_end(cable.station_end)
    try:
        writer = Writer(user, data)
        writer.start()
        time.sleep(0.5)  # nobody reads yet: every buffer on the way fills up
        assert writer.sent < len(data), "the sender was never held back"
        assert station.in_waiting < len(data)
        got = read_slowly(station, len(data), 2)
        writer.join(30.0)
        assert not writer.is_alive() and writer.error is None
        assert got == data, f"bytes lost or reordered (first difference at {first_difference(got, data)})"
        station.timeout = 0.3
        assert station.read(1) == b"", "more bytes came out than went in"
    finally:
        user.close()
        station.close()
    assert max(cable.peak_pending.values()) <= PENDING_CAP


def test_both_directions_at_once_each_complete(cable):
    up, down = payload(MB, 3), payload(MB, 4)
    user, station = open_end(cable.user_end), open_end(cable.station_end)
    try:
        writers = [Writer(user, up), Writer(station, down)]
        for w in writers:
            w.start()
        time.sleep(0.3)
        results: dict[str, bytes] = {}

        def reader(name: str, port: serial.Serial, n: int, seed: int) -> None:
            results[name] = read_slowly(port, n, seed)

        readers = [
            threading.Thread(target=reader, args=("at station", station, len(up), 5), daemon=True),
            threading.Thread(target=reader, args=("at user", user, len(down), 6), daemon=True),
        ]
        for r in readers:
            r.start()
        for t in (*readers, *writers):
            t.join(120.0)
            assert not t.is_alive()
        assert all(w.error is None for w in writers)
        assert results["at station"] == up and results["at user"] == down
    finally:
        user.close()
        station.close()
    assert max(cable.peak_pending.values()) <= PENDING_CAP


def test_a_client_that_went_away_does_not_break_the_cable(cable):
    station = open_end(cable.station_end)
    try:
        for i in range(3):
            user = open_end(cable.user_end)
            user.write(f"hello {i}\n".encode())
            assert station.readline() == f"hello {i}\n".encode()
            station.write(f"answer {i}\n".encode())
            assert user.readline() == f"answer {i}\n".encode()
            user.close()
        # while nobody is on the user end, the station's bytes wait in the cable, as on a wire
        station.write(b"to nobody\n")
        time.sleep(0.2)
        user = open_end(cable.user_end)
        user.reset_input_buffer()  # (pyserial does this on open anyway)
        user.write(b"back\n")
        assert station.readline() == b"back\n"
        user.close()
    finally:
        station.close()


def test_closing_is_quick_with_a_sender_held_back():
    cable = NullModem()
    user, station = open_end(cable.user_end), open_end(cable.station_end)
    writer = Writer(user, payload(4 * MB, 7))
    writer.start()
    time.sleep(0.3)
    assert writer.is_alive(), "the sender should be held back: nobody reads"
    started = time.monotonic()
    cable.close()
    took = time.monotonic() - started
    writer.join(10.0)
    assert not writer.is_alive(), "a sender blocked on a closed cable must get an error, not hang"
    user.close()
    station.close()
    assert took < 2.0, f"closing took {took:.1f} s"


# ---------------------------------------------------------------------------------- the console
@pytest.fixture
def paced(tmp_path) -> Iterator[SimBench]:
    """A simulated station running paced to the wall clock on its own thread."""
    bench = SimBench(state_dir=tmp_path)
    stop = threading.Event()
    runner = threading.Thread(target=bench.run_paced, args=(stop,), name="paced-bench", daemon=True)
    runner.start()
    end = time.monotonic() + 10.0
    while bench.loop.thread is not runner:  # until then call_sync would run on the caller's thread
        assert time.monotonic() < end, "the paced loop did not start"
        time.sleep(0.01)
    try:
        yield bench
    finally:
        stop.set()
        runner.join(10.0)
        bench.close()


def many_lines(ctx: Context, args: list[str]) -> Reply:
    return Reply([f"line {i:05d} " + "x" * 60 for i in range(int(args[0]))], ok_text="that was all")


def test_a_reply_of_thousands_of_lines_reaches_a_late_reader_with_its_final_ok(paced, monkeypatch):
    """A console command printing 5,000 lines (~370 kB, far more than the pty buffers and the
    cable hold) to a reader that starts reading late: every line arrives, then the final OK,
    and the console answers the next command as usual. (A test-only command in the console's
    registry: no real command prints that much today.)"""
    monkeypatch.setitem(REGISTRY, "lines", Command("lines", many_lines, "lines <n>", "test: print n lines"))
    n = 5000
    with serial_ports(paced, bench_port=False) as paths:
        user = serial.Serial(paths["console"], 115200, timeout=10.0)
        try:
            user.write(f"lines {n}\n".encode())
            # Not reading yet: the station's writes are held back. (Less than the console's
            # one-second write timeout, after which it gives up on a client that does not read.)
            time.sleep(0.5)
            got: list[bytes] = []
            while not got or not got[-1].startswith((b"OK", b"ERR")):
                line = user.readline()
                assert line.endswith(b"\n"), f"after {len(got)} lines, no complete line within 10 s: {line!r}"
                got.append(line)
            assert got[:-1] == [f"line {i:05d} {'x' * 60}\n".encode() for i in range(n)]
            assert got[-1] == b"OK that was all\n"
            user.write(b"*OPC?\n")
            assert user.readline() == b"1\n"
        finally:
            user.close()


def first_difference(a: bytes, b: bytes) -> int:
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return i
    return min(len(a), len(b))
