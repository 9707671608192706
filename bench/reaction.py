"""Reaction: a sensor edge to the controller's state change, against a one-hop floor.

Floor: a bare gpiozero callback handing the edge to a waiting thread through a queue (one
thread hop, which any design pays on a Pi: lgpio delivers callbacks on its own thread).
Measured: the cassette-present edge on a running station (real-time loop): idle -> fault
on removal, fault -> idle on refitting (each edge is one state change). Each edge meets an
idle station: the next one comes only after the controller has finished the previous event
(its durable audit writes), as real edges seconds apart would.
"""

from __future__ import annotations

import queue
import tempfile
import threading
import time
from pathlib import Path

from gpiozero import DigitalInputDevice  # noqa: E402
from gpiozero.pins.mock import MockFactory  # noqa: E402

from bench.common import median, pct  # noqa: E402
from station.app import build_station  # noqa: E402
from station.config import Config  # noqa: E402
from station.loop import EventLoop, RealClock  # noqa: E402
from station.store import Store  # noqa: E402


def floor(n: int) -> list[float]:
    factory = MockFactory()
    device = DigitalInputDevice(5, pull_up=True, pin_factory=factory)
    hops: queue.Queue[float] = queue.Queue()
    got: list[float] = []
    done = threading.Event()

    def waiter() -> None:
        for _ in range(n):
            t0 = hops.get()
            got.append(time.perf_counter() - t0)
        done.set()

    threading.Thread(target=waiter, daemon=True).start()
    device.when_activated = lambda: hops.put(time.perf_counter())
    pin = factory.pin(5)
    for _ in range(n):
        pin.drive_low()
        pin.drive_high()
        time.sleep(0.002)
    done.wait(10)
    device.close()
    return got


def station(n: int) -> list[float]:
    factory = MockFactory()
    loop = EventLoop(RealClock())
    tmp = tempfile.TemporaryDirectory()
    config = Config()
    st = build_station(config, loop, factory, Store(Path(tmp.name) / "station.db"))
    changed = threading.Event()
    stamp: list[float] = []

    def on_event(kind: str, data: dict) -> None:
        if kind == "state":
            stamp.append(time.perf_counter())
            changed.set()

    st.controller.subscribe(on_event)
    cassette = factory.pin(config.pins.cassette_present)
    cassette.drive_low()
    st.controller.start()
    loop.start_thread()
    time.sleep(0.2)
    results = []
    for i in range(n):
        changed.clear()
        stamp.clear()
        t0 = time.perf_counter()
        (cassette.drive_high if i % 2 == 0 else cassette.drive_low)()
        if not changed.wait(2.0):
            raise RuntimeError("no state change")
        results.append(stamp[0] - t0)
        loop.call_sync(lambda: None)  # let it finish this event's durable writes: edges meet an idle station
        time.sleep(0.005)
    st.shutdown()
    tmp.cleanup()
    return results


def run(n: int = 400) -> dict[str, list[float]]:
    return {"floor": floor(n), "station": station(n)}


if __name__ == "__main__":
    r = run()
    for k, v in r.items():
        print(f"{k}: median {median(v) * 1e6:.0f} us, p99 {pct(v, 99) * 1e6:.0f} us")
