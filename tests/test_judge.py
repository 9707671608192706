"""The simulator's judge of docs/design.md section 3 (hw_sim/judge.py and what it composes).

For every check the judge makes from physics (and, for the books and the records, from the
station's database read as an outside auditor), a test plants the firmware bug it exists for -
a method of station/ replaced by monkeypatch, as a real bug would change it - and asserts that
the world records a violation of the right rule (the test declares it, see tests/conftest.py).
Each planted test has a twin on the unchanged firmware where the same physical situation
records nothing: a check that fires on a correct firmware is as wrong as one that misses.

The five bugs of issue 11 are here, and the situations it named: dry and wet cancels and
removals at every phase of a clean, and an unexpected exception in every state.
"""

from __future__ import annotations

import dataclasses

import pytest

from hw_sim import Fault, SimBench
from hw_sim.bench import SIM_EPOCH
from hw_sim.judge import Judge
from hw_sim.model import Violation
from hw_sim.session import expected_verdict
from station import controller as controller_module
from station import cycle as cycle_module
from station.config import Config
from station.console import commands
from station.consumables import FLOAT_SWITCH
from station.domain import Mode, Outcome, Reason
from station.motion import AdvanceJob
from station.ports import MotionStatus, Pattern
from station.service_jobs import ServiceHost
from station.store import StoreError
from station.swipe import GateEdge, SwipeVerdict

CFG = Config()
N = CFG.wheel.positions_per_clean
SWIPE = CFG.swipe


# ---------------------------------------------------------------------------------- helpers
def flagged(bench: SimBench, rule: int, *words: str) -> list[Violation]:
    """The violations of `rule` the world recorded whose text has all `words` (at least one)."""
    found = [v for v in bench.world.violations if v.rule == rule and all(w in v.text for w in words)]
    assert found, f"no rule {rule} violation with {words}: {bench.world.violations}"
    return found


def judge(bench: SimBench) -> Judge:
    return bench.world.judge


def seat_and_wait(bench: SimBench, connector: str, state: str, *, wet: bool = False) -> None:
    w = bench.world
    w.set_mode(wet)
    w.present(connector)
    if state == "swiping":
        assert bench.wait_until(lambda: w.prompting, 20)
        w.swipe(duration_s=1.0)
        bench.run_for(0.5)  # gate A passed, gate B not yet
    else:
        assert bench.wait_until(lambda: bench.state == state, 20), bench.state
    assert bench.state == state


def finish(bench: SimBench) -> None:
    """Take the connector away and let the station settle: the judge holds the attempt to its record."""
    bench.world.remove()
    bench.run_for(3.0)


def boom(*args, **kwargs):
    raise RuntimeError("planted bug (test)")


def stuck_s(bench: SimBench) -> float:
    return judge(bench).watchdog.stuck_s()


# =============================================================================== rule 1
def open_loop_stepped(self: AdvanceJob) -> MotionStatus | None:
    """A move that ends when the expected steps are sent, whatever the index sensor saw."""
    self.steps += 1
    if self.status is None and self.steps >= self.expected_steps:
        self.confirmed, self.status = self.positions, MotionStatus.DONE
    return self.status


@pytest.mark.violations(1)
def test_a_firmware_counting_steps_instead_of_index_pulses_is_flagged(bench, monkeypatch):
    """With an index pulse the sensor misses, the wheel still turns its three positions, but only
    two were confirmed by the index slot passing the sensor."""
    monkeypatch.setattr(AdvanceJob, "stepped", open_loop_stepped)
    monkeypatch.setattr(AdvanceJob, "index_seen", lambda self: None)
    bench.world.inject(Fault.MISSING_INDEX)
    bench.clean("female")
    assert bench.world.positions_total == N
    flagged(bench, 1, f"confirmed by {N - 1} visible index pulses, not {N}")


def test_a_slip_is_made_up_by_waiting_for_the_index_pulse(bench):
    """The next position takes extra steps: a firmware that counted steps would stop short."""
    bench.world.inject(Fault.SLIP, steps=16)
    assert bench.clean("female").outcome == "cleaned"
    assert bench.world.positions_total == N


def test_a_missed_index_pulse_is_a_jam_for_the_closed_loop_firmware(bench):
    bench.world.inject(Fault.MISSING_INDEX)
    result = bench.clean("female", remove=False)
    assert (result.outcome, result.reason, bench.state) == ("failed", Reason.JAM, "fault")
    assert bench.world.prompts == 0


@pytest.mark.violations(1, 6)
def test_a_swipe_now_with_the_fresh_ribbon_not_on_disk_is_flagged(bench, monkeypatch):
    """Rule 1's "durably stored before swipe-now", and rule 6 as the wheel turns unbooked."""
    store = bench.controller.store
    real = store.reserve_positions

    def book_nothing_for_cleans(cassette, positions, t, **kw):
        if kw.get("attempt_id") is None:
            return real(cassette, positions, t, **kw)
        return cassette.used  # believed, never written

    monkeypatch.setattr(store, "reserve_positions", book_nothing_for_cleans)
    assert bench.clean("female").outcome == "cleaned"
    flagged(bench, 1, "at swipe-now", "the books (#1) give 1500 positions left", "at most 1497")
    flagged(bench, 6, "as the wheel reached a new position")


