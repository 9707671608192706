"""Fault matrix: every injectable fault at every phase of a clean, on the simulated bench.

    python bench/fault_matrix.py [--write docs/reliability.md]

For each cell (fault x phase) a fresh `SimBench` (virtual time, temporary state directory):

1. drives one clean to the phase (wet-to-dry where the phase or the fault needs it);
2. injects the fault there (`World.inject`) and lets a disciplined operator carry on: swipe
   0.5 s after swipe-now (if there is one and the connector is still in the guide), wait for the
   result, take the connector away, wait 2 s;
3. records the settled state, the fault code, the outcome and reason of the attempt in
   progress (from the announced result, cross-checked against its durable record), whether the
   outputs were safe at every step (see `Monitor`), and the simulator's violations of
   docs/design.md section 3;
4. recovery: removes the cause (`World.clear`, the cassette refitted, a new cassette for an
   empty ribbon), presses the panel button if the station is in fault, and runs one more clean,
   which must be 'cleaned' on fresh ribbon with no violation.

Each cell has an expected outcome (`expected()`), derived from docs/design.md section 3 and the
controller's documented reasons, and one of three kinds: *effect* (the fault changes what the
station does), *tolerated* (the fault acts but the clean still succeeds) and *no effect* (the
fault arrives after the point where it can matter; it is still run, and must still leave safe
outputs, no violation and a working station).

Without `--write` the script prints the generated section. With `--write FILE` it replaces the
part of FILE between the fault-matrix markers (or writes a new skeleton document).
Exit status 1 when a cell fails.
"""

from __future__ import annotations

import argparse
import logging
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hw_sim import Fault, SimBench  # noqa: E402
from station.config import Config  # noqa: E402
from station.domain import Reason  # noqa: E402

COMMAND = "python bench/fault_matrix.py --write docs/reliability.md"
BEGIN = "<!-- fault-matrix:begin -->"
END = "<!-- fault-matrix:end -->"

PHASES = ["idle", "identifying", "advancing", "dispensing", "swipe_ready", "swiping", "done"]
FAULTS = [f.value for f in Fault]
PHASE_TITLES = {
    "idle": "idle",
    "identifying": "identifying",
    "advancing": "advancing",
    "dispensing": "dispensing (wet)",
    "swipe_ready": "swipe_ready",
    "swiping": "swiping",
    "done": "done (awaiting removal)",
}

# Where in the phase the fault is injected.
INJECTION_POINT = {
    "idle": "ready, nothing presented; 2 s later the operator presents a connector (the next attempt meets the fault)",
    "identifying": "just after the connector is seated, while the guide pins are read (before they settle)",
    "advancing": "in the last position of the move: 0.02 s after the simulator saw the wheel reach position "
    "N-1 (past the index slot, stepper enabled, the final index pulse still to come)",
    "dispensing": "at the start of dispensing: as the advance is confirmed, before the pump pulse",
    "swipe_ready": "0.2 s after swipe-now, before the operator swipes (at 0.5 s)",
    "swiping": "mid-stroke: gate A passed, gate B not yet (1.0 s stroke, injected 0.5 s in)",
    "done": "result shown (cleaned), connector still in the guide; then the operator takes it away",
}

# stuck_sensor: the sensor each phase depends on, and the level it sticks at (True = active).
STUCK_SENSOR = {
    "idle": ("gate_a", True),  # gate A blocked (dirt on the optical gate) before anyone comes
    "identifying": ("pin_left", True),  # left guide-pin sensor reads a pin the female plug has not got
    "advancing": ("index", True),  # index sensor stuck lit: no more pulses
    "dispensing": ("drop", False),  # drop sensor blind (wet nozzle, dead LED)
    "swipe_ready": ("gate_b", True),  # gate B blocked before the stroke begins
    "swiping": ("gate_b", False),  # gate B dead while the connector travels towards it
    "done": ("connector", True),  # connector-present sensor stuck: the removal is never seen
}

