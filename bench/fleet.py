"""A fleet of simulated stations publishing to one Mosquitto, collected by `station fleet collect`.

    python -m bench.fleet [--stations 50] [--procs 2] [--runs 3] [--quick] [--output FILE]

Each run starts its own Mosquitto on a free loopback port (persistence on, the collector's queue
unbounded: docs/fleet.md's advice for a collector) and the collector (station/fleet_collect.py's
Collector and FleetDB, on a thread of this process). The stations are SimBenches on real
database files, each with the firmware's FleetPublisher (`Station.start_fleet()`, the default
`[fleet]` settings: `backlog_rate_per_s` 50), spread over `--procs` worker processes; a worker
cleans its stations in turn (`bench.clean("female")`, dry) as fast as its CPU allows, in
virtual time. Phases of a run:

1. the stations alone, the fleet not started: attempts per second the machine makes (the
   ceiling the fleet is held to);
2. the fleet started: attempts per second end to end (recorded by a station -> stored by the
   collector) and the latency of each attempt, in wall time, from the moment the station's
   store committed it (the `AttemptFinished` announcement, which the firmware makes after the
   durable write) to the moment the collector's commit returned; the floor is a bare paho QoS 1
   publish -> subscribe round trip through the same broker, measured in the same run;
3. an outage: the broker is stopped (SIGTERM: it saves its persistence file) and every station
   cleans on for `--outage-s` of its own virtual time (600 s: ten minutes of a floor's work),
   building a backlog in its database; the broker is restarted on the same port and the
   backlog drains. Per station, the drain rate is its backlog over the time from its
   reconnection to its `delivered` cursor reaching its last attempt (what `backlog_rate_per_s`
   bounds); for the floor, the collector's intake from its reconnection to the last row stored.
   The reconnections themselves follow paho's back-off (1 s doubling to 60 s) and the
   collector's (the same), and are reported apart.

Memory per station is the workers' resident set growth per station added (VmRSS, /proc), for
the station alone and then for its publisher, and at the end of the run over the stations.
Every run checks that the collector holds every station's every attempt once.
Instrumentation only: timestamps are taken by listeners and a FleetDB subclass; the firmware
runs as it does on a station.
"""

from __future__ import annotations

import argparse
import bisect
import getpass
import json
import logging
import multiprocessing as mp
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from bench.common import median, pct, table

RATE_DEFAULT = 50.0  # [fleet] backlog_rate_per_s's default (station/config.py)


