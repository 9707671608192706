"""Consumables through the simulated bench: cassette swaps, new-cassette declaration,
exhaustion, fluid and refills, and recovery after a power cut (docs/design.md section 3, rules 1,
6 and 8).

Every test checks both books: the firmware's (the store, the controller's events) and the
simulator's physical truth (wheel positions, ribbon sections touched, drops, violations).
"""

from __future__ import annotations

import json

import pytest

from hw_sim import Fault, SimBench
from hw_sim.bench import SIM_EPOCH
from station.config import Config
from station.consumables import NEW_CASSETTE_WINDOW_S
from station.domain import CassetteType, FaultCode, Reason
from station.events import (
    AttemptFinished,
    AttemptStarted,
    CassetteDeclared,
    FaultRaised,
    FluidRefilled,
    Recovered,
    SensorChanged,
    WarningRaised,
)
from station.ports import Sensor

STD = CassetteType.STANDARD
MALE = CassetteType.MALE_MT


def cassette_rows(bench: SimBench) -> dict[int, dict]:
    return {r["id"]: dict(r) for r in bench.controller.store.cassettes()}


def audit_rows(bench: SimBench, kind: str) -> list[dict]:
    return [dict(r) for r in bench.controller.store.audit_log(1000) if r["kind"] == kind]


def assert_physics_clean(bench: SimBench) -> None:
    world = bench.world
    assert world.violations == []
    assert world.touched_twice() == []
    prompted = [s for s in world.swipes if s.prompted]
    assert all(s.fresh for s in prompted)


def long_press(bench: SimBench) -> None:
    bench.world.press_button(hold_s=2.5)
    bench.run_for(3.0)


@pytest.fixture
def make_bench(tmp_path):
    """Unlike conftest's factory, every bench here shares one state directory: a later bench
    is the same station started again (the books carry over)."""
    made: list[SimBench] = []

    def make(config: Config | None = None, **kw) -> SimBench:
        b = SimBench(config, tmp_path / "state", **kw)
        made.append(b)
        return b

    yield make
    for b in made:
        b.close()


# ---------------------------------------------------------------------------- cassette swaps


def test_swapped_out_and_reinserted_cassette_keeps_its_count(make_bench):
    bench = make_bench()
    world, store = bench.world, bench.controller.store

    for _ in range(3):
        assert bench.clean("female").outcome == "cleaned"
    std = store.cassette(STD)
    assert std.used == 9
    assert world.cassettes["standard"].position == 9  # physics agrees

    world.remove_cassette()
    bench.run_for(0.5)
    assert bench.state == "fault" and bench.controller.faults.code is FaultCode.NO_CASSETTE
    assert not world.stepper_enabled and not world.pump_on

    world.fit_cassette("male", male_mt=True)
    bench.run_for(0.5)
    assert bench.state == "idle"  # a fitted cassette clears "no cassette" by itself
    for _ in range(2):
        assert bench.clean("male").outcome == "cleaned"
    rejected = bench.clean("female")
    assert rejected.outcome == "rejected" and rejected.reason is Reason.WRONG_CASSETTE_FEMALE
    assert store.cassette(MALE).used == 6
    assert store.cassette(STD) == std  # untouched while out of the cradle

    world.remove_cassette()
    bench.run_for(0.5)
    assert bench.state == "fault"
    world.fit_cassette("standard")  # the SAME physical cassette goes back in
    bench.run_for(0.5)
    assert bench.state == "idle"
    assert store.cassette(STD) == std  # same id, count continues: not reset to a fresh cassette

    assert bench.clean("female").outcome == "cleaned"
    last = store.attempts(limit=1)[0]
    assert (last.cassette_id, last.first_position, last.positions) == (std.id, 9, 3)
    assert store.cassette(STD).used == 12
    swipe = world.swipes[-1]
    assert (swipe.cassette, swipe.section, swipe.fresh, swipe.prompted) == ("standard", 12, True, True)

    rows = cassette_rows(bench)
    assert len(rows) == 2  # no cassette was invented by the swaps
    std_row, male_row = rows[std.id], rows[store.cassette(MALE).id]
    assert std_row["fits"] >= 2 and std_row["retired_at"] is None and std_row["used"] == 12
    assert male_row["fits"] == 1 and male_row["retired_at"] is None and male_row["used"] == 6
    assert [e.code for e in bench.heard(FaultRaised)] == [FaultCode.NO_CASSETTE, FaultCode.NO_CASSETTE]
    assert_physics_clean(bench)


