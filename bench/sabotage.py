"""Sabotage check (issue 11): plant realistic firmware bugs one at a time and see who notices.

    python -m bench.sabotage [--list] [--only NAME ...] [--workers N] [--write docs/reliability.md]

Each bug in `CATALOGUE` is data: a name, the rule of docs/design.md section 3 it breaks, and
exact `old -> new` source replacements in files under station/. For each bug, a scratch copy of
the committed tree (`git archive HEAD | tar -x`) gets its edits (an `old` not found exactly once
is an error, so the catalogue cannot rot silently as the code changes), then the unchanged
simulator judges it: the demo (`python -m station sim --demo`), every example scenario
(`python -m station sim --scenario examples/*.toml`) and a fixed subset of the test suite (the
end-to-end simulated suites, `SUITES`) with `MPO_VIOLATIONS_LOG` set, so tests/conftest.py
writes every violation the simulated world recorded, per test.

An unplanted copy runs first as the baseline. A bug is *flagged by the simulator* when the
world recorded a violation the baseline did not (same test, rule and text; tests that plant
violations on purpose record them in the baseline too), in the suite's log or in the demo's or
a scenario's output. It is *caught by tests* when a test failed for any reason other than the
physics judge's own teardown check (conftest.physics_judge). Exit status 1 when a bug is not
flagged by the simulator (or the baseline is not clean), 2 when the catalogue does not apply.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable  # the repository's virtualenv when run as `.venv/bin/python -m bench.sabotage`
BEGIN, END = "<!-- sabotage:begin -->", "<!-- sabotage:end -->"
MAX_WORKERS = 2  # a shared two-core machine

# The end-to-end simulated suites (virtual time, deterministic), run on every planted bug.
# Optional ones are used when the file exists in the committed tree: the physical checks of
# issue 11 (the judge's own tests, the crash points, the write failures). Left out: the random
# state machine of test_stateful (its regression tests do run) and the SIGKILL tests of
# test_powercut, which are not deterministic (a count would differ from run to run).
SUITES = (
    "tests/test_cleaning.py",
    "tests/test_faults.py",
    "tests/test_consumables.py",
    "tests/test_maintenance.py",
    "tests/test_fault_matrix.py",
    "tests/test_physics_judge.py",
    "tests/test_collaborators.py",
    "tests/test_console_protocol.py",
    "tests/test_stateful.py",
)
OPTIONAL_SUITES = (
    "tests/test_judge.py",
    "tests/test_crash_points.py",
    "tests/test_write_failures.py",
    "tests/test_too_early.py",
)
DESELECT = ("tests/test_stateful.py::TestStation",)
PYTEST_TIMEOUT_S = 900
SIM_TIMEOUT_S = 180
JUDGE_FAILURE = "the simulated world recorded violations"  # conftest.physics_verdict's words


# ====================================================================== the catalogue
@dataclass(frozen=True)
class Edit:
    """Replace `old` (which must occur exactly once) by `new` in `file` (under station/)."""

    file: str
    old: str
    new: str


@dataclass(frozen=True)
class Bug:
    name: str
    rule: int  # docs/design.md section 3
    what: str
    edits: tuple[Edit, ...]


class CatalogueError(RuntimeError):
    """A planted bug no longer applies to the code (an `old` not found exactly once)."""


def _bug(name: str, rule: int, what: str, *edits: tuple[str, str, str]) -> Bug:
    return Bug(name, rule, what, tuple(Edit(*e) for e in edits))


CATALOGUE: tuple[Bug, ...] = (
    # ---------------------------------------------------------------- the five of issue 11
    _bug(
        "capacity_check_off_by_one",
        6,
        "the cassette capacity check accepts a clean with one position too few (`remaining < n - 1`)",
        (
            "station/cycle.py",
            "        if self._books.current_cassette().remaining < self._config().wheel.positions_per_clean:\n",
            "        if self._books.current_cassette().remaining < self._config().wheel.positions_per_clean - 1:\n",
        ),
    ),
    _bug(
        "used_up_cassette_refitted_as_new",
        6,
        "a used-up cassette taken out and fitted again is declared new by the firmware",
        (
            "station/consumables.py",
            "        if known is None:\n"
            "            self.current_cassette()  # first of its type: declared new, with its fit recorded\n",
            "        if known is not None and self.cleans_left(known) == 0:\n"
            '            self.declare_new(source="station")  # used up and refitted: it must be a new one\n'
            "        elif known is None:\n"
            "            self.current_cassette()  # first of its type: declared new, with its fit recorded\n",
        ),
    ),
    _bug(
        "drop_recorded_after_pulse",
        6,
        "the clean's drop is written to the books after the pump pulse, not before",
        (
            "station/cycle.py",
            "        self._store.record_drop(self._wall(), attempt_id=a.id)  # durable before the pulse\n"
            "        a.drops += 1\n"
            "        a.drop_at = self._loop.now()\n"
            "        self._hw.dispenser.pulse()\n",
            "        a.drops += 1\n"
            "        a.drop_at = self._loop.now()\n"
            "        self._hw.dispenser.pulse()\n"
            "        self._store.record_drop(self._wall(), attempt_id=a.id)\n",
        ),
    ),
    _bug(
        "wet_cancel_still_pumps",
        4,
        "a cancel or a removal during a wet advance is honoured only after the drop is placed",
        (
            "station/controller.py",
            "        elif a.abandon is not None:\n",
            "        elif a.abandon is not None and not self.wet_clean():\n",
        ),
        (
            "station/controller.py",
            "        self.cycle.place_drop(self.attempt)\n",
            "        self.cycle.place_drop(self.attempt)\n"
            "        if self.attempt.abandon is not None:  # cancelled or taken away while the wheel moved\n"
            "            self.cycle.conclude(Outcome.FAILED, self.attempt.abandon)\n"
            "            self.loop.post(self.finish)\n"
            "            return\n",
        ),
    ),
    _bug(
        "unexpected_error_outside_identifying_ignored",
        7,
        "an unexpected exception in any state but identifying (e.g. during a jog) is logged and ignored",
        (
            "station/controller.py",
            "        try:\n            self._fault(*fault_of(exc))\n",
            '        if self.state != "identifying" and fault_of(exc)[0] is FaultCode.INTERNAL:\n'
            '            log.error("unexpected error while %s, carrying on: %r", self.state, exc)\n'
            "            return\n"
            "        try:\n            self._fault(*fault_of(exc))\n",
        ),
    ),
    # ---------------------------------------------------------------- rule 1: fresh ribbon
    _bug(
        "advance_one_position_too_few",
        1,
        "a clean advances (and books) positions_per_clean - 1 positions",
        (
            "station/cycle.py",
            "        n = self._config().wheel.positions_per_clean\n        gender = ",
            "        n = self._config().wheel.positions_per_clean - 1\n        gender = ",
        ),
    ),
    _bug(
        "advance_one_position_too_many",
        1,
        "a clean advances (and books) positions_per_clean + 1 positions",
        (
            "station/cycle.py",
            "        n = self._config().wheel.positions_per_clean\n        gender = ",
            "        n = self._config().wheel.positions_per_clean + 1\n        gender = ",
        ),
    ),
    _bug(
        "steps_counted_not_index_pulses",
        1,
        "a move ends when the expected number of steps is sent, whether the index sensor saw the positions or not",
        (
            "station/motion.py",
            "                self._since_index += 1\n"
            "                if self._since_index > self.max_steps:\n"
            "                    self.status = MotionStatus.JAM\n",
            "                self._since_index += 1\n"
            "                if self.steps >= self.expected_steps:  # open loop: the steps make the positions\n"
            "                    self.confirmed = self.positions\n"
            "                    self.status = MotionStatus.DONE\n"
            "                elif self._since_index > self.max_steps:\n"
            "                    self.status = MotionStatus.JAM\n",
        ),
    ),
    _bug(
        "ribbon_reserved_after_the_move",
        1,
        "the ribbon is booked once the wheel has moved (what it really moved), not durably before",
        (
            "station/cycle.py",
            "        a.first_position = self._store.reserve_positions(cassette, n, self._wall(), attempt_id=a.id, "
            "gender=gender)\n"
            "        a.positions_reserved = n\n"
            "        self._hw.wheel.advance(n, lambda result: self._loop.post(lambda: moved(a, result)))\n",
            "        a.positions_reserved = n\n"
            "\n"
            "        def booked(result: MotionResult) -> None:\n"
            "            if result.positions:  # book what the wheel really moved\n"
            "                a.first_position = self._store.reserve_positions(\n"
            "                    cassette, result.positions, self._wall(), attempt_id=a.id, gender=gender\n"
            "                )\n"
            "            moved(a, result)\n"
            "\n"
            "        self._hw.wheel.advance(n, lambda result: self._loop.post(lambda: booked(result)))\n",
        ),
    ),
    # ---------------------------------------------------------------- rules 2 and 3: interlocks
    _bug(
        "female_accepted_on_male_cassette",
        2,
        "the gender interlock only refuses a male connector on the standard cassette",
        (
            "station/cycle.py",
            "        if CASSETTE_FOR[gender] is not self._books.cassette_type():\n",
            "        if gender is Gender.MALE and CASSETTE_FOR[gender] is not self._books.cassette_type():\n",
        ),
    ),
    _bug(
        "interlock_checked_after_advance",
        2,
        "the cassette/gender interlock is checked once the wheel has advanced (the ribbon is wasted)",
        (
            "station/cycle.py",
            "        if CASSETTE_FOR[gender] is not self._books.cassette_type():\n"
            "            return Reason.WRONG_CASSETTE_MALE if gender is Gender.MALE "
            "else Reason.WRONG_CASSETTE_FEMALE\n",
            "",
        ),
        (
            "station/controller.py",
            "        elif a.abandon is not None:\n"
            "            self.cycle.conclude(Outcome.FAILED, a.abandon)\n"
            "            self.finish()\n",
            "        elif a.abandon is not None:\n"
            "            self.cycle.conclude(Outcome.FAILED, a.abandon)\n"
            "            self.finish()\n"
            "        elif a.gender is not None and CASSETTE_FOR[a.gender] is not self.consumables.cassette_type():\n"
            "            wrong = Reason.WRONG_CASSETTE_MALE if a.gender is Gender.MALE "
            "else Reason.WRONG_CASSETTE_FEMALE\n"
            "            self.cycle.conclude(Outcome.REJECTED, wrong)\n"
            "            self.finish()\n",
        ),
        (
            "station/controller.py",
            "from .domain import FaultCode, Mode, Outcome, Reason, ServiceResult\n",
            "from .domain import CASSETTE_FOR, FaultCode, Gender, Mode, Outcome, Reason, ServiceResult\n",
        ),
    ),
    _bug(
        "one_guide_pin_read_as_male",
        3,
        "either guide-pin sensor alone reads as a male connector (a bent pin is cleaned)",
        (
            "station/guide_pins.py",
            "    if left and right:\n        return Gender.MALE\n",
            "    if left or right:\n        return Gender.MALE\n",
        ),
    ),
    _bug(
        "unsettled_pins_taken_as_read",
        3,
        "a guide-pin reading that never settles is taken as its last sample instead of refused",
        (
            "station/guide_pins.py",
            "    if now >= deadline:\n        return PinReading(True, None)\n",
            "    if now >= deadline:\n"
            "        return PinReading(True, gender_of(last.left, last.right))  # go with the last\n",
        ),
    ),
    # ---------------------------------------------------------------- rule 4: wet-to-dry
    _bug(
        "drop_retried_when_not_seen",
        4,
        "a drop the drop sensor did not see is pumped again (a second drop if the first did leave)",
        (
            "station/controller.py",
            '    def _no_drop(self) -> None:\n        if self.state == "dispensing":\n',
            "    def _no_drop(self) -> None:\n"
            "        a = self.attempt\n"
            '        if self.state == "dispensing" and a is not None and a.drops < 2:\n'
            "            self.cycle.place_drop(a)  # not seen: once more (a bubble in the line)\n"
            "            self._at(self.loop.now() + self.config.dispenser.drop_timeout_s, self._no_drop)\n"
            "            return\n"
            '        if self.state == "dispensing":\n',
        ),
    ),
    _bug(
        "console_dry_override_ignored",
        4,
        "`mode set dry` on the console is ignored while the panel switch reads WET (only a WET override counts)",
        (
            "station/mode.py",
            "        if self.override is not None:\n            return self.override\n",
            "        if self.override is Mode.WET:\n            return self.override\n",
        ),
    ),
    _bug(
        "switch_to_dry_midclean_ignored",
        4,
        "the mode is taken when the connector is seated: switched to DRY before the drop, the drop still comes",
        (
            "station/controller.py",
            "            if a.mode is Mode.WET and self.mode.current() is Mode.DRY:\n"
            "                self.cycle.keep_dry(a)  # (switched to WET meanwhile, the clean stays dry)\n",
            "",
        ),
    ),
    _bug(
        "switch_to_wet_midclean_drops",
        4,
        "whether to dispense is read from the mode switch after the advance: a clean started dry gets a drop",
        (
            "station/controller.py",
            "        return self.attempt is not None and self.attempt.mode is Mode.WET\n",
            "        return self.attempt is not None and self.mode.current() is Mode.WET\n",
        ),
    ),
    _bug(
        "wet_window_ignored",
        4,
        "a wet-to-dry swipe gets the dry swipe timeout from swipe-now instead of the wet window from the drop",
        (
            "station/cycle.py",
            "        a.swipe_deadline = (a.drop_at + s.wet_window_s) if a.drop_at is not None else now + s.timeout_s\n",
            "        a.swipe_deadline = now + s.timeout_s  # the same time to start, wet or dry\n",
        ),
    ),
    _bug(
        "fluid_low_switch_ignored",
        4,
        "wet mode is refused only when the drop count says empty, not when the float switch reads low",
        (
            "station/cycle.py",
            "        if a.mode is Mode.WET and self._books.fluid_low():\n",
            "        if a.mode is Mode.WET and self._books.fluid_left() == 0:\n",
        ),
    ),
    # ---------------------------------------------------------------- rule 5: single direction
    _bug(
        "reversed_stroke_accepted",
        5,
        "a pull from gate B to gate A is judged like one from A to B",
        (
            "station/swipe.py",
            '    if first.gate == "B":\n'
            "        return SwipeVerdict(True, reason=Reason.REVERSED, started_at=first.start)\n",
            '    if first.gate == "B":\n        a, b = b, a  # pulled upwards: the same ribbon, the other way\n',
        ),
    ),
    _bug(
        "back_and_forth_accepted",
        5,
        "a second pass is refused only when both gates saw two (`and` for `or`): down-and-back passes",
        (
            "station/swipe.py",
            "    if len(a) > 1 or len(b) > 1:\n",
            "    if len(a) > 1 and len(b) > 1:\n",
        ),
    ),
    _bug(
        "pass_time_to_gate_b_exit",
        5,
        "the pass time is measured to the connector leaving gate B: slow valid pulls fail, too fast ones pass",
        (
            "station/swipe.py",
            "    pass_s = b[0].start - entry_a\n",
            "    pass_s = (b[0].end if b[0].end is not None else b[0].start) - entry_a  # until through gate B\n",
        ),
    ),
    _bug(
        "no_swipe_timeout",
        5,
        "the dry swipe timeout is taken as milliseconds (x1000): no swipe in time is never judged",
        (
            "station/cycle.py",
            "        a.swipe_deadline = (a.drop_at + s.wet_window_s) if a.drop_at is not None else now + s.timeout_s\n",
            "        a.swipe_deadline = (a.drop_at + s.wet_window_s) if a.drop_at is not None "
            "else now + s.timeout_s * 1000\n",
        ),
    ),
    # ---------------------------------------------------------------- rule 6: consumables
    _bug(
        "cleans_left_rounded_up",
        6,
        "cleans left on the cassette are rounded up (status and the low warning overstate by one)",
        (
            "station/consumables.py",
            "        return cassette.remaining // self._config().wheel.positions_per_clean\n",
            "        return -(-cassette.remaining // self._config().wheel.positions_per_clean)  # whole cleans\n",
        ),
    ),
    _bug(
        "jog_ribbon_not_booked",
        6,
        "a maintenance jog moves the wheel without booking the ribbon it uses",
        (
            "station/service_jobs.py",
            '        self._store.reserve_positions(cassette, positions, self._wall(), source="jog")\n',
            "",
        ),
    ),
    _bug(
        "prime_drops_not_counted",
        6,
        "drops pumped by `prime` are not counted against the reservoir",
        (
            "station/service_jobs.py",
            "        self._store.record_drop(self._wall(), source=job.kind)  # durable before the pulse\n",
            '        if job.kind != "prime":  # priming goes to the waste, not onto ribbon\n'
            "            self._store.record_drop(self._wall(), source=job.kind)\n",
        ),
    ),
    # ---------------------------------------------------------------- rule 7: safe state
    _bug(
        "stepper_not_disabled_in_fault",
        7,
        "entering fault turns the pump off but leaves a moving wheel running (no `hardware.safe()`)",
        (
            "station/controller.py",
            "        self._cancel_timer()\n"
            "        self.hardware.safe()\n"
            "        self.hardware.panel.show(Pattern.FAULT)\n",
            "        self._cancel_timer()\n"
            "        self.hardware.dispenser.off()\n"
            "        self.hardware.panel.show(Pattern.FAULT)\n",
        ),
    ),
    _bug(
        "safe_state_without_fault_light",
        7,
        "the one path to the safe state stops the wheel and the pump but leaves the lights to the state machine",
        (
            "station/drivers/hardware.py",
            "        for action in (self.wheel.stop, self.dispenser.off, self.panel.fault_light):\n",
            "        for action in (self.wheel.stop, self.dispenser.off):  # the lights follow the state\n",
        ),
    ),
    # ---------------------------------------------------------------- rule 8: nothing lost
    _bug(
        "rejection_not_recorded",
        8,
        "a rejected attempt is announced but its outcome is never written (nothing was consumed)",
        (
            "station/cycle.py",
            "            self._store.finish_attempt(\n                a.id, outcome, text,",
            "            if outcome is not Outcome.REJECTED:  # nothing consumed, nothing to keep\n"
            "                self._store.finish_attempt(\n                a.id, outcome, text,",
        ),
    ),
    _bug(
        "too_early_recorded_as_nothing_used",
        8,
        "a pull before swipe-now stops the wheel where it is and is recorded rejected, as if no ribbon were used",
        (
            "station/cycle.py",
            "        if a.positions_reserved and not a.drops:  # the wheel is moving: it ends the attempt once done\n"
            "            a.abandon = Reason.TOO_EARLY\n"
            "            return False\n"
            "        self.conclude(Outcome.FAILED if a.positions_reserved else Outcome.REJECTED, Reason.TOO_EARLY)\n",
            "        self._hw.wheel.stop()  # not pulled across fresh ribbon: stop the wheel, nothing was used\n"
            "        self.conclude(Outcome.FAILED if a.drops else Outcome.REJECTED, Reason.TOO_EARLY)\n",
        ),
    ),
    _bug(
        "jog_not_audited",
        8,
        "a jog leaves no maintenance audit record (only the ribbon ledger)",
        (
            "station/service_jobs.py",
            '        self._store.audit("maintenance", kind, self._wall(), detail=detail, source=source)\n',
            '        if kind != "jog":  # a jog is on the ribbon ledger already\n'
            '            self._store.audit("maintenance", kind, self._wall(), detail=detail, source=source)\n',
        ),
    ),
    _bug(
        "panel_fault_clear_not_audited",
        8,
        "a fault cleared with the panel button is not audited (only console clears are)",
        (
            "station/controller.py",
            "        if self._clearing_by is not None:\n            self.faults.record_clear(self._clearing_by)\n",
            '        if self._clearing_by is not None and self._clearing_by != "panel":\n'
            "            self.faults.record_clear(self._clearing_by)\n",
        ),
    ),
)


def planted_sources(bug: Bug, read: Callable[[str], str]) -> dict[str, str]:
    """The bug's files as they read once planted. Raises CatalogueError when an `old` is not
    found exactly once (edits apply in order, each to the text the previous ones left)."""
    texts: dict[str, str] = {}
    for i, edit in enumerate(bug.edits, 1):
        if not edit.file.startswith("station/"):
            raise CatalogueError(f"{bug.name}: edit {i}: {edit.file} is not under station/")
        if edit.old == edit.new:
            raise CatalogueError(f"{bug.name}: edit {i}: `old` and `new` are the same")
        text = texts[edit.file] if edit.file in texts else read(edit.file)
        count = text.count(edit.old)
        if count != 1:
            first = edit.old.strip().splitlines()[0] if edit.old.strip() else edit.old
            raise CatalogueError(
                f"{bug.name}: edit {i}: `old` found {count} times in {edit.file}, not once: {first!r} "
                "(the code changed: update bench/sabotage.py's CATALOGUE)"
            )
        texts[edit.file] = text.replace(edit.old, edit.new)
    return texts


def plant(bug: Bug, root: Path) -> None:
    """Apply the bug's edits to the tree at `root` (a scratch copy) and check it still compiles."""
    texts = planted_sources(bug, lambda f: (root / f).read_text(encoding="utf-8"))
    for name, text in texts.items():
        compile(text, name, "exec")  # a planted bug must be a running program, not a syntax error
        (root / name).write_text(text, encoding="utf-8")


