"""A population of connectors through the station's inspection loop (issue 14's proof).

`station sim --population N` runs N connectors with the realistic contamination mix of
`hw_sim.endface.population` (docs/contamination.md) through the configured inspection workflow,
in virtual time, on one simulated bench running the unchanged firmware, and then the same
connectors through the bulletin's procedure without inspection (one dry clean each) on a second
bench, and prints what each achieved (docs/population.md).

The operator does what the station says, as a disciplined technician would:

- scans the connector's label (`POP-000001-A`, ...: the loop follows the connector by its code;
  `codes=False`: no labels, the loop follows the connector in hand);
- `after`: presents it with its end face, waits for swipe-now, swipes well (down, 0.6 s), takes
  it away and inserts it into the probe; `first`: inserts it into the probe before anything;
- the probe's report reaches the station through one of its real adapters (the world's
  `ProbePort`, probe_port.py): `INSP:RES PASS|FAIL {summary}` from the probe's software on a
  console port of its own, or, with `inspection.gpio_fitted`, a pulse on the PASS or FAIL line;
- follows the verdict's `next`: `clean_dry` / `clean_wet` (the mode switch set accordingly),
  present again; `released` or `quarantined`: the next connector;
- refills the reservoir when the station refuses wet-to-dry for low fluid, and fits a new
  cassette (declared new with a long press just after fitting) when it says the cassette is used
  up.

What is counted comes from physics, not from the firmware's books: the wheel positions the
world saw turn, the end face graded by the IEC tables at release (`iec.grade`: a released
connector whose face fails is a dirty release), the world's violations of the rules.
"""

from __future__ import annotations

import random
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from station.app import DB_NAME
from station.config import Config
from station.domain import Outcome, Reason
from station.events import AttemptFinished, CassetteDeclared, Event, FluidRefilled, VerdictRecorded

from .bench import SimBench
from .endface import POPULATION_MIX, Dirt, EndFace, population
from .iec import grade

DEFAULT_SEED = 2026
HANDLING_S = 2.0  # the operator takes the connector from the guide (or the bag) to the probe
MAX_TRIES = 3  # presentations of one clean step before the run gives up (a bug, not the operator)


class PopulationError(RuntimeError):
    """The run could not go on as the station said (a refusal it should not make): a finding."""


@dataclass
class Tally:
    """What one workflow did with the population; counts only, so 10,000 connectors stay small."""

    workflow: str
    connectors: int = 0
    released: int = 0
    quarantined: int = 0
    first_pass: int = 0  # released on their first inspection (after one clean, or before any)
    cleans: int = 0  # attempts that ended cleaned, all connectors
    positions: int = 0  # wheel positions the world saw turn, all connectors
    released_cleans: int = 0
    released_positions: int = 0
    dirty_released: int = 0  # released, and the physical face fails iec.grade
    inspections: int = 0
    cassettes: int = 1
    refills: int = 0
    by_dirt: dict[str, Counter[str]] = field(default_factory=dict)
    violations: list[str] = field(default_factory=list)
    wall_s: float = 0.0
    virtual_s: float = 0.0

    def count(self, dirt: Dirt, what: str) -> None:
        self.by_dirt.setdefault(dirt.value, Counter())[what] += 1


@dataclass
class Result:
    n: int
    seed: int
    mode: str
    codes: bool
    inspected: Tally
    baseline: Tally


def connectors(n: int, seed: int, mix: Mapping[Dirt, float] = POPULATION_MIX) -> Iterator[tuple[Dirt, EndFace]]:
    """The population, one connector at a time: the same seed gives the same connectors (the
    same draws as `population(n, random.Random(seed))`, without holding them all)."""
    rng = random.Random(seed)
    for _ in range(n):
        yield population(1, rng, mix=mix)[0]


