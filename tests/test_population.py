"""`station sim --population N` (issue 14's proof, hw_sim/population.py): connectors with a
contamination mix through the station's inspection loop on one simulated bench, then the same
ones cleaned once without inspection. The counts are held to the physical faces (iec.grade), to
the world's record and to the station's own database, a real SQLite file read here."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from hw_sim import population as pop
from hw_sim.endface import Dirt
from station.app import DB_NAME
from station.config import Config

ROOT = Path(__file__).resolve().parent.parent
DIRTY_MIX = {Dirt.LIGHT: 0.3, Dirt.HEAVY: 0.4, Dirt.OILY: 0.3}


def db_count(state_dir: Path, sql: str) -> int:
    db = sqlite3.connect(f"file:{state_dir / DB_NAME}?mode=ro", uri=True)
    try:
        return int(db.execute(sql).fetchone()[0])
    finally:
        db.close()


def consistent(t: pop.Tally, n: int) -> None:
    """What any run's numbers must satisfy among themselves."""
    assert t.connectors == n
    assert t.released + t.quarantined == n
    assert sum(c["connectors"] for c in t.by_dirt.values()) == n
    assert sum(c["released"] for c in t.by_dirt.values()) == t.released
    assert sum(c["quarantined"] for c in t.by_dirt.values()) == t.quarantined
    assert sum(c["dirty_released"] for c in t.by_dirt.values()) == t.dirty_released
    assert t.first_pass <= t.released and t.released_cleans <= t.cleans
    assert t.positions == 3 * t.cleans  # every clean took its 3 fresh positions, and nothing else turned
    assert t.released_positions == 3 * t.released_cleans
    assert t.violations == []


def test_after_a_population_is_released_only_clean_and_the_books_agree(tmp_path):
    n = 40
    result = pop.run(Config(), n, seed=11, mode="after", state_dir=tmp_path)
    a, b = result.inspected, result.baseline
    consistent(a, n)
    consistent(b, n)
    assert a.dirty_released == 0
    assert a.inspections == a.cleans >= n  # after: one inspection per clean
    assert 0 < a.first_pass < a.released
    # the same connectors in both runs; without inspection each is cleaned once and leaves
    assert {d: c["connectors"] for d, c in a.by_dirt.items()} == {d: c["connectors"] for d, c in b.by_dirt.items()}
    assert (b.released, b.cleans, b.quarantined, b.inspections) == (n, n, 0, 0)
    assert b.dirty_released > 0  # the default mix: one dry clean leaves some faces failing
    # the station's own records, as QA would read them
    inspected = tmp_path / "inspected"
    assert db_count(inspected, "SELECT count(*) FROM attempts WHERE outcome = 'cleaned'") == a.cleans
    assert db_count(inspected, "SELECT count(*) FROM attempts WHERE outcome != 'cleaned'") == 0
    assert db_count(inspected, "SELECT count(*) FROM inspections") == a.inspections
    assert db_count(inspected, "SELECT count(*) FROM inspections WHERE verdict = 'pass'") == a.released
    assert db_count(inspected, "SELECT count(*) FROM quarantine") == a.quarantined
    assert db_count(inspected, "SELECT count(DISTINCT connector) FROM attempts") == n  # each scanned by its code
    once = (
        "SELECT count(*) FROM (SELECT connector FROM attempts WHERE outcome = 'cleaned' GROUP BY connector"
        " HAVING count(*) = 1) AS a JOIN inspections i ON i.connector = a.connector AND i.verdict = 'pass'"
    )
    assert db_count(inspected, once) == a.first_pass  # first-pass yield: one clean, then PASS
    assert db_count(tmp_path / "baseline", "SELECT count(*) FROM inspections") == 0


