"""The panel in the README's words: what a person at the bench sees and hears, as text.

Only the physical outputs are read: the three LED lines and the buzzer line, as the mock pin
factory reports their changes (the station's state and announcements are never consulted).
A look is told apart by its timing, as a person would tell it:

- steady: the lights lit stay the same for longer than the slowest blink (0.5 s);
- blinking: the same lights go on and off in equal phases (fast when a phase is shorter than
  0.25 s); a look that lasts a single on-off pair, as a result shown for one second, counts;
- the sound: the beeps heard while the look is shown, counted once the buzzer has been quiet
  longer than its last beep (the panel's beeps are spaced by their own length); a beep longer
  than one and a half short beeps (`[panel] beep_s`) is long; four beeps or more are an alarm;
  a chirp shorter than three quarters of a beep (a scan acknowledged) is no look's sound.

API (for the demo, the live view, tests):

    describe(green, amber, red, beeps=0, long_beep=False) -> str
        Each light "off", "on", "blinking" or "blinking fast" (hw_sim.bench_view.Look's values
        work too). Returns the README's row, e.g. "green + amber, one beep: swipe now", or what
        is seen and heard plus ": not a look the README lists".

    watcher = PanelWatcher(bench, on_look=callback)    # attach to a SimBench
        callback(look) is called on the bench's loop for each new look once it is certain,
        which is a moment after it began (up to ~1 s for a slow blink): `look.t` is the virtual
        time it began, `look.words` the text, `look.meaning` the part after the colon ("swipe
        now"; None for a look the README does not list). `watcher.looks` keeps the last 256,
        `watcher.current` the newest; `watcher.detach()` stops watching.

The watcher lives on the bench's loop thread (output changes and its timers arrive there); read
it from another thread only through `bench.loop.post`. It adds timers only while attached.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from station.loop import Timer

from .bench import SimBench
from .lights import SLOW_BLINK_S

LIGHTS = ("green", "amber", "red")
ROLES = {"led_ready": "green", "led_busy": "amber", "led_fault": "red"}
SETTLE_S = SLOW_BLINK_S + 0.01  # lights unchanged this long are steady
FAST_BELOW_S = SLOW_BLINK_S / 2  # a blink phase shorter than this is "blinking fast"
EPS = 1e-3  # timing tolerance (virtual time is exact; sums of floats are not quite)
ALARM_BEEPS = 4
KEPT = 256

# The README's table (the panel's looks), keyed by (green, amber, red, sound).
README_LOOKS: dict[tuple[str, str, str, str], str] = {
    ("on", "off", "off", ""): "green: ready",
    ("off", "on", "off", ""): "amber: busy",
    ("on", "on", "off", "one beep"): "green + amber, one beep: swipe now",
    ("blinking", "off", "off", "two beeps"): "green blinking, two beeps: cleaned",
    ("off", "off", "blinking", "long beep"): "red blinking slowly, long beep: failed",
    ("off", "off", "blinking fast", "three beeps"): "red blinking fast, three beeps: rejected",
    ("off", "blinking", "off", ""): "amber blinking: take the connector away",
    ("off", "off", "on", "alarm"): "red steady, alarm: fault",
    ("off", "blinking fast", "off", ""): "amber blinking fast: maintenance running",
    ("off", "off", "off", ""): "all lights off: station stopped",
    ("on", "off", "on", "one beep"): "green + red, one beep: inspect now",
    ("off", "on", "on", "two beeps"): "amber + red, two beeps: clean again",
    ("off", "blinking", "blinking", "two beeps"): "amber + red blinking, two beeps: clean again, wet-to-dry",
    ("blinking fast", "off", "blinking fast", "three beeps"): (
        "green + red blinking fast, three beeps: reject the connector"
    ),
}
UNLISTED = "not a look the README lists"
_COUNT = {1: "one", 2: "two", 3: "three"}


def sound_words(beeps: int, long_beep: bool = False) -> str:
    """What is heard: nothing (""), "one beep", "long beep", "two beeps", ... "alarm"."""
    if beeps <= 0:
        return ""
    if beeps >= ALARM_BEEPS:
        return "alarm"
    kind = "long beep" if long_beep else "beep"
    if beeps == 1:
        return kind if long_beep else "one beep"
    return f"{_COUNT[beeps]} {kind}s"


def describe(green: str, amber: str, red: str, beeps: int = 0, long_beep: bool = False) -> str:
    """The README's words for a look: each light "off", "on", "blinking" or "blinking fast"."""
    modes = tuple(str(getattr(m, "value", m)) for m in (green, amber, red))
    for mode in modes:
        if mode not in ("off", "on", "blinking", "blinking fast"):
            raise ValueError(f"a light is off, on, blinking or blinking fast, not {mode!r}")
    sound = sound_words(beeps, long_beep)
    known = README_LOOKS.get((modes[0], modes[1], modes[2], sound))
    if known is not None:
        return known
    lit = [(name, mode) for name, mode in zip(LIGHTS, modes, strict=True) if mode != "off"]
    seen = " + ".join(name if mode == "on" else f"{name} {mode}" for name, mode in lit)
    return f"{seen or 'all lights off'}{', ' + sound if sound else ''}: {UNLISTED}"


