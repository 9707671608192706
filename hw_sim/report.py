"""Readable lines for what the station does (used by the demo, scenarios and interactive use)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TextIO

from station.events import (
    AttemptFinished,
    CassetteDeclared,
    CleanModeChanged,
    CodeScanned,
    Event,
    FaultCleared,
    FaultRaised,
    FluidRefilled,
    Recovered,
    ScanRefused,
    StateChanged,
    SwipeNow,
    WarningRaised,
    WheelAdvanced,
)
from station.loop import EventLoop


def describe(event: Event, *, states: bool = True) -> str | None:
    """One line for a person, or None for events not worth a line."""
    match event:
        case StateChanged(state=state) if states:
            return f"state -> {state}"
        case AttemptFinished():
            who = " ".join(x.value for x in (event.gender, event.mode) if x)
            extra = f", pass {event.pass_s:.2f} s" if event.pass_s else ""
            reason = f": {event.reason.value}" if event.reason else ""
            tied = ", ".join(x for x in (event.connector, event.operator) if x)
            return f"RESULT {event.outcome.value.upper()} ({who}{extra}){reason}" + (f" [{tied}]" if tied else "")
        case CodeScanned(what=what, code=code):
            return f"scan: {what} {code}"
        case ScanRefused(code=code, reason=reason):
            return f"SCAN REFUSED {code!r}: {reason} (error beep)"
        case WheelAdvanced(positions=n, steps=steps, seconds=seconds):
            return f"wheel advanced {n} positions in {steps} steps ({seconds:.3f} s)"
        case SwipeNow(deadline_s=deadline):
            return f"SWIPE NOW (within {deadline:g} s)"
        case FaultRaised(code=code, detail=detail):
            return f"FAULT {code.value}: {detail}"
        case FaultCleared(code=code):
            return f"fault {code.value} cleared"
        case WarningRaised(text=text):
            return f"WARNING {text}"
        case CassetteDeclared(id=cid, type=ctype, capacity=capacity):
            return f"new cassette #{cid} ({ctype.value}, {capacity} positions)"
        case CleanModeChanged(mode=mode, why=why):
            return f"this clean goes on {mode.value}: {why}"
        case FluidRefilled(capacity=capacity, source=source):
            return f"reservoir refill recorded ({capacity} drops; source: {source})"
        case Recovered(interrupted=ids):
            return f"recovered: attempts {list(ids)} closed as interrupted"
    return None


def printer(loop: EventLoop, out: TextIO, *, states: bool = True) -> Callable[[Event], None]:
    """A listener that prints each event worth a line, stamped with the loop's time."""

    def show(event: Event) -> None:
        text = describe(event, states=states)
        if text is not None:
            print(f"[{loop.now():9.3f} s] {text}", file=out, flush=True)

    return show
