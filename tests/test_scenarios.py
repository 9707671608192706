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


def test_cli_demo_exits_0(tmp_path):
    state = tmp_path / "demo-state"
    p = station("sim", "--demo", "--state-dir", str(state), tmp_path=tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "demo OK" in p.stdout
    assert (state / "station.db").exists(), "the demo keeps its records in the given state directory"


def test_cli_run_without_gpio_exits_2_and_points_to_sim(tmp_path):
    if sorted(Path("/dev").glob("gpiochip*")):
        pytest.skip("this machine has GPIO chips")
    p = station("run", "--state-dir", str(tmp_path / "s"), tmp_path=tmp_path, timeout=60)
    assert p.returncode == 2, p.stdout + p.stderr
    assert "no gpio" in p.stderr.lower()
    assert "station sim" in p.stderr
    assert "Traceback" not in p.stderr
