"""The console's line protocol, access control and dispatcher, without any serial port.

* LineBuffer: bytes in, `Line` / `BadLine` out; LF and CR LF; 256 bytes at most; bad UTF-8
  and control characters refused; memory bounded whatever arrives.
* ErrorQueue: IEEE 488.2 behaviour (FIFO, `0,"No error"`, overflow marked -350).
* PIN hashing, lock-out and idle logout on a fake clock.
* Dispatcher with the real registry and a simulated bench behind it (virtual time; with
  `loop.thread` None the handlers' `call_sync` runs inline on the test thread): framing,
  unknown commands, protection, lock-out, idle logout, flood limit, audit with the port.
* Live views (`watch`, `sensors <seconds>`) on the loop in virtual time: what they stream is
  what the station announced, and a client that stops reading never holds the controller up.
"""

from __future__ import annotations

import json
import threading
import time
from datetime import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hw_sim.bench import SIM_EPOCH
from hw_sim.faults import Fault
from station import MAKER, MODEL, __version__
from station.config import Config
from station.console import commands
from station.console import protocol as P
from station.console.access import Lockout, Session, check_pin_format, hash_pin, verify_pin
from station.console.commands import PIN_KEY, REGISTRY
from station.console.server import Dispatcher, console_context
from station.domain import FaultCode, Mode
from station.events import (
    AttemptFinished,
    AttemptStarted,
    FaultCleared,
    FaultRaised,
    SensorChanged,
    StateChanged,
    WarningRaised,
    from_json,
)
from station.faults import NEXT_STEP
from station.ports import Sensor
from station.records import iso
from station.reports import sensor_report

PIN = "4711"
PORT = "ttyTEST"
SOURCE = f"console:{PORT}"
PIN_HASH = hash_pin(PIN)  # scrypt is slow on purpose: hash once for the module


# ====================================================================== LineBuffer
def lines_of(*chunks: bytes) -> list[P.Line | P.BadLine]:
    buf = P.LineBuffer()
    out: list[P.Line | P.BadLine] = []
    for chunk in chunks:
        out += list(buf.feed(chunk))
    return out


def test_lf_ends_a_line():
    assert lines_of(b"*IDN?\n") == [P.Line("*IDN?")]


def test_cr_lf_ends_a_line_too():
    assert lines_of(b"*IDN?\r\nSTAT?\r\n") == [P.Line("*IDN?"), P.Line("STAT?")]


def test_nothing_comes_out_before_the_line_end():
    assert lines_of(b"*IDN?") == []


def test_a_line_split_across_feeds_is_put_back_together():
    assert lines_of(b"jo", b"g ", b"3", b"\r", b"\n") == [P.Line("jog 3")]


def test_a_multibyte_character_split_across_feeds_is_put_back_together():
    text = "mode wét"
    raw = text.encode() + b"\n"
    cut = raw.index(b"\xc3") + 1  # between the two bytes of the é
    assert lines_of(raw[:cut], raw[cut:]) == [P.Line(text)]


def test_several_lines_in_one_feed_each_come_out():
    assert lines_of(b"a\nb\n\nc\n") == [P.Line("a"), P.Line("b"), P.Line(""), P.Line("c")]


def test_a_line_of_exactly_256_bytes_is_accepted():
    body = b"x" * P.MAX_LINE
    assert lines_of(body + b"\n") == [P.Line(body.decode())]


def test_a_line_of_256_bytes_ending_in_cr_lf_is_accepted_like_lf():
    # "Lines end in LF, CR LF or CR, at most 256 bytes": the terminator is not the line.
    body = b"x" * P.MAX_LINE
    assert lines_of(body + b"\r\n") == [P.Line(body.decode())]


@pytest.mark.parametrize("tail", [b"x\r\n", b"x\r", b"x\n"])
def test_no_line_end_stretches_the_limit_for_the_text(tail):
    out = lines_of(b"x" * P.MAX_LINE + tail + b"*IDN?\r\n")
    assert isinstance(out[0], P.BadLine) and out[0].code == -363
    assert out[1:] == [P.Line("*IDN?")]


def test_a_line_of_257_bytes_is_one_overrun_error_and_the_next_line_is_fine():
    out = lines_of(b"y" * (P.MAX_LINE + 1) + b"\n*IDN?\n")
    assert len(out) == 2
    assert isinstance(out[0], P.BadLine) and out[0].code == P.INPUT_OVERRUN == -363
    assert out[1] == P.Line("*IDN?")


def test_a_very_long_line_fed_in_pieces_is_reported_once():
    buf = P.LineBuffer()
    out = []
    for _ in range(100):
        out += list(buf.feed(b"z" * 1000))
    out += list(buf.feed(b"\nSTAT?\n"))
    assert [type(i) for i in out] == [P.BadLine, P.Line]
    assert out[0].code == -363 and out[1] == P.Line("STAT?")


def test_invalid_utf8_is_a_syntax_error_and_the_next_line_is_fine():
    out = lines_of(b"jog \xff\xfe 3\n*IDN?\n")
    assert isinstance(out[0], P.BadLine) and out[0].code == P.SYNTAX_ERROR == -102
    assert "UTF-8" in out[0].message
    assert out[1] == P.Line("*IDN?")


def test_a_truncated_multibyte_character_is_invalid_utf8():
    out = lines_of(b"mode w\xc3\n")
    assert isinstance(out[0], P.BadLine) and out[0].code == -102


def test_a_lone_cr_ends_a_line_as_picocom_and_screen_send_it():
    assert lines_of(b"*IDN?\rSTAT?\r") == [P.Line("*IDN?"), P.Line("STAT?")]
    assert lines_of(b"*IDN?\r", b"\nSTAT?\n") == [P.Line("*IDN?"), P.Line("STAT?")]  # CR LF split


# What ended each line decides how its answer lines end: LF for LF (scripts, PyVISA, SCPI),
# CR LF for CR or CR LF (terminals, which show a staircase on a bare LF).
@pytest.mark.parametrize(
    "chunks, eols",
    [
        ([b"*IDN?\n"], [P.LF]),
        ([b"*IDN?\r\n"], [P.CRLF]),
        ([b"*IDN?\r"], [P.CRLF]),  # picocom, screen, minicom, PuTTY
        ([b"*IDN?\r", b"\n", b"STAT?\n"], [P.CRLF, P.LF]),  # a CR LF split across reads is one line end
        ([b"a\nb\r\nc\rd\n"], [P.LF, P.CRLF, P.CRLF, P.LF]),  # per line, not per port
        ([b"\r"], [P.CRLF]),  # a blank line (not answered, but known)
        ([b"x" * 300 + b"\r"], [P.CRLF]),  # refused lines are answered the same way
        ([b"jog \xff\n"], [P.LF]),
        ([b"*IDN\x01?\r\n"], [P.CRLF]),
    ],
)
def test_each_line_carries_the_line_end_its_answer_uses(chunks, eols):
    assert [item.eol for item in lines_of(*chunks)] == eols


