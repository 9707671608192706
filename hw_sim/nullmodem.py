"""A simulated null-modem cable: two pseudo-terminals whose master sides are bridged.

The station opens one end by its path with pyserial, exactly as it opens /dev/serial0 on the
Pi; a person or a script opens the other end (miniterm, picocom, screen, PyVISA). Both ends
are raw (no echo, no CR/LF translation).

The cable has flow control, as a cable with RTS/CTS does: it never drops a byte. What one end
sends waits in the cable (in order, per direction) until the other end's buffer has room;
once `PENDING_CAP` bytes wait in one direction, the cable stops taking bytes from that sender,
whose own pty buffer then fills, so its writes block until the reader catches up. A long
reply to a slow reader therefore arrives complete, and the cable's memory stays bounded.

An optional `tap` sees the bytes of each direction as they enter the cable, in order (the
simulator learns what a person did at the console this way: `hw_sim.console_tap`). It runs
on the cable's thread before the bytes are passed on, so whatever it posts is ordered before
anything the receiving end can do in reply.
"""

from __future__ import annotations

import logging
import os
import select
import threading
import tty
from typing import Protocol

log = logging.getLogger(__name__)

PENDING_CAP = 64 * 1024  # bytes waiting in the cable per direction before the sender is held back
READ_MAX = 16 * 1024  # bytes taken from a sender at a time


class Tap(Protocol):
    """Sees every byte crossing the cable, per direction, in order."""

    def from_station(self, data: bytes) -> None: ...

    def from_user(self, data: bytes) -> None: ...


class NullModem:
    """`station_end` and `user_end` are device paths; bytes written to one come out of the other."""

    def __init__(self, tap: Tap | None = None, *, cap: int = PENDING_CAP) -> None:
        self._m1, s1 = os.openpty()  # station side
        self._m2, s2 = os.openpty()  # user side
        for fd in (s1, s2):
            tty.setraw(fd)
        for fd in (self._m1, self._m2):
            os.set_blocking(fd, False)  # never block the pump: readiness comes from select
        self.station_end = os.ttyname(s1)
        self.user_end = os.ttyname(s2)
        # Keep our own handle on each slave: without one, a master reads EIO whenever nobody
        # has the other end open (a client that disconnected must not break the cable).
        self._slaves = (s1, s2)
        self._tap = tap
        self._cap = cap
        # The most bytes that ever waited in the cable towards each end (tests check the bound).
        self.peak_pending = {"to_station": 0, "to_user": 0}
        self._wake_r, self._wake_w = os.pipe()  # close() wakes the pump at once
        os.set_blocking(self._wake_w, False)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._pump, name="nullmodem", daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        m1, m2 = self._m1, self._m2
        other = {m1: m2, m2: m1}
        pending = {m1: bytearray(), m2: bytearray()}  # bytes waiting to be written into each master
        peak_key = {m1: "to_station", m2: "to_user"}
        poller = select.poll()  # (not select.select: a busy process may hold fds past FD_SETSIZE)
        poller.register(self._wake_r, select.POLLIN)
        while not self._stop.is_set():
            for fd in (m1, m2):
                # Take from a sender only while what waits for its receiver is under the cap.
                mask = select.POLLIN if len(pending[other[fd]]) < self._cap else 0
                if pending[fd]:
                    mask |= select.POLLOUT
                poller.register(fd, mask)  # (re-registering modifies)
            try:
                events = poller.poll()
            except (OSError, ValueError):
                return  # closed under us
            if self._stop.is_set() or any(ev & select.POLLNVAL for _, ev in events):
                return  # close() woke us, or an fd was closed under us
            readable = [fd for fd, ev in events if ev & select.POLLIN]
            writable = [fd for fd, ev in events if ev & select.POLLOUT]
            if not readable and not writable:
                # A hang-up or error only (not expected while we hold both slaves): no spinning.
                if self._stop.wait(0.05):
                    return
                continue
            for fd in writable:
                self._flush(fd, pending[fd])
            for fd in readable:
                dest = other[fd]
                buf = pending[dest]
                if len(buf) >= self._cap:
                    continue
                try:
                    data = os.read(fd, min(READ_MAX, self._cap - len(buf)))
                except BlockingIOError:
                    continue
                except OSError as exc:
                    # Not expected while we hold both slaves; do not spin on it.
                    log.warning("null-modem read failed: %s", exc)  # pragma: no mutate
                    if self._stop.wait(0.05):
                        return
                    continue
                if not data:
                    continue
                if self._tap is not None:
                    self._tell_tap(fd == m1, data)
                buf += data
                if len(buf) > self.peak_pending[peak_key[dest]]:
                    self.peak_pending[peak_key[dest]] = len(buf)
                self._flush(dest, buf)  # pass it on at once when the receiver has room

    @staticmethod
    def _flush(fd: int, buf: bytearray) -> None:
        """Write as much of `buf` into master `fd` as it takes now; the rest stays pending."""
        while buf:
            try:
                n = os.write(fd, buf)
            except BlockingIOError:
                return
            except OSError as exc:
                log.warning("null-modem write failed: %s", exc)  # pragma: no mutate
                return
            if n <= 0:
                return
            del buf[:n]

    def _tell_tap(self, from_station: bool, data: bytes) -> None:
        assert self._tap is not None
        try:
            if from_station:
                self._tap.from_station(data)
            else:
                self._tap.from_user(data)
        except Exception:  # a tap must never break the cable
            log.exception("null-modem tap failed")  # pragma: no mutate

    def close(self) -> None:
        """Stop the cable at once (whatever still waits in it is lost, as when a cable is
        pulled); a sender blocked on it gets an error. Closing twice does nothing."""
        if self._stop.is_set():
            return
        self._stop.set()
        try:
            os.write(self._wake_w, b"x")
        except OSError:
            pass
        self._thread.join(1.0)
        for fd in (self._m1, self._m2, *self._slaves, self._wake_r, self._wake_w):
            try:
                os.close(fd)
            except OSError:
                pass

    def __enter__(self) -> NullModem:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
