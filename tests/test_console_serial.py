"""The maintenance console over real pseudo-terminals, as a technician or a lab script uses it.

The station runs paced to the wall clock on its own thread (`SimBench.run_paced`); its
console and the simulator's bench port sit on null-modem pty pairs (`serial_ports`), and
this test opens the user ends with pyserial, exactly as miniterm would. The bench port plays
the operator (present, swipe, remove) and injects faults; the console is the engineer.

Nothing here asserts how fast anything is: every wait has a generous limit and the tests
check outcomes only.
"""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
import serial
from conftest import require_tool

from hw_sim import SimBench
from hw_sim.headless import serial_ports
from hw_sim.nullmodem import NullModem
from station import MAKER, MODEL, __version__
from station.config import OVERRIDES_SETTING
from station.console.access import Session, hash_pin
from station.console.commands import PIN_KEY, REGISTRY
from station.console.server import Dispatcher, SerialPortServer, console_context

PIN = "4711"
PIN_HASH = hash_pin(PIN)
READ_S = 10.0  # per line; generous for a noisy machine
LIMIT_S = 20.0  # for the station to reach a state


# ---------------------------------------------------------------------------------- helpers
def is_final(line: str) -> bool:
    return line == "OK" or line.startswith("OK ") or line.startswith("ERR ")


class Port:
    """A pyserial client on one pty: `ask` a query (one line), `command` anything else
    (lines up to the final OK / ERR)."""

    def __init__(self, path: str, timeout: float = READ_S) -> None:
        self.path = path
        self.serial = serial.Serial(path, 115200, timeout=timeout)

    def write_line(self, text: str | bytes) -> None:
        data = text if isinstance(text, bytes) else text.encode("utf-8")
        self.serial.write(data + b"\n")

    def read_line(self) -> str:
        raw = self.serial.readline()
        assert raw.endswith(b"\n"), f"no complete line on {self.path} within {self.serial.timeout} s (got {raw!r})"
        return raw[:-1].decode("utf-8")

    def ask(self, query: str) -> str:
        self.write_line(query)
        return self.read_line()

    def command(self, text: str | bytes) -> list[str]:
        self.write_line(text)
        lines = [self.read_line()]
        while not is_final(lines[-1]):
            lines.append(self.read_line())
        return lines

    def drain(self, quiet_s: float = 1.0, limit_s: float = 60.0) -> bytes:
        """Read and discard until nothing arrives for `quiet_s`."""
        got = bytearray()
        old = self.serial.timeout
        self.serial.timeout = quiet_s
        end = time.monotonic() + limit_s
        try:
            while time.monotonic() < end:
                chunk = self.serial.read(4096)
                if not chunk:
                    return bytes(got)
                got += chunk
        finally:
            self.serial.timeout = old
        raise AssertionError(f"{self.path} never went quiet")

    def close(self) -> None:
        self.serial.close()


