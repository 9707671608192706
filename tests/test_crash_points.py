"""Power cut at every physical action (issue 11; docs/design.md section 3, rules 1, 4, 6, 7, 8).

In the spirit of SQLite's crash tests at every write: one clean (dry, wet-to-dry) or one
maintenance action (jog 3, prime 2, self-test) runs on a simulated bench in virtual time, and
at every output transition the world sees (hw_sim/pins.py `SimFactory.on_output`: each edge of
STEP, ENABLE on and off, pump on and off, each light and buzzer change) the test keeps what a
power cut right after that transition leaves behind: the bytes of the station's database
(station.db and its WAL; every transaction is committed with synchronous=FULL before the
firmware's next output, so these are the disk's contents) and the world file (the bench's
physics, as tests/test_stateful.py writes it at the instant of a cut). For each cut point a
new station then starts on those files - the firmware restarted after the cut, on the same
books and the same physical bench - and the test checks, as an outside auditor (the database
through its own read-only connection, the world's physical record):

* the world recorded no violation; no section was touched or offered twice;
* the books are never below physics (ribbon booked >= positions the wheel physically moved,
  drops booked >= drops that left the nozzle) and never above it by more than the unfinished
  action's reservation (its positions, its one drop);
* exactly one record per attempt started and none left open: an attempt open at the cut is
  closed as interrupted at restart (and announced as recovered), a finished one keeps the
  outcome announced before the cut; a maintenance action's audit record is on disk before its
  first physical action;
* the restarted station is ready with safe outputs, states no more ribbon and fluid than are
  physically there (rule 6), and its next clean is cleaned on fresh ribbon.

Snapshots, not replays: virtual time is deterministic, so running the action again up to
transition k and abandoning the station there would leave the same files; snapshots give every
cut point from one run, and the firmware never has to be stopped inside a handler.

Which points: every transition except the interior step pulses of a position. Of the step
pulses, both edges of: the first and last pulse of each move, the pulse that completes each
position (its index slot arrives) with the pulses just before and after it, and the pulse that
leaves the index slot; plus a seeded sample of SAMPLE_PER_POSITION interior pulses per
position. POWERCUT_ALL=1 cuts after every transition. The SIGKILL variant on a real process is
tests/test_powercut.py (hw_sim/powercut.py --kill-at output:N).
"""

from __future__ import annotations

import os
import random
import shutil
import sqlite3
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from hw_sim import SimBench
from hw_sim.bench import SIM_EPOCH
from hw_sim.world_file import WorldFile
from station.app import DB_NAME
from station.config import Config
from station.events import AttemptFinished, AttemptStarted, Event, MaintenanceDone, Recovered
from station.ports import Sensor
from station.service_jobs import ServiceJobs

ALL = os.environ.get("POWERCUT_ALL") == "1"
SAMPLE_PER_POSITION = 3
SEED = 20261125
SRC = "console:crash"
CFG = Config()
OUTPUTS = ("step", "dir", "enable", "pump", "led_ready", "led_busy", "led_fault", "buzzer")


# ---------------------------------------------------------------------------------- the actions
def clean(wet: bool) -> Callable[[SimBench], None]:
    def run(bench: SimBench) -> None:
        result = bench.clean("female", wet=wet)
        assert result is not None and result.outcome.value == "cleaned", result

    return run


def maintenance(start: Callable[[ServiceJobs, Callable], None]) -> Callable[[SimBench], None]:
    """A maintenance action as the console starts it (on the loop, its result awaited)."""

    def run(bench: SimBench) -> None:
        box: list = []
        bench.loop.call_sync(lambda: start(bench.controller.jobs, box.append))
        assert bench.wait_until(lambda: bool(box), 60)
        assert box[0].ok, box[0]
        bench.run_for(0.5)

    return run


ACTIONS: dict[str, tuple[Callable[[SimBench], None], bool]] = {  # name -> (run, is a clean)
    "dry clean": (clean(False), True),
    "wet clean": (clean(True), True),
    "jog 3": (maintenance(lambda jobs, done: jobs.jog(3, SRC, done)), False),
    "prime 2": (maintenance(lambda jobs, done: jobs.prime(2, SRC, done)), False),
    "selftest": (maintenance(lambda jobs, done: jobs.selftest(SRC, done)), False),
}
AUDITED = {"jog 3": "jog", "prime 2": "prime", "selftest": "selftest"}


