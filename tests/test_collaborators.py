"""The controller's collaborators, each on its own: built from the few parts it is handed (real
gpiozero mock pins, a real SQLite store, a virtual-time loop), never from a whole station.

Inputs are active-low with pull-ups: `drive_low()` means the thing is there.
"""

from __future__ import annotations

import json

import pytest

from hw_sim.pins import SimFactory
from station.config import OVERRIDES_SETTING, Config
from station.consumables import NEW_CASSETTE_WINDOW_S, Consumables
from station.domain import CassetteType, FaultCode, Mode, ServiceResult
from station.drivers import build_hardware
from station.events import CassetteDeclared, FaultRaised, FluidRefilled, ModeSet, WarningRaised
from station.faults import FaultBook
from station.gestures import ButtonGestures
from station.loop import EventLoop, VirtualClock
from station.mode import ModeSelector
from station.ports import Sensor
from station.service_jobs import ServiceHost, ServiceJobs
from station.settings import Settings
from station.store import Store

CONFIG = Config()
PINS = CONFIG.pins


@pytest.fixture
def loop():
    return EventLoop(VirtualClock())


@pytest.fixture
def pins():
    return SimFactory()


@pytest.fixture
def hardware(loop, pins):
    hw = build_hardware(CONFIG, loop, pins)
    yield hw
    hw.close()


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "station.db", fluid_capacity=CONFIG.dispenser.reservoir_drops)
    yield s
    s.close()


@pytest.fixture
def heard():
    return []


def there(pins, pin: int) -> None:
    pins.pin(pin).drive_low()


def gone(pins, pin: int) -> None:
    pins.pin(pin).drive_high()


# ---------------------------------------------------------------------------------- gestures
def test_short_press_is_a_release_before_the_long_press_time(loop):
    calls: list[str] = []
    button = ButtonGestures(loop, lambda: 2.0, lambda: calls.append("short"), lambda: calls.append("long"))
    button.edge(True)
    loop.run_for(1.9)
    button.edge(False)
    loop.run_for(5.0)
    assert calls == ["short"]


def test_long_press_fires_while_held_and_its_release_is_not_a_short_press(loop):
    calls: list[tuple[str, float]] = []
    button = ButtonGestures(
        loop, lambda: 2.0, lambda: calls.append(("short", loop.now())), lambda: calls.append(("long", loop.now()))
    )
    button.edge(True)
    loop.run_for(3.0)
    button.edge(False)
    button.edge(True)  # a second, short press counts again
    loop.run_for(0.5)
    button.edge(False)
    assert calls == [("long", 2.0), ("short", 3.5)]


# ---------------------------------------------------------------------------------- consumables
@pytest.fixture
def books(store, hardware, loop, heard):
    return Consumables(
        store, hardware.sensors, lambda: CONFIG, heard.append, wall=lambda: 1000.0 + loop.now(), loop=loop
    )


def test_first_cassette_of_a_type_is_taken_as_new_and_refitted_keeps_its_count(books, store, pins, heard):
    there(pins, PINS.cassette_present)
    books.cassette_inserted()
    first = books.current_cassette()
    assert (first.type, first.remaining) == (CassetteType.STANDARD, CONFIG.cassette.capacity_positions)
    store.reserve_positions(first, 3, 1000.0)
    gone(pins, PINS.cassette_present)
    books.cassette_taken_out()
    there(pins, PINS.cassette_present)
    books.cassette_inserted()
    again = books.current_cassette()
    assert (again.id, again.used) == (first.id, 3)
    assert heard == []  # taken as new is not a declaration


