"""The suite's physics judge (conftest.physics_judge): every simulated bench a test builds is
judged from the world's record at the end, so a firmware bug the world sees fails whichever
test happened to run into it, not only a test that looks."""

from __future__ import annotations

import pytest
from conftest import physics_verdict

from hw_sim import SimBench


def plant(bench: SimBench, rule: int) -> None:
    """A violation as the world records one (its own judging is tested elsewhere)."""
    assert bench.world is not None
    bench.world._violate(rule, "planted by the test")


def test_a_clean_record_passes(make_bench):
    b = make_bench()
    b.clean("female")
    assert physics_verdict([b.world.violations], set()) == []


def test_an_undeclared_violation_fails_naming_it(make_bench):
    b = make_bench()
    plant(b, 1)
    (problem,) = physics_verdict([b.world.violations], set())
    assert "recorded violations" in problem and "rule=1" in problem and "planted by the test" in problem
    b.world.violations.clear()  # this test's own bench must not fail it


def test_a_declared_violation_must_happen_and_others_still_fail(make_bench):
    a, b = make_bench(), make_bench()
    plant(b, 4)
    assert physics_verdict([a.world.violations, b.world.violations], {4}) == []
    assert physics_verdict([a.world.violations, b.world.violations], {4, 7}) == [
        "violations of rules [7] were declared but none happened"
    ]
    plant(a, 2)
    assert physics_verdict([a.world.violations, b.world.violations], {4}) == [
        f"the simulated world recorded violations: {a.world.violations}"
    ]
    a.world.violations.clear()
    b.world.violations.clear()


@pytest.mark.violations(3)
def test_the_marker_declares_what_a_test_expects(bench):
    plant(bench, 3)


def test_benches_built_directly_are_judged_too(tmp_path, request):
    """Not only the fixtures: a SimBench a test constructs itself is on the judge's list."""
    b = SimBench(state_dir=tmp_path)
    try:
        assert len(request.node.judged_records) == 1 and request.node.judged_records[0] is b.world.violations
    finally:
        b.close()
