"""Builds the whole bench from the configuration on a given pin factory."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from ..config import Config
from ..loop import EventLoop
from .dispenser import PumpDispenser
from .gpio import PinFactory
from .panel import LedPanel
from .sensors import SensorBank
from .wheel import LoopExecutor, StepperWheel, ThreadExecutor

log = logging.getLogger(__name__)


@dataclass
class GpioHardware:
    """Every driver of the bench. `safe()` is the one path to the safe state."""

    sensors: SensorBank
    wheel: StepperWheel
    dispenser: PumpDispenser
    panel: LedPanel

    def safe(self) -> None:
        """Stepper disabled, pump off, fault light on. Each step is attempted even if one fails."""
        for action in (self.wheel.stop, self.dispenser.off, self.panel.fault_light):
            try:
                action()
            except Exception:
                log.exception("could not complete a safe-state action")

    def close(self) -> None:
        self.safe()
        for part in (self.panel, self.dispenser, self.wheel, self.sensors):
            try:
                part.close()
            except Exception:
                log.exception("could not close %s", type(part).__name__)


def build_hardware(config: Config, loop: EventLoop, pin_factory: PinFactory | None = None) -> GpioHardware:
    """Create every device. On a virtual clock the step train runs on the loop, else in a thread."""
    executor = LoopExecutor(loop) if loop.virtual else ThreadExecutor()
    made: list[SensorBank | StepperWheel | PumpDispenser] = []
    try:
        sensors = SensorBank(config, loop.clock, pin_factory)
        made.append(sensors)
        wheel = StepperWheel(config, executor, loop.now, pin_factory)
        made.append(wheel)
        dispenser = PumpDispenser(config, loop, pin_factory)
        made.append(dispenser)
        panel = LedPanel(config, loop, pin_factory)
    except Exception:
        for part in reversed(made):
            part.close()
        raise
    return GpioHardware(sensors, wheel, dispenser, panel)
