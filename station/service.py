"""`station run`: the station as a service on the Pi.

Start-up checks either pass or put the station in fault with the console up; READY=1 goes
to systemd after them, WATCHDOG=1 comes from the controller loop itself, STATUS= follows the
state. SIGTERM / SIGINT: safe outputs, the clean in flight recorded as interrupted, store and
devices closed, exit 0.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from pathlib import Path

from .app import build_station, open_store
from .config import Config
from .console.server import Console
from .domain import FaultCode
from .drivers.pinfactory import hardware_pin_factory
from .loop import EventLoop, RealClock
from .sdnotify import Notifier
from .store import Store, StoreError

log = logging.getLogger(__name__)


def serial_problem(url: str) -> str | None:
    if "://" in url or not url:
        return None
    if not Path(url).exists():
        return (f"console port {url} does not exist: enable the UART (raspi-config: serial port on, "
                "login shell off) or set [console] port")
    if not os.access(url, os.R_OK | os.W_OK):
        return f"no permission on {url}: add the service user to the dialout group"
    return None


def run(config: Config, state_dir: str | None) -> int:
    """Runs until SIGTERM/SIGINT; raises NoGPIO when there is no pin factory (nothing to drive)."""
    factory = hardware_pin_factory()
    notifier = Notifier()
    problems: list[tuple[FaultCode, str]] = []
    try:
        store = open_store(config, state_dir, on_pi=True)
    except StoreError as exc:
        # Keep the console up to say so; cleaning stays refused until a restart with a usable disk.
        problems.append((FaultCode.STORAGE, str(exc)))
        store = Store(":memory:", fluid_capacity=config.dispenser.reservoir_drops)
    loop = EventLoop(RealClock())
    station = build_station(config, loop, factory, store)
    controller = station.controller
    console = Console(controller, serial_url=config.console.port, baud=config.console.baud,
                      tcp_port=config.console.tcp_port, idle_logout_s=config.console.idle_logout_s,
                      max_per_s=config.console.max_commands_per_s)
    if (text := serial_problem(config.console.port)) is not None:
        log.warning(text)  # not a fault: the bench can clean without its console
    for text in controller.startup_problems():
        problems.append((FaultCode.STARTUP, text))

    def heartbeat() -> None:
        notifier.heartbeat()
        notifier.status(f"{controller.state}" + (f" ({controller.fault_code.value})" if controller.fault_code else ""))

    loop.heartbeat = heartbeat
    if notifier.watchdog_interval:
        loop.heartbeat_every = min(1.0, notifier.watchdog_interval)
    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    controller.start()
    for code, text in problems:
        log.error("start-up check failed: %s", text)
        controller.startup_fault(code, text)
    thread = loop.start_thread()
    console.start()
    loop.call_sync(lambda: None, timeout=10.0)  # start-up processed
    notifier.ready(controller.state if not problems else f"fault: {problems[0][1]}")
    while not stop.wait(0.5):
        if not thread.is_alive():
            log.error("controller loop ended unexpectedly")
            break
    notifier.stopping()
    console.stop()
    try:
        loop.call_sync(lambda: controller.shutdown("station stopped (signal)"), timeout=5.0)
    except (TimeoutError, RuntimeError):
        log.error("controller did not stop in time; forcing safe outputs")
    station.shutdown()
    thread.join(2.0)
    notifier.close()
    return 0
