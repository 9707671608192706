"""What the console shows of a running station, composed from the controller's parts on the
controller loop (call these through `loop.call_sync`)."""

from __future__ import annotations

from .controller import Controller
from .events import StationStatus
from .ports import Sensor


def station_status(c: Controller) -> StationStatus:
    """One consistent snapshot: state, mode, cassette, ribbon and fluid left, fault."""
    unknown = c.trace.cassette_unidentified()  # labelled cassettes: which one, only its scan tells
    cassette = None if unknown else c.consumables.fitted()
    return StationStatus(
        state=c.state,
        mode=c.mode.current(),
        cassette=cassette.type if cassette else c.consumables.cassette_type() if unknown else None,
        ribbon_remaining=cassette.remaining if cassette else None,
        cleans_remaining=c.consumables.cleans_left(cassette) if cassette else None,
        fluid_drops_left=c.consumables.fluid_left(),
        fluid_low=c.hardware.sensors.read(Sensor.FLUID_LOW),
        fault=c.faults.code,
    )


def sensor_report(c: Controller) -> dict[str, bool]:
    """Every input (the wheel's index sensor included: it belongs to the wheel driver), plus
    the outputs a technician wants to see."""
    hw = c.hardware
    report = {s.value: on for s, on in hw.sensors.snapshot().items()}
    report["index"] = hw.wheel.index_active
    report["stepper_enabled"] = hw.wheel.enabled
    report["pump"] = hw.dispenser.pumping
    return report
