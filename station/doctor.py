"""`station doctor`: a checklist a technician runs on the Pi, with a fix for each failure."""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
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


PI_MODEL = Path("/proc/device-tree/model")
DISTRIBUTION_SITE = Path("/usr/lib/python3/dist-packages")  # where Debian's python3-lgpio puts lgpio
LGPIO_FIX = (
    "sudo apt install python3-lgpio, with the station in a venv created with --system-site-packages "
    "(python3 -m venv --system-site-packages DIR) so that it sees it; sudo deploy/install.sh does both"
)


def on_raspberry_pi(model: Path = PI_MODEL) -> bool:
    try:
        return "raspberry pi" in model.read_text(encoding="utf-8", errors="replace").lower()
    except OSError:
        return False


def _venv_sees_system_packages(venv: Path) -> bool:
    try:
        lines = (venv / "pyvenv.cfg").read_text(encoding="utf-8").splitlines()
    except OSError:
        return True  # not a venv we can read: nothing to blame it for
    for line in lines:
        key, _, value = line.partition("=")
        if key.strip().lower() == "include-system-site-packages":
            return value.strip().lower() == "true"
    return False


def check_lgpio(model: Path = PI_MODEL, distribution_site: Path = DISTRIBUTION_SITE, venv: Path | None = None) -> Check:
    """lgpio, the library gpiozero drives the Pi's GPIO with. Raspberry Pi OS ships it as
    python3-lgpio; PyPI has no wheel for 64-bit Raspberry Pi OS, so pip would have to build it."""
    if venv is None and sys.prefix != sys.base_prefix:
        venv = Path(sys.prefix)
    try:
        module = importlib.import_module("lgpio")
    except ImportError as exc:
        detail = f"lgpio is not importable ({exc})"
        fix = LGPIO_FIX
        if venv is not None and (distribution_site / "lgpio.py").exists() and not _venv_sees_system_packages(venv):
            detail = f"python3-lgpio is installed, but the virtual environment {venv} does not see system packages"
            fix = (
                f"set include-system-site-packages = true in {venv / 'pyvenv.cfg'} "
                "(what python3 -m venv --system-site-packages writes), or run sudo deploy/install.sh again"
            )
        if not on_raspberry_pi(model):
            detail += "; it is only needed on a Raspberry Pi and this machine is not one (`station sim` needs none)"
        return Check("lgpio", False, detail, fix)
    except Exception as exc:  # lgpio opens a FIFO in the working directory when imported
        return Check(
            "lgpio",
            False,
            f"lgpio is installed but failed to start ({exc})",
            "lgpio needs a writable working directory for its FIFO: run from one, or set LG_WD",
        )
    try:
        version = metadata.version("lgpio")
    except metadata.PackageNotFoundError:
        version = "(version unknown)"
    return Check("lgpio", True, f"lgpio {version} from {getattr(module, '__file__', None) or 'a built-in module'}")


def check_pin_factory() -> Check:
    from .drivers.pinfactory import NoGPIO, hardware_pin_factory

    try:
        factory = hardware_pin_factory()
    except NoGPIO as exc:
        return Check(
            "pin factory",
            False,
            str(exc).split(". To run")[0],
            "on a Pi: the lgpio and GPIO chips checks say what is missing; elsewhere use `station sim`",
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
        check_lgpio(),
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
