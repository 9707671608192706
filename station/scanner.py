"""Barcode/DataMatrix scanners: each scanned code, as text, to a callback (docs/design.md section 9).

A scanner attaches to a Pi in one of two ways:

- USB serial (CDC-ACM, `/dev/ttyACM*`, or any pyserial URL), read with pyserial;
- USB keyboard (HID), read with evdev and grabbed, so its keystrokes reach nothing else
  (Linux only, the optional `hid` extra: evdev is imported only when a HID scanner is opened).

Either way the scanner has its own thread, which calls `on_code(text)` with each code, its end
removed and nothing else changed (the caller classifies and validates it), and
`on_problem(sentence)` with what a person should know: a code dropped (not text, too long), the
scanner unplugged, the scanner back. Both callbacks run on the scanner's thread: post, return.

A code ends with CR, LF or CR LF (one code), Enter or Tab on a keyboard, or, for scanners set up
without a suffix, a pause of `gap_s` with nothing after some input. Memory stays bounded whatever
arrives: past MAX_CODE_BYTES a code is only counted, then dropped at its end. A device that
vanishes is reopened with back-off until it is back, as the console's serial port is
(station/console/server.py).
"""

from __future__ import annotations

import errno
import logging
import os
import select
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Generic, Protocol, Self, TypeVar

import serial

from .config import ScannerConfig

log = logging.getLogger(__name__)

MAX_CODE_BYTES = 256  # the longest code delivered (a DataMatrix holds far more; labels never do)
GAP_S = 0.1  # a pause this long after some input ends a code (scanners without a suffix)
RETRY_FIRST_S = 0.5  # reopening a vanished scanner: first wait, doubled up to RETRY_MAX_S
RETRY_MAX_S = 5.0
CR, LF = 0x0D, 0x0A


class ScannerError(Exception):
    """The configured scanner cannot be used at all (no device named, a bad URL, evdev missing)."""


class Scanner(Protocol):
    """A scanner, opened by `open_scanner`; `start()` starts its thread, `close()` stops it."""

    name: str  # the device, as configured

    def start(self) -> None: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class Dropped:
    """A code that was read but is not delivered, and the sentence saying why."""

    why: str


Read = str | Dropped  # what ends with a code's end: the code, or why it was dropped


class _Code:
    """The code being read, as bytes; past MAX_CODE_BYTES only counted, so memory stays bounded."""

    def __init__(self, unit: str) -> None:
        self._unit = unit  # what is counted, for the too-long sentence ("bytes", "keys")
        self._buf = bytearray()
        self._count = 0
        self._spoiled: str | None = None

    def add(self, data: bytes) -> None:
        self._count += len(data)
        if self._count <= MAX_CODE_BYTES:
            self._buf += data

    def spoil(self, why: str) -> None:
        """Something in this code is not text: drop it at its end (the first reason is kept)."""
        self._count += 1
        self._spoiled = self._spoiled or why

    def finish(self) -> Read | None:
        """The code ends here: the code, why it is dropped, or None if there was nothing."""
        raw, count, spoiled = bytes(self._buf), self._count, self._spoiled
        self._buf.clear()
        self._count = 0
        self._spoiled = None
        if count == 0:
            return None  # an end with nothing before it (the LF of CR LF, a lone Enter)
        if count > MAX_CODE_BYTES:
            return Dropped(f"scanner sent {count} {self._unit} without an end of code: dropped")
        if spoiled is not None:
            return Dropped(spoiled)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return Dropped("scanner sent bytes that are not text: dropped")


class ByteAssembler:
    """Codes from a serial scanner's bytes. CR, LF and CR LF end a code (an end with nothing
    before it is no code), as does `pause()`. Bytes that are not UTF-8 text spoil only the
    code they are in; a code too long is dropped and reading picks up after its end."""

    def __init__(self) -> None:
        self._code = _Code("bytes")

    def feed(self, data: bytes) -> list[Read]:
        out: list[Read] = []
        for byte in data:
            if byte in (CR, LF):
                done = self._code.finish()
                if done is not None:
                    out.append(done)
            else:
                self._code.add(bytes((byte,)))
        return out

    def pause(self) -> Read | None:
        """Nothing arrived for the gap: whatever was read is a code."""
        return self._code.finish()


