"""Exporting the clean records, the cassette history and the audit (maintenance, access,
faults) for QA: CSV (opens in any spreadsheet) and JSON."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TextIO

from .domain import Outcome
from .store import AttemptRecord, Store

FIELDS = [f.name for f in dataclasses.fields(AttemptRecord)]
OUTCOMES = tuple(o.value for o in Outcome)
# the cassette history: one row per cassette ever declared, oldest first
# (`label`, the code on a labelled cassette, came with traceability: last, so the columns a
# spreadsheet already reads keep their places, as the attempts' traceability fields do)
CASSETTE_FIELDS = [
    "id",
    "type",
    "state",
    "capacity",
    "used",
    "remaining",
    "fits",
    "declared_at",
    "retired_at",
    "note",
    "label",
]
# the audit: who did what, from where (source: `console:<port>`, `panel`, `station` ...), oldest first
AUDIT_FIELDS = ["id", "time", "kind", "action", "source", "detail"]


def parse_time(text: str) -> float:
    """ISO 8601 date or date-time; without a zone it is taken as UTC."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a date or date-time; use e.g. 2026-11-24 or 2026-11-24T13:05") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.timestamp()


def iso(t: float | None) -> str:
    if t is None:
        return ""
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def attempt_row(record: AttemptRecord) -> dict[str, object]:
    """One attempt as the JSON export writes it (times in ISO 8601 UTC); also the fleet's payload."""
    row = dataclasses.asdict(record)
    row["started_at"] = iso(record.started_at)
    row["ended_at"] = iso(record.ended_at)
    return row


def write_csv(records: Iterable[AttemptRecord], out: TextIO) -> int:
    writer = csv.DictWriter(out, fieldnames=FIELDS, lineterminator="\r\n")
    writer.writeheader()
    n = 0
    for record in records:
        writer.writerow({k: ("" if v is None else v) for k, v in attempt_row(record).items()})
        n += 1
    return n


def write_json(records: Iterable[AttemptRecord], out: TextIO) -> int:
    rows = [attempt_row(r) for r in records]
    json.dump(rows, out, indent=1)
    out.write("\n")
    return len(rows)


def cassette_rows(store: Store) -> list[dict[str, object]]:
    """Every cassette ever declared: positions used and left, times fitted, when declared new
    and retired (ISO 8601 UTC; retired_at empty while it is the current one of its type), and
    its label when it carries one (None: unlabelled, or a database from before labels)."""
    return [
        {
            "id": c["id"],
            "type": c["type"],
            "state": "retired" if c["retired_at"] is not None else "current",
            "capacity": c["capacity"],
            "used": c["used"],
            "remaining": max(0, c["capacity"] - c["used"]),
            "fits": c["fits"],
            "declared_at": iso(c["declared_at"]),
            "retired_at": iso(c["retired_at"]),
            "note": c["note"],
            "label": c["label"],
        }
        for c in store.cassettes()
    ]


def write_rows_csv(rows: Iterable[dict[str, object]], fields: list[str], out: TextIO) -> int:
    writer = csv.DictWriter(out, fieldnames=fields, lineterminator="\r\n")
    writer.writeheader()
    n = 0
    for row in rows:
        writer.writerow(row)
        n += 1
    return n


def write_rows_json(rows: Iterable[dict[str, object]], out: TextIO) -> int:
    listed = list(rows)
    json.dump(listed, out, indent=1)
    out.write("\n")
    return len(listed)


def audit_rows(store: Store, *, since: float | None = None, until: float | None = None) -> list[dict[str, object]]:
    """The audit entries made at or after `since` and before `until`, oldest first (time in
    ISO 8601 UTC; detail as stored: text, or JSON text for structured details)."""
    return [
        {
            "id": r["id"],
            "time": iso(r["t"]),
            "kind": r["kind"],
            "action": r["action"],
            "source": r["source"],
            "detail": r["detail"],
        }
        for r in store.audit_entries(since=since, until=until)
    ]


def export(
    store: Store,
    fmt: str,
    out: TextIO,
    *,
    cassettes: bool = False,
    audit: bool = False,
    since: float | None = None,
    until: float | None = None,
    outcome: str | None = None,
    connector: str | None = None,
    cable: str | None = None,
    operator: str | None = None,
) -> int:
    """Write the clean records (oldest first, optionally chosen by start time, outcome,
    connector, cable and operator, all of them together), the cassette history, or the audit
    (chosen by time), as CSV or JSON; returns how many rows."""
    if cassettes:
        rows = cassette_rows(store)
        return write_rows_csv(rows, CASSETTE_FIELDS, out) if fmt == "csv" else write_rows_json(rows, out)
    if audit:
        rows = audit_rows(store, since=since, until=until)
        return write_rows_csv(rows, AUDIT_FIELDS, out) if fmt == "csv" else write_rows_json(rows, out)
    recs = store.attempts(
        since=since,
        until=until,
        outcome=outcome,
        connector=connector,
        cable=cable,
        operator=operator,
        newest_first=False,
    )
    return write_csv(recs, out) if fmt == "csv" else write_json(recs, out)


def read_csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def summary(store: Store, positions_per_clean: int) -> str:
    counts = store.summary()
    lines = [
        "clean attempts: "
        + ", ".join(f"{o} {counts.get(o, 0)}" for o in OUTCOMES)
        + (f", open {counts['open']}" if counts.get("open") else "")
    ]
    retired = 0
    for c in store.cassettes():
        if c["retired_at"] is not None:  # years of them: the export lists them, not the summary
            retired += 1
            continue
        left = max(0, c["capacity"] - c["used"])
        lines.append(
            f"cassette #{c['id']} {c['type']} (current): {left} of {c['capacity']} positions left "
            f"({left // positions_per_clean} cleans), fitted {c['fits']} time{'s' if c['fits'] != 1 else ''}"
        )
    if retired:
        lines.append(f"retired cassettes: {retired} (every cassette: station records --cassettes --format csv|json)")
    used, capacity = store.fluid()
    lines.append(f"fluid: {max(0, capacity - used)} of {capacity} drops left since the last refill")
    return "\n".join(lines)
