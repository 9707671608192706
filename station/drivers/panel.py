"""The operator panel: three LEDs and a buzzer with one distinct pattern per situation.

Patterns are timed on the controller loop rather than with gpiozero's `blink()` threads, so
they run in virtual time in simulation and never race the controller.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from gpiozero import LED, Buzzer

from ..config import Config
from ..loop import EventLoop, Timer
from ..ports import Pattern
from .gpio import DigitalOutput, PinFactory


@dataclass(frozen=True)
class Look:
    """steady: LEDs held on; blink: LEDs toggled every `half_period_s`; beeps: count, length factor."""

    steady: tuple[str, ...] = ()
    blink: tuple[str, ...] = ()
    half_period_s: float = 0.5
    beeps: int = 0
    beep_len: float = 1.0


# green = ready, amber = busy, red = fault. Only SWIPE_NOW lights green and amber together; red
# steady alone is only FAULT.
LOOKS: dict[Pattern, Look] = {
    Pattern.OFF: Look(),
    Pattern.READY: Look(steady=("green",)),
    Pattern.BUSY: Look(steady=("amber",)),
    Pattern.SWIPE_NOW: Look(steady=("green", "amber"), beeps=1),
    Pattern.CLEANED: Look(blink=("green",), half_period_s=0.5, beeps=2),
    Pattern.FAILED: Look(blink=("red",), half_period_s=0.5, beeps=1, beep_len=4.0),
    Pattern.REJECTED: Look(blink=("red",), half_period_s=0.125, beeps=3),
    Pattern.REMOVE: Look(blink=("amber",), half_period_s=0.5),
    Pattern.SERVICE: Look(blink=("amber",), half_period_s=0.125),
    Pattern.FAULT: Look(steady=("red",), beeps=5, beep_len=2.0),
    # inspection: red with another light means "not yet released" (red alone, steady, is a fault)
    Pattern.INSPECT: Look(steady=("green", "red"), beeps=1),
    Pattern.RECLEAN: Look(steady=("amber", "red"), beeps=2),
    Pattern.RECLEAN_WET: Look(blink=("amber", "red"), half_period_s=0.5, beeps=2),
    Pattern.QUARANTINE: Look(blink=("green", "red"), half_period_s=0.125, beeps=3),
}


class LedPanel:
    def __init__(self, config: Config, loop: EventLoop, pin_factory: PinFactory | None = None) -> None:
        pins = config.pins
        self._loop = loop
        self._beep_s = config.panel.beep_s
        self.leds: dict[str, DigitalOutput] = {
            "green": LED(pins.led_ready, pin_factory=pin_factory),
            "amber": LED(pins.led_busy, pin_factory=pin_factory),
            "red": LED(pins.led_fault, pin_factory=pin_factory),
        }
        self.buzzer: DigitalOutput = Buzzer(pins.buzzer, pin_factory=pin_factory)
        self._pattern = Pattern.OFF
        self._timers: list[Timer] = []
        self._chirps: list[Timer] = []  # a scan's beeps: the lights and the pattern's beeps go on

    @property
    def pattern(self) -> Pattern:
        return self._pattern

    def show(self, pattern: Pattern) -> None:
        if pattern is self._pattern:
            return
        self._stop()
        self._pattern = pattern
        look = LOOKS[pattern]
        lit = set(look.steady) | set(look.blink)
        # Off before on: never show a combination of the old and new pattern, even for a
        # moment (green + amber together means "swipe now").
        for name in sorted(self.leds, key=lambda n: n in lit):
            self.leds[name].value = name in lit
        if look.blink:
            self._blink(look, True)
        for i in range(look.beeps):
            start = i * 2 * self._beep_s * look.beep_len
            self._timers.append(self._loop.call_later(start, self.buzzer.on))
            self._timers.append(self._loop.call_later(start + self._beep_s * look.beep_len, self.buzzer.off))

    def _blink(self, look: Look, lit: bool) -> None:
        for name in look.blink:
            self.leds[name].value = lit

        def toggle() -> None:
            self._timers = [t for t in self._timers if t.pending]
            self._blink(look, not lit)

        self._timers.append(self._loop.call_later(look.half_period_s, toggle))

    def _stop(self) -> None:
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        self.buzzer.off()

    def chirp(self, ok: bool) -> None:
        """A scan was heard: one short beep when accepted, two long ones (the error beep) when
        refused. The lights stay as they are."""
        for timer in self._chirps:
            timer.cancel()
        beeps, length = (1, 0.5 * self._beep_s) if ok else (2, 3 * self._beep_s)
        self._chirps = []
        for i in range(beeps):
            self._chirps.append(self._loop.call_later(i * 2 * length, self.buzzer.on))
            self._chirps.append(self._loop.call_later(i * 2 * length + length, self.buzzer.off))

    def lamp_test(self, done: Callable[[], None], on_s: float = 0.5) -> None:
        """Self-test of the panel: green, amber, red, each alone for `on_s`, then one beep;
        `done` is called (on the loop) once it is over. Never two lights at once, so it can
        never look like "swipe now"."""
        self._stop()
        self._pattern = Pattern.OFF  # whatever comes next is shown afresh
        for led in self.leds.values():
            led.off()
        at = 0.0
        for name in ("green", "amber", "red"):
            led = self.leds[name]
            self._timers.append(self._loop.call_later(at, led.on))
            self._timers.append(self._loop.call_later(at + on_s, led.off))
            at += on_s
        self._timers.append(self._loop.call_later(at, self.buzzer.on))
        self._timers.append(self._loop.call_later(at + self._beep_s, self.buzzer.off))
        self._timers.append(self._loop.call_later(at + self._beep_s, done))

    def fault_light(self) -> None:
        """Safe-state light: red on, the rest off, at once (no timers involved). The pattern is
        left as it was so that a following `show(FAULT)` still sounds the alarm."""
        self._stop()
        for name, led in self.leds.items():
            led.value = name == "red"

    def close(self) -> None:
        self._stop()
        for led in self.leds.values():
            led.close()
        self.buzzer.close()
