"""The controller's event loop: one thread, one queue, timers from an injected clock.

Everything that happens to the station (sensor edges, motion results, timers, console
commands) becomes a call posted to this loop and runs on its thread, one at a time, to
completion. That is what lets the controller keep its state without locks.

The same loop runs on a real clock (hardware: `run_forever` blocks until the next timer or a
post) and on a virtual clock (simulation: `run_until` jumps time forward from timer to timer,
so hours of bench time pass in milliseconds and every run is deterministic).
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Protocol, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")


class Clock(Protocol):
    """Monotonic seconds."""

    def now(self) -> float: ...


class RealClock:
    """Wall-clock monotonic time for hardware and real-time simulation."""

    virtual = False

    def now(self) -> float:
        return time.monotonic()


class VirtualClock:
    """Simulated time: moves only when the loop runs timers."""

    virtual = True

    def __init__(self, start: float = 0.0) -> None:
        self._t = start

    def now(self) -> float:
        return self._t

    def _set(self, t: float) -> None:
        if t > self._t:
            self._t = t


class Timer:
    """A scheduled call; `cancel()` is safe to call any number of times, even after it ran."""

    __slots__ = ("due", "fn", "cancelled", "fired", "_seq")

    def __init__(self, due: float, fn: Callable[[], None], seq: int) -> None:
        self.due = due
        self.fn = fn
        self.cancelled = False
        self.fired = False
        self._seq = seq

    def cancel(self) -> None:
        self.cancelled = True

    @property
    def pending(self) -> bool:
        """Will still run (neither cancelled nor already run), whatever its due time."""
        return not (self.cancelled or self.fired)

    def __lt__(self, other: Timer) -> bool:
        return (self.due, self._seq) < (other.due, other._seq)


class EventLoop:
    """Run-to-completion loop: posted calls first, then timers in due order."""

    def __init__(self, clock: Clock, on_error: Callable[[BaseException], None] | None = None) -> None:
        self.clock = clock
        self._posted: deque[Callable[[], None]] = deque()
        self._timers: list[Timer] = []
        self._seq = itertools.count()
        self._wake = threading.Condition()
        self._stopping = False
        self._on_error = on_error
        self.thread: threading.Thread | None = None
        # Called on the loop thread once per iteration; the service watchdog hooks in here so a
        # hung loop stops the pings.
        self.heartbeat: Callable[[], None] | None = None
        self.heartbeat_every = 1.0

    def on_error(self, handler: Callable[[BaseException], None]) -> None:
        """Where an exception escaping a handler goes (the loop itself keeps running)."""
        self._on_error = handler

    @property
    def virtual(self) -> bool:
        return bool(getattr(self.clock, "virtual", False))

    def now(self) -> float:
        return self.clock.now()

    # -- posting (thread-safe) -------------------------------------------------------------
    def post(self, fn: Callable[[], None]) -> None:
        """Queue `fn` to run on the loop thread. Safe from any thread, including callbacks."""
        with self._wake:
            self._posted.append(fn)
            self._wake.notify()

    def call_at(self, due: float, fn: Callable[[], None]) -> Timer:
        timer = Timer(due, fn, next(self._seq))
        with self._wake:
            heapq.heappush(self._timers, timer)
            self._wake.notify()
        return timer

    def call_later(self, delay: float, fn: Callable[[], None]) -> Timer:
        return self.call_at(self.clock.now() + max(0.0, delay), fn)

    # -- running ---------------------------------------------------------------------------
    def _run(self, fn: Callable[[], None]) -> None:
        try:
            fn()
        except Exception as exc:  # the loop must survive anything a handler does
            log.exception("unhandled error on the controller loop")
            if self._on_error is not None:
                self._on_error(exc)

    def _drain_posted(self) -> None:
        while True:
            with self._wake:
                if not self._posted:
                    return
                fn = self._posted.popleft()
            self._run(fn)

    def _pop_due(self, limit: float) -> Timer | None:
        with self._wake:
            while self._timers and self._timers[0].cancelled:
                heapq.heappop(self._timers)
            if self._timers and self._timers[0].due <= limit:
                timer = heapq.heappop(self._timers)
                timer.fired = True
                return timer
        return None

    def next_due(self) -> float | None:
        with self._wake:
            while self._timers and self._timers[0].cancelled:
                heapq.heappop(self._timers)
            return self._timers[0].due if self._timers else None

    def run_until(self, t: float) -> None:
        """Virtual time: run everything due up to `t`, moving the clock with each timer."""
        assert isinstance(self.clock, VirtualClock), "run_until needs a VirtualClock"
        self._drain_posted()
        while True:
            timer = self._pop_due(t)
            if timer is None:
                break
            self.clock._set(timer.due)
            self._run(timer.fn)
            self._drain_posted()
        self.clock._set(t)
        if self.heartbeat:
            self.heartbeat()

    def run_for(self, seconds: float) -> None:
        self.run_until(self.clock.now() + seconds)

    def run_while(self, busy: Callable[[], bool], limit_s: float) -> bool:
        """Virtual time: run timers one by one while `busy()`; False if `limit_s` ran out first."""
        end = self.clock.now() + limit_s
        self._drain_posted()
        while busy():
            nxt = self.next_due()
            if nxt is None or nxt > end:
                self.run_until(end)
                return not busy()
            self.run_until(nxt)
        return True

    def run_forever(self) -> None:
        """Real time: block on this thread until `stop()`. Sleeps while nothing is due."""
        self.thread = threading.current_thread()
        while True:
            self._drain_posted()
            timer = self._pop_due(self.clock.now())
            if timer is not None:
                self._run(timer.fn)
                continue
            if self.heartbeat:
                self.heartbeat()
            with self._wake:
                if self._stopping:
                    return
                if self._posted:
                    continue
                nxt = self._timers[0].due if self._timers else None
                timeout = None if nxt is None else max(0.0, nxt - self.clock.now())
                if self.heartbeat is not None and (timeout is None or timeout > self.heartbeat_every):
                    timeout = self.heartbeat_every  # wake up for the watchdog even when idle
                self._wake.wait(timeout)

    def wait_posted(self, timeout: float) -> None:
        """Block until something is posted or `timeout` passes (for loops paced from outside)."""
        with self._wake:
            if not self._posted and not self._stopping:
                self._wake.wait(timeout)

    def start_thread(self, name: str = "controller") -> threading.Thread:
        thread = threading.Thread(target=self.run_forever, name=name, daemon=True)
        self.thread = thread
        thread.start()
        return thread

    def stop(self) -> None:
        with self._wake:
            self._stopping = True
            self._wake.notify()

    def call_sync(self, fn: Callable[[], T], timeout: float = 5.0) -> T:
        """Run `fn` on the loop thread and wait for its result (for the console and tests)."""
        if self.thread is None or threading.current_thread() is self.thread:
            return fn()
        done = threading.Event()
        results: list[T] = []
        errors: list[BaseException] = []

        def call() -> None:
            try:
                results.append(fn())
            except BaseException as exc:  # handed back to the caller
                errors.append(exc)
            finally:
                done.set()

        self.post(call)
        if not done.wait(timeout):
            raise TimeoutError("controller did not answer in time")
        if errors:
            raise errors[0]
        return results[0]
