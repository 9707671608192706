"""Rule 9, traceability, from what physically happened at the bench: which codes the scanner
read, when, and which connector was seated after them (docs/design.md section 9).

The world's scanner reads a code at an instant; the lab's configured patterns say what the code
is (a badge, a cassette label, otherwise a connector). A connector code names the next
connector seated after it; a badge names the operator for `operator_timeout_s`. Held against
each attempt's record (the auditor's, read from the station's database):

- the connector recorded is the one the scanner read for that seating, and one reading names one
  presentation only (a code is never carried over to the next connector);
- a connector read for a seating is recorded with it (unless the station refused the clean for
  the other policy before anything was used, which keeps the code for the retry);
- with `require_connector_id`, nothing is used for a connector with no code read for it, and a
  connector with one is not refused as unscanned; likewise the badge with `require_operator`;
- the operator recorded is the badge read last, within its time.

A rejection consumed nothing: rule 8 (outcome.check_nothing_used) holds every refusal to that.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from station.config import Config
from station.domain import Reason

from .auditor import Auditor, Record

MAX_CODE_LEN = 128  # the longest code a label carries (docs/design.md section 9)
MARGIN_S = 1e-3  # a badge this close to its time limit is not judged
# refusals that keep a connector's scan for its retry (traceability and inspection)
POLICY = (
    Reason.SCAN_CONNECTOR,
    Reason.SCAN_BADGE,
    Reason.SCAN_CASSETTE,
    Reason.QUARANTINED,
    Reason.INSPECT_FIRST,
    Reason.NEEDS_WET,
)

Violate = Callable[[int, str], None]


@dataclass(frozen=True)
class Reading:
    """One code the scanner read: its text, when, and its place in the order of readings."""

    code: str
    t: float
    seq: int


class TraceTruth:
    """The scanner's readings as physics saw them, and rule 9 against the records."""

    def __init__(self) -> None:
        self.readings: list[Reading] = []
        self.connector: Reading | None = None  # the last connector code read
        self.badge: Reading | None = None  # the last badge read
        self.used: set[int] = set()  # connector readings a record has taken up
        self.auditor: Auditor | None = None  # the station's records, read-only (for inspect-first releases)

    def scanned(self, code: str, t: float, config: Config) -> str | None:
        """What the code read is (operator, cassette, connector; None: not a code at all)."""
        if not code or code != code.strip() or len(code) > MAX_CODE_LEN or not code.isprintable():
            return None  # not a code a label carries: a misread, the scanner's noise
        reading = Reading(code, t, len(self.readings))
        self.readings.append(reading)
        rules = config.traceability
        if re.fullmatch(rules.operator_pattern, code):
            self.badge = reading
            return "operator"
        if re.fullmatch(rules.cassette_pattern, code):
            return "cassette"
        self.connector = reading
        return "connector"

    def at_seating(self) -> tuple[Reading | None, Reading | None]:
        """What a connector seated now was scanned with: (the last connector code, the last badge).
        Whether an earlier attempt already took that code up is known once that attempt is held to
        its record (attempts are judged in the order they were seated)."""
        return self.connector, self.badge

    def _done_at_inspection(self, reading: Reading) -> bool:
        """Inspect first: the connector read was released (PASS) or quarantined at the probe,
        never seated, so its reading names no later connector (rule 10 holds that verdict to the
        probe's report)."""
        if self.auditor is None:
            return False
        rows = self.auditor.select(
            "SELECT 1 FROM inspections i WHERE i.attempt_id IS NULL AND i.connector = ? AND (i.verdict = 'pass'"
            " OR EXISTS (SELECT 1 FROM quarantine q WHERE q.connector = i.connector)) LIMIT 1",
            (reading.code,),
        )
        if rows:
            self.used.add(reading.seq)
        return bool(rows)

    def check(
        self,
        who: str,
        seated_at: float,
        scanned: tuple[Reading | None, Reading | None],
        records: list[Record],
        config: Config,
        violate: Violate,
    ) -> None:
        if len(records) != 1:
            return  # none or several: rule 8's to flag
        rec, (connector, badge) = records[0], scanned
        if connector is not None and connector.seq in self.used:
            connector = None  # an earlier presentation took it up
        rules = config.traceability
        policy = any(rec.reason == r.value or rec.reason.startswith(r.value + ":") for r in POLICY)
        used_something = rec.positions > 0 or rec.drops > 0 or rec.outcome == "cleaned"
        if rec.connector is not None:
            if connector is None or rec.connector != connector.code:
                read = f"the scanner read {connector.code!r} for it" if connector else "no code was read for it"
                violate(9, f"{who}: attempt #{rec.id} records connector {rec.connector!r}, but {read}")
            elif not policy:
                self.used.add(connector.seq)
        elif connector is not None and not policy and not self._done_at_inspection(connector):
            violate(9, f"{who}: the scanner read {connector.code!r} for it, attempt #{rec.id} records no connector")
        if rules.require_connector_id:
            if used_something and connector is None:
                violate(9, f"{who}: no connector code was read for it, yet attempt #{rec.id} used ribbon or fluid")
            if rec.reason == Reason.SCAN_CONNECTOR.value and connector is not None:
                violate(9, f"{who}: refused as unscanned (#{rec.id}), but the scanner read {connector.code!r} for it")
        valid_badge = badge if badge is not None and seated_at - badge.t <= rules.operator_timeout_s else None
        near_limit = badge is not None and abs(seated_at - badge.t - rules.operator_timeout_s) < MARGIN_S
        if rec.operator is not None and (valid_badge is None or rec.operator != valid_badge.code) and not near_limit:
            read = f"the badge read last was {badge.code!r}" if badge else "no badge was read"
            violate(9, f"{who}: attempt #{rec.id} records operator {rec.operator!r}, but {read} in its time")
        if valid_badge is not None and rec.operator is None and not near_limit:
            violate(9, f"{who}: badge {valid_badge.code!r} was on duty, attempt #{rec.id} records no operator")
        if rules.require_operator and not near_limit:
            if used_something and valid_badge is None:
                violate(9, f"{who}: no badge in its time, yet attempt #{rec.id} used ribbon or fluid")
            if rec.reason == Reason.SCAN_BADGE.value and valid_badge is not None:
                violate(9, f"{who}: refused for no badge (#{rec.id}), but {valid_badge.code!r} was on duty")
