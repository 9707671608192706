"""The station controller: one state machine, owned by the loop thread, fed by events.

Sensor callbacks, the motion worker, timers and the console only *post* to the loop; every
handler here runs on the loop thread, one at a time, to completion. The procedure is the
manufacturer's: present -> read guide pins -> interlock -> advance N positions (each confirmed
by the index sensor, reserved durably before moving) -> (wet: one drop) -> swipe now ->
judge the swipe -> cleaned / failed -> connector taken away -> ready.

The core owns the machine, its one state timer and the clean in progress; it composes the
collaborators that own the rest, each handed only what it needs: `consumables` (cassette and
fluid books), `jobs` (jog, prime, self-test), `settings` (console configuration changes) and
`button` (panel gestures). Everything the station announces goes out on `events` as a typed
event.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from transitions import Machine

from .attempt import Attempt
from .config import Config
from .consumables import Consumables
from .cycle import CleanCycle
from .domain import FaultCode, Mode, Outcome, Reason, ServiceResult
from .events import (
    EventBus,
    FaultCleared,
    Recovered,
    SensorChanged,
    StateChanged,
    StationStopped,
)
from .faults import FaultBook, fault_of
from .gestures import ButtonGestures
from .loop import EventLoop, Timer
from .mode import ModeSelector
from .plausibility import sensor_problems
from .ports import Hardware, MotionResult, Pattern, Sensor, SensorEdge
from .service_jobs import ServiceHost, ServiceJobs
from .settings import Settings
from .store import Store
from .trace import Traceability

log = logging.getLogger(__name__)

STATES = ["idle", "identifying", "advancing", "dispensing", "swipe_ready", "swiping", "done", "servicing", "fault"]
CYCLE = ["identifying", "advancing", "dispensing", "swipe_ready", "swiping"]

TRANSITIONS: list[dict[str, Any]] = [
    {"trigger": "present", "source": "idle", "dest": "identifying"},
    {"trigger": "await_removal", "source": "idle", "dest": "done"},
    {"trigger": "accept", "source": "identifying", "dest": "advancing"},
    {"trigger": "reject", "source": "identifying", "dest": "done"},
    {"trigger": "advanced", "source": "advancing", "dest": "dispensing", "conditions": "wet_clean"},
    {"trigger": "advanced", "source": "advancing", "dest": "swipe_ready"},
    {"trigger": "dropped", "source": "dispensing", "dest": "swipe_ready"},
    {"trigger": "swipe_started", "source": "swipe_ready", "dest": "swiping"},
    {"trigger": "finish", "source": CYCLE, "dest": "done"},
    {"trigger": "taken_away", "source": "done", "dest": "idle"},
    {"trigger": "fault", "source": "*", "dest": "fault"},
    {
        "trigger": "clear_fault",
        "source": "fault",
        "dest": "idle",
        "conditions": "fault_cause_gone",
        "before": "_record_fault_clear",
    },
    {"trigger": "service", "source": "idle", "dest": "servicing"},
    {"trigger": "serviced", "source": "servicing", "dest": "idle"},
    {"trigger": "reset", "source": [s for s in STATES if s != "fault"], "dest": "idle"},
]

PATTERN_OF_STATE = {
    "idle": Pattern.READY,
    "identifying": Pattern.BUSY,
    "advancing": Pattern.BUSY,
    "dispensing": Pattern.BUSY,
    "swipe_ready": Pattern.SWIPE_NOW,
    "swiping": Pattern.SWIPE_NOW,
    "servicing": Pattern.SERVICE,
    "fault": Pattern.FAULT,
}
PATTERN_OF_OUTCOME = {
    Outcome.CLEANED: Pattern.CLEANED,
    Outcome.FAILED: Pattern.FAILED,
    Outcome.REJECTED: Pattern.REJECTED,
    Outcome.INTERRUPTED: Pattern.FAILED,
}
RESULT_HOLD_S = 1.0  # shortest time a result is shown, even if the connector is already gone


if TYPE_CHECKING:

    class _Machine:
        """The model's side of the machine: its state and the triggers transitions binds."""

        state: str

        def present(self) -> bool: ...
        def await_removal(self) -> bool: ...
        def accept(self) -> bool: ...
        def reject(self) -> bool: ...
        def advanced(self) -> bool: ...
        def dropped(self) -> bool: ...
        def swipe_started(self) -> bool: ...
        def finish(self) -> bool: ...
        def taken_away(self) -> bool: ...
        def fault(self) -> bool: ...
        def clear_fault(self) -> bool: ...
        def service(self) -> bool: ...
        def serviced(self) -> bool: ...
        def reset(self) -> bool: ...
