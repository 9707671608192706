"""Injected faults (hw_sim.world.Fault): one test per fault.

Each test checks
* what the firmware decided: the controller's state and fault code, the announced result and
  its durable record;
* that the outputs are physically safe, as the simulator sees the pins: stepper driver
  disabled, pump off, red light on while in fault; no swipe-now the physics would object to;
* recovery: the technician removes the cause (world.clear / refit), acknowledges with a short
  button press where the station needs one, and the next clean succeeds without a violation.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable

import pytest

from hw_sim import Fault, SimBench
from hw_sim.actions import perform
from hw_sim.report import describe
from station.config import Config
from station.domain import FaultCode, Reason, Verdict
from station.events import FaultCleared, FaultRaised, StateChanged, VerdictRecorded, WheelAdvanced
from station.faults import NEXT_STEP
from station.plausibility import sensor_problems
from station.ports import Sensor, SensorEdge
from station.store import StoreError


def explained(code: FaultCode, cause: str) -> str:
    """A fault's text: its cause, then its next step (the code is shown beside it, not in it)."""
    return f"{cause}; {NEXT_STEP[code]}"


CFG = Config()
N = CFG.wheel.positions_per_clean


# ---------------------------------------------------------------------------------- helpers
def records(bench: SimBench):
    return sorted(bench.controller.store.attempts(), key=lambda r: r.id)


def assert_safe_fault(bench: SimBench, code: str) -> None:
    w = bench.world
    assert bench.state == "fault"
    assert bench.controller.faults.code is not None and bench.controller.faults.code.value == code
    assert not w.stepper_enabled, "stepper driver must be disabled in fault"
    assert not w.pump_on, "pump must be off in fault"
    green, amber, red = w.leds()
    assert red, "fault light on"
    assert not w.prompting
    assert bench.status().fault is FaultCode(code)


def assert_safe_idle(bench: SimBench) -> None:
    w = bench.world
    assert bench.state == "idle"
    assert bench.controller.faults.code is None
    assert not w.stepper_enabled and not w.pump_on
    assert w.leds() == (True, False, False), "ready light only"


def assert_one_record_per_attempt(bench: SimBench) -> None:
    recs = records(bench)
    assert len(recs) == len(bench.results())
    assert all(r.outcome is not None for r in recs)


def acknowledge(bench: SimBench) -> None:
    """The technician presses the panel button briefly."""
    bench.world.press_button(0.1)
    bench.run_for(0.5)


def recover_and_clean(bench: SimBench, *, wet: bool = False, connector: str = "female") -> None:
    """A following clean succeeds on fresh ribbon, and nothing was ever violated."""
    w = bench.world
    swipes, prompts = len(w.swipes), w.prompts
    result = bench.clean(connector, wet=wet)
    assert result is not None and result.outcome == "cleaned", result
    assert w.prompts == prompts + 1 and len(w.swipes) == swipes + 1
    s = w.swipes[-1]
    assert s.prompted and s.fresh
    assert w.fitted.drops.get(s.section, 0) == (1 if wet else 0)
    assert_safe_idle(bench)
    assert_one_record_per_attempt(bench)
    assert w.violations == []
    assert w.touched_twice() == []


def start_and_wait(bench: SimBench, state: str, *, wet: bool = False, connector: str = "female") -> None:
    w = bench.world
    w.set_mode(wet)
    w.present(connector)
    if state == "swipe_now":
        assert bench.wait_until(lambda: w.prompting, 20)
    else:
        assert bench.wait_until(lambda: bench.state == state, 20), bench.state


# ---------------------------------------------------------------------------------- wheel
def test_jam(bench):
    w = bench.world
    w.inject(Fault.JAM)
    result = bench.clean("female", remove=False)
    assert result.outcome == "failed" and result.reason is Reason.JAM
    assert_safe_fault(bench, "jam")
    assert w.positions_total == 0 and w.prompts == 0 and w.swipes == []
    rec = records(bench)[-1]
    assert rec.outcome == "failed" and rec.reason == Reason.JAM.value
    assert rec.positions == N, "the reserved ribbon stays counted as used (never under-counted)"
    # removing the connector does not clear a fault
    w.remove()
    bench.run_for(2)
    assert_safe_fault(bench, "jam")
    # repair, acknowledge, carry on
    w.clear(Fault.JAM)
    acknowledge(bench)
    assert_safe_idle(bench)
    recover_and_clean(bench)


def test_slip_within_the_jam_margin_still_cleans(bench):
    w = bench.world
    margin = CFG.wheel.max_steps_per_position - CFG.wheel.steps_per_position
    w.inject(Fault.SLIP, steps=margin // 2)
    swipes = len(w.swipes)
    result = bench.clean("female")
    assert result.outcome == "cleaned", result
    advanced = bench.heard(WheelAdvanced)[-1]
    assert advanced.positions == N
    assert advanced.steps == N * CFG.wheel.steps_per_position + margin // 2, (
        "the firmware stepped until the index confirmed"
    )
    assert w.positions_total == N
    s = w.swipes[swipes]
    assert s.prompted and s.fresh and s.section == N
    assert_safe_idle(bench)
    assert w.violations == []
    recover_and_clean(bench)