class Station:
    """The running bench with its console and bench ports opened."""

    def __init__(self, bench: SimBench, paths: dict[str, str], opened: list[Port]) -> None:
        self.bench = bench
        self.paths = paths
        self._opened = opened
        self.console = self.open("console")
        self.benchport = self.open("bench")

    def open(self, name: str) -> Port:
        port = Port(self.paths[name])
        self._opened.append(port)
        return port

    def call(self, fn: Callable[[], Any]) -> Any:
        """Read the bench on its own loop thread (it is running paced on another thread)."""
        return self.bench.loop.call_sync(fn, 10.0)

    def positions(self) -> int:
        return self.call(lambda: self.bench.world.positions_total)

    def drops(self) -> int:
        return self.call(lambda: self.bench.world.drops_total)

    def violations(self) -> list[Any]:
        return self.call(lambda: list(self.bench.world.violations))

    def audit(self) -> list[dict[str, Any]]:
        return self.call(lambda: [dict(r) for r in self.bench.controller.store.audit_log(1000)])

    def attempts(self) -> list[Any]:
        return self.call(lambda: sorted(self.bench.controller.store.attempts(), key=lambda r: r.id))

    def act(self, text: str) -> str:
        """An operator or bench action on the bench port."""
        out = self.benchport.command(text)
        assert len(out) == 1 and out[0].startswith("OK"), f"bench {text!r}: {out}"
        return out[0]

    def state(self) -> str:
        while True:
            answer = self.benchport.ask("STATE?")
            if not answer.startswith("ERR -310"):
                return answer
            time.sleep(0.2)

    def wait_state(self, *states: str, limit_s: float = LIMIT_S) -> str:
        end = time.monotonic() + limit_s
        state = self.state()
        while state not in states:
            assert time.monotonic() < end, f"station is {state}, waited {limit_s} s for {states}"
            time.sleep(0.1)
            state = self.state()
        return state

    def login(self) -> None:
        assert self.console.command(f"login {PIN}") == [
            f"OK logged in; idle sessions log out after {self.bench.config.console.idle_logout_s:.0f} s"
        ]

    def clean_on_bench(self, connector: str = "female") -> str:
        """A disciplined operator on the bench port; returns `log 1` from the console."""
        n = len(self.attempts())
        self.act(f"present {connector}")
        self.wait_state("swipe_ready")
        time.sleep(0.3)
        self.act("swipe")
        self.wait_state("done")
        self.act("remove")
        self.wait_state("idle")
        assert len(self.attempts()) == n + 1
        out = self.console.command("log 1")
        assert len(out) == 2 and out[1] == "OK"
        return out[0]


def wait_for(predicate: Callable[[], bool], limit_s: float = LIMIT_S, what: str = "") -> None:
    end = time.monotonic() + limit_s
    while not predicate():
        assert time.monotonic() < end, f"waited {limit_s} s for {what or predicate}"
        time.sleep(0.05)


def start_paced(bench: SimBench) -> tuple[threading.Event, threading.Thread]:
    stop = threading.Event()
    runner = threading.Thread(target=bench.run_paced, args=(stop,), name="paced-bench", daemon=True)
    runner.start()
    # Until run_paced has claimed the loop, call_sync would run inline on the caller's thread.
    wait_for(lambda: bench.loop.thread is runner, 10.0, "the paced loop to start")
    return stop, runner


@pytest.fixture
def live(tmp_path):
    """A station running paced on its own thread, its console and bench port on ptys."""
    bench = SimBench(state_dir=tmp_path)
    bench.controller.store.set_setting(PIN_KEY, PIN_HASH, bench.controller.wall(), source="test")
    stop, runner = start_paced(bench)
    opened: list[Port] = []
    try:
        with serial_ports(bench, bench_port=True) as paths:
            try:
                yield Station(bench, paths, opened)
            finally:
                for port in opened:
                    port.close()
    finally:
        stop.set()
        runner.join(10.0)
        bench.close()
    assert not runner.is_alive(), "the paced bench did not stop"


def station_source(live: Station) -> str:
    """The audit source of the console port: `console:<the device the client attached to>`."""
    logins = [r for r in live.audit() if r["action"] == "login"]
    assert logins, "log in first"
    return logins[0]["source"]


# ---------------------------------------------------------------------------------- queries
def test_idn_identifies_the_station(live):
    assert live.console.ask("*IDN?") == f"{MAKER},{MODEL},SIM-0001,{__version__}"


def test_stat_is_exactly_one_line_of_json_with_the_status(live):
    answer = live.console.ask("STAT?")
    status = json.loads(answer)
    for key in ("state", "mode", "cassette", "ribbon_remaining", "fluid_drops_left", "fault"):
        assert key in status
    assert status["state"] == "idle" and status["mode"] == "dry" and status["cassette"] == "standard"
    assert status["ribbon_remaining"] == 1500 and status["fault"] is None
    assert live.console.ask("*OPC?") == "1", "STAT? must not have sent a second line"


