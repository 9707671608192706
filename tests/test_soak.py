"""Soak: ten thousand cleans on one simulated bench, with faults, refills, new cassettes and
power cuts, checked against physical truth and for growth (memory, threads, file descriptors).

    SOAK=1 python -m pytest tests/test_soak.py -s          # 10,000 cleans (prints a summary line)
    SOAK=1 SOAK_CLEANS=500 python -m pytest tests/test_soak.py -s

Environment: SOAK_CLEANS (clean attempts, default 10000), SOAK_RESTART_EVERY (power cut about
every N attempts, default 500), SOAK_SEED (default 20261124), SOAK_MAX_WALL_S (optional: stop
starting new cleans after this much wall time, and say so in the summary; never an assertion).

What a run does, all in virtual time on one state directory: a mix of female, male and bent
connectors on the matching (and sometimes the wrong) cassette, dry and wet, mostly good swipes
and every kind of bad one; about one clean in 40 with an injected fault (every kind in
`hw_sim.world.Fault`, some mid-cycle), cleared by the technician with a button press (or the
console); the reservoir refilled and recorded when low; used-up cassettes replaced by new ones,
declared new with a long press; maintenance console traffic (status, jog, prime, self-test);
and about every SOAK_RESTART_EVERY attempts a power cut at a random instant (between cleans or
in the middle of one): the firmware is abandoned where it stands, and a new one starts on the
same books and the same physical bench.

Checked: no violation of docs/design.md section 3 by the simulator's judge, no ribbon section touched
twice, books never below physical truth (ribbon per cassette, drops), every attempt closed with
exactly the outcome announced, and no growth between warm-up and the end: tracemalloc's current
memory (+5 MB), threads (+0), open file descriptors (+2).
"""

from __future__ import annotations

import gc
import os
import random
import shutil
import tempfile
import threading
import time
import tracemalloc
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from test_stateful import VirtualTimeContext, reap  # the same console-in-virtual-time and power-cut helpers

from hw_sim import SimBench
from hw_sim.world import Fault
from station.config import Config
from station.console import protocol as P
from station.console.access import Session, hash_pin
from station.console.commands import PIN_KEY, REGISTRY
from station.console.server import Dispatcher
from station.domain import CassetteType
from station.events import AttemptFinished, AttemptStarted, Event, FaultRaised
from station.loop import Timer

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        os.environ.get("SOAK") != "1",
        reason="soak test: run it with `SOAK=1 python -m pytest tests/test_soak.py -s` "
        "(SOAK_CLEANS=N for fewer or more than 10,000 cleans)",
    ),
]

