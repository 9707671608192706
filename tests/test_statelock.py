"""One station per state directory (issue 12, station/statelock.py): an OS lock on
`station.lock`, held by the running station, dropped by the kernel when it stops or dies.

Real processes where it matters (two `station sim --headless`, SIGKILL of the holder), and
in-process stations (SimBench, the service) on real files, as the tests and the power-cut
tests build them one after another on one directory."""

from __future__ import annotations

import fcntl
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from gpiozero.pins.mock import MockFactory

from hw_sim import SimBench
from hw_sim.world_file import WorldFileError
from station.app import DB_NAME
from station.config import Config
from station.events import AttemptStarted, Recovered
from station.service import Service
from station.statelock import LOCK_NAME, StateDirInUse

ROOT = Path(__file__).resolve().parent.parent


def env() -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if k not in ("STATE_DIRECTORY", "GPIOZERO_PIN_FACTORY")}
    e["PYTHONPATH"] = str(ROOT) + os.pathsep + e.get("PYTHONPATH", "")
    return e


def station(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "station", *args],
        cwd=ROOT,
        env=env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )


def start_headless(state: Path) -> subprocess.Popen[str]:
    """`station sim --headless` on `state`, returned once it printed its ports (it holds the lock by then)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "station", "sim", "--headless", "--state-dir", str(state)],
        cwd=ROOT,
        env=env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    seen: set[str] = set()
    while seen != {"console", "bench"}:
        line = proc.stdout.readline()  # type: ignore[union-attr]
        if not line:
            proc.wait(10)
            pytest.fail(f"station sim --headless ended ({proc.returncode}): {proc.stderr.read()}")  # type: ignore[union-attr]
        if m := re.match(r"(console|bench): ", line):
            seen.add(m.group(1))
    return proc


def end(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait(10)


def refusal(state: Path, pid: int | None) -> str:
    who = f"the station with PID {pid}" if pid is not None else "another station (its PID is not known yet)"
    return f"the state directory {state} is in use by {who}"


# ---------------------------------------------------------------------------------- real processes
@pytest.mark.slow
def test_a_second_headless_simulator_refuses_naming_the_first_and_starts_once_the_first_is_killed(tmp_path):
    state = tmp_path / "state"
    first = start_headless(state)
    try:
        assert (state / LOCK_NAME).read_text().strip() == str(first.pid)

        second = station("sim", "--headless", "--state-dir", str(state))
        assert second.returncode == 2, second
        assert "Traceback" not in second.stderr, second.stderr
        message = second.stderr.strip()
        assert message.startswith(f"station sim: {refusal(state, first.pid)}; stop it first"), message
        assert "--state-dir" in message
        assert second.stdout == "", "the second one printed ports: it started"
        # the other modes that keep books in a state directory refuse the same way
        for mode in (["--demo"], []):
            other = station("sim", *mode, "--state-dir", str(state))
            assert other.returncode == 2, other
            assert refusal(state, first.pid) in other.stderr and "Traceback" not in other.stderr

        # reading the books needs no lock: the records and a backup of the live database
        assert station("records", "--state-dir", str(state)).returncode == 0
        backup = station("backup", "--state-dir", str(state), str(tmp_path / "copy.db"))
        assert backup.returncode == 0, backup.stderr
        assert first.poll() is None, "the first station kept running through all of it"

        first.send_signal(signal.SIGKILL)  # no stop, no clean-up: the kernel drops the lock
        first.wait(10)
        assert (state / LOCK_NAME).read_text().strip() == str(first.pid), "a dead holder's PID stays in the file"

        third = start_headless(state)
        try:
            assert (state / LOCK_NAME).read_text().strip() == str(third.pid)
            third.send_signal(signal.SIGTERM)
            out, err = third.communicate(timeout=20)
            assert third.returncode == 0, err
            assert "stopped" in out
        finally:
            end(third)
    finally:
        end(first)


# ---------------------------------------------------------------------------------- in one process
def test_a_second_bench_on_the_directory_is_refused_and_one_starts_after_the_first_closed(tmp_path):
    first = SimBench(state_dir=tmp_path)
    try:
        with pytest.raises(StateDirInUse) as refused:
            SimBench(state_dir=tmp_path)
        assert refused.value.pid == os.getpid()  # flock is per open file: one process, two stations, refused
        assert str(refused.value).startswith(refusal(tmp_path, os.getpid()))
        assert first.clean("female").outcome == "cleaned", "the refused one took nothing from the first"
    finally:
        first.close()
    with SimBench(state_dir=tmp_path) as again:
        assert [r.outcome for r in again.controller.store.attempts()] == ["cleaned"]


def test_a_power_cut_lets_go_of_the_lock_as_death_does_and_the_next_station_recovers(tmp_path):
    options = {"state_file": tmp_path / "world.json"}
    first = SimBench(state_dir=tmp_path / "state", world_options=options)
    try:
        first.world.present("female")
        assert first.wait_until(lambda: first.state == "swipe_ready", 10)
        [open_attempt] = [e.id for e in first.heard(AttemptStarted)]
        with pytest.raises(StateDirInUse):
            SimBench(state_dir=tmp_path / "state", world_options=options)
        first.power_cut()
        second = SimBench(state_dir=tmp_path / "state", world_options=options)
        try:
            assert second.heard(Recovered) == [Recovered((open_attempt,))]
        finally:
            second.close()
    finally:
        first.station.store.close()  # what the OS closes of the dead process besides its lock


def test_a_station_that_fails_to_start_leaves_the_directory_free(tmp_path):
    world = tmp_path / "sim-world.json"
    world.write_text("{not json")
    with pytest.raises(WorldFileError):
        SimBench(state_dir=tmp_path, world_options={"state_file": world})
    world.unlink()
    with SimBench(state_dir=tmp_path, world_options={"state_file": world}) as bench:
        assert bench.state == "idle"


def test_a_holder_that_has_not_written_its_pid_yet_is_still_refused(tmp_path):
    """The PID is information only: the lock decides. A holder caught between taking the
    lock and writing its PID (here: this test holding the lock on an empty file)."""
    fd = os.open(tmp_path / LOCK_NAME, os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(StateDirInUse) as refused:
            SimBench(state_dir=tmp_path)
        assert refused.value.pid is None
        assert str(refused.value).startswith(refusal(tmp_path, None))
        assert not (tmp_path / DB_NAME).exists(), "the database is not touched before the lock is held"
    finally:
        os.close(fd)


def test_the_service_holds_the_directory_until_it_stops(tmp_path):
    config = Config().replace("console", port="")
    service = Service(config, str(tmp_path), MockFactory())
    try:
        service.start()
        with pytest.raises(StateDirInUse):
            Service(config, str(tmp_path), MockFactory())
    finally:
        service.stop("test over")
    again = Service(config, str(tmp_path), MockFactory())
    again.start()
    again.stop("test over")
