"""Maintenance actions (station/service_jobs.py, station/mode.py and the controller's own requests)
driven through the real controller on a simulated bench, in virtual time: jog, prime, self-test,
fault clear, reset (*RST) and the mode override.

The console tests reach the same code through a serial port, slowly; these call the controller
directly (in a SimBench the test thread *is* the loop thread) and check, for every action:
* what it answered: the ServiceResult's `ok`, its exact `lines` and `error`;
* what physically happened, as the simulator saw the pins: wheel positions, drops, the stepper
  driver and pump left off, no rule violated;
* the books: ribbon used, drops counted, the audit row (kind, action, detail, source, time);
* the controller's state before, during and after, and the events it emitted.
A refused action must leave all of that exactly as it was.
"""

from __future__ import annotations

import json
import re

import pytest

from hw_sim import Fault, SimBench
from hw_sim.bench import SIM_EPOCH
from station.config import Config, ConfigError
from station.domain import CassetteType, FaultCode, Mode, Reason, ServiceResult
from station.events import AttemptFinished, FaultCleared, FaultRaised, MaintenanceDone, ModeSet, StateChanged
from station.faults import NEXT_STEP
from station.ports import Pattern, Sensor
from station.service_jobs import MAX_JOG, MAX_PRIME

CFG = Config()
N = CFG.wheel.positions_per_clean
SPP = CFG.wheel.steps_per_position
JAM_STEPS = CFG.wheel.max_steps_per_position + 1  # steps without an index pulse before a jam
DROP_WAIT = CFG.dispenser.drop_timeout_s + 0.05  # prime's wait per drop with the drop sensor fitted
PULSE_WAIT = CFG.dispenser.pulse_s + 0.05  # ... and without it
SRC = "console:test"
STD = CassetteType.STANDARD
LAMP_TEST_S = 3 * 0.5 + Config().panel.beep_s  # green, amber, red, then one beep
LIGHTS_LINE = "lights and buzzer: shown green, amber, red one at a time, then a beep (check by eye and ear)"
NO_DROP_ERROR = "no drop seen: check the pump and nozzle; station is now in fault"
JAM_ERROR = "wheel jam: station is now in fault"


# ---------------------------------------------------------------------------------- helpers
class Call:
    """One maintenance action: every result its done callback got, with the virtual time."""

    def __init__(self, bench: SimBench) -> None:
        self.bench = bench
        self.started = bench.loop.now()
        self.got: list[tuple[float, ServiceResult]] = []
        self.states_at_done: list[str] = []

    def done(self, result: ServiceResult) -> None:
        self.got.append((self.bench.loop.now(), result))
        self.states_at_done.append(self.bench.state)

    @property
    def result(self) -> ServiceResult:
        assert len(self.got) == 1, f"done called {len(self.got)} times: {self.got}"
        return self.got[0][1]

    @property
    def elapsed(self) -> float:
        assert len(self.got) == 1
        return self.got[0][0] - self.started


def start(bench: SimBench, action: str, *args) -> Call:
    call = Call(bench)
    jobs = bench.controller.jobs
    if action == "jog":
        jobs.jog(args[0], SRC, call.done)
    elif action == "prime":
        jobs.prime(args[0], SRC, call.done)
    elif action == "selftest":
        jobs.selftest(SRC, call.done)
    else:
        raise ValueError(action)
    return call


def run(bench: SimBench, action: str, *args, limit: float = 30.0) -> Call:
    """Start an action, let virtual time pass until it answers, then a little more (to see that
    it answers exactly once and nothing moves afterwards)."""
    call = start(bench, action, *args)
    assert bench.wait_until(lambda: call.got, limit), f"{action} never answered"
    bench.run_for(0.5)
    assert len(call.got) == 1, call.got
    return call


def refused(bench: SimBench, action: str, *args) -> ServiceResult:
    """A refusal answers at once (no time passes) and changes nothing at all."""
    before = snap(bench)
    call = start(bench, action, *args)
    assert len(call.got) == 1, "a refusal answers at once"
    result = call.result
    assert result.ok is False and result.lines == []
    assert call.states_at_done == [before["state"]]
    bench.run_for(0.5)
    assert len(call.got) == 1
    assert snap(bench) == before, "a refused action moved, pumped, booked or audited something"
    return result


def refused_now(bench: SimBench, action: str, *args) -> ServiceResult:
    """Like `refused`, but without letting time pass (a queued edge must stay queued)."""
    before = snap(bench)
    call = start(bench, action, *args)
    result = call.result
    assert result.ok is False and result.lines == []
    assert snap(bench) == before
    return result


def snap(bench: SimBench) -> dict:
    w, store = bench.world, bench.controller.store
    std = store.cassette(STD)
    return {
        "state": bench.state,
        "fault": bench.controller.faults.code,
        "positions": w.positions_total,
        "steps": w.steps_total,
        "drops": w.drops_total,
        "reservoir": w.reservoir,
        "fluid_used": store.fluid()[0],
        "ribbon_used": std.used if std else None,
        "audit": len(store.audit_log(10_000)),
        "ribbon_rows": len(ledger(bench, "ribbon")),
        "drop_rows": len(ledger(bench, "drops")),
    }


def ledger(bench: SimBench, table: str) -> list[tuple]:
    """The store's ribbon or drops ledger, oldest first: (source, positions, attempt) / (source,
    attempt). Read straight from the database: the store has no accessor for a row's source."""
    cols = "source, positions, attempt_id" if table == "ribbon" else "source, attempt_id"
    return [tuple(r) for r in bench.controller.store._db.execute(f"SELECT {cols} FROM {table} ORDER BY id")]


def maintenance_rows(bench: SimBench) -> list[dict]:
    """Audit rows of kind 'maintenance', oldest first."""
    rows = [dict(r) for r in bench.controller.store.audit_log(10_000) if r["kind"] == "maintenance"]
    return sorted(rows, key=lambda r: r["id"])


def assert_audited(row: dict, action: str, detail: dict, *, at: float, source: str = SRC) -> None:
    assert row["kind"] == "maintenance"
    assert row["action"] == action
    assert json.loads(row["detail"]) == detail
    assert row["source"] == source
    assert row["t"] == pytest.approx(SIM_EPOCH + at, abs=1e-9)


def states_since(bench: SimBench, mark: int) -> list[str]:
    """The states entered since `mark` (a length of bench.events)."""
    return [h.event.state for h in bench.events[mark:] if isinstance(h.event, StateChanged)]


