"""Judging a swipe from gate edges (station/swipe.py).

Timelines are built the way a connector makes them: the operator pulls it down across the window,
so it blocks gate A (top) and then gate B (bottom). The real edge of a gate is its first change;
the contact then chatters for less than `glitch_s` after it (at entry and at exit alike).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace

from hypothesis import assume, given
from hypothesis import strategies as st

from station.config import Config
from station.domain import Reason
from station.swipe import GateEdge, Interval, SwipeVerdict, intervals, judge_swipe

# judge_swipe waits for one thing at a time (a young interval, the start deadline, the partial
# give-up, a connector stopped in a gate, the quiet after the last edge): with no new edge it
# must be done after a handful of re-judgements, never re-armed for the moment it was judged.
MAX_WAITS = 5


def on(gate: str, t: float) -> GateEdge:
    return GateEdge(gate, True, t)  # type: ignore[arg-type]


def off(gate: str, t: float) -> GateEdge:
    return GateEdge(gate, False, t)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Window:
    """One swipe-now window: opened at `opened_at`, the swipe must start `time_allowed` later."""

    opened_at: float
    time_allowed: float
    min_pass_s: float
    max_pass_s: float
    glitch_s: float
    settle_s: float
    gate_blocked: bool = False  # a gate read blocked when swipe-now was given

    @property
    def start_deadline(self) -> float:
        return self.opened_at + self.time_allowed

    def judge(self, edges: list[GateEdge], now: float, *, connector_gone: bool = False) -> SwipeVerdict:
        return judge_swipe(
            edges,
            start_deadline=self.start_deadline,
            now=now,
            min_pass_s=self.min_pass_s,
            max_pass_s=self.max_pass_s,
            glitch_s=self.glitch_s,
            settle_s=self.settle_s,
            gate_blocked=self.gate_blocked,
            connector_gone=connector_gone,
        )

    def judge_until_done(self, edges: list[GateEdge], now: float) -> tuple[SwipeVerdict, int]:
        """Judge at `now`, then again at each `check_at` with no new edge (the controller's timer)."""
        verdict, waits = self.judge(edges, now), 0
        while not verdict.done:
            assert verdict.check_at is not None and verdict.check_at > now, (
                f"judged at {now!r}, asked to judge again at {verdict.check_at!r}"
            )
            assert waits < MAX_WAITS, f"still pending after {waits} re-judgements: {verdict}"
            now, waits = verdict.check_at, waits + 1
            verdict = self.judge(edges, now)
        return verdict, waits

    def judge_live(self, edges: list[GateEdge]) -> SwipeVerdict:
        """Judge the way the controller does: when the window opens, on every edge as it
        arrives, and at each `check_at` in between; the first verdict that is done counts."""
        edges = sorted(edges, key=lambda e: e.t)
        now, seen, waits = self.opened_at, 0, 0
        verdict = self.judge([], now)
        while not verdict.done:
            assert verdict.check_at is not None and verdict.check_at > now, (
                f"judged at {now!r}, asked to judge again at {verdict.check_at!r}"
            )
            if seen < len(edges) and edges[seen].t <= verdict.check_at:
                now, seen, waits = edges[seen].t, seen + 1, 0
            else:
                assert waits < MAX_WAITS, f"still pending after {waits} re-judgements: {verdict}"
                now, waits = verdict.check_at, waits + 1
            verdict = self.judge(edges[:seen], now)
        return verdict


@dataclass(frozen=True)
class Pull:
    """A connector's timeline across the gates, with the true first-contact times."""

    edges: list[GateEdge]
    first_at: float  # first contact with the first gate
    second_at: float | None  # first contact with the second gate

    @property
    def pass_s(self) -> float:
        assert self.second_at is not None
        return self.second_at - self.first_at

    @property
    def last_edge(self) -> float:
        return max(e.t for e in self.edges)


# --- strategies ---------------------------------------------------------------------------


@st.composite
def windows(draw) -> Window:
    """Swipe limits the station accepts (config.SwipeConfig bounds, glitch_s <= min_pass_s / 4,
    settle_s > glitch_s)."""
    glitch = draw(st.floats(0.0005, 0.1))
    min_pass = draw(st.floats(max(4 * glitch, 0.01), 2.0))
    max_pass = draw(st.floats(max(1.25 * min_pass, 0.01), 20.0))
    settle = draw(st.floats(max(0.01, 2 * glitch), 3.0))  # config: settle_s > glitch_s
    Config().replace("swipe", min_pass_s=min_pass, max_pass_s=max_pass, glitch_s=glitch, settle_s=settle)
    time_allowed = draw(st.floats(0.5, 600.0))  # swipe.timeout_s (dry) or swipe.wet_window_s
    opened_at = draw(st.floats(0.0, 10_000.0))
    return Window(opened_at, time_allowed, min_pass, max_pass, glitch, settle)


@st.composite
def chatter(draw, glitch_s: float) -> list[float]:
    """Offsets of an even number of extra toggles, all within 0.9 * glitch_s after an edge."""
    fractions = sorted(draw(st.lists(st.floats(0.02, 0.9), max_size=6, unique=True)))
    return [f * glitch_s for f in fractions[: len(fractions) // 2 * 2]]


@st.composite
def bouncing(draw, w: Window, gate: str, at: float, active: bool) -> list[GateEdge]:
    """A real edge of `gate` at `at`, then the contact chattering back and forth, settling `active`."""
    edges = [GateEdge(gate, active, at)]  # type: ignore[arg-type]
    for i, dt in enumerate(draw(chatter(w.glitch_s))):
        edges.append(GateEdge(gate, active if i % 2 else not active, at + dt))  # type: ignore[arg-type]
    return edges


@st.composite
def blocked(draw, w: Window, gate: str, enters: float, lasts: float | None) -> list[GateEdge]:
    """`gate` blocked from `enters` for `lasts` seconds (None: still blocked), bouncing at both ends."""
    edges = draw(bouncing(w, gate, enters, True))
    if lasts is not None:
        edges += draw(bouncing(w, gate, enters + lasts, False))
    return edges


@st.composite
def pulls(draw, w: Window, *, enters: float, pass_s: float, order: str = "AB", reaches_second: bool = True) -> Pull:
    """One stroke over the gates in `order`, `pass_s` from first contact to first contact.

    Each gate stays blocked at least 2.5 * glitch_s, and clears in time: the first gate by
    max_pass_s / 2 after the second is reached, the second within max_pass_s / 2.
    """
    first, second = order
    g = w.glitch_s
    edges = draw(blocked(w, first, enters, draw(st.floats(2.5 * g, max(2.5 * g, pass_s + w.max_pass_s / 2)))))
    if not reaches_second:
        return Pull(edges, enters, None)
    second_at = enters + pass_s
    edges += draw(blocked(w, second, second_at, draw(st.floats(2.5 * g, w.max_pass_s / 2))))
    return Pull(sorted(edges, key=lambda e: e.t), enters, second_at)


def in_time(w: Window) -> st.SearchStrategy[float]:
    """A first contact after the window opened and no later than the start deadline."""
    return st.floats(0.001, w.time_allowed).map(lambda dt: w.opened_at + dt)


@st.composite
def good_pulls(draw) -> tuple[Window, Pull]:
    w = draw(windows())
    pull = draw(pulls(w, enters=draw(in_time(w)), pass_s=draw(st.floats(w.min_pass_s, w.max_pass_s))))
    assume(w.min_pass_s <= pull.pass_s <= w.max_pass_s)  # still in bounds once added to clock times
    return w, pull


@st.composite
def spikes(draw, w: Window, around: list[GateEdge], until: float) -> list[GateEdge]:
    """Isolated pulses shorter than glitch_s on either gate after the window opened, each at
    least 1.5 * glitch_s clear of everything else on its gate."""
    clearance = 1.5 * w.glitch_s
    taken: dict[str, list[tuple[float, float]]] = {"A": [], "B": []}
    for gate in "AB":
        busy = [e.t for e in around if e.gate == gate]
        if busy:
            taken[gate].append((min(busy), max(busy)))
    added: list[GateEdge] = []
    for gate, dt, width in draw(
        st.lists(
            st.tuples(st.sampled_from("AB"), st.floats(0.001, until - w.opened_at), st.floats(0.01, 0.9)), max_size=6
        )
    ):
        starts = w.opened_at + dt
        ends = starts + width * w.glitch_s
        if all(ends + clearance <= lo or starts >= hi + clearance for lo, hi in taken[gate]):
            taken[gate].append((starts, ends))
            added += [on(gate, starts), off(gate, ends)]
    return added


@st.composite
def any_timelines(draw, w: Window) -> list[GateEdge]:
    """Anything the gates might report, including repeated and unmatched edges."""
    events = draw(st.lists(st.tuples(st.sampled_from("AB"), st.booleans(), st.floats(-1.0, 60.0)), max_size=20))
    return sorted((GateEdge(g, a, w.opened_at + dt) for g, a, dt in events), key=lambda e: e.t)  # type: ignore[arg-type]


# --- bounce filtering -------------------------------------------------------------------------

GLITCH = 0.008


def test_bounce_at_entry_and_exit_is_bridged_into_one_interval():
    edges = [on("A", 1.000), off("A", 1.002), on("A", 1.004), off("A", 1.300), on("A", 1.303), off("A", 1.305)]
    assert intervals(edges, "A", GLITCH) == [Interval("A", 1.000, 1.305)]


def test_a_pulse_shorter_than_glitch_is_dropped():
    assert intervals([on("B", 2.0), off("B", 2.005)], "B", GLITCH) == []


def test_a_gap_of_glitch_or_more_separates_two_pulses():
    edges = [on("A", 1.0), off("A", 1.1), on("A", 1.11), off("A", 1.2)]
    assert intervals(edges, "A", GLITCH) == [Interval("A", 1.0, 1.1), Interval("A", 1.11, 1.2)]


def test_a_still_blocked_gate_has_an_open_interval_and_repeated_reports_are_ignored():
    edges = [on("B", 3.0), on("B", 3.1), on("A", 2.0), off("A", 2.5)]
    assert intervals(edges, "B", GLITCH) == [Interval("B", 3.0, None)]


def test_edges_are_taken_in_time_order():
    edges = [off("A", 1.2), on("A", 1.0)]
    assert intervals(edges, "A", GLITCH) == [Interval("A", 1.0, 1.2)]


@given(st.data())
def test_filtered_intervals_are_ordered_long_enough_and_well_separated(data):
    w = data.draw(windows())
    edges = data.draw(any_timelines(w))
    for gate in "AB":
        kept = intervals(edges, gate, w.glitch_s)
        assert all(iv.end is not None for iv in kept[:-1]), "only the last interval may still be open"
        for iv in kept:
            assert iv.gate == gate
            if iv.end is not None:
                assert iv.end - iv.start >= w.glitch_s
        for before, after in itertools.pairwise(kept):
            assert after.start - before.end >= w.glitch_s  # type: ignore[operator]


# --- worked examples with the default limits --------------------------------------------------

DEFAULTS = Config().swipe
BENCH = Window(
    100.0, DEFAULTS.timeout_s, DEFAULTS.min_pass_s, DEFAULTS.max_pass_s, DEFAULTS.glitch_s, DEFAULTS.settle_s
)


def test_swipe_a_then_b_is_accepted_once_quiet():
    edges = [on("A", 101.0), on("B", 101.5), off("A", 101.6), off("B", 102.1)]
    assert BENCH.judge(edges, now=102.2) == SwipeVerdict(False, check_at=102.1 + DEFAULTS.settle_s)
    assert BENCH.judge(edges, now=102.5) == SwipeVerdict(True, ok=True, pass_s=0.5, started_at=101.0)


def test_swipe_b_then_a_is_reversed():
    edges = [on("B", 101.0), on("A", 101.5), off("B", 101.6), off("A", 102.1)]
    assert BENCH.judge(edges, now=102.5).reason is Reason.REVERSED


def test_swipe_down_and_back_up_is_back_and_forth():
    edges = [on("A", 101.0), off("A", 101.3), on("B", 101.5), off("B", 101.8), on("B", 101.9), off("B", 102.1)]
    assert BENCH.judge(edges, now=103.0).reason is Reason.BACK_AND_FORTH


def test_bounce_on_a_first_contact_just_before_the_deadline_is_not_a_missed_swipe():
    # gate A is reached 2 ms before the deadline; its bounce releases 1 ms after it
    edges = [on("A", 114.998), off("A", 115.001), on("A", 115.003), on("B", 115.5), off("A", 115.6), off("B", 116.1)]
    assert BENCH.start_deadline == 115.0
    afterwards = BENCH.judge(edges, now=116.5)
    assert afterwards == SwipeVerdict(True, ok=True, pass_s=115.5 - 114.998, started_at=114.998)
    live = BENCH.judge_live(edges)  # judged as the edges arrive, the release at 115.001 comes first
    assert live.reason is None
    assert live == afterwards


def test_connector_removed_before_any_swipe():
    assert BENCH.judge([], now=105.0, connector_gone=True) == SwipeVerdict(True, reason=Reason.REMOVED_MID_CYCLE)


# --- an accepted swipe --------------------------------------------------------------------


@given(good_pulls(), st.floats(0.0, 10.0))
def test_one_pull_from_a_to_b_with_contact_bounce_is_accepted(window_and_pull, later):
    w, pull = window_and_pull
    verdict = w.judge(pull.edges, now=pull.last_edge + w.settle_s + later)
    assert verdict.done and verdict.ok, verdict
    assert verdict.reason is None
    assert abs(verdict.pass_s - pull.pass_s) <= 2 * w.glitch_s
    assert verdict.started_at == pull.first_at


@given(good_pulls(), st.floats(0.0, 0.999))
def test_before_the_settle_time_the_verdict_is_pending_then_accepted_at_check_at(window_and_pull, part_of_settle):
    w, pull = window_and_pull
    now = pull.last_edge + part_of_settle * w.settle_s
    pending = w.judge(pull.edges, now)
    assert not pending.done
    assert pending.check_at > now
    verdict, waits = w.judge_until_done(pull.edges, now)
    assert verdict.done and verdict.ok
    assert verdict == w.judge(pull.edges, pull.last_edge + w.settle_s)
    assert 1 <= waits <= MAX_WAITS


@given(st.data())
def test_judged_live_a_bouncing_pull_among_spikes_is_accepted(data):
    w, pull = data.draw(good_pulls())
    noise = data.draw(spikes(w, pull.edges, until=pull.last_edge + 2 * w.settle_s))
    verdict = w.judge_live(pull.edges + noise)
    assert verdict.done and verdict.ok, verdict
    assert verdict.pass_s == w.judge(pull.edges, pull.last_edge + w.settle_s).pass_s
    assert verdict.started_at == pull.first_at


@given(st.data())
def test_isolated_spikes_on_either_gate_do_not_change_an_accepted_swipe(data):
    w, pull = data.draw(good_pulls())
    noise = data.draw(spikes(w, pull.edges, until=pull.last_edge + 2 * w.settle_s))
    now = max(e.t for e in pull.edges + noise) + w.settle_s
    clean = w.judge(pull.edges, now)
    assert clean.ok
    assert w.judge(sorted(pull.edges + noise, key=lambda e: e.t), now) == clean


# --- failed swipes ------------------------------------------------------------------------


@given(st.data())
def test_a_pull_that_reaches_gate_b_first_is_reversed(data):
    w = data.draw(windows())
    pull = data.draw(
        pulls(
            w,
            enters=data.draw(in_time(w)),
            pass_s=data.draw(st.floats(0.001, 2 * w.max_pass_s)),
            order="BA",
            reaches_second=data.draw(st.booleans()),
        )
    )
    verdict = w.judge(pull.edges, now=pull.last_edge + w.settle_s)
    assert verdict.done and not verdict.ok
    assert verdict.reason is Reason.REVERSED
    assert verdict.started_at == pull.first_at


@given(st.data())
def test_a_second_pass_or_a_return_stroke_is_back_and_forth(data):
    w = data.draw(windows())
    g = w.glitch_s
    # after the first visit to gate A, visit the gates again so that one of them is seen twice
    route = "A" + "".join(
        data.draw(
            st.lists(st.sampled_from("AB"), min_size=1, max_size=4).filter(lambda r: "A" in r or r.count("B") >= 2)
        )
    )
    t = first_at = data.draw(in_time(w))
    edges: list[GateEdge] = []
    for gate in route:
        lasts = data.draw(st.floats(2.5 * g, w.max_pass_s / 2))
        edges += data.draw(blocked(w, gate, t, lasts))
        t = t + lasts + 3 * g + data.draw(st.floats(0.0, w.max_pass_s))
    verdict = w.judge(edges, now=max(e.t for e in edges) + w.settle_s)
    assert verdict.done and not verdict.ok, (route, verdict)
    assert verdict.reason is Reason.BACK_AND_FORTH, route
    assert verdict.started_at == first_at


@given(st.data())
def test_judged_live_a_return_stroke_within_settle_is_caught(data):
    w, pull = data.draw(good_pulls())
    assume(pull.first_at + w.glitch_s < w.start_deadline)  # clear of the deadline-bounce case above
    gap = data.draw(st.floats(1.5 * w.glitch_s, max(1.5 * w.glitch_s, w.settle_s)))
    assume(gap < w.settle_s)
    again = data.draw(st.sampled_from("AB"), label="gate visited again")
    back = data.draw(blocked(w, again, pull.last_edge + gap, data.draw(st.floats(2.5 * w.glitch_s, w.max_pass_s / 2))))
    verdict = w.judge_live(pull.edges + back)
    assert verdict.reason is Reason.BACK_AND_FORTH, verdict
    assert verdict == w.judge(pull.edges + back, now=max(e.t for e in back) + w.settle_s)


@given(st.data())
def test_gate_b_never_reached_is_partial_after_twice_max_pass(data):
    w = data.draw(windows())
    pull = data.draw(pulls(w, enters=data.draw(in_time(w)), pass_s=w.max_pass_s, reaches_second=False))
    if data.draw(st.booleans(), label="connector stays in gate A"):
        pull = Pull([e for e in pull.edges if e.t < pull.first_at + w.glitch_s], pull.first_at, None)
    give_up = pull.first_at + 2 * w.max_pass_s

    waiting = w.judge(pull.edges, now=data.draw(st.floats(pull.last_edge + w.glitch_s, give_up, exclude_max=True)))
    assert not waiting.done
    assert waiting.check_at == give_up  # a gate B still to come would be too slow, not partial

    verdict = w.judge(pull.edges, now=give_up + data.draw(st.floats(0.0, 10.0)))
    assert verdict.done and not verdict.ok
    assert verdict.reason is Reason.PARTIAL
    assert verdict.started_at == pull.first_at


@given(good_pulls(), st.floats(0.0, 10.0))
def test_a_connector_that_stops_in_gate_b_is_partial(window_and_pull, later):
    w, pull = window_and_pull
    # the same pull, but the connector is never lifted out of gate B
    stays = [e for e in pull.edges if e.gate == "A" or e.t < pull.second_at + w.glitch_s]
    stopped = pull.second_at + w.max_pass_s
    waiting = w.judge(stays, now=max(e.t for e in stays) + w.glitch_s)
    assert not waiting.done
    assert waiting.check_at == stopped
    verdict = w.judge(stays, now=stopped + later)
    assert verdict.done and not verdict.ok
    assert verdict.reason is Reason.PARTIAL


@given(st.data())
def test_a_pass_quicker_than_min_pass_is_too_fast(data):
    w = data.draw(windows())
    pass_s = data.draw(st.floats(1e-6, w.min_pass_s, exclude_max=True))
    pull = data.draw(pulls(w, enters=data.draw(in_time(w)), pass_s=pass_s))
    assume(0 < pull.pass_s < w.min_pass_s)
    verdict = w.judge(pull.edges, now=pull.last_edge + w.settle_s)
    assert verdict.done and not verdict.ok
    assert verdict.reason is Reason.TOO_FAST
    assert verdict.pass_s < w.min_pass_s
    assert abs(verdict.pass_s - pull.pass_s) <= 2 * w.glitch_s


@given(st.data())
def test_a_pass_slower_than_max_pass_is_too_slow(data):
    w = data.draw(windows())
    pass_s = data.draw(st.floats(w.max_pass_s, 2 * w.max_pass_s, exclude_min=True))
    pull = data.draw(pulls(w, enters=data.draw(in_time(w)), pass_s=pass_s))
    assume(pull.pass_s > w.max_pass_s)
    verdict = w.judge(pull.edges, now=pull.last_edge + w.settle_s)
    assert verdict.done and not verdict.ok
    assert verdict.reason is Reason.TOO_SLOW
    assert verdict.pass_s > w.max_pass_s
    assert abs(verdict.pass_s - pull.pass_s) <= 2 * w.glitch_s


@given(st.data())
def test_nothing_but_spikes_by_the_deadline_is_no_swipe(data):
    w = data.draw(windows())
    noise = data.draw(spikes(w, [], until=w.start_deadline))
    earlier = w.opened_at + data.draw(st.floats(0.0, w.time_allowed, exclude_max=True))
    assume(earlier < w.start_deadline)
    before = w.judge([e for e in noise if e.t <= earlier], now=earlier)
    assert not before.done
    assert before.check_at > earlier
    now = max([w.start_deadline] + [e.t + w.glitch_s for e in noise]) + data.draw(st.floats(0.0, 100.0))
    verdict = w.judge(noise, now)
    assert verdict.done and not verdict.ok
    assert verdict.reason is Reason.NO_SWIPE


@given(windows(), st.floats(0.0, 1.0, exclude_max=True))
def test_no_edges_waits_for_the_deadline_then_is_no_swipe(w, part_of_window):
    now = w.opened_at + part_of_window * w.time_allowed
    assume(now < w.start_deadline)
    waiting = w.judge([], now)
    assert waiting == SwipeVerdict(False, check_at=w.start_deadline)
    verdict, _ = w.judge_until_done([], waiting.check_at)
    assert verdict == SwipeVerdict(True, reason=Reason.NO_SWIPE)


@given(st.data())
def test_a_first_contact_after_the_deadline_is_no_swipe(data):
    w = data.draw(windows())
    late = w.start_deadline + data.draw(st.floats(0.001, 60.0))
    pull = data.draw(pulls(w, enters=late, pass_s=data.draw(st.floats(w.min_pass_s, w.max_pass_s))))
    verdict = w.judge(pull.edges, now=pull.last_edge + w.settle_s)
    assert verdict.done and not verdict.ok
    assert verdict.reason is Reason.NO_SWIPE
    assert verdict.started_at == pull.first_at


@given(st.data())
def test_a_gate_already_blocked_when_the_swipe_is_due_is_gate_blocked(data):
    w = replace(data.draw(windows()), gate_blocked=True)
    g = w.glitch_s
    # the controller reads the gates when swipe-now is given and records only the edges after it
    edges: list[GateEdge] = []
    released = data.draw(st.one_of(st.none(), st.floats(0.001, 5.0)), label="released after opening")
    if released is not None:
        edges += data.draw(bouncing(w, data.draw(st.sampled_from("AB")), w.opened_at + released, False))
        if data.draw(st.booleans(), label="then a proper pull"):
            pass_s = data.draw(st.floats(w.min_pass_s, w.max_pass_s))
            edges += data.draw(pulls(w, enters=max(e.t for e in edges) + 3 * g, pass_s=pass_s)).edges
    assert w.judge_live(edges) == SwipeVerdict(True, reason=Reason.GATE_BLOCKED)
    verdict = w.judge(edges, now=max([w.opened_at] + [e.t for e in edges]) + g + w.settle_s)
    assert verdict == SwipeVerdict(True, reason=Reason.GATE_BLOCKED)


# --- waiting and giving up --------------------------------------------------------------------


@given(st.data())
def test_a_pending_verdict_is_done_after_a_few_re_judgements_at_check_at(data):
    w = replace(data.draw(windows()), gate_blocked=data.draw(st.booleans(), label="gate blocked"))
    now = w.opened_at + data.draw(st.floats(0.0, 70.0))
    edges = [e for e in data.draw(any_timelines(w)) if e.t <= now]
    verdict, waits = w.judge_until_done(edges, now)  # asserts check_at > now at every step
    assert verdict.done
    assert waits <= MAX_WAITS


@given(st.data())
def test_a_connector_taken_away_ends_the_wait(data):
    w = replace(data.draw(windows()), gate_blocked=data.draw(st.booleans(), label="gate blocked"))
    edges = data.draw(any_timelines(w))
    now = w.opened_at + data.draw(st.floats(0.0, 70.0))
    verdict = w.judge(edges, now, connector_gone=True)
    assert verdict.done
    assert verdict.check_at is None


@given(good_pulls())
def test_a_connector_lifted_away_after_a_good_pull_is_accepted_without_waiting_for_quiet(window_and_pull):
    w, pull = window_and_pull
    verdict = w.judge(pull.edges, now=pull.last_edge, connector_gone=True)
    assert verdict.done and verdict.ok
    assert verdict.started_at == pull.first_at


# ------------------------------------------------------------- details the records keep (from mutation testing)
EXACT = Window(0.0, 4.0, 0.25, 1.0, 0.0625, 0.5)  # binary fractions: boundaries compare exactly


def edges_of(*spec: tuple[str, bool, float]) -> list[GateEdge]:
    return [GateEdge(g, a, t) for g, a, t in spec]  # type: ignore[arg-type]


def test_failed_swipes_still_report_when_they_started_and_how_long_the_pass_took():
    # The attempt record keeps swipe_start_s and pass_s for failures too: QA needs them.
    fast = EXACT.judge(edges_of(("A", True, 1.0), ("A", False, 1.0625), ("B", True, 1.125), ("B", False, 1.25)), 2.0)
    assert (fast.reason, fast.started_at, fast.pass_s) == (Reason.TOO_FAST, 1.0, 0.125)
    slow = EXACT.judge(edges_of(("A", True, 1.0), ("A", False, 1.5), ("B", True, 2.5), ("B", False, 3.0)), 4.0)
    assert (slow.reason, slow.started_at, slow.pass_s) == (Reason.TOO_SLOW, 1.0, 1.5)
    stuck = EXACT.judge(edges_of(("A", True, 1.0), ("A", False, 1.25), ("B", True, 1.5)), 2.5)
    assert (stuck.reason, stuck.started_at, stuck.pass_s) == (Reason.PARTIAL, 1.0, 0.5)
    never_b = EXACT.judge(edges_of(("A", True, 1.0), ("A", False, 1.25)), 3.0)
    assert (never_b.reason, never_b.started_at, never_b.pass_s) == (Reason.PARTIAL, 1.0, None)
    lifted = EXACT.judge(edges_of(("A", True, 1.0), ("A", False, 1.25), ("B", True, 1.5)), 1.75, connector_gone=True)
    assert (lifted.reason, lifted.started_at, lifted.pass_s) == (Reason.PARTIAL, 1.0, 0.5)


def test_a_connector_lifted_without_a_swipe_is_removed_before_the_deadline_and_no_swipe_after():
    assert EXACT.judge([], 3.0, connector_gone=True).reason is Reason.REMOVED_MID_CYCLE
    assert EXACT.judge([], 4.0, connector_gone=True).reason is Reason.NO_SWIPE  # the deadline is 4.0
    assert EXACT.judge([], 5.0, connector_gone=True).reason is Reason.NO_SWIPE


def test_a_repeated_active_report_does_not_end_the_timeline():
    edges = edges_of(("A", True, 1.0), ("A", True, 1.25), ("A", False, 1.5), ("B", True, 1.5), ("B", False, 2.0))
    verdict = EXACT.judge(edges, 3.0)
    assert verdict.ok and verdict.pass_s == 0.5


def test_the_glitch_filter_boundaries_are_exact():
    # "gaps shorter than glitch_s are bridged": a gap of exactly glitch_s is not
    gap = intervals(edges_of(("A", True, 1.0), ("A", False, 1.25), ("A", True, 1.3125), ("A", False, 1.5)), "A", 0.0625)
    assert [(i.start, i.end) for i in gap] == [(1.0, 1.25), (1.3125, 1.5)]
    bridged = intervals(
        edges_of(("A", True, 1.0), ("A", False, 1.25), ("A", True, 1.28125), ("A", False, 1.5)), "A", 0.0625
    )
    assert [(i.start, i.end) for i in bridged] == [(1.0, 1.5)]
    # "pulses shorter than glitch_s are dropped": a pulse of exactly glitch_s is kept
    kept = intervals(edges_of(("B", True, 2.0), ("B", False, 2.0625)), "B", 0.0625)
    assert [(i.start, i.end) for i in kept] == [(2.0, 2.0625)]
    assert intervals(edges_of(("B", True, 2.0), ("B", False, 2.03125)), "B", 0.0625) == []


def test_passes_of_exactly_the_fastest_and_slowest_allowed_time_are_good():
    for pass_s in (EXACT.min_pass_s, EXACT.max_pass_s):  # 0.25 and 1.0: the bounds are inclusive
        edges = edges_of(
            ("A", True, 1.0), ("A", False, 1.0 + pass_s / 2), ("B", True, 1.0 + pass_s), ("B", False, 1.5 + pass_s)
        )
        verdict = EXACT.judge(edges, 3.0)
        assert verdict.ok and verdict.pass_s == pass_s, verdict