CFG = Config()
MARGIN = CFG.wheel.max_steps_per_position - CFG.wheel.steps_per_position
SLIP_STEPS = MARGIN // 2  # within the jam margin: must be absorbed
NOMINAL_STEPS = CFG.wheel.positions_per_clean * CFG.wheel.steps_per_position
WET_FAULTS = {Fault.PUMP_CLOG.value, Fault.EMPTY_RESERVOIR.value}
OPERATOR_DELAY_S = 0.5  # swipe-now to the start of the stroke
SETTLE_S = 2.0  # time left to pass after the connector is taken away

# Diagnoses of cells found failing, printed under the table while they fail.
KNOWN = {
    ("stuck_sensor", "advancing"): (
        "firmware bug: the index sensor sticking active mid-position gives one inactive-to-active "
        "edge, and `AdvanceJob.index_seen` (station/motion.py) counts any edge as a position however "
        "few steps came after the previous one. The move ended DONE, all positions confirmed, after "
        "{steps} steps (nominal {nominal}) while the wheel turned one position less (see the violation), "
        "and swipe-now was given. An index pulse far earlier than steps_per_position should not count "
        "(jam / sensor fault)."
    ),
}

log = logging.getLogger(__name__)


def inject_options(fault: str, phase: str) -> dict[str, Any]:
    if fault == Fault.SLIP.value:
        return {"steps": SLIP_STEPS}
    if fault == Fault.MISSING_INDEX.value:
        return {"count": 1}
    if fault == Fault.EMPTY_RIBBON.value:
        return {"left": 0}
    if fault == Fault.STUCK_SENSOR.value:
        sensor, active = STUCK_SENSOR[phase]
        return {"sensor": sensor, "active": active}
    return {}


def is_wet(fault: str, phase: str) -> bool:
    return phase == "dispensing" or fault in WET_FAULTS


# ======================================================================================= expected
@dataclass(frozen=True)
class Expected:
    kind: str  # "effect" | "tolerated" | "no effect"
    state: str  # settled state after the operator took the connector away
    fault: str | None  # fault code in that state
    outcome: str | None  # outcome of the attempt in progress; None: no attempt was started
    reasons: tuple[str, ...] = ("",)  # accepted reasons (Reason values; "" for cleaned)
    why: str = ""


def _cleaned(kind: str, why: str, state: str = "idle") -> Expected:
    return Expected(kind, state, None, "cleaned", ("",), why)


def _fault(code: str, outcome: str, reason: Reason, why: str) -> Expected:
    return Expected("effect", "fault", code, outcome, (reason.value,), why)


BEFORE_ADVANCE = ("idle", "identifying", "advancing")  # the wheel has still to move (or is moving)
BEFORE_DROP = BEFORE_ADVANCE + ("dispensing",)


