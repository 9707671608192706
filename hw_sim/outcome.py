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
from .session import Session, expected_verdict, must_refuse

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
# reasons that may pre-empt a refusal physics demands
EARLY_ENDS = (Reason.REMOVED_EARLY, Reason.CANCELLED_EARLY, Reason.FAULT, Reason.INTERRUPTED)


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
    if rec.outcome == "rejected" and s.steps:
        violate(8, f"{who}: recorded rejected (#{rec.id}, nothing consumed) after the wheel stepped {s.steps} times")
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
        early = (Reason.REMOVED_EARLY, Reason.CANCELLED_EARLY, Reason.GATE_BLOCKED_EARLY)
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
