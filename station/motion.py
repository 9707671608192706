"""Closed-loop wheel advance: the step ramp and the index-pulse bookkeeping.

Pure logic shared by both motion executors (the real-time thread on the Pi and the
virtual-time executor in simulation), so the jam rule is the same code everywhere.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

from .ports import MotionStatus


@dataclass(frozen=True)
class Ramp:
    """Trapezoidal step-rate profile towards an expected number of steps."""

    start_rate_hz: float
    max_rate_hz: float
    accel_hz_per_s: float

    def rate(self, step: int, expected: int) -> float:
        """Step rate for step number `step` (0-based) of a move expected to take `expected` steps.

        Accelerates from the start rate, cruises, decelerates to arrive at the start rate, and
        crawls at the start rate past `expected` (slip: the index pulse comes late).
        """
        v0, a = self.start_rate_hz, self.accel_hz_per_s
        up = math.sqrt(v0 * v0 + 2 * a * step)
        down = math.sqrt(v0 * v0 + 2 * a * max(0, expected - step - 1))
        return max(v0, min(self.max_rate_hz, up, down))

    def interval(self, step: int, expected: int) -> float:
        return 1.0 / self.rate(step, expected)

    def nominal_duration(self, steps: int) -> float:
        return sum(self.interval(i, steps) for i in range(steps))


class AdvanceJob:
    """One advance of N positions. Counts steps and index pulses; decides done or jam.

    `stepped()` runs on the motion executor, `index_seen()` on the pin callback thread (lgpio
    has its own), hence the small lock: this is driver state, not controller state.
    """

    def __init__(self, positions: int, steps_per_position: int, max_steps_per_position: int, ramp: Ramp) -> None:
        self.positions = positions
        self.expected_steps = positions * steps_per_position
        self.max_steps = max_steps_per_position
        self.min_steps = steps_per_position // 2  # an index pulse sooner than this is not a position
        self.ramp = ramp
        self.steps = 0
        self.confirmed = 0
        self._since_index = 0
        self._lock = threading.Lock()
        self.status: MotionStatus | None = None
        self.cancelled = False  # stopped by its owner: nobody waits for its result

    def next_interval(self) -> float:
        return self.ramp.interval(self.steps, self.expected_steps)

    def stepped(self) -> MotionStatus | None:
        """Count a step pulse just sent; returns the final status once there is one."""
        with self._lock:
            self.steps += 1
            if self.status is None:
                self._since_index += 1
                if self._since_index > self.max_steps:
                    self.status = MotionStatus.JAM
            return self.status

    def index_seen(self) -> None:
        with self._lock:
            if self.status is None:
                if self.confirmed and self._since_index < self.min_steps:
                    # Far too soon after the last slot: a sensor sticking or flickering. (The first
                    # pulse of a move may come early: a jam or power cut can leave the wheel
                    # part-way through a position, and the next slot is then a real one.)
                    self.status = MotionStatus.EARLY_INDEX
                    return
                self.confirmed += 1
                self._since_index = 0
                if self.confirmed >= self.positions:
                    self.status = MotionStatus.DONE

    def abort(self) -> None:
        with self._lock:
            if self.status is None:
                self.status = MotionStatus.ABORTED
