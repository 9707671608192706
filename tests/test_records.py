"""Exporting clean records for QA (docs/design.md section 6; rule 8: every attempt has one record).

Records made by the unchanged firmware on the simulated bench are exported as CSV and JSON and
read back with the standard library; the `station records` command runs as a real subprocess.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
import re
import shutil
import subprocess
import sys
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest

from hw_sim import SimBench
from hw_sim.bench import SIM_EPOCH
from station import records
from station.app import DB_NAME
from station.domain import CassetteType, Mode, Outcome, Reason
from station.events import AttemptFinished
from station.store import AttemptRecord, Identity, Store

REPO = Path(__file__).resolve().parent.parent
ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
NOV24 = datetime(2026, 11, 24, tzinfo=UTC).timestamp()
SECOND_SESSION = datetime(2026, 11, 24, 13, 0, tzinfo=UTC).timestamp()
STD = CassetteType.STANDARD
MALE = CassetteType.MALE_MT

# (connector, clean() keywords, expected outcome, expected reason)
FIRST_SESSION = [
    ("female", {}, "cleaned", ""),
    ("female", {"wet": True}, "cleaned", ""),
    ("female", {"direction": "up"}, "failed", Reason.REVERSED.value),
    ("female", {"variant": "back_and_forth"}, "failed", Reason.BACK_AND_FORTH.value),  # has a comma
    ("male", {}, "rejected", Reason.WRONG_CASSETTE_MALE.value),
    ("bent", {}, "rejected", Reason.DAMAGED_PINS.value),
    ("female", {"duration_s": 0.05}, "failed", Reason.TOO_FAST.value),
]
LATER_SESSION = [
    ("female", {}, "cleaned", ""),
    ("female", {"variant": "partial"}, "failed", Reason.PARTIAL.value),
]


def run_session(state_dir: Path, plan, wall_start: float) -> list[AttemptFinished]:
    with SimBench(state_dir=state_dir, wall_start=wall_start) as bench:
        results = []
        for connector, kw, outcome, reason in plan:
            result = bench.clean(connector, **kw)
            assert (result.outcome, result.reason.value if result.reason else "") == (outcome, reason)
            results.append(result)
        assert bench.world.violations == []
    return results


@pytest.fixture(scope="module")
def state_dir(tmp_path_factory) -> Path:
    """Two working sessions on one station: New Year's Day and 24 November 2026, 13:00 UTC."""
    directory = tmp_path_factory.mktemp("records") / "state"
    run_session(directory, FIRST_SESSION, SIM_EPOCH)
    run_session(directory, LATER_SESSION, SECOND_SESSION)
    return directory


@pytest.fixture
def store(state_dir):
    s = Store(state_dir / DB_NAME, readonly=True)
    yield s
    s.close()


def test_the_sessions_left_one_record_per_attempt(store):
    recs = store.attempts(newest_first=False)
    plan = FIRST_SESSION + LATER_SESSION
    assert [(r.outcome, r.reason) for r in recs] == [(o, why) for _, _, o, why in plan]
    assert [r.id for r in recs] == list(range(1, len(plan) + 1))
    assert all(r.ended_at is not None and r.ended_at >= r.started_at for r in recs)


# ---------------------------------------------------------------------------- CSV / JSON


def test_csv_round_trip(store):
    recs = store.attempts(newest_first=False)
    out = io.StringIO(newline="")
    assert records.write_csv(recs, out) == len(recs)
    text = out.getvalue()
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    assert list(rows[0]) == [f.name for f in dataclasses.fields(AttemptRecord)]
    assert records.read_csv(text) == rows
    assert len(rows) == len(recs)
    for row, rec in zip(rows, recs, strict=True):
        assert int(row["id"]) == rec.id
        assert row["outcome"] == rec.outcome
        assert row["reason"] == rec.reason
        assert row["mode"] == rec.mode
        assert row["gender"] == (rec.gender or "")
        assert row["cassette_type"] == (rec.cassette_type or "")
        assert row["first_position"] == ("" if rec.first_position is None else str(rec.first_position))
        assert int(row["positions"]) == rec.positions and int(row["drops"]) == rec.drops
        assert row["pass_s"] == ("" if rec.pass_s is None else str(rec.pass_s))
        assert row["started_at"] == records.iso(rec.started_at)
        assert row["ended_at"] == records.iso(rec.ended_at)
    comma = [r for r in rows if "," in r["reason"]]
    assert [r["reason"] for r in comma] == [Reason.BACK_AND_FORTH.value]
    assert '"' + Reason.BACK_AND_FORTH.value + '"' in text  # quoted, not split into columns
    assert text.endswith("\r\n")


