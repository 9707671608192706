"""What the sensors may not read while nothing happens: a gate blocked with no swipe, a guide
pin with the guide empty, a drop with the pump off. Checked at start-up, while ready and when a
fault is cleared; each problem is said so that a technician knows what to check."""

from __future__ import annotations

from .ports import Sensor, Sensors


def sensor_problems(sensors: Sensors) -> list[str]:
    """The implausible readings of the inputs at rest (empty when all is well)."""
    read = sensors.read
    problems = [
        f"{name} reads blocked with no swipe: check the gate and its wiring"
        for sensor, name in ((Sensor.GATE_A, "swipe gate A"), (Sensor.GATE_B, "swipe gate B"))
        if read(sensor)
    ]
    if not read(Sensor.CONNECTOR) and (read(Sensor.PIN_LEFT) or read(Sensor.PIN_RIGHT)):
        problems.append("a guide-pin sensor reads a pin with no connector: check the sensor")
    if sensors.fitted(Sensor.DROP) and read(Sensor.DROP):
        problems.append("the drop sensor reads a drop with the pump off: clean or check it")
    return problems
