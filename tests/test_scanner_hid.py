"""The HID (USB keyboard) scanner path, with evdev's own event classes (station/scanner.py).

Key events are evdev.InputEvent objects with evdev.ecodes codes, fed to the key assembler and,
since this machine has no /dev/uinput to make a real input device, to HidScanner through a
stand-in device that records grab, ungrab and close. evdev is the optional `hid` extra (Linux
only): without it these tests are skipped.
"""

from __future__ import annotations

import errno
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_scanner import FAST_RETRY, WAIT_S, Heard, scanner_threads

from station.config import ScannerConfig
from station.scanner import Dropped, HidScanner, KeyAssembler, open_scanner

evdev = pytest.importorskip("evdev")

ecodes = evdev.ecodes
InputEvent = evdev.InputEvent

UP, DOWN, REPEAT = 0, 1, 2


def key(name: str, value: int) -> evdev.InputEvent:
    return InputEvent(1_700_000_000, 0, ecodes.EV_KEY, ecodes.ecodes[name], value)


def tap(name: str, *, shift: bool = False) -> list[evdev.InputEvent]:
    """One key pressed and released, as a scanner types it (shift around it for capitals)."""
    events = [key(name, DOWN), key(name, UP)]
    return [key("KEY_LEFTSHIFT", DOWN), *events, key("KEY_LEFTSHIFT", UP)] if shift else events


def feed(assembler: KeyAssembler, events: list[evdev.InputEvent]) -> list[str | Dropped]:
    reads = [assembler.feed(e.code, e.value) for e in events if e.type == ecodes.EV_KEY]
    return [r for r in reads if r is not None]


# "Cb-1_A/x.9:" typed key by key
MIXED = [
    *tap("KEY_C", shift=True),
    *tap("KEY_B"),
    *tap("KEY_MINUS"),
    *tap("KEY_1"),
    *tap("KEY_MINUS", shift=True),
    *tap("KEY_A", shift=True),
    *tap("KEY_SLASH"),
    *tap("KEY_X"),
    *tap("KEY_DOT"),
    *tap("KEY_KP9"),
    *tap("KEY_SEMICOLON", shift=True),
]


@pytest.mark.parametrize(
    ("events", "expected"),
    [
        ([*MIXED, *tap("KEY_ENTER")], ["Cb-1_A/x.9:"]),
        ([*MIXED, *tap("KEY_KPENTER")], ["Cb-1_A/x.9:"]),
        ([*MIXED, *tap("KEY_TAB")], ["Cb-1_A/x.9:"]),
        # shift held across several keys, with the right shift key
        (
            [key("KEY_RIGHTSHIFT", DOWN), *tap("KEY_O"), *tap("KEY_P"), *tap("KEY_2"), key("KEY_RIGHTSHIFT", UP)]
            + [*tap("KEY_2"), *tap("KEY_ENTER")],
            ["OP@2"],
        ),
        # key-ups and auto-repeats type nothing; a lone Enter is no code
        ([key("KEY_A", UP), key("KEY_B", REPEAT), *tap("KEY_ENTER"), *tap("KEY_Z"), *tap("KEY_ENTER")], ["z"]),
        # lock keys some scanners press change nothing here
        ([*tap("KEY_CAPSLOCK"), *tap("KEY_NUMLOCK"), *tap("KEY_Q"), *tap("KEY_ENTER")], ["q"]),
        (
            [*tap("KEY_F1"), *tap("KEY_A"), *tap("KEY_ENTER"), *tap("KEY_B"), *tap("KEY_ENTER")],
            [Dropped("scanner sent KEY_F1, which is not text: dropped"), "b"],
        ),
        (
            [key("KEY_LEFTCTRL", DOWN), *tap("KEY_RIGHTBRACE"), key("KEY_LEFTCTRL", UP), *tap("KEY_ENTER")],
            [Dropped("scanner sent KEY_LEFTCTRL+KEY_RIGHTBRACE, which is not text: dropped")],
        ),
        (
            [event for _ in range(300) for event in tap("KEY_7")] + tap("KEY_ENTER") + tap("KEY_8") + tap("KEY_ENTER"),
            [Dropped("scanner sent 300 keys without an end of code: dropped"), "8"],
        ),
    ],
)
def test_key_events_to_codes(events: list[evdev.InputEvent], expected: list[str | Dropped]) -> None:
    assembler = KeyAssembler()
    assert feed(assembler, events) == expected
    assert assembler.pause() is None


def test_a_pause_ends_a_typed_code() -> None:
    assembler = KeyAssembler()
    assert feed(assembler, [*tap("KEY_C", shift=True), *tap("KEY_4")]) == []
    assert assembler.pause() == "C4"
    assert assembler.pause() is None


