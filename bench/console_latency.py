"""Console command round trip over a pty, against a bare pty echo measured in the same run.

    python -m bench.console_latency [--n 500]

Floor: a thread echoing each line back on the station end of a null-modem pty pair (read the
way the console server reads), a pyserial client on the user end: the least a line round trip
over this cable can cost. Measured: the station's console on the same kind of cable
(`hw_sim.headless.serial_ports`), the simulated bench running paced on its own thread, for a
query answered by the console thread alone (`*IDN?`) and one answered on the controller loop
(`STAT?`, a `call_sync` plus a store read).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from collections.abc import Callable

import serial

from bench.common import median, pct, table
from hw_sim import SimBench
from hw_sim.headless import serial_ports
from hw_sim.nullmodem import NullModem
from station.config import Config

WARM_UP = 20
TIMEOUT_S = 10.0


def round_trips(client: serial.Serial, line: bytes, n: int, check: Callable[[bytes], bool]) -> list[float]:
    for _ in range(WARM_UP):
        client.write(line)
        client.readline()
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        client.write(line)
        reply = client.readline()
        times.append(time.perf_counter() - t0)
        if not reply.endswith(b"\n") or not check(reply):
            raise SystemExit(f"unexpected reply to {line!r}: {reply!r}")
    return times


def echo_floor(n: int) -> list[float]:
    cable = NullModem()
    stop = threading.Event()
    station = serial.Serial(cable.station_end, 115200, timeout=0.1)

    def echo() -> None:
        pending = bytearray()
        while not stop.is_set():
            data = station.read(max(1, min(station.in_waiting, 4096)))
            pending += data
            while b"\n" in pending:
                line, _, rest = pending.partition(b"\n")
                station.write(bytes(line) + b"\n")
                pending = bytearray(rest)

    worker = threading.Thread(target=echo, name="echo", daemon=True)
    worker.start()
    client = serial.Serial(cable.user_end, 115200, timeout=TIMEOUT_S)
    try:
        return round_trips(client, b"*IDN?\n", n, lambda reply: reply == b"*IDN?\n")
    finally:
        client.close()
        stop.set()
        worker.join(2.0)
        station.close()
        cable.close()


def console_round_trips(n: int) -> dict[str, list[float]]:
    # The flood limit would refuse a benchmark's back-to-back commands: allow its maximum.
    config = Config().replace("console", max_commands_per_s=1000.0)
    results: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="mpo-bench-") as state_dir, SimBench(config, state_dir) as bench:
        stop = threading.Event()
        runner = threading.Thread(target=bench.run_paced, args=(stop,), name="paced-bench", daemon=True)
        runner.start()
        while bench.loop.thread is not runner:
            time.sleep(0.01)
        try:
            with serial_ports(bench, bench_port=False) as paths:
                client = serial.Serial(paths["console"], 115200, timeout=TIMEOUT_S)
                try:
                    for query, check in (
                        (b"*IDN?\n", lambda r: r.startswith(b"Fibreclean Labs,")),
                        (b"STAT?\n", lambda r: r.startswith(b"{") and b'"state":"idle"' in r),
                    ):
                        time.sleep(1.1)  # a full flood budget for each row
                        results[query.decode().strip()] = round_trips(client, query, n, check)
                finally:
                    client.close()
        finally:
            stop.set()
            runner.join(5.0)
    return results


def run(n: int) -> str:
    floor = echo_floor(n)
    measured = console_round_trips(n)
    f50, f99 = median(floor), pct(floor, 99)
    rows = [("bare pty echo (floor)", n, f50 * 1e3, pct(floor, 99) * 1e3, 1.0, 1.0)]
    for name, times in measured.items():
        rows.append(
            (
                f"console `{name}`",
                n,
                median(times) * 1e3,
                pct(times, 99) * 1e3,
                median(times) / f50,
                pct(times, 99) / f99,
            )
        )
    return table(["round trip", "n", "median ms", "p99 ms", "x floor (median)", "x floor (p99)"], rows)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=500, help="round trips per row (default 500)")
    args = ap.parse_args()
    print(run(args.n))
    return 0


if __name__ == "__main__":
    sys.exit(main())
