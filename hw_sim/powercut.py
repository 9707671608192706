"""A simulated station that keeps cleaning until it is killed: the power-cut test subject.

    python -m hw_sim.powercut --state-dir D --world W.json --log L.txt --seed 7 [--cleans N]
                              [--kill-at advanced:2]

The firmware's books live in D, the bench's physics in W.json (it survives the kill, as a
real bench would), and L.txt gets one line per attempt started and per result the firmware
reported, written before the next step. `--kill-at KIND:N` sends SIGKILL to itself at the
N-th controller event of that kind (attempt, advanced, swipe_now, result), to hit exact
points of the cycle; without it the parent kills at random moments. `--kill-at output:N` kills
right after the N-th output transition since start-up (every edge of STEP, ENABLE, the pump,
the lights and the buzzer, as the world sees it through `SimFactory.on_output`), and
`--kill-at output.ROLE:N` after the N-th transition of one output (ROLE: step, enable, pump,
led_ready, led_busy, led_fault, buzzer): the world has taken the transition into its physics
and its file before the kill, as a real bench has.

`--config FILE` takes the station's configuration from FILE: with a `[fleet]` broker the
station publishes as `station run` does (the fleet chaos test's subject), and `--pace S` sleeps
S real seconds between cleans. SIGUSR1 ends the cleaning and keeps the station up in real time
(its publisher drains the backlog); SIGTERM or SIGINT ends it with the orderly stop, exit 0.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import sys
import threading
import time

from station.config import Config, ConfigError, load
from station.events import AttemptFinished, AttemptStarted, Event, Recovered

from .bench import SimBench
from .pins import SimFactory

OUTPUTS = ("step", "dir", "enable", "pump", "led_ready", "led_busy", "led_fault", "buzzer")

PLAN = [
    # (connector, wet, direction, duration_s, variant)
    ("female", False, "down", 0.6, "full"),
    ("female", True, "down", 0.5, "full"),
    ("female", False, "up", 0.6, "full"),
    ("female", False, "down", 0.6, "back_and_forth"),
    ("male", False, "down", 0.6, "full"),
    ("bent", False, "down", 0.6, "full"),
    ("female", True, "down", 0.05, "full"),
]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--state-dir", required=True)
    ap.add_argument("--world", required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cleans", type=int, default=0, help="stop after this many attempts (0: never)")
    ap.add_argument("--config", default=None, help="the station configuration (TOML), e.g. with a [fleet] broker")
    ap.add_argument("--pace", type=float, default=0.0, help="real seconds slept between cleans")
    ap.add_argument(
        "--kill-at",
        default="",
        help="KIND:N - SIGKILL self at the N-th event of KIND, or right after the N-th output transition "
        "(output:N, output.ROLE:N)",
    )
    args = ap.parse_args(argv)
    rng = random.Random(args.seed)
    kill_kind, _, kill_n = args.kill_at.partition(":")
    seen: dict[str, int] = {}
    log = open(args.log, "a", buffering=1, encoding="utf-8")

    def watch(event: Event) -> None:
        match event:
            case AttemptStarted(id=attempt_id):
                log.write(f"attempt {attempt_id}\n")
            case AttemptFinished(id=attempt_id, outcome=outcome):
                log.write(f"result {attempt_id} {outcome.value}\n")
            case Recovered(interrupted=ids):
                log.write(f"recovered {' '.join(map(str, ids))}\n")
        kind = event.kind
        seen[kind] = seen.get(kind, 0) + 1
        if kind == kill_kind and seen[kind] == int(kill_n or 1):
            os.kill(os.getpid(), signal.SIGKILL)

    try:
        config = load(args.config).replace("cassette", capacity_positions=100_000)
    except ConfigError as exc:
        raise SystemExit(f"powercut: {exc}") from None
    cleaning, stopping = threading.Event(), threading.Event()
    cleaning.set()
    signal.signal(signal.SIGUSR1, lambda *_: cleaning.clear())
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: (cleaning.clear(), stopping.set()))
    bench = SimBench(config, args.state_dir, world_options={"state_file": args.world, "reservoir_drops": 10_000_000})
    bench.controller.events.subscribe(watch)
    if kill_kind == "output" or kill_kind.startswith("output."):
        kill_after_output(bench.factory, config, kill_kind.partition(".")[2], int(kill_n or 1))
    bench.run_for(0.5)
    bench.station.start_fleet()  # a [fleet] broker set: published as `station run` publishes
    print("ready", flush=True)
    done = 0
    while cleaning.is_set() and (args.cleans == 0 or done < args.cleans):
        connector, wet, direction, duration, variant = rng.choice(PLAN)
        if bench.state == "fault":
            bench.world.press_button()
            bench.run_for(1.0)
        bench.clean(
            connector, wet=wet, direction=direction, duration_s=duration, variant=variant, delay_s=rng.uniform(0.1, 1.0)
        )
        done += 1
        time.sleep(args.pace)
    if not cleaning.is_set():  # SIGUSR1: up in real time (the publisher drains) until SIGTERM
        bench.run_paced(stopping)
    bench.close()
    return 0


def kill_after_output(factory: SimFactory, config: Config, role: str, n: int) -> None:
    """SIGKILL right after the n-th output transition (of `role`, or of any output when empty)."""
    if role and role not in OUTPUTS:
        raise SystemExit(f"--kill-at output.{role}: the outputs are {', '.join(OUTPUTS)}")
    roles = {getattr(config.pins, name): name for name in OUTPUTS}
    world_sees = factory.on_output
    seen = 0

    def on_output(bcm: int, value: bool) -> None:
        nonlocal seen
        if world_sees is not None:
            world_sees(bcm, value)  # the world first: the power goes right after the transition
        if not role or roles.get(bcm) == role:
            seen += 1
            if seen == n:
                os.kill(os.getpid(), signal.SIGKILL)

    factory.on_output = on_output


if __name__ == "__main__":
    sys.exit(main())
