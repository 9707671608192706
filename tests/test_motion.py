"""The step ramp and the advance bookkeeping (index pulses, jam rule, abort)."""

from __future__ import annotations

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from station.config import Config
from station.motion import AdvanceJob, Ramp
from station.ports import MotionStatus

WHEEL = Config().wheel
RAMP = Ramp(WHEEL.start_rate_hz, WHEEL.max_rate_hz, WHEEL.accel_hz_per_s)  # 300 -> 1200 Hz


# ------------------------------------------------------------------------------------------ ramp
@pytest.mark.parametrize("expected", [1, 2, 3, 64, 192, 5000])
def test_a_move_starts_and_arrives_at_the_start_rate(expected):
    assert RAMP.rate(0, expected) == RAMP.start_rate_hz
    assert RAMP.rate(expected - 1, expected) == RAMP.start_rate_hz


def test_a_long_move_cruises_at_the_max_rate_and_never_exceeds_it():
    # v^2 = v0^2 + 2 a s: 300 -> 1200 Hz at 6000 Hz/s takes 112.5 steps each way
    expected = 1000
    rates = [RAMP.rate(i, expected) for i in range(expected)]
    assert max(rates) == RAMP.max_rate_hz
    assert all(RAMP.start_rate_hz <= r <= RAMP.max_rate_hz for r in rates)
    cruise = [i for i, r in enumerate(rates) if r == RAMP.max_rate_hz]
    assert cruise == list(range(cruise[0], cruise[-1] + 1))  # one plateau


@pytest.mark.parametrize("expected", [4, 192, 225])
def test_a_move_too_short_to_accelerate_fully_never_reaches_the_max_rate(expected):
    rates = [RAMP.rate(i, expected) for i in range(expected)]
    assert max(rates) < RAMP.max_rate_hz
    assert rates[0] == rates[-1] == RAMP.start_rate_hz


@pytest.mark.parametrize("expected", [2, 7, 64, 192])
def test_the_ramp_accelerates_then_decelerates_symmetrically(expected):
    rates = [RAMP.rate(i, expected) for i in range(expected)]
    assert rates == rates[::-1]
    half = (expected + 1) // 2
    assert rates[:half] == sorted(rates[:half])  # speeding up (or cruising)
    assert rates[half - 1 :] == sorted(rates[half - 1 :], reverse=True)  # slowing down


@pytest.mark.parametrize("past", [0, 1, 10, 1000])
def test_past_the_expected_steps_the_wheel_crawls_at_the_start_rate(past):
    expected = 192
    assert RAMP.rate(expected + past, expected) == RAMP.start_rate_hz
    assert RAMP.interval(expected + past, expected) == pytest.approx(1 / RAMP.start_rate_hz)


def test_interval_is_the_inverse_of_rate_and_durations_add_up():
    for i in range(192):
        assert RAMP.interval(i, 192) == pytest.approx(1 / RAMP.rate(i, 192))
    assert RAMP.nominal_duration(192) == pytest.approx(sum(RAMP.interval(i, 192) for i in range(192)))
    assert RAMP.nominal_duration(0) == 0
    # at least the cruise time, at most the crawl time
    assert 192 / RAMP.max_rate_hz < RAMP.nominal_duration(192) < 192 / RAMP.start_rate_hz


rates = st.floats(min_value=10.0, max_value=20_000.0, allow_nan=False)


@given(
    start=rates,
    top=rates,
    accel=st.floats(min_value=10.0, max_value=1_000_000.0, allow_nan=False),
    expected=st.integers(min_value=0, max_value=20_000),
    step=st.integers(min_value=0, max_value=40_000),
)
def test_the_rate_always_lies_between_start_and_max(start, top, accel, expected, step):
    assume(top >= start)  # the configuration refuses anything else
    ramp = Ramp(start, top, accel)
    rate = ramp.rate(step, expected)
    assert start <= rate <= top
    assert ramp.interval(step, expected) > 0
    if step >= expected - 1:
        assert rate == start  # arrives at, then crawls at, the start rate
    if 0 <= step < expected:
        assert rate == ramp.rate(expected - 1 - step, expected)


