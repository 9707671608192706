"""A station process for the start-up, idle and memory benchmarks: the real `station run`
code path (Service) on gpiozero's mock pins, since the benchmark machine has no GPIO.

    python -m bench.station_child STATE_DIR     (send SIGTERM to stop)

bench/process.py starts it by its path, which works as well: it imports nothing from bench.

It tells the parent it is ready through $NOTIFY_SOCKET, exactly as it tells systemd.
"""

from __future__ import annotations

import signal
import sys
import threading

from gpiozero.pins.mock import MockFactory

from station.config import Config
from station.service import Service


def main() -> int:
    factory = MockFactory()
    config = Config().replace("console", port="")
    service = Service(config, sys.argv[1], factory)
    factory.pin(config.pins.cassette_present).drive_low()  # a cassette is fitted: ready, not fault
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    service.start()
    stop.wait()
    service.stop("benchmark over")
    return 0


if __name__ == "__main__":
    sys.exit(main())
