"""The station's fault: its cause, what replaces it, what clears it, and its audit trail.

Invariant (rule 7): while in fault the station shows the most serious cause it has met, so
clearing checks that one; a fault clears only once its cause is gone (a sensed cause must
read right again, a storage fault needs a durable write to go through), and a person's clear
is audited before the station leaves the fault state.

Every fault's text reads as cause, detail, next step, without its code (shown beside it):
`FAULT jam: wheel confirmed 0 of 3 positions after 97 steps; clear the wheel, then press the
button`. The next step is what `cause_gone` needs, then a person's clear (the panel button's
short press, or `fault clear` on the console); a missing cassette clears by itself.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from .domain import FAULT_SEVERITY, FaultCode
from .events import Event, FaultRaised
from .plausibility import sensor_problems
from .ports import Sensor, Sensors
from .store import Store, StoreError

log = logging.getLogger(__name__)

# What a person does next, for each fault (added once, by the FaultBook, to the cause's detail).
NEXT_STEP: dict[FaultCode, str] = {
    FaultCode.JAM: "clear the wheel (and check its index sensor), then press the button",
    FaultCode.NO_CASSETTE: "fit a cassette (the fault clears by itself)",
    FaultCode.CASSETTE_PULLED: "refit the cassette, then press the button",
    FaultCode.NO_DROP: "check the fluid, the line, the pump and the drop sensor (prime on the console), "
    "then press the button",
    FaultCode.INTERNAL: "press the button; if it comes back, restart the station and keep its log",
    FaultCode.STORAGE: "make the state directory writable again (space, permissions, the card), then press the "
    "button (it clears once a record can be written)",
    FaultCode.STARTUP: "clean or check the sensor named and its wiring (saved settings: config reset), "
    "then press the button",
    FaultCode.SENSOR: "clean or check the sensor named and its wiring, then press the button",
}
# A storage fault on the stand-in store (the database could not be opened): only a restart helps.
NO_DATABASE_STEP = "fix that, then restart the station (until then it runs without its database)"


def fault_of(exc: BaseException) -> tuple[FaultCode, str]:
    """The fault an unexpected exception puts the station in, and its cause: the store's own
    words for a refused write (they name the file and why), else the error as raised."""
    if isinstance(exc, StoreError):
        return FaultCode.STORAGE, str(exc)
    return FaultCode.INTERNAL, f"unexpected {type(exc).__name__}: {exc}"


class FaultBook:
    """The current fault (on the controller loop). `code` is None while there is none."""

    def __init__(
        self,
        store: Store,
        sensors: Sensors,
        saved_settings_problem: Callable[[], str | None],
        publish: Callable[[Event], None],
        *,
        wall: Callable[[], float],
    ) -> None:
        self._store = store
        self._sensors = sensors
        self._saved_settings_problem = saved_settings_problem
        self._publish = publish
        self._wall = wall
        self.code: FaultCode | None = None
        self.detail = ""

    @property
    def current(self) -> FaultCode:
        return self.code or FaultCode.INTERNAL

    def explained(self, code: FaultCode, detail: str) -> str:
        """The cause's detail and what to do next (the code is shown beside it, not in it)."""
        step = NEXT_STEP[code]
        if code is FaultCode.STORAGE and not self._store.durable:
            step = NO_DATABASE_STEP
        return f"{detail}; {step}"

    def set(self, code: FaultCode, detail: str) -> None:
        """The cause of a fault about to be entered."""
        self.code, self.detail = code, self.explained(code, detail)

    def escalate(self, code: FaultCode, detail: str) -> None:
        """A further fault while in fault: a more serious cause replaces the one shown."""
        if FAULT_SEVERITY.index(code) <= FAULT_SEVERITY.index(self.current):
            log.warning("further fault while in fault: %s: %s", code.value, detail)  # pragma: no mutate
            return
        self.code, self.detail = code, self.explained(code, detail)
        self.announce()

    def announce(self) -> None:
        """Audit and announce the current cause (a failing disk does not stop the fault)."""
        try:
            self._store.audit("fault", self.current.value, self._wall(), detail=self.detail)
        except Exception:
            log.exception("could not record the fault")  # pragma: no mutate
        self._publish(FaultRaised(self.current, self.detail))

    def cleared(self) -> FaultCode:
        code, self.code, self.detail = self.current, None, ""
        return code

    def record_clear(self, source: str) -> None:
        """A person's clear, on record before the station leaves fault (raises if it cannot be)."""
        detail = {"fault": self.current.value}
        self._store.audit("maintenance", "fault_clear", self._wall(), detail=detail, source=source)

    def cause_gone(self) -> bool:
        if self.code in (FaultCode.NO_CASSETTE, FaultCode.CASSETTE_PULLED):
            return self._sensors.read(Sensor.CASSETTE)
        if self.code is FaultCode.STARTUP:
            return not sensor_problems(self._sensors) and self._saved_settings_problem() is None
        if self.code is FaultCode.SENSOR:
            return not sensor_problems(self._sensors)
        if self.code is FaultCode.STORAGE:
            if not self._store.durable:
                return False  # running on a stand-in store: only a restart can fix this
            try:  # the disk is back when a durable write goes through again
                self._store.audit("maintenance", "storage_check", self._wall())
            except StoreError:
                return False
        return True
