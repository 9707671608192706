"""hw_sim/panel_words.py: the panel's looks in the README's words, read from the LED and buzzer
lines of a real SimBench (gpiozero mock pins driven by the unchanged firmware)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hw_sim.bench import SimBench
from hw_sim.panel_words import UNLISTED, Look, PanelWatcher, describe, sound_words
from station.drivers import panel as panel_driver
from station.drivers.panel import Look as PatternLook
from station.events import AttemptFinished
from station.ports import Pattern

README = Path(__file__).resolve().parent.parent / "README.md"

# The README's table rows and the lights and sound that show each one.
ROWS = {
    "green": (("on", "off", "off"), 0, False),
    "amber": (("off", "on", "off"), 0, False),
    "green + amber, one beep": (("on", "on", "off"), 1, False),
    "green blinking, two beeps": (("blinking", "off", "off"), 2, False),
    "red blinking slowly, long beep": (("off", "off", "blinking"), 1, True),
    "red blinking fast, three beeps": (("off", "off", "blinking fast"), 3, False),
    "amber blinking": (("off", "blinking", "off"), 0, False),
    "red steady, alarm": (("off", "off", "on"), 5, True),
    "amber blinking fast": (("off", "blinking fast", "off"), 0, False),
    "all lights off": (("off", "off", "off"), 0, False),
    "green + red, one beep": (("on", "off", "on"), 1, False),
    "amber + red, two beeps": (("off", "on", "on"), 2, False),
    "amber + red blinking, two beeps": (("off", "blinking", "blinking"), 2, False),
    "green + red blinking fast, three beeps": (("blinking fast", "off", "blinking fast"), 3, False),
}


def readme_table() -> dict[str, str]:
    text = README.read_text(encoding="utf-8")
    table = text.split("| lights | meaning |", 1)[1].split("\n\n", 1)[0]
    rows = {}
    for line in table.splitlines()[2:]:
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        rows[cells[0]] = cells[1]
    return rows


# ---------------------------------------------------------------------------------- describe
def test_every_readme_row_is_described_in_its_own_words():
    table = readme_table()
    assert set(table) == set(ROWS), "the README's table and these tests list the same looks"
    for lights, (modes, beeps, long_beep) in ROWS.items():
        words = describe(*modes, beeps=beeps, long_beep=long_beep)
        seen, _, meaning = words.partition(": ")
        assert seen == lights, words
        assert table[lights].startswith(meaning), (words, table[lights])


def test_a_look_the_readme_does_not_list_says_so_and_what_is_seen():
    assert describe("on", "on", "off") == f"green + amber: {UNLISTED}"  # swipe now without its beep
    assert describe("blinking", "off", "off", beeps=1) == f"green blinking, one beep: {UNLISTED}"
    assert describe("off", "off", "blinking", beeps=2, long_beep=True) == f"red blinking, two long beeps: {UNLISTED}"
    assert Look(0.0, ("on", "on", "off")).meaning is None
    assert Look(0.0, ("on", "on", "off"), beeps=1).meaning == "swipe now"


def test_sounds_and_bad_modes():
    assert [sound_words(n) for n in range(6)] == ["", "one beep", "two beeps", "three beeps", "alarm", "alarm"]
    assert sound_words(1, long_beep=True) == "long beep"
    with pytest.raises(ValueError, match="off, on, blinking or blinking fast"):
        describe("lit", "off", "off")


# ---------------------------------------------------------------------------------- on a bench
def watch(bench: SimBench) -> PanelWatcher:
    watcher = PanelWatcher(bench)
    bench.run_for(1.0)
    return watcher


def meanings(watcher: PanelWatcher) -> list[str | None]:
    return [look.meaning for look in watcher.looks]


def result_at(bench: SimBench) -> float:
    """When the station announced its last result (virtual time)."""
    return [h.t for h in bench.events if isinstance(h.event, AttemptFinished)][-1]


def test_swipe_now_is_said_when_green_and_amber_light_and_the_beep_sounded():
    with SimBench() as bench:
        world = bench.world
        watcher = watch(bench)
        assert watcher.current is not None and watcher.current.words == "green: ready"
        world.present("female")
        assert bench.wait_until(lambda: world.leds() == (True, True, False), 10)
        lit_at = bench.loop.now()
        bench.run_for(0.6)  # the beep is over and nothing else changed: the look is certain
        look = watcher.current
        assert look is not None and look.words == "green + amber, one beep: swipe now"
        assert look.t == lit_at
        assert meanings(watcher) == ["ready", "busy", "swipe now"]
        world.swipe()
        assert bench.wait_until(lambda: bench.last_result() is not None, 10)
        world.remove()
        bench.run_for(3.0)
        assert meanings(watcher) == ["ready", "busy", "swipe now", "cleaned", "ready"]
        cleaned = watcher.looks[3]
        assert cleaned.words == "green blinking, two beeps: cleaned"
        assert cleaned.t == result_at(bench)


@pytest.mark.parametrize(
    ("clean", "words"),
    [
        ({"connector": "male"}, "red blinking fast, three beeps: rejected"),
        ({"connector": "female", "direction": "up"}, "red blinking slowly, long beep: failed"),
        ({"connector": "female", "wet": True}, "green blinking, two beeps: cleaned"),
    ],
    ids=["rejected", "failed", "cleaned_wet"],
)
def test_each_result_in_the_readme_words(clean, words):
    with SimBench() as bench:
        watcher = watch(bench)
        bench.clean(**clean)
        bench.run_for(1.0)
        result = [look for look in watcher.looks if look.words == words]
        assert len(result) == 1, list(watcher.looks)
        assert result[0].t == result_at(bench)
        assert watcher.current is not None and watcher.current.meaning == "ready"


def test_a_result_shown_while_the_connector_stays_is_one_look_however_long():
    with SimBench() as bench:
        watcher = watch(bench)
        bench.clean("female", remove=False)
        bench.run_for(5.0)  # green blinks ten times
        assert meanings(watcher) == ["ready", "busy", "swipe now", "cleaned"]
        bench.world.remove()
        bench.run_for(1.0)
        assert meanings(watcher)[-1] == "ready"


def test_fault_is_red_steady_with_the_alarm_while_the_red_light_holds():
    with SimBench() as bench:
        world = bench.world
        watcher = watch(bench)
        world.inject("jam")
        world.present("female")
        assert bench.wait_until(lambda: world.leds() == (False, False, True), 10)
        red_at = bench.loop.now()
        bench.run_for(2.0)  # five alarm beeps
        look = watcher.current
        assert look is not None and look.words == "red steady, alarm: fault" and look.t == red_at
        assert world.leds() == (False, False, True)
        world.remove()
        world.clear("jam")
        world.press_button()
        bench.run_for(1.0)
        assert meanings(watcher)[-1] == "ready"


def test_the_words_come_from_the_buzzer_line_not_from_the_firmware(monkeypatch):
    """A panel whose swipe-now pattern is silent is heard as silent: no "one beep"."""
    monkeypatch.setitem(panel_driver.LOOKS, Pattern.SWIPE_NOW, PatternLook(steady=("green", "amber")))
    with SimBench() as bench:
        watcher = watch(bench)
        bench.world.present("female")
        assert bench.wait_until(lambda: bench.world.prompting, 10)
        bench.run_for(0.6)
        assert watcher.current is not None
        assert watcher.current.words == f"green + amber: {UNLISTED}"
        bench.world.swipe()
        bench.run_for(3.0)


def test_maintenance_is_amber_blinking_fast():
    with SimBench() as bench:
        watcher = watch(bench)
        done = []
        bench.controller.jobs.jog(3, "console:test", done.append)
        bench.run_for(0.6)
        assert "amber blinking fast: maintenance running" in [look.words for look in watcher.looks]
        bench.run_for(10.0)
        assert done and done[0].ok, done
        assert meanings(watcher)[-1] == "ready"


def test_detach_stops_watching_and_restores_the_pins_listener():
    with SimBench() as bench:
        before = bench.factory.on_output
        watcher = watch(bench)
        assert bench.factory.on_output != before
        watcher.detach()
        assert bench.factory.on_output == before
        n = len(watcher.looks)
        bench.clean("female")
        bench.run_for(1.0)
        assert len(watcher.looks) == n
        assert bench.last_result() is not None and bench.last_result().outcome == "cleaned"
