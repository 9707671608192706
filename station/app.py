"""Assembles a station: drivers on a pin factory, the store, the controller, the loop."""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from gpiozero.pins import Factory

from . import __version__
from .config import OVERRIDES_SETTING, Config, ConfigError, with_overrides
from .controller import Controller
from .drivers import GpioHardware, build_hardware
from .fleet import FleetError, FleetPublisher, status_request  # paho-mqtt only once a broker is set
from .loop import EventLoop
from .statelock import LOCK_NAME, StateLock
from .store import Store, StoreError

if TYPE_CHECKING:
    from .scanner import Scanner

log = logging.getLogger(__name__)

DB_NAME = "station.db"


def default_state_dir(*, on_pi: bool) -> Path:
    """systemd's $STATE_DIRECTORY on the Pi service, else /var/lib or the per-user state dir."""
    if os.environ.get("STATE_DIRECTORY"):
        return Path(os.environ["STATE_DIRECTORY"].split(":")[0])
    if on_pi:
        return Path("/var/lib/mpo-station")
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "mpo-station"


def state_directory(config: Config, state_dir: str | Path | None, *, on_pi: bool) -> Path:
    """The state directory these settings name, created if need be and writable (else StoreError)."""
    directory = Path(state_dir or config.station.state_dir or default_state_dir(on_pi=on_pi))
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(
            f"cannot create the state directory {directory}: {exc.strerror}; choose another with --state-dir"
        ) from exc
    if not os.access(directory, os.W_OK):
        raise StoreError(f"the state directory {directory} is not writable; fix its permissions or use --state-dir")
    return directory


def open_store(config: Config, state_dir: str | Path | None, *, on_pi: bool) -> Store:
    """The database alone, without the station's lock: for a one-transaction writer such as
    `station pin set`, which may run beside the station. A station uses `claim_state_dir`."""
    directory = state_directory(config, state_dir, on_pi=on_pi)
    return Store(directory / DB_NAME, fluid_capacity=config.dispenser.reservoir_drops)


def claim_state_dir(config: Config, state_dir: str | Path | None, *, on_pi: bool) -> tuple[Store, StateLock]:
    """The state directory's lock, then its database: what a station opens before it starts.
    StateDirInUse when another station holds the directory (before the database is touched);
    StoreError when the directory or the database cannot be used."""
    directory = state_directory(config, state_dir, on_pi=on_pi)
    try:
        lock = StateLock.acquire(directory)
    except OSError as exc:
        raise StoreError(
            f"cannot lock the state directory {directory} ({LOCK_NAME}: {exc.strerror}); fix its permissions "
            "or use --state-dir"
        ) from exc
    try:
        return Store(directory / DB_NAME, fluid_capacity=config.dispenser.reservoir_drops), lock
    except BaseException:
        lock.release()
        raise


