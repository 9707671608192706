"""Reading a connector's guide pins until the reading is stable (station/guide_pins.py).

The controller takes a sample when the connector arrives and another on every guide-pin edge,
and asks again at `check_at` when the reading is still pending.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from station.config import Config
from station.domain import Gender
from station.guide_pins import PinReading, PinSample, gender_of, read_guide_pins

BOTH, NONE, LEFT_ONLY, RIGHT_ONLY = (True, True), (False, False), (True, False), (False, True)


@pytest.mark.parametrize(
    "left, right, gender",
    [
        (True, True, Gender.MALE),
        (False, False, Gender.FEMALE),
        (True, False, Gender.DAMAGED),
        (False, True, Gender.DAMAGED),
    ],
)
def test_both_pins_male_none_female_one_damaged(left, right, gender):
    assert gender_of(left, right) is gender


@dataclass(frozen=True)
class Seating:
    """A connector seated at `present_at`, read with the station's guide-pin settings."""

    present_at: float
    settle_s: float
    timeout_s: float

    @property
    def deadline(self) -> float:
        return self.present_at + self.timeout_s

    def read(self, samples: list[PinSample], now: float) -> PinReading:
        return read_guide_pins(
            samples, present_at=self.present_at, now=now, settle_s=self.settle_s, timeout_s=self.timeout_s
        )

    def read_live(self, samples: list[PinSample]) -> PinReading:
        """Read as the controller does: on arrival, on every change, and at each check_at."""
        now, seen = self.present_at, 1
        reading = self.read(samples[:seen], now)
        while not reading.done:
            assert reading.check_at is not None and now < reading.check_at <= self.deadline
            if seen < len(samples) and samples[seen].t <= reading.check_at:
                now, seen = samples[seen].t, seen + 1
            else:
                now = reading.check_at
            reading = self.read(samples[:seen], now)
        return reading


@st.composite
def seatings(draw, *, settle_at_least: float = 0.0) -> Seating:
    """Guide-pin settings the station accepts, settle_s shorter than the timeout."""
    timeout = draw(st.floats(0.05, 30.0))
    settle = min(5.0, draw(st.floats(settle_at_least, 0.9)) * timeout)
    Config().replace("guide_pins", settle_s=settle, timeout_s=timeout)
    return Seating(draw(st.floats(0.0, 10_000.0)), settle, timeout)


def pins() -> st.SearchStrategy[tuple[bool, bool]]:
    return st.sampled_from([BOTH, NONE, LEFT_ONLY, RIGHT_ONLY])


@st.composite
def changing(draw, first_at: float, gaps: list[float]) -> list[PinSample]:
    """The reading on arrival, then a different reading after each gap."""
    state = draw(pins())
    samples, t = [PinSample(first_at, *state)], first_at
    for gap in gaps:
        state = draw(pins().filter(lambda s, previous=state: s != previous))
        t = t + gap
        samples.append(PinSample(t, *state))
    return samples


# --- worked examples with the default settings --------------------------------------------

DEFAULTS = Config().guide_pins
BENCH = Seating(50.0, DEFAULTS.settle_s, DEFAULTS.timeout_s)


def test_a_male_connector_seated_cleanly_reads_male_after_settle():
    samples = [PinSample(50.0, True, True)]
    assert BENCH.read(samples, now=50.1) == PinReading(False, check_at=50.0 + DEFAULTS.settle_s)
    assert BENCH.read(samples, now=50.0 + DEFAULTS.settle_s) == PinReading(True, Gender.MALE)


def test_a_pin_that_chatters_while_seating_is_read_once_it_stops():
    samples = [
        PinSample(50.0, True, False),
        PinSample(50.05, True, True),
        PinSample(50.1, True, False),
        PinSample(50.12, True, True),
    ]
    assert not BENCH.read(samples, now=50.2).done
    assert BENCH.read(samples, now=50.12 + DEFAULTS.settle_s) == PinReading(True, Gender.MALE)


def test_a_reading_without_the_arrival_sample_is_refused():
    with pytest.raises(ValueError, match="arrived"):
        BENCH.read([], now=51.0)


