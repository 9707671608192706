"""`station sim --demo` (hw_sim/demo.py): the panel at each step in the README's words, and a
tour of every path (a jam, low fluid and a late swipe among them), each step checked."""

from __future__ import annotations

import io
import re

import pytest

from hw_sim import demo
from station.domain import Reason
from station.drivers import panel as panel_driver
from station.drivers.panel import Look as PatternLook
from station.ports import Pattern


def run_demo(tmp_path) -> tuple[bool, str]:
    out = io.StringIO()
    ok = demo.run(out, state_dir=tmp_path / "state")
    return ok, out.getvalue()


def sections(text: str) -> dict[str, str]:
    """The demo's sections by title (the line after `== `)."""
    parts = re.split(r"^== (.+)$", text, flags=re.M)
    return {parts[i]: parts[i + 1] for i in range(1, len(parts) - 1, 2)}


def section(text: str, start: str) -> str:
    found = [body for title, body in sections(text).items() if title.startswith(start)]
    assert len(found) == 1, f"one section starting {start!r}: {list(sections(text))}"
    return found[0]


def panel_lines(body: str) -> list[str]:
    """The looks of a section, in order (lines that are not actions, station words or records)."""
    looks = []
    for line in body.splitlines():
        m = re.match(r"^\s*\d+\.\d\d s  (.+)$", line)
        if m and not m.group(1).startswith((">", "station:", "record")):
            looks.append(m.group(1))
    return looks


@pytest.fixture(scope="module")
def tour(tmp_path_factory) -> tuple[bool, str]:
    return run_demo(tmp_path_factory.mktemp("demo"))


def test_the_demo_ends_ok(tour):
    ok, text = tour
    assert ok, text
    assert text.rstrip().endswith("demo OK")
    assert "!!" not in text and "violations: 0" in text
    assert "state ->" not in text, "the panel, not internal state names"


@pytest.mark.parametrize(
    "words",
    [
        "green: ready",
        "amber: busy",
        "green + amber, one beep: swipe now",
        "green blinking, two beeps: cleaned",
        "red blinking slowly, long beep: failed",
        "red blinking fast, three beeps: rejected",
        "red steady, alarm: fault",
    ],
)
def test_the_panel_is_shown_in_the_readme_words_with_virtual_time(tour, words):
    _, text = tour
    assert re.search(rf"^\s*\d+\.\d\d s  {re.escape(words)}$", text, flags=re.M), words


def test_a_clean_reads_ready_busy_swipe_now_cleaned_ready(tour):
    _, text = tour
    body = section(text, "Female connector, dry clean")
    assert panel_lines(body) == [
        "amber: busy",
        "green + amber, one beep: swipe now",
        "green blinking, two beeps: cleaned",
        "green: ready",
    ]
    assert re.search(r"record #1: cleaned$", body, flags=re.M)


def test_the_jam_step(tour):
    _, text = tour
    body = section(text, "The wheel jams")
    lines = [line.split("s  ", 1)[1] for line in body.strip().splitlines()]
    order = [
        "> inject jam",
        "red steady, alarm: fault",
        f"failed, {Reason.JAM.value}",
        "> clear jam",
        "> button",
        "green: ready",
    ]
    at = [next(i for i, line in enumerate(lines) if want in line) for want in order]
    assert at == sorted(at), lines
    assert "station: FAULT jam" in body


def test_the_low_fluid_step(tour):
    _, text = tour
    body = section(text, "Low fluid")
    assert "station: STAT? fluid_low true" in body
    assert f"rejected, {Reason.FLUID_LOW.value}" in body
    assert "> refill   (the operator fills the bottle)" in body
    assert "station: STAT? fluid_low false" in body
    records = re.findall(r"record #\d+: (\w+)", body)
    assert records == ["rejected", "cleaned", "cleaned"], "wet refused, dry still works, wet after the refill"
    assert panel_lines(body).count("red blinking fast, three beeps: rejected") == 1


def test_the_late_swipe_step(tour):
    _, text = tour
    body = section(text, "Female connector, the operator waits past the swipe window")
    assert f"failed, {Reason.NO_SWIPE.value}" in body
    assert panel_lines(body) == [
        "amber: busy",
        "green + amber, one beep: swipe now",
        "red blinking slowly, long beep: failed",
        "green: ready",
    ]
    times = [float(t) for t in re.findall(r"^\s*(\d+\.\d\d) s  (?:green \+ amber|red blinking)", body, flags=re.M)]
    assert times[1] - times[0] == pytest.approx(15.0, abs=0.01), "the dry swipe window"


def test_the_summary_lists_every_record(tour):
    _, text = tour
    summary = text.split("== Summary", 1)[1]
    assert len(re.findall(r"^  #\d+ ", summary, flags=re.M)) == 22  # 13 before inspection, 9 in its two sections


def test_the_inspection_sections_show_fail_clean_again_pass_and_a_quarantine(tour):
    _, text = tour
    oily = text.split("== Inspection on: an oily", 1)[1].split("\n== ", 1)[0]
    for words in (
        "green + red, one beep: inspect now",
        "amber + red, two beeps: clean again",
        "amber + red blinking, two beeps: clean again, wet-to-dry",
        "RESULT REJECTED (male dry): clean again, wet-to-dry",
        "RESULT CLEANED (male wet",
        "green: ready",
    ):
        assert words in oily, words
    damaged = text.split("== Inspection on: a damaged", 1)[1].split("\n== ", 1)[0]
    assert "green + red blinking fast, three beeps: reject the connector" in damaged
    assert "rejected, quarantined: replace or repair the connector" in damaged
    assert "!!" not in oily and "!!" not in damaged


def test_a_panel_that_does_not_show_the_readme_look_fails_the_demo(tmp_path, monkeypatch):
    """Cleaned with one beep instead of two: the records are all right, the panel is not."""
    monkeypatch.setitem(panel_driver.LOOKS, Pattern.CLEANED, PatternLook(blink=("green",), half_period_s=0.5, beeps=1))
    ok, text = run_demo(tmp_path)
    assert not ok
    assert text.rstrip().endswith("demo FAILED")
    assert "!! the panel did not show cleaned" in text
    assert "green blinking, one beep: not a look the README lists" in text
