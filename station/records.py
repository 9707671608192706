"""Exporting the clean records for QA: CSV (opens in any spreadsheet) and JSON."""

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


def _row(record: AttemptRecord) -> dict[str, object]:
    row = dataclasses.asdict(record)
    row["started_at"] = iso(record.started_at)
    row["ended_at"] = iso(record.ended_at)
    return row


def write_csv(records: Iterable[AttemptRecord], out: TextIO) -> int:
    writer = csv.DictWriter(out, fieldnames=FIELDS, lineterminator="\r\n")
    writer.writeheader()
    n = 0
    for record in records:
        writer.writerow({k: ("" if v is None else v) for k, v in _row(record).items()})
        n += 1
    return n


def write_json(records: Iterable[AttemptRecord], out: TextIO) -> int:
    rows = [_row(r) for r in records]
    json.dump(rows, out, indent=1)
    out.write("\n")
    return len(rows)


def read_csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def summary(store: Store, positions_per_clean: int) -> str:
    counts = store.summary()
    lines = [
        "clean attempts: "
        + ", ".join(f"{o} {counts.get(o, 0)}" for o in OUTCOMES)
        + (f", open {counts['open']}" if counts.get("open") else "")
    ]
    for c in store.cassettes():
        state = "retired" if c["retired_at"] else "current"
        left = max(0, c["capacity"] - c["used"])
        lines.append(
            f"cassette #{c['id']} {c['type']} ({state}): {left} of {c['capacity']} positions left "
            f"({left // positions_per_clean} cleans), fitted {c['fits']} time{'s' if c['fits'] != 1 else ''}"
        )
    used, capacity = store.fluid()
    lines.append(f"fluid: {max(0, capacity - used)} of {capacity} drops left since the last refill")
    return "\n".join(lines)
