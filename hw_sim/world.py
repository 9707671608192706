"""The physical model of the bench: wheel, cassettes and ribbon, reservoir, connector, hand.

It only sees what physics would: the firmware's output pins (STEP, DIR, ENABLE, pump, LEDs)
and the consequences of the operator's actions. From that physical truth it records every
violation of docs/design.md section 3, independently of the firmware's own bookkeeping.

World is the wheel, pump, panel and cradle; it composes the parts with a job of their own:
the input lines it drives (inputs.py), the operator's hand (hand.py), the end face of the
connector in hand and what strokes do to it (faces.py), the faults in force (faults.py), the
world file that survives a power cut (world_file.py) and the judge of the rules (judge.py),
which it tells every physical happening; the bench gives the judge an outside auditor of the
station's database (auditor.py) for the books and the records.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from station.config import Config
from station.loop import EventLoop

from .endface import EndFace
from .faces import Faces
from .faults import Fault, Faults
from .hand import Hand
from .inputs import INPUTS, InputLines
from .judge import Judge
from .model import ConnectorKind, SimCassette, SwipeRecord, SwipeVariant, Violation
from .pins import SimFactory
from .probe_port import ProbePort
from .world_file import WorldFile

__all__ = [
    "FLUID_LOW_LEVEL",
    "INPUTS",
    "ConnectorKind",
    "Fault",
    "SimCassette",
    "SwipeRecord",
    "SwipeVariant",
    "Violation",
    "World",
]

FLUID_LOW_LEVEL = 20  # drops left when the reservoir's float switch closes


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
        float_slosh_s: float = 0.0,
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
        # the float switch bobs this long after each draw that leaves the level just above it
        # (0: an ideal float); `refills_seen` counts the times the level rose past the float
        self.float_slosh_s = float_slosh_s
        self.refills_seen = 0
        self.connector: ConnectorKind | None = None
        self.connector_code: str | None = None  # the label printed on the connector in the hand
        self.scanner_sink: Callable[[str], None] | None = None  # where the bench's scanner sends a code
        self.mode_wet = False
        self.console_mode: str | None = None  # "dry"/"wet" when set on the console
        self.violations: list[Violation] = []
        self.swipes_before = 0  # swipes in earlier lives of this world (state file)
        self.drops_total = 0
        self.steps_total = 0
        self.positions_total = 0
        # wheel micro-state
        self._step_in_position = 0
        self._index_blind = False  # the slot under the sensor now is a pulse the index misses
        # the parts with a job of their own
        self.inputs = InputLines(factory, self.pins)
        self.faults = Faults(self)
        self.hand = Hand(self)
        self.faces = Faces(self)  # the end face of the connector in hand, and what strokes do to it
        self.probe_port = ProbePort(self)  # the probe's reports, to the station's console or GPIO lines
        self.judge = Judge(self)  # section 3, from this world's physics (and the books, once audited)
        self.audit_state: dict[str, object] | None = None  # the auditor's baselines from the world file
        # what the firmware shows
        self._out: dict[int, bool] = {}
        self.prompting = False
        self.prompts = 0
        self._move_positions = 0  # positions passed since the driver was last enabled
        self._on_prompt: list[Callable[[], None]] = []
        self.file = WorldFile(state_file)
        if self.file.exists():
            self.file.load(self)
        factory.on_output = self._output_changed
        self._pin_role = {
            getattr(self.pins, k): k
            for k in ("step", "dir", "enable", "pump", "led_ready", "led_busy", "led_fault", "buzzer")
        }
        self._role_pin = {role: bcm for bcm, role in self._pin_role.items()}
        for bcm in self._pin_role:  # outputs the firmware already set before the world was wired
            pin = factory.pin(bcm)
            if pin.function == "output":
                self._out[bcm] = bool(pin.state)

    @property
    def swipes(self) -> list[SwipeRecord]:
        return self.hand.swipes

    @swipes.setter
    def swipes(self, records: list[SwipeRecord]) -> None:
        self.hand.swipes = records

    @property
    def state_file(self) -> Path | None:
        return self.file.path

    @state_file.setter
    def state_file(self, path: Path | None) -> None:
        self.file.path = path

    # ================================================================== wiring
    def attach(self) -> None:
        """Set every input to its physical state. Call after the firmware built its devices."""
        for name in INPUTS:
            if name == "drop" and not self.config.dispenser.drop_sensor_fitted:
                continue
            if name.startswith("inspect_") and not self.config.inspection.gpio_fitted:
                continue
            self._drive(name, False, force=True)
        self._drive("mode_wet", self.mode_wet)
        self._sync_fluid_switch()
        self._update_index()
        self._sync_cassette_inputs()

    def _drive(self, name: str, active: bool, force: bool = False) -> None:
        """Inputs are active-low: active pulls the line to ground."""
        rose = self.inputs.drive(name, active, force)
        if name == "index":
            if rose:
                self.judge.index_rose()  # a pulse the index sensor can see
        elif name == "connector":
            if rose:  # the firmware can start a clean from this moment (rule 4: Judge._prompt)
                self.judge.connector_line_rose()
        elif name == "button":
            self.judge.button(self.inputs.read("button"))
        elif name.startswith("inspect_"):
            self.probe_port.line(name, self.inputs.read(name))  # a pulse ended is a verdict delivered

    def sensor(self, name: str) -> bool:
        """What the firmware reads on an input now (True = active)."""
        return self.inputs.read(name)

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

    def _persist(self) -> None:
        self.file.save(self)  # a no-op without a state file

    # ================================================================== firmware outputs
    def _output_changed(self, bcm: int, value: bool) -> None:
        was_enabled = self.stepper_enabled
        self._out[bcm] = value
        role = self._pin_role.get(bcm)
        if role == "enable" and self.stepper_enabled and not was_enabled:
            self._move_positions = 0  # a new move begins
            self.judge.move_started()
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
        cassette = self.fitted
        # the ribbon's end is fixed to the spool: past it the wheel cannot turn further
        turns = cassette is not None and not self.faults.jammed and cassette.position < cassette.capacity
        self.judge.stepped(forward, turns)
        if cassette is None or not turns:
            return
        self.steps_total += 1
        if not forward:
            return
        self._step_in_position += 1
        needed = self.steps_per_position + (self.faults.extra_steps[0] if self.faults.extra_steps else 0)
        if self._step_in_position >= needed:
            self._step_in_position = 0
            if self.faults.extra_steps:
                self.faults.extra_steps.pop(0)
            cassette.position += 1
            self.positions_total += 1
            self._index_blind = self.faults.missing_index > 0
            if self._index_blind:
                self.faults.missing_index -= 1
            self._move_positions += 1
            self.judge.position_done()
        self._update_index()
        self._persist()

    def _update_index(self) -> None:
        in_slot = self._step_in_position < self.index_slot and self.fitted is not None
        if not in_slot:
            self._index_blind = False
        self._drive("index", in_slot and not self._index_blind)

    def _pump(self) -> None:
        if self.faults.pump_clogged or self.reservoir <= 0:
            self.judge.pumped(None, dropped=False)
            return
        self.reservoir -= 1
        self.drops_total += 1
        self._sync_fluid_switch()
        if self.float_slosh_s and 0 < self.reservoir - self.float_level() <= 2:
            self._bob(self.float_slosh_s)  # the draw pulls the level down past the float for a moment
        cassette = self.fitted
        section = None
        if cassette is not None:
            section = cassette.position
            cassette.drops[section] = cassette.drops.get(section, 0) + 1
            cassette.drop_time[section] = self.loop.now()
        self.judge.pumped(section, dropped=True)
        self._persist()
        if self.config.dispenser.drop_sensor_fitted:
            self.loop.call_later(self.drop_sensor_delay_s, lambda: self._drive("drop", True))
            self.loop.call_later(self.drop_sensor_delay_s + 0.005, lambda: self._drive("drop", False))

    def _panel_changed(self) -> None:
        green, amber, red = self.leds()
        prompting = green and amber and not red  # only swipe-now lights green and amber together
        began, ended = prompting and not self.prompting, self.prompting and not prompting
        self.judge.leds_changed(green, amber, red, began, ended)
        if began:
            for fn in self._on_prompt:
                fn()
        self.prompting = prompting

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
            self.judge.cassette_handled("fitted")
            self.fitted = cassette
            self._step_in_position = 0
        self._sync_cassette_inputs()
        self._update_index()
        self._persist()
        return cassette

    def remove_cassette(self) -> None:
        if self.fitted is not None:
            self.judge.cassette_handled("taken out")
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
        if self.judge.session is not None and self.chosen_wet != self.judge.session.wet_at_seat:
            self.judge.session.mode_changed = True

    def refill(self, drops: int | None = None, *, bob_s: float = 0.0) -> None:
        """Fill the reservoir (to its capacity unless told how many drops). Poured past the
        float, the float bobs for `bob_s` (its switch opening and closing) before it settles."""
        was_low = self.reservoir <= self.float_level()
        self.reservoir = self.reservoir_capacity if drops is None else drops
        if was_low and self.reservoir > self.float_level():
            self.refills_seen += 1  # a refill the float switch can tell (the judge holds the books to it)
        self._sync_fluid_switch()
        if bob_s > 0:
            self._bob(bob_s)
        self._persist()

    def float_level(self) -> int:
        """Drops left when the float switch closes: a fixed level; in a tiny test reservoir,
        only when empty."""
        return min(FLUID_LOW_LEVEL, self.reservoir_capacity // 10)

    def _sync_fluid_switch(self) -> None:
        self._drive("fluid_low", self.reservoir <= self.float_level())

    def _bob(self, seconds: float, flips: int = 6) -> None:
        """The float bobbing: its switch flips `flips` times over `seconds`, then reads the level."""
        for k in range(flips):
            self.loop.call_later(seconds * k / flips, lambda k=k: self._drive("fluid_low", k % 2 == 0))
        self.loop.call_later(seconds, self._sync_fluid_switch)

    def press_button(self, hold_s: float = 0.1) -> None:
        self._drive("button", True)
        self.loop.call_later(hold_s, lambda: self._drive("button", False))

    # ================================================================== the operator's hand (hand.py)
    def present(
        self,
        kind: ConnectorKind | str,
        *,
        chatter_s: float = 0.0,
        code: str | None = None,
        dirt: str | None = None,
        face: EndFace | None = None,
    ) -> None:
        """Seat a connector in the guide (see `Hand.present`); `code`: the label printed on it;
        its end face `face`, else a new one `dirt` dirty (`Dirt`: clean when None; see faces.py)."""
        self.connector_code = code
        self.faces.presented(dirt, face)
        self.hand.present(kind, chatter_s=chatter_s)
        self.judge.seated(ConnectorKind(kind), chatter_s)

    def scan(self, code: str) -> None:
        """The bench's barcode scanner reads `code` (a badge, a cassette label, a connector's label)
        and sends it as a scanner does (`scanner_sink`: the station's scanner input)."""
        self.judge.scanned(code)
        if self.scanner_sink is not None:
            self.scanner_sink(code)

    def remove(self, *, pins_lag_s: float = 0.0) -> None:
        """Lift the connector out of the guide (see `Hand.remove`)."""
        self.judge.removed()
        self.hand.remove(pins_lag_s=pins_lag_s)

    def swipe(
        self,
        *,
        direction: str = "down",
        duration_s: float = 0.6,
        variant: SwipeVariant | str = SwipeVariant.FULL,
        bounce: bool = False,
    ) -> None:
        """Pull the connector across the window (see `Hand.swipe`); the ribbon works on its face."""
        strokes = len(self.hand.swipes)
        self.hand.swipe(direction=direction, duration_s=duration_s, variant=variant, bounce=bounce)
        if len(self.hand.swipes) > strokes:  # it touched the ribbon
            self.faces.stroked(self.hand.swipes[-1])
        end_t = max((t.due for t in self.hand.timers if not t.cancelled), default=self.loop.now())
        self.judge.stroke(direction, duration_s, SwipeVariant(variant), bounce or self.faults.bounce, end_t)

    @property
    def connector_face(self) -> EndFace | None:
        """The end face of the connector seated in the guide (None when the guide is empty)."""
        return self.faces.in_hand if self.connector is not None else None

    # ================================================================== faults (faults.py)
    def inject(self, fault: Fault | str, **kw: object) -> None:
        """Inject a fault (see `Faults.inject`)."""
        if Fault(fault) is not Fault.CONNECTOR_PULLED:  # (pulling the connector is the hand's)
            self.judge.disturb(f"fault {Fault(fault).value} injected")
        self.faults.inject(fault, **kw)

    def clear(self, fault: Fault | str) -> None:
        """Remove the cause of a fault (see `Faults.clear`)."""
        self.judge.disturb(f"fault {Fault(fault).value} cleared")
        self.faults.clear(fault)

    # ================================================================== reports
    def touched_twice(self) -> list[tuple[str, int]]:
        return [(c.name, s) for c in self.cassettes.values() for s, n in c.touched.items() if n > 1]