@dataclass(frozen=True)
class Look:
    """One look of the panel: the lights' modes (green, amber, red) and the beeps heard."""

    t: float  # virtual time it began
    lights: tuple[str, str, str]
    beeps: int = 0
    long_beep: bool = False

    @property
    def words(self) -> str:
        return describe(*self.lights, beeps=self.beeps, long_beep=self.long_beep)

    @property
    def meaning(self) -> str | None:
        """What the README says the look means ("swipe now"), None for an unlisted look."""
        meaning = self.words.rpartition(": ")[2]
        return None if meaning == UNLISTED else meaning


@dataclass
class _Phase:
    lit: frozenset[str]  # the lights on
    start: float


@dataclass
class _Shown:
    """A look whose lights are decided; `end` once the next one began."""

    lit: frozenset[str]
    start: float
    blink_s: float | None = None  # the phase length when blinking
    end: float | None = None
    next_lit: frozenset[str] = frozenset()  # a blink's next phase


class PanelWatcher:
    """Reports each change of the panel's look (see the module docstring)."""

    def __init__(self, bench: SimBench, on_look: Callable[[Look], None] | None = None) -> None:
        world = bench.world
        assert world is not None
        self._loop = bench.loop
        self._short_beep_s = bench.config.panel.beep_s
        self._factory = world.factory
        self._next = world.factory.on_output
        self._role = {getattr(world.pins, role): name for role, name in ROLES.items()}
        self._buzzer_pin = world.pins.buzzer
        self._on = {name: world.output(role) for role, name in ROLES.items()}
        self.on_look = on_look
        self.looks: deque[Look] = deque(maxlen=KEPT)
        now = self._loop.now()
        self._phases = [_Phase(self._lit(), now)]  # not yet part of a decided look; last: now
        self._shown: list[_Shown] = []  # decided, not yet reported (oldest first)
        self._open: _Shown | None = None  # the decided look that may still go on
        self._beeps: list[list[float]] = []  # [on, off] (off = inf while sounding), recent
        self._timer: Timer | None = None
        world.factory.on_output = self._changed
        self._arm(now)

    @property
    def current(self) -> Look | None:
        return self.looks[-1] if self.looks else None

    def detach(self) -> None:
        if self._factory.on_output == self._changed:
            self._factory.on_output = self._next
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    # ------------------------------------------------------------------ what the pins do
    def _lit(self) -> frozenset[str]:
        return frozenset(name for name, on in self._on.items() if on)

    def _changed(self, bcm: int, value: bool) -> None:
        if self._next is not None:
            self._next(bcm, value)
        now = self._loop.now()
        if bcm == self._buzzer_pin:
            if value and (not self._beeps or self._beeps[-1][1] != float("inf")):
                self._beeps.append([now, float("inf")])
                del self._beeps[:-16]
            elif not value and self._beeps and self._beeps[-1][1] == float("inf"):
                self._beeps[-1][1] = now
            self._arm(now)
            return
        name = self._role.get(bcm)
        if name is None or self._on[name] == value:
            return
        self._on[name] = value
        lit, last = self._lit(), self._phases[-1]
        if lit == last.lit:
            return
        if last.start == now:  # several lights switched at one instant: one change
            if len(self._phases) > 1 and self._phases[-2].lit == lit:
                self._phases.pop()
            else:
                last.lit = lit
        else:
            self._phases.append(_Phase(lit, now))
        self._arm(now)

    def _arm(self, at: float) -> None:
        """Check again just after `at` (after the changes of that instant)."""
        due = at + 1e-6
        if self._timer is not None and not self._timer.cancelled and not self._timer.fired:
            if self._timer.due <= due:
                return
            self._timer.cancel()
        self._timer = self._loop.call_at(due, self._check)

    # ------------------------------------------------------------------ deciding the look
    def _check(self) -> None:
        self._timer = None
        now = self._loop.now()
        wait = self._decide(now)
        self._report(now)
        later = [t for t in (wait, self._sound_settles()) if t is not None and t > now]
        if later:
            self._arm(min(later))

    def _decide(self, now: float) -> float | None:
        """Turn the phases seen into looks; returns when to look again without a change."""
        phases = self._phases
        while True:
            first = phases[0]
            ended = phases[1].start if len(phases) > 1 else None
            shown = self._open
            if shown is not None and shown.blink_s is None:  # steady: `first` is that look
                if ended is None:
                    return None
                self._close(ended)
                phases.pop(0)
                continue
            if shown is not None and shown.blink_s is not None:  # blinking: `first` goes on with it?
                p = shown.blink_s
                if first.lit == shown.next_lit:
                    if ended is None and now - first.start <= p + EPS:
                        return first.start + p + EPS
                    if ended is not None and ended - first.start <= p + EPS:
                        phases.pop(0)
                        shown.next_lit = shown.lit if not first.lit else frozenset()
                        if ended - first.start < p - EPS:  # cut short: the blinking ended
                            self._close(ended)
                        continue
                self._close(first.start)
                continue
            # no look open: what does `first` begin?
            if ended is None:
                if now - first.start >= SETTLE_S:
                    self._begin(_Shown(first.lit, first.start))
                    continue
                return first.start + SETTLE_S
            d, second = ended - first.start, phases[1]
            if first.lit and d <= SLOW_BLINK_S + EPS and not second.lit:
                second_end = phases[2].start if len(phases) > 2 else None
                if second_end is None and now - second.start <= d + EPS:
                    return second.start + d + EPS
                if second_end is not None and abs(second_end - second.start - d) <= EPS:
                    self._begin(_Shown(first.lit, first.start, blink_s=d, next_lit=first.lit))
                    del phases[:2]  # (the third, which ended the second, remains)
                    continue
            self._begin(_Shown(first.lit, first.start, end=ended))
            self._open = None
            phases.pop(0)

    def _begin(self, shown: _Shown) -> None:
        self._shown.append(shown)
        self._open = shown

    def _close(self, at: float) -> None:
        if self._open is not None:
            self._open.end = at
        self._open = None

    # ------------------------------------------------------------------ the sound, and reporting
    def _sound_settles(self) -> float | None:
        """When the last beep's series is over (None: quiet already, or sounding now)."""
        if not self._beeps:
            return None
        on, off = self._beeps[-1]
        return None if off == float("inf") else off + (off - on) + EPS

    def _heard(self, start: float, end: float) -> list[tuple[float, float]]:
        """The beeps of a look. A chirp (shorter than 3/4 of a beep: a scanned code acknowledged,
        station/drivers/panel.py `chirp`) belongs to no look."""
        chirp = 0.75 * self._short_beep_s
        return [(on, off) for on, off in self._beeps if start <= on < end and off - on >= chirp]

    def _report(self, now: float) -> None:
        while self._shown:
            shown = self._shown[0]
            if shown.end is None:  # still shown: its sound must be over first
                settles = self._sound_settles()
                if self._beeps and (self._beeps[-1][1] == float("inf") or (settles is not None and now < settles)):
                    return
            beeps = self._heard(shown.start, shown.end if shown.end is not None else float("inf"))
            mode = "on" if shown.blink_s is None else "blinking fast" if shown.blink_s < FAST_BELOW_S else "blinking"
            lights = tuple(mode if name in shown.lit else "off" for name in LIGHTS)
            look = Look(
                shown.start,
                (lights[0], lights[1], lights[2]),
                beeps=len(beeps),
                long_beep=any(off - on > 1.5 * self._short_beep_s for on, off in beeps),
            )
            self._shown.pop(0)
            self.looks.append(look)
            if self.on_look is not None:
                self.on_look(look)
