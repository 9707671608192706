"""Station configuration: one TOML file, validated once at start-up.

Every value has a default (the reference bench of docs/design.md section 2), a type and a range.
Errors name the key, the value and what is allowed; unknown keys are errors so that a typo
never passes silently. Each [section] of the file is one frozen `...Config` dataclass (`[pins]`
is `PinsConfig`, read as `config.pins`); `Config` holds them all.
"""

from __future__ import annotations

import dataclasses
import json
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, TypeAlias

# BCM pins that are reserved for other buses on the reference bench.
RESERVED_PINS = {14: "UART console TX", 15: "UART console RX", 2: "I2C SDA", 3: "I2C SCL"}
VALID_BCM = range(2, 28)


class ConfigError(ValueError):
    """A configuration value is missing, malformed or out of range."""


# The value of one key, as the file (TOML) gives it and the dataclasses keep it.
ConfigValue: TypeAlias = bool | int | float | str


# Each key is declared with one of these: its default, and in the field's metadata its
# documentation and what is allowed (read by _check_value, `dumps` and the wiring sheet).
def _num(default: float, lo: float, hi: float, doc: str) -> float:
    return field(default=default, metadata={"lo": lo, "hi": hi, "doc": doc, "integer": False})


def _int(default: int, lo: int, hi: int, doc: str) -> int:
    return field(default=default, metadata={"lo": lo, "hi": hi, "doc": doc, "integer": True})


def _flag(default: bool, doc: str) -> bool:
    return field(default=default, metadata={"doc": doc})


def _text(default: str, doc: str, choices: tuple[str, ...] = ()) -> str:
    return field(default=default, metadata={"doc": doc, "choices": choices})


def _pin(default: int, doc: str) -> int:
    return field(default=default, metadata={"doc": doc, "pin": True})


def _pattern(default: str, doc: str) -> str:
    return field(default=default, metadata={"doc": doc, "regex": True})


def _url(default: str, doc: str, schemes: tuple[str, ...]) -> str:
    return field(default=default, metadata={"doc": doc, "schemes": schemes})


def _topic_level(default: str, doc: str, *, levels: bool = False) -> str:
    """MQTT topic text (no wildcards, no NUL); `levels`: may span levels ("a/b/"), else one level."""
    return field(default=default, metadata={"doc": doc, "topic": "levels" if levels else "level"})


# scheme://host:port, host a name, an IPv4 address or a bracketed IPv6 address
_URL = re.compile(r"(?P<scheme>[a-z]+)://(?P<host>[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\]):(?P<port>[0-9]{1,5})")


@dataclass(frozen=True)
class PinsConfig:
    """BCM pin numbers (docs/design.md section 2). Inputs are wired active-low with pull-ups."""

    step: int = _pin(20, "stepper driver STEP")
    dir: int = _pin(21, "stepper driver DIR")
    enable: int = _pin(16, "stepper driver ENABLE (active low; hold high with a pull-up)")
    index: int = _pin(26, "wheel index sensor, one pulse per wheel position")
    cassette_present: int = _pin(5, "cassette present switch")
    cassette_type: int = _pin(6, "cassette type switch (active = male MT cassette)")
    connector_present: int = _pin(13, "connector present sensor")
    guide_pin_left: int = _pin(19, "left guide-pin sensor")
    guide_pin_right: int = _pin(12, "right guide-pin sensor")
    gate_a: int = _pin(23, "swipe gate A (top of the window)")
    gate_b: int = _pin(24, "swipe gate B (bottom of the window)")
    pump: int = _pin(18, "fluid pump or valve (one pulse = one drop)")
    drop_sensor: int = _pin(22, "drop sensor (used when dispenser.drop_sensor_fitted)")
    fluid_low: int = _pin(25, "fluid low switch")
    mode_switch: int = _pin(27, "mode switch (active = WET-TO-DRY)")
    button: int = _pin(17, "panel button")
    led_ready: int = _pin(10, "ready LED (green)")
    led_busy: int = _pin(9, "busy / swipe-now LED (amber)")
    led_fault: int = _pin(11, "fault LED (red)")
    buzzer: int = _pin(8, "buzzer")
    inspect_pass: int = _pin(4, "inspection PASS line from an inspector or PLC (used when inspection.gpio_fitted)")
    inspect_fail: int = _pin(7, "inspection FAIL line from an inspector or PLC (used when inspection.gpio_fitted)")