def assert_no_job_in_flight(bench: SimBench) -> None:
    """Every job that began (its audit row) has ended (its MaintenanceDone), one for one and in
    order: none is left running. A refused job neither begins nor ends."""
    begun = [r["action"] for r in maintenance_rows(bench) if r["action"] in ("jog", "prime", "selftest")]
    assert [e.action for e in bench.heard(MaintenanceDone)] == begun


def assert_ready_and_safe(bench: SimBench) -> None:
    w = bench.world
    assert bench.state == "idle"
    assert bench.controller.faults.code is None
    assert_no_job_in_flight(bench)
    assert not w.stepper_enabled, "stepper driver left enabled"
    assert not w.pump_on, "pump left on"
    assert w.leds() == (True, False, False), "ready light only"
    assert w.violations == []


def explained(code: str, cause: str) -> str:
    """A fault's text: its cause, then its next step (the code is shown beside it, not in it)."""
    return f"{cause}; {NEXT_STEP[FaultCode(code)]}"


def assert_safe_fault(bench: SimBench, code: str, cause: str) -> None:
    w = bench.world
    assert bench.state == "fault"
    assert bench.controller.faults.code is FaultCode(code)
    assert bench.controller.faults.detail == explained(code, cause)
    assert_no_job_in_flight(bench)
    assert not w.stepper_enabled and not w.pump_on
    assert w.leds()[2], "fault light on"
    assert w.violations == []


def wheel_line(positions: int, of: int, steps: int, seconds: float, *, passed: bool = False) -> str:
    return (
        f"wheel: {'PASS, ' if passed else ''}{positions} of {of} positions confirmed in {steps} steps ({seconds:.3f} s)"
    )


def wheel_steps(line: str) -> tuple[int, int, int, float]:
    m = re.fullmatch(r"wheel: (?:PASS, )?(\d+) of (\d+) positions confirmed in (\d+) steps \((\d+\.\d{3}) s\)", line)
    assert m, line
    return int(m[1]), int(m[2]), int(m[3]), float(m[4])


def start_clean(bench: SimBench, state: str, *, wet: bool = False) -> None:
    w = bench.world
    w.set_mode(wet)
    w.present("female")
    assert bench.wait_until(lambda: bench.state == state, 20), bench.state


def finish_clean(bench: SimBench) -> AttemptFinished:
    """Swipe the connector in place once swipe-now shows, take it away; the clean's result."""
    w = bench.world
    n = len(bench.results())
    assert bench.wait_until(lambda: w.prompting, 20)
    bench.run_for(0.5)
    w.swipe()
    assert bench.wait_until(lambda: len(bench.results()) > n, 20)
    w.remove()
    assert bench.wait_until(lambda: bench.state == "idle", 10)
    return bench.last_result()


def jam_the_wheel_into_fault(bench: SimBench) -> None:
    bench.world.inject(Fault.JAM)
    call = run(bench, "jog", 1)
    assert call.result.error == JAM_ERROR
    assert_safe_fault(bench, "jam", "jog: wheel confirmed 0 of 1 positions")


# ====================================================================================== guards
def test_a_new_bench_is_ready_with_nothing_audited(bench):
    """The starting point the other tests rely on."""
    assert_ready_and_safe(bench)
    assert maintenance_rows(bench) == []
    assert bench.controller.store.cassette(STD).used == 0
    assert bench.world.positions_total == 0 and bench.world.drops_total == 0


@pytest.mark.parametrize("action, args", [("jog", (1,)), ("prime", (1,)), ("selftest", ())])
def test_every_action_is_refused_in_fault(bench, action, args):
    jam_the_wheel_into_fault(bench)
    bench.world.clear(Fault.JAM)  # repaired but not yet cleared: still in fault
    result = refused(bench, action, *args)
    assert result.error == "the station is fault; wait for ready (or clear the fault) first"
    assert bench.state == "fault" and bench.controller.faults.code is FaultCode.JAM


@pytest.mark.parametrize("action, args", [("jog", (1,)), ("prime", (1,)), ("selftest", ())])
def test_every_action_is_refused_during_a_clean_which_goes_on(bench, action, args):
    start_clean(bench, "swipe_ready")
    result = refused(bench, action, *args)
    assert result.error == "the station is swipe_ready; wait for ready (or clear the fault) first"
    outcome = finish_clean(bench)
    assert outcome.outcome == "cleaned" and outcome.positions == N
    assert bench.world.positions_total == N and bench.world.drops_total == 0
    assert ledger(bench, "ribbon") == [("clean", N, outcome.id)]
    assert maintenance_rows(bench) == []
    assert_ready_and_safe(bench)


def test_while_one_action_runs_another_is_refused(bench):
    jog = start(bench, "jog", 2)
    assert bench.state == "servicing"
    for action, args in (("jog", (1,)), ("prime", (1,)), ("selftest", ())):
        other = start(bench, action, *args)
        assert other.result == ServiceResult(
            False, [], "the station is servicing; wait for ready (or clear the fault) first"
        )
    assert bench.wait_until(lambda: jog.got, 10)
    assert jog.result.ok and bench.world.positions_total == 2
    assert [r["action"] for r in maintenance_rows(bench)] == ["jog"]
    assert_ready_and_safe(bench)


@pytest.mark.parametrize("action, args", [("jog", (1,)), ("prime", (1,)), ("selftest", ())])
def test_every_action_is_refused_with_a_connector_in_the_guide(bench, action, args):
    """The connector has just been seated: the controller is still idle (its edge is queued),
    but the guide is not empty, so nothing may move."""
    bench.world.present("female")
    assert bench.state == "idle"
    result = refused_now(bench, action, *args)
    assert result.error == "a connector is in the guide; take it away first"
    # the queued edge then starts the clean as usual: the refusal did not get in its way
    outcome = finish_clean(bench)
    assert outcome.outcome == "cleaned"
    assert maintenance_rows(bench) == []
    assert bench.world.positions_total == N and bench.world.drops_total == 0


@pytest.mark.parametrize("action, args", [("jog", (1,)), ("selftest", ())])
def test_jog_and_selftest_need_a_cassette(bench, action, args):
    """The cassette has just been taken out (its edge still queued: the station is idle)."""
    bench.world.remove_cassette()
    assert bench.state == "idle"
    result = refused_now(bench, action, *args)
    assert result.error == "no cassette fitted"
    bench.run_for(0.5)
    assert bench.state == "fault" and bench.controller.faults.code is FaultCode.NO_CASSETTE
    assert maintenance_rows(bench) == []
    assert bench.world.positions_total == 0


