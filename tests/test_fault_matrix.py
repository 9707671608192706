"""The fault matrix (hw_sim/fault_matrix.py): every injectable fault at every phase of a clean,
and while the station awaits the verdict of a connector it cleaned (inspecting).

One test per cell, so a failure names its fault and phase and says what differed. Each cell
must meet its expected outcome (the table `hw_sim.fault_matrix.EXPECTED`), keep the
outputs safe at every step, leave no violation of docs/design.md section 3 in the simulator,
agree with its durable records, and recover (cause removed, button pressed if in fault, one
more clean 'cleaned'). Plus: docs/reliability.md shows the table the current code generates,
and the harness itself is checked (it catches a broken firmware; it reads no controller
internals).

Virtual time throughout: no assertion depends on wall-clock speed.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from hw_sim import Fault
from hw_sim import fault_matrix as fm
from station.controller import CYCLE, STATES
from station.domain import Outcome, Reason, Verdict
from station.events import StateChanged
from station.inspection import Inspection

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "reliability.md"


@pytest.fixture(scope="session")
def cell():
    """Each cell runs once per test session (the staleness test reuses the per-cell runs). A
    session fixture, not a module-level cache: a tool that runs pytest again in the same process
    (mutmut forks per mutant) must not get the previous session's results."""
    runs: dict[tuple[Fault, str], fm.Cell] = {}

    def run(fault: Fault, phase: str) -> fm.Cell:
        if (fault, phase) not in runs:
            runs[fault, phase] = fm.run_cell(fault, phase)
        return runs[fault, phase]

    return run


CELLS = fm.cells_to_run()


def test_the_matrix_covers_every_fault_and_phase():
    assert set(fm.FAULTS) == set(Fault)
    # the phases of a clean are the controller's own states, in its order: ready, the cycle, the
    # result; then the inspection's (ready again, a verdict awaited: not a state of its own)
    assert fm.PHASES == (*fm.CLEAN_PHASES, fm.INSPECTING) and fm.INSPECTING not in STATES
    assert all(p in STATES for p in fm.CLEAN_PHASES)
    assert list(fm.CLEAN_PHASES[1:-1]) == CYCLE
    assert [STATES.index(p) for p in fm.CLEAN_PHASES] == sorted(STATES.index(p) for p in fm.CLEAN_PHASES)
    assert len(CELLS) == len(fm.FAULTS) * len(fm.PHASES) >= 80
    for fault, phase in CELLS:
        e = fm.expected(fault, phase)
        assert e.why, (fault, phase)
        if e.kind is not fm.Kind.EFFECT:  # tolerated or no effect: the clean still succeeds
            assert e.outcome is Outcome.CLEANED and e.code is None and e.state == "idle", (fault, phase)
        if e.outcome in (Outcome.FAILED, Outcome.REJECTED):
            assert e.reasons, (fault, phase)
        assert e.state in fm.PHASES + ("fault",), (fault, phase)
        # inspecting: a verdict for every cell, and never a release without the probe's PASS
        assert (e.verdict is not None) == (phase == fm.INSPECTING), (fault, phase)
        if e.verdict is not None:
            assert (e.verdict is Verdict.PASS) == (e.next == "released"), (fault, phase)
    # the faults that keep the probe's report from counting end in no_verdict, never a release
    for fault in (Fault.NO_REPORT, Fault.STUCK_SENSOR, Fault.CONNECTOR_PULLED):
        e = fm.expected(fault, fm.INSPECTING)
        assert (e.verdict, e.next) == (Verdict.NO_VERDICT, "clean_dry"), fault
    assert fm.expected(Fault.CONNECTOR_PULLED, fm.INSPECTING).reasons == (Reason.INSPECT_FIRST,)
    assert fm.STUCK_SENSOR[fm.INSPECTING] == ("inspect_fail", True) and fm.INSPECTED.inspection.gpio_fitted


@pytest.mark.parametrize("fault, phase", CELLS, ids=[f"{f.value}@{p}" for f, p in CELLS])
def test_cell(cell, fault, phase):
    c = cell(fault, phase)
    why = f"{fault.value} during {phase} ({c.expected.kind.value}; expected: {c.expected.why})"
    # error, expected outcome, violations, unsafe outputs, books, recovery: all listed at once
    assert c.problems() == [], "\n".join([why, f"observed: {c.observed()}", *c.problems()])


def test_reliability_doc_shows_the_current_matrix(cell):
    assert DOC.exists(), f"docs/reliability.md is missing: run `{fm.COMMAND}`"
    generated = fm.section(DOC.read_text(encoding="utf-8"))
    assert generated is not None, f"the fault-matrix markers {fm.BEGIN} / {fm.END} are missing in docs/reliability.md"
    cells = [cell(f, p) for f, p in CELLS]
    assert generated == fm.markdown(cells), f"docs/reliability.md is stale: run `{fm.COMMAND}`"


# ------------------------------------------------------------------------ the harness itself
def test_the_expected_table_prints_as_a_table():
    text = fm.expectations_markdown()
    lines = text.splitlines()
    assert len(lines) == 2 + len(fm.FAULTS)
    assert lines[0].count("|") == len(fm.PHASES) + 2
    assert "| stuck_sensor | rejected (gate_blocked_early) | fault sensor / rejected (damaged_pins) |" in text
    assert "reversed or back_and_forth or partial or gate_blocked" in text
    assert "| cassette_pulled | fault no_cassette / no attempt |" in text
    assert "| inspecting (verdict awaited) |" in lines[0]
    assert lines[2].endswith("| pass (released); then fault jam / failed (jam) |")  # jam: as at ready
    assert "| no_verdict (clean_dry); then rejected (inspect_first) |" in text  # connector_pulled
    assert text.count("| no_verdict (clean_dry); then cleaned |") == 2  # stuck_sensor, no_report


