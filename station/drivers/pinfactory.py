"""Choosing the real pin factory, with a clear message when there is no GPIO."""

from __future__ import annotations

import os
from pathlib import Path

from .gpio import PinFactory


class NoGPIO(RuntimeError):
    """No usable GPIO on this machine."""


HOW_TO_SIMULATE = "To run without hardware use the simulated bench: `station sim` (or `station sim --demo`)."


def hardware_pin_factory() -> PinFactory:
    """The lgpio pin factory (Pi 5, Pi 4, Zero 2 W). Never falls back to a mock silently."""
    if os.environ.get("GPIOZERO_PIN_FACTORY", "").lower() == "mock":
        raise NoGPIO("GPIOZERO_PIN_FACTORY=mock is set: `station run` drives real hardware only. " + HOW_TO_SIMULATE)
    chips = sorted(Path("/dev").glob("gpiochip*"))
    try:
        from gpiozero.pins.lgpio import LGPIOFactory
    except ImportError as exc:
        hint = (
            "on Raspberry Pi OS: sudo apt install python3-lgpio, in a venv created with --system-site-packages "
            "(sudo deploy/install.sh does both; `station doctor` checks it)"
            if chips
            else "this machine has no /dev/gpiochip*"
        )
        raise NoGPIO(f"No GPIO found: the lgpio library is not importable ({exc}); {hint}. {HOW_TO_SIMULATE}") from exc
    if not chips:
        raise NoGPIO(f"No GPIO found: this machine has no /dev/gpiochip* devices. {HOW_TO_SIMULATE}")
    try:
        factory: PinFactory = LGPIOFactory()
    except Exception as exc:  # lgpio raises its own error types
        denied = [str(c) for c in chips if not os.access(c, os.R_OK | os.W_OK)]
        hint = (
            f"no permission on {', '.join(denied)}: add the user to the `gpio` group"
            if denied
            else "lgpio needs a writable working directory for its FIFO (or set LG_WD)"
        )
        raise NoGPIO(f"No GPIO found: lgpio could not open the GPIO chip ({exc}); {hint}. {HOW_TO_SIMULATE}") from exc
    return factory
