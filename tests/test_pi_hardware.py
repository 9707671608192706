"""Bench tests on a real Raspberry Pi wired as in docs/wiring.md: what a technician runs.

    sudo systemctl stop mpo-station          # the service holds the pins
    /opt/mpo-station/venv/bin/python -m pytest -m pi tests/test_pi_hardware.py
    sudo systemctl start mpo-station

Each test asks for one thing at the terminal and checks that the Pi saw it. Off a Pi (no
/dev/gpiochip*, no lgpio), without `-m pi` or without a terminal to ask at, they skip. The
station's own configuration is used when there is one (MPO_STATION_CONFIG, else
/etc/mpo-station/station.toml), so moved pins are tested where they are wired.
"""

from __future__ import annotations

import importlib.util
import os
import queue
import sys
import threading
import time
from pathlib import Path

import pytest

from station.config import Config, load
from station.drivers import build_hardware
from station.drivers.sensors import SENSOR_PINS
from station.loop import EventLoop, RealClock
from station.ports import MotionStatus, Sensor, SensorEdge
from station.wiring import WIRES


def _why_not_a_pi() -> str:
    if not any(Path("/dev").glob("gpiochip*")):
        return "not a Raspberry Pi: no /dev/gpiochip*"
    if importlib.util.find_spec("lgpio") is None:
        return "lgpio is not importable: sudo apt install python3-lgpio (docs/deploy.md)"
    return ""


NOT_A_PI = _why_not_a_pi()
pytestmark = [pytest.mark.pi, pytest.mark.skipif(bool(NOT_A_PI), reason=NOT_A_PI)]

CONFIG_PATH = Path(os.environ.get("MPO_STATION_CONFIG", "/etc/mpo-station/station.toml"))
ACTION_S = 30.0  # time the technician has for each action

# What "at rest" and "actuated" mean for each input, in the technician's words.
ACTIONS: dict[Sensor, tuple[str, str]] = {
    Sensor.CONNECTOR: ("no connector in the guide", "seat a connector in the guide, then take it out"),
    Sensor.PIN_LEFT: ("nothing in the guide", "cover the LEFT guide-pin sensor (a male connector), then uncover it"),
    Sensor.PIN_RIGHT: ("nothing in the guide", "cover the RIGHT guide-pin sensor (a male connector), then uncover it"),
    Sensor.GATE_A: ("nothing in the window", "pass a finger through gate A (top of the window)"),
    Sensor.GATE_B: ("nothing in the window", "pass a finger through gate B (bottom of the window)"),
    Sensor.CASSETTE: ("no cassette in the cradle", "fit a cassette, then take it out"),
    Sensor.CASSETTE_MALE: ("no cassette in the cradle", "fit the male MT cassette, then take it out"),
    Sensor.DROP: ("nothing under the nozzle", "pass a tissue corner through the drop sensor"),
    Sensor.FLUID_LOW: ("reservoir full: float up", "move the float switch to 'low', then back"),
    Sensor.MODE_WET: ("mode switch on DRY", "switch to WET-TO-DRY, then back to DRY"),
    Sensor.BUTTON: ("button released", "press and release the panel button"),
}


class Technician:
    """The person at the bench, asked through the terminal (pytest's capture is lifted meanwhile)."""

    def __init__(self, capture) -> None:
        self._capture = capture

    def _with_terminal(self, fn):
        if self._capture is not None:
            self._capture.suspend(in_=True)
        try:
            return fn()
        finally:
            if self._capture is not None:
                self._capture.resume()

    def present(self) -> bool:
        return self._with_terminal(lambda: sys.stdin.isatty())

    def tell(self, text: str) -> None:
        self._with_terminal(lambda: print(f"\n>>> {text}", flush=True))

    def ask(self, text: str) -> str:
        return self._with_terminal(lambda: input(f"\n>>> {text} ")).strip().lower()

    def confirm(self, question: str) -> bool:
        return self.ask(f"{question} [y/n]").startswith("y")