def test_long_press_declares_new_only_within_the_window_after_fitting(books, loop, pins, heard):
    there(pins, PINS.cassette_present)
    books.cassette_inserted()
    loop.run_for(NEW_CASSETTE_WINDOW_S + 0.1)
    books.declare_new_by_panel()
    assert [type(e) for e in heard] == [WarningRaised]
    assert heard[0].code == "long_press_late"
    books.cassette_inserted()  # fitted again: the window opens again
    loop.run_for(NEW_CASSETTE_WINDOW_S)
    books.declare_new_by_panel()
    declared = [e for e in heard if isinstance(e, CassetteDeclared)]
    assert [(d.type, d.capacity, d.source) for d in declared] == [
        (CassetteType.STANDARD, CONFIG.cassette.capacity_positions, "panel")
    ]


def test_a_float_switch_refill_needs_a_held_low_then_a_held_rise_with_no_drop_placed(books, store, loop, pins, heard):
    """The fluid-low switch (pins driven, edges handed over as the controller does): a short
    low is slosh, not a refill; after a held low, a rise held `refill_settle_s` with no drop
    booked meanwhile is one refill; a drop booked during the rise makes it wait a settle time
    more."""
    settle = CONFIG.dispenser.refill_settle_s

    def switch(low: bool, then: float) -> None:
        (there if low else gone)(pins, PINS.fluid_low)
        books.float_switch(low)
        loop.run_for(then)

    store.record_drop(1000.0)
    switch(True, settle / 2)  # a dip shorter than the settle time: slosh
    switch(False, settle * 3)
    assert heard == []
    switch(True, settle)  # held low: really below the float
    switch(False, settle / 2)
    store.record_drop(1000.0 + loop.now())  # a drop placed while the level seemed to rise
    loop.run_for(settle * 0.9)
    assert heard == []  # the rise is looked at again a full settle time on, with no drop in it
    loop.run_for(settle * 0.7)
    assert heard == [FluidRefilled(CONFIG.dispenser.reservoir_drops, "float switch")]
    assert store.fluid() == (0, CONFIG.dispenser.reservoir_drops)
    switch(True, settle / 3)  # it bobs again after the refill: no second one
    switch(False, settle * 3)
    assert len(heard) == 1


def test_low_warning_once_per_cassette(books, store, pins, heard):
    there(pins, PINS.cassette_present)
    books.cassette_inserted()
    cassette = books.current_cassette()
    per_clean = CONFIG.wheel.positions_per_clean
    leave = (CONFIG.cassette.low_warning_cleans - 1) * per_clean
    store.reserve_positions(cassette, cassette.capacity - leave, 1000.0)
    books.check_low()
    books.check_low()
    assert heard == [
        WarningRaised("cassette_low", f"cassette low: {CONFIG.cassette.low_warning_cleans - 1} cleans left")
    ]
    books.declare_new("console:test")
    store.reserve_positions(books.current_cassette(), CONFIG.cassette.capacity_positions - leave, 1000.0)
    books.check_low()
    assert [type(e) for e in heard] == [WarningRaised, CassetteDeclared, WarningRaised]


def test_fluid_low_from_the_switch_or_the_count_and_a_refill_restarts_the_count(books, store, pins, heard):
    assert not books.fluid_low()
    there(pins, PINS.fluid_low)
    assert books.fluid_low()
    gone(pins, PINS.fluid_low)
    for _ in range(CONFIG.dispenser.reservoir_drops):
        store.record_drop(1000.0)
    assert books.fluid_left() == 0 and books.fluid_low()
    books.refill("console:test")
    assert books.fluid_left() == CONFIG.dispenser.reservoir_drops and not books.fluid_low()
    assert heard == [FluidRefilled(CONFIG.dispenser.reservoir_drops, "console:test")]


def test_counters_show_the_current_cassettes_however_many_were_retired(books, store, pins):
    there(pins, PINS.cassette_present)
    books.cassette_inserted()
    for _ in range(25):
        books.declare_new("console:test")
    counters = books.counters()
    assert [c.type for c in counters.cassettes] == [CassetteType.STANDARD]
    assert counters.cassettes_ever == 26 and counters.fitted_id == counters.cassettes[0].id


