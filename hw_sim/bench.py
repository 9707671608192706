"""A whole simulated bench: the unchanged firmware on mock pins, wired to the physical model."""

from __future__ import annotations

import queue
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from station.app import DB_NAME, Station, build_station, claim_state_dir, scanner_input
from station.config import Config
from station.domain import Mode, ServiceResult
from station.events import AttemptFinished, Event, SensorChanged, StationStatus
from station.loop import EventLoop, VirtualClock
from station.reports import station_status

from .auditor import Auditor
from .endface import EndFace
from .pins import SimFactory
from .probe_port import PROBE_PORT
from .statements import console_asker
from .world import ConnectorKind, SwipeVariant, World

# Virtual time is reported as wall time from this instant (2026-01-01T00:00:00Z).
SIM_EPOCH = 1767225600.0


@dataclass(frozen=True)
class Heard:
    """An announcement and the virtual time it was heard at."""

    t: float
    event: Event


E = TypeVar("E", bound=Event)


class SimBench:
    """The firmware station plus the world it lives in, on a virtual clock.

    Call `run_for()` / `wait_until()` to let time pass as fast as the CPU allows, or
    `run_paced()` to let it pass at the speed of the wall clock (interactive and headless use).
    `wall_start` is the wall-clock time that virtual time zero stands for in the records.
    """

    def __init__(
        self,
        config: Config | None = None,
        state_dir: str | Path | None = None,
        *,
        cassette: str = "standard",
        wall_start: float = SIM_EPOCH,
        world_options: dict[str, Any] | None = None,
    ) -> None:
        self.config = config or Config()
        self._tmp = None
        if state_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="mpo-sim-")
            state_dir = self._tmp.name
        self.state_dir = Path(state_dir)
        self.clock = VirtualClock()
        self.loop = EventLoop(self.clock)
        self.factory = SimFactory()
        self.events: list[Heard] = []
        self._results: list[AttemptFinished] = []
        # the state directory's lock first (StateDirInUse: another station keeps its books here)
        store, lock = claim_state_dir(self.config, self.state_dir, on_pi=False)
        self.world: World | None = None

        def attach_world(hardware) -> None:
            self.world = world = World(self.config, self.factory, self.loop, **(world_options or {}))
            # the judge's outside auditor: the station's database, read-only, as QA would read it
            world.judge.attach(Auditor(self.state_dir / DB_NAME, self.config, world.drops_total, world.audit_state))
            world.judge.inspection.attach(world.judge.auditor, wall_start)  # rule 10: the rows from here on
            if not self.world.cassettes:  # a world carried over from a power cut keeps its own
                self.world.fit_cassette(cassette, male_mt=(cassette == "male_mt"))
            self.world.attach()

        self.station: Station = build_station(
            self.config,
            self.loop,
            self.factory,
            store,
            wall_clock=lambda: wall_start + self.clock.now(),
            before_controller=attach_world,
            lock=lock,
        )
        self.controller = self.station.controller
        if self.world is not None:  # the judge asks what the station states, as a person at its console
            self.world.judge.statements.attach(console_asker(self.controller, self.config, self.clock.now))
            # the probe's software on a console port of its own (without the GPIO lines fitted)
            probe_console = console_asker(self.controller, self.config, self.clock.now, PROBE_PORT)
            self.world.probe_port.attach_console(probe_console)
            self.world.scanner_sink = scanner_input(self.controller)[0]  # the bench's scanner, as a real one
        self.controller.events.subscribe(self._record)
        self.controller.start()
        self.loop.run_for(0.0)

    # ------------------------------------------------------------------ observation
    def _record(self, event: Event) -> None:
        if isinstance(event, AttemptFinished):
            self._results.append(event)
        if not isinstance(event, SensorChanged):  # edges are many; the world keeps the physical record
            self.events.append(Heard(self.loop.now(), event))

    def heard(self, kind: type[E], since: float = float("-inf")) -> list[E]:
        """The announcements of one kind heard since virtual time `since`."""
        return [h.event for h in self.events if isinstance(h.event, kind) and h.t >= since]

    @property
    def state(self) -> str:
        return self.controller.state

    def status(self) -> StationStatus:
        return station_status(self.controller)

    def results(self) -> list[AttemptFinished]:
        return self._results

    def last_result(self) -> AttemptFinished | None:
        return self._results[-1] if self._results else None

    # ------------------------------------------------------------------ a person at the console
    def console_mode(self, mode: Mode | None, source: str = "console:sim") -> ServiceResult:
        """A person sets the mode on the console (`mode set dry|wet|switch`): the world learns
        the choice from what the person did, the firmware from its console."""
        if self.world is not None:
            self.world.console_mode = mode.value if mode else None
        return self.controller.mode.set(mode, source)

    # ------------------------------------------------------------------ time
    def run_for(self, seconds: float) -> None:
        self.loop.run_for(seconds)

    def wait_until(self, predicate: Callable[[], bool], limit_s: float = 60.0) -> bool:
        """Let virtual time pass until `predicate()` holds (checked after every timer)."""
        return self.loop.run_while(lambda: not predicate(), limit_s)

    def run_paced(self, stop: threading.Event, inbox: queue.Queue[Callable[[], None]] | None = None) -> None:
        """Let virtual time follow the wall clock until `stop` is set, on this thread.

        Other threads talk to the bench by posting to the loop (the console does) or by putting
        calls into `inbox` (the interactive prompt does); an inbox call may itself let virtual
        time run ahead (a `wait`), after which pacing continues from the new time."""
        self.loop.thread = threading.current_thread()
        anchor_real, anchor_virtual = time.monotonic(), self.clock.now()
        while not stop.is_set():
            self.loop.run_until(anchor_virtual + time.monotonic() - anchor_real)
            if inbox is not None:
                try:
                    call = inbox.get_nowait()
                except queue.Empty:
                    pass
                else:
                    call()
                    anchor_real, anchor_virtual = time.monotonic(), self.clock.now()
                    continue
            nxt = self.loop.next_due()
            wait = 0.05 if nxt is None else min(0.05, max(0.0, nxt - self.clock.now()))
            self.loop.wait_posted(wait)

    # ------------------------------------------------------------------ the operator's routine
    def clean(
        self,
        connector: ConnectorKind | str,
        *,
        wet: bool = False,
        direction: str = "down",
        duration_s: float = 0.6,
        variant: SwipeVariant | str = SwipeVariant.FULL,
        bounce: bool = False,
        delay_s: float = 0.5,
        remove: bool = True,
        scan: str | None = None,
        dirt: str | None = None,
        face: EndFace | None = None,
    ) -> AttemptFinished | None:
        """One attempt as a disciplined operator does it: present, wait for swipe-now, wait
        `delay_s`, swipe, wait for the result, take the connector away. Returns the result.
        `scan`: the connector's label, scanned just before it is seated; `dirt` / `face`: its
        end face (see `World.present`), which stays in the operator's hand (`world.faces.in_hand`)."""
        world = self.world
        assert world is not None
        world.set_mode(wet)
        n = len(self.results())
        if scan is not None:
            world.scan(scan)
        world.present(connector, code=scan, dirt=dirt, face=face)
        self.wait_until(lambda: world.prompting or len(self.results()) > n or self.state == "fault", 30)
        if world.prompting:
            self.run_for(delay_s)
            if world.prompting:
                world.swipe(direction=direction, duration_s=duration_s, variant=variant, bounce=bounce)
        self.wait_until(lambda: len(self.results()) > n or self.state == "fault", 120)
        if remove:
            world.remove()
            self.wait_until(lambda: self.state in ("idle", "fault"), 10)
        return self.last_result() if len(self.results()) > n else None

    def close(self, reason: str = "simulation closed") -> None:
        """The station's one orderly stop (as `station run`'s), then the scratch directory goes.
        The world's judge then checks the outputs the stop left (rule 7) and holds the last
        attempts to their records."""
        judge = self.world.judge if self.world is not None else None
        if judge is not None and judge.auditor is not None:
            judge.auditor.station_stopping()
        self.station.shutdown(reason)
        if judge is not None:
            if judge.auditor is not None:
                judge.auditor.station_stopped()
            judge.closing()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def power_cut(self) -> None:
        """The power goes: the firmware is abandoned where it is (no stop, no safe outputs, no
        record), the dead board drives nothing, and the OS closes the dead process's files, its
        lock on the state directory with them, so a new station may start on the same books.
        Its database connection is left to the caller, to close after the next station opened
        the files (so SQLite does not checkpoint as it does on a clean close)."""
        self.factory.on_output = None
        if self.station.lock is not None:
            self.station.lock.release()

    def __enter__(self) -> SimBench:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
