"""`station sim`: the simulated bench in real time, driven by typed commands."""

from __future__ import annotations

import json
import queue
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from station.config import Config

from .actions import ActionError, parse_line, perform, usage
from .bench import SimBench
from .headless import serial_ports, sim_state_dir
from .report import printer

BANNER = """Simulated MPO cleaning station (real time). Type a command, `help` for the list, `quit` to leave.
Try:  present female   (wait for SWIPE NOW)   swipe   remove"""


def run(
    config: Config | None, state_dir: str | Path | None, lines: TextIO = sys.stdin, out: TextIO = sys.stdout
) -> int:
    inbox: queue.Queue[Callable[[], None]] = queue.Queue()
    stop = threading.Event()
    directory = sim_state_dir(state_dir)
    world = {"state_file": directory / "sim-world.json"}
    print(f"state directory: {directory}", file=out)
    with (
        SimBench(config, directory, wall_start=time.time(), world_options=world) as bench,
        serial_ports(bench, bench_port=False) as paths,
    ):
        bench.controller.events.subscribe(printer(bench.loop, out))
        print(BANNER, file=out)
        print(
            f"maintenance console: {sys.executable} -m serial.tools.miniterm --echo {paths['console']} 115200",
            file=out,
            flush=True,
        )

        def handle(line: str) -> None:
            line = line.strip()
            if not line or line.startswith("#"):
                return
            word = line.split()[0].lower()
            if word in ("quit", "exit"):
                stop.set()
            elif word == "help":
                print(usage() + "\n  status\n      show the station's status\n  quit", file=out, flush=True)
            elif word == "status":
                print(json.dumps(bench.status().to_json()), file=out, flush=True)
            else:
                try:
                    name, args = parse_line(line)
                    print(perform(bench, name, args), file=out, flush=True)
                except (ActionError, ValueError) as exc:
                    print(f"error: {exc}", file=out, flush=True)

        def read() -> None:
            for line in lines:
                inbox.put(lambda line=line: handle(line))
            inbox.put(stop.set)  # end of input, after every command before it has run

        threading.Thread(target=read, name="stdin", daemon=True).start()
        try:
            bench.run_paced(stop, inbox)
        except KeyboardInterrupt:
            pass
    return 0
