"""Rule 10 (issue 14): the simulated probe reports through the station's real adapters (its
console's dispatch on a port of its own, or the PASS/FAIL GPIO lines on mock pins), and the judge
holds the station's inspection records to those reports and to the faces' physics. The unchanged
firmware records no violation; firmware with a planted bug is caught."""

from __future__ import annotations

import json
import random

import pytest

from hw_sim.actions import perform
from hw_sim.endface import make_face
from hw_sim.probe import SimProbe
from station.config import Config
from station.console.protocol import MAX_LINE
from station.domain import Outcome, Reason, ServiceResult, Verdict
from station.events import VerdictRecorded
from station.inspection import Inspection
from station.store import InspectionBook

CODE = "CBL-0100-A"


def inspected(mode: str = "after", **more) -> Config:
    return Config().replace("inspection", mode=mode, **more)


def probe(b) -> str:
    return perform(b, "probe", {})


def rows(b) -> list[tuple[str, str | None, str]]:
    book = InspectionBook(b.controller.store)
    return [(r["verdict"], r["connector"], r["source"]) for r in book.verdicts(connector=CODE)]


def clean_again(b, wet: bool = False):
    """The same connector (its face in hand) scanned and cleaned again."""
    return b.clean("female", scan=CODE, wet=wet, face=b.world.faces.in_hand)


def test_the_console_line_fits_the_console_even_for_a_ruined_24_fiber_face():
    face = make_face("damaged", random.Random(3), fibers=24)
    for fiber in face.fibers:  # every fiber fails in both zones
        fiber.a.particles.extend([6.0, 7.0])
        fiber.b.particles.extend([12.0])
    report = SimProbe().inspect(face)
    line = report.console_line()
    assert len(line.encode()) <= MAX_LINE
    verb, verdict, summary = line.split(" ", 2)
    body = json.loads(summary)
    assert (verb, verdict, body["fibers"], body["failed"]) == ("INSP:RES", "FAIL", 24, list(range(1, 25)))
    assert body["more"] == 24 - len(body["zones"]) > 0  # the counts that did not fit are counted
    assert body["zones"]["1"]["A"][0] >= 2


def test_the_probe_reports_on_the_console_and_the_loop_ends_in_a_pass_with_no_violation(make_bench):
    b = make_bench(inspected())
    r = b.clean("female", scan=CODE, dirt="heavy")
    assert r.outcome is Outcome.CLEANED
    verdicts = []
    for _ in range(3):
        said = probe(b)
        verdicts.append(b.world.probe_port.delivered[-1].verdict)
        assert "sent INSP:RES" in said
        if verdicts[-1] == "pass":
            break
        nxt = b.heard(VerdictRecorded)[-1].next
        assert clean_again(b, wet=nxt == "clean_wet").outcome is Outcome.CLEANED
    assert verdicts[0] == "fail" and verdicts[-1] == "pass", verdicts  # heavy: one dry clean is not enough
    assert rows(b) == [(v, CODE, "console:probe") for v in verdicts]
    assert b.heard(VerdictRecorded)[-1].next == "released"
    b.close()
    assert b.world.judge.inspection.checks > 0 and b.world.violations == []


def test_the_probe_pulses_the_gpio_lines_when_they_are_fitted(make_bench):
    b = make_bench(inspected(gpio_fitted=True))
    b.clean("female", scan=CODE, dirt="clean")
    assert probe(b).endswith("(pulsed the PASS line)")
    assert rows(b) == [("pass", CODE, "gpio")]
    (d,) = b.world.probe_port.delivered
    assert d.t - d.inspected_at > b.config.inspection.pulse_min_s  # held longer than the station's minimum


@pytest.mark.violations(10)
def test_a_station_recording_pass_for_a_fail_is_caught(make_bench, monkeypatch):
    record = InspectionBook.record

    def flipped(self, t, verdict, **kw):
        return record(self, t, "pass" if verdict == "fail" else verdict, **kw)

    monkeypatch.setattr(InspectionBook, "record", flipped)
    b = make_bench(inspected())
    b.clean("female", scan=CODE, dirt="heavy")
    probe(b)
    assert b.world.probe_port.delivered[-1].verdict == "fail" and rows(b)[-1][0] == "pass"
    b.run_for(1.0)
    b.close()
    (v,) = b.world.violations
    assert v.rule == 10 and "the probe reported FAIL" in v.text


@pytest.mark.violations(10)
def test_a_pass_kept_from_before_the_clean_is_caught(make_bench, monkeypatch):
    """A station that keeps a verdict which came with nothing awaiting and applies it to the
    next clean releases a connector on an inspection made before its last clean."""
    verdict, cleaned = Inspection.verdict, Inspection.cleaned
    kept = []

    def keeping(self, v, detail, source):
        if self.awaited is None:
            kept.append((v, detail, source))
            return ServiceResult(True, ["kept for the next clean"])
        return verdict(self, v, detail, source)

    def applying(self, attempt_id, connector, mode="dry"):
        cleaned(self, attempt_id, connector, mode)
        while kept:
            verdict(self, *kept.pop(0))

    monkeypatch.setattr(Inspection, "verdict", keeping)
    monkeypatch.setattr(Inspection, "cleaned", applying)
    b = make_bench(inspected())
    b.world.present("female", code=CODE, dirt="clean")  # taken in hand, not cleaned
    b.world.remove()
    b.wait_until(lambda: b.state == "idle", 10)
    probe(b)  # inspected before it is cleaned: nothing awaits a verdict
    assert rows(b) == []
    clean_again(b)
    assert rows(b) == [("pass", CODE, "console:probe")]
    b.run_for(1.0)
    b.close()
    assert any(v.rule == 10 and "after the inspection that passed it" in v.text for v in b.world.violations)


def _to_quarantine(b) -> None:
    b.clean("female", scan=CODE, dirt="damaged")
    for wet in (False, True, None):
        probe(b)
        if wet is None:
            break
        assert clean_again(b, wet=wet).outcome is Outcome.CLEANED
    assert b.heard(VerdictRecorded)[-1].next == "quarantined"


def test_a_quarantined_connector_is_refused_with_no_violation(make_bench):
    b = make_bench(inspected())
    _to_quarantine(b)
    r = clean_again(b, wet=True)
    assert (r.outcome, r.reason) == (Outcome.REJECTED, Reason.QUARANTINED)
    b.close()
    assert b.world.violations == []


@pytest.mark.violations(10)
def test_a_station_ignoring_quarantine_is_caught(make_bench, monkeypatch):
    refusal = Inspection.refusal

    def forgetful(self, connector, mode):
        reason = refusal(self, connector, mode)
        return None if reason is Reason.QUARANTINED else reason

    monkeypatch.setattr(Inspection, "refusal", forgetful)
    b = make_bench(inspected())
    _to_quarantine(b)
    assert clean_again(b).outcome is Outcome.CLEANED  # cleaned while quarantined
    b.run_for(1.0)
    b.close()
    assert any(v.rule == 10 and "while it is quarantined" in v.text for v in b.world.violations)


def test_a_persons_verdict_on_another_console_port_is_their_word(make_bench):
    b = make_bench(inspected())
    r = b.clean("female", scan=CODE, dirt="heavy")
    assert b.controller.cycle.inspection.verdict(Verdict.PASS, "", "console:ttyLAB").ok
    assert InspectionBook(b.controller.store).verdicts(attempt_id=r.id)[0]["source"] == "console:ttyLAB"
    b.close()
    assert b.world.violations == []
