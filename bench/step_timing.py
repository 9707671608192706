"""Step timing of the real-time motion worker: a 3-position advance, its duration against the
ramp's nominal duration, and each step interval's deviation from its nominal value (jitter).

Runs the firmware's ThreadExecutor on mock pins; a small model drives the index sensor every
`steps_per_position` steps. On a Pi the pin writes cost more (lgpio), so this is the
Python-side floor of the timing, not the whole story.
"""

from __future__ import annotations

import itertools
import threading
import time

from hw_sim.pins import SimFactory
from station.config import Config
from station.drivers.wheel import StepperWheel, ThreadExecutor
from station.motion import Ramp


def run(moves: int = 20) -> dict[str, list[float]]:
    config = Config()
    w = config.wheel
    factory = SimFactory()
    wheel = StepperWheel(config, ThreadExecutor(), time.monotonic, factory)
    index = factory.pin(config.pins.index)
    stamps: list[float] = []
    steps = {"n": 0}

    def on_output(bcm: int, value: bool) -> None:
        if bcm == config.pins.step and value:
            stamps.append(time.perf_counter())
            steps["n"] += 1
            if steps["n"] % w.steps_per_position == 0:
                index.drive_low()  # index slot: active
            elif steps["n"] % w.steps_per_position == 2:
                index.drive_high()

    factory.on_output = on_output
    ramp = Ramp(w.start_rate_hz, w.max_rate_hz, w.accel_hz_per_s)
    n = w.positions_per_clean * w.steps_per_position
    nominal = [ramp.interval(i, n) for i in range(1, n)]
    durations, jitter = [], []
    for _ in range(moves):
        stamps.clear()
        steps["n"] = 0
        done = threading.Event()
        wheel.advance(w.positions_per_clean, lambda r, done=done: done.set())
        if not done.wait(10):
            raise RuntimeError("move did not finish")
        durations.append((stamps[-1] - stamps[0]) / sum(nominal))
        # n step pulses, n - 1 intervals: one nominal interval for each
        jitter += [(b - a) - want for (a, b), want in zip(itertools.pairwise(stamps), nominal, strict=True)]
        time.sleep(0.05)
    wheel.close()
    return {"duration_ratio": durations, "jitter_s": jitter, "nominal_s": [sum(nominal)], "steps": [n]}


if __name__ == "__main__":
    r = run()
    d, j = r["duration_ratio"], sorted(abs(x) for x in r["jitter_s"])
    print(
        f"nominal {r['nominal_s'][0] * 1e3:.1f} ms for {r['steps'][0]} steps; duration ratio median "
        f"{sorted(d)[len(d) // 2]:.3f} max {max(d):.3f}; "
        f"|jitter| median {j[len(j) // 2] * 1e6:.0f} us p99 {j[int(len(j) * 0.99)] * 1e6:.0f} us"
    )
