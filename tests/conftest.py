"""Shared test set-up: hypothesis profiles and a simulated bench fixture."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

# Never let an outcome depend on wall-clock speed (shared, noisy machines): no deadlines.
settings.register_profile("ci", max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("soak", max_examples=20_000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))


@pytest.fixture
def bench(tmp_path):
    """A simulated bench (standard cassette) on a fresh state directory; checks physics at the end."""
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
