"""Scenario files: operator actions, injected faults and expected outcomes, in TOML.

    name = "female, dry"
    [setup]
    cassette = "standard"           # standard | male_mt
    drop_sensor = true              # optional
    [config.swipe]                  # optional overrides of the station configuration
    wet_window_s = 4.0

    [[steps]]
    clean = { connector = "female" }
    expect = { outcome = "cleaned" }

    [[steps]]
    inject = { fault = "jam" }

Each step holds one action (see `station sim --help-actions`) and/or an `expect` table:
outcome, reason (a word from the reason text), state, fault, violations (count),
stepper_enabled, pump_on, ribbon_touched_twice, connector and operator (what the last attempt
is tied to), verdict and next (the last inspection verdict and what the station said comes
next). The run fails (exit status 1) on the first expectation that does not hold or action the
bench refuses, and at the end if the simulator
recorded a violation that the scenario did not expect. A file that is wrong in itself (an
unknown key, a value an expectation or the `[config]` does not allow) raises ScenarioError
naming the file before anything runs (exit status 2).
"""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path
from typing import Any, TextIO

from station import config as station_config
from station.config import Config, ConfigError
from station.controller import STATES
from station.domain import FaultCode, Outcome, Reason, Verdict
from station.events import VerdictRecorded

from .actions import ACTIONS, ActionError, bind, perform
from .bench import SimBench
from .report import printer

EXPECT_KEYS = {
    "outcome",
    "reason",
    "state",
    "fault",
    "violations",
    "stepper_enabled",
    "pump_on",
    "ribbon_touched_twice",
    "connector",
    "operator",
    "verdict",
    "next",
}
TEXT_KEYS = {"connector", "operator"}  # what the last attempt is tied to (a scanned code)
COUNT_KEYS = {"violations", "ribbon_touched_twice"}  # whole numbers, 0 or more
FLAG_KEYS = {"stepper_enabled", "pump_on"}  # true or false
WORD_KEYS: dict[str, tuple[str, ...]] = {  # one of these words
    "verdict": tuple(v.value for v in Verdict),  # the last inspection verdict recorded
    "next": ("released", "clean_dry", "clean_wet", "quarantined"),  # what the station said comes next
    "outcome": tuple(o.value for o in Outcome),
    "state": tuple(STATES),
    "fault": tuple(f.value for f in FaultCode),
}
REASONS = tuple(r.value for r in Reason)
TOP_KEYS = {"name", "description", "setup", "config", "steps"}
SETUP_KEYS = {"cassette", "drop_sensor"}


class ScenarioError(ValueError):
    """The scenario file itself is wrong (as opposed to an expectation failing)."""


