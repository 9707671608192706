"""The bench's vocabulary and plain records: connector kinds, swipe variants, a physical
cassette, a violation of docs/design.md section 3, one stroke of the connector."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum


class ConnectorKind(str, Enum):
    MALE = "male"
    FEMALE = "female"
    BENT = "bent"  # male with one guide pin bent away from its sensor


class SwipeVariant(str, Enum):
    FULL = "full"  # one pass, A then B (or B then A when reversed)
    PARTIAL = "partial"  # passes A, lifted before B
    BACK_AND_FORTH = "back_and_forth"  # down and straight back up
    DOUBLE = "double"  # two passes in the same direction


@dataclass
class SimCassette:
    """A physical cassette: it keeps its ribbon state when taken out and put back."""

    name: str
    male_mt: bool
    capacity: int  # positions the wheel can advance: sections 0 (exposed when new) to capacity exist
    position: int = 0  # section under the window
    touched: dict[int, int] = field(default_factory=dict)  # section -> swipes on it
    offered: list[int] = field(default_factory=list)  # sections the firmware said swipe-now on
    drops: dict[int, int] = field(default_factory=dict)  # section -> drops placed on it
    drop_time: dict[int, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Violation:
    rule: int  # docs/design.md section 3 rule number
    t: float
    text: str


@dataclass(frozen=True)
class SwipeRecord:
    """One physical stroke of the connector across the window, as the ribbon felt it."""

    t: float
    section: int
    cassette: str
    direction: str
    variant: SwipeVariant
    duration_s: float
    prompted: bool  # the panel was showing swipe-now
    fresh: bool  # the section had never been touched
    drop_age_s: float | None  # since the drop on this section, if any
