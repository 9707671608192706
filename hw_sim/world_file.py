"""The world file: physics survives the firmware being killed. With a state file the world
rewrites it (atomically) after every physical change, and a new World on the same file carries on."""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .model import SimCassette, Violation

if TYPE_CHECKING:
    from .world import World


class WorldFileError(ValueError):
    """The world file cannot be read back (damaged, truncated, or not a world file)."""


class WorldFile:
    """Writes a world's physical state to `path` and reads it back into a new world."""

    def __init__(self, path: str | Path | None) -> None:
        self.path = Path(path) if path else None

    def exists(self) -> bool:
        return self.path is not None and self.path.exists()

    def save(self, w: World) -> None:
        if self.path is None:
            return
        state = {
            "cassettes": {n: asdict(c) for n, c in w.cassettes.items()},
            "fitted": w.fitted.name if w.fitted else None,
            "reservoir": w.reservoir,
            "refills_seen": w.refills_seen,
            "mode_wet": w.mode_wet,
            "step_in_position": w._step_in_position,
            "totals": [w.drops_total, w.steps_total, w.positions_total, w.prompts],
            "move_positions": w._move_positions,
            "violations": [asdict(v) for v in w.violations],
            "swipes": w.swipes_before + len(w.swipes),
            "outputs": {"stepper_enabled": w.stepper_enabled, "pump_on": w.pump_on, "leds": list(w.leds())},
            "audit": w.judge.auditor.state() if w.judge.auditor is not None else w.audit_state,
        }
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state))
        os.replace(tmp, self.path)

    def load(self, w: World) -> None:
        """Carry on from the file. A file that cannot be read back raises WorldFileError, which
        names it and says what to do (the world may be half-loaded then: do not use it)."""
        path = self.path
        assert path is not None
        try:
            state = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(state, dict):
                raise TypeError("not a JSON object")
            self._load(w, state)
        except OSError as exc:
            raise WorldFileError(f"cannot read the simulated bench's file {path}: {exc.strerror}") from exc
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            if isinstance(exc, json.JSONDecodeError):  # cut short or overwritten
                detail = f"not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
            else:
                detail = f"not a world file: {f'no {exc}' if isinstance(exc, KeyError) else exc}"
            raise WorldFileError(
                f"the simulated bench's file {path} is damaged ({detail}). Move it away "
                f"(mv {path} {path}.damaged) and the simulator starts a fresh bench, keeping the station's "
                "records; or give a new --state-dir for a fresh station and bench"
            ) from exc

    @staticmethod
    def _load(w: World, state: dict[str, Any]) -> None:
        for name, c in state["cassettes"].items():
            c["touched"] = {int(k): v for k, v in c["touched"].items()}
            c["drops"] = {int(k): v for k, v in c["drops"].items()}
            c["drop_time"] = {int(k): v - 1e9 for k, v in c["drop_time"].items()}  # long dried
            w.cassettes[name] = SimCassette(**c)
        w.fitted = w.cassettes.get(state["fitted"]) if state["fitted"] else None
        w.reservoir = state["reservoir"]
        w.refills_seen = int(state.get("refills_seen", 0))
        w.mode_wet = state["mode_wet"]
        w._step_in_position = state["step_in_position"]
        w.drops_total, w.steps_total, w.positions_total, w.prompts = state["totals"]
        w._move_positions = state["move_positions"]
        w.violations = [Violation(**v) for v in state["violations"]]
        w.swipes_before = state["swipes"]
        w.audit_state = state.get("audit")  # the outside auditor's baselines (hw_sim/auditor.py)
