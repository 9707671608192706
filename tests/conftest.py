"""Shared test set-up: hypothesis profiles and a simulated bench fixture."""

from __future__ import annotations

import json
import os
import shutil

import pytest
from hypothesis import HealthCheck, settings

# Never let an outcome depend on wall-clock speed (shared, noisy machines): no deadlines.
settings.register_profile("ci", max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("soak", max_examples=20_000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))


def require_tool(*names: str, install: str) -> None:
    """A test that needs system programs: in CI (CI set) a missing one fails the test, since
    .ci/run installs them; elsewhere it is skipped, saying how to install it."""
    missing = [name for name in names if shutil.which(name) is None]
    if not missing:
        return
    text = f"{', '.join(missing)} not installed ({install})"
    if os.environ.get("CI"):
        pytest.fail(f"{text}: .ci/run must install it")
    pytest.skip(text)


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "violations(*rules): the simulated world is expected to record violations of these rules "
        "(docs/design.md section 3); any other violation, or none of these, fails the test",
    )


@pytest.fixture(autouse=True)
def physics_judge(request, monkeypatch):
    """Every simulated bench a test builds is judged at the end from the world's physical
    record: a violation of a rule of section 3 fails the test unless the test declares it with
    `@pytest.mark.violations(rule, ...)` (and then it must happen)."""
    from hw_sim import bench as sim_bench

    # Each world's own list of violations, not the benches: a long test (the soak) abandons
    # thousands of benches at power cuts, and keeping them would keep their memory.
    records: list = []
    original = sim_bench.SimBench.__init__

    def init(self, *args, **kwargs):
        original(self, *args, **kwargs)
        if self.world is not None:
            records.append(self.world.violations)

    monkeypatch.setattr(sim_bench.SimBench, "__init__", init)
    request.node.judged_records = records  # what the judge will look at (see test_physics_judge)
    yield
    marker = request.node.get_closest_marker("violations")
    log_violations(request.node.nodeid, records)
    problems = physics_verdict(records, set(marker.args) if marker else set())
    assert not problems, "; ".join(problems)


def log_violations(test: str, records) -> None:
    """With MPO_VIOLATIONS_LOG set, every violation the world recorded is appended there as a
    JSON line (the sabotage script tells "flagged by the simulator" from "caught by a test")."""
    path = os.environ.get("MPO_VIOLATIONS_LOG")
    if not path:
        return
    with open(path, "a", encoding="utf-8") as out:
        for violations in records:
            for v in violations:
                out.write(json.dumps({"test": test, "rule": v.rule, "t": v.t, "text": v.text}) + "\n")


def physics_verdict(records, expected: set[int]) -> list[str]:
    """What the worlds' records (their lists of violations) say against the test's
    declaration (empty: all is well)."""
    seen = [v for violations in records for v in violations]
    problems = []
    unexpected = [v for v in seen if v.rule not in expected]
    if unexpected:
        problems.append(f"the simulated world recorded violations: {unexpected}")
    missing = expected - {v.rule for v in seen}
    if missing:
        problems.append(f"violations of rules {sorted(missing)} were declared but none happened")
    return problems


@pytest.fixture
def bench(tmp_path):
    """A simulated bench (standard cassette) on a fresh state directory; the physics judge
    (`physics_judge`) checks the world's record at the end."""
    from hw_sim import SimBench

    b = SimBench(state_dir=tmp_path)
    yield b
    b.close()


@pytest.fixture
def make_bench(tmp_path):
    """SimBench factory for tests that need their own configuration: each bench on its own
    fresh state directory, all closed at the end."""
    from hw_sim import SimBench

    made: list = []

    def make(config=None, **kw):
        b = SimBench(config, state_dir=tmp_path / f"bench{len(made)}", **kw)
        made.append(b)
        return b

    yield make
    for b in made:
        b.close()
