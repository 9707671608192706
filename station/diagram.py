"""The state machine as a mermaid diagram, generated from the controller's own tables."""

from __future__ import annotations

from pathlib import Path

from transitions.extensions import GraphMachine

from .controller import STATES, TRANSITIONS

HEADER = """# Controller state machine

Generated from `station/controller.py` by `station diagram`; a test fails when this file
does not match the code. Conditions are shown in brackets.

"""


def mermaid() -> str:
    class _Model:
        pass

    model = _Model()
    GraphMachine(
        model=model,
        states=STATES,
        transitions=TRANSITIONS,
        initial="idle",
        auto_transitions=False,
        graph_engine="mermaid",
        show_conditions=True,
        title="MPO cleaning station",
    )
    graph = model.get_graph()  # type: ignore[attr-defined]  # bound on the model by GraphMachine
    text: str = graph.draw(None)
    return text


def document() -> str:
    return HEADER + "```mermaid\n" + mermaid().strip() + "\n```\n"


def write(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(document(), encoding="utf-8")
