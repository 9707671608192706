"""The controller loop: run-to-completion calls, timers in due order, virtual and real time."""

from __future__ import annotations

import threading

import pytest

from station.loop import EventLoop, RealClock, VirtualClock

WAIT_S = 10.0  # generous: real-thread tests wait on events, never on durations


@pytest.fixture
def clock():
    return VirtualClock()


@pytest.fixture
def errors():
    return []


@pytest.fixture
def loop(clock, errors):
    return EventLoop(clock, on_error=errors.append)


@pytest.fixture
def real_loop(errors):
    loop = EventLoop(RealClock(), on_error=errors.append)
    yield loop
    loop.stop()
    if loop.thread is not None and loop.thread is not threading.current_thread():
        loop.thread.join(WAIT_S)
        assert not loop.thread.is_alive(), "the loop thread did not stop"


# ---------------------------------------------------------------------------------- virtual time
def test_timers_run_in_due_order_and_move_the_clock_to_each_due_time(loop, clock):
    seen = []
    for due in (3.0, 1.0, 2.5, 2.0):
        loop.call_at(due, lambda due=due: seen.append((due, clock.now())))
    loop.run_until(10.0)
    assert seen == [(1.0, 1.0), (2.0, 2.0), (2.5, 2.5), (3.0, 3.0)]
    assert clock.now() == 10.0


def test_call_later_is_relative_to_the_virtual_now(loop, clock):
    loop.run_until(5.0)
    seen = []
    loop.call_later(0.25, lambda: seen.append(clock.now()))
    loop.call_later(-1.0, lambda: seen.append(("late", clock.now())))  # never in the past
    loop.run_for(1.0)
    assert seen == [("late", 5.0), 5.25]


def test_identical_due_times_run_in_fifo_order(loop):
    seen = []
    for i in range(20):
        loop.call_at(1.0, lambda i=i: seen.append(i))
    loop.run_until(1.0)
    assert seen == list(range(20))


def test_posted_calls_run_before_timers_that_are_already_due(loop):
    seen = []
    loop.call_at(0.0, lambda: seen.append("timer"))
    loop.post(lambda: seen.append("posted 1"))
    loop.post(lambda: seen.append("posted 2"))
    loop.run_until(0.0)
    assert seen == ["posted 1", "posted 2", "timer"]


def test_a_call_posted_by_a_timer_runs_before_the_next_timer_at_the_same_time(loop, clock):
    seen = []

    def first() -> None:
        seen.append("timer 1")
        loop.post(lambda: seen.append(("posted", clock.now())))

    loop.call_at(1.0, first)
    loop.call_at(1.0, lambda: seen.append("timer 2"))
    loop.run_until(2.0)
    assert seen == ["timer 1", ("posted", 1.0), "timer 2"]


def test_a_timer_scheduled_by_a_timer_runs_in_the_same_run_when_due(loop, clock):
    seen = []
    loop.call_at(1.0, lambda: loop.call_later(0.5, lambda: seen.append(clock.now())))
    loop.run_until(2.0)
    assert seen == [1.5]


def test_a_cancelled_timer_never_runs(loop):
    seen = []
    keep = loop.call_at(1.0, lambda: seen.append("kept"))
    drop = loop.call_at(0.5, lambda: seen.append("dropped"))
    drop.cancel()
    drop.cancel()  # any number of times
    loop.run_until(2.0)
    assert seen == ["kept"]
    assert drop.cancelled and not keep.cancelled
    assert loop.next_due() is None


def test_a_timer_can_cancel_a_later_one(loop):
    seen = []
    later = loop.call_at(2.0, lambda: seen.append("later"))
    loop.call_at(1.0, later.cancel)
    loop.run_until(3.0)
    assert seen == []


def test_cancel_after_the_timer_ran_is_harmless(loop):
    seen = []
    timer = loop.call_at(1.0, lambda: seen.append("ran"))
    loop.run_until(1.0)
    timer.cancel()
    timer.cancel()
    loop.run_until(5.0)
    assert seen == ["ran"]


def test_next_due_skips_cancelled_timers(loop):
    loop.call_at(1.0, lambda: None).cancel()
    loop.call_at(2.0, lambda: None)
    assert loop.next_due() == 2.0