@dataclass(frozen=True)
class WheelConfig:
    """The cassette's advance wheel and its stepper."""

    positions_per_clean: int = _int(3, 1, 10, "wheel positions advanced before each clean")
    steps_per_position: int = _int(64, 1, 10_000, "nominal motor steps per wheel position")
    max_steps_per_position: int = _int(
        96, 1, 20_000, "steps allowed without an index pulse before the wheel counts as jammed"
    )
    start_rate_hz: float = _num(300.0, 10.0, 20_000.0, "step rate at the start and end of a move")
    max_rate_hz: float = _num(1200.0, 10.0, 20_000.0, "cruise step rate")
    accel_hz_per_s: float = _num(6000.0, 10.0, 1_000_000.0, "acceleration of the step rate")
    forward_dir_high: bool = _flag(True, "DIR level that turns the wheel forward")


@dataclass(frozen=True)
class CassetteConfig:
    """Consumable capacity (from the cassette's datasheet)."""

    capacity_positions: int = _int(1500, 3, 1_000_000, "wheel positions a new cassette can advance (datasheet)")
    low_warning_cleans: int = _int(20, 0, 100_000, "warn when fewer cleans than this remain")


@dataclass(frozen=True)
class DispenserConfig:
    """The wet-to-dry fluid pump."""

    pulse_s: float = _num(0.03, 0.001, 1.0, "pump pulse length for one drop")
    drop_sensor_fitted: bool = _flag(True, "confirm each drop with the drop sensor")
    drop_timeout_s: float = _num(
        0.5, 0.01, 10.0, "time for the drop sensor to see the drop, from the start of the pulse (longer than pulse_s)"
    )
    reservoir_drops: int = _int(2000, 1, 10_000_000, "drops in a full reservoir")
    refill_settle_s: float = _num(
        3.0, 0.1, 600.0, "fluid-low switch low, then not-low, each held this long with no drop placed: a refill"
    )


@dataclass(frozen=True)
class SwipeConfig:
    """What counts as a good single-direction pull across the window."""

    timeout_s: float = _num(15.0, 1.0, 600.0, "dry mode: time allowed to start the swipe")
    wet_window_s: float = _num(6.0, 0.5, 120.0, "wet mode: the swipe must start this soon after the drop")
    min_pass_s: float = _num(0.15, 0.0, 10.0, "gate A to gate B faster than this is too fast")
    max_pass_s: float = _num(3.0, 0.01, 60.0, "gate A to gate B slower than this is too slow")
    glitch_s: float = _num(0.008, 0.0, 0.5, "gate pulses and gaps shorter than this are bounce")
    settle_s: float = _num(0.4, 0.01, 10.0, "quiet time after gate B before the swipe is judged")


@dataclass(frozen=True)
class GuidePinsConfig:
    """Reading the connector's guide pins."""

    settle_s: float = _num(0.15, 0.0, 5.0, "readings must be unchanged this long to count")
    timeout_s: float = _num(1.5, 0.05, 30.0, "give up (re-seat) if not settled by then")


@dataclass(frozen=True)
class PanelConfig:
    """Operator panel."""

    long_press_s: float = _num(2.0, 0.3, 10.0, "button hold time for operator functions")
    beep_s: float = _num(0.08, 0.01, 2.0, "length of one beep")


@dataclass(frozen=True)
class ConsoleConfig:
    """The maintenance console (docs/design.md section 5)."""

    port: str = _text("/dev/serial0", "serial device or pyserial URL of the console")
    baud: int = _int(115200, 1200, 4_000_000, "console baud rate (8N1)")
    tcp_port: int = _int(0, 0, 65535, "also serve the console on 127.0.0.1:<port> (0: off)")
    idle_logout_s: float = _num(300.0, 10.0, 86_400.0, "log out a maintenance session idle this long")
    max_commands_per_s: float = _num(20.0, 1.0, 1000.0, "per port; faster clients get an error")


@dataclass(frozen=True)
class StationConfig:
    """Identity and files."""

    serial_number: str = _text("SIM-0001", "serial number reported by *IDN?")
    state_dir: str = _text("", "where the database lives (empty: the per-user default)")


