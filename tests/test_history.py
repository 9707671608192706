"""The history benchmark's database builder (bench/history.py), at a tiny size.

The benchmark compares a station grown to a million attempts with a new one; what it measures
is only meaningful if the database it builds is one the station could have written: the
station's own schema, totals equal to a recount of the ledgers, ribbon positions consecutive
and within each cassette, at most one current cassette per type. Timings are never asserted.
"""

from __future__ import annotations

import sqlite3

import pytest

from bench.history import build_history, check_tallies
from station.domain import CassetteType
from station.store import SCHEMA_VERSION, Store


@pytest.mark.parametrize("attempts, cassettes", [(0, 0), (1, 1), (3_000, 7), (4_000, 3), (5_000, 10)])
def test_the_built_history_is_one_the_station_could_have_written(tmp_path, attempts, cassettes):
    path = tmp_path / "station.db"
    rows = build_history(path, attempts, cassettes)
    assert rows["attempts"] == attempts
    assert check_tallies(path) == []

    db = sqlite3.connect(path)
    try:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert db.execute("PRAGMA foreign_key_check").fetchall() == []
        # the totals, recounted here independently of the builder's own check
        assert dict(db.execute("SELECT outcome, n FROM attempt_tally WHERE n != 0")) == dict(
            db.execute("SELECT coalesce(outcome, 'open'), count(*) FROM attempts GROUP BY outcome")
        )
        assert db.execute("SELECT n FROM drop_tally").fetchone()[0] == rows["drops"]
        for cid, used, capacity in db.execute("SELECT id, used, capacity FROM cassettes").fetchall():
            firsts = db.execute(
                "SELECT first_position, positions FROM ribbon WHERE cassette_id = ? ORDER BY id", (cid,)
            ).fetchall()
            expected = 0
            for first, n in firsts:
                assert first == expected
                expected += n
            assert used == expected <= capacity
        for ctype in CassetteType:
            current = db.execute(
                "SELECT count(*) FROM cassettes WHERE type = ? AND retired_at IS NULL", (ctype.value,)
            ).fetchone()[0]
            assert current <= 1
        assert db.execute("SELECT count(*) FROM cassette_fits WHERE removed_at IS NULL").fetchone()[0] == min(
            1, cassettes
        )
        # every attempt has its one outcome; a rejected one never reached the wheel
        assert db.execute("SELECT count(*) FROM attempts WHERE outcome IS NULL").fetchone()[0] == 0
        assert (
            db.execute(
                "SELECT count(*) FROM attempts a JOIN ribbon r ON r.attempt_id = a.id WHERE a.outcome = 'rejected'"
            ).fetchone()[0]
            == 0
        )
    finally:
        db.close()

    s = Store(path, fluid_capacity=2000)  # the station opens it as its own, with the same answers
    try:
        assert s.schema_version == SCHEMA_VERSION
        assert sum(s.summary().values()) == attempts
        used, capacity = s.fluid()
        assert 0 <= used < capacity
        assert s.cassette_count() == rows["cassettes"]
        types = {r["type"] for r in s.cassettes()}  # every fifth is a male MT one
        assert sorted(c.type.value for c in s.current_cassettes()) == sorted(types)
        assert s.close_open_attempts(0.0) == []
    finally:
        s.close()


def test_the_outcome_mix_is_a_real_stations(tmp_path):
    path = tmp_path / "station.db"
    build_history(path, 10_000, 20)
    s = Store(path, readonly=True)
    try:
        share = {k: v / 10_000 for k, v in s.summary().items()}
    finally:
        s.close()
    assert set(share) == {"cleaned", "failed", "rejected", "interrupted"}
    assert share["cleaned"] > 0.8 and 0.01 < share["interrupted"] < share["rejected"] < share["failed"] < 0.1
