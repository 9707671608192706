"""What the drivers use of gpiozero, typed.

gpiozero ships no type information, so each device and the pin factory get one of these
protocols where they enter the drivers: the rest of the firmware sees precise types, and mypy
checks every use of a device against the few members listed here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol


class PinFactory(Protocol):
    """gpiozero's pin factory: lgpio's on the Pi, a MockFactory in simulation and tests. The
    drivers only hand it on to each device they create."""

    def close(self) -> None: ...


class DigitalOutput(Protocol):
    """An on/off output: gpiozero's DigitalOutputDevice, LED and Buzzer."""

    @property
    def value(self) -> int:  # 1 while active, else 0
        ...

    @value.setter
    def value(self, value: bool) -> None: ...

    def on(self) -> None: ...

    def off(self) -> None: ...

    def close(self) -> None: ...


class DigitalInput(Protocol):
    """An on/off input: gpiozero's DigitalInputDevice and Button."""

    when_activated: Callable[[], None] | None
    when_deactivated: Callable[[], None] | None

    @property
    def is_active(self) -> bool: ...

    def close(self) -> None: ...
