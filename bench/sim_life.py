"""Simulation speed: a 500-clean cassette life in virtual time, in seconds of wall time.

Mixed female cleans, dry and wet-to-dry alternately, by a disciplined operator; the state
directory on the given disk (the store's fsync per commit is most of the cost on a slow
disk) and on tmpfs (the simulation itself).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from hw_sim import SimBench
from station.config import Config
from station.domain import Outcome


def life(cleans: int, directory: str | None) -> tuple[float, int, int]:
    config = Config().replace("dispenser", reservoir_drops=100_000)
    with tempfile.TemporaryDirectory(dir=directory) as tmp:
        with SimBench(config, tmp, world_options={"reservoir_drops": 100_000}) as bench:
            t0 = time.perf_counter()
            for i in range(cleans):
                result = bench.clean("female", wet=i % 2 == 1)
                if result is None or result.outcome is not Outcome.CLEANED:
                    raise RuntimeError(f"clean {i}: {result}")
            wall = time.perf_counter() - t0
            return wall, len(bench.world.violations), bench.world.positions_total


def run(cleans: int = 500) -> dict[str, float]:
    disk, violations, _ = life(cleans, None)
    shm = Path("/dev/shm")
    ram = life(cleans, str(shm))[0] if shm.is_dir() else float("nan")
    return {"disk_s": disk, "tmpfs_s": ram, "violations": violations}


if __name__ == "__main__":
    print(run(int(sys.argv[1]) if len(sys.argv) > 1 else 500))
