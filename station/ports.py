"""The small interfaces the controller talks to. Only `station.drivers` implements them with
gpiozero; the controller never knows which pin factory (lgpio or MockFactory) is underneath."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Protocol


class Sensor(str, Enum):
    """Inputs the controller hears about. Active means: the thing is there / switched on."""

    CONNECTOR = "connector"
    PIN_LEFT = "pin_left"
    PIN_RIGHT = "pin_right"
    GATE_A = "gate_a"
    GATE_B = "gate_b"
    CASSETTE = "cassette"
    CASSETTE_MALE = "cassette_male"
    DROP = "drop"
    FLUID_LOW = "fluid_low"
    MODE_WET = "mode_wet"
    BUTTON = "button"
    INSPECT_PASS = "inspect_pass"  # an inspection system's PASS line (inspection.gpio_fitted)
    INSPECT_FAIL = "inspect_fail"  # its FAIL line


@dataclass(frozen=True)
class SensorEdge:
    sensor: Sensor
    active: bool
    t: float


class MotionStatus(str, Enum):
    DONE = "done"
    JAM = "jam"  # no index pulse within the allowed steps
    EARLY_INDEX = "early_index"  # an index pulse far too soon: index sensor fault
    ABORTED = "aborted"


@dataclass(frozen=True)
class MotionResult:
    status: MotionStatus
    positions: int  # positions confirmed by the index sensor
    steps: int
    duration_s: float


class Sensors(Protocol):
    def read(self, sensor: Sensor) -> bool: ...
    def snapshot(self) -> dict[Sensor, bool]: ...
    def fitted(self, sensor: Sensor) -> bool: ...
    def on_edge(self, sink: Callable[[SensorEdge], None]) -> None: ...


class Wheel(Protocol):
    """Closed-loop cassette wheel: advances whole positions confirmed by the index sensor."""

    def advance(self, positions: int, done: Callable[[MotionResult], None]) -> None: ...
    def stop(self) -> None: ...
    @property
    def moving(self) -> bool: ...
    @property
    def enabled(self) -> bool: ...
    @property
    def index_active(self) -> bool: ...  # the index sensor now (a position mark in front of it)


class Dispenser(Protocol):
    def pulse(self) -> None: ...
    def off(self) -> None: ...
    @property
    def pumping(self) -> bool: ...


class Pattern(str, Enum):
    """What the panel shows. Each is a distinct light and sound pattern (see drivers.panel)."""

    OFF = "off"
    READY = "ready"
    BUSY = "busy"
    SWIPE_NOW = "swipe_now"
    CLEANED = "cleaned"
    FAILED = "failed"
    REJECTED = "rejected"
    REMOVE = "remove"
    SERVICE = "service"
    FAULT = "fault"
    # inspection (docs/design.md section 10), shown while ready
    INSPECT = "inspect"  # a verdict is awaited: inspect the connector now
    RECLEAN = "reclean"  # it failed: clean it again (dry)
    RECLEAN_WET = "reclean_wet"  # it failed: clean it again, wet-to-dry
    QUARANTINE = "quarantine"  # its loop is used up: reject it (replace or repair the connector)


class Panel(Protocol):
    def show(self, pattern: Pattern) -> None: ...
    def lamp_test(self, done: Callable[[], None]) -> None: ...
    def chirp(self, ok: bool) -> None: ...  # a scan heard: one short beep (ok) or the error beep
    @property
    def pattern(self) -> Pattern: ...


class Hardware(Protocol):
    """Everything the controller drives, plus the one path to the safe state."""

    @property
    def sensors(self) -> Sensors: ...
    @property
    def wheel(self) -> Wheel: ...
    @property
    def dispenser(self) -> Dispenser: ...
    @property
    def panel(self) -> Panel: ...
    def safe(self) -> None: ...
