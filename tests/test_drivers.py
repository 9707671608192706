"""The gpiozero drivers, driven through mock pins the way gpiozero's own tests do it.

Inputs are active-low with pull-ups: `drive_low()` means the thing is there. Outputs are checked
on the recorded pin states. Every test gets a fresh pin factory (MockFactory.close() does not
release pins). Outputs that must be timed in virtual time are recorded through
`hw_sim.pins.SimFactory`, whose `on_output(bcm, value)` hook fires on every output change.
"""

from __future__ import annotations

import dataclasses
import itertools
import threading
import time
from pathlib import Path

import pytest
from gpiozero import DigitalOutputDevice
from gpiozero.exc import GPIOPinInUse
from gpiozero.pins.mock import MockFactory

from hw_sim.pins import SimFactory
from station.config import Config
from station.drivers import build_hardware
from station.drivers.dispenser import PumpDispenser
from station.drivers.panel import LedPanel
from station.drivers.pinfactory import NoGPIO, hardware_pin_factory
from station.drivers.sensors import SENSOR_PINS, SensorBank
from station.drivers.wheel import LoopExecutor, StepperWheel, ThreadExecutor
from station.loop import EventLoop, RealClock, VirtualClock
from station.motion import Ramp
from station.ports import MotionStatus, Pattern, Sensor

CONFIG = Config()
PINS = CONFIG.pins
EVERY_INPUT = Config().replace("inspection", gpio_fitted=True)  # the optional inspection lines fitted too
INSPECTION_LINES = {Sensor.INSPECT_PASS, Sensor.INSPECT_FAIL}
WAIT_S = 10.0  # real-thread tests wait on events, never on durations

# A quick wheel for real-thread tests: 8 steps a position, jam after 12 without an index.
SMALL_WHEEL = Config().replace(
    "wheel", steps_per_position=8, max_steps_per_position=12, start_rate_hz=2000, max_rate_hz=4000
)


@pytest.fixture
def factory():
    return MockFactory()


@pytest.fixture
def sim():
    return SimFactory()


@pytest.fixture
def loop_errors():
    return []


@pytest.fixture
def loop(loop_errors):
    """A virtual-time loop; a handler error fails the test instead of vanishing into a log."""
    yield EventLoop(VirtualClock(), on_error=loop_errors.append)
    assert loop_errors == []


def level(factory: MockFactory, bcm: int) -> bool:
    return bool(factory.pin(bcm).state)


def free(factory: MockFactory, *pins: int) -> bool:
    """True when every pin can be claimed again (and is released again at once)."""
    for bcm in pins:
        try:
            DigitalOutputDevice(bcm, pin_factory=factory).close()
        except GPIOPinInUse:
            return False
    return True


class OutputLog:
    """Every output change as (time, bcm, level), timed by the given clock."""

    def __init__(self, factory: SimFactory, clock) -> None:
        self.clock = clock
        self.events: list[tuple[float, int, bool]] = []
        self.listeners = []
        factory.on_output = self._changed

    def _changed(self, bcm: int, value: bool) -> None:
        self.events.append((self.clock.now(), bcm, bool(value)))
        for listener in self.listeners:
            listener(bcm, bool(value))

    def of(self, bcm: int, since: float = float("-inf")) -> list[tuple[float, bool]]:
        return [(t, v) for t, b, v in self.events if b == bcm and t >= since]

    def rises(self, bcm: int) -> list[float]:
        return [t for t, v in self.of(bcm) if v]


class WheelModel:
    """Stands in for the cassette wheel: counts STEP pulses, notes ENABLE and DIR at each one,
    and flashes the index sensor (low, then high) every `steps_per_slot` pulses — for the
    first `slots` slots only, then the wheel is stuck (None: never stuck)."""

    def __init__(self, sim: SimFactory, clock, steps_per_slot: int | None, slots: int | None = None) -> None:
        self.sim = sim
        self.steps_per_slot = steps_per_slot
        self.slots = slots
        self.pulses = 0
        self.index_flashes = 0
        self.times: list[float] = []
        self.enable_levels: list[bool] = []
        self.dir_levels: list[bool] = []
        self.first_pulse = threading.Event()
        self.log = OutputLog(sim, clock)
        self.log.listeners.append(self._output)

    def _output(self, bcm: int, value: bool) -> None:
        if bcm != PINS.step or not value:
            return
        self.pulses += 1
        self.times.append(self.log.clock.now())
        self.enable_levels.append(level(self.sim, PINS.enable))
        self.dir_levels.append(level(self.sim, PINS.dir))
        self.first_pulse.set()
        stuck = self.steps_per_slot is None or (self.slots is not None and self.index_flashes >= self.slots)
        if not stuck and self.pulses % self.steps_per_slot == 0:
            self.index_flashes += 1
            index = self.sim.pin(PINS.index)
            index.drive_low()
            index.drive_high()


