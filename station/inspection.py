"""Clean -> inspect -> re-clean (docs/design.md section 10): the station runs the loop, an
inspection system grades the end face. The station never grades images: it receives verdicts
(the console's `INSP:RES`, two GPIO lines from an automated inspector or a PLC) and decides what
comes next.

- `after`: a clean that ends cleaned awaits its verdict. PASS: the connector is released. FAIL
  (or no verdict within `verdict_timeout_s`): clean again on fresh ribbon, with the next
  procedure of `reclean` (default dry, dry, wet: the bulletin's escalation to wet-to-dry); after
  the last one fails, the connector is quarantined ("replace or repair the connector"),
  recorded, and refused until a maintenance engineer releases it.
- `first`: inspect before cleaning. A verdict with nothing awaiting applies to the next
  connector (the one scanned, if connector codes are scanned): PASS releases it with no ribbon
  used; FAIL lets it be cleaned, and from there the loop is `after`'s.

With connector codes the loop follows the connector across presentations (its cleans and
verdicts are in the records); without, it follows the connector in hand: the next presentation
after a FAIL is taken as the same connector. While a verdict is awaited, no other connector is
taken up ("inspect first"). Only a PASS after a connector's last clean releases it: a missing
verdict counts as a FAIL. Runs on the controller loop; every verdict, release and quarantine is
recorded (with its audit row) before it is announced.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass

from .config import Config
from .domain import Mode, Reason, ServiceResult, Verdict
from .events import Event, InspectionDue, QuarantineReleased, VerdictRecorded, WarningRaised
from .loop import EventLoop, Timer
from .ports import Panel, Pattern
from .store import InspectionBook, Store

log = logging.getLogger(__name__)

RELEASED, QUARANTINED = "released", "quarantined"
NEXT_WORDS = {
    RELEASED: "released: the end face passed",
    "clean_dry": "clean again on fresh ribbon (dry)",
    "clean_wet": "clean again, wet-to-dry",
    QUARANTINED: "reject: replace or repair the connector (quarantined)",
}
MAX_DETAIL = 64 * 1024  # a verdict's findings kept as received, up to this size
# what the panel shows while ready: what to do with the connector in hand next
READY_LOOKS = {"clean_dry": Pattern.RECLEAN, "clean_wet": Pattern.RECLEAN_WET, QUARANTINED: Pattern.QUARANTINE}
RESTING = frozenset({Pattern.READY, Pattern.INSPECT, *READY_LOOKS.values()})


@dataclass
class _Awaited:
    """A connector whose verdict the station waits for."""

    attempt_id: int | None
    connector: str | None
    timer: Timer | None = None


class Inspection:
    """The inspection loop of each connector, on the controller loop."""

    def __init__(
        self,
        store: Store,
        loop: EventLoop,
        config: Callable[[], Config],
        publish: Callable[[Event], None],
        *,
        wall: Callable[[], float],
        pending_connector: Callable[[], str | None],
        panel: Panel,
        cleaning: Callable[[], bool],
        used_up: Callable[[], None],
    ) -> None:
        self._book = InspectionBook(store)
        self._panel = panel
        self._hint: str | None = None  # after a FAIL: what the connector in hand needs next
        self._loop = loop
        self._config = config
        self._publish = publish
        self._wall = wall
        self._pending_connector = pending_connector
        self._cleaning = cleaning  # a clean is under way (its connector is not "the next one")
        self._used_up = used_up  # the pending connector scan is done with
        self.awaited: _Awaited | None = None
        self._anon_modes: list[str] = []  # the modes of the cleans of the connector in hand (no code), its loop
        self._anon_failed = False  # mode first: the connector in hand failed its first inspection
        self._line_since: dict[bool, float] = {}  # GPIO: when each line (pass, fail) went active
        self._overlap = False  # both lines were active together since they were last both at rest
        self.last: str = "none"  # INSP:RES?: the last verdict, in one line

    @property
    def mode(self) -> str:
        return self._config().inspection.mode

    # ------------------------------------------------------------------ the panel
    def ready_look(self) -> Pattern:
        """What the panel shows while the station is ready: inspect now (a verdict awaited),
        clean again / clean again wet-to-dry (after a FAIL), reject (quarantined), else ready;
        the word stays until the next connector is taken up."""
        if self.awaited is not None:
            return Pattern.INSPECT
        if self._hint is not None:
            return READY_LOOKS.get(self._hint, Pattern.READY)
        return Pattern.READY

    def _show(self) -> None:
        """Change the look, only while the panel shows one of the ready looks (never over a
        clean, a result, a fault or maintenance)."""
        if self._panel.pattern in RESTING:
            self._panel.show(self.ready_look())

    # ------------------------------------------------------------------ the clean cycle's questions
    def refusal(self, connector: str | None, mode: Mode) -> Reason | None:
        """Why a connector presented now may not be cleaned (before anything is used)."""
        if self.mode == "off":
            return None
        if connector is not None and self._book.quarantined(connector):
            return Reason.QUARANTINED
        if self.awaited is not None:
            return Reason.INSPECT_FIRST
        if self.mode == "first" and not self._failed_first(connector):
            return Reason.INSPECT_FIRST
        step = self._next_step(connector)
        if step is None and connector is not None:
            return Reason.QUARANTINED  # its loop is used up with no PASS (its quarantine on record)
        if step == "wet" and mode is Mode.DRY:
            return Reason.NEEDS_WET
        if self._hint == QUARANTINED:
            self._hint = None  # the next connector is taken up: the reject is said
        return None

    def cleaned(self, attempt_id: int, connector: str | None, mode: str = "dry") -> None:
        """A clean ended cleaned: its verdict is awaited (with inspection on)."""
        if self.mode == "off":
            return
        self._hint = None
        if connector is None:
            self._anon_modes.append(mode)
            self._anon_failed = False
        timeout = self._config().inspection.verdict_timeout_s
        awaited = _Awaited(attempt_id, connector)
        awaited.timer = self._loop.call_later(timeout, lambda: self._no_verdict(awaited))
        self.awaited = awaited
        self._publish(InspectionDue(attempt_id, connector, timeout))

    # ------------------------------------------------------------------ verdicts
    def verdict(self, verdict: Verdict, detail: str, source: str) -> ServiceResult:
        """A verdict from an inspection system: what it applied to and what comes next."""
        if self.mode == "off":
            return ServiceResult(False, error="inspection is off ([inspection] mode = off)")
        if len(detail) > MAX_DETAIL:
            return ServiceResult(False, error=f"verdict detail too long ({len(detail)} bytes, at most {MAX_DETAIL})")
        awaited = self.awaited
        if awaited is None and self.mode == "first":
            if self._cleaning():  # the scan now pending is the connector being cleaned, not the next one
                return ServiceResult(False, error="a clean is under way: send the next connector's verdict when ready")
            awaited = _Awaited(None, self._pending_connector())  # inspected before any clean
        if awaited is None:
            return ServiceResult(False, error="no connector awaits inspection")
        return self._settle(awaited, verdict, detail, source)

    def _no_verdict(self, awaited: _Awaited) -> None:
        if self.awaited is awaited:
            self._settle(awaited, Verdict.NO_VERDICT, "", "station")

    def _settle(self, awaited: _Awaited, verdict: Verdict, detail: str, source: str) -> ServiceResult:
        t = self._wall()
        connector = awaited.connector
        quarantine: str | None = None
        if verdict is not Verdict.PASS and self._next_step(connector) is None:
            quarantine = f"{len(self._modes(connector))} cleans and no PASS"  # recorded with the verdict, at once
        if awaited.timer is not None:
            awaited.timer.cancel()
        if self.awaited is awaited:
            self.awaited = None
        if verdict is Verdict.PASS:
            nxt = RELEASED
            if connector is None:
                self._anon_modes, self._anon_failed = [], False
        else:
            if connector is None and awaited.attempt_id is None:
                self._anon_failed = True  # mode first: the connector in hand is to be cleaned
            step = self._next_step(connector)
            if step is None:
                nxt = QUARANTINED
                if connector is None:
                    self._anon_modes, self._anon_failed = [], False
            else:
                nxt = f"clean_{step}"
        self._book.record(t, verdict.value, attempt_id=awaited.attempt_id, connector=connector, detail=detail,
                          source=source, quarantine=quarantine)  # fmt: skip
        if awaited.attempt_id is None and nxt in (RELEASED, QUARANTINED):
            self._used_up()  # inspected first and done with: its scan names no later connector
        self._hint = nxt if nxt != RELEASED else None  # what the panel says until the next connector
        self._show()
        what = f"attempt #{awaited.attempt_id}" if awaited.attempt_id is not None else "the connector inspected first"
        on = f" connector {connector}" if connector else ""
        self.last = f"{verdict.value} {what}{on} ({source}): {NEXT_WORDS[nxt]}"
        self._publish(VerdictRecorded(awaited.attempt_id, connector, verdict, source, nxt))
        return ServiceResult(True, [f"{verdict.value} for {what}{on}: {NEXT_WORDS[nxt]}"])

    # ------------------------------------------------------------------ the GPIO lines
    def line(self, passed: bool, active: bool, t: float) -> None:
        """An edge on the PASS or FAIL line: a pulse held from `pulse_min_s` to `pulse_max_s`
        is one verdict (longer: a stuck line let go; both lines at once: neither counts, and
        the operator is told)."""
        if active:
            self._line_since[passed] = t
            if len(self._line_since) == 2:
                self._overlap = True  # neither pulse counts, until both lines are back at rest
                self._publish(WarningRaised("inspection_lines", "PASS and FAIL lines active together: ignored"))
            return
        since = self._line_since.pop(passed, None)
        overlap = self._overlap
        if not self._line_since:
            self._overlap = False
        rules = self._config().inspection
        if since is None or overlap or t - since < rules.pulse_min_s:
            return
        if t - since > rules.pulse_max_s:  # a line stuck, then let go (a repair, a loose wire): no verdict
            held = f"{'PASS' if passed else 'FAIL'} line held {t - since:.1f} s: ignored"
            self._publish(WarningRaised("inspection_lines", held))
            return
        result = self.verdict(Verdict.PASS if passed else Verdict.FAIL, "", "gpio")
        if not result.ok:
            self._publish(WarningRaised("inspection_verdict", f"verdict on the GPIO line ignored: {result.error}"))

    # ------------------------------------------------------------------ quarantine
    def release(self, connector: str, source: str) -> ServiceResult:
        if not self._book.release(connector, self._wall(), source=source):
            return ServiceResult(False, error=f"connector {connector} is not in quarantine")
        self._publish(QuarantineReleased(connector, source))
        return ServiceResult(True, [f"connector {connector} released from quarantine; its loop begins again"])

    def quarantined(self) -> list[str]:
        return [str(r["connector"]) for r in self._book.open_quarantine()]

    # ------------------------------------------------------------------ the loop's bookkeeping
    def _modes(self, connector: str | None) -> list[str]:
        return self._book.loop_modes(connector) if connector is not None else self._anon_modes

    def _next_step(self, connector: str | None) -> str | None:
        """The procedure of the connector's next clean in its loop (None: the loop is used up). A
        step is used by a clean of its procedure (a wet step only by a wet-to-dry clean: a clean
        switched to dry before its drop does not use it)."""
        steps = [s.strip() for s in self._config().inspection.reclean.split(",")]
        i = 0
        for mode in self._modes(connector):
            if i < len(steps) and (steps[i] == "dry" or mode == "wet"):
                i += 1
        return steps[i] if i < len(steps) else None

    def _failed_first(self, connector: str | None) -> bool:
        """Mode first: the connector's last verdict, since its last clean, is not a PASS."""
        if connector is None:
            return self._anon_failed or bool(self._anon_modes)
        last = self._book.last_verdict(connector)
        return last is not None and last != Verdict.PASS.value

    def recover(self) -> None:
        """At start: a clean whose verdict was awaited when the station stopped gets its
        no_verdict on record (it is not released; the loop goes on from the records)."""
        if self.mode == "off":
            return
        row = self._book.unsettled_clean()
        if row is not None:
            detail = "the station stopped while its verdict was awaited"
            self._book.record(self._wall(), Verdict.NO_VERDICT.value, attempt_id=int(row["id"]),
                              connector=row["connector"], detail=detail, source="station")  # fmt: skip


def detail_json(words: list[str]) -> str:
    """A verdict's optional findings, given as JSON (validated, kept compact); ValueError when not JSON."""
    if not words:
        return ""
    return json.dumps(json.loads(" ".join(words)), separators=(",", ":"), sort_keys=True)