class StandInKeyboard:
    """An evdev InputDevice as HidScanner uses it (no /dev/uinput here for a real one): a pipe
    for readiness, a queue of evdev InputEvents, and a record of grab, ungrab and close."""

    def __init__(self, path: str, grab_error: int | None = None) -> None:
        self.path = path
        self._r, self._w = os.pipe()
        os.set_blocking(self._r, False)
        self.fd = self._r
        self._queue: list[evdev.InputEvent] = []
        self._lock = threading.Lock()
        self.calls: list[str] = []
        self.gone = False
        self._grab_error = grab_error

    def grab(self) -> None:
        self.calls.append("grab")
        if self._grab_error is not None:
            raise OSError(self._grab_error, os.strerror(self._grab_error))

    def ungrab(self) -> None:
        self.calls.append("ungrab")
        if self.gone:
            raise OSError(errno.ENODEV, os.strerror(errno.ENODEV))

    def close(self) -> None:
        self.calls.append("close")
        for fd in (self._r, self._w):
            try:
                os.close(fd)
            except OSError:
                pass

    def type(self, events: list[evdev.InputEvent]) -> None:
        """The scanner types: each key with the scan code and sync events a keyboard sends."""
        with self._lock:
            for event in events:
                self._queue.append(InputEvent(event.sec, event.usec, ecodes.EV_MSC, ecodes.MSC_SCAN, 0x70004))
                self._queue.append(event)
                self._queue.append(InputEvent(event.sec, event.usec, ecodes.EV_SYN, ecodes.SYN_REPORT, 0))
        os.write(self._w, b"!")

    def unplug(self) -> None:
        self.gone = True
        os.write(self._w, b"!")

    def read(self) -> Iterator[evdev.InputEvent]:
        if self.gone:
            raise OSError(errno.ENODEV, os.strerror(errno.ENODEV))
        try:
            os.read(self._r, 4096)
        except BlockingIOError:
            pass
        with self._lock:
            events, self._queue = self._queue, []
        if not events:
            raise BlockingIOError(errno.EAGAIN, "no events")  # as evdev's read does
        return iter(events)


class Keyboards:
    """Plugs stand-in keyboards in at one path: `open` fails while none is plugged in."""

    def __init__(self, grab_error: int | None = None) -> None:
        self.plugged: StandInKeyboard | None = None
        self.opened: list[StandInKeyboard] = []
        self.grab_error = grab_error

    def plug(self, path: str) -> StandInKeyboard:
        self.plugged = StandInKeyboard(path, self.grab_error)
        return self.plugged

    def open(self, path: str) -> StandInKeyboard:
        if self.plugged is None or self.plugged.path != path:
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), path)
        self.opened.append(self.plugged)
        return self.plugged


CODE_OP7 = [*tap("KEY_O", shift=True), *tap("KEY_P", shift=True), *tap("KEY_MINUS"), *tap("KEY_7"), *tap("KEY_ENTER")]
PATH = "/dev/input/by-id/usb-Scanner-event-kbd"


def hid_scanner(keyboards: Keyboards, heard: Heard) -> HidScanner:
    return HidScanner(PATH, heard.code, heard.problem, open_device=keyboards.open, retry_s=FAST_RETRY)


def test_a_hid_scanner_grabs_its_keyboard_types_codes_and_releases_it_on_close() -> None:
    keyboards, heard = Keyboards(), Heard()
    keyboard = keyboards.plug(PATH)
    scanner = hid_scanner(keyboards, heard)
    with scanner:
        assert scanner.connected.wait(WAIT_S)
        assert keyboard.calls == ["grab"], "grabbed before anything is read"
        keyboard.type(CODE_OP7)
        assert heard.wait_codes(1) == ["OP-7"]
        keyboard.type([*tap("KEY_C", shift=True), *tap("KEY_4")])  # no Enter: the pause ends it
        assert heard.wait_codes(2) == ["OP-7", "C4"]
    assert keyboard.calls == ["grab", "ungrab", "close"]
    assert heard.problems == []
    assert not scanner_threads()


def test_a_hid_scanner_unplugged_and_plugged_back_is_grabbed_again() -> None:
    keyboards, heard = Keyboards(), Heard()
    first = keyboards.plug(PATH)
    with hid_scanner(keyboards, heard) as scanner:
        assert scanner.connected.wait(WAIT_S)
        keyboards.plugged = None
        first.unplug()
        gone = f"scanner {PATH} unplugged; waiting for it to come back"
        heard.wait_problem(gone)
        assert first.calls == ["grab", "ungrab", "close"]
        time.sleep(0.3)  # several attempts to open (not an assertion)
        second = keyboards.plug(PATH)
        assert heard.wait_problem(f"scanner {PATH} back") == [gone, f"scanner {PATH} back"]
        assert scanner.connected.wait(WAIT_S)
        second.type(CODE_OP7)
        assert heard.wait_codes(1) == ["OP-7"]
        assert second.calls == ["grab"]
    assert second.calls == ["grab", "ungrab", "close"]


def test_a_keyboard_another_program_has_grabbed_is_waited_for() -> None:
    keyboards, heard = Keyboards(grab_error=errno.EBUSY), Heard()
    keyboard = keyboards.plug(PATH)
    with hid_scanner(keyboards, heard):
        problems = heard.wait_problem("; waiting for it")
        assert problems == [f"scanner {PATH} is not available (another program has grabbed it); waiting for it"]
        assert keyboard.calls[:2] == ["grab", "close"], "a device it could not grab is not kept open"
        keyboards.grab_error = None
        freed = keyboards.plug(PATH)
        heard.wait_problem(f"scanner {PATH} back")
        freed.type(CODE_OP7)
        assert heard.wait_codes(1) == ["OP-7"]


def test_open_scanner_builds_a_hid_scanner() -> None:
    scanner = open_scanner(ScannerConfig(kind="hid", device=PATH), print, print)
    assert isinstance(scanner, HidScanner) and scanner.name == PATH
    scanner.close()


def test_a_real_input_device_that_is_not_there_is_waited_for(tmp_path: Path) -> None:
    """evdev's own InputDevice on a path with no keyboard (a keyboard not plugged in): the
    scanner says so once and keeps waiting."""
    path = str(tmp_path / "usb-Scanner-event-kbd")
    heard = Heard()
    with HidScanner(path, heard.code, heard.problem, retry_s=FAST_RETRY) as scanner:
        problems = heard.wait_problem("; waiting for it")
        assert problems == [f"scanner {path} is not available (No such file or directory); waiting for it"]
        assert not scanner.connected.is_set()
    assert not scanner_threads()