def test_syst_err_reports_an_error_then_no_error(live):
    out = live.console.command("frobnicate")
    assert len(out) == 1 and out[0].startswith("ERR -113 ")
    assert re.fullmatch(r'-113,".*frobnicate.*"', live.console.ask("SYST:ERR?"))
    assert live.console.ask("SYST:ERR?") == '0,"No error"'


def test_help_lists_every_command_with_its_registry_text(live):
    out = live.console.command("help")
    assert out[0].startswith("Commands") and out[-1] == "OK"
    body = out[1:-1]
    assert len(body) == len(REGISTRY)
    for line, cmd in zip(body, REGISTRY.values(), strict=True):
        assert line.strip().startswith(cmd.usage)
        summary = line[len(f"  {cmd.usage:<28} ") :].removesuffix(" *")
        assert cmd.help.startswith(summary), (line, cmd.help)
        assert line.endswith(" *") == cmd.protected


def test_help_jog_prints_the_registry_text(live):
    jog = REGISTRY["jog"]
    assert live.console.command("help jog") == [f"{jog.usage} (needs login)", f"  {jog.help}", "OK"]


# ---------------------------------------------------------------------------------- line ends
def read_raw_answer(port: Port, *, query: bool = False) -> bytes:
    """The bytes of one answer as they arrive: a query's one line, or a command's lines up to
    and including the final OK / ERR line's end."""
    got = bytearray()
    end = time.monotonic() + READ_S
    while True:
        got += port.serial.read(max(1, port.serial.in_waiting))
        if got.endswith(b"\n"):
            lines = bytes(got).replace(b"\r\n", b"\n").split(b"\n")[:-1]
            if query or is_final(lines[-1].decode("utf-8")):
                return bytes(got)
        assert time.monotonic() < end, f"no complete answer within {READ_S} s: {bytes(got)!r}"


@pytest.mark.parametrize(
    "sent, answered",
    [(b"\n", b"\n"), (b"\r\n", b"\r\n"), (b"\r", b"\r\n")],
    ids=["LF-script", "CRLF-miniterm", "CR-picocom-screen"],
)
def test_answers_end_the_way_the_line_they_answer_ended(live, sent, answered):
    """LF for scripts and PyVISA (SCPI); CR LF for terminals, which show a staircase on a bare LF."""
    c = live.console
    c.serial.write(b"*IDN?" + sent)
    assert read_raw_answer(c, query=True) == f"{MAKER},{MODEL},SIM-0001,{__version__}".encode() + answered
    for command in (b"status", b"sensors", b"sensors 1", b"frobnicate", b"login"):
        c.serial.write(command + sent)
        raw = read_raw_answer(c)
        lines = raw.split(answered)
        assert lines[-1] == b"" and len(lines) > 1, raw
        assert all(b"\r" not in line and b"\n" not in line for line in lines), f"{command!r}: {raw!r}"
    c.serial.write(b"\n*OPC?" + sent)  # a blank line first: not answered, and changes nothing after it
    assert read_raw_answer(c, query=True) == b"1" + answered


def test_each_line_is_answered_the_way_it_ended_on_one_port(live):
    c = live.console
    c.serial.write(b"*IDN?\r*OPC?\n*OPC?\r\n")
    expected = f"{MAKER},{MODEL},SIM-0001,{__version__}\r\n1\n1\r\n".encode()
    got = b""
    end = time.monotonic() + READ_S
    while len(got) < len(expected) and time.monotonic() < end:
        got += c.serial.read(len(expected) - len(got))
    assert got == expected


TERMINALS = {
    # as docs/console.md starts them: no line-end option, local echo on where the program has one
    "miniterm": lambda path: [sys.executable, "-m", "serial.tools.miniterm", "--echo", path, "115200"],
    "picocom": lambda path: ["picocom", "-q", "-b", "115200", "--echo", path],
    "screen": lambda path: ["screen", path, "115200"],
}


