"""The bench wiring sheet (docs/wiring.md), generated from the pin configuration the firmware uses.

Pin numbers and their meanings come from `station.config.PinsConfig` (defaults and field metadata),
so the sheet cannot disagree with the code; this module adds only what the configuration does
not know: the part on each pin, its direction and what the board must add around it.
`station wiring` writes it (`--config FILE` for the sheet of one station).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from enum import Enum
from pathlib import Path

from .config import RESERVED_PINS, Config, PinsConfig

WIRING_PATH = Path("docs") / "wiring.md"

# The Raspberry Pi 40-pin header (J8), identical on the Pi 5, Pi 4 and Zero 2 W:
# physical pin number -> what is on it. Odd pins are one row, even pins the other.
HEADER: dict[int, str] = {
    1: "3V3",
    2: "5V",
    3: "GPIO2",
    4: "5V",
    5: "GPIO3",
    6: "GND",
    7: "GPIO4",
    8: "GPIO14",
    9: "GND",
    10: "GPIO15",
    11: "GPIO17",
    12: "GPIO18",
    13: "GPIO27",
    14: "GND",
    15: "GPIO22",
    16: "GPIO23",
    17: "3V3",
    18: "GPIO24",
    19: "GPIO10",
    20: "GND",
    21: "GPIO9",
    22: "GPIO25",
    23: "GPIO11",
    24: "GPIO8",
    25: "GND",
    26: "GPIO7",
    27: "GPIO0",
    28: "GPIO1",
    29: "GPIO5",
    30: "GND",
    31: "GPIO6",
    32: "GPIO12",
    33: "GPIO13",
    34: "GND",
    35: "GPIO19",
    36: "GPIO16",
    37: "GPIO26",
    38: "GPIO20",
    39: "GND",
    40: "GPIO21",
}

BCM_TO_PHYSICAL: dict[int, int] = {int(name[4:]): pin for pin, name in HEADER.items() if name.startswith("GPIO")}

# Not for the station: the configuration's reserved buses, plus the HAT ID EEPROM pins
# (which the configuration cannot name at all: valid pins start at BCM 2).
RESERVED: dict[int, str] = {0: "HAT ID EEPROM (ID_SD)", 1: "HAT ID EEPROM (ID_SC)", **RESERVED_PINS}

SPI0_PINS = frozenset({7, 8, 9, 10, 11})


def physical_pin(bcm: int) -> int:
    """The header pin number of a BCM GPIO."""
    try:
        return BCM_TO_PHYSICAL[bcm]
    except KeyError:
        raise ValueError(f"GPIO {bcm} is not on the 40-pin header (BCM 0-27 are)") from None


def power_on_pull(bcm: int) -> str:
    """The weak pull a Pi 4 / Zero 2 W applies before any software runs (BCM 0-8 up, the rest down)."""
    return "up" if bcm <= 8 else "down"


class Direction(str, Enum):
    IN = "in"
    OUT = "out"


@dataclass(frozen=True)
class Hold:
    """A resistor on the board that holds an output safe while no software drives the pin."""

    level: bool  # the level it holds the pin at: True = high
    resistor: str
    required: bool

    def __str__(self) -> str:
        return f"{self.resistor}, {'REQUIRED' if self.required else 'recommended'}"


@dataclass(frozen=True)
class Wire:
    """What is on one configured pin and what the board must add around it."""

    part: str
    direction: Direction
    notes: str
    hold: Hold | None = None


INPUT = "active low: to GND when active, the Pi's internal pull-up holds it high"
OPEN_COLLECTOR = f"{INPUT}; open-collector (or open-drain) sensor output"
GATE = f"{OPEN_COLLECTOR}; no filter capacitor: the swipe is timed on this edge"
LED = "pin → 330 Ω to 1 kΩ resistor → LED → GND (active high)"

WIRES: dict[str, Wire] = {
    "step": Wire(
        "stepper driver",
        Direction.OUT,
        "one rising edge = one (micro)step",
        hold=Hold(False, "10 kΩ pull-down to GND", required=False),
    ),
    "dir": Wire("stepper driver", Direction.OUT, "sets the turning direction"),
    "enable": Wire(
        "stepper driver",
        Direction.OUT,
        "active low: low = motor energised; driver boards often pull ENABLE low (enabled) themselves",
        hold=Hold(True, "4.7 kΩ to 10 kΩ pull-up to 3.3 V (the driver's logic supply)", required=True),
    ),
    "index": Wire(
        "slotted optical sensor on the wheel",
        Direction.IN,
        f"{INPUT}; open-collector output, or a bare phototransistor (collector to the pin, emitter to GND)",
    ),
    "cassette_present": Wire("micro switch in the cradle", Direction.IN, f"{INPUT}; normally open contact"),
    "cassette_type": Wire(
        "micro switch under the male MT cassette's tab", Direction.IN, f"{INPUT}; normally open contact"
    ),
    "connector_present": Wire("reflective or through-beam sensor, top of the window", Direction.IN, OPEN_COLLECTOR),
    "guide_pin_left": Wire("small optical or Hall sensor, left guide pin", Direction.IN, OPEN_COLLECTOR),
    "guide_pin_right": Wire("small optical or Hall sensor, right guide pin", Direction.IN, OPEN_COLLECTOR),
    "gate_a": Wire("through-beam or reflective sensor, top of the window", Direction.IN, GATE),
    "gate_b": Wire("through-beam or reflective sensor, bottom of the window", Direction.IN, GATE),
    "pump": Wire(
        "peristaltic micro pump or solenoid valve",
        Direction.OUT,
        "pin → 100 Ω → gate of a logic-level N-MOSFET; pump or valve (5 V or 12 V) on the drain, "
        "flyback diode across it",
        hold=Hold(False, "100 kΩ pull-down from the MOSFET gate to GND", required=True),
    ),
    "drop_sensor": Wire("optical drop sensor under the nozzle (optional)", Direction.IN, OPEN_COLLECTOR),
    "fluid_low": Wire("float switch in the reservoir", Direction.IN, f"{INPUT}; closes when the level is low"),
    "mode_switch": Wire("toggle switch on the panel", Direction.IN, f"{INPUT}; closed = WET-TO-DRY, open = DRY"),
    "button": Wire("push button on the panel", Direction.IN, f"{INPUT}; normally open"),
    "led_ready": Wire("green LED", Direction.OUT, LED),
    "led_busy": Wire("amber LED", Direction.OUT, LED),
    "led_fault": Wire("red LED", Direction.OUT, LED),
    "inspect_pass": Wire(
        "inspection system's PASS output (automated inspector or PLC; optional)",
        Direction.IN,
        f"{OPEN_COLLECTOR}; a pulse (inspection.pulse_min_s or longer) is one PASS; a 24 V PLC output through an "
        "optocoupler",
    ),
    "inspect_fail": Wire(
        "inspection system's FAIL output (automated inspector or PLC; optional)",
        Direction.IN,
        f"{OPEN_COLLECTOR}; a pulse is one FAIL; a 24 V PLC output through an optocoupler",
    ),
    "buzzer": Wire(
        "active buzzer",
        Direction.OUT,
        "pin → 1 kΩ → base of an NPN transistor (2N2222, BC337); buzzer from 5 V to the collector",
        hold=Hold(False, "10 kΩ pull-down from the pin to GND", required=False),
    ),
}


@dataclass(frozen=True)
class Connection:
    """One configured pin: where it is on the header and what is wired to it."""

    key: str  # the configuration key under [pins]
    meaning: str  # the configuration's own description of the pin
    bcm: int
    physical: int
    wire: Wire
    fitted: bool

    @property
    def label(self) -> str:
        return f"pins.{self.key} ({self.wire.direction.value})"


def connections(config: Config | None = None) -> list[Connection]:
    """Every configured pin, in the configuration's order."""
    config = config or Config()
    missing = [f.name for f in fields(PinsConfig) if f.name not in WIRES]
    if missing:
        raise KeyError(f"pins.{missing[0]} has no wiring description: add it to WIRES in station/wiring.py")
    return [
        Connection(
            key=f.name,
            meaning=f.metadata["doc"],
            bcm=getattr(config.pins, f.name),
            physical=physical_pin(getattr(config.pins, f.name)),
            wire=WIRES[f.name],
            fitted=_fitted(f.name, config),
        )
        for f in fields(PinsConfig)
    ]


