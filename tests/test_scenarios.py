"""Scenario files (hw_sim.scenario) and the `station sim` / `station run` command line."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from hw_sim import scenario
from hw_sim.scenario import ScenarioError

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
FAILING = EXAMPLES / "failing-expectation.toml"
ALL_EXAMPLES = sorted(EXAMPLES.glob("*.toml"))
PASSING = [p for p in ALL_EXAMPLES if p != FAILING]


def run_scenario(path: Path, state_dir: Path) -> tuple[bool, str]:
    out = io.StringIO()
    ok = scenario.run(path, out, state_dir=state_dir)
    return ok, out.getvalue()


def write(tmp_path: Path, text: str, name: str = "s.toml") -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


# ---------------------------------------------------------------------------------- the examples
def test_there_are_enough_documented_examples():
    assert len(PASSING) >= 5
    assert FAILING.exists()
    assert (EXAMPLES / "README.md").exists()
    for path in ALL_EXAMPLES:
        text = path.read_text(encoding="utf-8")
        assert text.lstrip().startswith("#"), f"{path.name} starts with a comment explaining it"
        scenario.load(path)  # well-formed


@pytest.mark.parametrize("path", PASSING, ids=[p.stem for p in PASSING])
def test_example_scenario_passes(path, tmp_path):
    ok, text = run_scenario(path, tmp_path)
    assert ok, text
    assert "scenario PASSED" in text
    assert not re.search(r"step \d+: (FAILED|.*: ERROR)", text), text
    assert "VIOLATION" not in text and "scenario FAILED" not in text


def test_failing_expectation_example_fails(tmp_path):
    assert "meant to fail" in FAILING.read_text(encoding="utf-8").lower()
    ok, text = run_scenario(FAILING, tmp_path)
    assert ok is False
    assert "FAILED expected outcome = 'cleaned', got 'rejected'" in text
    assert "scenario FAILED" in text
    assert "step 2" not in text, "the run stops at the first failed expectation"


# ---------------------------------------------------------------------------------- the runner
def test_expectations_that_hold_and_that_do_not(tmp_path):
    ok, text = run_scenario(
        write(
            tmp_path,
            """
[[steps]]
clean = { connector = "female", direction = "up" }
[steps.expect]
outcome = "failed"
reason = "REVERSED"
state = "idle"
stepper_enabled = false
pump_on = false
violations = 0
ribbon_touched_twice = 0
""",
        ),
        tmp_path / "a",
    )
    assert ok, text
    ok, text = run_scenario(
        write(
            tmp_path,
            """
[[steps]]
clean = { connector = "female" }
expect = { outcome = "cleaned", reason = "reversed" }
""",
            "b.toml",
        ),
        tmp_path / "b",
    )
    assert not ok
    assert "FAILED expected reason = 'reversed'" in text


@pytest.mark.violations(4)  # planted on purpose: the scenario runner must fail on it
def test_an_unexpected_violation_fails_the_run(tmp_path):
    """Without a drop sensor a clogged pump cannot be noticed by the firmware: the simulator
    records a wet-to-dry swipe-now on a dry section, and the scenario did not expect it."""
    ok, text = run_scenario(
        write(
            tmp_path,
            """
[setup]
drop_sensor = false
[[steps]]
inject = "pump_clog"
[[steps]]
clean = { connector = "female", wet = true }
""",
        ),
        tmp_path / "a",
    )
    assert not ok
    assert "VIOLATION rule 4" in text
    assert "scenario FAILED" in text


@pytest.mark.violations(4)
def test_a_violation_after_an_early_violations_expectation_still_fails_the_run(tmp_path):
    """Expecting `violations = 0` at the first step must not silence violations that occur
    later, after the last expectation that counted them."""
    ok, text = run_scenario(
        write(
            tmp_path,
            """
