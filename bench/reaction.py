"""Reaction: a sensor edge to what the station does about it, against a one-hop floor.

    python -m bench.reaction [--runs 5] [--samples 300] [--state-dir DIR]

A real-time station (RealClock, the controller loop on its own thread, gpiozero devices on a
mock pin factory) whose input pins are driven from another thread, as lgpio delivers
callbacks on its own thread on a Pi. Each clean of a female connector on a standard cassette,
dry, gives one sample of each path:

- connector seated -> StateChanged("identifying") heard by a listener;
- gate A (a valid pull starts) -> StateChanged("swiping");
- gate B released (the pull's last edge: A on, B on, A off, B off) -> the swipe judged (the
  verdict returned to the controller), and -> AttemptFinished heard by a listener. A swipe
  is only judged once `swipe.settle_s` of quiet has followed its last edge (so a return
  stroke is caught): that designed wait is subtracted, so these two figures are the lateness
  beyond it. Between the verdict and the announcement the outcome is written to the store
  (SQLite, synchronous=FULL, one fsync): the design says the result is on record before it
  is announced, so that write is part of "announced" by design and is shown on its own.

Floor, measured in the same run on the same driving thread: a bare gpiozero callback (a
DigitalInputDevice's when_activated on a pin of the same mock factory, driven the same way)
putting a timestamp on a queue served by another thread: the one thread hop any design pays.

Every edge meets an idle station, as real edges a human hand apart would: the driver waits
for the controller to finish the previous event (its durable writes) and for the panel's
beep timers, then a short gap. Between cleans the connector is lifted and `*RST` brings the
station back to ready at once (instead of the one-second result display).

Timing parameters are shortened so a clean takes a tenth of a second, not seconds (one wheel
position of one step, guide pins read at once, 10 ms settle, 10 ms beep; the pull's edges
15 ms apart): they change only the designed waits, not the code between an edge and its
reaction. Every measured edge, and every edge of the floor, comes 15 ms after the previous
activity (see GAP_S).
The station's state directory is on tmpfs (/dev/shm) when there is one, so the figures are
the firmware's, not the disk's; `--state-dir` measures on another file system.
"""

from __future__ import annotations

import argparse
import os
import queue
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from gpiozero import DigitalInputDevice
from gpiozero.pins.mock import MockFactory

from bench.common import median, pct, table
from station.app import build_station
from station.config import Config
from station.domain import Outcome
from station.events import AttemptFinished, Event, SensorChanged, StateChanged, SwipeNow
from station.loop import EventLoop, RealClock
from station.ports import Pattern, Sensor, SensorEdge
from station.store import Store

# Idle time before every measured edge, the floor's included. It matters: on this VM an edge
# after 15 ms of idleness takes several times as long as one 3 ms after the last (caches and
# CPU power states go cold), so the floor and the station must get the same gaps.
GAP_S = 0.015
FLOOR_PIN = 4  # not used by the station (the floor has a factory of its own anyway)

PATHS = {
    "floor": "floor: bare gpiozero callback -> queue -> another thread",
    "connector": "connector seated -> StateChanged(identifying)",
    "gate_a": "gate A -> StateChanged(swiping)",
    "timer_floor": "timer floor: the same, then a timed wait to settle_s after the edge (beyond settle_s)",
    "judged": "gate B released -> swipe judged (beyond settle_s)",
    "announced": "gate B released -> AttemptFinished heard (beyond settle_s)",
    "write": "(of which: the outcome written, synchronous=FULL)",
}
FLOORS = {"floor", "timer_floor"}
FLOOR_OF = {"connector": "floor", "gate_a": "floor", "judged": "timer_floor", "announced": "timer_floor"}


def bench_config() -> Config:
    c = Config()
    c = c.replace("wheel", positions_per_clean=1, steps_per_position=1, max_steps_per_position=2)
    c = c.replace("guide_pins", settle_s=0.0)
    c = c.replace("cassette", capacity_positions=1_000_000)  # one cassette for every run
    c = c.replace("swipe", min_pass_s=0.004, glitch_s=0.001, settle_s=0.01)
    return c.replace("panel", beep_s=0.01)


def default_state_parent() -> str | None:
    shm = Path("/dev/shm")
    return str(shm) if shm.is_dir() and os.access(shm, os.W_OK) else None


