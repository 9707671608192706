"""The wiring sheet is generated from the pins the firmware uses, and puts them on the right header pins."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
from pathlib import Path

import pytest
from gpiozero.pins.mock import MockFactory

from station import wiring
from station.config import RESERVED_PINS, Config, PinsConfig
from station.drivers import build_hardware
from station.loop import EventLoop, VirtualClock

REPO = Path(__file__).resolve().parent.parent
DOC = REPO / "docs" / "wiring.md"

# BCM -> physical pin on the 40-pin header, typed in from the Raspberry Pi pinout, independently
# of station/wiring.py: the pins people get wrong (I2C, UART) and the corners of the header.
KNOWN_PHYSICAL = {2: 3, 3: 5, 14: 8, 15: 10, 17: 11, 18: 12, 20: 38, 21: 40, 26: 37}

# The whole header, by BCM number, for the pins the configuration may use (BCM 2-27).
ALL_PHYSICAL = {
    2: 3,
    3: 5,
    4: 7,
    5: 29,
    6: 31,
    7: 26,
    8: 24,
    9: 21,
    10: 19,
    11: 23,
    12: 32,
    13: 33,
    14: 8,
    15: 10,
    16: 36,
    17: 11,
    18: 12,
    19: 35,
    20: 38,
    21: 40,
    22: 15,
    23: 16,
    24: 18,
    25: 22,
    26: 37,
    27: 13,
}

DRAWN = re.compile(
    r"^(?P<llabel>.*?)\s*(?P<lname>\S+)\s+(?P<odd>\d+) \[(?P<lmark>.)\]  \[(?P<rmark>.)\] "
    r"(?P<even>\d+)\s+(?P<rname>\S+)\s*(?P<rlabel>.*)$"
)


def drawing(doc: str) -> dict[int, tuple[str, str, str]]:
    """Physical pin -> (name, mark, label) as drawn in the sheet's header picture."""
    block = doc.split("```text\n", 1)[1].split("```", 1)[0]
    pins: dict[int, tuple[str, str, str]] = {}
    for line in block.splitlines():
        m = DRAWN.match(line)
        if m:
            pins[int(m["odd"])] = (m["lname"], m["lmark"], m["llabel"].strip())
            pins[int(m["even"])] = (m["rname"], m["rmark"], m["rlabel"].strip())
    return pins


def table_row(doc: str, key: str) -> list[str]:
    """The cells of the connection table's row for `pins.<key>`."""
    table = doc.split("## Connections", 1)[1].split("##", 1)[0]
    rows = [line for line in table.splitlines() if line.startswith("|") and f"`pins.{key}`" in line]
    assert len(rows) == 1, f"expected one table row for pins.{key}, found {len(rows)}"
    return [cell.strip() for cell in rows[0].strip("|").split("|")]


def test_wiring_sheet_is_up_to_date():
    assert DOC.exists(), "docs/wiring.md is missing: generate it with `station wiring`"
    assert DOC.read_text(encoding="utf-8") == wiring.document(), (
        "docs/wiring.md is stale: regenerate with `station wiring`"
    )


@pytest.mark.parametrize("bcm, physical", sorted(KNOWN_PHYSICAL.items()))
def test_known_pins_sit_on_their_header_pins(bcm, physical):
    assert wiring.physical_pin(bcm) == physical


def test_the_whole_header_map_matches_an_independent_table():
    assert {bcm: wiring.physical_pin(bcm) for bcm in ALL_PHYSICAL} == ALL_PHYSICAL


@pytest.mark.parametrize("revision, model", [("d04170", "Pi 5"), ("c03111", "Pi 4"), ("902120", "Zero 2 W")])
def test_the_header_is_the_one_gpiozero_knows(revision, model):
    factory = MockFactory(revision=revision)
    try:
        j8 = factory.board_info.headers["J8"].pins
        assert {number: pin.name for number, pin in j8.items()} == wiring.HEADER, model
    finally:
        factory.close()


def test_every_pin_field_has_a_wiring_description():
    assert set(wiring.WIRES) == {f.name for f in dataclasses.fields(PinsConfig)}