def test_csv_quotes_awkward_text(tmp_path):
    awkward = 'said "no", then\nleft; = sum(A1)'
    rec = AttemptRecord(1, SIM_EPOCH, None, "dry", None, None, None, None, 0, 0, None, None, "rejected", awkward)
    path = tmp_path / "x.csv"
    with open(path, "w", encoding="utf-8", newline="") as f:
        records.write_csv([rec], f)
    with open(path, encoding="utf-8", newline="") as f:
        [row] = list(csv.DictReader(f))
    assert row["reason"] == awkward
    assert row["ended_at"] == "" and row["gender"] == "" and row["first_position"] == ""


def test_json_round_trip(store):
    recs = store.attempts(newest_first=False)
    out = io.StringIO()
    assert records.write_json(recs, out) == len(recs)
    rows = json.loads(out.getvalue())
    assert len(rows) == len(recs)
    for row, rec in zip(rows, recs, strict=True):
        expected = dataclasses.asdict(rec)
        expected["started_at"] = records.iso(rec.started_at)
        expected["ended_at"] = records.iso(rec.ended_at)
        assert row == expected  # nulls stay null, numbers stay numbers
    assert [r["reason"] for r in rows if r["outcome"] == "failed"] == [
        Reason.REVERSED.value,
        Reason.BACK_AND_FORTH.value,
        Reason.TOO_FAST.value,
        Reason.PARTIAL.value,
    ]


def test_timestamps_are_iso_8601_utc_with_z(store):
    recs = store.attempts(newest_first=False)
    for rec in recs:
        for t in (rec.started_at, rec.ended_at):
            text = records.iso(t)
            assert ISO_Z.match(text), text
            back = datetime.fromisoformat(text.replace("Z", "+00:00"))
            assert back.utcoffset().total_seconds() == 0
            assert 0 <= t - back.timestamp() < 0.001  # millisecond resolution
    assert records.iso(recs[0].started_at) == "2026-01-01T00:00:00.000Z"
    assert records.iso(recs[-1].started_at).startswith("2026-11-24T13:00:")
    assert records.iso(None) == ""


def test_parse_time_accepts_dates_and_date_times_as_utc():
    assert records.parse_time("2026-11-24") == NOV24
    assert records.parse_time("2026-11-24T13:05") == NOV24 + 13 * 3600 + 5 * 60
    assert records.parse_time("2026-11-24T13:05:30") == NOV24 + 13 * 3600 + 5 * 60 + 30
    assert records.parse_time("2026-11-24T13:05Z") == NOV24 + 13 * 3600 + 5 * 60
    assert records.parse_time("2026-11-24T13:05+01:00") == NOV24 + 12 * 3600 + 5 * 60
    assert records.parse_time(records.iso(SECOND_SESSION + 1.25)) == SECOND_SESSION + 1.25


@pytest.mark.parametrize("garbage", ["yesterday", "24/11/2026", "2026-13-01", "2026-11-24 1pm", ""])
def test_parse_time_rejects_garbage_helpfully(garbage):
    with pytest.raises(ValueError) as info:
        records.parse_time(garbage)
    text = str(info.value)
    assert repr(garbage) in text
    assert "2026-11-24" in text  # shows what is accepted


def test_summary_counts_outcomes_cassettes_and_fluid(store):
    text = records.summary(store, 3)
    assert "clean attempts: cleaned 3, failed 4, rejected 2, interrupted 0" in text
    # 7 attempts consumed ribbon (3 cleaned + 4 failed) x 3 positions, of 1500
    assert "cassette #1 standard (current): 1479 of 1500 positions left" in text
    assert "fitted 1 time" in text
    assert "fluid: 1999 of 2000 drops left" in text
    assert "retired" not in text