def expected(fault: str, phase: str) -> Expected:
    """What the design says must happen (docs/design.md section 3, reasons in station/domain.py)."""
    f = Fault(fault)
    no_effect = "injected after the point where it can matter"
    if f is Fault.JAM:
        if phase in BEFORE_ADVANCE:
            return _fault(
                "jam",
                "failed",
                Reason.JAM,
                "rule 1: no index pulse within the allowed steps; ribbon reserved first, so failed",
            )
        return _cleaned("no effect", no_effect + " (the wheel has finished moving)")
    if f is Fault.SLIP:
        if phase in BEFORE_ADVANCE:
            return _cleaned(
                "tolerated",
                f"slip of {SLIP_STEPS} steps < jam margin {MARGIN}: the firmware steps until the index confirms",
            )
        return _cleaned("no effect", no_effect)
    if f is Fault.MISSING_INDEX:
        if phase in BEFORE_ADVANCE:
            return _fault(
                "jam",
                "failed",
                Reason.JAM,
                "rule 1: a position counts only when the index sees it; a missed pulse looks like a jam",
            )
        return _cleaned("no effect", no_effect)
    if f is Fault.EMPTY_RIBBON:
        if phase in BEFORE_ADVANCE:
            return _fault(
                "jam",
                "failed",
                Reason.JAM,
                "rules 1, 6: the wheel cannot turn past the ribbon's end, no index pulse: jam, never swipe-now",
            )
        return _cleaned("no effect", no_effect + " (the fresh section is already exposed)")
    if f is Fault.PUMP_CLOG:
        if phase in BEFORE_DROP:
            return _fault(
                "no_drop",
                "failed",
                Reason.NO_DROP,
                "rule 4: the drop sensor sees no drop; no wet-to-dry swipe-now on a dry section",
            )
        return _cleaned("no effect", no_effect + " (the drop is already placed)")
    if f is Fault.EMPTY_RESERVOIR:
        if phase in ("idle", "identifying"):
            return Expected(
                "effect",
                "idle",
                None,
                "rejected",
                (Reason.FLUID_LOW.value,),
                "rule 4: a low reservoir refuses wet mode before anything is consumed (not a fault)",
            )
        if phase in ("advancing", "dispensing"):
            return _fault(
                "no_drop",
                "failed",
                Reason.NO_DROP,
                "rule 4: emptied after the fluid check: the pump runs dry, the drop sensor sees nothing",
            )
        return _cleaned("no effect", no_effect + " (the drop is already placed)")
    if f is Fault.STUCK_SENSOR:
        if phase == "idle":
            return Expected(
                "effect",
                "idle",
                None,
                "rejected",
                (Reason.GATE_BLOCKED_EARLY.value,),
                "rule 5/6: a gate reading blocked before the clean: the swipe could never be "
                "judged, so refused before any ribbon is used",
            )
        if phase == "identifying":
            return Expected(
                "effect",
                "fault",
                "sensor",
                "rejected",
                (Reason.DAMAGED_PINS.value,),
                "rule 3: one guide pin sensed is rejected before anything is consumed; with the "
                "connector taken away the sensor still reads a pin: a sensor fault",
            )
        if phase == "advancing":
            return _fault(
                "jam",
                "failed",
                Reason.INDEX_FAULT,
                "rule 1: an index pulse far too soon is a sensor fault, not a position: never swipe-now",
            )
        if phase == "dispensing":
            return _fault("no_drop", "failed", Reason.NO_DROP, "rule 4: the drop is not confirmed: no swipe-now")
        if phase == "swipe_ready":
            return Expected(
                "effect",
                "idle",
                None,
                "failed",
                (Reason.REVERSED.value, Reason.BACK_AND_FORTH.value, Reason.PARTIAL.value, Reason.GATE_BLOCKED.value),
                "rule 5: gate B blocked first: the stroke does not read as one pass A then B, so failed",
            )
        if phase == "swiping":
            return Expected(
                "effect",
                "idle",
                None,
                "failed",
                (Reason.PARTIAL.value,),
                "rule 5: gate B never seen: a partial swipe fails",
            )
        return _cleaned(
            "effect", "the removal is never seen: the station keeps showing the result and starts nothing", state="done"
        )
    if f is Fault.GATE_BOUNCE:
        if phase == "swiping" or phase == "done":
            return _cleaned("no effect", no_effect + " (the stroke's gate edges are already made)")
        return _cleaned("tolerated", "rule 5: contact bounce (< glitch_s) is filtered, a good swipe is still good")
    if f is Fault.CASSETTE_PULLED:
        if phase == "idle":
            return Expected(
                "effect",
                "fault",
                "no_cassette",
                None,
                ("",),
                "no cassette: the station waits and starts nothing; refitting clears it",
            )
        if phase == "identifying":
            return Expected(
                "effect",
                "fault",
                "cassette_pulled",
                "rejected",
                (Reason.CASSETTE_PULLED.value,),
                "rule 7: pulled mid-cycle is a fault; no ribbon reserved yet, so rejected",
            )
        if phase == "done":
            return Expected(
                "effect",
                "fault",
                "no_cassette",
                "cleaned",
                ("",),
                "the attempt was already concluded (cleaned); a missing cassette outside a cycle is the self-clearing no_cassette fault",
            )
        return _fault(
            "cassette_pulled",
            "failed",
            Reason.CASSETTE_PULLED,
            "rule 7: pulled mid-cycle is a fault; the ribbon was reserved, so failed",
        )
    if f is Fault.CONNECTOR_PULLED:
        if phase == "idle":
            return _cleaned("no effect", "nothing in the guide to pull; the next clean is normal")
        if phase == "identifying":
            return Expected(
                "effect",
                "idle",
                None,
                "rejected",
                (Reason.REMOVED_EARLY.value,),
                "removed before anything was consumed: rejected",
            )
        if phase == "swiping":
            return Expected(
                "effect",
                "idle",
                None,
                "failed",
                (Reason.REMOVED_MID_CYCLE.value, Reason.PARTIAL.value),
                "rule 5: lifted after gate A, before gate B",
            )
        if phase == "done":
            return _cleaned("no effect", "taking the connector away is the normal end of a clean")
        return Expected(
            "effect",
            "idle",
            None,
            "failed",
            (Reason.REMOVED_MID_CYCLE.value,),
            "rule 1: the reserved ribbon is consumed; the clean failed",
        )
    raise ValueError(fault)