def test_run_until_runs_timers_due_exactly_at_the_limit_and_no_later(loop, clock):
    seen = []
    loop.call_at(1.0, lambda: seen.append(1.0))
    loop.call_at(1.0 + 1e-9, lambda: seen.append("later"))
    loop.run_until(1.0)
    assert seen == [1.0]
    assert clock.now() == 1.0
    loop.run_until(2.0)
    assert seen == [1.0, "later"]


def test_run_until_never_moves_the_clock_backwards(loop, clock):
    loop.run_until(5.0)
    seen = []
    loop.post(lambda: seen.append(clock.now()))
    loop.run_until(1.0)
    assert seen == [5.0]  # posted calls still run
    assert clock.now() == 5.0


def test_run_for_advances_by_the_given_seconds(loop, clock):
    ticks = []

    def tick() -> None:
        ticks.append(clock.now())
        loop.call_later(1.0, tick)

    loop.call_later(1.0, tick)
    loop.run_for(3.5)
    assert ticks == [1.0, 2.0, 3.0]
    assert clock.now() == 3.5
    loop.run_for(1.0)
    assert ticks == [1.0, 2.0, 3.0, 4.0]
    assert clock.now() == 4.5


def test_run_while_stops_at_the_timer_that_ends_the_wait(loop, clock):
    done = []
    loop.call_at(2.0, lambda: done.append(True))
    loop.call_at(3.0, lambda: done.append("too far"))
    assert loop.run_while(lambda: not done, limit_s=10.0) is True
    assert done == [True]
    assert clock.now() == 2.0  # not moved on to the limit


def test_run_while_returns_false_when_the_limit_is_reached(loop, clock):
    done = []
    loop.call_at(5.0, lambda: done.append(True))
    assert loop.run_while(lambda: not done, limit_s=2.0) is False
    assert done == []
    assert clock.now() == 2.0
    # the timer beyond the limit is still pending and runs later
    assert loop.run_while(lambda: not done, limit_s=10.0) is True
    assert clock.now() == 5.0


def test_run_while_with_nothing_scheduled_runs_out_the_limit(loop, clock):
    assert loop.run_while(lambda: True, limit_s=3.0) is False
    assert clock.now() == 3.0


def test_run_while_counts_a_wait_ended_by_a_posted_call(loop, clock):
    done = []
    loop.post(lambda: done.append(True))
    assert loop.run_while(lambda: not done, limit_s=3.0) is True
    assert clock.now() == 0.0


def test_run_while_not_busy_returns_at_once(loop, clock):
    seen = []
    loop.call_at(1.0, lambda: seen.append("timer"))
    assert loop.run_while(lambda: False, limit_s=3.0) is True
    assert seen == [] and clock.now() == 0.0


def test_a_failing_handler_reports_and_the_loop_keeps_running(loop, errors):
    seen = []
    boom = ValueError("handler failed")

    def fail() -> None:
        raise boom

    loop.post(fail)
    loop.post(lambda: seen.append("posted after"))
    loop.call_at(1.0, fail)
    loop.call_at(1.0, lambda: seen.append("timer after"))
    loop.call_at(2.0, lambda: seen.append("later timer"))
    loop.run_until(3.0)
    assert errors == [boom, boom]
    assert seen == ["posted after", "timer after", "later timer"]


def test_a_failing_handler_without_on_error_does_not_stop_the_loop(clock):
    loop = EventLoop(clock)
    seen = []
    loop.post(lambda: 1 / 0)
    loop.call_at(1.0, lambda: seen.append("still running"))
    loop.run_until(2.0)
    assert seen == ["still running"]


def test_run_until_calls_the_heartbeat(loop):
    beats = []
    loop.heartbeat = lambda: beats.append(loop.now())
    loop.run_until(1.0)
    loop.run_for(1.0)
    assert beats == [1.0, 2.0]


def test_run_until_needs_a_virtual_clock():
    loop = EventLoop(RealClock())
    assert loop.virtual is False
    with pytest.raises(AssertionError):
        loop.run_until(1.0)


def test_call_sync_without_a_loop_thread_runs_inline(loop):
    assert loop.call_sync(lambda: 42) == 42


