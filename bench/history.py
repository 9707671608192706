"""History: the same figures on a database grown to years of use as on an empty one, same run.

    .venv/bin/python -m bench.history [--attempts 1000000] [--cassettes 2000] [--runs 5] [--quick]

Design section 4 ("the loop never stalls") and section 7 ("history"): a station ten years old
answers as fast as a new one. Two state directories are built: one with an empty database (a
station on its first day: a cassette of each type declared, no clean yet) and one grown with
SQL, through the station's own schema and triggers, to `--attempts` clean attempts (outcome
mix of a real station: mostly cleaned, some failed, rejected and interrupted; about 40 % wet),
their ribbon reservations, the drops, `--cassettes` cassettes of both types with their fits, a
refill every 1,800 drops, and the audit rows. Its totals are checked against a full recount
before anything is measured.

Then, `--runs` times (after one warm-up), on both directories, interleaved so that the load of
a shared machine weighs on both alike:

* the books of one dry and one wet clean (the store calls the controller makes: begin_attempt,
  reserve_positions, [record_drop], finish_attempt, then cassette(), fluid(), summary()), and
  those three reads alone; cleans alternate between the two databases;
* start-up to ready: spawn `station sim --headless --state-dir DIR` and time until it has
  printed its console's pseudo-terminal and answered `STAT?` on it (pyserial); the two start one
  after the other, alternating which first;
* round trips over those consoles, alternating between the two stations: `STAT?` (answered on
  the controller loop), `counters` (and how many lines it answers) and `log 10`.

Reported: the median over the runs (of each run's median for the round trips and the books),
and the ratio big / empty. Targets: every ratio <= 1.2; `counters` at most 40 lines.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import serial

from bench.common import median, table
from station.domain import CassetteType, Mode, Outcome
from station.store import Store

ROOT = Path(__file__).resolve().parent.parent
DROPS_PER_REFILL = 1800  # of a 2,000-drop reservoir: refilled when low
POSITIONS_PER_CLEAN = 3
START_TIMEOUT_S = 120.0
REPLY_TIMEOUT_S = 30.0
RATIO_TARGET = 1.2
COUNTERS_LINES_TARGET = 40

# ------------------------------------------------------------------------------- the history


def build_history(path: Path, attempts: int, cassettes: int, *, t0: float = 1_767_225_600.0) -> dict[str, int]:
    """Create a station database at `path` (Store: the current schema and its triggers) and fill
    it with `attempts` attempts over `cassettes` cassettes in one transaction of bulk SQL.
    One attempt every 150 s (about 4.8 years for a million). Returns the rows per table."""
    Store(path).close()
    per = max(1, math.ceil(attempts / max(1, cassettes)))  # attempts per cassette
    used_cassettes = math.ceil(attempts / per) if attempts else 0
    capacity = max(1500, POSITIONS_PER_CLEAN * per)
    args = {"n": attempts, "k": used_cassettes, "per": per, "t0": t0, "dt": 150.0, "cap": capacity}
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("PRAGMA synchronous=OFF")  # a benchmark fixture: durability of the build is not measured
        db.execute("PRAGMA cache_size=-262144")
        db.execute("BEGIN IMMEDIATE")
        if attempts:
            _fill(db, args)
        db.execute("COMMIT")
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # the station starts from the main file, as after a clean stop
        return {
            t: db.execute(f"SELECT coalesce(max(rowid), 0) FROM {t}").fetchone()[0]
            for t in ("attempts", "ribbon", "drops", "refills", "cassettes", "cassette_fits", "audit")
        }
    finally:
        db.close()


# A deterministic spread of outcomes and modes: h in 0..999, w in 0..99, from the attempt number.
_ATTEMPTS_SQL = """
WITH RECURSIVE seq(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM seq WHERE i < :n),
x AS (
    SELECT i, ((i * 1103515245 + 12345) / 65536) % 1000 AS h, ((i * 214013 + 2531011) / 65536) % 100 AS w,
           1 + (i - 1) / :per AS c, :t0 + i * :dt AS t
    FROM seq
),
y AS (
    SELECT i, c, t, w,
           CASE WHEN h < 850 THEN 'cleaned' WHEN h < 930 THEN 'failed' WHEN h < 980 THEN 'rejected'
                ELSE 'interrupted' END AS outcome
    FROM x
)
INSERT INTO attempts(id, started_at, ended_at, mode, gender, cassette_id, swipe_start_s, pass_s, outcome, reason)
SELECT i, t, t + 20.0,
       CASE WHEN w < 40 THEN 'wet' ELSE 'dry' END,
       CASE WHEN outcome = 'rejected' THEN 'male' WHEN c % 5 = 0 THEN 'male' ELSE 'female' END,
       CASE WHEN outcome = 'rejected' THEN NULL ELSE c END,
       CASE WHEN outcome IN ('cleaned', 'failed') THEN 0.4 + w / 250.0 END,
       CASE WHEN outcome IN ('cleaned', 'failed') THEN 0.5 + w / 100.0 END,
       outcome,
       CASE outcome WHEN 'cleaned' THEN '' WHEN 'failed' THEN 'swipe too fast: one slow stroke, top to bottom'
            WHEN 'rejected' THEN 'male connector: fit the male MT cassette'
            ELSE 'power lost or station stopped during the clean' END
