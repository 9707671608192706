"""`station sim --demo`: a scripted tour of every path, printed as it happens (virtual time).

Each step prints, in time order:

- the panel as the operator sees and hears it, in the README's words (`0.92 s  green + amber,
  one beep: swipe now`), read from the LED and buzzer lines by hw_sim/panel_words.py, never
  from the firmware's state;
- `> ...`: what is done to the bench, as you would type it at the interactive `station sim`;
- `station: ...`: what the station says on its console (results, faults, warnings);
- `record #N: ...`: the attempt's durable record in the station's database.

A step checks the outcome (and the reason, where it matters) in the record, that the panel
showed the step's looks in order, and that it came back to ready. The demo ends "demo OK" only
if every step did and the simulator recorded no violation.
"""

from __future__ import annotations

import itertools
import sys
from pathlib import Path
from typing import Any, TextIO

from station.config import Config
from station.domain import Reason
from station.events import Event, SwipeNow, VerdictRecorded

from .actions import parse_line, perform
from .bench import SimBench
from .panel_words import Look, PanelWatcher
from .report import describe

LOW_DROPS = 12  # the bottle's level in the low-fluid step: below the float switch
PAUSE_S = 1.0  # the operator's moment between steps (ready is seen)


class Tour:
    """The demo's steps on one bench; `ok` is False once a step did not go as scripted."""

    def __init__(self, bench: SimBench, out: TextIO) -> None:
        self.bench, self.out = bench, out
        self.ok = True
        self._lines: list[tuple[float, int, int, str]] = []
        self._seq = itertools.count()
        self._looks: list[Look] = []  # this section's
        self._expected: list[str] = []  # the looks this section must show, in order
        self._last_record = 0
        self.watcher = PanelWatcher(bench, on_look=self._look)
        bench.controller.events.subscribe(self._heard)

    # ------------------------------------------------------------------ what is printed
    def _line(self, t: float, rank: int, text: str) -> None:
        self._lines.append((t, rank, next(self._seq), text))

    def _look(self, look: Look) -> None:
        self._looks.append(look)
        self._line(look.t, 0, look.words)

    def _heard(self, event: Event) -> None:
        if isinstance(event, SwipeNow):
            return  # the panel says it
        text = describe(event, states=False)
        if text is not None:
            self._line(self.bench.loop.now(), 1, f"station: {text}")

    def say(self, text: str) -> None:
        self._line(self.bench.loop.now(), 1, text)

    def flush(self) -> None:
        for t, _, _, text in sorted(self._lines):
            print(f"{t:8.2f} s  {text}", file=self.out)
        self._lines.clear()
        self.out.flush()

    def fail(self, text: str) -> None:
        self.ok = False
        print(f"!! {text}", file=self.out, flush=True)

    # ------------------------------------------------------------------ steps
    def section(self, title: str) -> None:
        print(f"\n== {title}", file=self.out, flush=True)

    def act(self, line: str, note: str = "") -> None:
        """A simulator action, typed as at the interactive `station sim`."""
        self._line(self.bench.loop.now(), -1, f"> {line}{'   (' + note + ')' if note else ''}")
        name, args = parse_line(line)
        perform(self.bench, name, args)

    def attempt(self, expect: str, reason: Reason | None = None, look: str | None = None, **clean: Any) -> None:
        """One attempt by the operator (`SimBench.clean`); the record must say `expect` (and
        `reason`), the panel must show `look` (by default the outcome's own look)."""
        self.bench.clean(**clean)
        self._expected.append(look or expect)
        records = self.bench.controller.store.attempts(limit=1)
        record = records[0] if records and records[0].id > self._last_record else None
        if record is None:
            self.say("record: none")
            self.fail(f"expected a record saying {expect}, none was made")
            return
        self._last_record = record.id
        outcome = record.outcome or "open"
        self.say(f"record #{record.id}: {outcome}{', ' + record.reason if record.reason else ''}")
        if outcome != expect:
            self.fail(f"expected {expect}, got {outcome}")
        elif reason is not None and record.reason != reason.value:
            self.fail(f"expected the reason {reason.value!r}, got {record.reason!r}")

    def expect_look(self, meaning: str) -> None:
        self._expected.append(meaning)

    def end(self) -> None:
        """The operator's pause; then the section's lines, and its looks checked."""
        self.bench.run_for(PAUSE_S)
        self.flush()
        shown = [look.meaning for look in self._looks]
        rest = iter(shown)
        missing = [m for m in self._expected if m not in rest]  # in order: a subsequence
        if missing:
            self.fail(f"the panel did not show {', '.join(missing)} (it showed: {', '.join(map(str, shown))})")
        if not shown or shown[-1] != "ready":
            self.fail(f"the panel did not come back to ready (last look: {shown[-1] if shown else 'none'})")
        self._looks.clear()
        self._expected.clear()

    def step(self, title: str, expect: str, reason: Reason | None = None, **clean: Any) -> None:
        self.section(title)
        self.attempt(expect, reason, **clean)
        self.end()


