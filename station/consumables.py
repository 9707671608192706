"""The cassette and fluid books as the station sees them: what is fitted, what is left, when
to warn, and the two declarations a person makes (a new cassette, a refilled reservoir).

Invariant (rule 6): what is left is never overstated. The first cassette of a type ever seen
is taken as new; after that a cassette of the same type is the same one until someone
declares it new, so a removed and re-inserted cassette keeps its count. A long press declares
a new cassette only within `NEW_CASSETTE_WINDOW_S` of fitting, so a stray press can never
reset a used cassette's count, and declares each fitted cassette new at most once (a second
long press warns, and nothing is created). Runs on the controller loop; every total it reads is
kept per clean by the store, so nothing here grows with history.

A refill is seen on the fluid-low float switch: it is physical evidence, so no PIN is needed.
Near its level a float bobs: the pump's draw and the slosh after a drop (or a pour) open and
close it many times. So a refill counts only when the switch has read low steadily for
`dispenser.refill_settle_s` (the level really was below the float), then not-low steadily as
long with no drop booked meanwhile (the level really rose, and not while a drop is placed): one
refill per real one, however the switch bounces. It fills the count to capacity
(`dispenser.reservoir_drops`), as a console `fluid refill` does, audited with the source
"float switch" and announced as FluidRefilled. A refill made while the station is off, or one
that never let the switch read low, is not seen: record it with `fluid refill`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .config import Config
from .domain import CassetteType
from .events import CassetteDeclared, Event, FluidRefilled, WarningRaised
from .loop import EventLoop, Timer
from .ports import Sensor, Sensors
from .store import CassetteState, Store

NEW_CASSETTE_WINDOW_S = 120.0  # a long press declares a new cassette only this soon after fitting
FLOAT_SWITCH = "float switch"  # the source of a refill seen on the fluid-low switch


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
        loop: EventLoop,
    ) -> None:
        self._store = store
        self._sensors = sensors
        self._config = config
        self._publish = publish
        self._wall = wall
        self._loop = loop
        self._now = loop.now
        self._fitted_at: float | None = None  # loop time the cassette was last fitted
        self._declared_fit = False  # the cassette fitted now was declared new on the panel
        self._warned_low = False
        # the float switch: since when it reads low (None: not low), whether that low held
        # long enough to be a real one, and the timer that confirms a rise as a refill
        self._low_since: float | None = self._now() if sensors.read(Sensor.FLUID_LOW) else None
        self._low_held = False
        self._rise: Timer | None = None

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
        self._declared_fit = False
        self._warned_low = False
        known = self._store.cassette(self.cassette_type())
        if known is None:
            self.current_cassette()  # first of its type: declared new, with its fit recorded
            self._declared_fit = True
        elif known.label is None:
            self._store.cassette_fitted(known.id, self._wall())
        # else a labelled cassette of this type was in use: which one this is, only its label
        # tells (station.trace): no fit is recorded, and no clean starts, until it is scanned

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
        self._declared_fit = True  # this fitting's declaration: the panel makes no second one
        self._warned_low = False
        self._publish(CassetteDeclared(cassette.id, ctype, cassette.capacity, source))
        return cassette

    def labelled_refusal(self) -> str | None:
        """Why no cassette of the fitted type may be declared new by word (panel or console):
        labelled cassettes are in use for it, and a label tells a new one (station.trace)."""
        current = self._store.cassette(self.cassette_type())
        if current is None or current.label is None:
            return None
        return "cassettes of this type carry labels: scan the new cassette's label (an unseen label is a new cassette)"

    def declare_new_by_panel(self) -> None:
        """A long press while ready: a new cassette, only just after fitting one, and only once
        per fitting (a second press would throw away a count the first one began)."""
        if self._fitted_at is None or self._now() - self._fitted_at > NEW_CASSETTE_WINDOW_S:
            text = f"to declare a new cassette, long-press within {NEW_CASSETTE_WINDOW_S:.0f} s of fitting it"
            self._publish(WarningRaised("long_press_late", text))
            return
        if self._declared_fit:
            text = "this cassette is already declared new; to declare another, take it out and fit the new one"
            self._publish(WarningRaised("long_press_again", text))
            return
        if (labelled := self.labelled_refusal()) is not None:
            self._publish(WarningRaised("cassette_labelled", labelled))
            return
        self.declare_new(source="panel")

    def refill(self, source: str) -> None:
        """The reservoir was refilled: the fluid count starts again."""
        self._store.refill(self._wall(), source=source)
        self._publish(FluidRefilled(self._store.fluid()[1], source))

    # ------------------------------------------------------------------ the float switch
    def float_switch(self, low: bool) -> None:
        """The fluid-low switch changed: a rise after a real low, held steady, is a refill."""
        now = self._now()
        if self._rise is not None:  # it bobbed while rising: the rise starts again
            self._rise.cancel()
            self._rise = None
        if low:
            if self._low_since is None:
                self._low_since = now
            return
        settle = self._config().dispenser.refill_settle_s
        if self._low_since is not None and now - self._low_since >= settle:
            self._low_held = True
        self._low_since = None
        if self._low_held:
            self._watch_rise(settle)

    def _watch_rise(self, settle: float) -> None:
        used = self._store.fluid()[0]
        self._rise = self._loop.call_later(settle, lambda: self._risen(used))

    def _risen(self, used_then: int) -> None:
        self._rise = None
        if self._sensors.read(Sensor.FLUID_LOW):
            return  # (its edge is on its way)
        if self._store.fluid()[0] != used_then:  # a drop was placed meanwhile: not settled yet
            self._watch_rise(self._config().dispenser.refill_settle_s)
            return
        self._low_held = False
        self.refill(FLOAT_SWITCH)

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