def test_slip_beyond_the_jam_margin_is_a_jam(bench):
    w = bench.world
    margin = CFG.wheel.max_steps_per_position - CFG.wheel.steps_per_position
    w.inject(Fault.SLIP, steps=margin + 8)
    result = bench.clean("female", remove=False)
    assert result.outcome == "failed" and result.reason is Reason.JAM
    assert_safe_fault(bench, "jam")
    assert w.prompts == 0 and w.swipes == []
    w.remove()
    w.clear(Fault.SLIP)
    acknowledge(bench)
    assert_safe_idle(bench)
    recover_and_clean(bench)


def test_missing_index_pulse_stops_the_wheel_as_a_jam(bench):
    """A position not seen by the index sensor is not counted: the firmware cannot confirm the
    ribbon moved, so it must not offer a swipe."""
    w = bench.world
    w.inject(Fault.MISSING_INDEX, count=1)
    result = bench.clean("female", remove=False)
    assert result.outcome == "failed" and result.reason is Reason.JAM
    assert result.positions < N
    assert_safe_fault(bench, "jam")
    assert w.prompts == 0 and w.swipes == []
    w.remove()
    w.clear(Fault.MISSING_INDEX)
    acknowledge(bench)
    assert_safe_idle(bench)
    recover_and_clean(bench)


def test_index_sensor_stuck_is_a_jam(bench):
    w = bench.world
    w.inject(Fault.STUCK_SENSOR, sensor="index", active=True)
    result = bench.clean("female", remove=False)
    assert result.outcome == "failed" and result.reason is Reason.JAM
    assert_safe_fault(bench, "jam")
    assert w.prompts == 0
    w.remove()
    w.clear(Fault.STUCK_SENSOR)
    acknowledge(bench)
    recover_and_clean(bench)


def test_empty_ribbon_is_never_offered(bench):
    """The fitted cassette's ribbon runs out earlier than the books say (a short or mislabelled
    cassette). The physically safe outcome: no swipe-now past the end of the ribbon — the
    station refuses or faults, and does not claim a clean."""
    w = bench.world
    assert bench.clean("female").outcome == "cleaned"
    w.inject(Fault.EMPTY_RIBBON, left=0)
    prompts = w.prompts
    result = bench.clean("female", remove=False)
    assert w.prompts == prompts, "swipe-now was given on ribbon that does not exist"
    assert w.violations == []
    assert result is None or result.outcome != "cleaned"
    assert not w.stepper_enabled and not w.pump_on


# ---------------------------------------------------------------------------------- fluid
def test_pump_clog_is_a_no_drop_fault(bench):
    w = bench.world
    store = bench.controller.store
    w.inject(Fault.PUMP_CLOG)
    fluid_before = store.fluid()[0]
    result = bench.clean("female", wet=True, remove=False)
    assert result.outcome == "failed" and result.reason is Reason.NO_DROP
    assert_safe_fault(bench, "no_drop")
    assert bench.controller.faults.detail == explained(
        FaultCode.NO_DROP, "nothing reached the drop sensor after the pump's pulse"
    )
    rec = records(bench)[-1]
    assert rec.outcome == "failed" and rec.reason == Reason.NO_DROP.value and rec.positions == N
    assert w.drops_total == 0, "nothing left the nozzle"
    assert store.fluid()[0] == fluid_before + 1, "the books count the attempted drop (never under-count)"
    assert w.prompts == 0, "no wet-to-dry swipe-now on a dry section"
    w.remove()
    w.clear(Fault.PUMP_CLOG)
    acknowledge(bench)
    assert_safe_idle(bench)
    recover_and_clean(bench, wet=True)
    assert w.drops_total == 1


def test_drop_sensor_stuck_is_a_no_drop_fault(bench):
    w = bench.world
    w.inject(Fault.STUCK_SENSOR, sensor="drop", active=True)
    result = bench.clean("female", wet=True, remove=False)
    assert result.outcome == "failed" and result.reason is Reason.NO_DROP
    assert_safe_fault(bench, "no_drop")
    assert w.prompts == 0 and w.drops_total == 1
    w.remove()
    w.clear(Fault.STUCK_SENSOR)
    acknowledge(bench)
    recover_and_clean(bench, wet=True)


def test_empty_reservoir_refuses_wet_and_allows_dry(bench):
    w = bench.world
    w.inject(Fault.EMPTY_RESERVOIR)
    steps, drops = w.steps_total, w.drops_total
    result = bench.clean("female", wet=True)
    assert result.outcome == "rejected" and result.reason is Reason.FLUID_LOW
    assert records(bench)[-1].reason == Reason.FLUID_LOW.value
    assert w.steps_total == steps and w.drops_total == drops and w.prompts == 0
    assert_safe_idle(bench)  # not a fault: the operator can switch to DRY
    recover_and_clean(bench, wet=False)
    w.clear(Fault.EMPTY_RESERVOIR)  # refill
    recover_and_clean(bench, wet=True)


# ---------------------------------------------------------------------------------- sensors
@pytest.mark.parametrize("gate", ["gate_a", "gate_b"])
def test_gate_stuck_active_before_a_clean_is_refused_before_any_ribbon_is_used(bench, gate):
    w = bench.world
    section = w.fitted.position
    w.inject(Fault.STUCK_SENSOR, sensor=gate, active=True)
    result = bench.clean("female")
    assert result.outcome == "rejected" and result.reason is Reason.GATE_BLOCKED_EARLY
    assert records(bench)[-1].reason == Reason.GATE_BLOCKED_EARLY.value
    assert w.fitted.position == section, "nothing consumed for a swipe that could never be judged"
    assert_safe_idle(bench)
    assert w.violations == []
    w.clear(Fault.STUCK_SENSOR)
    recover_and_clean(bench)
    assert w.swipes[-1].section == section + N


