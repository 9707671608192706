"""End faces on the simulated bench (hw_sim.faces, composed by World): a connector comes with a
face (clean unless told how dirty), each stroke the hand makes works on it as the cleaning model
says, from what the world physically knows (fresh or used section, a drop on it, the stroke's
speed and extent), and the simulated probe grades the face the operator holds. The station runs
unchanged on mock pins throughout; the physics judge watches every bench."""

from __future__ import annotations

import io
import json
import random

import pytest

from hw_sim import scenario
from hw_sim.actions import ActionError, ActionRefused, perform
from hw_sim.bench import SimBench
from hw_sim.endface import EndFace, make_face
from hw_sim.iec import grade
from hw_sim.probe import SimProbe
from station.domain import Outcome, Reason


def test_a_connector_comes_with_a_clean_face_unless_told_otherwise():
    with SimBench() as b:
        assert b.world.connector_face is None
        b.world.present("female")
        face = b.world.connector_face
        assert face == EndFace.clean()
        b.world.remove()
        assert b.world.connector_face is None  # out of the guide ...
        assert b.world.faces.in_hand is face  # ... and in the operator's hand


def test_a_heavy_connector_cleaned_through_the_station_is_cleaner_and_the_probe_grades_it():
    with SimBench() as b:
        seed = b.world.faces.seed
        before = make_face("heavy", random.Random(seed))  # the face the world makes first from its seed
        assert not grade(before).passed
        result = b.clean("female", dirt="heavy")
        assert result is not None and result.outcome is Outcome.CLEANED
        after = b.world.faces.in_hand
        assert after is not None and after.fiber_type == before.fiber_type
        assert after.particle_count() < 0.3 * before.particle_count()
        assert after.damage() == before.damage()
        report = b.world.faces.inspect()
        assert report.detail == grade(after).to_json()
        assert report.verdict == grade(after).verdict


def test_cleaning_again_on_fresh_ribbon_keeps_cleaning_the_same_face():
    face = make_face("heavy", random.Random(21))
    counts = [face.particle_count()]
    with SimBench() as b:
        for _ in range(3):
            assert b.clean("female", face=face).outcome is Outcome.CLEANED
            counts.append(face.particle_count())
        assert b.world.touched_twice() == []
    assert counts == sorted(counts, reverse=True) and counts[-1] < counts[0] / 10
    assert grade(face).passed


def test_the_stations_drop_makes_the_swipe_wet_to_dry_and_lifts_the_film():
    oily_dry, oily_wet = make_face("oily", random.Random(22)), make_face("oily", random.Random(22))
    filmed = oily_dry.film_fibers()
    assert filmed > 5
    with SimBench() as b:
        assert b.clean("female", wet=False, face=oily_dry).outcome is Outcome.CLEANED
        assert b.clean("female", wet=True, face=oily_wet).outcome is Outcome.CLEANED
        assert b.world.drops_total == 1
    assert oily_dry.film_fibers() == filmed  # dry: smeared, never lifted
    assert oily_wet.film_fibers() <= 1


def test_a_swipe_long_after_the_drop_has_dried_is_a_dry_swipe():
    face = make_face("oily", random.Random(23))
    filmed = face.film_fibers()
    with SimBench() as b:
        b.world.faces.params = b.world.faces.params.__class__(drop_lifetime_s=0.2)  # a fast-drying fluid
        assert b.clean("female", wet=True, face=face, delay_s=1.0).outcome is Outcome.CLEANED
    assert face.film_fibers() == filmed


def test_a_partial_swipe_cleans_only_the_fibers_it_crossed():
    face = make_face("heavy", random.Random(24))
    before = face.copy()
    with SimBench() as b:
        result = b.clean("female", variant="partial", face=face)
        assert result.outcome is Outcome.FAILED and result.reason is Reason.PARTIAL
    for i, (now, was) in enumerate(zip(face.fibers, before.fibers, strict=True)):
        if EndFace.column(i) >= 6:  # the side the ribbon never reached
            assert now == was
    crossed_before = sum(len(f.b.particles) + len(f.a.particles) for f in before.fibers[:6])
    crossed_after = sum(len(f.b.particles) + len(f.a.particles) for f in face.fibers[:6])
    assert crossed_after < crossed_before / 2


