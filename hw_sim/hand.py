"""The operator's hand: seats and lifts the connector and strokes it across the window,
recording every stroke as the ribbon felt it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from station.loop import Timer

from .model import ConnectorKind, SwipeRecord, SwipeVariant

if TYPE_CHECKING:
    from .world import World


class Hand:
    """Moves the connector through the world's input lines; `swipes` is every stroke it made."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.swipes: list[SwipeRecord] = []
        self.timers: list[Timer] = []  # gate edges of strokes still under way

    def present(self, kind: ConnectorKind | str, *, chatter_s: float = 0.0) -> None:
        """Seat a connector in the guide: the pin sensors see its pins, then presence.

        `chatter_s` > 0 makes the pin sensors flicker that long (a loose, badly seated plug)."""
        w = self.world
        kind = ConnectorKind(kind)
        w.connector = kind
        left, right = {
            ConnectorKind.MALE: (True, True),
            ConnectorKind.FEMALE: (False, False),
            ConnectorKind.BENT: (True, False),
        }[kind]
        w._drive("pin_left", left)
        w._drive("pin_right", right)
        w._drive("connector", True)
        flips = int(chatter_s / 0.05)
        for k in range(1, flips + 1):  # the left sensor flickers every 50 ms ...
            level = (not left) if k % 2 else left
            self.timers.append(w.loop.call_later(k * 0.05, lambda v=level: w._drive("pin_left", v)))
        if flips:  # ... and settles on the connector's own reading
            self.timers.append(w.loop.call_later((flips + 1) * 0.05, lambda: w._drive("pin_left", left)))

    def remove(self, *, pins_lag_s: float = 0.0) -> None:
        """Lift the connector out of the guide (ending any stroke still under way).

        `pins_lag_s` > 0: a slow, tilted withdrawal: the presence sensor lets go first, the
        guide-pin sensors that long after."""
        w = self.world
        for timer in self.timers:
            timer.cancel()
        self.timers.clear()
        w._drive("gate_a", False)
        w._drive("gate_b", False)
        w.connector = None
        w._drive("connector", False)
        if pins_lag_s > 0:

            def release() -> None:
                if w.connector is None:  # not seated again meanwhile
                    w._drive("pin_left", False)
                    w._drive("pin_right", False)

            w.loop.call_later(pins_lag_s, release)
            return
        w._drive("pin_left", False)
        w._drive("pin_right", False)

    def swipe(
        self,
        *,
        direction: str = "down",
        duration_s: float = 0.6,
        variant: SwipeVariant | str = SwipeVariant.FULL,
        bounce: bool = False,
    ) -> None:
        """Pull the connector across the window. `down` is the correct way (gate A, then B);
        `duration_s` is the entry-to-entry time between the two gates."""
        variant = SwipeVariant(variant)
        first, second = ("gate_a", "gate_b") if direction == "down" else ("gate_b", "gate_a")
        dwell = duration_s * 0.3
        strokes = [(first, second)]
        if variant is SwipeVariant.BACK_AND_FORTH:
            strokes.append((second, first))
        elif variant is SwipeVariant.DOUBLE:
            strokes.append((first, second))
        edges: list[tuple[float, str, bool]] = []
        t = 0.0
        for g1, g2 in strokes:
            edges += [(t, g1, True), (t + dwell, g1, False)]
            if variant is not SwipeVariant.PARTIAL:
                edges += [(t + duration_s, g2, True), (t + duration_s + dwell, g2, False)]
            t += duration_s + dwell + 0.15
        self._touch_ribbon(direction, variant, duration_s)
        for at, gate, active in edges:
            self._schedule_edge(at, gate, active, bounce or self.world.faults.bounce)

    def _schedule_edge(self, at: float, gate: str, active: bool, bounce: bool) -> None:
        w = self.world
        self.timers = [t for t in self.timers if not t.cancelled and t.due >= w.loop.now()]
        if bounce:  # a few fast flickers (< 2 ms) before the contact settles
            for k in range(3):
                self.timers.append(w.loop.call_later(at + k * 0.0004, lambda g=gate, v=active: w._drive(g, v)))
                self.timers.append(
                    w.loop.call_later(at + k * 0.0004 + 0.0002, lambda g=gate, v=not active: w._drive(g, v))
                )
            at += 0.0015
        self.timers.append(w.loop.call_later(at, lambda: w._drive(gate, active)))

    def _touch_ribbon(self, direction: str, variant: SwipeVariant, duration_s: float) -> None:
        w = self.world
        cassette = w.fitted
        if cassette is None or w.connector is None:
            return
        section = cassette.position
        fresh = not cassette.touched.get(section)
        drop_t = cassette.drop_time.get(section)
        self.swipes.append(
            SwipeRecord(
                w.loop.now(),
                section,
                cassette.name,
                direction,
                variant,
                duration_s,
                w.prompting,
                fresh,
                None if drop_t is None else w.loop.now() - drop_t,
            )
        )
        cassette.touched[section] = cassette.touched.get(section, 0) + 1
        if w.prompting and not fresh:
            w._violate(1, f"prompted swipe on section {section}, which was already used")
        w._persist()