def load(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ScenarioError(f"cannot read scenario {p}: {exc.strerror}") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ScenarioError(f"{p}: not valid TOML: {exc}") from exc
    bad = sorted(set(data) - TOP_KEYS)
    if bad:
        raise ScenarioError(f"{p}: unknown key {bad[0]!r}; allowed {', '.join(sorted(TOP_KEYS))}")
    bad = sorted(set(data.get("setup", {})) - SETUP_KEYS)
    if bad:
        raise ScenarioError(f"{p}: unknown setup key {bad[0]!r}; allowed {', '.join(sorted(SETUP_KEYS))}")
    steps = data.get("steps")
    if not isinstance(steps, list) or not steps:
        raise ScenarioError(f"{p}: needs at least one [[steps]] entry")
    for i, step in enumerate(steps, 1):
        actions = [k for k in step if k != "expect"]
        unknown = [k for k in actions if k not in ACTIONS]
        if unknown:
            raise ScenarioError(f"{p}: step {i}: unknown action {unknown[0]!r}; actions are {', '.join(ACTIONS)}")
        if len(actions) > 1:
            raise ScenarioError(f"{p}: step {i}: one action per step, found {', '.join(actions)}")
        if not actions and "expect" not in step:
            raise ScenarioError(f"{p}: step {i}: empty step")
        for name in actions:
            try:
                bind(name, _args(step[name], name))
            except (ActionError, ValueError) as exc:
                raise ScenarioError(f"{p}: step {i}: {name}: {exc}") from None
        expect = step.get("expect", {})
        if not isinstance(expect, dict):
            raise ScenarioError(f'{p}: step {i}: expect must be a table, e.g. expect = {{ outcome = "cleaned" }}')
        bad = sorted(set(expect) - EXPECT_KEYS)
        if bad:
            raise ScenarioError(
                f"{p}: step {i}: unknown expectation {bad[0]!r}; allowed {', '.join(sorted(EXPECT_KEYS))}"
            )
        for key, value in expect.items():
            problem = _bad_expectation(key, value)
            if problem:
                raise ScenarioError(f"{p}: step {i}: expect {key} = {value!r}: {problem}")
    station_config_of(p, data)
    return data


def _bad_expectation(key: str, value: Any) -> str | None:
    """Why an expected value can never be what the station shows (None when it can)."""
    if key in WORD_KEYS:
        allowed = WORD_KEYS[key]
        return None if value in allowed else f"allowed {', '.join(allowed)}"
    if key in FLAG_KEYS:
        return None if isinstance(value, bool) else "expected true or false"
    if key in TEXT_KEYS:
        return None if isinstance(value, str) else 'expected the code as text, e.g. "CBL-0001-A"'
    if key in COUNT_KEYS:
        ok = isinstance(value, int) and not isinstance(value, bool) and value >= 0
        return None if ok else "expected a whole number, 0 or more"
    if key == "reason":  # a word or phrase of a reason text
        if isinstance(value, str) and any(value.lower() in r.lower() for r in REASONS):
            return None
        return "not a word or phrase of any reason the station gives; reasons are " + "; ".join(REASONS)
    return None


def station_config_of(path: str | Path, data: dict[str, Any]) -> Config:
    """The station configuration a scenario runs with: its `[config]` over the defaults, and
    its `[setup]` drop sensor. Errors name the scenario file."""
    setup = data.get("setup", {})
    try:
        cfg = station_config.from_dict(data.get("config", {}))
        if "drop_sensor" in setup:
            cfg = cfg.replace("dispenser", drop_sensor_fitted=bool(setup["drop_sensor"]))
    except ConfigError as exc:
        raise ScenarioError(f"{path}: [config]: {exc}") from None
    return cfg


def _args(value: Any, action: str) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    first = ACTIONS[action].params
    if value is True or value == {}:
        return {}
    if not first:
        raise ActionError(f"{action} takes no arguments")
    return {first[0].name: value}


def check(bench: SimBench, expect: dict[str, Any]) -> list[str]:
    """The expectations that do not hold, as readable lines."""
    problems = []
    result = bench.last_result()
    world = bench.world
    fault = bench.controller.faults.code
    verdicts = bench.heard(VerdictRecorded)
    actual = {
        "outcome": result.outcome.value if result else None,
        "reason": result.reason.value if result and result.reason else "",
        "state": bench.state,
        "fault": fault.value if fault else None,
        "violations": len(world.violations),
        "stepper_enabled": world.stepper_enabled,
        "pump_on": world.pump_on,
        "ribbon_touched_twice": len(world.touched_twice()),
        "connector": result.connector if result else None,
        "operator": result.operator if result else None,
        "verdict": verdicts[-1].verdict.value if verdicts else None,
        "next": verdicts[-1].next if verdicts else None,
    }
    for key, want in expect.items():
        got = actual[key]
        ok = (str(want).lower() in str(got).lower()) if key == "reason" else got == want
        if not ok:
            problems.append(f"expected {key} = {want!r}, got {got!r}")
    return problems


def run(path: str | Path, out: TextIO = sys.stdout, state_dir: str | Path | None = None) -> bool:
    """Run a scenario; True when every expectation held and nothing unexpected was violated."""
    data = load(path)
    cfg = station_config_of(path, data)
    setup = data.get("setup", {})
    print(f"scenario: {data.get('name', Path(path).stem)}", file=out)
    ok = True
    with SimBench(cfg, state_dir, cassette=setup.get("cassette", "standard")) as bench:
        bench.controller.events.subscribe(printer(bench.loop, out, states=False))
        expected_violations = None
        for i, step in enumerate(data["steps"], 1):
            for name, value in step.items():
                if name == "expect":
                    continue
                try:
                    text = perform(bench, name, _args(value, name))
                except (ActionError, ValueError) as exc:  # e.g. refused: a swipe with no connector
                    print(f"  step {i}: {name}: ERROR {exc}", file=out)
                    ok = False
                    break
                print(f"  step {i}: {text}", file=out)
            if not ok:
                break
            expect = step.get("expect", {})
            if "violations" in expect:
                expected_violations = expect["violations"]
            problems = check(bench, expect)
            for problem in problems:
                print(f"  step {i}: FAILED {problem}", file=out)
            if problems:
                ok = False
                break
            if expect:
                print(f"  step {i}: ok ({', '.join(f'{k}={v}' for k, v in expect.items())})", file=out)
        violations = bench.world.violations
        allowed = expected_violations or 0  # the last count a step expected
        if ok and len(violations) > allowed:
            for v in violations[allowed:]:
                print(f"  VIOLATION rule {v.rule} at {v.t:.3f} s: {v.text}", file=out)
            ok = False
    print("scenario PASSED" if ok else "scenario FAILED", file=out)
    return ok