def test_write_keeps_the_hand_written_sections(tmp_path):
    doc = tmp_path / "reliability.md"
    fm.write(doc, "first table\n")
    text = doc.read_text(encoding="utf-8")
    assert text.startswith("# Reliability\n") and "## Fault matrix" in text
    for heading in ("## Stateful testing", "## Soak", "## Mutation testing"):
        assert heading in text
    doc.write_text(
        text.replace("## Soak\n\nTo be filled.", "## Soak\n\n1000 cassettes, no violation."), encoding="utf-8"
    )
    fm.write(doc, "second table\n")
    text = doc.read_text(encoding="utf-8")
    assert fm.section(text) == "second table\n"
    assert "1000 cassettes, no violation." in text and "first table" not in text


@pytest.mark.violations(7)  # planted on purpose: the judge must see it
def test_the_safety_monitor_catches_a_stepper_left_enabled(monkeypatch):
    """A firmware whose safe state forgets the stepper must fail its cell (the check is live)."""
    from station.drivers.hardware import GpioHardware

    monkeypatch.setattr(GpioHardware, "safe", lambda self: (self.dispenser.off(), self.panel.fault_light()))
    c = fm.run_cell(Fault.CASSETTE_PULLED, "advancing")
    assert not c.passed
    assert any("stepper" in u for u in c.unsafe), c.unsafe


def test_the_expected_outcome_catches_a_missing_interlock(monkeypatch):
    """A firmware that cleans a connector with one guide pin sensed must fail its cell."""
    from station.cycle import CleanCycle
    from station.domain import Gender

    real = CleanCycle.refusal
    monkeypatch.setattr(CleanCycle, "refusal", lambda self, a: None if a.gender is Gender.DAMAGED else real(self, a))
    c = fm.run_cell(Fault.STUCK_SENSOR, "identifying")
    assert not c.passed
    assert any("outcome 'cleaned'" in m for m in c.mismatches()), c.mismatches()


def test_the_inspecting_column_catches_a_connector_taken_up_while_a_verdict_is_awaited(monkeypatch):
    """A firmware that cleans another connector before the awaited verdict must fail its cell
    (the planted bug drops "inspect first" wherever the clean cycle would give it)."""
    from station.cycle import CleanCycle

    real = CleanCycle.refusal
    monkeypatch.setattr(
        CleanCycle, "refusal", lambda self, a: None if (r := real(self, a)) is Reason.INSPECT_FIRST else r
    )
    c = fm.run_cell(Fault.CONNECTOR_PULLED, fm.INSPECTING)
    assert not c.passed
    assert any("outcome 'cleaned'" in m for m in c.mismatches()), c.mismatches()


@pytest.mark.violations(10)  # planted on purpose: a verdict nobody gave (the line never ended a pulse)
def test_the_inspecting_column_catches_a_held_line_taken_as_a_verdict(monkeypatch):
    """A firmware that takes a line going active as a verdict (not a pulse that ends) must fail
    the stuck FAIL line's cell: the station records a FAIL the inspector never gave."""
    real = Inspection.line

    def eager(self, passed, active, t):
        if active and self.awaited is not None:
            self.verdict(Verdict.PASS if passed else Verdict.FAIL, "", "gpio")
        real(self, passed, active, t)

    monkeypatch.setattr(Inspection, "line", eager)
    c = fm.run_cell(Fault.STUCK_SENSOR, fm.INSPECTING)
    assert not c.passed
    assert c.verdict is Verdict.FAIL and any("expected 'no_verdict'" in m for m in c.mismatches()), c.mismatches()


def test_a_fault_that_misses_its_phase_fails_its_cell(monkeypatch):
    """The fault must go in during its phase: never, or in another phase, is a failed cell."""
    never = fm.InjectAt("when the station services", StateChanged, "servicing")
    monkeypatch.setitem(fm.INJECT_AT, "swipe_ready", never)
    c = fm.run_cell(Fault.JAM, "swipe_ready")
    assert not c.passed and c.error and "the fault never went in" in c.error, c.error
    early = fm.InjectAt("as the wheel starts", StateChanged, "advancing")
    monkeypatch.setitem(fm.INJECT_AT, "swipe_ready", early)
    c = fm.run_cell(Fault.JAM, "swipe_ready")
    assert not c.passed and c.error and "went in during advancing" in c.error, c.error


def test_the_harness_reads_no_controller_internals():
    """The oracle sees the station from outside: its announcements, `state`, `faults.code`,
    the durable records and the simulator; never the clean in progress or a private member."""
    tree = ast.parse(Path(fm.__file__).read_text(encoding="utf-8"))
    public = {"events", "faults", "store"}
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute):
            continue
        owner = node.value
        if isinstance(owner, ast.Attribute) and owner.attr == "controller":
            assert node.attr in public, f"line {node.lineno}: controller.{node.attr}"
        if node.attr.startswith("_") and not node.attr.endswith("__"):
            assert isinstance(owner, ast.Name) and owner.id == "self", f"line {node.lineno}: .{node.attr}"
        assert node.attr not in ("attempt", "gate_edges", "cycle"), f"line {node.lineno}: .{node.attr}"