# ---------------------------------------------------------------------------- the cassette history


@pytest.fixture
def cassette_dir(tmp_path) -> Path:
    """A station on its third standard cassette and its first male MT one (written through the
    store, as the controller writes them)."""
    directory = tmp_path / "cassettes"
    directory.mkdir()
    s = Store(directory / DB_NAME, fluid_capacity=2000)
    first = s.new_cassette(STD, 30, SIM_EPOCH, note="first fit: assumed new")
    s.reserve_positions(first, 3, SIM_EPOCH + 1)
    s.cassette_removed(SIM_EPOCH + 2)
    s.cassette_fitted(first.id, SIM_EPOCH + 3)
    male = s.new_cassette(MALE, 40, SIM_EPOCH + 4)
    s.reserve_positions(male, 3, SIM_EPOCH + 5)
    s.reserve_positions(male, 2, SIM_EPOCH + 6, source="jog")
    s.new_cassette(STD, 45, SIM_EPOCH + 7, note='box "B", lot 7')
    third = s.new_cassette(STD, 60, NOV24, note="spare")
    s.reserve_positions(third, 3, NOV24 + 1)
    s.close()
    return directory


EXPECTED_CASSETTES = [  # id, type, state, capacity, used, remaining, fits, note
    (1, "standard", "retired", 30, 3, 27, 2, "first fit: assumed new"),
    (2, "male_mt", "current", 40, 5, 35, 1, ""),
    (3, "standard", "retired", 45, 0, 45, 1, 'box "B", lot 7'),
    (4, "standard", "current", 60, 3, 57, 1, "spare"),
]


def test_cassette_rows_are_the_history_oldest_first(cassette_dir):
    s = Store(cassette_dir / DB_NAME, readonly=True)
    try:
        rows = records.cassette_rows(s)
    finally:
        s.close()
    assert [list(r) for r in rows] == [records.CASSETTE_FIELDS] * 4
    assert [
        (r["id"], r["type"], r["state"], r["capacity"], r["used"], r["remaining"], r["fits"], r["note"]) for r in rows
    ] == EXPECTED_CASSETTES
    assert [r["declared_at"] for r in rows] == [
        "2026-01-01T00:00:00.000Z",
        "2026-01-01T00:00:04.000Z",
        "2026-01-01T00:00:07.000Z",
        "2026-11-24T00:00:00.000Z",
    ]
    assert [r["retired_at"] for r in rows] == ["2026-01-01T00:00:07.000Z", "", "2026-11-24T00:00:00.000Z", ""]


def test_cli_exports_the_cassette_history_as_csv(cassette_dir, tmp_path):
    out = tmp_path / "cassettes.csv"
    done = station("records", "--state-dir", str(cassette_dir), "--cassettes", "--format", "csv", "-o", str(out))
    assert done.returncode == 0, done.stderr
    assert f"wrote 4 cassettes to {out}" in done.stderr
    assert "clean attempts:" in done.stdout  # with a file, the summary still goes to the screen
    with open(out, encoding="utf-8", newline="") as f:
        text = f.read()
    assert text.endswith("\r\n")
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    assert list(rows[0]) == records.CASSETTE_FIELDS
    assert [
        (int(r["id"]), r["type"], r["state"], int(r["capacity"]), int(r["used"]), int(r["remaining"]), int(r["fits"]))
        + (r["note"],)
        for r in rows
    ] == EXPECTED_CASSETTES
    assert rows[1]["retired_at"] == "" and ISO_Z.match(rows[0]["retired_at"])

    to_stdout = station("records", "--state-dir", str(cassette_dir), "--cassettes", "--format", "csv")
    assert to_stdout.returncode == 0, to_stdout.stderr
    assert list(csv.DictReader(io.StringIO(to_stdout.stdout))) == rows  # only the export on standard output


def test_cli_exports_the_cassette_history_as_json(cassette_dir):
    done = station("records", "--state-dir", str(cassette_dir), "--cassettes", "--format", "json")
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    assert [
        (r["id"], r["type"], r["state"], r["capacity"], r["used"], r["remaining"], r["fits"], r["note"]) for r in rows
    ] == EXPECTED_CASSETTES  # numbers stay numbers
    assert [list(r) for r in rows] == [records.CASSETTE_FIELDS] * 4