@pytest.mark.violations(6)
def test_ribbon_booked_after_the_move_is_flagged_as_the_wheel_turns(bench, monkeypatch):
    c = bench.controller
    real_advance = c.cycle.advance

    def advance_then_book(a, moved):
        store, real_reserve = c.store, c.store.reserve_positions
        held = []
        monkeypatch.setattr(store, "reserve_positions", lambda *args, **kw: held.append((args, kw)) or 0)
        real_advance(a, lambda a_, result: (real_reserve(*held[0][0], **held[0][1]), moved(a_, result)))
        monkeypatch.setattr(store, "reserve_positions", real_reserve)

    monkeypatch.setattr(c.cycle, "advance", advance_then_book)
    assert bench.clean("female").outcome == "cleaned"
    assert c.store.cassette(c.consumables.cassette_type()).used == N
    flagged(bench, 6, "as the wheel reached a new position", "at most 1499")


@pytest.mark.violations(6)
def test_a_refill_booked_from_a_bobbing_float_is_flagged(make_bench, monkeypatch):
    """A firmware that takes every low-to-not-low of the float switch for a refill: the float
    bobbing as the pump draws the level past it books refills the reservoir never had."""
    bench = make_bench(Config().replace("dispenser", reservoir_drops=100), world_options={"float_slosh_s": 0.6})
    c, w = bench.controller, bench.world
    real = c.consumables.float_switch
    monkeypatch.setattr(
        c.consumables, "float_switch", lambda low: real(low) if low else c.consumables.refill(FLOAT_SWITCH)
    )
    w.refill(14)
    for _ in range(4):  # 14 -> 10 drops: the draws leaving 12 and 11 make the float bob
        assert bench.clean("female", wet=True).outcome == "cleaned"
    flagged(bench, 6, "refill(s) booked from the float switch", "only 0 time(s)")


def test_a_real_refill_seen_on_the_float_switch_is_not_flagged(make_bench):
    """The twin: the reservoir really refilled past its float, the station's float-switch refill stands."""
    bench = make_bench(Config().replace("dispenser", reservoir_drops=3))
    w = bench.world
    for _ in range(3):
        assert bench.clean("female", wet=True).outcome == "cleaned"
    bench.run_for(bench.config.dispenser.refill_settle_s)
    w.refill(bob_s=1.0)
    bench.run_for(bench.config.dispenser.refill_settle_s + 2.0)
    assert bench.controller.store.fluid() == (0, 3)  # booked from the float switch
    assert bench.clean("female", wet=True).outcome == "cleaned"
    assert w.violations == []


# =========================================================================== rules 2 and 3
REFUSED = [
    # connector, cassette, chatter_s, rule
    ("bent", "standard", 0.0, 3),
    ("male", "standard", 0.0, 2),
    ("female", "male_mt", 0.0, 2),
    ("female", "standard", 2.0, 3),  # pins that never settle within guide_pins.timeout_s
]
REFUSED_IDS = ["bent", "male_on_standard", "female_on_male_mt", "unsettled"]


@pytest.mark.parametrize(("connector", "cassette", "chatter", "rule"), REFUSED, ids=REFUSED_IDS)
def test_a_refused_connector_consumes_nothing(make_bench, connector, cassette, chatter, rule):
    bench = make_bench(cassette=cassette)
    w = bench.world
    w.present(connector, chatter_s=chatter)
    bench.run_for(3.0)
    assert bench.last_result().outcome == "rejected"
    finish(bench)
    assert (w.steps_total, w.drops_total, w.prompts) == (0, 0, 0)
    assert [s.kind.value for s in judge(bench).judged] == [connector]


@pytest.mark.parametrize("wet", [False, True], ids=["dry", "wet"])
@pytest.mark.parametrize(("connector", "cassette", "chatter", "rule"), REFUSED, ids=REFUSED_IDS)
def test_a_station_that_cleans_a_connector_it_must_refuse_is_flagged(
    make_bench, monkeypatch, request, connector, cassette, chatter, rule, wet
):
    request.applymarker(pytest.mark.violations(rule))
    bench = make_bench(cassette=cassette)
    monkeypatch.setattr(bench.controller.cycle, "refusal", lambda a: None)  # no interlock at all
    w = bench.world
    w.set_mode(wet)
    w.present(connector, chatter_s=chatter)
    bench.run_for(0.3)
    bench.wait_until(lambda: w.prompting, 10)
    flagged(bench, rule, "wheel advanced for")
    assert w.drops_total == (1 if wet else 0)  # (the refusal is said once per connector)
    finish(bench)
    flagged(bench, rule, "must be refused")


@pytest.mark.violations(3)
def test_a_refusal_with_the_wrong_instruction_is_flagged(make_bench, monkeypatch):
    """A bent pin read as a male connector: refused on the standard cassette, but told to fit the
    male MT cassette instead of checking the pins."""
    bench = make_bench()
    real = cycle_module.CleanCycle.read_pins

    def bent_as_male(self, a):
        reading = real(self, a)
        if reading.done and a.gender is not None and a.gender.value == "damaged":
            from station.domain import Gender

            a.gender = Gender.MALE
        return reading

    monkeypatch.setattr(cycle_module.CleanCycle, "read_pins", bent_as_male)
    assert bench.clean("bent").reason is Reason.WRONG_CASSETTE_MALE
    flagged(bench, 3, "must be refused 'one guide pin sensed", "recorded rejected 'male connector")