@pytest.mark.parametrize(
    "gate, reason",
    # gate A going blocked with the connector seated is what a pull begun too early looks like
    # (issue 12): the station cannot tell it from a gate A sticking at that moment
    [("gate_a", Reason.TOO_EARLY), ("gate_b", Reason.GATE_BLOCKED)],
)
def test_gate_that_sticks_once_the_ribbon_is_advanced_fails_the_clean(bench, gate, reason):
    w = bench.world
    w.present("female")
    assert bench.wait_until(lambda: bench.state == "advancing", 5)
    w.inject(Fault.STUCK_SENSOR, sensor=gate, active=True)
    assert bench.wait_until(lambda: bench.last_result() is not None, 30)
    result = bench.last_result()
    assert result.outcome == "failed" and result.reason is reason and result.positions == N
    section = w.fitted.position
    w.remove()
    bench.run_for(1.5)
    assert_safe_idle(bench)
    assert w.violations == []
    w.clear(Fault.STUCK_SENSOR)
    recover_and_clean(bench)
    assert w.swipes[-1].section == section + N, "the section of the blocked attempt is not offered again"


def test_connector_sensor_stuck_inactive_starts_nothing(bench):
    w = bench.world
    w.inject(Fault.STUCK_SENSOR, sensor="connector", active=False)
    w.present("female")
    bench.run_for(10)
    assert_safe_idle(bench)
    assert records(bench) == [] and w.steps_total == 0 and w.prompts == 0
    w.remove()
    w.clear(Fault.STUCK_SENSOR)
    bench.run_for(0.5)
    recover_and_clean(bench)


def test_connector_sensor_stuck_active_after_a_clean_starts_nothing_more(bench):
    w = bench.world
    assert bench.clean("female", remove=False).outcome == "cleaned"
    w.inject(Fault.STUCK_SENSOR, sensor="connector", active=True)
    w.remove()
    steps, prompts, n = w.steps_total, w.prompts, len(records(bench))
    bench.run_for(30)
    assert bench.state == "done", "the station waits for the connector to be taken away"
    assert w.steps_total == steps and w.prompts == prompts and len(records(bench)) == n
    assert not w.stepper_enabled and not w.pump_on
    w.clear(Fault.STUCK_SENSOR)
    assert bench.wait_until(lambda: bench.state == "idle", 5)
    recover_and_clean(bench)


def test_cassette_switch_stuck_open_is_no_cassette(bench):
    w = bench.world
    w.inject(Fault.STUCK_SENSOR, sensor="cassette", active=False)
    bench.run_for(0.5)
    assert_safe_fault(bench, "no_cassette")
    w.present("female")
    bench.run_for(5)
    assert w.steps_total == 0 and w.prompts == 0
    w.remove()
    w.clear(Fault.STUCK_SENSOR)
    bench.run_for(0.5)
    assert_safe_idle(bench)  # the cassette is seen again: a missing cassette is no malfunction
    recover_and_clean(bench)


def test_gate_bounce_is_filtered(bench):
    w = bench.world
    w.inject(Fault.GATE_BOUNCE)
    for wet in (False, True):
        result = bench.clean("female", wet=wet)
        assert result.outcome == "cleaned", result
        assert result.pass_s == pytest.approx(0.6, abs=0.01)
    assert_safe_idle(bench)
    assert w.violations == []
    # bounce does not hide a real error either
    result = bench.clean("female", direction="up")
    assert result.outcome == "failed" and result.reason is Reason.REVERSED
    w.clear(Fault.GATE_BOUNCE)
    recover_and_clean(bench)


# ---------------------------------------------------------------------------------- pulled out
@pytest.mark.parametrize("when", ["advancing", "swipe_now"])
def test_cassette_pulled_mid_cycle(bench, when):
    w = bench.world
    start_and_wait(bench, when)
    if when == "advancing":
        bench.run_for(0.05)
        assert w.stepper_enabled
    w.inject(Fault.CASSETTE_PULLED)
    bench.run_for(0.01)
    assert_safe_fault(bench, "cassette_pulled")
    result = bench.last_result()
    assert result.outcome == "failed" and result.reason is Reason.CASSETTE_PULLED
    rec = records(bench)[-1]
    assert rec.outcome == "failed" and rec.positions == N
    steps = w.steps_total
    bench.run_for(2)
    assert w.steps_total == steps, "no step pulses after the fault"
    # the button does not clear it while the cassette is still out
    acknowledge(bench)
    assert_safe_fault(bench, "cassette_pulled")
    # refit the same cassette: still a fault until acknowledged
    w.remove()
    w.fit_cassette("standard")
    bench.run_for(0.5)
    assert_safe_fault(bench, "cassette_pulled")
    acknowledge(bench)
    assert_safe_idle(bench)
    recover_and_clean(bench)


