"""A simulated null-modem cable: two pseudo-terminals whose master sides are bridged.

The station opens one end by its path with pyserial, exactly as it opens /dev/serial0 on the
Pi; a person or a script opens the other end (miniterm, picocom, screen, PyVISA). Both ends
are raw (no echo, no CR/LF translation).
"""

from __future__ import annotations

import os
import select
import threading
import tty


class NullModem:
    """`station_end` and `user_end` are device paths; bytes written to one come out of the other."""

    def __init__(self) -> None:
        self._m1, s1 = os.openpty()
        self._m2, s2 = os.openpty()
        for fd in (s1, s2):
            tty.setraw(fd)
        for fd in (self._m1, self._m2):
            os.set_blocking(fd, False)  # a full buffer drops bytes instead of stalling the cable
        self.station_end = os.ttyname(s1)
        self.user_end = os.ttyname(s2)
        # Keep our own handle on each slave: without one, a master reads EIO whenever nobody
        # has the other end open (a client that disconnected must not break the cable).
        self._slaves = (s1, s2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._pump, name="nullmodem", daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        pairs = {self._m1: self._m2, self._m2: self._m1}
        while not self._stop.is_set():
            try:
                ready, _, _ = select.select(list(pairs), [], [], 0.2)
            except (OSError, ValueError):
                return
            for fd in ready:
                try:
                    data = os.read(fd, 4096)
                except OSError:
                    continue
                if data:
                    try:
                        os.write(pairs[fd], data)
                    except OSError:
                        pass  # the other side's buffer is full: bytes are lost, as on a wire

    def close(self) -> None:
        self._stop.set()
        self._thread.join(1.0)
        for fd in (self._m1, self._m2, *self._slaves):
            try:
                os.close(fd)
            except OSError:
                pass