# ------------------------------------------------------------------------------------- sensors
class SteppedClock:
    def __init__(self) -> None:
        self.t = 100.0

    def now(self) -> float:
        return self.t


@pytest.fixture
def clock():
    return SteppedClock()


@pytest.fixture
def sensors(factory, clock):
    bank = SensorBank(EVERY_INPUT, clock, factory)
    yield bank
    bank.close()


def test_every_input_starts_inactive_on_its_pull_up(sensors):
    assert sensors.snapshot() == {sensor: False for sensor in Sensor}
    assert all(sensors.fitted(sensor) for sensor in Sensor)


@pytest.mark.parametrize("sensor", list(SENSOR_PINS))
def test_each_input_reports_timestamped_active_low_edges(factory, clock, sensors, sensor):
    edges = []
    sensors.on_edge(edges.append)
    pin = factory.pin(getattr(PINS, SENSOR_PINS[sensor]))
    clock.t = 101.25
    pin.drive_low()
    assert [(e.sensor, e.active, e.t) for e in edges] == [(sensor, True, 101.25)]
    assert sensors.read(sensor) is True
    assert {s for s, on in sensors.snapshot().items() if on} == {sensor}
    clock.t = 102.5
    pin.drive_high()
    assert [(e.sensor, e.active, e.t) for e in edges] == [(sensor, True, 101.25), (sensor, False, 102.5)]
    assert sensors.read(sensor) is False
    assert not any(sensors.snapshot().values())


def test_every_sink_hears_every_edge(factory, sensors):
    first, second = [], []
    sensors.on_edge(first.append)
    sensors.on_edge(second.append)
    factory.pin(PINS.gate_a).drive_low()
    factory.pin(PINS.gate_b).drive_low()
    assert first == second
    assert [(e.sensor, e.active) for e in first] == [(Sensor.GATE_A, True), (Sensor.GATE_B, True)]


def test_edges_take_the_time_from_the_loop_clock(factory):
    loop = EventLoop(VirtualClock())
    bank = SensorBank(CONFIG, loop.clock, factory)
    edges = []
    bank.on_edge(edges.append)
    loop.call_at(2.5, factory.pin(PINS.connector_present).drive_low)
    loop.run_until(5.0)
    bank.close()
    assert [(e.sensor, e.active, e.t) for e in edges] == [(Sensor.CONNECTOR, True, 2.5)]


def test_the_index_sensor_is_not_a_sensor_bank_input(factory, sensors):
    edges = []
    sensors.on_edge(edges.append)
    assert free(factory, PINS.index)
    assert edges == []


def test_no_inspection_lines_unless_fitted(factory, clock):
    bank = SensorBank(CONFIG, clock, factory)
    try:
        assert not any(bank.fitted(sensor) for sensor in INSPECTION_LINES)
        assert free(factory, PINS.inspect_pass) and free(factory, PINS.inspect_fail)
    finally:
        bank.close()


def test_no_drop_sensor_when_none_is_fitted(factory, clock):
    config = Config().replace("dispenser", drop_sensor_fitted=False)
    bank = SensorBank(config, clock, factory)
    try:
        assert not bank.fitted(Sensor.DROP)
        assert Sensor.DROP not in bank.snapshot()
        assert Sensor.DROP not in bank.devices
        assert free(factory, PINS.drop_sensor)  # the pin is left for something else
        edges = []
        bank.on_edge(edges.append)
        factory.pin(PINS.drop_sensor).drive_low()
        assert edges == []
        assert bank.read(Sensor.DROP) is False
        assert set(bank.snapshot()) == set(Sensor) - {Sensor.DROP} - INSPECTION_LINES
    finally:
        bank.close()


def test_close_releases_every_input_pin(factory, clock):
    bank = SensorBank(CONFIG, clock, factory)
    input_pins = [getattr(PINS, key) for key in SENSOR_PINS.values()]
    assert not free(factory, input_pins[0])
    bank.close()
    assert bank.devices == {}
    assert free(factory, *input_pins)


def test_a_pin_in_use_fails_the_bank_and_releases_what_it_took(factory, clock):
    blocker = DigitalOutputDevice(PINS.button, pin_factory=factory)  # the last input created
    with pytest.raises(GPIOPinInUse):
        SensorBank(CONFIG, clock, factory)
    blocker.close()
    assert free(factory, *[getattr(PINS, key) for key in SENSOR_PINS.values()])


# ------------------------------------------------------------------------- wheel, virtual time
def virtual_wheel(config: Config, sim: SimFactory, loop: EventLoop) -> StepperWheel:
    return StepperWheel(config, LoopExecutor(loop), loop.now, sim)