def test_a_second_pass_over_the_used_section_dirties_a_clean_face():
    face = EndFace.clean()
    with SimBench() as b:
        result = b.clean("female", variant="double", face=face)
        assert result.outcome is Outcome.FAILED and result.reason is Reason.BACK_AND_FORTH
        assert len(b.world.swipes) == 1  # one stroke, two passes over its section
    assert face.particle_count() > 0  # debris the used section gave back
    assert face.damage() == EndFace.clean().damage()


def test_a_connector_swiped_over_a_section_another_used_picks_up_its_dirt():
    heavy = make_face("heavy", random.Random(26))
    with SimBench() as b:
        assert b.clean("female", face=heavy).outcome is Outcome.CLEANED
        cassette, section = b.world.fitted.name, b.world.fitted.position
        load = list(b.world.faces.ribbon[(cassette, section)])
        assert len(load) > 50  # what the heavy face left on the section
        # a male connector on the standard cassette is refused before the wheel moves ...
        clean = EndFace.clean()
        result = b.clean("male", face=clean, remove=False)
        assert result.outcome is Outcome.REJECTED
        # ... and the operator pulls it across the window anyway, over the used section
        b.world.swipe()
        b.run_for(2.0)
        b.world.remove()
        assert b.world.swipes[-1].fresh is False and b.world.swipes[-1].section == section
        assert b.world.touched_twice() == [(cassette, section)]
    picked = sorted(s for f in clean.fibers for z in ("a", "b") for s in f.zone(z).particles)
    assert len(picked) > 0.15 * len(load)
    assert sum(s in load for s in picked) > 0.8 * len(picked)  # mostly the heavy face's own grains


def test_the_probe_reports_through_the_callback_it_is_given():
    heard = []
    probe = SimProbe(on_report=heard.append)
    dirty = make_face("heavy", random.Random(25))
    report = probe.inspect(dirty)
    assert heard == [report] == probe.reports
    assert report.verdict == "FAIL" and not report.passed and report.failures
    verb, verdict, detail = report.console_line().split(" ", 2)
    assert (verb, verdict) == ("INSP:RES", "FAIL")
    failed = [f["fiber"] for f in grade(dirty).to_json()["fibers"] if not f["pass"]]
    assert json.loads(detail)["failed"] == failed  # a summary that fits the console's line
    assert report.summary().startswith("probe: FAIL: fiber ")
    assert probe.inspect(EndFace.clean()).summary() == "probe: PASS (12 fibers)"


def test_the_bench_actions_present_dirty_connectors_and_probe_them():
    with SimBench() as b:
        assert perform(b, "present", {"connector": "female", "dirt": "heavy"}) == "female connector presented (heavy)"
        face = b.world.connector_face
        assert face is not None and face.particle_count() > 0
        with pytest.raises(ActionRefused, match="in the guide; take it out first"):
            perform(b, "probe", {})
        perform(b, "wait_for", {"state": "swipe_now"})
        perform(b, "swipe", {})
        perform(b, "wait_for", {"state": "done"})
        perform(b, "remove", {})
        assert perform(b, "probe", {}).startswith(b.world.faces.probe.reports[-1].summary() + " (sent INSP:RES ")
        assert b.world.faces.probe.reports[-1].detail == grade(face).to_json()
        perform(b, "wait_for", {"state": "idle"})
        assert perform(b, "present", {"connector": "female", "again": "true"}) == "female connector presented again"
        assert b.world.connector_face is face
        with pytest.raises(ActionRefused, match="still in the guide"):
            perform(b, "present", {"connector": "female", "again": "true"})
        with pytest.raises(ActionError, match="dirt = 'filthy': allowed clean, light, heavy, oily, damaged"):
            perform(b, "present", {"connector": "female", "dirt": "filthy"})


def test_a_scenario_file_presents_a_dirty_connector_and_probes_it(tmp_path):
    path = tmp_path / "dirty.toml"
    path.write_text(
        """name = "a heavy connector, cleaned and probed"
[[steps]]
present = { connector = "female", dirt = "heavy" }
[[steps]]
wait_for = { state = "swipe_now" }
[[steps]]
swipe = { direction = "down" }
[[steps]]
wait_for = { state = "done" }
expect = { outcome = "cleaned" }
[[steps]]
remove = true
[[steps]]
probe = true
""",
        encoding="utf-8",
    )
    out = io.StringIO()
    assert scenario.run(path, out, state_dir=tmp_path / "state"), out.getvalue()
    assert "probe: " in out.getvalue()