def test_cassette_count_survives_a_restart(tmp_path):
    options = {"state_file": tmp_path / "world.json"}
    with SimBench(state_dir=tmp_path / "state", world_options=options) as bench:
        for _ in range(2):
            assert bench.clean("female").outcome == "cleaned"
        first_id = bench.controller.store.cassette(STD).id
    with SimBench(state_dir=tmp_path / "state", world_options=options, wall_start=SIM_EPOCH + 3600) as bench:
        store = bench.controller.store
        assert store.cassette(STD).id == first_id and store.cassette(STD).used == 6
        assert bench.heard(Recovered) == []  # a clean shutdown leaves nothing to recover
        assert bench.clean("female").outcome == "cleaned"
        assert store.attempts(limit=1)[0].first_position == 6
        assert bench.world.swipes[-1].section == 9 and bench.world.swipes[-1].fresh
        assert_physics_clean(bench)


# ---------------------------------------------------------------------------- declaring a new cassette


def test_long_press_just_after_fitting_declares_a_new_cassette(make_bench):
    bench = make_bench()
    world, store = bench.world, bench.controller.store
    assert bench.clean("female").outcome == "cleaned"
    old = store.cassette(STD)
    assert old.used == 3

    world.remove_cassette()
    bench.run_for(1.0)
    world.fit_cassette("box-2")  # a new physical standard cassette
    bench.run_for(5.0)
    assert bench.state == "idle"
    long_press(bench)

    new = store.cassette(STD)
    assert new.id != old.id and new.used == 0 and new.capacity == bench.config.cassette.capacity_positions
    assert bench.heard(CassetteDeclared) == [CassetteDeclared(new.id, STD, new.capacity, "panel")]
    rows = cassette_rows(bench)
    assert rows[old.id]["retired_at"] is not None and rows[old.id]["used"] == 3  # history kept
    declared = [r for r in audit_rows(bench, "cassette") if r["action"] == "new"]
    assert declared[0]["source"] == "panel" and json.loads(declared[0]["detail"])["id"] == new.id

    assert bench.clean("female").outcome == "cleaned"
    last = store.attempts(limit=1)[0]
    assert (last.cassette_id, last.first_position) == (new.id, 0)
    assert world.swipes[-1].cassette == "box-2" and world.swipes[-1].fresh
    assert bench.state == "idle"
    assert_physics_clean(bench)


def test_repeated_long_presses_declare_a_fitted_cassette_new_once(make_bench):
    """A new box fitted, then three long presses inside the window: one declaration, one new
    count, as many cassettes on the books as physical cassettes in the world; the second and
    third presses only say the cassette is already new."""
    bench = make_bench()
    world, store = bench.world, bench.controller.store
    assert bench.clean("female").outcome == "cleaned"
    world.remove_cassette()
    bench.run_for(1.0)
    world.fit_cassette("box-2")
    bench.run_for(1.0)
    for _ in range(3):
        long_press(bench)
    bench.run_for(1.0)
    assert bench.state == "idle"

    new = store.cassette(STD)
    assert bench.heard(CassetteDeclared) == [CassetteDeclared(new.id, STD, new.capacity, "panel")]
    assert [w.code for w in bench.heard(WarningRaised)] == ["long_press_again", "long_press_again"]
    assert "already declared new" in bench.heard(WarningRaised)[0].text
    assert store.cassette_count() == 2 == len(world.cassettes)  # the first box and box-2
    assert [r["source"] for r in audit_rows(bench, "cassette") if r["action"] == "new"] == ["panel", "station"]
    assert bench.clean("female").outcome == "cleaned"
    assert store.attempts(limit=1)[0].first_position == 0 and world.swipes[-1].cassette == "box-2"
    assert_physics_clean(bench)


