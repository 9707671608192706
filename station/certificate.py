"""A cleaning certificate for one cable (docs/design.md section 9): every attempt recorded on
each of its ends, with the station that made them, as a printable HTML page a QA engineer files
or as JSON for a quality system.

Only what the records hold is stated. The ends listed are the ends this station has records
for (it cannot know how many ends a cable has); an end counts as cleaned when its *last*
attempt was, with its inspection verdict when one was recorded (JSON `"verdict"`: pass, fail,
no_verdict, or null: not inspected). Where inspection was used, an end counts as cleaned only
with a PASS after its last clean, and a quarantined connector is said to be one.
"""

from __future__ import annotations

import hashlib
import html
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from . import MAKER, MODEL, __version__
from .app import IDENTITY_SETTING
from .store import AttemptRecord, InspectionBook, Store

SCHEMA = 1
NO_END = "(no end given)"  # a connector code naming no end: the code is the cable
CASSETTE_TYPES = {"standard": "standard", "male_mt": "male MT"}


class NoAttempts(LookupError):
    """The database holds no attempt on this cable."""


@dataclass(frozen=True)
class End:
    name: str | None  # None: attempts whose connector code named no end
    attempts: tuple[AttemptRecord, ...]  # oldest first
    verdicts: tuple[tuple[int, str], ...] = ()  # (attempt id, its last inspection verdict)
    quarantined: bool = False  # one of its connector codes is in quarantine now

    @property
    def last(self) -> AttemptRecord:
        return self.attempts[-1]

    def verdict(self, attempt_id: int) -> str | None:
        return dict(self.verdicts).get(attempt_id)

    @property
    def cleaned(self) -> bool:
        """Its last attempt cleaned it, and where inspection was used, a PASS came after it."""
        if self.quarantined or self.last.outcome != "cleaned":
            return False
        return not self.verdicts or self.verdict(self.last.id) == "pass"

    @property
    def label(self) -> str:
        return NO_END if self.name is None else f"end {self.name}"

    @property
    def connectors(self) -> list[str]:
        return sorted({a.connector for a in self.attempts if a.connector})


@dataclass(frozen=True)
class Certificate:
    number: str
    issued_at: float
    cable: str
    serial_number: str
    firmware: str
    database: str
    ends: tuple[End, ...]
    identity_recorded: bool = True  # False: the station's identity comes from the configuration given

    @property
    def all_cleaned(self) -> bool:
        return all(end.cleaned for end in self.ends)

    @property
    def statement(self) -> str:
        """All ends cleaned, or which end needs cleaning."""
        if self.all_cleaned:
            listed = ", ".join(e.name or NO_END for e in self.ends)
            if len(self.ends) == 1:  # the station cannot know how many ends the cable has: it says what it saw
                return f"the one end on record cleaned ({listed.strip('()')})"
            return f"all ends on record cleaned ({listed})"
        dirty = [end for end in self.ends if not end.cleaned]
        quarantined = [end for end in dirty if end.quarantined]
        if quarantined:
            held = ", ".join(e.label for e in quarantined)
            return f"{held} quarantined: replace or repair the connector"
        if len(dirty) == 1:
            return f"{dirty[0].label} needs cleaning"
        names = [e.name or NO_END for e in dirty]
        return f"ends {', '.join(names[:-1])} and {names[-1]} need cleaning"