def test_summary_lists_the_current_cassettes_and_counts_the_retired(cassette_dir):
    done = station("records", "--state-dir", str(cassette_dir))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert [line for line in lines if line.startswith("cassette #")] == [
        "cassette #2 male_mt (current): 35 of 40 positions left (11 cleans), fitted 1 time",
        "cassette #4 standard (current): 57 of 60 positions left (19 cleans), fitted 1 time",
    ]
    assert "retired cassettes: 2 (every cassette: station records --cassettes --format csv|json)" in lines


@pytest.mark.parametrize(
    "extra, message",
    [
        ([], "choose --format csv or json"),
        (["--format", "csv", "--result", "failed"], "exported whole"),
        (["--format", "json", "--since", "2026-11-24"], "exported whole"),
    ],
)
def test_cli_cassette_export_refuses_what_does_not_apply(cassette_dir, extra, message):
    done = station("records", "--state-dir", str(cassette_dir), "--cassettes", *extra)
    assert done.returncode == 2
    assert message in done.stderr and "--cassettes" in done.stderr
    assert done.stdout == ""


# ---------------------------------------------------------------------------- the audit


@pytest.fixture
def audit_dir(tmp_path) -> Path:
    """A station whose audit holds logins, maintenance, a configuration change and a fault over
    two days (written through the store, as the controller and the console write them)."""
    directory = tmp_path / "audit"
    directory.mkdir()
    s = Store(directory / DB_NAME, fluid_capacity=2000)
    for t, kind, action, detail, source in AUDIT_PLAN:
        s.audit(kind, action, t, detail=detail, source=source)
    s.close()
    return directory


AUDIT_PLAN = [  # t, kind, action, detail, source
    (SIM_EPOCH, "access", "login_failed", "", "console:/dev/ttyUSB0"),
    (SIM_EPOCH + 5, "access", "login", "", "console:/dev/ttyUSB0"),
    (SIM_EPOCH + 6, "maintenance", "jog", {"positions": 3}, "console:/dev/ttyUSB0"),
    (SIM_EPOCH + 7, "fault", "raised", 'jam: wheel "stuck", 0 of 3 positions', "station"),
    (NOV24 + 1, "config", "config.overrides", {"swipe.max_pass_s": 2.5}, "console:tcp:5025"),
    (SECOND_SESSION, "fault", "cleared", "jam", "console:/dev/serial0"),
]


def expected_audit(since: float = float("-inf"), until: float = float("inf")) -> list[dict[str, object]]:
    return [
        {
            "id": i,
            "time": records.iso(t),
            "kind": kind,
            "action": action,
            "source": source,
            "detail": detail if isinstance(detail, str) else json.dumps(detail, sort_keys=True),
        }
        for i, (t, kind, action, detail, source) in enumerate(AUDIT_PLAN, start=1)
        if since <= t < until
    ]


def test_audit_rows_are_the_audit_oldest_first_chosen_by_time(audit_dir):
    s = Store(audit_dir / DB_NAME, readonly=True)
    try:
        assert records.audit_rows(s) == expected_audit()
        assert [list(r) for r in records.audit_rows(s)] == [records.AUDIT_FIELDS] * len(AUDIT_PLAN)
        assert records.audit_rows(s, since=SIM_EPOCH + 5, until=NOV24 + 1) == expected_audit(SIM_EPOCH + 5, NOV24 + 1)
        assert records.audit_rows(s, since=SECOND_SESSION + 1) == []
    finally:
        s.close()


