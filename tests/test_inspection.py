"""Clean -> inspect -> re-clean (issue 14, docs/design.md section 10), the station's side: verdicts
received on the console (SCPI) and on two GPIO lines (mock pins), the after and first workflows,
the re-clean sequence escalating to wet-to-dry, quarantine and its release, a verdict that never
comes. Every refusal here is made before anything is used: the world's wheel and pump say so."""

from __future__ import annotations

import json

import pytest
from test_console_protocol import PIN_HASH, Console, err_code

from station.config import Config
from station.console.commands import PIN_KEY
from station.domain import Outcome, Reason, Verdict
from station.events import InspectionDue, QuarantineReleased, VerdictRecorded, WarningRaised
from station.store import InspectionBook


def inspected(mode: str = "after", **more) -> Config:
    return Config().replace("inspection", mode=mode, **more)


def console(bench) -> Console:
    bench.controller.store.set_setting(PIN_KEY, PIN_HASH, bench.controller.wall(), source="test")
    return Console(bench)


def used(bench) -> tuple[int, int]:
    return bench.world.positions_total, bench.world.drops_total


def test_with_inspection_off_a_verdict_is_an_error_and_cleaning_is_as_before(bench):
    c = console(bench)
    assert bench.clean("female").outcome is Outcome.CLEANED and bench.heard(InspectionDue) == []
    out = c.send("INSP:RES PASS")[-1]
    assert err_code(out) == -221 and "inspection is off" in out
    assert c.send("SYST:ERR?")[0].startswith("-221")


def test_after_a_clean_the_verdict_is_awaited_and_a_pass_releases_the_connector(make_bench):
    b = make_bench(inspected())
    c = console(b)
    r = b.clean("female", scan="CBL-0001-A")
    assert b.heard(InspectionDue) == [InspectionDue(r.id, "CBL-0001-A", 300.0)]
    b.world.judge.scanned("CBL-0001-A")  # (the world's record of the scan is the bench's own)
    findings = '{"fibers": [{"fiber": 1, "zone_a": {"defects": 0}}]}'
    assert c.send(f"INSP:RES PASS {findings}") == [
        f"pass for attempt #{r.id} connector CBL-0001-A: released: the end face passed",
        "OK",
    ]
    assert c.send("INSP:RES?") == [
        f"pass attempt #{r.id} connector CBL-0001-A (console:ttyTEST): released: the end face passed"
    ]
    (row,) = InspectionBook(b.controller.store).verdicts(attempt_id=r.id)
    assert (row["verdict"], row["connector"], row["source"]) == ("pass", "CBL-0001-A", "console:ttyTEST")
    assert json.loads(row["detail"]) == json.loads(findings)  # what the probe's software sent, as received
    assert b.heard(VerdictRecorded)[-1].next == "released"
    out = c.send("INSP:RES FAIL")[-1]  # nothing awaits now
    assert err_code(out) == -221 and "no connector awaits inspection" in out


def test_fails_escalate_dry_dry_wet_then_quarantine_until_released(make_bench):
    b = make_bench(inspected())
    c = console(b)
    code = "CBL-0002-B"
    nexts = []
    for wet in (False, False, True):
        r = b.clean("female", scan=code, wet=wet)
        assert r.outcome is Outcome.CLEANED, r
        assert c.send("INSP:RES FAIL")[-1] == "OK"
        nexts.append(b.heard(VerdictRecorded)[-1].next)
        if nexts[-1] == "clean_wet":  # the third clean must be wet: a dry one is refused, nothing used
            before = used(b)
            refused = b.clean("female", scan=code)
            assert (refused.outcome, refused.reason) == (Outcome.REJECTED, Reason.NEEDS_WET) and used(b) == before
    assert nexts == ["clean_dry", "clean_wet", "quarantined"]
    before = used(b)
    r = b.clean("female", scan=code, wet=True)
    assert (r.outcome, r.reason) == (Outcome.REJECTED, Reason.QUARANTINED) and used(b) == before
    assert c.send("quarantine?") == [code]
    assert err_code(c.send(f"quarantine release {code}")[-1]) == -203  # a maintenance engineer's word
    c.login()
    assert c.send(f"quarantine release {code}") == [
        f"connector {code} released from quarantine; its loop begins again",
        "OK",
    ]
    assert b.heard(QuarantineReleased) == [QuarantineReleased(code, "console:ttyTEST")]
    assert c.send("quarantine?") == ["none"]
    assert b.clean("female", scan=code).outcome is Outcome.CLEANED  # its loop begins again, dry
    audit = [(r["action"], r["source"]) for r in b.controller.store.audit_entries() if r["kind"] == "inspection"]
    assert ("quarantined", "station") in audit and ("released", "console:ttyTEST") in audit


