"""The live view of `station sim` (hw_sim/tui.py), driven headlessly by Textual's own Pilot.

Each test runs the real app on a real SimBench (paced to the wall clock on its own thread, as at
a terminal), presses keys and types commands, and reads what the widgets show. Commands that
would take real seconds (`wait_for swipe_now`) let virtual time run ahead instead. Waiting for
the screen to catch up is bounded generously and asserts nothing about speed.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import select
import sqlite3
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Callable
from pathlib import Path

import pytest

pytest.importorskip("textual")

from hw_sim.bench import SimBench  # noqa: E402
from hw_sim.tui import CommandLine, EventLog, SimApp, completions  # noqa: E402

SIZE = (130, 44)
PATIENCE_S = 10.0  # a generous bound for the view to show what the bench did


async def until(pilot, what: Callable[[], bool], why: str) -> None:
    """Let the app run until `what()` holds (the bench's thread and the UI's timer run meanwhile)."""
    end = time.monotonic() + PATIENCE_S
    while not what():
        if time.monotonic() > end:
            raise AssertionError(f"the view never showed {why}")
        await pilot.pause(0.05)


def text(app: SimApp, widget_id: str) -> str:
    return str(app.query_one(f"#{widget_id}").render())


def log(app: SimApp) -> str:
    return "\n".join(app.query_one(EventLog).plain_lines)


async def type_line(pilot, line: str) -> None:
    """Type a line on the command line (`:` first, unless the line has the keys already)."""
    if not isinstance(pilot.app.focused, CommandLine):
        await pilot.press("colon")
    await pilot.press(*line)
    await pilot.press("enter")


@pytest.fixture
def bench(tmp_path):
    with SimBench(state_dir=tmp_path / "state") as b:
        yield b


def test_present_then_swipe_shows_swipe_now_then_cleaned(bench):
    """present(female) -> amber while busy -> green + amber (swipe now) -> swipe -> cleaned."""

    async def scenario() -> None:
        app = SimApp(bench)
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: "state       idle" in text(app, "station"), "the station idle")
            assert "green  on" in text(app, "panel") and "amber  off" in text(app, "panel")
            await pilot.press("p")
            await until(pilot, lambda: "female connector seated" in text(app, "bench"), "the connector in the guide")
            await until(pilot, lambda: "amber  on" in text(app, "panel"), "amber: busy")
            await until(
                pilot,
                lambda: "green  on" in text(app, "panel") and "amber  on" in text(app, "panel"),
                "green + amber",
            )
            assert "red    off" in text(app, "panel")
            await until(pilot, lambda: "green + amber, one beep: swipe now" in text(app, "panel"), "the README's words")
            assert "state       swipe_ready" in text(app, "station")
            assert "SWIPE NOW" in log(app)
            await pilot.press("s")
            await until(pilot, lambda: "CLEANED" in text(app, "station"), "the result")
            assert "last result CLEANED #1 (female dry, pass 0.60 s)" in text(app, "station")
            assert "RESULT CLEANED" in log(app)
            await until(pilot, lambda: "green blinking, two beeps: cleaned" in text(app, "panel"), "cleaned, in words")
            section = bench.world.fitted.position
            assert "#" in text(app, "bench"), "the swiped section shows touched"
            assert f"section {section} of" in text(app, "bench")

    asyncio.run(scenario())
    assert bench.last_result().outcome == "cleaned"


def test_a_gate_shows_blocked_while_the_hand_is_in_it(bench):
    async def scenario() -> None:
        app = SimApp(bench)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("p")
            await until(pilot, lambda: "state       swipe_ready" in text(app, "station"), "swipe now")
            # a slow stroke (3 s between the gates, paced in real time): the hand dwells in gate A
            await type_line(pilot, "swipe down 3")
            await until(pilot, lambda: "gates      A blocked   B clear" in text(app, "bench"), "gate A blocked")
            assert bench.world.sensor("gate_a"), "the view shows what the line reads"
            await type_line(pilot, "remove")
            await until(pilot, lambda: "gates      A clear   B clear" in text(app, "bench"), "both gates clear")

    asyncio.run(scenario())


def test_history_recall_and_tab_completion(bench):
    async def scenario() -> None:
        app = SimApp(bench)
        async with app.run_test(size=SIZE) as pilot:
            command = app.query_one(CommandLine)
            await type_line(pilot, "mode wet")
            await pilot.press(*"refill 30", "enter")
            await until(pilot, lambda: "reservoir refilled (30 drops)" in log(app), "the refill")
            await pilot.press("up")
            assert command.value == "refill 30"
            await pilot.press("up")
            assert command.value == "mode wet"
            await pilot.press("down", "down")
            assert command.value == ""
            await pilot.press(*"pre", "tab")
            assert command.value == "present "
            await pilot.press(*"ma", "tab")
            assert command.value == "present male "
            await pilot.press("ctrl+u")  # (clear the line)
            command.value = ""
            await pilot.press(*"re", "tab")  # remove, remove_cassette, refill: the choices are shown
            assert command.value == "re"
            await until(pilot, lambda: "remove  remove_cassette  refill" in log(app), "the choices")
            await until(pilot, lambda: "reservoir  30 of" in text(app, "bench"), "the reservoir level")
            assert "switch     wet-to-dry" in text(app, "bench")

    asyncio.run(scenario())


def test_completions_follow_the_actions_table():
    assert completions("sw") == ["swipe"]
    assert completions("swipe u") == ["swipe up"]
    assert completions("swipe up 0.4 v") == ["swipe up 0.4 variant="]
    assert completions("swipe variant=ba") == ["swipe variant=back_and_forth"]
    assert completions("inject st") == ["inject stuck_sensor"]
    assert completions("nosuch x") == []
    assert "status" in completions("st") and "help" in completions("h")


def test_keys_and_a_fault_on_the_screen(bench):
    """The footer names the keys; a jam shows red steady and the fault; the screenshot has it all."""

    async def scenario() -> str:
        app = SimApp(bench)
        async with app.run_test(size=SIZE) as pilot:
            await type_line(pilot, "inject jam")
            await pilot.press("escape", "p")
            await until(pilot, lambda: "state       fault  (jam)" in text(app, "station"), "the fault")
            await until(pilot, lambda: "red    on" in text(app, "panel"), "red steady")
            assert "green  off" in text(app, "panel")
            assert "injected: jam" in text(app, "bench")
            assert "FAULT jam" in log(app)
            return app.export_screenshot()

    svg = asyncio.run(scenario())
    assert svg.startswith("<svg")
    plain = svg.replace("&#160;", " ")
    for words in ("present female", "swipe", "remove", "wet/dry", "button", "quit", "FAULT", "injected: jam"):
        assert words in plain, words


def test_quit_stops_the_bench_thread(bench):
    async def scenario() -> SimApp:
        app = SimApp(bench)
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: app.view is not None, "a first view")
            await pilot.press("q")
        return app

    app = asyncio.run(scenario())
    assert not app.runner._thread.is_alive()
    assert bench.world.factory.on_output == bench.world._output_changed, "the output tap let go"


# ---------------------------------------------------------------------------------- `station sim` at a terminal
ROOT = Path(__file__).resolve().parent.parent
WITHOUT_TEXTUAL = "import sys; sys.modules['textual'] = None; "  # as if the `sim` extra were not installed


def at_terminal(code: str, keys: bytes, expect: bytes, limit_s: float = 60.0) -> tuple[int, bytes]:
    """Run `python -c code` on a real pseudo-terminal (stdin, stdout and stderr), wait for
    `expect` on the screen, type `keys`, and return the exit status and everything shown."""
    controller, terminal = os.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 130, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("STATE_DIRECTORY", "GPIOZERO_PIN_FACTORY")}
    env.update(PYTHONPATH=str(ROOT), TERM="xterm-256color")
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdin=terminal, stdout=terminal, stderr=terminal, env=env, cwd=ROOT
    )
    os.close(terminal)
    shown = b""
    end = time.monotonic() + limit_s
    typed = False
    try:
        while time.monotonic() < end:
            if not typed and expect in shown:
                os.write(controller, keys)
                typed = True
            ready, _, _ = select.select([controller], [], [], 0.1)
            if ready:
                try:
                    chunk = os.read(controller, 65536)
                except OSError:  # the program ended and closed the terminal
                    break
                if not chunk:
                    break
                shown += chunk
            elif proc.poll() is not None:
                break
        return proc.wait(timeout=max(1.0, end - time.monotonic())), shown
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(controller)


def sim_code(state_dir: Path, *args: str, prefix: str = "") -> str:
    argv = ["sim", "--state-dir", str(state_dir), *args]
    return f"{prefix}import sys; from station.cli import main; sys.exit(main({argv!r}))"


def stop_audited(state_dir: Path) -> bool:
    with sqlite3.connect(state_dir / "station.db") as db:
        return bool(db.execute("SELECT count(*) FROM audit WHERE action = 'shutdown'").fetchone()[0])


def test_ctrl_c_in_the_live_view_stops_the_station_in_order(tmp_path):
    """At a terminal `station sim` is the live view; Ctrl-C leaves it, the station stopping as
    `station run` does (its orderly stop audited), and the terminal is handed back."""
    code, shown = at_terminal(sim_code(tmp_path), b"\x03", b"station says")
    assert code == 0, shown[-2000:]
    assert b"Traceback" not in shown
    assert b"\x1b[?1049h" in shown and b"\x1b[?1049l" in shown, "full screen, then the terminal handed back"
    assert stop_audited(tmp_path)


def test_without_textual_a_terminal_gets_the_line_mode_and_how_to_get_the_view(tmp_path):
    code, shown = at_terminal(sim_code(tmp_path, prefix=WITHOUT_TEXTUAL), b"quit\n", b"Type a command")
    assert code == 0, shown[-2000:]
    assert b"the live view of the bench needs Textual: pip install '.[sim]'" in shown
    assert shown.count(b"pip install") == 1
    assert b"Simulated MPO cleaning station (real time)" in shown


def test_plain_keeps_the_line_mode_at_a_terminal(tmp_path):
    code, shown = at_terminal(sim_code(tmp_path, "--plain"), b"present female\nquit\n", b"Type a command")
    assert code == 0, shown[-2000:]
    assert b"Simulated MPO cleaning station (real time)" in shown
    assert b"female connector presented" in shown
    assert b"pip install" not in shown and b"\x1b[?1049h" not in shown, "no full-screen view"


def test_the_firmware_and_the_batch_modes_never_load_textual(tmp_path):
    """`station run`'s modules, the demo, scenarios and the headless bench: Textual is not
    imported (start-up time and memory unchanged), and the demo runs without it."""
    check = (
        "import sys; import station.cli, station.service, station.app, hw_sim.interactive, hw_sim.demo, "
        "hw_sim.scenario, hw_sim.headless; assert 'textual' not in sys.modules, 'textual imported'"
    )
    done = subprocess.run([sys.executable, "-c", check], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    code = sim_code(tmp_path / "demo", "--demo", prefix=WITHOUT_TEXTUAL)
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr
    assert "pip install" not in done.stdout + done.stderr