def inspection_tour(tour: Tour) -> None:
    """Clean -> inspect -> clean again (docs/design.md section 10): the probe grades the physical
    face and sends its verdict on the console; the panel says what comes next."""
    bench = tour.bench
    world = bench.world
    assert world is not None

    def probe(expect: str) -> None:
        bench.run_for(PAUSE_S)  # the operator carries the connector to the probe
        tour.act("probe", "the connector in the inspection probe")
        bench.run_for(PAUSE_S)
        verdicts = bench.heard(VerdictRecorded)
        got = verdicts[-1].next if verdicts else "nothing"
        if got != expect:
            tour.fail(f"expected the station to say {expect} after the inspection, it said {got}")

    def again(**clean: Any) -> dict[str, Any]:
        return {"connector": "male", "face": world.faces.in_hand, **clean}

    def attempt(expect: str, reason: Reason | None = None, look: str | None = None, **clean: Any) -> None:
        tour.attempt(expect, reason, look, **clean)
        bench.run_for(PAUSE_S)  # what the panel says next, long enough to be seen

    tour.section("Inspection on: an oily connector cleaned, inspected, cleaned again until it passes")
    result = bench.controller.settings.change("inspection", "mode", "after", source="console:demo", busy=None)
    tour.say("console: config set inspection.mode after   (" + ("; ".join(result.lines) or result.error) + ")")
    attempt("cleaned", look="inspect now", connector="male", dirt="oily")
    probe("clean_dry")
    tour.expect_look("clean again")
    attempt("cleaned", look="inspect now", **again())
    probe("clean_wet")
    tour.expect_look("clean again, wet-to-dry")
    attempt("rejected", Reason.NEEDS_WET, look="clean again, wet-to-dry", **again())
    attempt("cleaned", look="inspect now", **again(wet=True))
    probe("released")
    tour.end()

    tour.section("Inspection on: a damaged connector, three cleans, three FAILs: quarantined")
    attempt("cleaned", look="inspect now", connector="male", dirt="damaged", scan="CBL-0900-A")
    probe("clean_dry")
    attempt("cleaned", look="inspect now", **again(scan="CBL-0900-A"))
    probe("clean_wet")
    attempt("cleaned", look="inspect now", **again(scan="CBL-0900-A", wet=True))
    probe("quarantined")  # (the reject look begins with the lights inspect-now had lit: seen from its blink on)
    attempt("rejected", Reason.QUARANTINED, look="reject the connector", **again(scan="CBL-0900-A"))
    attempt("cleaned", look="inspect now", connector="male", dirt="clean", scan="CBL-0901-A")  # the next one
    probe("released")
    bench.controller.settings.change("inspection", "mode", "off", source="console:demo", busy=None)
    tour.end()


