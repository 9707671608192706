"""The physical model of the bench: wheel, cassettes and ribbon, reservoir, connector, hand.

It only sees what physics would: the firmware's output pins (STEP, DIR, ENABLE, pump, LEDs)
and the consequences of the operator's actions. From that physical truth it records every
violation of docs/design.md section 3, independently of the firmware's own bookkeeping.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from enum import Enum
from pathlib import Path

from station.config import Config
from station.loop import EventLoop, Timer

from .pins import SimFactory


class ConnectorKind(str, Enum):
    MALE = "male"
    FEMALE = "female"
    BENT = "bent"  # male with one guide pin bent away from its sensor


class SwipeVariant(str, Enum):
    FULL = "full"  # one pass, A then B (or B then A when reversed)
    PARTIAL = "partial"  # passes A, lifted before B
    BACK_AND_FORTH = "back_and_forth"  # down and straight back up
    DOUBLE = "double"  # two passes in the same direction


class Fault(str, Enum):
    """Injectable faults (see `World.inject`)."""

    JAM = "jam"  # wheel does not turn
    SLIP = "slip"  # the next position takes extra steps
    MISSING_INDEX = "missing_index"  # index sensor misses pulses
    EMPTY_RIBBON = "empty_ribbon"  # the fitted cassette's ribbon runs out here
    PUMP_CLOG = "pump_clog"  # pump runs, no drop leaves the nozzle
    EMPTY_RESERVOIR = "empty_reservoir"
    STUCK_SENSOR = "stuck_sensor"  # an input held at one level
    GATE_BOUNCE = "gate_bounce"  # contact bounce on every gate edge
    CASSETTE_PULLED = "cassette_pulled"
    CONNECTOR_PULLED = "connector_pulled"


# Input names the world drives, mapped to config pin keys.
INPUTS = {
    "connector": "connector_present",
    "pin_left": "guide_pin_left",
    "pin_right": "guide_pin_right",
    "gate_a": "gate_a",
    "gate_b": "gate_b",
    "cassette": "cassette_present",
    "cassette_male": "cassette_type",
    "drop": "drop_sensor",
    "fluid_low": "fluid_low",
    "mode_wet": "mode_switch",
    "button": "button",
    "index": "index",
}


FLUID_LOW_LEVEL = 20  # drops left when the reservoir's float switch closes


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


class World:
    """Physics of one bench. Drive it with the hand methods; read `violations` and `swipes`."""

    def __init__(
        self,
        config: Config,
        factory: SimFactory,
        loop: EventLoop,
        *,
        steps_per_position: int | None = None,
        reservoir_drops: int | None = None,
        drop_sensor_delay_s: float = 0.02,
        state_file: str | Path | None = None,
    ) -> None:
        self.config = config
        self.factory = factory
        self.loop = loop
        self.pins = config.pins
        self.steps_per_position = steps_per_position or config.wheel.steps_per_position
        self.index_slot = max(1, self.steps_per_position // 8)
        self.drop_sensor_delay_s = drop_sensor_delay_s
        self.cassettes: dict[str, SimCassette] = {}
        self.fitted: SimCassette | None = None
        self.reservoir = reservoir_drops if reservoir_drops is not None else config.dispenser.reservoir_drops
        self.reservoir_capacity = self.reservoir
        self.connector: ConnectorKind | None = None
        self.mode_wet = False
        self.console_mode: str | None = None  # "dry"/"wet" when set on the console
        self._wet_when_seen = False  # chosen mode when the firmware last saw a connector arrive
        self.violations: list[Violation] = []
        self.swipes: list[SwipeRecord] = []
        self.swipes_before = 0  # swipes in earlier lives of this world (state file)
        self.drops_total = 0
        self.steps_total = 0
        self.positions_total = 0
        # wheel micro-state
        self._step_in_position = 0
        self._extra_steps: list[int] = []  # per upcoming position (slip)
        self._missing_index = 0  # upcoming index pulses that will not be seen
        self._index_blind = False  # the slot under the sensor now is one of them
        self._jammed = False
        self._pump_clogged = False
        self._bounce = False
        self._stuck: dict[str, bool] = {}
        self._level: dict[str, bool] = {}
        # what the firmware shows
        self._out: dict[int, bool] = {}
        self.prompting = False
        self.prompts = 0
        self._move_positions = 0  # positions passed since the driver was last enabled
        self._on_prompt: list[Callable[[], None]] = []
        self._hand: list[Timer] = []  # gate edges of strokes still under way
        self.state_file = Path(state_file) if state_file else None
        if self.state_file is not None and self.state_file.exists():
            self._load()
        factory.on_output = self._output_changed
        self._pin_role = {
            getattr(self.pins, k): k
            for k in ("step", "dir", "enable", "pump", "led_ready", "led_busy", "led_fault", "buzzer")
        }
        self._role_pin = {role: bcm for bcm, role in self._pin_role.items()}
        self._pin_cache: dict[str, object] = {}
        for bcm in self._pin_role:  # outputs the firmware already set before the world was wired
            pin = factory.pin(bcm)
            if pin.function == "output":
                self._out[bcm] = bool(pin.state)

    # ================================================================== wiring
    def attach(self) -> None:
        """Set every input to its physical state. Call after the firmware built its devices."""
        for name in INPUTS:
            if name == "drop" and not self.config.dispenser.drop_sensor_fitted:
                continue
            self._drive(name, False, force=True)
        self._drive("mode_wet", self.mode_wet)
        self._sync_fluid_switch()
        self._update_index()
        self._sync_cassette_inputs()

    def _pin(self, name: str):
        pin = self._pin_cache.get(name)
        if pin is None:  # gpiozero's lookup searches the board's pin table: do it once
            pin = self._pin_cache[name] = self.factory.pin(getattr(self.pins, INPUTS[name]))
        return pin

    def _drive(self, name: str, active: bool, force: bool = False) -> None:
        """Inputs are active-low: active pulls the line to ground."""
        self._level[name] = active
        if name in self._stuck:
            active = self._stuck[name]
        pin = self._pin(name)
        seen_before = not pin.state
        if force or pin.state != (not active):
            (pin.drive_low if active else pin.drive_high)()
        if name == "connector" and active and not seen_before:
            # The firmware can start a clean from this moment: the mode chosen now is the one a
            # clean must not go beyond (rule 4, see _judge_prompt).
            self._wet_when_seen = self.chosen_wet

    def sensor(self, name: str) -> bool:
        """What the firmware reads on an input now (True = active)."""
        return not self._pin(name).state

    def output(self, role: str) -> bool:
        """A firmware output's logical level; for the active-low ENABLE: 'driver enabled'."""
        level = self._out.get(self._role_pin[role])
        if role == "enable":
            return level is False  # never written: the board's pull-up keeps the driver off
        return bool(level)

    @property
    def stepper_enabled(self) -> bool:
        return self.output("enable")

    @property
    def pump_on(self) -> bool:
        return self.output("pump")

    def leds(self) -> tuple[bool, bool, bool]:
        return self.output("led_ready"), self.output("led_busy"), self.output("led_fault")

    def _violate(self, rule: int, text: str) -> None:
        self.violations.append(Violation(rule, self.loop.now(), text))
        self._persist()

    # ================================================================== power cuts
    # Physics survives the firmware being killed: with a state file, the world rewrites it
    # (atomically) after every physical change and a new World on the same file carries on.
    def _persist(self) -> None:
        if self.state_file is None:
            return
        state = {
            "cassettes": {n: asdict(c) for n, c in self.cassettes.items()},
            "fitted": self.fitted.name if self.fitted else None,
            "reservoir": self.reservoir,
            "mode_wet": self.mode_wet,
            "step_in_position": self._step_in_position,
            "totals": [self.drops_total, self.steps_total, self.positions_total, self.prompts],
            "move_positions": self._move_positions,
            "violations": [asdict(v) for v in self.violations],
            "swipes": self.swipes_before + len(self.swipes),
            "outputs": {"stepper_enabled": self.stepper_enabled, "pump_on": self.pump_on, "leds": list(self.leds())},
        }
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(state))
        os.replace(tmp, self.state_file)

    def _load(self) -> None:
        state = json.loads(self.state_file.read_text())  # type: ignore[union-attr]
        for name, c in state["cassettes"].items():
            c["touched"] = {int(k): v for k, v in c["touched"].items()}
            c["drops"] = {int(k): v for k, v in c["drops"].items()}
            c["drop_time"] = {int(k): v - 1e9 for k, v in c["drop_time"].items()}  # long dried
            self.cassettes[name] = SimCassette(**c)
        self.fitted = self.cassettes.get(state["fitted"]) if state["fitted"] else None
        self.reservoir = state["reservoir"]
        self.mode_wet = state["mode_wet"]
        self._step_in_position = state["step_in_position"]
        self.drops_total, self.steps_total, self.positions_total, self.prompts = state["totals"]
        self._move_positions = state["move_positions"]
        self.violations = [Violation(**v) for v in state["violations"]]
        self.swipes_before = state["swipes"]

    # ================================================================== firmware outputs
    def _output_changed(self, bcm: int, value: bool) -> None:
        was_enabled = self.stepper_enabled
        self._out[bcm] = value
        role = self._pin_role.get(bcm)
        if role == "enable" and self.stepper_enabled and not was_enabled:
            self._move_positions = 0  # a new move begins
        if role == "step" and value:
            self._step()
        elif role == "pump" and value:
            self._pump()
        elif role in ("led_ready", "led_busy", "led_fault"):
            self._panel_changed()
        if role in ("enable", "pump", "led_fault", "step"):
            self._check_safe()
        if role in ("enable", "pump", "led_ready", "led_busy", "led_fault"):
            self._persist()  # the last outputs survive the process, for power-cut checks

    def _check_safe(self) -> None:
        green, amber, red = self.leds()
        if red and (self.stepper_enabled or self.pump_on):
            self._violate(7, "fault light on while the stepper is enabled or the pump runs")

    def _step(self) -> None:
        if not self.stepper_enabled:
            return  # the driver ignores STEP while disabled
        forward = self._out.get(self.pins.dir, False) == self.config.wheel.forward_dir_high
        _, _, red = self.leds()
        if red:
            self._violate(7, "motor stepped while the fault light is on")
        cassette = self.fitted
        if cassette is None or self._jammed:
            return
        if cassette.position >= cassette.capacity:
            return  # the ribbon's end is fixed to the spool: the wheel cannot turn further
        self.steps_total += 1
        if not forward:
            self._violate(1, "wheel driven backwards: used ribbon would come back under the window")
            return
        self._step_in_position += 1
        needed = self.steps_per_position + (self._extra_steps[0] if self._extra_steps else 0)
        if self._step_in_position >= needed:
            self._step_in_position = 0
            if self._extra_steps:
                self._extra_steps.pop(0)
            cassette.position += 1
            self.positions_total += 1
            self._index_blind = self._missing_index > 0
            if self._index_blind:
                self._missing_index -= 1
            self._move_positions += 1
        self._update_index()
        self._persist()

    def _update_index(self) -> None:
        in_slot = self._step_in_position < self.index_slot and self.fitted is not None
        if not in_slot:
            self._index_blind = False
        self._drive("index", in_slot and not self._index_blind)

    def _pump(self) -> None:
        cleaning = self.connector is not None  # priming happens with the guide empty
        if cleaning and not self.chosen_wet:
            self._violate(4, "pump driven in dry mode")
        elif cleaning and not self._wet_when_seen:
            self._violate(4, "pump driven in a clean started in dry mode")
        if self._pump_clogged or self.reservoir <= 0:
            return
        self.reservoir -= 1
        self.drops_total += 1
        self._sync_fluid_switch()
        cassette = self.fitted
        if cassette is not None:
            section = cassette.position
            cassette.drops[section] = cassette.drops.get(section, 0) + 1
            cassette.drop_time[section] = self.loop.now()
            if cleaning and cassette.drops[section] > 1:
                self._violate(4, f"second drop on section {section}")
            if cleaning and cassette.touched.get(section):
                self._violate(4, f"drop on section {section}, which was already used")
        self._persist()
        if self.config.dispenser.drop_sensor_fitted:
            self.loop.call_later(self.drop_sensor_delay_s, lambda: self._drive("drop", True))
            self.loop.call_later(self.drop_sensor_delay_s + 0.005, lambda: self._drive("drop", False))

    def _panel_changed(self) -> None:
        green, amber, red = self.leds()
        prompting = green and amber and not red  # only swipe-now lights green and amber together
        if prompting and not self.prompting:
            self._judge_prompt()
            for fn in self._on_prompt:
                fn()
        self.prompting = prompting

    def _judge_prompt(self) -> None:
        """The firmware has just told the operator to swipe. Is that physically right?"""
        self.prompts += 1
        n = self.config.wheel.positions_per_clean
        cassette = self.fitted
        if cassette is None:
            self._violate(1, "swipe-now with no cassette fitted")
            return
        section = cassette.position
        if self._move_positions != n:
            self._violate(1, f"the last wheel move advanced {self._move_positions} positions, not {n}")
        if section in cassette.offered:
            self._violate(1, f"swipe-now on section {section} a second time")
        cassette.offered.append(section)
        self._persist()
        if cassette.touched.get(section):
            self._violate(1, f"swipe-now on section {section}, which was already used")
        if section > cassette.capacity:
            self._violate(6, f"swipe-now past the end of the ribbon (section {section} of {cassette.capacity})")
        if self.connector is None:
            self._violate(2, "swipe-now with no connector in place")
        elif self.connector is ConnectorKind.BENT:
            self._violate(3, "swipe-now for a connector with a bent guide pin")
        elif (self.connector is ConnectorKind.MALE) != cassette.male_mt:
            self._violate(2, f"swipe-now for a {self.connector.value} connector on the wrong cassette")
        # Rule 4 against the people's choice. A clean is wet-to-dry only if WET was chosen when
        # the connector arrived and still is: switched to DRY on the way, the drop must not come
        # (never fluid in dry mode); switched to WET on the way, the clean started dry stays dry
        # (the fluid check was for a dry clean). A drop placed in WET mode stays placed if the
        # switch moves between the drop and swipe-now (the pump check judges the drop itself).
        drops = cassette.drops.get(section, 0)
        wet = self._wet_when_seen and self.chosen_wet
        if drops > 1 or (wet and drops == 0):
            self._violate(4, f"{'wet-to-dry' if wet else 'dry'} swipe-now with {drops} drops on the section")
        elif drops and not self._wet_when_seen:
            self._violate(4, "dry swipe-now on a wet section")

    def when_prompted(self, fn: Callable[[], None]) -> None:
        self._on_prompt.append(fn)

    # ================================================================== bench handling
    def fit_cassette(self, name: str, *, male_mt: bool | None = None, capacity: int | None = None) -> SimCassette:
        """Put a cassette in the cradle; a name seen before is the same physical cassette."""
        cassette = self.cassettes.get(name)
        if cassette is None:
            cassette = SimCassette(
                name,
                bool(male_mt),
                capacity if capacity is not None else self.config.cassette.capacity_positions,
            )
            self.cassettes[name] = cassette
        if self.fitted is not None and self.fitted is not cassette:
            self.remove_cassette()  # a swap always takes the old one out first
        if self.fitted is not cassette:
            self.fitted = cassette
            self._step_in_position = 0
        self._sync_cassette_inputs()
        self._update_index()
        self._persist()
        return cassette

    def remove_cassette(self) -> None:
        self.fitted = None
        self._sync_cassette_inputs()
        self._update_index()
        self._persist()

    def _sync_cassette_inputs(self) -> None:
        # type switch first: the tab is read as the cassette seats
        self._drive("cassette_male", bool(self.fitted and self.fitted.male_mt))
        self._drive("cassette", self.fitted is not None)

    @property
    def chosen_wet(self) -> bool:
        """The mode people chose: the panel switch, unless a maintenance engineer set one on
        the console (an audited command, told to the world by the bench as it happens)."""
        return self.console_mode == "wet" if self.console_mode else self.mode_wet

    def set_mode(self, wet: bool) -> None:
        self.mode_wet = wet
        self._drive("mode_wet", wet)

    def refill(self, drops: int | None = None) -> None:
        """Fill the reservoir (to its capacity unless told how many drops)."""
        self.reservoir = self.reservoir_capacity if drops is None else drops
        self._sync_fluid_switch()
        self._persist()

    def _sync_fluid_switch(self) -> None:
        # the float sits at a fixed level; in a tiny test reservoir it closes only when empty
        self._drive("fluid_low", self.reservoir <= min(FLUID_LOW_LEVEL, self.reservoir_capacity // 10))

    def press_button(self, hold_s: float = 0.1) -> None:
        self._drive("button", True)
        self.loop.call_later(hold_s, lambda: self._drive("button", False))

    # ================================================================== the operator's hand
    def present(self, kind: ConnectorKind | str, *, chatter_s: float = 0.0) -> None:
        """Seat a connector in the guide: the pin sensors see its pins, then presence.

        `chatter_s` > 0 makes the pin sensors flicker that long (a loose, badly seated plug)."""
        kind = ConnectorKind(kind)
        self.connector = kind
        left, right = {
            ConnectorKind.MALE: (True, True),
            ConnectorKind.FEMALE: (False, False),
            ConnectorKind.BENT: (True, False),
        }[kind]
        self._drive("pin_left", left)
        self._drive("pin_right", right)
        self._drive("connector", True)
        flips = int(chatter_s / 0.05)
        for k in range(1, flips + 1):  # the left sensor flickers every 50 ms ...
            level = (not left) if k % 2 else left
            self._hand.append(self.loop.call_later(k * 0.05, lambda v=level: self._drive("pin_left", v)))
        if flips:  # ... and settles on the connector's own reading
            self._hand.append(self.loop.call_later((flips + 1) * 0.05, lambda: self._drive("pin_left", left)))

    def remove(self, *, pins_lag_s: float = 0.0) -> None:
        """Lift the connector out of the guide (ending any stroke still under way).

        `pins_lag_s` > 0: a slow, tilted withdrawal: the presence sensor lets go first, the
        guide-pin sensors that long after."""
        for timer in self._hand:
            timer.cancel()
        self._hand.clear()
        self._drive("gate_a", False)
        self._drive("gate_b", False)
        self.connector = None
        self._drive("connector", False)
        if pins_lag_s > 0:

            def release() -> None:
                if self.connector is None:  # not seated again meanwhile
                    self._drive("pin_left", False)
                    self._drive("pin_right", False)

            self.loop.call_later(pins_lag_s, release)
            return
        self._drive("pin_left", False)
        self._drive("pin_right", False)

    def swipe(
        self,
        *,
        direction: str = "down",
        duration_s: float = 0.6,
        variant: SwipeVariant | str = SwipeVariant.FULL,
        bounce: bool = False,
    ) -> None:
        """Pull the connector across the window. `down` is the correct way (gate A, then B);
        `duration_s` is the entry-to-entry time between the two gates."""
        variant = SwipeVariant(variant)
        first, second = ("gate_a", "gate_b") if direction == "down" else ("gate_b", "gate_a")
        dwell = duration_s * 0.3
        strokes = [(first, second)]
        if variant is SwipeVariant.BACK_AND_FORTH:
            strokes.append((second, first))
        elif variant is SwipeVariant.DOUBLE:
            strokes.append((first, second))
        edges: list[tuple[float, str, bool]] = []
        t = 0.0
        for g1, g2 in strokes:
            edges += [(t, g1, True), (t + dwell, g1, False)]
            if variant is not SwipeVariant.PARTIAL:
                edges += [(t + duration_s, g2, True), (t + duration_s + dwell, g2, False)]
            t += duration_s + dwell + 0.15
        self._touch_ribbon(direction, variant, duration_s)
        for at, gate, active in edges:
            self._schedule_edge(at, gate, active, bounce or self._bounce)

    def _schedule_edge(self, at: float, gate: str, active: bool, bounce: bool) -> None:
        self._hand = [t for t in self._hand if not t.cancelled and t.due >= self.loop.now()]
        if bounce:  # a few fast flickers (< 2 ms) before the contact settles
            for k in range(3):
                self._hand.append(self.loop.call_later(at + k * 0.0004, lambda g=gate, v=active: self._drive(g, v)))
                self._hand.append(
                    self.loop.call_later(at + k * 0.0004 + 0.0002, lambda g=gate, v=not active: self._drive(g, v))
                )
            at += 0.0015
        self._hand.append(self.loop.call_later(at, lambda: self._drive(gate, active)))

    def _touch_ribbon(self, direction: str, variant: SwipeVariant, duration_s: float) -> None:
        cassette = self.fitted
        if cassette is None or self.connector is None:
            return
        section = cassette.position
        fresh = not cassette.touched.get(section)
        drop_t = cassette.drop_time.get(section)
        self.swipes.append(
            SwipeRecord(
                self.loop.now(),
                section,
                cassette.name,
                direction,
                variant,
                duration_s,
                self.prompting,
                fresh,
                None if drop_t is None else self.loop.now() - drop_t,
            )
        )
        cassette.touched[section] = cassette.touched.get(section, 0) + 1
        if self.prompting and not fresh:
            self._violate(1, f"prompted swipe on section {section}, which was already used")
        self._persist()

    # ================================================================== faults
    def inject(self, fault: Fault | str, **kw: object) -> None:
        """Inject a fault. Keyword options: slip `steps`, missing_index `count`,
        stuck_sensor `sensor` and `active`."""
        fault = Fault(fault)
        if fault is Fault.JAM:
            self._jammed = True
        elif fault is Fault.SLIP:
            self._extra_steps.append(int(kw.get("steps", self.steps_per_position // 4)))  # type: ignore[call-overload]
        elif fault is Fault.MISSING_INDEX:
            self._missing_index += int(kw.get("count", 1))  # type: ignore[call-overload]
        elif fault is Fault.EMPTY_RIBBON:
            if self.fitted is not None:
                self.fitted.capacity = self.fitted.position + int(kw.get("left", 0))  # type: ignore[call-overload]
        elif fault is Fault.PUMP_CLOG:
            self._pump_clogged = True
        elif fault is Fault.EMPTY_RESERVOIR:
            self.reservoir = 0
            self._sync_fluid_switch()
        elif fault is Fault.STUCK_SENSOR:
            name = str(kw["sensor"])
            if name not in INPUTS:
                raise ValueError(f"no sensor {name!r}; sensors are {', '.join(INPUTS)}")
            self._stuck[name] = bool(kw.get("active", True))
            self._drive(name, self._level.get(name, False))
        elif fault is Fault.GATE_BOUNCE:
            self._bounce = True
        elif fault is Fault.CASSETTE_PULLED:
            self.remove_cassette()
        elif fault is Fault.CONNECTOR_PULLED:
            self.remove()

    def clear(self, fault: Fault | str) -> None:
        """Remove the cause of a fault (the repair a technician would make)."""
        fault = Fault(fault)
        if fault is Fault.JAM:
            self._jammed = False
        elif fault is Fault.SLIP:
            self._extra_steps.clear()
        elif fault is Fault.MISSING_INDEX:
            self._missing_index = 0
        elif fault is Fault.PUMP_CLOG:
            self._pump_clogged = False
        elif fault is Fault.EMPTY_RESERVOIR:
            self.refill()
        elif fault is Fault.STUCK_SENSOR:
            for name in list(self._stuck):
                del self._stuck[name]
                self._drive(name, self._level.get(name, False))
        elif fault is Fault.GATE_BOUNCE:
            self._bounce = False

    # ================================================================== reports
    def touched_twice(self) -> list[tuple[str, int]]:
        return [(c.name, s) for c in self.cassettes.values() for s, n in c.touched.items() if n > 1]