class Operator:
    """One technician at one bench, following what the station says."""

    def __init__(self, bench: SimBench, tally: Tally) -> None:
        self.bench = bench
        self.tally = tally
        self.verdict: VerdictRecorded | None = None  # the last the station announced
        self.verdicts = 0  # how many it announced
        self.cassette_serial = 1
        bench.controller.events.subscribe(self._heard)

    def _heard(self, event: Event) -> None:
        if isinstance(event, VerdictRecorded):
            self.verdict = event
            self.verdicts += 1
        elif isinstance(event, FluidRefilled):
            self.tally.refills += 1

    # ------------------------------------------------------------------ one clean, done well
    def clean(self, face: EndFace, *, wet: bool, code: str | None) -> int:
        """Clean the connector (its face in hand) once as the station asks; returns the wheel
        positions it took. Refills and new cassettes when the station says so."""
        b, w = self.bench, self.bench.world
        assert w is not None
        for _ in range(MAX_TRIES):
            before = w.positions_total
            r = b.clean("female", wet=wet, face=face, scan=code)
            positions = w.positions_total - before
            self.tally.positions += positions
            b.events.clear()  # the harness's log of announcements (this run keeps its own counts)
            if r is not None and r.outcome is Outcome.CLEANED:
                self.tally.cleans += 1
                return positions
            if r is not None and r.reason is Reason.NEEDS_WET:
                wet = True  # the panel says: set the switch to WET-TO-DRY
            elif r is not None and r.reason is Reason.FLUID_LOW:
                self.refill()
            elif r is not None and r.reason is Reason.CASSETTE_EMPTY:
                self.new_cassette()
            elif r is None or r.outcome is not Outcome.FAILED:
                raise PopulationError(f"clean {'wet' if wet else 'dry'} of {code or 'a connector'}: {_said(r, b)}")
        raise PopulationError(f"clean of {code or 'a connector'} did not succeed in {MAX_TRIES} tries: {_said(r, b)}")

    def refill(self) -> None:
        """Fluid low: the float switch has read low; top up, and the station sees the rise."""
        b, w = self.bench, self.bench.world
        assert w is not None
        settle = b.config.dispenser.refill_settle_s
        b.run_for(settle + 0.5)  # the float has read low steadily (no drop since)
        refills = self.tally.refills
        w.refill()
        b.run_for(settle + 0.5)
        if self.tally.refills == refills:
            raise PopulationError("the reservoir was refilled but the station did not see it")

    def new_cassette(self) -> None:
        """Cassette used up: out goes the old one (binned), in a new one, declared new with a long press."""
        b, w = self.bench, self.bench.world
        assert w is not None
        old = w.fitted
        w.remove_cassette()
        b.run_for(0.5)
        if old is not None:
            del w.cassettes[old.name]  # binned: a long run keeps the model's memory flat
        self.cassette_serial += 1
        w.fit_cassette(f"pop-{self.cassette_serial}")
        b.run_for(0.5)
        since = b.loop.now()
        w.press_button(b.config.panel.long_press_s + 0.5)
        b.run_for(b.config.panel.long_press_s + 1.5)
        if not b.heard(CassetteDeclared, since=since):
            raise PopulationError("a new cassette was fitted but the long press did not declare it")
        self.tally.cassettes += 1

    # ------------------------------------------------------------------ inspection
    def inspect(self, face: EndFace, code: str | None) -> str:
        """Insert the connector into the probe and send its report: the station's `next`."""
        w = self.bench.world
        assert w is not None
        if w.faces.in_hand is not face:
            w.faces.presented(None, face)  # taken in hand (inspect first: not yet presented)
        if code is not None and self.bench.controller.cycle.inspection.awaited is None:
            w.scan(code)  # inspected before any clean: the verdict is for the connector scanned
            w.connector_code = code  # (the label on the connector in hand)
            self.bench.run_for(0.0)  # the station hears the scan now, as it would a real scanner's
        self.bench.run_for(HANDLING_S)  # into the probe
        seen = self.verdicts
        report = w.faces.inspect()
        self.tally.inspections += 1
        # the probe's report on its way through one of the station's adapters (probe_port.py): a
        # console line from the probe's software, or a pulse on a GPIO line; let it arrive
        self.bench.wait_until(lambda: self.verdicts > seen, 5.0)
        verdict = self.verdict if self.verdicts == seen + 1 else None
        if verdict is None or verdict.verdict.value.upper() != report.verdict:
            raise PopulationError(f"the station recorded {verdict} for the probe's {report.verdict}")
        return verdict.next


def _said(r: AttemptFinished | None, bench: SimBench) -> str:
    if r is None:
        return f"no result (station {bench.state})"
    return f"{r.outcome.value}" + (f": {r.reason.value}" if r.reason else "")


def _bench(config: Config, state_dir: Path, seed: int) -> SimBench:
    if (state_dir / DB_NAME).exists():
        raise PopulationError(f"{state_dir} already holds a station database: give a fresh --state-dir")
    state_dir.mkdir(parents=True, exist_ok=True)
    bench = SimBench(config, state_dir=state_dir)
    assert bench.world is not None
    bench.world.faces.rng.seed(seed)  # what each stroke does, reproducible from the run's seed
    return bench


def _finish(bench: SimBench, tally: Tally, started: float) -> None:
    bench.close("population run done")
    assert bench.world is not None
    tally.violations = [f"rule {v.rule} at {v.t:.1f} s: {v.text}" for v in bench.world.violations]
    tally.virtual_s = bench.clock.now()
    tally.wall_s = time.perf_counter() - started