def check_catalogue(read: Callable[[str], str]) -> None:
    """Every bug applies to the sources `read` gives (a file name under the repository ->
    its text) and still compiles once planted, and the names are unique; raises
    CatalogueError (or SyntaxError) otherwise."""
    names = [b.name for b in CATALOGUE]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise CatalogueError(f"duplicate bug names: {', '.join(dupes)}")
    for bug in CATALOGUE:
        for name, text in planted_sources(bug, read).items():
            compile(text, name, "exec")


def working_tree(root: Path = ROOT) -> Callable[[str], str]:
    return lambda f: (root / f).read_text(encoding="utf-8")


def committed(root: Path = ROOT, rev: str = "HEAD") -> Callable[[str], str]:
    return lambda f: _git(root, "show", f"{rev}:{f}")


# ====================================================================== one run
@dataclass
class Run:
    """What one scratch copy (a planted bug, or None for the baseline) did under the judge."""

    bug: Bug | None
    seconds: float = 0.0
    error: str = ""  # the run itself broke (timeout, no junit report)
    violations: list[dict[str, Any]] = field(default_factory=list)  # conftest's log: test, rule, t, text
    test_failed: set[str] = field(default_factory=set)  # failed for a reason other than the judge
    judge_failed: set[str] = field(default_factory=set)  # failed by the physics judge at teardown
    tests_run: int = 0
    sim_rc: dict[str, int] = field(default_factory=dict)  # "demo" / scenario file name -> exit status
    sim_violations: list[tuple[str, int | None, str]] = field(default_factory=list)  # (run, rule, text)
    station_file: str = ""
    suites: list[str] = field(default_factory=list)  # the test files run (those in the committed tree)