# =============================================================================== rule 4
def honour_the_abandon_after_the_drop(c, monkeypatch) -> None:
    """Issue 11's bug: a cancel or a removal during a wet advance is honoured only once the
    drop is placed."""
    real = c._on_motion

    def buggy(a, result):
        abandon, a.abandon = a.abandon, None
        real(a, result)
        if abandon is not None and c.state == "dispensing":
            c.cycle.conclude(Outcome.FAILED, abandon)
            c.finish()

    monkeypatch.setattr(c, "_on_motion", buggy)


def stop_during_the_advance(bench: SimBench, how: str) -> None:
    w = bench.world
    seat_and_wait(bench, "female", "advancing", wet=True)
    if how == "cancel":
        w.press_button(0.05)
    else:
        w.remove()
    bench.wait_until(lambda: bench.state in ("done", "idle", "fault"), 10)


@pytest.mark.parametrize("how", ["cancel", "removal"])
def test_a_cancel_or_removal_during_a_wet_advance_places_no_drop(bench, how):
    stop_during_the_advance(bench, how)
    assert bench.last_result().reason is (Reason.CANCELLED if how == "cancel" else Reason.REMOVED_MID_CYCLE)
    assert bench.world.drops_total == 0
    finish(bench)


@pytest.mark.violations(4)
@pytest.mark.parametrize("how", ["cancel", "removal"])
def test_a_wet_advance_that_still_pumps_after_a_cancel_or_removal_is_flagged(bench, monkeypatch, how):
    honour_the_abandon_after_the_drop(bench.controller, monkeypatch)
    stop_during_the_advance(bench, how)
    assert bench.world.drops_total == 1
    flagged(bench, 4, "drop after", "cancelled on the panel" if how == "cancel" else "taken away")
    finish(bench)


@pytest.mark.violations(4)
def test_a_drop_with_the_guide_empty_outside_maintenance_is_flagged(bench, monkeypatch):
    """A prime that never puts the panel in the service pattern: drops while the station shows
    ready, nobody cleaning and no maintenance under way for all the panel says."""
    jobs = bench.controller.jobs
    host = jobs._host
    monkeypatch.setattr(jobs, "_host", ServiceHost(host.state, lambda: None, lambda: None, host.fault))
    jobs.prime(2, "console:test", lambda result: None)
    bench.run_for(3.0)
    assert bench.world.drops_total >= 1
    flagged(bench, 4, "drop with no clean in progress and the panel not in the service pattern")


def test_a_drop_the_sensor_did_not_see_is_not_pumped_again(bench):
    """The drop left, the drop sensor (stuck) saw nothing: a no-drop fault, never a second drop."""
    bench.world.inject(Fault.STUCK_SENSOR, sensor="drop", active=False)
    result = bench.clean("female", wet=True, remove=False)
    assert (result.reason, bench.state, bench.world.drops_total) == (Reason.NO_DROP, "fault", 1)


MODE_CHANGES = ["panel_wet_to_dry", "panel_dry_to_wet", "console_dry_over_a_wet_switch"]


@pytest.mark.parametrize("change", MODE_CHANGES)
def test_the_mode_people_choose_is_the_mode_of_the_drop(bench, change):
    """Switched to dry before the drop: no drop; switched to wet after a dry start: the clean
    stays dry; dry set on the console over a switch at wet: dry."""
    w = bench.world
    if change == "console_dry_over_a_wet_switch":
        bench.console_mode(Mode.DRY)
        result = bench.clean("female", wet=True)
    else:
        w.set_mode(change == "panel_wet_to_dry")
        w.present("female")
        assert bench.wait_until(lambda: bench.state == "advancing", 5)
        w.set_mode(change != "panel_wet_to_dry")
        assert bench.wait_until(lambda: w.prompting, 10)
        w.swipe()
        bench.wait_until(lambda: bench.state == "done", 10)
        result = bench.last_result()
        finish(bench)
    assert (result.outcome, result.mode, w.drops_total) == ("cleaned", Mode.DRY, 0)


def test_a_prime_in_the_service_pattern_is_maintenance(bench):
    done = []
    bench.controller.jobs.prime(2, "console:test", done.append)
    bench.run_for(3.0)
    assert done[0].ok and bench.world.drops_total == 2


def low_reservoir(bench: SimBench) -> None:
    w = bench.world
    w.refill(10)  # below the float switch's level
    bench.run_for(0.1)
    assert w.sensor("fluid_low")


def test_a_low_reservoir_refuses_wet_and_still_cleans_dry(bench):
    low_reservoir(bench)
    assert bench.clean("female", wet=True).reason is Reason.FLUID_LOW
    assert bench.clean("female", wet=False).outcome == "cleaned"
    assert bench.world.drops_total == 0


@pytest.mark.violations(4)
def test_a_wet_clean_begun_while_the_float_switch_reads_low_is_flagged(bench, monkeypatch):
    monkeypatch.setattr(bench.controller.consumables, "fluid_low", lambda: False)  # the switch ignored
    low_reservoir(bench)
    assert bench.clean("female", wet=True).outcome == "cleaned"
    flagged(bench, 4, "begun while the reservoir's float switch read low")


@pytest.mark.violations(4)
def test_a_dry_clean_refused_for_low_fluid_is_flagged(bench, monkeypatch):
    c = bench.controller
    real = c.cycle.refusal
    monkeypatch.setattr(c.cycle, "refusal", lambda a: Reason.FLUID_LOW if c.consumables.fluid_low() else real(a))
    low_reservoir(bench)
    assert bench.clean("female", wet=False).reason is Reason.FLUID_LOW
    flagged(bench, 4, "a dry clean refused for low fluid")