else:
    _Machine = object


class Controller(_Machine):
    """Owns the station's state machine. `start`, `post_edge` and `startup_fault` are safe from
    any thread (they post to the loop); everything else runs on the loop thread."""

    def __init__(
        self,
        config: Config,
        loop: EventLoop,
        hardware: Hardware,
        store: Store,
        *,
        wall_clock: Callable[[], float] = time.time,
        file_config: Config,
    ) -> None:
        self.config = config
        self.loop = loop
        self.hardware = hardware
        self.store = store
        self.wall = wall_clock
        self.events = EventBus()
        self._timer: Timer | None = None
        self._clearing_by: str | None = None  # who is acknowledging the fault (see acknowledge_fault)
        self._done_at = 0.0
        publish, now_config = self.events.publish, lambda: self.config  # collaborators read the config live
        self.consumables = Consumables(store, hardware.sensors, now_config, publish, wall=wall_clock, loop=loop)
        self.settings = Settings(store, file_config, now_config, self._apply_config, wall=wall_clock)
        self.faults = FaultBook(store, hardware.sensors, self.settings.saved_problem, publish, wall=wall_clock)
        self.mode = ModeSelector(hardware.sensors, store, publish, wall=wall_clock)
        self.trace = Traceability(
            store, hardware, self.consumables, loop, now_config, publish, wall=wall_clock, busy=self.busy
        )
        self.cycle = CleanCycle(store, hardware, self.consumables, loop, now_config, publish, self.trace)
        self.machine = Machine(
            model=self,
            # `_entered` runs before each state's own entry action: the lights and listeners
            # react at once, before any durable write the entry action makes.
            states=[{"name": s, "on_enter": ["_entered"]} for s in STATES],
            transitions=TRANSITIONS,
            initial="idle",
            auto_transitions=False,
            # Not queued: a trigger runs at once and returns False when its conditions refuse
            # (acknowledge_fault relies on that), and handlers run to completion on the loop.
            queued=False,
        )
        host = ServiceHost(lambda: self.state, self.service, self.serviced, self._fault)
        self.jobs = ServiceJobs(host, hardware, store, self.consumables, loop, now_config, publish, wall=wall_clock)
        self.button = ButtonGestures(loop, lambda: self.config.panel.long_press_s, self._short_press, self._long_press)
        loop.on_error(self._on_error)
        hardware.sensors.on_edge(self.post_edge)

    # ------------------------------------------------------------------ public, any thread
    def start(self) -> None:
        """Recover the books and settle into the state the sensors say (posted to the loop)."""
        self.loop.post(self._start)

    def post_edge(self, edge: SensorEdge) -> None:
        self.loop.post(lambda: self._on_edge(edge))

    def startup_fault(self, code: FaultCode, detail: str) -> None:
        """A start-up check failed: stay in fault (console up) until it is fixed and cleared."""
        self.loop.post(lambda: self._fault(code, detail))

    # ------------------------------------------------------------------ helpers
    def _at(self, due: float, fn: Callable[[], None]) -> None:
        """Replace the state's one timer, at an absolute time (a judge sees its own deadline reached)."""
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self.loop.call_at(due, fn)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _read(self, sensor: Sensor) -> bool:
        return self.hardware.sensors.read(sensor)

    @property
    def attempt(self) -> Attempt | None:  # the clean in progress
        return self.cycle.attempt

    # ------------------------------------------------------------------ start, stop, errors
    def _start(self) -> None:
        closed = self.store.close_open_attempts(self.wall())  # audited by the store
        if closed:
            self.events.publish(Recovered(tuple(closed)))
        if self._read(Sensor.CASSETTE):
            self.consumables.current_cassette()  # the first cassette of a type is recorded when first seen
        self._entered()
        self._enter_idle_checks()

    def shutdown(self, reason: str) -> None:
        """The one orderly stop (on the loop thread): safe outputs, a maintenance job or an
        attempt in flight ended (the attempt recorded as interrupted), the stop audited."""
        self.hardware.safe()
        self.jobs.abort("station stopped")
        a = self.attempt
        if a is not None and a.outcome is None:
            self.cycle.conclude(Outcome.INTERRUPTED, Reason.INTERRUPTED, guarded=True, detail=reason)
        try:
            self.store.audit("station", "shutdown", self.wall(), detail=reason)
        except Exception:
            log.exception("could not record the shutdown")  # pragma: no mutate
        self.events.publish(StationStopped(reason))

    def _on_error(self, exc: BaseException) -> None:
        """Any unexpected exception in a handler: safe state, fault, keep serving."""
        try:
            self._fault(*fault_of(exc))
        except Exception:
            log.exception("could not enter the fault state cleanly; forcing safe outputs")  # pragma: no mutate
            self.hardware.safe()

    def _fault(self, code: FaultCode, detail: str) -> None:
        if self.state != "fault":
            self.faults.set(code, detail)
            self.fault()
        else:
            self.hardware.safe()  # already safe: keep the most serious cause, so clearing checks it
            self.faults.escalate(code, detail)

    # ------------------------------------------------------------------ conditions
    def wet_clean(self) -> bool:
        return self.attempt is not None and self.attempt.mode is Mode.WET

    def acknowledge_fault(self, source: str) -> bool:
        """A person clears the fault (panel or console): only once its cause is gone (the
        machine's guard), and audited before the station leaves the fault state, so a clear
        that cannot be recorded does not happen."""
        self._clearing_by = source
        try:
            return self.clear_fault()
        finally:
            self._clearing_by = None

    def _record_fault_clear(self) -> None:
        if self._clearing_by is not None:
            self.faults.record_clear(self._clearing_by)
        self.cycle.record_unrecorded()  # attempts whose end the disk refused in fault (rule 8)

    def fault_cause_gone(self) -> bool:
        return self.faults.cause_gone()

    # ------------------------------------------------------------------ the cycle, state by state
    def _entered(self) -> None:
        pattern = self.cycle.inspection.ready_look() if self.state == "idle" else PATTERN_OF_STATE.get(self.state)
        if pattern is not None and self.state != "fault":  # fault: outputs safe first (on_enter_fault)
            self.hardware.panel.show(pattern)
        self.events.publish(StateChanged(self.state))

    def on_enter_idle(self) -> None:
        self._cancel_timer()
        self.cycle.attempt = None
        self.loop.post(self._enter_idle_checks)  # after this transition completes

    def _enter_idle_checks(self) -> None:
        if self.state != "idle":
            return
        if not self._read(Sensor.CASSETTE):
            self._fault(FaultCode.NO_CASSETTE, "the cradle is empty")
        elif self._read(Sensor.CONNECTOR):
            self.await_removal()
        elif self._read(Sensor.PIN_LEFT) or self._read(Sensor.PIN_RIGHT):
            # Ready with the guide empty, yet a pin is sensed: a sensor that stuck while a
            # connector was seated, during a fault or a jog gives no edge now, so look here,
            # once a connector slowly withdrawn (pins last) would long be out.
            self._at(self.loop.now() + self.config.guide_pins.timeout_s, self._check_idle_sensors)

    def _check_idle_sensors(self) -> None:
        if self.state == "idle":  # (a connector arriving meanwhile has made it identifying)
            problems = sensor_problems(self.hardware.sensors)
            if problems:
                self._fault(FaultCode.SENSOR, problems[0])

    def on_enter_identifying(self) -> None:
        self._check_pins(self.cycle.begin(self.mode.current()))

    def _check_pins(self, a: Attempt) -> None:
        if self.state != "identifying" or self.attempt is not a:
            return
        reading = self.cycle.read_pins(a)
        if not reading.done:
            self._at(reading.check_at if reading.check_at is not None else self.loop.now(), lambda: self._check_pins(a))
            return
        self._cancel_timer()
        refusal = self.cycle.refusal(a)
        if refusal is not None:
            self.cycle.conclude(Outcome.REJECTED, refusal)
            self.reject()
        else:
            self.accept()

    def on_enter_advancing(self) -> None:
        assert self.attempt is not None
        self.cycle.advance(self.attempt, self._on_motion)

    def _on_motion(self, a: Attempt, result: MotionResult) -> None:
        if self.state != "advancing" or self.attempt is not a:
            return  # a move we aborted on the way into fault or reset
        problem = self.cycle.moved(a, result)
        if problem is not None:
            reason, code, detail = problem
            self.cycle.conclude(Outcome.FAILED, reason)
            self._fault(code, detail)
        elif a.abandon is not None:
            self.cycle.conclude(Outcome.FAILED, a.abandon)
            self.finish()
        else:
            self.consumables.check_low()
            if a.mode is Mode.WET and self.mode.current() is Mode.DRY:
                self.cycle.keep_dry(a)  # (switched to WET meanwhile, the clean stays dry)
            self.advanced()

    def on_enter_dispensing(self) -> None:
        assert self.attempt is not None
        self.cycle.place_drop(self.attempt)
        if self.hardware.sensors.fitted(Sensor.DROP):
            self._at(self.loop.now() + self.config.dispenser.drop_timeout_s, self._no_drop)
        else:
            self.loop.post(self._drop_unsensed)  # no drop sensor: the pulse is the drop

    def _drop_unsensed(self) -> None:
        if self.state == "dispensing":
            self.dropped()

    def _no_drop(self) -> None:
        if self.state == "dispensing":
            self.cycle.conclude(Outcome.FAILED, Reason.NO_DROP)
            self._fault(FaultCode.NO_DROP, "nothing reached the drop sensor after the pump's pulse")

    def on_exit_dispensing(self) -> None:
        self._cancel_timer()
        self.hardware.dispenser.off()

    def on_enter_swipe_ready(self) -> None:
        assert self.attempt is not None
        self.cycle.open_swipe(self.attempt)
        self._judge()

    def _judge(self, connector_gone: bool = False) -> None:
        a = self.attempt
        if self.state not in ("swipe_ready", "swiping") or a is None:
            return
        verdict = self.cycle.judge(a, connector_gone=connector_gone)
        if not verdict.done:
            self._at(verdict.check_at if verdict.check_at is not None else self.loop.now(), self._judge)
            return
        self._cancel_timer()
        self.cycle.conclude(
            Outcome.CLEANED if verdict.ok else Outcome.FAILED, None if verdict.ok else verdict.reason or Reason.FAULT
        )
        self.finish()

    def on_enter_done(self) -> None:
        self._done_at = self.loop.now()
        a = self.attempt
        self.hardware.panel.show(PATTERN_OF_OUTCOME[a.outcome] if a is not None and a.outcome else Pattern.REMOVE)
        self._at(self._done_at + RESULT_HOLD_S, self._maybe_taken_away)

    def _maybe_taken_away(self) -> None:
        held = self.loop.now() - self._done_at >= RESULT_HOLD_S - 1e-9
        if self.state == "done" and not self._read(Sensor.CONNECTOR) and held:
            self.taken_away()

    def on_enter_fault(self) -> None:
        self._cancel_timer()
        self.hardware.safe()
        self.hardware.panel.show(Pattern.FAULT)
        code = self.faults.current
        self.jobs.abort(f"fault {code.value}")  # a maintenance action cut short by the fault
        unrecorded = self.cycle.end_in_fault(code)
        if unrecorded is not None:  # the disk failed too: the more serious fault, once entry is done
            self.loop.post(lambda: self._fault(FaultCode.STORAGE, f"could not record the end of attempt {unrecorded}"))
        self.faults.announce()

    def on_exit_fault(self) -> None:
        self.hardware.panel.show(Pattern.OFF)
        self.events.publish(FaultCleared(self.faults.cleared()))

    # ------------------------------------------------------------------ inputs
    def _on_edge(self, edge: SensorEdge) -> None:
        self.events.publish(SensorChanged(edge.sensor, edge.active, edge.t))
        handler = _EDGE_HANDLERS.get(edge.sensor)
        if handler is not None:
            handler(self, edge)

    def _edge_connector(self, edge: SensorEdge) -> None:
        state = self.state
        if edge.active:
            if state == "idle":
                self.present()
            return
        if state == "identifying":
            self.cycle.conclude(Outcome.REJECTED, Reason.REMOVED_EARLY)
            self.reject()
        elif state == "advancing" and self.attempt is not None:
            self.attempt.abandon = Reason.REMOVED_MID_CYCLE
        elif state == "dispensing":
            self.cycle.conclude(Outcome.FAILED, Reason.REMOVED_MID_CYCLE)
            self.finish()
        elif state in ("swipe_ready", "swiping"):
            self._judge(connector_gone=True)
        elif state == "done":
            self._maybe_taken_away()

    def _edge_pin(self, edge: SensorEdge) -> None:
        a = self.attempt
        if self.state == "idle" and edge.active:
            # A pin sensed with the guide empty: a connector may be seating (its presence edge
            # follows) or be slowly withdrawn, or the sensor is stuck. Look again once the
            # longest a reading may take is over.
            self._at(self.loop.now() + self.config.guide_pins.timeout_s, self._check_idle_sensors)
        if self.state == "identifying" and a is not None:
            self.cycle.pin_edge(a, edge.t)
            self._check_pins(a)

    def _edge_gate(self, edge: SensorEdge) -> None:
        a = self.attempt
        if a is not None and self.cycle.swiped_early(a, edge):
            self.finish()  # pulled before swipe-now: rejected or failed too early (CleanCycle.swiped_early)
        elif self.state in ("swipe_ready", "swiping") and a is not None:
            self.cycle.gate_edge(a, edge.sensor, edge.active, edge.t)
            if self.state == "swipe_ready" and edge.active:
                self.swipe_started()
            self._judge()

    def _edge_drop(self, edge: SensorEdge) -> None:
        if edge.active and self.state == "dispensing":
            self.dropped()
        elif edge.active and self.state == "servicing":
            self.jobs.drop_seen()

    def _edge_cassette(self, edge: SensorEdge) -> None:
        if not edge.active:
            if self.state != "fault":
                in_cycle = self.state in CYCLE
                code = FaultCode.CASSETTE_PULLED if in_cycle else FaultCode.NO_CASSETTE
                self._fault(code, "cassette removed during a clean" if in_cycle else "the cradle is empty")
            self.consumables.cassette_taken_out()
            return
        if self.state == "fault" and self.faults.code is FaultCode.NO_CASSETTE:
            self.clear_fault()  # not a malfunction: the cassette was simply missing
        self.consumables.cassette_inserted()

    def _short_press(self) -> None:
        state = self.state
        if state == "fault":
            self.acknowledge_fault("panel")
        elif state == "identifying":
            self.cycle.conclude(Outcome.REJECTED, Reason.CANCELLED_EARLY)
            self.reject()
        elif state == "advancing" and self.attempt is not None:
            self.attempt.abandon = Reason.CANCELLED
        elif state in ("dispensing", "swipe_ready", "swiping"):
            self.cycle.conclude(Outcome.FAILED, Reason.CANCELLED)
            self.finish()

    def _long_press(self) -> None:
        """Long press while ready with a cassette fitted: operator functions (a new cassette)."""
        if self.state == "idle" and self._read(Sensor.CASSETTE):
            self.consumables.declare_new_by_panel()

    # ------------------------------------------------------------------ maintenance requests
    def request_fault_clear(self, source: str) -> ServiceResult:
        if self.state != "fault":
            return ServiceResult(False, error="no fault to clear")
        code, detail = self.faults.current.value, self.faults.detail
        if not self.acknowledge_fault(source):
            return ServiceResult(False, error=f"fault {code} still present: {detail}")
        return ServiceResult(True, [f"fault {code} cleared"])

    def request_reset(self, source: str) -> ServiceResult:
        """*RST: abort whatever is running, safely, to ready (a fault is not reset this way). A write
        refused on the way would leave it half-reset: that is the station's fault (rule 7)."""
        if self.state == "fault":
            return ServiceResult(False, error="in fault: clear the fault (fault clear) instead")
        try:
            self.store.audit("maintenance", "reset", self.wall(), detail={"state": self.state}, source=source)
            self.hardware.wheel.stop()
            self.hardware.dispenser.off()
            if self.attempt is not None and self.attempt.outcome is None:
                self.cycle.conclude(Outcome.INTERRUPTED, Reason.INTERRUPTED)
            self.jobs.abort("reset")
            if self.state != "idle":
                self.reset()
        except Exception as exc:
            self._on_error(exc)
            return ServiceResult(False, error=f"{type(exc).__name__}: {exc}; station is now in fault")
        return ServiceResult(True, ["reset to ready"])

    def busy(self) -> str | None:
        """The state, when it forbids changing settings that apply at once (None when ready or in fault)."""
        return None if self.state in ("idle", "fault") else self.state

    def _apply_config(self, new: Config) -> None:
        self.config = new
        self.consumables.capacity_changed(new.dispenser.reservoir_drops)


_EDGE_HANDLERS: dict[Sensor, Callable[[Controller, SensorEdge], None]] = {
    Sensor.CONNECTOR: Controller._edge_connector,
    Sensor.PIN_LEFT: Controller._edge_pin,
    Sensor.PIN_RIGHT: Controller._edge_pin,
    Sensor.GATE_A: Controller._edge_gate,
    Sensor.GATE_B: Controller._edge_gate,
    Sensor.DROP: Controller._edge_drop,
    Sensor.CASSETTE: Controller._edge_cassette,
    Sensor.BUTTON: lambda c, edge: c.button.edge(edge.active),
    Sensor.INSPECT_PASS: lambda c, edge: c.cycle.inspection.line(True, edge.active, edge.t),
    Sensor.INSPECT_FAIL: lambda c, edge: c.cycle.inspection.line(False, edge.active, edge.t),
    Sensor.FLUID_LOW: lambda c, edge: c.consumables.float_switch(edge.active),
}
