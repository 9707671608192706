"""The cleaning mode: the panel's DRY / WET-TO-DRY switch, unless the console overrides it.

The mode of a clean is read when its connector is seated; a switch to DRY before the drop
makes that clean dry (the controller's rule 4), a switch to WET counts from the next clean.
"""

from __future__ import annotations

from collections.abc import Callable

from .domain import Mode, ServiceResult
from .events import Event, ModeSet
from .ports import Sensor, Sensors
from .store import Store


class ModeSelector:
    """Where the mode comes from, and the console's audited override (controller loop)."""

    def __init__(
        self, sensors: Sensors, store: Store, publish: Callable[[Event], None], *, wall: Callable[[], float]
    ) -> None:
        self._sensors = sensors
        self._store = store
        self._publish = publish
        self._wall = wall
        self.override: Mode | None = None

    def current(self) -> Mode:
        """The console's override if one is set, else the panel switch."""
        if self.override is not None:
            return self.override
        return Mode.WET if self._sensors.read(Sensor.MODE_WET) else Mode.DRY

    def set(self, mode: Mode | None, source: str) -> ServiceResult:
        """Override the switch from the console (None hands the choice back to the panel). On
        record before it applies: a change the disk refuses does not happen."""
        self._store.audit(
            "maintenance", "mode", self._wall(), detail={"mode": mode.value if mode else "switch"}, source=source
        )
        self.override = mode
        self._publish(ModeSet(mode, source))
        return ServiceResult(True, [f"mode {self.current().value} ({'console' if mode else 'panel switch'})"])
