"""Everything the station announces, as typed events.

Each event is a frozen dataclass with a stable JSON form (`to_json`, `from_json`) carrying a
schema version: the console's live views, the simulator's reports, scenarios, exports and the
fleet publisher all consume these same objects and match on their classes; nobody indexes a
dict by a string key. A field may be added in a later schema version; none is renamed or
removed without raising `SCHEMA_VERSION`.

The `EventBus` is how the controller and its collaborators publish: listeners run on the
publisher's thread (the controller loop), so they must be quick, and one listener's failure
never reaches the station or the other listeners.
"""

from __future__ import annotations

import dataclasses
import logging
import typing
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any, ClassVar

from .domain import CassetteType, FaultCode, Gender, Mode, Outcome, Reason, Verdict
from .ports import Sensor

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Event:
    """Base of every announcement. `kind` is the stable name in the JSON form."""

    kind: ClassVar[str] = ""

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict: `schema`, `kind`, then the fields (enums by value)."""
        out: dict[str, Any] = {"schema": SCHEMA_VERSION, "kind": self.kind}
        for f in dataclasses.fields(self):
            out[f.name] = _plain(getattr(self, f.name))
        return out


def _plain(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


# ---------------------------------------------------------------------- the station's life
@dataclass(frozen=True)
class StateChanged(Event):
    """The state machine entered `state` (idle, identifying, ..., fault)."""

    kind: ClassVar[str] = "state"
    state: str


@dataclass(frozen=True)
class Recovered(Event):
    """At start-up, attempts left open by a power cut were closed as interrupted."""

    kind: ClassVar[str] = "recovered"
    interrupted: tuple[int, ...]


@dataclass(frozen=True)
class StationStopped(Event):
    """An orderly stop: outputs are safe and the books closed."""

    kind: ClassVar[str] = "stopped"
    reason: str


# ---------------------------------------------------------------------- a clean attempt
@dataclass(frozen=True)
class AttemptStarted(Event):
    """A connector was seated: attempt `id` began (its record exists from now on)."""

    kind: ClassVar[str] = "attempt"
    id: int
    mode: Mode


@dataclass(frozen=True)
class WheelAdvanced(Event):
    """A wheel move ended: `positions` confirmed by the index sensor."""

    kind: ClassVar[str] = "advanced"
    positions: int
    steps: int
    seconds: float


@dataclass(frozen=True)
class CleanModeChanged(Event):
    """The clean under way goes on in another mode (switched to dry before its drop)."""

    kind: ClassVar[str] = "clean_mode"
    id: int
    mode: Mode
    why: str


@dataclass(frozen=True)
class DropDispensed(Event):
    """The pump was pulsed once (for attempt `attempt_id`, or by `source`: prime, selftest)."""

    kind: ClassVar[str] = "drop"
    attempt_id: int | None
    source: str


@dataclass(frozen=True)
class SwipeNow(Event):
    """Green + amber, one beep: the operator may swipe for `deadline_s` seconds."""

    kind: ClassVar[str] = "swipe_now"
    id: int
    deadline_s: float


@dataclass(frozen=True)
class AttemptFinished(Event):
    """The one outcome of attempt `id` (already on record when this is announced, unless
    the disk failed, which raises a storage fault)."""

    kind: ClassVar[str] = "result"
    id: int
    outcome: Outcome
    reason: Reason | None
    gender: Gender | None
    mode: Mode
    drops: int
    positions: int
    pass_s: float | None
    connector: str | None = None  # the scanned connector code, when known (docs/design.md section 9)
    operator: str | None = None  # the operator's badge, when known

    def to_json(self) -> dict[str, Any]:
        out = super().to_json()
        out["reason"] = self.reason.value if self.reason else ""  # the text the operator is told
        return out


# ---------------------------------------------------------------------- faults and warnings
@dataclass(frozen=True)
class FaultRaised(Event):
    """The station is in fault (safe outputs) with `code`; also a more serious cause while in fault."""

    kind: ClassVar[str] = "fault"
    code: FaultCode
    detail: str


@dataclass(frozen=True)
class FaultCleared(Event):
    kind: ClassVar[str] = "fault_cleared"
    code: FaultCode


@dataclass(frozen=True)
class WarningRaised(Event):
    """Something the operator should act on soon (`code`: cassette_low, long_press_late)."""

    kind: ClassVar[str] = "warning"
    code: str
    text: str


# ---------------------------------------------------------------------- identities (traceability)
@dataclass(frozen=True)
class CodeScanned(Event):
    """A scanned code was accepted: an operator's badge, a cassette label or a connector
    (`cable` and `end` when its code names them)."""

    kind: ClassVar[str] = "scan"
    what: str  # operator, cassette or connector
    code: str
    source: str  # scanner, console:<port>, bench
    cable: str | None = None
    end: str | None = None


@dataclass(frozen=True)
class ScanRefused(Event):
    """A scanned code was refused (unusable, or it cannot apply now): nothing changed."""

    kind: ClassVar[str] = "scan_refused"
    code: str
    reason: str
    source: str


# ---------------------------------------------------------------------- inspection
@dataclass(frozen=True)
class InspectionDue(Event):
    """A connector awaits its inspection verdict (`attempt_id` None: inspect first, before any clean)."""

    kind: ClassVar[str] = "inspection_due"
    attempt_id: int | None
    connector: str | None
    timeout_s: float


@dataclass(frozen=True)
class VerdictRecorded(Event):
    """A verdict was recorded (or none came in time) and what to do next: `next` is released,
    clean_dry, clean_wet or quarantined."""

    kind: ClassVar[str] = "verdict"
    attempt_id: int | None
    connector: str | None
    verdict: Verdict
    source: str
    next: str


@dataclass(frozen=True)
class QuarantineReleased(Event):
    kind: ClassVar[str] = "quarantine_released"
    connector: str
    source: str


# ---------------------------------------------------------------------- consumables and people
@dataclass(frozen=True)
class CassetteDeclared(Event):
    """A cassette was declared new: its count starts at zero."""

    kind: ClassVar[str] = "cassette"
    id: int
    type: CassetteType
    capacity: int
    source: str


@dataclass(frozen=True)
class FluidRefilled(Event):
    kind: ClassVar[str] = "refill"
    capacity: int
    source: str


@dataclass(frozen=True)
class ModeSet(Event):
    """The console overrides the mode switch (`mode` None: the panel switch counts again)."""

    kind: ClassVar[str] = "mode"
    mode: Mode | None
    source: str


@dataclass(frozen=True)
class MaintenanceDone(Event):
    """A maintenance action ended (jog, prime, selftest, reset, fault_clear, config...)."""

    kind: ClassVar[str] = "maintenance"
    action: str
    ok: bool
    source: str
    error: str = ""


@dataclass(frozen=True)
class SensorChanged(Event):
    """An input changed (loop time `t`); many: live views only."""

    kind: ClassVar[str] = "sensor"
    sensor: Sensor
    active: bool
    t: float


@dataclass(frozen=True)
class StationStatus(Event):
    """A snapshot of the station (`STAT?`, the fleet's retained status): not announced on
    the bus, asked for."""

    kind: ClassVar[str] = "status"
    state: str
    mode: Mode
    cassette: CassetteType | None
    ribbon_remaining: int | None
    cleans_remaining: int | None
    fluid_drops_left: int
    fluid_low: bool
    fault: FaultCode | None


EVENT_TYPES: dict[str, type[Event]] = {
    cls.kind: cls
    for cls in (
        StateChanged,
        Recovered,
        StationStopped,
        AttemptStarted,
        WheelAdvanced,
        CleanModeChanged,
        DropDispensed,
        SwipeNow,
        AttemptFinished,
        FaultRaised,
        FaultCleared,
        WarningRaised,
        CassetteDeclared,
        FluidRefilled,
        ModeSet,
        MaintenanceDone,
        SensorChanged,
        StationStatus,
        CodeScanned,
        ScanRefused,
        InspectionDue,
        VerdictRecorded,
        QuarantineReleased,
    )
}


def from_json(data: dict[str, Any]) -> Event:
    """The event a `to_json` dict stands for (a consumer's side of the wire)."""
    if data.get("schema") != SCHEMA_VERSION:
        raise ValueError(f"event schema {data.get('schema')!r} is not {SCHEMA_VERSION}")
    cls = EVENT_TYPES.get(str(data.get("kind")))
    if cls is None:
        raise ValueError(f"unknown event kind {data.get('kind')!r}")
    hints = typing.get_type_hints(cls)
    values = {  # a field added later with a default may be absent from an older sender's event
        f.name: _typed(hints[f.name], data[f.name])
        for f in dataclasses.fields(cls)
        if f.name in data or f.default is dataclasses.MISSING
    }
    return cls(**values)


def _typed(hint: Any, value: Any) -> Any:
    if value is None or value == "" and _enum_in(hint) is Reason:
        return None
    enum = _enum_in(hint)
    if enum is not None:
        return enum(value)
    if typing.get_origin(hint) is tuple:
        return tuple(value)
    return value


def _enum_in(hint: Any) -> type[Enum] | None:
    for candidate in (hint, *typing.get_args(hint)):
        if isinstance(candidate, type) and issubclass(candidate, Enum):
            return candidate
    return None


Listener = Callable[[Event], None]


class EventBus:
    """Publish to every subscribed listener, in subscription order, on the caller's thread."""

    def __init__(self) -> None:
        self._listeners: list[Listener] = []

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def unsubscribe(self, listener: Listener) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def publish(self, event: Event) -> None:
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:
                log.exception("listener failed on %s", event.kind)  # pragma: no mutate