def test_while_a_verdict_is_awaited_no_other_connector_is_taken_up(make_bench):
    b = make_bench(inspected())
    b.clean("female", scan="CBL-0003-A")
    before = used(b)
    r = b.clean("female", scan="CBL-0004-A")
    assert (r.outcome, r.reason) == (Outcome.REJECTED, Reason.INSPECT_FIRST) and used(b) == before


def test_a_verdict_that_never_comes_ends_as_no_verdict_and_does_not_release(make_bench):
    b = make_bench(inspected(verdict_timeout_s=30.0))
    r = b.clean("female")
    b.run_for(30.5)
    (v,) = b.heard(VerdictRecorded)
    assert (v.attempt_id, v.verdict, v.source, v.next) == (r.id, Verdict.NO_VERDICT, "station", "clean_dry")
    (row,) = InspectionBook(b.controller.store).verdicts(attempt_id=r.id)
    assert row["verdict"] == "no_verdict"
    assert b.clean("female").outcome is Outcome.CLEANED  # not released: cleaned again


def test_inspect_first_a_pass_releases_with_no_ribbon_and_a_fail_lets_it_be_cleaned(make_bench):
    b = make_bench(inspected("first"))
    c = console(b)
    before = used(b)
    r = b.clean("female")
    assert (r.outcome, r.reason) == (Outcome.REJECTED, Reason.INSPECT_FIRST) and used(b) == before
    assert c.send("scan CBL-0005-A")[-1] == "OK"
    b.world.judge.scanned("CBL-0005-A")
    assert c.send("INSP:RES PASS") == [
        "pass for the connector inspected first connector CBL-0005-A: released: the end face passed",
        "OK",
    ]
    assert used(b) == before
    assert c.send("INSP:RES FAIL")[-1] == "OK"  # the next one, in hand without a code, fails its inspection
    assert b.clean("female").outcome is Outcome.CLEANED
    assert b.heard(InspectionDue)[-1].attempt_id == b.last_result().id


def test_bad_verdicts_are_refused_with_their_reason(make_bench):
    b = make_bench(inspected())
    c = console(b)
    b.clean("female")
    assert err_code(c.send("INSP:RES")[-1]) == -109
    assert err_code(c.send("INSP:RES MAYBE")[-1]) == -222
    bad = c.send("INSP:RES FAIL {zones: A}")[-1]
    assert err_code(bad) == -222 and "not JSON" in bad
    assert b.controller.cycle.inspection.awaited is not None, "a refused verdict changes nothing"


def pulse(bench, line: str, hold_s: float) -> None:
    bench.world._drive(line, True)
    bench.run_for(hold_s)
    bench.world._drive(line, False)
    bench.run_for(0.1)


def test_gpio_lines_from_an_automated_inspector(make_bench):
    b = make_bench(inspected(gpio_fitted=True, pulse_min_s=0.05))
    r = b.clean("female")
    pulse(b, "inspect_fail", 0.01)  # a glitch shorter than pulse_min_s: not a verdict
    assert b.heard(VerdictRecorded) == []
    b.world._drive("inspect_pass", True)
    pulse(b, "inspect_fail", 0.1)  # both lines at once: neither counts
    b.world._drive("inspect_pass", False)
    b.run_for(0.1)
    assert b.heard(VerdictRecorded) == []
    assert any(w.code == "inspection_lines" for w in b.heard(WarningRaised))
    pulse(b, "inspect_fail", 0.1)
    (v,) = b.heard(VerdictRecorded)
    assert (v.attempt_id, v.verdict, v.source, v.next) == (r.id, Verdict.FAIL, "gpio", "clean_dry")
    b.clean("female")
    pulse(b, "inspect_pass", 0.1)
    assert b.heard(VerdictRecorded)[-1].verdict is Verdict.PASS


@pytest.mark.parametrize("mode", ["after", "first"])
def test_without_connector_codes_the_loop_follows_the_connector_in_hand(make_bench, mode):
    b = make_bench(inspected(mode, reclean="dry"))
    c = console(b)
    if mode == "first":
        assert c.send("INSP:RES FAIL")[-1] == "OK"
    assert b.clean("female").outcome is Outcome.CLEANED
    assert c.send("INSP:RES FAIL")[-1] == "OK"
    assert b.heard(VerdictRecorded)[-1].next == "quarantined"  # one clean allowed, then the connector goes
    (row,) = b.controller.store._db.execute("SELECT connector, reason FROM quarantine").fetchall()
    assert row[0] is None and "1 cleans and no PASS" in row[1]