@dataclass
class Station:
    """A running station: what `station run` and `station sim` both build."""

    config: Config
    loop: EventLoop
    hardware: GpioHardware
    store: Store
    controller: Controller
    lock: StateLock | None = None  # the state directory's (none for a scratch or in-memory store)
    scanner: Scanner | None = None  # the barcode scanner, once started (start_scanner)
    _stopped: bool = field(default=False, init=False, repr=False)
    fleet: FleetPublisher | None = None  # the fleet publisher, once started (start_fleet)

    def start_scanner(self) -> None:
        """The configured barcode scanner ([scanner]), its codes posted to the controller loop.
        A scanner that cannot be used at all (evdev missing) is logged and announced, and the
        station cleans without it; one merely unplugged is waited for by its own thread."""
        if self.config.scanner.kind == "none":
            return
        from .scanner import ScannerError, open_scanner  # only a station with a scanner loads it

        on_code, on_problem = scanner_input(self.controller)
        try:
            self.scanner = open_scanner(self.config.scanner, on_code, on_problem)
        except ScannerError as exc:
            log.error("%s", exc)
            on_problem(str(exc))
            return
        if self.scanner is not None:
            self.scanner.start()

    def shutdown(self, reason: str = "station stopped") -> None:
        """The one orderly stop, for the service, the simulator and the tests alike; idempotent.

        On the controller loop: safe outputs, a job or a clean in flight ended (the clean
        recorded as interrupted), the stop audited. Then the loop stops, the store and the
        devices close and the state directory's lock goes. A loop that does not answer still
        gets safe outputs."""
        if self._stopped:
            return
        self._stopped = True
        if self.scanner is not None:
            self.scanner.close()  # no more codes: the station is going
        thread = self.loop.thread
        try:
            if thread is not None and not thread.is_alive():
                self.controller.shutdown(reason)  # the loop is gone: nobody else runs it now
            else:
                self.loop.call_sync(lambda: self.controller.shutdown(reason), timeout=5.0)
        except TimeoutError:
            log.error("controller did not stop in time; forcing safe outputs")  # pragma: no mutate
        except Exception:
            log.exception("orderly stop failed; forcing safe outputs")  # pragma: no mutate
        try:
            self.hardware.safe()
            self.stop_fleet()  # offline status out; before the store it reads closes
            self.loop.stop()
            self.store.close()
            self.hardware.close()
        finally:
            if self.lock is not None:
                self.lock.release()  # last: the next station may start once this one let go

    def start_fleet(self) -> None:
        """Publish to the [fleet] broker, when one is set (docs/fleet.md), on the publisher's own
        thread. A publisher that cannot start (paho-mqtt missing, a password file others can
        read, no database) is logged and the station cleans without it."""
        if not self.config.fleet.broker:
            return
        if not self.store.durable:
            log.error("fleet: not started: the station database is not usable (the records are the outbox)")
            return
        from .reports import station_status

        controller = self.controller
        request = status_request(self.loop.post, lambda: station_status(controller))
        try:
            publisher = FleetPublisher(self.config, self.store.path, request, controller.events)
            publisher.start()
        except FleetError as exc:
            log.error("%s", exc)
            return
        self.fleet = publisher

    def stop_fleet(self) -> None:
        if self.fleet is None:
            return
        try:
            self.fleet.stop()
        except Exception:
            log.exception("fleet publisher did not stop cleanly")  # pragma: no mutate
        self.fleet = None

    def __enter__(self) -> Station:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()


IDENTITY_SETTING = "station.identity"


def record_identity(store: Store, config: Config, t: float) -> None:
    """The station's serial number and firmware, kept in its database (a change audited),
    so that what is made from the records (a certificate, from a backup on another machine) names
    the station that did the cleaning, not the one reading them."""
    identity = json.dumps({"serial_number": config.station.serial_number, "firmware": __version__}, sort_keys=True)
    known = store.setting(IDENTITY_SETTING) if store.durable else identity
    if known != identity:  # recorded once; a change (a new serial number, a firmware update) is audited
        store.set_setting(
            IDENTITY_SETTING, identity, t, source="station", audit_detail=json.loads(identity), audit=known is not None
        )


def scanner_input(controller: Controller) -> tuple[Callable[[str], None], Callable[[str], None]]:
    """What a scanner's thread calls (a code, a problem), posting each to the controller loop.
    The simulator's scanner delivers through the same two calls."""

    def on_code(text: str) -> None:
        controller.loop.post(lambda: controller.trace.scanned(text, "scanner"))

    def on_problem(text: str) -> None:
        controller.loop.post(lambda: controller.trace.scanner_problem(text))

    return on_code, on_problem


def build_station(
    config: Config,
    loop: EventLoop,
    pin_factory: Factory | None,
    store: Store,
    *,
    wall_clock: Callable[[], float] = time.time,
    before_controller: Callable[[GpioHardware], None] | None = None,
    lock: StateLock | None = None,
) -> Station:
    """The station on `store`, holding `lock` (from `claim_state_dir`) until its shutdown. When
    it cannot be built (a damaged world file, a pin in use), the store closes and the lock goes
    here, so a failed start never keeps the state directory from the next one."""
    try:
        file_config = config
        saved = store.setting(OVERRIDES_SETTING)
        if saved:
            try:
                config = with_overrides(config, json.loads(saved))
            except (ConfigError, ValueError) as exc:
                # Saved console changes the file no longer accepts (a new release's rules, an edited
                # file): start on the file alone; the start-up check reports it and `config reset`
                # on the console repairs it.
                log.error("saved console settings not applied: %s", exc)
        hardware = build_hardware(config, loop, pin_factory)
        if before_controller is not None:
            before_controller(hardware)
        controller = Controller(config, loop, hardware, store, wall_clock=wall_clock, file_config=file_config)
        record_identity(store, config, wall_clock())
    except BaseException:
        store.close()
        if lock is not None:
            lock.release()
        raise
    return Station(config, loop, hardware, store, controller, lock)