FROM y
"""

_STEPS = [
    # cassettes: every fifth a male MT one; each used for `per` attempts, retired when the next
    # of its type is declared (the last of each type is current)
    """
    WITH RECURSIVE seq(c) AS (SELECT 1 UNION ALL SELECT c + 1 FROM seq WHERE c < :k),
    x AS (SELECT c, CASE WHEN c % 5 = 0 THEN 'male_mt' ELSE 'standard' END AS type,
                 :t0 + ((c - 1) * :per + 1) * :dt - 10.0 AS declared FROM seq)
    INSERT INTO cassettes(id, type, capacity, declared_at, retired_at, note)
    SELECT c, type, :cap, declared, lead(declared) OVER (PARTITION BY type ORDER BY c),
           CASE WHEN c <= 2 THEN 'first fit: assumed new' ELSE '' END
    FROM x ORDER BY c
    """,
    """
    INSERT INTO cassette_fits(cassette_id, fitted_at, removed_at)
    SELECT id, declared_at, lead(declared_at) OVER (ORDER BY id) FROM cassettes ORDER BY id
    """,
    _ATTEMPTS_SQL,
    # ribbon reserved by every attempt that got as far as the wheel (all but the rejected)
    """
    INSERT INTO ribbon(t, cassette_id, attempt_id, first_position, positions, source)
    SELECT started_at + 1.0, cassette_id, id,
           3 * (row_number() OVER (PARTITION BY cassette_id ORDER BY id) - 1), 3, 'clean'
    FROM attempts WHERE cassette_id IS NOT NULL ORDER BY id
    """,
    """
    INSERT INTO drops(t, attempt_id, source)
    SELECT started_at + 2.0, id, 'clean' FROM attempts WHERE mode = 'wet' AND cassette_id IS NOT NULL ORDER BY id
    """,
    # a refill every DROPS_PER_REFILL drops (drop ids run 1..N in this fresh table)
    f"""
    WITH RECURSIVE seq(k) AS (SELECT 1 UNION ALL SELECT k + 1 FROM seq
                              WHERE k < (SELECT count(*) FROM drops) / {DROPS_PER_REFILL})
    INSERT INTO refills(t, capacity, last_drop_id, drop_total, source)
    SELECT (SELECT t FROM drops WHERE id = k * {DROPS_PER_REFILL}) + 30.0, 2000,
           k * {DROPS_PER_REFILL}, k * {DROPS_PER_REFILL}, 'panel'
    FROM seq WHERE (SELECT count(*) FROM drops) >= {DROPS_PER_REFILL}
    """,
    # the audit: cassettes declared, refills, recoveries of interrupted attempts, a fault now and then
    """
    INSERT INTO audit(t, kind, action, detail, source)
    SELECT t, kind, action, detail, source FROM (
        SELECT declared_at AS t, 'cassette' AS kind, 'new' AS action,
               json_object('id', id, 'type', type, 'capacity', capacity, 'note', note) AS detail, 'panel' AS source
        FROM cassettes
        UNION ALL
        SELECT t, 'fluid', 'refill', json_object('capacity', capacity), source FROM refills
        UNION ALL
        SELECT started_at + 600.0, 'recovery', 'interrupted', json_object('attempts', json_array(id)), 'station'
        FROM attempts WHERE outcome = 'interrupted'
        UNION ALL
        SELECT started_at + 30.0, 'fault', 'raised', '{"code": "jam"}', 'station' FROM attempts WHERE id % 997 = 0
    ) ORDER BY t
    """,
]


def _fill(db: sqlite3.Connection, args: dict[str, float]) -> None:
    for sql in _STEPS:
        db.execute(sql, args)


def check_tallies(path: Path) -> list[str]:
    """The database's totals against a full recount of its ledgers: what differs (empty: all equal)."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        checks = {
            "attempts by outcome": (
                "SELECT outcome, n FROM attempt_tally WHERE n != 0 ORDER BY 1",
                "SELECT coalesce(outcome, 'open'), count(*) FROM attempts GROUP BY 1 ORDER BY 1",
            ),
            "ribbon used per cassette": (
                "SELECT id, used FROM cassettes ORDER BY id",
                "SELECT c.id, coalesce(sum(r.positions), 0) FROM cassettes c LEFT JOIN ribbon r "
                "ON r.cassette_id = c.id GROUP BY c.id ORDER BY c.id",
            ),
            "drops dispensed": ("SELECT n FROM drop_tally", "SELECT count(*) FROM drops"),
            "drops at each refill": (
                "SELECT id, drop_total FROM refills ORDER BY id",
                "SELECT f.id, (SELECT count(*) FROM drops d WHERE d.id <= f.last_drop_id) FROM refills f ORDER BY f.id",
            ),
        }
        wrong = []
        for name, (kept, counted) in checks.items():
            if db.execute(kept).fetchall() != db.execute(counted).fetchall():
                wrong.append(name)
        return wrong
    finally:
        db.close()