def test_prime_needs_no_cassette(bench):
    """Prime pumps into the waste, so the guard does not ask for a cassette: with the cassette
    just pulled (edge queued) it starts; then the station hears the cassette gone and the fault
    ends the prime, safely, with its drop booked."""
    w, store = bench.world, bench.controller.store
    assert bench.controller.jobs.refusal(need_cassette=False) is None
    w.remove_cassette()
    assert bench.controller.jobs.refusal(need_cassette=False) is None
    assert bench.controller.jobs.refusal(need_cassette=True) == "no cassette fitted"
    call = start(bench, "prime", 3)
    assert call.got == [] and bench.state == "servicing", "prime started without a cassette"
    assert w.pump_on
    assert bench.wait_until(lambda: call.got, 5)
    bench.run_for(1.0)
    assert call.result == ServiceResult(False, [], "fault no_cassette")
    assert_safe_fault(bench, "no_cassette", "the cradle is empty")
    assert w.drops_total == 1 and store.fluid()[0] == 1
    assert ledger(bench, "drops") == [("prime", None)]
    (row,) = maintenance_rows(bench)
    assert_audited(row, "prime", {"drops": 3}, at=0.0)
    w.fit_cassette("standard")
    bench.run_for(0.5)
    assert_ready_and_safe(bench)


@pytest.mark.parametrize("positions", [0, -1, MAX_JOG + 1, 1000])
def test_jog_out_of_range_is_refused(bench, positions):
    result = refused(bench, "jog", positions)
    assert result.error == f"jog takes 1 to 30 positions, not {positions}"
    assert MAX_JOG == 30
    assert_ready_and_safe(bench)


@pytest.mark.parametrize("drops", [0, -1, MAX_PRIME + 1, 1000])
def test_prime_out_of_range_is_refused(bench, drops):
    result = refused(bench, "prime", drops)
    assert result.error == f"prime takes 1 to 20 drops, not {drops}"
    assert MAX_PRIME == 20
    assert_ready_and_safe(bench)


def test_the_state_is_checked_before_the_count(bench):
    jam_the_wheel_into_fault(bench)
    assert refused(bench, "jog", 0).error == "the station is fault; wait for ready (or clear the fault) first"
    assert refused(bench, "prime", 99).error == "the station is fault; wait for ready (or clear the fault) first"


def test_jog_range_is_checked_before_the_ribbon_left(make_bench):
    bench = make_bench(Config().replace("cassette", capacity_positions=5))
    assert refused(bench, "jog", MAX_JOG + 1).error == "jog takes 1 to 30 positions, not 31"
    assert refused(bench, "jog", 6).error == "only 5 positions left on the cassette"


def test_jog_and_selftest_respect_the_ribbon_left_by_the_books(make_bench):
    """The books' capacity is the configured one (a cassette is assumed new at its first fit):
    with 5 positions, jog 6 is refused, jog 5 uses them all, then only prime still works."""
    bench = make_bench(Config().replace("cassette", capacity_positions=5))
    w, store = bench.world, bench.controller.store
    assert store.cassette(STD).capacity == 5 and store.cassette(STD).remaining == 5
    assert refused(bench, "jog", 6).error == "only 5 positions left on the cassette"
    # exactly the ribbon left is allowed
    call = run(bench, "jog", 5)
    assert call.result.ok and call.result.lines == [wheel_line(5, 5, 5 * SPP, call.elapsed)]
    assert w.positions_total == 5 and store.cassette(STD).used == 5
    # now nothing is left
    assert refused(bench, "jog", 1).error == "only 0 positions left on the cassette"
    assert refused(bench, "selftest").error == "the cassette is used up"
    assert w.positions_total == 5 and store.cassette(STD).used == 5
    assert [r["action"] for r in maintenance_rows(bench)] == ["jog"]
    # priming uses no ribbon, so it is still allowed
    assert run(bench, "prime", 1).result == ServiceResult(True, ["pump: 1 drop"])
    assert_ready_and_safe(bench)


def test_selftest_with_exactly_one_position_left_runs(make_bench):
    bench = make_bench(Config().replace("cassette", capacity_positions=5))
    store = bench.controller.store
    assert run(bench, "jog", 4).result.ok
    call = run(bench, "selftest")
    assert call.result.ok, call.result
    assert call.result.lines[1] == "cassette: standard, 1 position left"
    assert store.cassette(STD).used == 5 and bench.world.positions_total == 5
    assert refused(bench, "selftest").error == "the cassette is used up"


def test_a_physical_cassette_shorter_than_its_books_jams_the_jog(bench):
    """The books cannot know the real ribbon end: running into it is a jam, safely."""
    w, store = bench.world, bench.controller.store
    w.inject(Fault.EMPTY_RIBBON, left=2)
    call = run(bench, "jog", 3)
    result = call.result
    assert result.ok is False and result.error == JAM_ERROR
    (line,) = result.lines
    confirmed, of, steps, seconds = wheel_steps(line)
    assert (confirmed, of) == (2, 3)
    assert steps == 2 * SPP + JAM_STEPS - 1
    assert line == wheel_line(2, 3, steps, call.elapsed)
    assert_safe_fault(bench, "jam", "jog: wheel confirmed 2 of 3 positions")
    assert w.positions_total == 2
    assert store.cassette(STD).used == 3, "the whole jog stays booked (ribbon is never under-counted)"


# ========================================================================================= jog
@pytest.mark.parametrize("positions", [1, 3, MAX_JOG])
def test_jog_moves_and_books_exactly_the_positions_asked(bench, positions):
    w, store = bench.world, bench.controller.store
    t0 = bench.loop.now()
    mark = len(bench.events)
    call = start(bench, "jog", positions)
    # the ribbon is booked and audited before the wheel moves
    assert bench.state == "servicing" and call.got == []
    assert bench.controller.hardware.panel.pattern is Pattern.SERVICE
    assert store.cassette(STD).used == positions and w.positions_total == 0
    assert ledger(bench, "ribbon") == [("jog", positions, None)]
    (row,) = maintenance_rows(bench)
    assert_audited(row, "jog", {"positions": positions}, at=t0)
    assert bench.wait_until(lambda: call.got, 30)
    bench.run_for(0.5)
    assert call.states_at_done == ["idle"], "back to ready before the answer"
    assert call.result == ServiceResult(True, [wheel_line(positions, positions, positions * SPP, call.elapsed)], "")
    assert w.positions_total == positions and w.steps_total == positions * SPP
    assert w.fitted.position == positions
    assert store.cassette(STD).used == positions
    assert w.drops_total == 0 and store.fluid()[0] == 0
    assert states_since(bench, mark) == ["servicing", "idle"]
    assert len(maintenance_rows(bench)) == 1
    assert_ready_and_safe(bench)


