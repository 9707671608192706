"""The judge of docs/design.md section 3, fed by the world's physical happenings.

The world tells it what physics does: the step pulses the driver takes and the index pulses the
sensor can see, the pump pulses and the drops, the lights, the connector seated and lifted, the
strokes across the window, the panel button, the cassettes, the faults injected. The judge keeps
one `Session` per connector in the guide and records a `Violation` in `world.violations` when
a rule is broken. It never reads the firmware's memory or its announcements; the books and the
records it takes from the station's database through the `Auditor` (set by the bench), what
the station states to people from its answers to `STAT?` and `status` asked on the console
(`Statements`, rule 6), and it leaves the stuck station and the state after shutdown to the
`Watchdog` (rule 7).

What it checks, rule by rule, is listed in docs/reliability.md ("What the simulator judges").
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

from station.config import Config
from station.domain import Reason

from .auditor import Auditor, cassette_type
from .inspection_truth import InspectionTruth
from .lights import PanelView
from .model import ConnectorKind, SwipeVariant
from .outcome import check_record, check_verdict, refusal_rule
from .session import Session, Stroke, must_refuse
from .statements import Statements
from .trace_truth import TraceTruth
from .watchdog import Watchdog

if TYPE_CHECKING:
    from .world import World


class Judge:
    """Judges one world's physics (and, with an auditor, the books and records against it)."""

    def __init__(self, world: World) -> None:
        self.w = world
        self.lights = PanelView()
        self.auditor: Auditor | None = None
        self.watchdog = Watchdog(self)
        self.statements = Statements(self)  # what the station states, asked as a person asks (rule 6)
        self.trace = TraceTruth()  # the codes the scanner read (rule 9)
        self.inspection = InspectionTruth(self)  # the probe's reports against the verdicts recorded (rule 10)
        self.session: Session | None = None  # the connector in the guide
        self.arriving: Session | None = None  # the last seated, until the instant it was seated is over
        self.pending: list[Session] = []  # attempts the station took up, not yet held to their record
        self.guide_empty_since: float | None = 0.0
        self.wet_when_seen = False  # the mode chosen when the firmware last saw a connector arrive
        self.last_activity = float("-inf")  # last step or pump pulse
        self.move_steps = 0
        self.move_index: int | None = None  # index pulses the sensor could see in the last move
        self.move_session: Session | None = None
        self.button_down_at: float | None = None
        self.short_press_at: float | None = None
        self._press_told: float | None = None
        self.episode_audit: int | None = None  # audit rows when the panel last showed ready
        self.episode_checked: set[str] = set()
        self.judged: deque[Session] = deque(maxlen=8)  # the last attempts held to their records
        self._said: set[str] = set()
        self.closed = False

    # ------------------------------------------------------------------ plumbing
    def now(self) -> float:
        return self.w.loop.now()

    def config(self) -> Config:
        """The configuration in force (the file's, with the console's changes the books keep)."""
        return self.auditor.config() if self.auditor is not None else self.w.config

    def violate(self, rule: int, text: str) -> None:
        self.w._violate(rule, text)

    def _once(self, key: str, rule: int, text: str) -> None:
        if key not in self._said:
            self._said.add(key)
            self.violate(rule, text)

    def attach(self, auditor: Auditor) -> None:
        self.auditor = self.trace.auditor = auditor
        self.episode_audit = auditor.audit_max()
        auditor.refills_from_the_float(self.w.refills_seen)  # the baselines, when new

    def _clean(self) -> Session | None:
        """The attempt the station has in hand (the last one it took up, until it is judged)."""
        return self.pending[-1] if self.pending else None

    def _long_press(self, down: float) -> None:
        """The button (pressed at `down`) held long enough for the firmware's long press: a
        person's declaration of the fitted cassette as new may follow (one: the auditor is told
        once per press)."""
        if self.auditor is not None and self._press_told != down:
            self._press_told = down
            self.auditor.long_pressed = True

    def long_press_held(self) -> None:
        """The button held down long enough for a long press, and still held: the auditor is
        told before it next reads the books (a declaration may already be on them)."""
        down, lp = self.button_down_at, self.config().panel.long_press_s
        if down is not None and self.now() >= down + lp - 1e-6:
            self._long_press(down)

    def _books(self, rule: int, when: str) -> None:
        """Rules 1 and 6: the ribbon books of the fitted cassette never above its ribbon."""
        if self.auditor is None:
            return
        self.long_press_held()
        problem = self.auditor.ribbon(self.w.fitted)
        if problem is not None:
            self._once(f"ribbon {rule} {problem}", rule, f"{when}: {problem}")

    def _fluid(self) -> None:
        if self.auditor is not None:
            problem = self.auditor.fluid_short(self.w.drops_total)
            if problem is not None:
                self._once(f"fluid {problem}", 6, f"fluid books below the drops dispensed: {problem}")
            problem = self.auditor.refills_from_the_float(self.w.refills_seen)
            if problem is not None:
                self._once(f"refill {problem}", 6, f"a refill with no refill in the reservoir: {problem}")

    def _maintenance(self, kind: str) -> None:
        """Rule 8: a wheel move or a pump pulse with no clean in hand is a maintenance action,
        audited before it began (once per stretch between two showings of ready)."""
        if self.auditor is None or kind in self.episode_checked or self.episode_audit is None:
            return
        self.episode_checked.add(kind)
        if self.auditor.maintenance_audited(kind, self.episode_audit) is False:
            what = "the wheel moved" if kind == "move" else "the pump pulsed"
            self.violate(
                8, f"{what} with no clean in progress and no maintenance action (jog, prime, selftest) audited"
            )

    # ------------------------------------------------------------------ the connector and the hand
    def seated(self, kind: ConnectorKind, chatter_s: float) -> None:
        now, w = self.now(), self.w
        if self.session is not None:
            self.session.removed_at = now
        fitted = w.fitted
        s = Session(
            kind,
            now,
            chatter_s,
            candidate=self.lights.resting(now),
            cassette=fitted.name if fitted else None,
            male_mt=fitted.male_mt if fitted else None,
            wet_at_seat=w.chosen_wet,
            fluid_low_at_seat=w.sensor("fluid_low"),
        )
        if w.inputs.stuck:
            s.disturbed.append(f"sensors held by a fault: {', '.join(sorted(w.inputs.stuck))}")
        if self.auditor is not None and s.candidate:
            s.attempts_before = self.auditor.attempts_max()
            books = self.auditor.books(cassette_type(fitted.male_mt)) if fitted else None
            s.books_left = books.left if books is not None else None
        s.scanned = self.trace.at_seating()
        self.session = self.arriving = s
        self.guide_empty_since = None
        self.watchdog.seated(now)

    def connector_line_rose(self) -> None:
        self.wet_when_seen = self.w.chosen_wet

    def removed(self) -> None:
        now, s = self.now(), self.session
        self.session, self.guide_empty_since = None, now
        if s is None:
            return
        s.removed_at = now
        for k in s.strokes:
            if k.end_t > now:
                k.cut_at = now

    def scanned(self, code: str) -> None:
        label = self.trace.scanned(code, self.now(), self.config()) == "cassette"
        if label and self.auditor is not None and self.w.fitted is not None:
            self.auditor.labels_read.setdefault(code, self.w.fitted.position)  # read on the fitted cassette

    def stroke(self, direction: str, duration_s: float, variant: SwipeVariant, bounce: bool, end_t: float) -> None:
        if self.session is not None:
            self.session.strokes.append(Stroke(self.now(), direction, variant, duration_s, bounce, end_t))

    def button(self, pressed: bool) -> None:
        """The button line as the firmware reads it: a release before the long-press time is a
        short press (a cancel while a clean runs), a longer hold a long press."""
        now = self.now()
        if pressed:
            self.button_down_at = now
            return
        down, self.button_down_at = self.button_down_at, None
        if down is None:
            return
        lp = self.config().panel.long_press_s
        if now - down < lp - 1e-6:
            self.short_press_at = now
            s = self._clean()
            if s is not None and s.seated and s.cancelled_at is None:
                s.cancelled_at = now
        else:
            self._long_press(down)
            self._books(6, "after a long press")

    def disturb(self, why: str) -> None:
        """Something beyond the station's control happened during the clean (a fault injected,
        the cassette handled): its outcome is not judged against the stroke."""
        if self.session is not None:
            self.session.disturbed.append(why)

    def cassette_handled(self, what: str) -> None:
        self._books(6, f"before the cassette was {what}")
        self.disturb(f"cassette {what}")
        if what == "fitted":  # and again once the station has taken the fitting in
            self.w.loop.call_later(0.0, self._fitted_taken_in)

    def _fitted_taken_in(self) -> None:
        self._books(6, "once the cassette was fitted")
        self.statements.settled("once the cassette was fitted")

    # ------------------------------------------------------------------ the wheel
    def move_started(self) -> None:
        self.move_steps, self.move_index = 0, 0
        self.move_session = self._clean()

    def index_rose(self) -> None:
        if self.w.stepper_enabled and self.move_index is not None:
            self.move_index += 1

    def stepped(self, forward: bool, turns: bool) -> None:
        now, w = self.now(), self.w
        self.last_activity = now
        if w.leds()[2]:
            self.violate(7, "motor stepped while the fault light is on")
        if turns and not forward:
            self.violate(1, "wheel driven backwards: used ribbon would come back under the window")
        self.move_steps += 1
        s = self.move_session
        if s is not None:
            s.steps += 1
        if self.move_steps > 1:
            return
        self._books(6, "as the wheel started")
        if s is None:
            self._maintenance("move")
        elif s.seated:
            s.fluid_low_at_move = w.sensor("fluid_low")
            s.mode_changed |= w.chosen_wet != s.wet_at_seat
            refusal = must_refuse(s, self.config())
            if isinstance(refusal, Reason) and not s.refusal_flagged:
                s.refusal_flagged = True
                self.violate(refusal_rule(refusal), f"wheel advanced for {s.describe()}: {refusal.value}")

    def position_done(self) -> None:
        if self.move_session is not None:
            self.move_session.positions += 1
        self._books(6, "as the wheel reached a new position")

    # ------------------------------------------------------------------ the pump
    def pumped(self, section: int | None, dropped: bool) -> None:
        now = self.now()
        self.last_activity = now
        s = self._clean()
        if s is None:
            if not self.lights.maintenance_look(now):
                self.violate(4, "drop with no clean in progress and the panel not in the service pattern")
            self._maintenance("pump")
        else:
            self._clean_drop(s, section, now)
        if dropped:
            self._fluid()

    def _clean_drop(self, s: Session, section: int | None, now: float) -> None:
        w = self.w
        if s.removed_at is not None and now > s.removed_at:
            self.violate(4, f"drop after {s.describe()} was taken away during the clean")
        elif s.cancelled_at is not None and now > s.cancelled_at:
            self.violate(4, f"drop after the clean of {s.describe()} was cancelled on the panel")
        else:
            if not w.chosen_wet:
                self.violate(4, "pump driven in dry mode")
            elif not self.wet_when_seen:
                self.violate(4, "pump driven in a clean started in dry mode")
            refusal = must_refuse(s, self.config())
            if isinstance(refusal, Reason) and not s.refusal_flagged:
                s.refusal_flagged = True
                self.violate(refusal_rule(refusal), f"drop for {s.describe()}: {refusal.value}")
            low_then = s.fluid_low_at_seat and s.fluid_low_at_move and not s.disturbed
            if low_then and s.wet_at_seat and not s.mode_changed:
                self.violate(4, f"wet clean of {s.describe()} begun while the reservoir's float switch read low")
        cassette = w.fitted
        if section is not None and cassette is not None:
            if cassette.drops[section] > 1:
                self.violate(4, f"second drop on section {section}")
            if cassette.touched.get(section):
                self.violate(4, f"drop on section {section}, which was already used")
        s.drops += 1
        if s.drop_at is None:
            s.drop_at = now

    # ------------------------------------------------------------------ the panel
    def leds_changed(self, green: bool, amber: bool, red: bool, prompt_began: bool, prompt_ended: bool) -> None:
        now, lights = self.now(), self.lights
        in_fault = lights.red_steady(now)
        if in_fault:
            self._fault_seen()
        lights.update(green, amber, red, now)
        if in_fault and not red and self.short_press_at == now:
            self._fault_acknowledged()
        s = self.arriving
        if s is not None and s.candidate and not s.attempt and s.seated_at == now and lights.amber_alone:
            s.attempt = True  # the station took it up at once: busy where it was ready
            self.pending.append(s)
        clean = self._clean()
        if clean is not None and clean.busy_ended_at is None and not lights.amber_alone:
            clean.busy_ended_at = now  # what the operator was told since the seating is over
        if prompt_began:
            self._prompt(clean)
        if prompt_ended and clean is not None and clean.prompted_at is not None and clean.prompt_ended_at is None:
            clean.prompt_ended_at = now
        if clean is not None and clean.prompt_ended_at is not None and clean.shown is None:
            clean.shown = "cleaned" if lights.green_alone else "failed" if lights.red_alone else None
        if lights.green_alone or (lights.red and (lights.green or lights.amber)):
            self._ready_shown()  # ready, or an inspection look (shown only while ready: panel.py)
        self.statements.panel(lights.green_alone, green or amber or red, prompt_began)
        self.watchdog.lights_changed(now)

    def _fault_acknowledged(self) -> None:
        """Rule 8: a person cleared the fault with the panel button (the red light went out as the
        button was let go): the clear is audited, after the fault it clears."""
        if self.auditor is not None and self.auditor.fault_clear_audited() is False:
            self.violate(8, "fault cleared with the panel button, and no fault_clear audited after the fault")

    def _fault_seen(self) -> None:
        for s in self.pending:
            s.fault_seen = True

    def _prompt(self, s: Session | None) -> None:
        """The firmware has just told the operator to swipe. Is that physically right?"""
        w = self.w
        w.prompts += 1
        n = self.config().wheel.positions_per_clean
        cassette = w.fitted
        if cassette is None:
            self.violate(1, "swipe-now with no cassette fitted")
            return
        section = cassette.position
        if w._move_positions != n:
            self.violate(1, f"the last wheel move advanced {w._move_positions} positions, not {n}")
        elif self.move_index is not None and self.move_index != n:
            self.violate(1, f"the last wheel move was confirmed by {self.move_index} visible index pulses, not {n}")
        if section in cassette.offered:
            self.violate(1, f"swipe-now on section {section} a second time")
        cassette.offered.append(section)
        w._persist()
        if cassette.touched.get(section):
            self.violate(1, f"swipe-now on section {section}, which was already used")
        if section > cassette.capacity:
            self.violate(6, f"swipe-now past the end of the ribbon (section {section} of {cassette.capacity})")
        self._books(1, "at swipe-now, the fresh section not on the books")
        if w.connector is None:
            self.violate(2, "swipe-now with no connector in place")
        elif w.connector is ConnectorKind.BENT:
            self.violate(3, "swipe-now for a connector with a bent guide pin")
        elif (w.connector is ConnectorKind.MALE) != cassette.male_mt:
            self.violate(2, f"swipe-now for a {w.connector.value} connector on the wrong cassette")
        # Rule 4 against the people's choice. A clean is wet-to-dry only if WET was chosen when
        # the connector arrived and still is: switched to DRY on the way, the drop must not come
        # (never fluid in dry mode); switched to WET on the way, the clean started dry stays dry
        # (the fluid check was for a dry clean). A drop placed in WET mode stays placed if the
        # switch moves between the drop and swipe-now (the pump check judges the drop itself).
        drops = cassette.drops.get(section, 0)
        wet = self.wet_when_seen and w.chosen_wet
        if drops > 1 or (wet and drops == 0):
            self.violate(4, f"{'wet-to-dry' if wet else 'dry'} swipe-now with {drops} drops on the section")
        elif drops and not self.wet_when_seen:
            self.violate(4, "dry swipe-now on a wet section")
        if s is not None and s.prompted_at is None:
            s.prompted_at = self.now()
            s.mode_changed |= w.chosen_wet != s.wet_at_seat

    def _ready_shown(self) -> None:
        """Green alone: ready (or the cleaned result): the attempts the station is done with are
        held to their records, and a new stretch for maintenance actions begins."""
        if self.auditor is not None:
            self.episode_audit = self.auditor.audit_max()
            self.episode_checked.clear()
            self._books(6, "as the panel showed ready")
            self.inspection.check()
        self._judge_attempts(final=False)

    def _judge_attempts(self, *, final: bool) -> None:
        a = self.auditor
        if a is None:
            self.pending = [s for s in self.pending if s.seated]
            return
        config = self.config()
        for s in list(self.pending):
            if s.prompt_ended_at is not None and not s.verdict_judged and (s.shown is not None or final):
                records = a.records(s.attempts_before, None) if s.attempts_before is not None else None
                if records:
                    s.verdict_judged = True
                    check_verdict(s, records[0], config, self.violate)
            if s.seated and not final:
                continue
            self.pending.remove(s)
            if s.seated or s.attempts_before is None:
                continue  # not taken away: no physical attempt yet
            later = [p.attempts_before for p in self.pending if p.attempts_before is not None]
            records = a.records(s.attempts_before, later[0] if later else None)
            if records is not None:
                check_record(s, records, config, self.violate)
                self.trace.check(s.describe(), s.seated_at, s.scanned, records, config, self.violate)
                self.judged.append(s)

    # ------------------------------------------------------------------ the end
    def closing(self) -> None:
        """After the station's orderly stop: rule 7's safe outputs, then the last judgements."""
        if self.closed:
            return
        self.closed = True
        w = self.w
        unsafe = [what for what, bad in (("stepper enabled", w.stepper_enabled), ("pump on", w.pump_on)) if bad]
        if not w.leds()[2]:
            unsafe.append("fault light off")
        if unsafe:
            self.violate(7, f"after shutdown: {', '.join(unsafe)}")
        self.watchdog.cancel()
        if self.lights.red_steady(self.now()):
            self._fault_seen()
        self._books(6, "at shutdown")
        self._fluid()
        self._judge_attempts(final=True)
        if self.auditor is not None:
            self.inspection.check()
            self.auditor.close()
