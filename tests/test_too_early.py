"""A pull begun before swipe-now (issue 12): "too early: wait for green + amber".

The operator swipes while the station still reads the guide pins, advances the wheel or places
the drop. The firmware calls it what it is, and its record says what physically happened:
nothing used while the pins were read (rejected), the positions the wheel moved and the drop
placed once it had (failed). A gate that reads blocked with no pull (a dirty gate) keeps its
own message. The simulator's judge holds every such record to the physics (hw_sim/outcome.py:
a rejection used no ribbon and no drop, a record's positions and drops are the wheel's and the
pump's, "too early" only for a connector that really reached gate A before swipe-now); a
planted bug for each check shows it is flagged.
"""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hw_sim import Fault, SimBench
from station.config import Config
from station.console import protocol as P
from station.console.access import Session
from station.console.commands import REGISTRY
from station.console.server import Dispatcher, console_context
from station.domain import Outcome, Reason
from station.events import AttemptFinished, SwipeNow, WheelAdvanced
from station.ports import Pattern, Sensor

REPO = Path(__file__).resolve().parent.parent
N = Config().wheel.positions_per_clean
TOO_EARLY = "too early: wait for green + amber"


def pull_in(bench: SimBench, state: str, *, wet: bool = False) -> None:
    """Seat a female connector and pull it down across the window while the station is in `state`."""
    w = bench.world
    w.set_mode(wet)
    w.present("female")
    assert bench.wait_until(lambda: bench.state == state, 10), bench.state
    if state == "identifying":
        bench.run_for(0.05)  # (the pins take 0.15 s to read)
        assert bench.state == state
    w.swipe(duration_s=0.6)


def result_of(bench: SimBench) -> AttemptFinished:
    assert bench.wait_until(lambda: bench.last_result() is not None, 30)
    result = bench.last_result()
    assert result is not None
    return result


def settle(bench: SimBench) -> None:
    """The operator takes the connector away; the station shows ready again."""
    bench.run_for(2.0)  # the stroke is over
    bench.world.remove()
    assert bench.wait_until(lambda: bench.state == "idle", 10)


def clean_after(bench: SimBench) -> None:
    """The next clean is a good one on fresh ribbon (the judge checks it from physics)."""
    before = bench.world.fitted.position
    assert bench.clean("female").outcome == "cleaned"
    assert bench.world.fitted.position == before + N
    assert bench.world.swipes[-1].fresh and bench.world.swipes[-1].prompted


# ====================================================================== the firmware
def test_the_reason_text_is_the_operator_s_instruction():
    assert Reason.TOO_EARLY.value == TOO_EARLY


def test_a_pull_while_the_guide_pins_are_read_is_rejected_too_early_and_uses_nothing(bench):
    w, store = bench.world, bench.controller.store
    position, steps, drops, prompts = w.fitted.position, w.steps_total, w.drops_total, w.prompts
    pull_in(bench, "identifying")
    result = result_of(bench)
    assert (result.outcome, result.reason) == (Outcome.REJECTED, Reason.TOO_EARLY)
    assert (result.positions, result.drops) == (0, 0)
    rec = store.attempts(limit=1)[0]
    assert (rec.outcome, rec.reason, rec.positions, rec.drops, rec.first_position) == (
        "rejected",
        TOO_EARLY,
        0,
        0,
        None,
    )
    assert (w.fitted.position, w.steps_total, w.drops_total, w.prompts) == (position, steps, drops, prompts)
    assert bench.controller.hardware.panel.pattern is Pattern.REJECTED
    assert bench.heard(WheelAdvanced) == [] and bench.heard(SwipeNow) == []
    settle(bench)
    clean_after(bench)