def test_jogs_add_up(bench):
    w, store = bench.world, bench.controller.store
    assert run(bench, "jog", 2).result.ok
    assert run(bench, "jog", 5).result.ok
    assert w.positions_total == 7 and store.cassette(STD).used == 7
    assert ledger(bench, "ribbon") == [("jog", 2, None), ("jog", 5, None)]
    assert [json.loads(r["detail"]) for r in maintenance_rows(bench)] == [{"positions": 2}, {"positions": 5}]
    # a clean afterwards starts on the next fresh section
    outcome = bench.clean("female")
    assert outcome.outcome == "cleaned"
    assert bench.controller.store.attempts(limit=1)[0].first_position == 7
    assert w.swipes[-1].section == 7 + N and w.swipes[-1].fresh
    assert_ready_and_safe(bench)


def test_jog_into_a_jam_is_a_jam_fault(bench):
    w, store = bench.world, bench.controller.store
    w.inject(Fault.JAM)
    call = run(bench, "jog", 3)
    assert call.result == ServiceResult(False, [wheel_line(0, 3, JAM_STEPS, call.elapsed)], JAM_ERROR)
    assert call.states_at_done == ["fault"]
    cause = "jog: wheel confirmed 0 of 3 positions"
    assert_safe_fault(bench, "jam", cause)
    assert bench.heard(FaultRaised) == [FaultRaised(FaultCode.JAM, explained("jam", cause))]
    assert w.positions_total == 0
    assert store.cassette(STD).used == 3, "booked before moving: never under-counted"
    assert [r["action"] for r in maintenance_rows(bench)] == ["jog"]
    # repaired and cleared, the station jogs again
    w.clear(Fault.JAM)
    assert bench.controller.request_fault_clear(SRC).ok
    assert run(bench, "jog", 1).result.ok
    assert w.positions_total == 1
    assert_ready_and_safe(bench)


def test_jog_that_jams_part_way_reports_what_it_confirmed(bench):
    w = bench.world
    call = start(bench, "jog", 3)
    assert bench.wait_until(lambda: w.positions_total >= 1, 10)
    w.inject(Fault.JAM)
    assert bench.wait_until(lambda: call.got, 10)
    bench.run_for(0.5)
    result = call.result
    assert result.ok is False and result.error == JAM_ERROR
    # the step that brought the index pulse counts as the first one without it
    assert result.lines == [wheel_line(1, 3, SPP + JAM_STEPS - 1, call.elapsed)]
    assert_safe_fault(bench, "jam", "jog: wheel confirmed 1 of 3 positions")
    assert w.positions_total == 1


# ======================================================================================= prime
@pytest.mark.parametrize("drops, line", [(1, "pump: 1 drop"), (3, "pump: 3 drops"), (MAX_PRIME, "pump: 20 drops")])
def test_prime_pumps_and_books_exactly_the_drops_asked(bench, drops, line):
    w, store = bench.world, bench.controller.store
    reservoir = w.reservoir
    t0 = bench.loop.now()
    mark = len(bench.events)
    call = start(bench, "prime", drops)
    assert bench.state == "servicing" and call.got == []
    assert w.pump_on, "the first drop is pumped at once"
    assert store.fluid()[0] == 1, "each drop is booked before its pulse"
    (row,) = maintenance_rows(bench)
    assert_audited(row, "prime", {"drops": drops}, at=t0)
    assert bench.wait_until(lambda: call.got, 30)
    bench.run_for(0.5)
    assert call.result == ServiceResult(True, [line], "")
    assert call.states_at_done == ["idle"]
    # with the drop sensor fitted, each drop waits out the drop timeout (plus a margin)
    assert call.elapsed == pytest.approx(drops * DROP_WAIT, abs=1e-6)
    assert w.drops_total == drops and w.reservoir == reservoir - drops
    assert store.fluid()[0] == drops
    assert ledger(bench, "drops") == [("prime", None)] * drops
    assert w.positions_total == 0 and store.cassette(STD).used == 0, "priming uses no ribbon"
    assert w.fitted.drops == {0: drops}, "into the waste on the section under the window"
    assert states_since(bench, mark) == ["servicing", "idle"]
    assert_ready_and_safe(bench)


def test_prime_with_a_clogged_pump_is_a_no_drop_fault(bench):
    w, store = bench.world, bench.controller.store
    w.inject(Fault.PUMP_CLOG)
    reservoir = w.reservoir
    call = run(bench, "prime", 3)
    assert call.result == ServiceResult(False, ["pump: drop 1 not seen by the drop sensor"], NO_DROP_ERROR)
    assert call.states_at_done == ["fault"]
    assert call.elapsed == pytest.approx(DROP_WAIT, abs=1e-6), "stops at the first missing drop"
    cause = "prime: the drop sensor did not see drop 1 of 3"
    assert_safe_fault(bench, "no_drop", cause)
    assert bench.heard(FaultRaised) == [FaultRaised(FaultCode.NO_DROP, explained("no_drop", cause))]
    assert w.drops_total == 0 and w.reservoir == reservoir
    assert store.fluid()[0] == 1, "the attempted drop is booked (never under-counted)"
    # cause removed, fault cleared: priming works again
    w.clear(Fault.PUMP_CLOG)
    assert bench.controller.request_fault_clear(SRC) == ServiceResult(True, ["fault no_drop cleared"])
    assert run(bench, "prime", 2).result == ServiceResult(True, ["pump: 2 drops"])
    assert w.drops_total == 2 and store.fluid()[0] == 3
    assert_ready_and_safe(bench)


def test_prime_that_clogs_part_way_names_the_missing_drop(bench):
    w, store = bench.world, bench.controller.store
    call = start(bench, "prime", 5)
    assert bench.wait_until(lambda: w.drops_total >= 2, 10)
    w.inject(Fault.PUMP_CLOG)
    assert bench.wait_until(lambda: call.got, 10)
    bench.run_for(0.5)
    assert call.result == ServiceResult(False, ["pump: drop 3 not seen by the drop sensor"], NO_DROP_ERROR)
    assert call.elapsed == pytest.approx(3 * DROP_WAIT, abs=1e-6)
    assert_safe_fault(bench, "no_drop", "prime: the drop sensor did not see drop 3 of 5")
    assert w.drops_total == 2 and store.fluid()[0] == 3