# ---------------------------------------------------------------------------------- the floors
class Floor:
    """The bare gpiozero callback plus one thread hop: a DigitalInputDevice's when_activated
    (on a mock factory of its own) puts the drive time on a queue; another thread takes it off.
    With `wait_s`, that thread then sleeps until `wait_s` after the edge (a Condition's timed
    wait, as the controller's loop sleeps until its next timer) and the figure is its lateness
    beyond `wait_s`: the floor of a timer-driven reaction."""

    def __init__(self) -> None:
        self.factory = MockFactory()
        self.device = DigitalInputDevice(FLOOR_PIN, pull_up=True, pin_factory=self.factory)
        self.pin = self.factory.pin(FLOOR_PIN)
        self._hops: queue.Queue[tuple[float, float, float | None]] = queue.Queue()
        self._results: queue.Queue[float] = queue.Queue()
        self._sent = 0.0
        self._wait_s: float | None = None
        self.device.when_activated = lambda: self._hops.put((self._sent, time.perf_counter(), self._wait_s))
        threading.Thread(target=self._serve, name="floor-waiter", daemon=True).start()

    def _serve(self) -> None:
        sleeper = threading.Condition()
        while True:
            t0, t_edge, wait_s = self._hops.get()
            if wait_s is None:
                self._results.put(time.perf_counter() - t0)
                continue
            due = t_edge + wait_s
            with sleeper:
                while (left := due - time.perf_counter()) > 0:
                    sleeper.wait(left)
            self._results.put(time.perf_counter() - t0 - wait_s)

    def sample(self, wait_s: float | None = None) -> float:
        """One edge after GAP_S of idleness; its latency in seconds."""
        self._wait_s = wait_s
        time.sleep(GAP_S)
        self._sent = time.perf_counter()
        self.pin.drive_low()
        got = self._results.get(timeout=5.0)
        time.sleep(GAP_S)
        self.pin.drive_high()
        return got

    def close(self) -> None:
        self.device.close()
        self.factory.close()


def floor(n: int, wait_s: float | None = None) -> list[float]:
    """`n` samples of the floor alone."""
    rig = Floor()
    try:
        return [rig.sample(wait_s) for _ in range(n)]
    finally:
        rig.close()


# ---------------------------------------------------------------------------------- the station
class Heard:
    """A listener on the controller's bus: every announcement but sensor edges, with the
    perf_counter time it reached the listener (taken first thing, on the loop thread)."""

    def __init__(self) -> None:
        self.items: list[tuple[float, Event]] = []
        self._cond = threading.Condition()

    def __call__(self, event: Event) -> None:
        t = time.perf_counter()
        if isinstance(event, SensorChanged):
            return
        with self._cond:
            self.items.append((t, event))
            self._cond.notify_all()

    def mark(self) -> int:
        with self._cond:
            return len(self.items)

    def wait(self, since: int, want: Callable[[Event], bool], what: str, limit_s: float = 5.0) -> tuple[float, Event]:
        end = time.monotonic() + limit_s
        with self._cond:
            while True:
                for t, event in self.items[since:]:
                    if want(event):
                        return t, event
                left = end - time.monotonic()
                if left <= 0:
                    raise RuntimeError(f"waited {limit_s} s for {what}; heard {[e for _, e in self.items[since:]]}")
                self._cond.wait(left)


def state_is(name: str) -> Callable[[Event], bool]:
    return lambda e: isinstance(e, StateChanged) and e.state == name


