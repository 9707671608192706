"""The station controller: one state machine, owned by the loop thread, fed by events.

Sensor callbacks, the motion worker, timers and the console only *post* to the loop; every
handler here runs on the loop thread, one at a time, to completion. The procedure is the
manufacturer's: present -> read guide pins -> interlock -> advance N positions (each confirmed
by the index sensor, reserved durably before moving) -> (wet: one drop) -> swipe now ->
judge the swipe -> cleaned / failed -> connector taken away -> ready.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from transitions import Machine

from .config import OVERRIDES_SETTING, Config, ConfigError, needs_restart, with_overrides
from .domain import CASSETTE_FOR, CassetteType, FaultCode, Gender, Mode, Outcome, Reason
from .guide_pins import PinSample, read_guide_pins
from .loop import EventLoop, Timer
from .maintenance import Maintenance, ServiceResult
from .ports import Bench, MotionResult, MotionStatus, Pattern, Sensor, SensorEdge
from .store import CassetteState, Store, StoreError
from .swipe import GateEdge, SwipeVerdict, judge_swipe

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
    {"trigger": "finish", "source": ["advancing", "dispensing", "swipe_ready", "swiping"], "dest": "done"},
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
FAULT_SEVERITY = [
    FaultCode.NO_CASSETTE,
    FaultCode.CASSETTE_PULLED,
    FaultCode.NO_DROP,
    FaultCode.JAM,
    FaultCode.SENSOR,
    FaultCode.STARTUP,
    FaultCode.INTERNAL,
    FaultCode.STORAGE,
]  # least to most serious
NEW_CASSETTE_WINDOW_S = 120.0  # a long press declares a new cassette only this soon after fitting


@dataclass
class Attempt:
    """The clean in progress (its durable twin is a row in the store's attempts table)."""

    id: int
    started_at: float
    mode: Mode
    gender: Gender | None = None
    pin_samples: list[PinSample] = field(default_factory=list)
    positions_reserved: int = 0
    positions_confirmed: int = 0
    first_position: int | None = None
    drops: int = 0
    drop_at: float | None = None
    swipe_opened_at: float | None = None
    swipe_deadline: float | None = None
    gate_edges: list[GateEdge] = field(default_factory=list)
    gate_blocked: bool = False  # a gate read blocked when swipe-now was given
    verdict: SwipeVerdict | None = None
    abandon: Reason | None = None  # connector removed or cancel pressed while the wheel moved
    outcome: Outcome | None = None
    reason: Reason | None = None


Listener = Callable[[str, dict[str, Any]], None]


class Controller(Maintenance):
    """Owns the station's state machine. Public methods are safe to call from any thread:
    they post to the loop. Methods starting with `_` run on the loop thread only."""

    def __init__(
        self,
        config: Config,
        loop: EventLoop,
        bench: Bench,
        store: Store,
        *,
        wall_clock: Callable[[], float] = time.time,
        file_config: Config,
    ) -> None:
        self.config = config
        # the configuration file's values, under the console's saved changes (`config reset`)
        self.file_config = file_config
        self.loop = loop
        self.bench = bench
        self.store = store
        self.wall = wall_clock
        self.attempt: Attempt | None = None
        self.fault_code: FaultCode | None = None
        self.fault_detail = ""
        self.warnings: set[str] = set()
        self._listeners: list[Listener] = []
        self._timer: Timer | None = None
        self._button_timer: Timer | None = None
        self._long_pressed = False
        self._clearing_by: str | None = None  # who is acknowledging the fault (see acknowledge_fault)
        self._done_at = 0.0
        self._fitted_at: float | None = None  # loop time the cassette was last fitted
        self.mode_override: Mode | None = None
        self._service = None
        self._prime_seen = False
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
        loop._on_error = self._on_error
        bench.sensors.on_edge(self.post_edge)

    # ------------------------------------------------------------------ public, any thread
    def start(self) -> None:
        """Recover the books and settle into the state the sensors say (posted to the loop)."""
        self.loop.post(self._start)

    def post_edge(self, edge: SensorEdge) -> None:
        self.loop.post(lambda: self._on_edge(edge))

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def unsubscribe(self, listener: Listener) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    # ------------------------------------------------------------------ helpers
    def _emit(self, kind: str, **data: Any) -> None:
        for listener in self._listeners:
            try:
                listener(kind, data)
            except Exception:
                log.exception("listener failed on %s", kind)  # pragma: no mutate

    def _after(self, delay: float, fn: Callable[[], None]) -> None:
        self._at(self.loop.now() + delay, fn)

    def _at(self, due: float, fn: Callable[[], None]) -> None:
        """Replace the single state timer (each state needs at most one). Absolute times, so a
        judge asked at exactly its own deadline sees that deadline reached."""
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self.loop.call_at(due, fn)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _defer(self, fn: Callable[[], None]) -> None:
        """Run after the current transition completes (run-to-completion)."""
        self.loop.post(fn)

    def _read(self, sensor: Sensor) -> bool:
        return self.bench.sensors.read(sensor)

    def cassette_type(self) -> CassetteType:
        return CassetteType.MALE_MT if self._read(Sensor.CASSETTE_MALE) else CassetteType.STANDARD

    def mode_switch(self) -> Mode:
        """The cleaning mode: the console's override if one is set, else the panel switch."""
        if self.mode_override is not None:
            return self.mode_override
        return Mode.WET if self._read(Sensor.MODE_WET) else Mode.DRY

    def fluid_low(self) -> bool:
        used, capacity = self.store.fluid()
        return self._read(Sensor.FLUID_LOW) or used >= capacity

    def current_cassette(self) -> CassetteState:
        """The fitted cassette's books. The first cassette ever fitted of a type is taken as new;
        after that a cassette of the same type is the same one until someone declares it new
        (a re-inserted cassette keeps its count)."""
        ctype = self.cassette_type()
        cassette = self.store.cassette(ctype)
        if cassette is None:
            cassette = self.store.new_cassette(
                ctype, self.config.cassette.capacity_positions, self.wall(), note="first fit: assumed new"
            )
        return cassette

    # ------------------------------------------------------------------ start and errors
    def _start(self) -> None:
        closed = self.store.close_open_attempts(self.wall())  # audited by the store
        if closed:
            self._emit("recovered", interrupted=closed)
        if self._read(Sensor.CASSETTE):
            self.current_cassette()  # the first cassette of a type is recorded when first seen
        self._entered()
        self._enter_idle_checks()

    def startup_fault(self, code: FaultCode, detail: str) -> None:
        """A start-up check failed: stay in fault (console up) until it is fixed and cleared."""
        self.loop.post(lambda: self._fault(code, detail))

    def shutdown(self, reason: str) -> None:
        """Orderly stop (on the loop thread): safe outputs, an attempt in flight recorded as
        interrupted, the stop audited."""
        self.bench.safe()
        a = self.attempt
        if a is not None and a.outcome is None:
            self._conclude(Outcome.INTERRUPTED, Reason.INTERRUPTED, guarded=True, detail=reason)
        try:
            self.store.audit("station", "shutdown", self.wall(), detail=reason)
        except Exception:
            log.exception("could not record the shutdown")  # pragma: no mutate

    def _on_error(self, exc: BaseException) -> None:
        """Any unexpected exception in a handler: safe state, fault, keep serving."""
        code = FaultCode.STORAGE if isinstance(exc, StoreError) else FaultCode.INTERNAL
        try:
            self._fault(code, f"{type(exc).__name__}: {exc}")
        except Exception:
            log.exception("could not enter the fault state cleanly; forcing safe outputs")  # pragma: no mutate
            self.bench.safe()

    def _fault(self, code: FaultCode, detail: str) -> None:
        if self.state == "fault":  # already safe: keep the most serious cause, so clearing checks it
            self.bench.safe()
            current = self.fault_code or FaultCode.INTERNAL
            if FAULT_SEVERITY.index(code) > FAULT_SEVERITY.index(current):
                self.fault_code, self.fault_detail = code, detail
                self._emit("fault", code=code.value, detail=detail)
                try:
                    self.store.audit("fault", code.value, self.wall(), detail=detail)
                except Exception:
                    log.exception("could not record the fault")  # pragma: no mutate
            else:
                log.warning("further fault while in fault: %s %s", code.value, detail)  # pragma: no mutate
            return
        self.fault_code = code
        self.fault_detail = detail
        self.fault()

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
            code = self.fault_code or FaultCode.INTERNAL
            self.store.audit(
                "maintenance", "fault_clear", self.wall(), detail={"fault": code.value}, source=self._clearing_by
            )

    def fault_cause_gone(self) -> bool:
        if self.fault_code in (FaultCode.NO_CASSETTE, FaultCode.CASSETTE_PULLED):
            return self._read(Sensor.CASSETTE)
        if self.fault_code is FaultCode.STARTUP:
            return not self.startup_problems() and self.saved_config_problem() is None
        if self.fault_code is FaultCode.SENSOR:
            return not self.startup_problems()
        if self.fault_code is FaultCode.STORAGE:
            if not self.store.durable:
                return False  # running on a stand-in store: only a restart can fix this
            try:  # the disk is back when a durable write goes through again
                self.store.audit("maintenance", "storage_check", self.wall())
            except StoreError:
                return False
        return True

    # ------------------------------------------------------------------ state entry/exit
    def _entered(self) -> None:
        pattern = PATTERN_OF_STATE.get(self.state)
        if pattern is not None and self.state != "fault":  # fault: outputs safe first (on_enter_fault)
            self.bench.panel.show(pattern)
        self._emit("state", state=self.state)

    def on_enter_idle(self) -> None:
        self._cancel_timer()
        self.attempt = None
        self._defer(self._enter_idle_checks)

    def _enter_idle_checks(self) -> None:
        if self.state != "idle":
            return
        if not self._read(Sensor.CASSETTE):
            self._fault(FaultCode.NO_CASSETTE, "no cassette fitted")
        elif self._read(Sensor.CONNECTOR):
            self.await_removal()
        elif self._read(Sensor.PIN_LEFT) or self._read(Sensor.PIN_RIGHT):
            # Ready with the guide empty, yet a pin is sensed: a sensor that stuck while a
            # connector was seated, during a fault or a jog gives no edge now, so look here,
            # once a connector slowly withdrawn (pins last) would long be out.
            self._after(self.config.guide_pins.timeout_s, self._check_idle_sensors)

    def on_enter_identifying(self) -> None:
        now = self.loop.now()
        mode = self.mode_switch()
        self.attempt = Attempt(self.store.begin_attempt(self.wall(), mode), now, mode)
        self.attempt.pin_samples.append(PinSample(now, self._read(Sensor.PIN_LEFT), self._read(Sensor.PIN_RIGHT)))
        self._emit("attempt", id=self.attempt.id, mode=mode.value)
        self._check_pins()

    def _check_pins(self) -> None:
        a = self.attempt
        if self.state != "identifying" or a is None:
            return
        g = self.config.guide_pins
        reading = read_guide_pins(
            a.pin_samples, present_at=a.started_at, now=self.loop.now(), settle_s=g.settle_s, timeout_s=g.timeout_s
        )
        if not reading.done:
            self._at(reading.check_at, self._check_pins)  # type: ignore[arg-type]
            return
        self._cancel_timer()
        a.gender = reading.gender
        refusal = self._refusal(reading.gender, a.mode)
        if refusal is not None:
            self._conclude(Outcome.REJECTED, refusal)
            self.reject()
        else:
            self.accept()

    def _refusal(self, gender: Gender | None, mode: Mode) -> Reason | None:
        """Everything that must refuse a clean before anything is consumed (rules 2, 3, 4, 6)."""
        if gender is None:
            return Reason.UNSETTLED_PINS
        if gender is Gender.DAMAGED:
            return Reason.DAMAGED_PINS
        if CASSETTE_FOR[gender] is not self.cassette_type():
            return Reason.WRONG_CASSETTE_MALE if gender is Gender.MALE else Reason.WRONG_CASSETTE_FEMALE
        if self._read(Sensor.GATE_A) or self._read(Sensor.GATE_B):
            return Reason.GATE_BLOCKED_EARLY  # the swipe could never be judged: use no ribbon on it
        if mode is Mode.WET and self.fluid_low():
            return Reason.FLUID_LOW
        if self.current_cassette().remaining < self.config.wheel.positions_per_clean:
            return Reason.CASSETTE_EMPTY
        return None

    def on_enter_advancing(self) -> None:
        a = self.attempt
        assert a is not None
        cassette = self.current_cassette()
        n = self.config.wheel.positions_per_clean
        # Durable before the wheel moves: a power cut can only over-count used ribbon.
        a.first_position = self.store.reserve_positions(
            cassette, n, self.wall(), attempt_id=a.id, gender=a.gender.value if a.gender else None
        )
        a.positions_reserved = n
        result_to_loop = lambda result: self.loop.post(lambda: self._on_motion(result))  # noqa: E731
        self.bench.wheel.advance(n, result_to_loop)

    def _on_motion(self, result: MotionResult) -> None:
        if self.state == "servicing":
            self._service_motion_done(result)
            return
        a = self.attempt
        if self.state != "advancing" or a is None:
            return  # a move we aborted on the way into fault or reset
        a.positions_confirmed = result.positions
        self._emit("advanced", positions=result.positions, steps=result.steps, seconds=round(result.duration_s, 4))
        if result.status in (MotionStatus.JAM, MotionStatus.EARLY_INDEX):
            jam = result.status is MotionStatus.JAM
            self._conclude(Outcome.FAILED, Reason.JAM if jam else Reason.INDEX_FAULT)
            self._fault(
                FaultCode.JAM,
                f"{'jam' if jam else 'index pulse far too soon'}: confirmed "
                f"{result.positions} of {a.positions_reserved} positions after {result.steps} steps",
            )
        elif result.status is not MotionStatus.DONE or result.positions != a.positions_reserved:
            self._conclude(Outcome.FAILED, Reason.FAULT)
            self._fault(FaultCode.INTERNAL, f"wheel move ended {result.status.value} at {result.positions} positions")
        elif a.abandon is not None:
            self._conclude(Outcome.FAILED, a.abandon)
            self.finish()
        else:
            self._cassette_warning()
            if a.mode is Mode.WET and self.mode_switch() is Mode.DRY:
                # Switched to DRY since the connector was seated: never any fluid in dry mode
                # (rule 4). The fresh section is dry, so the clean goes on as a dry one. (The
                # other way round the clean stays dry: the mode counts from the next clean.)
                a.mode = Mode.DRY
                self.store.attempt_mode(a.id, a.mode)  # on record at once: a power cut keeps it
                self._emit("clean_mode", id=a.id, mode=a.mode.value, why="switched to dry before the drop")
            self.advanced()

    def on_enter_dispensing(self) -> None:
        a = self.attempt
        assert a is not None
        self.store.record_drop(self.wall(), attempt_id=a.id)  # durable before the pulse
        a.drops += 1
        a.drop_at = self.loop.now()
        self.bench.dispenser.pulse()
        if self.bench.sensors.fitted(Sensor.DROP):
            self._after(self.config.dispenser.drop_timeout_s, self._no_drop)
        else:
            self._defer(lambda: self.dropped() if self.state == "dispensing" else None)

    def _no_drop(self) -> None:
        if self.state == "dispensing":
            self._conclude(Outcome.FAILED, Reason.NO_DROP)
            self._fault(FaultCode.NO_DROP, "the drop sensor saw no drop")

    def on_exit_dispensing(self) -> None:
        self._cancel_timer()
        self.bench.dispenser.off()

    def on_enter_swipe_ready(self) -> None:
        a = self.attempt
        assert a is not None
        now = self.loop.now()
        a.swipe_opened_at = now
        s = self.config.swipe
        # wet (a drop was placed): the wet window from the drop; dry: the swipe timeout from now
        a.swipe_deadline = (a.drop_at + s.wet_window_s) if a.drop_at is not None else now + s.timeout_s
        a.gate_blocked = self._read(Sensor.GATE_A) or self._read(Sensor.GATE_B)
        self._emit("swipe_now", id=a.id, deadline_s=round(a.swipe_deadline - now, 3))
        self._judge()

    def _judge(self, connector_gone: bool = False) -> None:
        a = self.attempt
        if self.state not in ("swipe_ready", "swiping") or a is None:
            return
        s = self.config.swipe
        verdict = judge_swipe(
            a.gate_edges,
            start_deadline=a.swipe_deadline,  # type: ignore[arg-type]
            now=self.loop.now(),
            min_pass_s=s.min_pass_s,
            max_pass_s=s.max_pass_s,
            glitch_s=s.glitch_s,
            settle_s=s.settle_s,
            gate_blocked=a.gate_blocked,
            connector_gone=connector_gone,
        )
        if not verdict.done:
            self._at(verdict.check_at, self._judge)  # type: ignore[arg-type]
            return
        self._cancel_timer()
        a.verdict = verdict
        if verdict.ok:
            self._conclude(Outcome.CLEANED, None)
        else:
            self._conclude(Outcome.FAILED, verdict.reason or Reason.FAULT)
        self.finish()

    def on_enter_done(self) -> None:
        self._done_at = self.loop.now()
        a = self.attempt
        self.bench.panel.show(PATTERN_OF_OUTCOME[a.outcome] if a is not None and a.outcome else Pattern.REMOVE)
        self._after(RESULT_HOLD_S, self._maybe_taken_away)

    def _maybe_taken_away(self) -> None:
        if (
            self.state == "done"
            and not self._read(Sensor.CONNECTOR)
            and self.loop.now() - self._done_at >= RESULT_HOLD_S - 1e-9
        ):
            self.taken_away()

    def on_enter_fault(self) -> None:
        self._cancel_timer()
        self.bench.safe()
        self.bench.panel.show(Pattern.FAULT)
        if self._service is not None:  # a maintenance action cut short by the fault
            job, self._service = self._service, None
            job.done(ServiceResult(False, job.lines, f"fault {(self.fault_code or FaultCode.INTERNAL).value}"))
        a = self.attempt
        if a is not None and a.outcome is None:
            consumed = a.positions_reserved > 0
            reason = Reason.CASSETTE_PULLED if self.fault_code is FaultCode.CASSETTE_PULLED else Reason.FAULT
            if not self._conclude(Outcome.FAILED if consumed else Outcome.REJECTED, reason, guarded=True):
                # the disk failed too: that is the more serious fault (kept once entry is done)
                self._defer(lambda: self._fault(FaultCode.STORAGE, f"could not record the end of attempt {a.id}"))
        self.attempt = None
        try:
            self.store.audit(
                "fault", (self.fault_code or FaultCode.INTERNAL).value, self.wall(), detail=self.fault_detail
            )
        except Exception:
            log.exception("could not record the fault")  # pragma: no mutate
        self._emit("fault", code=(self.fault_code or FaultCode.INTERNAL).value, detail=self.fault_detail)

    def on_exit_fault(self) -> None:
        self.bench.panel.show(Pattern.OFF)
        self._emit("fault_cleared", code=(self.fault_code or FaultCode.INTERNAL).value)
        self.fault_code = None
        self.fault_detail = ""

    # ------------------------------------------------------------------ results
    def _conclude(self, outcome: Outcome, reason: Reason | None, guarded: bool = False, detail: str = "") -> bool:
        """Record and announce the attempt's one outcome. `guarded`: a failed write is logged
        instead of raised (on the way into fault or out of service); then False."""
        a = self.attempt
        if a is None or a.outcome is not None:
            return True
        a.outcome, a.reason = outcome, reason
        v = a.verdict
        swipe_start_s = pass_s = None
        if v is not None and v.started_at is not None:
            # wet: seconds from the drop (the wet window); dry: from the swipe-now signal
            origin = a.drop_at if a.drop_at is not None else a.swipe_opened_at
            swipe_start_s = round(v.started_at - origin, 4)  # type: ignore[operator]
        if v is not None and v.pass_s is not None:
            pass_s = round(v.pass_s, 4)
        try:
            text = (reason.value if reason else "") + (f": {detail}" if detail else "")
            self.store.finish_attempt(
                a.id,
                outcome,
                text,
                self.wall(),
                gender=a.gender.value if a.gender else None,
                swipe_start_s=swipe_start_s,
                pass_s=pass_s,
            )
        except Exception:
            if not guarded:
                raise
            log.exception("could not record the end of attempt %s", a.id)  # pragma: no mutate
            recorded = False
        else:
            recorded = True
        self._emit(
            "result",
            id=a.id,
            outcome=outcome.value,
            reason=reason.value if reason else "",
            gender=a.gender.value if a.gender else None,
            mode=a.mode.value,
            drops=a.drops,
            positions=a.positions_confirmed,
            pass_s=a.verdict.pass_s if a.verdict else None,
        )
        return recorded

    def _cassette_warning(self) -> None:
        cassette = self.current_cassette()
        cleans_left = cassette.remaining // self.config.wheel.positions_per_clean
        if cleans_left < self.config.cassette.low_warning_cleans and "cassette_low" not in self.warnings:
            self.warnings.add("cassette_low")
            self._emit("warning", text=f"cassette low: {cleans_left} cleans left")

    # ------------------------------------------------------------------ events
    def _on_edge(self, edge: SensorEdge) -> None:
        self._emit("sensor", sensor=edge.sensor.value, active=edge.active, t=edge.t)
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
            self._conclude(Outcome.REJECTED, Reason.REMOVED_EARLY)
            self.reject()
        elif state == "advancing":
            if self.attempt is not None:
                self.attempt.abandon = Reason.REMOVED_MID_CYCLE
        elif state == "dispensing":
            self._conclude(Outcome.FAILED, Reason.REMOVED_MID_CYCLE)
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
            self._after(self.config.guide_pins.timeout_s, self._check_idle_sensors)
        if self.state == "identifying" and a is not None:
            a.pin_samples.append(PinSample(edge.t, self._read(Sensor.PIN_LEFT), self._read(Sensor.PIN_RIGHT)))
            self._check_pins()

    def _edge_gate(self, edge: SensorEdge) -> None:
        a = self.attempt
        if self.state not in ("swipe_ready", "swiping") or a is None:
            return
        a.gate_edges.append(GateEdge("A" if edge.sensor is Sensor.GATE_A else "B", edge.active, edge.t))
        if self.state == "swipe_ready" and edge.active:
            self.swipe_started()
        self._judge()

    def _check_idle_sensors(self) -> None:
        if self.state == "idle":  # (a connector arriving meanwhile has made it identifying)
            problems = self.startup_problems()
            if problems:
                self._fault(FaultCode.SENSOR, problems[0])

    def _edge_drop(self, edge: SensorEdge) -> None:
        if edge.active and self.state == "dispensing":
            self.dropped()
        elif edge.active and self.state == "servicing":
            self._prime_seen = True

    def _edge_cassette(self, edge: SensorEdge) -> None:
        if not edge.active:
            if self.state != "fault":
                in_cycle = self.state in CYCLE
                self._fault(
                    FaultCode.CASSETTE_PULLED if in_cycle else FaultCode.NO_CASSETTE,
                    "cassette removed during a clean" if in_cycle else "no cassette fitted",
                )
            self._fitted_at = None
            self.store.cassette_removed(self.wall())
            return
        self._fitted_at = self.loop.now()
        self.warnings.discard("cassette_low")
        if self.state == "fault" and self.fault_code is FaultCode.NO_CASSETTE:
            self.clear_fault()  # not a malfunction: the cassette was simply missing
        known = self.store.cassette(self.cassette_type())
        if known is None:
            self.current_cassette()  # first of its type: declared new, with its fit recorded
        else:
            self.store.cassette_fitted(known.id, self.wall())

    def _edge_button(self, edge: SensorEdge) -> None:
        if edge.active:
            self._long_pressed = False
            if self._button_timer is not None:
                self._button_timer.cancel()
            self._button_timer = self.loop.call_later(self.config.panel.long_press_s, self._long_press)
            return
        if self._button_timer is not None:
            self._button_timer.cancel()
            self._button_timer = None
        if not self._long_pressed:
            self._short_press()

    def _short_press(self) -> None:
        state = self.state
        if state == "fault":
            self.acknowledge_fault("panel")
        elif state == "identifying":
            self._conclude(Outcome.REJECTED, Reason.CANCELLED_EARLY)
            self.reject()
        elif state == "advancing" and self.attempt is not None:
            self.attempt.abandon = Reason.CANCELLED
        elif state in ("dispensing", "swipe_ready", "swiping"):
            self._conclude(Outcome.FAILED, Reason.CANCELLED)
            self.finish()

    def _long_press(self) -> None:
        """Long press while ready with the cassette just fitted: it is a new one (fresh count).
        Only just after fitting, so a stray long press can never reset a used cassette's count."""
        self._long_pressed = True
        self._button_timer = None
        if self.state != "idle" or not self._read(Sensor.CASSETTE):
            return
        if self._fitted_at is None or self.loop.now() - self._fitted_at > NEW_CASSETTE_WINDOW_S:
            self._emit(
                "warning",
                text=f"to declare a new cassette, long-press within {NEW_CASSETTE_WINDOW_S:.0f} s of fitting it",
            )
            return
        self.new_cassette(source="panel")

    # ------------------------------------------------------------------ maintenance actions
    def new_cassette(self, source: str) -> None:
        ctype = self.cassette_type()
        cassette = self.store.new_cassette(ctype, self.config.cassette.capacity_positions, self.wall(), source=source)
        self.warnings.discard("cassette_low")
        self._emit("cassette", id=cassette.id, type=ctype.value, capacity=cassette.capacity)

    def refill(self, source: str) -> None:
        """The reservoir was refilled: the fluid count starts again."""
        self.store.refill(self.wall(), source=source)
        self._emit("refill", capacity=self.store.fluid()[1])

    def startup_problems(self) -> list[str]:
        """Plausibility of the sensors with nothing happening (start-up check, and fault clear)."""
        problems = []
        read = self.bench.sensors.read
        for sensor, name in ((Sensor.GATE_A, "swipe gate A"), (Sensor.GATE_B, "swipe gate B")):
            if read(sensor):
                problems.append(f"{name} reads blocked with no swipe: check the gate and its wiring")
        if not read(Sensor.CONNECTOR) and (read(Sensor.PIN_LEFT) or read(Sensor.PIN_RIGHT)):
            problems.append("a guide-pin sensor reads a pin with no connector: check the sensor")
        if self.bench.sensors.fitted(Sensor.DROP) and read(Sensor.DROP):
            problems.append("the drop sensor reads a drop with the pump off: clean or check it")
        return problems

    def sensor_report(self) -> dict[str, bool]:
        """Every input, plus the outputs a technician wants to see (for the console)."""
        report = {s.value: on for s, on in self.bench.sensors.snapshot().items()}
        report["stepper_enabled"] = self.bench.wheel.enabled
        report["pump"] = self.bench.dispenser.pumping
        return report

    def counters(self) -> dict[str, Any]:
        used, capacity = self.store.fluid()
        current = {c.id for t in CassetteType if (c := self.store.cassette(t)) is not None}
        return {
            "attempts": self.store.summary(),
            "cassettes": [
                dict(
                    id=r["id"],
                    type=r["type"],
                    capacity=r["capacity"],
                    used=r["used"],
                    fits=r["fits"],
                    current=r["id"] in current,
                )
                for r in self.store.cassettes()
            ],
            "fluid_used": used,
            "fluid_capacity": capacity,
        }

    def change_config(self, section: str, key: str, value: Any, *, source: str) -> ServiceResult:
        """Save a console change of one value. Values safe to change while running apply now
        (only while ready); the others from the next start. Both the running configuration and
        the one the next start will build are validated first, so a saved change can never
        stop the station from starting."""
        later = needs_restart(section, key)
        if not later and self.state not in ("idle", "fault"):
            return ServiceResult(False, error=f"the station is {self.state}; change settings while it is ready")
        saved = self.saved_config_changes()
        saved.setdefault(section, {})[key] = value
        try:
            with_overrides(self.file_config, saved)
            new = self.config if later else self.config.replace(section, **{key: value})
        except ConfigError as exc:
            return ServiceResult(False, error=f"{exc} (with the other saved changes; config reset one of them first)")
        self.store.set_setting(
            OVERRIDES_SETTING,
            json.dumps(saved, sort_keys=True),
            self.wall(),
            source=source,
            audit_detail={f"{section}.{key}": value},
        )
        if later:
            return ServiceResult(True, [f"{section}.{key} = {value!r} saved; takes effect at the next start"])
        self._apply_config(new)
        return ServiceResult(True, [f"{section}.{key} = {value!r} in effect now"])

    def saved_config_changes(self) -> dict[str, dict[str, Any]]:
        """The console's saved changes, {section: {key: value}}."""
        return json.loads(self.store.setting(OVERRIDES_SETTING) or "{}")

    def saved_config_problem(self) -> str | None:
        """Why the saved console changes cannot be applied to the file's configuration, if so."""
        try:
            with_overrides(self.file_config, self.saved_config_changes())
        except (ConfigError, ValueError) as exc:
            return f"saved console settings are not valid with this configuration file: {exc}; use config reset"
        return None

    def reset_config(self, names: list[str], *, source: str) -> ServiceResult:
        """Drop saved console changes (`section.key` names): the file's values (or the defaults)
        count again: now for values safe to change while running (only while ready), from the
        next start for the others (still pending ones simply never come)."""
        now = [n for n in names if not needs_restart(*n.split(".", 1))]
        if now and self.state not in ("idle", "fault"):
            return ServiceResult(False, error=f"the station is {self.state}; change settings while it is ready")
        saved = self.saved_config_changes()
        for name in names:
            section, _, key = name.partition(".")
            saved.get(section, {}).pop(key, None)
        saved = {section: values for section, values in saved.items() if values}
        live = self.config
        try:
            with_overrides(self.file_config, saved)
            for name in now:
                section, _, key = name.partition(".")
                live = live.replace(section, **{key: _value(self.file_config, name)})
        except ConfigError as exc:
            return ServiceResult(
                False,
                error=f"resetting {', '.join(names)} leaves a configuration that is not "
                f"valid: {exc}; reset the other saved change too",
            )
        self.store.set_setting(
            OVERRIDES_SETTING,
            json.dumps(saved, sort_keys=True),
            self.wall(),
            source=source,
            audit_detail={"reset": names},
        )
        self._apply_config(live)
        return ServiceResult(
            True,
            [
                f"{name} = {_value(self.file_config, name)!r} (configuration file) in effect now"
                if name in now
                else f"{name} = {_value(self.file_config, name)!r} (configuration file) from the next start"
                for name in names
            ],
        )

    def _apply_config(self, new: Config) -> None:
        self.config = new
        self.store.fluid_capacity = new.dispenser.reservoir_drops

    def status(self) -> dict[str, Any]:
        """One consistent snapshot (call on the loop thread)."""
        cassette = self.store.cassette(self.cassette_type()) if self._read(Sensor.CASSETTE) else None
        used, capacity = self.store.fluid()
        return {
            "state": self.state,
            "mode": self.mode_switch().value,
            "cassette": cassette.type.value if cassette else None,
            "ribbon_remaining": cassette.remaining if cassette else None,
            "cleans_remaining": cassette.remaining // self.config.wheel.positions_per_clean if cassette else None,
            "fluid_drops_left": max(0, capacity - used),
            "fluid_low": self._read(Sensor.FLUID_LOW),
            "fault": self.fault_code.value if self.fault_code else None,
        }


_EDGE_HANDLERS: dict[Sensor, Callable[[Controller, SensorEdge], None]] = {
    Sensor.CONNECTOR: Controller._edge_connector,
    Sensor.PIN_LEFT: Controller._edge_pin,
    Sensor.PIN_RIGHT: Controller._edge_pin,
    Sensor.GATE_A: Controller._edge_gate,
    Sensor.GATE_B: Controller._edge_gate,
    Sensor.DROP: Controller._edge_drop,
    Sensor.CASSETTE: Controller._edge_cassette,
    Sensor.BUTTON: Controller._edge_button,
}


def _value(config: Config, name: str) -> Any:
    section, _, key = name.partition(".")
    return getattr(getattr(config, section), key)
