"""Fault injection: what is broken on the bench now, and the technician's repairs."""

from __future__ import annotations

from enum import Enum
from typing import TYPE_CHECKING

from .inputs import INPUTS

if TYPE_CHECKING:
    from .world import World


class Fault(str, Enum):
    """Injectable faults (see `World.inject`)."""

    JAM = "jam"  # wheel does not turn
    SLIP = "slip"  # the next position takes extra steps
    MISSING_INDEX = "missing_index"  # index sensor misses pulses
    EMPTY_RIBBON = "empty_ribbon"  # the fitted cassette's ribbon runs out here
    PUMP_CLOG = "pump_clog"  # pump runs, no drop leaves the nozzle
    EMPTY_RESERVOIR = "empty_reservoir"
    STUCK_SENSOR = "stuck_sensor"  # an input held at one level
    GATE_BOUNCE = "gate_bounce"  # contact bounce on every gate edge
    CASSETTE_PULLED = "cassette_pulled"
    CONNECTOR_PULLED = "connector_pulled"
    NO_REPORT = "no_report"  # the inspection probe's reports never reach the station (cable out, software hung)


class Faults:
    """The faults in force. The wheel, pump and hand consult them; stuck sensors are held by
    the world's input lines; the one-off faults act on the world at once."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.jammed = False
        self.pump_clogged = False
        self.bounce = False
        self.extra_steps: list[int] = []  # per upcoming position (slip)
        self.missing_index = 0  # upcoming index pulses that will not be seen
        self.no_report = False  # the probe grades, but its report never reaches the station

    def inject(self, fault: Fault | str, **kw: object) -> None:
        """Inject a fault. Keyword options: slip `steps`, missing_index `count`,
        stuck_sensor `sensor` and `active`."""
        w = self.world
        fault = Fault(fault)
        if fault is Fault.JAM:
            self.jammed = True
        elif fault is Fault.SLIP:
            self.extra_steps.append(int(kw.get("steps", w.steps_per_position // 4)))  # type: ignore[call-overload]
        elif fault is Fault.MISSING_INDEX:
            self.missing_index += int(kw.get("count", 1))  # type: ignore[call-overload]
        elif fault is Fault.EMPTY_RIBBON:
            if w.fitted is not None:
                w.fitted.capacity = w.fitted.position + int(kw.get("left", 0))  # type: ignore[call-overload]
        elif fault is Fault.PUMP_CLOG:
            self.pump_clogged = True
        elif fault is Fault.EMPTY_RESERVOIR:
            w.reservoir = 0
            w._sync_fluid_switch()
        elif fault is Fault.STUCK_SENSOR:
            name = str(kw["sensor"])
            if name not in INPUTS:
                raise ValueError(f"no sensor {name!r}; sensors are {', '.join(INPUTS)}")
            w.inputs.stuck[name] = bool(kw.get("active", True))
            w._drive(name, w.inputs.level.get(name, False))
        elif fault is Fault.GATE_BOUNCE:
            self.bounce = True
        elif fault is Fault.CASSETTE_PULLED:
            w.remove_cassette()
        elif fault is Fault.CONNECTOR_PULLED:
            w.remove()
        elif fault is Fault.NO_REPORT:
            self.no_report = True

    def clear(self, fault: Fault | str) -> None:
        """Remove the cause of a fault (the repair a technician would make)."""
        w = self.world
        fault = Fault(fault)
        if fault is Fault.JAM:
            self.jammed = False
        elif fault is Fault.SLIP:
            self.extra_steps.clear()
        elif fault is Fault.MISSING_INDEX:
            self.missing_index = 0
        elif fault is Fault.PUMP_CLOG:
            self.pump_clogged = False
        elif fault is Fault.EMPTY_RESERVOIR:
            w.refill()
        elif fault is Fault.STUCK_SENSOR:
            for name in list(w.inputs.stuck):
                del w.inputs.stuck[name]
                w._drive(name, w.inputs.level.get(name, False))
        elif fault is Fault.GATE_BOUNCE:
            self.bounce = False
        elif fault is Fault.NO_REPORT:
            self.no_report = False