CLEANS = int(os.environ.get("SOAK_CLEANS", "10000"))
RESTART_EVERY = int(os.environ.get("SOAK_RESTART_EVERY", "500"))
SEED = int(os.environ.get("SOAK_SEED", "20261124"))
MAX_WALL_S = float(os.environ.get("SOAK_MAX_WALL_S", "0") or 0)
WARMUP = max(1, min(1000, CLEANS // 5))  # attempts before the growth baseline is taken

PIN = "4711"
MEMORY_MARGIN = 5 * 1024 * 1024
FD_MARGIN = 2  # one open bench at both measurements
EPOCH = 1767225600.0  # hw_sim.bench.SIM_EPOCH
FAULT_KINDS = [
    Fault.JAM,
    Fault.SLIP,
    Fault.MISSING_INDEX,
    Fault.EMPTY_RIBBON,
    Fault.PUMP_CLOG,
    Fault.EMPTY_RESERVOIR,
    Fault.STUCK_SENSOR,
    Fault.GATE_BOUNCE,
    Fault.CASSETTE_PULLED,
    Fault.CONNECTOR_PULLED,
]
BAD_SWIPES = [
    {"direction": "up"},
    {"variant": "partial"},
    {"variant": "back_and_forth"},
    {"variant": "double"},
    {"duration_s": 0.05},  # too fast
    {"duration_s": 4.5},  # too slow
    {"bounce": True},  # contact bounce: still a good swipe
    None,  # no swipe at all (times out)
]


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def fd_targets() -> list[str]:
    targets = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            targets.append(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:
            pass
    return sorted(targets)


class Soak:
    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.world_file = directory / "world.json"
        self.rng = random.Random(SEED)
        self.config = Config()
        self.wall_start = EPOCH
        self.bench: SimBench | None = None
        self.lives = 0
        self.attempts = 0  # attempts the firmware started (all lives)
        self.reported: dict[int, str] = {}  # attempt id -> announced outcome, this life
        self.problems: list[str] = []
        self.faults: Counter[str] = Counter()
        self.console_ok: Counter[str] = Counter()
        self.injections: Counter[str] = Counter()
        self.cuts_mid_clean = 0
        self.fresh = 0
        self.declared: dict[int, tuple[str, int]] = {}  # store cassette id -> (physical, position then)
        self.current_ids: dict[CassetteType, int] = {}
        self.cut_due = False
        self.injected: set[Fault] = set()
        self.pending: list[Timer] = []  # this clean's scheduled mishaps
        self.last_fitted = "standard"  # SimBench fits the standard cassette on a new bench
        self.batch_male = False
        self.batch_left = 0
        self.boot(first=True)

    # ------------------------------------------------------------------ lives
    def boot(self, first: bool = False) -> None:
        self.lives += 1
        bench = SimBench(
            self.config, self.dir, wall_start=self.wall_start, world_options={"state_file": str(self.world_file)}
        )
        bench.world.state_file = None  # written at the instant of a power cut (below)
        self.bench = bench
        bench.controller.events.subscribe(self.on_event)
        if first:
            bench.controller.store.set_setting(PIN_KEY, hash_pin(PIN), bench.controller.wall(), source="soak")
        clock = bench.clock.now
        self.session = Session("soak", self.config.console.idle_logout_s, clock=clock)
        controller = bench.controller
        self.dispatcher = Dispatcher(
            REGISTRY,
            lambda write, session, errors: VirtualTimeContext(controller, session, errors, write),
            self.session,
            max_per_s=1000.0,
            clock=clock,
        )
        self.injected = set()
        bench.run_for(0.5)
        self.track_declarations()

    def power_cut(self) -> None:
        """The firmware stops where it stands; the bench (and its physics file) carries on."""
        old = self.bench
        wall_end = self.wall_start + old.clock.now()
        old.world.state_file = self.world_file
        old.world._persist()  # what a continuous writer would have left at this instant
        old.world.state_file = None
        old.power_cut()  # the dead board drives nothing any more; its state directory lock goes
        self.check_books()
        self.check_reported()
        self.bench = None
        self.wall_start = wall_end + 1.0
        self.boot()
        reap(old)

    def on_event(self, event: Event) -> None:
        if isinstance(event, AttemptStarted):
            self.attempts += 1
        elif isinstance(event, AttemptFinished):  # (the bus swallows listener exceptions: noted, checked later)
            if event.id in self.reported:
                self.problems.append(f"a second outcome for attempt {event.id}: {event}")
            self.reported[event.id] = event.outcome.value
        elif isinstance(event, FaultRaised):
            self.faults[event.code.value] += 1

    # ------------------------------------------------------------------ the console
    def console(self, text: str) -> list[str]:
        streamed: list[str] = []
        reply = self.dispatcher.handle(P.Line(text), streamed.append)
        out = [*streamed, *reply]
        self.bench.run_for(0.0)
        if out and out[-1].startswith("OK") or text.endswith("?"):
            self.console_ok[text.split()[0]] += 1
        return out

    def login(self) -> None:
        if not self.session.logged_in:
            assert self.console(f"login {PIN}")[-1].startswith("OK")

    # ------------------------------------------------------------------ bench handling
    def track_declarations(self) -> None:
        w = self.bench.world
        store = self.bench.controller.store
        for ctype in CassetteType:
            cur = store.cassette(ctype)
            if cur is None or self.current_ids.get(ctype) == cur.id:
                continue
            self.current_ids[ctype] = cur.id
            if w.fitted is not None and w.fitted.male_mt == (ctype is CassetteType.MALE_MT):
                self.declared[cur.id] = (w.fitted.name, w.fitted.position)

    def fit(self, male: bool) -> None:
        """Fit the cassette of that type; a used-up one goes in the bin, a new one is declared."""
        b, w = self.bench, self.bench.world
        name = "male" if male else "standard"
        current = w.cassettes.get(name)
        n = self.config.wheel.positions_per_clean
        books = b.controller.store.cassette(CassetteType.MALE_MT if male else CassetteType.STANDARD)
        used_up = current is not None and (
            current.capacity - current.position < n + 1 or (books is not None and books.remaining < n + 1)
        )
        if w.fitted is not None and w.fitted.name == name and not used_up:
            return
        if w.fitted is not None:
            w.remove_cassette()
            b.run_for(0.3)
        if used_up:
            assert not [s for s, k in current.touched.items() if k > 1], f"{name}: a section touched twice"
            self.fresh += 1
            del w.cassettes[name]  # binned (keeps the model's memory flat over a long soak)
        w.fit_cassette(name, male_mt=male)
        self.last_fitted = name
        b.run_for(0.5)
        if used_up:  # the technician declares it new: long press just after fitting
            w.press_button(2.5)
            b.run_for(3.0)
        self.track_declarations()

    def refill_if_low(self) -> None:
        """Refill when the reservoir is nearly empty, or when the station says so (its count is
        conservative: a drop is booked before the pump pulses, so it can run out first)."""
        w = self.bench.world
        if w.reservoir < 40 or self.bench.status().fluid_drops_left < 40:
            w.refill()
            self.bench.run_for(0.1)
            self.login()
            assert self.console("fluid refill")[-1].startswith("OK")

    def recover(self) -> None:
        """The technician removes every cause, refits, and acknowledges the fault."""
        b, w = self.bench, self.bench.world
        for timer in self.pending:  # a pull or a power cut that had not come yet: not any more
            timer.cancel()
        self.pending.clear()
        for fault in list(self.injected):
            w.clear(fault)
        self.injected.clear()
        if w.connector is not None:
            w.remove()
        if w.fitted is None:
            w.fit_cassette(self.last_fitted)  # put the pulled cassette back
        b.run_for(1.5)
        for _ in range(3):
            if b.state != "fault":
                break
            if self.rng.random() < 0.7:
                w.press_button(0.1)
                b.run_for(0.5)
            else:
                self.login()
                self.console("fault clear")
                b.run_for(0.5)
        b.wait_until(lambda: b.state == "idle", 10)
        assert b.state == "idle", (b.state, b.controller.faults.code, b.controller.faults.detail)

    # ------------------------------------------------------------------ one clean
    def clean(self, cut_after_s: float | None) -> None:
        rng, b = self.rng, self.bench
        w = b.world
        if self.batch_left <= 0:  # connectors come in batches: a tray of male ones, then female
            self.batch_male = rng.random() < 0.35
            self.batch_left = rng.randint(5, 80)
        self.batch_left -= 1
        r = rng.random()
        kind = "bent" if r < 0.04 else ("male" if self.batch_male else "female")
        wrong_cassette = rng.random() < 0.03
        self.fit(male=(kind == "male") != wrong_cassette if kind != "bent" else rng.random() < 0.5)
        self.refill_if_low()
        wet = rng.random() < 0.4
        w.set_mode(wet)

        fault: Fault | None = None
        if rng.random() < 0.025:
            fault = rng.choice(FAULT_KINDS)
            kw: dict[str, Any] = {}
            if fault is Fault.STUCK_SENSOR:
                kw = {"sensor": rng.choice(["gate_a", "gate_b", "pin_left", "pin_right"]), "active": rng.random() < 0.5}
            if fault in (Fault.CASSETTE_PULLED, Fault.CONNECTOR_PULLED):  # mid-cycle
                self.pending.append(b.loop.call_later(rng.uniform(0.0, 1.5), lambda f=fault: w.inject(f)))
            else:
                w.inject(fault, **kw)
            self.injected.add(fault)
            self.injections[fault.value] += 1

        self.cut_due = False
        if cut_after_s is not None:
            self.pending.append(b.loop.call_later(cut_after_s, lambda: setattr(self, "cut_due", True)))

        swipe = {"direction": "down", "duration_s": rng.uniform(0.3, 1.5)}
        if rng.random() < 0.12:
            bad = rng.choice(BAD_SWIPES)
            swipe = None if bad is None else {**swipe, **bad}
        delay = rng.uniform(0.1, 1.0) if rng.random() < 0.97 else rng.uniform(6.0, 20.0)

        n = len(b.results())
        w.present(kind)
        b.wait_until(lambda: w.prompting or len(b.results()) > n or b.state == "fault" or self.cut_due, 30)
        if w.prompting and not self.cut_due:
            b.wait_until(lambda: self.cut_due, delay)
            fitted = w.fitted
            fresh = w.connector is not None and (fitted is None or not fitted.touched.get(fitted.position))
            if w.prompting and fresh and swipe is not None and not self.cut_due:
                w.swipe(**swipe)
        b.wait_until(lambda: len(b.results()) > n or b.state == "fault" or self.cut_due, 40)
        if self.cut_due:
            self.cuts_mid_clean += b.state not in ("idle", "done", "fault")
            self.power_cut()
            self.recover()
            return
        w.remove()
        b.wait_until(lambda: b.state in ("idle", "fault"), 5)
        if b.state == "fault" or fault is not None:
            self.recover()
        for timer in self.pending:
            timer.cancel()
        self.pending.clear()
        # harness logs only (the firmware keeps nothing of this): keep a long soak's memory flat
        b.events.clear()
        b._results.clear()

    def maintenance(self) -> None:
        b = self.bench
        if b.state != "idle" or b.world.connector is not None:
            return
        self.login()
        text = self.rng.choice(["STAT?", "STAT?", "counters", "jog 1", "prime 1", "selftest", "SYST:ERR?"])
        out = self.console(text)
        if text == "selftest" and not out[-1].startswith("OK"):
            # "sensors not at rest" etc.: fine, but the station must be ready again afterwards
            b.run_for(0.5)
        if b.state == "fault":
            self.recover()

    # ------------------------------------------------------------------ checks
    def check_books(self) -> None:
        b = self.bench
        w, store = b.world, b.controller.store
        assert self.problems == [], self.problems[:5]
        assert w.violations == [], w.violations[:5]
        assert w.touched_twice() == [], w.touched_twice()[:5]
        self.track_declarations()
        for ctype in CassetteType:
            cur = store.cassette(ctype)
            if cur is None or cur.id not in self.declared:
                continue
            name, base = self.declared[cur.id]
            if name in w.cassettes:
                moved = w.cassettes[name].position - base
                assert cur.used >= moved, f"cassette #{cur.id} ({name}): {cur.used} booked, {moved} moved"
        drops = store._db.execute("SELECT count(*) FROM drops").fetchone()[0]
        assert drops >= w.drops_total, (drops, w.drops_total)
        open_ids = {r[0] for r in store._db.execute("SELECT id FROM attempts WHERE outcome IS NULL")}
        a = b.controller.attempt
        assert open_ids <= ({a.id} if a is not None else set()), open_ids

    def check_reported(self) -> None:
        """Every outcome this life announced is the one on record (then forgotten: a long soak's
        memory is the station's, not this list's)."""
        store = self.bench.controller.store
        for attempt_id, outcome in self.reported.items():
            row = store._db.execute("SELECT outcome FROM attempts WHERE id = ?", (attempt_id,)).fetchone()
            assert row is not None and row[0] == outcome, (attempt_id, outcome, row)
        self.reported.clear()

    def check_records(self) -> Counter[str]:
        self.check_reported()
        store = self.bench.controller.store
        recorded = dict(store._db.execute("SELECT id, outcome FROM attempts").fetchall())
        assert len(recorded) == self.attempts, (len(recorded), self.attempts)
        assert None not in recorded.values(), "an attempt without an outcome"
        interrupted = sum(1 for o in recorded.values() if o == "interrupted")
        assert interrupted <= self.lives - 1, (interrupted, self.lives)
        return Counter(recorded.values())

    def close(self) -> None:
        if self.bench is not None:
            self.bench.close()
            self.bench = None


def measure() -> tuple[int, int, int]:
    gc.collect()
    return tracemalloc.get_traced_memory()[0], len(threading.enumerate()), open_fds()


def test_soak_ten_thousand_cleans_with_faults_and_power_cuts():
    directory = Path(tempfile.mkdtemp(prefix="mpo-soak-"))
    tracemalloc.start()
    started = time.monotonic()
    soak = None
    stopped_early = False
    try:
        soak = Soak(directory)
        rng = soak.rng
        next_cut = int(RESTART_EVERY * rng.uniform(0.8, 1.2))
        baseline: tuple[int, int, int] | None = None
        while soak.attempts < CLEANS:
            if MAX_WALL_S and time.monotonic() - started > MAX_WALL_S:
                stopped_early = True
                break
            cut_after = None
            if soak.attempts >= next_cut:
                next_cut += int(RESTART_EVERY * rng.uniform(0.8, 1.2))
                if rng.random() < 0.5:
                    soak.power_cut()  # between cleans
                else:
                    cut_after = rng.uniform(0.0, 3.0)  # somewhere in the next clean
            soak.clean(cut_after)
            if rng.random() < 0.02:
                soak.maintenance()
            if baseline is None and soak.attempts >= WARMUP:
                soak.check_books()
                baseline = measure()
        soak.check_books()
        outcomes = soak.check_records()
        end = measure()
        wall = time.monotonic() - started
        assert baseline is not None
        mem0, threads0, fds0 = baseline
        mem1, threads1, fds1 = end
        w = soak.bench.world
        print(
            f"\nSOAK cleans={soak.attempts} cleaned={outcomes['cleaned']} failed={outcomes['failed']} "
            f"rejected={outcomes['rejected']} interrupted={outcomes['interrupted']} "
            f"faults_injected={sum(soak.injections.values())} "
            f"power_cuts={soak.lives - 1} (mid-clean {soak.cuts_mid_clean}) "
            f"new_cassettes={soak.fresh} wall_s={wall:.1f} rate={soak.attempts / wall:.1f}/s "
            f"violations={len(w.violations)} touched_twice={len(w.touched_twice())} "
            f"mem_warmup={mem0 / 2**20:.2f}MB mem_end={mem1 / 2**20:.2f}MB threads={threads0}->{threads1} "
            f"fds={fds0}->{fds1}{' STOPPED EARLY (SOAK_MAX_WALL_S)' if stopped_early else ''}",
            flush=True,
        )
        reasons = soak.bench.controller.store._db.execute(
            "SELECT outcome, reason, count(*) FROM attempts WHERE outcome != 'cleaned' GROUP BY outcome, reason "
            "ORDER BY count(*) DESC LIMIT 12"
        ).fetchall()
        print("SOAK reasons: " + "; ".join(f"{o} {r or '-'}: {n}" for o, r, n in reasons))
        print(
            f"SOAK injected: {dict(soak.injections)}; station faults: {dict(soak.faults)}; "
            f"console OK: {dict(soak.console_ok)}",
            flush=True,
        )
        assert w.violations == []
        assert w.touched_twice() == []
        assert mem1 <= mem0 + MEMORY_MARGIN, f"memory grew {(mem1 - mem0) / 2**20:.1f} MB"
        assert threads1 <= threads0, f"threads {threads0} -> {threads1}: {[t.name for t in threading.enumerate()]}"
        assert fds1 <= fds0 + FD_MARGIN, f"open file descriptors {fds0} -> {fds1}: {fd_targets()}"
    finally:
        if soak is not None:
            soak.close()
        tracemalloc.stop()
        shutil.rmtree(directory, ignore_errors=True)
