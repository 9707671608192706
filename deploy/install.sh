#!/usr/bin/env bash
# Install (or update) the MPO cleaning station on a Raspberry Pi. Safe to run again.
#
#   sudo deploy/install.sh                 # from a checkout of the repository
#   sudo MPO_PIN=4711 deploy/install.sh    # set the first maintenance PIN without a prompt
#
# Options:
#   --root DIR     install into DIR instead of / (for images and tests: nothing is started)
#   --no-pi-extra  do not install lgpio (a machine without GPIO; `station run` will say so)
#   --no-enable    install but do not enable or start the service
set -euo pipefail

ROOT=/
PI_EXTRA="[pi]"
ENABLE=1
while [ $# -gt 0 ]; do
  case "$1" in
    --root) ROOT=$2; shift 2 ;;
    --no-pi-extra) PI_EXTRA=""; shift ;;
    --no-enable) ENABLE=0; shift ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "install.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
ROOT=${ROOT%/}
SRC=$(cd "$(dirname "$0")/.." && pwd)
USER_NAME=mpo-station
PREFIX=/opt/mpo-station
CONF_DIR=/etc/mpo-station
STATE_DIR=/var/lib/mpo-station
UNIT=/etc/systemd/system/mpo-station.service
PYTHON=${PYTHON:-python3}
say() { printf '==> %s\n' "$*"; }

[ "$(id -u)" -eq 0 ] || { echo "install.sh: run as root (sudo)" >&2; exit 1; }
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
  echo "install.sh: needs Python 3.11 or newer ($PYTHON is $("$PYTHON" -V 2>&1))" >&2; exit 1; }

# 1. the service user, in the groups that own the GPIO chip and the serial port
if [ -n "$ROOT" ]; then R=(--root "$ROOT"); else R=(); fi
for group in gpio dialout; do
  if ! grep -q "^$group:" "$ROOT/etc/group"; then
    say "creating group $group"; groupadd "${R[@]}" --system "$group"
  fi
done
if ! grep -q "^$USER_NAME:" "$ROOT/etc/passwd"; then
  say "creating user $USER_NAME"
  useradd "${R[@]}" --system --no-create-home --home-dir "$STATE_DIR" --shell /usr/sbin/nologin \
    --user-group --groups gpio,dialout "$USER_NAME"
else
  usermod "${R[@]}" --append --groups gpio,dialout "$USER_NAME"
fi

# 2. the program, in its own virtual environment (Raspberry Pi OS refuses pip in the system Python)
say "installing the firmware into $PREFIX"
mkdir -p "$ROOT$PREFIX" "$ROOT$CONF_DIR" "$ROOT$STATE_DIR"
[ -x "$ROOT$PREFIX/venv/bin/python" ] || "$PYTHON" -m venv "$ROOT$PREFIX/venv"
"$ROOT$PREFIX/venv/bin/python" -m pip install --quiet --upgrade "$SRC$PI_EXTRA"
if [ -n "$ROOT" ]; then
  # Built under a staging root: point the scripts at where the venv will live once that root
  # is the running system.
  grep -rlI --null "$ROOT$PREFIX/venv" "$ROOT$PREFIX/venv/bin" | xargs -0 -r sed -i "s|$ROOT$PREFIX/venv|$PREFIX/venv|g"
fi
rm -rf "$ROOT$PREFIX/docs" && cp -r "$SRC/docs" "$ROOT$PREFIX/docs"
# The installed command, runnable now (also from a staging root, whose scripts point at $PREFIX).
STATION=("$ROOT$PREFIX/venv/bin/python" -m station)

# 3. configuration: placed only if there is none (never overwrite a station's settings)
if [ -e "$ROOT$CONF_DIR/station.toml" ]; then
  say "keeping the existing $CONF_DIR/station.toml"
else
  say "placing $CONF_DIR/station.toml (edit pins and timings there)"
  install -m 0644 "$SRC/deploy/station.toml" "$ROOT$CONF_DIR/station.toml"
fi
"${STATION[@]}" config check "$ROOT$CONF_DIR/station.toml"
chown -R "$(grep "^$USER_NAME:" "$ROOT/etc/passwd" | cut -d: -f3)" "$ROOT$STATE_DIR"
chmod 0750 "$ROOT$STATE_DIR"

# 4. the first maintenance PIN (only if none is set yet; exit 1 = none set, 2 = unreadable)
pin_state=0
"${STATION[@]}" pin status --state-dir "$ROOT$STATE_DIR" >/dev/null || pin_state=$?
if [ "$pin_state" -eq 0 ]; then
  say "a maintenance PIN is already set (change it on the console: pin set)"
elif [ "$pin_state" -ne 1 ]; then
  echo "install.sh: cannot read the station database in $ROOT$STATE_DIR (see above); not touching the PIN" >&2
  exit 1
elif [ -n "${MPO_PIN:-}" ]; then
  printf '%s\n' "$MPO_PIN" | "${STATION[@]}" pin set --state-dir "$ROOT$STATE_DIR"
elif [ -t 0 ]; then
  say "choose the maintenance PIN for the console (4-32 characters)"
  "${STATION[@]}" pin set --state-dir "$ROOT$STATE_DIR"
else
  say "no maintenance PIN set: run 'sudo -u $USER_NAME $PREFIX/venv/bin/station pin set --state-dir $STATE_DIR'"
fi
chown -R "$(grep "^$USER_NAME:" "$ROOT/etc/passwd" | cut -d: -f3)" "$ROOT$STATE_DIR"

# 5. the UART for the console, without a login shell on it
if [ -z "$ROOT" ] && command -v raspi-config >/dev/null 2>&1; then
  say "enabling the UART (serial hardware on, login shell off): takes effect after a reboot"
  raspi-config nonint do_serial_hw 0 && raspi-config nonint do_serial_cons 1
else
  say "UART: in raspi-config choose Interface Options > Serial Port: login shell NO, hardware YES"
fi

# 6. the service
install -D -m 0644 "$SRC/deploy/mpo-station.service" "$ROOT$UNIT"
if [ -z "$ROOT" ] && [ "$ENABLE" = 1 ] && [ -d /run/systemd/system ]; then
  systemctl daemon-reload
  systemctl enable mpo-station.service
  systemctl restart mpo-station.service
  say "running: systemctl status mpo-station   journalctl -u mpo-station -f"
else
  say "installed $UNIT (not started here)"
fi
say "done"