@pytest.mark.parametrize("control", [b"\x00", b"\x01", b"\x1b", b"\x7f"])
def test_control_characters_are_a_syntax_error(control):
    out = lines_of(b"*IDN" + control + b"?\n")
    assert len(out) == 1
    assert isinstance(out[0], P.BadLine) and out[0].code == -102
    assert "control" in out[0].message


def test_a_tab_is_not_a_control_character_here():
    assert lines_of(b"jog\t3\n") == [P.Line("jog\t3")]


@given(st.lists(st.binary(max_size=700), max_size=20))
def test_any_byte_stream_never_raises_and_gives_one_bounded_item_per_line_end(chunks):
    buf = P.LineBuffer()
    items = []
    for chunk in chunks:
        items += list(buf.feed(chunk))
        assert len(buf._buf) <= P.MAX_LINE, "memory must stay bounded whatever arrives"
    stream = b"".join(chunks)
    ends = stream.count(b"\r") + stream.count(b"\n") - stream.count(b"\r\n")
    assert len(items) == ends, "each CR, LF or CR LF ends exactly one line"
    for item in items:
        assert isinstance(item, (P.Line, P.BadLine))
        if isinstance(item, P.Line):
            assert len(item.text.encode("utf-8")) <= P.MAX_LINE
            assert len(item.text) <= P.MAX_LINE
            assert not any(ord(c) < 0x20 and c != "\t" or ord(c) == 0x7F for c in item.text)
        else:
            assert item.code in (P.SYNTAX_ERROR, P.INPUT_OVERRUN)


# ====================================================================== ErrorQueue
def test_error_queue_is_first_in_first_out():
    q = P.ErrorQueue()
    q.push(-113, "first")
    q.push(-203, "second")
    assert q.pop() == (-113, "first")
    assert q.pop() == (-203, "second")


def test_empty_error_queue_answers_no_error():
    q = P.ErrorQueue()
    assert q.pop() == (0, "No error")
    assert P.scpi_error(*q.pop()) == '0,"No error"'


def test_error_queue_overflow_replaces_the_newest_entry_with_minus_350():
    q = P.ErrorQueue()
    for i in range(P.ERROR_QUEUE_SIZE + 5):
        q.push(-100 - i, f"error {i}")
    assert len(q) == P.ERROR_QUEUE_SIZE
    popped = [q.pop() for _ in range(P.ERROR_QUEUE_SIZE)]
    assert popped[:-1] == [(-100 - i, f"error {i}") for i in range(P.ERROR_QUEUE_SIZE - 1)]
    assert popped[-1][0] == P.QUEUE_OVERFLOW == -350
    assert q.pop() == (0, "No error")


def test_error_queue_clear_empties_it():
    q = P.ErrorQueue()
    q.push(-100, "x")
    q.clear()
    assert len(q) == 0 and q.pop() == (0, "No error")


# ====================================================================== PIN, lock-out, session
class FakeClock:
    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


def test_the_same_pin_hashes_differently_with_each_salt():
    a, b = hash_pin(PIN), hash_pin(PIN)
    assert a != b
    assert verify_pin(PIN, a) and verify_pin(PIN, b)


def test_a_fixed_salt_gives_a_fixed_hash():
    salt = bytes(range(16))
    assert hash_pin(PIN, salt) == hash_pin(PIN, salt)
    assert hash_pin(PIN, salt) != hash_pin("4712", salt)


def test_verify_accepts_the_right_pin_only():
    assert verify_pin(PIN, PIN_HASH)
    for wrong in ("4712", "47111", "0000", "", " 4711", "4711 "):
        assert not verify_pin(wrong, PIN_HASH)


@pytest.mark.parametrize(
    "stored", ["", "4711", "plain$4711", "md5$1$2$3$00$00", "scrypt$x$8$1$00$00", "scrypt$16384$8$1$zz$00"]
)
def test_a_malformed_stored_hash_never_verifies_and_never_raises(stored):
    assert not verify_pin(PIN, stored)


def test_the_stored_string_is_a_salted_scrypt_hash_without_the_pin():
    pin = "Kw!zqRt"  # not hex, so it cannot hide inside the hex fields by chance
    stored = hash_pin(pin)
    scheme, n, r, p, salt, digest = stored.split("$")
    assert scheme == "scrypt" and int(n) >= 2**14
    assert len(bytes.fromhex(salt)) == 16 and len(bytes.fromhex(digest)) == 32
    assert pin not in stored and pin.lower() not in stored.lower()
    assert PIN not in stored.split("$")  # no field is the PIN itself


@pytest.mark.parametrize("bad", ["123", "x" * 33, "12 34", "12\n34"])
def test_pin_format_is_checked(bad):
    with pytest.raises(ValueError):
        check_pin_format(bad)


def test_lockout_waits_grow_after_the_third_failure_and_stop_at_300_s():
    clock = FakeClock()
    lock = Lockout(clock=clock)
    lock.failed()
    lock.failed()
    assert lock.remaining() == 0
    waits = []
    for _ in range(12):
        lock.failed()
        waits.append(lock.remaining())
    assert waits[:5] == [2.0, 4.0, 8.0, 16.0, 32.0]
    assert waits[-1] == 300.0 and max(waits) == 300.0
    lock.succeeded()
    assert lock.remaining() == 0 and lock.failures == 0


def test_session_logs_out_after_idling_longer_than_the_limit():
    clock = FakeClock()
    s = Session(PORT, idle_logout_s=300, clock=clock)
    s.touch()
    s.logged_in = True
    clock.advance(300)
    assert not s.touch() and s.logged_in
    clock.advance(300.5)
    assert s.touch() and not s.logged_in


