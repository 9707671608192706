"""Rule 7 beyond the red light: a station that is stuck, and the outputs after shutdown.

"Stuck" is judged from the panel and the outputs alone, over a time far longer than any job or
clean takes (`stuck_s`: a minute beyond the longest wait the configuration allows):

- the panel shows busy (amber alone) or swipe-now (green and amber) without a change, and the
  wheel and the pump have been still all that time;
- a connector was seated while the panel showed ready, and the panel has not changed since;
- the panel blinks the service pattern, or blinks with the guide empty and neither ready nor
  the fault shown all that time, and the wheel and the pump have been still.

A station that went into fault holds red steady: that is where an unexpected error must leave
it. One timer at a time, armed on a light change and re-armed only while the lights keep
changing, so an idle or faulted bench has none.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from station.loop import Timer

if TYPE_CHECKING:
    from .judge import Judge


class Watchdog:
    def __init__(self, judge: Judge) -> None:
        self.judge = judge
        self.timer: Timer | None = None
        self._flagged_quiet: float | None = None  # the quiet period already reported

    def stuck_s(self) -> float:
        c = self.judge.config()
        longest = max(c.swipe.timeout_s, c.swipe.wet_window_s) + 2 * c.swipe.max_pass_s + c.swipe.settle_s
        return 60.0 + longest + c.guide_pins.timeout_s + c.dispenser.drop_timeout_s

    def _flag(self, text: str) -> None:
        j = self.judge
        if self._flagged_quiet == j.last_activity:
            return  # said once for this stillness
        self._flagged_quiet = j.last_activity
        j.violate(7, text)

    def _arm(self, due: float) -> None:
        if self.timer is None or self.timer.cancelled or self.timer.fired:
            self.timer = self.judge.w.loop.call_at(due, self._fire)

    def cancel(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def lights_changed(self, now: float) -> None:
        j, lights = self.judge, self.judge.lights
        limit = self.stuck_s()
        if now - j.last_activity >= limit:
            empty_since = j.guide_empty_since
            if lights.service(now):
                self._flag(f"stuck: the service pattern for {now - j.last_activity:.0f} s with nothing moving")
            elif (
                j.session is None
                and empty_since is not None
                and now - empty_since >= limit
                and now - lights.ready_at >= limit
                and not lights.ready(now)
                and not lights.inspection_look(now)  # inspect now / clean again: the station waits for a person
                and not lights.fault_within(now, limit)
            ):
                self._flag(f"stuck: the guide empty for {now - empty_since:.0f} s, the panel blinking, not ready")
        self._arm(now + limit)

    def seated(self, now: float) -> None:
        self._arm(now + self.stuck_s())

    def _fire(self) -> None:
        self.timer = None
        j, lights = self.judge, self.judge.lights
        now = j.now()
        limit = self.stuck_s()
        s = j.session
        watch_from = max(lights.changed_at, j.last_activity, s.seated_at if s is not None else float("-inf"))
        if now - watch_from < limit - 1e-9:
            self.timer = j.w.loop.call_at(watch_from + limit, self._fire)
            return
        if lights.amber_alone:
            self._flag(f"stuck: busy (amber) shown for {now - lights.changed_at:.0f} s with nothing moving")
        elif lights.swipe_now:
            clean = j.pending[-1] if j.pending else None
            if clean is not None and not clean.strokes and self._flagged_quiet != j.last_activity:
                j.violate(
                    5, f"no swipe in time never judged: swipe-now shown {now - lights.changed_at:.0f} s, no stroke"
                )
            self._flag(f"stuck: swipe-now shown for {now - lights.changed_at:.0f} s")
        elif lights.resting(now) and s is not None and s.candidate and "connector" not in j.w.inputs.stuck:
            self._flag(f"stuck: {s.describe()} was ignored for {now - s.seated_at:.0f} s (the panel stayed ready)")
