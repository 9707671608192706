"""`station sim`: the simulated bench in real time, driven by typed commands."""

from __future__ import annotations

import importlib.util
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


COMMANDS = ("help", "status", "quit")  # the prompt's own words, besides the simulator's actions
LIVE_VIEW_HINT = "the live view of the bench needs Textual: pip install '.[sim]' (line mode for now)"


def is_quit(line: str) -> bool:
    words = line.split()
    return bool(words) and words[0].lower() in ("quit", "exit")


def reply(bench: SimBench, line: str) -> str | None:
    """The answer to one typed line: `help`, `status` or a simulator action (None for a blank
    line or a comment). A mistake is answered `error: ...`, never raised."""
    line = line.strip()
    if not line or line.startswith("#"):
        return None
    word = line.split()[0].lower()
    if word == "help":
        return usage() + "\n  status\n      show the station's status\n  quit"
    if word == "status":
        return json.dumps(bench.status().to_json())
    try:
        name, args = parse_line(line)
        return perform(bench, name, args)
    except (ActionError, ValueError) as exc:
        return f"error: {exc}"


def run(
    config: Config | None,
    state_dir: str | Path | None,
    lines: TextIO = sys.stdin,
    out: TextIO = sys.stdout,
    *,
    plain: bool = False,
) -> int:
    """The live view (hw_sim/tui.py) at a terminal with Textual installed, else line mode:
    typed commands in, the station's events out (`plain` asks for line mode)."""
    if not plain and lines.isatty() and out.isatty():
        if importlib.util.find_spec("textual") is None:
            print(LIVE_VIEW_HINT, file=out, flush=True)
        else:
            from . import tui

            return tui.run(config, state_dir)
    return run_lines(config, state_dir, lines, out)


def run_lines(config: Config | None, state_dir: str | Path | None, lines: TextIO, out: TextIO) -> int:
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
            if is_quit(line):
                stop.set()
                return
            text = reply(bench, line)
            if text is not None:
                print(text, file=out, flush=True)

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