def test_cli_exports_the_audit_as_csv(audit_dir, tmp_path):
    out = tmp_path / "audit.csv"
    done = station("records", "--state-dir", str(audit_dir), "--audit", "--format", "csv", "-o", str(out))
    assert done.returncode == 0, done.stderr
    assert f"wrote {len(AUDIT_PLAN)} audit entries to {out}" in done.stderr
    with open(out, encoding="utf-8", newline="") as f:
        text = f.read()
    assert text.endswith("\r\n")
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    assert list(rows[0]) == records.AUDIT_FIELDS
    assert rows == [{k: str(v) for k, v in r.items()} for r in expected_audit()]  # quotes and commas survive
    assert all(ISO_Z.match(r["time"]) for r in rows)

    to_stdout = station("records", "--state-dir", str(audit_dir), "--audit", "--format", "csv")
    assert to_stdout.returncode == 0, to_stdout.stderr
    assert list(csv.DictReader(io.StringIO(to_stdout.stdout))) == rows  # only the export on standard output


def test_cli_exports_the_audit_as_json_with_the_records_time_filters(audit_dir):
    done = station("records", "--state-dir", str(audit_dir), "--audit", "--format", "json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == expected_audit()  # ids stay numbers
    done = station("records", "--state-dir", str(audit_dir), "--audit", "--format", "json", "--since", "2026-11-24")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == expected_audit(since=NOV24)
    done = station(
        "records",
        "--state-dir",
        str(audit_dir),
        "--audit",
        "--format",
        "json",
        "--since",
        "2026-01-01T00:00:05",
        "--until",
        "2026-11-24T13:00",
    )
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    assert rows == expected_audit(SIM_EPOCH + 5, SECOND_SESSION)
    assert [r["action"] for r in rows] == ["login", "jog", "raised", "config.overrides"]
    assert json.loads(rows[1]["detail"]) == {"positions": 3}


@pytest.mark.parametrize(
    "extra, message",
    [
        ([], "--audit exports the audit; choose --format csv or json"),
        (["--format", "csv", "--result", "failed"], "the audit (--audit) is chosen by --since and --until"),
        (["--format", "csv", "--cassettes"], "not allowed with argument"),
        (["--format", "json", "--since", "last week"], "'last week' is not a date"),
    ],
)
def test_cli_audit_export_refuses_what_does_not_apply(audit_dir, extra, message):
    done = station("records", "--state-dir", str(audit_dir), "--audit", *extra)
    assert done.returncode == 2
    assert message in done.stderr
    assert done.stdout == "" and "Traceback" not in done.stderr


def test_the_audit_of_a_station_s_own_sessions_exports_whole(state_dir):
    """What the unchanged firmware wrote: the first cassette's fit and each orderly stop."""
    done = station("records", "--state-dir", str(state_dir), "--audit", "--format", "json")
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    assert [(r["kind"], r["action"], r["source"]) for r in rows] == [
        ("cassette", "new", "station"),
        ("station", "shutdown", "station"),
        ("station", "shutdown", "station"),
    ]
    assert [r["time"][:10] for r in rows] == ["2026-01-01", "2026-01-01", "2026-11-24"]
    assert [r["id"] for r in rows] == sorted(r["id"] for r in rows)


# ---------------------------------------------------------------------------- the command


def station(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("STATE_DIRECTORY",)}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run(
        [sys.executable, "-m", "station", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60
    )


def test_cli_prints_the_summary(state_dir):
    done = station("records", "--state-dir", str(state_dir))
    assert done.returncode == 0, done.stderr
    assert "clean attempts: cleaned 3, failed 4, rejected 2, interrupted 0" in done.stdout
    assert "cassette #1 standard (current)" in done.stdout
    assert "fluid:" in done.stdout


def test_cli_csv_to_stdout_is_only_the_export(state_dir, store):
    done = station("records", "--state-dir", str(state_dir), "--format", "csv")
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader(io.StringIO(done.stdout, newline="")))
    recs = store.attempts(newest_first=False)
    assert [(int(r["id"]), r["outcome"], r["reason"]) for r in rows] == [(r.id, r.outcome, r.reason) for r in recs]
    assert "clean attempts:" not in done.stdout


def test_cli_filters_by_result(state_dir):
    done = station("records", "--state-dir", str(state_dir), "--format", "json", "--result", "failed")
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    assert [r["reason"] for r in rows] == [
        Reason.REVERSED.value,
        Reason.BACK_AND_FORTH.value,
        Reason.TOO_FAST.value,
        Reason.PARTIAL.value,
    ]
    assert {r["outcome"] for r in rows} == {"failed"}


def test_cli_filters_by_time_and_writes_a_file(state_dir, tmp_path):
    out = tmp_path / "later.csv"
    done = station("records", "--state-dir", str(state_dir), "--format", "csv", "--since", "2026-11-24", "-o", str(out))
    assert done.returncode == 0, done.stderr
    with open(out, encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["outcome"], r["reason"]) for r in rows] == [(o, why) for _, _, o, why in LATER_SESSION]
    assert all(r["started_at"].startswith("2026-11-24T13:") for r in rows)
    assert f"wrote {len(rows)} records to {out}" in done.stderr
    assert "clean attempts:" in done.stdout  # with a file, the summary still goes to the screen

    done = station("records", "--state-dir", str(state_dir), "--format", "json", "--until", "2026-11-24T13:00")
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    assert [(r["outcome"], r["reason"]) for r in rows] == [(o, why) for _, _, o, why in FIRST_SESSION]

    done = station(
        "records",
        "--state-dir",
        str(state_dir),
        "--format",
        "json",
        "--since",
        "2026-01-01T00:00:05",
        "--until",
        "2026-11-24",
        "--result",
        "rejected",
    )
    assert done.returncode == 0, done.stderr
    assert [r["reason"] for r in json.loads(done.stdout)] == [
        Reason.WRONG_CASSETTE_MALE.value,
        Reason.DAMAGED_PINS.value,
    ]