def test_a_dirty_mix_escapes_without_inspection_and_not_with_it(tmp_path):
    n = 20
    a = pop.run_inspected(Config().replace("inspection", mode="after"), n, 3, tmp_path / "a", mix=DIRTY_MIX)
    b = pop.run_baseline(Config(), n, 3, tmp_path / "b", mix=DIRTY_MIX)
    consistent(a, n)
    consistent(b, n)
    assert a.dirty_released == 0 and a.first_pass < n  # some needed a second clean, or went to quarantine
    assert b.dirty_released >= n // 4, b.by_dirt  # oily faces are not fixed by a dry clean
    assert b.by_dirt["oily"]["dirty_released"] == b.by_dirt["oily"]["connectors"]


def test_inspect_first_without_codes_with_cassettes_and_fluid_running_out(tmp_path):
    """Mode first, the loop following the connector in hand; wet-to-dry every time, a cassette
    good for 10 cleans and a reservoir of 12 drops: the operator refits, declares new, refills
    when the station says so, and still nothing dirty leaves and no rule is broken."""
    n = 30
    config = (
        Config()
        .replace("inspection", mode="first", reclean="wet,wet")
        .replace("cassette", capacity_positions=30)
        .replace("dispenser", reservoir_drops=12)
    )
    a = pop.run_inspected(config, n, 8, tmp_path, codes=False, mix=DIRTY_MIX)
    consistent(a, n)
    assert a.dirty_released == 0
    assert a.inspections == n + a.cleans  # first: one inspection before any clean, one after each
    assert a.cassettes == -(-a.cleans // 10) and a.cassettes > 1
    assert a.refills >= 1
    assert db_count(tmp_path, "SELECT count(*) FROM cassettes") == a.cassettes
    assert db_count(tmp_path, "SELECT count(*) FROM attempts WHERE connector IS NOT NULL") == 0
    assert db_count(tmp_path, "SELECT count(*) FROM attempts WHERE outcome = 'cleaned' AND mode = 'wet'") == a.cleans


def test_verdicts_on_the_gpio_lines_of_an_automated_inspector(tmp_path):
    n = 12
    config = Config().replace("inspection", mode="after", gpio_fitted=True)
    a = pop.run_inspected(config, n, 6, tmp_path, mix=DIRTY_MIX)
    consistent(a, n)
    assert a.dirty_released == 0
    assert db_count(tmp_path, "SELECT count(*) FROM inspections WHERE source = 'gpio'") == a.inspections


def test_a_seed_reproduces_a_run(tmp_path):
    one = pop.run(Config(), 8, seed=5, state_dir=tmp_path / "one")
    two = pop.run(Config(), 8, seed=5, state_dir=tmp_path / "two")
    for x, y in ((one.inspected, two.inspected), (one.baseline, two.baseline)):
        x.wall_s = y.wall_s = 0.0
        assert x == y


def test_a_workflow_without_inspection_is_refused(tmp_path):
    with pytest.raises(pop.PopulationError, match="after or first"):
        pop.run_inspected(Config(), 3, 1, tmp_path)


def station(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "station", *args],
        cwd=ROOT,
        stdin=subprocess.DEVNULL,  # no terminal
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_cli_prints_the_table(tmp_path):
    out = station("sim", "--population", "12", "--seed", "4", "--mode", "first", "--state-dir", str(tmp_path))
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith("population: 12 connectors, seed 4") and "workflow first" in lines[0]
    assert "| dirty connectors released (face fails IEC 61300-3-35) | 0 (0.0%) |" in out.stdout
    assert "| simulator violations | 0 | 0 |" in out.stdout
    assert "| connectors | 12 | 12 |" in out.stdout
    assert (tmp_path / "inspected" / DB_NAME).exists() and (tmp_path / "baseline" / DB_NAME).exists()
    again = station("sim", "--population", "12", "--state-dir", str(tmp_path))
    assert again.returncode == 2 and "already holds a population run" in again.stderr


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--population", "0"], "at least one connector"),
        (["--seed", "3"], "go with --population"),
        (["--population", "5", "--mode", "off"], "invalid choice"),
        (["--population", "many"], "invalid int value"),
    ],
)
def test_bad_arguments_are_said_plainly(args, said):
    out = station("sim", *args)
    assert out.returncode == 2 and said in out.stderr and "Traceback" not in out.stderr