# ======================================================================================= results
@dataclass
class Cell:
    fault: str
    phase: str
    wet: bool
    options: dict[str, Any]
    expected: Expected
    state: str = ""
    fault_code: str | None = None
    outcome: str | None = None
    reason: str = ""
    attempts: int = 0  # attempts the cell started before recovery (must be 0 or 1)
    steps: int | None = None  # steps of the cell's first wheel move (evidence that a slip acted)
    gate_edges: int = 0  # gate edges the controller saw in the attempt (evidence of bounce)
    books: list[str] = field(default_factory=list)  # disagreements between results and records
    unsafe: list[str] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    recovered: bool = False
    recovery: list[str] = field(default_factory=list)  # why recovery did not succeed
    error: str | None = None

    @property
    def id(self) -> str:
        return f"{self.fault}-{self.phase}"

    def mismatches(self) -> list[str]:
        """How the observed outcome differs from the expected one (empty: as expected)."""
        e = self.expected
        out = []
        if self.state != e.state:
            out.append(f"state {self.state!r}, expected {e.state!r}")
        if self.fault_code != e.fault:
            out.append(f"fault {self.fault_code!r}, expected {e.fault!r}")
        if self.outcome != e.outcome:
            out.append(f"outcome {self.outcome!r}, expected {e.outcome!r}")
        elif self.outcome is not None and self.reason not in e.reasons:
            out.append(f"reason {self.reason!r}, expected one of {list(e.reasons)}")
        if self.attempts > 1:
            out.append(f"{self.attempts} attempts started, expected at most one")
        out += self._evidence()
        return out

    def _evidence(self) -> list[str]:
        """A 'tolerated' fault must really have acted, a 'no effect' one must really not have
        (otherwise the cell would pass without testing anything)."""
        tolerated = self.expected.kind == "tolerated"
        if self.fault == Fault.SLIP.value and self.steps is not None:
            want = NOMINAL_STEPS + (SLIP_STEPS if tolerated else 0)
            if self.steps != want:
                return [f"first advance took {self.steps} steps, expected {want}"]
        if self.fault == Fault.GATE_BOUNCE.value and self.outcome == "cleaned":
            if tolerated and self.gate_edges <= 4:
                return [f"the controller saw {self.gate_edges} gate edges: the bounce did not reach it"]
            if not tolerated and self.gate_edges != 4:
                return [f"the controller saw {self.gate_edges} gate edges, expected a clean 4"]
        return []

    def problems(self) -> list[str]:
        out = []
        if self.error:
            out.append(f"error: {self.error}")
        out += self.mismatches()
        out += [f"books: {b}" for b in self.books]
        out += [f"unsafe: {u}" for u in self.unsafe]
        out += [f"violation: {v}" for v in self.violations]
        if not self.recovered:
            out.append("not recovered: " + "; ".join(self.recovery or ["?"]))
        return out

    @property
    def passed(self) -> bool:
        return not self.problems()

    def observed(self) -> str:
        if self.error and not self.state:
            return "error"
        head = f"fault {self.fault_code}" if self.state == "fault" else ("" if self.state == "idle" else self.state)
        if self.outcome is None:
            tail = "no attempt"
        elif self.outcome == "cleaned":
            tail = "cleaned"
        else:
            tail = f"{self.outcome} ({_reason_key(self.reason)})"
        return f"{head} / {tail}" if head else tail

    def text(self) -> str:
        prefix = {"no effect": "no effect: ", "tolerated": "tolerated: "}.get(self.expected.kind, "")
        ok = not (self.error or self.mismatches() or self.books or self.unsafe or self.violations)
        mark = "✓" if ok else "✗"
        rec = "recovered" if self.recovered else "NOT recovered"
        return f"{prefix}{self.observed()} {mark} {rec}"


