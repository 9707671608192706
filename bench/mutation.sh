#!/usr/bin/env bash
# Mutation testing (mutmut) of the station's decision code, in a scratch copy of the repository.
#
#   bash bench/mutation.sh judges       # station/swipe.py, station/guide_pins.py   (~5 min here)
#   bash bench/mutation.sh controller   # the controller core and its collaborators (~1 h)
#
# mutmut rewrites the package it mutates, so it runs on a copy of the committed tree
# (`git archive HEAD`), never on the working directory. Needs the test extra and mutmut in the
# Python that runs this (e.g. `.venv/bin/pip install mutmut==3.8.1`, then
# `PATH=.venv/bin:$PATH bash bench/mutation.sh judges`). Prints mutmut's summary and the
# surviving mutants with their diffs; the scratch copy is left in $MUT_DIR for `mutmut show`.
# Results and the list of equivalent survivors: docs/reliability.md.
set -euo pipefail

target="${1:-}"
case "$target" in
  judges)
    keep='["station/a*.py", "station/cl*.py", "station/co*.py", "station/d*.py", "station/l*.py", "station/m*.py", "station/p*.py", "station/r*.py", "station/s[dte]*.py", "station/w*.py", "station/__*.py", "station/drivers/*", "station/console/*"]'
    tests='["tests/test_swipe.py", "tests/test_guide_pins.py"]'
    drop=() ;;
  controller)
    # the core and the collaborators it owns (issue 10)
    mutate=(controller cycle attempt consumables service_jobs settings faults mode gestures plausibility)
    keep="$(cd "$(git rev-parse --show-toplevel)" && for f in station/*.py; do
              n="$(basename "$f" .py)"; [[ " ${mutate[*]} " == *" $n "* ]] || printf '"%s", ' "$f"; done)"
    keep="[${keep}\"station/drivers/*\", \"station/console/*\"]"
    tests='["tests/test_cleaning.py", "tests/test_faults.py", "tests/test_fault_matrix.py", "tests/test_consumables.py", "tests/test_console_protocol.py", "tests/test_maintenance.py", "tests/test_service.py", "tests/test_stateful.py", "tests/test_collaborators.py", "tests/test_events.py"]'
    # real-time, subprocess and hardware suites: they cannot see a mutant (other processes) or
    # take minutes each; the random state machine is left out so that results repeat
    drop=(test_soak.py test_powercut.py test_pi_hardware.py test_deploy.py test_console_pyvisa.py
          test_console_serial.py test_console_fuzz.py test_doctor.py test_pin_cli.py test_static.py
          test_history.py test_nullmodem.py test_console_tap.py) ;;
  *)
    echo "usage: bash bench/mutation.sh judges|controller" >&2
    exit 2 ;;
esac

command -v mutmut >/dev/null || { echo "mutmut not found: pip install mutmut==3.8.1" >&2; exit 2; }
root="$(git rev-parse --show-toplevel)"
MUT_DIR="${MUT_DIR:-$(mktemp -d /tmp/mutation-"$target".XXXX)}"
mkdir -p "$MUT_DIR"
git -C "$root" archive HEAD | tar -x -C "$MUT_DIR"
cd "$MUT_DIR"
for f in "${drop[@]}"; do rm -f "tests/$f"; done
cat >> pyproject.toml <<EOF

[tool.mutmut]
paths_to_mutate = ["station/"]
do_not_mutate = $keep
tests_dir = ["tests/"]
pytest_add_cli_args = ["-x", "-q", "-p", "no:cacheprovider", "--deselect", "tests/test_stateful.py::TestStation::runTest"]
pytest_add_cli_args_test_selection = $tests
also_copy = ["hw_sim", "deploy", "docs", "examples", "bench"]
EOF
echo "scratch copy: $MUT_DIR"
HYPOTHESIS_PROFILE=ci mutmut run --max-children "$(nproc)" > mutmut.log 2>&1 || true
tail -c 300 mutmut.log | tr '\r' '\n' | tail -n 1
echo
for name in $(mutmut results 2>/dev/null | awk -F: '/survived|timeout|suspicious/ {print $1}'); do
  mutmut show "$name" 2>/dev/null | grep -E '^(# |[-+] )' | grep -v -E '^(\+\+\+|---)'
done