def test_cli_rejects_a_bad_time_clearly(state_dir):
    done = station("records", "--state-dir", str(state_dir), "--since", "last tuesday")
    assert done.returncode == 2
    assert "'last tuesday'" in done.stderr and "2026-11-24" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("make_dir", [True, False], ids=["empty-dir", "missing-dir"])
def test_cli_without_a_database_exits_2_and_says_so(tmp_path, make_dir):
    directory = tmp_path / "nothing"
    if make_dir:
        directory.mkdir()
    done = station("records", "--state-dir", str(directory), "--format", "csv")
    assert done.returncode == 2
    assert f"no database at {directory / DB_NAME}" in done.stderr
    assert "--state-dir" in done.stderr
    assert "Traceback" not in done.stderr
    assert done.stdout == ""
    assert not (directory / DB_NAME).exists()  # looking did not create an empty database
    assert directory.exists() == make_dir


def test_cli_on_a_foreign_file_exits_2_with_the_storage_error(tmp_path):
    import sqlite3

    directory = tmp_path / "other"
    directory.mkdir()
    db = sqlite3.connect(directory / DB_NAME)
    db.execute("CREATE TABLE notes (x)")
    db.commit()
    db.close()
    done = station("records", "--state-dir", str(directory))
    assert done.returncode == 2
    assert "not a station database" in done.stderr
    assert "Traceback" not in done.stderr


@contextmanager
def unwritable_dir(directory: Path):
    """Make the directory unwritable for this process (chmod; chattr +i when root). Yields
    False when that is impossible here."""
    ok = False
    if os.geteuid() != 0:
        os.chmod(directory, 0o555)
        ok = True
    elif shutil.which("chattr"):
        ok = subprocess.run(["chattr", "+i", str(directory)], capture_output=True).returncode == 0
    if ok:
        try:
            (directory / "probe").write_text("x")
        except OSError:
            pass
        else:
            (directory / "probe").unlink()
            ok = False
    try:
        yield ok
    finally:
        if os.geteuid() == 0 and shutil.which("chattr"):
            subprocess.run(["chattr", "-i", str(directory)], capture_output=True)
        os.chmod(directory, 0o755)


def test_cli_reads_records_from_a_read_only_state_directory(state_dir, tmp_path):
    """A QA user exporting from the service's state directory (not theirs to write), or from a
    backup on write-protected media, needs no write access to read."""
    wal = state_dir / (DB_NAME + "-wal")
    assert not wal.exists() or wal.stat().st_size == 0  # everything is in the main file
    directory = tmp_path / "readonly-state"
    directory.mkdir()
    shutil.copy(state_dir / DB_NAME, directory / DB_NAME)  # alone, as after a clean stop or a backup
    with unwritable_dir(directory) as ok:
        if not ok:
            pytest.skip("running as root without a usable chattr: cannot make the directory read-only")
        done = station("records", "--state-dir", str(directory))
    assert done.returncode == 0, done.stderr
    assert "clean attempts: cleaned 3, failed 4, rejected 2, interrupted 0" in done.stdout