# ====================================================================== Dispatcher on a bench
class Console:
    """One console port's dispatcher on the bench, with a fake clock for the session and the
    flood limit. `send()` lets 0.05 s pass first (one command's worth of the flood budget)."""

    def __init__(self, bench, max_per_s: float = 20.0, idle_logout_s: float = 300.0) -> None:
        self.bench = bench
        self.clock = FakeClock()
        self.session = Session(PORT, idle_logout_s, clock=self.clock)
        self.dispatcher = Dispatcher(
            REGISTRY, console_context(bench.controller), self.session, max_per_s=max_per_s, clock=self.clock
        )
        self.streamed: list[str] = []

    def handle(self, text: str) -> list[str]:
        """Everything the port would carry for this line: streamed lines, then the reply."""
        self.streamed = []
        reply = self.dispatcher.handle(P.Line(text), self.streamed.append)
        return [*self.streamed, *reply]

    def send(self, text: str) -> list[str]:
        self.clock.advance(0.05)
        return self.handle(text)

    def login(self) -> None:
        assert self.send(f"login {PIN}")[-1].startswith("OK")

    def set_mode(self, choice: str) -> list[str]:
        """A person types `mode set dry|wet|switch`: once the station takes it, the simulated
        world knows the person's choice too (as `SimBench.console_mode` tells it)."""
        out = self.send(f"mode set {choice}")
        if out[-1] == "OK" and self.bench.world is not None:
            self.bench.world.console_mode = None if choice == "switch" else choice
        return out


def is_final(line: str) -> bool:
    return line == "OK" or line.startswith("OK ") or line.startswith("ERR ")


def assert_framed(text: str, out: list[str]) -> None:
    if text.split()[0].endswith("?"):
        assert len(out) == 1, f"query {text!r} must answer exactly one line, got {out!r}"
    else:
        assert out and is_final(out[-1]), f"{text!r} must end with OK or ERR, got {out!r}"
        assert not any(is_final(line) for line in out[:-1]), f"{text!r}: one final line only, got {out!r}"


def err_code(line: str) -> int:
    assert line.startswith("ERR "), line
    return int(line.split()[1])


def audit_rows(bench) -> list[dict]:
    return [dict(r) for r in bench.controller.store.audit_log(1000)]


@pytest.fixture
def station(bench):
    bench.controller.store.set_setting(PIN_KEY, PIN_HASH, bench.controller.wall(), source="test")
    assert bench.loop.thread is None  # handlers' call_sync runs inline on the test thread
    return bench


@pytest.fixture
def console(station):
    return Console(station)


QUERIES = sorted(name for name in REGISTRY if name.endswith("?"))
OPEN_COMMANDS = [
    "help",
    "help jog",
    "help fault clear",
    "status",
    "sensors",
    "counters",
    "log",
    "log 5",
    "audit",
    "audit 3",
    "mode",
    "cassette",
    "fluid",
    "config show",
    "config show swipe",
    "*CLS",
    "logout",
    "FAULT?",
]


@pytest.mark.parametrize("query", QUERIES)
def test_each_query_answers_exactly_one_line(console, query):
    out = console.send(query.upper())
    assert len(out) == 1 and not out[0].startswith("ERR"), out


def test_idn_names_maker_model_serial_and_version(console):
    assert console.send("*IDN?") == [f"{MAKER},{MODEL},{console.bench.config.station.serial_number},{__version__}"]


def test_commands_are_case_insensitive(console):
    assert console.send("*idn?") == console.send("*IdN?")
    assert json.loads(console.send("stat?")[0])["state"] == "idle"
    assert console.send("HELP JOG")[-1] == "OK"


def test_stat_is_one_line_of_json_with_the_status(console):
    s = json.loads(console.send("STAT?")[0])
    for key in ("state", "mode", "cassette", "ribbon_remaining", "fluid_drops_left", "fault"):
        assert key in s
    assert s["state"] == "idle" and s["cassette"] == "standard" and s["fault"] is None


@pytest.mark.parametrize("command", OPEN_COMMANDS)
def test_each_other_command_ends_with_exactly_one_ok_or_err_line(console, command):
    out = console.send(command)
    assert_framed(command, out)
    if not command.endswith("?"):
        assert out[-1].startswith("OK"), out


@pytest.mark.parametrize(
    "command",
    [
        "log 0",
        "log x",
        "audit 1000",
        "mode sideways",
        "sensors 99",
        "config show nosuchsection",
        "help nosuchcommand",
        "login",
        "jog",
        "config set",
    ],
)
def test_refused_commands_end_with_one_err_line(console, command):
    out = console.send(command)
    assert_framed(command, out)
    assert out[-1].startswith("ERR")


def test_an_unknown_command_is_minus_113_and_goes_onto_the_error_queue(console):
    out = console.send("frobnicate 3")
    assert len(out) == 1 and err_code(out[0]) == -113
    assert "frobnicate" in out[0]
    assert console.send("SYST:ERR?")[0].startswith('-113,"')
    assert console.send("SYST:ERR?") == ['0,"No error"']


def test_an_unknown_query_answers_one_err_line(console):
    out = console.send("NOPE?")
    assert len(out) == 1 and err_code(out[0]) == -113


def test_a_bad_line_answers_err_and_queues_it(console):
    out = console.dispatcher.handle(P.BadLine(P.INPUT_OVERRUN, "Input buffer overrun"), lambda line: None)
    assert len(out) == 1 and err_code(out[0]) == -363
    assert console.send("SYST:ERR?") == ['-363,"Input buffer overrun"']


def test_an_empty_line_answers_nothing(console):
    assert console.send("") == []
    assert console.send("SYST:ERR?") == ['0,"No error"']


def test_cls_empties_the_error_queue(console):
    console.send("nope")
    console.send("nope")
    assert console.send("*CLS") == ["OK"]
    assert console.send("SYST:ERR?") == ['0,"No error"']


PROTECTED = {
    "jog": "jog 3",
    "prime": "prime 2",
    "selftest": "selftest",
    "*rst": "*RST",
    "fault clear": "fault clear",
    "cassette new": "cassette new",
    "fluid refill": "fluid refill",
    "config set": "config set swipe.max_pass_s 2.5",
    "config reset": "config reset all",
    "pin set": "pin set 9999",
    "mode set": "mode set wet",  # changes how the station cleans against its panel switch
    "quarantine release": "quarantine release CBL-0001-A",  # lets a connector the loop rejected be cleaned again
}


def test_the_protected_commands_are_the_ones_that_move_configure_reset_or_clear():
    assert {name for name, cmd in REGISTRY.items() if cmd.protected} == set(PROTECTED)