# ----------------------------------------------------------------------------------- advance job
def job(positions=3, spp=4, max_steps=6) -> AdvanceJob:
    return AdvanceJob(positions, spp, max_steps, RAMP)


def step(j: AdvanceJob, n: int) -> MotionStatus | None:
    status = None
    for _ in range(n):
        status = j.stepped()
    return status


def test_a_new_job_expects_positions_times_steps_per_position():
    j = job(positions=3, spp=64, max_steps=96)
    assert (j.expected_steps, j.steps, j.confirmed, j.status) == (192, 0, 0, None)
    assert j.next_interval() == RAMP.interval(0, 192)
    step(j, 10)
    assert j.next_interval() == RAMP.interval(10, 192)


def test_done_after_one_index_pulse_per_position():
    j = job(positions=3, spp=4)
    for position in range(1, 3):
        assert step(j, 4) is None
        j.index_seen()
        assert (j.confirmed, j.status) == (position, None)
    assert step(j, 4) is None
    j.index_seen()
    assert (j.confirmed, j.status) == (3, MotionStatus.DONE)
    assert j.steps == 12


def test_steps_past_the_jam_limit_without_an_index_are_a_jam():
    j = job(positions=3, spp=4, max_steps=6)
    assert step(j, 6) is None  # exactly the allowance is still fine
    assert j.stepped() is MotionStatus.JAM
    assert (j.steps, j.confirmed, j.status) == (7, 0, MotionStatus.JAM)


def test_each_index_pulse_restarts_the_jam_allowance():
    j = job(positions=3, spp=4, max_steps=6)
    assert step(j, 6) is None
    j.index_seen()
    assert step(j, 6) is None  # slipped twice, but each position was confirmed in time
    j.index_seen()
    assert step(j, 6) is None
    assert j.stepped() is MotionStatus.JAM
    assert (j.confirmed, j.steps) == (2, 19)


def test_an_index_after_a_jam_does_not_revive_the_move():
    j = job(positions=1, max_steps=6)
    step(j, 7)
    j.index_seen()
    assert (j.status, j.confirmed) == (MotionStatus.JAM, 0)


def test_steps_are_still_counted_after_done():
    j = job(positions=1, spp=4)
    step(j, 4)
    j.index_seen()
    assert j.status is MotionStatus.DONE
    assert step(j, 100) is MotionStatus.DONE  # far past the jam allowance: still done
    assert (j.steps, j.confirmed) == (104, 1)
    j.index_seen()  # an extra index pulse after the move is not another position
    assert j.confirmed == 1


def test_abort_ends_the_move_and_nothing_changes_it_afterwards():
    j = job(positions=3, spp=4)
    step(j, 4)
    j.index_seen()
    j.abort()
    assert j.status is MotionStatus.ABORTED
    j.index_seen()
    j.index_seen()
    assert step(j, 50) is MotionStatus.ABORTED
    assert (j.status, j.confirmed, j.steps) == (MotionStatus.ABORTED, 1, 54)


def test_abort_after_the_move_ended_keeps_the_result():
    done = job(positions=1, spp=4)
    step(done, 4)
    done.index_seen()
    done.abort()
    assert done.status is MotionStatus.DONE
    jammed = job(max_steps=2)
    step(jammed, 3)
    jammed.abort()
    assert jammed.status is MotionStatus.JAM


@given(
    positions=st.integers(min_value=1, max_value=5),
    max_steps=st.integers(min_value=2, max_value=12),
    ops=st.lists(st.sampled_from(["step", "index"]), max_size=80),
)
def test_the_job_ends_on_the_first_of_all_positions_seen_or_too_many_steps(positions, max_steps, ops):
    j = AdvanceJob(positions, 1, max_steps, RAMP)
    expected, seen, since, steps = None, 0, 0, 0
    for op in ops:
        if op == "step":
            steps += 1
            if expected is None:
                since += 1
                if since > max_steps:
                    expected = MotionStatus.JAM
            assert j.stepped() is expected
        else:
            if expected is None:
                seen, since = seen + 1, 0
                if seen == positions:
                    expected = MotionStatus.DONE
            j.index_seen()
        assert (j.status, j.confirmed, j.steps) == (expected, seen, steps)
