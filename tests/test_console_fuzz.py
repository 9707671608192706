"""Hostile console input during a clean, in virtual time (docs/design.md section 5: garbage,
over-long lines, invalid UTF-8 and floods get an error and never crash, block or slow the
controller; section 3: the rules hold whatever arrives).

A disciplined operator cleans a female connector on a fresh bench while the console receives
arbitrary bytes, or arbitrary lines mixed with real command words, in between the virtual-time
steps. For determinism the console's dispatcher runs here, on the loop's own thread, between
steps (the loop has no thread of its own, so the handlers' `call_sync` runs inline); its
session and flood limit run on the virtual clock too.

Checked for every example:
* the clean ends exactly as it does without the console traffic (cleaned), with no violation;
* no protected action ran without a login: no wheel move, drop, reset, cassette, refill,
  configuration or PIN change from the console, in the world, the ledgers or the audit;
* every reply is well framed: a query one line, anything else exactly one final OK / ERR line.
"""

from __future__ import annotations

import functools
import tempfile
from collections.abc import Callable
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from hw_sim import SimBench
from station.console import protocol as P
from station.console.access import Session, hash_pin
from station.console.commands import PIN_KEY, REGISTRY
from station.console.server import Dispatcher, console_context

PIN_HASH = hash_pin("4711")
STEP_S = 0.02  # virtual seconds between two pieces of console input
SWIPE_DELAY_S = 0.5
# Each example builds a whole bench: a fifth of the profile's examples (never more).
FUZZ = settings(max_examples=max(10, settings.default.max_examples // 5))

COMMANDS = [
    # protected: must all be refused without a login
    "jog 3",
    "jog 30",
    "prime 2",
    "prime 20",
    "selftest",
    "*RST",
    "fault clear",
    "cassette new",
    "fluid refill",
    "config set swipe.max_pass_s 9",
    "config set wheel.positions_per_clean 1",
    "pin set 1234",
    # open, some of them wrong
    "mode wet",
    "mode set wet",
    "mode set dry",
    "mode set switch",
    "login 0000",
    "login",
    "logout",
    "*IDN?",
    "STAT?",
    "SYST:ERR?",
    "FAULT?",
    "*OPC?",
    "*CLS",
    "help",
    "help jog",
    "status",
    "sensors",
    "counters",
    "log 3",
    "audit 2",
    "cassette",
    "fluid",
    "config show swipe",
    "jog",
    "jog -1",
    "prime x",
    "NOPE?",
    "fault",
    "config",
]
# What the console may leave in the audit without a login.
OPEN_AUDIT_ACTIONS = {"login_failed", "mode"}


def mixed_case(word: str) -> st.SearchStrategy[str]:
    return st.lists(st.booleans(), min_size=len(word), max_size=len(word)).map(
        lambda flips: "".join(c.upper() if up else c.lower() for c, up in zip(word, flips, strict=True))
    )


command_lines = st.one_of(
    st.sampled_from(COMMANDS),
    st.sampled_from(COMMANDS).flatmap(mixed_case),
    st.tuples(st.sampled_from(COMMANDS), st.text(max_size=20)).map(" ".join),
    st.text(max_size=80),
)
text_input = st.lists(
    st.tuples(command_lines, st.sampled_from(["\n", "\r\n"])).map(lambda lt: (lt[0] + lt[1]).encode("utf-8")),
    max_size=40,
)
binary_input = st.lists(st.binary(max_size=600), max_size=30)


# ---------------------------------------------------------------------------------- the run
def is_final(line: str) -> bool:
    return line == "OK" or line.startswith("OK ") or line.startswith("ERR ")


def check_framing(item: P.Line | P.BadLine, out: list[str]) -> None:
    if isinstance(item, P.BadLine):
        assert len(out) == 1 and out[0].startswith(f"ERR {item.code} "), out
        return
    if not item.text:
        assert out == [], f"an empty line answers nothing, got {out!r}"
        return
    if item.text.split()[0].endswith("?"):
        assert len(out) == 1, f"query {item.text!r} must answer one line, got {out!r}"
    else:
        assert out and is_final(out[-1]), f"{item.text!r} must end with OK or ERR, got {out!r}"
        assert not any(is_final(line) for line in out[:-1]), f"{item.text!r}: one final line only: {out!r}"


class ConsoleTraffic:
    """Feeds one chunk of input per call through the line buffer and the dispatcher."""

    def __init__(self, bench: SimBench, chunks: list[bytes]) -> None:
        clock = bench.clock.now
        self.session = Session("fuzz", bench.config.console.idle_logout_s, clock=clock)
        self.dispatcher = Dispatcher(
            REGISTRY,
            console_context(bench.controller),
            self.session,
            max_per_s=bench.config.console.max_commands_per_s,
            clock=clock,
        )
        self.buffer = P.LineBuffer()
        self.chunks = list(chunks)
        self.replies = 0

    def poke(self) -> None:
        if not self.chunks:
            return
        for item in self.buffer.feed(self.chunks.pop(0)):
            streamed: list[str] = []
            reply = self.dispatcher.handle(item, streamed.append)
            check_framing(item, [*streamed, *reply])
            self.replies += 1
            assert not self.session.logged_in

    def rest(self) -> None:
        while self.chunks:
            self.poke()


def steps(bench: SimBench, traffic: ConsoleTraffic | None, until: Callable[[], bool], limit_s: float) -> None:
    waited = 0.0
    while not until() and waited < limit_s:
        if traffic is not None:
            traffic.poke()
        bench.run_for(STEP_S)
        waited += STEP_S


def clean_with_console(chunks: list[bytes] | None) -> dict[str, Any]:
    """One dry clean of a female connector, the console traffic interleaved (None: none)."""
    with tempfile.TemporaryDirectory(prefix="mpo-fuzz-") as state_dir, SimBench(state_dir=state_dir) as bench:
        store = bench.controller.store
        store.set_setting(PIN_KEY, PIN_HASH, bench.controller.wall(), source="test")
        traffic = ConsoleTraffic(bench, chunks) if chunks is not None else None
        world = bench.world
        world.set_mode(False)
        world.present("female")
        bench.run_for(0.0)  # the connector is seen: the attempt (and its mode) begins here
        assert bench.state == "identifying"
        steps(bench, traffic, lambda: world.prompting or bench.state in ("done", "fault"), 30.0)
        steps(bench, traffic, lambda: False, SWIPE_DELAY_S)
        if world.prompting:
            world.swipe()
        steps(bench, traffic, lambda: bench.last_result() is not None or bench.state == "fault", 30.0)
        world.remove()
        steps(bench, traffic, lambda: bench.state in ("idle", "fault"), 10.0)
        if traffic is not None:
            traffic.rest()
        bench.run_for(2.0)
        result = bench.last_result()
        console_audit = [dict(r) for r in store.audit_log(10_000) if r["source"].startswith("console:")]
        return {
            "result": None
            if result is None
            else {k: getattr(result, k) for k in ("outcome", "reason", "positions", "drops")},
            "results": len(bench.results()),
            "state": bench.state,
            "violations": list(world.violations),
            "positions_total": world.positions_total,
            "drops_total": world.drops_total,
            "records": [(r.outcome, r.reason) for r in store.attempts()],
            "ribbon_sources": [row[0] for row in store._db.execute("SELECT source FROM ribbon")],
            "drop_sources": [row[0] for row in store._db.execute("SELECT source FROM drops")],
            "console_audit": console_audit,
            "config": bench.controller.config,
            "pin": store.setting(PIN_KEY),
            "overrides": store.setting("config.overrides"),
            "cassettes": [(r["type"], r["used"]) for r in store.cassettes()],
            "fluid_used": store.fluid()[0],
            "logged_in": traffic.session.logged_in if traffic else False,
        }


@functools.cache
def baseline() -> dict[str, Any]:
    run = clean_with_console(None)
    assert run["result"] is not None and run["result"]["outcome"] == "cleaned"
    return run


def assert_undisturbed(run: dict[str, Any]) -> None:
    base = baseline()
    assert run["result"] == base["result"] and run["result"]["outcome"] == "cleaned"
    assert run["results"] == 1 and run["records"] == base["records"]
    assert run["state"] == "idle"
    assert run["violations"] == []
    # no protected action without a login
    assert not run["logged_in"]
    assert run["positions_total"] == 3 and run["drops_total"] == 0
    assert run["ribbon_sources"] == ["clean"], "no jog or self-test in the ribbon ledger"
    assert run["drop_sources"] == [], "no prime or self-test drop in a dry clean"
    assert run["cassettes"] == base["cassettes"] == [("standard", 3)]
    assert run["fluid_used"] == 0
    assert run["config"] == base["config"] and run["overrides"] is None
    assert run["pin"] == PIN_HASH
    assert {r["action"] for r in run["console_audit"]} <= OPEN_AUDIT_ACTIONS, run["console_audit"]


def test_the_reference_clean_without_console_traffic_is_cleaned():
    run = baseline()
    assert run["violations"] == [] and run["positions_total"] == 3 and run["console_audit"] == []


@FUZZ
@given(binary_input)
def test_arbitrary_bytes_on_the_console_during_a_clean(chunks):
    assert_undisturbed(clean_with_console(chunks))


@FUZZ
@given(text_input)
def test_arbitrary_lines_and_real_commands_on_the_console_during_a_clean(chunks):
    assert_undisturbed(clean_with_console(chunks))
