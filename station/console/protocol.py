"""Console line protocol (docs/design.md section 5): framing and the SCPI-style error queue.

Lines end in LF, CR LF or a lone CR (what picocom and screen send), at most 256 bytes, UTF-8,
case-insensitive commands. Replies end the way the line they answer ended (`Line.eol`): LF for
a line ending in LF (scripts, PyVISA: the SCPI convention), CR LF for a line ending in CR or
CR LF (terminals: picocom and screen show a staircase on a bare LF).
A query (ends in `?`) answers exactly one line; any other command answers zero or more
lines and then exactly one final `OK ...` or `ERR <code> <message>` line.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field

MAX_LINE = 256
ERROR_QUEUE_SIZE = 16

# IEEE 488.2 / SCPI error numbers used by the station.
NO_ERROR = (0, "No error")
COMMAND_ERROR = -100
SYNTAX_ERROR = -102
UNDEFINED_HEADER = -113
MISSING_PARAMETER = -109
EXECUTION_ERROR = -200
ACCESS_DENIED = -203  # "Command protected": needs a maintenance login
SETTINGS_CONFLICT = -221  # not possible in the current state
DATA_OUT_OF_RANGE = -222
HARDWARE_ERROR = -240
QUEUE_OVERFLOW = -350
INPUT_OVERRUN = -363
TOO_MANY = -310  # system error: flood


LF = "\n"
CRLF = "\r\n"


@dataclass(frozen=True)
class Line:
    text: str
    eol: str = field(default=LF, compare=False)  # how to end the replies to it


@dataclass(frozen=True)
class BadLine:
    code: int
    message: str
    eol: str = field(default=LF, compare=False)


class LineBuffer:
    """Turns a byte stream into lines, refusing over-long lines, bad UTF-8 and control bytes.

    An over-long line is dropped up to its LF and reported once; memory stays bounded
    whatever arrives."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._overrun = False
        self._after_cr = False

    def feed(self, data: bytes) -> Iterator[Line | BadLine]:
        for byte in data:
            after_cr, self._after_cr = self._after_cr, byte == 0x0D
            if byte == 0x0A and after_cr:
                continue  # the LF of a CR LF: the CR already ended the line
            if byte in (0x0A, 0x0D):
                yield from self._finish(CRLF if byte == 0x0D else LF)
            elif self._overrun:
                continue
            elif len(self._buf) >= MAX_LINE:
                self._overrun = True
                self._buf.clear()
            else:
                self._buf.append(byte)

    def _finish(self, eol: str) -> Iterator[Line | BadLine]:
        if self._overrun:
            self._overrun = False
            yield BadLine(INPUT_OVERRUN, f"Input buffer overrun; line longer than {MAX_LINE} bytes", eol)
            return
        raw = bytes(self._buf)
        self._buf.clear()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            yield BadLine(SYNTAX_ERROR, "Syntax error; line is not valid UTF-8", eol)
            return
        if any(ord(c) < 0x20 and c != "\t" or ord(c) == 0x7F for c in text):
            yield BadLine(SYNTAX_ERROR, "Syntax error; control characters in line", eol)
            return
        yield Line(text.strip(), eol)


class ErrorQueue:
    """IEEE 488.2 error queue: oldest first; when full the newest entry becomes -350."""

    def __init__(self, size: int = ERROR_QUEUE_SIZE) -> None:
        self._q: deque[tuple[int, str]] = deque()
        self._size = size

    def push(self, code: int, message: str) -> None:
        if len(self._q) >= self._size:
            self._q[-1] = (QUEUE_OVERFLOW, "Queue overflow")
            return
        self._q.append((code, message))

    def pop(self) -> tuple[int, str]:
        return self._q.popleft() if self._q else NO_ERROR

    def clear(self) -> None:
        self._q.clear()

    def __len__(self) -> int:
        return len(self._q)


def scpi_error(code: int, message: str) -> str:
    return f'{code},"{message}"'


def err_line(code: int, message: str) -> str:
    return f"ERR {code} {message}"