def test_a_long_press_on_the_first_cassette_of_its_type_creates_no_second_count(make_bench):
    """The first male MT cassette ever fitted is taken as new at its fitting: a long press
    then has nothing to declare."""
    bench = make_bench()
    world, store = bench.world, bench.controller.store
    world.remove_cassette()
    bench.run_for(1.0)
    world.fit_cassette("m", male_mt=True)
    bench.run_for(1.0)
    first = store.cassette(MALE)
    long_press(bench)
    assert store.cassette(MALE) == first and bench.heard(CassetteDeclared) == []
    assert [w.code for w in bench.heard(WarningRaised)] == ["long_press_again"]
    assert store.cassette_count() == 2 == len(world.cassettes)
    assert_physics_clean(bench)


def test_long_press_long_after_fitting_does_not_reset_the_count(make_bench):
    bench = make_bench()
    world, store = bench.world, bench.controller.store
    for _ in range(2):
        assert bench.clean("female").outcome == "cleaned"
    before = store.cassette(STD)
    audit_before = audit_rows(bench, "cassette")

    world.remove_cassette()
    bench.run_for(1.0)
    world.fit_cassette("standard")
    bench.run_for(NEW_CASSETTE_WINDOW_S + 5.0)
    long_press(bench)

    assert store.cassette(STD) == before  # same id, same count
    assert bench.heard(CassetteDeclared) == []
    warnings = [w.text for w in bench.heard(WarningRaised)]
    assert len(warnings) == 1 and "new cassette" in warnings[0] and f"{NEW_CASSETTE_WINDOW_S:.0f} s" in warnings[0]
    assert audit_rows(bench, "cassette") == audit_before
    assert len(cassette_rows(bench)) == 1
    assert bench.state == "idle"

    assert bench.clean("female").outcome == "cleaned"
    assert store.attempts(limit=1)[0].first_position == 6
    assert_physics_clean(bench)


def test_a_short_press_never_declares_a_new_cassette(make_bench):
    bench = make_bench()
    world, store = bench.world, bench.controller.store
    assert bench.clean("female").outcome == "cleaned"
    before = store.cassette(STD)
    world.remove_cassette()
    bench.run_for(1.0)
    world.fit_cassette("standard")
    bench.run_for(1.0)
    world.press_button(hold_s=0.2)
    bench.run_for(3.0)
    assert store.cassette(STD) == before
    assert bench.heard(CassetteDeclared) == []


# ---------------------------------------------------------------------------- exhaustion


@pytest.mark.parametrize("capacity", [9, 10])
def test_used_up_cassette_refuses_before_anything_moves_until_a_new_one_is_declared(make_bench, capacity):
    """`capacity_positions` is how far the wheel can advance a new cassette (section 0 is
    exposed when new; sections 0..capacity exist). Every clean advances 3 positions *before*
    the swipe, so a 9- or a 10-position cassette gives 3 cleans, and the simulator judges
    independently that no swipe is offered past the end of the ribbon."""
    config = Config().replace("cassette", capacity_positions=capacity, low_warning_cleans=2)
    bench = make_bench(config)
    world, store = bench.world, bench.controller.store
    n = config.wheel.positions_per_clean
    possible = capacity // n

    outcomes, promised = [], None
    for i in range(possible + 1):
        result = bench.clean("female")
        outcomes.append((result.outcome, result.reason))
        if i == 0:
            promised = bench.status().cleans_remaining
    assert outcomes == [("cleaned", None)] * possible + [("rejected", Reason.CASSETTE_EMPTY)], (
        f"capacity {capacity}: {possible} cleans fit; simulator violations: {world.violations}"
    )
    assert promised == possible - 1  # after one clean: the count shown to people is not overstated either
    assert world.violations == []

    warnings = [h for h in bench.events if isinstance(h.event, WarningRaised)]
    assert len(warnings) == 1 and "cassette low" in warnings[0].event.text
    last_clean = [h for h in bench.events if isinstance(h.event, AttemptFinished)][possible - 1]
    assert warnings[0].t < last_clean.t  # warned before the last clean finished, not after
    assert store.cassette(STD).used == n * possible
    refused = bench.results()[-1]
    assert refused.positions == 0

    # Asking again changes nothing: refused before anything is consumed.
    positions, steps, ribbon = world.positions_total, world.steps_total, store.cassette(STD).used
    refused = bench.clean("female")
    assert refused.outcome == "rejected" and refused.reason is Reason.CASSETTE_EMPTY
    assert refused.positions == 0
    assert (world.positions_total, world.steps_total) == (positions, steps)  # the wheel never moved
    assert store.cassette(STD).used == ribbon  # no ribbon reserved
    rec = store.attempts(limit=1)[0]
    assert (rec.outcome, rec.positions, rec.first_position) == ("rejected", 0, None)
    assert bench.state == "idle"

    # A fresh physical cassette of the same type: the station cannot tell, so it is declared.
    world.remove_cassette()
    bench.run_for(1.0)
    world.fit_cassette("fresh")
    bench.run_for(1.0)
    long_press(bench)
    fresh = store.cassette(STD)
    assert fresh.used == 0 and fresh.capacity == capacity
    assert bench.clean("female").outcome == "cleaned"
    assert store.cassette(STD).used == 3
    assert world.swipes[-1].cassette == "fresh"
    # Physical truth: no swipe was ever offered past the end of any cassette's ribbon.
    assert world.violations == []
    assert_physics_clean(bench)