@pytest.mark.parametrize("name", sorted(PROTECTED))
def test_a_protected_command_without_login_is_minus_203_and_does_nothing(console, name):
    bench = console.bench
    world = bench.world

    def snapshot() -> tuple[object, ...]:
        return (
            world.positions_total,
            world.drops_total,
            world.steps_total,
            bench.controller.config,
            bench.controller.store.setting(PIN_KEY),
            bench.controller.store.setting("config.overrides"),
            len(audit_rows(bench)),
            bench.state,
        )

    before = snapshot()
    out = console.send(PROTECTED[name])
    assert len(out) == 1 and err_code(out[0]) == -203, out
    assert "login" in out[0]
    bench.run_for(2.0)  # anything it had started would have moved by now
    after = snapshot()
    assert after == before
    assert console.send("SYST:ERR?")[0].startswith('-203,"')


def test_three_wrong_pins_lock_the_port_out_with_growing_delays(console):
    for _ in range(3):
        out = console.send("login 0000")
        assert err_code(out[-1]) == -203 and "wrong PIN" in out[-1]
    assert console.session.lockout.remaining() == pytest.approx(2.0, abs=0.1)
    # the right PIN is refused while locked out, without even being checked
    out = console.send(f"login {PIN}")
    assert err_code(out[-1]) == -203 and "locked out" in out[-1]
    assert not console.session.logged_in
    console.clock.advance(2.0)
    assert err_code(console.send("login 1111")[-1]) == -203  # fourth failure: 4 s
    assert console.session.lockout.remaining() == pytest.approx(4.0, abs=0.1)
    console.clock.advance(3.0)
    assert "locked out" in console.send(f"login {PIN}")[-1]
    console.clock.advance(1.0)
    assert err_code(console.send("login 2222")[-1]) == -203  # fifth failure: 8 s
    assert console.session.lockout.remaining() == pytest.approx(8.0, abs=0.1)
    console.clock.advance(8.0)
    assert console.send(f"login {PIN}")[-1].startswith("OK")
    assert console.session.logged_in and console.session.lockout.remaining() == 0
    failures = [r for r in audit_rows(console.bench) if r["action"] == "login_failed"]
    assert len(failures) == 5 and all(r["source"] == SOURCE for r in failures)


@pytest.mark.parametrize(
    "left_s, shown",
    [(2.0, "2"), (1.5, "2"), (0.4, "1"), (0.001, "1"), (31.0, "31"), (299.2, "300")],
)
def test_the_lock_out_names_the_whole_seconds_left_rounded_up(console, left_s, shown):
    console.session.lockout.failures = 3
    console.session.lockout.locked_until = console.clock.t + 0.05 + left_s  # send() lets 0.05 s pass
    out = console.send(f"login {PIN}")
    assert out == [f"ERR -203 Command protected; locked out for {shown} s after failed logins"], out
    assert not console.session.logged_in


# A required parameter left out is -109 everywhere (as SCPI's "Missing parameter"); too many is -102.
@pytest.mark.parametrize(
    "command, code, usage",
    [
        ("login", -109, "login <PIN>"),
        (f"login {PIN} {PIN}", -102, "login <PIN>"),
        ("pin set", -109, "pin set <new PIN>"),
        ("pin set 1234 5678", -102, "pin set <new PIN>"),
        ("mode set", -109, "mode set dry|wet|switch"),
        ("mode set wet now", -102, "mode set dry|wet|switch"),
        ("config set", -109, "config set <section.key> <value>"),
        ("config set swipe.max_pass_s", -109, "config set <section.key> <value>"),
        ("config set swipe.max_pass_s 2.5 3", -102, "config set <section.key> <value>"),
        ("config reset", -109, "config reset <section.key>|all"),
        ("jog", -109, "positions"),
        ("prime", -109, "drops"),
        ("watch 5 10", -102, "watch [seconds]"),
    ],
)
def test_a_missing_parameter_is_minus_109_and_too_many_is_minus_102(console, command, code, usage):
    console.login()
    out = console.send(command)
    assert len(out) == 1 and err_code(out[0]) == code and usage in out[0], out
    assert console.send("SYST:ERR?")[0].startswith(f'{code},"')
    assert console.bench.controller.store.setting("config.overrides") is None
    assert verify_pin(PIN, console.bench.controller.store.setting(PIN_KEY))


def test_login_without_a_pin_is_minus_109_and_counts_as_no_attempt(console):
    for _ in range(5):
        out = console.send("login")
        assert out == ["ERR -109 Missing parameter; usage: login <PIN>"], out
    assert console.session.lockout.failures == 0 and console.session.lockout.remaining() == 0
    assert not [r for r in audit_rows(console.bench) if r["action"] == "login_failed"]
    assert console.send(f"login {PIN}")[-1].startswith("OK")


def test_no_pin_set_means_no_login(bench):
    c = Console(bench)
    out = c.send(f"login {PIN}")
    assert err_code(out[-1]) == -203 and "pin set" in out[-1]
    assert not c.session.logged_in


def test_an_idle_session_is_logged_out(console):
    console.login()
    console.clock.advance(299)
    out = console.send("fault clear")  # allowed (refused only because there is no fault)
    assert err_code(out[-1]) == -221
    console.clock.advance(300.5)
    out = console.send("fault clear")
    assert err_code(out[-1]) == -203
    assert any("idled out" in line for line in out[:-1])
    assert not console.session.logged_in


def test_a_query_after_an_idle_logout_still_answers_exactly_one_line(console):
    # A PyVISA script that comes back after a break asks STAT?; an extra notice line would
    # shift every later query answer by one.
    console.login()
    console.clock.advance(301)
    out = console.send("STAT?")
    assert len(out) == 1, f"query must answer exactly one line, got {out!r}"
    assert json.loads(out[0])["state"] == "idle"
    assert not console.session.logged_in


def test_more_commands_than_the_limit_in_one_instant_are_minus_310(console):
    console.clock.advance(5.0)  # a full budget
    answers = [console.handle("*IDN?") for _ in range(25)]
    assert all(len(a) == 1 for a in answers)
    ok = [a for a in answers if not a[0].startswith("ERR")]
    refused = [a for a in answers if a[0].startswith("ERR")]
    assert len(ok) == 20
    assert all(err_code(a[0]) == -310 for a in refused) and len(refused) == 5
    assert console.handle("help")[-1].startswith("ERR -310")  # non-queries too, still one final line
    console.clock.advance(1.0)
    assert console.handle("SYST:ERR?")[0].startswith('-310,"')


def test_a_steady_client_within_the_limit_is_never_refused(console):
    for _ in range(200):
        console.clock.advance(1 / 19)
        assert not console.handle("*IDN?")[0].startswith("ERR")