# ---------------------------------------------------------------------------- traceability (issue 13)

RELEASE_3_DB = Path(__file__).parent / "data" / "station-schema3.db"
TRACE_FIELDS = ["connector", "cable", "end", "operator", "cassette_label"]
BEFORE_TRACEABILITY = [  # the export's columns before issue 13, in their places
    "id",
    "started_at",
    "ended_at",
    "mode",
    "gender",
    "cassette_id",
    "cassette_type",
    "first_position",
    "positions",
    "drops",
    "swipe_start_s",
    "pass_s",
    "outcome",
    "reason",
]
A1 = Identity("CBL-0001-A", "CBL-0001", "A", "OP-7")
B1 = Identity("CBL-0001-B", "CBL-0001", "B", "OP-8")
A10 = Identity("CBL-00010-A", "CBL-00010", "A", "OP-7")  # a cable whose name starts like CBL-0001's
# (identity, outcome, start time): written through the store, as the controller writes them
TRACED = [
    (A1, Outcome.FAILED, SIM_EPOCH),
    (A1, Outcome.CLEANED, SIM_EPOCH + 60),
    (B1, Outcome.CLEANED, SIM_EPOCH + 120),
    (A10, Outcome.CLEANED, SIM_EPOCH + 180),
    (None, Outcome.CLEANED, SIM_EPOCH + 240),  # no scanner: tied to nothing
    (A1, Outcome.REJECTED, NOV24),
    (Identity(operator="OP-7"), Outcome.CLEANED, NOV24 + 60),  # a badge, no connector scanned
]


@pytest.fixture
def traced_dir(tmp_path) -> Path:
    """A station with a scanner: attempts on both ends of CBL-0001, on CBL-00010 and on nothing,
    by two operators, on a labelled cassette and then an unlabelled one."""
    directory = tmp_path / "traced"
    directory.mkdir()
    s = Store(directory / DB_NAME)
    labelled = s.new_cassette(STD, 60, SIM_EPOCH - 10, label="CAS-0042")
    for i, (who, outcome, t) in enumerate(TRACED):
        if i == 5:
            labelled = s.new_cassette(STD, 45, t - 1)  # unlabelled: a cassette fitted without a scan
        attempt = s.begin_attempt(t, Mode.DRY, who)
        if outcome is not Outcome.REJECTED:
            s.reserve_positions(labelled, 3, t + 1, attempt_id=attempt, gender="female")
        s.finish_attempt(attempt, outcome, "" if outcome is Outcome.CLEANED else "reversed", t + 5)
    s.close()
    return directory


def _traced(i: int) -> dict[str, object]:
    who, outcome, t = TRACED[i]
    who = who or Identity()
    return {
        "id": i + 1,
        "outcome": outcome.value,
        "connector": who.connector,
        "cable": who.cable,
        "end": who.end,
        "operator": who.operator,
        "cassette_label": None if outcome is Outcome.REJECTED or i >= 5 else "CAS-0042",
    }


def _picked(rows: list[dict]) -> list[dict[str, object]]:
    return [{k: r[k] for k in ("id", "outcome", *TRACE_FIELDS)} for r in rows]


def test_the_export_s_columns_keep_their_places_and_add_the_traceability_fields():
    assert records.FIELDS == BEFORE_TRACEABILITY + TRACE_FIELDS
    assert records.CASSETTE_FIELDS == [
        *("id", "type", "state", "capacity", "used", "remaining", "fits", "declared_at", "retired_at", "note"),
        "label",
    ]


def test_cli_filters_by_connector_with_cable_and_end_filled(traced_dir):
    done = station("records", "--state-dir", str(traced_dir), "--format", "json", "--connector", "CBL-0001-A")
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    assert _picked(rows) == [_traced(0), _traced(1), _traced(5)]
    assert {(r["cable"], r["end"]) for r in rows} == {("CBL-0001", "A")}