def _fitted(key: str, config: Config) -> bool:
    """Optional inputs are fitted only when the configuration says so."""
    if key == "drop_sensor":
        return config.dispenser.drop_sensor_fitted
    if key in ("inspect_pass", "inspect_fail"):
        return config.inspection.gpio_fitted
    return True


def _notes(c: Connection, config: Config) -> str:
    """The part's own notes plus what follows from this configuration."""
    parts = [c.wire.notes]
    if c.key == "dir":
        parts.append(f"forward = {'high' if config.wheel.forward_dir_high else 'low'} (wheel.forward_dir_high)")
    hold = c.wire.hold
    if hold is not None:
        parts.append(f"**{hold}**")
        pull = power_on_pull(c.bcm)
        if pull != ("up" if hold.level else "down"):
            parts.append(
                f"a Pi 4 / Zero 2 W pulls BCM {c.bcm} {pull} at power-on, which would switch "
                "this on: the resistor must overpower it"
            )
    if c.bcm in SPI0_PINS:
        parts.append("SPI0 pin: keep SPI disabled")
    if not c.fitted:
        flag = "dispenser.drop_sensor_fitted" if c.key == "drop_sensor" else "inspection.gpio_fitted"
        parts.append(f"not fitted ({flag} = false): leave unconnected")
    return "; ".join(parts)