@dataclass(frozen=True)
class ScannerConfig:
    """The barcode/DataMatrix scanner (docs/design.md section 9)."""

    kind: str = _text(
        "none", "none, serial (USB CDC-ACM via pyserial) or hid (USB keyboard via evdev)", ("none", "serial", "hid")
    )
    device: str = _text("", "serial: /dev/ttyACM0 or a pyserial URL; hid: /dev/input/by-id/...-event-kbd")
    baud: int = _int(9600, 1200, 4_000_000, "serial scanner baud rate (8N1; CDC-ACM ignores it)")


@dataclass(frozen=True)
class TraceabilityConfig:
    """Who cleaned which connector on which cassette (docs/design.md section 9)."""

    operator_pattern: str = _pattern(r"OP-[A-Z0-9]+", "a code matching this whole is an operator badge")
    cassette_pattern: str = _pattern(r"CAS-[A-Z0-9-]+", "a code matching this whole is a cassette label")
    connector_pattern: str = _pattern(
        r"(?P<cable>.+)-(?P<end>[A-Z])",
        "a connector code naming its cable and end (groups `cable` and `end`); other codes are a connector with no end",
    )
    require_connector_id: bool = _flag(False, "refuse a connector presented without a scan since the last clean")
    require_operator: bool = _flag(False, "no clean without an operator badge scanned within operator_timeout_s")
    operator_timeout_s: float = _num(8 * 3600.0, 60.0, 7 * 86_400.0, "an operator badge counts this long")


@dataclass(frozen=True)
class FleetConfig:
    """Fleet telemetry to an MQTT broker (docs/design.md section 11, docs/fleet.md)."""

    broker: str = _url("", "mqtt://host:port or mqtts://host:port (TLS); empty: no fleet", ("mqtt", "mqtts"))
    station_id: str = _topic_level("", "this station's name on the broker (empty: station.serial_number)")
    topic_prefix: str = _topic_level("", "topics start with this (empty: mpo-station/<station_id>/)", levels=True)
    username: str = _text("", "user name at the broker (empty: none)")
    password_file: str = _text("", "file holding the broker password, readable by the service user alone")
    ca_file: str = _text("", "mqtts: CA certificate(s) to trust, PEM (empty: the system's)")
    keepalive_s: int = _int(30, 5, 3600, "MQTT keep-alive; the broker declares the station gone after 1.5x this")
    backlog_rate_per_s: float = _num(50.0, 0.1, 10_000.0, "records sent per second while catching up a backlog")


@dataclass(frozen=True)
class InspectionConfig:
    """Clean -> inspect -> re-clean (docs/design.md section 10): verdicts from an inspection system."""

    mode: str = _text(
        "off", "off, after (clean, then inspect) or first (inspect, clean only on FAIL)", ("off", "after", "first")
    )
    verdict_timeout_s: float = _num(300.0, 5.0, 86_400.0, "an inspection with no verdict this long ends as no_verdict")
    reclean: str = _text(
        "dry,dry,wet",
        "the procedure of each clean of one connector's loop (dry or wet, comma-separated); after the last "
        "fails, the connector is quarantined",
    )
    gpio_fitted: bool = _flag(False, "PASS/FAIL lines from an automated inspector on pins.inspect_pass/inspect_fail")
    pulse_min_s: float = _num(0.02, 0.001, 5.0, "a PASS or FAIL line must be active this long to count")
    pulse_max_s: float = _num(
        2.0, 0.01, 60.0, "a line active longer than this is stuck, not a verdict (it counts as none when released)"
    )


@dataclass(frozen=True)
class Config:
    """The whole station configuration."""

    station: StationConfig = field(default_factory=StationConfig)
    pins: PinsConfig = field(default_factory=PinsConfig)
    wheel: WheelConfig = field(default_factory=WheelConfig)
    cassette: CassetteConfig = field(default_factory=CassetteConfig)
    dispenser: DispenserConfig = field(default_factory=DispenserConfig)
    swipe: SwipeConfig = field(default_factory=SwipeConfig)
    guide_pins: GuidePinsConfig = field(default_factory=GuidePinsConfig)
    panel: PanelConfig = field(default_factory=PanelConfig)
    console: ConsoleConfig = field(default_factory=ConsoleConfig)
    scanner: ScannerConfig = field(default_factory=ScannerConfig)
    traceability: TraceabilityConfig = field(default_factory=TraceabilityConfig)
    fleet: FleetConfig = field(default_factory=FleetConfig)
    inspection: InspectionConfig = field(default_factory=InspectionConfig)

    def replace(self, section: str, **values: ConfigValue) -> Config:
        """A copy with some values of one section changed, validated like a file."""
        raw = to_dict(self)
        if section not in raw:
            raise ConfigError(f"unknown section [{section}]; allowed sections are {', '.join(raw)}")
        raw[section].update(values)
        return from_dict(raw)