# ------------------------------------------------------------------------------- a station process


class Station:
    """A `station sim --headless` process on one state directory, and a client on its console."""

    def __init__(self, state_dir: Path, config: Path) -> None:
        env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
        env.pop("NOTIFY_SOCKET", None)
        command = [sys.executable, "-m", "station", "sim", "--headless", "--state-dir", str(state_dir)]
        self.log = open(state_dir / "bench-stderr.log", "ab")  # closed by stop(), once the process is gone
        self.client: serial.Serial | None = None
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(
            [*command, "--config", str(config)], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=self.log, text=True
        )
        try:
            assert self.proc.stdout is not None
            console = ""
            while not console:
                line = self.proc.stdout.readline()
                if not line:
                    raise SystemExit(f"the station exited ({self.proc.wait()}) before ready; see {self.log.name}")
                if line.startswith("console: "):
                    console = line.split(": ", 1)[1].strip()
            self.client = serial.Serial(console, 115200, timeout=START_TIMEOUT_S)
            stat = self.reply(b"STAT?")
            self.startup = time.perf_counter() - t0  # spawned to ready: the console answers from the loop
            self.state = _state(stat)
            self.client.timeout = REPLY_TIMEOUT_S
        except BaseException:
            self.stop()
            raise

    def reply(self, command: bytes) -> list[bytes]:
        """Send one command; its whole answer (a query: one line; others: up to the OK/ERR line).
        Read in chunks as they arrive: pyserial's readline reads a byte per system call, which
        would make the figures measure the client and the answer's length, not the station."""
        client = self.client
        assert client is not None
        client.write(command + b"\n")
        pending = b""
        while True:
            chunk = client.read(max(1, client.in_waiting))
            if not chunk:
                raise SystemExit(f"no complete answer to {command!r} in time: {pending!r}")
            pending += chunk
            lines = [line + b"\n" for line in pending.split(b"\n")[:-1]]
            if lines and (command.endswith(b"?") or lines[-1].startswith((b"OK", b"ERR"))):
                return lines

    def round_trip(self, command: bytes, check: Callable[[list[bytes]], bool]) -> float:
        t0 = time.perf_counter()
        lines = self.reply(command)
        elapsed = time.perf_counter() - t0
        if not check(lines):
            raise SystemExit(f"unexpected answer to {command!r}: {lines[:3]!r} ...")
        return elapsed

    def stop(self) -> None:
        if self.client is not None:
            self.client.close()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def _state(stat: list[bytes]) -> str:
    """The state a `STAT?` answer reports (one line of JSON)."""
    try:
        return str(json.loads(stat[0])["state"])
    except (ValueError, KeyError, TypeError):
        raise SystemExit(f"unexpected STAT? answer: {stat!r}") from None


def _ok(lines: list[bytes]) -> bool:
    return lines[-1].startswith(b"OK")


COMMANDS: dict[str, tuple[bytes, Callable[[list[bytes]], bool]]] = {
    "STAT?": (b"STAT?", lambda lines: bool(_state(lines))),
    "counters": (b"counters", _ok),
    "log 10": (b"log 10", _ok),
}