def _table(config: Config, rows: list[Connection]) -> list[str]:
    lines = [
        "| part | signal | config key | BCM | header pin | dir | electrical notes |",
        "|---|---|---|---|---|---|---|",
    ]
    for c in rows:
        lines.append(
            f"| {c.wire.part} | {c.meaning} | `pins.{c.key}` | GPIO{c.bcm} | {c.physical} "
            f"| {c.wire.direction.value} | {_notes(c, config)} |"
        )
    for bcm, what in sorted(RESERVED_PINS.items()):
        lines.append(f"| reserved | {what} | | GPIO{bcm} | {physical_pin(bcm)} | | keep free |")
    return lines


def header_drawing(config: Config | None = None) -> list[str]:
    """The 40-pin header as text: every pin, the station's signals labelled at their pins."""
    used = {c.physical: c for c in connections(config) if c.fitted}

    def describe(pin: int) -> tuple[str, str]:
        name = HEADER[pin]
        if pin in used:
            return "#", used[pin].label
        if name.startswith("GPIO"):
            bcm = int(name[4:])
            return ("R", f"reserved: {RESERVED[bcm]}") if bcm in RESERVED else (".", "")
        return ("-", "") if name == "GND" else ("+", "")

    left = {pin: describe(pin) for pin in HEADER if pin % 2}
    right = {pin: describe(pin) for pin in HEADER if not pin % 2}
    width = max(len(label) for _, label in left.values())
    lines = [
        "Raspberry Pi 40-pin header (J8) seen from above, the board turned so that the header runs",
        "down its right-hand edge with pin 1 at the top. Pin 1 has the square pad: on a Pi 4 or 5 it",
        "is at the end away from the USB ports, on a Zero 2 W at the end next to the microSD card.",
        "Odd pins are the row towards the middle of the board, even pins the row along its edge.",
        "",
        f"{'odd row':>{width}}  {'':>6}  {'pin':>3}        {'pin':<3}  {'':<6}  even row",
    ]
    for odd in range(1, 41, 2):
        even = odd + 1
        (lm, llabel), (rm, rlabel) = left[odd], right[even]
        line = f"{llabel:>{width}}  {HEADER[odd]:>6}  {odd:>3} [{lm}]  [{rm}] {even:<3}  {HEADER[even]:<6}  {rlabel}"
        lines.append(line.rstrip())
    lines += [
        "",
        "[#] station signal (in: input, out: output)   [R] reserved: leave free",
        "[+] power (3V3, 5V)   [-] ground   [.] free GPIO",
    ]
    return lines