def _section_types() -> dict[str, type]:
    """Section name -> its dataclass (the class of that section in a default Config)."""
    defaults = Config()
    return {f.name: type(getattr(defaults, f.name)) for f in fields(Config)}


def _check_value(key: str, f: dataclasses.Field[ConfigValue], value: object) -> ConfigValue:
    meta = f.metadata
    if f.type in ("bool", bool) or isinstance(f.default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{key} = {value!r}: expected true or false")
        return value
    if isinstance(f.default, str):
        if not isinstance(value, str):
            raise ConfigError(f"{key} = {value!r}: expected a string")
        choices = meta.get("choices") or ()
        if choices and value not in choices:
            raise ConfigError(f"{key} = {value!r}: allowed values are {', '.join(choices)}")
        if meta.get("regex"):
            try:
                re.compile(value)
            except re.error as exc:
                raise ConfigError(f"{key} = {value!r}: not a regular expression ({exc})") from exc
        if meta.get("schemes"):
            _check_url(key, value, meta["schemes"])
        if meta.get("topic"):
            _check_topic(key, value, levels=meta["topic"] == "levels")
        return value
    if meta.get("pin"):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key} = {value!r}: expected a BCM pin number (2-27)")
        if value not in VALID_BCM:
            raise ConfigError(f"{key} = {value}: not a BCM GPIO pin; allowed 2-27")
        if value in RESERVED_PINS:
            raise ConfigError(
                f"{key} = {value}: GPIO {value} is kept free for the {RESERVED_PINS[value]}; choose another pin"
            )
        return value
    integer = meta.get("integer", False)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{key} = {value!r}: expected a number")
    if integer and not isinstance(value, int):
        raise ConfigError(f"{key} = {value!r}: expected a whole number")
    lo, hi = meta["lo"], meta["hi"]
    if not lo <= value <= hi:
        raise ConfigError(f"{key} = {value}: out of range; allowed {lo} to {hi}")
    return value if integer else float(value)


def _check_url(key: str, value: str, schemes: tuple[str, ...]) -> None:
    if not value:
        return
    forms = " or ".join(f"{s}://host:port" for s in schemes)
    m = _URL.fullmatch(value)
    if m is None:
        raise ConfigError(f"{key} = {value!r}: expected {forms} (e.g. {schemes[0]}://broker.lan:1883), or empty")
    if m["scheme"] not in schemes:
        raise ConfigError(f"{key} = {value!r}: unknown scheme {m['scheme']}://; allowed {forms}")
    if not 1 <= int(m["port"]) <= 65535:
        raise ConfigError(f"{key} = {value!r}: port {m['port']} out of range; allowed 1 to 65535")


def _check_topic(key: str, value: str, *, levels: bool) -> None:
    bad = [c for c in ("+", "#", "\x00") if c in value] + ([] if levels else ["/"] if "/" in value else [])
    if bad:
        what = "MQTT topic text" if levels else "one MQTT topic level"
        raise ConfigError(f"{key} = {value!r}: {bad[0]!r} is not allowed in {what}")
    if levels and value and not value.endswith("/"):
        raise ConfigError(f"{key} = {value!r}: must end with / (the topics are <prefix>status, <prefix>attempts)")


def fleet_station_id(config: Config) -> str:
    """The station's name on the broker: [fleet] station_id, else its serial number."""
    return config.fleet.station_id or config.station.serial_number


def fleet_prefix(config: Config) -> str:
    """The topic prefix: [fleet] topic_prefix, else mpo-station/<station id>/."""
    return config.fleet.topic_prefix or f"mpo-station/{fleet_station_id(config)}/"


def check_value(section: str, key: str, value: object) -> ConfigValue:
    """One value on its own: its section and key exist, its type and range are right (how it
    fits the other values is checked when a whole configuration is built)."""
    sections = _section_types()
    if section not in sections:
        raise ConfigError(f"unknown section [{section}]; allowed sections are {', '.join(sections)}")
    known = {f.name: f for f in fields(sections[section])}
    if key not in known:
        raise ConfigError(f"unknown key {section}.{key}; allowed keys in [{section}] are {', '.join(known)}")
    return _check_value(f"{section}.{key}", known[key], value)


