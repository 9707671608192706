"""`station run`: the station as a service on the Pi.

Start-up checks either pass or put the station in fault with the console up; READY=1 goes
to systemd after them, WATCHDOG=1 comes from the controller loop itself (a hung controller
stops the pings and systemd restarts the service), STATUS= follows the state. SIGTERM /
SIGINT: safe outputs, the clean in flight recorded as interrupted, store and devices closed,
exit 0.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from pathlib import Path

from gpiozero.pins import Factory

from .app import Station, build_station, claim_state_dir
from .config import Config
from .console.server import Console
from .domain import FaultCode
from .loop import EventLoop, RealClock
from .plausibility import sensor_problems
from .sdnotify import Notifier
from .statelock import StateLock
from .store import Store, StoreError

log = logging.getLogger(__name__)


def serial_problem(url: str) -> str | None:
    """Why the console's serial device cannot be used, or None."""
    if "://" in url or not url:
        return None
    if not Path(url).exists():
        return (
            f"console port {url} does not exist: enable the UART (raspi-config: serial port on, "
            "login shell off) or set [console] port"
        )
    if not os.access(url, os.R_OK | os.W_OK):
        return f"no permission on {url}: add the service user to the dialout group"
    return None


class Service:
    """A running station with its console and its systemd conversation."""

    def __init__(
        self, config: Config, state_dir: str | None, pin_factory: Factory, notifier: Notifier | None = None
    ) -> None:
        self.notifier = notifier or Notifier()
        self.problems: list[tuple[FaultCode, str]] = []
        lock: StateLock | None = None
        try:  # StateDirInUse (another station on this directory) is raised on: start nothing
            store, lock = claim_state_dir(config, state_dir, on_pi=True)
        except StoreError as exc:
            # Keep the console up to say so; cleaning stays refused until a restart with a usable disk.
            self.problems.append((FaultCode.STORAGE, str(exc)))
            store = Store(":memory:", fluid_capacity=config.dispenser.reservoir_drops)
        self.loop = EventLoop(RealClock())
        self.station: Station = build_station(config, self.loop, pin_factory, store, lock=lock)
        self.controller = self.station.controller
        c = config.console
        self.console = Console(
            self.controller,
            serial_url=c.port,
            baud=c.baud,
            tcp_port=c.tcp_port,
            idle_logout_s=c.idle_logout_s,
            max_per_s=c.max_commands_per_s,
        )
        if (text := serial_problem(c.port)) is not None:
            log.warning(text)  # not a fault: the bench cleans without its console
        self.loop.heartbeat = self._heartbeat
        if self.notifier.watchdog_interval:
            self.loop.heartbeat_every = min(1.0, self.notifier.watchdog_interval)
        self._thread: threading.Thread | None = None

    def _heartbeat(self) -> None:
        """On the controller loop, once per turn: a stuck controller stops the watchdog pings."""
        self.notifier.heartbeat()
        faults = self.controller.faults
        detail = f" ({faults.code.value}: {faults.detail})" if faults.code else ""
        self.notifier.status(self.controller.state + detail)

    def start(self) -> None:
        self.problems += [(FaultCode.STARTUP, text) for text in sensor_problems(self.station.hardware.sensors)]
        if (text := self.controller.settings.saved_problem()) is not None:
            self.problems.append((FaultCode.STARTUP, text))
        self.controller.start()
        for code, text in self.problems:
            log.error("start-up check failed: %s", text)
            self.controller.startup_fault(code, text)
        self._thread = self.loop.start_thread()
        self.console.start()
        self.station.start_fleet()  # a [fleet] broker set: publish, on the publisher's own thread
        self.station.start_scanner()
        self.loop.call_sync(lambda: None, timeout=10.0)  # start-up has been processed
        state = self.controller.state
        self.notifier.ready(state if not self.problems else f"fault: {self.problems[0][1]}")

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self, reason: str) -> None:
        """Orderly and idempotent: the controller records and secures, then everything closes."""
        self.notifier.stopping()
        self.console.stop()
        self.station.shutdown(reason)
        if self._thread is not None:
            self._thread.join(2.0)
        self.notifier.close()


def run(config: Config, state_dir: str | None) -> int:
    """Runs until SIGTERM/SIGINT; raises NoGPIO when there is no pin factory (nothing to drive)."""
    from .drivers.pinfactory import hardware_pin_factory

    service = Service(config, state_dir, hardware_pin_factory())
    stop = threading.Event()
    names: list[str] = []

    def on_signal(signum: int, _frame: object) -> None:
        names.append(signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    service.start()
    while not stop.wait(0.5):
        if not service.alive:
            log.error("controller loop ended unexpectedly")
            service.stop("controller loop ended")
            return 1
    service.stop(f"station stopped ({names[0] if names else 'signal'})")
    return 0