# ---------------------------------------------------------------------------------- settings
def test_settings_apply_now_or_at_the_next_start_and_never_save_an_invalid_one(store):
    running = [CONFIG]
    settings = Settings(store, CONFIG, lambda: running[-1], running.append, wall=lambda: 1000.0)
    now = settings.change("swipe", "timeout_s", 20.0, source="console:test", busy=None)
    assert now == ServiceResult(True, ["swipe.timeout_s = 20.0 in effect now"])
    assert running[-1].swipe.timeout_s == 20.0
    later = settings.change("wheel", "positions_per_clean", 4, source="console:test", busy=None)
    assert later.ok and "next start" in later.lines[0] and running[-1].wheel.positions_per_clean == 3
    refused = settings.change("swipe", "min_pass_s", 99.0, source="console:test", busy=None)
    assert not refused.ok
    busy = settings.change("swipe", "timeout_s", 30.0, source="console:test", busy="swiping")
    assert busy == ServiceResult(False, error="the station is swiping; change settings while it is ready")
    assert json.loads(store.setting(OVERRIDES_SETTING) or "{}") == {
        "swipe": {"timeout_s": 20.0},
        "wheel": {"positions_per_clean": 4},
    }
    reset = settings.reset(["swipe.timeout_s"], source="console:test", busy=None)
    assert reset.ok and running[-1].swipe.timeout_s == CONFIG.swipe.timeout_s
    assert settings.saved_changes() == {"wheel": {"positions_per_clean": 4}} and settings.saved_problem() is None


# ---------------------------------------------------------------------------------- faults
def test_fault_keeps_the_most_serious_cause_and_clears_only_when_it_is_gone(store, hardware, pins, heard):
    faults = FaultBook(store, hardware.sensors, lambda: None, heard.append, wall=lambda: 1000.0)
    faults.set(FaultCode.NO_CASSETTE, "the cradle is empty")
    faults.announce()
    faults.escalate(FaultCode.JAM, "wheel confirmed 1 of 3 positions")
    faults.escalate(FaultCode.NO_CASSETTE, "again")  # less serious: kept out
    jammed = "wheel confirmed 1 of 3 positions; clear the wheel (and check its index sensor), then press the button"
    assert (faults.code, faults.detail) == (FaultCode.JAM, jammed)
    assert heard == [
        FaultRaised(FaultCode.NO_CASSETTE, "the cradle is empty; fit a cassette (the fault clears by itself)"),
        FaultRaised(FaultCode.JAM, jammed),
    ]
    assert faults.cause_gone()  # a jam cannot be sensed at rest
    faults.set(FaultCode.SENSOR, "gate A blocked")
    there(pins, PINS.gate_a)
    assert not faults.cause_gone()
    gone(pins, PINS.gate_a)
    assert faults.cause_gone()
    faults.record_clear("panel")
    assert faults.cleared() is FaultCode.SENSOR and faults.code is None
    audit = [(r["kind"], r["action"], r["source"]) for r in store.audit_log(10)]
    assert ("maintenance", "fault_clear", "panel") in audit and ("fault", "jam", "station") in audit


# ---------------------------------------------------------------------------------- mode
def test_console_overrides_the_switch_until_handed_back(store, hardware, pins, heard):
    mode = ModeSelector(hardware.sensors, store, heard.append, wall=lambda: 1000.0)
    there(pins, PINS.mode_switch)
    assert mode.current() is Mode.WET
    assert mode.set(Mode.DRY, "console:test") == ServiceResult(True, ["mode dry (console)"])
    assert mode.current() is Mode.DRY
    assert mode.set(None, "console:test") == ServiceResult(True, ["mode wet (panel switch)"])
    assert heard == [ModeSet(Mode.DRY, "console:test"), ModeSet(None, "console:test")]