def station_sessions(dirs: dict[str, Path], config: Path, n: int, first: str) -> dict[str, dict[str, float]]:
    """Start a station on each directory (one after the other, `first` first), then time the
    console commands alternately on the two, so that the machine's load weighs on both alike.
    Returns, per directory: start-up, median round trip per command, `counters` lines, state."""
    order = sorted(dirs, key=lambda name: name != first)
    stations: dict[str, Station] = {}
    try:
        for name in order:
            stations[name] = Station(dirs[name], config)
        out = {name: {"startup": s.startup, "state_idle": float(s.state == "idle")} for name, s in stations.items()}
        for key, (command, check) in COMMANDS.items():
            times: dict[str, list[float]] = {name: [] for name in stations}
            for i in range(n + 3):  # the first 3: warm-up
                for name in order if i % 2 else order[::-1]:
                    elapsed = stations[name].round_trip(command, check)
                    if i >= 3:
                        times[name].append(elapsed)
            for name in stations:
                out[name][key] = median(times[name])
        for name, s in stations.items():
            out[name]["counters_lines"] = float(len(s.reply(b"counters")))
        return out
    finally:
        for s in stations.values():
            s.stop()


# ------------------------------------------------------------------------------- the books of a clean


def books(paths: dict[str, Path], cleans: int) -> dict[str, dict[str, float]]:
    """Median seconds of the store calls of one dry and one wet clean, and of the reads alone,
    cleans alternating between the databases."""
    stores = {name: Store(path, fluid_capacity=2000) for name, path in paths.items()}
    try:
        cassettes = {}
        for name, store in stores.items():
            cassette = store.cassette(CassetteType.STANDARD)
            if cassette is None or cassette.remaining < 2 * POSITIONS_PER_CLEAN * cleans:
                cassette = store.new_cassette(CassetteType.STANDARD, 1_000_000, time.time(), note="benchmark")
            cassettes[name] = cassette
        keys = ("dry clean books", "wet clean books", "reads of a clean")
        times: dict[str, dict[str, list[float]]] = {name: {k: [] for k in keys} for name in stores}
        for i in range(cleans):
            for wet in (False, True):
                for name in stores if i % 2 else list(stores)[::-1]:
                    store, cassette = stores[name], cassettes[name]
                    t = time.time()
                    t0 = time.perf_counter()
                    attempt = store.begin_attempt(t, Mode.WET if wet else Mode.DRY)
                    store.reserve_positions(cassette, POSITIONS_PER_CLEAN, t, attempt_id=attempt, gender="female")
                    if wet:
                        store.record_drop(t, attempt_id=attempt)
                    store.finish_attempt(
                        attempt, Outcome.CLEANED, "", t, gender="female", swipe_start_s=0.5, pass_s=0.6
                    )
                    t1 = time.perf_counter()
                    store.cassette(CassetteType.STANDARD)
                    store.fluid()
                    store.summary()
                    t2 = time.perf_counter()
                    times[name]["wet clean books" if wet else "dry clean books"].append(t2 - t0)
                    times[name]["reads of a clean"].append(t2 - t1)
            if i % 200 == 199:
                for store in stores.values():
                    store.refill(time.time(), source="benchmark")  # the reservoir never runs dry
        return {name: {k: median(v) for k, v in by_key.items()} for name, by_key in times.items()}
    finally:
        for store in stores.values():
            store.close()


# ------------------------------------------------------------------------------- the run