@pytest.fixture
def wheel(sim, loop):
    w = virtual_wheel(CONFIG, sim, loop)
    yield w
    w.close()


def test_a_new_wheel_has_its_driver_off(sim, wheel):
    assert level(sim, PINS.enable) is True  # ENABLE is active low: high = driver off
    assert level(sim, PINS.step) is False
    assert level(sim, PINS.dir) is CONFIG.wheel.forward_dir_high
    assert not wheel.enabled and not wheel.moving


def test_advance_three_positions_each_confirmed_by_the_index(sim, loop, wheel):
    spp = CONFIG.wheel.steps_per_position
    model = WheelModel(sim, loop.clock, steps_per_slot=spp)
    results = []
    wheel.advance(3, results.append)
    assert wheel.moving and wheel.enabled
    assert level(sim, PINS.enable) is False  # driver on before the first step
    assert loop.run_while(lambda: not results, limit_s=10.0)
    [result] = results
    assert result.status is MotionStatus.DONE
    assert (result.positions, result.steps) == (3, 3 * spp)
    assert (model.pulses, model.index_flashes) == (3 * spp, 3)
    assert set(model.enable_levels) == {False}  # every step with the driver on
    assert set(model.dir_levels) == {True}  # forward
    assert level(sim, PINS.enable) is True and level(sim, PINS.step) is False
    assert not wheel.moving and not wheel.enabled
    assert result.duration_s == pytest.approx(model.times[-1] - model.times[0])


def test_the_step_train_follows_the_ramp_in_virtual_time(sim, loop, wheel):
    w = CONFIG.wheel
    ramp = Ramp(w.start_rate_hz, w.max_rate_hz, w.accel_hz_per_s)
    model = WheelModel(sim, loop.clock, steps_per_slot=w.steps_per_position)
    results = []
    wheel.advance(3, results.append)
    assert loop.run_while(lambda: not results, limit_s=10.0)
    expected = 3 * w.steps_per_position
    gaps = [b - a for a, b in itertools.pairwise(model.times)]
    assert gaps == pytest.approx([ramp.interval(i, expected) for i in range(1, expected)])
    assert max(1 / g for g in gaps) <= w.max_rate_hz + 1e-6
    assert min(1 / g for g in gaps) >= w.start_rate_hz - 1e-6


def test_dir_follows_the_configured_forward_level(sim, loop):
    config = Config().replace("wheel", forward_dir_high=False)
    wheel = virtual_wheel(config, sim, loop)
    model = WheelModel(sim, loop.clock, steps_per_slot=config.wheel.steps_per_position)
    results = []
    wheel.advance(1, results.append)
    assert loop.run_while(lambda: not results, limit_s=10.0)
    wheel.close()
    assert results[0].status is MotionStatus.DONE
    assert set(model.dir_levels) == {False}


def test_a_wheel_that_never_turns_is_a_jam_and_the_driver_goes_off(sim, loop, wheel):
    max_steps = CONFIG.wheel.max_steps_per_position
    model = WheelModel(sim, loop.clock, steps_per_slot=None)
    results = []
    wheel.advance(3, results.append)
    assert loop.run_while(lambda: not results, limit_s=10.0)
    [result] = results
    assert result.status is MotionStatus.JAM
    assert (result.positions, result.steps, model.pulses) == (0, max_steps + 1, max_steps + 1)
    assert level(sim, PINS.enable) is True
    assert not wheel.moving and not wheel.enabled
    loop.run_for(5.0)
    assert model.pulses == max_steps + 1  # nothing steps after the jam


def test_a_wheel_that_sticks_after_one_position_is_a_jam(sim, loop, wheel):
    spp, max_steps = CONFIG.wheel.steps_per_position, CONFIG.wheel.max_steps_per_position
    model = WheelModel(sim, loop.clock, steps_per_slot=spp, slots=1)
    results = []
    wheel.advance(3, results.append)
    assert loop.run_while(lambda: not results, limit_s=10.0)
    [result] = results
    assert (result.status, result.positions) == (MotionStatus.JAM, 1)
    assert spp + max_steps - 1 <= result.steps <= spp + max_steps + 1
    assert result.steps == model.pulses
    assert level(sim, PINS.enable) is True


def test_stop_mid_move_aborts_and_disables_at_once(sim, loop, wheel):
    model = WheelModel(sim, loop.clock, steps_per_slot=CONFIG.wheel.steps_per_position)
    results = []
    wheel.advance(3, results.append)
    assert loop.run_while(lambda: model.pulses < 20, limit_s=10.0)
    wheel.stop()
    assert level(sim, PINS.enable) is True and not wheel.enabled  # before the loop runs again
    assert level(sim, PINS.step) is False
    assert not wheel.moving  # free for a new move at once (a jog right after *RST)
    loop.run_for(5.0)
    assert results == []  # the owner stopped it: nobody waits for its result
    assert model.pulses == 20 and level(sim, PINS.enable) is True