def run_on_loop(bench, console: Console, text: str, limit_s: float = 60.0) -> list[str]:
    """Handle `text` on a console thread while this thread is the loop (virtual time), as a
    real console port would: the handler waits for hardware actions that need time."""
    box: list[list[str]] = []
    worker = threading.Thread(target=lambda: box.append(console.send(text)), daemon=True)
    bench.loop.thread = threading.current_thread()
    try:
        worker.start()
        waited = 0.0
        while worker.is_alive() and waited < limit_s:
            bench.run_for(0.01)
            waited += 0.01
            worker.join(0.001)
        worker.join(10.0)
    finally:
        bench.loop.thread = None
    assert box, f"{text!r} did not finish"
    return box[0]


def test_every_protected_action_is_audited_with_the_console_port(console):
    bench = console.bench
    console.login()
    actions = [
        ("jog 3", "jog"),
        ("prime 2", "prime"),
        ("selftest", "selftest"),
        ("*RST", "reset"),
        ("fluid refill", "refill"),
        ("cassette new", "new"),
        ("config set swipe.max_pass_s 2.5", "config.overrides"),
        ("config reset all", "config.overrides"),
        ("pin set 8642", PIN_KEY),
    ]
    positions = bench.world.positions_total
    for text, action in actions:
        before = len(audit_rows(bench))
        out = run_on_loop(bench, console, text)
        assert_framed(text, out)
        assert out[-1].startswith("OK"), (text, out)
        new = audit_rows(bench)[: len(audit_rows(bench)) - before]
        assert any(r["action"] == action and r["source"] == SOURCE for r in new), (text, new)
    assert bench.world.positions_total == positions + 3 + 1  # jog 3, self-test 1
    assert bench.world.violations == []
    logins = [r for r in audit_rows(bench) if r["action"] == "login"]
    assert logins and logins[0]["source"] == SOURCE
    # the PIN change is audited, but the hash is not written into the audit
    pin_rows = [r for r in audit_rows(bench) if r["action"] == PIN_KEY and r["source"] == SOURCE]
    assert pin_rows and all("scrypt" not in r["detail"] for r in pin_rows)
    assert verify_pin("8642", bench.controller.store.setting(PIN_KEY))


def test_jog_runs_only_after_login_and_moves_the_wheel(console):
    bench = console.bench
    before = bench.world.positions_total
    assert err_code(run_on_loop(bench, console, "jog 2")[-1]) == -203
    assert bench.world.positions_total == before
    console.login()
    out = run_on_loop(bench, console, "jog 2")
    assert out[-1] == "OK" and "2 of 2 positions confirmed" in out[0]
    assert bench.world.positions_total == before + 2


def test_logout_ends_the_session(console):
    console.login()
    assert console.send("logout") == ["OK logged out"]
    assert err_code(console.send("fluid refill")[-1]) == -203


# ====================================================================== help and the manual
def test_the_manual_is_generated_from_the_registry():
    from pathlib import Path

    from station.console.docs import document

    manual = Path(__file__).resolve().parent.parent / "docs" / "console.md"
    assert manual.read_text(encoding="utf-8") == document(), "docs/console.md is stale: run `station console-doc`"


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_help_for_each_command_prints_its_registry_text(console, name):
    cmd = REGISTRY[name]
    out = console.send(f"help {name}")
    assert out == [f"{cmd.usage}{' (needs login)' if cmd.protected else ''}", f"  {cmd.help}", "OK"]


def test_mode_set_from_the_console_needs_login_and_cleans_as_chosen_against_the_switch(console, station):
    world = station.world
    out = console.set_mode("wet")
    assert err_code(out[-1]) == -203 and station.controller.mode.override is None
    assert world.console_mode is None
    console.login()
    assert console.set_mode("wet")[-1] == "OK"
    assert console.send("mode") == ["mode wet (set on the console)", "OK"]
    drops = world.drops_total
    result = station.clean("female", wet=False)  # the panel switch stays on DRY
    assert result.outcome == "cleaned" and result.mode is Mode.WET and result.drops == 1
    assert world.drops_total == drops + 1
    assert world.violations == []  # the world judges against the mode people chose
    assert console.set_mode("switch")[-1] == "OK"
    result = station.clean("female", wet=False)
    assert result.mode is Mode.DRY and result.drops == 0 and world.violations == []
    assert [r["action"] for r in audit_rows(station) if r["action"] == "mode"] == ["mode", "mode"]


# ---------------------------------------------------------------------------------- config reset
def test_config_reset_brings_back_the_file_value_at_once(console):
    bench = console.bench
    c = bench.controller
    file_value = c.config.swipe.max_pass_s
    console.login()
    assert console.send("config set swipe.max_pass_s 2.5")[-1] == "OK"
    shown = console.send("config show swipe")
    assert shown[-2] == "# changed on the console (undo with config reset): swipe.max_pass_s", shown
    assert c.config.swipe.max_pass_s == 2.5 != file_value
    out = console.send("config reset swipe.max_pass_s")
    assert out == [f"swipe.max_pass_s = {file_value!r} (configuration file) in effect now", "OK"], out
    assert c.config.swipe.max_pass_s == file_value and c.config == c.settings.file_config
    assert json.loads(c.store.setting("config.overrides")) == {}
    assert not any(line.startswith("#") for line in console.send("config show"))
    row = audit_rows(bench)[0]
    assert (row["action"], json.loads(row["detail"]), row["source"]) == (
        "config.overrides",
        {"reset": ["swipe.max_pass_s"]},
        SOURCE,
    )
    # nothing left to reset: a clear error naming what was asked
    out = console.send("config reset swipe.max_pass_s")
    assert len(out) == 1 and err_code(out[0]) == -222 and "swipe.max_pass_s" in out[0] and "(changed: none)" in out[0]


def test_config_reset_all_of_a_value_read_at_start_takes_effect_at_the_next_start(tmp_path):
    from hw_sim import SimBench

    def life(tmp_path):
        bench = SimBench(state_dir=tmp_path)
        bench.controller.store.set_setting(PIN_KEY, PIN_HASH, bench.controller.wall(), source="test")
        console = Console(bench)
        console.login()
        return bench, console

    bench, console = life(tmp_path)
    file_timeout = bench.controller.config.console.idle_logout_s
    with bench:
        assert console.send("config set console.idle_logout_s 77")[-1] == "OK"
        assert console.send("config set swipe.max_pass_s 2.5")[-1] == "OK"
    bench, console = life(tmp_path)
    with bench:
        assert bench.controller.config.console.idle_logout_s == 77
        out = console.send("config reset wheel.positions_per_clean")
        assert err_code(out[0]) == -222 and "console.idle_logout_s, swipe.max_pass_s" in out[0], out
        out = console.send("config reset")
        assert len(out) == 1 and err_code(out[0]) == -109 and "config reset <section.key>|all" in out[0], out
        out = console.send("config reset everything")
        assert len(out) == 1 and err_code(out[0]) == -102 and "config reset <section.key>|all" in out[0], out
        out = console.send("config reset all")
        assert out == [
            f"console.idle_logout_s = {file_timeout!r} (configuration file) from the next start",
            f"swipe.max_pass_s = {Config().swipe.max_pass_s!r} (configuration file) in effect now",
            "OK",
        ], out
        assert bench.controller.config.console.idle_logout_s == 77  # until the next start, as it says
        assert bench.controller.config.swipe.max_pass_s == Config().swipe.max_pass_s  # at once, as it says
    bench, console = life(tmp_path)
    with bench:
        assert bench.controller.config.console.idle_logout_s == file_timeout
        assert bench.controller.config == bench.controller.settings.file_config