# ---------------------------------------------------------------------------- fluid


def test_firmware_fluid_count_refuses_wet_allows_dry_and_refill_resets(make_bench):
    bench = make_bench(Config().replace("dispenser", reservoir_drops=3))
    world, store = bench.world, bench.controller.store
    assert store.fluid() == (0, 3)

    for i in range(3):
        result = bench.clean("female", wet=True)
        assert result.outcome == "cleaned" and result.drops == 1
        assert store.fluid() == (i + 1, 3)
    assert world.drops_total == 3

    positions = world.positions_total
    refused = bench.clean("female", wet=True)
    assert refused.outcome == "rejected" and refused.reason is Reason.FLUID_LOW
    assert refused.drops == 0 and refused.positions == 0
    assert world.drops_total == 3 and world.positions_total == positions  # nothing consumed
    assert store.fluid() == (3, 3)

    dry = bench.clean("female", wet=False)
    assert dry.outcome == "cleaned" and dry.drops == 0
    assert world.drops_total == 3 and store.fluid() == (3, 3)

    world.refill()  # the technician fills the reservoir, then records it
    bench.controller.consumables.refill("test")
    bench.run_for(0.1)
    assert store.fluid() == (0, 3)
    assert bench.heard(FluidRefilled) == [FluidRefilled(3, "test")]
    refills = [r for r in audit_rows(bench, "fluid") if r["action"] == "refill"]
    assert len(refills) == 1 and refills[0]["source"] == "test"

    wet = bench.clean("female", wet=True)
    assert wet.outcome == "cleaned" and wet.drops == 1
    assert world.drops_total == 4 and store.fluid() == (1, 3)
    assert world.reservoir == 3 - 1  # refilled to its 3 drops, one used since

    recs = store.attempts(newest_first=False)
    assert [(r.mode, r.outcome, r.drops) for r in recs] == [
        ("wet", "cleaned", 1),
        ("wet", "cleaned", 1),
        ("wet", "cleaned", 1),
        ("wet", "rejected", 0),
        ("dry", "cleaned", 0),
        ("wet", "cleaned", 1),
    ]
    assert_physics_clean(bench)


def test_physical_fluid_low_switch_refuses_wet_and_still_allows_dry(make_bench):
    bench = make_bench()
    world, store = bench.world, bench.controller.store
    world.inject("empty_reservoir")
    bench.run_for(0.1)
    refused = bench.clean("female", wet=True)
    assert refused.outcome == "rejected" and refused.reason is Reason.FLUID_LOW
    assert world.drops_total == 0 and store.fluid()[0] == 0
    assert bench.clean("female").outcome == "cleaned"
    world.clear("empty_reservoir")
    bench.run_for(0.1)
    assert bench.clean("female", wet=True).outcome == "cleaned"
    assert world.drops_total == 1
    assert_physics_clean(bench)


# ---------------------------------------------------------------------------- refills seen on the float switch
def wet_cleans(bench: SimBench, n: int) -> None:
    for _ in range(n):
        assert bench.clean("female", wet=True).outcome == "cleaned"


