"""Firmware for the MPO/MTP connector cleaning station."""

__version__ = "0.1.0"
MAKER = "Fibreclean Labs"
MODEL = "MPO-CS1"