# ---------------------------------------------------------------------------------- reports, exactly
def _swap(bench, name: str, male_mt: bool = False) -> None:
    bench.world.remove_cassette()
    bench.run_for(0.5)
    bench.world.fit_cassette(name, male_mt=male_mt)
    bench.run_for(0.5)


def test_counters_report_every_cassette_with_its_own_numbers(console):
    """The current cassette of each type with its own numbers (the one in the cradle marked), and
    how many were ever declared; a retired one is in the history (`station records --cassettes`),
    which keeps its numbers."""
    bench = console.bench
    for _ in range(2):
        assert bench.clean("female").outcome == "cleaned"
    _swap(bench, "m", male_mt=True)
    assert bench.clean("male", wet=True).outcome == "cleaned"
    _swap(bench, "standard")
    assert bench.clean("male").outcome == "rejected"  # wrong cassette: nothing used
    bench.controller.consumables.declare_new("console:test")  # the standard one declared new: #1 retired
    capacity = bench.config.cassette.capacity_positions
    out = console.send("counters")
    assert out == [
        "attempts: cleaned 3, rejected 1",
        f"cassette #2 male_mt: 3 of {capacity} positions used",
        f"cassette #3 standard (fitted): 0 of {capacity} positions used",
        "cassettes declared: 3 (history: station records --cassettes)",
        f"fluid: 1 of {bench.config.dispenser.reservoir_drops} drops used since the last refill",
        "OK",
    ], out
    history = [
        (r["id"], r["type"], r["used"], r["fits"], r["retired_at"] is not None)
        for r in bench.controller.store.cassettes()
    ]
    assert history == [(1, "standard", 6, 2, True), (2, "male_mt", 3, 1, False), (3, "standard", 0, 1, False)]


def test_status_shows_no_cassette_when_none_is_fitted_and_never_negative_fluid(tmp_path):
    from hw_sim import SimBench

    with SimBench(Config().replace("dispenser", reservoir_drops=2), state_dir=tmp_path) as bench:
        bench.controller.store.set_setting(PIN_KEY, PIN_HASH, bench.controller.wall(), source="test")
        console = Console(bench)
        capacity = bench.config.cassette.capacity_positions
        out = console.send("status")
        assert out[:4] == [
            "state:    idle",
            "mode:     dry",
            f"cassette: standard, {capacity} positions ({capacity // 3} cleans) left",
            "fluid:    2 drops left",
        ], out
        done = []
        bench.world.refill(100)  # a bigger bottle than the configuration says: the books run out first
        bench.controller.jobs.prime(3, "console:test", done.append)
        bench.wait_until(lambda: bool(done), 10)
        assert done[0].ok, done
        assert console.send("fluid") == ["0 drops left", "OK"]
        assert json.loads(console.send("STAT?")[0])["fluid_drops_left"] == 0
        bench.world.remove_cassette()
        bench.run_for(0.5)
        out = console.send("status")
        assert out[:5] == [
            "state:    fault",
            "mode:     dry",
            "cassette: none fitted",
            "fluid:    0 drops left",
            "fault:    no_cassette: the cradle is empty; fit a cassette (the fault clears by itself)",
        ], out
        stat = json.loads(console.send("STAT?")[0])
        assert (stat["cassette"], stat["ribbon_remaining"], stat["cleans_remaining"]) == (None, None, None)
        assert console.send("cassette") == ["no cassette fitted", "OK"]


def test_sensors_show_the_stepper_and_pump_as_they_are_driven(console):
    bench, c = console.bench, console.bench.controller
    at_rest = console.send("sensors")
    assert "stepper_enabled  -" in at_rest and "pump             -" in at_rest, at_rest
    seen = []
    c.jobs.jog(3, "console:test", seen.append)
    bench.run_for(0.05)
    assert sensor_report(c)["stepper_enabled"] is True and sensor_report(c)["pump"] is False
    bench.wait_until(lambda: bool(seen), 10)
    c.jobs.prime(1, "console:test", seen.append)
    assert bench.world.pump_on and sensor_report(c)["pump"] is True
    bench.wait_until(lambda: len(seen) == 2, 10)
    assert sensor_report(c)["pump"] is False and sensor_report(c)["stepper_enabled"] is False


def test_config_set_is_refused_mid_clean_allowed_in_fault_and_saved_sorted(console):
    bench, c = console.bench, console.bench.controller
    console.login()
    bench.world.present("female")
    assert bench.wait_until(lambda: bench.world.prompting, 20)
    out = console.send("config set swipe.max_pass_s 2.5")
    assert out == ["ERR -221 Settings conflict; the station is swipe_ready; change settings while it is ready"], out
    assert c.store.setting("config.overrides") is None
    bench.world.remove()
    bench.run_for(1.0)
    bench.world.remove_cassette()  # fault: settings may still be changed (the station is safe)
    bench.run_for(0.5)
    assert bench.state == "fault"
    out = console.send("config set swipe.max_pass_s 2.5")
    assert out[0] == "swipe.max_pass_s = 2.5 in effect now" and out[-1] == "OK", out
    out = console.send("config set console.idle_logout_s 77")
    assert out[0] == "console.idle_logout_s = 77.0 saved; takes effect at the next start" and out[-1] == "OK", out
    out = console.send("config set dispenser.reservoir_drops 50")
    assert out[0] == "dispenser.reservoir_drops = 50 in effect now", out
    assert c.store.fluid() == (0, 50)
    assert c.store.setting("config.overrides") == (
        '{"console": {"idle_logout_s": 77.0}, "dispenser": {"reservoir_drops": 50}, "swipe": {"max_pass_s": 2.5}}'
    )
    details = [json.loads(r["detail"]) for r in audit_rows(bench) if r["action"] == "config.overrides"]
    assert details == [{"dispenser.reservoir_drops": 50}, {"console.idle_logout_s": 77.0}, {"swipe.max_pass_s": 2.5}]