# --- properties ---------------------------------------------------------------------------


@given(st.data())
def test_a_reading_stable_for_settle_before_the_timeout_settles_to_the_last_sample(data):
    s = data.draw(seatings())
    # changes anywhere, the last one leaving settle_s before the timeout
    room = s.timeout_s - s.settle_s - 1e-6
    offsets = sorted(data.draw(st.lists(st.floats(0.0, room), max_size=8)))
    samples = data.draw(changing(s.present_at, [b - a for a, b in itertools.pairwise([0.0, *offsets])]))
    last = samples[-1]
    reading = s.read(samples, now=last.t + s.settle_s + data.draw(st.floats(0.0, 60.0)))
    assert reading == PinReading(True, gender_of(last.left, last.right))


@given(st.data())
def test_judged_live_chatter_that_stops_in_time_settles_to_the_last_sample(data):
    s = data.draw(seatings(settle_at_least=0.05))
    # each change comes before the previous one settled; the last leaves settle_s before the timeout
    gaps = data.draw(st.lists(st.floats(0.05, 0.95).map(lambda f: f * s.settle_s), max_size=8))
    samples = [p for p in data.draw(changing(s.present_at, gaps)) if p.t + s.settle_s < s.deadline]
    last = samples[-1]
    assert s.read_live(samples) == PinReading(True, gender_of(last.left, last.right))


@given(st.data())
def test_chatter_until_the_timeout_never_settles(data):
    s = data.draw(seatings(settle_at_least=0.2))
    # a new change always comes before the previous reading has been stable for settle_s
    samples = [PinSample(s.present_at, *data.draw(pins()))]
    while samples[-1].t + s.settle_s <= s.deadline:
        gap = data.draw(st.floats(0.5, 0.95)) * s.settle_s
        state = data.draw(pins().filter(lambda p: p != (samples[-1].left, samples[-1].right)))
        samples.append(PinSample(samples[-1].t + gap, *state))
    assert s.read(samples, now=s.deadline + data.draw(st.floats(0.0, 60.0))) == PinReading(True, None)
    assert s.read_live(samples) == PinReading(True, None)


@given(st.data())
def test_a_pending_reading_asks_again_before_the_deadline_and_is_then_done(data):
    s = data.draw(seatings())
    now = s.present_at + data.draw(st.floats(0.0, 1.0, exclude_max=True)) * s.timeout_s
    assume(now < s.deadline)
    offsets = sorted(data.draw(st.lists(st.floats(0.0, now - s.present_at), max_size=8)))
    samples = data.draw(changing(s.present_at, [b - a for a, b in itertools.pairwise([0.0, *offsets])]))
    assume(all(p.t <= now for p in samples))  # only what has happened so far
    reading = s.read(samples, now)
    assume(not reading.done)
    assert now < reading.check_at <= s.deadline
    # with no change since, the reading has either settled or timed out by check_at
    last = samples[-1]
    again = s.read(samples, reading.check_at)
    assert again.done
    assert again.gender in (gender_of(last.left, last.right), None)
    if reading.check_at < s.deadline:
        assert again.gender is gender_of(last.left, last.right)


def test_a_reading_that_settles_exactly_at_the_timeout_counts_as_settled():
    samples = [PinSample(0.0, False, False), PinSample(0.5, True, True)]
    reading = read_guide_pins(samples, present_at=0.0, now=1.0, settle_s=0.5, timeout_s=1.0)
    assert reading == PinReading(True, Gender.MALE)
    late = [PinSample(0.0, False, False), PinSample(0.625, True, True)]
    assert read_guide_pins(late, present_at=0.0, now=1.0, settle_s=0.5, timeout_s=1.0) == PinReading(True, None)


def test_no_sample_is_a_programming_error_that_says_what_is_missing():
    with pytest.raises(ValueError, match="reading taken when the connector arrived"):
        read_guide_pins([], present_at=0.0, now=1.0, settle_s=0.5, timeout_s=1.0)
