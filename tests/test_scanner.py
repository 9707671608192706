"""Barcode scanners, as they attach to a Pi (station/scanner.py).

The serial path runs over real pseudo-terminals with pyserial on both ends: the "scanner"
writes to one end of a null-modem cable (hw_sim.nullmodem), the station's SerialScanner reads
the other through a symlink the test controls, so unplugging is the symlink vanishing or the
cable going away, and plugging back is a new cable at the same path. The HID path is in
tests/test_scanner_hid.py (it needs the optional evdev).

Every wait has a generous limit; nothing asserts how fast anything is.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import serial

from hw_sim.nullmodem import NullModem
from station.config import ScannerConfig
from station.scanner import (
    MAX_CODE_BYTES,
    ByteAssembler,
    Dropped,
    ScannerError,
    SerialScanner,
    open_scanner,
)

WAIT_S = 10.0  # for anything the scanner's thread does; generous for a noisy machine
FAST_RETRY = (0.02, 0.1)  # reopening back-off for the tests (the station's is 0.5 s to 5 s)
NOT_TEXT = "scanner sent bytes that are not text: dropped"


class Heard:
    """What a scanner handed to the station: codes and problem sentences, in order."""

    def __init__(self) -> None:
        self.codes: list[str] = []
        self.problems: list[str] = []
        self._changed = threading.Condition()

    def code(self, text: str) -> None:
        with self._changed:
            self.codes.append(text)
            self._changed.notify_all()

    def problem(self, sentence: str) -> None:
        with self._changed:
            self.problems.append(sentence)
            self._changed.notify_all()

    def wait_codes(self, n: int) -> list[str]:
        with self._changed:
            ok = self._changed.wait_for(lambda: len(self.codes) >= n, WAIT_S)
        assert ok, f"wanted {n} codes within {WAIT_S} s, got {self.codes} (problems: {self.problems})"
        return list(self.codes)

    def wait_problem(self, ending: str) -> list[str]:
        with self._changed:
            ok = self._changed.wait_for(lambda: any(p.endswith(ending) for p in self.problems), WAIT_S)
        assert ok, f"no problem ending {ending!r} within {WAIT_S} s, got {self.problems}"
        return list(self.problems)


# ---------------------------------------------------------------------------------- byte framing
@pytest.mark.parametrize(
    ("chunks", "expected"),
    [
        ([b"CBL-0001-A\r"], ["CBL-0001-A"]),
        ([b"CBL-0001-A\n"], ["CBL-0001-A"]),
        ([b"CBL-0001-A\r\n"], ["CBL-0001-A"]),  # one code, not two
        ([b"CBL-0001-A\r", b"\nCBL-0001-B\r\n"], ["CBL-0001-A", "CBL-0001-B"]),  # CR LF split over reads
        ([b"CBL-00", b"01-A\r"], ["CBL-0001-A"]),  # a code split over reads
        ([b"\r\n\n\r"], []),  # ends with nothing before them are no codes
        ([b"OP-7\rCAS-12\nCBL-9-B\r\n"], ["OP-7", "CAS-12", "CBL-9-B"]),
        ([b" a b\t\x1d01\r"], [" a b\t\x1d01"]),  # spaces, tabs, GS (GS1 DataMatrix): the caller judges
        ([b"\xff\xfe\x80\r", b"CBL-1-A\r"], [Dropped(NOT_TEXT), "CBL-1-A"]),
        ([b"CBL-\xc3\r"], [Dropped(NOT_TEXT)]),  # a UTF-8 sequence cut short
        (["Stückgut-Ω\r".encode()], ["Stückgut-Ω"]),
        ([b"Y" * MAX_CODE_BYTES + b"\r"], ["Y" * MAX_CODE_BYTES]),
        (
            [b"X" * 200, b"X" * 100 + b"\r\nCBL-1-A\r"],
            [Dropped("scanner sent 300 bytes without an end of code: dropped"), "CBL-1-A"],
        ),
    ],
)
def test_bytes_to_codes(chunks: list[bytes], expected: list[str | Dropped]) -> None:
    assembler = ByteAssembler()
    got = [read for chunk in chunks for read in assembler.feed(chunk)]
    assert got == expected
    assert assembler.pause() is None, "nothing left over"


def test_a_pause_ends_a_code_and_a_second_pause_adds_nothing() -> None:
    assembler = ByteAssembler()
    assert assembler.feed(b"CBL-0001-A") == []
    assert assembler.pause() == "CBL-0001-A"
    assert assembler.pause() is None
    assert assembler.feed(b"X" * 300) == []
    assert assembler.pause() == Dropped("scanner sent 300 bytes without an end of code: dropped")


# ---------------------------------------------------------------------------------- serial, over ptys
class SerialBench:
    """A null-modem cable with the station's scanner on one end (through `device`, a symlink)
    and a pyserial port playing the scanner on the other."""

    def __init__(self, tmp_path: Path) -> None:
        self.device = tmp_path / "ttyACM-scanner"
        self.heard = Heard()
        self.cable = NullModem()
        self.device.symlink_to(self.cable.station_end)
        self.scanner = SerialScanner(str(self.device), 9600, self.heard.code, self.heard.problem, retry_s=FAST_RETRY)
        self.gun = serial.Serial(self.cable.user_end, 9600, timeout=WAIT_S)

    def scan(self, data: bytes) -> None:
        self.gun.write(data)
        self.gun.flush()

    def wait_connected(self) -> None:
        assert self.scanner.connected.wait(WAIT_S), f"the scanner did not open {self.device}"

    def unplug(self) -> None:
        self.gun.close()
        self.device.unlink()
        self.cable.close()

    def plug_back(self) -> None:
        self.cable = NullModem()
        self.device.symlink_to(self.cable.station_end)
        self.gun = serial.Serial(self.cable.user_end, 9600, timeout=WAIT_S)

    def close(self) -> None:
        self.scanner.close()
        self.gun.close()
        self.cable.close()


@pytest.fixture
def line(tmp_path: Path) -> Iterator[SerialBench]:
    bench = SerialBench(tmp_path)
    bench.scanner.start()
    bench.wait_connected()
    yield bench
    bench.close()
    assert not scanner_threads(), "close() stops the scanner's thread"


def scanner_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("scanner-") and t.is_alive()]


def test_codes_ending_cr_lf_crlf_or_a_pause_each_arrive_once(line: SerialBench) -> None:
    line.scan(b"CBL-0001-A\r")
    line.scan(b"CBL-0001-B\n")
    line.scan(b"CBL-0002-A\r\n")
    line.scan(b"OP-7")  # a scanner set up without a suffix: the pause ends the code
    assert line.heard.wait_codes(4) == ["CBL-0001-A", "CBL-0001-B", "CBL-0002-A", "OP-7"]
    line.scan(b"CAS-12\r\n")
    assert line.heard.wait_codes(5) == ["CBL-0001-A", "CBL-0001-B", "CBL-0002-A", "OP-7", "CAS-12"]
    assert line.heard.problems == []


def test_garbage_between_codes_is_dropped_and_the_codes_around_it_arrive(line: SerialBench) -> None:
    line.scan(b"CBL-0001-A\r\n")
    line.scan(b"\xff\xfe\x80\x00\x81noise\r\n")
    line.scan(b"CBL-0001-B\r\n")
    assert line.heard.wait_codes(2) == ["CBL-0001-A", "CBL-0001-B"]
    assert line.heard.problems == [NOT_TEXT]


def test_a_code_too_long_is_dropped_and_reading_resumes_at_the_next_end(line: SerialBench) -> None:
    line.scan(b"X" * 300 + b"\r\n")
    line.scan(b"Y" * MAX_CODE_BYTES + b"\r\n")
    line.scan(b"CBL-0001-A\r\n")
    assert line.heard.wait_codes(2) == ["Y" * MAX_CODE_BYTES, "CBL-0001-A"]
    assert line.heard.problems == ["scanner sent 300 bytes without an end of code: dropped"]


def test_a_scanner_unplugged_and_plugged_back_is_picked_up_again(line: SerialBench) -> None:
    line.scan(b"CBL-0001-A\r")
    assert line.heard.wait_codes(1) == ["CBL-0001-A"]
    line.unplug()  # the device file goes and the open port fails
    gone = f"scanner {line.device} unplugged; waiting for it to come back"
    assert line.heard.wait_problem(gone) == [gone]
    time.sleep(0.5)  # it tries to reopen a few times meanwhile (not an assertion: just time passing)
    line.plug_back()
    back = f"scanner {line.device} back"
    assert line.heard.wait_problem(back) == [gone, back], "said once that it went, once that it is back"
    line.wait_connected()
    line.scan(b"CBL-0001-B\r\n")
    assert line.heard.wait_codes(2) == ["CBL-0001-A", "CBL-0001-B"]


def test_a_device_path_that_vanishes_while_the_port_stays_readable_counts_as_unplugged(line: SerialBench) -> None:
    line.device.unlink()  # e.g. /dev/serial/by-id/... gone, the open file silent
    gone = f"scanner {line.device} unplugged; waiting for it to come back"
    line.heard.wait_problem(gone)
    line.device.symlink_to(line.cable.station_end)
    line.heard.wait_problem(f"scanner {line.device} back")
    line.wait_connected()
    line.scan(b"CAS-3\r")
    assert line.heard.wait_codes(1) == ["CAS-3"]


def test_a_scanner_missing_at_start_is_waited_for(tmp_path: Path) -> None:
    bench = SerialBench(tmp_path)
    bench.device.unlink()
    try:
        bench.scanner.start()
        problems = bench.heard.wait_problem("; waiting for it")
        assert len(problems) == 1 and problems[0].startswith(f"scanner {bench.device} is not available (")
        time.sleep(0.3)  # several attempts to open (not an assertion)
        bench.device.symlink_to(bench.cable.station_end)
        bench.heard.wait_problem(f"scanner {bench.device} back")
        bench.wait_connected()
        bench.scan(b"OP-42\n")
        assert bench.heard.wait_codes(1) == ["OP-42"]
        assert len(bench.heard.problems) == 2, bench.heard.problems
    finally:
        bench.close()
    assert not scanner_threads()


def test_a_callback_that_raises_does_not_stop_the_scanner(tmp_path: Path) -> None:
    bench = SerialBench(tmp_path)
    calls: list[str] = []

    def fussy(code: str) -> None:
        calls.append(code)
        if len(calls) == 1:
            raise RuntimeError("the caller's bug")
        bench.heard.code(code)

    bench.scanner = SerialScanner(str(bench.device), 9600, fussy, bench.heard.problem, retry_s=FAST_RETRY)
    try:
        bench.scanner.start()
        bench.wait_connected()
        bench.scan(b"CBL-1-A\rCBL-1-B\r")
        assert bench.heard.wait_codes(1) == ["CBL-1-B"]
        assert calls == ["CBL-1-A", "CBL-1-B"]
    finally:
        bench.close()


# ---------------------------------------------------------------------------------- open_scanner
def test_open_scanner_builds_the_configured_scanner_unstarted(tmp_path: Path) -> None:
    heard = Heard()
    assert open_scanner(ScannerConfig(), heard.code, heard.problem) is None
    scanner = open_scanner(ScannerConfig(kind="serial", device="/dev/ttyACM0", baud=115200), heard.code, heard.problem)
    assert isinstance(scanner, SerialScanner) and scanner.name == "/dev/ttyACM0" and scanner.baud == 115200
    assert not scanner_threads(), "opening does not start it"
    scanner.close()


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (ScannerConfig(kind="serial"), "[scanner] kind = 'serial' needs its device: set [scanner] device, e.g. /dev/"),
        (ScannerConfig(kind="hid"), "[scanner] kind = 'hid' needs its device: set [scanner] device, e.g. /dev/input/"),
        (
            ScannerConfig(kind="serial", device="usb://1"),
            "[scanner] device = 'usb://1' is not a device or pyserial URL",
        ),
    ],
)
def test_open_scanner_refuses_what_cannot_work(config: ScannerConfig, message: str) -> None:
    with pytest.raises(ScannerError) as refused:
        open_scanner(config, print, print)
    assert str(refused.value).startswith(message)


def test_a_hid_scanner_without_evdev_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "evdev", None)  # as on a machine without the hid extra
    with pytest.raises(ScannerError, match=r"needs evdev \(Linux only\): install the station with its hid extra"):
        open_scanner(ScannerConfig(kind="hid", device="/dev/input/event0"), print, print)


def test_importing_the_scanner_module_does_not_import_evdev() -> None:
    code = "import sys, station.scanner; assert 'evdev' not in sys.modules, 'evdev imported'"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
