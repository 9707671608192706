"""Reading a connector's guide pins until the reading is stable."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .domain import Gender


@dataclass(frozen=True)
class PinSample:
    """Both guide-pin sensors at time `t` (True = pin sensed)."""

    t: float
    left: bool
    right: bool


@dataclass(frozen=True)
class PinReading:
    """`gender` None and `done` True means the reading never settled."""

    done: bool
    gender: Gender | None = None
    check_at: float | None = None


def gender_of(left: bool, right: bool) -> Gender:
    if left and right:
        return Gender.MALE
    if left or right:
        return Gender.DAMAGED
    return Gender.FEMALE


def read_guide_pins(
    samples: Sequence[PinSample], *, present_at: float, now: float, settle_s: float, timeout_s: float
) -> PinReading:
    """Settled when both sensors have been unchanged for `settle_s`; unsettled after `timeout_s`.

    `samples` holds the reading when the connector arrived and every change since, in order.
    """
    if not samples:
        raise ValueError("read_guide_pins needs the reading taken when the connector arrived")
    last = samples[-1]
    settled_at = max(present_at, last.t) + settle_s
    deadline = present_at + timeout_s
    if now >= settled_at and settled_at <= deadline:
        return PinReading(True, gender_of(last.left, last.right))
    if now >= deadline:
        return PinReading(True, None)
    return PinReading(False, check_at=min(settled_at, deadline))