# ---------------------------------------------------------------------------------- service jobs
@pytest.fixture
def jobs(store, hardware, loop, heard, books):
    state = ["idle"]
    faults: list[tuple[FaultCode, str]] = []
    host = ServiceHost(
        state=lambda: state[-1],
        enter=lambda: state.append("servicing"),
        leave=lambda: state.append("idle"),
        fault=lambda code, detail: (faults.append((code, detail)), state.append("fault")),
    )
    j = ServiceJobs(host, hardware, store, books, loop, lambda: CONFIG, heard.append, wall=lambda: 1000.0)
    return j, state, faults


def test_jog_books_the_ribbon_before_the_wheel_moves_and_a_wheel_without_index_is_a_jam(jobs, store, pins, loop, books):
    j, state, faults = jobs
    there(pins, PINS.cassette_present)
    books.cassette_inserted()
    results: list[ServiceResult] = []
    j.jog(2, "console:test", results.append)
    assert state[-1] == "servicing" and books.current_cassette().used == 2  # booked, not yet moved
    loop.run_for(30.0)  # no wheel is turning the index slot: no index pulse comes
    assert faults and faults[0][0] is FaultCode.JAM and state[-1] == "fault"
    assert len(results) == 1 and not results[0].ok and "jam" in results[0].error


def test_prime_counts_each_drop_before_its_pulse_and_checks_the_drop_sensor(jobs, store, hardware, pins, loop):
    j, state, faults = jobs
    # the nozzle: every pump pulse makes a drop that passes the drop sensor
    pins.on_output = lambda bcm, on: (there if on else gone)(pins, PINS.drop_sensor) if bcm == PINS.pump else None
    hardware.sensors.on_edge(lambda e: j.drop_seen() if e.sensor is Sensor.DROP and e.active else None)
    results: list[ServiceResult] = []
    j.prime(3, "console:test", results.append)
    assert store.fluid()[0] == 1  # the first drop is on the books as its pulse starts
    loop.run_for(10.0)
    assert results == [ServiceResult(True, ["pump: 3 drops"])]
    assert store.fluid()[0] == 3 and state == ["idle", "servicing", "idle"] and faults == []


def test_prime_with_no_drop_seen_faults_the_station(jobs, store, loop):
    j, state, faults = jobs
    results: list[ServiceResult] = []
    j.prime(3, "console:test", results.append)
    loop.run_for(10.0)
    # the cause only: the FaultBook adds the next step (this host stands in for it)
    assert faults == [(FaultCode.NO_DROP, "prime: the drop sensor did not see drop 1 of 3")] and state[-1] == "fault"
    assert results == [
        ServiceResult(
            False,
            ["pump: drop 1 not seen by the drop sensor"],
            "no drop seen: check the pump and nozzle; station is now in fault",
        )
    ]
    assert store.fluid()[0] == 1  # the one pulse given is on the books


def test_jobs_refuse_unless_ready_with_the_guide_empty(jobs, pins):
    j, state, _ = jobs
    results: list[ServiceResult] = []
    there(pins, PINS.connector_present)
    j.prime(1, "console:test", results.append)
    state.append("swiping")
    j.prime(1, "console:test", results.append)
    assert [r.error for r in results] == [
        "a connector is in the guide; take it away first",
        "the station is swiping; wait for ready (or clear the fault) first",
    ]


def test_abort_ends_the_job_in_flight_with_the_reason(jobs, loop):
    j, _, _ = jobs
    results: list[ServiceResult] = []
    j.prime(5, "console:test", results.append)
    j.abort("reset")
    loop.run_for(10.0)
    assert results == [ServiceResult(False, [], "reset")]


def test_sensor_names_match_the_ports(hardware):
    """The collaborators read sensors through the port; every port sensor is wired."""
    optional = {Sensor.INSPECT_PASS, Sensor.INSPECT_FAIL}  # fitted only with inspection.gpio_fitted
    assert set(hardware.sensors.snapshot()) == set(Sensor) - optional