def late_wet_stroke(bench: SimBench):
    """A perfect pull started 2 s after the wet window closed (well within the dry timeout)."""
    return bench.clean("female", wet=True, delay_s=SWIPE.wet_window_s + 2.0)


def test_a_stroke_after_the_wet_window_is_not_cleaned(bench):
    result = late_wet_stroke(bench)
    assert (result.outcome, result.reason) == ("failed", Reason.NO_SWIPE)


@pytest.mark.violations(4)
def test_a_stroke_started_after_the_wet_window_judged_cleaned_is_flagged(bench, monkeypatch):
    real = cycle_module.CleanCycle.open_swipe

    def dry_deadline(self, a):
        real(self, a)
        a.swipe_deadline = self._loop.now() + self._config().swipe.timeout_s  # the wet window ignored

    monkeypatch.setattr(cycle_module.CleanCycle, "open_swipe", dry_deadline)
    # the operator waits for the station's own deadline: the late stroke still comes in the prompt
    w = bench.world
    w.set_mode(True)
    w.present("female")
    assert bench.wait_until(lambda: w.prompting, 10)
    bench.run_for(SWIPE.wet_window_s + 2.0)
    w.swipe()
    bench.wait_until(lambda: bench.state == "done", 10)
    assert bench.last_result().outcome == "cleaned"
    finish(bench)
    flagged(bench, 4, "recorded cleaned", "after its deadline")


# =============================================================================== rule 5
STROKES = [
    # (direction, duration_s, variant, delay_s, cleaned)
    ("down", 0.6, "full", 0.5, True),
    ("down", SWIPE.min_pass_s + 0.01, "full", 0.5, True),
    ("down", SWIPE.max_pass_s - 0.01, "full", 0.5, True),
    ("down", SWIPE.min_pass_s - 0.01, "full", 0.5, False),
    ("down", SWIPE.max_pass_s + 0.01, "full", 0.5, False),
    ("up", 0.6, "full", 0.5, False),
    ("down", 0.6, "partial", 0.5, False),
    ("down", 0.6, "back_and_forth", 0.5, False),
    ("down", 0.6, "double", 0.5, False),
    ("down", 0.6, "full", SWIPE.timeout_s + 1.0, False),  # no swipe in time (dry)
]
STROKE_IDS = [
    "good",
    "fastest",
    "slowest",
    "too_fast",
    "too_slow",
    "reversed",
    "partial",
    "back_forth",
    "double",
    "late",
]


@pytest.mark.parametrize("bounce", [False, True], ids=["clean_edges", "bounce"])
@pytest.mark.parametrize(("direction", "duration", "variant", "delay", "cleaned"), STROKES, ids=STROKE_IDS)
def test_every_stroke_is_judged_and_the_firmware_agrees(bench, direction, duration, variant, delay, cleaned, bounce):
    """The judge decides each of these from the stroke alone (not skipped as undecidable), and
    the station's verdict agrees with it."""
    result = bench.clean(
        "female", direction=direction, duration_s=duration, variant=variant, delay_s=delay, bounce=bounce
    )
    assert (result.outcome == "cleaned") is cleaned, result
    bench.run_for(1.0)
    (s,) = judge(bench).judged
    assert s.verdict_judged
    verdict = expected_verdict(s, bench.config)
    assert verdict is not None and verdict[0] is cleaned, verdict


def accept_reversed(edges, **kw):
    """A pull from B to A judged like one from A to B."""
    edges = list(edges)
    if edges and min(edges, key=lambda e: e.t).gate == "B":
        edges = [GateEdge("A" if e.gate == "B" else "B", e.active, e.t) for e in edges]
    return real_judge_swipe(edges, **kw)


real_judge_swipe = cycle_module.judge_swipe


@pytest.mark.violations(5)
def test_a_wrong_acceptance_is_flagged(bench, monkeypatch):
    monkeypatch.setattr(cycle_module, "judge_swipe", accept_reversed)
    assert bench.clean("female", direction="up").outcome == "cleaned"
    bench.run_for(1.0)
    flagged(bench, 5, "recorded cleaned", "stroke from B to A")


@pytest.mark.violations(5)
def test_a_wrong_rejection_is_flagged(bench, monkeypatch):
    def too_fast_when_good(edges, **kw):
        v = real_judge_swipe(edges, **kw)
        return SwipeVerdict(True, reason=Reason.TOO_FAST, pass_s=v.pass_s, started_at=v.started_at) if v.ok else v

    monkeypatch.setattr(cycle_module, "judge_swipe", too_fast_when_good)
    assert bench.clean("female", duration_s=1.0).reason is Reason.TOO_FAST
    bench.run_for(1.0)
    flagged(bench, 5, "recorded failed 'swipe too fast'", "one full A->B stroke of 1.000 s")


@pytest.mark.violations(5)
def test_a_result_shown_on_the_panel_unlike_the_record_is_flagged(bench, monkeypatch):
    shown = dict(controller_module.PATTERN_OF_OUTCOME, **{Outcome.CLEANED: Pattern.FAILED})
    monkeypatch.setattr(controller_module, "PATTERN_OF_OUTCOME", shown)
    assert bench.clean("female").outcome == "cleaned"
    bench.run_for(1.0)
    flagged(bench, 5, "the panel showed failed", "is recorded cleaned")