def test_a_listener_unsubscribed_hears_nothing_more(bench):
    heard = []
    listener = heard.append
    bench.controller.events.subscribe(listener)
    bench.world.present("female")
    bench.run_for(0.1)
    assert any(isinstance(e, AttemptStarted) for e in heard)
    bench.controller.events.unsubscribe(listener)
    bench.controller.events.unsubscribe(listener)  # twice: harmless
    n = len(heard)
    bench.world.remove()
    bench.run_for(1.0)
    assert len(heard) == n


def test_a_change_that_would_not_fit_the_next_start_is_refused(console):
    """pulse_s waits for the next start; a drop timeout that fits the running pulse but not the
    saved one would have stopped the station from starting: refused, naming the conflict."""
    c = console.bench.controller
    console.login()
    assert console.send("config set dispenser.pulse_s 0.4")[-1] == "OK"
    out = console.send("config set dispenser.drop_timeout_s 0.3")
    assert len(out) == 1 and err_code(out[0]) == -221, out
    assert "dispenser.drop_timeout_s = 0.3: must be longer than dispenser.pulse_s (0.4)" in out[0]
    assert "config reset one of them first" in out[0]
    assert json.loads(c.store.setting("config.overrides")) == {"dispenser": {"pulse_s": 0.4}}
    assert c.config.dispenser.drop_timeout_s == Config().dispenser.drop_timeout_s
    out = console.send("config set dispenser.drop_timeout_s 99")  # wrong on its own: out of range, -222
    assert out == ["ERR -222 Data out of range; dispenser.drop_timeout_s = 99: out of range; allowed 0.01 to 10.0"], out


def test_resetting_one_value_does_not_bring_forward_another_pending_for_the_next_start(console):
    c = console.bench.controller
    console.login()
    assert console.send("config set wheel.positions_per_clean 2")[-1] == "OK"
    assert console.send("config set swipe.max_pass_s 2.5")[-1] == "OK"
    assert console.send("config reset swipe.max_pass_s")[-1] == "OK"
    assert c.config.wheel.positions_per_clean == 3, "pending for the next start, not now"
    assert c.config.swipe.max_pass_s == Config().swipe.max_pass_s
    shown = console.send("config show")
    assert (
        shown[-2]
        == "# changed on the console (undo with config reset): wheel.positions_per_clean (from the next start)"
    )


def test_a_reset_that_would_leave_an_invalid_configuration_is_refused_naming_why(console):
    c = console.bench.controller
    console.login()
    assert console.send("config set dispenser.drop_timeout_s 1.0")[-1] == "OK"
    assert console.send("config set dispenser.pulse_s 0.8")[-1] == "OK"
    out = console.send("config reset dispenser.drop_timeout_s")
    assert len(out) == 1 and err_code(out[0]) == -221, out
    assert "resetting dispenser.drop_timeout_s leaves a configuration that is not valid" in out[0]
    assert "must be longer than dispenser.pulse_s (0.8)" in out[0]
    assert json.loads(c.store.setting("config.overrides")) == {"dispenser": {"drop_timeout_s": 1.0, "pulse_s": 0.8}}
    assert console.send("config reset all")[-1] == "OK"
    assert json.loads(c.store.setting("config.overrides")) == {}


def test_config_reset_is_refused_mid_clean_for_a_value_in_effect_now(console):
    bench, c = console.bench, console.bench.controller
    console.login()
    assert console.send("config set swipe.max_pass_s 2.5")[-1] == "OK"
    assert console.send("config set panel.beep_s 0.1")[-1] == "OK"
    assert console.send("config set guide_pins.settle_s 0.2")[-1] == "OK"
    bench.world.present("female")
    assert bench.wait_until(lambda: bench.world.prompting, 20)
    out = console.send("config reset swipe.max_pass_s")
    assert out == ["ERR -221 Settings conflict; the station is swipe_ready; change settings while it is ready"], out
    assert c.config.swipe.max_pass_s == 2.5
    out = console.send("config reset panel.beep_s")  # waits for the next start anyway: allowed
    assert out == [f"panel.beep_s = {Config().panel.beep_s!r} (configuration file) from the next start", "OK"], out
    assert c.store.setting("config.overrides") == '{"guide_pins": {"settle_s": 0.2}, "swipe": {"max_pass_s": 2.5}}'


# ---------------------------------------------------------------------------------- sensors, every input
# every input fitted by default, the wheel's index and the outputs, then the inputs not fitted
# (the inspection system's PASS/FAIL lines unless inspection.gpio_fitted)
UNFITTED = [Sensor.INSPECT_PASS.value, Sensor.INSPECT_FAIL.value]
EXPECTED_SENSOR_LINES = (
    [s.value for s in Sensor if s.value not in UNFITTED] + ["index", "stepper_enabled", "pump"] + UNFITTED
)


def test_sensors_list_every_input_the_wheel_index_included_then_the_outputs(console):
    out = console.send("sensors")
    assert out[-1] == "OK"
    names = [line.split()[0] for line in out[:-1]]
    assert names == EXPECTED_SENSOR_LINES
    assert all(line[16] == " " and line[17:] in ("active", "-", "not fitted") for line in out[:-1]), out  # one column


def test_a_sensor_that_is_not_fitted_is_listed_as_such(make_bench):
    bench = make_bench(Config().replace("dispenser", drop_sensor_fitted=False))
    out = Console(bench).send("sensors")
    assert "drop             not fitted" in out and out[-1] == "OK", out
    assert len(out) - 1 == len(Sensor) + 3


def test_the_index_in_sensors_is_the_index_line_as_the_wheel_turns(console):
    """Sampled through a jog: the report follows the physical index line, in and out of a slot."""
    bench, c = console.bench, console.bench.controller
    seen = set()
    done = []
    c.jobs.jog(3, "console:test", done.append)
    while not done:
        bench.run_for(0.0005)
        report = sensor_report(c)
        assert report["index"] == bench.world.inputs.read("index")
        seen.add(report["index"])
    assert done[0].ok and seen == {True, False}
    line = "index            " + ("active" if bench.world.inputs.read("index") else "-")
    assert line in console.send("sensors")