def test_a_refill_seen_on_the_float_switch_restores_the_count_with_no_login(make_bench):
    """Capacity 3, the float at the bottom: three wet cleans empty the reservoir, the count
    reaches 0 and the switch reads low. Refilled by hand, the float bobbing as it is poured: the
    station counts one refill, to capacity, from the float switch, and wet cleans work again
    with no one logged in."""
    bench = make_bench(Config().replace("dispenser", reservoir_drops=3))
    world, store = bench.world, bench.controller.store
    settle = bench.config.dispenser.refill_settle_s
    wet_cleans(bench, 3)
    assert world.sensor("fluid_low") and store.fluid() == (3, 3)
    assert bench.clean("female", wet=True).reason is Reason.FLUID_LOW
    bench.run_for(settle)

    world.refill(bob_s=1.0)  # six flips of the switch, then it reads not-low
    bench.run_for(1.0)
    assert bench.heard(FluidRefilled) == [] and store.fluid() == (3, 3)  # still bobbing
    bench.run_for(settle + 0.5)
    assert bench.heard(FluidRefilled) == [FluidRefilled(3, "float switch")]
    assert store.fluid() == (0, 3)
    status = bench.status()
    assert (status.fluid_drops_left, status.fluid_low) == (3, False)
    [refill] = [r for r in audit_rows(bench, "fluid") if r["action"] == "refill"]
    assert refill["source"] == "float switch" and json.loads(refill["detail"]) == {"capacity": 3}
    assert audit_rows(bench, "access") == []  # no one logged in

    wet_cleans(bench, 3)
    assert world.drops_total == 6 and store.fluid() == (3, 3) and world.reservoir == 0
    bench.run_for(60.0)
    assert len(bench.heard(FluidRefilled)) == 1  # one refill, however the switch bounced
    assert_physics_clean(bench)


def test_the_float_bobbing_as_the_pump_draws_near_its_level_is_not_a_refill(make_bench):
    """A float at 10 drops left that bobs after each draw near its level (the level just
    above it: the switch opens and closes, then reads not-low): as wet cleans take the level
    past it, no refill is counted, and once it reads low wet is refused. A firmware counting
    each low-to-not-low as a refill is flagged by the judge (tests/test_judge.py)."""
    bench = make_bench(Config().replace("dispenser", reservoir_drops=100), world_options={"float_slosh_s": 0.6})
    world, store = bench.world, bench.controller.store
    world.refill(14)  # a bottle holding less than the books say: the float still tells
    bench.run_for(0.1)
    flips: list[bool] = []
    bench.controller.events.subscribe(
        lambda e: flips.append(e.active) if isinstance(e, SensorChanged) and e.sensor is Sensor.FLUID_LOW else None
    )
    wet_cleans(bench, 4)  # 14 -> 10 drops: the draws leaving 12 and 11 make the float bob
    assert world.sensor("fluid_low") and flips.count(True) > 2  # it bounced on the way down
    assert bench.clean("female", wet=True).reason is Reason.FLUID_LOW
    bench.run_for(60.0)
    assert bench.heard(FluidRefilled) == [] and store.fluid() == (4, 100)
    assert_physics_clean(bench)


# ---------------------------------------------------------------------------- power cut