def test_every_configured_pin_appears_at_its_header_pin():
    doc = wiring.document()
    drawn = drawing(doc)
    assert sorted(drawn) == list(range(1, 41))
    for f in dataclasses.fields(PinsConfig):
        bcm = getattr(Config().pins, f.name)
        physical = ALL_PHYSICAL[bcm]
        part, signal, key, bcm_cell, physical_cell, direction, _notes = table_row(doc, f.name)
        assert (key, bcm_cell, physical_cell) == (f"`pins.{f.name}`", f"GPIO{bcm}", str(physical))
        assert signal == f.metadata["doc"]
        if f.name in ("inspect_pass", "inspect_fail"):  # fitted only with inspection.gpio_fitted: free here
            assert drawn[physical] == (f"GPIO{bcm}", ".", "") and "not fitted (inspection.gpio_fitted" in _notes
        else:
            assert drawn[physical] == (f"GPIO{bcm}", "#", f"pins.{f.name} ({direction})")


def test_reserved_pins_are_drawn_reserved_and_unused():
    drawn = drawing(wiring.document())
    for bcm, what in RESERVED_PINS.items():
        assert drawn[ALL_PHYSICAL[bcm]] == (f"GPIO{bcm}", "R", f"reserved: {what}")


def test_directions_and_safe_levels_match_the_drivers():
    """Build the real drivers on mock pins: inputs have the pull-up the sheet promises, and every
    output that a resistor must hold safe rests at the level that resistor holds it at."""
    config = Config().replace("inspection", gpio_fitted=True)  # every optional input fitted
    factory = MockFactory()
    hardware = build_hardware(config, EventLoop(VirtualClock()), factory)
    try:
        for key, wire in wiring.WIRES.items():
            pin = factory.pin(getattr(config.pins, key))
            expected = "input" if wire.direction is wiring.Direction.IN else "output"
            assert pin.function == expected, f"pins.{key}: the sheet says {wire.direction.value}"
            if wire.direction is wiring.Direction.IN:
                assert pin.pull == "up", f"pins.{key}: the sheet says inputs use the internal pull-up"
            if wire.hold is not None:
                assert pin.state == wire.hold.level, (
                    f"pins.{key} rests at {pin.state}, its resistor holds {wire.hold.level}"
                )
    finally:
        hardware.close()
        factory.reset()


def test_the_enable_pull_up_and_pump_pull_down_are_required():
    holds = {key: wire.hold for key, wire in wiring.WIRES.items() if wire.hold is not None}
    assert holds["enable"].level is True and holds["enable"].required
    assert holds["pump"].level is False and holds["pump"].required
    doc = wiring.document()
    before_power_up = doc.split("## Before the first power-up", 1)[1].split("##", 1)[0]
    assert "`pins.enable` on GPIO16 (header pin 36)" in before_power_up
    assert "pull-up to 3.3 V" in before_power_up and "REQUIRED" in before_power_up


def test_changing_a_pin_changes_the_sheet():
    moved = Config().replace("pins", button=4)
    doc = wiring.document(moved)
    assert doc != wiring.document()
    assert table_row(doc, "button")[3:5] == ["GPIO4", "7"]
    drawn = drawing(doc)
    assert drawn[7] == ("GPIO4", "#", "pins.button (in)")
    assert drawn[11] == ("GPIO17", ".", "")  # the old pin is free now


def test_a_drop_sensor_not_fitted_is_left_unconnected():
    config = Config().replace("dispenser", drop_sensor_fitted=False)
    doc = wiring.document(config)
    assert "not fitted" in table_row(doc, "drop_sensor")[-1]
    assert drawing(doc)[ALL_PHYSICAL[config.pins.drop_sensor]][1] == "."


def test_the_header_drawing_is_plain_ascii():
    block = wiring.document().split("```text\n", 1)[1].split("```", 1)[0]
    assert block.isascii()
    assert max(len(line) for line in block.splitlines()) <= 100


def test_station_wiring_writes_the_sheet_of_a_station_config(tmp_path):
    toml = tmp_path / "station.toml"
    toml.write_text("[pins]\nbutton = 4\n", encoding="utf-8")
    out = tmp_path / "wiring.md"
    subprocess.run(
        [sys.executable, "-m", "station", "wiring", "--config", str(toml), "--output", str(out)],
        check=True,
        cwd=REPO,
        capture_output=True,
    )
    assert out.read_text(encoding="utf-8") == wiring.document(Config().replace("pins", button=4))


def test_the_inspection_lines_are_drawn_when_fitted():
    config = Config().replace("inspection", gpio_fitted=True)
    drawn = drawing(wiring.document(config))
    for key in ("inspect_pass", "inspect_fail"):
        bcm = getattr(config.pins, key)
        assert drawn[ALL_PHYSICAL[bcm]] == (f"GPIO{bcm}", "#", f"pins.{key} (in)")