@pytest.mark.violations(5, 7)
def test_no_swipe_in_time_never_judged_is_flagged(bench, monkeypatch):
    real = cycle_module.CleanCycle.open_swipe

    def no_deadline(self, a):
        real(self, a)
        a.swipe_deadline += 1000 * self._config().swipe.timeout_s

    monkeypatch.setattr(cycle_module.CleanCycle, "open_swipe", no_deadline)
    bench.world.present("female")
    bench.run_for(stuck_s(bench) + 5.0)
    assert bench.world.prompting
    flagged(bench, 5, "no swipe in time never judged")
    flagged(bench, 7, "stuck: swipe-now shown")


# =============================================================================== rule 6
def test_a_cassette_with_two_positions_left_refuses_the_clean_as_used_up(make_bench):
    bench = make_bench(Config().replace("cassette", capacity_positions=3 * N + 2))
    for _ in range(3):
        assert bench.clean("female").outcome == "cleaned"
    assert bench.clean("female").reason is Reason.CASSETTE_EMPTY


@pytest.mark.violations(6)
def test_a_capacity_check_off_by_one_is_flagged(make_bench, monkeypatch):
    """Issue 11's bug: `remaining < n - 1`. With 2 positions left the clean is accepted, the store
    refuses the reservation and the station goes into a storage fault instead of saying the
    cassette is used up."""
    bench = make_bench(Config().replace("cassette", capacity_positions=3 * N + 2))
    c = bench.controller
    real = c.cycle.refusal

    def off_by_one(a):
        reason = real(a)
        if reason is Reason.CASSETTE_EMPTY and c.consumables.current_cassette().remaining == N - 1:
            return None
        return reason

    monkeypatch.setattr(c.cycle, "refusal", off_by_one)
    for _ in range(3):
        assert bench.clean("female").outcome == "cleaned"
    result = bench.clean("female", remove=False)
    assert (result.outcome, result.reason, bench.state) == ("rejected", Reason.FAULT, "fault")
    finish(bench)
    bench.close()
    flagged(bench, 6, "the books gave the cassette 2 positions", "not refused as used up")


def use_up_and_refit(bench: SimBench) -> None:
    for _ in range(3):
        assert bench.clean("female").outcome == "cleaned"
    assert bench.clean("female").reason is Reason.CASSETTE_EMPTY
    bench.world.remove_cassette()
    bench.run_for(1.0)
    bench.world.fit_cassette("standard")  # the same used-up cassette
    bench.run_for(1.0)


@pytest.mark.violations(6)
def test_a_used_up_cassette_fitted_again_and_declared_new_by_the_firmware_is_flagged(make_bench, monkeypatch):
    """Issue 11's bug: the books claim cleans that the ribbon does not have."""
    bench = make_bench(Config().replace("cassette", capacity_positions=3 * N))
    books = bench.controller.consumables
    real = books.cassette_inserted

    def declared_new_when_used_up():
        known = books._store.cassette(books.cassette_type())
        if known is not None and known.remaining < N:
            books.declare_new(source="station")
        else:
            real()

    monkeypatch.setattr(books, "cassette_inserted", declared_new_when_used_up)
    use_up_and_refit(bench)
    assert bench.controller.store.cassette(books.cassette_type()).remaining == 3 * N
    flagged(bench, 6, "once the cassette was fitted", "the books (#2) give 9 positions left", "at most 0")


@pytest.mark.parametrize("how", ["panel", "console"])
def test_a_person_declaring_a_used_cassette_new_is_believed(make_bench, how):
    bench = make_bench(Config().replace("cassette", capacity_positions=3 * N))
    use_up_and_refit(bench)
    if how == "panel":
        bench.world.press_button(CFG.panel.long_press_s + 0.5)
    else:
        bench.controller.consumables.declare_new("console:test")
    bench.run_for(3.0)
    assert bench.controller.store.cassette(bench.controller.consumables.cassette_type()).remaining == 3 * N
    bench.close()


def place_drop_then_book(self, a) -> None:
    """The drop booked after the pump pulse, not before."""
    a.drops += 1
    a.drop_at = self._loop.now()
    self._hw.dispenser.pulse()
    self._store.record_drop(self._wall(), attempt_id=a.id)


@pytest.mark.violations(6)
def test_a_drop_booked_after_the_pulse_is_flagged_even_when_the_write_succeeds(bench, monkeypatch):
    monkeypatch.setattr(cycle_module.CleanCycle, "place_drop", place_drop_then_book)
    assert bench.clean("female", wet=True).outcome == "cleaned"
    flagged(bench, 6, "1 drops left the nozzle, the books count 0")


def fail_record_drop_once(bench: SimBench, monkeypatch) -> None:
    store = bench.controller.store
    real = store.record_drop
    calls = []

    def fails_once(*args, **kw):
        calls.append(1)
        if len(calls) == 1:
            raise StoreError("disk full (test)")
        return real(*args, **kw)

    monkeypatch.setattr(store, "record_drop", fails_once)


@pytest.mark.violations(6)
def test_a_drop_booked_after_the_pulse_with_a_failing_write_is_flagged(bench, monkeypatch):
    """Issue 11's bug: the write fails after the pulse: a dispensed drop nobody booked."""
    monkeypatch.setattr(cycle_module.CleanCycle, "place_drop", place_drop_then_book)
    fail_record_drop_once(bench, monkeypatch)
    result = bench.clean("female", wet=True, remove=False)
    assert (bench.state, bench.world.drops_total) == ("fault", 1)
    assert result.outcome == "failed"
    flagged(bench, 6, "1 drops left the nozzle, the books count 0")