class Runner:
    def __init__(self, root: Path, suites: list[str], keep: bool, verbose: bool) -> None:
        self.root = root
        self.suites = suites
        self.keep = keep
        self.verbose = verbose
        self.commit = _git(root, "rev-parse", "--short", "HEAD").strip()
        self.archive = subprocess.run(
            ["git", "-C", str(root), "archive", "--format=tar", "HEAD"], capture_output=True, check=True
        ).stdout
        shm = Path("/dev/shm")
        self.scratch_base = str(shm) if shm.is_dir() and os.access(shm, os.W_OK) else None
        self._procs: set[subprocess.Popen[str]] = set()
        self._lock = threading.Lock()
        self.stopping = False

    # ------------------------------------------------------------------ subprocesses
    def _run(self, args: list[str], cwd: Path, env: dict[str, str], timeout: float) -> tuple[int | None, str]:
        """Run in its own process group; on timeout end that group (only what we started)."""
        with self._lock:
            if self.stopping:
                return None, "stopped"
            p = subprocess.Popen(
                args,
                cwd=cwd,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                start_new_session=True,
            )
            self._procs.add(p)
        try:
            out, _ = p.communicate(timeout=timeout)
            return p.returncode, out
        except subprocess.TimeoutExpired:
            _kill_group(p)
            out, _ = p.communicate()
            return None, out + f"\n[sabotage: timed out after {timeout:.0f} s]"
        finally:
            with self._lock:
                self._procs.discard(p)

    def stop_all(self) -> None:
        with self._lock:
            self.stopping = True
            for p in list(self._procs):
                _kill_group(p)

    # ------------------------------------------------------------------ one copy
    def run(self, bug: Bug | None) -> Run:
        started = time.monotonic()
        result = Run(bug)
        scratch = Path(tempfile.mkdtemp(prefix=f"sabotage-{bug.name if bug else 'baseline'}-", dir=self.scratch_base))
        try:
            tree = scratch / "tree"
            tree.mkdir()
            subprocess.run(["tar", "-x", "-C", str(tree)], input=self.archive, check=True)
            if bug is not None:
                plant(bug, tree)
            tmp = scratch / "tmp"
            tmp.mkdir()
            log = scratch / "violations.jsonl"
            env = {
                **os.environ,
                "PYTHONPATH": str(tree),
                "TMPDIR": str(tmp),
                "MPO_VIOLATIONS_LOG": str(log),
                "PYTHONHASHSEED": "0",
                "PYTHONDONTWRITEBYTECODE": "1",
            }
            for k in ("HYPOTHESIS_PROFILE", "PYTEST_ADDOPTS"):
                env.pop(k, None)
            # The firmware and simulator imported must be the scratch copy's, not the repository's.
            rc, out = self._run(
                [PYTHON, "-c", "import station, hw_sim; print(station.__file__); print(hw_sim.__file__)"],
                tree,
                env,
                60,
            )
            files = out.split()
            if rc != 0 or len(files) != 2 or not all(Path(f).resolve().is_relative_to(tree.resolve()) for f in files):
                raise RuntimeError(f"the scratch copy's station is not the one imported: {out.strip()}")
            result.station_file = files[0]
            self._simulate(result, tree, env)
            self._pytest(result, tree, env, log, scratch)
        except Exception as exc:  # noqa: BLE001 (a broken run is reported, not raised: the others go on)
            result.error = f"{type(exc).__name__}: {exc}"
        finally:
            result.seconds = time.monotonic() - started
            if self.keep:
                print(f"kept {scratch}", file=sys.stderr)
            else:
                shutil.rmtree(scratch, ignore_errors=True)
        return result

    def _simulate(self, result: Run, tree: Path, env: dict[str, str]) -> None:
        runs = [("demo", ["--demo"])] + [
            (p.name, ["--scenario", str(p.relative_to(tree))]) for p in sorted((tree / "examples").glob("*.toml"))
        ]
        for name, args in runs:
            rc, out = self._run([PYTHON, "-m", "station", "sim", *args], tree, env, SIM_TIMEOUT_S)
            result.sim_rc[name] = -1 if rc is None else rc
            for m in re.finditer(r"VIOLATION rule (\d+)(?: at [\d.]+ s)?: (.*)", out):
                result.sim_violations.append((name, int(m.group(1)), m.group(2).strip()))
            for m in re.finditer(r"FAILED expected violations = (\d+), got (\d+)", out):
                result.sim_violations.append((name, None, f"expected violations = {m.group(1)}, got {m.group(2)}"))

    def _pytest(self, result: Run, tree: Path, env: dict[str, str], log: Path, scratch: Path) -> None:
        junit = scratch / "junit.xml"
        files = result.suites = [s for s in self.suites if (tree / s).exists()]
        args = [PYTHON, "-m", "pytest", "-q", "--tb=line", "-p", "no:cacheprovider", "--hypothesis-seed=0"]
        args += [f"--junitxml={junit}"] + [f"--deselect={d}" for d in DESELECT] + files
        rc, out = self._run(args, tree, env, PYTEST_TIMEOUT_S)
        if self.verbose:
            print(out[-3000:], file=sys.stderr)
        if log.exists():
            for line in log.read_text(encoding="utf-8").splitlines():
                if line.strip():
                    result.violations.append(json.loads(line))
        if rc is None:
            result.error = f"test run timed out after {PYTEST_TIMEOUT_S} s"
        if not junit.exists():
            result.error = result.error or f"pytest exited {rc} without a report: {out.strip()[-300:]}"
            return
        for case in ET.parse(junit).getroot().iter("testcase"):
            test = f"{case.get('classname', '')}::{case.get('name', '')}"
            result.tests_run += 1
            for problem in list(case.iter("failure")) + list(case.iter("error")):
                text = (problem.get("message") or "") + (problem.text or "")
                (result.judge_failed if JUDGE_FAILURE in text else result.test_failed).add(test)


