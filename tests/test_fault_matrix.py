"""The fault matrix (bench/fault_matrix.py): every injectable fault at every phase of a clean.

One test per cell, so a failure names its fault and phase and says what differed. Each cell
must meet its expected outcome (defined in `bench.fault_matrix.expected`), keep the outputs safe
at every step, leave no violation of docs/design.md section 3 in the simulator, agree with its
durable records, and recover (cause removed, button pressed if in fault, one more clean
'cleaned'). Plus: docs/reliability.md shows the table the current code generates.

Virtual time throughout: no assertion depends on wall-clock speed.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import fault_matrix as fm  # noqa: E402
from hw_sim import Fault  # noqa: E402

DOC = ROOT / "docs" / "reliability.md"


@pytest.fixture(scope="session")
def cell():
    """Each cell runs once per test session (the staleness test reuses the per-cell runs). A
    session fixture, not a module-level cache: a tool that runs pytest again in the same process
    (mutmut forks per mutant) must not get the previous session's results."""
    runs: dict[tuple[str, str], fm.Cell] = {}

    def run(fault: str, phase: str) -> fm.Cell:
        if (fault, phase) not in runs:
            runs[fault, phase] = fm.run_cell(fault, phase)
        return runs[fault, phase]

    return run


CELLS = fm.cells_to_run()


def test_the_matrix_covers_every_fault_and_phase():
    assert set(fm.FAULTS) == {f.value for f in Fault}
    assert fm.PHASES == ["idle", "identifying", "advancing", "dispensing", "swipe_ready", "swiping", "done"]
    assert len(CELLS) == len(fm.FAULTS) * len(fm.PHASES)
    for fault, phase in CELLS:
        e = fm.expected(fault, phase)
        assert e.kind in ("effect", "tolerated", "no effect")
        assert e.why


@pytest.mark.parametrize("fault, phase", CELLS, ids=[f"{f}@{p}" for f, p in CELLS])
def test_cell(cell, fault, phase):
    c = cell(fault, phase)
    why = f"{fault} during {phase} ({c.expected.kind}; expected: {c.expected.why})"
    # error, expected outcome, violations, unsafe outputs, books, recovery: all listed at once
    assert c.problems() == [], "\n".join([why, f"observed: {c.observed()}", *c.problems()])


def test_reliability_doc_shows_the_current_matrix(cell):
    assert DOC.exists(), f"docs/reliability.md is missing: run `{fm.COMMAND}`"
    generated = fm.section(DOC.read_text(encoding="utf-8"))
    assert generated is not None, f"the fault-matrix markers {fm.BEGIN} / {fm.END} are missing in docs/reliability.md"
    cells = [cell(f, p) for f, p in CELLS]
    assert generated == fm.markdown(cells), f"docs/reliability.md is stale: run `{fm.COMMAND}`"


# ------------------------------------------------------------------------ the harness itself
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


def test_the_safety_monitor_catches_a_stepper_left_enabled(monkeypatch):
    """A firmware whose safe state forgets the stepper must fail its cell (the check is live)."""
    from station.drivers.hardware import Hardware

    monkeypatch.setattr(Hardware, "safe", lambda self: (self.dispenser.off(), self.panel.fault_light()))
    c = fm.run_cell("cassette_pulled", "advancing")
    assert not c.passed
    assert any("stepper" in u for u in c.unsafe), c.unsafe


def test_the_expected_outcome_catches_a_missing_interlock(monkeypatch):
    """A firmware that cleans a connector with one guide pin sensed must fail its cell."""
    from station.controller import Controller
    from station.domain import Gender

    real = Controller._refusal
    monkeypatch.setattr(Controller, "_refusal", lambda self, g, m: None if g is Gender.DAMAGED else real(self, g, m))
    c = fm.run_cell("stuck_sensor", "identifying")
    assert not c.passed
    assert any("outcome 'cleaned'" in m for m in c.mismatches()), c.mismatches()