def test_stop_while_idle_keeps_the_driver_off(sim, loop, wheel):
    wheel.stop()
    loop.run_for(1.0)
    assert level(sim, PINS.enable) is True and not wheel.moving


def test_advance_while_moving_is_refused_and_the_move_goes_on(sim, loop, wheel):
    spp = CONFIG.wheel.steps_per_position
    model = WheelModel(sim, loop.clock, steps_per_slot=spp)
    results = []
    wheel.advance(3, results.append)
    assert loop.run_while(lambda: model.pulses < 10, limit_s=10.0)
    with pytest.raises(RuntimeError):
        wheel.advance(1, results.append)
    assert loop.run_while(lambda: not results, limit_s=10.0)
    loop.run_for(5.0)
    assert [(r.status, r.positions) for r in results] == [(MotionStatus.DONE, 3)]
    assert model.pulses == 3 * spp


def test_moves_follow_one_another(sim, loop, wheel):
    spp = CONFIG.wheel.steps_per_position
    model = WheelModel(sim, loop.clock, steps_per_slot=spp)
    results = []
    for _ in range(3):
        wheel.advance(3, results.append)
        assert loop.run_while(lambda: len(results) < 3 and wheel.moving, limit_s=10.0)
    assert [(r.status, r.positions, r.steps) for r in results] == [(MotionStatus.DONE, 3, 3 * spp)] * 3
    assert model.pulses == 9 * spp


def test_close_releases_the_wheel_pins(sim, loop):
    wheel = virtual_wheel(CONFIG, sim, loop)
    wheel.close()
    assert free(sim, PINS.step, PINS.dir, PINS.enable, PINS.index)


# ---------------------------------------------------------------------------- wheel, real thread
def threaded_wheel(config: Config, sim: SimFactory) -> StepperWheel:
    return StepperWheel(config, ThreadExecutor(), RealClock().now, sim)


class Outcome:
    """The done callback of a real-thread move: the result and the thread it came on."""

    def __init__(self) -> None:
        self.results = []
        self.threads = []
        self.done = threading.Event()

    def __call__(self, result) -> None:
        self.results.append(result)
        self.threads.append(threading.current_thread())
        self.done.set()


def test_a_threaded_advance_completes_when_the_index_confirms_each_position(sim):
    spp = SMALL_WHEEL.wheel.steps_per_position
    wheel = threaded_wheel(SMALL_WHEEL, sim)
    model = WheelModel(sim, RealClock(), steps_per_slot=spp)
    outcome = Outcome()
    try:
        wheel.advance(3, outcome)
        assert outcome.done.wait(WAIT_S), "the motion worker never reported"
        [result] = outcome.results
        assert result.status is MotionStatus.DONE
        assert (result.positions, result.steps, model.pulses) == (3, 3 * spp, 3 * spp)
        assert set(model.enable_levels) == {False} and set(model.dir_levels) == {True}
        assert level(sim, PINS.enable) is True  # off before the result is reported
        assert not wheel.moving
        assert outcome.threads[0] is not threading.current_thread()  # reported from the worker
        assert result.duration_s >= 0
    finally:
        wheel.close()


def test_a_threaded_move_without_index_pulses_is_a_jam(sim):
    max_steps = SMALL_WHEEL.wheel.max_steps_per_position
    wheel = threaded_wheel(SMALL_WHEEL, sim)
    model = WheelModel(sim, RealClock(), steps_per_slot=None)
    outcome = Outcome()
    try:
        wheel.advance(3, outcome)
        assert outcome.done.wait(WAIT_S), "the motion worker never reported"
        [result] = outcome.results
        assert (result.status, result.positions) == (MotionStatus.JAM, 0)
        assert result.steps == model.pulses == max_steps + 1
        assert level(sim, PINS.enable) is True
        assert not wheel.moving
    finally:
        wheel.close()


def test_stop_aborts_a_threaded_move(sim):
    slow = Config().replace(
        "wheel", steps_per_position=8, max_steps_per_position=20_000, start_rate_hz=100, max_rate_hz=100
    )
    wheel = threaded_wheel(slow, sim)
    model = WheelModel(sim, RealClock(), steps_per_slot=None)  # would take minutes to jam
    outcome = Outcome()
    try:
        wheel.advance(3, outcome)
        assert model.first_pulse.wait(WAIT_S)
        wheel.stop()
        assert level(sim, PINS.enable) is True and not wheel.moving
        pulses = model.pulses
        time.sleep(0.5)  # the worker notices within one step interval (10 ms here) and stops
        assert model.pulses <= pulses + 1, "the motion worker kept stepping after stop()"
        assert outcome.results == []  # a stopped move reports nothing
        assert level(sim, PINS.enable) is True
    finally:
        wheel.close()