@pytest.mark.parametrize(
    "when, wet, reasons",
    [
        ("advancing", False, {Reason.REMOVED_MID_CYCLE}),
        ("dispensing", True, {Reason.REMOVED_MID_CYCLE}),
        ("swipe_now", False, {Reason.REMOVED_MID_CYCLE}),
        ("swiping", False, {Reason.PARTIAL, Reason.REMOVED_MID_CYCLE}),
    ],
)
def test_connector_pulled_mid_cycle(bench, when, wet, reasons):
    w = bench.world
    if when == "swiping":
        start_and_wait(bench, "swipe_now")
        bench.run_for(0.3)
        w.swipe(duration_s=1.0)
        bench.run_for(0.5)  # past gate A, not yet at gate B
        assert bench.state == "swiping"
    else:
        start_and_wait(bench, when, wet=wet)
    w.inject(Fault.CONNECTOR_PULLED)
    assert bench.wait_until(lambda: bench.last_result() is not None, 10)
    result = bench.last_result()
    assert result.outcome == "failed"
    assert result.reason in reasons
    assert records(bench)[-1].positions == N
    assert w.positions_total == N, "a started advance is finished, never left half-way"
    assert not w.pump_on
    assert bench.wait_until(lambda: bench.state == "idle", 10)
    assert_safe_idle(bench)
    assert w.violations == []
    recover_and_clean(bench)