def test_a_failing_drop_write_dispenses_nothing(bench, monkeypatch):
    fail_record_drop_once(bench, monkeypatch)
    bench.clean("female", wet=True, remove=False)
    assert (bench.state, bench.world.drops_total) == ("fault", 0)


@pytest.mark.violations(6)
def test_a_jog_that_books_no_ribbon_is_flagged(bench, monkeypatch):
    store = bench.controller.store
    real = store.reserve_positions
    monkeypatch.setattr(store, "reserve_positions", lambda c, n, t, **kw: 0 if kw.get("source") == "jog" else real)
    done = []
    bench.controller.jobs.jog(3, "console:test", done.append)
    bench.run_for(2.0)
    assert done[0].ok and bench.world.positions_total == 3
    flagged(bench, 6, "the wheel moved 1 since", "1500 positions left")


@pytest.mark.violations(6)
def test_prime_drops_not_booked_are_flagged(bench, monkeypatch):
    store = bench.controller.store
    real = store.record_drop
    monkeypatch.setattr(store, "record_drop", lambda t, **kw: None if kw.get("source") == "prime" else real(t, **kw))
    done = []
    bench.controller.jobs.prime(2, "console:test", done.append)
    bench.run_for(3.0)
    assert done[0].ok
    flagged(bench, 6, "1 drops left the nozzle, the books count 0")


# What the station states (STAT? and status, asked on the console as a person asks) against
# physics: hw_sim/statements.py.
def statements_answered(bench: SimBench) -> int:
    return judge(bench).statements.answers


