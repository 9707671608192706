"""`station sim --headless`: the simulated bench in real time with its console and bench
ports on pseudo-terminals, until SIGTERM or SIGINT."""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

from station.app import default_state_dir
from station.config import Config
from station.console.server import Console, Dispatcher, SerialPortServer
from station.sdnotify import Notifier

from . import benchport
from .bench import SimBench
from .console_tap import ConsoleTap
from .nullmodem import NullModem


def sim_state_dir(state_dir: str | Path | None) -> Path:
    """Real-time simulations keep their books and their bench between runs, like a station."""
    directory = Path(state_dir) if state_dir else default_state_dir(on_pi=False)
    directory.mkdir(parents=True, exist_ok=True)
    return directory


@contextmanager
def serial_ports(bench: SimBench, *, bench_port: bool) -> Iterator[dict[str, str]]:
    """The station's console (and optionally the world's bench port) on null-modem cables.
    Yields the user-side paths: {"console": ..., "bench": ...}.

    A tap on the console cable tells the world the mode a person chose there (`mode set`,
    answered OK), from the bytes on the cable, on the loop thread."""
    cfg = bench.config.console

    def tell_world(mode: str | None) -> None:
        def apply() -> None:
            if bench.world is not None:
                bench.world.console_mode = mode

        bench.loop.post(apply)

    def tell_scan(code: str) -> None:  # a person read a label and typed it: the world saw it read
        if bench.world is not None:
            world = bench.world
            bench.loop.post(lambda: world.judge.scanned(code))

    cables = {"console": NullModem(tap=ConsoleTap(tell_world, tell_scan))}
    console = Console(
        bench.controller,
        serial_url=cables["console"].station_end,
        baud=cfg.baud,
        tcp_port=cfg.tcp_port,
        idle_logout_s=cfg.idle_logout_s,
        max_per_s=cfg.max_commands_per_s,
        port_name=cables["console"].user_end,  # the device the person attached to names the port
    )
    servers = list(console.servers)
    if bench_port:
        cables["bench"] = NullModem()
        reg = benchport.registry(bench)
        servers.append(
            SerialPortServer(
                cables["bench"].station_end,
                cfg.baud,
                lambda: Dispatcher(reg, lambda write, session, errors: errors, None),
                name="bench",
            )
        )
        servers[-1].start()
    console.start()
    for server in servers:
        server.connected.wait(5.0)
    try:
        paths = {name: cable.user_end for name, cable in cables.items()}
        if console.tcp is not None:
            paths["tcp"] = f"socket://127.0.0.1:{console.tcp.port}"
        yield paths
    finally:
        console.stop()
        for server in servers:
            server.stop()
        for cable in cables.values():
            cable.close()


def run(config: Config | None, state_dir: str | Path | None, out: TextIO = sys.stdout) -> int:
    """Until SIGTERM/SIGINT; then the same orderly stop as `station run`: safe outputs, the
    clean in flight recorded as interrupted, books and ports closed, exit 0."""
    stop = threading.Event()
    received: list[str] = []

    def on_signal(signum: int, _frame: object) -> None:
        received.append(signal.Signals(signum).name)
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)
    directory = sim_state_dir(state_dir)
    notifier = Notifier()
    with SimBench(
        config, directory, wall_start=time.time(), world_options={"state_file": directory / "sim-world.json"}
    ) as bench:
        bench.loop.heartbeat = notifier.heartbeat
        with serial_ports(bench, bench_port=True) as paths:
            bench.station.start_fleet()  # a [fleet] broker set: published as `station run` publishes
            bench.station.start_scanner()  # a [scanner] configured: read as `station run` reads it
            for name, path in paths.items():
                print(f"{name}: {path}", file=out, flush=True)
            notifier.ready(bench.state)
            bench.run_paced(stop)
            notifier.stopping()
        bench.close(f"station stopped ({received[0] if received else 'signal'})")
    notifier.close()
    print("stopped", file=out, flush=True)
    return 0
