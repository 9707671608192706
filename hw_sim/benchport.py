"""The simulated world's own control port: operator actions, bench handling, faults and the
physical record, with the same line framing as the station's console.

A lab script drives the world on this port and the station on its console, black-box.
Actions that let time pass (`wait`, `wait_for`, `clean`) are not offered here: on this port
time is real, so the script waits itself.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from station import MODEL, __version__
from station.console import protocol as P
from station.console.commands import Command, CommandError, Reply

from .actions import ACTIONS, ActionError, ActionRefused, bind
from .bench import SimBench

TIMED = {"wait", "wait_for", "clean"}


def _action_handler(bench: SimBench, name: str) -> Callable[[Any, list[str]], Reply]:
    def handler(ctx: Any, args: list[str]) -> Reply:
        kwargs: dict[str, Any] = {}
        params = {p.name: p for p in ACTIONS[name].params}
        positional = list(params)

        def value(key: str, word: str) -> str:  # SCPI words in any case; a code (scan, present) as typed
            param = params.get(key)
            return word.lower() if param is not None and (isinstance(param.kind, tuple) or param.kind is bool) else word

        for i, word in enumerate(args):
            if "=" in word:
                key, _, raw = word.partition("=")
                kwargs[key.lower()] = value(key.lower(), raw)
            elif i < len(positional):
                kwargs[positional[i]] = value(positional[i], word)
            else:
                raise CommandError(P.SYNTAX_ERROR, f"Syntax error; too many arguments for {name}")
        try:
            action, bound = bind(name, kwargs)
            text = bench.loop.call_sync(lambda: action.run(bench, **bound))
        except ActionRefused as exc:  # understood, but the bench cannot do it as it stands
            raise CommandError(P.SETTINGS_CONFLICT, f"Settings conflict; {exc}") from None
        except (ActionError, ValueError) as exc:
            raise CommandError(P.DATA_OUT_OF_RANGE, f"Data out of range; {exc}") from None
        return Reply(ok_text=str(text))

    return handler


def physical_record(bench: SimBench) -> dict[str, Any]:
    w = bench.world
    return {
        "swipes": w.swipes_before + len(w.swipes),
        "prompted_swipes": sum(1 for s in w.swipes if s.prompted),
        "positions": w.positions_total,
        "drops": w.drops_total,
        "reservoir": w.reservoir,
        "cassette": w.fitted.name if w.fitted else None,
        "section": w.fitted.position if w.fitted else None,
        "touched_twice": len(w.touched_twice()),
        "violations": len(w.violations),
        "stepper_enabled": w.stepper_enabled,
        "pump_on": w.pump_on,
        "leds": dict(zip(("green", "amber", "red"), w.leds(), strict=True)),
    }


def registry(bench: SimBench) -> dict[str, Command]:
    reg: dict[str, Command] = {}
    for name, action in ACTIONS.items():
        if name in TIMED:
            continue
        usage = " ".join([name, *(f"<{p.name}>" if p.required else f"[{p.name}]" for p in action.params)])
        reg[name] = Command(name, _action_handler(bench, name), usage, action.doc)

    def query(fn: Callable[[], Any]) -> Callable[[Any, list[str]], str]:
        return lambda ctx, args: fn()

    call = bench.loop.call_sync
    reg["*idn?"] = Command(
        "*idn?", query(lambda: f"Fibreclean Labs,{MODEL}-SIM bench,0,{__version__}"), "*IDN?", "identify"
    )
    reg["phys?"] = Command(
        "phys?",
        query(lambda: json.dumps(call(lambda: physical_record(bench)), separators=(",", ":"))),
        "PHYS?",
        "the physical record as one line of JSON",
    )
    reg["viol?"] = Command(
        "viol?",
        query(lambda: json.dumps(call(lambda: [f"rule {v.rule}: {v.text}" for v in bench.world.violations]))),
        "VIOL?",
        "violations of docs/design.md section 3 seen so far, as a JSON list",
    )
    reg["state?"] = Command(
        "state?",
        query(lambda: call(lambda: bench.state)),
        "STATE?",
        "the station's state (as the simulator sees the controller)",
    )
    reg["syst:err?"] = Command("syst:err?", lambda ctx, args: P.scpi_error(*ctx.pop()), "SYST:ERR?", "oldest error")

    def help_(ctx: Any, args: list[str]) -> Reply:
        return Reply([f"  {c.usage:<40} {c.help}" for c in reg.values()])

    reg["help"] = Command("help", help_, "help", "this list")
    return reg
