"""The panel as a person sees it: which lights are on, since when, and how they blink.

Only the three LED outputs are read. The looks the judge needs are told apart by their timing,
as a person would: the service pattern blinks amber fast (every 0.125 s), a fault holds red
steady (longer than the slowest blink, 0.5 s), swipe-now is the only look with green and amber
together (see station/drivers/panel.py for the patterns themselves).
"""

from __future__ import annotations

FAST_BLINK_S = 0.125  # half-period of the service (and rejected) pattern
SLOW_BLINK_S = 0.5  # half-period of the slowest blinking pattern
EPS = 1e-6


class PanelView:
    """The LEDs' levels and the timing of their changes (virtual time)."""

    def __init__(self) -> None:
        self.green = self.amber = self.red = False
        self.changed_at = float("-inf")  # last change of any LED
        self.amber_changed_at = float("-inf")
        self.amber_interval: float | None = None  # between the last two amber changes
        self.red_on_at: float | None = None
        self.ready_at = float("-inf")  # ready (green alone, steady) last shown, until this instant
        self.fault_at = float("-inf")  # red last seen held steady
        self.inspection_dark_at = float("-inf")  # an inspection look last went dark (blinking)

    def update(self, green: bool, amber: bool, red: bool, now: float) -> None:
        if (green, amber, red) == (self.green, self.amber, self.red):
            return
        if self.red_steady(now):
            self.fault_at = now
        if self.ready(now):
            self.ready_at = now  # shown until now
        if amber != self.amber:
            self.amber_interval = now - self.amber_changed_at
            self.amber_changed_at = now
        if self.red and (self.green or self.amber) and not (red and (green or amber)):
            # an inspection look ends: blinking, its dark phase begins. The driver writes one LED
            # at a time, so the look may pass through red alone on its way to dark, at this instant.
            self.inspection_dark_at = now
        if red and not self.red:
            self.red_on_at = now
        elif not red:
            self.red_on_at = None
        self.green, self.amber, self.red = green, amber, red
        self.changed_at = now

    @property
    def green_alone(self) -> bool:
        """Ready (or the lit phase of the cleaned pattern)."""
        return self.green and not self.amber and not self.red

    @property
    def amber_alone(self) -> bool:
        return self.amber and not self.green and not self.red

    @property
    def red_alone(self) -> bool:
        return self.red and not self.green and not self.amber

    @property
    def swipe_now(self) -> bool:
        return self.green and self.amber and not self.red

    def ready(self, now: float) -> bool:
        """Green alone held longer than any blink: ready (not the cleaned pattern's blink)."""
        return self.green_alone and now - self.changed_at > SLOW_BLINK_S + 1e-3

    def red_steady(self, now: float) -> bool:
        """Red alone, held longer than any blink: the fault pattern (red with green or amber is
        an inspection look: inspect now, clean again)."""
        return self.red_alone and self.red_on_at is not None and now - self.red_on_at > SLOW_BLINK_S + 1e-3

    def inspection_look(self, now: float) -> bool:
        """Red with green (inspect now; blinking fast: reject) or with amber (clean again;
        blinking: wet-to-dry): what the panel shows while ready when the inspection loop has a
        word for the operator. The dark phase of such a blink counts too (a person sees one
        look, not its halves)."""
        if self.red and (self.green or self.amber):
            return True
        dark = not (self.green or self.amber or self.red)
        return dark and now - self.inspection_dark_at <= SLOW_BLINK_S + 1e-3

    def resting(self, now: float) -> bool:
        """A look the station takes a connector up from: ready, or an inspection look."""
        return self.green_alone or self.inspection_look(now)

    def fault_within(self, now: float, seconds: float) -> bool:
        """The fault pattern shown now or within the last `seconds`."""
        return self.red_steady(now) or now - self.fault_at <= seconds

    def service(self, now: float) -> bool:
        """The service pattern: amber blinking fast, green and red off."""
        return (
            not self.green
            and not self.red
            and self.amber_interval is not None
            and abs(self.amber_interval - FAST_BLINK_S) < 1e-4
            and now - self.amber_changed_at <= FAST_BLINK_S + EPS
        )

    def maintenance_look(self, now: float) -> bool:
        """What the panel shows while a maintenance action runs: green and red off, amber on or
        blinking (the service pattern, also in its first instant, before any blink)."""
        return not self.green and not self.red and (self.amber or now - self.amber_changed_at <= FAST_BLINK_S + EPS)
