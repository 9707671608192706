"""`station certificate CABLE` (issue 13, docs/design.md section 9): the cleaning certificate a QA
engineer files for one cable.

Databases are real SQLite files written through the Store as the controller writes them; the
command runs as a real subprocess; the HTML is read back with the standard library's parser.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

import station
from hw_sim.bench import SIM_EPOCH
from station.app import DB_NAME
from station.domain import CassetteType, Mode, Outcome, Verdict
from station.store import Identity, Store

REPO = Path(__file__).resolve().parent.parent
RELEASE_3_DB = Path(__file__).parent / "data" / "station-schema3.db"
ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")

# scanner codes are whatever a label says: markup characters and quotes must come out as text
CABLE = 'CBL-<9>&"x"\'y'
OTHER = CABLE + "0"  # another cable whose name starts like this one's
CASSETTE_LABEL = 'CAS-<b>1</b>&"q"'
SERIAL = "QA-<77>"
A = Identity(CABLE + "-A", CABLE, "A", "OP-7")
B = Identity(CABLE + "-B", CABLE, "B", "OP-<8>")
# (identity, outcome, reason, seconds after SIM_EPOCH): the ends interleaved, as on a bench
PLAN = [
    (A, Outcome.FAILED, "connector reversed", 0),
    (B, Outcome.CLEANED, "", 60),
    (Identity(OTHER + "-A", OTHER, "A", "OP-7"), Outcome.CLEANED, "", 90),
    (None, Outcome.CLEANED, "", 100),  # no scan: tied to nothing
    (A, Outcome.CLEANED, "", 120),
    (B, Outcome.FAILED, "too fast: swipe slower", 180),  # B's last attempt: B needs cleaning
    (Identity("CBL-0002-A", "CBL-0002", "A", None), Outcome.CLEANED, "", 240),
    (Identity("CBL-0002-B", "CBL-0002", "B", None), Outcome.REJECTED, "bent pin", 300),
    (Identity("CBL-0002-B", "CBL-0002", "B", "OP-7"), Outcome.CLEANED, "", 360),
    (Identity("LOOSE1", "LOOSE1", None, "OP-7"), Outcome.CLEANED, "", 420),  # a code naming no end
]


def station_cmd(*args: str, tz: str = "Asia/Kolkata") -> subprocess.CompletedProcess[str]:
    """The real command. Local time is India's (UTC+5:30, no daylight saving): known here."""
    env = {k: v for k, v in os.environ.items() if k not in ("STATE_DIRECTORY",)}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env["TZ"] = tz
    return subprocess.run(
        [sys.executable, "-m", "station", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=60
    )


@pytest.fixture
def state(tmp_path) -> Path:
    directory = tmp_path / "state"
    directory.mkdir()
    s = Store(directory / DB_NAME)
    standard = s.new_cassette(CassetteType.STANDARD, 60, SIM_EPOCH - 10, label=CASSETTE_LABEL)
    male = s.new_cassette(CassetteType.MALE_MT, 40, SIM_EPOCH - 5)  # unlabelled
    for who, outcome, reason, dt in PLAN:
        t = SIM_EPOCH + dt
        attempt = s.begin_attempt(t, Mode.WET if dt == 60 else Mode.DRY, who)
        if outcome is not Outcome.REJECTED:
            cassette = male if dt == 240 else standard
            s.reserve_positions(cassette, 3, t + 1, attempt_id=attempt, gender="female")
            s.record_drop(t + 2, attempt_id=attempt)
        s.finish_attempt(attempt, outcome, reason, t + 5)
    s.close()
    return directory


@pytest.fixture
def config(tmp_path) -> Path:
    path = tmp_path / "station.toml"
    path.write_text(f"[station]\nserial_number = {json.dumps(SERIAL)}\n", encoding="utf-8")
    return path


class Page(HTMLParser):
    """What a reader sees: the end sections with their table rows (cell texts), texts by id,
    every tag used and the style sheet."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.sections: dict[str, list[list[str]]] = {}
        self.headers: list[str] = []
        self.by_id: dict[str, str] = {}
        self.style = ""
        self.title = ""
        self._section: str | None = None
        self._row: list[str] | None = None
        self._cell: list[str] | None = None
        self._in_head_cell = False
        self._ids: list[tuple[str, str, list[str]]] = []
        self._where: list[str] = []
        self.feed(text)
        self.close()

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append((tag, a))
        if tag == "br":  # a line break reads as a space
            self.handle_data(" ")
        if tag in ("br", "meta"):
            return
        self._where.append(tag)
        if tag == "section":
            self._section = a.get("data-end") or ""
            self.sections[self._section] = []
        elif tag == "tr" and self._section is not None and "attempt" in (a.get("class") or ""):
            self._row = []
        elif tag == "td" and self._row is not None:
            self._cell = []
        elif tag == "th" and self._section is not None:
            self._in_head_cell = True
            self.headers.append("")
        if a.get("id"):
            self._ids.append((tag, a["id"], []))

    def handle_endtag(self, tag):
        if self._where and self._where[-1] == tag:
            self._where.pop()
        if tag == "section":
            self._section = None
        elif tag == "tr" and self._row is not None:
            self.sections[self._section].append(self._row)
            self._row = None
        elif tag == "td" and self._cell is not None:
            self._row.append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "th":
            self._in_head_cell = False
        if self._ids and self._ids[-1][0] == tag:
            _, name, parts = self._ids.pop()
            self.by_id[name] = " ".join("".join(parts).split())

    def handle_data(self, data):
        if self._where and self._where[-1] == "style":
            self.style += data
        if self._where and self._where[-1] == "title":
            self.title += data
        if self._cell is not None:
            self._cell.append(data)
        if self._in_head_cell:
            self.headers[-1] += data
        for _, _, parts in self._ids:
            parts.append(data)


def test_the_html_certificate_lists_every_attempt_by_end_oldest_first(state, config):
    done = station_cmd("certificate", CABLE, "--state-dir", str(state), "--config", str(config))
    assert done.returncode == 0, done.stderr
    page = Page(done.stdout)
    assert list(page.sections) == ["A", "B"]  # only this cable's ends: not OTHER's, not LOOSE1
    rows = {end: [(r[0], r[2], r[3]) for r in rows] for end, rows in page.sections.items()}
    assert rows == {
        "A": [("1", "dry", "failed connector reversed"), ("5", "dry", "cleaned")],
        "B": [("2", "wet", "cleaned"), ("6", "dry", "failed too fast: swipe slower")],
    }
    first = page.sections["A"][0]
    # time: ISO 8601 UTC, the local time (Asia/Kolkata here), when it ended
    assert first[1] == "2026-01-01T00:00:00.000Z 01 Jan 2026 05:30:00 IST ended 2026-01-01T00:00:05.000Z"
    assert first[4] == "3 (pos. 0–2)" and first[5] == "1"  # ribbon positions and drops
    assert first[6] == f"#1 standard {CASSETTE_LABEL}"  # the cassette: id, type, label
    assert first[7] == "OP-7"
    assert [r[7] for r in page.sections["B"]] == ["OP-<8>", "OP-<8>"]
    assert {r[8] for rows in page.sections.values() for r in rows} == {"not inspected"}
    assert page.headers[:9] == [
        "Attempt",
        "Time (UTC; local)",
        "Mode",
        "Result",
        "Ribbon positions",
        "Drops",
        "Cassette",
        "Operator",
        "Inspection",
    ]
    assert page.by_id["cable"] == CABLE
    assert page.by_id["serial-number"] == SERIAL
    assert page.by_id["firmware"] == station.__version__  # what *IDN? reports
    assert page.by_id["statement"] == "Result: End B needs cleaning — this cable is not ready for use."
    assert page.by_id["certificate-number"].startswith(SERIAL + "-")
    assert CABLE in page.title
    text = " ".join(re.sub(r"<[^>]+>", "", done.stdout).split())  # what a reader sees
    assert "Final state: cleaned (attempt 5, 2026-01-01T00:02:00.000Z)" in text
    assert "the last attempt (6) failed: too fast: swipe slower; clean this end again" in text
    assert "Reviewed by (name)" in text and "Signature" in text  # the approval line


def test_the_html_escapes_every_scanned_code(state, config):
    done = station_cmd("certificate", CABLE, "--state-dir", str(state), "--config", str(config))
    assert done.returncode == 0, done.stderr
    for raw in (CABLE, CASSETTE_LABEL, SERIAL, "OP-<8>"):
        assert raw not in done.stdout  # only escaped: the parser above read them back as text
    assert "<b>1</b>" not in done.stdout
    assert [t for t, _ in Page(done.stdout).tags].count("b") == 0


def test_the_html_is_a_self_contained_printable_page(state):
    done = station_cmd("certificate", CABLE, "--state-dir", str(state))
    assert done.returncode == 0, done.stderr
    page = Page(done.stdout)
    tags = [t for t, _ in page.tags]
    assert "script" not in tags and "link" not in tags and "img" not in tags and "iframe" not in tags
    assert not [a for _, a in page.tags if "src" in a or "href" in a or any(k.startswith("on") for k in a)]
    assert "url(" not in page.style and "@import" not in page.style
    assert "@media print" in page.style and re.search(r"@page\s*{[^}]*size:\s*A4", page.style)
    assert page.by_id["serial-number"] == "SIM-0001"  # the default configuration's serial number


def test_an_all_cleaned_cable_says_so_and_an_end_less_code_is_its_own_group(state):
    done = station_cmd("certificate", "CBL-0002", "--state-dir", str(state), "--format", "json")
    assert done.returncode == 0, done.stderr
    cert = json.loads(done.stdout)
    assert (cert["all_cleaned"], cert["statement"]) == (True, "all ends on record cleaned (A, B)")
    assert [(e["end"], [a["result"] for a in e["attempts"]]) for e in cert["ends"]] == [
        ("A", ["cleaned"]),
        ("B", ["rejected", "cleaned"]),  # B's last attempt cleaned it
    ]
    assert cert["ends"][0]["attempts"][0]["cassette"] == {"id": 2, "type": "male_mt", "label": None}
    assert cert["ends"][1]["attempts"][0]["cassette"] is None  # rejected before any ribbon was used
    assert cert["ends"][0]["attempts"][0]["operator"] is None
    done = station_cmd("certificate", "LOOSE1", "--state-dir", str(state))
    assert done.returncode == 0, done.stderr
    page = Page(done.stdout)
    assert list(page.sections) == [""] and [r[0] for r in page.sections[""]] == ["10"]
    assert "No end given" in done.stdout
    assert page.by_id["statement"] == "Result: The one end on record cleaned (no end given)."


def test_the_json_certificate_has_the_same_content(state, config):
    done = station_cmd("certificate", CABLE, "--state-dir", str(state), "--config", str(config), "--format", "json")
    assert done.returncode == 0, done.stderr
    cert = json.loads(done.stdout)
    assert (cert["schema"], cert["kind"], cert["cable"]) == (1, "cleaning_certificate", CABLE)
    assert cert["station"] == {
        "maker": station.MAKER,
        "model": station.MODEL,
        "serial_number": SERIAL,
        "firmware": station.__version__,
    }
    assert cert["certificate"].startswith(SERIAL + "-") and ISO_Z.match(cert["issued_at"])
    assert (cert["all_cleaned"], cert["statement"]) == (False, "end B needs cleaning")
    ends = {e["end"]: e for e in cert["ends"]}
    assert list(ends) == ["A", "B"]
    assert [(e["final_result"], e["cleaned"], e["last_attempt"], e["connectors"]) for e in ends.values()] == [
        ("cleaned", True, 5, [CABLE + "-A"]),
        ("failed", False, 6, [CABLE + "-B"]),
    ]
    first = ends["A"]["attempts"][0]
    assert first == {
        "id": 1,
        "connector": CABLE + "-A",
        "started_at": "2026-01-01T00:00:00.000Z",
        "started_local": "01 Jan 2026 05:30:00 IST",
        "ended_at": "2026-01-01T00:00:05.000Z",
        "mode": "dry",
        "result": "failed",
        "reason": "connector reversed",
        "first_position": 0,
        "positions": 3,
        "drops": 1,
        "cassette": {"id": 1, "type": "standard", "label": CASSETTE_LABEL},
        "operator": "OP-7",
        "verdict": None,  # not inspected: inspection verdicts are not recorded yet
    }
    assert [(a["id"], a["mode"], a["operator"]) for a in ends["B"]["attempts"]] == [
        (2, "wet", "OP-<8>"),
        (6, "dry", "OP-<8>"),
    ]


def test_output_file_is_written_and_named(state, tmp_path):
    out = tmp_path / "certificates" / "cbl.html"
    out.parent.mkdir()
    done = station_cmd("certificate", CABLE, "--state-dir", str(state), "-o", str(out))
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    number = Page(out.read_text(encoding="utf-8")).by_id["certificate-number"]
    assert f"wrote certificate {number} for cable {CABLE} (4 attempts; end B needs cleaning) to {out}" in done.stderr
    out_json = tmp_path / "certificates" / "cbl.json"
    done = station_cmd("certificate", CABLE, "--state-dir", str(state), "-o", str(out_json), "--format", "json")
    assert done.returncode == 0, done.stderr
    assert [e["end"] for e in json.loads(out_json.read_text(encoding="utf-8"))["ends"]] == ["A", "B"]


def test_a_folder_that_is_not_there_is_refused_before_anything(state, tmp_path):
    out = tmp_path / "not-mounted" / "cbl.html"
    done = station_cmd("certificate", CABLE, "--state-dir", str(state), "-o", str(out))
    assert done.returncode == 2
    assert "does not exist" in done.stderr and "Traceback" not in done.stderr
    assert not out.parent.exists()


def test_a_cable_with_no_attempts_exits_1_and_writes_nothing(state, tmp_path):
    out = tmp_path / "none.html"
    done = station_cmd("certificate", "CBL-0001", "--state-dir", str(state), "-o", str(out))
    assert done.returncode == 1
    assert "no attempts recorded for cable CBL-0001" in done.stderr and "Traceback" not in done.stderr
    assert done.stdout == "" and not out.exists()
    done = station_cmd("certificate", CABLE[:-1], "--state-dir", str(state), "--format", "json")  # a prefix is no match
    assert done.returncode == 1 and done.stdout == ""


def test_a_database_from_before_traceability_has_no_attempts_for_any_cable(tmp_path):
    directory = tmp_path / "release3"
    directory.mkdir()
    shutil.copy(RELEASE_3_DB, directory / DB_NAME)
    out = tmp_path / "cert.html"
    done = station_cmd("certificate", "CBL-0001", "--state-dir", str(directory), "-o", str(out))
    assert done.returncode == 1
    assert "no attempts recorded for cable CBL-0001" in done.stderr
    assert "schema 3" in done.stderr and "Traceback" not in done.stderr
    assert not out.exists()
    s = Store(directory / DB_NAME, readonly=True)
    try:
        assert s.schema_version == 3  # read-only: the copy was not migrated
    finally:
        s.close()


@pytest.mark.parametrize("make_dir", [True, False], ids=["empty-dir", "missing-dir"])
def test_no_database_and_no_cable_name_are_refused_clearly(tmp_path, state, make_dir):
    directory = tmp_path / "nothing"
    if make_dir:
        directory.mkdir()
    done = station_cmd("certificate", CABLE, "--state-dir", str(directory))
    assert done.returncode == 2 and "no database at" in done.stderr and "Traceback" not in done.stderr
    assert not (directory / DB_NAME).exists()
    done = station_cmd("certificate", " ", "--state-dir", str(state))
    assert done.returncode == 2 and "name the cable" in done.stderr


def test_the_certificate_names_the_station_that_recorded_the_cleans(tmp_path):
    """A database a station ran on records its identity; read on another machine with another
    configuration (a backup on a QA PC), the certificate still names the station that cleaned."""
    from hw_sim import SimBench
    from station.config import Config

    with SimBench(Config().replace("station", serial_number="LINE-3-ST-07"), tmp_path) as bench:
        bench.clean("female", scan="CBL-0777-A")
    other = tmp_path / "qa-pc.toml"
    other.write_text('[station]\nserial_number = "QA-DESK"\n', encoding="utf-8")
    done = station_cmd(
        "certificate", "CBL-0777", "--state-dir", str(tmp_path), "--config", str(other), "--format", "json"
    )
    assert done.returncode == 0, done.stderr
    cert = json.loads(done.stdout)
    assert cert["station"]["serial_number"] == "LINE-3-ST-07" and cert["certificate"].startswith("LINE-3-ST-07-")
    assert cert["statement"] == "the one end on record cleaned (A)"


def test_the_station_records_its_identity_once_and_audits_a_change(tmp_path):
    from hw_sim import SimBench
    from station.config import Config
    from station.store import Store

    for serial in ("LINE-3-ST-07", "LINE-3-ST-07", "LINE-4-ST-01"):  # restarted, then the unit renamed
        with SimBench(Config().replace("station", serial_number=serial), tmp_path):
            pass
    store = Store(tmp_path / "station.db", readonly=True)
    try:
        assert json.loads(store.setting("station.identity"))["serial_number"] == "LINE-4-ST-01"
        changes = [json.loads(r["detail"]) for r in store.audit_entries() if r["action"] == "station.identity"]
        assert [c["serial_number"] for c in changes] == ["LINE-4-ST-01"]  # the first record is not a change
    finally:
        store.close()


def test_with_inspection_an_end_is_cleaned_only_with_a_pass_and_a_quarantine_is_said(tmp_path):
    """Found by review: a connector cleaned, inspected FAIL and quarantined was certified
    'cleaned'. With inspection used, the last clean needs a PASS after it."""
    from hw_sim import SimBench
    from station.config import Config

    config = Config().replace("inspection", mode="after", reclean="dry")
    with SimBench(config, tmp_path) as bench:
        bench.clean("female", scan="CBL-0500-A")
        bench.controller.cycle.inspection.verdict(Verdict.FAIL, "", "console:qa")  # quarantined: one clean allowed
        bench.run_for(1.0)
        bench.clean("female", scan="CBL-0500-B")
        bench.controller.cycle.inspection.verdict(Verdict.PASS, "", "console:qa")
        bench.run_for(1.0)
    done = station_cmd("certificate", "CBL-0500", "--state-dir", str(tmp_path), "--format", "json")
    assert done.returncode == 0, done.stderr
    cert = json.loads(done.stdout)
    ends = {e["end"]: e for e in cert["ends"]}
    assert (ends["A"]["cleaned"], ends["A"]["quarantined"], ends["A"]["attempts"][0]["verdict"]) == (
        False,
        True,
        "fail",
    )
    assert (ends["B"]["cleaned"], ends["B"]["attempts"][0]["verdict"]) == (True, "pass")
    assert cert["all_cleaned"] is False and cert["statement"] == "end A quarantined: replace or repair the connector"