@pytest.mark.parametrize("terminal", sorted(TERMINALS))
def test_miniterm_picocom_and_screen_show_the_answers_without_a_staircase(live, terminal, tmp_path):
    """The real programs in a real terminal emulator (tmux), started as docs/console.md says:
    every answer line starts at the left margin (skipped where a program is not installed)."""
    program = TERMINALS[terminal]("")[0]
    if program != sys.executable:
        require_tool(program, "tmux", install=f"apt-get install -y {program} tmux")
    else:
        require_tool("tmux", install="apt-get install -y tmux")
    socket = f"console-test-{os.getpid()}-{terminal}"
    tmux = ["tmux", "-L", socket, "-f", "/dev/null"]
    env = {**os.environ, "TERM": "xterm", "SCREENDIR": str(tmp_path / "screen")}
    (tmp_path / "screen").mkdir(mode=0o700)
    cmd = " ".join(TERMINALS[terminal](live.paths["console"]))
    subprocess.run([*tmux, "new-session", "-d", "-x", "100", "-y", "40", cmd], env=env, check=True)
    try:

        def screen_text() -> list[str]:
            out = subprocess.run([*tmux, "capture-pane", "-p"], env=env, capture_output=True, text=True)
            return out.stdout.splitlines()

        def answered() -> bool:
            return any(line.strip() == "OK" for line in screen_text())

        for _ in range(4):  # until the program has the port open and takes keys
            time.sleep(0.5)
            subprocess.run([*tmux, "send-keys", "status", "Enter"], env=env, check=True)
            end = time.monotonic() + 5.0
            while not answered() and time.monotonic() < end:
                time.sleep(0.1)
            if answered():
                break
        wait_for(answered, 1.0, f"{terminal}'s answer")
        shown = screen_text()
        for line in ("state:    idle", "mode:     dry", f"login:    not logged in on {live.paths['console']}", "OK"):
            assert line in shown, shown  # whole lines: each starts at the left margin
        if terminal != "screen":
            assert "status" in shown, f"{terminal} --echo shows what was typed, on a line of its own"
    finally:
        subprocess.run([*tmux, "kill-server"], env=env, capture_output=True)


# ---------------------------------------------------------------------------------- the port named
def test_status_and_the_audit_name_the_port_the_person_attached_to(live):
    """In the simulator the person attaches to the user end of the null-modem cable: that is the
    port `status` and the audit name (on the Pi, the station's own device, /dev/serial0)."""
    path = live.paths["console"]
    status = live.console.command("status")
    assert status[-2:] == [f"login:    not logged in on {path}", "OK"], status
    live.login()
    assert live.console.command("status")[-2] == f"login:    maintenance on {path}"
    assert [r["source"] for r in live.audit() if r["action"] == "login"] == [f"console:{path}"]
    shown = live.console.command("audit 1")
    assert f"console:{path}" in shown[0] and shown[-1] == "OK", shown


# ---------------------------------------------------------------------------------- maintenance
def test_jog_needs_a_login_then_moves_the_wheel_and_is_audited_with_the_port(live):
    before = live.positions()
    out = live.console.command("jog 3")
    assert len(out) == 1 and out[0].startswith("ERR -203 ")
    assert live.positions() == before
    live.login()
    out = live.console.command("jog 3")
    assert out[-1] == "OK"
    assert "3 of 3 positions confirmed" in out[0]
    assert live.positions() == before + 3
    source = station_source(live)
    assert source == f"console:{live.paths['console']}"
    jogs = [r for r in live.audit() if r["action"] == "jog"]
    assert len(jogs) == 1 and jogs[0]["source"] == source and json.loads(jogs[0]["detail"]) == {"positions": 3}
    assert json.loads(live.console.ask("STAT?"))["ribbon_remaining"] == 1500 - 3
    assert live.violations() == []