# -- helpers -----------------------------------------------------------------------------------
def _vm_kb(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(cond: Callable[[], object], timeout: float, what: str, poll: float = 0.01) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise RuntimeError(f"not within {timeout:.0f} s: {what}")
        time.sleep(poll)


class Mosquitto:
    """A broker of the benchmark's own: loopback, anonymous, persistence in `directory` (so the
    collector's session and queue survive the outage), no limit on a session's queue."""

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.conf = directory / "mosquitto.conf"
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence true\n"
            f"persistence_location {directory}/\nmax_queued_messages 0\n"
            # as root, mosquitto drops to the user `mosquitto`, which cannot write its persistence
            # file into this private directory: the collector's session would not survive the outage
            f"user {getpass.getuser()}\n"
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["mosquitto", "-c", str(self.conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )

        def listening() -> bool:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return True
            except OSError:
                return False

        wait_for(listening, 10, "mosquitto listening")

    def stop(self) -> None:
        """An orderly stop (SIGTERM): the broker writes its persistence file and exits."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def bare_round_trips(port: int, n: int) -> list[float]:
    """The floor: a paho QoS 1 publish -> subscribe round trip through the broker, one at a time."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    got = threading.Event()
    sub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-floor-sub")
    ready = threading.Event()
    sub.on_subscribe = lambda *_: ready.set()
    sub.on_message = lambda *_: got.set()
    sub.connect("127.0.0.1", port)
    sub.subscribe("bench/floor", qos=1)
    sub.loop_start()
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-floor-pub")
    pub.connect("127.0.0.1", port)
    pub.loop_start()
    ready.wait(5)
    payload = json.dumps({"schema": 1, "kind": "attempt", "pad": "x" * 400})  # an attempt's size
    times = []
    for _ in range(n):
        got.clear()
        t0 = time.perf_counter()
        pub.publish("bench/floor", payload, qos=1)
        if not got.wait(5):
            raise RuntimeError("the floor's message did not come back")
        times.append(time.perf_counter() - t0)
    for c in (pub, sub):
        c.disconnect()
        c.loop_stop()
    return times


# -- the worker process: some of the stations --------------------------------------------------
def worker(conn: Connection, ids: list[str], port: int, root: str) -> None:
    """Runs in its own process: SimBenches for `ids`, driven by commands on `conn`."""
    import paho.mqtt.client  # noqa: F401  (in the baseline: the publishers' library, loaded once)

    from hw_sim.bench import SimBench
    from station.config import Config
    from station.events import AttemptFinished, Event

    logging.getLogger("station").setLevel(logging.ERROR)  # 50 stations saying "disconnected"
    base = _vm_kb("VmRSS")
    benches: dict[str, SimBench] = {}
    stamps: dict[str, dict[int, float]] = {}

    def listener(sid: str) -> Callable[[Event], None]:
        book = stamps.setdefault(sid, {})

        def on(event: Event) -> None:
            if isinstance(event, AttemptFinished):
                book[event.id] = time.time()  # announced after the store's commit

        return on

    for sid in ids:
        config = Config().replace("fleet", broker=f"mqtt://127.0.0.1:{port}", station_id=sid)
        benches[sid] = SimBench(config, Path(root) / sid)
        benches[sid].controller.events.subscribe(listener(sid))
    after_benches = _vm_kb("VmRSS")

    def clean_round(which: list[str]) -> int:
        n = 0
        for sid in which:
            result = benches[sid].clean("female")
            if result is None:
                raise RuntimeError(f"{sid}: a clean without a result ({benches[sid].state})")
            n += 1
        return n

    conn.send({"base_kb": base, "benches_kb": after_benches})
    while True:
        cmd, arg = conn.recv()
        if cmd == "clean_for":  # wall seconds
            t0, n = time.monotonic(), 0
            while time.monotonic() - t0 < arg:
                n += clean_round(ids)
            conn.send({"attempts": n, "wall_s": time.monotonic() - t0})
        elif cmd == "start_fleet":
            for b in benches.values():
                b.station.start_fleet()
                if b.station.fleet is None:
                    raise RuntimeError("the fleet publisher did not start")
            conn.send({"fleet_kb": _vm_kb("VmRSS")})
        elif cmd == "connected":
            conn.send(all(b.station.fleet is not None and b.station.fleet.connected() for b in benches.values()))
        elif cmd == "clean_virtual":  # each station's own virtual seconds
            start = {sid: b.clock.now() for sid, b in benches.items()}
            t0, n = time.monotonic(), 0
            while True:
                behind = [sid for sid in ids if benches[sid].clock.now() - start[sid] < arg]
                if not behind:
                    break
                n += clean_round(behind)
            conn.send({"attempts": n, "wall_s": time.monotonic() - t0})
        elif cmd == "last_ids":
            conn.send({sid: max(stamps.get(sid, {0: 0.0})) for sid in ids})
        elif cmd == "delivered":
            conn.send({sid: b.station.fleet.delivered for sid, b in benches.items() if b.station.fleet})
        elif cmd == "watch_drain":  # after the restart: when each reconnects, when its cursor is at its end
            last = {sid: max(stamps.get(sid, {0: 0.0})) for sid in ids}
            back: dict[str, float] = {}
            done: dict[str, float] = {}
            deadline = time.monotonic() + arg
            while len(done) < len(ids) and time.monotonic() < deadline:
                now = time.time()
                for sid, b in benches.items():
                    fleet = b.station.fleet
                    assert fleet is not None
                    if sid not in back and fleet.connected():
                        back[sid] = now
                    if sid not in done and fleet.delivered >= last[sid]:
                        done[sid] = now
                time.sleep(0.005)
            conn.send({"back": back, "done": done})
        elif cmd == "stamps":
            conn.send(stamps)
        elif cmd == "finish":
            violations = sum(len(b.world.violations) for b in benches.values() if b.world is not None)
            rss = _vm_kb("VmRSS")
            for b in benches.values():
                b.close("benchmark over")
            conn.send({"end_kb": rss, "violations": violations})
            return
        else:
            raise RuntimeError(f"unknown command {cmd!r}")


# -- the run -----------------------------------------------------------------------------------
@dataclass
class Run:
    stations: int
    procs: int
    alone_rate: float = 0.0  # attempts/s, stations without the fleet
    recorded_rate: float = 0.0  # attempts/s recorded with the fleet on
    e2e_rate: float = 0.0  # attempts/s recorded and stored by the collector
    latencies: list[float] = field(default_factory=list)
    floor: list[float] = field(default_factory=list)
    station_kb: float = 0.0  # per station: the SimBench and its store
    fleet_kb: float = 0.0  # per station: its publisher (paho client, two connections, threads)
    end_kb: float = 0.0  # per station, at the end of the run
    backlog: int = 0
    outage_wall_s: float = 0.0
    reconnect_s: list[float] = field(default_factory=list)  # per station, after the restart
    collector_back_s: float = 0.0
    drains: list[tuple[int, float]] = field(default_factory=list)  # per station: backlog, s to its last PUBACK
    intake_rate: float = 0.0  # the collector's attempts/s, its reconnection (or first row) -> last row
    intake_peak: int = 0  # the most backlog rows the collector stored in one second
    duplicates: int = 0
    events: int = 0
    violations: int = 0
    wall_s: float = 0.0


def run_once(stations: int, procs: int, base_s: float, steady_s: float, outage_s: float, floor_n: int) -> Run:
    from station.fleet_collect import Collector, FleetDB
    from station.fleet_watch import parse_broker

    started = time.monotonic()
    run = Run(stations, procs)
    with tempfile.TemporaryDirectory(prefix="mpo-fleet-bench-") as tmp_name:
        tmp = Path(tmp_name)
        (tmp / "broker").mkdir()
        broker = Mosquitto(tmp / "broker")
        broker.start()
        collected: dict[tuple[str, int], float] = {}

        class Timed(FleetDB):
            """The collector's database, noting when each attempt's commit returned."""

            def take(self, topic: str, payload: bytes, received_at: float) -> str:
                outcome = super().take(topic, payload, received_at)
                if outcome == "stored" and topic.endswith("/attempts"):
                    collected[(topic.split("/")[1], int(json.loads(payload)["id"]))] = time.time()

                return outcome

        db = Timed(tmp / "fleet.db")
        collector = Collector(parse_broker(f"mqtt://127.0.0.1:{broker.port}"), db, client_id="bench-collector")
        stop = threading.Event()
        serving = threading.Thread(target=collector.serve, args=(stop,), daemon=True)
        serving.start()
        ctx = mp.get_context("spawn")
        ids = [f"st-{i:03d}" for i in range(stations)]
        groups = [ids[i::procs] for i in range(procs) if ids[i::procs]]
        pipes: list[Connection] = []
        workers = []
        try:
            wait_for(collector.subscribed.is_set, 10, "the collector subscribed")
            run.floor = bare_round_trips(broker.port, floor_n)
            for group in groups:
                mine, theirs = ctx.Pipe()
                p = ctx.Process(target=worker, args=(theirs, group, broker.port, str(tmp)), daemon=True)
                p.start()
                pipes.append(mine)
                workers.append(p)
            hello = [c.recv() for c in pipes]

            def each(cmd: str, arg: Any = None) -> list[Any]:
                for c in pipes:
                    c.send((cmd, arg))
                return [c.recv() for c in pipes]

            # 1. the stations alone
            alone = each("clean_for", base_s)
            run.alone_rate = sum(r["attempts"] / r["wall_s"] for r in alone)
            # 2. the fleet on
            fleet_mem = each("start_fleet")
            run.station_kb = sum(h["benches_kb"] - h["base_kb"] for h in hello) / stations
            run.fleet_kb = (
                sum(f["fleet_kb"] - h["benches_kb"] for h, f in zip(hello, fleet_mem, strict=True)) / stations
            )
            wait_for(lambda: all(each("connected")), 30, "every station connected")
            made_alone = [(sid, i) for s in each("stamps") for sid, book in s.items() for i in book]
            wait_for(lambda: all(k in collected for k in made_alone), 120, "the first phase's attempts collected")
            t0 = time.time()
            steady = each("clean_for", steady_s)
            stamps: dict[str, dict[int, float]] = {}
            for s in each("stamps"):
                stamps.update(s)
            window = [(sid, i) for sid, book in stamps.items() for i, t in book.items() if t >= t0]
            wait_for(lambda: all(k in collected for k in window), 120, "the steady phase collected")
            run.recorded_rate = sum(r["attempts"] / r["wall_s"] for r in steady)
            run.e2e_rate = len(window) / (max(collected[k] for k in window) - t0)
            run.latencies = [collected[k] - stamps[k[0]][k[1]] for k in window]
            last = {}
            for part in each("last_ids"):
                last.update(part)
            wait_for(
                lambda: all(d[sid] >= last[sid] for d in each("delivered") for sid in d), 60, "every cursor at its end"
            )
            # 3. the outage
            broker.stop()
            outage = each("clean_virtual", outage_s)
            run.outage_wall_s = max(r["wall_s"] for r in outage)
            run.backlog = sum(r["attempts"] for r in outage)
            stamps = {}
            for s in each("stamps"):
                stamps.update(s)
            backlog = [(sid, i) for sid, book in stamps.items() for i in book if (sid, i) not in collected]
            broker.start()
            restarted = time.time()
            for c in pipes:
                c.send(("watch_drain", 180.0))
            wait_for(collector.subscribed.is_set, 180, "the collector back")
            collector_back = time.time()
            run.collector_back_s = collector_back - restarted
            try:
                wait_for(lambda: all(k in collected for k in backlog), 300, "the backlog collected")
            except RuntimeError as exc:
                late = sorted({sid for sid, i in backlog if (sid, i) not in collected})
                cursors = {sid: at for d in each("delivered") for sid, at in d.items() if sid in late}
                raise RuntimeError(f"{exc}: missing from {late} (their cursors: {cursors})") from None
            done = sorted(collected[k] for k in backlog)
            run.intake_rate = len(done) / max(1e-3, done[-1] - max(collector_back, done[0]))
            run.intake_peak = max(bisect.bisect_right(done, t + 1.0) - i for i, t in enumerate(done))
            for c in pipes:
                drain = c.recv()
                for sid, back in drain["back"].items():
                    run.reconnect_s.append(back - restarted)
                    own = sum(1 for s, _ in backlog if s == sid)
                    if sid in drain["done"]:
                        run.drains.append((own, max(0.0, drain["done"][sid] - back)))
            # exactly once: the collector holds every attempt each station recorded, no more
            for s in each("stamps"):
                stamps.update(s)
            truth = {(sid, i) for sid, book in stamps.items() for i in book}
            if truth != set(collected):
                missing, extra = len(truth - set(collected)), len(set(collected) - truth)
                raise RuntimeError(
                    f"the collector's attempts differ from the stations': {missing} missing, {extra} extra"
                )
            run.duplicates = collector.counts["duplicate"]
            ends = each("finish")
            pipes = []
            run.end_kb = sum(e["end_kb"] - h["base_kb"] for h, e in zip(hello, ends, strict=True)) / stations
            run.violations = sum(e["violations"] for e in ends)
            run.events = collector.counts["stored"] - len(collected)
        finally:
            for c in pipes:
                try:
                    c.send(("finish", None))
                except OSError:
                    pass
            for p in workers:
                p.join(30)
                if p.is_alive():
                    p.kill()
            stop.set()
            serving.join(5)
            db.close()
            broker.stop()
    run.wall_s = time.monotonic() - started
    return run


# -- the report --------------------------------------------------------------------------------
def spread(values: list[float], fmt: str) -> str:
    return f"{fmt.format(min(values))}-{fmt.format(max(values))}" if len(values) > 1 else ""


def report(runs: list[Run], outage_s: float, rate: float = RATE_DEFAULT) -> str:
    n, procs = runs[0].stations, runs[0].procs

    def row(name: str, values: list[float], fmt: str, floor: str = "") -> tuple[str, str, str, str]:
        return (name, fmt.format(median(values)), spread(values, fmt), floor)

    p99 = [pct(r.latencies, 99) * 1e3 for r in runs]
    p50 = [median(r.latencies) * 1e3 for r in runs]
    floor99 = [pct(r.floor, 99) * 1e3 for r in runs]
    floor50 = [median(r.floor) * 1e3 for r in runs]
    e2e = [r.e2e_rate for r in runs]
    alone = [r.alone_rate for r in runs]
    # per station: the drain's time and what the rate limit alone allows for that backlog (the token
    # bucket holds one second's worth, full after an outage: `rate` at once, then `rate` per second)
    drain_s = [median([t for _, t in r.drains]) for r in runs]
    limit_s = [median([max(0.0, b - rate) / rate for b, _ in r.drains]) for r in runs]
    drain_rate = [median([b / t for b, t in r.drains if t > 0]) for r in runs]
    per_station = median([float(b) for r in runs for b, _ in r.drains])
    intake = [r.intake_rate for r in runs]
    backlog = [float(r.backlog) for r in runs]
    reconnect_med = [median(r.reconnect_s) for r in runs]
    reconnect_max = [max(r.reconnect_s) for r in runs]
    rows = [
        row(
            "attempts/s end to end (station commit -> collector commit)",
            e2e,
            "{:.0f}",
            f"the stations alone (no fleet) {median(alone):.0f}/s: {median(e2e) / median(alone):.2f}x",
        ),
        row("attempts/s recorded by the stations, fleet on", [r.recorded_rate for r in runs], "{:.0f}"),
        row(
            "latency p50, store commit -> collector commit",
            p50,
            "{:.1f} ms",
            f"bare paho QoS 1 round trip p50 {median(floor50):.2f} ms ({median(p50) / median(floor50):.0f}x)",
        ),
        row(
            "latency p99, store commit -> collector commit",
            p99,
            "{:.1f} ms",
            f"bare paho QoS 1 round trip p99 {median(floor99):.2f} ms ({median(p99) / median(floor99):.0f}x)",
        ),
        row("memory per station: the station (SimBench, store)", [r.station_kb / 1024 for r in runs], "{:.2f} MB"),
        row(
            "memory per station: its fleet publisher (paho, 2 SQLite connections, 2 threads)",
            [r.fleet_kb / 1024 for r in runs],
            "{:.2f} MB",
        ),
        row("memory per station at the end of the run (all of it)", [r.end_kb / 1024 for r in runs], "{:.2f} MB"),
        row(
            f"backlog after a {outage_s / 60:g}-minute outage (virtual), attempts",
            backlog,
            "{:.0f}",
            f"{median(backlog) / n:.0f} per station, built in "
            f"{median([r.outage_wall_s for r in runs]):.0f} s of wall time",
        ),
        row(
            "reconnection after the restart, station median (paho's back-off)",
            reconnect_med,
            "{:.1f} s",
            f"last station {median(reconnect_max):.1f} s; collector {median([r.collector_back_s for r in runs]):.1f} s",
        ),
        row(
            "drain per station: reconnection -> its last attempt acknowledged (median station)",
            drain_s,
            "{:.2f} s",
            f"the rate limit alone: {median(limit_s):.2f} s ({rate:g} at once, then {rate:g}/s)",
        ),
        row("drain rate per station (its backlog / that time)", drain_rate, "{:.0f}/s", f"backlog_rate_per_s {rate:g}"),
        row(
            "drain at the collector: the backlog's first row stored -> its last",
            intake,
            "{:.0f}/s",
            f"peak second {median([float(r.intake_peak) for r in runs]):.0f}; the fleet's rate limit {n * rate:.0f}/s",
        ),
    ]
    if per_station <= rate:
        bound = (
            f"neither: a backlog of {per_station:.0f} per station fits in the bucket of {rate:g} and goes at once; "
            "the full run's ten-minute outage is the measurement"
        )
    elif median(drain_s) <= 1.2 * median(limit_s) + 0.2:
        bound = (
            f"**the rate limit**: the median station drained its {per_station:.0f} attempts in "
            f"{median(drain_s):.2f} s, the {median(limit_s):.2f} s that `backlog_rate_per_s` = {rate:g} allows"
        )
    else:
        bound = (
            f"**the machine**: the median station took {median(drain_s):.2f} s for its {per_station:.0f} attempts "
            f"where `backlog_rate_per_s` = {rate:g} allows {median(limit_s):.2f} s; the fleet may send "
            f"{n * rate:.0f}/s, the broker and collector on this machine took {median(intake):.0f}/s"
        )
    lost = sum(r.violations for r in runs)
    lines = [
        table(["figure", "median", "spread (min-max over runs)", "floor / bound"], rows),
        "",
        f"{n} stations in {procs} worker processes, one Mosquitto, the collector in the benchmark's "
        f"process; {len(runs)} run{'s' if len(runs) > 1 else ''} (median of the runs; each run's latency "
        f"figures over all its attempts: {median([float(len(r.latencies)) for r in runs]):.0f} per run). "
        f"Every run: the collector held every attempt of every station once "
        f"({sum(r.duplicates for r in runs)} duplicates ignored, {sum(r.events for r in runs)} events stored "
        f"besides); the simulator's judge recorded {lost} violations.",
        "",
        f"Drain bound: {bound}. Reconnection is not in the drain time: it follows paho's back-off "
        "(1 s doubling to 60 s, the first step randomized) and the collector's (the same); after a real "
        "ten-minute outage the stations are back within a minute of the broker.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--stations", type=int, default=50)
    ap.add_argument("--procs", type=int, default=2, help="worker processes the stations are spread over")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--steady-s", type=float, default=15.0, help="wall seconds of cleaning with the fleet on")
    ap.add_argument("--outage-s", type=float, default=600.0, help="virtual seconds the broker is away")
    ap.add_argument("--quick", action="store_true", help="5 stations, 1 run, a 1-minute outage: a smoke run")
    ap.add_argument("--output", help="also write the section (heading, command, table) to this file")
    args = ap.parse_args(argv)
    if shutil.which("mosquitto") is None:
        print("bench.fleet: mosquitto is not installed (apt-get install mosquitto)", file=sys.stderr)
        return 2
    try:
        import paho.mqtt.client  # noqa: F401
    except ImportError:
        print("bench.fleet: paho-mqtt is not installed (pip install -e '.[fleet]')", file=sys.stderr)
        return 2
    if args.quick:
        args.stations, args.runs, args.steady_s, args.outage_s = 5, 1, 3.0, 60.0
    base_s = 3.0 if args.quick else 8.0
    floor_n = 100 if args.quick else 300
    started = time.monotonic()
    runs = []
    for i in range(args.runs):
        runs.append(
            run_once(args.stations, min(args.procs, args.stations), base_s, args.steady_s, args.outage_s, floor_n)
        )
        print(f"run {i + 1}/{args.runs}: {runs[-1].wall_s:.0f} s", file=sys.stderr, flush=True)
    total = time.monotonic() - started
    command = "python -m bench.fleet" + (" --quick" if args.quick else "")
    if not args.quick and (args.stations, args.procs, args.runs) != (50, 2, 3):
        command += f" --stations {args.stations} --procs {args.procs} --runs {args.runs}"
    text = (
        f"{HEADING}\n\nGenerated by `{command}` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC ({total:.0f} s); "
        f"not part of `bench.run_all` (too slow), which keeps this section when it rewrites the file.\n\n"
        + report(runs, args.outage_s)
    )
    print(text)
    if args.output:
        replace_section(Path(args.output), text)
    return 0


HEADING = "## Fleet: simulated stations, one broker, the collector"


def replace_section(path: Path, text: str) -> None:
    """Put `text` (a section starting with HEADING) into `path` in place of the one there, or at the end."""
    old = path.read_text(encoding="utf-8") if path.exists() else ""
    path.write_text(merge_section(old, text), encoding="utf-8")


def merge_section(old: str, text: str) -> str:
    kept = kept_section(old)
    if kept:
        return old.replace(kept, text.rstrip("\n") + "\n")
    return old.rstrip("\n") + ("\n\n" if old else "") + text.rstrip("\n") + "\n"


def kept_section(doc: str) -> str:
    """The fleet section of a benchmarks document (up to the next `## ` heading), or ''."""
    at = doc.find(HEADING + "\n")
    if at < 0:
        return ""
    end = doc.find("\n## ", at + len(HEADING))
    return doc[at:end] if end >= 0 else doc[at:]


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