def test_prime_without_a_drop_sensor_trusts_the_pump(make_bench):
    """No drop sensor fitted: nothing to check, and each drop only waits for its pulse."""
    config = Config().replace("dispenser", drop_sensor_fitted=False)
    bench = make_bench(config)
    w, store = bench.world, bench.controller.store
    assert not bench.controller.hardware.sensors.fitted(Sensor.DROP)
    call = run(bench, "prime", 3)
    assert call.result == ServiceResult(True, ["pump: 3 drops"])
    assert call.elapsed == pytest.approx(3 * (config.dispenser.pulse_s + 0.05), abs=1e-6)
    assert call.elapsed < 3 * DROP_WAIT
    assert w.drops_total == 3 and store.fluid()[0] == 3
    # a clogged pump goes unnoticed without the sensor: the drops are still booked
    w.inject(Fault.PUMP_CLOG)
    call = run(bench, "prime", 2)
    assert call.result == ServiceResult(True, ["pump: 2 drops"])
    assert call.elapsed == pytest.approx(2 * PULSE_WAIT, abs=1e-6)
    assert w.drops_total == 3 and store.fluid()[0] == 5
    assert_ready_and_safe(bench)


def test_prime_waits_for_each_pulse_to_end_without_a_drop_sensor(make_bench):
    """A long pulse: the next drop must not come while the pump still runs (it would be lost)."""
    config = Config().replace("dispenser", drop_sensor_fitted=False, pulse_s=0.4)
    bench = make_bench(config)
    w, store = bench.world, bench.controller.store
    call = run(bench, "prime", 3)
    assert call.result == ServiceResult(True, ["pump: 3 drops"])
    assert call.elapsed == pytest.approx(3 * 0.45, abs=1e-6)
    assert w.drops_total == 3 and store.fluid()[0] == 3
    assert_ready_and_safe(bench)


def test_a_pump_pulse_that_outlasts_the_drop_timeout_is_refused_by_the_configuration():
    """Was a bug (found writing these tests): with the drop sensor fitted, prime waits
    drop_timeout_s + 0.05 between pulses, so a pulse_s longer than that made the next pulse a
    no-op while the pump still ran (a drop booked but never pumped, then a false no_drop
    fault); a clean's drop timeout would also end before its pulse. The configuration now
    refuses it, naming both keys."""
    with pytest.raises(
        ConfigError, match=r"dispenser\.drop_timeout_s = 0\.1: must be longer than dispenser\.pulse_s \(0\.2\)"
    ):
        Config().replace("dispenser", pulse_s=0.2, drop_timeout_s=0.1)
    with pytest.raises(ConfigError, match="drop_timeout_s"):
        Config().replace("dispenser", pulse_s=0.1, drop_timeout_s=0.1)
    assert Config().replace("dispenser", pulse_s=0.1, drop_timeout_s=0.11).dispenser.drop_timeout_s == 0.11


# =================================================================================== self-test
def test_selftest_on_a_healthy_bench_passes_every_part(bench):
    w, store = bench.world, bench.controller.store
    reservoir = w.reservoir
    t0 = bench.loop.now()
    mark = len(bench.events)
    call = start(bench, "selftest")
    assert bench.state == "servicing" and call.got == []
    assert store.cassette(STD).used == 1, "the position is booked before the wheel moves"
    assert ledger(bench, "ribbon") == [("selftest", 1, None)]
    (row,) = maintenance_rows(bench)
    assert_audited(row, "selftest", {}, at=t0)
    assert bench.wait_until(lambda: call.got, 10)
    bench.run_for(0.5)
    result = call.result
    assert result.ok is True and result.error == ""
    assert len(result.lines) == 5
    assert result.lines[0] == "sensors: PASS (at rest)"
    assert result.lines[1] == "cassette: standard, 1500 positions left"
    confirmed, of, steps, seconds = wheel_steps(result.lines[2])
    assert result.lines[2] == wheel_line(1, 1, SPP, seconds, passed=True)
    assert 0 < seconds < call.elapsed - DROP_WAIT + 1e-3
    assert result.lines[3] == "pump: PASS, 1 drop"
    assert result.lines[4] == LIGHTS_LINE
    assert call.states_at_done == ["idle"]
    # wheel move, then one drop waiting out the drop timeout, then the lamp test
    assert call.elapsed == pytest.approx(seconds + DROP_WAIT + LAMP_TEST_S, abs=1e-3)
    # one position and one drop, both physically and in the books
    assert w.positions_total == 1 and w.steps_total == SPP
    assert w.drops_total == 1 and w.reservoir == reservoir - 1
    assert w.fitted.drops == {1: 1}, "the drop lands after the move, on the new section"
    assert store.cassette(STD).used == 1 and store.fluid()[0] == 1
    assert ledger(bench, "drops") == [("selftest", None)]
    assert states_since(bench, mark) == ["servicing", "idle"]
    assert len(maintenance_rows(bench)) == 1
    assert_ready_and_safe(bench)
    # and again: the cassette line counts down
    again = run(bench, "selftest")
    assert again.result.ok
    assert again.result.lines[1] == "cassette: standard, 1499 positions left"
    assert store.cassette(STD).used == 2 and w.positions_total == 2 and w.drops_total == 2


def test_selftest_reports_the_male_mt_cassette(make_bench):
    bench = make_bench(cassette="male_mt")
    call = run(bench, "selftest")
    assert call.result.ok
    assert call.result.lines[1] == f"cassette: male_mt, {CFG.cassette.capacity_positions} positions left"
    assert bench.controller.store.cassette(CassetteType.MALE_MT).used == 1


@pytest.mark.parametrize("sensors", [["gate_a"], ["gate_b"], ["gate_a", "gate_b"]])
def test_selftest_with_a_gate_stuck_blocked_fails_the_sensors(bench, sensors):
    w, store = bench.world, bench.controller.store
    for name in sensors:
        w.inject(Fault.STUCK_SENSOR, sensor=name, active=True)
    bench.run_for(0.5)
    assert bench.state == "idle", "a stuck gate gives no fault while ready"
    call = run(bench, "selftest")
    result = call.result
    assert result.ok is False and result.error == "sensors not at rest"
    assert result.lines[0] == f"sensors: FAIL ({', '.join(sensors)} not at rest)"
    # the other parts are still exercised and pass
    assert result.lines[1] == "cassette: standard, 1500 positions left"
    assert result.lines[2].startswith("wheel: PASS, 1 of 1 positions confirmed in 64 steps")
    assert result.lines[3:] == ["pump: PASS, 1 drop", LIGHTS_LINE]
    assert w.positions_total == 1 and w.drops_total == 1
    assert store.cassette(STD).used == 1 and store.fluid()[0] == 1
    assert bench.state == "idle" and not w.stepper_enabled and not w.pump_on
    assert w.violations == []