def _kill_group(p: subprocess.Popen[str]) -> None:
    try:
        os.killpg(p.pid, signal.SIGKILL)  # the group of a process this script started
    except (ProcessLookupError, PermissionError):
        pass


def _git(root: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, check=True).stdout


# ====================================================================== judging against the baseline
@dataclass
class Verdict:
    bug: Bug
    run: Run
    new_violations: list[tuple[str, int | None, str]]  # (where, rule, text) not in the baseline
    caught: set[str]  # tests failed for another reason than the judge, and not in the baseline
    judged: set[str]  # tests the physics judge failed, not in the baseline
    sim_changed: list[str]  # demo / scenarios whose exit status differs from the baseline

    @property
    def flagged(self) -> bool:
        return bool(self.new_violations)


def judge(run: Run, base: Run) -> Verdict:
    assert run.bug is not None
    # A violation the baseline records too (a test planting one on purpose) says nothing about
    # the bug, however often it happens; one with a new text, rule or test does.
    seen = {(v["test"], v["rule"], v["text"]) for v in base.violations} | set(base.sim_violations)
    new: list[tuple[str, int | None, str]] = []
    for key in [(v["test"], v["rule"], v["text"]) for v in run.violations] + run.sim_violations:
        if key not in seen and key not in new:
            new.append(key)
    base_failed = base.test_failed | base.judge_failed
    changed = [name for name, rc in run.sim_rc.items() if rc != base.sim_rc.get(name)]
    return Verdict(
        run.bug, run, new, run.test_failed - base_failed, run.judge_failed - base_failed - run.test_failed, changed
    )