# ------------------------------------------------------------------------------------- real time
def test_posts_from_another_thread_run_on_the_loop_thread(real_loop):
    ran_on = []
    done = threading.Event()
    thread = real_loop.start_thread("test-loop")

    def poster() -> None:
        real_loop.post(lambda: (ran_on.append(threading.current_thread()), done.set()))

    other = threading.Thread(target=poster)
    other.start()
    other.join(WAIT_S)
    assert done.wait(WAIT_S)
    assert ran_on == [thread]
    assert thread is not threading.current_thread() and thread is not other
    assert thread.name == "test-loop"


def test_real_timers_run_on_the_loop_thread_in_due_order(real_loop):
    seen = []
    done = threading.Event()
    thread = real_loop.start_thread()
    real_loop.call_later(0.05, lambda: (seen.append(("second", threading.current_thread())), done.set()))
    real_loop.call_later(0.0, lambda: seen.append(("first", threading.current_thread())))
    assert done.wait(WAIT_S)
    assert seen == [("first", thread), ("second", thread)]


def test_call_sync_returns_the_value_computed_on_the_loop_thread(real_loop):
    thread = real_loop.start_thread()
    assert real_loop.call_sync(lambda: (threading.current_thread(), 7), timeout=WAIT_S) == (thread, 7)


def test_call_sync_reraises_the_handlers_exception_in_the_caller(real_loop, errors):
    real_loop.start_thread()

    def fail() -> None:
        raise KeyError("no such cassette")

    with pytest.raises(KeyError, match="no such cassette"):
        real_loop.call_sync(fail, timeout=WAIT_S)
    assert errors == []  # handed back to the caller, not reported as a loop error
    assert real_loop.call_sync(lambda: "still serving", timeout=WAIT_S) == "still serving"


def test_call_sync_times_out_when_the_loop_is_busy(real_loop):
    release = threading.Event()
    started = threading.Event()
    real_loop.start_thread()
    real_loop.post(lambda: (started.set(), release.wait(WAIT_S)))
    assert started.wait(WAIT_S)
    try:
        with pytest.raises(TimeoutError):
            real_loop.call_sync(lambda: None, timeout=0.05)
    finally:
        release.set()


def test_a_failing_handler_on_the_real_loop_reports_and_keeps_serving(real_loop, errors):
    real_loop.start_thread()
    real_loop.post(lambda: 1 / 0)
    assert real_loop.call_sync(lambda: "alive", timeout=WAIT_S) == "alive"
    assert len(errors) == 1 and isinstance(errors[0], ZeroDivisionError)


def test_stop_ends_run_forever_while_idle(real_loop):
    thread = real_loop.start_thread()
    assert real_loop.call_sync(lambda: True, timeout=WAIT_S)  # the loop is up and idle
    real_loop.stop()
    thread.join(WAIT_S)
    assert not thread.is_alive()


def test_stop_ends_run_forever_with_a_far_timer_pending(real_loop):
    seen = []
    thread = real_loop.start_thread()
    real_loop.call_later(3600.0, lambda: seen.append("never"))
    assert real_loop.call_sync(lambda: True, timeout=WAIT_S)
    real_loop.stop()
    thread.join(WAIT_S)
    assert not thread.is_alive()
    assert seen == []


def test_run_forever_blocks_the_calling_thread_until_stop():
    loop = EventLoop(RealClock())
    ran_on = []
    loop.post(lambda: ran_on.append(threading.current_thread()))
    loop.post(loop.stop)
    loop.run_forever()  # returns only because of the posted stop
    assert ran_on == [threading.current_thread()]
    assert loop.thread is threading.current_thread()


def test_heartbeat_is_called_on_the_loop_thread(real_loop):
    beat_on = []
    beat = threading.Event()

    def heartbeat() -> None:
        beat_on.append(threading.current_thread())
        beat.set()

    real_loop.heartbeat = heartbeat
    thread = real_loop.start_thread()
    assert beat.wait(WAIT_S)
    assert set(beat_on) == {thread}


def test_heartbeat_keeps_coming_while_idle(real_loop):
    beats = threading.Semaphore(0)
    real_loop.heartbeat = beats.release
    real_loop.start_thread()
    for _ in range(2):  # idle: the loop wakes up for the watchdog by itself
        assert beats.acquire(timeout=WAIT_S)
