"""The `station` command line meets a user's mistakes with a message that names what is wrong
and what to do, never a traceback (issue 12): a backup to a folder that is not there, Ctrl-C at
`station pin set`, a damaged `sim-world.json`. And the smaller promises: `station wiring
--output -` writes to standard output, `station config show SECTION` shows one section like the
console's `config show`, `-v` is not drowned in the state machine library's debug lines."""

from __future__ import annotations

import os
import pty
import select
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from station import cli, wiring
from station.app import open_store
from station.config import Config
from station.console.commands import config_text
from station.store import StoreError

ROOT = Path(__file__).resolve().parent.parent


def station(*args: str, stdin: str = "", timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """The real command, as a user runs it."""
    env = {k: v for k, v in os.environ.items() if k not in ("STATE_DIRECTORY", "GPIOZERO_PIN_FACTORY")}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run(
        [sys.executable, "-m", "station", *args],
        cwd=ROOT,
        input=stdin,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def state(tmp_path: Path) -> Path:
    """A state directory with a station database in it."""
    directory = tmp_path / "state"
    open_store(Config(), directory, on_pi=False).close()
    return directory


# ---------------------------------------------------------------------------------- station backup
def test_backup_to_a_folder_that_does_not_exist_says_so_and_exits_2(state, tmp_path):
    """An unmounted drive: /media/usb is not there. Today: sqlite3.OperationalError traceback."""
    destination = tmp_path / "media" / "usb" / "station.db"
    done = station("backup", "--state-dir", str(state), str(destination))
    assert done.returncode == 2, done
    assert "Traceback" not in done.stderr
    message = done.stderr.strip()
    assert message.startswith("station backup: cannot write"), message
    assert str(destination.parent) in message and "does not exist" in message
    assert "mount the drive" in message and "create it" in message
    assert not destination.parent.exists(), "the backup must not invent the folder"


def test_backup_into_a_file_as_if_it_were_a_folder_says_so(state, tmp_path, capsys):
    plain = tmp_path / "notes.txt"
    plain.write_text("not a folder")
    assert cli.main(["backup", "--state-dir", str(state), str(plain / "station.db")]) == 2
    err = capsys.readouterr().err
    assert f"{plain} is not a folder" in err


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="needs a user that permissions apply to")
def test_backup_into_a_folder_this_user_may_not_write_says_so(state, tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        assert cli.main(["backup", "--state-dir", str(state), str(locked / "station.db")]) == 2
    finally:
        locked.chmod(0o700)
    assert f"may not write in {locked}" in capsys.readouterr().err


def test_a_backup_that_fails_midway_leaves_no_half_copy(state, tmp_path, capsys, monkeypatch):
    """The drive fills up or is pulled out during the copy: an error, and no file that looks
    like a backup."""
    from station.store import Store

    def fail(self: Store, destination: str | Path) -> None:
        Path(destination).write_bytes(b"SQLite format 3\x00 half")
        raise StoreError("database x: disk full") from sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(Store, "backup", fail)
    destination = tmp_path / "copy.db"
    assert cli.main(["backup", "--state-dir", str(state), str(destination)]) == 2
    err = capsys.readouterr().err
    assert f"could not write {destination}: database or disk is full; nothing was backed up" in err
    assert not destination.exists()


def test_a_backup_to_a_good_place_still_works(state, tmp_path, capsys):
    destination = tmp_path / "copy.db"
    assert cli.main(["backup", "--state-dir", str(state), str(destination)]) == 0
    assert "backed up" in capsys.readouterr().out
    with sqlite3.connect(destination) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)


# ---------------------------------------------------------------------------------- station pin set
def _pin_set_on_a_terminal(state_dir: Path, keys: bytes) -> tuple[bytes, int]:
    """`station pin set` on a real pseudo-terminal (its controlling terminal, as at a login):
    type `keys` at the first prompt; the screen and the exit status."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: becomes `station pin set`
        os.chdir(ROOT)
        os.environ.pop("STATE_DIRECTORY", None)
        os.execv(sys.executable, [sys.executable, "-m", "station", "pin", "set", "--state-dir", str(state_dir)])
    screen = b""

    def read_until(word: bytes, limit: float = 30.0) -> None:
        nonlocal screen
        end = time.monotonic() + limit
        while word not in screen and time.monotonic() < end:
            if select.select([fd], [], [], 0.1)[0]:
                try:
                    screen += os.read(fd, 1024)
                except OSError:  # the child has gone and closed its side
                    return

    try:
        read_until(b"new maintenance PIN:")
        os.write(fd, keys)  # the terminal turns ^C into SIGINT for the program, as for a person
        read_until(b"changed")
        _, status = os.waitpid(pid, 0)
    finally:
        os.close(fd)
    return screen, os.waitstatus_to_exitcode(status)


@pytest.mark.skipif(not hasattr(pty, "fork") or not hasattr(os, "waitstatus_to_exitcode"), reason="POSIX pty")
def test_ctrl_c_at_the_pin_prompt_cancels_without_a_traceback(tmp_path):
    state_dir = tmp_path / "state"
    screen, status = _pin_set_on_a_terminal(state_dir, b"\x03")
    text = screen.decode(errors="replace")
    assert "Traceback" not in text and "KeyboardInterrupt" not in text, text
    assert "station pin: cancelled, no PIN changed" in text
    assert status == 130, "128 + SIGINT, as a shell reports a program stopped by Ctrl-C"
    assert not state_dir.exists(), "nothing was written"


@pytest.mark.parametrize("stop, status", [(KeyboardInterrupt, 130), (EOFError, 1)], ids=["ctrl_c", "ctrl_d"])
def test_a_cancelled_pin_prompt_changes_nothing(tmp_path, capsys, monkeypatch, stop, status):
    """Ctrl-C at either prompt, or Ctrl-D (end of input): cancelled, and no PIN is set."""
    import getpass

    class Terminal:
        def isatty(self) -> bool:
            return True

    answers = iter(["1234"])

    def prompt(text: str = "") -> str:
        answer = next(answers, None)
        if answer is None:
            raise stop
        return answer

    monkeypatch.setattr(sys, "stdin", Terminal())
    monkeypatch.setattr(getpass, "getpass", prompt)  # the first entry typed, the second cancelled
    state_dir = tmp_path / "state"
    assert cli.main(["pin", "set", "--state-dir", str(state_dir)]) == status
    assert "station pin: cancelled, no PIN changed" in capsys.readouterr().err
    assert cli.main(["pin", "status", "--state-dir", str(state_dir)]) == 1


# ---------------------------------------------------------------------------------- sim-world.json
@pytest.mark.parametrize(
    "content, detail",
    [('{"cassettes": {"standard": {"na', "not JSON"), ("[1, 2]", "not a world file"), ("{}", "no 'cassettes'")],
    ids=["cut_short", "not_an_object", "keys_missing"],
)
def test_a_damaged_world_file_is_named_with_what_to_do(tmp_path, content, detail):
    """The simulated bench's own file, damaged (a disk filled up, an editor): today a
    JSONDecodeError traceback when `station sim` starts."""
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    world = state_dir / "sim-world.json"
    world.write_text(content)
    for mode in ([], ["--headless"]):
        done = station("sim", *mode, "--state-dir", str(state_dir), timeout=60)
        assert done.returncode == 2, done
        assert "Traceback" not in done.stderr, done.stderr
        message = done.stderr.strip()
        assert message.startswith(f"station sim: the simulated bench's file {world} is damaged"), message
        assert detail in message
        assert f"mv {world} {world}.damaged" in message and "--state-dir" in message
    assert world.read_text() == content, "the damaged file is left for the user to look at"


def test_the_world_file_advice_works(tmp_path):
    """Moving the damaged file away, as the message says, starts a fresh bench."""
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    world = state_dir / "sim-world.json"
    world.write_text("{")
    assert station("sim", "--state-dir", str(state_dir), timeout=60).returncode == 2
    world.rename(world.with_name("sim-world.json.damaged"))
    done = station("sim", "--state-dir", str(state_dir), stdin="status\nquit\n", timeout=60)
    assert done.returncode == 0, done
    assert world.exists(), "a fresh world file"


# ---------------------------------------------------------------------------------- station wiring
def test_wiring_output_dash_writes_to_standard_output(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["wiring", "--output", "-"]) == 0
    out = capsys.readouterr().out
    assert out == wiring.document(Config())
    assert not (tmp_path / "-").exists() and list(tmp_path.iterdir()) == []


def test_wiring_to_a_file_still_writes_the_file(tmp_path, capsys):
    path = tmp_path / "wiring.md"
    assert cli.main(["wiring", "--output", str(path)]) == 0
    assert path.read_text(encoding="utf-8") == wiring.document(Config())
    assert capsys.readouterr().out == f"wrote {path}\n"


# ---------------------------------------------------------------------------------- station config show
def _sections(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("[")]


def test_config_show_section_shows_that_section_like_the_console(capsys):
    assert cli.main(["config", "show", "swipe"]) == 0
    out = capsys.readouterr().out
    assert _sections(out) == ["[swipe]"]
    assert out == config_text(Config(), "swipe"), "the console's `config show swipe` text (one picker)"
    assert cli.main(["config", "show"]) == 0
    whole = capsys.readouterr().out
    assert out.strip() in whole and len(_sections(whole)) > 1
    assert cli.main(["config", "show", "SWIPE"]) == 0, "any case, as on the console"
    assert capsys.readouterr().out == out


def test_config_show_an_unknown_section_names_the_sections(capsys):
    assert cli.main(["config", "show", "swype"]) == 2
    err = capsys.readouterr().err
    assert "no section 'swype'" in err and "swipe" in err and "wheel" in err


def test_config_show_section_of_a_file(tmp_path, capsys):
    path = tmp_path / "station.toml"
    path.write_text("[swipe]\nmax_pass_s = 2.5\n")
    assert cli.main(["config", "show", "swipe", "--config", str(path)]) == 0
    assert "max_pass_s = 2.5" in capsys.readouterr().out
    assert cli.main(["config", "show", str(path)]) == 0, "the older form, `config show FILE`"
    out = capsys.readouterr().out
    assert "max_pass_s = 2.5" in out and len(_sections(out)) > 1
    assert cli.main(["config", "check", str(path)]) == 0
    assert cli.main(["config", "check"]) == 2
    assert "name the file to check" in capsys.readouterr().err


# ---------------------------------------------------------------------------------- -v
def test_verbose_is_not_flooded_by_the_state_machine_library(tmp_path):
    """`-v` on the demo: 416 of 458 lines were the `transitions` library's (every callback);
    now none. `-vv` asks for them."""
    done = station("-v", "sim", "--demo", "--state-dir", str(tmp_path / "a"))
    assert done.returncode == 0, done
    assert "transitions" not in done.stderr
    done = station("-vv", "sim", "--demo", "--state-dir", str(tmp_path / "b"))
    assert done.returncode == 0, done
    assert done.stderr.count(" transitions.core: ") > 100


def test_verbose_keeps_our_own_debug_logging():
    script = (
        "import logging; from station import cli; cli.main(['-v', 'config', 'show', 'panel']); "
        "print(logging.getLogger('station.controller').isEnabledFor(logging.DEBUG), "
        "logging.getLogger('hw_sim.world').isEnabledFor(logging.DEBUG), "
        "logging.getLogger('transitions.core').isEnabledFor(logging.INFO))"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done
    assert done.stdout.splitlines()[-1] == "True True False"
