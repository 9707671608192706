"""A station process for the start-up, idle and memory benchmarks: the real `station run`
code path (Service) on gpiozero's mock pins, since the benchmark machine has no GPIO.

    python bench/station_child.py STATE_DIR     (send SIGTERM to stop)

It tells the parent it is ready through $NOTIFY_SOCKET, exactly as it tells systemd.
"""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gpiozero.pins.mock import MockFactory  # noqa: E402

from station.config import Config  # noqa: E402
from station.service import Service  # noqa: E402


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