def test_prime_pumps_the_drops(live):
    live.login()
    before = live.drops()
    out = live.console.command("prime 2")
    assert out == ["pump: 2 drops", "OK"]
    assert live.drops() == before + 2
    assert json.loads(live.console.ask("STAT?"))["fluid_drops_left"] == 2000 - 2
    assert [r["action"] for r in live.audit()].count("prime") == 1


def test_selftest_reports_pass_for_each_part(live):
    live.login()
    out = live.console.command("selftest")
    assert out[-1] == "OK"
    text = "\n".join(out)
    for part in ("sensors: PASS", "wheel: PASS", "pump: PASS", "lights and buzzer"):
        assert part in text, out
    assert "FAIL" not in text
    assert live.violations() == []


def test_a_clean_driven_on_the_bench_port_shows_in_the_log(live):
    line = live.clean_on_bench("female")
    assert " cleaned " in f" {line} " and "female" in line and "pos 3" in line
    assert live.positions() == 3
    assert json.loads(live.benchport.ask("PHYS?"))["prompted_swipes"] == 1
    assert live.benchport.ask("VIOL?") == "[]"


# ---------------------------------------------------------------------------------- faults
def test_a_code_scanned_on_the_bench_port_and_typed_at_the_console_ties_the_cleans(live):
    """Traceability over real ports: the bench port's scanner keeps a code's case (a SCPI word
    does not), a person types another code at the console; each ties the next clean."""
    live.act("scan CBL-0001-A")
    assert "[connector CBL-0001-A]" in live.clean_on_bench()
    assert live.console.command("scan CBL-0001-B") == [
        "connector CBL-0001-B (cable CBL-0001, end B): present it now",
        "OK",
    ]
    assert "[connector CBL-0001-B]" in live.clean_on_bench()
    refused = live.benchport.command("swipe")  # no connector in the guide: the bench cannot do it now
    assert refused[0].startswith("ERR -221") and "no connector in the guide" in refused[0]


def test_an_inspection_verdict_over_the_serial_console_closes_the_loop(live):
    """The probe's PC software on a real port: inspection switched on at the console, a clean on
    the bench, INSP:RES FAIL with findings, the next procedure; INSP:RES? in one line."""
    live.login()
    assert live.console.command("config set inspection.mode after")[-1] == "OK"
    assert live.console.command("INSP:RES PASS")[0].startswith("ERR -221")  # nothing awaits yet
    live.clean_on_bench()
    findings = '{"fibers":12,"failed":[3,7]}'
    out = live.console.command(f"INSP:RES FAIL {findings}")
    assert out[-1] == "OK" and out[0].endswith("clean again on fresh ribbon (dry)"), out
    assert live.console.ask("INSP:RES?").startswith("fail attempt #")
    rows = live.call(
        lambda: live.bench.controller.store._db.execute("SELECT verdict, detail FROM inspections").fetchall()
    )
    assert [tuple(r) for r in rows] == [("fail", '{"failed":[3,7],"fibers":12}')]


def test_a_jam_puts_the_station_in_fault_and_fault_clear_brings_it_back(live):
    live.act("inject jam")
    live.act("present female")
    live.wait_state("fault")
    assert live.console.ask("FAULT?").startswith("jam: ")
    assert json.loads(live.console.ask("STAT?"))["fault"] == "jam"
    assert live.console.command("fault clear")[-1].startswith("ERR -203 ")
    live.login()
    live.act("clear jam")
    live.act("remove")
    out = live.console.command("fault clear")
    assert out[-1] == "OK" and "jam cleared" in out[0]
    live.wait_state("idle")
    assert live.console.ask("FAULT?") == "none"
    assert "cleaned" in live.clean_on_bench("female")
    assert live.violations() == []


