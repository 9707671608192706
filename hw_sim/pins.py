"""gpiozero mock pins wired to the physical model.

The firmware builds its ordinary gpiozero devices on this factory. Output writes reach the
world synchronously (the mock factory calls back in the writing thread), and the world drives
the inputs with `drive_high()` / `drive_low()` like a test does.
"""

from __future__ import annotations

from collections.abc import Callable

from gpiozero.pins.mock import MockFactory, MockPin

# MockPin.states grows forever; keep only a short tail in long simulations.
STATES_KEPT = 64


class SimPin(MockPin):
    """A mock pin that reports output changes to the world and keeps bounded history."""

    def _change_state(self, value: bool) -> bool:
        changed = super()._change_state(value)
        if changed:
            if len(self.states) > STATES_KEPT:
                del self.states[:-STATES_KEPT]
            listener = getattr(self.factory, "on_output", None)
            if listener is not None and self._function == "output":
                listener(bcm(self), value)
        return changed


def bcm(pin: MockPin) -> int:
    return int(pin.info.name[4:])


class SimFactory(MockFactory):
    """MockFactory whose pins tell `on_output(bcm, value)` about every output change."""

    def __init__(self) -> None:
        super().__init__(pin_class=SimPin)
        self.on_output: Callable[[int, bool], None] | None = None