# ----------------------------------------------------------------------------------- dispenser
@pytest.fixture
def pump_log(sim, loop):
    return OutputLog(sim, loop.clock)


@pytest.fixture
def dispenser(sim, loop, pump_log):
    d = PumpDispenser(CONFIG, loop, sim)
    yield d
    d.close()


PULSE_S = CONFIG.dispenser.pulse_s


def high_periods(log: OutputLog, bcm: int) -> list[tuple[float, float]]:
    periods, start = [], None
    for t, value in log.of(bcm):
        if value and start is None:
            start = t
        elif not value and start is not None:
            periods.append((start, t))
            start = None
    if start is not None:
        periods.append((start, float("inf")))
    return periods


def test_one_pulse_is_exactly_pulse_s_of_virtual_time(sim, loop, pump_log, dispenser):
    assert level(sim, PINS.pump) is False and not dispenser.pumping
    loop.run_for(1.0)
    dispenser.pulse()
    assert level(sim, PINS.pump) is True and dispenser.pumping
    loop.run_for(1.0)
    [(on, off)] = high_periods(pump_log, PINS.pump)
    assert on == 1.0
    assert off - on == pytest.approx(PULSE_S)
    assert level(sim, PINS.pump) is False and not dispenser.pumping


def test_a_second_pulse_while_pumping_neither_stretches_nor_doubles_the_drop(sim, loop, pump_log, dispenser):
    dispenser.pulse()
    loop.run_for(PULSE_S / 2)
    dispenser.pulse()
    loop.run_for(1.0)
    [(on, off)] = high_periods(pump_log, PINS.pump)
    assert (on, off) == (0.0, pytest.approx(PULSE_S))


def test_pulses_after_the_last_one_ended_are_new_drops(loop, pump_log, dispenser):
    for _ in range(3):
        dispenser.pulse()
        loop.run_for(1.0)
    periods = high_periods(pump_log, PINS.pump)
    assert [on for on, _ in periods] == pytest.approx([0.0, 1.0, 2.0])
    assert [off - on for on, off in periods] == pytest.approx([PULSE_S] * 3)


def test_off_stops_the_pump_at_once(sim, loop, pump_log, dispenser):
    dispenser.pulse()
    loop.run_for(PULSE_S / 3)
    dispenser.off()
    assert level(sim, PINS.pump) is False and not dispenser.pumping
    loop.run_for(1.0)
    assert high_periods(pump_log, PINS.pump) == [(0.0, pytest.approx(PULSE_S / 3))]


def test_the_end_of_a_stopped_pulse_cannot_cut_the_next_one_short(loop, pump_log, dispenser):
    dispenser.pulse()
    loop.run_for(PULSE_S / 3)
    dispenser.off()
    loop.run_for(PULSE_S / 3)
    dispenser.pulse()  # the first pulse's timer would have ended this one early
    loop.run_for(1.0)
    periods = high_periods(pump_log, PINS.pump)
    assert len(periods) == 2
    on, off = periods[1]
    assert off - on == pytest.approx(PULSE_S)


def test_close_turns_the_pump_off_and_releases_its_pin(sim, loop):
    d = PumpDispenser(CONFIG, loop, sim)
    d.pulse()
    d.close()
    assert level(sim, PINS.pump) is False
    loop.run_for(1.0)
    assert free(sim, PINS.pump)


# --------------------------------------------------------------------------------------- panel
LEDS = {"green": PINS.led_ready, "amber": PINS.led_busy, "red": PINS.led_fault}
BUZZER = PINS.buzzer
BEEP_S = CONFIG.panel.beep_s