class MeasuredStation:
    """The firmware's station on a real-time loop and plain gpiozero mock pins; a tiny wheel
    model drives the index sensor after every step pulse (one step per position here), on the
    motion worker's thread."""

    def __init__(self, state_dir: Path) -> None:
        self.config = config = bench_config()
        self.factory = factory = MockFactory()
        pins = config.pins
        self.loop = EventLoop(RealClock())
        self.station = build_station(config, self.loop, factory, Store(state_dir / "station.db"))
        self.controller = c = self.station.controller
        stepper, index = self.station.hardware.wheel.stepper, factory.pin(pins.index)
        pulse = stepper.pulse

        def pulse_and_index() -> None:
            pulse()
            index.drive_low()  # the wheel reached the next position: its index slot
            index.drive_high()

        stepper.pulse = pulse_and_index  # type: ignore[method-assign]
        self.heard = Heard()
        c.events.subscribe(self.heard)
        self.stamps: dict[str, float] = {}
        self.drive: dict[str, float] = {}
        self._instrument()
        self.pin = {name: factory.pin(getattr(pins, name)) for name in ("connector_present", "gate_a", "gate_b")}
        factory.pin(pins.cassette_present).drive_low()  # a standard cassette fitted (type tab inactive)
        c.start()
        self.loop.start_thread()
        self.heard.wait(0, state_is("idle"), "ready")

    def _instrument(self) -> None:
        """Time stamps at the verdict and around the outcome's write, without changing what runs."""
        cycle, store, stamps = self.controller.cycle, self.controller.store, self.stamps
        judge, finish = cycle.judge, store.finish_attempt

        def timed_judge(*args: Any, **kwargs: Any) -> Any:
            verdict = judge(*args, **kwargs)
            if verdict.done:
                stamps["judged"] = time.perf_counter()
            return verdict

        def timed_finish(*args: Any, **kwargs: Any) -> Any:
            stamps["write_start"] = time.perf_counter()
            try:
                return finish(*args, **kwargs)
            finally:
                stamps["write_end"] = time.perf_counter()

        cycle.judge = timed_judge  # type: ignore[method-assign]
        store.finish_attempt = timed_finish  # type: ignore[method-assign]

    def settle(self) -> None:
        """Let the controller finish what it is doing (durable writes), then the gap (longer
        than the beep): the next edge meets a loop asleep, as real edges a hand apart do."""
        self.loop.call_sync(lambda: None)
        time.sleep(GAP_S)

    def clean(self) -> dict[str, float]:
        """One clean; the time of each path in seconds. `self.drive` keeps when each measured
        edge was driven and `self.stamps` what the instruments saw (for the breakdown)."""
        heard, pin, settle_s = self.heard, self.pin, self.config.swipe.settle_s
        drive, stamps = self.drive, self.stamps
        drive.clear()
        stamps.clear()
        out: dict[str, float] = {}
        self.settle()
        mark = heard.mark()
        drive["connector"] = time.perf_counter()
        pin["connector_present"].drive_low()
        t, _ = heard.wait(mark, state_is("identifying"), "identifying")
        out["connector"] = t - drive["connector"]
        heard.wait(mark, lambda e: isinstance(e, SwipeNow), "swipe now")
        self.settle()
        mark = heard.mark()
        drive["gate_a"] = time.perf_counter()
        pin["gate_a"].drive_low()
        t, _ = heard.wait(mark, state_is("swiping"), "swiping")
        out["gate_a"] = t - drive["gate_a"]
        time.sleep(GAP_S)
        pin["gate_b"].drive_low()
        time.sleep(GAP_S)
        pin["gate_a"].drive_high()
        time.sleep(GAP_S)
        drive["gate_b"] = time.perf_counter()
        pin["gate_b"].drive_high()
        t, event = heard.wait(mark, lambda e: isinstance(e, AttemptFinished), "the result")
        assert isinstance(event, AttemptFinished)
        if event.outcome is not Outcome.CLEANED:
            raise RuntimeError(f"the pull was not judged a clean: {event}")
        stamps["announced"] = t
        out["judged"] = stamps["judged"] - drive["gate_b"] - settle_s
        out["announced"] = t - drive["gate_b"] - settle_s
        out["write"] = stamps["write_end"] - stamps["write_start"]
        heard.wait(mark, state_is("done"), "done")
        pin["connector_present"].drive_high()
        mark = heard.mark()
        result = self.loop.call_sync(lambda: self.controller.request_reset("bench"))
        if not result.ok:
            raise RuntimeError(f"*RST refused: {result.error}")
        heard.wait(mark, state_is("idle"), "ready again")
        for mock in self.factory.pins.values():
            mock.clear_states()  # (MockPin.states grows forever)
        return out

    def close(self) -> None:
        self.station.shutdown("benchmark over")
        self.factory.close()