@pytest.mark.parametrize("pin", ["pin_left", "pin_right"])
def test_selftest_with_a_guide_pin_sensor_stuck_fails_the_sensors(bench, pin):
    """Asked at once (before the idle check would notice the pin), the self-test names it; once
    ready again, the station sees the implausible pin and goes to a sensor fault."""
    w = bench.world
    w.inject(Fault.STUCK_SENSOR, sensor=pin, active=True)
    call = run(bench, "selftest")
    result = call.result
    assert result.ok is False and result.error == "sensors not at rest"
    assert result.lines[0] == f"sensors: FAIL ({pin} not at rest)"
    assert result.lines[3:] == ["pump: PASS, 1 drop", LIGHTS_LINE]
    assert w.positions_total == 1 and w.drops_total == 1
    bench.run_for(CFG.guide_pins.timeout_s + 0.5)
    assert_safe_fault(bench, "sensor", "a guide-pin sensor reads a pin with no connector")


def test_selftest_with_the_drop_sensor_stuck_fails_sensors_and_pump(bench):
    w, store = bench.world, bench.controller.store
    w.inject(Fault.STUCK_SENSOR, sensor="drop", active=True)
    call = run(bench, "selftest")
    result = call.result
    assert result.ok is False and result.error == NO_DROP_ERROR
    assert result.lines[0] == "sensors: FAIL (drop not at rest)"
    assert result.lines[2].startswith("wheel: PASS, 1 of 1 positions")
    assert result.lines[3:] == ["pump: drop 1 not seen by the drop sensor"]
    assert_safe_fault(bench, "no_drop", "selftest: the drop sensor did not see drop 1 of 1")
    assert w.drops_total == 1 and store.fluid()[0] == 1


def test_selftest_with_a_jammed_wheel_is_a_jam_fault(bench):
    w, store = bench.world, bench.controller.store
    w.inject(Fault.JAM)
    call = run(bench, "selftest")
    assert call.result == ServiceResult(
        False,
        [
            "sensors: PASS (at rest)",
            "cassette: standard, 1500 positions left",
            wheel_line(0, 1, JAM_STEPS, call.elapsed),
        ],
        JAM_ERROR,
    )
    assert call.states_at_done == ["fault"]
    cause = "selftest: wheel confirmed 0 of 1 positions"
    assert_safe_fault(bench, "jam", cause)
    assert bench.heard(FaultRaised) == [FaultRaised(FaultCode.JAM, explained("jam", cause))]
    assert w.positions_total == 0 and w.drops_total == 0
    assert store.cassette(STD).used == 1 and store.fluid()[0] == 0, "the pump is never tried"


def test_selftest_with_a_clogged_pump_is_a_no_drop_fault(bench):
    w, store = bench.world, bench.controller.store
    w.inject(Fault.PUMP_CLOG)
    call = run(bench, "selftest")
    result = call.result
    assert result.ok is False and result.error == NO_DROP_ERROR
    assert result.lines[:2] == ["sensors: PASS (at rest)", "cassette: standard, 1500 positions left"]
    confirmed, of, steps, seconds = wheel_steps(result.lines[2])
    assert result.lines[2] == wheel_line(1, 1, SPP, seconds, passed=True)
    assert result.lines[3:] == ["pump: drop 1 not seen by the drop sensor"]
    assert call.states_at_done == ["fault"]
    assert_safe_fault(bench, "no_drop", "selftest: the drop sensor did not see drop 1 of 1")
    assert w.positions_total == 1 and w.drops_total == 0
    assert store.cassette(STD).used == 1 and store.fluid()[0] == 1


def test_selftest_without_a_drop_sensor(make_bench):
    bench = make_bench(Config().replace("dispenser", drop_sensor_fitted=False))
    w = bench.world
    call = run(bench, "selftest")
    assert call.result.ok
    assert call.result.lines[0] == "sensors: PASS (at rest)"
    assert call.result.lines[3:] == ["pump: NOT CHECKED (no drop sensor fitted), 1 drop", LIGHTS_LINE]
    seconds = wheel_steps(call.result.lines[2])[3]
    assert call.elapsed == pytest.approx(seconds + PULSE_WAIT + LAMP_TEST_S, abs=1e-3)
    assert w.drops_total == 1 and w.positions_total == 1
    assert_ready_and_safe(bench)


def test_selftest_really_drives_every_light_and_the_buzzer(bench):
    """Was a bug (found writing these tests): the self-test said it drove the lights and the
    buzzer but only showed the service pattern (amber blinking)."""
    w = bench.world
    seen: set[str] = set()

    most = [0]

    def look() -> None:
        green, amber, red = w.leds()
        most[0] = max(most[0], green + amber + red)
        seen.update(
            name for name, on in (("green", green), ("amber", amber), ("red", red), ("beep", w.output("buzzer"))) if on
        )

    call = start(bench, "selftest")
    look()
    assert bench.wait_until(lambda: (look(), bool(call.got))[1], 10)
    assert call.result.lines[-1] == LIGHTS_LINE
    assert seen == {"green", "amber", "red", "beep"}, f"seen during the self-test: {sorted(seen)}"
    assert most[0] == 1, "one light at a time (green and amber together would read as swipe-now)"
    assert w.violations == []


# ================================================================================= fault clear
def test_fault_clear_with_no_fault(bench):
    before = snap(bench)
    assert bench.controller.request_fault_clear(SRC) == ServiceResult(False, [], "no fault to clear")
    assert snap(bench) == before
    assert_ready_and_safe(bench)


def test_fault_clear_refused_while_the_cause_is_still_there(bench):
    w = bench.world
    w.inject(Fault.STUCK_SENSOR, sensor="pin_left", active=True)
    bench.run_for(CFG.guide_pins.timeout_s + 0.5)
    cause = "a guide-pin sensor reads a pin with no connector"
    assert_safe_fault(bench, "sensor", cause)
    before = snap(bench)
    assert bench.controller.request_fault_clear(SRC) == ServiceResult(
        False, [], f"fault sensor still present: {explained('sensor', cause)}"
    )
    assert snap(bench) == before
    assert_safe_fault(bench, "sensor", cause)
    assert maintenance_rows(bench) == []
    # the technician fixes the sensor: now it clears
    w.clear(Fault.STUCK_SENSOR)
    bench.run_for(0.1)
    t = bench.loop.now()
    assert bench.controller.request_fault_clear(SRC) == ServiceResult(True, ["fault sensor cleared"], "")
    (row,) = maintenance_rows(bench)
    assert_audited(row, "fault_clear", {"fault": "sensor"}, at=t)
    assert bench.heard(FaultCleared) == [FaultCleared(FaultCode.SENSOR)]
    bench.run_for(0.5)
    assert_ready_and_safe(bench)