# ---------------------------------------------------------------------------------- live views
def stream_while(bench, console: Console, text: str, act, write=None, limit_s: float = 60.0) -> list[str]:
    """`text` handled on a console thread while this thread is the loop (virtual time); once the
    live view listens, `act()` does something on the bench. Returns every line the port carried."""
    carried: list[str] = []
    listeners = bench.controller.events._listeners  # (to know when the view listens)
    before = len(listeners)

    def port() -> None:
        out = console.dispatcher.handle(P.Line(text), write or carried.append)
        carried.extend(out)

    worker = threading.Thread(target=port, daemon=True)
    bench.loop.thread = threading.current_thread()
    try:
        worker.start()
        end = time.monotonic() + 10.0
        while len(listeners) == before:
            assert time.monotonic() < end, f"{text!r} never listened"
            bench.run_for(0.001)
            time.sleep(0.001)
        act()
        end = time.monotonic() + limit_s
        while worker.is_alive() and time.monotonic() < end:
            bench.run_for(0.05)
            worker.join(0.001)
        worker.join(10.0)
    finally:
        bench.loop.thread = None
    assert not worker.is_alive(), f"{text!r} did not finish"
    assert len(listeners) == before, "the live view must stop listening when it ends"
    return carried


def test_watch_streams_each_event_as_time_kind_json_then_ok(console):
    bench = console.bench
    start: list[float] = []

    def clean() -> None:
        start.append(bench.loop.now())
        assert bench.clean("female").outcome == "cleaned"

    out = stream_while(bench, console, "watch 20", clean)
    heard = [h for h in bench.events if start[0] <= h.t < start[0] + 20]
    assert out[-1] == f"OK {len(heard)} events in 20 s", out
    assert len(out) == len(heard) + 1
    for line, h in zip(out[:-1], heard, strict=True):
        when, kind, body = line.split(" ", 2)
        assert when == iso(SIM_EPOCH + h.t)  # the station's wall clock, UTC
        assert datetime.fromisoformat(when.replace("Z", "+00:00")).tzinfo is not None
        event = from_json(json.loads(body))  # a script gets the typed event back
        assert kind == event.kind and event == h.event
    kinds = [line.split(" ", 2)[1] for line in out[:-1]]
    assert {"state", "attempt", "advanced", "swipe_now", "result"} <= set(kinds)
    results = [from_json(json.loads(line.split(" ", 2)[2])) for line in out[:-1] if " result " in line]
    assert results == [bench.last_result()] and isinstance(results[0], AttemptFinished)
    assert not any(" sensor " in line for line in out), "input edges are `sensors <seconds>`'s"


def test_watch_shows_warnings_faults_and_their_clearing(make_bench):
    bench = make_bench(Config().replace("cassette", capacity_positions=60))  # 20 cleans: low after one
    console = Console(bench)

    def act() -> None:
        assert bench.clean("female").outcome == "cleaned"
        bench.world.inject(Fault.JAM)
        bench.world.present("female")
        assert bench.wait_until(lambda: bench.state == "fault", 30)
        bench.world.clear(Fault.JAM)
        bench.world.remove()
        bench.run_for(0.5)
        assert bench.controller.request_fault_clear("console:test").ok
        bench.run_for(1.0)

    out = stream_while(bench, console, "watch 60", act)
    events = [from_json(json.loads(line.split(" ", 2)[2])) for line in out[:-1]]
    warnings = [e for e in events if isinstance(e, WarningRaised)]
    assert [w.code for w in warnings] == ["cassette_low"] and "19 cleans left" in warnings[0].text
    (fault,) = [e for e in events if isinstance(e, FaultRaised)]
    assert fault.code is FaultCode.JAM
    assert fault.detail.startswith("wheel confirmed 0 of 3 positions after "), fault.detail
    assert fault.detail.endswith(f" steps; {NEXT_STEP[FaultCode.JAM]}"), fault.detail
    assert [e.code.value for e in events if isinstance(e, FaultCleared)] == ["jam"]
    assert [e.state for e in events if isinstance(e, StateChanged)][-1] == "idle"
    assert out[-1] == f"OK {len(events)} events in 60 s"


def test_watch_without_seconds_watches_a_minute(console):
    out = stream_while(console.bench, console, "watch", lambda: None, limit_s=120.0)
    assert out == ["OK 0 events in 60 s"]


@pytest.mark.parametrize("command", ["watch 0", "watch 3601", "watch x", "sensors 0", "sensors 61"])
def test_live_views_refuse_a_duration_out_of_range(console, command):
    out = console.send(command)
    assert len(out) == 1 and err_code(out[0]) == -222, out


def test_sensors_with_seconds_streams_each_input_change(console):
    bench = console.bench
    start: list[float] = []

    def clean() -> None:
        start.append(bench.loop.now())
        assert bench.clean("female").outcome == "cleaned"

    edges: list[SensorChanged] = []
    bench.controller.events.subscribe(lambda e: edges.append(e) if isinstance(e, SensorChanged) else None)
    out = stream_while(bench, console, "sensors 20", clean)
    snapshot = len(Sensor) + 3
    assert [line.split()[0] for line in out[:snapshot]] == EXPECTED_SENSOR_LINES
    changes = out[snapshot:-1]
    assert out[-1] == f"OK {len(changes)} changes in 20 s"
    assert [line.split() for line in changes] == [
        [f"{e.t:.3f}", e.sensor.value, "active" if e.active else "-"] for e in edges if e.t < start[0] + 20
    ]
    assert {"connector", "gate_a", "gate_b"} <= {line.split()[1] for line in changes}


def test_a_live_view_never_holds_the_controller_up_for_a_client_that_stops_reading(console, monkeypatch):
    """The port's client reads nothing while a clean runs: the clean goes on at full speed (the
    listener on the loop only queues), the view keeps at most STREAM_BACKLOG lines for it and
    says how many more it dropped."""
    monkeypatch.setattr(commands, "STREAM_BACKLOG", 3)
    bench = console.bench
    release = threading.Event()
    written: list[str] = []
    start: list[float] = []

    def stuck_client(line: str) -> None:
        written.append(line)
        release.wait(60.0)

    def clean() -> None:
        start.append(bench.loop.now())
        assert bench.clean("female").outcome == "cleaned"  # while the port is stuck writing
        assert not release.is_set()
        release.set()

    out = stream_while(bench, console, "watch 20", clean, write=stuck_client)
    heard = [h for h in bench.events if start[0] <= h.t < start[0] + 20]
    assert len(heard) > 4
    lines = len(written)
    assert 1 <= lines <= 3 + 1  # what was queued, plus the one being written when it stuck
    assert out == [f"OK {lines} events in 20 s; {len(heard) - lines} more dropped (the client read too slowly)"]