# ---------------------------------------------------------------------------------- breakdown
BREAKDOWN = {
    "connector": "connector seated -> StateChanged(identifying)",
    "gate_a": "gate A -> StateChanged(swiping)",
}
EDGE_STEPS = [
    ("drive -> gpiozero callback", "drive", "callback"),
    ("callback -> the loop runs the edge (thread hop)", "callback", "loop"),
    ("-> SensorChanged announced (live views)", "loop", "sensor"),
    ("-> the state's entry (handler, transitions' trigger)", "sensor", "show_in"),
    ("-> panel lights set (panel.show)", "show_in", "show_out"),
    ("-> StateChanged heard", "show_out", "state"),
]
RESULT_STEPS = [
    ("drive -> gpiozero callback", "drive", "callback"),
    ("loop's timer late beyond settle_s after the edge", None, None),
    ("-> verdict (judge_swipe)", "judge_in", "judged"),
    ("-> outcome write starts", "judged", "write_start"),
    ("outcome written (SQLite, synchronous=FULL)", "write_start", "write_end"),
    ("-> AttemptFinished heard", "write_end", "announced"),
]


def breakdown(n: int, state_parent: str | None = None) -> str:
    """Where the time goes, from an instrumented pass (wrappers add a few µs): each path cut
    at the gpiozero callback, the loop picking the edge up, the announcements on the bus, the
    panel, the verdict and the outcome's write. Medians and p99s in µs."""
    marks: dict[str, dict[str, float]] = {"connector": {}, "gate_a": {}, "result": {}}
    rows: dict[str, list[dict[str, float]]] = {key: [] for key in marks}
    with tempfile.TemporaryDirectory(prefix="mpo-reaction-", dir=state_parent) as tmp:
        st = MeasuredStation(Path(tmp))
        c, settle_s = st.controller, st.config.swipe.settle_s
        current: list[str] = [""]

        def path_of(edge: SensorEdge) -> str:
            if edge.sensor is Sensor.CONNECTOR and edge.active:
                return "connector"
            if edge.sensor is Sensor.GATE_A and edge.active:
                return "gate_a"
            if edge.sensor is Sensor.GATE_B and not edge.active:
                return "result"
            return ""

        post_edge = st.station.hardware.sensors._sinks[0]  # the controller's post_edge

        def callback(edge: SensorEdge) -> None:
            t = time.perf_counter()
            path = path_of(edge)
            if path:
                marks[path]["callback"] = t
                marks[path]["edge_t"] = edge.t
            post_edge(edge)

        st.station.hardware.sensors._sinks[0] = callback
        on_edge = c._on_edge

        def loop_edge(edge: SensorEdge) -> None:
            t = time.perf_counter()
            current[0] = path_of(edge)
            if current[0]:
                marks[current[0]]["loop"] = t
            try:
                on_edge(edge)
            finally:
                current[0] = ""

        c._on_edge = loop_edge  # type: ignore[method-assign]
        show = st.station.hardware.panel.show

        def timed_show(pattern: Pattern) -> None:
            t = time.perf_counter()
            show(pattern)
            if current[0] in ("connector", "gate_a"):
                marks[current[0]].setdefault("show_in", t)
                marks[current[0]].setdefault("show_out", time.perf_counter())

        st.station.hardware.panel.show = timed_show  # type: ignore[method-assign]
        judge = c._judge

        def timed_judge(connector_gone: bool = False) -> None:
            marks["result"]["judge_in"] = time.perf_counter()
            marks["result"]["judge_in_mono"] = time.monotonic()
            judge(connector_gone)

        c._judge = timed_judge  # type: ignore[method-assign]

        def listener(event: Event) -> None:
            t = time.perf_counter()
            if isinstance(event, SensorChanged) and current[0] in ("connector", "gate_a"):
                marks[current[0]]["sensor"] = t
            elif isinstance(event, StateChanged) and event.state in ("identifying", "swiping"):
                marks["connector" if event.state == "identifying" else "gate_a"]["state"] = t

        c.events.subscribe(listener)
        c.events._listeners.insert(0, c.events._listeners.pop())  # first: the others do not count
        try:
            for _ in range(5):
                st.clean()
            for _ in range(n):
                for m in marks.values():
                    m.clear()
                st.clean()
                for path in ("connector", "gate_a"):
                    rows[path].append({**marks[path], "drive": st.drive[path]})
                result = {**marks["result"], **st.stamps, "drive": st.drive["gate_b"]}
                # the timer's lateness: on the loop's own clock, from the edge's time stamp
                result["late"] = result["judge_in_mono"] - (result["edge_t"] + settle_s)
                rows["result"].append(result)
        finally:
            st.close()

    def cells(values: list[float]) -> tuple[str, str]:
        return f"{median(values) * 1e6:.0f}", f"{pct(values, 99) * 1e6:.0f}"

    out: list[Sequence[object]] = []
    for path, title in BREAKDOWN.items():
        for label, a, b in EDGE_STEPS:
            out.append((title, label, *cells([r[b] - r[a] for r in rows[path]])))
    title = "gate B released -> AttemptFinished heard"
    for label, a, b in RESULT_STEPS:
        values = [r["late"] for r in rows["result"]] if a is None else [r[b] - r[a] for r in rows["result"]]
        out.append((title, label, *cells(values)))
    return table(["path", "step", "median µs", "p99 µs"], out) + f"\n\n{n} cleans, instrumented."


