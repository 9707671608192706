"""`station doctor`: each check passes on a good set-up and fails with a fix on a bad one."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from hw_sim.nullmodem import NullModem
from station import doctor
from station.app import DB_NAME
from station.config import Config
from station.store import Store


def test_a_bad_configuration_names_the_key_and_how_to_find_the_right_one(tmp_path):
    bad = tmp_path / "station.toml"
    bad.write_text("[swipe]\nmax_pass_sec = 3\n")
    check, cfg = doctor.check_config(str(bad))
    assert not check.ok and cfg is None
    assert "swipe.max_pass_sec" in check.detail and "config show" in check.fix


def test_state_directory_missing_writable_and_damaged(tmp_path):
    cfg = Config()
    missing = doctor.check_state_dir(cfg, str(tmp_path / "nope"))
    assert not missing.ok and "install.sh" in missing.fix
    assert doctor.check_state_dir(cfg, str(tmp_path)).ok  # writable, no database yet
    Store(tmp_path / DB_NAME).close()
    good = doctor.check_state_dir(cfg, str(tmp_path))
    assert good.ok and "schema" in good.detail
    (tmp_path / DB_NAME).write_bytes(b"this is not a database" * 100)
    damaged = doctor.check_state_dir(cfg, str(tmp_path))
    assert not damaged.ok and "backup" in damaged.fix


def test_serial_port_missing_and_present(tmp_path):
    assert not doctor.check_serial(str(tmp_path / "ttyAMA9")).ok
    cable = NullModem()
    try:
        assert doctor.check_serial(cable.station_end).ok
    finally:
        cable.close()
    assert doctor.check_serial("socket://127.0.0.1:5025").ok  # a URL is not a device to check


def test_no_gpio_here_is_reported_with_the_way_out():
    check = doctor.check_pin_factory()
    assert not check.ok and "station sim" in check.fix


def test_the_command_prints_the_checklist_and_fails_when_a_check_fails(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "station", "doctor", "--state-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1
    for name in ("configuration", "lgpio", "pin factory", "GPIO chips", "console port", "state directory", "service"):
        assert name in proc.stdout
    assert "[PASS] state directory" in proc.stdout and "checks failed" in proc.stdout


# -- lgpio: the distribution's python3-lgpio, which the station's venv must see -------------------

PI_5_MODEL = "Raspberry Pi 5 Model B Rev 1.0\x00"  # /proc/device-tree/model ends with a NUL


def doctor_without_lgpio(state_dir: Path) -> subprocess.CompletedProcess[str]:
    """`station doctor` in a process where `import lgpio` fails (None in sys.modules is Python's own
    way to say a module cannot be imported), whether or not this machine has lgpio."""
    return subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; sys.modules['lgpio'] = None; from station.cli import main; sys.exit(main())",
            "doctor",
            "--state-dir",
            str(state_dir),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )


def lgpio_lines(stdout: str) -> list[str]:
    lines = stdout.splitlines()
    at = next(i for i, line in enumerate(lines) if "] lgpio:" in line)
    return lines[at : at + 2]


def test_lgpio_missing_is_a_failure_with_the_way_to_install_it(tmp_path):
    proc = doctor_without_lgpio(tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    result, fix = lgpio_lines(proc.stdout)
    assert result.startswith("[FAIL] lgpio: lgpio is not importable"), result
    assert fix.strip().startswith("fix: sudo apt install python3-lgpio"), fix
    assert "--system-site-packages" in fix and "deploy/install.sh" in fix
    if not doctor.on_raspberry_pi():
        assert "only needed on a Raspberry Pi" in result and "station sim" in result
    # the pin factory, which needs lgpio, points at this check rather than at pip
    assert "the lgpio and GPIO chips checks say what is missing" in proc.stdout


def test_lgpio_missing_on_a_pi_is_not_excused(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "lgpio", None)
    model = tmp_path / "model"
    model.write_text(PI_5_MODEL)
    assert doctor.on_raspberry_pi(model)
    check = doctor.check_lgpio(model=model, distribution_site=tmp_path / "none", venv=None)
    assert not check.ok and "not importable" in check.detail
    assert "only needed" not in check.detail
    assert check.fix.startswith("sudo apt install python3-lgpio") and "--system-site-packages" in check.fix


@pytest.mark.parametrize("sees_system", [False, True])
def test_a_venv_that_cannot_see_the_installed_python3_lgpio_is_named(tmp_path, monkeypatch, sees_system):
    """python3-lgpio installed (its lgpio.py in dist-packages) but the station's venv created
    without --system-site-packages: the fix is that one line of pyvenv.cfg, not another apt install."""
    monkeypatch.setitem(sys.modules, "lgpio", None)
    model = tmp_path / "model"
    model.write_text(PI_5_MODEL)
    dist = tmp_path / "dist-packages"
    dist.mkdir()
    (dist / "lgpio.py").write_text("")
    venv = tmp_path / "venv"
    venv.mkdir()
    (venv / "pyvenv.cfg").write_text(
        f"home = /usr/bin\ninclude-system-site-packages = {str(sees_system).lower()}\nversion = 3.11.2\n"
    )
    check = doctor.check_lgpio(model=model, distribution_site=dist, venv=venv)
    assert not check.ok
    if sees_system:  # then the venv is not the reason: the generic way out
        assert check.fix == doctor.LGPIO_FIX
    else:
        assert f"the virtual environment {venv} does not see system packages" in check.detail
        assert str(venv / "pyvenv.cfg") in check.fix and "include-system-site-packages = true" in check.fix


def test_lgpio_present_passes_naming_its_version_and_where_it_comes_from(tmp_path):
    """A stand-in for the distribution's lgpio, laid out as python3-lgpio lays it out (a module and
    an egg-info directory, no dist-info), with the constants gpiozero's lgpio factory reads."""
    site = tmp_path / "dist-packages"
    (site / "lgpio-0.2.2.0.egg-info").mkdir(parents=True)
    (site / "lgpio-0.2.2.0.egg-info" / "PKG-INFO").write_text("Metadata-Version: 1.2\nName: lgpio\nVersion: 0.2.2.0\n")
    (site / "lgpio.py").write_text(
        "SET_PULL_NONE = SET_PULL_UP = SET_PULL_DOWN = 0\nBOTH_EDGES, RISING_EDGE, FALLING_EDGE = 3, 1, 2\n"
    )
    proc = subprocess.run(
        [sys.executable, "-m", "station", "doctor", "--state-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(site)},
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    result = lgpio_lines(proc.stdout)[0]
    assert result == f"[PASS] lgpio: lgpio 0.2.2.0 from {site / 'lgpio.py'}", proc.stdout
