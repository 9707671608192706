"""What the station states to people, asked the way a person or a lab script asks it, and held
to physics (rule 6: the ribbon and fluid the station says are left are never more than there).

The judge asks at moments when physics is settled: as the panel shows ready (green alone, once
per showing: the blinks of the cleaned pattern count as one), as it shows swipe-now, and once a
fitted cassette has been taken in. It asks through the console's own command dispatch (the
`Dispatcher` of station/console/server.py with the console's registry, on a port of its own,
not logged in) the two questions a person asks: `STAT?` (one line of JSON) and `status` (lines
for people). The question is posted to the station's loop, as a console port posts its
commands, so it is answered between two of the firmware's handlers, never inside one. The answer
is all that is taken from the firmware, never its memory; the bounds come from physics and the
outside auditor (the database, read-only), as for the books:

- ribbon: for the physical cassette its count began on (`Auditor.ribbon_left`, the baselines
  the books are held to), `ribbon_remaining` <= the count's start minus the positions the wheel
  physically moved since, and `cleans_remaining` <= that // `positions_per_clean`;
- fluid: `fluid_drops_left` <= what the reservoir was declared to hold when its count began
  (the last refill's capacity, or the configured one) minus the drops that physically left the
  nozzle since (`Auditor.fluid_left`); the reservoir stated low whenever its float switch reads
  low.

Not the physical level itself: a leak (the empty-reservoir fault) or a bottle smaller than the
configuration says is beyond what the station can know but through its float switch, as a
cassette of the same type swapped in undeclared is beyond its books. Not judged either: the
low-cassette warning ("warns well before"), which the station shows on no light and in no
answer, only in the `watch` stream (see docs/reliability.md).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from station.config import Config
from station.console import protocol as P
from station.console.access import Session
from station.console.commands import REGISTRY
from station.console.server import Dispatcher, console_context

from .auditor import cassette_type

if TYPE_CHECKING:
    from station.controller import Controller

    from .judge import Judge

Ask = Callable[[str], list[str]]  # a line typed at the console -> the lines it answers

# The `status` lines that state what is left (station/console/commands.py, for people).
STATUS_CASSETTE = re.compile(r"cassette: (\S+), (-?\d+) positions \((-?\d+) cleans\) left$")
STATUS_FLUID = re.compile(r"fluid:\s+(-?\d+) drops left( \(LOW switch\))?$")
CASSETTE_SWITCHES = {"cassette", "cassette_male"}


def console_asker(controller: Controller, config: Config, clock: Callable[[], float], port: str = "sim:judge") -> Ask:
    """A console port of the judge's own on the station: its answer to each line, as a person
    at the console would read it (the console's dispatch and handlers, no serial port)."""
    session = Session(port, config.console.idle_logout_s, clock=clock)
    dispatcher = Dispatcher(
        REGISTRY, console_context(controller), session, max_per_s=config.console.max_commands_per_s, clock=clock
    )
    return lambda text: dispatcher.handle(P.Line(text), lambda line: None)


def parse_stat(lines: list[str]) -> dict[str, Any] | None:
    """`STAT?`'s one line of JSON (None: an error or no answer)."""
    if len(lines) != 1 or lines[0].startswith("ERR"):
        return None
    try:
        value = json.loads(lines[0])
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def parse_status(lines: list[str]) -> dict[str, Any] | None:
    """What `status` says is left, in `STAT?`'s names (None: an error, or nothing said)."""
    if not lines or not lines[-1].startswith("OK"):
        return None
    stated: dict[str, Any] = {}
    for line in lines:
        if m := STATUS_CASSETTE.match(line):
            stated.update(cassette=m[1], ribbon_remaining=int(m[2]), cleans_remaining=int(m[3]))
        elif m := STATUS_FLUID.match(line):
            stated.update(fluid_drops_left=int(m[1]), fluid_low=m[2] is not None)
    return stated or None


class Statements:
    """Asks the station what it states (once `attach`ed to a way of asking) and holds the
    answers to physics, for the judge."""

    def __init__(self, judge: Judge) -> None:
        self.j = judge
        self.ask: Ask | None = None
        self.armed = True  # ask as ready shows next (some other look was shown since the last time)
        self.posted = False  # a question waits on the loop
        self.answers = 0  # answers held to physics (for tests: the check did run)

    def attach(self, ask: Ask) -> None:
        self.ask = ask

    def panel(self, green_alone: bool, lit: bool, prompt_began: bool) -> None:
        """The panel changed: swipe-now and ready are moments to ask at."""
        if prompt_began:
            self.settled("at swipe-now")
        elif green_alone:
            if self.armed:
                self.armed = False
                self.settled("as the panel showed ready")
        elif lit:
            self.armed = True

    def settled(self, when: str) -> None:
        """Physics is settled: ask the station, as a console command is asked (posted to its
        loop; answered once the firmware's handler now running is done)."""
        if self.ask is None or self.posted or self.j.auditor is None:
            return
        self.posted = True
        self.j.w.loop.post(lambda: self._question(when))

    def _question(self, when: str) -> None:
        self.posted = False
        j, ask, a = self.j, self.ask, self.j.auditor
        if ask is None or a is None or a.paused or a.stopped or j.closed:
            return
        j.long_press_held()  # a declaration on the books by a long press still held is a person's
        j._fluid()  # the fluid books (and the auditor learns of a refill)
        for source, stated in (("STAT?", parse_stat(ask("STAT?"))), ("status", parse_status(ask("status")))):
            if stated is not None:
                self.answers += 1
                self._hold(stated, source, f"{when}: the station states ({source})")

    def _hold(self, stated: dict[str, Any], source: str, says: str) -> None:
        """Rule 6: what the station stated, against what is physically there (each problem
        said once per question asked: `source`)."""
        j, w = self.j, self.j.w
        a = j.auditor
        assert a is not None
        config = j.config()
        fitted = w.fitted
        held = CASSETTE_SWITCHES & set(w.inputs.stuck)  # the station reads a switch a fault holds
        if fitted is not None and not held and stated.get("cassette") == cassette_type(fitted.male_mt):
            bound = a.ribbon_left(fitted)
            ribbon, cleans = stated.get("ribbon_remaining"), stated.get("cleans_remaining")
            if bound is not None:
                left, start = bound
                n = config.wheel.positions_per_clean
                ribbon_of = f"cassette '{fitted.name}', but its ribbon has at most {left} positions"
                since = f"({start} when its count began, less what the wheel moved since)"
                if isinstance(ribbon, int) and ribbon > left:
                    j._once(
                        f"states {source} {fitted.name} {ribbon} {left}",
                        6,
                        f"{says} {ribbon} positions left on {ribbon_of} {since}",
                    )
                if isinstance(cleans, int) and cleans > left // n:
                    j._once(
                        f"states {source} {fitted.name} cleans {cleans} {left}",
                        6,
                        f"{says} {cleans} cleans left on {ribbon_of} {since}, room for {left // n} of {n}",
                    )
        fluid = a.fluid_left(w.drops_total, config.dispenser.reservoir_drops)
        drops = stated.get("fluid_drops_left")
        if fluid is not None and isinstance(drops, int) and drops > fluid[0]:
            j._once(
                f"states {source} drops {drops} {fluid[0]}",
                6,
                f"{says} {drops} drops left, but at most {fluid[0]} are in the reservoir ({fluid[1]} declared when "
                "its count began, less the drops that left the nozzle since)",
            )
        if stated.get("fluid_low") is False and w.sensor("fluid_low"):
            j._once(f"states {source} not low", 6, f"{says} the reservoir is not low, while its float switch reads low")
