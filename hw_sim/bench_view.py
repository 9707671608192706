"""What a person standing at the simulated bench sees, as one immutable snapshot.

The live view (`hw_sim/tui.py`) never reads the world from its own thread: it posts `take_view`
to the bench's loop, which builds a `BenchView` between two events and hands it back. Everything
in it is physical truth read from the world (its output and input lines, the wheel, the ribbon,
the reservoir), plus what the station itself states (`bench.status()`) and its last result.

Lamps blink: a snapshot alone cannot tell a blinking lamp from a steady one, so `OutputWatch`
keeps the timing of every change of the three LEDs and the buzzer (virtual time), as a person
watching the panel would, and judges on/off/blinking from it (see hw_sim/lights.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from station.events import AttemptFinished, StationStatus

from .actions import faults_in_force
from .bench import SimBench
from .lights import SLOW_BLINK_S
from .model import SimCassette

LAMPS = ("led_ready", "led_busy", "led_fault", "buzzer")
SETTLE_S = SLOW_BLINK_S + 0.05  # a lamp unchanged this long is steady
BEEP_MEMORY_S = 1.5  # beeps are short: the view counts those of the last moment
SECTIONS_SHOWN = 40  # ribbon sections around the window


class Look(str, Enum):
    OFF = "off"
    ON = "on"
    BLINKING = "blinking"
    BLINKING_FAST = "blinking fast"


class Section(str, Enum):
    """A ribbon section as the ribbon itself shows it."""

    FRESH = "fresh"  # not yet under the window
    PASSED = "passed"  # wound past, never offered nor touched
    OFFERED = "offered"  # swipe-now was shown on it, not touched
    TOUCHED = "touched"  # a connector was swiped across it once
    RETOUCHED = "touched again"  # more than once: rule 1 broken


@dataclass
class _Lamp:
    level: bool = False
    changed_at: float = float("-inf")
    intervals: tuple[float, float] = (float("inf"), float("inf"))  # between its last three changes
    on_times: tuple[float, ...] = ()  # recent rising edges (for the buzzer's beeps)


class OutputWatch:
    """Taps the mock pin factory's output listener (after the world's own) to time the lamps.

    Runs on the bench's loop thread, like every output change; `look()` is read there too."""

    def __init__(self, bench: SimBench) -> None:
        world = bench.world
        assert world is not None
        self._factory = world.factory
        self._next = world.factory.on_output
        self._now = bench.loop.now
        self._role = {getattr(world.pins, role): role for role in LAMPS}
        self.lamps = {role: _Lamp(level=world.output(role)) for role in LAMPS}
        world.factory.on_output = self._changed

    def _changed(self, bcm: int, value: bool) -> None:
        if self._next is not None:
            self._next(bcm, value)
        role = self._role.get(bcm)
        if role is None:
            return
        lamp, now = self.lamps[role], self._now()
        if value != lamp.level:
            lamp.intervals = (lamp.intervals[1], now - lamp.changed_at)
            lamp.changed_at, lamp.level = now, value
            if value:
                lamp.on_times = tuple(t for t in lamp.on_times if now - t <= BEEP_MEMORY_S) + (now,)

    def look(self, role: str, now: float) -> Look:
        """Blinking once it went on and off again at a blink's pace (one quick change is a
        pattern changing: busy to swipe-now turns green on moments after it went off)."""
        lamp = self.lamps[role]
        if now - lamp.changed_at <= SETTLE_S and max(lamp.intervals) <= SETTLE_S:
            return Look.BLINKING_FAST if max(lamp.intervals) < SLOW_BLINK_S / 2 else Look.BLINKING
        return Look.ON if lamp.level else Look.OFF

    def beeps(self, now: float) -> int:
        """Beeps begun within the last moment (a person hears them after they end)."""
        return sum(1 for t in self.lamps["buzzer"].on_times if now - t <= BEEP_MEMORY_S)

    def detach(self) -> None:
        if self._factory.on_output == self._changed:
            self._factory.on_output = self._next


@dataclass(frozen=True)
class Ribbon:
    """The fitted cassette's ribbon around the window: `sections[i]` is section `first + i`."""

    name: str
    male_mt: bool
    capacity: int
    position: int
    first: int
    sections: tuple[Section, ...]


@dataclass(frozen=True)
class BenchView:
    """The bench at virtual time `t` (the station's wall clock reads `wall`)."""

    t: float
    wall: float
    green: Look
    amber: Look
    red: Look
    buzzer_on: bool
    beeps: int
    connector: str | None  # in the guide: male, female, bent
    connector_sensed: bool
    pin_left: bool
    pin_right: bool
    gate_a: bool  # blocked
    gate_b: bool
    stuck: tuple[str, ...]  # input lines a fault holds
    mode_wet: bool  # the panel's switch
    console_mode: str | None
    ribbon: Ribbon | None
    stepper_enabled: bool
    pump_on: bool
    reservoir: int
    reservoir_capacity: int
    fluid_low: bool  # the float switch
    faults: tuple[str, ...]  # injected causes in force
    status: StationStatus
    last: AttemptFinished | None
    violations: int
    words: str | None = None  # the panel's look in the README's words (hw_sim/panel_words.py)


def _ribbon(cassette: SimCassette | None) -> Ribbon | None:
    if cassette is None:
        return None
    position = cassette.position
    first = max(0, min(position - SECTIONS_SHOWN * 3 // 4, cassette.capacity + 1 - SECTIONS_SHOWN))
    last = min(cassette.capacity, first + SECTIONS_SHOWN - 1)
    offered = set(cassette.offered)

    def state(section: int) -> Section:
        touched = cassette.touched.get(section, 0)
        if touched > 1:
            return Section.RETOUCHED
        if touched:
            return Section.TOUCHED
        if section in offered:
            return Section.OFFERED
        return Section.PASSED if section < position else Section.FRESH

    sections = tuple(state(s) for s in range(first, last + 1))
    return Ribbon(cassette.name, cassette.male_mt, cassette.capacity, position, first, sections)


def take_view(bench: SimBench, watch: OutputWatch) -> BenchView:
    """Read the bench now. Call on the bench's loop thread (post it there)."""
    w = bench.world
    assert w is not None
    now = bench.loop.now()
    return BenchView(
        t=now,
        wall=bench.controller.wall(),
        green=watch.look("led_ready", now),
        amber=watch.look("led_busy", now),
        red=watch.look("led_fault", now),
        buzzer_on=w.output("buzzer"),
        beeps=watch.beeps(now),
        connector=w.connector.value if w.connector else None,
        connector_sensed=w.sensor("connector"),
        pin_left=w.sensor("pin_left"),
        pin_right=w.sensor("pin_right"),
        gate_a=w.sensor("gate_a"),
        gate_b=w.sensor("gate_b"),
        stuck=tuple(sorted(w.inputs.stuck)),
        mode_wet=w.mode_wet,
        console_mode=w.console_mode,
        ribbon=_ribbon(w.fitted),
        stepper_enabled=w.stepper_enabled,
        pump_on=w.pump_on,
        reservoir=w.reservoir,
        reservoir_capacity=w.reservoir_capacity,
        fluid_low=w.sensor("fluid_low"),
        faults=tuple(faults_in_force(bench)),
        status=bench.status(),
        last=bench.last_result(),
        violations=len(w.violations),
    )