@pytest.mark.violations(6)
def test_cleans_left_rounded_up_in_what_the_station_states_is_flagged(make_bench, monkeypatch):
    """bench/sabotage.py's `cleans_left_rounded_up`: 10 positions are 3 cleans of 3, not 4. The
    books are right; only what the station says to people (and its low warning) overstates."""
    bench = make_bench(Config().replace("cassette", capacity_positions=3 * N + 1))
    books = bench.controller.consumables
    monkeypatch.setattr(books, "cleans_left", lambda cassette: -(-cassette.remaining // N))
    assert bench.clean("female").outcome == "cleaned"
    for source in ("STAT?", "status"):
        flagged(bench, 6, "at swipe-now", f"({source}) 3 cleans left", "at most 7 positions", "room for 2 of 3")
    assert all("books" not in v.text for v in bench.world.violations)


def test_what_the_station_states_holds_on_the_unchanged_firmware(make_bench):
    """The twin: the same cassette used up, a jog leaving a part of a clean, wet cleans and a
    prime, a refill, a leak the station cannot know of (the float switch closes: it says low),
    and a cassette of the type swapped in undeclared: asked at every ready and swipe-now, the
    station never states more than is there."""
    bench = make_bench(Config().replace("cassette", capacity_positions=3 * N + 1))
    c, w = bench.controller, bench.world
    for wet in (True, False, True):
        assert bench.clean("female", wet=wet).outcome == "cleaned"
    assert bench.clean("female").reason is Reason.CASSETTE_EMPTY  # 1 position left: 0 cleans
    done: list = []
    c.jobs.prime(2, "console:test", done.append)
    bench.run_for(3.0)
    w.inject(Fault.EMPTY_RESERVOIR)  # a leak: the books cannot know, the float switch does
    w.fit_cassette("spare")  # another standard cassette, undeclared: the books cannot know either
    bench.run_for(1.0)
    assert bench.clean("female").reason is Reason.CASSETTE_EMPTY
    w.clear(Fault.EMPTY_RESERVOIR)
    c.consumables.refill("console:test")
    c.consumables.declare_new("console:test")
    assert bench.clean("female", wet=True).outcome == "cleaned"
    c.jobs.jog(1, "console:test", done.append)
    bench.run_for(2.0)
    assert bench.clean("female").outcome == "cleaned"
    assert all(r.ok for r in done)
    assert statements_answered(bench) >= 20
    bench.close()


def stating(monkeypatch, **changes) -> None:
    """A firmware whose console states something else than its books (both `STAT?` and `status`
    compose the same snapshot)."""
    real = commands.station_status

    def status(controller):
        s = real(controller)
        values = {k: (v(s) if callable(v) else v) for k, v in changes.items()}
        return dataclasses.replace(s, **values)

    monkeypatch.setattr(commands, "station_status", status)


@pytest.mark.violations(6)
def test_a_status_stating_the_whole_cassette_is_flagged(bench, monkeypatch):
    stating(monkeypatch, ribbon_remaining=CFG.cassette.capacity_positions)
    assert bench.clean("female").outcome == "cleaned"
    for source in ("STAT?", "status"):
        flagged(bench, 6, f"({source}) 1500 positions left", f"at most {1500 - N}")


@pytest.mark.violations(6)
def test_a_status_stating_the_drops_before_the_clean_is_flagged(bench, monkeypatch):
    stating(monkeypatch, fluid_drops_left=lambda s: s.fluid_drops_left + 1)
    assert bench.clean("female", wet=True).outcome == "cleaned"
    drops = CFG.dispenser.reservoir_drops
    for source in ("STAT?", "status"):
        flagged(bench, 6, f"({source}) {drops} drops left", f"at most {drops - 1}")


@pytest.mark.violations(6)
def test_a_status_saying_the_reservoir_is_not_low_while_its_float_switch_reads_low_is_flagged(bench, monkeypatch):
    stating(monkeypatch, fluid_low=False)
    low_reservoir(bench)
    assert bench.clean("female").outcome == "cleaned"
    for source in ("STAT?", "status"):
        flagged(bench, 6, f"({source}) the reservoir is not low")


# =============================================================================== rule 7
def trigger(bench: SimBench, state: str, monkeypatch) -> None:
    """Bring the station to `state` with a handler of that state raising an unexpected error."""
    c, w = bench.controller, bench.world
    if state == "idle":
        monkeypatch.setattr(c, "present", boom)  # the transition a seated connector triggers
        w.present("female")
    elif state == "identifying":
        monkeypatch.setattr(c.cycle, "read_pins", boom)
        w.present("female")
    elif state == "advancing":
        monkeypatch.setattr(c.cycle, "moved", boom)
        w.present("female")
    elif state == "dispensing":
        monkeypatch.setattr(c.hardware.dispenser, "pulse", boom)
        w.set_mode(True)
        w.present("female")
    elif state == "swipe_ready":
        monkeypatch.setattr(c.cycle, "open_swipe", boom)
        w.present("female")
    elif state == "swiping":
        real = c.cycle.judge
        monkeypatch.setattr(c.cycle, "judge", lambda a, **kw: boom() if c.state == "swiping" else real(a, **kw))
        w.present("female")
        assert bench.wait_until(lambda: w.prompting, 10)
        w.swipe()
    elif state == "done":
        monkeypatch.setattr(c, "_maybe_taken_away", boom)
        assert bench.clean("female", remove=False).outcome == "cleaned"
    elif state == "servicing":
        monkeypatch.setattr(c.jobs, "_moved", boom)
        c.jobs.jog(3, "console:test", lambda result: None)
    bench.run_for(2.0)


STATES = ["idle", "identifying", "advancing", "dispensing", "swipe_ready", "swiping", "done", "servicing"]


@pytest.mark.parametrize("state", STATES)
def test_an_unexpected_error_in_every_state_ends_in_a_safe_fault(bench, monkeypatch, state):
    trigger(bench, state, monkeypatch)
    if state == "done":
        bench.world.remove()
    bench.run_for(stuck_s(bench) + 5.0)  # long enough for the judge to call a station stuck
    w = bench.world
    assert bench.state == "fault" and bench.controller.faults.code.value == "internal"
    assert (w.stepper_enabled, w.pump_on, w.leds()) == (False, False, (False, False, True))


@pytest.mark.parametrize("state", STATES)
def test_an_unexpected_error_ignored_in_any_state_is_flagged_as_stuck(bench, monkeypatch, request, state):
    """Issue 11's bug, in every state: the error is logged and ignored, the station sits where it
    was - no fault light, connectors ignored."""
    request.applymarker(pytest.mark.violations(*((5, 7) if state == "swipe_ready" else (7,))))
    bench.loop.on_error(lambda exc: None)
    trigger(bench, state, monkeypatch)
    assert bench.state == state
    if state == "done":
        bench.world.remove()  # the result shown on and on, the guide empty
    bench.run_for(stuck_s(bench) + 5.0)
    assert bench.state == state
    flagged(bench, 7, "stuck")


@pytest.mark.violations(7)
def test_outputs_left_unsafe_after_shutdown_are_flagged(bench, monkeypatch):
    monkeypatch.setattr(bench.controller.hardware.panel, "fault_light", lambda: None)
    bench.close()
    flagged(bench, 7, "after shutdown: fault light off")


def test_a_fault_while_the_wheel_turns_stops_it_at_once(bench):
    """The cassette pulled mid-advance: fault, and not one step more with the red light on."""
    w = bench.world
    seat_and_wait(bench, "female", "advancing")
    bench.run_for(0.05)
    w.remove_cassette()
    bench.run_for(1.0)
    assert bench.state == "fault" and not w.stepper_enabled


def test_a_shutdown_mid_clean_leaves_safe_outputs_and_an_interrupted_record(bench):
    w = bench.world
    seat_and_wait(bench, "female", "advancing", wet=True)
    bench.close()
    assert (w.stepper_enabled, w.pump_on, w.leds()[2]) == (False, False, True)
    assert w.violations == []


# =============================================================================== rule 8
@pytest.mark.violations(8)
def test_a_rejection_never_written_is_flagged(bench, monkeypatch):
    store = bench.controller.store
    real = store.finish_attempt

    def keep_no_rejections(attempt_id, outcome, *args, **kw):
        if outcome is not Outcome.REJECTED:
            real(attempt_id, outcome, *args, **kw)

    monkeypatch.setattr(store, "finish_attempt", keep_no_rejections)
    assert bench.clean("male").outcome == "rejected"
    bench.run_for(1.0)
    flagged(bench, 8, "has no outcome on record")


@pytest.mark.violations(8)
def test_two_records_for_one_attempt_are_flagged(bench, monkeypatch):
    store = bench.controller.store
    real = store.begin_attempt

    def twice(t, mode, identity=None):
        real(t, mode, identity)
        return real(t, mode, identity)

    monkeypatch.setattr(store, "begin_attempt", twice)
    assert bench.clean("female").outcome == "cleaned"
    bench.run_for(1.0)
    flagged(bench, 8, "2 attempt records for one attempt")


@pytest.mark.violations(8)
def test_a_rejection_recorded_after_the_wheel_moved_is_flagged(bench, monkeypatch):
    c = bench.controller
    real = c.cycle.conclude
    monkeypatch.setattr(
        c.cycle,
        "conclude",
        lambda outcome, reason, **kw: real(Outcome.REJECTED if outcome is Outcome.FAILED else outcome, reason, **kw),
    )
    bench.world.inject(Fault.JAM)
    assert bench.clean("female", remove=False).outcome == "rejected"
    finish(bench)
    bench.close()
    flagged(bench, 8, "recorded rejected", "after the wheel stepped")


@pytest.mark.violations(8)
def test_a_jog_without_its_audit_record_is_flagged(bench, monkeypatch):
    store = bench.controller.store
    real = store.audit
    monkeypatch.setattr(
        store, "audit", lambda kind, action, t, **kw: None if action == "jog" else real(kind, action, t, **kw)
    )
    done = []
    bench.controller.jobs.jog(2, "console:test", done.append)
    bench.run_for(2.0)
    assert done[0].ok
    flagged(bench, 8, "the wheel moved with no clean in progress and no maintenance action")


@pytest.mark.violations(8)
def test_a_fault_cleared_on_the_panel_without_its_audit_record_is_flagged(bench, monkeypatch):
    monkeypatch.setattr(bench.controller.faults, "record_clear", lambda source: None)
    w = bench.world
    w.inject(Fault.JAM)
    bench.clean("female", remove=False)
    finish(bench)
    w.clear(Fault.JAM)
    w.press_button(0.1)
    bench.run_for(1.0)
    assert bench.state == "idle"
    flagged(bench, 8, "fault cleared with the panel button")


def test_maintenance_actions_and_a_panel_fault_clear_are_audited(bench):
    c, w = bench.controller, bench.world
    for action in (lambda d: c.jobs.jog(2, "console:test", d), lambda d: c.jobs.prime(2, "console:test", d)):
        done = []
        action(done.append)
        bench.run_for(3.0)
        assert done[0].ok
    done = []
    c.jobs.selftest("console:test", done.append)
    bench.run_for(5.0)
    assert done and done[0].ok, done
    w.inject(Fault.JAM)
    bench.clean("female", remove=False)
    finish(bench)
    w.clear(Fault.JAM)
    w.press_button(0.1)
    bench.run_for(1.0)
    assert bench.state == "idle"


# ===================================================== cancels and removals at every phase
PHASES = ["identifying", "advancing", "dispensing", "swipe_ready", "swiping"]


@pytest.mark.parametrize("wet", [False, True], ids=["dry", "wet"])
@pytest.mark.parametrize("how", ["cancel", "removal"])
@pytest.mark.parametrize("phase", PHASES)
def test_a_cancel_or_removal_at_every_phase_is_judged_right(bench, phase, how, wet):
    """The station's outcome for each is physically right (rules 4, 5, 8 judged by the world):
    no drop after the cancel or removal, a failure (or an early rejection) on record."""
    if phase == "dispensing" and not wet:
        pytest.skip("a dry clean has no dispensing phase")
    w = bench.world
    seat_and_wait(bench, "female", phase, wet=wet)
    drops = w.drops_total
    if how == "cancel":
        w.press_button(0.05)
    else:
        w.remove()
    bench.wait_until(lambda: bench.state in ("done", "idle"), 10)
    result = bench.last_result()
    assert result.outcome == ("rejected" if phase == "identifying" else "failed"), result
    assert w.drops_total == drops, "no drop after the clean was stopped"
    if how == "cancel":
        finish(bench)
    bench.run_for(2.0)
    assert bench.state == "idle"
    (s,) = judge(bench).judged
    assert (s.cancelled_at is not None) is (how == "cancel") and s.removed_at is not None


# ===================================================== the books and records are read, not believed
def test_the_auditor_reads_the_database_file_read_only(bench):
    a = judge(bench).auditor
    assert a is not None and a.path == (bench.state_dir / "station.db").resolve()
    assert a.books("standard") is not None
    assert a.attempts_max() == 0
    import sqlite3

    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        a._db.execute("INSERT INTO audit(t, kind, action) VALUES (0, 'x', 'y')")


def test_the_swipe_bounds_in_force_include_a_console_change(bench):
    """A `config set swipe.max_pass_s` applies at once: the judge reads it from the books."""
    out = bench.controller.settings.change("swipe", "max_pass_s", 2.5, source="console:test", busy=None)
    assert out.ok
    assert judge(bench).config().swipe.max_pass_s == 2.5
    result = bench.clean("female", duration_s=2.8)
    assert result.reason is Reason.TOO_SLOW
    bench.run_for(1.0)
    assert judge(bench).judged[-1].verdict_judged


def test_a_world_reloaded_after_a_power_cut_keeps_the_auditors_baselines(tmp_path):
    world_file = tmp_path / "world.json"
    b1 = SimBench(state_dir=tmp_path / "state", world_options={"state_file": world_file})
    assert b1.clean("female", wet=True).outcome == "cleaned"
    baselines = dict(judge(b1).auditor.baselines)
    b1.power_cut()  # the dead board drives nothing; the OS lets go of its lock on the state directory
    b2 = SimBench(state_dir=tmp_path / "state", wall_start=SIM_EPOCH + 100, world_options={"state_file": world_file})
    try:
        assert judge(b2).auditor.baselines == baselines
        assert b2.clean("female").outcome == "cleaned"
    finally:
        b2.close()
        b1.station.store.close()


def test_a_mode_set_on_the_console_is_the_mode_judged(bench):
    bench.console_mode(Mode.WET)
    assert bench.clean("female", wet=False).drops == 1
