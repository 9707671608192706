"""Station configuration (station/config.py): defaults, loading a TOML file, and its errors.

Every error must name the key, the value and what is allowed, so the tests check the message.
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from station.config import (
    RESERVED_PINS,
    Config,
    ConfigError,
    PinsConfig,
    TraceabilityConfig,
    dumps,
    fleet_prefix,
    fleet_station_id,
    from_dict,
    load,
    to_dict,
)

# docs/design.md section 2, "The reference bench": the default wiring, BCM numbers.
REFERENCE_WIRING = {
    "step": 20,
    "dir": 21,
    "enable": 16,
    "index": 26,
    "cassette_present": 5,
    "cassette_type": 6,
    "connector_present": 13,
    "guide_pin_left": 19,
    "guide_pin_right": 12,
    "gate_a": 23,
    "gate_b": 24,
    "pump": 18,
    "drop_sensor": 22,
    "fluid_low": 25,
    "mode_switch": 27,
    "button": 17,
    "led_ready": 10,
    "led_busy": 9,
    "led_fault": 11,
    "buzzer": 8,
    # issue 14: the inspection system's PASS / FAIL lines, on the two pins the bench leaves free
    "inspect_pass": 4,
    "inspect_fail": 7,
}


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "station.toml"
    path.write_text(text, encoding="utf-8")
    return path


def load_error(tmp_path: Path, text: str) -> str:
    """The message of the ConfigError raised by loading `text` from a file."""
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load(path)
    message = str(caught.value)
    assert str(path) in message, "the message names the file"
    return message


def assert_names(message: str, *parts: str) -> None:
    for part in parts:
        assert part in message, f"{part!r} missing from: {message}"


# --- defaults -----------------------------------------------------------------------------


def test_default_pins_are_the_reference_wiring():
    assert dataclasses.asdict(Config().pins) == REFERENCE_WIRING


@pytest.mark.parametrize("name, pin", sorted(REFERENCE_WIRING.items()))
def test_each_default_pin_matches_the_wiring_table(name, pin):
    assert getattr(PinsConfig(), name) == pin


def test_default_wiring_leaves_the_uart_and_i2c_pins_free_and_uses_each_pin_once():
    pins = list(REFERENCE_WIRING.values())
    assert not set(pins) & {14, 15, 2, 3}
    assert len(pins) == len(set(pins))


def test_the_defaults_advance_three_positions_per_clean_and_load_from_no_file():
    assert Config().wheel.positions_per_clean == 3
    assert load(None) == Config()


def test_the_defaults_pass_their_own_validation():
    assert from_dict(to_dict(Config())) == Config()
    assert from_dict({}) == Config()


# --- loading a file -----------------------------------------------------------------------


def test_a_file_overrides_only_the_values_it_names(tmp_path):
    config = load(
        write(
            tmp_path,
            """
            [station]
            serial_number = "MPO-0042"

            [pins]
            gate_a = 7
            gate_b = 4

            [wheel]
            positions_per_clean = 4
            forward_dir_high = false

            [swipe]
            max_pass_s = 4
            min_pass_s = 0.2
            """,
        )
    )
    assert config.station.serial_number == "MPO-0042"
    assert (config.pins.gate_a, config.pins.gate_b) == (7, 4)
    assert config.wheel.positions_per_clean == 4
    assert config.wheel.forward_dir_high is False
    assert config.swipe.max_pass_s == 4.0 and isinstance(config.swipe.max_pass_s, float)
    assert config.swipe.min_pass_s == 0.2
    untouched = Config()
    for section in ("cassette", "dispenser", "guide_pins", "panel"):
        assert getattr(config, section) == getattr(untouched, section)
    assert config.station.state_dir == untouched.station.state_dir
    assert config.wheel.steps_per_position == untouched.wheel.steps_per_position
    assert config.swipe.glitch_s == untouched.swipe.glitch_s
    assert (
        dataclasses.replace(config.pins, gate_a=untouched.pins.gate_a, gate_b=untouched.pins.gate_b) == untouched.pins
    )


def test_an_unfitted_drop_sensor_may_share_its_pin(tmp_path):
    config = load(write(tmp_path, "[dispenser]\ndrop_sensor_fitted = false\n[pins]\ndrop_sensor = 18\n"))
    assert config.pins.drop_sensor == config.pins.pump == 18


# --- errors in a file ---------------------------------------------------------------------


def test_an_unknown_section_names_it_and_the_allowed_sections(tmp_path):
    message = load_error(tmp_path, "[whell]\npositions_per_clean = 3\n")
    assert_names(message, "[whell]", "wheel", "swipe", "guide_pins")


def test_a_misspelled_key_names_it_and_the_allowed_keys(tmp_path):
    message = load_error(tmp_path, "[wheel]\npositions_per_clen = 3\n")
    assert_names(message, "wheel.positions_per_clen", "positions_per_clean", "steps_per_position")


@pytest.mark.parametrize(
    "text, parts",
    [
        ('[wheel]\npositions_per_clean = "3"\n', ["wheel.positions_per_clean", "'3'", "expected a number"]),
        ("[wheel]\npositions_per_clean = 2.5\n", ["wheel.positions_per_clean", "2.5", "whole number"]),
        ("[wheel]\npositions_per_clean = [3]\n", ["wheel.positions_per_clean", "[3]", "expected a number"]),
        ("[wheel]\nforward_dir_high = 1\n", ["wheel.forward_dir_high", "1", "true or false"]),
        ("[swipe]\nglitch_s = true\n", ["swipe.glitch_s", "True", "expected a number"]),
        ("[station]\nserial_number = 42\n", ["station.serial_number", "42", "expected a string"]),
        ('[pins]\ngate_a = "23"\n', ["pins.gate_a", "'23'", "BCM pin number (2-27)"]),
        ("[pins]\ngate_a = 23.0\n", ["pins.gate_a", "23.0", "BCM pin number (2-27)"]),
        ("swipe = 3\n", ["[swipe]", "3", "must be a table"]),
    ],
)
def test_a_value_of_the_wrong_type_names_key_value_and_expected_type(tmp_path, text, parts):
    assert_names(load_error(tmp_path, text), *parts)


@pytest.mark.parametrize(
    "text, parts",
    [
        ("[wheel]\npositions_per_clean = 0\n", ["wheel.positions_per_clean = 0", "allowed 1 to 10"]),
        ("[wheel]\npositions_per_clean = 11\n", ["wheel.positions_per_clean = 11", "allowed 1 to 10"]),
        ("[swipe]\nmax_pass_s = 61\n", ["swipe.max_pass_s = 61", "allowed 0.01 to 60"]),
        ("[dispenser]\npulse_s = 0\n", ["dispenser.pulse_s = 0", "allowed 0.001 to 1"]),
        ("[guide_pins]\ntimeout_s = -1.5\n", ["guide_pins.timeout_s = -1.5", "allowed 0.05 to 30"]),
        ("[pins]\ngate_a = 28\n", ["pins.gate_a = 28", "allowed 2-27"]),
        ("[pins]\nbuzzer = 1\n", ["pins.buzzer = 1", "allowed 2-27"]),
        ("[pins]\nbuzzer = -8\n", ["pins.buzzer = -8", "allowed 2-27"]),
    ],
)
def test_a_value_out_of_range_names_key_value_and_the_range(tmp_path, text, parts):
    assert_names(load_error(tmp_path, text), *parts)


def test_a_pin_used_twice_names_both_uses(tmp_path):
    message = load_error(tmp_path, "[pins]\ngate_b = 23\n")
    assert_names(message, "pins.gate_b = 23", "GPIO 23", "already used by pins.gate_a")


@pytest.mark.parametrize("pin", sorted(RESERVED_PINS))
def test_the_uart_and_i2c_pins_are_refused(tmp_path, pin):
    message = load_error(tmp_path, f"[pins]\nbutton = {pin}\n")
    assert_names(message, f"pins.button = {pin}", RESERVED_PINS[pin], "choose another pin")


def test_the_reserved_pins_are_the_uart_console_and_i2c():
    assert set(RESERVED_PINS) == {14, 15, 2, 3}


@pytest.mark.parametrize("max_steps", [64, 10])
def test_the_jam_limit_must_exceed_the_nominal_steps(tmp_path, max_steps):
    message = load_error(tmp_path, f"[wheel]\nsteps_per_position = 64\nmax_steps_per_position = {max_steps}\n")
    assert_names(
        message, f"wheel.max_steps_per_position = {max_steps}", "wheel.steps_per_position (64)", "must be more than"
    )


@pytest.mark.parametrize(
    "text, parts",
    [
        (
            "[wheel]\nstart_rate_hz = 500\nmax_rate_hz = 400\n",
            ["wheel.max_rate_hz = 400", "wheel.start_rate_hz (500"],
        ),
        ("[swipe]\nmin_pass_s = 0.5\nmax_pass_s = 0.5\n", ["swipe.max_pass_s = 0.5", "swipe.min_pass_s (0.5)"]),
        (
            "[dispenser]\npulse_s = 0.6\n",
            ["dispenser.drop_timeout_s = 0.5", "longer than dispenser.pulse_s (0.6)"],
        ),
        (
            "[swipe]\nmin_pass_s = 0.1\nglitch_s = 0.03\n",
            ["swipe.glitch_s = 0.03", "quarter of swipe.min_pass_s (0.1)"],
        ),
        (
            "[wheel]\npositions_per_clean = 5\n[cassette]\ncapacity_positions = 4\n",
            ["cassette.capacity_positions = 4", "5 positions"],
        ),
    ],
)
def test_values_that_contradict_each_other_name_both(tmp_path, text, parts):
    assert_names(load_error(tmp_path, text), *parts)


def test_a_file_that_is_not_toml_is_refused(tmp_path):
    assert_names(load_error(tmp_path, "[wheel\npositions_per_clean = 3\n"), "not valid TOML")


def test_a_file_that_is_not_utf8_is_refused(tmp_path):
    path = tmp_path / "station.toml"
    path.write_bytes(b'[station]\nserial_number = "caf\xe9"\n')  # Latin-1
    with pytest.raises(ConfigError) as caught:
        load(path)
    assert_names(str(caught.value), str(path), "not UTF-8")


def test_a_missing_file_is_refused(tmp_path):
    path = tmp_path / "nowhere.toml"
    with pytest.raises(ConfigError) as caught:
        load(path)
    assert_names(str(caught.value), "cannot read configuration file", str(path))


# --- writing the configuration out ----------------------------------------------------------


def reread(config: Config) -> Config:
    return from_dict(tomllib.loads(dumps(config)))


def test_the_default_configuration_round_trips_through_dumps():
    assert reread(Config()) == Config()


def test_dumps_comments_every_key():
    lines = [line for line in dumps(Config()).splitlines() if " = " in line]
    assert len(lines) == sum(len(dataclasses.fields(getattr(Config(), f.name))) for f in dataclasses.fields(Config))
    assert all("  # " in line for line in lines)


def test_a_serial_number_with_a_newline_round_trips_through_dumps(tmp_path):
    config = load(write(tmp_path, '[station]\nserial_number = "bench 7\\nspare"\n'))
    assert config.station.serial_number == "bench 7\nspare"
    assert reread(config) == config


FREE_PINS = [pin for pin in range(2, 28) if pin not in RESERVED_PINS]


def values_of(f: dataclasses.Field, text: st.SearchStrategy[str]) -> st.SearchStrategy:
    """Any value one key allows on its own (its type, range or choices)."""
    if isinstance(f.default, bool):
        return st.booleans()
    if isinstance(f.default, str):
        if f.metadata.get("regex"):  # a pattern: any valid one (its own text, or text as a literal)
            return st.one_of(st.just(f.default), text.filter(bool).map(re.escape))
        if f.metadata.get("schemes"):  # a URL: empty, or scheme://host:port
            host = st.sampled_from(["localhost", "127.0.0.1", "broker.lan", "[::1]", "mqtt-1.example.com"])
            url = st.builds("{}://{}:{}".format, st.sampled_from(f.metadata["schemes"]), host, st.integers(1, 65535))
            return st.one_of(st.just(""), url)
        if f.metadata.get("topic"):  # topic text: no wildcards or NUL; a prefix ends with /, a level has none
            level = text.filter(lambda t: not set(t) & {"+", "#", "\x00", "/"})
            return level.map(lambda t: t and t + "/") if f.metadata["topic"] == "levels" else level
        return st.sampled_from(f.metadata["choices"]) if f.metadata.get("choices") else text
    if f.metadata["integer"]:
        return st.integers(f.metadata["lo"], f.metadata["hi"])
    return st.floats(f.metadata["lo"], f.metadata["hi"])


@st.composite
def configs(draw, text: st.SearchStrategy[str]) -> Config:
    """Any configuration the station accepts."""
    raw = {
        section.name: {f.name: draw(values_of(f, text)) for f in dataclasses.fields(getattr(Config(), section.name))}
        for section in dataclasses.fields(Config)
        if section.name != "pins"
    }
    names = [f.name for f in dataclasses.fields(PinsConfig)]  # fewer than the free pins: some stay unused
    raw["pins"] = dict(zip(names, draw(st.permutations(FREE_PINS))[: len(names)], strict=True))
    # the values that must agree with each other
    wheel, swipe = raw["wheel"], raw["swipe"]
    wheel["max_steps_per_position"] = draw(st.integers(wheel["steps_per_position"] + 1, 20_000))
    wheel["max_rate_hz"] = draw(st.floats(wheel["start_rate_hz"], 20_000.0))
    raw["cassette"]["capacity_positions"] = draw(st.integers(max(3, wheel["positions_per_clean"]), 1_000_000))
    swipe["min_pass_s"] = min_pass = draw(st.floats(0.0, 10.0))
    swipe["max_pass_s"] = draw(st.floats(max(min_pass, 0.01), 60.0).filter(lambda v: v > min_pass))
    swipe["glitch_s"] = glitch = draw(st.floats(0.0, min(0.5, min_pass / 4)))
    swipe["settle_s"] = draw(st.floats(0.01, 10.0).filter(lambda v: v > glitch))
    raw["traceability"]["connector_pattern"] = draw(
        st.sampled_from(
            [TraceabilityConfig().connector_pattern, r"(?P<cable>[A-Z0-9-]+)", r"(?P<cable>.+)/(?P<end>\d)"]
        )
    )
    if raw["scanner"]["kind"] != "none" and not raw["scanner"]["device"]:
        raw["scanner"]["device"] = "/dev/ttyACM0"
    fleet = raw["fleet"]
    if fleet["broker"] and not fleet["station_id"]:
        fleet["station_id"] = "station-1"  # the serial number (any text) may not be a topic level
    if fleet["password_file"] and not fleet["username"]:
        fleet["username"] = "station-1"
    if not fleet["broker"].startswith("mqtts://"):
        fleet["ca_file"] = ""
    raw["inspection"]["pulse_max_s"] = draw(st.floats(raw["inspection"]["pulse_min_s"] + 0.01, 60.0))
    raw["inspection"]["reclean"] = draw(st.sampled_from(["dry,dry,wet", "wet", "dry, wet", "dry,dry,dry,wet,wet"]))
    dispenser = raw["dispenser"]
    dispenser["drop_timeout_s"] = draw(st.floats(0.01, 10.0).filter(lambda v: v > dispenser["pulse_s"]))
    return from_dict(raw)


@given(configs(text=st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E))))
def test_dumps_round_trips_every_number_pin_and_flag(config):
    assert reread(config) == config


@given(configs(text=st.text()))
def test_dumps_round_trips_every_valid_configuration(config):
    assert reread(config) == config


# --- Config.replace -----------------------------------------------------------------------


def test_replace_changes_one_value_and_leaves_the_original_alone():
    original = Config()
    changed = original.replace("wheel", positions_per_clean=5)
    assert changed.wheel.positions_per_clean == 5
    assert original.wheel.positions_per_clean == 3
    assert changed.wheel.steps_per_position == original.wheel.steps_per_position
    assert changed.pins == original.pins


@pytest.mark.parametrize(
    "section, values, parts",
    [
        ("wheel", {"positions_per_clean": 0}, ["wheel.positions_per_clean = 0", "allowed 1 to 10"]),
        ("wheel", {"positions_per_clen": 3}, ["wheel.positions_per_clen", "positions_per_clean"]),
        ("pins", {"gate_b": 23}, ["pins.gate_b = 23", "pins.gate_a"]),
        ("pins", {"button": 14}, ["pins.button = 14", "UART console TX"]),
        ("wheel", {"max_steps_per_position": 64}, ["wheel.max_steps_per_position = 64", "must be more than"]),
        ("swipe", {"glitch_s": "fast"}, ["swipe.glitch_s", "'fast'", "expected a number"]),
        ("whell", {"positions_per_clean": 3}, ["[whell]", "allowed sections"]),
    ],
)
def test_replace_validates_like_a_file(section, values, parts):
    with pytest.raises(ConfigError) as caught:
        Config().replace(section, **values)
    assert_names(str(caught.value), *parts)


# --- [scanner] and [traceability] ----------------------------------------------------------


@pytest.mark.parametrize(
    "text, parts",
    [
        ('[traceability]\noperator_pattern = "OP-("\n', ["traceability.operator_pattern", "not a regular expression"]),
        ('[traceability]\nconnector_pattern = "CBL-.*"\n', ["connector_pattern", "group named cable"]),
        ('[traceability]\noperator_pattern = ".*"\n', ["traceability.operator_pattern", "matches an empty code"]),
        ('[scanner]\nkind = "serial"\n', ["scanner.kind", "scanner.device"]),
        ('[scanner]\nkind = "usb"\ndevice = "/dev/ttyACM0"\n', ["scanner.kind = 'usb'", "none, serial, hid"]),
    ],
)
def test_scanner_and_traceability_mistakes_are_named(tmp_path, text, parts):
    with pytest.raises(ConfigError) as err:
        load(write(tmp_path, text))
    for part in parts:
        assert part in str(err.value)


@pytest.mark.parametrize(
    "text, parts",
    [
        ('[fleet]\nbroker = "tcp://broker:1883"\n', ["fleet.broker = 'tcp://broker:1883'", "unknown scheme tcp://"]),
        ('[fleet]\nbroker = "mqtt://broker"\n', ["fleet.broker", "mqtt://host:port or mqtts://host:port"]),
        ('[fleet]\nbroker = "mqtt://broker:99999"\n', ["fleet.broker", "port 99999 out of range"]),
        ('[fleet]\nstation_id = "line/2"\n', ["fleet.station_id = 'line/2'", "'/' is not allowed"]),
        ('[fleet]\ntopic_prefix = "plant/#/"\n', ["fleet.topic_prefix", "'#' is not allowed"]),
        ('[fleet]\ntopic_prefix = "plant/line2"\n', ["fleet.topic_prefix", "must end with /"]),
        (
            '[station]\nserial_number = "SN+1"\n[fleet]\nbroker = "mqtt://b:1883"\n',
            ["station.serial_number = 'SN+1'", "set fleet.station_id"],
        ),
        ('[fleet]\nbroker = "mqtt://b:1883"\npassword_file = "/etc/pw"\n', ["fleet.password_file", "fleet.username"]),
        ('[fleet]\nbroker = "mqtt://b:1883"\nca_file = "/etc/ca.pem"\n', ["fleet.ca_file", "only used with mqtts://"]),
    ],
)
def test_fleet_mistakes_are_named(tmp_path, text, parts):
    with pytest.raises(ConfigError) as err:
        load(write(tmp_path, text))
    assert_names(str(err.value), *parts)


def test_fleet_is_off_by_default_and_names_the_station_by_its_serial_number(tmp_path):
    assert Config().fleet.broker == ""
    config = load(write(tmp_path, '[station]\nserial_number = "MPO-0042"\n[fleet]\nbroker = "mqtts://[::1]:8883"\n'))
    assert (fleet_station_id(config), fleet_prefix(config)) == ("MPO-0042", "mpo-station/MPO-0042/")
    named = config.replace("fleet", station_id="bench-7", topic_prefix="plant/line2/bench-7/")
    assert (fleet_station_id(named), fleet_prefix(named)) == ("bench-7", "plant/line2/bench-7/")


def test_traceability_is_off_and_no_scanner_by_default():
    config = Config()
    assert config.scanner.kind == "none"
    assert not config.traceability.require_connector_id and not config.traceability.require_operator


@pytest.mark.parametrize("value", ["", "dry,,wet", "dry,damp", "wet," * 11])
def test_a_reclean_sequence_that_is_not_dry_or_wet_steps_is_named(tmp_path, value):
    with pytest.raises(ConfigError) as err:
        load(write(tmp_path, f'[inspection]\nreclean = "{value}"\n'))
    assert "inspection.reclean" in str(err.value) and "each dry or wet" in str(err.value)


def test_inspection_is_off_and_its_lines_free_by_default():
    config = Config()
    assert config.inspection.mode == "off" and not config.inspection.gpio_fitted
    assert (config.pins.inspect_pass, config.pins.inspect_fail) == (
        4,
        7,
    )  # the two pins the reference wiring leaves free
