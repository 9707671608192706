"""Drivers: the only part of the firmware that imports gpiozero."""

from .hardware import GpioHardware, build_hardware

__all__ = ["GpioHardware", "build_hardware"]
