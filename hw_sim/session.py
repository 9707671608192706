"""One connector's stay in the guide, as physics saw it, and what physics says must come of it.

A `Session` runs from the seating of a connector to its removal. It is an *attempt* when the
station took it up: the connector was seated while the panel showed ready (green alone) and the
panel went busy (amber alone) at that same instant. Two pure judgements are made from it:
`must_refuse` (rules 2 and 3: the connector's pins and the cassette fitted) and
`expected_verdict` (rules 4 and 5: the one stroke across the window against the swipe
configuration). Both answer None when physics alone cannot decide (a reading or a stroke within
a hair of a bound, a stroke cut short by the removal, a sensor a fault holds): the judge then
does not judge.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from station.config import Config
from station.domain import Reason

from .model import ConnectorKind, SwipeVariant
from .trace_truth import Reading

MARGIN_S = 1e-3  # a time this close to a bound is not judged
CHATTER_STEP_S = 0.05  # the hand's pin chatter flips every 50 ms (hand.py)
HAND_DWELL = 0.3  # hand.py: each gate is covered for 0.3 x the stroke's duration ...
HAND_PAUSE_S = 0.15  # ... and a second pass begins this long after the first left gate B


@dataclass
class Stroke:
    """One pull of the connector across the window (hand.py's schedule)."""

    t: float  # gate of entry first reached
    direction: str
    variant: SwipeVariant
    duration_s: float  # entry of the first gate to entry of the second
    bounce: bool
    end_t: float  # its last gate edge
    cut_at: float | None = None  # the connector was lifted before the stroke was over

    def at_gate_a(self) -> float | None:
        """When the connector reached gate A (the first gate down, the second up), or None when
        it never did (an upward partial stroke, or lifted out before)."""
        if self.direction == "down":
            return self.t
        t = self.t + self.duration_s
        if self.variant is SwipeVariant.PARTIAL or (self.cut_at is not None and self.cut_at <= t):
            return None
        return t


@dataclass
class Session:
    """A connector in the guide, from its seating to its removal."""

    kind: ConnectorKind
    seated_at: float
    chatter_s: float
    candidate: bool  # the panel showed green alone at the seating
    cassette: str | None  # the physical cassette fitted at the seating
    male_mt: bool | None
    wet_at_seat: bool  # the mode people chose
    fluid_low_at_seat: bool  # the float switch's reading
    attempt: bool = False  # the station took it up (see the module doc)
    attempts_before: int | None = None  # the database's last attempt id at the seating
    books_left: int | None = None  # ribbon positions the books gave the fitted cassette then
    disturbed: list[str] = field(default_factory=list)  # faults, sensor faults, cassette handling
    mode_changed: bool = False
    steps: int = 0  # wheel steps while this connector was seated
    positions: int = 0  # ribbon positions the wheel really moved for it
    fluid_low_at_move: bool | None = None  # the float switch when the wheel started for it
    drops: int = 0
    drop_at: float | None = None
    busy_ended_at: float | None = None  # the busy look (amber alone) gave way: swipe-now, a result, a fault
    prompted_at: float | None = None  # swipe-now lights
    prompt_ended_at: float | None = None
    shown: str | None = None  # the panel's first result after swipe-now: "cleaned" or "failed"
    strokes: list[Stroke] = field(default_factory=list)
    cancelled_at: float | None = None  # a short press on the panel button
    removed_at: float | None = None
    fault_seen: bool = False  # red held steady at some moment
    verdict_judged: bool = False
    refusal_flagged: bool = False
    scanned: tuple[Reading | None, Reading | None] = (None, None)  # its connector code and the badge (rule 9)

    @property
    def seated(self) -> bool:
        return self.removed_at is None

    def describe(self) -> str:
        return f"the {self.kind.value} connector seated at {self.seated_at:.3f} s"


def must_refuse(s: Session, config: Config) -> Reason | None | bool:
    """The refusal physics demands (rules 2 and 3), None when the connector may be cleaned,
    False when it cannot be told (a guide-pin or cassette sensor held by a fault, a reading
    that settles within a hair of the time allowed)."""
    if s.disturbed or s.male_mt is None:
        return False
    g = config.guide_pins
    flips = int(s.chatter_s / CHATTER_STEP_S)
    if flips:
        last_change = (flips + 1) * CHATTER_STEP_S  # at the latest: the flips, then the settling
        first_possible = flips * CHATTER_STEP_S
        if first_possible + g.settle_s > g.timeout_s + CHATTER_STEP_S:
            return Reason.UNSETTLED_PINS
        if last_change + g.settle_s > g.timeout_s - CHATTER_STEP_S:
            return False
    if s.kind is ConnectorKind.BENT:
        return Reason.DAMAGED_PINS
    if s.kind is ConnectorKind.MALE and not s.male_mt:
        return Reason.WRONG_CASSETTE_MALE
    if s.kind is ConnectorKind.FEMALE and s.male_mt:
        return Reason.WRONG_CASSETTE_FEMALE
    return None


def swipe_deadline(s: Session, config: Config) -> float | None:
    """The latest start of a good stroke: the wet window from the drop, else the swipe timeout
    from swipe-now."""
    if s.prompted_at is None:
        return None
    sw = config.swipe
    return s.drop_at + sw.wet_window_s if s.drop_at is not None else s.prompted_at + sw.timeout_s


def expected_verdict(s: Session, config: Config) -> tuple[bool, str] | None:
    """Rules 4 and 5 from the strokes alone: (True, why) a good clean, (False, why) it must fail,
    None when physics cannot decide or the session was disturbed (faults, gate sensors held,
    a stroke begun before swipe-now, a bound within `MARGIN_S`, a cancel at the verdict's instant)."""
    if s.prompted_at is None or s.prompt_ended_at is None or s.disturbed:
        return None
    end = s.prompt_ended_at
    if s.cancelled_at is not None and s.cancelled_at <= end:
        return None if end - s.cancelled_at < MARGIN_S else (False, "the operator cancelled")
    if any(k.t < s.prompted_at for k in s.strokes):
        return None  # a stroke under way at swipe-now: the gates were read blocked or half-seen
    window = [k for k in s.strokes if k.t <= end]
    if any(abs(k.t - end) < MARGIN_S for k in s.strokes):
        return None  # a stroke begun as the verdict was given
    deadline = swipe_deadline(s, config)
    assert deadline is not None
    if not window:
        return False, "no stroke while swipe-now was shown"
    if len(window) > 1:
        return False, f"{len(window)} strokes while swipe-now was shown"
    k = window[0]
    sw = config.swipe
    margin = MARGIN_S + (0.002 if k.bounce else 0.0)
    if abs(k.t - deadline) < margin:
        return None
    if k.t > deadline:
        return False, f"stroke started {k.t - deadline:.3f} s after its deadline"
    d = k.duration_s
    entry_b = k.t + d
    if k.direction != "down":
        return False, "stroke from B to A"
    if k.cut_at is not None and k.cut_at < entry_b - margin:
        return False, "connector lifted before reaching gate B"
    if k.variant is SwipeVariant.PARTIAL:
        return False, "partial stroke"
    if min(abs(d - sw.min_pass_s), abs(d - sw.max_pass_s)) < margin:
        return None
    if d < sw.min_pass_s:
        return False, f"stroke of {d:.3f} s, faster than {sw.min_pass_s} s"
    if d > sw.max_pass_s:
        return False, f"stroke of {d:.3f} s, slower than {sw.max_pass_s} s"
    if k.variant is not SwipeVariant.FULL:  # the second pass begins a dwell and a pause after gate B
        second = k.t + HAND_DWELL * d + d + HAND_PAUSE_S
        if k.cut_at is None or k.cut_at >= second + sw.glitch_s - 1e-9:  # seen to last past the filter
            return False, f"{k.variant.value} stroke"
        return None  # lifted about as the second pass began
    if k.cut_at is not None:
        return None  # lifted past gate B before the stroke was over: what was left undone is unknown
    if HAND_DWELL * d < sw.glitch_s + margin:
        return None  # a gate passed faster than the contact filter: not a stroke the judge can call
    return True, f"one full A->B stroke of {d:.3f} s started {k.t - s.prompted_at:.3f} s after swipe-now"