# ---------------------------------------------------------------------------------- software
def test_unexpected_exception_in_a_handler_is_an_internal_fault(bench, monkeypatch):
    """A bug (not a storage error) while the connector is being identified: the books of the
    fitted cassette cannot be read once."""
    store = bench.controller.store
    real = store.cassette
    calls = {"n": 0}

    def cassette_once_broken(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("injected bug")
        return real(*args, **kwargs)

    monkeypatch.setattr(store, "cassette", cassette_once_broken)
    w = bench.world
    w.present("female")
    bench.run_for(1.0)
    assert calls["n"] >= 1
    assert_safe_fault(bench, "internal")
    # what a technician reads: the error as raised, then what to do
    assert bench.controller.faults.detail == explained(FaultCode.INTERNAL, "unexpected RuntimeError: injected bug")
    assert w.steps_total == 0 and w.prompts == 0
    rec = records(bench)[-1]
    assert rec.outcome == "rejected" and rec.positions == 0, "nothing consumed, and the attempt is closed"
    assert_one_record_per_attempt(bench)
    # the loop keeps serving
    ran = []
    bench.loop.post(lambda: ran.append(bench.status().state))
    bench.run_for(0.1)
    assert ran == ["fault"]
    w.remove()
    acknowledge(bench)
    assert_safe_idle(bench)
    recover_and_clean(bench)


def test_storage_error_in_a_handler_is_a_storage_fault(bench, monkeypatch):
    store = bench.controller.store
    real = store.reserve_positions
    calls = {"n": 0}

    def reserve_once_broken(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 1:
            raise StoreError("database is locked (injected)")
        return real(*args, **kwargs)

    monkeypatch.setattr(store, "reserve_positions", reserve_once_broken)
    w = bench.world
    w.present("female")
    bench.run_for(1.0)
    assert calls["n"] == 1
    assert_safe_fault(bench, "storage")
    assert w.steps_total == 0, "the wheel never moves without its reservation on disk"
    assert w.prompts == 0
    assert_one_record_per_attempt(bench)
    # the loop keeps running and answering
    w.remove()
    bench.run_for(2)
    ran = []
    bench.loop.post(lambda: ran.append(bench.status()))
    bench.run_for(0.1)
    assert ran and ran[0].state == "fault" and ran[0].fault is FaultCode.STORAGE
    assert_safe_fault(bench, "storage")
    assert w.violations == []


# ---------------------------------------------------------------------------- guide-pin sensors while ready
def test_a_guide_pin_sensor_that_sticks_while_ready_is_a_sensor_fault_once_it_has_settled(bench):
    w, c = bench.world, bench.controller
    wait = bench.config.guide_pins.timeout_s
    w.inject(Fault.STUCK_SENSOR, sensor="pin_right", active=True)
    bench.run_for(wait * 0.9)
    assert bench.state == "idle", "a connector may be on its way in or out: look again once it has settled"
    bench.run_for(wait * 0.2)
    assert_safe_fault(bench, "sensor")
    assert c.faults.detail == explained(FaultCode.SENSOR, "a guide-pin sensor reads a pin with no connector")
    w.clear(Fault.STUCK_SENSOR)
    acknowledge(bench)
    assert_safe_idle(bench)
    recover_and_clean(bench)


def test_a_jog_started_before_the_stuck_pin_check_runs_finishes_and_the_sensor_is_reported_after(bench):
    """The check looks only while the station is ready: a jog that began in between is not cut
    short (the guide is empty, nothing can be cleaned); the station looks again when it is
    ready once more."""
    w, c = bench.world, bench.controller
    w.inject(Fault.STUCK_SENSOR, sensor="pin_left", active=True)
    bench.run_for(0.001)
    results = []
    c.jobs.jog(3, "console:test", results.append)
    assert bench.state == "servicing"
    bench.wait_until(lambda: bool(results), 10)
    assert results[0].ok and results[0].error == "", results
    assert w.positions_total == 3
    bench.run_for(bench.config.guide_pins.timeout_s + 0.05)
    assert_safe_fault(bench, "sensor")


def test_a_guide_pin_edge_while_swipe_now_is_shown_does_not_stop_the_swipe_deadline(bench):
    """Only while ready does a pin edge start the stuck-sensor check; at swipe-now the state's
    own timer (the swipe deadline) must not be displaced by it."""
    w = bench.world
    w.present("female")
    assert bench.wait_until(lambda: w.prompting, 20)
    w.inject(Fault.STUCK_SENSOR, sensor="pin_left", active=True)
    bench.wait_until(lambda: bench.state != "swipe_ready", bench.config.swipe.timeout_s + 5)
    assert bench.last_result().outcome == "failed"
    assert bench.last_result().reason is Reason.NO_SWIPE


# ---------------------------------------------------------------------------- a fault's record, cause and end
def _audits(bench: SimBench, kind: str) -> list[dict]:
    return [dict(r) for r in reversed(bench.controller.store.audit_log(1000)) if r["kind"] == kind]


def test_a_fault_is_audited_and_announced_with_its_detail(bench):
    w, c = bench.world, bench.controller
    w.inject(Fault.JAM)
    bench.clean("female", remove=False)
    assert_safe_fault(bench, "jam")
    detail = c.faults.detail
    (moved,) = bench.heard(WheelAdvanced)
    # the example, once repeating its code and with no next step
    assert detail == (
        f"wheel confirmed 0 of 3 positions after {moved.steps} steps; "
        "clear the wheel (and check its index sensor), then press the button"
    )
    (row,) = _audits(bench, "fault")
    assert (row["action"], row["detail"], row["source"]) == ("jam", detail, "station")
    assert row["t"] == pytest.approx(c.wall())
    assert bench.heard(FaultRaised) == [FaultRaised(FaultCode.JAM, detail)]
    w.remove()
    w.clear(Fault.JAM)
    acknowledge(bench)
    assert bench.heard(FaultCleared) == [FaultCleared(FaultCode.JAM)]
    assert c.faults.detail == "" and c.faults.code is None
    assert bench.status().fault is None
    panel = [r for r in _audits(bench, "maintenance") if r["action"] == "fault_clear"]
    assert [(r["source"], json.loads(r["detail"])) for r in panel] == [("panel", {"fault": "jam"})]


def test_a_more_serious_fault_replaces_the_cause_a_lesser_or_equal_one_does_not(bench):
    w, c = bench.world, bench.controller
    w.remove_cassette()
    bench.run_for(0.5)
    assert_safe_fault(bench, "no_cassette")
    c.startup_fault(FaultCode.SENSOR, "first sensor problem")
    bench.run_for(0.1)
    first = explained(FaultCode.SENSOR, "first sensor problem")
    assert (c.faults.code, c.faults.detail) == (FaultCode.SENSOR, first)
    c.startup_fault(FaultCode.SENSOR, "second sensor problem")  # as serious: the first cause stays
    c.startup_fault(FaultCode.NO_DROP, "a lesser one")
    bench.run_for(0.1)
    assert (c.faults.code, c.faults.detail) == (FaultCode.SENSOR, first)
    empty = explained(FaultCode.NO_CASSETTE, "the cradle is empty")
    faults = [(r["action"], r["detail"]) for r in _audits(bench, "fault")]
    assert faults == [("no_cassette", empty), ("sensor", first)]
    assert bench.heard(FaultRaised) == [FaultRaised(FaultCode.NO_CASSETTE, empty), FaultRaised(FaultCode.SENSOR, first)]
    w.fit_cassette("standard")  # the cassette is back, but the sensor fault is not a missing cassette
    bench.run_for(0.5)
    assert_safe_fault(bench, "sensor")
    acknowledge(bench)
    assert_safe_idle(bench)


def test_pulling_the_cassette_to_free_a_jam_does_not_clear_the_jam(bench):
    """The technician pulls the cassette to free the wheel and refits it: refitting clears a
    missing cassette by itself, but the jam still needs its acknowledgement."""
    w = bench.world
    w.inject(Fault.JAM)
    bench.clean("female")
    assert_safe_fault(bench, "jam")
    w.remove_cassette()
    bench.run_for(0.5)
    assert_safe_fault(bench, "jam")
    w.clear(Fault.JAM)
    w.fit_cassette("standard")
    bench.run_for(0.5)
    assert_safe_fault(bench, "jam")
    acknowledge(bench)
    assert_safe_idle(bench)
    recover_and_clean(bench)


def test_a_missing_cassette_is_named_and_its_removal_time_recorded(bench):
    w, c = bench.world, bench.controller
    w.remove_cassette()
    bench.run_for(0.5)
    assert (c.faults.code, c.faults.detail) == (
        FaultCode.NO_CASSETTE,
        "the cradle is empty; fit a cassette (the fault clears by itself)",
    )
    removed = c.store._db.execute("SELECT removed_at FROM cassette_fits ORDER BY id DESC LIMIT 1").fetchone()[0]
    assert removed == pytest.approx(c.wall(), abs=1.0)
    w.fit_cassette("standard")
    bench.run_for(0.5)
    assert_safe_idle(bench)
    w.present("female")
    assert bench.wait_until(lambda: bench.state == "advancing", 5)
    w.remove_cassette()
    bench.run_for(0.5)
    assert (c.faults.code, c.faults.detail) == (
        FaultCode.CASSETTE_PULLED,
        "cassette removed during a clean; refit the cassette, then press the button",
    )


def test_with_one_position_per_clean_a_fault_after_the_reservation_is_a_failure(tmp_path):
    config = Config().replace("wheel", positions_per_clean=1)
    with SimBench(config, state_dir=tmp_path) as bench:
        w = bench.world
        w.present("female")
        assert bench.wait_until(lambda: bench.state == "advancing", 5)
        w.remove_cassette()
        bench.run_for(0.5)
        assert_safe_fault(bench, "cassette_pulled")
        assert (bench.last_result().outcome, bench.last_result().reason) == (
            "failed",
            Reason.CASSETTE_PULLED,
        )


def test_a_storage_fault_clears_only_once_a_durable_write_goes_through(bench, monkeypatch):
    c = bench.controller
    c.startup_fault(FaultCode.STORAGE, "disk full (test)")
    bench.run_for(0.1)
    real = c.store.audit

    def broken(*args, **kwargs):
        raise StoreError("disk full (still)")

    monkeypatch.setattr(c.store, "audit", broken)
    still = f"fault storage still present: {explained(FaultCode.STORAGE, 'disk full (test)')}"
    assert c.request_fault_clear("console:test").error == still
    assert bench.state == "fault"
    monkeypatch.setattr(c.store, "audit", real)
    assert c.request_fault_clear("console:test").ok
    assert_safe_idle(bench)
    probes = [r for r in _audits(bench, "maintenance") if r["action"] == "storage_check"]
    assert len(probes) == 1 and probes[0]["t"] == pytest.approx(c.wall(), abs=1.0)


# ---------------------------------------------------------------------------- a short press, phase by phase
@pytest.mark.parametrize(
    "phase, outcome, reason",
    [
        ("identifying", "rejected", Reason.CANCELLED_EARLY),
        ("advancing", "failed", Reason.CANCELLED),
        ("dispensing", "failed", Reason.CANCELLED),
        ("swipe_ready", "failed", Reason.CANCELLED),
        ("swiping", "failed", Reason.CANCELLED),
    ],
)
def test_a_short_press_cancels_the_clean_in_every_phase(bench, phase, outcome, reason):
    w = bench.world
    w.set_mode(phase == "dispensing")
    w.present("female")
    if phase == "swiping":
        assert bench.wait_until(lambda: w.prompting, 20)
        w.swipe(direction="down", duration_s=1.0)
        bench.run_for(0.3)
    else:
        assert bench.wait_until(lambda: bench.state == phase, 20)
    assert bench.state == phase
    w.press_button(0.1)
    bench.wait_until(lambda: bench.state in ("done", "idle", "fault"), 10)
    result = bench.last_result()
    assert (result.outcome, result.reason) == (outcome, reason)
    assert records(bench)[-1].outcome == outcome
    w.remove()
    bench.run_for(1.0)
    assert_safe_idle(bench)
    assert w.violations == []


def test_a_cancel_pressed_as_the_drop_is_placed_without_a_drop_sensor_is_just_a_cancel(tmp_path):
    """Without a drop sensor the drop counts as placed on the next loop turn; a short press
    handled in between ends the clean first, and the late 'drop placed' must do nothing."""
    config = Config().replace("dispenser", drop_sensor_fitted=False)
    with SimBench(config, state_dir=tmp_path) as bench:
        w, c = bench.world, bench.controller

        def press_as_the_drop_comes(event):
            if isinstance(event, StateChanged) and event.state == "dispensing":
                # a short press (the button's two edges), handled before the drop counts as placed
                now = bench.loop.now()
                c.post_edge(SensorEdge(Sensor.BUTTON, True, now))
                c.post_edge(SensorEdge(Sensor.BUTTON, False, now))

        c.events.subscribe(press_as_the_drop_comes)
        w.set_mode(True)
        w.present("female")
        bench.wait_until(lambda: bench.state in ("done", "fault"), 20)
        assert bench.state == "done", (c.faults.code, c.faults.detail)
        assert (bench.last_result().outcome, bench.last_result().reason) == ("failed", Reason.CANCELLED)
        assert not w.prompting and w.violations == []


def test_the_startup_checks_name_each_implausible_sensor(bench):
    w, c = bench.world, bench.controller
    assert sensor_problems(c.hardware.sensors) == []
    for sensor in ("gate_a", "gate_b", "pin_right", "drop"):
        w.inject(Fault.STUCK_SENSOR, sensor=sensor, active=True)
    assert sensor_problems(c.hardware.sensors) == [
        "swipe gate A reads blocked with no swipe",
        "swipe gate B reads blocked with no swipe",
        "a guide-pin sensor reads a pin with no connector",
        "the drop sensor reads a drop with the pump off",
    ]
    w.clear(Fault.STUCK_SENSOR)
    w.inject(Fault.STUCK_SENSOR, sensor="pin_left", active=True)
    assert sensor_problems(c.hardware.sensors) == ["a guide-pin sensor reads a pin with no connector"]
    w.clear(Fault.STUCK_SENSOR)
    w.present("male")  # pins with a connector: plausible
    assert sensor_problems(c.hardware.sensors) == []


@pytest.mark.parametrize("kind, cassette", [("male", "male_mt"), ("bent", "standard"), ("male", "standard")])
def test_a_slow_withdrawal_with_the_pins_last_is_not_a_sensor_fault(bench, kind, cassette):
    """Presence lets go first, the guide pins up to just under the guide-pin timeout later
    (a tilted, slow pull): not a stuck sensor."""
    w = bench.world
    if cassette == "male_mt":
        w.remove_cassette()
        bench.run_for(0.5)
        w.fit_cassette("m", male_mt=True)
        bench.run_for(0.5)
    bench.clean(kind, remove=False)
    lag = bench.config.guide_pins.timeout_s * 0.9
    w.remove(pins_lag_s=lag)
    bench.run_for(lag + bench.config.guide_pins.timeout_s + 0.5)
    assert_safe_idle(bench)
    assert c_problems(bench) == []
    recover_and_clean(bench, connector="male" if cassette == "male_mt" else "female")


def c_problems(bench: SimBench) -> list[str]:
    return sensor_problems(bench.controller.hardware.sensors)


def test_a_fault_clear_that_cannot_be_recorded_does_not_happen(bench, monkeypatch):
    """Rule 8: the acknowledgement is audited before the station leaves the fault state."""
    c = bench.controller
    c.startup_fault(FaultCode.SENSOR, "test: cause already gone")
    bench.run_for(0.1)

    def broken(*args, **kwargs):
        raise StoreError("disk full (test)")

    monkeypatch.setattr(c.store, "audit", broken)
    with pytest.raises(StoreError):
        c.request_fault_clear("console:test")  # the console answers with the storage error
    assert_safe_fault(bench, "sensor")
    bench.world.press_button(0.1)  # the panel: the failed write becomes a storage fault
    bench.run_for(0.5)
    assert_safe_fault(bench, "storage")


def test_a_missing_cassette_clearing_itself_is_not_recorded_as_an_acknowledgement(bench):
    c, w = bench.controller, bench.world
    w.remove_cassette()  # before anyone has acknowledged anything
    bench.run_for(0.5)
    w.fit_cassette("standard")
    bench.run_for(0.5)
    assert_safe_idle(bench)
    c.startup_fault(FaultCode.SENSOR, "test: cause already gone")
    bench.run_for(0.1)
    assert c.request_fault_clear("console:test").ok
    w.remove_cassette()
    bench.run_for(0.5)
    w.fit_cassette("standard")  # the no-cassette fault clears by itself: nobody acknowledged it
    bench.run_for(0.5)
    assert_safe_idle(bench)
    clears = [
        (r["source"], json.loads(r["detail"])) for r in _audits(bench, "maintenance") if r["action"] == "fault_clear"
    ]
    assert clears == [("console:test", {"fault": "sensor"})]


def test_a_bug_after_the_ribbon_is_reserved_fails_the_clean_as_a_station_fault(bench, monkeypatch):
    w, c = bench.world, bench.controller
    real = c.hardware.dispenser.pulse

    def broken_pulse():
        raise RuntimeError("pump driver bug (test)")

    monkeypatch.setattr(c.hardware.dispenser, "pulse", broken_pulse)
    result = bench.clean("female", wet=True, remove=False)
    assert_safe_fault(bench, "internal")
    assert (result.outcome, result.reason) == ("failed", Reason.FAULT)
    assert records(bench)[-1].reason == "station fault"
    assert c.attempt is None
    monkeypatch.setattr(c.hardware.dispenser, "pulse", real)
    w.remove()
    acknowledge(bench)
    assert_safe_idle(bench)
    recover_and_clean(bench, wet=True)


def test_a_fault_mid_clean_is_safe_even_when_its_record_cannot_be_written(bench, monkeypatch):
    """The cassette is pulled while the wheel turns and the disk fails at the same moment: the
    outputs are made safe, the fault is entered all the same, and the failed write makes it a
    storage fault (the open attempt is closed as interrupted at the next start)."""
    w, c = bench.world, bench.controller
    w.present("female")
    assert bench.wait_until(lambda: bench.state == "advancing", 5)

    def broken(*args, **kwargs):
        raise StoreError("disk gone (test)")

    monkeypatch.setattr(c.store, "finish_attempt", broken)
    w.remove_cassette()
    bench.run_for(0.5)
    assert_safe_fault(bench, "storage")  # the more serious of the two, so its clear checks the disk
    assert c.faults.detail.startswith("could not record the end of attempt ")
    assert c.faults.detail.endswith(f"; {NEXT_STEP[FaultCode.STORAGE]}")
    assert [e.code for e in bench.heard(FaultRaised)] == [FaultCode.CASSETTE_PULLED, FaultCode.STORAGE]
    assert c.attempt is None


def test_an_index_pulse_far_too_soon_is_named_in_the_fault(bench):
    w, c = bench.world, bench.controller
    w.present("female")
    assert bench.wait_until(lambda: w.positions_total >= 1 and bench.state == "advancing", 10)
    bench.run_for(0.02)
    w.inject(Fault.STUCK_SENSOR, sensor="index", active=True)  # the index reads a slot at once
    bench.wait_until(lambda: bench.state == "fault", 10)
    assert_safe_fault(bench, "jam")
    assert bench.last_result().reason is Reason.INDEX_FAULT
    moved = bench.heard(WheelAdvanced)[-1]
    assert c.faults.detail == explained(
        FaultCode.JAM, f"index pulse far too soon: wheel confirmed 1 of 3 positions after {moved.steps} steps"
    )


def test_a_wheel_driver_reporting_a_short_move_fails_the_clean_as_a_station_fault(bench, monkeypatch):
    """Defence in depth: the motion layer says DONE but confirms fewer positions than asked (a
    driver bug): never swipe-now; the clean fails as a station fault."""
    from station.ports import MotionResult, MotionStatus

    w, c = bench.world, bench.controller
    wheel = c.hardware.wheel

    def short_move(positions, done):
        c.loop.call_later(0.3, lambda: done(MotionResult(MotionStatus.DONE, positions - 1, 128, 0.3)))

    monkeypatch.setattr(wheel, "advance", short_move)
    result = bench.clean("female", remove=False)
    assert (result.outcome, result.reason) == ("failed", Reason.FAULT)
    assert_safe_fault(bench, "internal")
    assert c.faults.detail == explained(FaultCode.INTERNAL, "wheel move ended done at 2 of 3 positions")
    assert w.prompts == 0


# ---------------------------------------------------------------------------------- every fault's text
def _into_fault(bench: SimBench, code: FaultCode, monkeypatch) -> Callable[[], None]:
    """Put the station in the fault `code` the way it happens (the physical cause, or the
    broken part the station meets), and return what its next step tells a person to do."""
    w, c = bench.world, bench.controller
    if code is FaultCode.JAM:
        w.inject(Fault.JAM)
        bench.clean("female", remove=False)
        return lambda: (w.remove(), w.clear(Fault.JAM), acknowledge(bench))
    if code is FaultCode.NO_CASSETTE:
        w.remove_cassette()
        bench.run_for(0.5)
        return lambda: (w.fit_cassette("standard"), bench.run_for(0.5))  # clears by itself: no press
    if code is FaultCode.CASSETTE_PULLED:
        w.present("female")
        assert bench.wait_until(lambda: bench.state == "advancing", 5)
        w.remove_cassette()
        bench.run_for(0.5)
        return lambda: (w.remove(), w.fit_cassette("standard"), acknowledge(bench))
    if code is FaultCode.NO_DROP:
        w.inject(Fault.PUMP_CLOG)
        bench.clean("female", wet=True, remove=False)
        return lambda: (w.remove(), w.clear(Fault.PUMP_CLOG), acknowledge(bench))
    if code in (FaultCode.INTERNAL, FaultCode.STORAGE):
        store = c.store
        name = "cassette" if code is FaultCode.INTERNAL else "reserve_positions"
        error = RuntimeError("injected bug") if code is FaultCode.INTERNAL else StoreError("disk I/O error (injected)")
        real, calls = getattr(store, name), []

        def broken_once(*args, **kwargs):
            calls.append(args)
            if len(calls) == 1:
                raise error
            return real(*args, **kwargs)

        monkeypatch.setattr(store, name, broken_once)
        w.present("female")
        bench.run_for(1.0)
        assert calls, "the broken part was met"
        return lambda: (w.remove(), acknowledge(bench))
    stuck = "gate_a" if code is FaultCode.STARTUP else "pin_right"
    w.inject(Fault.STUCK_SENSOR, sensor=stuck, active=True)
    if code is FaultCode.STARTUP:  # what the service does with a start-up check's problem
        c.startup_fault(FaultCode.STARTUP, sensor_problems(c.hardware.sensors)[0])
        bench.run_for(0.1)
    else:
        bench.run_for(bench.config.guide_pins.timeout_s * 1.2)
    return lambda: (w.clear(Fault.STUCK_SENSOR), acknowledge(bench))


@pytest.mark.parametrize("code", list(FaultCode))
def test_every_fault_says_its_cause_and_its_next_step_once_without_repeating_its_code(bench, monkeypatch, code):
    """Issue 12: `FAULT jam: jam: confirmed 0 of 3 positions after 97 steps` said its code twice
    and no next step. Each fault, raised the way it happens, reads `<code>: <cause>; <next step>`
    wherever it is shown (the detail, the event, the audit row, the simulator's line), and the
    next step, followed, ends the fault."""
    c = bench.controller
    follow = _into_fault(bench, code, monkeypatch)
    assert_safe_fault(bench, code.value)
    text, step = c.faults.detail, NEXT_STEP[code]
    assert text.endswith(f"; {step}") and text.count(step) == 1, text
    cause = text.removesuffix(f"; {step}")
    assert cause and not cause.endswith(";"), text
    words = code.value.replace("_", " ")
    if code is FaultCode.SENSOR:  # the part named is a sensor: the code must not be a label
        assert f"{words}:" not in text.lower(), text
    else:
        assert re.search(rf"\b{words}\b", text, re.IGNORECASE) is None, text
    assert bench.heard(FaultRaised)[-1] == FaultRaised(code, text)
    assert _audits(bench, "fault")[-1]["detail"] == text
    assert describe(FaultRaised(code, text)) == f"FAULT {code.value}: {text}"
    assert ("press the button" in step) is (code is not FaultCode.NO_CASSETTE), step
    follow()
    assert_safe_idle(bench)
    assert bench.heard(FaultCleared)[-1] == FaultCleared(code)


def test_no_report_the_probe_grades_but_its_report_never_reaches_the_station(make_bench):
    """Fault no_report: the probe's report stays in the probe (its cable out, its software hung),
    (here its console port; the fault matrix's inspecting column has it on the GPIO lines); the
    station's verdict times out; cleared, the probe's report counts again."""
    b = make_bench(Config().replace("inspection", mode="after", verdict_timeout_s=5.0))
    assert b.clean("female").outcome == "cleaned"
    b.world.inject(Fault.NO_REPORT)
    assert perform(b, "probe", {}).endswith("(the report never reached the station: fault no_report)")
    assert b.world.probe_port.delivered == [] and b.heard(VerdictRecorded) == []
    assert perform(b, "clear", {"fault": "no_report"}) == "fault no_report cleared"
    b.run_for(5.0)
    assert [(v.verdict, v.source, v.next) for v in b.heard(VerdictRecorded)] == [
        (Verdict.NO_VERDICT, "station", "clean_dry")
    ]
    assert b.clean("female").outcome == "cleaned"
    assert "sent INSP:RES PASS" in perform(b, "probe", {})
    assert [(v.verdict, v.next) for v in b.heard(VerdictRecorded)][-1] == (Verdict.PASS, "released")
    assert b.world.violations == []
