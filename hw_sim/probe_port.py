"""How the simulated probe's reports reach the station: through one of the station's real
adapters, as the probe's software or an automated inspector would send them (issue 14).

- `inspection.gpio_fitted`: the world pulses the station's PASS or FAIL input line (active-low,
  through the mock pins like every other input), held longer than `inspection.pulse_min_s`, in
  virtual time;
- otherwise the probe's PC software types `INSP:RES PASS|FAIL <compact JSON>` on a console port
  of its own (`PROBE_PORT`: recorded by the station as source `console:probe`), through the
  console's own dispatch (hw_sim/statements.py `console_asker`), posted to the station's loop as
  a console port posts its commands. The line is `ProbeReport.console_line()`: a summary that
  fits the console's 256-byte line.

Every report taken to the station is kept in `delivered` (what, when, by which adapter, the face
inspected and the connector's code when the world knows it): the judge holds the station's
inspection records to them (rule 10, inspection_truth.py), never to what the station says.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .endface import EndFace
from .probe import ProbeReport
from .statements import Ask

if TYPE_CHECKING:
    from .world import World

PROBE_PORT = "probe"  # the console port of the probe's software: the station records "console:probe"
GPIO_SOURCE = "gpio"  # what the station records for a verdict on its GPIO lines
PULSE_MARGIN_S = 0.05  # a pulse is held this much longer than the station's pulse_min_s


@dataclass
class Delivery:
    """One report taken to the station: `verdict` as the station records it ("pass"/"fail"),
    `t` when it was complete (the console line sent, the pulse ended), `inspected_at` when the
    probe looked at `face`, `code` the connector's label (None: unknown), `source` the adapter
    as the station records it. On the GPIO lines every pulse is one, whoever drove it (the
    probe, or a test as an automated inspector): `held_s` its length, `face` None when the probe
    did not make it."""

    verdict: str
    t: float
    inspected_at: float
    face: EndFace | None = field(repr=False)
    code: str | None
    source: str
    answer: list[str] | None = None  # what the console answered (the console adapter only)
    held_s: float | None = None


class ProbePort:
    """The probe's wiring to the station. `attach_console` gives it the console (the bench does)."""

    def __init__(self, world: World) -> None:
        self.w = world
        self.ask: Ask | None = None
        self.delivered: list[Delivery] = []
        self._level: dict[str, bool] = {}  # the GPIO lines as physically driven
        self._since: dict[str, float] = {}
        self._pulsing: dict[str, tuple[float, EndFace, str | None]] = {}  # the probe's pulse on a line
        world.faces.probe.on_report = self.report

    def attach_console(self, ask: Ask) -> None:
        self.ask = ask

    @property
    def gpio(self) -> bool:
        return self.w.config.inspection.gpio_fitted

    def pulse_s(self) -> float:
        return self.w.config.inspection.pulse_min_s + PULSE_MARGIN_S

    def report(self, report: ProbeReport) -> None:
        """The probe has graded the face in hand: take its report to the station."""
        w = self.w
        face = w.faces.in_hand
        if face is None or w.faults.no_report:  # (fault no_report: it never leaves the probe)
            return
        now = w.loop.now()
        if self.gpio:
            line = "inspect_pass" if report.passed else "inspect_fail"
            self._pulsing[line] = (now, face, w.connector_code)
            w._drive(line, True)
            w.loop.call_later(self.pulse_s(), lambda: w._drive(line, False))
        elif self.ask is not None:
            d = Delivery(report.verdict.lower(), now, now, face, w.connector_code, f"console:{PROBE_PORT}")
            text = report.console_line()
            w.loop.post(lambda: self._send(text, d))

    def line(self, name: str, active: bool) -> None:
        """The PASS or FAIL line as physically driven now (the world tells every change): a pulse
        that ends is a delivery."""
        now, was = self.w.loop.now(), self._level.get(name, False)
        self._level[name] = active
        if active and not was:
            self._since[name] = now
        elif was and not active:
            since = self._since.pop(name, now)
            inspected_at, face, code = self._pulsing.pop(name, (since, None, None))
            verdict = "pass" if name == "inspect_pass" else "fail"
            self.delivered.append(Delivery(verdict, now, inspected_at, face, code, GPIO_SOURCE, held_s=now - since))

    def _send(self, text: str, d: Delivery) -> None:
        assert self.ask is not None
        d.t = self.w.loop.now()
        self.delivered.append(d)
        d.answer = self.ask(text)