def test_a_stuck_line_let_go_is_not_a_verdict(make_bench):
    """A PASS line held stuck (a wire, a PLC output left on) and then released must not release
    a connector nobody inspected: a pulse longer than pulse_max_s counts as none."""
    b = make_bench(inspected(gpio_fitted=True, pulse_min_s=0.05, pulse_max_s=1.0))
    b.clean("female")
    pulse(b, "inspect_pass", 3.0)
    assert b.heard(VerdictRecorded) == []
    assert any("PASS line held 3.0 s: ignored" in w.text for w in b.heard(WarningRaised))
    assert b.controller.cycle.inspection.awaited is not None, "still awaiting its verdict"


def test_inspect_first_a_verdict_during_a_clean_is_not_given_to_the_connector_being_cleaned(make_bench):
    b = make_bench(inspected("first"))
    c = console(b)
    assert c.send("scan CBL-0006-A")[-1] == "OK"
    assert c.send("INSP:RES FAIL")[-1] == "OK"  # inspected first: to be cleaned
    b.world.judge.scanned("CBL-0006-A")
    b.world.present("female", code="CBL-0006-A")
    assert b.wait_until(lambda: b.world.prompting, 10)
    out = c.send("INSP:RES PASS")[-1]  # the probe's next report arrives mid-clean
    assert err_code(out) == -221 and "a clean is under way" in out
    assert [v.next for v in b.heard(VerdictRecorded)] == ["clean_dry"], "nothing released mid-clean"
    b.world.swipe()
    assert b.wait_until(lambda: b.state == "done", 10)
    b.world.remove()
    b.run_for(2.0)
    assert b.heard(InspectionDue)[-1].connector == "CBL-0006-A"


def test_inspect_first_a_connector_released_at_its_inspection_leaves_no_scan_behind(make_bench):
    """Released (or quarantined) at its first inspection, a scanned connector is done with: its
    code must not tie the next, unscanned connector (found by review: it did)."""
    b = make_bench(inspected("first"))
    c = console(b)
    assert c.send("scan CBL-0007-A")[-1] == "OK"
    assert c.send("INSP:RES PASS")[-1] == "OK"
    assert c.send("scan?") == ["operator none; connector none; cassette not labelled"]
    assert c.send("INSP:RES FAIL")[-1] == "OK"  # the next one, no code: the connector in hand
    assert b.heard(VerdictRecorded)[-1].connector is None


def test_a_clean_switched_to_dry_does_not_use_the_loops_wet_step(make_bench):
    """The loop calls for wet-to-dry; the connector is seated in WET and the switch goes to DRY
    while the wheel turns: the clean goes on dry (never fluid in dry mode), and the wet step is
    still owed, not skipped on the way to quarantine (found by review)."""
    b = make_bench(inspected(reclean="dry,wet"))
    c = console(b)
    b.clean("female", scan="CBL-0008-A")
    assert c.send("INSP:RES FAIL")[-1] == "OK" and b.heard(VerdictRecorded)[-1].next == "clean_wet"
    b.world.scan("CBL-0008-A")
    b.world.set_mode(True)
    b.world.present("female", code="CBL-0008-A")
    assert b.wait_until(lambda: b.state == "advancing", 10)
    b.world.set_mode(False)
    assert b.wait_until(lambda: b.world.prompting, 10)
    b.run_for(0.5)
    b.world.swipe()
    assert b.wait_until(lambda: b.state == "done", 10)
    b.world.remove()
    b.run_for(2.0)
    assert (b.last_result().outcome, b.last_result().mode.value) == (Outcome.CLEANED, "dry")
    assert c.send("INSP:RES FAIL")[-1] == "OK"
    assert b.heard(VerdictRecorded)[-1].next == "clean_wet", "the wet step is still owed"


def test_a_verdict_awaited_when_the_station_stopped_is_recorded_no_verdict_at_its_restart(tmp_path):
    from hw_sim import SimBench

    config = inspected()
    first = SimBench(config, tmp_path)
    r = first.clean("female", scan="CBL-0009-A")
    first.power_cut()  # the station dies awaiting the verdict
    first.controller.store.close()
    second = SimBench(config, tmp_path)
    try:
        (row,) = InspectionBook(second.controller.store).verdicts(attempt_id=r.id)
        assert (row["verdict"], row["source"], row["connector"]) == ("no_verdict", "station", "CBL-0009-A")
        assert "stopped while its verdict was awaited" in row["detail"]
    finally:
        second.close()