def from_dict(raw: Mapping[str, object]) -> Config:
    """Build and validate a Config from parsed TOML (missing keys take their defaults)."""
    sections = _section_types()
    if not isinstance(raw, Mapping):
        raise ConfigError("configuration must be a table of sections")
    unknown = sorted(set(raw) - set(sections))
    if unknown:
        raise ConfigError(f"unknown section [{unknown[0]}]; allowed sections are {', '.join(sections)}")
    built: dict[str, Any] = {}  # section name -> an instance of that section's own class
    for name, cls in sections.items():
        values = raw.get(name, {})
        if not isinstance(values, Mapping):
            raise ConfigError(f"[{name}] must be a table, got {values!r}")
        known = {f.name: f for f in fields(cls)}
        bad = sorted(set(values) - set(known))
        if bad:
            raise ConfigError(f"unknown key {name}.{bad[0]}; allowed keys in [{name}] are {', '.join(known)}")
        built[name] = cls(**{k: _check_value(f"{name}.{k}", known[k], v) for k, v in values.items()})
    config = Config(**built)
    _check_cross(config)
    return config


def _check_cross(config: Config) -> None:
    pins = dataclasses.asdict(config.pins)
    seen: dict[int, str] = {}
    for name, number in pins.items():
        if name == "drop_sensor" and not config.dispenser.drop_sensor_fitted:
            continue
        if name in ("inspect_pass", "inspect_fail") and not config.inspection.gpio_fitted:
            continue
        if number in seen:
            raise ConfigError(f"pins.{name} = {number}: GPIO {number} is already used by pins.{seen[number]}")
        seen[number] = name
    w = config.wheel
    if w.max_steps_per_position <= w.steps_per_position:
        raise ConfigError(
            f"wheel.max_steps_per_position = {w.max_steps_per_position}: must be more than "
            f"wheel.steps_per_position ({w.steps_per_position}) or every move counts as a jam"
        )
    if w.max_rate_hz < w.start_rate_hz:
        raise ConfigError(
            f"wheel.max_rate_hz = {w.max_rate_hz}: must be at least wheel.start_rate_hz ({w.start_rate_hz})"
        )
    s = config.swipe
    if s.max_pass_s <= s.min_pass_s:
        raise ConfigError(f"swipe.max_pass_s = {s.max_pass_s}: must be more than swipe.min_pass_s ({s.min_pass_s})")
    if s.glitch_s * 4 > s.min_pass_s and s.min_pass_s > 0:
        raise ConfigError(
            f"swipe.glitch_s = {s.glitch_s}: must be under a quarter of swipe.min_pass_s ({s.min_pass_s}) "
            "so bounce filtering cannot swallow a real pass"
        )
    d = config.dispenser
    if d.drop_timeout_s <= d.pulse_s:
        raise ConfigError(
            f"dispenser.drop_timeout_s = {d.drop_timeout_s}: must be longer than dispenser.pulse_s ({d.pulse_s}); "
            "the drop is only complete once the pump pulse has ended"
        )
    if s.settle_s <= s.glitch_s:
        raise ConfigError(
            f"swipe.settle_s = {s.settle_s}: must be longer than swipe.glitch_s ({s.glitch_s}); "
            "a swipe cannot be judged before its last edge is known not to be bounce"
        )
    ins = config.inspection
    if ins.pulse_max_s <= ins.pulse_min_s:
        raise ConfigError(
            f"inspection.pulse_max_s = {ins.pulse_max_s}: must be more than inspection.pulse_min_s ({ins.pulse_min_s})"
        )
    steps = [step.strip() for step in config.inspection.reclean.split(",")]
    if not 1 <= len(steps) <= 10 or any(step not in ("dry", "wet") for step in steps):
        raise ConfigError(
            f"inspection.reclean = {config.inspection.reclean!r}: a comma-separated list of 1 to 10 procedures, "
            'each dry or wet, e.g. "dry,dry,wet"'
        )
    sc = config.scanner
    if sc.kind != "none" and not sc.device:
        raise ConfigError(f"scanner.kind = {sc.kind!r}: scanner.device must name the scanner's device")
    for key in ("operator_pattern", "cassette_pattern"):
        pattern = getattr(config.traceability, key)
        if re.fullmatch(pattern, ""):
            raise ConfigError(
                f"traceability.{key} = {pattern!r}: matches an empty code, so it would take codes of every kind; "
                'give the prefix its codes carry, e.g. "OP-[A-Z0-9]+"'
            )
    cable_end = re.compile(config.traceability.connector_pattern).groupindex
    if "cable" not in cable_end:
        raise ConfigError(
            f"traceability.connector_pattern = {config.traceability.connector_pattern!r}: "
            "needs a group named cable, e.g. (?P<cable>.+)-(?P<end>[A-Z])"
        )
    _check_fleet(config)
    if config.cassette.capacity_positions < w.positions_per_clean:
        raise ConfigError(
            f"cassette.capacity_positions = {config.cassette.capacity_positions}: "
            f"less than one clean ({w.positions_per_clean} positions)"
        )