def run(out: TextIO = sys.stdout, state_dir: str | Path | None = None, config: Config | None = None) -> bool:
    """Runs the demo; True when every step went as scripted and the simulator saw no violation."""
    with SimBench(config, state_dir) as bench:
        world = bench.world
        assert world is not None
        print("MPO cleaning station: simulated bench demo (virtual time)", file=out)
        print(
            "The panel in the README's words; `>` what is done to the bench (as typed at `station sim`),\n"
            "`station:` what the station says on its console, `record`: the attempt in its database.",
            file=out,
            flush=True,
        )
        tour = Tour(bench, out)
        bench.run_for(PAUSE_S)
        tour.flush()
        late_s = bench.config.swipe.timeout_s + 1.0

        tour.step("Female connector, dry clean on the standard cassette", "cleaned", connector="female")
        tour.step("Female connector, wet-to-dry clean", "cleaned", connector="female", wet=True)
        tour.step("Male connector on the standard cassette: interlock", "rejected", connector="male")
        tour.step("Female connector, swiped the wrong way (B to A)", "failed", connector="female", direction="up")
        tour.step(
            f"Female connector, the operator waits past the swipe window ({late_s:g} s; dry allows {late_s - 1:g} s)",
            "failed",
            Reason.NO_SWIPE,
            connector="female",
            delay_s=late_s,
        )
        tour.step("Connector with one bent guide pin", "rejected", connector="bent")

        tour.section("The wheel jams; a technician frees it and presses the button")
        tour.act("inject jam")
        tour.attempt("failed", Reason.JAM, look="fault", connector="female")
        bench.run_for(2.0)  # the alarm sounds
        tour.act("clear jam", "the wheel freed")
        tour.act("button")
        bench.wait_until(lambda: bench.state == "idle", 5.0)
        tour.end()

        tour.section(f"Low fluid: the bottle is down to {LOW_DROPS} drops, below the float switch")
        tour.act(f"refill {LOW_DROPS}", "the bench's bottle set to this level")
        bench.run_for(0.5)
        status = bench.status()
        tour.say(
            f"station: STAT? fluid_low {str(status.fluid_low).lower()} "
            f"({status.fluid_drops_left} drops left by its count)"
        )
        if not status.fluid_low:
            tour.fail("the station does not say the fluid is low")
        bench.run_for(PAUSE_S / 2)
        tour.attempt("rejected", Reason.FLUID_LOW, connector="female", wet=True)
        bench.run_for(PAUSE_S)
        tour.attempt("cleaned", connector="female")  # dry still works
        bench.run_for(PAUSE_S)
        tour.act("refill", "the operator fills the bottle")
        bench.run_for(bench.config.dispenser.refill_settle_s + 1.0)
        status = bench.status()
        tour.say(f"station: STAT? fluid_low {str(status.fluid_low).lower()}")
        if status.fluid_low:
            tour.fail("the station still says the fluid is low after the refill")
        bench.run_for(PAUSE_S / 2)
        tour.attempt("cleaned", connector="female", wet=True)
        tour.end()

        tour.section("Operator swaps in the male MT cassette")
        tour.act("remove_cassette")
        bench.run_for(2.0)
        tour.act("fit_cassette male-mt male_mt")
        tour.expect_look("fault")
        tour.end()
        tour.step("Male connector, dry clean on the male MT cassette", "cleaned", connector="male")
        tour.step("Male connector, wet-to-dry clean", "cleaned", connector="male", wet=True)
        tour.step(
            "Male connector, back-and-forth scrub (not allowed)", "failed", connector="male", variant="back_and_forth"
        )
        inspection_tour(tour)
        tour.watcher.detach()

        print("\n== Summary (the station's records)", file=out)
        for r in bench.controller.store.attempts(newest_first=False):
            print(
                f"  #{r.id:<3} {r.outcome or 'open':<9} {r.gender or '-':<7} {r.mode:<4} {r.reason}".rstrip(), file=out
            )
        status = bench.status()
        print(
            f"  ribbon left on the fitted cassette: {status.ribbon_remaining} positions "
            f"({status.cleans_remaining} cleans); fluid: {status.fluid_drops_left} drops",
            file=out,
        )
        touched = world.touched_twice()
        print(
            f"  simulator: {len(world.swipes)} swipes, {world.positions_total} wheel positions, "
            f"{world.drops_total} drops, sections touched twice: {len(touched)}, "
            f"violations: {len(world.violations)}",
            file=out,
        )
        for v in world.violations:
            print(f"  VIOLATION rule {v.rule}: {v.text}", file=out)
        ok = tour.ok and not world.violations and not touched
        print("demo OK" if ok else "demo FAILED", file=out)
        return ok
