"""A scanned code to the station's announcement of it, against a bare pty read in the same run.

    python -m bench.scan_latency [--n 300] [--runs 3]

Floor: bytes written on the user end of a null-modem pty pair and read on the station end by a
thread blocking in pyserial's read, as the scanner's thread reads: the least a code can cost on
this cable. Measured: the station's own scanner input (`Station.start_scanner`, a SerialScanner
on the station end), the simulated bench running paced on its own thread: a code ending CR
written on the user end until `CodeScanned` is published on the controller loop (the code
checked, classified, audited durably with `synchronous=FULL`, the beep started). Each code is a
connector code (the next clean's), as on a production line.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time

import serial

from bench.common import median, pct, table
from hw_sim import SimBench
from hw_sim.nullmodem import NullModem
from station.config import Config
from station.events import CodeScanned, Event

WARM_UP = 20
TIMEOUT_S = 10.0


def floor(n: int) -> list[float]:
    cable = NullModem()
    got = threading.Event()
    stop = threading.Event()

    def reader() -> None:
        with serial.Serial(cable.station_end, 9600, timeout=0.05) as port:
            while not stop.is_set():  # as SerialScanner reads: a first byte, then what is waiting
                if port.read(max(1, min(port.in_waiting, 4096))).endswith(b"\r"):
                    got.set()

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    times = []
    try:
        with serial.Serial(cable.user_end, 9600) as user:
            time.sleep(0.2)
            for i in range(WARM_UP + n):
                got.clear()
                t0 = time.perf_counter()
                user.write(f"CBL-{i:04d}-A\r".encode())
                if not got.wait(TIMEOUT_S):
                    raise RuntimeError("the floor's reader heard nothing")
                if i >= WARM_UP:
                    times.append(time.perf_counter() - t0)
    finally:
        stop.set()
        thread.join(2)
        cable.close()
    return times


def station(n: int) -> list[float]:
    cable = NullModem()
    with tempfile.TemporaryDirectory() as directory:
        bench = SimBench(Config().replace("scanner", kind="serial", device=cable.station_end), directory)
        heard = threading.Event()
        seen_at: list[float] = []

        def listen(event: Event) -> None:
            if isinstance(event, CodeScanned):
                seen_at.append(time.perf_counter())
                heard.set()

        bench.controller.events.subscribe(listen)
        stop = threading.Event()
        runner = threading.Thread(target=bench.run_paced, args=(stop,), daemon=True)
        runner.start()
        times = []
        try:
            bench.station.start_scanner()
            scanner = bench.station.scanner
            assert scanner is not None
            scanner.connected.wait(TIMEOUT_S)  # type: ignore[attr-defined]
            with serial.Serial(cable.user_end, 9600) as user:
                for i in range(WARM_UP + n):
                    heard.clear()
                    t0 = time.perf_counter()
                    user.write(f"CBL-{i:04d}-A\r".encode())
                    if not heard.wait(TIMEOUT_S):
                        raise RuntimeError("the station announced no scan")
                    if i >= WARM_UP:
                        times.append(seen_at[-1] - t0)
        finally:
            stop.set()
            runner.join(5)
            bench.close()
            cable.close()
    return times


def run(n: int, runs: int) -> str:
    """The table (markdown) for `runs` runs of `n` codes each."""
    floors: list[float] = []
    paths: list[float] = []
    ratios = []
    for _ in range(runs):
        f, s = floor(n), station(n)
        floors += f
        paths += s
        ratios.append(pct(s, 99) / pct(f, 99))
    us = lambda v: f"{v * 1e6:.0f} µs"  # noqa: E731
    rows = [
        ["floor: pty write -> pyserial read, station end", us(median(floors)), us(pct(floors, 99)), "", ""],
        [
            "code + CR written -> CodeScanned on the controller loop",
            us(median(paths)),
            us(pct(paths, 99)),
            f"{pct(paths, 99) / pct(floors, 99):.1f}x",
            f"{min(ratios):.1f}-{max(ratios):.1f}x",
        ],
    ]
    text = table(["path", "median", "p99", "p99 / floor p99", "run by run"], rows)
    note = "The station's path includes the scan's durable audit row (`synchronous=FULL`)."
    return text + f"\n\n{runs} runs x {n} codes, pooled (each run has its own floor). {note}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=300, help="codes per run")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    print(run(args.n, args.runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
