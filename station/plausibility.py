"""What the sensors may not read while nothing happens: a gate blocked with no swipe, a guide
pin with the guide empty, a drop with the pump off. Checked at start-up, while ready and when a
fault is cleared. Each problem names the sensor and what it reads (the cause); the fault's
next step (station/faults.py) says what to do about it."""

from __future__ import annotations

from .ports import Sensor, Sensors


def sensor_problems(sensors: Sensors) -> list[str]:
    """The implausible readings of the inputs at rest (empty when all is well)."""
    read = sensors.read
    problems = [
        f"{name} reads blocked with no swipe"
        for sensor, name in ((Sensor.GATE_A, "swipe gate A"), (Sensor.GATE_B, "swipe gate B"))
        if read(sensor)
    ]
    if not read(Sensor.CONNECTOR) and (read(Sensor.PIN_LEFT) or read(Sensor.PIN_RIGHT)):
        problems.append("a guide-pin sensor reads a pin with no connector")
    if sensors.fitted(Sensor.DROP) and read(Sensor.DROP):
        problems.append("the drop sensor reads a drop with the pump off")
    return problems