[setup]
drop_sensor = false
[[steps]]
clean = { connector = "female" }
expect = { outcome = "cleaned", violations = 0 }
[[steps]]
inject = "pump_clog"
[[steps]]
clean = { connector = "female", wet = true }
""",
        ),
        tmp_path / "a",
    )
    assert not ok, "a violation nobody expected passed unnoticed:\n" + text
    assert "scenario FAILED" in text


@pytest.mark.violations(4)
def test_an_expected_violation_count_passes(tmp_path):
    ok, text = run_scenario(
        write(
            tmp_path,
            """
[setup]
drop_sensor = false
[[steps]]
inject = "pump_clog"
[[steps]]
clean = { connector = "female", wet = true }
expect = { violations = 1 }
""",
        ),
        tmp_path / "a",
    )
    assert ok, text


def test_a_bad_action_argument_is_refused_before_anything_runs(tmp_path):
    path = write(
        tmp_path,
        """
[[steps]]
clean = { connector = "female" }
[[steps]]
swipe = { direction = "sideways" }
""",
    )
    with pytest.raises(ScenarioError) as err:
        run_scenario(path, tmp_path / "a")
    text = str(err.value)
    assert "step 2" in text and "direction" in text and "down" in text and "up" in text


@pytest.mark.parametrize(
    "text, words",
    [
        ("[[steps]]\nteleport = true\n", ["unknown action", "'teleport'", "step 1"]),
        (
            '[[steps]]\nclean = { connector = "female" }\nexpect = { outcome = "cleaned", colour = "green" }\n',
            ["unknown expectation", "'colour'", "step 1"],
        ),
        ("[[steps]\nclean = true\n", ["not valid TOML"]),
        ('nmae = "typo"\n[[steps]]\nwait = 1\n', ["unknown key", "'nmae'"]),
        ('[setup]\ncasette = "standard"\n[[steps]]\nwait = 1\n', ["unknown setup key", "'casette'"]),
        ('name = "no steps"\n', ["[[steps]]"]),
        ("[[steps]]\nwait = 1\nremove = true\n", ["one action per step", "step 1"]),
        ("[[steps]]\n", ["empty step"]),
        (
            '[[steps]]\nclean = { connector = "female" }\n[[steps]]\nwait = 1\nexpect = { outcome = "clean" }\n',
            ["step 2", "expect outcome = 'clean'", "allowed cleaned, failed, rejected, interrupted"],
        ),
        ('[[steps]]\nwait = 1\nexpect = { state = "swipe_now" }\n', ["step 1", "state", "allowed idle,", "fault"]),
        ('[[steps]]\nwait = 1\nexpect = { fault = "jammed" }\n', ["fault = 'jammed'", "allowed jam, no_cassette"]),
        ("[[steps]]\nwait = 1\nexpect = { violations = -1 }\n", ["violations = -1", "whole number, 0 or more"]),
        ("[[steps]]\nwait = 1\nexpect = { ribbon_touched_twice = true }\n", ["ribbon_touched_twice", "whole"]),
        ('[[steps]]\nwait = 1\nexpect = { pump_on = "no" }\n', ["pump_on = 'no'", "expected true or false"]),
        (
            '[[steps]]\nclean = { connector = "female", direction = "up" }\nexpect = { reason = "reversd" }\n',
            ["reason = 'reversd'", "not a word or phrase of any reason", "swipe reversed"],
        ),
        ('[[steps]]\nwait = 1\nexpect = "cleaned"\n', ["step 1", "expect must be a table"]),
        ("[config.swipe]\nmax_pass_s = 99.0\n[[steps]]\nwait = 1\n", ["[config]", "swipe.max_pass_s = 99.0"]),
        ("[config.swype]\nmax_pass_s = 2.0\n[[steps]]\nwait = 1\n", ["[config]", "unknown section [swype]"]),
    ],
    ids=[
        "unknown_action",
        "unknown_expect_key",
        "bad_toml",
        "unknown_top_key",
        "unknown_setup_key",
        "no_steps",
        "two_actions",
        "empty_step",
        "expect_outcome_not_allowed",
        "expect_state_not_allowed",
        "expect_fault_not_allowed",
        "expect_negative_count",
        "expect_count_not_a_number",
        "expect_flag_not_a_flag",
        "expect_reason_in_no_reason_text",
        "expect_not_a_table",
        "config_value_out_of_range",
        "config_unknown_section",
    ],
)
def test_a_malformed_scenario_raises_scenario_error_naming_the_problem(tmp_path, text, words):
    path = write(tmp_path, text)
    with pytest.raises(ScenarioError) as info:
        scenario.run(path, io.StringIO(), state_dir=tmp_path / "state")
    message = str(info.value)
    assert str(path) in message
    for word in words:
        assert word in message, message


def test_a_wrong_expectation_value_is_refused_before_anything_runs(tmp_path):
    """`outcome = "clean"` can never hold: the file is wrong, found when it is read, not an
    expectation that failed after minutes of bench time."""
    path = write(tmp_path, '[[steps]]\nclean = { connector = "female" }\nexpect = { outcome = "clean" }\n')
    out = io.StringIO()
    with pytest.raises(ScenarioError):
        scenario.run(path, out, state_dir=tmp_path / "state")
    assert out.getvalue() == "" and not (tmp_path / "state").exists(), "nothing ran"


def test_a_missing_scenario_file_raises_scenario_error(tmp_path):
    with pytest.raises(ScenarioError, match="cannot read scenario"):
        scenario.load(tmp_path / "nope.toml")


# ---------------------------------------------------------------------------------- the CLI
def station(*args: str, tmp_path: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "GPIOZERO_PIN_FACTORY"}
    env["XDG_STATE_HOME"] = str(tmp_path / "xdg")  # never touch the user's real state directory
    return subprocess.run(
        [sys.executable, "-m", "station", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )


def test_cli_failing_scenario_exits_1(tmp_path):
    p = station("sim", "--scenario", str(FAILING), "--state-dir", str(tmp_path / "s"), tmp_path=tmp_path)
    assert p.returncode == 1, p.stdout + p.stderr
    assert "scenario FAILED" in p.stdout


def test_cli_passing_scenario_exits_0(tmp_path):
    p = station(
        "sim", "--scenario", str(EXAMPLES / "basic-tour.toml"), "--state-dir", str(tmp_path / "s"), tmp_path=tmp_path
    )
    assert p.returncode == 0, p.stdout + p.stderr
    assert "scenario PASSED" in p.stdout


def test_cli_malformed_scenario_exits_2(tmp_path):
    bad = write(tmp_path, "[[steps]]\nteleport = true\n")
    p = station("sim", "--scenario", str(bad), "--state-dir", str(tmp_path / "s"), tmp_path=tmp_path)
    assert p.returncode == 2, p.stdout + p.stderr
    assert "unknown action 'teleport'" in p.stderr


@pytest.mark.parametrize(
    "text, words",
    [
        (
            '[[steps]]\nclean = { connector = "female" }\nexpect = { outcome = "clean" }\n',
            ["step 1", "outcome = 'clean'", "allowed cleaned, failed"],
        ),
        ("[config.swipe]\nmax_pass_s = 99.0\n[[steps]]\nwait = 1\n", ["[config]", "swipe.max_pass_s"]),
    ],
    ids=["expect_value", "config_value"],
)
def test_cli_wrong_values_exit_2_naming_the_file(tmp_path, text, words):
    bad = write(tmp_path, text)
    p = station("sim", "--scenario", str(bad), "--state-dir", str(tmp_path / "s"), tmp_path=tmp_path)
    assert p.returncode == 2, p.stdout + p.stderr
    assert p.stderr.startswith(f"station sim: {bad}: "), p.stderr
    for word in words:
        assert word in p.stderr
    assert "Traceback" not in p.stderr


def test_cli_demo_exits_0(tmp_path):
    state = tmp_path / "demo-state"
    p = station("sim", "--demo", "--state-dir", str(state), tmp_path=tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "demo OK" in p.stdout
    assert "green + amber, one beep: swipe now" in p.stdout, "the panel in the README's words"
    assert "red steady, alarm: fault" in p.stdout and "> inject jam" in p.stdout
    assert (state / "station.db").exists(), "the demo keeps its records in the given state directory"


def test_cli_run_without_gpio_exits_2_and_points_to_sim(tmp_path):
    if sorted(Path("/dev").glob("gpiochip*")):
        pytest.skip("this machine has GPIO chips")
    p = station("run", "--state-dir", str(tmp_path / "s"), tmp_path=tmp_path, timeout=60)
    assert p.returncode == 2, p.stdout + p.stderr
    assert "no gpio" in p.stderr.lower()
    assert "station sim" in p.stderr
    assert "Traceback" not in p.stderr


# ---------------------------------------------------------------------------------- actions the bench refuses
def test_actions_that_cannot_be_done_as_the_bench_stands_are_refused_and_do_nothing(bench):
    """A swipe with no connector in the guide, a repair of a fault that is not there, a cassette
    fitted over another: the action says so and the world is left as it was (the scenario runner
    and the interactive prompt through `perform`, the bench port through the same action)."""
    from hw_sim.actions import ActionRefused, perform

    world = bench.world
    with pytest.raises(ActionRefused, match="no connector in the guide to swipe; seat one first"):
        perform(bench, "swipe", {})
    bench.run_for(2.0)
    assert world.swipes == [] and not world.sensor("gate_a") and bench.state == "idle"

    with pytest.raises(ActionRefused, match="jam is not injected, nothing to clear; injected now: none"):
        perform(bench, "clear", {"fault": "jam"})
    perform(bench, "inject", {"fault": "gate_bounce"})
    with pytest.raises(ActionRefused, match="injected now: gate_bounce"):
        perform(bench, "clear", {"fault": "pump_clog"})
    assert perform(bench, "clear", {"fault": "gate_bounce"}) == "fault gate_bounce cleared"
    assert not world.faults.bounce
    for one_off, remedy in [("cassette_pulled", "fit_cassette"), ("connector_pulled", "present")]:
        with pytest.raises(ActionRefused, match=f"{one_off} leaves nothing to repair.*{remedy}"):
            perform(bench, "clear", {"fault": one_off})

    fitted = world.fitted
    with pytest.raises(ActionRefused, match="cassette 'standard' is already fitted; take it out first"):
        perform(bench, "fit_cassette", {"name": "other", "type": "male_mt"})
    assert world.fitted is fitted and "other" not in world.cassettes

    perform(bench, "remove_cassette", {})  # the right way round still works
    perform(bench, "fit_cassette", {"name": "other", "type": "male_mt"})
    assert world.fitted is not None and world.fitted.name == "other"
    bench.run_for(1.0)


def test_the_bench_port_refuses_the_same_actions(bench):
    from hw_sim.benchport import registry
    from station.console.commands import CommandError

    commands = registry(bench)
    for name, args, words in [
        ("swipe", [], "no connector in the guide"),
        ("clear", ["jam"], "jam is not injected"),
        ("fit_cassette", ["spare"], "already fitted"),
    ]:
        with pytest.raises(CommandError) as err:
            commands[name].handler(None, args)
        assert words in err.value.message
    assert bench.world.swipes == [] and bench.world.fitted.name == "standard"


@pytest.mark.parametrize(
    "steps, words",
    [
        ("[[steps]]\nswipe = true\n", "step 1: swipe: ERROR no connector in the guide to swipe"),
        ('[[steps]]\nclear = "jam"\n', "step 1: clear: ERROR jam is not injected, nothing to clear"),
        ('[[steps]]\nfit_cassette = "spare"\n', "step 1: fit_cassette: ERROR cassette 'standard' is already fitted"),
    ],
    ids=["swipe_no_connector", "clear_not_injected", "fit_over_fitted"],
)
def test_a_scenario_step_the_bench_refuses_fails_the_run_naming_it(tmp_path, steps, words):
    ok, text = run_scenario(write(tmp_path, steps), tmp_path / "state")
    assert not ok
    assert words in text and "scenario FAILED" in text