def build(store: Store, cable: str, *, serial_number: str, issued_at: float) -> Certificate:
    """Gather the certificate for `cable` from the records; NoAttempts when there are none. The
    station is the one that recorded them (its identity in the database); `serial_number` (the
    configuration's) only stands in for a database from before the station kept its identity."""
    firmware, recorded = __version__, False
    try:
        identity = json.loads(store.setting(IDENTITY_SETTING) or "null")
    except ValueError:
        identity = None
    if isinstance(identity, dict) and identity.get("serial_number"):
        serial_number, firmware, recorded = str(identity["serial_number"]), str(identity.get("firmware", "")), True
    attempts = store.attempts(cable=cable, newest_first=False)
    if not attempts:
        hint = ""
        if store.schema_version < 4:
            hint = f" (this database has schema {store.schema_version}, from before the station recorded cables)"
        raise NoAttempts(f"no attempts recorded for cable {cable}{hint}")
    by_end: dict[str | None, list[AttemptRecord]] = {}
    for a in attempts:
        by_end.setdefault(a.end, []).append(a)
    book = InspectionBook(store)

    def end(name: str | None, rows: list[AttemptRecord]) -> End:
        verdicts = tuple((a.id, v[-1]["verdict"]) for a in rows if (v := book.verdicts(attempt_id=a.id)))
        codes = {a.connector for a in rows if a.connector}
        quarantined = store.schema_version >= 6 and any(book.quarantined(code) for code in codes)
        return End(name, tuple(rows), verdicts, quarantined)

    ends = tuple(end(name, rows) for name, rows in sorted(by_end.items(), key=lambda kv: (kv[0] is None, kv[0] or "")))
    digest = hashlib.sha256(
        json.dumps([serial_number, cable, issued_at, [(a.id, a.outcome) for a in attempts]]).encode()
    ).hexdigest()
    number = f"{serial_number}-{datetime.fromtimestamp(issued_at, UTC):%Y%m%d}-{digest[:8].upper()}"
    return Certificate(number, issued_at, cable, serial_number, firmware, store.path, ends, recorded)


# ---------------------------------------------------------------------------- times


def iso(t: float | None) -> str | None:
    """ISO 8601 UTC, to the millisecond, as the records export writes it."""
    if t is None:
        return None
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def local(t: float | None) -> str | None:
    """This machine's local time, for people: `24 Nov 2026 14:05:03 CET`."""
    if t is None:
        return None
    return datetime.fromtimestamp(t, UTC).astimezone().strftime("%d %b %Y %H:%M:%S %Z")


# ---------------------------------------------------------------------------- JSON


def _attempt_json(a: AttemptRecord, end: End) -> dict[str, Any]:
    return {
        "id": a.id,
        "connector": a.connector,
        "started_at": iso(a.started_at),
        "started_local": local(a.started_at),
        "ended_at": iso(a.ended_at),
        "mode": a.mode,
        "result": a.outcome,  # null: still open (the station was cleaning as this was read)
        "reason": a.reason,
        "first_position": a.first_position,
        "positions": a.positions,
        "drops": a.drops,
        "cassette": None
        if a.cassette_id is None
        else {"id": a.cassette_id, "type": a.cassette_type, "label": a.cassette_label},
        "operator": a.operator,
        "verdict": end.verdict(a.id),  # the inspection's last verdict on it; null: not inspected
    }


def to_json(cert: Certificate) -> dict[str, Any]:
    return {
        "schema": SCHEMA,
        "kind": "cleaning_certificate",
        "certificate": cert.number,
        "issued_at": iso(cert.issued_at),
        "issued_local": local(cert.issued_at),
        "cable": cert.cable,
        "station": {"maker": MAKER, "model": MODEL, "serial_number": cert.serial_number, "firmware": cert.firmware},
        "database": cert.database,
        "all_cleaned": cert.all_cleaned,
        "statement": cert.statement,
        "ends": [
            {
                "end": end.name,
                "connectors": end.connectors,
                "final_result": end.last.outcome,
                "cleaned": end.cleaned,
                "last_attempt": end.last.id,
                "quarantined": end.quarantined,
                "attempts": [_attempt_json(a, end) for a in end.attempts],
            }
            for end in cert.ends
        ],
    }


def write_json(cert: Certificate) -> str:
    return json.dumps(to_json(cert), indent=1) + "\n"


# ---------------------------------------------------------------------------- HTML


