"""The cassette wheel: stepper driver outputs, index sensor and the motion worker.

The motion worker runs the step train off the controller thread and reports the result as
one callback (which the controller posts onto its own queue). Two executors share the same
`AdvanceJob` logic: a real-time thread for hardware, and one that schedules each step on the
virtual-time loop for simulation.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Protocol

from gpiozero import DigitalInputDevice, DigitalOutputDevice

from ..config import Config
from ..loop import EventLoop
from ..motion import AdvanceJob, Ramp
from ..ports import MotionResult, MotionStatus
from .gpio import DigitalInput, DigitalOutput, PinFactory

log = logging.getLogger(__name__)


class StepperDriver:
    """STEP/DIR/ENABLE of an A4988 / DRV8825 / TMC2209 in step-dir mode.

    ENABLE is active low and starts inactive (driver off). After the process exits the pin
    floats, so the board must hold ENABLE high with a pull-up (see docs/wiring.md).
    """

    def __init__(self, config: Config, pin_factory: PinFactory | None = None) -> None:
        pins = config.pins
        self._forward = config.wheel.forward_dir_high
        self.enable_out: DigitalOutput = DigitalOutputDevice(
            pins.enable, active_high=False, initial_value=False, pin_factory=pin_factory
        )
        self.dir_out: DigitalOutput = DigitalOutputDevice(
            pins.dir, initial_value=self._forward, pin_factory=pin_factory
        )
        self.step_out: DigitalOutput = DigitalOutputDevice(pins.step, initial_value=False, pin_factory=pin_factory)

    def enable(self) -> None:
        self.dir_out.value = self._forward
        self.enable_out.on()

    def disable(self) -> None:
        self.step_out.off()
        self.enable_out.off()

    @property
    def enabled(self) -> bool:
        return bool(self.enable_out.value)

    def pulse(self) -> None:
        # The drivers need ~1-2 us high time; two gpiozero writes take longer than that.
        self.step_out.on()
        self.step_out.off()

    def close(self) -> None:
        self.disable()
        for out in (self.step_out, self.dir_out, self.enable_out):
            out.close()


class Executor(Protocol):
    def run(self, job: AdvanceJob, stepper: StepperDriver, finish: Callable[[], None]) -> None: ...


class ThreadExecutor:
    """Real time: one worker thread per move, sleeping to the ramp's step times."""

    def run(self, job: AdvanceJob, stepper: StepperDriver, finish: Callable[[], None]) -> None:
        def work() -> None:
            try:
                next_t = time.perf_counter()
                while job.status is None:
                    stepper.pulse()
                    if job.stepped() is not None:
                        break
                    next_t += job.next_interval()
                    delay = next_t - time.perf_counter()
                    if delay > 0:
                        time.sleep(delay)
            except Exception:
                log.exception("motion worker failed")
                job.abort()
            finally:
                finish()

        threading.Thread(target=work, name="motion", daemon=True).start()


class LoopExecutor:
    """Virtual time: each step is a timer on the simulation loop (deterministic, fast)."""

    def __init__(self, loop: EventLoop) -> None:
        self._loop = loop

    def run(self, job: AdvanceJob, stepper: StepperDriver, finish: Callable[[], None]) -> None:
        def step() -> None:
            if job.status is None:
                stepper.pulse()
                job.stepped()
            if job.status is None:
                self._loop.call_later(job.next_interval(), step)
            else:
                finish()

        self._loop.post(step)


class StepperWheel:
    """Advances the cassette wheel by whole positions, each confirmed by an index pulse.

    A position counts only when the index sensor sees it; if more than
    `wheel.max_steps_per_position` steps pass without one, the move ends as a jam.
    """

    def __init__(
        self,
        config: Config,
        executor: Executor,
        clock: Callable[[], float],
        pin_factory: PinFactory | None = None,
    ) -> None:
        w = config.wheel
        self._spp = w.steps_per_position
        self._max = w.max_steps_per_position
        self._ramp = Ramp(w.start_rate_hz, w.max_rate_hz, w.accel_hz_per_s)
        self._executor = executor
        self._now = clock
        self.stepper = StepperDriver(config, pin_factory)
        self.index: DigitalInput = DigitalInputDevice(config.pins.index, pull_up=True, pin_factory=pin_factory)
        self.index.when_activated = self._index_seen
        self._job: AdvanceJob | None = None

    def _index_seen(self) -> None:
        job = self._job
        if job is not None:
            job.index_seen()

    @property
    def moving(self) -> bool:
        return self._job is not None

    @property
    def enabled(self) -> bool:
        return self.stepper.enabled

    @property
    def index_active(self) -> bool:
        """The index sensor now, for a technician's view (`sensors`); moves count its edges."""
        return self.index.is_active

    def advance(self, positions: int, done: Callable[[MotionResult], None]) -> None:
        if self._job is not None:
            raise RuntimeError("the wheel is already moving")
        job = AdvanceJob(positions, self._spp, self._max, self._ramp)
        started = self._now()
        self._job = job
        self.stepper.enable()

        def finish() -> None:
            if self._job is job:  # a stopped move must not disable or clear a newer one
                self.stepper.disable()
                self._job = None
            if not job.cancelled:
                status = job.status or MotionStatus.ABORTED
                done(MotionResult(status, job.confirmed, job.steps, self._now() - started))

        self._executor.run(job, self.stepper, finish)

    def stop(self) -> None:
        """Abort any move and disable the driver at once (safe state). The wheel is free for a
        new move straight away; the stopped one ends without reporting."""
        job = self._job
        if job is not None:
            job.cancelled = True
            job.abort()
            self._job = None
        self.stepper.disable()

    def close(self) -> None:
        self.stop()
        self.stepper.close()
        self.index.close()
