"""One physical attempt against its durable record: is the outcome the station recorded the one
physics calls for? (rules 2, 3, 4, 5, 6 and 8, from a `Session` and the auditor's `Record`s).

Only what physics decides is judged: a verdict on a stroke when `expected_verdict` can call it,
a refusal when `must_refuse` can, a used-up refusal against the books the station had. A fault,
a cancel, a removal or an interruption are the station's to record as it may: they are checked
only for what they cannot be (a rejection after ribbon moved, a clean without swipe-now).
"""

from __future__ import annotations

from collections.abc import Callable

from station.config import Config
from station.domain import Reason

from .auditor import Record
from .session import MARGIN_S, Session, expected_verdict, must_refuse
from .trace_truth import POLICY

Violate = Callable[[int, str], None]

# what the station says when it judged the stroke itself
SWIPE_REASONS = (
    Reason.NO_SWIPE,
    Reason.REVERSED,
    Reason.BACK_AND_FORTH,
    Reason.PARTIAL,
    Reason.TOO_FAST,
    Reason.TOO_SLOW,
    Reason.GATE_BLOCKED,
)
# reasons that may pre-empt a refusal physics demands (a pull too early: see check_too_early)
EARLY_ENDS = (
    Reason.REMOVED_EARLY,
    Reason.CANCELLED_EARLY,
    Reason.TOO_EARLY,
    Reason.FAULT,
    Reason.INTERRUPTED,
    *POLICY,  # the traceability refusals (scan the connector, badge, cassette): rule 9 judges them
)
# what may end a clean under way before an early pull is seen for what it is
PRE_EMPT_EARLY = (Reason.REMOVED_EARLY, Reason.REMOVED_MID_CYCLE, Reason.CANCELLED_EARLY, Reason.CANCELLED)


def reason_is(text: str, *reasons: Reason) -> bool:
    return any(text == r.value or text.startswith(r.value + ":") for r in reasons)


def refusal_rule(reason: Reason) -> int:
    return 3 if reason in (Reason.DAMAGED_PINS, Reason.UNSETTLED_PINS) else 2


def check_verdict(s: Session, rec: Record, config: Config, violate: Violate) -> None:
    """Rule 5 (and rule 4's wet window): the verdict recorded, and the one the panel showed,
    against the stroke physics saw."""
    who = s.describe()
    if rec.outcome in (None, "interrupted", "rejected"):
        return
    if s.shown is not None and s.shown != ("cleaned" if rec.outcome == "cleaned" else "failed"):
        violate(5, f"{who}: the panel showed {s.shown}, attempt #{rec.id} is recorded {rec.outcome}")
    expected = expected_verdict(s, config)
    if expected is None:
        return
    ok, why = expected
    if rec.outcome == "cleaned" and not ok:
        late = "after its deadline" in why and s.drop_at is not None
        violate(4 if late else 5, f"{who}: recorded cleaned (#{rec.id}), but {why}")
    elif rec.outcome == "failed" and ok:
        removed_after = s.removed_at is None or (s.prompt_ended_at is not None and s.removed_at > s.prompt_ended_at)
        if reason_is(rec.reason, *SWIPE_REASONS) or (reason_is(rec.reason, Reason.REMOVED_MID_CYCLE) and removed_after):
            violate(5, f"{who}: recorded failed '{rec.reason}' (#{rec.id}), but {why}")


def check_nothing_used(s: Session, rec: Record, violate: Violate) -> None:
    """Rule 8: a rejection says nothing was used: no wheel step, no ribbon position, no drop,
    in physics and on the books alike."""
    used = []
    if s.steps or s.positions:
        used.append(f"the wheel stepped {s.steps} times ({s.positions} positions)")
    if s.drops:
        used.append(f"the pump pulsed {s.drops} times")
    booked = (
        f"the books have {rec.positions} positions and {rec.drops} drops for it" if rec.positions or rec.drops else ""
    )
    if used or booked:
        after = f" after {' and '.join(used)}" if used else ""
        but = f"; {booked}" if used and booked else f", but {booked}" if booked else ""
        violate(8, f"{s.describe()}: recorded rejected (#{rec.id}, nothing consumed){after}{but}")


# the ends of a clean cut short by the machine: what was booked may not all have happened
MACHINE_ENDS = (Reason.JAM, Reason.INDEX_FAULT, Reason.NO_DROP, Reason.CASSETTE_PULLED, Reason.FAULT)


def check_used(s: Session, rec: Record, violate: Violate) -> None:
    """What a clean's record says it used is what the wheel and the pump did for it. Fewer on
    the books than moved (rule 6: what is left overstated) is never right; more on the books
    than moved only where the clean was cut short by the machine (the ribbon is booked before
    the wheel moves, a drop before the pump pulses: a jam or a fault between may over-count)."""
    moved = f"the wheel moved {s.positions} positions and the pump pulsed {s.drops} times for it"
    said = f"recorded {rec.outcome} (#{rec.id}) with {rec.positions} positions and {rec.drops} drops"
    if rec.positions < s.positions or rec.drops < s.drops:
        violate(6, f"{s.describe()}: {said}, but {moved}")
    elif (rec.positions, rec.drops) != (s.positions, s.drops) and not reason_is(rec.reason, *MACHINE_ENDS):
        violate(8, f"{s.describe()}: {said}, but {moved}")