# ---------------------------------------------------------------------------------- the reference run
@dataclass
class Cut:
    """What the power cut right after the action's k-th output transition leaves behind."""

    k: int
    role: str
    value: bool
    t: float
    db: tuple[bytes, bytes]  # station.db, station.db-wal
    world: str  # the world file
    positions: int  # physical, at the cut
    drops: int
    index: bool  # the index sensor's reading after the transition
    started: frozenset[int]  # attempts announced as begun before the cut
    announced: dict[int, str]  # outcomes announced before the cut
    job_done: bool  # the maintenance action had reported its end
    pulse: int = 0  # step pulses: its number in the move
    move: int = 0  # step pulses: which move
    what: str = ""
    keep: bool = False  # in the CI subset


@dataclass
class Reference:
    """Runs the action once and keeps a cut point at each of its output transitions."""

    dir: Path
    cuts: list[Cut] = field(default_factory=list)
    recording: bool = False

    def __post_init__(self) -> None:
        self.bench = SimBench(state_dir=self.dir / "state")
        self.world = self.bench.world
        self.scratch = WorldFile(self.dir / "world.json")
        self.roles = {getattr(CFG.pins, role): role for role in OUTPUTS}
        self.started: set[int] = set()
        self.announced: dict[int, str] = {}
        self.job_done = False
        self.move = self.pulse = 0
        self.bench.controller.events.subscribe(self._heard)
        inner = self.bench.factory.on_output
        assert inner is not None

        def on_output(bcm: int, value: bool) -> None:
            inner(bcm, value)  # the world first: the cut comes right after the transition
            if self.recording:
                self._cut(self.roles[bcm], value)

        self.bench.factory.on_output = on_output

    def _heard(self, event: Event) -> None:
        match event:
            case AttemptStarted(id=attempt_id):
                self.started.add(attempt_id)
            case AttemptFinished(id=attempt_id, outcome=outcome):
                self.announced[attempt_id] = outcome.value
            case MaintenanceDone():
                self.job_done = True

    def _disk(self) -> tuple[bytes, bytes]:
        state = self.dir / "state"
        wal = state / f"{DB_NAME}-wal"
        db = ((state / DB_NAME).read_bytes(), wal.read_bytes() if wal.exists() else b"")
        return self.cuts[-1].db if self.cuts and self.cuts[-1].db == db else db  # share unchanged bytes

    def _cut(self, role: str, value: bool) -> None:
        w = self.world
        if role == "enable" and w.stepper_enabled:
            self.move, self.pulse = self.move + 1, 0
        if role == "step" and value:
            self.pulse += 1
        self.scratch.save(w)
        assert w.fitted is not None
        self.cuts.append(
            Cut(
                k=len(self.cuts) + 1,
                role=role,
                value=value,
                t=self.bench.loop.now(),
                db=self._disk(),
                world=self.scratch.path.read_text(),  # type: ignore[union-attr]
                positions=w.fitted.position,
                drops=w.drops_total,
                index=w.sensor("index"),
                started=frozenset(self.started),
                announced=dict(self.announced),
                job_done=self.job_done,
                pulse=self.pulse if role == "step" else 0,
                move=self.move if role == "step" else 0,
            )
        )

    def run(self, action: Callable[[SimBench], None]) -> list[Cut]:
        self.bench.run_for(1.0)
        self.recording = True
        action(self.bench)
        self.recording = False
        assert self.world.violations == [], self.world.violations
        close(self.bench)
        return self.cuts


def level(role: str, value: bool) -> str:
    if role == "enable":  # active low
        return "ENABLE low (driver on)" if not value else "ENABLE high (driver off)"
    return f"{role} {'on' if value else 'off'}"