# What the operator sees and hears (panel.py LOOKS): the LEDs lit when the pattern starts,
# which of them blink and how fast, and the beeps with their length in beep_s.
LIT = {
    Pattern.OFF: set(),
    Pattern.READY: {"green"},
    Pattern.BUSY: {"amber"},
    Pattern.SWIPE_NOW: {"green", "amber"},
    Pattern.CLEANED: {"green"},
    Pattern.FAILED: {"red"},
    Pattern.REJECTED: {"red"},
    Pattern.REMOVE: {"amber"},
    Pattern.SERVICE: {"amber"},
    Pattern.FAULT: {"red"},
    Pattern.INSPECT: {"green", "red"},
    Pattern.RECLEAN: {"amber", "red"},
    Pattern.RECLEAN_WET: {"amber", "red"},
    Pattern.QUARANTINE: {"green", "red"},
}
BLINK_HALF_PERIOD = {
    Pattern.CLEANED: 0.5,
    Pattern.FAILED: 0.5,
    Pattern.REJECTED: 0.125,
    Pattern.REMOVE: 0.5,
    Pattern.SERVICE: 0.125,
    Pattern.RECLEAN_WET: 0.5,
    Pattern.QUARANTINE: 0.125,
}
BEEPS = {
    Pattern.SWIPE_NOW: (1, 1.0),
    Pattern.CLEANED: (2, 1.0),
    Pattern.FAILED: (1, 4.0),
    Pattern.REJECTED: (3, 1.0),
    Pattern.FAULT: (5, 2.0),
    Pattern.INSPECT: (1, 1.0),
    Pattern.RECLEAN: (2, 1.0),
    Pattern.RECLEAN_WET: (2, 1.0),
    Pattern.QUARANTINE: (3, 1.0),
}
WATCH_S = 3.0  # long enough for every beep sequence and several blink periods


@pytest.fixture
def panel_log(sim, loop):
    return OutputLog(sim, loop.clock)


@pytest.fixture
def panel(sim, loop, panel_log):
    p = LedPanel(CONFIG, loop, sim)
    yield p
    p.close()


def lit(factory: MockFactory) -> set[str]:
    return {name for name, bcm in LEDS.items() if level(factory, bcm)}


def lit_history(log: OutputLog, start: set[str], mark: int = 0) -> list[set[str]]:
    """The set of lit LEDs after every LED change from event number `mark` on, from `start`."""
    names = {bcm: name for name, bcm in LEDS.items()}
    now, history = set(start), [set(start)]
    for _, bcm, value in log.events[mark:]:
        if bcm in names:
            (now.add if value else now.discard)(names[bcm])
            history.append(set(now))
    return history


def beeps(log: OutputLog, since: float = float("-inf")) -> list[float]:
    """Length of every beep (buzzer high period) from `since` on."""
    return [off - on for on, off in high_periods(log, BUZZER) if on >= since]


def test_every_pattern_has_a_documented_look():
    assert set(LIT) == set(Pattern), "a new pattern needs its LEDs, blink and beeps listed here"


@pytest.mark.parametrize("pattern", list(Pattern))
def test_each_pattern_lights_its_documented_leds(sim, panel, pattern):
    panel.show(pattern)
    assert lit(sim) == LIT[pattern]
    assert panel.pattern is pattern


@pytest.mark.parametrize("pattern", [p for p in Pattern if p not in BLINK_HALF_PERIOD])
def test_steady_patterns_hold_their_leds(sim, loop, panel, panel_log, pattern):
    panel.show(pattern)
    mark = len(panel_log.events)
    loop.run_for(5.0)
    assert all(state == LIT[pattern] for state in lit_history(panel_log, lit(sim), mark))
    assert lit(sim) == LIT[pattern]


@pytest.mark.parametrize("pattern", list(BLINK_HALF_PERIOD))
def test_blinking_patterns_toggle_every_half_period(sim, loop, panel, panel_log, pattern):
    half = BLINK_HALF_PERIOD[pattern]
    loop.run_for(1.0)
    panel.show(pattern)
    loop.run_for(8 * half + half / 2)
    for name in LIT[pattern]:  # (amber and red blink together for clean again, wet-to-dry)
        changes = panel_log.of(LEDS[name], since=1.0)
        assert [t - 1.0 for t, _ in changes] == pytest.approx([half * k for k in range(9)])
        assert [v for _, v in changes] == [True, False] * 4 + [True]
    others = [bcm for other, bcm in LEDS.items() if other not in LIT[pattern]]
    assert [(t, b) for t, b, _ in panel_log.events if t >= 1.0 and b in others] == []


@pytest.mark.parametrize("pattern", list(Pattern))
def test_only_swipe_now_lights_green_and_amber_together(sim, loop, panel, panel_log, pattern):
    panel.show(pattern)
    loop.run_for(WATCH_S)
    # from the dark panel, every LED write counts, also those inside show()
    both = [state >= {"green", "amber"} for state in lit_history(panel_log, set())]
    if pattern is Pattern.SWIPE_NOW:
        assert both[-1]
    else:
        assert not any(both)


@pytest.mark.parametrize("pattern", list(Pattern))
def test_each_pattern_sounds_its_documented_beeps(loop, panel, panel_log, pattern):
    panel.show(pattern)
    loop.run_for(WATCH_S)
    count, factor = BEEPS.get(pattern, (0, 1.0))
    assert beeps(panel_log) == pytest.approx([BEEP_S * factor] * count)
    rises = panel_log.rises(BUZZER)
    assert rises == pytest.approx([2 * BEEP_S * factor * i for i in range(count)])  # as long a gap as a beep


