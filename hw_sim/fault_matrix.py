"""Fault matrix: every injectable fault at every phase of a clean, on the simulated bench.

What each cell must do is data: `EXPECTED`, a table fault x phase whose entries are named
`Expected` outcomes (the legend above it; written as the clean's columns, `CLEAN_EXPECTED`, and
the inspecting column, `INSPECTING_EXPECTED`), derived from docs/design.md section 3 and the
reasons in station/domain.py. `INJECT_AT` says where in each phase the fault goes in.

One harness (`run_cell`) plays each cell on a fresh `SimBench` (virtual time, temporary state
directory), only as the outside world can:

1. the operator's routine is `SimBench.clean` (female connector on the standard cassette;
   wet-to-dry where the phase or the fault needs it), and the fault is injected with
   `World.inject` by a listener on the station's typed events when the phase is reached
   (`StateChanged`, `WheelAdvanced`, `SwipeNow`);
2. what happened is read from the announcements (`AttemptFinished`, `WheelAdvanced`, the gate
   `SensorChanged`), the station's public state (`state`, `controller.faults.code`), the durable
   records (`store.attempts()`), the simulator's physics (outputs safe at every step, see
   `Monitor`; its violations of docs/design.md section 3);
3. recovery: the cause is removed (`World.clear`, the cassette refitted, a new cassette declared
   with a long press for an empty ribbon), the panel button pressed if in fault, and one more
   `SimBench.clean` must be 'cleaned', prompted, on fresh ribbon, with no violation.

Phases are the controller's own states (`station.controller.STATES`) a clean goes through,
then `inspecting`: with `[inspection] mode = "after"` the station is ready again and awaits the
verdict of the connector it cleaned (docs/design.md section 10). That column runs with the
inspection on (the probe pulses the PASS / FAIL lines, a short `verdict_timeout_s`): the fault
goes in once the clean is over, the operator puts the connector into the probe, the verdict is
read from `VerdictRecorded` and the inspection records, and the next connector presented meets
the fault as at ready.
Run it with `python -m bench.fault_matrix` (prints the table; `--write docs/reliability.md`);
tests/test_fault_matrix.py runs every cell.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from enum import Enum
from pathlib import Path
from typing import Any

from station.config import Config
from station.controller import CYCLE, STATES
from station.domain import FaultCode, Outcome, Reason, Verdict
from station.events import (
    AttemptFinished,
    AttemptStarted,
    CassetteDeclared,
    Event,
    InspectionDue,
    SensorChanged,
    StateChanged,
    SwipeNow,
    VerdictRecorded,
    WarningRaised,
    WheelAdvanced,
)
from station.ports import Sensor
from station.store import InspectionBook

from . import Fault, SimBench

log = logging.getLogger(__name__)

COMMAND = "python -m bench.fault_matrix --write docs/reliability.md"
BEGIN = "<!-- fault-matrix:begin -->"
END = "<!-- fault-matrix:end -->"

# The phases of a clean: the controller's states, but for the two a clean never passes through;
# then the inspection's: ready again, the verdict of the connector just cleaned awaited (not a
# state of the controller: the station takes no other connector up meanwhile, "inspect first").
OUTSIDE_A_CLEAN = ("servicing", "fault")
CLEAN_PHASES: tuple[str, ...] = tuple(s for s in STATES if s not in OUTSIDE_A_CLEAN)
INSPECTING = "inspecting"
PHASES: tuple[str, ...] = (*CLEAN_PHASES, INSPECTING)
FAULTS: tuple[Fault, ...] = tuple(Fault)

CFG = Config()
VERDICT_TIMEOUT_S = 5.0  # the shortest the configuration takes: the inspecting cells stay short
# The inspecting column's station: clean, then inspect; the probe pulses the PASS / FAIL lines.
INSPECTED = CFG.replace("inspection", mode="after", verdict_timeout_s=VERDICT_TIMEOUT_S, gpio_fitted=True)
N = CFG.wheel.positions_per_clean
MARGIN = CFG.wheel.max_steps_per_position - CFG.wheel.steps_per_position
SLIP_STEPS = MARGIN // 2  # within the jam margin: must be absorbed
NOMINAL_STEPS = N * CFG.wheel.steps_per_position
WET_FAULTS = (Fault.PUMP_CLOG, Fault.EMPTY_RESERVOIR)
OPERATOR_DELAY_S = 0.5  # swipe-now to the start of the stroke
SETTLE_S = 2.0  # time left to pass after the connector is taken away
CONNECTOR = "female"  # on the standard cassette the bench starts with
GATES = (Sensor.GATE_A, Sensor.GATE_B)
CLEAN_GATE_EDGES = 4  # one stroke: A on, A off, B on, B off


# ======================================================================================= expected
class Kind(str, Enum):
    EFFECT = "effect"  # the fault changes what the station does
    TOLERATED = "tolerated"  # the fault acts, yet the clean must still succeed
    NO_EFFECT = "no effect"  # the fault arrives after the point where it can matter


@dataclass(frozen=True)
class Expected:
    """What one cell must do.

    `outcome` / `reasons`: of the attempt in progress (None: no attempt is started; reasons
    empty: the attempt has no reason, as when cleaned; several: any of them); in the inspecting
    column, of the next connector presented. `code`: the station settles in fault with this
    code. `settles`: the state it settles in after the operator took the connector away
    (default: fault with a code, else idle). `recovers`: with the cause removed (and the button
    pressed if in fault) the next clean is cleaned. `verdict` / `next` (the inspecting column
    only): what the station recorded for the connector it cleaned, and what it said comes next."""

    kind: Kind
    outcome: Outcome | None
    reasons: tuple[Reason, ...]
    code: FaultCode | None
    why: str
    settles: str | None = None
    recovers: bool = True
    verdict: Verdict | None = None
    next: str | None = None

    @property
    def state(self) -> str:
        if self.settles is not None:
            return self.settles
        return "fault" if self.code is not None else "idle"


EFFECT, TOLERATED, NO_EFFECT = Kind.EFFECT, Kind.TOLERATED, Kind.NO_EFFECT
CLEANED, FAILED, REJECTED = Outcome.CLEANED, Outcome.FAILED, Outcome.REJECTED
R, C = Reason, FaultCode
LATE = "injected after the point where it can matter"

# Accepted reasons of a gate-B-first stroke: it does not read as one pass A then B.
NOT_ONE_PASS = (R.REVERSED, R.BACK_AND_FORTH, R.PARTIAL, R.GATE_BLOCKED)

# The legend: every outcome the table uses, with the rule that demands it.
# fmt: off
#                      kind       outcome   reasons (any of)                 fault code
# -- the wheel
JAMMED      = Expected(EFFECT,    FAILED,   (R.JAM,),                        C.JAM,
    why="rule 1: no index pulse within the allowed steps; ribbon reserved first, so failed")
NO_INDEX    = Expected(EFFECT,    FAILED,   (R.JAM,),                        C.JAM,
    why="rule 1: a position counts only when the index sees it; a missed pulse looks like a jam")
RIBBON_END  = Expected(EFFECT,    FAILED,   (R.JAM,),                        C.JAM,
    why="rules 1, 6: the wheel cannot turn past the ribbon's end, no index pulse: jam, never swipe-now")
EARLY_INDEX = Expected(EFFECT,    FAILED,   (R.INDEX_FAULT,),                C.JAM,
    why="rule 1: an index pulse far too soon is a sensor fault, not a position: never swipe-now")
SLIPPED     = Expected(TOLERATED, CLEANED,  (),                              None,
    why=f"slip of {SLIP_STEPS} steps < jam margin {MARGIN}: the firmware steps until the index confirms")
MOVED       = Expected(NO_EFFECT, CLEANED,  (),                              None,
    why=f"{LATE} (the wheel has finished moving)")
EXPOSED     = Expected(NO_EFFECT, CLEANED,  (),                              None,
    why=f"{LATE} (the fresh section is already exposed)")
# -- the drop
CLOGGED     = Expected(EFFECT,    FAILED,   (R.NO_DROP,),                    C.NO_DROP,
    why="rule 4: the drop sensor sees no drop; no wet-to-dry swipe-now on a dry section")
RAN_DRY     = Expected(EFFECT,    FAILED,   (R.NO_DROP,),                    C.NO_DROP,
    why="rule 4: emptied after the fluid check: the pump runs dry, the drop sensor sees nothing")
DROP_BLIND  = Expected(EFFECT,    FAILED,   (R.NO_DROP,),                    C.NO_DROP,
    why="rule 4: the drop is not confirmed: no swipe-now")
FLUID_LOW   = Expected(EFFECT,    REJECTED, (R.FLUID_LOW,),                  None,
    why="rule 4: a low reservoir refuses wet mode before anything is consumed (not a fault)")
DROPPED     = Expected(NO_EFFECT, CLEANED,  (),                              None,
    why=f"{LATE} (the drop is already placed)")
# -- the sensors and gates
GATE_STUCK  = Expected(EFFECT,    REJECTED, (R.GATE_BLOCKED_EARLY,),         None,
    why="rules 5, 6: a gate reading blocked before the clean: the swipe could never be judged, so "
        "refused before any ribbon is used")
ONE_PIN     = Expected(EFFECT,    REJECTED, (R.DAMAGED_PINS,),               C.SENSOR,
    why="rule 3: one guide pin sensed is rejected before anything is consumed; with the connector "
        "taken away the sensor still reads a pin: a sensor fault")
B_FIRST     = Expected(EFFECT,    FAILED,   NOT_ONE_PASS,                    None,
    why="rule 5: gate B blocked first: the stroke does not read as one pass A then B, so failed")
B_DEAD      = Expected(EFFECT,    FAILED,   (R.PARTIAL,),                    None,
    why="rule 5: gate B never seen: a partial swipe fails")
NEVER_GONE  = Expected(EFFECT,    CLEANED,  (),                              None, settles="done",
    why="the removal is never seen: the station keeps showing the result and starts nothing")
BOUNCED     = Expected(TOLERATED, CLEANED,  (),                              None,
    why="rule 5: contact bounce (< glitch_s) is filtered, a good swipe is still good")
STROKED     = Expected(NO_EFFECT, CLEANED,  (),                              None,
    why=f"{LATE} (the stroke's gate edges are already made)")
# -- the cassette
NO_CASSETTE = Expected(EFFECT,    None,     (),                              C.NO_CASSETTE,
    why="no cassette: the station waits and starts nothing; refitting clears it")
PULLED_SOON = Expected(EFFECT,    REJECTED, (R.CASSETTE_PULLED,),            C.CASSETTE_PULLED,
    why="rule 7: pulled mid-cycle is a fault; no ribbon reserved yet, so rejected")
PULLED      = Expected(EFFECT,    FAILED,   (R.CASSETTE_PULLED,),            C.CASSETTE_PULLED,
    why="rule 7: pulled mid-cycle is a fault; the ribbon was reserved, so failed")
PULLED_LATE = Expected(EFFECT,    CLEANED,  (),                              C.NO_CASSETTE,
    why="the attempt was already concluded (cleaned); a missing cassette outside a cycle is the "
        "self-clearing no_cassette fault")
# -- the connector
EMPTY_GUIDE = Expected(NO_EFFECT, CLEANED,  (),                              None,
    why="nothing in the guide to pull; the next clean is normal")
LIFTED_SOON = Expected(EFFECT,    REJECTED, (R.REMOVED_EARLY,),              None,
    why="removed before anything was consumed: rejected")
LIFTED      = Expected(EFFECT,    FAILED,   (R.REMOVED_MID_CYCLE,),          None,
    why="rule 1: the reserved ribbon is consumed; the clean failed")
LIFTED_MID  = Expected(EFFECT,    FAILED,   (R.REMOVED_MID_CYCLE, R.PARTIAL), None,
    why="rule 5: lifted after gate A, before gate B")
TAKEN_AWAY  = Expected(NO_EFFECT, CLEANED,  (),                              None,
    why="taking the connector away is the normal end of a clean")
# -- the probe's report (the clean's columns run with the inspection off)
NOT_ASKED   = Expected(NO_EFFECT, CLEANED,  (),                              None,
    why="no verdict is awaited during a clean: the probe's report matters only once the station awaits one "
        "(inspecting)")
# fmt: on


def passed(then: Expected) -> Expected:
    """Inspecting, a fault of the wheel, the pump, the gates or the cassette: nothing of them is used
    while the station awaits a verdict, so the probe's PASS counts (released), and the next connector
    presented meets the fault as at ready (`then`, the idle column's outcome)."""
    return replace(
        then,
        verdict=Verdict.PASS,
        next="released",
        why="idle awaiting the verdict: the probe's PASS counts (released); the next connector meets the fault as "
        f"at ready ({then.why})",
    )


# -- the inspection (the next connector: presented once the verdict is recorded, or for
#    connector_pulled seated again before it)
NO_VERDICT = Verdict.NO_VERDICT
NEVER_CAME = replace(TAKEN_AWAY, kind=EFFECT, verdict=NO_VERDICT, next="clean_dry",
    why="rule 10: the probe's report never reaches the station: after verdict_timeout_s it records no_verdict "
        "and says clean again (never released); the next connector, after that, is cleaned")  # fmt: skip
FAIL_STUCK = replace(NEVER_CAME,
    why="rule 10: the FAIL line held active is no pulse, and the probe's PASS pulse on top of it is both lines at "
        "once (neither counts, warned): no_verdict at the timeout, clean again; the next connector, after that, "
        "is cleaned")  # fmt: skip
RESEATED = Expected(EFFECT, REJECTED, (R.INSPECT_FIRST,), None, verdict=NO_VERDICT, next="clean_dry",
    why="out of the probe before it reported and seated again: refused (inspect first) before anything is used, "
        "until the verdict or the timeout; no_verdict at the timeout, clean again")  # fmt: skip

# The table. Columns: the phases of a clean (CLEAN_PHASES, the controller's states in order)...
CLEAN_EXPECTED: dict[Fault, tuple[Expected, ...]] = {
    # fault                  idle         identifying  advancing    dispensing   swipe_ready  swiping      done
    Fault.JAM:              (JAMMED,      JAMMED,      JAMMED,      MOVED,       MOVED,       MOVED,       MOVED),
    Fault.SLIP:             (SLIPPED,     SLIPPED,     SLIPPED,     MOVED,       MOVED,       MOVED,       MOVED),
    Fault.MISSING_INDEX:    (NO_INDEX,    NO_INDEX,    NO_INDEX,    MOVED,       MOVED,       MOVED,       MOVED),
    Fault.EMPTY_RIBBON:     (RIBBON_END,  RIBBON_END,  RIBBON_END,  EXPOSED,     EXPOSED,     EXPOSED,     EXPOSED),
    Fault.PUMP_CLOG:        (CLOGGED,     CLOGGED,     CLOGGED,     CLOGGED,     DROPPED,     DROPPED,     DROPPED),
    Fault.EMPTY_RESERVOIR:  (FLUID_LOW,   FLUID_LOW,   RAN_DRY,     RAN_DRY,     DROPPED,     DROPPED,     DROPPED),
    Fault.STUCK_SENSOR:     (GATE_STUCK,  ONE_PIN,     EARLY_INDEX, DROP_BLIND,  B_FIRST,     B_DEAD,      NEVER_GONE),
    Fault.GATE_BOUNCE:      (BOUNCED,     BOUNCED,     BOUNCED,     BOUNCED,     BOUNCED,     STROKED,     STROKED),
    Fault.CASSETTE_PULLED:  (NO_CASSETTE, PULLED_SOON, PULLED,      PULLED,      PULLED,      PULLED,      PULLED_LATE),
    Fault.CONNECTOR_PULLED: (EMPTY_GUIDE, LIFTED_SOON, LIFTED,      LIFTED,      LIFTED,      LIFTED_MID,  TAKEN_AWAY),
    Fault.NO_REPORT:        (NOT_ASKED,   NOT_ASKED,   NOT_ASKED,   NOT_ASKED,   NOT_ASKED,   NOT_ASKED,   NOT_ASKED),
}  # fmt: skip

# ... and inspecting (ready again, the verdict of the connector just cleaned awaited).
INSPECTING_EXPECTED: dict[Fault, Expected] = {
    Fault.JAM:              passed(JAMMED),
    Fault.SLIP:             passed(SLIPPED),
    Fault.MISSING_INDEX:    passed(NO_INDEX),
    Fault.EMPTY_RIBBON:     passed(RIBBON_END),
    Fault.PUMP_CLOG:        passed(CLOGGED),
    Fault.EMPTY_RESERVOIR:  passed(FLUID_LOW),
    Fault.STUCK_SENSOR:     FAIL_STUCK,
    Fault.GATE_BOUNCE:      passed(BOUNCED),
    Fault.CASSETTE_PULLED:  passed(NO_CASSETTE),
    Fault.CONNECTOR_PULLED: RESEATED,
    Fault.NO_REPORT:        NEVER_CAME,
}  # fmt: skip

EXPECTED: dict[Fault, tuple[Expected, ...]] = {
    fault: (*row, INSPECTING_EXPECTED[fault]) for fault, row in CLEAN_EXPECTED.items()
}

# stuck_sensor: the sensor each phase depends on, and the level it sticks at (True = active).
STUCK_SENSOR: dict[str, tuple[str, bool]] = {
    "idle": ("gate_a", True),  # gate A blocked (dirt on the optical gate) before anyone comes
    "identifying": ("pin_left", True),  # left guide-pin sensor reads a pin the female plug has not got
    "advancing": ("index", True),  # index sensor stuck lit: no more pulses
    "dispensing": ("drop", False),  # drop sensor blind (wet nozzle, dead LED)
    "swipe_ready": ("gate_b", True),  # gate B blocked before the stroke begins
    "swiping": ("gate_b", False),  # gate B dead while the connector travels towards it
    "done": ("connector", True),  # connector-present sensor stuck: the removal is never seen
    INSPECTING: ("inspect_fail", True),  # the inspector's FAIL line held active (a shorted or stuck output)
}


# ======================================================================================= injection
@dataclass(frozen=True)
class InjectAt:
    """Where in a phase the fault goes in: when the station announces `on` (a `StateChanged`
    into `state`, or any event of that class), then once the wheel has turned `wheel_positions`
    more positions (physically), then `after_s` later; `after_s` None: at once, inside the
    announcement, before the station acts on it. `on` None: while ready, before the operator
    comes. `stroke_s`: how long the operator's stroke takes in this cell."""

    text: str
    on: type[Event] | None
    state: str | None = None
    wheel_positions: int = 0
    after_s: float | None = 0.0
    stroke_s: float = 0.6
    after_clean: bool = False  # once the operator's clean is over (cleaned, taken away): inspecting

    def matches(self, event: Event) -> bool:
        if self.on is None or not isinstance(event, self.on):
            return False
        return not isinstance(event, StateChanged) or event.state == self.state


INJECT_AT: dict[str, InjectAt] = {
    "idle": InjectAt(
        f"ready, nothing presented; {SETTLE_S:g} s later the operator presents a connector (the next attempt meets "
        "the fault)",
        None,
    ),
    "identifying": InjectAt(
        "just after the station enters identifying: the connector seated, the guide pins not yet settled",
        StateChanged,
        "identifying",
    ),
    "advancing": InjectAt(
        "in the last position of the move: 0.02 s after the simulator saw the wheel reach position N-1 (past the "
        "index slot, stepper enabled, the final index pulse still to come)",
        StateChanged,
        "advancing",
        wheel_positions=N - 1,
        after_s=0.02,
    ),
    "dispensing": InjectAt(
        "at the start of dispensing: as the advance is announced (`WheelAdvanced`), before the pump pulse",
        WheelAdvanced,
        after_s=None,
    ),
    "swipe_ready": InjectAt(
        f"0.2 s after swipe-now, before the operator swipes (at {OPERATOR_DELAY_S:g} s)", SwipeNow, after_s=0.2
    ),
    "swiping": InjectAt(
        "mid-stroke: gate A passed, gate B not yet (1.0 s stroke, injected 0.5 s after the stroke began)",
        StateChanged,
        "swiping",
        after_s=0.5,
        stroke_s=1.0,
    ),
    "done": InjectAt(
        "result shown (cleaned), connector still in the guide; then the operator takes it away",
        StateChanged,
        "done",
    ),
    INSPECTING: InjectAt(
        "the clean ended cleaned and the connector was taken away: the station, ready again, awaits its verdict "
        f"(`InspectionDue`, timeout {VERDICT_TIMEOUT_S:g} s); then the operator puts it into the probe, which "
        "pulses the PASS or FAIL line (for connector_pulled: takes it out before the probe reports and seats it "
        "again); once the verdict is recorded (or the timeout passed) the next connector is presented",
        None,
        after_clean=True,
    ),
}

# shown with the phase in the table
PHASE_NOTES = {"dispensing": "wet", "done": "awaiting removal", INSPECTING: "verdict awaited"}


def _check_tables() -> None:
    """The tables cover exactly the controller's phases and the simulator's faults."""
    assert set(OUTSIDE_A_CLEAN) <= set(STATES), OUTSIDE_A_CLEAN
    assert list(CLEAN_PHASES[1:-1]) == list(CYCLE), (CLEAN_PHASES, CYCLE)
    assert INSPECTING not in STATES and PHASES[-1] == INSPECTING
    for name, table in (("INJECT_AT", INJECT_AT), ("STUCK_SENSOR", STUCK_SENSOR), ("PHASE_NOTES", PHASE_NOTES)):
        extra = set(table) - set(PHASES)
        assert not extra, f"{name}: {sorted(extra)} are not phases of a clean ({PHASES})"
    assert set(INJECT_AT) == set(PHASES) and set(STUCK_SENSOR) == set(PHASES)
    assert set(EXPECTED) == set(Fault), set(Fault) ^ set(EXPECTED)
    for fault, row in EXPECTED.items():
        assert len(row) == len(PHASES), f"{fault.value}: {len(row)} entries for {len(PHASES)} phases"
        for phase, e in zip(PHASES, row, strict=True):
            assert e.state in STATES, f"{fault.value}: settles in {e.state!r}, not a controller state"
            assert (e.verdict is not None) == (phase == INSPECTING), f"{fault.value}@{phase}: a verdict or not"


_check_tables()

_BY_CELL: dict[tuple[Fault, str], Expected] = {
    (fault, phase): row[i] for fault, row in EXPECTED.items() for i, phase in enumerate(PHASES)
}


def expected(fault: Fault | str, phase: str) -> Expected:
    """What the cell `fault` x `phase` must do (its entry in the `EXPECTED` table)."""
    return _BY_CELL[Fault(fault), phase]


def cells_to_run() -> list[tuple[Fault, str]]:
    return [(f, p) for f in FAULTS for p in PHASES]


def phase_title(phase: str) -> str:
    return f"{phase} ({PHASE_NOTES[phase]})" if phase in PHASE_NOTES else phase


def inject_options(fault: Fault, phase: str) -> dict[str, Any]:
    if fault is Fault.SLIP:
        return {"steps": SLIP_STEPS}
    if fault is Fault.MISSING_INDEX:
        return {"count": 1}
    if fault is Fault.EMPTY_RIBBON:
        return {"left": 0}
    if fault is Fault.STUCK_SENSOR:
        sensor, active = STUCK_SENSOR[phase]
        return {"sensor": sensor, "active": active}
    return {}


def is_wet(fault: Fault, phase: str) -> bool:
    return phase == "dispensing" or fault in WET_FAULTS


# ======================================================================================= results
@dataclass
class Cell:
    fault: Fault
    phase: str
    wet: bool
    options: dict[str, Any]
    expected: Expected
    state: str = ""
    fault_code: FaultCode | None = None
    outcome: Outcome | None = None
    reason: Reason | None = None
    attempts: int = 0  # attempts the cell started before recovery (must be 0 or 1)
    steps: int | None = None  # steps of the cell's first wheel move (evidence that a slip acted)
    gates_heard: int = 0  # gate edges announced during the cell's attempt (evidence of bounce)
    verdict: Verdict | None = None  # inspecting: recorded for the connector cleaned (first announced)
    next: str | None = None  # inspecting: what the station said comes next
    reports: int = 0  # inspecting: the probe's reports the world delivered to the station after the fault
    lines_warned: bool = False  # inspecting: the station warned of PASS and FAIL lines active together
    books: list[str] = field(default_factory=list)  # disagreements between results and records
    unsafe: list[str] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    recovered: bool = False
    recovery: list[str] = field(default_factory=list)  # why recovery did not succeed
    error: str | None = None

    @property
    def id(self) -> str:
        return f"{self.fault.value}@{self.phase}"

    def mismatches(self) -> list[str]:
        """How the observed outcome differs from the expected one (empty: as expected)."""
        e = self.expected
        out = []
        if self.state != e.state:
            out.append(f"state {self.state!r}, expected {e.state!r}")
        if self.fault_code is not e.code:
            out.append(f"fault {_value(self.fault_code)!r}, expected {_value(e.code)!r}")
        if e.verdict is not None and (self.verdict, self.next) != (e.verdict, e.next):
            out.append(
                f"verdict {_value(self.verdict)!r} next {self.next!r}, expected {e.verdict.value!r} next {e.next!r}"
            )
        if self.outcome is not e.outcome:
            out.append(f"outcome {_value(self.outcome)!r}, expected {_value(e.outcome)!r}")
        elif self.outcome is not None and not (self.reason in e.reasons if e.reasons else self.reason is None):
            want = [_key(r) for r in e.reasons] or [None]
            out.append(f"reason {_key(self.reason)!r}, expected one of {want}")
        if self.attempts > 1:
            out.append(f"{self.attempts} attempts started, expected at most one")
        out += self._evidence()
        return out

    def _evidence(self) -> list[str]:
        """A 'tolerated' fault must really have acted, a 'no effect' one must really not have
        (otherwise the cell would pass without testing anything)."""
        tolerated = self.expected.kind is Kind.TOLERATED
        if self.phase == INSPECTING:
            silent = self.fault in (Fault.NO_REPORT, Fault.CONNECTOR_PULLED)  # no report may reach the station
            if silent != (self.reports == 0):
                return [
                    f"{self.reports} reports of the probe reached the station, expected {'none' if silent else 'one'}"
                ]
            if (self.fault is Fault.STUCK_SENSOR) != self.lines_warned:
                return [f"PASS and FAIL lines together {'' if self.lines_warned else 'not '}warned of"]
        if self.fault is Fault.SLIP and self.steps is not None:
            want = NOMINAL_STEPS + (SLIP_STEPS if tolerated else 0)
            if self.steps != want:
                return [f"first advance took {self.steps} steps, expected {want}"]
        if self.fault is Fault.GATE_BOUNCE and self.outcome is Outcome.CLEANED:
            if tolerated and self.gates_heard <= CLEAN_GATE_EDGES:
                return [f"{self.gates_heard} gate edges announced: the bounce did not reach the station"]
            if not tolerated and self.gates_heard != CLEAN_GATE_EDGES:
                return [f"{self.gates_heard} gate edges announced, expected a clean {CLEAN_GATE_EDGES}"]
        return []

    def problems(self) -> list[str]:
        out = []
        if self.error:
            out.append(f"error: {self.error}")
        out += self.mismatches()
        out += [f"books: {b}" for b in self.books]
        out += [f"unsafe: {u}" for u in self.unsafe]
        out += [f"violation: {v}" for v in self.violations]
        if self.recovered and not self.expected.recovers:
            out.append("recovered, expected not to")
        elif not self.recovered and self.expected.recovers:
            out.append("not recovered: " + "; ".join(self.recovery or ["?"]))
        return out

    @property
    def passed(self) -> bool:
        return not self.problems()

    def observed(self, prefix: str = "") -> str:
        """What the cell did, in the table's words (`prefix`: the kind, before the attempt's part)."""
        if self.error and not self.state:
            return "error"
        if self.phase == INSPECTING:
            return f"{_verdict_text(self.verdict, self.next)}; then {prefix}{self._attempt_text()}"
        return prefix + self._attempt_text()

    def _attempt_text(self) -> str:
        head = (
            f"fault {_value(self.fault_code)}"
            if self.state == "fault"
            else ("" if self.state == "idle" else self.state)
        )
        if self.outcome is None:
            tail = "no attempt"
        elif self.outcome is Outcome.CLEANED:
            tail = "cleaned"
        else:
            tail = f"{self.outcome.value} ({_key(self.reason)})"
        return f"{head} / {tail}" if head else tail

    def text(self) -> str:
        prefix = {Kind.NO_EFFECT: "no effect: ", Kind.TOLERATED: "tolerated: "}.get(self.expected.kind, "")
        ok = not (self.error or self.mismatches() or self.books or self.unsafe or self.violations)
        mark = "✓" if ok else "✗"
        rec = "recovered" if self.recovered else "NOT recovered"
        return f"{self.observed(prefix)} {mark} {rec}"


def _value(e: Enum | None) -> str | None:
    return None if e is None else str(e.value)


def _verdict_text(verdict: Verdict | None, nxt: str | None) -> str:
    return f"{verdict.value} ({nxt})" if verdict is not None else "no verdict recorded"


def _key(r: Reason | None) -> str | None:
    """A reason as named in the table (`Reason.NO_DROP` -> no_drop)."""
    return None if r is None else r.name.lower()


# ======================================================================================= running
class Monitor:
    """Safe outputs at every step, as the simulator sees the pins.

    * on every output change: the stepper is enabled or stepped only while advancing (or
      servicing), the pump runs only while dispensing (or servicing);
    * after every handler that announced something, and between the harness's own steps:
      stepper disabled and pump off outside those states, red light on in fault.
    """

    MOVING = {"advancing", "servicing"}
    DOSING = {"dispensing", "servicing"}

    def __init__(self, bench: SimBench) -> None:
        self.bench = bench
        self.problems: list[str] = []
        pins = bench.config.pins
        self._roles = {pins.enable: "enable", pins.step: "step", pins.pump: "pump"}

    def _note(self, text: str) -> None:
        text = f"t={self.bench.loop.now():.3f} {text}"
        if text not in self.problems and len(self.problems) < 10:
            self.problems.append(text)

    def output(self, bcm: int, value: bool) -> None:
        role = self._roles.get(bcm)
        state = self.bench.state
        w = self.bench.world
        assert w is not None
        if role in ("enable", "step") and w.stepper_enabled and state not in self.MOVING:
            self._note(f"stepper {'stepped' if role == 'step' else 'enabled'} in state {state}")
        if role == "pump" and value and state not in self.DOSING:
            self._note(f"pump on in state {state}")

    def check(self) -> None:
        state = self.bench.state
        w = self.bench.world
        assert w is not None
        if w.stepper_enabled and state not in self.MOVING:
            self._note(f"stepper enabled in state {state}")
        if w.pump_on and state not in self.DOSING:
            self._note(f"pump on in state {state}")
        if state == "fault" and not w.leds()[2]:
            self._note("fault without the red light")


class CellRun:
    """One cell: a fresh bench, the operator's clean, the fault at its phase, the recovery."""

    def __init__(self, fault: Fault | str, phase: str) -> None:
        self.fault = Fault(fault)
        if phase not in PHASES:
            raise ValueError(f"no phase {phase!r}; phases are {', '.join(PHASES)}")
        self.phase = phase
        self.at = INJECT_AT[phase]
        self.wet = is_wet(self.fault, phase)
        self.options = inject_options(self.fault, phase)
        self.cell = Cell(self.fault, phase, self.wet, self.options, expected(self.fault, phase))
        self.bench: SimBench | None = None
        self.monitor: Monitor | None = None
        self.injected: list[str] = []  # the state when the fault went in (once)
        self.wheel_turning = False  # the stepper was enabled when the fault went in
        self.heard_before = 0  # announcements heard before the fault went in
        self._armed = True
        self._wheel_mark: int | None = None  # world position at which to inject (advancing)
        self._attempt: int | None = None  # the cell's attempt while it runs
        self._attempt_done = False
        self.inspecting = phase == INSPECTING
        self.inspected: int | None = None  # inspecting: the attempt whose verdict is awaited
        self.t_injected = 0.0
        self.reports_before = 0  # inspecting: the probe's reports delivered before the fault went in

    # ------------------------------------------------------------------ listening
    def _on_event(self, event: Event) -> None:
        b = self._b
        assert self.monitor is not None
        b.loop.post(self.monitor.check)  # once the handler that announced it is done
        self._count_gate_edges(event)
        if not (self._armed and self.at.matches(event)):
            return
        self._armed = False
        if self.at.wheel_positions:
            assert b.world is not None
            self._wheel_mark = b.world.positions_total + self.at.wheel_positions
        elif self.at.after_s is None:
            self._inject()
        else:
            b.loop.call_later(self.at.after_s, self._inject)

    def _on_output(self, bcm: int, value: bool) -> None:
        assert self.monitor is not None
        self.monitor.output(bcm, value)
        w = self._b.world
        assert w is not None
        if self._wheel_mark is not None and w.positions_total >= self._wheel_mark:
            self._wheel_mark = None
            self._b.loop.call_later(self.at.after_s or 0.0, self._inject)

    def _count_gate_edges(self, event: Event) -> None:
        if isinstance(event, AttemptStarted) and self._attempt is None and (self.injected or not self.inspecting):
            self._attempt = event.id  # (inspecting: the next connector's, after the fault went in)
        elif isinstance(event, AttemptFinished) and event.id == self._attempt:
            self._attempt_done = True
        elif isinstance(event, SensorChanged) and event.sensor in GATES:
            if self._attempt is not None and not self._attempt_done:
                self.cell.gates_heard += 1

    def _inject(self) -> None:
        b = self._b
        assert b.world is not None
        if not self.injected:
            self.injected.append(b.state)
            self.wheel_turning = b.world.stepper_enabled
            self.heard_before = len(b.events)
            self.t_injected = b.loop.now()
            self.reports_before = len(b.world.probe_port.delivered)
            b.world.inject(self.fault, **self.options)

    # ------------------------------------------------------------------ time, watched
    @property
    def _b(self) -> SimBench:
        assert self.bench is not None
        return self.bench

    def run(self, seconds: float) -> None:
        self.wait(lambda: False, seconds)

    def wait(self, predicate: Callable[[], bool], limit_s: float) -> bool:
        assert self.monitor is not None
        monitor = self.monitor

        def done() -> bool:
            monitor.check()
            return predicate()

        return self._b.wait_until(done, limit_s)

    # ------------------------------------------------------------------ the cell's clean
    def play(self) -> None:
        b = self._b
        if self.at.after_clean:
            self.play_inspecting()
            return
        if self.at.on is None:  # before anyone comes
            self.run(0.5)
            self._need(b.state == "idle", "idle")
            self._inject()
            self.run(SETTLE_S)
        b.clean(CONNECTOR, wet=self.wet, duration_s=self.at.stroke_s, delay_s=OPERATOR_DELAY_S)
        self.run(SETTLE_S)
        self._need(bool(self.injected), f"{self.phase} (the fault never went in)")
        self._need(self._reached(), f"{self.phase} (the fault went in during {self.injected[0]})")

    def play_inspecting(self) -> None:
        """The clean, its verdict awaited; the fault; the probe (or, connector_pulled, the connector
        seated again before it reports); the verdict or the timeout; the next connector."""
        b = self._b
        w = b.world
        assert w is not None
        first = b.clean(CONNECTOR, wet=self.wet, delay_s=OPERATOR_DELAY_S)
        due = [d for d in b.heard(InspectionDue) if first is not None and d.attempt_id == first.id]
        self._need(
            first is not None and first.outcome is Outcome.CLEANED and bool(due), "a cleaned attempt's inspection"
        )
        assert first is not None
        self.inspected = first.id
        self._inject()
        if self.fault is Fault.CONNECTOR_PULLED:  # out of the probe before it reported, seated again
            b.clean(CONNECTOR, wet=self.wet, delay_s=OPERATOR_DELAY_S, face=w.faces.in_hand)
        else:
            w.faces.inspect()  # its report goes to the station (the probe's wiring, probe_port.py)
            self.run(w.probe_port.pulse_s())
        self.wait(lambda: self._verdict() is not None, VERDICT_TIMEOUT_S + 1.0)
        if self.fault is not Fault.CONNECTOR_PULLED:
            b.clean(CONNECTOR, wet=self.wet, delay_s=OPERATOR_DELAY_S)  # the next connector, as at ready
        self.run(SETTLE_S)
        self._need(self._reached(), f"{self.phase} (the fault went in during {self.injected[0]})")

    def _verdict(self) -> VerdictRecorded | None:
        """The verdict announced for the inspected attempt (the first)."""
        heard = [v for v in self._b.heard(VerdictRecorded) if v.attempt_id == self.inspected]
        return heard[0] if heard else None

    def _awaited(self) -> set[int | None]:
        """The attempts whose verdict the station announced it awaits, and has not yet recorded."""
        b = self._b
        return {d.attempt_id for d in b.heard(InspectionDue)} - {v.attempt_id for v in b.heard(VerdictRecorded)}

    def _reached(self) -> bool:
        """The fault went in during the phase (or, injected as an announcement was made, the
        station went on into it), and a result to take away was shown at 'done'; inspecting:
        ready, the verdict of the cleaned attempt announced as awaited and not yet recorded."""
        b = self._b
        state = self.injected[0]
        if self.inspecting:
            before = [h.event for h in b.events[: self.heard_before]]
            due = any(isinstance(e, InspectionDue) and e.attempt_id == self.inspected for e in before)
            settled = any(isinstance(e, VerdictRecorded) for e in before)
            return state == "idle" and due and not settled
        if self.at.after_s is None:
            entered = [h.event.state for h in b.events[self.heard_before :] if isinstance(h.event, StateChanged)]
            state = entered[0] if entered else state
        if state != self.phase:
            return False
        if self.at.wheel_positions:
            return self.wheel_turning
        if self.phase == "done":
            first = b.results()[0] if b.results() else None
            return first is not None and first.outcome is Outcome.CLEANED
        return True

    def _need(self, ok: bool, what: str) -> None:
        if not ok:
            raise RuntimeError(f"could not reach {what} (state {self._b.state})")

    # ------------------------------------------------------------------ observation
    def observe(self) -> None:
        b, c = self._b, self.cell
        c.state = b.state
        c.fault_code = b.controller.faults.code
        results = b.results()[1:] if self.inspecting else b.results()  # inspecting: the next connector's
        c.attempts = len(results)
        if results:
            c.outcome, c.reason = results[0].outcome, results[0].reason
        c.books += self.check_books()
        moves = b.heard(WheelAdvanced, since=self.t_injected) if self.inspecting else b.heard(WheelAdvanced)
        c.steps = moves[0].steps if moves else None
        if self.inspecting:
            v = self._verdict()
            c.verdict, c.next = (v.verdict, v.next) if v is not None else (None, None)
            assert b.world is not None
            c.reports = len(b.world.probe_port.delivered) - self.reports_before
            c.lines_warned = any(x.code == "inspection_lines" for x in b.heard(WarningRaised, since=self.t_injected))

    def check_books(self) -> list[str]:
        """Rule 8: every attempt has exactly one durable record, and it says what was announced."""
        b = self._b
        records = b.controller.store.attempts(newest_first=False)
        results = b.results()
        out = []
        if len(records) != len(results):
            out.append(f"{len(records)} durable records for {len(results)} announced results")
        for rec, res in zip(records, results, strict=False):
            said = res.reason.value if res.reason else ""
            if rec.id != res.id or rec.outcome != res.outcome.value or not (rec.reason or "").startswith(said):
                out.append(
                    f"record {rec.id} {rec.outcome} {rec.reason!r} != result {res.id} {res.outcome.value} {said!r}"
                )
        if self.inspected is not None:  # the verdicts of the inspected attempt: recorded as announced
            book = InspectionBook(b.controller.store)
            kept = [(r["verdict"], r["source"]) for r in book.verdicts(attempt_id=self.inspected)]
            said_v = [(v.verdict.value, v.source) for v in b.heard(VerdictRecorded) if v.attempt_id == self.inspected]
            if kept != said_v:
                out.append(f"verdicts of attempt {self.inspected}: recorded {kept}, announced {said_v}")
        return out

    # ------------------------------------------------------------------ recovery
    def recover(self) -> None:
        b, c, f = self._b, self.cell, self.fault
        w = b.world
        assert w is not None
        if w.connector is not None:
            w.remove()
        if f is Fault.CASSETTE_PULLED:
            w.fit_cassette("standard")
        elif f is Fault.EMPTY_RIBBON:
            w.fit_cassette("standard-2")  # a new cassette of the same type
        elif f is not Fault.CONNECTOR_PULLED:
            w.clear(f)
        self.run(0.5)
        if b.state == "fault":
            w.press_button(0.1)
            self.run(0.5)
        if not self.wait(lambda: b.state == "idle", 10):
            c.recovery.append(f"still {b.state} (fault {_value(b.controller.faults.code)}) after clearing the cause")
            return
        if f is Fault.EMPTY_RIBBON:  # declare it new: a long press within 120 s of fitting it
            n = len(b.heard(CassetteDeclared))
            w.press_button(CFG.panel.long_press_s + 0.5)
            self.run(CFG.panel.long_press_s + 1.0)
            if len(b.heard(CassetteDeclared)) != n + 1:
                c.recovery.append("the long press did not declare the new cassette")
        if self.inspecting and self._awaited():
            self._probe("the verdict still awaited")
        swipes, prompts = len(w.swipes), w.prompts
        res = b.clean(CONNECTOR, wet=self.wet, delay_s=OPERATOR_DELAY_S)
        self.run(SETTLE_S)
        if self.inspecting and res is not None and res.outcome is Outcome.CLEANED:
            self._probe("the next clean")
        if res is None or res.outcome is not Outcome.CLEANED:
            c.recovery.append(f"next clean: {res and (res.outcome.value, _key(res.reason))}")
        if w.prompts != prompts + 1 or len(w.swipes) != swipes + 1:
            c.recovery.append(f"next clean: {w.prompts - prompts} swipe-now, {len(w.swipes) - swipes} swipes")
        elif not (w.swipes[-1].prompted and w.swipes[-1].fresh):
            c.recovery.append("next clean: swipe not prompted or not on fresh ribbon")
        elif w.fitted is None or w.fitted.drops.get(w.swipes[-1].section, 0) != (1 if self.wet else 0):
            c.recovery.append("next clean: wrong number of drops on the section")
        if b.state != "idle" or w.leds() != (True, False, False) or w.stepper_enabled or w.pump_on:
            c.recovery.append(f"after the next clean: state {b.state}, leds {w.leds()}")
        c.books += [x for x in self.check_books() if x not in c.books]
        c.recovered = not c.recovery

    def _probe(self, what: str) -> None:
        """Recovery, inspecting: the connector in hand into the probe; its report must now count
        (the cause removed), and a clean face must be released."""
        b, w = self._b, self._b.world
        assert w is not None
        awaited = self._awaited()
        n = len(b.heard(VerdictRecorded))
        w.faces.inspect()
        self.run(w.probe_port.pulse_s() + 0.1)
        said = b.heard(VerdictRecorded)[n:]
        if [(v.attempt_id in awaited, v.verdict, v.next) for v in said] != [(True, Verdict.PASS, "released")]:
            self.cell.recovery.append(f"{what}: the probe's report gave {[(v.verdict.value, v.next) for v in said]}")

    # ------------------------------------------------------------------ all of it
    def execute(self) -> Cell:
        c = self.cell
        try:
            self.bench = b = SimBench(INSPECTED if self.inspecting else None)
            self.monitor = Monitor(b)
            inner = b.factory.on_output  # the world's own view of the outputs comes first

            def on_output(bcm: int, value: bool) -> None:
                if inner is not None:
                    inner(bcm, value)
                self._on_output(bcm, value)

            b.factory.on_output = on_output
            b.controller.events.subscribe(self._on_event)
            try:
                self.play()
            finally:
                self.observe()
            self.recover()
        except Exception as exc:  # a cell that blows up is a failed cell, not a dead matrix
            c.error = f"{type(exc).__name__}: {exc}"
            log.debug("cell %s\n%s", c.id, traceback.format_exc())
        finally:
            if self.bench is not None:
                c.unsafe = list(self.monitor.problems) if self.monitor is not None else []
                assert self.bench.world is not None
                c.violations = [f"rule {v.rule} at t={v.t:.3f}: {v.text}" for v in self.bench.world.violations]
                try:
                    self.bench.close()
                except Exception as exc:
                    c.error = c.error or f"close: {type(exc).__name__}: {exc}"
        return c


def run_cell(fault: Fault | str, phase: str) -> Cell:
    return CellRun(fault, phase).execute()


def run_matrix() -> list[Cell]:
    return [run_cell(f, p) for f, p in cells_to_run()]


# ======================================================================================= report
def expected_text(e: Expected) -> str:
    """An expected outcome in the words of the observed table."""
    head = f"fault {_value(e.code)}" if e.state == "fault" else ("" if e.state == "idle" else e.state)
    if e.outcome is None:
        tail = "no attempt"
    elif e.outcome is Outcome.CLEANED:
        tail = "cleaned"
    else:
        tail = f"{e.outcome.value} ({' or '.join(str(_key(r)) for r in e.reasons)})"
    prefix = {Kind.NO_EFFECT: "no effect: ", Kind.TOLERATED: "tolerated: "}.get(e.kind, "")
    if e.verdict is not None:
        prefix = f"{_verdict_text(e.verdict, e.next)}; then {prefix}"
    return prefix + (f"{head} / {tail}" if head else tail)


def _grid(text: Callable[[Fault, str], str]) -> list[str]:
    lines = [
        "| fault \\ phase | " + " | ".join(phase_title(p) for p in PHASES) + " |",
        "|---|" + "---|" * len(PHASES),
    ]
    for f in FAULTS:
        lines.append(f"| {f.value} | " + " | ".join(text(f, p) for p in PHASES) + " |")
    return lines


def expectations_markdown() -> str:
    """The expected outcomes alone (no run): the `EXPECTED` table as markdown."""
    return "\n".join(_grid(lambda f, p: expected_text(expected(f, p)))) + "\n"


def markdown(cells: list[Cell]) -> str:
    """The generated section: table, legend, choices, the command, the pass count."""
    by = {(c.fault, c.phase): c for c in cells}
    passed = sum(c.passed for c in cells)
    lines = [
        f"Generated by `{COMMAND}` (the harness and the expected outcomes, as a table, are in "
        "`hw_sim/fault_matrix.py`); `tests/test_fault_matrix.py` runs every cell and fails when this section is stale.",
        "",
        f"**{passed} of {len(cells)} cells pass.**",
        "",
        *_grid(lambda f, p: by[f, p].text() if (f, p) in by else ""),
        "",
        "Legend:",
        "",
        "- Each cell: what the station did with the attempt in progress — `fault <code>` when it",
        "  ended in fault (otherwise the settled state if not `idle`), then the attempt's outcome and",
        "  its reason (`station.domain.Reason` name), or `no attempt`.",
        "- `✓`: the outcome is the expected one (`EXPECTED` in `hw_sim/fault_matrix.py`), the outputs",
        "  were safe at every step (stepper disabled and pump off except while advancing / dispensing;",
        "  red light on in fault), the simulator recorded no violation of docs/design.md section 3, and",
        "  the announced results match the durable records. `✗`: one of these did not hold (see the",
        "  failures below).",
        "- `recovered`: after the cause was removed (`World.clear`, the cassette refitted, a new",
        "  cassette declared for an empty ribbon) and the button pressed if in fault, one more clean",
        "  was `cleaned`, prompted, on fresh ribbon, with no violation.",
        "- `tolerated:` the fault acted but the design says the clean must still succeed;",
        "  `no effect:` the fault arrives after the point where it can matter (still required: safe",
        "  outputs, no violation, recovery).",
        "- inspecting: first the verdict the station recorded for the connector it had cleaned (the",
        "  first announced, `pass`, `fail` or `no_verdict`) and what it said comes next (`released`,",
        "  `clean_dry`, ...), as recorded in its inspection records; then, as above, the next",
        "  connector's attempt. Also required: a report of the probe reached the station (none for",
        "  no_report and connector_pulled), and for the stuck FAIL line the station warned of both",
        "  lines active together. Recovery also puts the connector in hand into the probe: its PASS",
        "  must now be taken (the verdict still awaited, and the next clean's: released).",
        "",
        "Choices:",
        "",
        f"- Connector: {CONNECTOR}, on the standard cassette; the operator is `SimBench.clean` (swipes",
        f"  {OPERATOR_DELAY_S:g} s after swipe-now, takes the connector away after the result). Wet-to-dry for the",
        f"  dispensing column and for the {', '.join(sorted(f.value for f in WET_FAULTS))} rows; dry otherwise.",
        f"- slip: {SLIP_STEPS} extra steps (jam margin {MARGIN}); missing_index: one pulse;",
        "  empty_ribbon: the ribbon ends at the section under the window; no_report: the probe grades",
        "  the face, its report never reaches the station.",
        "- The clean's columns run with `[inspection] mode = off`; the inspecting column with mode",
        f"  `after`, `gpio_fitted = true` (the probe pulses the PASS or FAIL line, "
        f"{CFG.inspection.pulse_min_s:g} s + margin) and",
        f"  `verdict_timeout_s = {VERDICT_TIMEOUT_S:g}` (the shortest allowed); each connector's end face clean.",
        "- Injection point per phase (a listener on the station's announcements):",
    ]
    lines += [f"  - {phase_title(p)}: {INJECT_AT[p].text}." for p in PHASES]
    lines.append(
        "- stuck_sensor, per phase: "
        + "; ".join(
            f"{phase_title(p)}: `{s}` stuck {'active' if a else 'inactive'}" for p, (s, a) in STUCK_SENSOR.items()
        )
        + "."
    )
    failing = [c for c in cells if not c.passed]
    if failing:
        lines += ["", "Failing cells:", ""]
        for c in failing:
            lines.append(
                f"- {c.fault.value} / {c.phase}: " + "; ".join(c.problems()) + f" (expected: {c.expected.why})"
            )
    return "\n".join(lines) + "\n"


SKELETON = """# Reliability

## Fault matrix

{begin}
{body}{end}

## Stateful testing

To be filled.

## Soak

To be filled.

## Mutation testing

To be filled.
"""


def section(text: str) -> str | None:
    """The generated part of a document (between the markers, without them)."""
    if BEGIN not in text or END not in text:
        return None
    return text.split(BEGIN, 1)[1].split(END, 1)[0].strip("\n") + "\n"


def write(path: Path, body: str) -> None:
    """Replace the generated part of `path` (or write a new skeleton document)."""
    if path.exists() and section(path.read_text(encoding="utf-8")) is not None:
        text = path.read_text(encoding="utf-8")
        head, rest = text.split(BEGIN, 1)
        tail = rest.split(END, 1)[1]
        path.write_text(f"{head}{BEGIN}\n{body}{END}{tail}", encoding="utf-8")
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(SKELETON.format(begin=BEGIN, body=body, end=END), encoding="utf-8")