def _parts_list(config: Config) -> list[str]:
    drop = "optional; " + (
        "fitted in this configuration" if config.dispenser.drop_sensor_fitted else "not fitted in this configuration"
    )
    uart_tx, uart_rx = physical_pin(14), physical_pin(15)
    grounds = ", ".join(str(p) for p, name in HEADER.items() if name == "GND")
    rows = [
        (
            "1",
            "Raspberry Pi 5, Pi 4 or Zero 2 W",
            "Raspberry Pi OS Bookworm 64-bit Lite; the Zero 2 W needs a header soldered on",
        ),
        ("1", "power supply for the Pi", "official 27 W USB-C (Pi 5), 15 W USB-C (Pi 4), 2.5 A micro-USB (Zero 2 W)"),
        (
            "1",
            "stepper driver carrier, STEP/DIR: A4988, DRV8825 or TMC2209",
            "100 µF electrolytic across VMOT/GND at the carrier; logic supply (VDD/VIO) from the Pi's 3.3 V",
        ),
        (
            "1",
            "stepper motor: small NEMA-17 (0.4-1.0 A) or 28BYJ-48",
            "the 28BYJ-48 only converted to bipolar (centre tap cut) and at low current",
        ),
        ("1", "12 V supply for the motor (and a 12 V pump)", "grounds of all supplies joined to the Pi's GND"),
        ("1", "slotted optical sensor (wheel index)", "one pulse per wheel position"),
        ("2", "micro switches (cassette present, cassette type)", "normally open"),
        (
            "3",
            "reflective or through-beam optical sensors (connector present, gates A and B)",
            "open-collector outputs",
        ),
        ("2", "small optical or Hall sensors (left and right guide pin)", "open-collector outputs"),
        ("1", "5 V or 12 V peristaltic micro pump or solenoid valve", "one pulse = one drop"),
        ("1", "logic-level N-MOSFET", "fully on at VGS = 2.5 V, e.g. AO3400 or IRLML6344"),
        ("1", "flyback diode", "1N5819 or 1N4007 across the pump/valve (cathode to +)"),
        ("1", "optical drop sensor", drop),
        ("1", "float switch", "closes when the level is low"),
        ("1", "toggle switch (mode)", "SPST"),
        ("1", "push button (panel)", "normally open"),
        ("3", "LEDs: green, amber, red", "each with a 330 Ω to 1 kΩ series resistor"),
        ("1", "active buzzer (5 V) with NPN transistor and 1 kΩ base resistor", "2N2222 or BC337"),
        *(
            (
                "1",
                f"resistor: {c.wire.hold.resistor}",
                f"holds `pins.{c.key}` safe ({'required' if c.wire.hold.required else 'recommended'})",
            )
            for c in connections(config)
            if c.wire.hold
        ),
        (
            "1",
            "USB-serial adapter with 3.3 V logic (FTDI, CP2102)",
            f"the console: adapter RX to header pin {uart_tx} (GPIO14 TXD), adapter TX to pin {uart_rx} "
            f"(GPIO15 RXD), GND to any ground pin ({grounds})",
        ),
    ]
    lines = ["| qty | part | notes |", "|---|---|---|"]
    lines += [f"| {qty} | {part} | {notes} |" for qty, part, notes in rows]
    return lines


