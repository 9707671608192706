"""Start-up to ready, idle CPU and peak memory of a running station process.

Start-up: from spawning the process to its READY=1 notification, against a bare
`python -c "import gpiozero, transitions, serial"` (the least any station process costs).
Idle: CPU seconds used per minute while it waits for a connector (real time, event-driven).
Memory: the process's peak resident set (VmHWM) after start-up and the idle period.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _vm(pid: int, key: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024.0  # MB
    return float("nan")


def bare_imports(n: int) -> list[float]:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import gpiozero, transitions, serial"], check=True)
        times.append(time.perf_counter() - t0)
    return times


def station_runs(n: int, idle_s: float) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"startup": [], "idle_cpu_s_per_min": [], "peak_mb": []}
    for i in range(n):
        with tempfile.TemporaryDirectory() as tmp:
            address = os.path.join(tmp, "notify")
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            sock.bind(address)
            sock.settimeout(30)
            env = dict(os.environ, NOTIFY_SOCKET=address)
            t0 = time.perf_counter()
            proc = subprocess.Popen(
                [sys.executable, str(ROOT / "bench" / "station_child.py"), os.path.join(tmp, "state")], env=env
            )
            try:
                while b"READY=1" not in sock.recv(4096):
                    pass
                out["startup"].append(time.perf_counter() - t0)
                if i == 0 and idle_s > 0:
                    c0 = _cpu_seconds(proc.pid)
                    time.sleep(idle_s)
                    out["idle_cpu_s_per_min"].append((_cpu_seconds(proc.pid) - c0) * 60.0 / idle_s)
                out["peak_mb"].append(_vm(proc.pid, "VmHWM"))
            finally:
                proc.terminate()
                proc.wait(10)
                sock.close()
    return out


if __name__ == "__main__":
    print(station_runs(3, 10.0), bare_imports(3))