def run_inspected(
    config: Config,
    n: int,
    seed: int,
    state_dir: Path,
    *,
    codes: bool = True,
    mix: Mapping[Dirt, float] = POPULATION_MIX,
    progress: Callable[[str], None] | None = None,
) -> Tally:
    """The population through the configured workflow (`config.inspection.mode`: after or first)."""
    mode = config.inspection.mode
    if mode not in ("after", "first"):
        raise PopulationError(f"the inspection workflow must be after or first, not {mode!r}")
    started = time.perf_counter()
    tally = Tally(f"inspection ({mode})")
    first_step = f"clean_{config.inspection.reclean.split(',')[0].strip()}"  # the site's procedure
    bench = _bench(config, state_dir, seed)
    op = Operator(bench, tally)
    try:
        for k, (dirt, face) in enumerate(connectors(n, seed, mix), 1):
            code = f"POP-{k:06d}-A" if codes else None
            tally.connectors += 1
            tally.count(dirt, "connectors")
            cleans = positions = 0
            nxt = op.inspect(face, code) if mode == "first" else first_step
            while nxt in ("clean_dry", "clean_wet"):
                positions += op.clean(face, wet=nxt == "clean_wet", code=code)
                cleans += 1
                nxt = op.inspect(face, code)
            if nxt == "released":
                tally.released += 1
                tally.count(dirt, "released")
                tally.first_pass += cleans == (0 if mode == "first" else 1)
                tally.released_cleans += cleans
                tally.released_positions += positions
                if not grade(face).passed:
                    tally.dirty_released += 1
                    tally.count(dirt, "dirty_released")
            elif nxt == "quarantined":
                tally.quarantined += 1
                tally.count(dirt, "quarantined")
            else:
                raise PopulationError(f"the station said {nxt!r} next: not a step of the workflow")
            assert bench.world is not None
            bench.world.faces.probe.reports.clear()  # the probe's log of full reports (~14 KB each)
            if progress is not None and k % max(1, n // 10) == 0:
                progress(f"{tally.workflow}: {k} of {n} connectors ({time.perf_counter() - started:.0f} s)")
    finally:
        _finish(bench, tally, started)
    return tally


def run_baseline(
    config: Config,
    n: int,
    seed: int,
    state_dir: Path,
    *,
    mix: Mapping[Dirt, float] = POPULATION_MIX,
    progress: Callable[[str], None] | None = None,
) -> Tally:
    """The same population, inspection off: one clean each by the bulletin's procedure (dry,
    fresh ribbon, one pull down); every connector leaves, dirty or not."""
    started = time.perf_counter()
    tally = Tally("no inspection (one dry clean)")
    bench = _bench(config.replace("inspection", mode="off"), state_dir, seed)
    op = Operator(bench, tally)
    try:
        for k, (dirt, face) in enumerate(connectors(n, seed, mix), 1):
            tally.connectors += 1
            tally.count(dirt, "connectors")
            positions = op.clean(face, wet=False, code=None)
            tally.released += 1
            tally.count(dirt, "released")
            tally.released_cleans += 1
            tally.released_positions += positions
            if not grade(face).passed:
                tally.dirty_released += 1
                tally.count(dirt, "dirty_released")
            if progress is not None and k % max(1, n // 10) == 0:
                progress(f"{tally.workflow}: {k} of {n} connectors ({time.perf_counter() - started:.0f} s)")
    finally:
        _finish(bench, tally, started)
    return tally


def run(
    config: Config,
    n: int,
    *,
    seed: int = DEFAULT_SEED,
    mode: str | None = None,
    state_dir: str | Path | None = None,
    codes: bool = True,
    progress: Callable[[str], None] | None = None,
) -> Result:
    """Both runs on fresh state directories (under `state_dir` if given: `inspected/`,
    `baseline/`, kept for `station records`; else temporary ones)."""
    if n < 1:
        raise PopulationError(f"a population needs at least one connector, not {n}")
    mode = mode or (config.inspection.mode if config.inspection.mode != "off" else "after")
    config = config.replace("inspection", mode=mode)
    with tempfile.TemporaryDirectory(prefix="mpo-population-") as tmp:
        root = Path(state_dir) if state_dir is not None else Path(tmp)
        inspected = run_inspected(config, n, seed, root / "inspected", codes=codes, progress=progress)
        baseline = run_baseline(config, n, seed, root / "baseline", progress=progress)
    return Result(n, seed, mode, codes, inspected, baseline)


# ---------------------------------------------------------------------------------- the table
def _pct(part: int, whole: int) -> str:
    return f"{100.0 * part / whole:.1f}%" if whole else "-"


def _per(total: int, count: int) -> str:
    return f"{total / count:.2f}" if count else "-"


def table(result: Result) -> str:
    """The yield table, then the outcome by contamination level, as plain text (Markdown tables)."""
    a, b = result.inspected, result.baseline
    rows = [
        ("connectors", str(a.connectors), str(b.connectors)),
        (
            "released",
            f"{a.released} ({_pct(a.released, a.connectors)})",
            f"{b.released} ({_pct(b.released, b.connectors)})",
        ),
        ("first-pass yield", _pct(a.first_pass, a.connectors), "-"),
        ("cleans per released connector", _per(a.released_cleans, a.released), _per(b.released_cleans, b.released)),
        (
            "ribbon positions per released connector",
            _per(a.released_positions, a.released),
            _per(b.released_positions, b.released),
        ),
        (
            "every clean / ribbon position, per released connector (quarantined ones' too)",
            f"{_per(a.cleans, a.released)} / {_per(a.positions, a.released)}",
            f"{_per(b.cleans, b.released)} / {_per(b.positions, b.released)}",
        ),
        ("quarantined", f"{a.quarantined} ({_pct(a.quarantined, a.connectors)})", "-"),
        (
            "dirty connectors released (face fails IEC 61300-3-35)",
            f"{a.dirty_released} ({_pct(a.dirty_released, a.released)})",
            f"{b.dirty_released} ({_pct(b.dirty_released, b.released)})",
        ),
        ("inspections", str(a.inspections), "0"),
        ("cassettes used / reservoir refills", f"{a.cassettes} / {a.refills}", f"{b.cassettes} / {b.refills}"),
        ("simulator violations", str(len(a.violations)), str(len(b.violations))),
        (
            "virtual time / wall time",
            f"{a.virtual_s / 3600:.1f} h / {a.wall_s:.0f} s",
            f"{b.virtual_s / 3600:.1f} h / {b.wall_s:.0f} s",
        ),
    ]
    head = ("", a.workflow, b.workflow)
    lines = [_row(head), _row(("---", "---:", "---:")), *(_row(r) for r in rows)]
    lines += [
        "",
        _row(
            (
                "contamination",
                "connectors",
                "released",
                "quarantined",
                "dirty released",
                "dirty released without inspection",
            )
        ),
    ]
    lines.append(_row(("---", "---:", "---:", "---:", "---:", "---:")))
    for dirt in Dirt:
        ca, cb = a.by_dirt.get(dirt.value, Counter()), b.by_dirt.get(dirt.value, Counter())
        if not ca["connectors"]:
            continue
        lines.append(
            _row(
                (
                    dirt.value,
                    str(ca["connectors"]),
                    _pct(ca["released"], ca["connectors"]),
                    _pct(ca["quarantined"], ca["connectors"]),
                    str(ca["dirty_released"]),
                    f"{cb['dirty_released']} ({_pct(cb['dirty_released'], cb['connectors'])})",
                )
            )
        )
    for tally in (a, b):
        lines += [f"violation ({tally.workflow}): {v}" for v in tally.violations]
    return "\n".join(lines) + "\n"


def _row(cells: tuple[str, ...]) -> str:
    return "| " + " | ".join(cells) + " |"


def heading(result: Result) -> str:
    mix = ", ".join(f"{d.value} {w:.0%}" for d, w in POPULATION_MIX.items())
    how = "connectors scanned by code" if result.codes else "no codes: the loop follows the connector in hand"
    return f"population: {result.n} connectors, seed {result.seed}, mix {mix}; workflow {result.mode}, {how}\n"


def main(
    config: Config,
    n: int,
    *,
    seed: int | None,
    mode: str | None,
    state_dir: str | None,
    out: TextIO,
    err: TextIO,
) -> int:
    """`station sim --population N`: the heading and the table on `out`, progress on `err`.
    Exit 0 when the run kept every rule and released no dirty connector, 1 when not (or when the
    station refused what it should not), 2 for bad arguments."""
    if n < 1:
        print(f"station sim: --population needs at least one connector, not {n}", file=err)
        return 2
    if state_dir is not None and any((Path(state_dir) / sub / DB_NAME).exists() for sub in ("inspected", "baseline")):
        print(f"station sim: {state_dir} already holds a population run; give a fresh --state-dir", file=err)
        return 2
    started = time.perf_counter()
    try:
        result = run(
            config,
            n,
            seed=DEFAULT_SEED if seed is None else seed,
            mode=mode,
            state_dir=state_dir,
            progress=(lambda text: print(text, file=err, flush=True)) if n >= 1000 else None,
        )
    except PopulationError as exc:
        print(f"station sim: the population run stopped: {exc}", file=err)
        return 1
    out.write(heading(result) + "\n" + table(result))
    out.write(f"\nran in {time.perf_counter() - started:.0f} s wall time\n")
    a, b = result.inspected, result.baseline
    return 1 if a.violations or b.violations or a.dirty_released else 0