def select(cuts: list[Cut], rng: random.Random) -> None:
    """Mark the CI subset (`keep`) and name each point (`what`)."""
    pulses: dict[tuple[int, int], list[Cut]] = {}  # (move, pulse) -> its two edges
    for c in cuts:
        if c.role == "step":
            pulses.setdefault((c.move, c.pulse), []).append(c)
        else:
            c.what, c.keep = level(c.role, c.value), True
    for move in sorted({m for m, _ in pulses}):
        numbers = sorted(p for m, p in pulses if m == move)
        last = numbers[-1]
        boundary = {1, last}
        interior: dict[int, list[int]] = {}  # position reached so far -> its interior pulses
        before = cuts[pulses[(move, 1)][0].k - 2]  # the transition before the move's first pulse
        positions, index = before.positions, before.index
        for p in numbers:
            rising = pulses[(move, p)][0]
            if rising.positions != positions:  # this pulse completed a position
                boundary |= {p - 1, p, p + 1}
            if rising.index != index:  # the index slot arrived or was left
                boundary.add(p)
            interior.setdefault(rising.positions, []).append(p)
            positions, index = rising.positions, rising.index
        sampled = set()
        for group in interior.values():
            candidates = [p for p in group if p not in boundary]
            sampled |= set(rng.sample(candidates, min(SAMPLE_PER_POSITION, len(candidates))))
        for p in numbers:
            for c in pulses[(move, p)]:
                kind = "boundary" if p in boundary else "sampled" if p in sampled else "interior"
                c.what = f"step pulse {p}/{last} {'high' if c.value else 'low'} of move {move}, {kind}"
                c.keep = p in boundary or p in sampled


# ---------------------------------------------------------------------------------- the checks
@dataclass(frozen=True)
class Books:
    attempts: dict[int, str | None]
    ribbon: list[tuple[int | None, str, int]]  # attempt, source, positions
    drops: int
    audit: list[tuple[str, str]]

    @property
    def used(self) -> int:
        return sum(p for _, _, p in self.ribbon)