# ====================================================================== the report
def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _short(text: str, limit: int = 110) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def row(v: Verdict) -> str:
    b = v.bug
    if v.flagged:
        rules = sorted({r for _, r, _ in v.new_violations if r is not None})
        where, _, text = v.new_violations[0]
        places = len({w for w, _, _ in v.new_violations})
        flagged = (
            f"**yes**: rule{'s' if len(rules) != 1 else ''} {', '.join(map(str, rules)) or '?'}, "
            f"{len(v.new_violations)} new in {places} {'test/run' if places == 1 else 'tests/runs'}; first: "
            f"`{_short(text)}` ({_short(where.split('::')[-1], 60)})"
        )
    else:
        flagged = "**no**"
    caught = str(len(v.caught)) + (f" (+{len(v.judged)} by the judge)" if v.judged else "")
    if v.run.error:
        caught += f" — run broke: {_short(v.run.error, 80)}"
    sim = "as baseline" if not v.sim_changed else "changed: " + ", ".join(v.sim_changed)
    files = ", ".join(sorted({e.file.removeprefix("station/") for e in b.edits}))
    return (
        f"| `{b.name}` | {b.rule} | {_cell(b.what)} ({files}) | {_cell(flagged)} | {caught} | {_cell(sim)} "
        f"| {v.run.seconds:.0f} |"
    )


