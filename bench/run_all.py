"""Runs every benchmark and writes docs/benchmarks.md.

    python -m bench.run_all [--quick] [--output docs/benchmarks.md]

Each figure is a median and a p99 with, where one exists, a floor measured in the same run
on the same machine, and the target from the issue it answers. `--quick` uses fewer
repetitions (for a smoke run; the published table comes from a full run).
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from bench import (
    console_latency,
    fleet,
    history,
    process,
    reaction,
    record_cost,
    scan_latency,
    sim_life,
    step_timing,
)
from bench.common import median, pct, table

REACTION_NOTE = (
    "Floors are measured in the same run, interleaved with the cleans, after the same idle gap. The "
    "verdict on a pull is fired by a timer once `swipe.settle_s` of quiet follows its last edge, so "
    "the result paths are timed from gate B's release minus `settle_s` and compared with the timer "
    'floor (the edge floor plus a timed wait); "announced" includes the outcome\'s durable write '
    "(`synchronous=FULL`), which the design puts before the announcement. Details and a per-step "
    "breakdown: `python -m bench.reaction --breakdown`."
)


def us(v: float) -> str:
    return f"{v * 1e6:.0f} µs"


def ms(v: float) -> str:
    return f"{v * 1e3:.1f} ms"


def verdict(ok: bool) -> str:
    return "met" if ok else "**missed**"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--output", default="docs/benchmarks.md")
    args = ap.parse_args()
    q = args.quick
    started = time.perf_counter()
    sections: list[str] = []
    summary: list[tuple[str, str, str, str, str]] = []

    per_run = reaction.measure(60 if q else 300, 2 if q else 5)
    pooled = {key: [x for r in values for x in r] for key, values in per_run.items()}
    sections.append(
        "## Reaction: the edges that matter, against their floors\n\n"
        + reaction.report(per_run)
        + "\n\n"
        + REACTION_NOTE
    )
    for key, name in (
        ("connector", "connector edge -> identifying"),
        ("gate_a", "gate A -> swiping"),
        ("judged", "gate B -> swipe judged"),
        ("announced", "gate B -> result announced"),
    ):
        floor_key = reaction.FLOOR_OF[key]
        ratio = pct(pooled[key], 99) / pct(pooled[floor_key], 99)
        target = "≤ 2x floor" if key != "announced" else "≤ 2x floor (includes the durable write)"
        summary.append(
            (
                f"reaction p99: {name}",
                us(pct(pooled[key], 99)),
                f"{floor_key.replace('_', ' ')} {us(pct(pooled[floor_key], 99))} ({ratio:.1f}x)",
                target,
                verdict(ratio <= 2),
            )
        )

    life = sim_life.run(500)
    sections.append(
        "## Simulation: a 500-clean cassette life in virtual time\n\n"
        + table(
            ["state directory", "wall time", "violations"],
            [
                ("temporary directory on disk", f"{life['disk_s']:.2f} s", life["violations"]),
                ("tmpfs (/dev/shm)", f"{life['tmpfs_s']:.2f} s", life["violations"]),
            ],
        )
    )
    summary.append(("500-clean simulated life", f"{life['disk_s']:.2f} s", "", "< 10 s", verdict(life["disk_s"] < 10)))

    proc = process.station_runs(3 if q else 10, 10.0 if q else 60.0)
    bare = process.bare_imports(3 if q else 10)
    st, idle, peak = proc["startup"], proc["idle_cpu_s_per_min"][0], max(proc["peak_mb"])
    sections.append(
        "## Start-up, idle CPU, memory (a station process: `station run`'s Service on mock pins)\n\n"
        + table(
            ["figure", "median", "p99 / max", "floor"],
            [
                ("process start to READY=1", ms(median(st)), ms(pct(st, 99)), f"bare imports {ms(median(bare))}"),
                (
                    "idle CPU, waiting for a connector",
                    f"{idle:.3f} CPU s/min ({idle / 60 * 100:.2f}% of a core)",
                    "",
                    "",
                ),
                ("peak resident memory (VmHWM)", f"{median(proc['peak_mb']):.1f} MB", f"{peak:.1f} MB", ""),
            ],
        )
    )
    summary.append(
        ("start-up to ready", ms(median(st)), f"bare imports {ms(median(bare))}", "< 1 s", verdict(pct(st, 99) < 1.0))
    )
    summary.append(("idle CPU", f"{idle / 60 * 100:.2f}% of a core", "", "< 1%", verdict(idle / 60 < 0.01)))
    summary.append(("peak memory", f"{peak:.1f} MB", "", "< 60 MB", verdict(peak < 60)))

    steps = step_timing.run(5 if q else 30)
    d, j = steps["duration_ratio"], [abs(x) for x in steps["jitter_s"]]
    sections.append(
        "## Step timing: a 3-position advance on the real-time motion worker\n\n"
        + table(
            ["figure", "median", "p99 / max"],
            [
                (
                    f"duration / nominal ({steps['steps'][0]} steps, nominal {ms(steps['nominal_s'][0])})",
                    f"{median(d):.4f}",
                    f"{max(d):.4f}",
                ),
                ("step interval minus nominal, absolute (jitter)", us(median(j)), us(pct(j, 99))),
            ],
        )
    )
    summary.append(
        (
            "step-train duration",
            f"{(median(d) - 1) * 100:+.2f}% of nominal",
            "",
            "within 10%",
            verdict(abs(max(d) - 1) <= 0.10),
        )
    )

    sections.append("## Console: command round trip over a pty\n\n" + console_latency.run(100 if q else 500))
    sections.append(
        "## Scanner: a code on the serial port to the station's announcement\n\n"
        + scan_latency.run(100 if q else 300, 2 if q else 3)
    )
    with tempfile.TemporaryDirectory() as tmp:
        sections.append("## Durable records per clean\n\n" + record_cost.run(100 if q else 300, Path(tmp)))
    with tempfile.TemporaryDirectory(prefix="mpo-history-") as tmp:
        size = (20_000, 40, 2, 10, 20) if q else (1_000_000, 2000, 5, 50, 200)
        sections.append(
            "## History: a database grown to years of use against a new one\n\n" + history.run(*size, Path(tmp))
        )

    total = time.perf_counter() - started
    head = f"""# Benchmarks

Generated by `python -m bench.run_all{" --quick" if q else ""}` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC
({platform.machine()}, {platform.python_implementation()} {platform.python_version()}, {total:.0f} s).
The machine is a shared 2-core development VM, not a Raspberry Pi: absolute numbers are
indicative; the ratios to floors measured in the same run are the point. Unit tests never
assert on speed; these scripts do the measuring.

## Summary against the targets

""" + table(["figure", "value", "floor", "target", "verdict"], summary)
    text = head + "\n\n" + "\n\n".join(sections) + "\n"
    output = Path(args.output)
    # the fleet's section comes from `python -m bench.fleet --output` (too slow to run here): kept
    old = output.read_text(encoding="utf-8") if output.exists() else ""
    if fleet.kept_section(old):
        text = fleet.merge_section(text, fleet.kept_section(old))
    output.write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