@pytest.mark.parametrize("wet", [False, True], ids=["dry", "wet"])
def test_a_pull_while_the_wheel_turns_fails_too_early_with_the_positions_it_used(bench, wet):
    w, store = bench.world, bench.controller.store
    position, drops = w.fitted.position, w.drops_total
    pull_in(bench, "advancing", wet=wet)
    assert w.stepper_enabled, "pulled while the wheel turns"
    result = result_of(bench)
    assert (result.outcome, result.reason) == (Outcome.FAILED, Reason.TOO_EARLY)
    assert (result.positions, result.drops) == (N, 0)
    rec = store.attempts(limit=1)[0]
    assert (rec.outcome, rec.reason, rec.positions, rec.drops) == ("failed", TOO_EARLY, N, 0)
    assert w.fitted.position == position + N, "the move under way ends at a confirmed position"
    assert w.drops_total == drops, "no drop once the pull was seen, wet or dry"
    assert w.prompts == 0 and not w.stepper_enabled and not w.pump_on
    assert bench.controller.hardware.panel.pattern is Pattern.FAILED
    announced = [type(h.event) for h in bench.events if isinstance(h.event, (WheelAdvanced, AttemptFinished))]
    assert announced == [WheelAdvanced, AttemptFinished], "the result comes once the move is over"
    settle(bench)
    clean_after(bench)


def test_a_pull_while_the_drop_is_placed_fails_too_early_with_the_drop(bench):
    w, store = bench.world, bench.controller.store
    position, drops = w.fitted.position, w.drops_total
    pull_in(bench, "dispensing", wet=True)
    result = result_of(bench)
    assert (result.outcome, result.reason) == (Outcome.FAILED, Reason.TOO_EARLY)
    assert (result.positions, result.drops) == (N, 1)
    rec = store.attempts(limit=1)[0]
    assert (rec.outcome, rec.reason, rec.positions, rec.drops) == ("failed", TOO_EARLY, N, 1)
    assert (w.fitted.position, w.drops_total) == (position + N, drops + 1)
    assert w.prompts == 0 and not w.pump_on
    settle(bench)
    clean_after(bench)


def test_an_upward_pull_before_swipe_now_is_too_early_once_it_reaches_gate_a(bench):
    w = bench.world
    w.present("female")
    assert bench.wait_until(lambda: bench.state == "identifying", 10)
    w.swipe(direction="up", duration_s=0.05)  # gate B, then gate A 50 ms later: pins still being read
    result = result_of(bench)
    assert (result.outcome, result.reason) == (Outcome.REJECTED, Reason.TOO_EARLY)
    settle(bench)


@pytest.mark.parametrize("gate", ["gate_a", "gate_b"])
def test_a_gate_blocked_before_any_connector_still_asks_for_the_gates_to_be_cleaned(bench, gate):
    w = bench.world
    w.inject(Fault.STUCK_SENSOR, sensor=gate, active=True)  # dirt in the gate: blocked at rest
    bench.run_for(0.1)
    position = w.fitted.position
    result = bench.clean("female")
    assert result is not None and (result.outcome, result.reason) == (Outcome.REJECTED, Reason.GATE_BLOCKED_EARLY)
    assert bench.controller.store.attempts(limit=1)[0].reason == Reason.GATE_BLOCKED_EARLY.value
    assert w.fitted.position == position
    w.clear(Fault.STUCK_SENSOR)
    bench.run_for(0.5)


def test_a_pull_after_swipe_now_is_judged_as_a_swipe_not_too_early(bench):
    assert bench.clean("female", delay_s=0.0).outcome == "cleaned"
    assert bench.clean("female", wet=True, delay_s=0.0).outcome == "cleaned"


# ====================================================================== what people read
def console_lines(bench: SimBench, text: str) -> list[str]:
    dispatcher = Dispatcher(REGISTRY, console_context(bench.controller), Session("/dev/pts/9", 300.0))
    return dispatcher.handle(P.Line(text), lambda _line: None)