# A US keyboard layout: key name -> (character, character with shift). Scanners in keyboard mode
# type with the host's layout set to US; the keypad keys are those some scanners use for digits.
_US_KEYS: dict[str, tuple[str, str]] = {
    **{f"KEY_{c}": (c.lower(), c) for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ"},
    **{f"KEY_{d}": (d, s) for d, s in zip("1234567890", "!@#$%^&*()", strict=True)},
    "KEY_MINUS": ("-", "_"),
    "KEY_EQUAL": ("=", "+"),
    "KEY_LEFTBRACE": ("[", "{"),
    "KEY_RIGHTBRACE": ("]", "}"),
    "KEY_BACKSLASH": ("\\", "|"),
    "KEY_SEMICOLON": (";", ":"),
    "KEY_APOSTROPHE": ("'", '"'),
    "KEY_GRAVE": ("`", "~"),
    "KEY_COMMA": (",", "<"),
    "KEY_DOT": (".", ">"),
    "KEY_SLASH": ("/", "?"),
    "KEY_SPACE": (" ", " "),
    **{f"KEY_KP{d}": (d, d) for d in "0123456789"},
    "KEY_KPMINUS": ("-", "-"),
    "KEY_KPPLUS": ("+", "+"),
    "KEY_KPDOT": (".", "."),
    "KEY_KPSLASH": ("/", "/"),
    "KEY_KPASTERISK": ("*", "*"),
}
_END_KEYS = ("KEY_ENTER", "KEY_KPENTER", "KEY_TAB")
_SHIFT_KEYS = ("KEY_LEFTSHIFT", "KEY_RIGHTSHIFT")
# Keys typed while one of these is held are not text (Ctrl+] is GS, Alt+keypad an Alt code).
_OTHER_MODIFIERS = ("KEY_LEFTCTRL", "KEY_RIGHTCTRL", "KEY_LEFTALT", "KEY_RIGHTALT", "KEY_LEFTMETA", "KEY_RIGHTMETA")
# Lock keys some scanners press to match the host's state: they change nothing read here.
_IGNORED_KEYS = ("KEY_CAPSLOCK", "KEY_NUMLOCK")
KEY_UP, KEY_DOWN = 0, 1  # an EV_KEY event's value (2 is auto-repeat, which a scanner never needs)


class KeyAssembler:
    """Codes from a keyboard scanner's key events (evdev EV_KEY: `code`, `value`), with a US
    layout: shift gives capitals and symbols; Enter, keypad Enter and Tab end a code, as does
    `pause()`. A key that is not text spoils the code it is in. Needs evdev (its key codes)."""

    def __init__(self) -> None:
        from evdev import ecodes  # the optional `hid` extra: only a HID scanner needs it

        key = ecodes.ecodes
        self._names = ecodes.KEY
        self._chars = {key[name]: chars for name, chars in _US_KEYS.items()}
        self._ends = {key[name] for name in _END_KEYS}
        self._shift_keys = {key[name] for name in _SHIFT_KEYS}
        self._other_modifiers = {key[name] for name in _OTHER_MODIFIERS}
        self._modifiers = self._shift_keys | self._other_modifiers
        self._ignored = {key[name] for name in _IGNORED_KEYS}
        self._held: set[int] = set()  # modifier keys down now
        self._code = _Code("keys")

    def feed(self, code: int, value: int) -> Read | None:
        """One key event; the code (or why it was dropped) when this key ends one."""
        if code in self._modifiers:
            if value == KEY_UP:
                self._held.discard(code)
            else:
                self._held.add(code)
            return None
        if value != KEY_DOWN or code in self._ignored:
            return None
        if code in self._ends:
            return self._code.finish()
        chars = self._chars.get(code)
        if chars is None or self._held & self._other_modifiers:
            self._code.spoil(f"scanner sent {self._key_name(code)}, which is not text: dropped")
        else:
            self._code.add(chars[bool(self._held & self._shift_keys)].encode())
        return None

    def pause(self) -> Read | None:
        """No key for the gap: whatever was typed is a code."""
        return self._code.finish()

    def _key_name(self, code: int) -> str:
        """KEY_F1, or KEY_LEFTCTRL+KEY_RIGHTBRACE with a modifier held."""
        keys = [*sorted(self._held & self._other_modifiers), code]
        return "+".join(self._name(key) for key in keys)

    def _name(self, code: int) -> str:
        name = self._names.get(code, f"key {code}")
        return name if isinstance(name, str) else name[0]  # some codes have two names (KEY_MUTE)


class _Lost(Exception):
    """The open device went away (its path vanished without a read error)."""


D = TypeVar("D")


class _ReopeningScanner(ABC, Generic[D]):
    """Runs on its own thread: opens the device, serves it until it is lost, reopens it with
    back-off (RETRY_FIRST_S doubling to RETRY_MAX_S) until it is back. Says once that it is
    unplugged (or not there at start) and once that it is back, through `on_problem`."""

    def __init__(
        self,
        name: str,
        on_code: Callable[[str], None],
        on_problem: Callable[[str], None],
        *,
        gap_s: float = GAP_S,
        retry_s: tuple[float, float] = (RETRY_FIRST_S, RETRY_MAX_S),
    ) -> None:
        self.name = name
        self.gap_s = gap_s
        self._on_code = on_code
        self._on_problem = on_problem
        self._retry_s = retry_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.connected = threading.Event()  # set while the device is open

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"scanner-{self.name}", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop reading and release the device (within about `gap_s`). Closing twice does nothing."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5.0)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @abstractmethod
    def _open(self) -> D: ...

    @abstractmethod
    def _serve(self, device: D) -> None:
        """Read until `self._stop` is set; raise OSError or _Lost when the device is lost."""

    @abstractmethod
    def _release(self, device: D) -> None: ...

    def _run(self) -> None:
        first, longest = self._retry_s
        wait = first
        waiting = False  # a problem was said: "back" is said when it opens
        while not self._stop.is_set():
            try:
                device = self._open()
            except OSError as exc:
                if not waiting:
                    log.warning("scanner %s: %s", self.name, exc)
                    self._problem(f"scanner {self.name} is not available ({_reason(exc)}); waiting for it")
                    waiting = True
                self._stop.wait(wait)
                wait = min(wait * 2, longest)
                continue
            wait = first
            if waiting:
                self._problem(f"scanner {self.name} back")
                waiting = False
            log.info("scanner %s open", self.name)
            self.connected.set()
            try:
                self._serve(device)
            except (OSError, _Lost) as exc:
                log.warning("scanner %s lost: %s", self.name, exc)
                self._problem(f"scanner {self.name} unplugged; waiting for it to come back")
                waiting = True
            finally:
                self.connected.clear()
                self._release(device)
            self._stop.wait(wait)

    def _deliver(self, read: Read | None) -> None:
        if read is None:
            return
        if isinstance(read, Dropped):
            self._problem(read.why)
            return
        try:
            self._on_code(read)
        except Exception:  # the caller's bug must not stop the scanner
            log.exception("scanner %s: on_code failed for %r", self.name, read)

    def _problem(self, sentence: str) -> None:
        try:
            self._on_problem(sentence)
        except Exception:
            log.exception("scanner %s: on_problem failed for %r", self.name, sentence)


def _reason(exc: OSError) -> str:
    return exc.strerror if isinstance(exc.strerror, str) and exc.strerror else str(exc)


class _SerialPort(Protocol):
    """What a scanner uses of an open pyserial port (as station.console.server.SerialPort)."""

    @property
    def in_waiting(self) -> int: ...

    def read(self, size: int = 1, /) -> bytes: ...

    def close(self) -> None: ...


class SerialScanner(_ReopeningScanner[_SerialPort]):
    """A scanner on a serial device (CDC-ACM `/dev/ttyACM0`, `/dev/serial/by-id/...`) or pyserial URL."""

    def __init__(
        self,
        device: str,
        baud: int,
        on_code: Callable[[str], None],
        on_problem: Callable[[str], None],
        *,
        gap_s: float = GAP_S,
        retry_s: tuple[float, float] = (RETRY_FIRST_S, RETRY_MAX_S),
    ) -> None:
        super().__init__(device, on_code, on_problem, gap_s=gap_s, retry_s=retry_s)
        self.baud = baud

    def _open(self) -> _SerialPort:
        try:
            port: _SerialPort = serial.serial_for_url(self.name, baudrate=self.baud, timeout=self.gap_s)
        except ValueError as exc:  # pyserial's word for settings the device refuses
            raise OSError(errno.EINVAL, str(exc)) from exc
        return port

    def _serve(self, port: _SerialPort) -> None:
        assembler = ByteAssembler()
        while not self._stop.is_set():
            data = port.read(max(1, min(port.in_waiting, 4096)))  # waits up to gap_s for a first byte
            if data:
                for read in assembler.feed(data):
                    self._deliver(read)
                continue
            self._deliver(assembler.pause())
            # A USB device unplugged can leave a silent open file behind; its path tells.
            if self.name.startswith("/") and not os.path.exists(self.name):
                raise _Lost(f"{self.name} is gone")

    def _release(self, port: _SerialPort) -> None:
        try:
            port.close()
        except OSError:
            pass


class _KeyEvent(Protocol):
    @property
    def type(self) -> int: ...

    @property
    def code(self) -> int: ...

    @property
    def value(self) -> int: ...


class KeyboardDevice(Protocol):
    """What a HID scanner uses of an evdev InputDevice."""

    @property
    def fd(self) -> int: ...

    def grab(self) -> None: ...

    def ungrab(self) -> None: ...

    def read(self) -> Iterable[_KeyEvent]: ...

    def close(self) -> None: ...


class HidScanner(_ReopeningScanner[KeyboardDevice]):
    """A scanner that types (USB HID keyboard) on an input device (`/dev/input/by-id/...-event-kbd`),
    grabbed while open, so its keystrokes reach no console or desktop. `open_device` builds the
    device from its path (evdev's InputDevice unless given)."""

    def __init__(
        self,
        device: str,
        on_code: Callable[[str], None],
        on_problem: Callable[[str], None],
        *,
        open_device: Callable[[str], KeyboardDevice] | None = None,
        gap_s: float = GAP_S,
        retry_s: tuple[float, float] = (RETRY_FIRST_S, RETRY_MAX_S),
    ) -> None:
        super().__init__(device, on_code, on_problem, gap_s=gap_s, retry_s=retry_s)
        from evdev import InputDevice, ecodes  # the optional `hid` extra

        self._open_device: Callable[[str], KeyboardDevice] = open_device or InputDevice
        self._ev_key = ecodes.EV_KEY

    def _open(self) -> KeyboardDevice:
        device = self._open_device(self.name)
        try:
            device.grab()
        except OSError as exc:
            device.close()
            if exc.errno == errno.EBUSY:
                raise OSError(errno.EBUSY, "another program has grabbed it") from exc
            raise
        return device

    def _serve(self, device: KeyboardDevice) -> None:
        assembler = KeyAssembler()
        poller = select.poll()  # (not select.select: fds past FD_SETSIZE in a busy process)
        poller.register(device.fd, select.POLLIN)
        while not self._stop.is_set():
            if not poller.poll(self.gap_s * 1000):
                self._deliver(assembler.pause())
                continue
            try:
                events = list(device.read())
            except BlockingIOError:
                continue  # woken with nothing to read
            for event in events:
                if event.type == self._ev_key:
                    self._deliver(assembler.feed(event.code, event.value))

    def _release(self, device: KeyboardDevice) -> None:
        try:
            device.ungrab()
        except OSError:
            pass  # a device that is gone holds no grab
        try:
            device.close()
        except OSError:
            pass


def open_scanner(
    config: ScannerConfig, on_code: Callable[[str], None], on_problem: Callable[[str], None]
) -> Scanner | None:
    """The configured scanner, not yet started (None for kind "none"). Raises ScannerError if
    it cannot be used at all; a device that is merely absent is waited for once started."""
    if config.kind == "none":
        return None
    if not config.device:
        example = "/dev/serial/by-id/usb-...-if00" if config.kind == "serial" else "/dev/input/by-id/usb-...-event-kbd"
        raise ScannerError(f"[scanner] kind = {config.kind!r} needs its device: set [scanner] device, e.g. {example}")
    if config.kind == "serial":
        try:
            serial.serial_for_url(config.device, do_not_open=True)
        except ValueError as exc:
            raise ScannerError(f"[scanner] device = {config.device!r} is not a device or pyserial URL: {exc}") from exc
        return SerialScanner(config.device, config.baud, on_code, on_problem)
    if config.kind == "hid":
        try:
            return HidScanner(config.device, on_code, on_problem)
        except ImportError as exc:
            raise ScannerError(
                "[scanner] kind = 'hid' needs evdev (Linux only): install the station with its hid extra "
                f"(pip install 'mpo-station[hid]'), or use kind = 'serial' ({exc})"
            ) from exc
    raise ScannerError(f"[scanner] kind = {config.kind!r} is not one of none, serial, hid")
