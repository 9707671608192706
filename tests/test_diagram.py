"""The checked-in state diagram is generated from the controller's own tables."""

from __future__ import annotations

from pathlib import Path

from station import diagram

DOC = Path(__file__).resolve().parent.parent / "docs" / "state-machine.md"


def test_state_diagram_is_up_to_date():
    assert DOC.exists(), "docs/state-machine.md is missing: run `station diagram` to generate it"
    assert DOC.read_text(encoding="utf-8") == diagram.document(), (
        "docs/state-machine.md is stale: run `station diagram` to regenerate it"
    )


def test_state_diagram_names_every_state_and_trigger():
    from station.controller import STATES, TRANSITIONS

    text = diagram.document()
    assert "```mermaid" in text and "stateDiagram" in text
    for state in STATES:
        assert state in text
    for t in TRANSITIONS:
        assert t["trigger"] in text
