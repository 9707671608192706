"""The simulated bench: a physical model of the cleaner driven through gpiozero's MockFactory."""

from .bench import SimBench
from .world import ConnectorKind, Fault, SwipeVariant, World

__all__ = ["SimBench", "World", "ConnectorKind", "Fault", "SwipeVariant"]
