"""Judging a swipe from gate edges.

A pure function over a timeline, so the property tests check exactly the code that runs on
the Pi. Contact bounce is filtered here, on event timestamps, rather than by gpiozero's
`bounce_time`: mock pins ignore it and lgpio debounces in the kernel, so relying on it would
test a different path from the one that runs on the bench.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from .domain import Reason

GateName = Literal["A", "B"]


@dataclass(frozen=True)
class GateEdge:
    gate: GateName
    active: bool
    t: float


@dataclass(frozen=True)
class Interval:
    gate: GateName
    start: float
    end: float | None  # None: still active


@dataclass(frozen=True)
class SwipeVerdict:
    """`done` False means: ask again at `check_at` (or on the next edge)."""

    done: bool
    ok: bool = False
    reason: Reason | None = None
    pass_s: float | None = None  # gate A entry to gate B entry
    started_at: float | None = None
    check_at: float | None = None


def intervals(edges: Iterable[GateEdge], gate: GateName, glitch_s: float) -> list[Interval]:
    """Activity intervals of one gate with bounce removed.

    Gaps shorter than `glitch_s` are bridged first (contact bounce around a real pulse), then
    pulses still shorter than `glitch_s` are dropped (isolated spikes). An interval still open
    is kept only when it has already lasted `glitch_s` at its last known edge or is the last.
    """
    raw: list[tuple[float, float | None]] = []  # (start, end) as the edges give them
    for e in sorted((e for e in edges if e.gate == gate), key=lambda e: e.t):
        if e.active:
            if raw:
                start, end = raw[-1]
                if end is None:
                    continue  # repeated "active" report
                if e.t - end < glitch_s:
                    raw[-1] = (start, None)  # bounce: re-open the previous interval
                    continue
            raw.append((e.t, None))
        elif raw and raw[-1][1] is None:
            raw[-1] = (raw[-1][0], e.t)
    kept: list[Interval] = []
    for start, end in raw:
        if end is not None and end - start < glitch_s:
            continue
        kept.append(Interval(gate, start, end))
    return kept


def judge_swipe(
    edges: Iterable[GateEdge],
    *,
    start_deadline: float,
    now: float,
    min_pass_s: float,
    max_pass_s: float,
    glitch_s: float,
    settle_s: float,
    gate_blocked: bool,
    connector_gone: bool,
) -> SwipeVerdict:
    """Judge the gate timeline since the swipe-now signal.

    A good swipe is exactly one pass: gate A then gate B, entry-to-entry time within
    [min_pass_s, max_pass_s], starting by `start_deadline`, followed by `settle_s` of quiet
    (so a return stroke is caught). Gate B never reached within twice `max_pass_s` is a
    partial swipe. `gate_blocked`: a gate already read blocked at swipe-now.
    `connector_gone` ends the wait for more edges.
    """
    edges = list(edges)
    a = intervals(edges, "A", glitch_s)
    b = intervals(edges, "B", glitch_s)
    # Nothing is decided within glitch_s of the last edge: a pulse that looks like a spike may
    # yet be bridged by bounce into a real contact, and a new contact may yet be a spike.
    if edges and not connector_gone:
        settled_at = max(e.t for e in edges) + glitch_s
        if now < settled_at:
            return SwipeVerdict(False, check_at=settled_at)
    if gate_blocked:
        return SwipeVerdict(True, reason=Reason.GATE_BLOCKED)
    passes = sorted(a + b, key=lambda iv: iv.start)
    if not passes:
        if now >= start_deadline or connector_gone:
            return SwipeVerdict(
                True, reason=Reason.REMOVED_MID_CYCLE if connector_gone and now < start_deadline else Reason.NO_SWIPE
            )
        return SwipeVerdict(False, check_at=start_deadline)
    first = passes[0]
    if first.start > start_deadline:
        return SwipeVerdict(True, reason=Reason.NO_SWIPE, started_at=first.start)
    if first.gate == "B":
        return SwipeVerdict(True, reason=Reason.REVERSED, started_at=first.start)
    if len(a) > 1 or len(b) > 1:
        return SwipeVerdict(True, reason=Reason.BACK_AND_FORTH, started_at=first.start)
    entry_a = a[0].start
    if not b:
        # Wait past the slowest allowed pass, so a late gate B can still be told apart
        # (too slow) from a connector that never reached it (partial).
        give_up = entry_a + 2 * max_pass_s
        if now >= give_up or connector_gone:
            return SwipeVerdict(True, reason=Reason.PARTIAL, started_at=entry_a)
        return SwipeVerdict(False, check_at=give_up)
    pass_s = b[0].start - entry_a
    if pass_s < min_pass_s:
        return SwipeVerdict(True, reason=Reason.TOO_FAST, pass_s=pass_s, started_at=entry_a)
    if pass_s > max_pass_s:
        return SwipeVerdict(True, reason=Reason.TOO_SLOW, pass_s=pass_s, started_at=entry_a)
    if b[0].end is None or a[0].end is None:  # the connector stopped in a gate
        if connector_gone or now >= b[0].start + max_pass_s:
            return SwipeVerdict(True, reason=Reason.PARTIAL, pass_s=pass_s, started_at=entry_a)
        return SwipeVerdict(False, check_at=b[0].start + max_pass_s)
    quiet_at = max(e.t for e in edges) + settle_s
    if now < quiet_at and not connector_gone:
        return SwipeVerdict(False, check_at=quiet_at)
    return SwipeVerdict(True, ok=True, pass_s=pass_s, started_at=entry_a)