def test_cassette_pulled_mid_clean_cannot_be_cleared_until_a_cassette_is_back(live):
    live.login()
    live.act("present female")
    live.wait_state("swipe_ready")
    live.act("remove_cassette")
    live.wait_state("fault")
    assert live.console.ask("FAULT?").startswith("cassette_pulled: ")
    out = live.console.command("fault clear")
    assert len(out) == 1 and out[0].startswith("ERR -221 ") and "cassette_pulled" in out[0]
    assert live.state() == "fault"
    live.act("fit_cassette")
    time.sleep(0.3)
    assert live.state() == "fault", "a pulled cassette needs a technician's acknowledgement"
    out = live.console.command("fault clear")
    assert out[-1] == "OK" and "cassette_pulled cleared" in out[0]
    live.act("remove")
    live.wait_state("idle")
    failed = live.attempts()[-1]
    assert failed.outcome == "failed" and "cassette" in failed.reason
    clears = [r for r in live.audit() if r["action"] == "fault_clear"]
    assert len(clears) == 1 and clears[0]["source"] == station_source(live)
    assert live.violations() == []


def test_rst_during_swipe_ready_records_the_attempt_interrupted_and_goes_back_to_ready(live):
    live.login()
    live.act("present female")
    live.wait_state("swipe_ready")
    out = live.console.command("*RST")
    assert out == ["reset to ready", "OK"]
    rec = live.attempts()[-1]
    assert rec.outcome == "interrupted"
    assert live.state() in ("idle", "done")  # with the connector still in the guide: take it away
    live.act("remove")
    live.wait_state("idle")
    assert len(live.attempts()) == 1, "the reset must not start another attempt"
    assert [r["action"] for r in live.audit()].count("reset") == 1
    assert "cleaned" in live.clean_on_bench("female")
    assert live.violations() == []


# ---------------------------------------------------------------------------------- configuration
def test_config_set_is_in_effect_at_once_and_saved(live):
    live.login()
    out = live.console.command("config set swipe.max_pass_s 2.5")
    assert out[-1] == "OK" and "in effect now" in out[0]
    shown = live.console.command("config show swipe")
    assert shown[0] == "[swipe]" and shown[-1] == "OK"
    assert any(line.startswith("max_pass_s = 2.5 ") for line in shown), shown
    assert live.call(lambda: live.bench.controller.config.swipe.max_pass_s) == 2.5
    saved = json.loads(live.call(lambda: live.bench.controller.store.setting(OVERRIDES_SETTING)))
    assert saved == {"swipe": {"max_pass_s": 2.5}}
    # and a swipe slower than the new limit now fails
    live.act("present female")
    live.wait_state("swipe_ready")
    live.act("swipe duration_s=2.8")
    live.wait_state("done")
    live.act("remove")
    live.wait_state("idle")
    assert live.attempts()[-1].reason == "swipe too slow"


def test_config_set_with_a_misspelt_key_is_minus_222_naming_the_key(live):
    live.login()
    out = live.console.command("config set swipe.max_pas_s 2.5")
    assert len(out) == 1 and out[0].startswith("ERR -222 ")
    assert "swipe.max_pas_s" in out[0]
    assert live.call(lambda: live.bench.controller.store.setting(OVERRIDES_SETTING)) is None
    out = live.console.command("config set swipe.max_pass_s 999")
    assert out[0].startswith("ERR -222 ") and "swipe.max_pass_s" in out[0]


# ---------------------------------------------------------------------------------- robustness
def test_garbage_lines_get_errors_and_the_port_keeps_answering(live):
    c = live.console
    out = c.command(b"A" * 300)
    assert len(out) == 1 and out[0].startswith("ERR -363 ")
    assert c.ask("*IDN?").startswith(MAKER)
    out = c.command(b"jog \xff\xfe\xfd 3")
    assert len(out) == 1 and out[0].startswith("ERR -102 ")
    assert c.ask("*IDN?").startswith(MAKER)
    out = c.command(b"*IDN\x01\x1b[2J?")
    assert len(out) == 1 and out[0].startswith("ERR -102 ")
    assert c.ask("*IDN?").startswith(MAKER)
    assert [c.ask("SYST:ERR?")[:4] for _ in range(4)] == ["-363", "-102", "-102", '0,"N']