@pytest.mark.parametrize("before, after", [(b, a) for b in Pattern for a in Pattern if a is not b])
def test_a_new_pattern_replaces_the_old_one_completely(sim, loop, panel, panel_log, before, after):
    panel.show(before)
    loop.run_for(0.3)  # mid-beep or mid-blink for most patterns
    was, switch = lit(sim), len(panel_log.events)
    panel.show(after)
    start, mark = loop.now(), len(panel_log.events)
    assert lit(sim) == LIT[after]
    assert level(sim, BUZZER) is False  # a beep of the old pattern never runs on
    loop.run_for(WATCH_S)
    history = lit_history(panel_log, LIT[after], mark)
    steady = LIT[after] if after not in BLINK_HALF_PERIOD else set()
    assert all(steady <= state <= LIT[after] for state in history)  # nothing left from before
    if after is not Pattern.SWIPE_NOW:
        # not even for a moment while the LEDs are switched over
        assert not any(state >= {"green", "amber"} for state in lit_history(panel_log, was, switch)[1:])
    count, factor = BEEPS.get(after, (0, 1.0))
    assert beeps(panel_log, since=start) == pytest.approx([BEEP_S * factor] * count)


def test_a_pattern_change_right_after_a_blink_toggle_leaves_no_beep_behind(sim, loop):
    # beep_s = 0.0625: REJECTED's second beep starts at 0.125 s, the same instant as its first
    # blink toggle. A call posted while the toggle runs (the simulator's panel listeners run
    # inside LED writes; on hardware any input callback can land there) changes the pattern.
    config = Config().replace("panel", beep_s=0.0625)
    panel = LedPanel(config, loop, sim)
    log = OutputLog(sim, loop.clock)
    changed = []

    def red_toggled_off(bcm: int, value: bool) -> None:
        if bcm == PINS.led_fault and not value and not changed:
            changed.append(loop.now())
            loop.post(lambda: panel.show(Pattern.READY))

    log.listeners.append(red_toggled_off)
    panel.show(Pattern.REJECTED)
    try:
        loop.run_for(WATCH_S)
        assert changed == [0.125] and panel.pattern is Pattern.READY
        assert log.rises(BUZZER) == [0.0], "a beep of the old pattern started after the change"
        assert level(sim, BUZZER) is False, "buzzer left sounding after the pattern changed to READY"
    finally:
        panel.close()


def test_showing_the_same_pattern_again_does_not_restart_it(loop, panel, panel_log):
    panel.show(Pattern.CLEANED)
    loop.run_for(0.25)
    panel.show(Pattern.CLEANED)
    loop.run_for(1.2)
    assert panel_log.of(LEDS["green"], since=0.1) == [(0.5, False), (1.0, True)]
    assert len(beeps(panel_log)) == 2


@pytest.mark.parametrize("pattern", list(Pattern))
def test_fault_light_is_red_only_at_once_and_stays(sim, loop, panel, panel_log, pattern):
    panel.show(pattern)
    loop.run_for(0.3)
    panel.fault_light()
    assert lit(sim) == {"red"}
    assert level(sim, BUZZER) is False
    mark = len(panel_log.events)
    loop.run_for(WATCH_S)
    assert panel_log.events[mark:] == []  # no blink or beep left over
    assert panel.pattern is pattern  # documented: so that show(FAULT) still sounds the alarm


def test_show_fault_after_the_fault_light_sounds_the_alarm(sim, loop, panel, panel_log):
    panel.show(Pattern.BUSY)
    panel.fault_light()
    panel.show(Pattern.FAULT)
    loop.run_for(WATCH_S)
    assert lit(sim) == {"red"}
    assert beeps(panel_log) == pytest.approx([2 * BEEP_S] * 5)


def test_close_releases_the_panel_pins(sim, loop):
    p = LedPanel(CONFIG, loop, sim)
    p.show(Pattern.REJECTED)
    p.close()
    loop.run_for(WATCH_S)  # cancelled timers must not touch closed devices
    assert free(sim, *LEDS.values(), BUZZER)


# ---------------------------------------------------------------------------- whole bench, safe
ALL_PINS = sorted(set(dataclasses.asdict(PINS).values()))


@pytest.fixture
def hardware(factory, loop):
    hw = build_hardware(CONFIG, loop, factory)
    yield hw
    hw.close()


def assert_safe(factory: MockFactory) -> None:
    assert level(factory, PINS.enable) is True, "stepper driver still enabled"
    assert level(factory, PINS.pump) is False, "pump still running"
    assert level(factory, PINS.led_fault) is True, "fault light off"
    assert level(factory, PINS.led_ready) is False and level(factory, PINS.led_busy) is False
    assert level(factory, PINS.buzzer) is False


