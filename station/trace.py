"""Traceability (docs/design.md section 9): what a scanned code is, and who and what the next
clean is tied to.

A code comes from a barcode scanner (station.scanner, on its own thread, posted to the loop),
from the console's `scan`, or in the simulator from the bench. It is checked (empty, too long,
control characters: refused with an error beep, nothing changes) and classified by the
configured patterns, each matched against the whole code: an operator badge, a cassette label,
otherwise a connector (cable and end when the connector pattern names them).

- A badge makes its holder the operator for `operator_timeout_s`.
- A connector code names the next connector presented; one presentation uses it up (whatever
  its outcome), so a code is never carried over to the next connector by mistake. A clean the
  policy refuses (no scan, no badge) leaves both as they were: scan, then present again.
- A cassette label identifies the cassette in the cradle: a label seen before brings back that
  cassette's own count (it must be of the type fitted). An unseen label on the cassette the
  station has been counting (unlabelled, in the cradle since) labels it, keeping its count; an
  unseen label on any other cassette (after a labelled one) declares a new cassette.

Policies (`require_connector_id`, `require_operator`) are off by default: a station without a
scanner behaves as before. Runs on the controller loop; every scan accepted or refused is
announced and audited.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from .config import Config, TraceabilityConfig
from .consumables import Consumables
from .domain import Reason
from .events import CassetteDeclared, CodeScanned, Event, ScanRefused, WarningRaised
from .loop import EventLoop
from .ports import Hardware, Sensor
from .store import Identity, Store

log = logging.getLogger(__name__)

# refusals that keep the scan: the same connector comes back (after its badge, its cassette's
# label, its inspection, the mode switch set to wet)
POLICY = (
    Reason.SCAN_BADGE,
    Reason.SCAN_CONNECTOR,
    Reason.SCAN_CASSETTE,
    Reason.QUARANTINED,
    Reason.INSPECT_FIRST,
    Reason.NEEDS_WET,
)
MAX_CODE_LEN = 128  # longer than any serial, label or badge a line prints; a runaway scanner is refused


class CodeKind(str, Enum):
    OPERATOR = "operator"
    CASSETTE = "cassette"
    CONNECTOR = "connector"


@dataclass(frozen=True)
class Code:
    """A usable code and what it names."""

    kind: CodeKind
    text: str
    cable: str | None = None
    end: str | None = None


def code_problem(text: str) -> str | None:
    """Why a code cannot be used (None when it can): what the operator is told."""
    if not text.strip():
        return "empty code"
    if len(text) > MAX_CODE_LEN:
        return f"code too long ({len(text)} characters, at most {MAX_CODE_LEN})"
    if any(unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn") for ch in text):
        return "control characters in the code"
    if text != text.strip():
        return "spaces around the code"
    return None


def classify(text: str, rules: TraceabilityConfig) -> Code:
    """What a usable code names, by the configured patterns (each matched against the whole code)."""
    if re.fullmatch(rules.operator_pattern, text):
        return Code(CodeKind.OPERATOR, text)
    if re.fullmatch(rules.cassette_pattern, text):
        return Code(CodeKind.CASSETTE, text)
    m = re.fullmatch(rules.connector_pattern, text)
    if m is None:
        return Code(CodeKind.CONNECTOR, text, text)  # a connector with no end: the code names its cable
    groups = m.groupdict()
    return Code(CodeKind.CONNECTOR, text, groups.get("cable") or text, groups.get("end") or None)


@dataclass(frozen=True)
class ScanResult:
    ok: bool
    text: str  # what the person is told
    conflict: bool = False  # refused for the station's state (a clean under way), not for the code


class Traceability:
    """The operator on duty, the connector scanned for the next clean, the cassette's label."""

    def __init__(
        self,
        store: Store,
        hardware: Hardware,
        consumables: Consumables,
        loop: EventLoop,
        config: Callable[[], Config],
        publish: Callable[[Event], None],
        *,
        wall: Callable[[], float],
        busy: Callable[[], str | None],
    ) -> None:
        self._store = store
        self._sensors = hardware.sensors
        self._beep = hardware.panel.chirp
        self._cassette_type = consumables.cassette_type
        self._config = config
        self._publish = publish
        self.wall = wall  # the station's wall clock (records are stamped with it)
        self._now = loop.now
        self._busy = busy
        self._connector: Code | None = None
        self._taken: Code | None = None  # the scan the clean now under way was tied to
        self._operator: str | None = None
        self._operator_at = float("-inf")

    # ------------------------------------------------------------------ input
    def scan(self, text: str, source: str) -> ScanResult:
        """A code arrived (on the loop). A cassette label counts only while no clean is under way."""
        problem = code_problem(text)
        if problem is not None:
            return self._refuse(text, problem, source)
        code = classify(text, self._config().traceability)
        if code.kind is CodeKind.CASSETTE:
            if self._busy() is not None:
                refused = self._refuse(text, "a clean is under way: scan the cassette label when ready", source)
                return ScanResult(False, refused.text, conflict=True)
            refusal = self._cassette_label(code.text, source)
            if refusal is not None:
                return self._refuse(text, refusal, source)
        elif code.kind is CodeKind.OPERATOR:
            self._operator, self._operator_at = code.text, self._now()
        else:
            self._connector = code
        self._store.audit("scan", code.kind.value, self.wall(), detail=code.text, source=source)
        self._publish(CodeScanned(code.kind.value, code.text, source, code.cable, code.end))
        self._beep(True)
        return ScanResult(True, self._accepted(code, busy=self._busy() is not None))

    def scanned(self, text: str, source: str) -> None:
        """A scanner's code (the operator hears the answer: the beep, and sees it on `watch`)."""
        self.scan(text, source)

    def scanner_problem(self, text: str) -> None:
        """The scanner dropped a code or was unplugged (or is back): the operator hears it."""
        log.warning("scanner: %s", text)
        self._publish(WarningRaised("scanner", text))

    def _refuse(self, text: str, reason: str, source: str) -> ScanResult:
        shown = text if len(text) <= 40 else text[:40] + "..."
        self._publish(ScanRefused(shown, reason, source))
        self._beep(False)
        return ScanResult(False, f"scan refused: {reason}")

    def _accepted(self, code: Code, *, busy: bool) -> str:
        if code.kind is CodeKind.OPERATOR:
            return f"operator {code.text}"
        if code.kind is CodeKind.CASSETTE:
            cassette = self._store.cassette_by_label(code.text)
            left = f": {cassette.remaining} positions left" if cassette is not None else ""
            return f"cassette {code.text}{left}"
        end = f", end {code.end}" if code.end else ""
        when = "for the next connector, once this clean is over" if busy else "present it now"
        return f"connector {code.text} (cable {code.cable}{end}): {when}"

    # ------------------------------------------------------------------ the next clean
    def operator(self) -> str | None:
        """The operator on duty (None once the badge is older than operator_timeout_s)."""
        if self._now() - self._operator_at > self._config().traceability.operator_timeout_s:
            return None
        return self._operator

    def take(self) -> Identity:
        """A clean starts: who and what it is tied to (its scan is used up when it ends: `settled`)."""
        self._taken = self._connector
        return self.identity()

    def identity(self) -> Identity:
        """Who and what a clean starting now would be tied to."""
        c = self._connector
        if c is None:
            return Identity(operator=self.operator())
        return Identity(connector=c.text, cable=c.cable, end=c.end, operator=self.operator())

    def cassette_label(self) -> str | None:
        """The label of the cassette in the cradle, once identified (None: unlabelled or unknown)."""
        if not self._sensors.read(Sensor.CASSETTE) or self.cassette_unidentified():
            return None
        current = self._store.cassette(self._cassette_type())
        return current.label if current is not None else None

    def cassette_unidentified(self) -> bool:
        """A labelled cassette of the fitted type was in use and a cassette was fitted since:
        only its label can tell which one it is (the books record no fit until it is scanned)."""
        if not self._sensors.read(Sensor.CASSETTE):
            return False
        current = self._store.cassette(self._cassette_type())
        return current is not None and current.label is not None and self._store.fitted_cassette_id() != current.id

    def refusal(self) -> Reason | None:
        """The policy's refusal of the clean now starting (before anything is consumed)."""
        if self.cassette_unidentified():
            return Reason.SCAN_CASSETTE
        rules = self._config().traceability
        if rules.require_operator and self.operator() is None:
            return Reason.SCAN_BADGE
        if rules.require_connector_id and self._connector is None:
            return Reason.SCAN_CONNECTOR
        return None

    def drop_pending(self) -> None:
        """The connector scanned is done with without a clean (released or quarantined at its
        first inspection): its scan names no later connector."""
        self._connector = None

    def settled(self, reason: Reason | None) -> None:
        """The clean under way ended: the scan it was tied to is used up (a scan names one
        presentation), unless the policy refused the clean; a scan made since stays for the next."""
        taken, self._taken = self._taken, None
        if reason not in POLICY and taken is not None and self._connector is taken:
            self._connector = None

    # ------------------------------------------------------------------ cassettes
    def _cassette_label(self, label: str, source: str) -> str | None:
        """The cassette in the cradle carries `label`: its own count, or a new cassette."""
        if not self._sensors.read(Sensor.CASSETTE):
            return "no cassette fitted: fit the cassette, then scan its label"
        fitted = self._cassette_type()
        known = self._store.cassette_by_label(label)
        t = self.wall()
        if known is not None:
            if known.type is not fitted:
                return f"cassette {label} is a {known.type.value} cassette; the fitted one reads {fitted.value}"
            if self._store.fitted_cassette_id() != known.id:
                self._store.resume_cassette(known, t, source=source)
            return None
        current = self._store.cassette(fitted)
        if current is not None and current.label is None and self._store.fitted_cassette_id() == current.id:
            # the cassette the station has been counting, labelled now: it keeps its count (labels
            # added to cassettes already in use); only a cassette known by another label is new
            self._store.label_cassette(current, label, t, source=source)
            return None
        capacity = self._config().cassette.capacity_positions
        cassette = self._store.new_cassette(fitted, capacity, t, note="labelled", source=source, label=label)
        self._publish(CassetteDeclared(cassette.id, cassette.type, cassette.capacity, source))
        return None
