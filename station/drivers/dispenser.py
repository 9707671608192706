"""The wet-to-dry fluid pump: one timed pulse is one drop."""

from __future__ import annotations

from gpiozero import DigitalOutputDevice

from ..config import Config
from ..loop import EventLoop, Timer
from .gpio import DigitalOutput, PinFactory


class PumpDispenser:
    """Drives the pump output for `dispenser.pulse_s` per drop. The pulse end is a loop timer,
    so in simulation it runs in virtual time like everything else."""

    def __init__(self, config: Config, loop: EventLoop, pin_factory: PinFactory | None = None) -> None:
        self._pulse_s = config.dispenser.pulse_s
        self._loop = loop
        self._timer: Timer | None = None
        self.pump: DigitalOutput = DigitalOutputDevice(config.pins.pump, initial_value=False, pin_factory=pin_factory)

    def pulse(self) -> None:
        if self._timer is not None:
            return  # a pulse is already running: never stretch it into a second drop
        self.pump.on()
        self._timer = self._loop.call_later(self._pulse_s, self.off)

    def off(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.pump.off()

    @property
    def pumping(self) -> bool:
        return bool(self.pump.value)

    def close(self) -> None:
        self.off()
        self.pump.close()