def test_cli_filters_by_cable_every_end_and_no_other_cable(traced_dir):
    done = station("records", "--state-dir", str(traced_dir), "--format", "csv", "--cable", "CBL-0001")
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader(io.StringIO(done.stdout, newline="")))
    assert list(rows[0]) == BEFORE_TRACEABILITY + TRACE_FIELDS
    expected = [_traced(i) for i in (0, 1, 2, 5)]
    as_csv = [{k: ("" if v is None else str(v)) for k, v in e.items()} for e in expected]
    assert _picked(rows) == as_csv  # unknown is an empty cell, as for every other field


def test_cli_filters_by_operator_combined_with_time_and_result(traced_dir):
    def ids(*extra: str) -> list[int]:
        done = station("records", "--state-dir", str(traced_dir), "--format", "json", *extra)
        assert done.returncode == 0, done.stderr
        return [r["id"] for r in json.loads(done.stdout)]

    assert ids("--operator", "OP-7") == [1, 2, 4, 6, 7]
    assert ids("--operator", "OP-7", "--result", "cleaned") == [2, 4, 7]
    assert ids("--operator", "OP-7", "--since", "2026-11-24") == [6, 7]
    assert ids("--operator", "OP-7", "--cable", "CBL-0001", "--until", "2026-11-24") == [1, 2]
    assert ids("--connector", "CBL-0001-B", "--operator", "OP-7") == []  # both must hold
    assert ids("--operator", "OP-9") == []


def test_cli_exports_cassette_labels(traced_dir):
    done = station("records", "--state-dir", str(traced_dir), "--cassettes", "--format", "json")
    assert done.returncode == 0, done.stderr
    assert [(r["id"], r["label"]) for r in json.loads(done.stdout)] == [(1, "CAS-0042"), (2, None)]
    done = station("records", "--state-dir", str(traced_dir), "--cassettes", "--format", "csv")
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader(io.StringIO(done.stdout, newline="")))
    assert list(rows[0]) == records.CASSETTE_FIELDS
    assert [(r["id"], r["label"]) for r in rows] == [("1", "CAS-0042"), ("2", "")]


@pytest.mark.parametrize("which", ["--cassettes", "--audit"])
@pytest.mark.parametrize(
    "extra", [["--connector", "CBL-0001-A"], ["--cable", "CBL-0001"], ["--operator", "OP-7"]], ids=lambda e: e[0]
)
def test_cli_refuses_traceability_filters_where_they_do_not_apply(traced_dir, which, extra):
    done = station("records", "--state-dir", str(traced_dir), which, "--format", "csv", *extra)
    assert done.returncode == 2
    assert extra[0] in done.stderr and which in done.stderr and "choose" in done.stderr
    assert done.stdout == "" and "Traceback" not in done.stderr


def test_a_database_from_before_traceability_exports_with_the_fields_empty(tmp_path):
    directory = tmp_path / "release3"
    directory.mkdir()
    shutil.copy(RELEASE_3_DB, directory / DB_NAME)
    done = station("records", "--state-dir", str(directory), "--format", "json")
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    assert len(rows) == 7 and all(r[f] is None for r in rows for f in TRACE_FIELDS)
    done = station("records", "--state-dir", str(directory), "--format", "json", "--cable", "CBL-0001")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == []  # no attempt of that release is tied to a cable
    done = station("records", "--state-dir", str(directory), "--cassettes", "--format", "json")
    assert done.returncode == 0, done.stderr
    assert [r["label"] for r in json.loads(done.stdout)] == [None, None]
    s = Store(directory / DB_NAME, readonly=True)
    try:
        assert s.schema_version == 3  # only looked: not migrated
    finally:
        s.close()


def test_record_filters_without_a_format_are_refused_naming_what_to_add(tmp_path):
    import subprocess
    import sys

    from station.store import Store

    Store(tmp_path / "station.db").close()
    done = subprocess.run(
        [sys.executable, "-m", "station", "records", "--state-dir", str(tmp_path), "--connector", "CBL-0001-A"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "--connector chooses the records to export: add --format csv or json" in done.stderr
