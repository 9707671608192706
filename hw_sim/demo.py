"""`station sim --demo`: a scripted tour of every path, printed as it happens."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TextIO

from station.config import Config

from .bench import SimBench
from .report import printer


def run(out: TextIO = sys.stdout, state_dir: str | Path | None = None, config: Config | None = None) -> bool:
    """Runs the demo; True when every attempt ended as scripted and the simulator saw no violation."""
    with SimBench(config, state_dir) as bench:
        bench.controller.events.subscribe(printer(bench.loop, out))
        world = bench.world
        ok = True

        def step(title: str, expect: str, **clean_args) -> None:
            nonlocal ok
            print(f"\n== {title}", file=out, flush=True)
            result = bench.clean(**clean_args)
            got = result.outcome.value if result else "none"
            if got != expect:
                ok = False
                print(f"!! expected {expect}, got {got}", file=out)

        print("MPO cleaning station: simulated bench demo (virtual time)", file=out)
        step("Female connector, dry clean on the standard cassette", "cleaned", connector="female")
        step("Female connector, wet-to-dry clean", "cleaned", connector="female", wet=True)
        step("Male connector on the standard cassette: interlock", "rejected", connector="male")
        step("Female connector, swiped the wrong way (B to A)", "failed", connector="female", direction="up")
        step("Connector with one bent guide pin", "rejected", connector="bent")
        print("\n== Operator swaps in the male MT cassette", file=out)
        world.remove_cassette()
        bench.run_for(1.0)
        world.fit_cassette("male-mt", male_mt=True)
        bench.run_for(1.0)
        step("Male connector, dry clean on the male MT cassette", "cleaned", connector="male")
        step("Male connector, wet-to-dry clean", "cleaned", connector="male", wet=True)
        step("Male connector, back-and-forth scrub (not allowed)", "failed", connector="male", variant="back_and_forth")

        print("\n== Summary", file=out)
        for r in bench.results():
            gender = r.gender.value if r.gender else "-"
            reason = r.reason.value if r.reason else ""
            print(f"  #{r.id:<3} {r.outcome.value:<9} {gender:<7} {r.mode.value:<4} {reason}", file=out)
        status = bench.status()
        print(
            f"  ribbon left on the fitted cassette: {status.ribbon_remaining} positions "
            f"({status.cleans_remaining} cleans); fluid: {status.fluid_drops_left} drops",
            file=out,
        )
        touched = world.touched_twice()
        print(
            f"  simulator: {len(world.swipes)} swipes, {world.positions_total} wheel positions, "
            f"{world.drops_total} drops, sections touched twice: {len(touched)}, "
            f"violations: {len(world.violations)}",
            file=out,
        )
        for v in world.violations:
            print(f"  VIOLATION rule {v.rule}: {v.text}", file=out)
        ok = ok and not world.violations and not touched
        print("demo OK" if ok else "demo FAILED", file=out)
        return ok