class EdgeWatch:
    """Collects sensor edges (they arrive on lgpio's callback thread)."""

    def __init__(self, sensors) -> None:
        self._edges: queue.Queue[SensorEdge] = queue.Queue()
        sensors.on_edge(self._edges.put)

    def wait(self, sensor: Sensor, active: bool, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                edge = self._edges.get(timeout=left)
            except queue.Empty:
                return False
            if edge.sensor is sensor and edge.active == active:
                return True
        return False


@pytest.fixture(autouse=True)
def _only_when_asked_for(request):
    if "pi" not in (request.config.getoption("markexpr") or ""):
        pytest.skip("bench test on the real Pi: run with -m pi")


@pytest.fixture(scope="module")
def config() -> Config:
    return load(CONFIG_PATH) if CONFIG_PATH.exists() else Config()


@pytest.fixture(scope="module")
def pin_factory():
    from station.drivers.pinfactory import hardware_pin_factory

    factory = hardware_pin_factory()
    yield factory
    factory.close()


@pytest.fixture
def technician(request) -> Technician:
    person = Technician(request.config.pluginmanager.getplugin("capturemanager"))
    if not person.present():
        pytest.skip("bench test: needs a technician at a terminal (stdin is not a tty)")
    return person


@pytest.fixture
def loop():
    loop = EventLoop(RealClock())
    loop.start_thread(name="bench-test")
    yield loop
    loop.stop()


@pytest.fixture
def hardware(config, loop, pin_factory):
    hardware = build_hardware(config, loop, pin_factory)
    yield hardware
    hardware.close()


def test_pull_resistors_hold_the_outputs_safe_when_nothing_drives_them(config, pin_factory):
    """As while the Pi boots or after the station exits: the pins float, the resistors decide."""
    from gpiozero import DigitalInputDevice

    for key, wire in WIRES.items():
        if wire.hold is None or not wire.hold.required:
            continue
        bcm = getattr(config.pins, key)
        with DigitalInputDevice(bcm, pull_up=None, active_state=True, pin_factory=pin_factory) as pin:
            time.sleep(0.05)
            assert pin.value == wire.hold.level, f"pins.{key} (GPIO{bcm}) floats away: fit the {wire.hold.resistor}"


@pytest.mark.parametrize("sensor", list(SENSOR_PINS), ids=lambda s: s.value)
def test_input_rests_inactive_and_follows_the_technician(sensor, config, hardware, technician):
    if not hardware.sensors.fitted(sensor):
        pytest.skip(f"{sensor.value} is not fitted in this configuration")
    at_rest, actuate = ACTIONS[sensor]
    bcm = getattr(config.pins, SENSOR_PINS[sensor])
    technician.ask(f"{sensor.value} (GPIO{bcm}): make sure: {at_rest}. Press Enter.")
    assert not hardware.sensors.read(sensor), (
        f"GPIO{bcm} reads active at rest: it must be pulled to GND only when active"
    )
    watch = EdgeWatch(hardware.sensors)
    technician.tell(f"Now {actuate} (within {ACTION_S:.0f} s).")
    assert watch.wait(sensor, True, ACTION_S), f"GPIO{bcm} never went active: check the sensor and its wire to GND"
    assert watch.wait(sensor, False, ACTION_S), f"GPIO{bcm} never went back to rest"


def test_wheel_advances_one_position_confirmed_by_the_index(config, hardware, technician):
    technician.ask("Fit a cassette (one wheel position of ribbon will be used). Press Enter to advance.")
    done = threading.Event()
    results = []
    hardware.wheel.advance(1, lambda result: (results.append(result), done.set()))
    assert done.wait(10.0), "the move did not finish"
    result = results[0]
    assert result.status is MotionStatus.DONE and result.positions == 1, (
        f"{result}: the index sensor (GPIO{config.pins.index}) did not see a position; check the driver "
        "(ENABLE, current), the coupling and the index sensor"
    )
    assert not hardware.wheel.enabled, "the driver must be disabled after a move"
    assert technician.confirm("Did the wheel turn by one position?")


def test_pump_places_one_drop_seen_by_the_drop_sensor(config, hardware, loop, technician):
    if not config.dispenser.drop_sensor_fitted:
        pytest.skip("no drop sensor in this configuration (dispenser.drop_sensor_fitted = false)")
    technician.ask("Prime the fluid line and put a tissue under the nozzle. Press Enter to place one drop.")
    watch = EdgeWatch(hardware.sensors)
    loop.call_sync(hardware.dispenser.pulse)
    d = config.dispenser
    assert watch.wait(Sensor.DROP, True, d.pulse_s + d.drop_timeout_s), (
        f"the drop sensor (GPIO{config.pins.drop_sensor}) saw no drop: check the pump, the line and the sensor"
    )
    time.sleep(d.pulse_s + 0.2)
    assert not hardware.dispenser.pumping, "the pump must be off after one pulse"
    assert technician.confirm("Exactly one drop on the tissue?")


def test_lights_and_buzzer_work_in_turn(hardware, technician):
    panel = hardware.panel
    for colour, led in panel.leds.items():
        led.on()
        try:
            assert technician.confirm(f"Is the {colour} light on (and only it)?"), f"{colour} light"
        finally:
            led.off()
    panel.buzzer.on()
    time.sleep(0.3)
    panel.buzzer.off()
    assert technician.confirm("Did the buzzer beep once?"), "buzzer"
