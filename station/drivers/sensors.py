"""Every input of the bench as a gpiozero device, reporting edges with a timestamp."""

from __future__ import annotations

from collections.abc import Callable

from gpiozero import Button, DigitalInputDevice

from ..config import Config
from ..loop import Clock
from ..ports import Sensor, SensorEdge
from .gpio import DigitalInput, PinFactory

# Which configured pin each sensor is on (the index sensor belongs to the wheel driver).
SENSOR_PINS: dict[Sensor, str] = {
    Sensor.CONNECTOR: "connector_present",
    Sensor.PIN_LEFT: "guide_pin_left",
    Sensor.PIN_RIGHT: "guide_pin_right",
    Sensor.GATE_A: "gate_a",
    Sensor.GATE_B: "gate_b",
    Sensor.CASSETTE: "cassette_present",
    Sensor.CASSETTE_MALE: "cassette_type",
    Sensor.DROP: "drop_sensor",
    Sensor.FLUID_LOW: "fluid_low",
    Sensor.MODE_WET: "mode_switch",
    Sensor.BUTTON: "button",
    Sensor.INSPECT_PASS: "inspect_pass",
    Sensor.INSPECT_FAIL: "inspect_fail",
}
# inputs fitted only when the configuration says so
OPTIONAL = {
    Sensor.DROP: lambda c: c.dispenser.drop_sensor_fitted,
    Sensor.INSPECT_PASS: lambda c: c.inspection.gpio_fitted,
    Sensor.INSPECT_FAIL: lambda c: c.inspection.gpio_fitted,
}


class SensorBank:
    """All inputs. Each is wired active-low to ground with the Pi's pull-up enabled, so a broken
    wire reads as 'absent' — the safe reading for every sensor on the bench.

    Callbacks only timestamp the edge and hand it on (lgpio runs all callbacks on one thread;
    they must stay tiny). Bounce is not filtered here: the swipe judge filters on timestamps.
    """

    def __init__(self, config: Config, clock: Clock, pin_factory: PinFactory | None = None) -> None:
        self._clock = clock
        self._sinks: list[Callable[[SensorEdge], None]] = []
        self.devices: dict[Sensor, DigitalInput] = {}
        try:
            for sensor, key in SENSOR_PINS.items():
                if sensor in OPTIONAL and not OPTIONAL[sensor](config):
                    continue
                pin: int = getattr(config.pins, key)
                cls = Button if sensor is Sensor.BUTTON else DigitalInputDevice
                device: DigitalInput = cls(pin, pull_up=True, pin_factory=pin_factory)
                device.when_activated = self._edge_handler(sensor, True)
                device.when_deactivated = self._edge_handler(sensor, False)
                self.devices[sensor] = device
        except Exception:
            self.close()
            raise

    def _edge_handler(self, sensor: Sensor, active: bool) -> Callable[[], None]:
        def handler() -> None:
            edge = SensorEdge(sensor, active, self._clock.now())
            for sink in self._sinks:
                sink(edge)

        return handler

    def on_edge(self, sink: Callable[[SensorEdge], None]) -> None:
        self._sinks.append(sink)

    def fitted(self, sensor: Sensor) -> bool:
        return sensor in self.devices

    def read(self, sensor: Sensor) -> bool:
        device = self.devices.get(sensor)
        return bool(device.is_active) if device is not None else False

    def snapshot(self) -> dict[Sensor, bool]:
        return {sensor: bool(device.is_active) for sensor, device in self.devices.items()}

    def close(self) -> None:
        for device in self.devices.values():
            device.close()
        self.devices.clear()
