"""What a person does at the console, as the simulator learns it: from the bytes on the cable.

The world judges the station against the cleaning mode people chose (`World.console_mode`:
None, "dry" or "wet"). A choice made on the console reaches the world the way it would reach
an observer standing next to the bench: from what the person typed (`mode set dry|wet|switch`)
and from the station's answer to that very command (`OK ...`: done; `ERR ...`: refused, e.g.
not logged in). Never from the firmware's own bookkeeping or announcements.

`ConsoleTap` sits on the console's null-modem cable (`NullModem(tap=...)`) and follows the
conversation with the framing of the console contract (docs/design.md section 5), written
here on its own rather than borrowed from the firmware:

- the person's lines end in LF, CR LF or a lone CR; commands are case-insensitive;
- every line the person sends gets exactly one answer, in order, except a blank one (nothing
  but spaces and tabs), which gets none: a query (its first word ends in `?`) one line, any
  other command lines up to a final `OK...` or `ERR ...`; a line the console cannot take
  (longer than 256 bytes, not UTF-8, control characters) one `ERR` line;
- a line of several commands separated by `;` is one line to the console (it answers it as
  one command today); the tap counts it as one and never takes a mode from it.

Only the single-command form `mode set <dry|wet|switch>` changes the world. Memory is bounded:
one small entry per line still waiting for its answer (the cable bounds how many can be in
flight) and at most one line's head on each side.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

MAX_LINE = 256  # longer lines are refused by the console (one ERR answer)
MODES = {"dry": "dry", "wet": "wet", "switch": None}

# What each line in flight waits for.
_QUERY = "query"  # one line
_COMMAND = "command"  # lines up to a final OK / ERR


class _Expect:
    """A line in flight: what answers it, and the mode it sets if the answer is OK."""

    __slots__ = ("kind", "sets_mode", "mode", "scan")

    def __init__(self, kind: str, *, sets_mode: bool = False, mode: str | None = None, scan: str | None = None) -> None:
        self.kind = kind
        self.sets_mode = sets_mode
        self.mode = mode
        self.scan = scan


class ConsoleTap:
    """Follows one console conversation; calls `on_mode(mode)` (None: the panel switch counts
    again) when the station answered a person's `mode set` with OK. Runs on the cable's
    thread: `on_mode` must only hand the change on (post it to the loop)."""

    def __init__(self, on_mode: Callable[[str | None], None], on_scan: Callable[[str], None] | None = None) -> None:
        self._on_mode = on_mode
        self._on_scan = on_scan  # a person typed a label's code (`scan <code>`) and the station took it
        self._waiting: deque[_Expect] = deque()
        # the person's line being received (at most MAX_LINE + 1 bytes kept)
        self._line = bytearray()
        self._after_cr = False
        # the station's line being received: its first bytes are all that matter
        self._reply_head = bytearray()

    # ------------------------------------------------------------------ the person's side
    def from_user(self, data: bytes) -> None:
        for byte in data:
            after_cr, self._after_cr = self._after_cr, byte == 0x0D
            if byte == 0x0A and after_cr:
                continue  # the LF of a CR LF
            if byte in (0x0A, 0x0D):
                self._user_line(bytes(self._line))
                self._line.clear()
            elif len(self._line) <= MAX_LINE:
                self._line.append(byte)

    def _user_line(self, raw: bytes) -> None:
        if len(raw) > MAX_LINE:
            self._waiting.append(_Expect(_COMMAND))  # refused: one ERR line
            return
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            self._waiting.append(_Expect(_COMMAND))
            return
        if any(ord(c) < 0x20 and c != "\t" or ord(c) == 0x7F for c in text):
            self._waiting.append(_Expect(_COMMAND))
            return
        words = text.split()
        if not words:
            return  # a blank line is not answered
        if words[0].endswith("?"):
            self._waiting.append(_Expect(_QUERY))
            return
        lowered = [w.lower() for w in words]
        if len(lowered) == 3 and lowered[:2] == ["mode", "set"] and lowered[2] in MODES:
            self._waiting.append(_Expect(_COMMAND, sets_mode=True, mode=MODES[lowered[2]]))
        elif lowered[0] == "scan" and len(words) > 1:
            self._waiting.append(_Expect(_COMMAND, scan=" ".join(words[1:])))
        else:
            self._waiting.append(_Expect(_COMMAND))

    # ------------------------------------------------------------------ the station's side
    def from_station(self, data: bytes) -> None:
        start = 0
        while True:
            end = data.find(b"\n", start)
            if end < 0:
                self._keep_head(data[start:])
                return
            self._keep_head(data[start:end])
            self._reply_line(bytes(self._reply_head).rstrip(b"\r"))
            self._reply_head.clear()
            start = end + 1

    def _keep_head(self, piece: bytes) -> None:
        room = 8 - len(self._reply_head)
        if room > 0:
            self._reply_head += piece[:room]

    def _reply_line(self, head: bytes) -> None:
        if not self._waiting:
            return  # nothing asked (a conversation joined half-way): not ours to interpret
        expect = self._waiting[0]
        ok = head == b"OK" or head.startswith(b"OK ")
        final = ok or head.startswith(b"ERR ")
        if expect.kind == _QUERY:
            self._waiting.popleft()
        elif final:
            self._waiting.popleft()
            if ok and expect.sets_mode:
                self._on_mode(expect.mode)
            if ok and expect.scan is not None and self._on_scan is not None:
                self._on_scan(expect.scan)

    @property
    def in_flight(self) -> int:
        """Lines sent that have not had their answer yet."""
        return len(self._waiting)