def check_too_early(s: Session, rec: Record, violate: Violate) -> None:
    """Rule 5: a pull begun before swipe-now is recorded as what it is, and only such a pull.
    "Too early" needs the connector to have reached gate A while the panel still showed busy
    (before the swipe-now look, or a result, was shown); a pull down across gate A well inside
    the busy look must be recorded "too early" unless a removal or a cancel ended the clean
    first. Sessions a fault disturbed (a gate sensor held, bouncing) are not judged."""
    if s.disturbed or s.fault_seen or rec.outcome in (None, "interrupted"):
        return
    who = s.describe()
    busy_end = s.busy_ended_at if s.busy_ended_at is not None else float("inf")
    said = reason_is(rec.reason, Reason.TOO_EARLY)
    reached = [t for k in s.strokes if (t := k.at_gate_a()) is not None and t < busy_end + MARGIN_S]
    if said and not reached:
        violate(
            5, f"{who}: recorded {rec.outcome} '{rec.reason}' (#{rec.id}), but no pull reached gate A before swipe-now"
        )
    early = [k for k in s.strokes if k.direction == "down" and s.seated_at < k.t < busy_end - MARGIN_S]
    pre_empted = s.cancelled_at is not None or reason_is(rec.reason, *PRE_EMPT_EARLY)
    if early and not said and not pre_empted:
        violate(
            5,
            f"{who}: a pull down across gate A {early[0].t - s.seated_at:.3f} s after the seating, before "
            f"swipe-now, recorded {rec.outcome} '{rec.reason}' (#{rec.id}), not too early",
        )


def check_record(s: Session, records: list[Record], config: Config, violate: Violate) -> None:
    """Rule 8: one record, closed, with the outcome physics calls for (and rules 2, 3, 4, 6
    where the outcome is a refusal physics or the books demand)."""
    who = s.describe()
    if not records:
        if not s.fault_seen:
            violate(8, f"{who}: the station took it up and no attempt was recorded")
        return
    if len(records) > 1:
        violate(8, f"{who}: {len(records)} attempt records for one attempt ({', '.join(f'#{r.id}' for r in records)})")
    rec = records[0]
    if rec.outcome is None:
        if not s.fault_seen:
            violate(8, f"{who}: attempt #{rec.id} has no outcome on record")
        return
    if rec.outcome == "rejected":
        check_nothing_used(s, rec, violate)
    elif rec.outcome in ("cleaned", "failed") and not s.disturbed:
        check_used(s, rec, violate)
    check_too_early(s, rec, violate)
    if rec.outcome == "cleaned" and s.prompted_at is None:
        violate(8, f"{who}: recorded cleaned (#{rec.id}) without swipe-now")
    if s.disturbed or rec.outcome == "interrupted":
        return  # a fault beyond the station's control, a reset, a stop: any end is the station's to give
    refusal = must_refuse(s, config)
    if isinstance(refusal, Reason):
        if rec.outcome != "rejected" or not reason_is(rec.reason, refusal, *EARLY_ENDS):
            violate(
                refusal_rule(refusal),
                f"{who}: must be refused '{refusal.value}', recorded {rec.outcome} '{rec.reason}' (#{rec.id})",
            )
        return
    if refusal is False:
        return
    n = config.wheel.positions_per_clean
    wet = s.wet_at_seat and not s.mode_changed
    if s.books_left is not None and s.books_left < n:
        early = (Reason.REMOVED_EARLY, Reason.CANCELLED_EARLY, Reason.GATE_BLOCKED_EARLY, Reason.TOO_EARLY, *POLICY)
        allowed = (Reason.CASSETTE_EMPTY, *early) + ((Reason.FLUID_LOW,) if wet else ())
        if rec.outcome != "rejected" or not reason_is(rec.reason, *allowed):
            violate(
                6,
                f"{who}: the books gave the cassette {s.books_left} positions, fewer than a clean takes ({n}); "
                f"recorded {rec.outcome} '{rec.reason}' (#{rec.id}), not refused as used up",
            )
    elif s.books_left is not None and reason_is(rec.reason, Reason.CASSETTE_EMPTY):
        violate(6, f"{who}: refused as used up (#{rec.id}) with {s.books_left} positions on the books")
    if not s.wet_at_seat and not s.mode_changed and reason_is(rec.reason, Reason.FLUID_LOW):
        violate(4, f"{who}: a dry clean refused for low fluid (#{rec.id}); a low reservoir still allows dry")