def _held_safe(rows: list[Connection]) -> list[str]:
    return [
        f"- `pins.{c.key}` on GPIO{c.bcm} (header pin {c.physical}), {c.meaning}: **{c.wire.hold}**."
        for c in rows
        if c.wire.hold
    ]


def document(config: Config | None = None) -> str:
    """docs/wiring.md for a configuration (default: the reference bench)."""
    config = config or Config()
    rows = connections(config)
    w = config.wheel
    target_a = 0.7 * 1.0  # the worked example: 70 % of a motor rated 1.0 A
    text = [
        "# Wiring of the cleaning station",
        "",
        "Generated from the firmware's own pin configuration (`station/config.py`) by `station wiring`;",
        "a test fails when this file does not match the code. To wire a station whose pins were",
        "changed, generate its own sheet:",
        "`station wiring --config /etc/mpo-station/station.toml --output wiring.md`.",
        "",
        "Pins are BCM GPIO numbers; the header pin is the physical pin number on the Raspberry Pi's",
        "40-pin header, which is the same on the Pi 5, Pi 4 and Zero 2 W.",
        "",
        "## Before the first power-up",
        "",
        "When the station is not running — while the Pi boots, after the process exits or crashes —",
        "the GPIO pins float: closed gpiozero/lgpio pins revert to inputs without pulls. Only",
        "resistors on the board keep the outputs safe then:",
        "",
        *_held_safe(rows),
        "",
        "Never put more than 3.3 V on a GPIO: sensors powered from 5 V must have open-collector",
        "outputs (no pull-up to 5 V on the module). Join the grounds of the Pi, the driver's motor",
        "supply and the pump supply. Never plug or unplug the motor while the driver is powered.",
        "",
        "## Connections",
        "",
        *_table(config, rows),
        "",
        "Inputs are wired active low: the sensor or switch connects the pin to GND when it is active",
        "and the Pi's internal pull-up (about 50 kΩ) holds the pin high at rest, so a broken wire reads",
        'as "absent". Outputs are push-pull 3.3 V, a few mA: LEDs through a resistor, everything',
        "else through a transistor or the driver's logic input.",
        "",
        "## The header",
        "",
        "```text",
        *header_drawing(config),
        "```",
        "",
        "## Parts",
        "",
        *_parts_list(config),
        "",
        "## Stepper driver current",
        "",
        "Set the driver's current limit to about 70 % of the motor's rated phase current: the wheel",
        "needs little torque, and the motor and driver stay cool. Measure Vref between the current",
        "potentiometer (or the Vref pad) and GND with the driver's logic and motor supply on.",
        "",
        "| driver | current limit | example: motor rated 1.0 A, target 0.7 A |",
        "|---|---|---|",
        f"| A4988 | Vref = I_max × 8 × R_sense (R_sense on the carrier, often 0.068 Ω; check yours) "
        f"| Vref = 0.7 × 8 × 0.068 = {target_a * 8 * 0.068:.3f} V |",
        f"| DRV8825 | Vref = I_max / 2 | Vref = {target_a / 2:.2f} V |",
        "| TMC2209 | Vref per the module's documentation (it depends on its sense resistors), or over "
        "UART (PDN_UART) | see the module's table |",
        "",
        "The firmware only uses STEP/DIR/ENABLE. Set the microstep pins (MS1-MS3) to suit the",
        "mechanics and make `wheel.steps_per_position` the nominal number of steps from one index",
        f"pulse to the next (now {w.steps_per_position}). A position counts only when the index sensor",
        "sees it; more steps than `wheel.max_steps_per_position` without an index pulse are a jam",
        f"(now {w.max_steps_per_position}).",
        "",
    ]
    return "\n".join(text)


def write(path: str | Path = WIRING_PATH, config: Config | None = None) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(document(config), encoding="utf-8")