def _reason_key(text: str) -> str:
    for r in Reason:
        if r.value == text:
            return r.name.lower()
    return text or "-"


# ======================================================================================= running
class Monitor:
    """Safe outputs at every step, as the simulator sees the pins.

    * on every output change: the stepper is enabled or stepped only while advancing (or
      servicing), the pump runs only while dispensing (or servicing);
    * after every handler (timer or posted event) has run to completion: stepper disabled and
      pump off outside those states, red light on in fault.
    """

    MOVING = {"advancing", "servicing"}
    DOSING = {"dispensing", "servicing"}

    def __init__(self, bench: SimBench) -> None:
        self.bench = bench
        self.problems: list[str] = []
        world = bench.world
        assert world is not None
        pins = bench.config.pins
        self._roles = {pins.enable: "enable", pins.step: "step", pins.pump: "pump"}
        inner = bench.factory.on_output

        def on_output(bcm: int, value: bool) -> None:
            if inner is not None:
                inner(bcm, value)
            self._on_output(bcm, value)

        bench.factory.on_output = on_output

    def _note(self, text: str) -> None:
        text = f"t={self.bench.loop.now():.3f} {text}"
        if text not in self.problems and len(self.problems) < 10:
            self.problems.append(text)

    def _on_output(self, bcm: int, value: bool) -> None:
        role = self._roles.get(bcm)
        state = self.bench.state
        w = self.bench.world
        if role in ("enable", "step") and w.stepper_enabled and state not in self.MOVING:
            self._note(f"stepper {'stepped' if role == 'step' else 'enabled'} in state {state}")
        if role == "pump" and value and state not in self.DOSING:
            self._note(f"pump on in state {state}")

    def check(self) -> None:
        state = self.bench.state
        w = self.bench.world
        if w.stepper_enabled and state not in self.MOVING:
            self._note(f"stepper enabled in state {state}")
        if w.pump_on and state not in self.DOSING:
            self._note(f"pump on in state {state}")
        if state == "fault" and not w.leds()[2]:
            self._note("fault without the red light")


