"""One clean, step by step: what each step does to the books and the hardware, and the two
judgments (the guide pins, the swipe). The controller's machine decides *when* a step runs;
this decides *what* it does.

Invariants: the attempt is on record before anything is consumed; every refusal (rules 2, 3,
4, 6) is decided before the wheel moves; ribbon is reserved durably before the wheel moves and
a drop is counted durably before the pump pulses, so a power cut can only over-count; the
attempt's one outcome is written before it is announced (rule 8).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from .attempt import Attempt
from .config import Config
from .consumables import Consumables
from .domain import CASSETTE_FOR, FaultCode, Gender, Mode, Outcome, Reason
from .events import AttemptStarted, CleanModeChanged, DropDispensed, Event, SwipeNow, WheelAdvanced
from .guide_pins import PinReading, PinSample, read_guide_pins
from .inspection import Inspection
from .loop import EventLoop
from .ports import Hardware, MotionResult, MotionStatus, Sensor, SensorEdge
from .store import Store
from .swipe import GateEdge, SwipeVerdict, judge_swipe
from .trace import Traceability

log = logging.getLogger(__name__)


class CleanCycle:
    """The clean in progress (`attempt`), on the controller loop."""

    def __init__(
        self,
        store: Store,
        hardware: Hardware,
        consumables: Consumables,
        loop: EventLoop,
        config: Callable[[], Config],
        publish: Callable[[Event], None],
        trace: Traceability,
    ) -> None:
        self._store = store
        self._trace = trace
        self._hw = hardware
        self._books = consumables
        self._loop = loop
        self._config = config
        self._publish = publish
        self._wall = trace.wall
        # the inspection loop is part of the cycle: clean -> inspect -> re-clean (section 10)
        self.inspection = Inspection(
            store,
            loop,
            config,
            publish,
            wall=trace.wall,
            pending_connector=lambda: trace.identity().connector,
            panel=hardware.panel,
            cleaning=lambda: self.attempt is not None and self.attempt.outcome is None,
            used_up=trace.drop_pending,
        )
        self.inspection.recover()
        self.attempt: Attempt | None = None
        self.unrecorded: list[Attempt] = []  # ended in fault while the disk refused their record

    def _pins_now(self, t: float) -> PinSample:
        read = self._hw.sensors.read
        return PinSample(t, read(Sensor.PIN_LEFT), read(Sensor.PIN_RIGHT))

    # ------------------------------------------------------------------ identifying
    def begin(self, mode: Mode) -> Attempt:
        """A connector was seated: its record first, then its first guide-pin sample."""
        now = self._loop.now()
        who = self._trace.take()  # the connector scanned for it and the operator on duty
        self.attempt = a = Attempt(self._store.begin_attempt(self._wall(), mode, who), now, mode, who)
        a.pin_samples.append(self._pins_now(now))
        a.gate_a_at_seat = self._hw.sensors.read(Sensor.GATE_A)
        a.awaited_at_seat = self.inspection.awaited is not None  # (its verdict may come before the pins settle)
        self._publish(AttemptStarted(a.id, mode))
        return a

    def pin_edge(self, a: Attempt, t: float) -> None:
        a.pin_samples.append(self._pins_now(t))

    def read_pins(self, a: Attempt) -> PinReading:
        """The guide-pin reading so far; once done, the gender is the attempt's."""
        g = self._config().guide_pins
        now = self._loop.now()
        reading = read_guide_pins(
            a.pin_samples, present_at=a.started_at, now=now, settle_s=g.settle_s, timeout_s=g.timeout_s
        )
        if reading.done:
            a.gender = reading.gender
        return reading

    def refusal(self, a: Attempt) -> Reason | None:
        """Everything that must refuse a clean before anything is consumed (rules 2, 3, 4, 6)."""
        policy = self._trace.refusal()  # traceability: the connector's code, the operator's badge
        if policy is None:  # inspection: quarantined, a verdict awaited, the procedure the loop calls for
            policy = self.inspection.refusal(a.identity.connector, a.mode)
        if policy is None and a.awaited_at_seat:  # seated while a verdict was awaited, which came since
            policy = Reason.INSPECT_FIRST
        if policy is not None:
            return policy
        gender = a.gender
        if gender is None:
            return Reason.UNSETTLED_PINS
        if gender is Gender.DAMAGED:
            return Reason.DAMAGED_PINS
        if CASSETTE_FOR[gender] is not self._books.cassette_type():
            return Reason.WRONG_CASSETTE_MALE if gender is Gender.MALE else Reason.WRONG_CASSETTE_FEMALE
        if self._hw.sensors.read(Sensor.GATE_A) or self._hw.sensors.read(Sensor.GATE_B):
            return Reason.GATE_BLOCKED_EARLY  # the swipe could never be judged: use no ribbon on it
        if a.mode is Mode.WET and self._books.fluid_low():
            return Reason.FLUID_LOW
        if self._books.current_cassette().remaining < self._config().wheel.positions_per_clean:
            return Reason.CASSETTE_EMPTY
        return None

    # ------------------------------------------------------------------ advancing, dispensing
    def advance(self, a: Attempt, moved: Callable[[Attempt, MotionResult], None]) -> None:
        """Reserve the fresh section durably, then move the wheel; `moved` runs on the loop."""
        cassette = self._books.current_cassette()
        n = self._config().wheel.positions_per_clean
        gender = a.gender.value if a.gender else None
        a.first_position = self._store.reserve_positions(cassette, n, self._wall(), attempt_id=a.id, gender=gender)
        a.positions_reserved = n
        self._hw.wheel.advance(n, lambda result: self._loop.post(lambda: moved(a, result)))

    def moved(self, a: Attempt, result: MotionResult) -> tuple[Reason, FaultCode, str] | None:
        """The wheel's move ended: what went wrong with it (the attempt's failure and the
        station's fault), or None when every reserved position was confirmed."""
        a.positions_confirmed = result.positions
        self._publish(WheelAdvanced(result.positions, result.steps, round(result.duration_s, 4)))
        if result.status in (MotionStatus.JAM, MotionStatus.EARLY_INDEX):
            jam = result.status is MotionStatus.JAM
            n, steps = a.positions_reserved, result.steps
            counted = f"wheel confirmed {result.positions} of {n} positions after {steps} steps"
            detail = counted if jam else f"index pulse far too soon: {counted}"
            return (Reason.JAM if jam else Reason.INDEX_FAULT), FaultCode.JAM, detail
        if result.status is not MotionStatus.DONE or result.positions != a.positions_reserved:
            detail = f"wheel move ended {result.status.value} at {result.positions} of {a.positions_reserved} positions"
            return Reason.FAULT, FaultCode.INTERNAL, detail
        return None

    def keep_dry(self, a: Attempt) -> None:
        """Switched to DRY since the connector was seated: never any fluid in dry mode (rule 4).
        The fresh section is dry, so the clean goes on as a dry one, on record at once."""
        a.mode = Mode.DRY
        self._store.attempt_mode(a.id, a.mode)
        self._publish(CleanModeChanged(a.id, a.mode, "switched to dry before the drop"))

    def place_drop(self, a: Attempt) -> None:
        self._store.record_drop(self._wall(), attempt_id=a.id)  # durable before the pulse
        a.drops += 1
        a.drop_at = self._loop.now()
        self._hw.dispenser.pulse()
        self._publish(DropDispensed(a.id, "clean"))

    # ------------------------------------------------------------------ the swipe
    def swiped_early(self, a: Attempt, edge: SensorEdge) -> bool:
        """Gate A going blocked before swipe-now, with the connector seated: the operator began
        the pull too early (a gate A that already read blocked when the connector was seated is
        a dirty gate: `refusal`). The record says what physically happened: while the guide pins
        are read the wheel has not moved, so nothing is used and the attempt is rejected; once
        the wheel moves, the move under way ends at a confirmed position (as on a removal) and
        the attempt fails with the positions it used, with no drop; once the drop is placed, it
        fails with the positions and the drop. True when the attempt has just ended here."""
        if edge.sensor is not Sensor.GATE_A or not edge.active or a.swipe_opened_at is not None:
            return False
        if a.outcome is not None or a.abandon is not None or a.gate_a_at_seat:
            return False
        if not self._hw.sensors.read(Sensor.CONNECTOR):
            return False
        if a.positions_reserved and not a.drops:  # the wheel is moving: it ends the attempt once done
            a.abandon = Reason.TOO_EARLY
            return False
        self.conclude(Outcome.FAILED if a.positions_reserved else Outcome.REJECTED, Reason.TOO_EARLY)
        return True

    def open_swipe(self, a: Attempt) -> None:
        """Swipe now: wet, the wet window counts from the drop; dry, the swipe timeout from now."""
        now = self._loop.now()
        a.swipe_opened_at = now
        s = self._config().swipe
        a.swipe_deadline = (a.drop_at + s.wet_window_s) if a.drop_at is not None else now + s.timeout_s
        a.gate_blocked = self._hw.sensors.read(Sensor.GATE_A) or self._hw.sensors.read(Sensor.GATE_B)
        self._publish(SwipeNow(a.id, round(a.swipe_deadline - now, 3)))

    def gate_edge(self, a: Attempt, sensor: Sensor, active: bool, t: float) -> None:
        a.gate_edges.append(GateEdge("A" if sensor is Sensor.GATE_A else "B", active, t))

    def judge(self, a: Attempt, *, connector_gone: bool) -> SwipeVerdict:
        """The swipe so far; once done, the verdict is the attempt's."""
        assert a.swipe_deadline is not None
        s = self._config().swipe
        verdict = judge_swipe(
            a.gate_edges,
            start_deadline=a.swipe_deadline,
            now=self._loop.now(),
            min_pass_s=s.min_pass_s,
            max_pass_s=s.max_pass_s,
            glitch_s=s.glitch_s,
            settle_s=s.settle_s,
            gate_blocked=a.gate_blocked,
            connector_gone=connector_gone,
        )
        if verdict.done:
            a.verdict = verdict
        return verdict

    # ------------------------------------------------------------------ the outcome
    def end_in_fault(self, code: FaultCode) -> int | None:
        """The station went into fault: an unfinished attempt failed (ribbon reserved) or was
        rejected (nothing consumed). Returns its id if its end could not be recorded."""
        a, self.attempt = self.attempt, None
        if a is None or a.outcome is not None:
            return None
        self.attempt = a
        outcome = Outcome.FAILED if a.positions_reserved > 0 else Outcome.REJECTED
        reason = Reason.CASSETTE_PULLED if code is FaultCode.CASSETTE_PULLED else Reason.FAULT
        recorded = self.conclude(outcome, reason, guarded=True)
        if not recorded:
            self.unrecorded.append(a)
        self.attempt = None
        return None if recorded else a.id

    def record_unrecorded(self) -> None:
        """The disk takes writes again (its fault is being cleared): the ends it refused go on
        record as they were announced (rule 8). Raises StoreError while it still cannot."""
        while self.unrecorded:
            a = self.unrecorded[0]
            assert a.outcome is not None
            gender = a.gender.value if a.gender else None
            reason = a.reason.value if a.reason else ""
            self._store.finish_attempt(
                a.id, a.outcome, reason, self._wall(), gender=gender, swipe_start_s=a.swipe_start_s(), pass_s=a.pass_s()
            )
            self.unrecorded.pop(0)

    def conclude(self, outcome: Outcome, reason: Reason | None, *, guarded: bool = False, detail: str = "") -> bool:
        """Record and announce the attempt's one outcome. `guarded`: a failed write is logged
        instead of raised (on the way into fault or out of service); then False."""
        a = self.attempt
        if a is None or a.outcome is not None:
            return True
        a.outcome, a.reason = outcome, reason
        self._trace.settled(reason)
        recorded = True
        try:
            text = (reason.value if reason else "") + (f": {detail}" if detail else "")
            gender = a.gender.value if a.gender else None
            self._store.finish_attempt(
                a.id, outcome, text, self._wall(), gender=gender, swipe_start_s=a.swipe_start_s(), pass_s=a.pass_s()
            )
        except Exception:
            if not guarded:
                a.outcome, a.reason = None, None  # not on record: the fault this raises ends it (end_in_fault)
                raise
            log.exception("could not record the end of attempt %s", a.id)  # pragma: no mutate
            recorded = False
        self._publish(a.finished())
        if outcome is Outcome.CLEANED:
            self.inspection.cleaned(a.id, a.identity.connector, a.mode.value)  # (inspection on) its verdict is awaited
        return recorded