def _check_fleet(config: Config) -> None:
    f = config.fleet
    if not f.broker:
        return
    if not f.station_id:  # the serial number stands in: it must be a topic level too
        try:
            _check_topic("station.serial_number", config.station.serial_number, levels=False)
        except ConfigError as exc:
            raise ConfigError(f"{exc} (it names the station on the broker: set fleet.station_id)") from exc
        if not config.station.serial_number:
            raise ConfigError("station.serial_number is empty: set fleet.station_id to name the station on the broker")
    if f.password_file and not f.username:
        raise ConfigError(f"fleet.password_file = {f.password_file!r}: needs fleet.username")
    if f.ca_file and not f.broker.startswith("mqtts://"):
        raise ConfigError(f"fleet.ca_file = {f.ca_file!r}: only used with mqtts://, fleet.broker is {f.broker!r}")


OVERRIDES_SETTING = "config.overrides"  # console changes, kept in the station database
# What a running station cannot take over safely: read once, when the hardware is built.
RESTART_SECTIONS = frozenset({"pins", "wheel", "station", "console", "scanner", "fleet"})
RESTART_KEYS = frozenset(
    {"dispenser.pulse_s", "dispenser.drop_sensor_fitted", "panel.beep_s", "inspection.gpio_fitted"}
)


def override_names(overrides: Mapping[str, Mapping[str, object]]) -> list[str]:
    """The `section.key` names of saved changes, sorted."""
    return [f"{section}.{key}" for section, values in sorted(overrides.items()) for key in sorted(values)]


def needs_restart(section: str, key: str) -> bool:
    """A changed value takes effect only at the next start (see RESTART_SECTIONS / _KEYS)."""
    return section in RESTART_SECTIONS or f"{section}.{key}" in RESTART_KEYS


def with_overrides(config: Config, overrides: Mapping[str, Mapping[str, object]]) -> Config:
    """The file's configuration with the console's saved changes on top (validated again)."""
    raw: dict[str, dict[str, object]] = {section: {**values} for section, values in to_dict(config).items()}
    for section, values in overrides.items():
        raw.setdefault(section, {}).update(values)
    return from_dict(raw)


def to_dict(config: Config) -> dict[str, dict[str, ConfigValue]]:
    """Every section as a table of its values (what a TOML file of this configuration holds)."""
    return dataclasses.asdict(config)


def load(path: str | Path | None) -> Config:
    """Load and validate a TOML file; None means all defaults."""
    if path is None:
        return Config()
    p = Path(path)
    try:
        text = p.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read configuration file {p}: {exc.strerror}") from exc
    try:
        raw = tomllib.loads(text.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{p}: not UTF-8 text ({exc})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p}: not valid TOML: {exc}") from exc
    try:
        return from_dict(raw)
    except ConfigError as exc:
        raise ConfigError(f"{p}: {exc}") from exc


def dumps(config: Config) -> str:
    """The configuration as TOML text, with a comment per key (used for examples and `config show`)."""
    lines: list[str] = []
    for section in fields(Config):
        value = getattr(config, section.name)
        lines.append(f"[{section.name}]")
        for f in fields(value):
            v = getattr(value, f.name)
            if isinstance(v, bool):
                text = "true" if v else "false"
            elif isinstance(v, str):
                # JSON's string escapes are TOML's, but for DEL (and no surrogate pairs)
                text = json.dumps(v, ensure_ascii=False).replace("\x7f", "\\u007f")
            else:
                text = repr(v)
            lines.append(f"{f.name} = {text}  # {f.metadata.get('doc', '')}")
        lines.append("")
    return "\n".join(lines)