class CellRun:
    """One cell: a fresh bench, driven to the phase, the fault, the operator, the recovery."""

    def __init__(self, fault: str, phase: str) -> None:
        self.fault = fault
        self.phase = phase
        self.wet = is_wet(fault, phase)
        self.options = inject_options(fault, phase)
        self.cell = Cell(fault, phase, self.wet, self.options, expected(fault, phase))
        self.bench: SimBench | None = None
        self.prompt_at: float | None = None
        self.swiped = False
        self.first_attempt: Any = None  # the controller's Attempt of the cell's clean

    def _on_event(self, kind: str, data: dict[str, Any]) -> None:
        if kind == "attempt" and self.first_attempt is None:
            self.first_attempt = self.bench.controller.attempt

    # ------------------------------------------------------------------ time, watched
    def run(self, seconds: float) -> None:
        self.bench.loop.run_while(lambda: (self.monitor.check(), True)[1], seconds)
        self.monitor.check()

    def wait(self, predicate: Callable[[], bool], limit_s: float) -> bool:
        def busy() -> bool:
            self.monitor.check()
            return not predicate()

        ok = self.bench.loop.run_while(busy, limit_s)
        self.monitor.check()
        return ok

    @property
    def state(self) -> str:
        return self.bench.state

    def _prompted(self) -> None:
        self.prompt_at = self.bench.loop.now()

    # ------------------------------------------------------------------ the operator
    def present(self) -> None:
        w = self.bench.world
        w.set_mode(self.wet)
        self.prompt_at = None
        self.swiped = False
        w.present("female")

    def swipe(self, duration_s: float = 0.6) -> None:
        w = self.bench.world
        if self.prompt_at is not None:
            left = self.prompt_at + OPERATOR_DELAY_S - self.bench.loop.now()
            if left > 0:
                self.run(left)
        if w.prompting and w.connector is not None:
            w.swipe(duration_s=duration_s)
            self.swiped = True

    def results(self) -> int:
        return len(self.bench.results())

    def finish_attempt(self, n_before: int) -> None:
        """Carry on as a disciplined operator: swipe when told, take the connector away."""
        w = self.bench.world
        self.wait(lambda: w.prompting or self.results() > n_before or self.state == "fault", 30)
        if w.prompting and not self.swiped and w.connector is not None:
            self.swipe()
        self.wait(lambda: self.results() > n_before or self.state == "fault", 60)
        if w.connector is not None:
            w.remove()
        self.wait(lambda: self.state in ("idle", "fault"), 10)
        self.run(SETTLE_S)

    # ------------------------------------------------------------------ phases
    def inject(self) -> None:
        self.bench.world.inject(self.fault, **self.options)

    def drive_and_inject(self) -> None:
        b, w, phase = self.bench, self.bench.world, self.phase

        def need(ok: bool, what: str) -> None:
            if not ok:
                raise RuntimeError(f"could not reach {what} (state {b.state})")

        if phase == "idle":
            self.run(0.5)
            need(self.state == "idle", "idle")
            self.inject()
            self.run(SETTLE_S)
            self.present()
            self.finish_attempt(0)
            return
        if phase == "dispensing":
            fired = []

            def before_pulse(kind: str, data: dict[str, Any]) -> None:
                if kind == "advanced" and not fired:
                    fired.append(b.loop.now())
                    self.inject()

            b.controller.subscribe(before_pulse)
            self.present()
            need(self.wait(lambda: bool(fired), 20), "the end of the advance")
            b.controller.unsubscribe(before_pulse)
            self.finish_attempt(0)
            return
        self.present()
        if phase == "identifying":
            need(self.wait(lambda: self.state == "identifying", 5), "identifying")
        elif phase == "advancing":
            need(self.wait(lambda: self.state == "advancing", 10), "advancing")
            last = w.positions_total + CFG.wheel.positions_per_clean - 1
            need(self.wait(lambda: w.positions_total >= last, 10), "the last position of the move")
            self.run(0.02)
            need(self.state == "advancing" and w.stepper_enabled, "the wheel moving")
        elif phase == "swipe_ready":
            need(self.wait(lambda: w.prompting, 20), "swipe-now")
            self.run(0.2)
            need(self.state == "swipe_ready", "swipe_ready")
        elif phase == "swiping":
            need(self.wait(lambda: w.prompting, 20), "swipe-now")
            self.swipe(duration_s=1.0)
            self.run(0.5)
            need(self.state == "swiping", "swiping")
        elif phase == "done":
            need(self.wait(lambda: w.prompting, 20), "swipe-now")
            self.swipe()
            need(self.wait(lambda: self.results() > 0, 20) and self.state == "done", "done")
            need(b.last_result()["outcome"] == "cleaned", "a cleaned result before the fault")
        self.inject()
        self.finish_attempt(0)

    # ------------------------------------------------------------------ observation
    def observe(self) -> None:
        b, c = self.bench, self.cell
        c.state = b.state
        c.fault_code = b.controller.fault_code.value if b.controller.fault_code else None
        results = b.results()
        c.attempts = len(results)
        if results:
            c.outcome, c.reason = results[0]["outcome"], results[0]["reason"]
        c.books += self.check_books()
        moves = [e.data for e in b.events if e.kind == "advanced"]
        c.steps = moves[0]["steps"] if moves else None
        attempt = self.first_attempt
        c.gate_edges = len(attempt.gate_edges) if attempt is not None else 0

    def check_books(self) -> list[str]:
        """Rule 8: every attempt has exactly one durable record, and it says what was announced."""
        b = self.bench
        records = sorted(b.controller.store.attempts(), key=lambda r: r.id)
        results = b.results()
        out = []
        if len(records) != len(results):
            out.append(f"{len(records)} durable records for {len(results)} announced results")
        for rec, res in zip(records, results):
            if rec.id != res["id"] or rec.outcome != res["outcome"] or not (rec.reason or "").startswith(res["reason"]):
                out.append(
                    f"record {rec.id} {rec.outcome} {rec.reason!r} != result {res['id']} {res['outcome']} {res['reason']!r}"
                )
        return out

    # ------------------------------------------------------------------ recovery
    def recover(self) -> None:
        b, w, c = self.bench, self.bench.world, self.cell
        f = Fault(self.fault)
        if w.connector is not None:
            w.remove()
        if f is Fault.CASSETTE_PULLED:
            w.fit_cassette("standard")
        elif f is Fault.EMPTY_RIBBON:
            w.fit_cassette("standard-2")  # a new cassette of the same type
        elif f is not Fault.CONNECTOR_PULLED:
            w.clear(f)
        self.run(0.5)
        if self.state == "fault":
            w.press_button(0.1)
            self.run(0.5)
        if not self.wait(lambda: self.state == "idle", 10):
            c.recovery.append(f"still {self.state} (fault {b.controller.fault_code}) after clearing the cause")
            return
        if f is Fault.EMPTY_RIBBON:  # declare it new: long press within 120 s of fitting it
            n = len([e for e in b.events if e.kind == "cassette"])
            w.press_button(CFG.panel.long_press_s + 0.5)
            self.run(CFG.panel.long_press_s + 1.0)
            if len([e for e in b.events if e.kind == "cassette"]) != n + 1:
                c.recovery.append("the long press did not declare the new cassette")
        swipes, prompts, n = len(w.swipes), w.prompts, self.results()
        self.present()
        self.finish_attempt(n)
        res = b.last_result() if self.results() > n else None
        if res is None or res["outcome"] != "cleaned":
            c.recovery.append(f"next clean: {res and (res['outcome'], res['reason'])}")
        if w.prompts != prompts + 1 or len(w.swipes) != swipes + 1:
            c.recovery.append(f"next clean: {w.prompts - prompts} swipe-now, {len(w.swipes) - swipes} swipes")
        elif not (w.swipes[-1].prompted and w.swipes[-1].fresh):
            c.recovery.append("next clean: swipe not prompted or not on fresh ribbon")
        elif w.fitted.drops.get(w.swipes[-1].section, 0) != (1 if self.wet else 0):
            c.recovery.append("next clean: wrong number of drops on the section")
        if self.state != "idle" or w.leds() != (True, False, False) or w.stepper_enabled or w.pump_on:
            c.recovery.append(f"after the next clean: state {self.state}, leds {w.leds()}")
        c.books += [b_ for b_ in self.check_books() if b_ not in c.books]
        c.recovered = not c.recovery

    # ------------------------------------------------------------------ all of it
    def execute(self) -> Cell:
        c = self.cell
        try:
            self.bench = SimBench()
            self.bench.world.when_prompted(self._prompted)
            self.bench.controller.subscribe(self._on_event)
            self.monitor = Monitor(self.bench)
            try:
                self.drive_and_inject()
            finally:
                self.observe()
            self.recover()
        except Exception as exc:  # a cell that blows up is a failed cell, not a dead matrix
            c.error = f"{type(exc).__name__}: {exc}"
            log.debug("cell %s\n%s", c.id, traceback.format_exc())
        finally:
            if self.bench is not None:
                c.unsafe = list(self.monitor.problems) if hasattr(self, "monitor") else []
                c.violations = [f"rule {v.rule} at t={v.t:.3f}: {v.text}" for v in self.bench.world.violations]
                try:
                    self.bench.close()
                except Exception as exc:
                    c.error = c.error or f"close: {type(exc).__name__}: {exc}"
        return c