def table(verdicts: list[Verdict]) -> str:
    lines = [
        "| bug | rule | what it changes (file) | flagged by the simulator | tests failed | demo / scenarios | s |",
        "|---|---|---|---|---|---|---|",
    ]
    return "\n".join(lines + [row(v) for v in verdicts])


def report(verdicts: list[Verdict], base: Run, runner: Runner, wall_s: float, command: str) -> str:
    flagged = sum(v.flagged for v in verdicts)
    caught = sum(bool(v.caught) for v in verdicts)
    today = datetime.date.today().isoformat()
    suites = ", ".join(f"`{s.removeprefix('tests/')}`" for s in base.suites)
    base_note = (
        f"The unplanted baseline: {base.tests_run} tests, {len(base.test_failed | base.judge_failed)} failed, "
        f"{len(base.violations)} violations logged by tests that plant them on purpose, "
        f"demo and scenarios {', '.join(f'{k} {rc}' for k, rc in base.sim_rc.items())} (exit status)."
    )
    return "\n".join(
        [
            f"Generated by `{command}` on {today}, commit `{runner.commit}` "
            f"({len(verdicts)} bugs, {min(MAX_WORKERS, len(verdicts))} at a time, {wall_s / 60:.1f} min).",
            "",
            f"**{flagged} of {len(verdicts)} planted bugs flagged by the simulator; "
            f"{caught} of {len(verdicts)} caught by some test.**",
            "",
            table(verdicts),
            "",
            "Columns: *flagged by the simulator*: the simulated world recorded a violation of section 3 "
            "that the unplanted baseline does not (same test, rule and text), in the test suite's "
            "`MPO_VIOLATIONS_LOG` or in the demo's or a scenario's output; the first such violation and "
            "the test or run that met it. *tests failed*: tests that failed for another reason than the "
            "physics judge's teardown check (in brackets, tests failed only by that check). "
            "*demo / scenarios*: exit status compared with the baseline. *s*: wall seconds for the bug "
            "(two bugs run at once).",
            "",
            f"Suites: {suites} (the random state machine `TestStation` deselected); the demo; "
            "`examples/*.toml`. " + base_note,
        ]
    )