def station_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "STATE_DIRECTORY"}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run(
        [sys.executable, "-m", "station", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=60
    )


def test_the_console_log_and_the_records_export_give_the_reason(tmp_path):
    with SimBench(state_dir=tmp_path) as bench:
        pull_in(bench, "identifying")
        result_of(bench)
        settle(bench)
        pull_in(bench, "advancing")
        result_of(bench)
        settle(bench)
        log = console_lines(bench, "log 2")
        assert bench.world.violations == []
    assert log[-1] == "OK" and len(log) == 3, log
    assert log[0].split()[3:5] == ["failed", "dry"] and f"pos {N} drops 0  {TOO_EARLY}" in log[0], log
    assert log[1].split()[3:5] == ["rejected", "dry"] and f"pos 0 drops 0  {TOO_EARLY}" in log[1], log
    done = station_cli("records", "--state-dir", str(tmp_path), "--format", "csv")
    assert done.returncode == 0, done.stderr
    rows = [(r["outcome"], r["reason"], r["positions"]) for r in csv.DictReader(io.StringIO(done.stdout, newline=""))]
    assert rows == [("rejected", TOO_EARLY, "0"), ("failed", TOO_EARLY, str(N))]
    done = station_cli("records", "--state-dir", str(tmp_path), "--format", "json", "--result", "rejected")
    assert done.returncode == 0, done.stderr
    assert [(r["outcome"], r["reason"]) for r in json.loads(done.stdout)] == [("rejected", TOO_EARLY)]


# ====================================================================== the judge, with planted bugs
def flagged(bench: SimBench, rule: int, *words: str) -> None:
    found = [v for v in bench.world.violations if v.rule == rule and all(w in v.text for w in words)]
    assert found, f"no rule {rule} violation with {words}: {bench.world.violations}"


@pytest.mark.violations(8)
def test_a_pull_while_the_wheel_turns_recorded_as_rejected_is_flagged(bench, monkeypatch):
    """Planted: the wheel is stopped at the pull and the attempt recorded rejected, as if
    nothing were used (the ledger has the positions, the wheel stepped)."""
    c = bench.controller

    def stop_and_reject(a, edge):
        if edge.sensor is not Sensor.GATE_A or not edge.active or a.outcome is not None:
            return False
        c.hardware.wheel.stop()
        c.cycle.conclude(Outcome.REJECTED, Reason.TOO_EARLY)
        return True

    monkeypatch.setattr(c.cycle, "swiped_early", stop_and_reject)
    pull_in(bench, "advancing")
    assert result_of(bench).outcome == "rejected"
    settle(bench)
    flagged(bench, 8, "recorded rejected", "nothing consumed) after the wheel stepped", "the books have 3 positions")


@pytest.mark.violations(6)
def test_a_record_whose_drops_are_not_the_pump_s_is_flagged(bench, monkeypatch):
    """Planted: the drop of a clean cut short is left off its record (booked for no attempt)."""
    c = bench.controller
    real = c.store.record_drop
    monkeypatch.setattr(c.store, "record_drop", lambda t, attempt_id=None, **kw: real(t, **kw))
    pull_in(bench, "dispensing", wet=True)
    assert result_of(bench).drops == 1
    settle(bench)
    flagged(bench, 6, "recorded failed", "with 3 positions and 0 drops", "the pump pulsed 1 times")


@pytest.mark.violations(5)
def test_a_pull_before_swipe_now_not_called_too_early_is_flagged(bench, monkeypatch):
    """Planted: the firmware before issue 12: gate edges before swipe-now are not looked at."""
    monkeypatch.setattr(bench.controller.cycle, "swiped_early", lambda a, edge: False)
    pull_in(bench, "identifying")
    assert result_of(bench).reason is Reason.GATE_BLOCKED_EARLY
    settle(bench)
    flagged(bench, 5, "a pull down across gate A", "before swipe-now", "not too early")


@pytest.mark.violations(5)
def test_too_early_recorded_with_no_pull_is_flagged(bench, monkeypatch):
    """Planted: a connector lifted while the pins are read is recorded as a pull too early."""
    c = bench.controller
    real = c.cycle.conclude

    def mislabel(outcome, reason, **kw):
        return real(outcome, Reason.TOO_EARLY if reason is Reason.REMOVED_EARLY else reason, **kw)

    monkeypatch.setattr(c.cycle, "conclude", mislabel)
    w = bench.world
    w.present("female")
    bench.run_for(0.05)
    w.remove()
    assert result_of(bench).reason is Reason.TOO_EARLY
    bench.run_for(2.0)
    flagged(bench, 5, "recorded rejected 'too early", "no pull reached gate A before swipe-now")