def test_fault_clear_refused_with_no_cassette(bench):
    w = bench.world
    w.remove_cassette()
    bench.run_for(0.5)
    assert_safe_fault(bench, "no_cassette", "the cradle is empty")
    assert bench.controller.request_fault_clear("console:other") == ServiceResult(
        False, [], "fault no_cassette still present: the cradle is empty; fit a cassette (the fault clears by itself)"
    )
    assert bench.state == "fault" and maintenance_rows(bench) == []


def test_fault_clear_of_a_jam_once_repaired(bench):
    jam_the_wheel_into_fault(bench)
    bench.world.clear(Fault.JAM)
    t = bench.loop.now()
    assert bench.controller.request_fault_clear("panel") == ServiceResult(True, ["fault jam cleared"], "")
    rows = maintenance_rows(bench)
    assert [r["action"] for r in rows] == ["jog", "fault_clear"]
    assert_audited(rows[-1], "fault_clear", {"fault": "jam"}, at=t, source="panel")
    assert bench.state == "idle" and bench.controller.faults.code is None
    bench.run_for(0.5)
    assert_ready_and_safe(bench)
    # a second clear has nothing to do
    assert bench.controller.request_fault_clear(SRC) == ServiceResult(False, [], "no fault to clear")
    assert len(maintenance_rows(bench)) == 2


# ======================================================================================= reset
def test_reset_is_refused_in_fault(bench):
    jam_the_wheel_into_fault(bench)
    before = snap(bench)
    assert bench.controller.request_reset(SRC) == ServiceResult(
        False, [], "in fault: clear the fault (fault clear) instead"
    )
    bench.run_for(0.5)
    assert snap(bench) == before
    assert_safe_fault(bench, "jam", "jog: wheel confirmed 0 of 1 positions")
    assert [r["action"] for r in maintenance_rows(bench)] == ["jog"]


def test_reset_when_ready_is_audited_and_changes_nothing_else(bench):
    w = bench.world
    before = snap(bench)
    t = bench.loop.now()
    mark = len(bench.events)
    assert bench.controller.request_reset(SRC) == ServiceResult(True, ["reset to ready"], "")
    bench.run_for(0.5)
    (row,) = maintenance_rows(bench)
    assert_audited(row, "reset", {"state": "idle"}, at=t)
    assert states_since(bench, mark) == [], "already ready: no state change"
    after = snap(bench)
    assert after["audit"] == before["audit"] + 1
    assert {k: v for k, v in after.items() if k != "audit"} == {k: v for k, v in before.items() if k != "audit"}
    assert bench.results() == []
    assert_ready_and_safe(bench)
    assert w.positions_total == 0


def test_reset_at_swipe_now_interrupts_the_clean(bench):
    w, store = bench.world, bench.controller.store
    start_clean(bench, "swipe_ready", wet=True)
    assert w.prompting and w.positions_total == N and w.drops_total == 1
    t = bench.loop.now()
    assert bench.controller.request_reset(SRC) == ServiceResult(True, ["reset to ready"], "")
    assert bench.state == "idle"
    assert not w.stepper_enabled and not w.pump_on
    (row,) = maintenance_rows(bench)
    assert_audited(row, "reset", {"state": "swipe_ready"}, at=t)
    result = bench.last_result()
    assert result.outcome == "interrupted" and result.reason is Reason.INTERRUPTED
    rec = store.attempts(limit=1)[0]
    assert rec.outcome == "interrupted" and rec.reason == "interrupted" and rec.positions == N and rec.drops == 1
    # the connector is still in the guide: the station asks for it to be taken away
    bench.run_for(1.0)
    assert bench.state == "done" and not w.prompting
    w.remove()
    assert bench.wait_until(lambda: bench.state == "idle", 5)
    bench.run_for(0.5)
    assert len(bench.results()) == 1
    assert_ready_and_safe(bench)
    # the next clean is on fresh ribbon, never the interrupted section
    assert bench.clean("female").outcome == "cleaned"
    assert w.swipes[-1].section == 2 * N and w.swipes[-1].fresh
    assert w.violations == []


def test_reset_while_the_wheel_advances_for_a_clean_stops_it(bench):
    w = bench.world
    start_clean(bench, "advancing")
    assert bench.wait_until(lambda: w.positions_total >= 1, 10)
    assert w.stepper_enabled
    t = bench.loop.now()
    assert bench.controller.request_reset(SRC).ok
    assert bench.state == "idle" and not w.stepper_enabled
    positions = w.positions_total
    assert positions < N
    bench.run_for(2.0)
    assert w.positions_total == positions, "the wheel stopped at the reset"
    assert json.loads(maintenance_rows(bench)[-1]["detail"]) == {"state": "advancing"}
    assert bench.last_result().outcome == "interrupted"
    assert maintenance_rows(bench)[-1]["t"] == pytest.approx(SIM_EPOCH + t)
    w.remove()
    assert bench.wait_until(lambda: bench.state == "idle", 5)
    bench.run_for(0.5)
    assert_ready_and_safe(bench)


def test_reset_during_a_jog_stops_the_wheel_and_ends_the_jog(bench):
    w, store = bench.world, bench.controller.store
    call = start(bench, "jog", 10)
    assert bench.wait_until(lambda: w.positions_total >= 2, 10)
    assert bench.state == "servicing" and w.stepper_enabled
    t = bench.loop.now()
    mark = len(bench.events)
    assert bench.controller.request_reset(SRC) == ServiceResult(True, ["reset to ready"], "")
    assert call.result == ServiceResult(False, [], "reset")
    assert bench.state == "idle" and not w.stepper_enabled
    positions = w.positions_total
    bench.run_for(3.0)
    assert len(call.got) == 1, "the stopped move never reports"
    assert w.positions_total == positions < 10
    assert store.cassette(STD).used == 10, "the whole jog stays booked"
    rows = maintenance_rows(bench)
    assert [r["action"] for r in rows] == ["jog", "reset"]
    assert_audited(rows[1], "reset", {"state": "servicing"}, at=t)
    assert states_since(bench, mark) == ["idle"]
    assert_ready_and_safe(bench)
    # the wheel is free again straight away
    again = run(bench, "jog", 1)
    assert again.result.ok and w.positions_total == positions + 1


