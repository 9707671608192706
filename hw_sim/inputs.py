"""The firmware's input lines as the world drives them: active-low, some held stuck by a fault."""

from __future__ import annotations

from station.config import PinsConfig

from .pins import SimFactory

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
    "inspect_pass": "inspect_pass",  # an automated inspector's lines (inspection.gpio_fitted)
    "inspect_fail": "inspect_fail",
}


class InputLines:
    """Drives the input pins. `level` is what physics wants on each line (a stuck line goes back
    to it when repaired), `stuck` the lines a fault holds at a level of its own."""

    def __init__(self, factory: SimFactory, pins: PinsConfig) -> None:
        self.factory = factory
        self.pins = pins
        self.level: dict[str, bool] = {}
        self.stuck: dict[str, bool] = {}
        self._cache: dict[str, object] = {}

    def pin(self, name: str):
        pin = self._cache.get(name)
        if pin is None:  # gpiozero's lookup searches the board's pin table: do it once
            pin = self._cache[name] = self.factory.pin(getattr(self.pins, INPUTS[name]))
        return pin

    def drive(self, name: str, active: bool, force: bool = False) -> bool:
        """Inputs are active-low: active pulls the line to ground. True when the line has just
        gone active (it was not before)."""
        self.level[name] = active
        if name in self.stuck:
            active = self.stuck[name]
        pin = self.pin(name)
        seen_before = not pin.state
        if force or pin.state != (not active):
            (pin.drive_low if active else pin.drive_high)()
        return active and not seen_before

    def read(self, name: str) -> bool:
        """What the firmware reads on an input now (True = active)."""
        return not self.pin(name).state
