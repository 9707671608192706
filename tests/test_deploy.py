"""Deployment: the systemd unit, the installer and the shipped configuration.

The unit is checked by systemd's own tools; the installer runs for real into a throwaway root
(with copies of this machine's user databases), twice, and is then uninstalled.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import sqlite3
import stat
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from conftest import require_tool

from station import __version__
from station.config import Config, load, to_dict
from station.console.access import verify_pin

REPO = Path(__file__).resolve().parent.parent
DEPLOY = REPO / "deploy"
UNIT = DEPLOY / "mpo-station.service"
UNIT_NAME = UNIT.name
SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
QUIET_SYSTEMD = {**os.environ, "SYSTEMD_COLORS": "0", "SYSTEMD_PAGER": "", "SYSTEMD_LOG_COLOR": "0"}


@pytest.fixture
def needs_systemd_analyze_fixture() -> None:
    require_tool("systemd-analyze", install="apt-get install -y systemd")


needs_systemd_analyze = pytest.mark.usefixtures("needs_systemd_analyze_fixture")


def unit_settings(text: str) -> dict[str, list[str]]:
    """[Service] assignments of a unit file; a key given several times keeps every value."""
    settings: dict[str, list[str]] = {}
    section = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            section = line
            continue
        if section == "[Service]":
            key, _, value = line.partition("=")
            settings.setdefault(key.strip(), []).append(value.strip())
    return settings


SERVICE = unit_settings(UNIT.read_text(encoding="utf-8"))


def words(key: str) -> list[str]:
    return [w for value in SERVICE.get(key, []) for w in value.split()]


def one(key: str) -> str:
    assert key in SERVICE, f"{key}= is missing from {UNIT_NAME}"
    return SERVICE[key][-1]


@pytest.fixture
def checkable_unit(tmp_path: Path) -> Path:
    """The unit with ExecStart pointing at an executable that exists here (the real one is only
    under /opt on an installed station; verify fails on a missing program and nothing else)."""
    program = tmp_path / "station"
    program.write_text("#!/bin/sh\nexit 0\n")
    program.chmod(0o755)
    text, n = re.subn(
        r"^(ExecStart=[-@:+!]*)(\S+)", lambda m: m[1] + str(program), UNIT.read_text(encoding="utf-8"), flags=re.M
    )
    assert n == 1, "expected one ExecStart= line"
    unit = tmp_path / UNIT_NAME
    unit.write_text(text, encoding="utf-8")
    return unit


# -- the unit --------------------------------------------------------------------------------


@needs_systemd_analyze
def test_unit_passes_systemd_analyze_verify(checkable_unit):
    result = subprocess.run(
        [SYSTEMD_ANALYZE, "verify", str(checkable_unit)], capture_output=True, text=True, env=QUIET_SYSTEMD, timeout=60
    )
    output = (result.stdout + result.stderr).splitlines()
    complaints = [line for line in output if "mpo-station" in line and re.search(r"unknown|error", line, re.I)]
    assert result.returncode == 0, "\n".join(output)
    assert not complaints, "\n".join(complaints)


@needs_systemd_analyze
def test_unit_exposure_is_low(checkable_unit):
    result = subprocess.run(
        [SYSTEMD_ANALYZE, "security", "--offline=yes", str(checkable_unit)],
        capture_output=True,
        text=True,
        env=QUIET_SYSTEMD,
        timeout=60,
    )
    m = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
    assert m, f"no exposure level in the output:\n{result.stdout}\n{result.stderr}"
    assert float(m[1]) <= 3.0, result.stdout


def test_unit_keeps_what_the_station_needs():
    assert {"gpio", "dialout"} <= set(words("SupplementaryGroups"))
    assert one("StateDirectory") == "mpo-station"
    assert one("WorkingDirectory") == "/var/lib/mpo-station"  # lgpio's FIFO goes here
    assert "/var/lib/mpo-station" in words("ReadWritePaths")
    assert one("Type") == "notify"
    assert one("WatchdogSec") not in ("", "0", "infinity")
    assert one("Restart") == "on-failure"
    assert one("NoNewPrivileges") == "yes"
    assert one("ProtectSystem") == "strict"
    assert one("ProtectHome") == "yes"
    assert one("PrivateTmp") == "yes"
    families = one("RestrictAddressFamilies")
    assert not families.startswith("~") and "AF_UNIX" in families.split()  # sd_notify's socket
    assert one("ExecStart").startswith("/opt/mpo-station/venv/bin/station run --config /etc/mpo-station/station.toml")


@pytest.mark.parametrize("device", ["/dev/gpiochip0", "/dev/gpiochip4"])  # the header's chip: Pi 4 / Pi 5
def test_unit_allows_the_gpio_chip(device):
    allowed = [value.split()[0] for value in SERVICE.get("DeviceAllow", []) if "rw" in value.split()[1:]]
    assert device in allowed or "char-gpiochip" in allowed, f"no DeviceAllow={device} rw"


def test_unit_lets_gpiozero_identify_the_board():
    """gpiozero's lgpio factory reads the board revision from /proc/device-tree/system/linux,revision
    or /proc/cpuinfo before it opens a chip (gpiozero/pins/local.py get_pi_revision). ProcSubset=pid
    hides both, so `station run` would fail on every Pi with 'No GPIO found'."""
    assert SERVICE.get("ProcSubset", ["all"])[-1] != "pid", (
        "ProcSubset=pid hides /proc/cpuinfo and /proc/device-tree: gpiozero cannot identify the Pi"
    )


# -- the shipped configuration ---------------------------------------------------------------


def test_shipped_configuration_is_the_defaults_but_the_serial_number():
    shipped = load(DEPLOY / "station.toml")
    same_serial = dataclasses.replace(
        Config(), station=dataclasses.replace(Config().station, serial_number=shipped.station.serial_number)
    )
    assert to_dict(shipped) == to_dict(same_serial)


def test_shipped_configuration_names_every_key():
    raw = tomllib.loads((DEPLOY / "station.toml").read_text(encoding="utf-8"))
    expected = {name: set(values) for name, values in to_dict(Config()).items()}
    assert {name: set(values) for name, values in raw.items()} == expected


# -- the installer ---------------------------------------------------------------------------


def base_python() -> str:
    """A real interpreter (not this test's virtual environment) of the version the station needs."""
    python = getattr(sys, "_base_executable", None) or shutil.which("python3")
    assert python, "no python3 to install with"
    version = subprocess.run(
        [python, "-c", "import sys; print(*sys.version_info[:2])"], capture_output=True, text=True, check=True
    ).stdout.split()
    assert tuple(map(int, version)) >= (3, 11), f"{python} is Python {'.'.join(version)}; the station needs 3.11+"
    return python


def run_script(script: str, root: Path, *args: str, pin: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")}
    env["PYTHON"] = base_python()
    if pin is not None:
        env["MPO_PIN"] = pin
    result = subprocess.run(
        ["bash", str(DEPLOY / script), "--root", str(root), *args],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, f"{script} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
    return result


def passwd_entry(root: Path, user: str) -> list[str] | None:
    for line in (root / "etc" / "passwd").read_text().splitlines():
        fields = line.split(":")
        if fields[0] == user:
            return fields
    return None


def group_members(root: Path, group: str) -> list[str]:
    for line in (root / "etc" / "group").read_text().splitlines():
        fields = line.split(":")
        if fields[0] == group:
            return [m for m in fields[3].split(",") if m]
    return []


def stored_pin_hash(state: Path, scratch: Path) -> str:
    """The PIN hash from the settings table, read from a copy (WAL included) so that nothing in the
    installed state directory is touched."""
    scratch.mkdir(exist_ok=True)
    for suffix in ("", "-wal"):
        if (state / f"station.db{suffix}").exists():
            shutil.copy2(state / f"station.db{suffix}", scratch / f"station.db{suffix}")
    db = sqlite3.connect(scratch / "station.db")
    try:
        row = db.execute("SELECT value FROM settings WHERE key = 'console.pin'").fetchone()
    finally:
        db.close()
    assert row is not None, "no maintenance PIN in the settings table"
    return row[0]


@pytest.fixture
def fresh_root(tmp_path: Path) -> Path:
    """A throwaway root with this machine's user and group databases (useradd --root edits those)."""
    if os.geteuid() != 0:
        pytest.skip("install.sh needs root (useradd/chown): run the deploy tests as root")
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    for name in ("passwd", "group", "shadow", "gshadow", "login.defs"):
        shutil.copy2(Path("/etc") / name, root / "etc" / name)
    return root


@pytest.mark.slow
def test_install_twice_keeps_settings_then_uninstall_and_purge(fresh_root, tmp_path):
    root = fresh_root
    program, conf, state = root / "opt/mpo-station", root / "etc/mpo-station/station.toml", root / "var/lib/mpo-station"

    # first installation
    run_script("install.sh", root, "--no-pi-extra", pin="4711")
    user = passwd_entry(root, "mpo-station")
    assert user is not None and user[6].endswith("/nologin"), user
    assert "mpo-station" in group_members(root, "gpio") and "mpo-station" in group_members(root, "dialout")
    # --root is for images: the command names its interpreter by the path it will have once the
    # root is the running system, so here it runs through the staged interpreter.
    station = program / "venv/bin/station"
    assert station.read_text(encoding="utf-8").startswith("#!/opt/mpo-station/venv/bin/python")
    version = subprocess.run(
        [program / "venv/bin/python", station, "--version"], capture_output=True, text=True, check=True
    )
    assert version.stdout.split() == ["station", __version__]
    assert (root / "etc/systemd/system/mpo-station.service").read_bytes() == UNIT.read_bytes()
    assert conf.read_bytes() == (DEPLOY / "station.toml").read_bytes()
    info = state.stat()
    assert info.st_uid == int(user[2]) and stat.S_IMODE(info.st_mode) == 0o750
    first_hash = stored_pin_hash(state, tmp_path / "first")
    assert first_hash.startswith("scrypt$") and verify_pin("4711", first_hash)
    for db_file in state.iterdir():  # the PIN only as its hash, nowhere in plain text
        assert b"4711" not in db_file.read_bytes().replace(first_hash.encode(), b""), db_file.name

    # the station's own settings, then an update with another PIN in the environment
    edited = conf.read_text(encoding="utf-8").replace("max_pass_s = 3.0", "max_pass_s = 4.5")
    assert edited != conf.read_text(encoding="utf-8")
    conf.write_text(edited, encoding="utf-8")
    second = run_script("install.sh", root, "--no-pi-extra", pin="9999")
    assert "keeping the existing" in second.stdout
    assert conf.read_text(encoding="utf-8") == edited
    assert load(conf).swipe.max_pass_s == 4.5
    second_hash = stored_pin_hash(state, tmp_path / "second")
    assert second_hash == first_hash and verify_pin("4711", second_hash) and not verify_pin("9999", second_hash)

    # uninstall keeps the configuration and the records
    run_script("uninstall.sh", root)
    assert not program.exists() and not (root / "etc/systemd/system/mpo-station.service").exists()
    assert conf.read_text(encoding="utf-8") == edited and (state / "station.db").exists()
    assert passwd_entry(root, "mpo-station") is not None

    # purge removes everything, the service user included
    run_script("uninstall.sh", root, "--purge")
    assert not conf.parent.exists() and not state.exists()
    assert passwd_entry(root, "mpo-station") is None