def test_reset_during_a_prime_stops_the_pump_at_once(bench):
    w, store = bench.world, bench.controller.store
    call = start(bench, "prime", 5)
    assert w.pump_on and w.drops_total == 1
    t = bench.loop.now()
    assert bench.controller.request_reset(SRC) == ServiceResult(True, ["reset to ready"], "")
    assert not w.pump_on, "the pump is switched off at the reset, not at the end of its pulse"
    assert call.result == ServiceResult(False, [], "reset")
    assert bench.state == "idle"
    bench.run_for(5 * DROP_WAIT + 1.0)
    assert len(call.got) == 1
    assert w.drops_total == 1 and store.fluid()[0] == 1, "no further drop after the reset"
    rows = maintenance_rows(bench)
    assert [r["action"] for r in rows] == ["prime", "reset"]
    assert_audited(rows[1], "reset", {"state": "servicing"}, at=t)
    assert_ready_and_safe(bench)


def test_reset_between_prime_drops(bench):
    w, store = bench.world, bench.controller.store
    call = start(bench, "prime", 5)
    assert bench.wait_until(lambda: w.drops_total >= 2 and not w.pump_on, 10)
    assert bench.controller.request_reset(SRC).ok
    assert call.result == ServiceResult(False, [], "reset")
    bench.run_for(5.0)
    assert w.drops_total == 2 and store.fluid()[0] == 2
    assert_ready_and_safe(bench)


def test_reset_during_a_selftest(bench):
    w = bench.world
    call = start(bench, "selftest")
    assert bench.wait_until(lambda: w.drops_total == 1, 10)
    assert bench.controller.request_reset(SRC).ok
    result = call.result
    assert result.ok is False and result.error == "reset"
    assert result.lines[:2] == ["sensors: PASS (at rest)", "cassette: standard, 1500 positions left"]
    assert result.lines[2].startswith("wheel: PASS, 1 of 1 positions")
    assert len(result.lines) == 3, "the pump line is only written once the drop check ends"
    bench.run_for(2.0)
    assert len(call.got) == 1
    assert_ready_and_safe(bench)


# ======================================================================================== mode
def test_mode_override_wet_then_dry_then_back_to_the_panel(bench):
    w, c = bench.world, bench.controller
    w.set_mode(False)  # panel switch on DRY
    t1 = bench.loop.now()
    assert bench.console_mode(Mode.WET, SRC) == ServiceResult(True, ["mode wet (console)"], "")
    assert c.mode.override is Mode.WET and c.mode.current() is Mode.WET
    assert bench.heard(ModeSet) == [ModeSet(Mode.WET, SRC)]
    assert w.console_mode == "wet"
    # the next clean is wet although the panel says dry
    n = len(w.swipes)
    result = bench.clean("female", wet=False)
    assert result.outcome == "cleaned" and result.mode is Mode.WET and result.drops == 1
    assert w.drops_total == 1 and len(w.swipes) == n + 1

    t2 = bench.loop.now()
    assert bench.console_mode(Mode.DRY, "console:other") == ServiceResult(True, ["mode dry (console)"], "")
    result = bench.clean("female", wet=True)  # panel says wet, console says dry
    assert result.outcome == "cleaned" and result.mode is Mode.DRY and result.drops == 0
    assert w.drops_total == 1

    t3 = bench.loop.now()
    assert bench.console_mode(None, SRC) == ServiceResult(True, ["mode wet (panel switch)"], "")  # panel left on wet
    assert c.mode.override is None
    assert w.console_mode is None
    result = bench.clean("female", wet=True)
    assert result.mode is Mode.WET and result.drops == 1
    w.set_mode(False)
    assert bench.console_mode(None, "panel") == ServiceResult(True, ["mode dry (panel switch)"], "")

    assert bench.heard(ModeSet) == [
        ModeSet(Mode.WET, SRC),
        ModeSet(Mode.DRY, "console:other"),
        ModeSet(None, SRC),
        ModeSet(None, "panel"),
    ]
    rows = maintenance_rows(bench)
    assert [r["action"] for r in rows] == ["mode"] * 4
    assert_audited(rows[0], "mode", {"mode": "wet"}, at=t1)
    assert_audited(rows[1], "mode", {"mode": "dry"}, at=t2, source="console:other")
    assert_audited(rows[2], "mode", {"mode": "switch"}, at=t3)
    assert_audited(rows[3], "mode", {"mode": "switch"}, at=bench.loop.now(), source="panel")
    assert_ready_and_safe(bench)


def test_mode_set_to_dry_during_a_wet_clean_means_no_drop(bench):
    """The console's mode counts like the switch: set to dry before the drop, none comes."""
    w, c = bench.world, bench.controller
    start_clean(bench, "advancing", wet=True)
    assert bench.console_mode(Mode.DRY, SRC) == ServiceResult(True, ["mode dry (console)"], "")
    result = finish_clean(bench)
    assert result.outcome == "cleaned" and result.mode is Mode.DRY and result.drops == 0
    assert w.drops_total == 0 and c.store.fluid()[0] == 0
    assert_ready_and_safe(bench)


def test_mode_shown_follows_the_panel_switch_when_not_overridden(bench):
    w = bench.world
    w.set_mode(True)
    bench.run_for(0.1)
    assert bench.console_mode(None, SRC).lines == ["mode wet (panel switch)"]
    assert bench.console_mode(Mode.DRY, SRC).lines == ["mode dry (console)"]
    w.set_mode(False)
    bench.run_for(0.1)
    assert bench.console_mode(Mode.WET, SRC).lines == ["mode wet (console)"]
    assert bench.status().mode is Mode.WET
    assert bench.state == "idle"


def test_only_a_drop_arriving_counts_in_a_prime_not_a_drop_sensor_letting_go(bench):
    """The drop sensor was stuck 'drop' and lets go during the prime of a clogged pump: that
    edge is not a drop."""
    w = bench.world
    w.inject(Fault.PUMP_CLOG)
    w.inject(Fault.STUCK_SENSOR, sensor="drop", active=True)
    bench.run_for(0.0)  # the station hears it stick while ready
    call = start(bench, "prime", 1)
    bench.run_for(0.01)
    w.clear(Fault.STUCK_SENSOR)  # released: an inactive edge while servicing
    assert bench.wait_until(lambda: call.got, 5)
    assert call.result == ServiceResult(False, ["pump: drop 1 not seen by the drop sensor"], NO_DROP_ERROR)
    assert_safe_fault(bench, "no_drop", "prime: the drop sensor did not see drop 1 of 1")