def read_books(path: Path) -> Books:
    """The database as an outside auditor reads it: its own read-only connection."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return Books(
            dict(db.execute("SELECT id, outcome FROM attempts").fetchall()),
            [tuple(r) for r in db.execute("SELECT attempt_id, source, positions FROM ribbon ORDER BY id")],
            db.execute("SELECT count(*) FROM drops").fetchone()[0],
            [tuple(r) for r in db.execute("SELECT kind, action FROM audit ORDER BY id")],
        )
    finally:
        db.close()


def close(bench: SimBench) -> None:
    """`bench.close()` without waiting for gpiozero's hold thread of the panel button, which
    looks for its stop signal only every 0.1 s (hundreds of restarts would wait that long
    each): it is woken first."""
    button = bench.station.hardware.sensors.devices.get(Sensor.BUTTON)  # type: ignore[attr-defined]
    thread = getattr(button, "_hold_thread", None)
    if thread is not None:
        thread.stopping.set()
        thread.holding.set()
    bench.close()


def check_physics(bench: SimBench, where: str) -> None:
    w = bench.world
    assert w.violations == [], f"{where}: {w.violations}"
    assert w.touched_twice() == [], f"{where}: touched twice {w.touched_twice()}"
    for c in w.cassettes.values():
        assert len(c.offered) == len(set(c.offered)), f"{where}: a section offered twice: {c.offered}"


def restart_after(cut: Cut, root: Path) -> tuple[SimBench, Path]:
    """The firmware starts again on the disk and the bench the cut left."""
    d = root / f"cut-{cut.k:04d}"
    d.mkdir()
    (d / DB_NAME).write_bytes(cut.db[0])
    if cut.db[1]:
        (d / f"{DB_NAME}-wal").write_bytes(cut.db[1])
    (d / "world.json").write_text(cut.world)
    bench = SimBench(state_dir=d, wall_start=SIM_EPOCH + cut.t + 60.0, world_options={"state_file": d / "world.json"})
    bench.world.state_file = None  # the physics after the restart need not survive another cut
    return bench, d


def check_cut(action: str, is_clean: bool, cut: Cut, root: Path) -> str:
    """Restart after `cut` and check the books against physics; returns the kind of point."""
    where = f"{action}, power cut after transition {cut.k} ({cut.what})"
    bench, d = restart_after(cut, root)
    try:
        w = bench.world
        cassette = w.cassettes["standard"]
        assert (cassette.position, w.drops_total) == (cut.positions, cut.drops), where
        check_physics(bench, where)
        books = read_books(d / DB_NAME)

        # rule 8: exactly one record per attempt started, none left open
        unfinished = set(cut.started) - set(cut.announced)
        assert set(books.attempts) == set(cut.started), f"{where}: records {books.attempts}, begun {cut.started}"
        assert all(books.attempts[i] == outcome for i, outcome in cut.announced.items()), where
        assert all(books.attempts[i] == "interrupted" for i in unfinished), f"{where}: {books.attempts}"
        assert {i for r in bench.heard(Recovered) for i in r.interrupted} == unfinished, where
        if not is_clean:
            assert ("maintenance", AUDITED[action]) in books.audit, f"{where}: no audit record"

        # rules 1, 4, 6: never below physics, above it only by the unfinished action's reservation
        if is_clean:
            in_flight = unfinished
            slack = sum(p for a, _, p in books.ribbon if a in unfinished)
        else:
            in_flight = not cut.job_done
            slack = sum(p for _, s, p in books.ribbon if s != "clean") if in_flight else 0
        assert cassette.position <= books.used <= cassette.position + slack, (
            f"{where}: ribbon booked {books.used}, moved {cassette.position}, in flight {slack}"
        )
        assert w.drops_total <= books.drops <= w.drops_total + (1 if in_flight else 0), (
            f"{where}: drops booked {books.drops}, dispensed {w.drops_total}"
        )

        # rule 7 and 6: ready, safe, and stating no more than is physically there
        assert bench.state == "idle", f"{where}: {bench.state} {bench.controller.faults.detail}"
        assert not w.stepper_enabled and not w.pump_on, where
        status = bench.status()
        assert status.ribbon_remaining is not None
        assert status.ribbon_remaining <= cassette.capacity - cassette.position, where
        assert status.fluid_drops_left <= w.reservoir, where

        # rule 1 across the cut: the next clean is on fresh ribbon (the world judges the prompt)
        result = bench.clean("female")
        assert result is not None and result.outcome.value == "cleaned", f"{where}: next clean {result}"
        check_physics(bench, f"{where}, next clean")
        after = read_books(d / DB_NAME)
        assert None not in after.attempts.values(), where
        assert after.used >= cassette.position and after.drops >= w.drops_total, where
    finally:
        close(bench)
        shutil.rmtree(d, ignore_errors=True)
    if is_clean and not cut.started:
        return "before the record"
    return "in flight" if (unfinished if is_clean else not cut.job_done) else "after"


@pytest.fixture
def scratch(tmp_path):
    """Where the cut points' disks go: tmpfs when there is one (every SQLite commit is an
    fsync; on tmpfs it costs nothing, and the test measures the firmware, not the disk)."""
    shm = Path("/dev/shm")
    root = Path(tempfile.mkdtemp(prefix="mpo-crash-", dir=shm if shm.is_dir() else tmp_path))
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.mark.parametrize("action", list(ACTIONS))
def test_power_cut_after_every_output_transition(action, scratch, capsys):
    tmp_path = scratch
    run, is_clean = ACTIONS[action]
    cuts = Reference(tmp_path / "reference").run(run)
    select(cuts, random.Random(f"{SEED}:{action}"))
    roles = {c.role for c in cuts}
    assert {"led_ready", "led_busy"} <= roles
    assert ({"step", "enable"} <= roles) == (action != "prime 2"), roles
    assert ("pump" in roles) == (action in ("wet clean", "prime 2", "selftest")), roles
    chosen = cuts if ALL else [c for c in cuts if c.keep]
    kinds: dict[str, int] = {}
    for cut in chosen:
        kind = check_cut(action, is_clean, cut, tmp_path)
        kinds[kind] = kinds.get(kind, 0) + 1
    if is_clean:
        # The busy light goes on before the attempt is on disk (the controller's lights react
        # before the entry action's write): a cut there leaves no record; nothing was consumed.
        first = [c for c in cuts if not c.started]
        assert [c.role for c in first] == ["led_ready", "led_busy"], [c.what for c in first]
        assert all(c.positions == 0 and c.drops == 0 for c in first)
    steps = sum(c.role == "step" for c in cuts)
    with capsys.disabled():
        print(
            f"\n[crash points] {action}: {len(cuts)} output transitions ({steps} step edges), "
            f"cut after {len(chosen)} ({'all' if ALL else 'CI subset'}): "
            + ", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items()))
        )