def test_safe_stops_the_wheel_and_the_pump_and_lights_red(factory, loop, hardware):
    results = []
    hardware.panel.show(Pattern.SWIPE_NOW)
    hardware.wheel.advance(3, results.append)
    loop.run_for(0.02)  # the wheel is stepping, the buzzer beeping
    hardware.dispenser.pulse()
    assert level(factory, PINS.enable) is False and level(factory, PINS.pump) is True
    hardware.safe()
    assert_safe(factory)
    loop.run_for(WATCH_S)
    assert_safe(factory)  # nothing scheduled before undoes it
    assert results == []  # the move was stopped by its owner: it reports nothing


def test_safe_completes_the_other_steps_when_one_fails(factory, loop, hardware, monkeypatch):
    def broken() -> None:
        raise OSError("driver not answering")

    hardware.dispenser.pulse()
    hardware.panel.show(Pattern.READY)
    monkeypatch.setattr(hardware.wheel, "stop", broken)
    hardware.safe()  # does not raise
    assert level(factory, PINS.pump) is False
    assert level(factory, PINS.led_fault) is True and level(factory, PINS.led_ready) is False


def test_safe_is_idempotent(factory, loop, hardware):
    hardware.safe()
    hardware.safe()
    assert_safe(factory)


def test_close_releases_every_pin_of_the_bench(factory, loop):
    hw = build_hardware(CONFIG, loop, factory)
    assert not free(factory, PINS.step)
    hw.close()
    assert free(factory, *ALL_PINS)


def test_a_bench_on_virtual_time_steps_only_as_the_loop_runs(factory, loop, hardware):
    step = factory.pin(PINS.step)
    step.clear_states()
    results = []
    hardware.wheel.advance(1, results.append)
    assert [s.state for s in step.states] == [False]  # nothing yet: steps are loop timers
    loop.run_for(10.0)
    assert len([s for s in step.states if s.state]) == CONFIG.wheel.max_steps_per_position + 1  # no index: jam
    assert [r.status for r in results] == [MotionStatus.JAM]


def test_a_bench_on_real_time_steps_in_its_own_thread(factory):
    loop = EventLoop(RealClock())  # never run: the move must not need the loop
    hw = build_hardware(SMALL_WHEEL, loop, factory)
    outcome = Outcome()
    try:
        hw.wheel.advance(1, outcome)
        assert outcome.done.wait(WAIT_S), "the motion worker never reported"
        assert [r.status for r in outcome.results] == [MotionStatus.JAM]
        assert outcome.threads[0] is not threading.current_thread()
    finally:
        hw.close()
    assert free(factory, *ALL_PINS)


def test_a_bench_without_drop_sensor_leaves_its_pin_free(factory, loop):
    config = Config().replace("dispenser", drop_sensor_fitted=False)
    hw = build_hardware(config, loop, factory)
    try:
        assert not hw.sensors.fitted(Sensor.DROP)
        assert free(factory, PINS.drop_sensor)
    finally:
        hw.close()


# ---------------------------------------------------------------------------------- pin factory
def test_no_gpio_here_says_how_to_simulate(monkeypatch):
    monkeypatch.delenv("GPIOZERO_PIN_FACTORY", raising=False)
    if sorted(Path("/dev").glob("gpiochip*")):
        pytest.skip("this machine has GPIO chips")
    with pytest.raises(NoGPIO, match="station sim") as info:
        hardware_pin_factory()
    assert "No GPIO found" in str(info.value)


def test_no_gpio_when_lgpio_imports_but_there_is_no_chip(monkeypatch):
    import sys
    import types

    if sorted(Path("/dev").glob("gpiochip*")):
        pytest.skip("this machine has GPIO chips")
    monkeypatch.delenv("GPIOZERO_PIN_FACTORY", raising=False)
    fake = types.ModuleType("gpiozero.pins.lgpio")
    fake.LGPIOFactory = lambda: pytest.fail("must not open a factory without a GPIO chip")
    monkeypatch.setitem(sys.modules, "gpiozero.pins.lgpio", fake)
    with pytest.raises(NoGPIO, match="no /dev/gpiochip.*station sim"):
        hardware_pin_factory()


@pytest.mark.parametrize("value", ["mock", "MOCK"])
def test_a_mock_pin_factory_in_the_environment_is_refused(monkeypatch, value):
    monkeypatch.setenv("GPIOZERO_PIN_FACTORY", value)
    with pytest.raises(NoGPIO, match="GPIOZERO_PIN_FACTORY=mock.*station sim"):
        hardware_pin_factory()