@pytest.mark.parametrize("cut_in", ["advancing", "mid-move", "swipe_ready"])
def test_abandoned_station_recovers_the_open_attempt_as_interrupted(tmp_path, cut_in):
    state, options = tmp_path / "state", {"state_file": tmp_path / "world.json"}
    first = SimBench(state_dir=state, world_options=options)
    try:
        assert first.clean("female").outcome == "cleaned"
        steps = first.world.steps_total
        first.world.present("female")
        if cut_in == "mid-move":  # one and a half positions into the three-position advance
            spp = first.config.wheel.steps_per_position
            assert first.wait_until(lambda: first.world.steps_total >= steps + spp * 3 // 2, 10)
            assert first.state == "advancing"
        else:
            assert first.wait_until(lambda: first.state == cut_in, 10)
        [open_attempt] = [e.id for e in first.heard(AttemptStarted)][1:]
        # Power cut: the first station is never shut down; a new one starts on the same files.
        first.power_cut()
        second = SimBench(state_dir=state, world_options=options, wall_start=SIM_EPOCH + 3600)
        try:
            assert second.heard(Recovered) == [Recovered((open_attempt,))]
            store = second.controller.store
            rec = {r.id: r for r in store.attempts()}[open_attempt]
            assert rec.outcome == "interrupted" and rec.reason
            assert rec.ended_at is not None and rec.ended_at >= rec.started_at
            assert rec.positions == 3  # reserved before the wheel moved: counted, never reused
            assert "open" not in store.summary()
            recovery = [json.loads(r["detail"]) for r in audit_rows(second, "recovery")]
            assert any(open_attempt in (d.get("attempts") or d.get("ids") or []) for d in recovery), recovery
            # the books never count less ribbon than physically went under the window
            assert store.cassette(STD).used >= second.world.cassettes["standard"].position

            second.world.remove()
            second.run_for(2.0)
            assert second.state == "idle"
            result = second.clean("female")
            assert result.outcome == "cleaned"
            assert store.attempts(limit=1)[0].first_position == 6
            swipe = second.world.swipes[-1]
            assert swipe.fresh and swipe.prompted
            assert_physics_clean(second)
            assert store.summary() == {"cleaned": 2, "interrupted": 1}
        finally:
            second.close()
    finally:
        first.station.store.close()


# ---------------------------------------------------------------------------- the panel's long press
def test_the_new_cassette_window_counts_from_the_fitting_and_includes_its_last_instant(make_bench):
    """Fitted at t = 200 s: a long press that completes exactly 120 s later still declares the
    cassette new; one that completes later does not (the window is measured from the fitting,
    not from the start of the station)."""
    bench = make_bench()
    world, store, loop = bench.world, bench.controller.store, bench.loop
    hold = bench.config.panel.long_press_s
    assert bench.clean("female").outcome == "cleaned"
    world.remove_cassette()
    loop.run_until(200.0)
    world.fit_cassette("box-2")
    loop.run_until(200.0)  # the fitting counts from this instant (the later fitting below shows it is not later)
    before = store.cassette(STD)
    loop.run_until(200.0 + NEW_CASSETTE_WINDOW_S - hold)
    world.press_button(hold_s=hold + 0.5)
    bench.run_for(hold + 1.0)
    new = store.cassette(STD)
    assert new.id != before.id and new.used == 0
    assert [e.id for e in bench.heard(CassetteDeclared)] == [new.id]
    assert bench.heard(WarningRaised) == []
    # Fitted at t = 600 s: a long press that completes a millisecond after the window only explains.
    world.remove_cassette()
    loop.run_until(600.0)
    world.fit_cassette("box-3")
    loop.run_until(600.0)
    before = store.cassette(STD)
    loop.run_until(600.0 + NEW_CASSETTE_WINDOW_S - hold + 0.001)
    world.press_button(hold_s=hold + 0.5)
    bench.run_for(hold + 1.0)
    assert store.cassette(STD) == before
    assert [e.id for e in bench.heard(CassetteDeclared)] == [new.id]
    assert [w.code for w in bench.heard(WarningRaised)] == ["long_press_late"]


def test_a_long_press_outside_ready_declares_nothing_and_is_not_a_short_press(make_bench):
    """In fault (cassette just refitted, so inside the new-cassette window) a long press neither
    declares the cassette new nor acts as the short press that would clear the fault; while a
    connector is being read it does not cancel the attempt either."""
    bench = make_bench()
    world, store, c = bench.world, bench.controller.store, bench.controller
    assert bench.clean("female").outcome == "cleaned"
    before = store.cassette(STD)
    world.remove_cassette()
    bench.run_for(0.5)
    world.inject(Fault.STUCK_SENSOR, sensor="gate_a", active=True)
    world.fit_cassette("standard")
    bench.run_for(0.5)
    c.startup_fault(FaultCode.SENSOR, "test: a sensor fault while the cassette is in its window")
    bench.run_for(0.1)
    assert bench.state == "fault"
    world.clear(Fault.STUCK_SENSOR)  # the cause is gone: a short press would clear it
    long_press(bench)
    assert bench.state == "fault", "a long press is not a short press"
    assert store.cassette(STD) == before and bench.heard(CassetteDeclared) == []
    world.press_button(0.1)
    bench.run_for(0.5)
    assert bench.state == "idle"
    # a long press while the guide pins are read does not cancel the attempt (a short one does)
    world.present("female")
    bench.run_for(0.01)
    assert bench.state == "identifying"
    world.press_button(hold_s=2.5)
    bench.wait_until(lambda: world.prompting, 30)
    assert world.prompting, bench.results()
    world.swipe(direction="down", duration_s=0.6)
    bench.wait_until(lambda: bench.state == "done", 10)
    assert bench.last_result().outcome == "cleaned"
    assert world.violations == []


def test_declaring_a_cassette_new_on_the_console_rearms_the_low_warning(make_bench):
    config = Config().replace("cassette", capacity_positions=12, low_warning_cleans=3)
    bench = make_bench(config)
    c, world = bench.controller, bench.world
    world.remove_cassette()  # physically a long ribbon: the books (12 positions) run out first
    bench.run_for(0.5)
    world.fit_cassette("long", capacity=60)
    bench.run_for(0.5)

    def low_warnings() -> int:
        return sum(1 for w in bench.heard(WarningRaised) if w.text.startswith("cassette low"))

    for _ in range(2):
        assert bench.clean("female").outcome == "cleaned"
    assert low_warnings() == 1  # 6 positions = 2 cleans left < 3
    assert bench.clean("female").outcome == "cleaned"
    assert low_warnings() == 1  # said once, not at every clean
    c.consumables.declare_new("console:test")  # a technician declares the (refilled) cassette new
    assert c.store.cassette(STD).used == 0
    assert bench.clean("female").outcome == "cleaned"
    assert low_warnings() == 1  # 9 left = 3 cleans: not low
    assert bench.clean("female").outcome == "cleaned"
    assert low_warnings() == 2, "low again after the declaration: warned again"


def test_the_books_alone_refuse_wet_once_the_count_reaches_the_capacity(make_bench):
    """The float switch stays open (a big bottle); the count of drops since the refill
    reaches the configured capacity: wet is refused at exactly that count, not one later."""
    bench = make_bench(Config().replace("dispenser", reservoir_drops=2))
    world, store = bench.world, bench.controller.store
    world.refill(500)
    bench.run_for(0.1)
    assert not world.sensor("fluid_low")
    for _ in range(2):
        assert bench.clean("female", wet=True).outcome == "cleaned"
    assert store.fluid() == (2, 2) and not world.sensor("fluid_low")
    refused = bench.clean("female", wet=True)
    assert (refused.outcome, refused.reason) == ("rejected", Reason.FLUID_LOW)
    assert world.drops_total == 2


def test_fitting_a_cassette_rearms_the_low_warning(make_bench):
    config = Config().replace("cassette", capacity_positions=9, low_warning_cleans=3)
    bench = make_bench(config)
    world = bench.world

    def low_warnings() -> int:
        return sum(1 for w in bench.heard(WarningRaised) if w.text.startswith("cassette low"))

    assert bench.clean("female").outcome == "cleaned"
    assert low_warnings() == 1  # 6 left: 2 cleans < 3
    assert [w.text for w in bench.heard(WarningRaised)] == ["cassette low: 2 cleans left"]
    world.remove_cassette()
    bench.run_for(0.5)
    world.fit_cassette("standard")  # the same one back: still low, and said again on the next clean
    bench.run_for(0.5)
    assert bench.clean("female").outcome == "cleaned"
    assert low_warnings() == 2


def test_a_long_press_before_any_cassette_was_fitted_since_start_only_explains(make_bench):
    bench = make_bench()  # the cassette was already in when the station started: no fitting seen
    before = bench.controller.store.cassette(STD)
    long_press(bench)
    assert bench.state == "idle" and bench.controller.faults.code is None
    assert bench.controller.store.cassette(STD) == before
    assert [w.text for w in bench.heard(WarningRaised)] == [
        f"to declare a new cassette, long-press within {NEW_CASSETTE_WINDOW_S:.0f} s of fitting it"
    ]
