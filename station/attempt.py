"""The clean in progress, and the one record and announcement of how it ended.

Invariant (rule 8): every attempt gets exactly one outcome; it is written to the store before
it is announced, and a second conclusion of the same attempt does nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .domain import Gender, Mode, Outcome, Reason
from .events import AttemptFinished
from .guide_pins import PinSample
from .store import Identity
from .swipe import GateEdge, SwipeVerdict


@dataclass
class Attempt:
    """The clean in progress (its durable twin is a row in the store's attempts table)."""

    id: int
    started_at: float
    mode: Mode
    identity: Identity = field(default_factory=Identity)  # the connector and operator, when known
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
    gate_a_at_seat: bool = False  # gate A read blocked as the connector was seated (a dirty gate)
    awaited_at_seat: bool = False  # [inspection] a verdict was awaited as it was seated: inspect first
    abandon: Reason | None = None  # connector removed, cancel pressed or a swipe begun while the wheel moved
    outcome: Outcome | None = None
    reason: Reason | None = None

    def swipe_start_s(self) -> float | None:
        """When the stroke started: wet, seconds from the drop (the wet window); dry, from swipe-now."""
        v = self.verdict
        origin = self.drop_at if self.drop_at is not None else self.swipe_opened_at
        if v is None or v.started_at is None or origin is None:
            return None
        return round(v.started_at - origin, 4)

    def pass_s(self) -> float | None:
        """Gate A to gate B, the stroke's duration (to 0.1 ms)."""
        v = self.verdict
        return None if v is None or v.pass_s is None else round(v.pass_s, 4)

    def finished(self) -> AttemptFinished:
        """The announcement of this attempt's outcome (once it has one)."""
        assert self.outcome is not None
        return AttemptFinished(
            id=self.id,
            outcome=self.outcome,
            reason=self.reason,
            gender=self.gender,
            mode=self.mode,
            drops=self.drops,
            positions=self.positions_confirmed,
            pass_s=self.verdict.pass_s if self.verdict else None,
            connector=self.identity.connector,
            operator=self.identity.operator,
        )