def run(attempts: int, cassettes: int, runs: int, n: int, cleans: int, directory: Path) -> str:
    from station.app import DB_NAME

    dirs = {"empty": directory / "empty", "big": directory / "big"}
    for d in dirs.values():
        d.mkdir(parents=True)
    config = directory / "station.toml"
    config.write_text("[console]\nmax_commands_per_s = 1000.0  # back-to-back benchmark commands\n")
    new = Store(dirs["empty"] / DB_NAME)  # a station on its first day: both cassettes declared, no clean yet
    for ctype in CassetteType:
        new.new_cassette(ctype, 1500, time.time(), note="first fit: assumed new")
    new.close()
    t0 = time.perf_counter()
    rows = build_history(dirs["big"] / DB_NAME, attempts, cassettes)
    built_s = time.perf_counter() - t0
    wrong = check_tallies(dirs["big"] / DB_NAME)
    if wrong:
        raise SystemExit(f"the built database's totals differ from a recount: {', '.join(wrong)}")
    size_mb = (dirs["big"] / DB_NAME).stat().st_size / 1e6
    header = (
        f"big database: {rows['attempts']:,} attempts, {rows['ribbon']:,} ribbon reservations, "
        f"{rows['drops']:,} drops, {rows['refills']:,} refills, {rows['cassettes']:,} cassettes "
        f"({rows['cassette_fits']:,} fits), {rows['audit']:,} audit rows; {size_mb:.0f} MB, "
        f"built in {built_s:.1f} s; its totals equal a full recount"
    )
    print(header, file=sys.stderr, flush=True)

    station_sessions(dirs, config, 1, "empty")  # warm-up: the simulated bench's own file, page cache, bytecode
    results: dict[str, dict[str, list[float]]] = {"empty": {}, "big": {}}
    for r in range(runs):
        figures = books({name: d / DB_NAME for name, d in dirs.items()}, cleans)  # first: ten records for `log 10`
        sessions = station_sessions(dirs, config, n, "empty" if r % 2 == 0 else "big")
        for name in dirs:
            for k, v in {**figures[name], **sessions[name]}.items():
                results[name].setdefault(k, []).append(v)
        print(f"run {r + 1}/{runs} done", file=sys.stderr, flush=True)

    def med(name: str, k: str) -> float:
        return median(results[name][k])

    table_rows = []
    verdicts = []
    for k, label in (
        ("startup", "start-up to ready (`station sim --headless`)"),
        ("STAT?", "console `STAT?` round trip"),
        ("counters", "console `counters` round trip"),
        ("log 10", "console `log 10` round trip"),
        ("dry clean books", "books of a dry clean (3 commits + 3 reads)"),
        ("wet clean books", "books of a wet clean (4 commits + 3 reads)"),
        ("reads of a clean", "reads of a clean: cassette(), fluid(), summary()"),
    ):
        e, b = med("empty", k), med("big", k)
        ratio = b / e
        verdicts.append(ratio <= RATIO_TARGET)
        table_rows.append((label, f"{e * 1e3:.3f}", f"{b * 1e3:.3f}", f"{ratio:.2f}", f"<= {RATIO_TARGET}"))
    lines_e, lines_b = int(med("empty", "counters_lines")), int(med("big", "counters_lines"))
    table_rows.append(
        ("`counters` answer, lines", lines_e, lines_b, f"{lines_b / lines_e:.2f}", f"<= {COUNTERS_LINES_TARGET} lines")
    )
    verdicts.append(lines_b <= COUNTERS_LINES_TARGET)
    idle = [results[name]["state_idle"] for name in dirs]
    notes = [
        header,
        f"{runs} runs after one warm-up; in each, the two stations start one after the other (alternating which "
        f"first) and their commands alternate; round trips: median of {n} per run; books: median of {cleans} "
        "cleans per run, alternating the databases; the table gives the median over the runs.",
        "every start-up reached idle" if all(all(v) for v in idle) else "WARNING: a start-up did not reach idle",
        f"targets met: {sum(verdicts)} of {len(verdicts)}",
    ]
    return table(["figure", "empty (ms)", "big (ms)", "big / empty", "target"], table_rows) + "\n\n" + "\n".join(notes)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--attempts", type=int, default=1_000_000, help="attempts in the big database (default 1,000,000)")
    ap.add_argument("--cassettes", type=int, default=2000, help="cassettes in the big database (default 2,000)")
    ap.add_argument("--runs", type=int, default=5, help="runs, alternating the two databases (default 5)")
    ap.add_argument("--n", type=int, default=50, help="round trips per console command per run (default 50)")
    ap.add_argument("--cleans", type=int, default=200, help="dry and wet cleans per run for the books (default 200)")
    ap.add_argument("--quick", action="store_true", help="a smoke test: 20,000 attempts, 40 cassettes, 2 short runs")
    ap.add_argument("--dir", help="build the state directories here (must not exist; kept afterwards)")
    args = ap.parse_args()
    if args.quick:
        args.attempts, args.cassettes, args.runs, args.n, args.cleans = 20_000, 40, 2, 10, 20
    if args.dir:
        print(run(args.attempts, args.cassettes, args.runs, args.n, args.cleans, Path(args.dir)))
    else:
        with tempfile.TemporaryDirectory(prefix="mpo-history-") as tmp:
            print(run(args.attempts, args.cassettes, args.runs, args.n, args.cleans, Path(tmp)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
