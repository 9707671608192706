"""The simulator learns a console mode choice from the person, on the cable (hw_sim.console_tap).

First the tap alone, fed bytes as a cable would hand them over (any chunking); then over real
pseudo-terminals with pyserial, a person at a running simulated station's console: the world's
`console_mode` follows `mode set` only when the station answered OK.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator

import pytest
import serial

from hw_sim import SimBench
from hw_sim.console_tap import ConsoleTap
from hw_sim.headless import serial_ports
from station.console.access import hash_pin
from station.console.commands import PIN_KEY

PIN = "4711"
UNSET = "unset"


class Heard:
    def __init__(self) -> None:
        self.modes: list[str | None] = []
        self.tap = ConsoleTap(self.modes.append)

    def talk(self, user: bytes, station: bytes, *, pieces: int = 1, seed: int = 0) -> None:
        """The person's bytes, then the station's, each cut into `pieces` random chunks."""
        for data, feed in ((user, self.tap.from_user), (station, self.tap.from_station)):
            for chunk in chop(data, pieces, seed):
                feed(chunk)


def chop(data: bytes, pieces: int, seed: int) -> list[bytes]:
    if pieces <= 1 or len(data) < 2:
        return [data]
    cuts = sorted(random.Random(seed).sample(range(1, len(data)), min(pieces - 1, len(data) - 1)))
    return [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]


# ---------------------------------------------------------------------------------- the tap alone
@pytest.mark.parametrize(
    ("line", "mode"),
    [
        (b"mode set wet\n", "wet"),
        (b"mode set dry\r\n", "dry"),
        (b"MODE SET WET\r", "wet"),
        (b"Mode Set Switch\n", None),
        (b"  mode \t set   dry  \n", "dry"),
    ],
)
def test_a_mode_set_answered_ok_is_applied(line, mode):
    h = Heard()
    h.talk(line, b"mode x (console)\nOK\n")
    assert h.modes == [mode]
    assert h.tap.in_flight == 0


def test_a_refused_mode_set_is_not_applied():
    h = Heard()
    h.talk(b"mode set wet\n", b"ERR -203 Command protected; `mode set dry|wet|switch` needs `login <PIN>`\n")
    h.talk(b"mode set dry\n", b"ERR -221 Settings conflict; busy\n")
    assert h.modes == []
    assert h.tap.in_flight == 0


@pytest.mark.parametrize(
    "line",
    [
        b"mode set wet; status\n",
        b"mode set wet;\n",
        b"status; mode set wet\n",
        b"mode set wet now\n",
        b"mode set moist\n",
        b"mode wet\n",
        b"mode set\n",
        b"mode\n",
    ],
)
def test_anything_but_the_single_command_form_is_ignored(line):
    h = Heard()
    h.talk(line, b"OK\n")
    assert h.modes == []
    assert h.tap.in_flight == 0, "one line, one answer"


@pytest.mark.parametrize("pieces", [1, 2, 7, 1000])
def test_pipelined_commands_each_answer_is_matched_to_its_line(pieces):
    """Several lines in one write (queries, long replies, errors, blank lines) and the
    answers in one stream, both cut anywhere: only the OK of the mode command counts."""
    user = b"STAT?\nhelp\n\n   \r\nmode set wet\r\nfrobnicate\n*IDN?\nmode set dry\nmode set switch\n"
    station = (
        b'{"state": "idle", "mode": "dry"}\n'  # STAT?
        b"Commands (* needs login):\n  OKAY is not OK\n  ERRATA are not errors\nOK\n"  # help
        b"mode wet (console)\nOK\n"  # mode set wet
        b"ERR -113 Undefined header; unknown command 'frobnicate' (try help)\n"
        b"ERR -310 System error; too many commands, slow down\n"  # *IDN?: a query, one line
        b"ERR -221 Settings conflict; not now\n"  # mode set dry: refused
        b"mode dry (panel switch)\nOK\n"  # mode set switch
    )
    h = Heard()
    h.talk(user, station, pieces=pieces, seed=pieces)
    assert h.modes == ["wet", None]
    assert h.tap.in_flight == 0


def test_a_query_is_answered_by_one_line_whatever_it_says():
    h = Heard()
    h.talk(b"FAULT?\nmode set wet\n", b"OK\nmode wet (console)\nOK\n")  # (a query answered "OK")
    assert h.modes == ["wet"]


def test_lines_the_console_refuses_get_one_answer_and_set_nothing():
    long_line = b"mode set wet" + b" " * 300 + b"\n"
    for line in (long_line, b"mode set w\xffet\n", b"mode set wet\x01\n", b"\x1c\n"):
        h = Heard()
        h.talk(line, b"ERR -102 Syntax error; whatever\n")
        assert h.tap.in_flight == 0, line
        h.talk(b"mode set dry\n", b"mode dry (console)\nOK\n")
        assert h.modes == ["dry"], line


def test_blank_lines_expect_no_answer():
    h = Heard()
    h.talk(b"\n\r\n \t \n\xc2\xa0\n", b"")
    assert h.tap.in_flight == 0


def test_answers_nobody_asked_for_are_ignored():
    h = Heard()
    h.talk(b"", b"OK\nERR -1 x\n")
    h.talk(b"mode set wet\n", b"OK\n")
    assert h.modes == ["wet"]


def test_memory_stays_bounded_on_endless_lines():
    h = Heard()
    for _ in range(1000):
        h.tap.from_user(b"x" * 1000)
        h.tap.from_station(b"y" * 1000)
    assert len(h.tap._line) <= 257 and len(h.tap._reply_head) <= 8


# ---------------------------------------------------------------------------------- over a real pty
@pytest.fixture
def station(tmp_path) -> Iterator[tuple[SimBench, dict[str, str]]]:
    """A simulated station paced to the wall clock on its own thread, a PIN set, its console on
    a null-modem cable (hw_sim.headless.serial_ports, as `station sim --headless` has it)."""
    bench = SimBench(state_dir=tmp_path)
    bench.controller.store.set_setting(PIN_KEY, hash_pin(PIN), bench.controller.wall(), source="test")
    stop = threading.Event()
    runner = threading.Thread(target=bench.run_paced, args=(stop,), name="paced-bench", daemon=True)
    runner.start()
    end = time.monotonic() + 10.0
    while bench.loop.thread is not runner:  # until then call_sync would run on the caller's thread
        assert time.monotonic() < end, "the paced loop did not start"
        time.sleep(0.01)
    try:
        with serial_ports(bench, bench_port=False) as paths:
            yield bench, paths
    finally:
        stop.set()
        runner.join(10.0)
        bench.close()


def command(port: serial.Serial, line: bytes) -> list[bytes]:
    port.write(line)
    got = [port.readline()]
    while not got[-1].startswith((b"OK", b"ERR ")):
        assert got[-1].endswith(b"\n"), f"no complete answer to {line!r}: {got!r}"
        got.append(port.readline())
    return got


def world_mode(bench: SimBench) -> str | None:
    """On the loop thread; posted after the tap's change, which was posted before the answer
    reached us."""
    return bench.loop.call_sync(lambda: bench.world.console_mode if bench.world else UNSET, 10.0)


def test_login_then_mode_set_tells_the_world(station):
    bench, paths = station
    port = serial.Serial(paths["console"], 115200, timeout=10.0)
    try:
        assert command(port, f"login {PIN}\n".encode())[-1].startswith(b"OK")
        assert command(port, b"mode set wet\n")[-1].startswith(b"OK")
        assert world_mode(bench) == "wet"
        assert command(port, b"MODE SET DRY\r\n")[-1].startswith(b"OK")
        assert world_mode(bench) == "dry"
        assert command(port, b"mode set switch\r")[-1].startswith(b"OK")
        assert world_mode(bench) is None
        assert bench.loop.call_sync(lambda: bench.controller.mode.override, 10.0) is None
    finally:
        port.close()


def test_without_login_the_command_is_refused_and_the_world_unchanged(station):
    bench, paths = station
    port = serial.Serial(paths["console"], 115200, timeout=10.0)
    try:
        out = command(port, b"mode set wet\n")
        assert len(out) == 1 and out[0].startswith(b"ERR -203 ")
        assert world_mode(bench) is None
        assert bench.loop.call_sync(lambda: bench.controller.mode.override, 10.0) is None
        # several lines at once, the mode command among them, still refused
        port.write(b"*IDN?\nmode set dry\nSTAT?\n")
        answers = [port.readline() for _ in range(3)]
        assert answers[1].startswith(b"ERR -203 "), answers
        assert world_mode(bench) is None
        # logged in, the same conversation is followed to the right answer
        assert command(port, f"login {PIN}\n".encode())[-1].startswith(b"OK")
        port.write(b"*IDN?\nmode set dry\nSTAT?\n")
        answers = [port.readline() for _ in range(4)]  # IDN, "mode dry (console)", OK, STAT
        assert answers[2] == b"OK\n", answers
        assert world_mode(bench) == "dry"
    finally:
        port.close()
