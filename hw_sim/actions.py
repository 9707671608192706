"""What a person or a script can do to the simulated bench, in one table.

The scenario runner, the interactive prompt and the bench control port all run an action's
`run` (the first two through `perform()`), so an action means the same everywhere. Arguments
are validated with messages that say what is allowed, and an action the bench cannot do as it
stands (a swipe with no connector in the guide, a repair of a fault that is not there, a
cassette fitted over another) is refused with `ActionRefused`, naming what is in the way,
instead of acting. The checks live here, not in the world, so tests and the judge can still
drive the world's own methods into any situation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from station.events import ScanRefused

from .bench import SimBench
from .endface import Dirt
from .world import ConnectorKind, Fault, SwipeVariant


class ActionError(ValueError):
    """An action or argument the bench does not understand."""


class ActionRefused(ActionError):
    """An action the bench understands but cannot do as it stands now (nothing was done)."""


@dataclass(frozen=True)
class Param:
    name: str
    kind: type | tuple[str, ...]  # a type, or the allowed words
    default: Any = None
    required: bool = False


@dataclass(frozen=True)
class Action:
    name: str
    params: tuple[Param, ...]
    run: Callable[..., Any]
    doc: str


def _present(b: SimBench, connector: str, chatter_s: float, code: str | None, dirt: str | None, again: bool) -> str:
    face = b.world.faces.in_hand if again else None
    if again and b.world.connector is not None:
        raise ActionRefused("the connector is still in the guide; take it out first (remove)")
    if again and face is None:
        raise ActionRefused("no connector in hand to seat again; present one (present female dirt=heavy)")
    if again and dirt is not None:
        raise ActionError("present: dirt is for a new connector; again seats the one in hand as it is")
    b.world.present(ConnectorKind(connector), chatter_s=chatter_s, code=code, dirt=dirt, face=face)
    how = " again" if again else (f" ({dirt})" if dirt else "")
    return f"{connector} connector presented{how}" + (f" (labelled {code})" if code else "")


def _probe(b: SimBench) -> str:
    if b.world.connector is not None:
        raise ActionRefused("the connector is in the guide; take it out first (remove), then probe")
    if b.world.faces.in_hand is None:
        raise ActionRefused("no connector in hand to inspect; present one first")
    port = b.world.probe_port
    report = b.world.faces.inspect()  # its report goes to the station (probe_port.py)
    if b.world.faults.no_report:
        return f"{report.summary()} (the report never reached the station: fault no_report)"
    if port.gpio:
        b.run_for(port.pulse_s())  # the pulse on the PASS or FAIL line, until it ends
        return f"{report.summary()} (pulsed the {report.verdict} line)"
    b.run_for(0.0)  # the station takes the line now, as it would from the probe's PC
    answer = port.delivered[-1].answer if port.delivered else None
    said = f": the station answers {answer[0]!r}" if answer and answer[0] != "OK" else ""
    return f"{report.summary()} (sent INSP:RES {report.verdict}{said})"


def _scan(b: SimBench, code: str) -> str:
    since = b.loop.now()
    b.world.scan(code)
    b.run_for(0.0)  # the station hears it now, as it would a real scanner's
    refused = b.heard(ScanRefused, since=since)
    if refused:
        return f"scanned {code!r}: the station refused it ({refused[-1].reason}; error beep)"
    return f"scanned {code!r}"


def _swipe(b: SimBench, direction: str, duration_s: float, variant: str, bounce: bool) -> str:
    if b.world.connector is None:
        raise ActionRefused("no connector in the guide to swipe; seat one first (present male|female|bent)")
    b.world.swipe(direction=direction, duration_s=duration_s, variant=SwipeVariant(variant), bounce=bounce)
    return f"swipe {direction} {duration_s:g} s {variant}{' with bounce' if bounce else ''}"


def _clean(
    b: SimBench, connector: str, wet: bool, direction: str, duration_s: float, variant: str, delay_s: float
) -> str:
    result = b.clean(connector, wet=wet, direction=direction, duration_s=duration_s, variant=variant, delay_s=delay_s)
    if result is None:
        return f"no result (station {b.state})"
    return result.outcome.value + (f": {result.reason.value}" if result.reason else "")


def _fit(b: SimBench, name: str, type: str, capacity: int | None) -> str:
    fitted = b.world.fitted
    if fitted is not None:
        raise ActionRefused(f"cassette {fitted.name!r} is already fitted; take it out first (remove_cassette)")
    b.world.fit_cassette(name, male_mt=(type == "male_mt"), capacity=capacity)
    return f"cassette {name!r} ({type}) fitted"


def _inject(b: SimBench, fault: str, sensor: str | None, active: bool, steps: int | None, count: int) -> str:
    kw: dict[str, Any] = {"count": count, "active": active}
    if sensor is not None:
        kw["sensor"] = sensor
    if steps is not None:
        kw["steps"] = steps
    if Fault(fault) is Fault.STUCK_SENSOR and sensor is None:
        raise ActionError("inject stuck_sensor needs sensor=<name>")
    b.world.inject(fault, **kw)
    return f"fault {fault} injected"


# Faults that happen once and leave nothing to repair: what puts things right instead.
ONE_OFF = {
    Fault.EMPTY_RIBBON: "fit another cassette (remove_cassette, then fit_cassette)",
    Fault.CASSETTE_PULLED: "fit the cassette again (fit_cassette)",
    Fault.CONNECTOR_PULLED: "seat the connector again (present)",
}


def faults_in_force(b: SimBench) -> list[str]:
    """The injected causes a technician could repair now (what `clear` can remove)."""
    w, f = b.world, b.world.faults
    present = {
        Fault.JAM: f.jammed,
        Fault.SLIP: bool(f.extra_steps),
        Fault.MISSING_INDEX: f.missing_index > 0,
        Fault.PUMP_CLOG: f.pump_clogged,
        Fault.EMPTY_RESERVOIR: w.reservoir == 0,
        Fault.STUCK_SENSOR: bool(w.inputs.stuck),
        Fault.GATE_BOUNCE: f.bounce,
        Fault.NO_REPORT: f.no_report,
    }
    return [fault.value for fault, there in present.items() if there]


def _clear(b: SimBench, fault: str) -> str:
    kind = Fault(fault)
    if kind in ONE_OFF:
        raise ActionRefused(f"{fault} leaves nothing to repair (clear does nothing); {ONE_OFF[kind]}")
    in_force = faults_in_force(b)
    if fault not in in_force:
        raise ActionRefused(f"{fault} is not injected, nothing to clear; injected now: {', '.join(in_force) or 'none'}")
    b.world.clear(fault)
    return f"fault {fault} cleared"


def _wait_for(b: SimBench, state: str, limit_s: float) -> str:
    if state == "swipe_now":
        ok = b.wait_until(lambda: b.world.prompting, limit_s)
    else:
        ok = b.wait_until(lambda: b.state == state, limit_s)
    if not ok:
        raise ActionError(f"waited {limit_s:g} s for {state}, station is {b.state}")
    return f"reached {state}"


FAULTS = tuple(f.value for f in Fault)
CONNECTORS = tuple(c.value for c in ConnectorKind)
VARIANTS = tuple(v.value for v in SwipeVariant)
DIRT = tuple(d.value for d in Dirt)
STATES = ("idle", "identifying", "advancing", "dispensing", "swipe_ready", "swiping", "done", "fault", "swipe_now")

ACTIONS: dict[str, Action] = {
    a.name: a
    for a in [
        Action(
            "present",
            (
                Param("connector", CONNECTORS, required=True),
                Param("chatter_s", float, 0.0),
                Param("code", str, None),
                Param("dirt", DIRT, None),
                Param("again", bool, False),
            ),
            _present,
            "seat a connector in the guide (male, female or bent; `code`: the label printed on it, what the "
            "simulator's judge knows; the station learns it only from a scan: scan it first)",
        ),
        Action(
            "scan",
            (Param("code", str, required=True),),
            _scan,
            "the bench's barcode scanner reads a code: a badge (OP-...), a cassette label (CAS-...) or a connector",
        ),
        Action("remove", (), lambda b: (b.world.remove(), "connector removed")[1], "lift the connector out"),
        Action(
            "probe",
            (),
            _probe,
            "insert the connector in hand (out of the guide) into the inspection probe: IEC 61300-3-35 PASS or FAIL",
        ),
        Action(
            "swipe",
            (
                Param("direction", ("down", "up"), "down"),
                Param("duration_s", float, 0.6),
                Param("variant", VARIANTS, "full"),
                Param("bounce", bool, False),
            ),
            _swipe,
            "pull the seated connector across the window (down = A then B, the right way)",
        ),
        Action(
            "clean",
            (
                Param("connector", CONNECTORS, required=True),
                Param("wet", bool, False),
                Param("direction", ("down", "up"), "down"),
                Param("duration_s", float, 0.6),
                Param("variant", VARIANTS, "full"),
                Param("delay_s", float, 0.5),
            ),
            _clean,
            "a whole attempt done by a disciplined operator",
        ),
        Action(
            "mode",
            (Param("mode", ("dry", "wet"), required=True),),
            lambda b, mode: (b.world.set_mode(mode == "wet"), f"mode switch {mode}")[1],
            "set the mode switch",
        ),
        Action(
            "button",
            (Param("hold_s", float, 0.1),),
            lambda b, hold_s: (b.world.press_button(hold_s), f"button pressed {hold_s:g} s")[1],
            "press the panel button (hold 2 s or more for a long press)",
        ),
        Action(
            "fit_cassette",
            (
                Param("name", str, "standard"),
                Param("type", ("standard", "male_mt"), "standard"),
                Param("capacity", int, None),
            ),
            _fit,
            "fit a cassette in the empty cradle; a name used before is the same physical cassette",
        ),
        Action(
            "remove_cassette", (), lambda b: (b.world.remove_cassette(), "cassette removed")[1], "take the cassette out"
        ),
        Action(
            "refill",
            (Param("drops", int, None),),
            lambda b, drops: (b.world.refill(drops), f"reservoir refilled ({b.world.reservoir} drops)")[1],
            "fill the reservoir (to its capacity, or to `drops`); the station sees it on its float switch",
        ),
        Action(
            "inject",
            (
                Param("fault", FAULTS, required=True),
                Param("sensor", str, None),
                Param("active", bool, True),
                Param("steps", int, None),
                Param("count", int, 1),
            ),
            _inject,
            "inject a fault",
        ),
        Action(
            "clear",
            (Param("fault", FAULTS, required=True),),
            _clear,
            "remove an injected fault's cause (the technician's repair)",
        ),
        Action(
            "wait",
            (Param("seconds", float, required=True),),
            lambda b, seconds: (b.run_for(seconds), f"waited {seconds:g} s")[1],
            "let time pass",
        ),
        Action(
            "wait_for",
            (Param("state", STATES, required=True), Param("limit_s", float, 60.0)),
            _wait_for,
            "let time pass until the station reaches a state (or swipe_now)",
        ),
    ]
}


def coerce(param: Param, value: Any) -> Any:
    kind = param.kind
    if isinstance(kind, tuple):
        if value not in kind:
            raise ActionError(f"{param.name} = {value!r}: allowed {', '.join(kind)}")
        return value
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "yes", "1", "false", "no", "0"):
            return value.lower() in ("true", "yes", "1")
        raise ActionError(f"{param.name} = {value!r}: expected true or false")
    if kind in (int, float):
        try:
            if isinstance(value, bool):
                raise ValueError
            number = kind(value)
        except (TypeError, ValueError):
            raise ActionError(f"{param.name} = {value!r}: expected a number") from None
        if number < 0:
            raise ActionError(f"{param.name} = {value!r}: must not be negative")
        return number
    return str(value)


def bind(name: str, args: dict[str, Any]) -> tuple[Action, dict[str, Any]]:
    """Validate an action call; returns the action and its complete keyword arguments."""
    action = ACTIONS.get(name)
    if action is None:
        raise ActionError(f"unknown action {name!r}; actions are {', '.join(ACTIONS)}")
    known = {p.name: p for p in action.params}
    extra = sorted(set(args) - set(known))
    if extra:
        raise ActionError(f"{name}: unknown argument {extra[0]!r}; allowed {', '.join(known) or 'none'}")
    bound = {}
    for p in action.params:
        if p.name in args:
            bound[p.name] = coerce(p, args[p.name])
        elif p.required:
            raise ActionError(f"{name}: missing {p.name}")
        else:
            bound[p.name] = p.default
    return action, bound


def perform(bench: SimBench, name: str, args: dict[str, Any]) -> str:
    action, bound = bind(name, args)
    return str(action.run(bench, **bound))


def parse_line(line: str) -> tuple[str, dict[str, Any]]:
    """`swipe up 0.4 partial` or `swipe direction=up duration_s=0.4`: positional words fill
    the parameters in order."""
    words = line.split()
    if not words:
        raise ActionError("empty command")
    name = words[0].lower()
    action = ACTIONS.get(name)
    if action is None:
        raise ActionError(f"unknown action {name!r}; actions are {', '.join(ACTIONS)}")
    args: dict[str, Any] = {}
    positional = [p.name for p in action.params]
    for i, word in enumerate(words[1:]):
        if "=" in word:
            key, _, value = word.partition("=")
            args[key] = value
        elif i < len(positional):
            args[positional[i]] = word
        else:
            raise ActionError(f"{name}: too many arguments")
    return name, args


def usage() -> str:
    lines = []
    for a in ACTIONS.values():
        params = " ".join((f"<{p.name}>" if p.required else f"[{p.name}={p.default}]") for p in a.params)
        lines.append(f"  {a.name} {params}".rstrip() + f"\n      {a.doc}")
    return "\n".join(lines)
