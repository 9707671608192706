"""`station doctor`: each check passes on a good set-up and fails with a fix on a bad one."""

from __future__ import annotations

import subprocess
import sys

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
    for name in ("configuration", "pin factory", "GPIO chips", "console port", "state directory", "service"):
        assert name in proc.stdout
    assert "[PASS] state directory" in proc.stdout and "checks failed" in proc.stdout
