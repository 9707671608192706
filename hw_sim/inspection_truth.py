"""Rule 10, inspection (docs/design.md sections 3 and 10), from what the probe physically reported
and what the ribbon physically did to each end face, held against the station's inspection
records (read by the outside auditor, read-only; never the station's announcements):

- the recorded verdict is the probe's: each verdict the station recorded from the probe's
  adapters (its console port, `console:probe`, or the GPIO lines, `gpio`) is a report the
  world delivered on that adapter, in order, with the same verdict, for the connector the probe
  inspected (when both codes are known). A delivery the station refused (nothing awaited)
  leaves no record; a record with no delivery at or before it is a verdict nobody gave. A
  `no_verdict` is the station's own (no report in time); a verdict typed by a person on another
  console port is that person's word, not judged here (as the console's cassette declarations);
- no connector released without a PASS from an inspection after its last clean: the face the
  probe passed was not touched by the ribbon between that inspection and the PASS recorded;
- a quarantined connector is never released: between a quarantine record for connector X and
  its release, no attempt on X ends cleaned or failed (the ribbon was used on it) and no PASS is
  recorded for X.

The judge calls `check` as the panel shows ready and at the end; each check reads only the rows
written since the last one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .probe_port import GPIO_SOURCE, PROBE_PORT, Delivery

if TYPE_CHECKING:
    from .auditor import Auditor
    from .judge import Judge

RULE = 10
PROBE_SOURCES = (f"console:{PROBE_PORT}", GPIO_SOURCE)
EPS_S = 1e-3  # a record's wall time against virtual time (float rounding of the epoch)


class InspectionTruth:
    """Rule 10 for one judge. `wall_start`: the wall time virtual time zero stands for (the bench's)."""

    def __init__(self, judge: Judge) -> None:
        self.j = judge
        self.wall_start = 0.0
        self.seen_inspection: int | None = None  # rows up to these ids are judged
        self.seen_attempt: int | None = None
        self.next_delivery: dict[str, int] = {}  # per source: the first delivery no record took up
        self.checks = 0  # checks that read the books (for tests: the check did run)

    def attach(self, auditor: Auditor | None, wall_start: float) -> None:
        """The rows already written (an earlier life of the station) are not this bench's to judge;
        `wall_start`: the wall time the bench's virtual time zero stands for."""
        self.wall_start = wall_start
        if auditor is None:
            return
        rows = auditor.select("SELECT coalesce(max(id), 0) FROM inspections")
        self.seen_inspection = int(rows[0][0]) if rows else None
        rows = auditor.select("SELECT coalesce(max(id), 0) FROM attempts")
        self.seen_attempt = int(rows[0][0]) if rows else None

    def check(self) -> None:
        a = self.j.auditor
        if a is None or self.seen_inspection is None or self.seen_attempt is None:
            return
        rows = a.select(
            "SELECT id, t, attempt_id, connector, verdict, source FROM inspections WHERE id > ? ORDER BY id",
            (self.seen_inspection,),
        )
        attempts = a.select(
            "SELECT id, started_at, connector, outcome FROM attempts WHERE id > ? ORDER BY id", (self.seen_attempt,)
        )
        if rows is None or attempts is None:
            return
        self.checks += 1
        for row_id, t, _attempt, connector, verdict, source in rows:
            self.seen_inspection = row_id
            what = f"inspection record #{row_id} ({verdict} from {source}" + (
                f", connector {connector})" if connector else ")"
            )
            if source in PROBE_SOURCES:
                self._the_probes(what, t - self.wall_start, verdict, connector, source)
            if verdict == "pass" and connector is not None and self._quarantined(a, connector, t):
                self.j.violate(RULE, f"{what}: a PASS recorded for connector {connector} while it is quarantined")
        for attempt, started_at, connector, outcome in attempts:
            if outcome is None:
                break  # still open: judged once it has ended
            self.seen_attempt = attempt
            if (
                outcome in ("cleaned", "failed")
                and connector is not None
                and self._quarantined(a, connector, started_at)
            ):
                self.j.violate(
                    RULE, f"attempt #{attempt} on connector {connector} ended {outcome} while it is quarantined"
                )

    def _the_probes(self, what: str, tr: float, verdict: str, connector: str | None, source: str) -> None:
        """The record against the reports the world delivered on its adapter."""
        delivered = [d for d in self.j.w.probe_port.delivered if d.source == source]
        first = self.next_delivery.get(source, 0)
        before = [k for k in range(first, len(delivered)) if delivered[k].t <= tr + EPS_S]
        if not before:
            self.j.violate(RULE, f"{what}: the probe delivered no report on {source} that it could come from")
            return
        k = before[-1]  # the earlier ones the station refused: nothing awaited them
        self.next_delivery[source] = k + 1
        d = delivered[k]
        rules = self.j.config().inspection
        if d.held_s is not None and not rules.pulse_min_s - EPS_S <= d.held_s <= rules.pulse_max_s + EPS_S:
            self.j.violate(
                RULE,
                f"{what}: the last pulse on the {d.verdict.upper()} line was held {d.held_s:.3f} s, "
                f"not a verdict ({rules.pulse_min_s:g} to {rules.pulse_max_s:g} s)",
            )
        if verdict != d.verdict:
            self.j.violate(RULE, f"{what}: the probe reported {d.verdict.upper()} ({self._when(d)})")
        elif connector is not None and d.code is not None and connector != d.code:
            self.j.violate(RULE, f"{what}: the probe inspected connector {d.code} ({self._when(d)})")
        if verdict == "pass" and d.face is not None:
            stroked = self.j.w.faces.last_stroke(d.face)
            if stroked is not None and d.inspected_at < stroked <= tr + EPS_S:
                self.j.violate(
                    RULE,
                    f"{what}: released, but the ribbon touched the face at {stroked:.3f} s, after the "
                    f"inspection that passed it ({self._when(d)})",
                )

    @staticmethod
    def _when(d: Delivery) -> str:
        return f"inspected at {d.inspected_at:.3f} s, reported at {d.t:.3f} s"

    @staticmethod
    def _quarantined(a: Auditor, connector: str, t: float) -> bool:
        """Was `connector` in quarantine at wall time `t` (quarantined at or before it, released after or never)?"""
        rows = a.select(
            "SELECT 1 FROM quarantine WHERE connector = ? AND t <= ?"
            " AND (released_at IS NULL OR released_at > ?) LIMIT 1",
            (connector, t, t),
        )
        return bool(rows)