def run_cell(fault: str, phase: str) -> Cell:
    return CellRun(Fault(fault).value, phase).execute()


def cells_to_run() -> list[tuple[str, str]]:
    return [(f, p) for f in FAULTS for p in PHASES]


def run_matrix() -> list[Cell]:
    return [run_cell(f, p) for f, p in cells_to_run()]


# ======================================================================================= report
def markdown(cells: list[Cell]) -> str:
    """The generated section: table, legend, choices, the command, the pass count."""
    by = {(c.fault, c.phase): c for c in cells}
    passed = sum(c.passed for c in cells)
    lines = [
        f"Generated by `{COMMAND}` from `bench/fault_matrix.py`; "
        "`tests/test_fault_matrix.py` runs every cell and fails when this section is stale.",
        "",
        f"**{passed} of {len(cells)} cells pass.**",
        "",
        "| fault \\ phase | " + " | ".join(PHASE_TITLES[p] for p in PHASES) + " |",
        "|---|" + "---|" * len(PHASES),
    ]
    for f in FAULTS:
        row = [by[(f, p)].text() if (f, p) in by else "" for p in PHASES]
        lines.append(f"| {f} | " + " | ".join(row) + " |")
    lines += [
        "",
        "Legend:",
        "",
        "- Each cell: what the station did with the attempt in progress — `fault <code>` when it",
        "  ended in fault (otherwise the settled state if not `idle`), then the attempt's outcome and",
        "  its reason (`station.domain.Reason` name), or `no attempt`.",
        "- `✓`: the outcome is the expected one, the outputs were safe at every step (stepper",
        "  disabled and pump off except while advancing / dispensing; red light on in fault), the",
        "  simulator recorded no violation of docs/design.md section 3, and the announced results match",
        "  the durable records. `✗`: one of these did not hold (see the failures below).",
        "- `recovered`: after the cause was removed (`World.clear`, the cassette refitted, a new",
        "  cassette declared for an empty ribbon) and the button pressed if in fault, one more clean",
        "  was `cleaned`, prompted, on fresh ribbon, with no violation.",
        "- `tolerated:` the fault acted but the design says the clean must still succeed;",
        "  `no effect:` the fault arrives after the point where it can matter (still required: safe",
        "  outputs, no violation, recovery).",
        "",
        "Choices:",
        "",
        "- Connector: female, on the standard cassette. Wet-to-dry for the dispensing column and",
        f"  for the {', '.join(sorted(WET_FAULTS))} rows; dry otherwise.",
        f"- slip: {SLIP_STEPS} extra steps (jam margin {MARGIN}); missing_index: one pulse;",
        "  empty_ribbon: the ribbon ends at the section under the window.",
        "- Injection point per phase:",
    ]
    lines += [f"  - {PHASE_TITLES[p]}: {INJECTION_POINT[p]}." for p in PHASES]
    lines.append(
        "- stuck_sensor, per phase: "
        + "; ".join(
            f"{PHASE_TITLES[p]}: `{s}` stuck {'active' if a else 'inactive'}" for p, (s, a) in STUCK_SENSOR.items()
        )
        + "."
    )
    failing = [c for c in cells if not c.passed]
    if failing:
        lines += ["", "Failing cells:", ""]
        for c in failing:
            lines.append(f"- {c.fault} / {c.phase}: " + "; ".join(c.problems()) + f" (expected: {c.expected.why})")
            if (c.fault, c.phase) in KNOWN:
                lines.append("  Diagnosis: " + KNOWN[(c.fault, c.phase)].format(steps=c.steps, nominal=NOMINAL_STEPS))
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
    if path.exists() and section(path.read_text(encoding="utf-8")) is not None:
        text = path.read_text(encoding="utf-8")
        head, rest = text.split(BEGIN, 1)
        tail = rest.split(END, 1)[1]
        path.write_text(f"{head}{BEGIN}\n{body}{END}{tail}", encoding="utf-8")
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(SKELETON.format(begin=BEGIN, body=body, end=END), encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--write", metavar="FILE", help="replace the fault-matrix section of FILE (e.g. docs/reliability.md)"
    )
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.CRITICAL)  # the firmware logs every fault it handles
    cells = run_matrix()
    body = markdown(cells)
    if args.write:
        write(Path(args.write), body)
        print(f"{sum(c.passed for c in cells)} of {len(cells)} cells pass; wrote {args.write}")
    else:
        print(body)
    return 0 if all(c.passed for c in cells) else 1


if __name__ == "__main__":
    sys.exit(main())
