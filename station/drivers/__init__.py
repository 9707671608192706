"""Drivers: the only part of the firmware that imports gpiozero."""

from .hardware import Hardware, build_hardware

__all__ = ["Hardware", "build_hardware"]
