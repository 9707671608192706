"""Maintenance actions of the controller: jog, prime, self-test, fault clear, reset, mode.

A mixin of `Controller`, so these run on the controller loop like everything else. Hardware
actions happen in the `servicing` state, entered only from `idle` with no connector in the
guide, so a maintenance move can never overlap a clean. Every action is audited with where
it came from (the console port, or the panel).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .domain import FaultCode, Mode, Outcome, Reason
from .ports import MotionResult, MotionStatus, Sensor

if TYPE_CHECKING:
    from .controller import Controller


@dataclass
class ServiceResult:
    """What a maintenance action did: `lines` for a person, `ok` for the framing."""

    ok: bool
    lines: list[str] = field(default_factory=list)
    error: str = ""


Done = Callable[[ServiceResult], None]


@dataclass
class _Job:
    kind: str
    done: Done
    count: int = 0
    finished: int = 0
    lines: list[str] = field(default_factory=list)
    steps: list[Callable[[], None]] = field(default_factory=list)


MAX_JOG = 30
MAX_PRIME = 20


class Maintenance:
    """Mixin: everything here runs on the controller loop thread."""

    _service: _Job | None

    # ------------------------------------------------------------------ guards
    def _may_service(self: Controller, need_cassette: bool) -> str | None:
        if self.state != "idle":
            return f"the station is {self.state}; wait for ready (or clear the fault) first"
        if self._read(Sensor.CONNECTOR):
            return "a connector is in the guide; take it away first"
        if need_cassette and not self._read(Sensor.CASSETTE):
            return "no cassette fitted"
        return None

    def _begin(self: Controller, kind: str, source: str, done: Done, detail: dict[str, Any]) -> _Job:
        self.store.audit("maintenance", kind, self.wall(), detail=detail, source=source)
        self._service = _Job(kind, done)
        self.service()
        return self._service

    def _end(self: Controller, ok: bool, error: str = "") -> None:
        job = self._service
        self._service = None
        if self.state == "servicing":
            self.serviced()
        if job is not None:
            job.done(ServiceResult(ok, job.lines, error))

    # ------------------------------------------------------------------ jog
    def jog(self: Controller, positions: int, source: str, done: Done) -> None:
        """Advance the wheel by whole positions (each index-confirmed); the ribbon is booked first."""
        refusal = self._may_service(need_cassette=True)
        if refusal is None and not 1 <= positions <= MAX_JOG:
            refusal = f"jog takes 1 to {MAX_JOG} positions, not {positions}"
        cassette = self.current_cassette() if refusal is None else None
        if cassette is not None and cassette.remaining < positions:
            refusal = f"only {cassette.remaining} positions left on the cassette"
        if refusal is not None:
            done(ServiceResult(False, error=refusal))
            return
        job = self._begin("jog", source, done, {"positions": positions})
        self.store.reserve_positions(cassette, positions, self.wall(), source="jog")  # type: ignore[arg-type]
        job.count = positions
        self.bench.wheel.advance(positions, lambda r: self.loop.post(lambda: self._on_motion(r)))

    def _service_motion_done(self: Controller, result: MotionResult) -> None:
        job = self._service
        if job is None:
            return
        job.lines.append(
            f"wheel: {result.positions} of {job.count} positions confirmed in {result.steps} steps "
            f"({result.duration_s:.3f} s)"
        )
        if result.status is MotionStatus.DONE:
            if job.steps:
                job.steps.pop(0)()
            else:
                self._end(True)
            return
        self._service = None
        self._fault(FaultCode.JAM, f"{job.kind}: {result.status.value} after {result.positions} positions")
        job.done(ServiceResult(False, job.lines, f"wheel {result.status.value}: station is now in fault"))

    # ------------------------------------------------------------------ prime
    def prime(self: Controller, drops: int, source: str, done: Done) -> None:
        """Pump drops to fill the line (into the waste, with no connector in the guide)."""
        refusal = self._may_service(need_cassette=False)
        if refusal is None and not 1 <= drops <= MAX_PRIME:
            refusal = f"prime takes 1 to {MAX_PRIME} drops, not {drops}"
        if refusal is not None:
            done(ServiceResult(False, error=refusal))
            return
        job = self._begin("prime", source, done, {"drops": drops})
        job.count = drops
        self._prime_next()

    def _prime_next(self: Controller) -> None:
        job = self._service
        if job is None:
            return
        if job.finished >= job.count:
            job.lines.append(f"pump: {job.finished} drop{'s' if job.finished != 1 else ''}")
            if job.steps:
                job.steps.pop(0)()
            else:
                self._end(True)
            return
        self.store.record_drop(self.wall(), source=job.kind)
        self.bench.dispenser.pulse()
        job.finished += 1
        wait = (
            self.config.dispenser.drop_timeout_s
            if self.bench.sensors.fitted(Sensor.DROP)
            else self.config.dispenser.pulse_s
        )
        self._after(wait + 0.05, self._prime_check)
        self._prime_seen = False

    def _prime_check(self: Controller) -> None:
        if self._service is None:
            return
        if self.bench.sensors.fitted(Sensor.DROP) and not self._prime_seen:
            job = self._service
            self._service = None
            job.lines.append(f"pump: drop {job.finished} not seen by the drop sensor")
            self._fault(FaultCode.NO_DROP, f"{job.kind}: no drop seen")
            job.done(
                ServiceResult(False, job.lines, "no drop seen: check the pump and nozzle; station is now in fault")
            )
            return
        self._prime_next()

    # ------------------------------------------------------------------ self-test
    def selftest(self: Controller, source: str, done: Done) -> None:
        """Check each part: sensors at rest, the wheel (one position), the pump (one drop),
        lights and buzzer. Costs one ribbon position and one drop, both booked."""
        refusal = self._may_service(need_cassette=True)
        cassette = self.current_cassette() if refusal is None else None
        if cassette is not None and cassette.remaining < 1:
            refusal = "the cassette is used up"
        if refusal is not None:
            done(ServiceResult(False, error=refusal))
            return
        job = self._begin("selftest", source, done, {})
        lines = job.lines
        snapshot = self.bench.sensors.snapshot()
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
        lines.append("sensors: " + ("PASS (at rest)" if not failed else f"FAIL ({', '.join(failed)} not at rest)"))
        left = cassette.remaining  # type: ignore[union-attr]
        lines.append(f"cassette: {self.cassette_type().value}, {left} position{'s' if left != 1 else ''} left")
        self.store.reserve_positions(cassette, 1, self.wall(), source="selftest")  # type: ignore[arg-type]
        job.count = 1

        def pump() -> None:
            job.lines[-1] = job.lines[-1].replace("wheel:", "wheel: PASS,")
            job.count = 1
            job.finished = 0
            self._prime_next()

        def panel() -> None:
            checked = "PASS," if self.bench.sensors.fitted(Sensor.DROP) else "NOT CHECKED (no drop sensor fitted),"
            job.lines[-1] = job.lines[-1].replace("pump:", f"pump: {checked}")
            self.bench.panel.lamp_test(finish)  # a reset or fault cancels it (panel timers)

        def finish() -> None:
            job.lines.append(
                "lights and buzzer: shown green, amber, red one at a time, then a beep (check by eye and ear)"
            )
            self._end(not failed, "" if not failed else "sensors not at rest")

        job.steps = [pump, panel]
        self.bench.wheel.advance(1, lambda r: self.loop.post(lambda: self._on_motion(r)))

    # ------------------------------------------------------------------ faults, reset, mode
    def request_fault_clear(self: Controller, source: str) -> ServiceResult:
        if self.state != "fault":
            return ServiceResult(False, error="no fault to clear")
        code, detail = (self.fault_code or FaultCode.INTERNAL).value, self.fault_detail
        if not self.acknowledge_fault(source):
            return ServiceResult(False, error=f"fault {code} still present: {detail}")
        return ServiceResult(True, [f"fault {code} cleared"])

    def request_reset(self: Controller, source: str) -> ServiceResult:
        """*RST: abort whatever is running, safely, to ready. A fault is not reset this way."""
        if self.state == "fault":
            return ServiceResult(False, error="in fault: clear the fault (fault clear) instead")
        self.store.audit("maintenance", "reset", self.wall(), detail={"state": self.state}, source=source)
        self.bench.wheel.stop()
        self.bench.dispenser.off()
        if self.attempt is not None and self.attempt.outcome is None:
            self._conclude(Outcome.INTERRUPTED, Reason.INTERRUPTED)
        if self._service is not None:
            job, self._service = self._service, None
            job.done(ServiceResult(False, job.lines, "reset"))
        if self.state != "idle":
            self.reset()
        return ServiceResult(True, ["reset to ready"])

    def set_mode(self: Controller, mode: Mode | None, source: str) -> ServiceResult:
        self.mode_override = mode
        self.store.audit(
            "maintenance", "mode", self.wall(), detail={"mode": mode.value if mode else "switch"}, source=source
        )
        self._emit("mode", mode=mode.value if mode else None, source=source)
        return ServiceResult(True, [f"mode {self.mode_switch().value} ({'console' if mode else 'panel switch'})"])
