"""The panel button's two gestures: a short press (cancel, acknowledge) and a long press
(operator functions), decoded from its edges on the controller loop's timers.

A long press fires once the button has been held `long_press_s`, while it is still held; the
release that ends it is not also a short press.
"""

from __future__ import annotations

from collections.abc import Callable

from .loop import EventLoop, Timer


class ButtonGestures:
    """Turns press and release edges into `on_short()` / `on_long()` calls (loop thread)."""

    def __init__(
        self,
        loop: EventLoop,
        long_press_s: Callable[[], float],
        on_short: Callable[[], None],
        on_long: Callable[[], None],
    ) -> None:
        self._loop = loop
        self._long_press_s = long_press_s
        self._on_short = on_short
        self._on_long = on_long
        self._timer: Timer | None = None
        self._long_pressed = False

    def edge(self, pressed: bool) -> None:
        if pressed:
            self._long_pressed = False
            self._cancel()
            self._timer = self._loop.call_later(self._long_press_s(), self._held)
            return
        self._cancel()
        if not self._long_pressed:
            self._on_short()

    def _held(self) -> None:
        self._long_pressed = True
        self._timer = None
        self._on_long()

    def _cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