# ---------------------------------------------------------------------------------- runs
def measure(n: int = 300, runs: int = 5, state_parent: str | None = None) -> dict[str, list[list[float]]]:
    """`runs` rounds of `n` cleans, each clean preceded by one sample of each floor (so the
    floors and the station meet the same moments of a noisy machine). Each path's samples per
    run, in seconds."""
    parent = state_parent if state_parent is not None else default_state_parent()
    per_run: dict[str, list[list[float]]] = {key: [] for key in PATHS}
    with tempfile.TemporaryDirectory(prefix="mpo-reaction-", dir=parent) as tmp:
        st = MeasuredStation(Path(tmp))
        rig = Floor()
        settle_s = st.config.swipe.settle_s
        try:
            for _ in range(5):  # warm-up: the first cleans pay for lazy imports, caches, the first fsync
                rig.sample()
                rig.sample(settle_s)
                st.clean()
            for _ in range(runs):
                samples: list[dict[str, float]] = []
                for _ in range(n):
                    sample = {"floor": rig.sample(), "timer_floor": rig.sample(settle_s)}
                    sample.update(st.clean())
                    samples.append(sample)
                for key in PATHS:
                    per_run[key].append([s[key] for s in samples])
        finally:
            rig.close()
            st.close()
    return per_run


def run(n: int = 300, runs: int = 1, state_parent: str | None = None) -> dict[str, list[float]]:
    """Every path's samples pooled over the runs (bench.run_all reads `floor` and `station`,
    the connector path: an edge to a state change)."""
    pooled = {key: [x for r in values for x in r] for key, values in measure(n, runs, state_parent).items()}
    pooled["station"] = pooled["connector"]
    return pooled


def us(v: float) -> str:
    return f"{v * 1e6:.0f} µs"


def report(per_run: dict[str, list[list[float]]]) -> str:
    """A markdown table: each path pooled over the runs, against its floor: the edge floor, or
    for the timer-driven result the edge-then-timer floor (then also against the edge floor)."""
    pooled = {key: [x for r in values for x in r] for key, values in per_run.items()}
    rows: list[Sequence[object]] = []
    for key, label in PATHS.items():
        values = pooled[key]
        cells: list[object] = [label, us(median(values)), us(pct(values, 99))]
        f = FLOOR_OF.get(key)
        if f is None:
            cells += ["", "", "", ""]
        else:
            by_run = [pct(r, 99) / pct(fr, 99) for r, fr in zip(per_run[key], per_run[f], strict=True)]
            cells += [
                f"{median(values) / median(pooled[f]):.1f}x",
                f"**{pct(values, 99) / pct(pooled[f], 99):.1f}x**",
                f"{min(by_run):.1f}-{max(by_run):.1f}x",
                "" if f == "floor" else f"{pct(values, 99) / pct(pooled['floor'], 99):.1f}x",
            ]
        rows.append(cells)
    runs = len(per_run["floor"])
    n = len(per_run["floor"][0]) if runs else 0
    headers = ["path", "median", "p99", "median / floor", "p99 / floor p99", "the same, run by run", "p99 / edge floor"]
    return (
        table(headers, rows)
        + f"\n\n{runs} runs x {n} samples of each path, pooled (each run has its own floors). The floor of the"
        " edge paths is the first row; of the result paths (timer-driven), the timer floor."
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--samples", type=int, default=300, help="samples of each path per run")
    ap.add_argument("--state-dir", default=None, help="parent of the station's scratch state directory")
    ap.add_argument("--breakdown", action="store_true", help="also where the time goes (an instrumented pass)")
    args = ap.parse_args()
    parent = args.state_dir if args.state_dir is not None else default_state_parent()
    print(f"state directory under {parent or tempfile.gettempdir()}")
    print(report(measure(args.samples, args.runs, parent)))
    if args.breakdown:
        print()
        print(breakdown(args.samples, parent))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
