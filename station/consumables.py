"""The cassette and fluid books as the station sees them: what is fitted, what is left, when
to warn, and the two declarations a person makes (a new cassette, a refilled reservoir).

Invariant (rule 6): what is left is never overstated. The first cassette of a type ever seen
is taken as new; after that a cassette of the same type is the same one until someone
declares it new, so a removed and re-inserted cassette keeps its count. A long press declares
a new cassette only within `NEW_CASSETTE_WINDOW_S` of fitting, so a stray press can never
reset a used cassette's count. Runs on the controller loop; every total it reads is kept per
clean by the store, so nothing here grows with history.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .config import Config
from .domain import CassetteType
from .events import CassetteDeclared, Event, FluidRefilled, WarningRaised
from .ports import Sensor, Sensors
from .store import CassetteState, Store

NEW_CASSETTE_WINDOW_S = 120.0  # a long press declares a new cassette only this soon after fitting


@dataclass(frozen=True)
class Counters:
    """What the console's `counters` shows: a screenful, however old the station is."""

    attempts: dict[str, int]  # by outcome, "open" for unfinished
    cassettes: list[CassetteState]  # the current cassette of each type
    cassettes_ever: int
    fitted_id: int | None
    fluid_used: int
    fluid_capacity: int


class Consumables:
    """Cassette and fluid books, warnings and declarations (on the controller loop)."""

    def __init__(
        self,
        store: Store,
        sensors: Sensors,
        config: Callable[[], Config],
        publish: Callable[[Event], None],
        *,
        wall: Callable[[], float],
        now: Callable[[], float],
    ) -> None:
        self._store = store
        self._sensors = sensors
        self._config = config
        self._publish = publish
        self._wall = wall
        self._now = now
        self._fitted_at: float | None = None  # loop time the cassette was last fitted
        self._warned_low = False

    # ------------------------------------------------------------------ what is fitted
    def cassette_type(self) -> CassetteType:
        return CassetteType.MALE_MT if self._sensors.read(Sensor.CASSETTE_MALE) else CassetteType.STANDARD

    def fitted(self) -> CassetteState | None:
        """The fitted cassette's books (None with the cradle empty or a type never declared)."""
        return self._store.cassette(self.cassette_type()) if self._sensors.read(Sensor.CASSETTE) else None

    def current_cassette(self) -> CassetteState:
        """The books of the cassette of the type the switch reads (recorded when first seen)."""
        ctype = self.cassette_type()
        cassette = self._store.cassette(ctype)
        if cassette is None:
            capacity = self._config().cassette.capacity_positions
            cassette = self._store.new_cassette(ctype, capacity, self._wall(), note="first fit: assumed new")
        return cassette

    def cleans_left(self, cassette: CassetteState) -> int:
        return cassette.remaining // self._config().wheel.positions_per_clean

    def fluid_left(self) -> int:
        used, capacity = self._store.fluid()
        return max(0, capacity - used)

    def fluid_low(self) -> bool:
        """The float switch reads low, or the count says the reservoir is empty."""
        return self._sensors.read(Sensor.FLUID_LOW) or self.fluid_left() == 0

    # ------------------------------------------------------------------ the cradle
    def cassette_inserted(self) -> None:
        """A cassette went into the cradle: it keeps its own count (or is the first of its type)."""
        self._fitted_at = self._now()
        self._warned_low = False
        known = self._store.cassette(self.cassette_type())
        if known is None:
            self.current_cassette()  # first of its type: declared new, with its fit recorded
        else:
            self._store.cassette_fitted(known.id, self._wall())

    def cassette_taken_out(self) -> None:
        self._fitted_at = None
        self._store.cassette_removed(self._wall())

    def check_low(self) -> None:
        """Warn once per cassette when fewer than the configured cleans are left."""
        cleans_left = self.cleans_left(self.current_cassette())
        if cleans_left < self._config().cassette.low_warning_cleans and not self._warned_low:
            self._warned_low = True
            self._publish(WarningRaised("cassette_low", f"cassette low: {cleans_left} cleans left"))

    # ------------------------------------------------------------------ declarations
    def declare_new(self, source: str) -> CassetteState:
        """The fitted cassette is new: a fresh count (the one before it is retired)."""
        ctype = self.cassette_type()
        capacity = self._config().cassette.capacity_positions
        cassette = self._store.new_cassette(ctype, capacity, self._wall(), source=source)
        self._warned_low = False
        self._publish(CassetteDeclared(cassette.id, ctype, cassette.capacity, source))
        return cassette

    def declare_new_by_panel(self) -> None:
        """A long press while ready: a new cassette, only just after fitting one."""
        if self._fitted_at is None or self._now() - self._fitted_at > NEW_CASSETTE_WINDOW_S:
            text = f"to declare a new cassette, long-press within {NEW_CASSETTE_WINDOW_S:.0f} s of fitting it"
            self._publish(WarningRaised("long_press_late", text))
            return
        self.declare_new(source="panel")

    def refill(self, source: str) -> None:
        """The reservoir was refilled: the fluid count starts again."""
        self._store.refill(self._wall(), source=source)
        self._publish(FluidRefilled(self._store.fluid()[1], source))

    def capacity_changed(self, reservoir_drops: int) -> None:
        self._store.fluid_capacity = reservoir_drops

    # ------------------------------------------------------------------ reports
    def counters(self) -> Counters:
        used, capacity = self._store.fluid()
        fitted = self.fitted()
        return Counters(
            attempts=self._store.summary(),
            cassettes=self._store.current_cassettes(),
            cassettes_ever=self._store.cassette_count(),
            fitted_id=fitted.id if fitted else None,
            fluid_used=used,
            fluid_capacity=capacity,
        )
