"""Maintenance jobs that move hardware: jog the wheel, prime the pump, self-test.

Invariant: a job runs only in the station's `servicing` state, entered from `idle` with no
connector in the guide, so a maintenance move can never overlap a clean. Ribbon and drops are
booked before the wheel moves or the pump pulses, exactly as in a clean; every job is audited
with where it came from (the console port, or the panel). Runs on the controller loop; a fault
or a reset ends the job in flight (`abort`). A job's first part runs in the console's call, not
as a loop handler: an exception there (a write the disk refuses) is the station's fault too.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .config import Config
from .consumables import Consumables
from .domain import FaultCode, ServiceResult
from .events import DropDispensed, Event, MaintenanceDone
from .faults import fault_of
from .loop import EventLoop, Timer
from .ports import Hardware, MotionResult, MotionStatus, Sensor
from .store import Store

Done = Callable[[ServiceResult], None]

MAX_JOG = 30
MAX_PRIME = 20


@dataclass(frozen=True)
class ServiceHost:
    """What a job needs of the station core: its state, the way into and out of `servicing`,
    and the way into fault."""

    state: Callable[[], str]
    enter: Callable[[], object]
    leave: Callable[[], object]
    fault: Callable[[FaultCode, str], None]


@dataclass
class _Job:
    kind: str
    done: Done
    source: str
    count: int = 0
    finished: int = 0
    lines: list[str] = field(default_factory=list)
    then: list[Callable[[], None]] = field(default_factory=list)  # the next parts of a self-test


class ServiceJobs:
    """Jog, prime and self-test, one at a time (on the controller loop)."""

    def __init__(
        self,
        host: ServiceHost,
        hardware: Hardware,
        store: Store,
        consumables: Consumables,
        loop: EventLoop,
        config: Callable[[], Config],
        publish: Callable[[Event], None],
        *,
        wall: Callable[[], float],
    ) -> None:
        self._host = host
        self._hw = hardware
        self._store = store
        self._books = consumables
        self._loop = loop
        self._config = config
        self._publish = publish
        self._wall = wall
        self._job: _Job | None = None
        self._timer: Timer | None = None
        self._drop_seen = False

    # ------------------------------------------------------------------ guards and life cycle
    def refusal(self, *, need_cassette: bool) -> str | None:
        """Why a maintenance action cannot start now, or None."""
        state = self._host.state()
        if state != "idle":
            return f"the station is {state}; wait for ready (or clear the fault) first"
        if self._hw.sensors.read(Sensor.CONNECTOR):
            return "a connector is in the guide; take it away first"
        if need_cassette and not self._hw.sensors.read(Sensor.CASSETTE):
            return "no cassette fitted"
        return None

    def _begin(self, kind: str, source: str, done: Done, detail: dict[str, Any]) -> _Job:
        self._store.audit("maintenance", kind, self._wall(), detail=detail, source=source)
        self._job = _Job(kind, done, source)
        self._host.enter()
        return self._job

    def _end(self, ok: bool, error: str = "") -> None:
        job, self._job = self._job, None
        self._cancel_timer()
        if self._host.state() == "servicing":
            self._host.leave()
        if job is not None:
            self._finish(job, ServiceResult(ok, job.lines, error))

    def _finish(self, job: _Job, result: ServiceResult) -> None:
        job.done(result)
        self._publish(MaintenanceDone(job.kind, result.ok, job.source, result.error))

    def abort(self, why: str) -> None:
        """A fault or a reset ends the job in flight (the outputs are the caller's to secure)."""
        self._cancel_timer()
        job, self._job = self._job, None
        if job is not None:
            self._finish(job, ServiceResult(False, job.lines, why))

    def _fail(self, job: _Job, code: FaultCode, fault_detail: str, error: str) -> None:
        self._job = None
        self._cancel_timer()
        self._host.fault(code, fault_detail)
        self._finish(job, ServiceResult(False, job.lines, error))

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _advance(self, job: _Job, positions: int) -> None:
        job.count = positions
        self._hw.wheel.advance(positions, lambda r: self._loop.post(lambda: self._moved(job, r)))

    def _next(self, job: _Job) -> None:
        if job.then:
            job.then.pop(0)()
        else:
            self._end(True)

    def _start(self, done: Done, start: Callable[[], None]) -> None:
        """Run the first part of a job (its audit, its first booking, move or pulse). The console
        calls it through `loop.call_sync`, which hands an exception back to the console instead
        of the loop's error handler: the station would be left as it was half-way (in
        `servicing`, no fault) with the console saying ERR. It goes into fault instead (rule 7),
        the storage fault when the disk refused a write; the fault ends the job begun."""
        try:
            start()
        except Exception as exc:
            begun = self._job is not None
            self._host.fault(*fault_of(exc))  # aborts (and reports) a job begun
            if not begun:
                done(ServiceResult(False, error=f"{type(exc).__name__}: {exc}; station is now in fault"))

    # ------------------------------------------------------------------ jog
    def jog(self, positions: int, source: str, done: Done) -> None:
        """Advance the wheel by whole positions (each index-confirmed); the ribbon is booked first."""
        self._start(done, lambda: self._jog(positions, source, done))

    def _jog(self, positions: int, source: str, done: Done) -> None:
        refusal = self.refusal(need_cassette=True)
        if refusal is None and not 1 <= positions <= MAX_JOG:
            refusal = f"jog takes 1 to {MAX_JOG} positions, not {positions}"
        cassette = self._books.current_cassette() if refusal is None else None
        if cassette is not None and cassette.remaining < positions:
            refusal = f"only {cassette.remaining} positions left on the cassette"
        if refusal is not None or cassette is None:
            done(ServiceResult(False, error=refusal or "no cassette fitted"))
            return
        job = self._begin("jog", source, done, {"positions": positions})
        self._store.reserve_positions(cassette, positions, self._wall(), source="jog")
        self._advance(job, positions)

    def _moved(self, job: _Job, result: MotionResult) -> None:
        if self._job is not job:
            return  # a move of a job already ended (fault, reset)
        job.lines.append(
            f"wheel: {result.positions} of {job.count} positions confirmed in {result.steps} steps "
            f"({result.duration_s:.3f} s)"
        )
        if result.status is MotionStatus.DONE:
            self._next(job)
            return
        how = "" if result.status is MotionStatus.JAM else f" ({result.status.value.replace('_', ' ')})"
        detail = f"{job.kind}: wheel confirmed {result.positions} of {job.count} positions{how}"
        self._fail(job, FaultCode.JAM, detail, f"wheel {result.status.value}: station is now in fault")

    # ------------------------------------------------------------------ prime
    def prime(self, drops: int, source: str, done: Done) -> None:
        """Pump drops to fill the line (into the waste, with no connector in the guide)."""
        self._start(done, lambda: self._prime(drops, source, done))

    def _prime(self, drops: int, source: str, done: Done) -> None:
        refusal = self.refusal(need_cassette=False)
        if refusal is None and not 1 <= drops <= MAX_PRIME:
            refusal = f"prime takes 1 to {MAX_PRIME} drops, not {drops}"
        if refusal is not None:
            done(ServiceResult(False, error=refusal))
            return
        job = self._begin("prime", source, done, {"drops": drops})
        job.count = drops
        self._pump_next(job)

    def _pump_next(self, job: _Job) -> None:
        if job.finished >= job.count:
            job.lines.append(f"pump: {job.finished} drop{'s' if job.finished != 1 else ''}")
            self._next(job)
            return
        self._store.record_drop(self._wall(), source=job.kind)  # durable before the pulse
        self._drop_seen = False  # before the pulse: a drop may be seen while it is given
        self._hw.dispenser.pulse()
        self._publish(DropDispensed(None, job.kind))
        job.finished += 1
        d = self._config().dispenser
        wait = d.drop_timeout_s if self._hw.sensors.fitted(Sensor.DROP) else d.pulse_s
        self._cancel_timer()
        self._timer = self._loop.call_later(wait + 0.05, lambda: self._pump_check(job))

    def drop_seen(self) -> None:
        """The drop sensor saw a drop while servicing."""
        self._drop_seen = True

    def _pump_check(self, job: _Job) -> None:
        self._timer = None
        if self._job is not job:
            return
        if self._hw.sensors.fitted(Sensor.DROP) and not self._drop_seen:
            job.lines.append(f"pump: drop {job.finished} not seen by the drop sensor")
            error = "no drop seen: check the pump and nozzle; station is now in fault"
            unseen = f"{job.kind}: the drop sensor did not see drop {job.finished} of {job.count}"
            self._fail(job, FaultCode.NO_DROP, unseen, error)
            return
        self._pump_next(job)

    # ------------------------------------------------------------------ self-test
    def selftest(self, source: str, done: Done) -> None:
        """Check each part: sensors at rest, the wheel (one position), the pump (one drop),
        lights and buzzer. Costs one ribbon position and one drop, both booked."""
        self._start(done, lambda: self._selftest(source, done))

    def _selftest(self, source: str, done: Done) -> None:
        refusal = self.refusal(need_cassette=True)
        cassette = self._books.current_cassette() if refusal is None else None
        if cassette is not None and cassette.remaining < 1:
            refusal = "the cassette is used up"
        if refusal is not None or cassette is None:
            done(ServiceResult(False, error=refusal or "no cassette fitted"))
            return
        job = self._begin("selftest", source, done, {})
        snapshot = self._hw.sensors.snapshot()
        rest = {
            Sensor.GATE_A: False,
            Sensor.GATE_B: False,
            Sensor.PIN_LEFT: False,
            Sensor.PIN_RIGHT: False,
            Sensor.DROP: False,
            Sensor.BUTTON: False,
            Sensor.CASSETTE: True,
        }
        failed = [s.value for s, want in rest.items() if s in snapshot and snapshot[s] != want]
        job.lines.append("sensors: " + ("PASS (at rest)" if not failed else f"FAIL ({', '.join(failed)} not at rest)"))
        left = cassette.remaining
        job.lines.append(
            f"cassette: {self._books.cassette_type().value}, {left} position{'s' if left != 1 else ''} left"
        )
        self._store.reserve_positions(cassette, 1, self._wall(), source="selftest")

        def pump() -> None:
            job.lines[-1] = job.lines[-1].replace("wheel:", "wheel: PASS,")
            job.count, job.finished = 1, 0
            self._pump_next(job)

        def panel() -> None:
            fitted = self._hw.sensors.fitted(Sensor.DROP)
            checked = "PASS," if fitted else "NOT CHECKED (no drop sensor fitted),"
            job.lines[-1] = job.lines[-1].replace("pump:", f"pump: {checked}")
            self._hw.panel.lamp_test(finish)  # a reset or fault cancels it (panel timers)

        def finish() -> None:
            if self._job is not job:
                return
            job.lines.append(
                "lights and buzzer: shown green, amber, red one at a time, then a beep (check by eye and ear)"
            )
            self._end(not failed, "" if not failed else "sensors not at rest")

        job.then = [pump, panel]
        self._advance(job, 1)
