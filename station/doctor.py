"""`station doctor`: a checklist a technician runs on the Pi, with a fix for each failure."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from . import config as station_config
from .app import DB_NAME, default_state_dir
from .store import SCHEMA_VERSION, Store, StoreError


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""


def check_config(path: str | None) -> tuple[Check, station_config.Config | None]:
    try:
        cfg = station_config.load(path)
    except station_config.ConfigError as exc:
        return Check(
            "configuration", False, str(exc), "correct the key named above; `station config show` lists them"
        ), None
    return Check("configuration", True, f"{path or 'defaults'} valid"), cfg


def check_pin_factory() -> Check:
    from .drivers.pinfactory import NoGPIO, hardware_pin_factory

    try:
        factory = hardware_pin_factory()
    except NoGPIO as exc:
        return Check(
            "pin factory",
            False,
            str(exc).split(". To run")[0],
            "on a Pi: install with the pi extra (deploy/install.sh does); elsewhere use `station sim`",
        )
    factory.close()
    return Check("pin factory", True, "lgpio opened the GPIO chip")


def check_gpiochips() -> Check:
    chips = sorted(Path("/dev").glob("gpiochip*"))
    if not chips:
        return Check("GPIO chips", False, "no /dev/gpiochip* on this machine", "run this on the Raspberry Pi")
    denied = [str(c) for c in chips if not os.access(c, os.R_OK | os.W_OK)]
    if denied:
        return Check(
            "GPIO chips",
            False,
            f"no read/write permission on {', '.join(denied)}",
            "add the user to the gpio group: sudo usermod -aG gpio $USER (then log in again)",
        )
    return Check("GPIO chips", True, ", ".join(str(c) for c in chips))


def check_serial(port: str) -> Check:
    from .service import serial_problem

    problem = serial_problem(port)
    if problem:
        return Check("console port", False, problem.split(":")[0], problem.split(": ", 1)[-1])
    return Check("console port", True, f"{port or '(none configured)'} usable")


def check_state_dir(cfg: station_config.Config, state_dir: str | None) -> Check:
    directory = Path(state_dir or cfg.station.state_dir or default_state_dir(on_pi=True))
    if not directory.exists():
        return Check(
            "state directory",
            False,
            f"{directory} does not exist",
            "run deploy/install.sh, or create it owned by the service user",
        )
    if not os.access(directory, os.W_OK):
        return Check(
            "state directory",
            False,
            f"{directory} is not writable by this user",
            "run as the service user (sudo -u mpo-station ...) or fix its owner",
        )
    db = directory / DB_NAME
    if not db.exists():
        return Check("state directory", True, f"{directory} writable; no database yet (created at first start)")
    try:
        store = Store(db, readonly=True)
        version = store.schema_version
        store.close()
    except StoreError as exc:
        return Check(
            "state directory", False, str(exc), "restore the last backup (station backup) or move the file away"
        )
    return Check(
        "state directory", True, f"{db} schema {version}" + (" (will be upgraded)" if version < SCHEMA_VERSION else "")
    )


def check_service(run: Callable[..., subprocess.CompletedProcess[str]] = subprocess.run) -> Check:
    if shutil.which("systemctl") is None or not Path("/run/systemd/system").exists():
        return Check("service", False, "systemd is not running here", "on the Pi: sudo deploy/install.sh")
    state = run(["systemctl", "is-active", "mpo-station.service"], capture_output=True, text=True).stdout.strip()
    if state != "active":
        return Check(
            "service",
            False,
            f"mpo-station.service is {state or 'unknown'}",
            "sudo systemctl enable --now mpo-station; see journalctl -u mpo-station -e",
        )
    return Check("service", True, "mpo-station.service active")


def run_checks(config_path: str | None, state_dir: str | None) -> list[Check]:
    first, cfg = check_config(config_path)
    checks = [first]
    if cfg is None:
        cfg = station_config.Config()
    checks += [
        check_pin_factory(),
        check_gpiochips(),
        check_serial(cfg.console.port),
        check_state_dir(cfg, state_dir),
        check_service(),
    ]
    return checks


def report(checks: list[Check]) -> str:
    lines = []
    for c in checks:
        lines.append(f"[{'PASS' if c.ok else 'FAIL'}] {c.name}: {c.detail}")
        if not c.ok and c.fix:
            lines.append(f"       fix: {c.fix}")
    failed = sum(not c.ok for c in checks)
    lines.append("all checks passed" if not failed else f"{failed} of {len(checks)} checks failed")
    return "\n".join(lines)
