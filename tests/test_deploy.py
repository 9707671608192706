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


def test_unit_allows_a_serial_scanner_and_no_keyboard():
    """[scanner] kind = serial (CDC-ACM, /dev/ttyACM*) works out of the box; input devices (every
    keyboard on the Pi) stay closed unless a drop-in opens them for a HID scanner."""
    allowed = {value.split()[0] for value in SERVICE.get("DeviceAllow", [])}
    assert "char-ttyACM" in allowed and "dialout" in words("SupplementaryGroups")
    assert not any("input" in device for device in allowed) and "input" not in words("SupplementaryGroups")


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


def run_script(
    script: str,
    root: Path,
    *args: str,
    pin: str | None = None,
    env: dict[str, str] | None = None,
    status: int = 0,
) -> subprocess.CompletedProcess:
    """Runs a deploy script under --root; `env` adds to (or, for PATH and PYTHON, replaces) the environment."""
    env = {
        **{k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")},
        **(env or {}),
    }
    env.setdefault("PYTHON", base_python())
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
    assert result.returncode == status, f"{script} exit status {result.returncode}:\n{result.stdout}\n{result.stderr}"
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
    assert venv_flag(root) == "false"  # no lgpio wanted: nothing of the system's Python packages either
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


# -- the installer on a Raspberry Pi: where lgpio comes from -------------------------------------
#
# lgpio has no wheel on PyPI for 64-bit Raspberry Pi OS, and building it needs swig, a C compiler
# and liblgpio-dev: the installer takes the distribution's python3-lgpio instead and lets the
# virtual environment see it. Here the system commands it asks (uname, dpkg-query, apt-get) are
# fakes on PATH that log their arguments, and "the distribution's Python packages" are a site
# directory that, like /usr/lib/python3/dist-packages, a virtual environment sees only when it was
# created with --system-site-packages: Python's user site, which site.py enables in a venv exactly
# when system site packages are. pip itself and the venv are real.

OS_RELEASE = {
    # 64-bit Raspberry Pi OS names itself Debian (the 32-bit one says ID=raspbian, ID_LIKE=debian)
    "bookworm": 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\nVERSION_ID="12"\n'
    "VERSION_CODENAME=bookworm\nID=debian\n",
    "trixie": 'PRETTY_NAME="Debian GNU/Linux 13 (trixie)"\nNAME="Debian GNU/Linux"\nVERSION_ID="13"\n'
    "VERSION_CODENAME=trixie\nID=debian\n",
    "fedora": 'NAME="Fedora Linux"\nVERSION_ID=41\nID=fedora\nPRETTY_NAME="Fedora Linux 41 (Server Edition)"\n',
}


class FakeSystem:
    """uname, dpkg-query and apt-get as logging fakes; apt-get "installs" python3-lgpio into the
    simulated system site and python3-venv by making ensurepip importable for $PYTHON."""

    def __init__(self, home: Path, *, machine: str, lgpio_version: str = "0.2.2.0") -> None:
        self.home = home
        self.bin, self.state, self.payload = home / "bin", home / "dpkg", home / "payload"
        for d in (self.bin, self.state, self.payload / "python3-lgpio", home / "no-ensurepip" / "ensurepip"):
            d.mkdir(parents=True)
        self.apt_log = home / "apt-get.log"
        self.userbase = home / "system"
        real_python = base_python()
        self.site = Path(
            subprocess.run(
                [real_python, "-c", "import site; print(site.getusersitepackages())"],
                env={**os.environ, "PYTHONUSERBASE": str(self.userbase)},
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
        )
        # what python3-lgpio puts in dist-packages: the module, its extension, an egg-info (as Debian's)
        package = self.payload / "python3-lgpio"
        (package / "lgpio.py").write_text('"""Stand-in for the distribution\'s lgpio."""\nimport _lgpio  # noqa\n')
        (package / "_lgpio.py").write_text("")
        info = package / f"lgpio-{lgpio_version}.egg-info"
        info.mkdir()
        (info / "PKG-INFO").write_text(f"Metadata-Version: 1.2\nName: lgpio\nVersion: {lgpio_version}\n")
        (info / "top_level.txt").write_text("_lgpio\nlgpio\n")
        # Debian's python3 without python3-venv cannot import ensurepip
        (home / "no-ensurepip" / "ensurepip" / "__init__.py").write_text(
            "raise ImportError('ensurepip is in python3-venv (simulated)')\n"
        )
        self.python = self.bin / "python3-under-test"
        self.script(
            self.python.name,
            f"[ -e {self.state}/missing-python3-venv ] && export PYTHONPATH={home}/no-ensurepip\n"
            f'exec {real_python} "$@"',
        )
        self.script("uname", f'[ "$1" = -m ] && {{ echo {machine}; exit 0; }}\nexec /bin/uname "$@"')
        self.script(
            "dpkg-query",
            "for pkg; do :; done  # the last argument\n"
            f'[ -e {self.state}/$pkg ] && {{ printf "install ok installed"; exit 0; }}\n'
            'echo "dpkg-query: no packages found matching $pkg" >&2; exit 1',
        )
        self.script(
            "apt-get",
            f'printf "%s\\n" "$*" >> {self.apt_log}\n[ "$1" = install ] || exit 0\n'
            'for pkg in "$@"; do case "$pkg" in\n'
            f"  python3-lgpio) mkdir -p {self.site} && cp -r {package}/. {self.site}/ && touch {self.state}/$pkg ;;\n"
            f"  python3-venv) rm -f {self.state}/missing-python3-venv && touch {self.state}/$pkg ;;\n"
            "esac; done",
        )

    def script(self, name: str, body: str) -> None:
        path = self.bin / name
        path.write_text(f"#!/bin/sh\n{body}\n")
        path.chmod(0o755)

    def install_lgpio(self) -> None:
        """python3-lgpio installed beforehand (Raspberry Pi OS images may come with it)."""
        self.site.mkdir(parents=True, exist_ok=True)
        shutil.copytree(self.payload / "python3-lgpio", self.site, dirs_exist_ok=True)
        (self.state / "python3-lgpio").touch()

    def without_python3_venv(self) -> None:
        (self.state / "missing-python3-venv").touch()

    @property
    def env(self) -> dict[str, str]:
        return {
            "PATH": f"{self.bin}:{os.environ['PATH']}",
            "PYTHONUSERBASE": str(self.userbase),
            "PYTHON": str(self.python),
        }

    def apt_calls(self) -> list[str]:
        return self.apt_log.read_text().splitlines() if self.apt_log.exists() else []


def fake_target(root: Path, tmp_path: Path, os_name: str, machine: str, **kw: str) -> FakeSystem:
    (root / "etc" / "os-release").write_text(OS_RELEASE[os_name])
    return FakeSystem(tmp_path / "system", machine=machine, **kw)


def venv_flag(root: Path) -> str:
    cfg = (root / "opt/mpo-station/venv/pyvenv.cfg").read_text()
    m = re.search(r"^include-system-site-packages\s*=\s*(\S+)", cfg, re.M)
    assert m, cfg
    return m[1].lower()


def lgpio_seen_by_the_venv(root: Path, system: FakeSystem) -> Path:
    """Where the installed station's interpreter imports lgpio from (it must not have its own)."""
    venv = root / "opt/mpo-station/venv"
    own = [p for p in venv.glob("lib/python3*/site-packages/*") if p.name.lower().startswith(("lgpio", "_lgpio"))]
    assert not own, f"pip put lgpio into the venv (built or downloaded): {own}"
    found = subprocess.run(
        [venv / "bin/python", "-c", "import lgpio; print(lgpio.__file__)"],
        env={**os.environ, **system.env},
        capture_output=True,
        text=True,
    )
    assert found.returncode == 0, found.stderr
    return Path(found.stdout.strip())


@pytest.mark.slow
@pytest.mark.parametrize("release", ["bookworm", "trixie"])
def test_install_on_raspberry_pi_os_takes_lgpio_from_the_distribution(fresh_root, tmp_path, release):
    system = fake_target(fresh_root, tmp_path, release, "aarch64")
    if release == "bookworm":
        system.without_python3_venv()  # Debian's python3 cannot make a venv without it
    first = run_script("install.sh", fresh_root, pin="4711", env=system.env)
    wanted = "python3-venv python3-lgpio" if release == "bookworm" else "python3-lgpio"
    assert system.apt_calls() == [f"install -y {wanted}"], first.stdout
    assert f"Debian GNU/Linux {12 if release == 'bookworm' else 13} ({release}) on aarch64" in first.stdout
    assert venv_flag(fresh_root) == "true"
    assert "lgpio 0.2.2.0 from" in first.stdout and "builds nothing" in first.stdout
    assert lgpio_seen_by_the_venv(fresh_root, system) == system.site / "lgpio.py"

    # an update: python3-lgpio is there now, apt-get is not asked again
    second = run_script("install.sh", fresh_root, env=system.env)
    assert system.apt_calls() == [f"install -y {wanted}"]
    assert "python3-lgpio is already installed" in second.stdout


@pytest.mark.slow
def test_no_apt_never_runs_apt_get_and_says_what_to_install(fresh_root, tmp_path):
    system = fake_target(fresh_root, tmp_path, "trixie", "aarch64")
    # lgpio is on the system by other means (dpkg does not know it): the station uses it
    system.install_lgpio()
    (system.state / "python3-lgpio").unlink()
    result = run_script("install.sh", fresh_root, "--no-apt", env=system.env)
    assert system.apt_calls() == []
    assert "not running apt-get (--no-apt): install python3-lgpio yourself" in result.stdout
    assert lgpio_seen_by_the_venv(fresh_root, system) == system.site / "lgpio.py"


@pytest.mark.slow
def test_an_older_system_lgpio_is_kept_rather_than_rebuilt(fresh_root, tmp_path):
    """A distribution whose python3-lgpio says 0.1.0.1 (Ubuntu 22.04): with the pi extra pip would
    try to build a newer lgpio from source; the installer installs without the extra instead."""
    system = fake_target(fresh_root, tmp_path, "bookworm", "armv7l", lgpio_version="0.1.0.1")
    system.install_lgpio()
    result = run_script("install.sh", fresh_root, env=system.env)
    assert system.apt_calls() == []
    assert "lgpio 0.1.0.1 from" in result.stdout and "installing without the pi extra" in result.stdout
    assert lgpio_seen_by_the_venv(fresh_root, system) == system.site / "lgpio.py"


@pytest.mark.slow
@pytest.mark.parametrize(("os_name", "machine"), [("fedora", "aarch64"), ("bookworm", "x86_64")])
def test_elsewhere_the_installer_leaves_apt_alone(fresh_root, tmp_path, os_name, machine):
    system = fake_target(fresh_root, tmp_path, os_name, machine)
    system.install_lgpio()  # importable from the system, so pip has nothing to fetch
    result = run_script("install.sh", fresh_root, env=system.env)
    assert system.apt_calls() == []
    assert f"on {machine} is not a Debian-family ARM board" in result.stdout
    assert venv_flag(fresh_root) == "true"
    assert lgpio_seen_by_the_venv(fresh_root, system) == system.site / "lgpio.py"


@pytest.mark.slow
def test_an_update_lets_an_older_venv_see_the_system_lgpio(fresh_root, tmp_path):
    """A station installed before the installer used --system-site-packages keeps its venv and
    gains the flag."""
    system = fake_target(fresh_root, tmp_path, "bookworm", "aarch64")
    venv = fresh_root / "opt/mpo-station/venv"
    subprocess.run([base_python(), "-m", "venv", venv], check=True)
    assert venv_flag(fresh_root) == "false"
    result = run_script("install.sh", fresh_root, env=system.env)
    assert "now sees the system's Python packages" in result.stdout
    assert venv_flag(fresh_root) == "true"
    assert lgpio_seen_by_the_venv(fresh_root, system) == system.site / "lgpio.py"


@pytest.mark.slow
def test_when_pip_cannot_install_lgpio_the_installer_says_what_to_do(fresh_root, tmp_path):
    """--no-apt on Raspberry Pi OS without python3-lgpio: pip is left to find lgpio and fails (here
    it is given no index at all, as a Pi without swig would fail building it)."""
    system = fake_target(fresh_root, tmp_path, "trixie", "aarch64")
    result = run_script("install.sh", fresh_root, "--no-apt", env={**system.env, "PIP_NO_INDEX": "1"}, status=1)
    assert system.apt_calls() == []
    assert "lgpio is not importable" in result.stdout
    assert "pip could not install the firmware with lgpio" in result.stderr
    assert "sudo apt install python3-lgpio" in result.stderr and "--no-pi-extra" in result.stderr
    assert not (fresh_root / "etc/systemd/system/mpo-station.service").exists()  # stopped there