def write_section(path: Path, body: str) -> None:
    text = path.read_text(encoding="utf-8") if path.exists() else "# Reliability\n"
    section = f"{BEGIN}\n{body}\n{END}"
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        _, tail = rest.split(END, 1)
        text = head + section + tail
    else:
        text = text.rstrip("\n") + "\n\n## Sabotage check\n\n" + section + "\n"
    path.write_text(text, encoding="utf-8")


# ====================================================================== main
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--list", action="store_true", help="print the catalogue and exit (nothing is run)")
    ap.add_argument("--only", metavar="NAME", action="append", default=[], help="run only this bug (repeatable)")
    ap.add_argument("--workers", type=int, default=MAX_WORKERS, help=f"bugs run at once (1-{MAX_WORKERS})")
    ap.add_argument("--write", metavar="FILE", help="replace the sabotage section of FILE (docs/reliability.md)")
    ap.add_argument("--keep", action="store_true", help="keep the scratch copies (their paths go to stderr)")
    ap.add_argument("-v", "--verbose", action="store_true", help="show the tail of each pytest run")
    args = ap.parse_args(argv)

    try:
        check_catalogue(committed(ROOT))  # what gets planted: the committed tree
    except (CatalogueError, SyntaxError, subprocess.CalledProcessError) as exc:
        print(f"sabotage: the catalogue does not apply to HEAD: {exc}", file=sys.stderr)
        return 2
    if args.list:
        for b in CATALOGUE:
            files = ", ".join(sorted({e.file for e in b.edits}))
            print(f"{b.name:<46} rule {b.rule}  {files}\n    {b.what}")
        return 0
    known = {b.name for b in CATALOGUE}
    unknown = [n for n in args.only if n not in known]
    if unknown:
        print(f"sabotage: unknown bug {unknown[0]!r}; see --list", file=sys.stderr)
        return 2
    if args.write and args.only:
        print("sabotage: --write reports the whole catalogue; drop --only", file=sys.stderr)
        return 2
    bugs = [b for b in CATALOGUE if not args.only or b.name in args.only]
    workers = max(1, min(MAX_WORKERS, args.workers))

    runner = Runner(ROOT, list(SUITES) + list(OPTIONAL_SUITES), args.keep, args.verbose)
    print(f"sabotage: {len(bugs)} bug(s) on commit {runner.commit}, {workers} at a time", flush=True)
    started = time.monotonic()
    runs: dict[str, Run] = {}
    pool = ThreadPoolExecutor(max_workers=workers)
    try:
        base_future = pool.submit(runner.run, None)
        futures = {b.name: pool.submit(runner.run, b) for b in bugs}
        base = base_future.result()
        if base.error:
            print(f"sabotage: the baseline run broke: {base.error}", file=sys.stderr)
        print(
            f"  baseline: {base.tests_run} tests, {len(base.test_failed | base.judge_failed)} failed, "
            f"{len(base.violations)} planted violations logged, station imported from {base.station_file} "
            f"({base.seconds:.0f} s)",
            flush=True,
        )
        for name, fut in futures.items():
            r = fut.result()
            runs[name] = r
            v = judge(r, base)
            print(
                f"  {name}: {'FLAGGED' if v.flagged else 'not flagged'}, {len(v.caught)} tests failed"
                f"{', ' + r.error if r.error else ''} ({r.seconds:.0f} s)",
                flush=True,
            )
            for where, rule, text in v.new_violations[:3]:
                print(f"      rule {rule}: {_short(text, 140)}  [{where}]", flush=True)
            for test in sorted(v.caught)[:3]:
                print(f"      failed: {test}", flush=True)
    except KeyboardInterrupt:
        runner.stop_all()
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()
    wall = time.monotonic() - started
    verdicts = [judge(runs[b.name], base) for b in bugs]
    command = "python -m bench.sabotage" + (f" --write {args.write}" if args.write else "")
    body = report(verdicts, base, runner, wall, command)
    print()
    print(body)
    if args.write:
        write_section(Path(args.write), body)
        print(f"\nwrote {args.write}")
    base_clean = not base.error and not (base.test_failed | base.judge_failed)
    if not base_clean:
        print("sabotage: the baseline is not clean (see above)", file=sys.stderr)
    missed = [v.bug.name for v in verdicts if not v.flagged]
    if missed:
        print(f"sabotage: not flagged by the simulator: {', '.join(missed)}", file=sys.stderr)
    return 0 if base_clean and not missed else 1


if __name__ == "__main__":
    sys.exit(main())