def _e(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _result_text(a: AttemptRecord) -> str:
    return "open (not finished)" if a.outcome is None else a.outcome


_WAS = {"failed": "failed", "rejected": "was rejected", "interrupted": "was interrupted"}


def _ribbon(a: AttemptRecord) -> str:
    if not a.positions:
        return "none"
    if a.first_position is None:
        return str(a.positions)
    last = a.first_position + a.positions - 1
    return f"{a.positions} (pos. {a.first_position}&ndash;{last})"


def _cassette(a: AttemptRecord) -> str:
    if a.cassette_id is None:
        return '<span class="none">none</span>'
    kind = CASSETTE_TYPES.get(a.cassette_type or "", a.cassette_type or "")
    text = f"#{a.cassette_id} {_e(kind)}"
    if a.cassette_label:
        text += f'<br><span class="code">{_e(a.cassette_label)}</span>'
    return text


def _row(a: AttemptRecord, end: End) -> str:
    reason = f'<br><span class="reason">{_e(a.reason)}</span>' if a.reason else ""
    ended = f"<br>ended {_e(iso(a.ended_at))}" if a.ended_at is not None else ""
    operator = f'<span class="code">{_e(a.operator)}</span>' if a.operator else '<span class="none">not recorded</span>'
    return (
        f'<tr class="attempt result-{_e(a.outcome or "open")}">'
        f'<td class="num">{a.id}</td>'
        f'<td class="time"><time datetime="{_e(iso(a.started_at))}">{_e(iso(a.started_at))}</time>'
        f'<br><span class="local">{_e(local(a.started_at))}</span>{ended}</td>'
        f"<td>{_e(a.mode)}</td>"
        f'<td><span class="result">{_e(_result_text(a))}</span>{reason}</td>'
        f'<td class="num">{_ribbon(a)}</td>'
        f'<td class="num">{a.drops}</td>'
        f"<td>{_cassette(a)}</td>"
        f"<td>{operator}</td>"
        f'<td class="verdict">{_e(end.verdict(a.id) or "not inspected")}</td>'
        "</tr>"
    )


def _end_section(end: End) -> str:
    connectors = ", ".join(f'<span class="code">{_e(c)}</span>' for c in end.connectors)
    last = end.last
    if end.cleaned:
        final = f'<strong class="ok">cleaned</strong> (attempt {last.id}, {_e(iso(last.started_at))})'
    else:
        why = f": {_e(last.reason)}" if last.reason else ""
        final = (
            f'<strong class="bad">not cleaned</strong> &mdash; the last attempt ({last.id}) '
            f"{_WAS.get(last.outcome or '', 'is not finished')}{why}; clean this end again"
        )
    rows = "\n".join(_row(a, end) for a in end.attempts)
    title = "No end given" if end.name is None else f"End {_e(end.name)}"
    if connectors:
        title += f" &mdash; connector {connectors}"
    return f"""
<section class="end" data-end="{_e(end.name)}">
<h2>{title}</h2>
<p class="final">Final state: {final}</p>
<table class="attempts">
<thead><tr><th>Attempt</th><th>Time (UTC; local)</th><th>Mode</th><th>Result</th><th>Ribbon positions</th>
<th>Drops</th><th>Cassette</th><th>Operator</th><th>Inspection</th></tr></thead>
<tbody>
{rows}
</tbody>
</table>
</section>"""


CSS = """
@page { size: A4; margin: 16mm 14mm 18mm 14mm; }
* { box-sizing: border-box; }
body { font-family: "DejaVu Sans", "Helvetica Neue", Arial, sans-serif; font-size: 9.5pt; color: #111;
       max-width: 190mm; margin: 10mm auto; line-height: 1.35; }
header { display: flex; justify-content: space-between; align-items: flex-end;
         border-bottom: 2px solid #111; padding-bottom: 3mm; margin-bottom: 4mm; }
header .maker { font-size: 9pt; color: #444; }
h1 { font-size: 17pt; margin: 0; letter-spacing: 0.02em; }
h2 { font-size: 11.5pt; margin: 6mm 0 1.5mm 0; }
.number { text-align: right; font-size: 9pt; }
.number strong { font-family: "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size: 10pt; }
table { border-collapse: collapse; width: 100%; }
table.facts th { text-align: left; width: 34mm; font-weight: normal; color: #444; padding: 0.8mm 2mm 0.8mm 0; }
table.facts td { padding: 0.8mm 0; }
table.attempts { font-size: 8.5pt; margin-top: 1mm; }
table.attempts th, table.attempts td { border: 0.3mm solid #999; padding: 1mm 1.5mm; vertical-align: top; }
table.attempts th { background: #eee; text-align: left; font-weight: 600; }
thead { display: table-header-group; }
tr { page-break-inside: avoid; break-inside: avoid; }
td.num { text-align: right; white-space: nowrap; }
td.time { white-space: nowrap; }
.local, .reason, .none { color: #555; }
.code { font-family: "DejaVu Sans Mono", Menlo, Consolas, monospace; }
.statement { border: 0.6mm solid #111; padding: 2.5mm 4mm; margin: 4mm 0; font-size: 11pt; }
.statement.bad { border-style: dashed; }
.ok { color: #0a5c1f; }
.bad { color: #9b1111; }
.final { margin: 0 0 1mm 0; }
.verdict { color: #555; font-style: italic; }
.note { font-size: 8.5pt; color: #444; }
.approval { margin-top: 10mm; page-break-inside: avoid; break-inside: avoid; }
.approval table td { width: 33%; padding: 9mm 4mm 0 0; vertical-align: bottom; }
.approval .line { border-top: 0.3mm solid #111; padding-top: 1mm; font-size: 8.5pt; color: #444; }
footer { margin-top: 8mm; border-top: 0.3mm solid #999; padding-top: 2mm; font-size: 7.5pt; color: #555; }
@media print {
  body { margin: 0; max-width: none; }
  .ok, .bad { color: #000; }
  section.end { page-break-inside: auto; }
  h2 { page-break-after: avoid; break-after: avoid; }
}
"""


def write_html(cert: Certificate) -> str:
    """The certificate as one self-contained page: inline styles, no scripts, nothing fetched."""
    n = sum(len(end.attempts) for end in cert.ends)
    ends = ", ".join(_e(end.name or NO_END) for end in cert.ends)
    statement_class = "ok" if cert.all_cleaned else "bad"
    unrecorded = "" if cert.identity_recorded else " (as configured here: this database does not record its station)"
    operators = sorted({a.operator for end in cert.ends for a in end.attempts if a.operator})
    cleaned_by = ", ".join(f'<span class="code">{_e(o)}</span>' for o in operators) or "not recorded"
    sections = "\n".join(_end_section(end) for end in cert.ends)
    statement = f'<strong class="{statement_class}">{_e(cert.statement[0].upper() + cert.statement[1:])}</strong>'
    if not cert.all_cleaned:
        statement += " &mdash; this cable is not ready for use"
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Cleaning certificate {_e(cert.number)} &mdash; cable {_e(cert.cable)}</title>
<style>{CSS}</style>
</head>
<body>
<header>
<div><div class="maker">{_e(MAKER)} &middot; {_e(MODEL)} MPO/MTP connector cleaning station</div>
<h1>Cleaning certificate</h1></div>
<div class="number">Certificate no.<br><strong id="certificate-number">{_e(cert.number)}</strong></div>
</header>

<table class="facts">
<tr><th>Cable</th><td><strong class="code" id="cable">{_e(cert.cable)}</strong></td></tr>
<tr><th>Ends on record</th><td>{ends}</td></tr>
<tr><th>Issued</th><td><time datetime="{_e(iso(cert.issued_at))}">{_e(iso(cert.issued_at))}</time>
 ({_e(local(cert.issued_at))})</td></tr>
<tr><th>Station</th><td>{_e(MAKER)} {_e(MODEL)}, serial number
 <span class="code" id="serial-number">{_e(cert.serial_number)}</span></td></tr>
<tr><th>Firmware</th><td id="firmware">{_e(cert.firmware)}</td></tr>
<tr><th>Attempts</th><td>{n} recorded</td></tr>
<tr><th>Operators</th><td>{cleaned_by}</td></tr>
</table>

<div class="statement {statement_class}" id="statement">Result: {statement}.</div>
<p class="note">Each end's final state is the result of its last attempt. The ends listed are those
this station has records for. Where inspection was used, an end is cleaned only with a PASS after its
last clean (the Inspection column: the last verdict on each attempt).</p>
{sections}

<div class="approval">
<h2>Approval</h2>
<table><tr>
<td><div class="line">Reviewed by (name)</div></td>
<td><div class="line">Signature</div></td>
<td><div class="line">Date</div></td>
</tr></table>
</div>

<footer>Generated by <span class="code">station certificate</span> (firmware {_e(__version__)}) from the
records of station {_e(cert.serial_number)}{unrecorded} in <span class="code">{_e(cert.database)}</span>,
read-only, at {_e(iso(cert.issued_at))}. Times are UTC (ISO 8601), with this machine's local time
beside them. Results and reasons are as the station recorded them.</footer>
</body>
</html>
"""