def test_a_64_kb_binary_flood_neither_stops_the_console_nor_disturbs_a_clean(live):
    live.act("present female")
    flood = random.Random(20260101).randbytes(64 * 1024)
    replies: list[bytes] = []
    reader = threading.Thread(target=lambda: replies.append(live.console.drain(1.0, 120.0)), daemon=True)
    reader.start()  # a client that reads its error replies, as a terminal would
    for i in range(0, len(flood), 1024):
        live.console.serial.write(flood[i : i + 1024])
    live.console.serial.flush()
    live.wait_state("swipe_ready")
    time.sleep(0.3)
    live.act("swipe")
    live.wait_state("done")
    live.act("remove")
    live.wait_state("idle")
    live.console.serial.write(b"\n")  # end whatever half line the flood left
    reader.join(120.0)
    assert not reader.is_alive()
    assert replies and b"ERR -102 " in replies[0] and b"ERR -363 " in replies[0], "the flood was answered with errors"
    live.console.drain(1.5)  # the flood limit's budget refills too
    assert live.console.ask("*IDN?") == f"{MAKER},{MODEL},SIM-0001,{__version__}"
    assert live.console.ask("*OPC?") == "1"
    assert live.attempts()[-1].outcome == "cleaned"
    assert "cleaned" in live.clean_on_bench("female")
    assert live.positions() == 6
    assert live.violations() == []


def test_a_client_that_leaves_before_reading_its_reply_does_not_hurt_the_next_one(live):
    hasty = live.open("console")
    hasty.write_line("help")
    hasty.write_line("counters")
    hasty.write_line("sensors 1")  # keeps writing for a second to nobody
    hasty.close()
    time.sleep(2.0)
    nxt = live.open("console")
    nxt.serial.reset_input_buffer()  # what the first client left unread
    nxt.drain(0.5)
    assert nxt.ask("*IDN?") == f"{MAKER},{MODEL},SIM-0001,{__version__}"
    assert json.loads(nxt.ask("STAT?"))["state"] == "idle"


def test_the_console_survives_its_device_vanishing_and_reconnects_when_it_is_back(live, tmp_path):
    """A USB-serial adapter unplugged and plugged back: the device path disappears, then
    appears again (here a symlink we control, pointing at a null-modem's station end)."""
    bench = live.bench
    device = tmp_path / "ttyUSB-console"
    first = NullModem()
    second: NullModem | None = None
    os.symlink(first.station_end, device)
    session = Session(str(device), 300.0)
    server = SerialPortServer(
        str(device), 115200, lambda: Dispatcher(REGISTRY, console_context(bench.controller), session)
    )
    server.start()
    try:
        assert server.connected.wait(10.0)
        user = Port(first.user_end)
        try:
            assert user.ask("*IDN?").startswith(MAKER)
            assert user.command(f"login {PIN}")[-1].startswith("OK")
        finally:
            user.close()
        # unplugged: the device goes away
        device.unlink()
        first.close()
        wait_for(lambda: not server.connected.is_set(), LIMIT_S, "the server to notice the lost port")
        time.sleep(1.5)  # it retries a few times while the device is gone
        assert server._thread is not None and server._thread.is_alive()
        assert not server.connected.is_set()
        assert not session.logged_in, "unplugging logs out"
        # plugged back in
        second = NullModem()
        os.symlink(second.station_end, device)
        assert server.connected.wait(10.0), "the server did not reopen the device"
        user = Port(second.user_end)
        try:
            assert user.ask("*IDN?") == f"{MAKER},{MODEL},SIM-0001,{__version__}"
            assert json.loads(user.ask("STAT?"))["state"] == "idle"
            out = user.command("jog 1")
            assert out[-1].startswith("ERR -203 "), "whoever plugs in next logs in again"
        finally:
            user.close()
    finally:
        server.stop()
        first.close()
        if second is not None:
            second.close()
    assert not server._thread.is_alive()
