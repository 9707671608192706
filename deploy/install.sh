#!/usr/bin/env bash
# Install (or update) the MPO cleaning station on a Raspberry Pi. Safe to run again.
#
#   sudo deploy/install.sh                 # from a checkout of the repository
#   sudo MPO_PIN=4711 deploy/install.sh    # set the first maintenance PIN without a prompt
#
# Options:
#   --root DIR     install into DIR instead of / (for images and tests: nothing is started)
#   --no-pi-extra  do not install lgpio (a machine without GPIO; `station run` will say so)
#   --no-apt       never run apt-get (install python3-lgpio and python3-venv yourself first)
#   --no-enable    install but do not enable or start the service
#
# On Raspberry Pi OS (Debian) the GPIO library lgpio comes from the distribution (python3-lgpio,
# installed with apt-get) and the virtual environment is created with --system-site-packages so
# that it sees it: PyPI has no lgpio wheel for 64-bit Raspberry Pi OS, and building one needs
# swig, a C compiler and liblgpio-dev. See docs/deploy.md, section 4.
set -euo pipefail

ROOT=/
PI_EXTRA="[pi]"
ENABLE=1
APT=1
while [ $# -gt 0 ]; do
  case "$1" in
    --root) ROOT=$2; shift 2 ;;
    --no-pi-extra) PI_EXTRA=""; shift ;;
    --no-apt) APT=0; shift ;;
    --no-enable) ENABLE=0; shift ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "install.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
ROOT=${ROOT%/}
SRC=$(cd "$(dirname "$0")/.." && pwd)
USER_NAME=mpo-station
PREFIX=/opt/mpo-station
VENV=$ROOT$PREFIX/venv
CONF_DIR=/etc/mpo-station
STATE_DIR=/var/lib/mpo-station
UNIT=/etc/systemd/system/mpo-station.service
PYTHON=${PYTHON:-python3}
say() { printf '==> %s\n' "$*"; }

[ "$(id -u)" -eq 0 ] || { echo "install.sh: run as root (sudo)" >&2; exit 1; }
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
  echo "install.sh: needs Python 3.11 or newer ($PYTHON is $("$PYTHON" -V 2>&1))" >&2; exit 1; }

# 0. where lgpio comes from: the distribution on a Debian-family ARM board, else pip
os_field() {  # a field of the target's os-release, unquoted
  local file=$ROOT/etc/os-release
  [ -e "$file" ] || file=$ROOT/usr/lib/os-release
  [ -e "$file" ] && sed -n "s/^$1=//p" "$file" | head -n 1 | tr -d "\"'" || true
}
OS_NAME=$(os_field PRETTY_NAME)
OS_FAMILY=" $(os_field ID) $(os_field ID_LIKE) "
MACHINE=$(uname -m)
case "$OS_FAMILY" in *" debian "*|*" raspbian "*|*" ubuntu "*) DEBIAN_LIKE=1 ;; *) DEBIAN_LIKE=0 ;; esac
case "$MACHINE" in aarch64|arm64|armv6l|armv7l|armv8l) ARM=1 ;; *) ARM=0 ;; esac
if [ -z "$PI_EXTRA" ]; then
  LGPIO_FROM=none
  say "lgpio: not installed (--no-pi-extra)"
elif [ "$DEBIAN_LIKE" = 1 ] && [ "$ARM" = 1 ]; then
  LGPIO_FROM=distribution
  say "lgpio: ${OS_NAME:-Debian} on $MACHINE: the distribution's python3-lgpio, seen by a venv with --system-site-packages"
else
  LGPIO_FROM=pip
  say "lgpio: ${OS_NAME:-unknown system} on $MACHINE is not a Debian-family ARM board: lgpio from PyPI, if it is importable nowhere else"
fi

# 1. the distribution's packages: python3-venv (Debian's ensurepip) if missing, python3-lgpio on a Pi
deb_installed() { [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" = "install ok installed" ]; }
PACKAGES=()
"$PYTHON" -c 'import ensurepip' 2>/dev/null || PACKAGES+=(python3-venv)
if [ "$LGPIO_FROM" = distribution ] && ! deb_installed python3-lgpio; then PACKAGES+=(python3-lgpio); fi
if [ ${#PACKAGES[@]} -eq 0 ]; then
  [ "$LGPIO_FROM" = distribution ] && say "python3-lgpio is already installed"
elif [ "$APT" = 0 ]; then
  say "not running apt-get (--no-apt): install ${PACKAGES[*]} yourself (sudo apt install ${PACKAGES[*]})"
elif ! command -v apt-get >/dev/null 2>&1; then
  say "no apt-get here: install ${PACKAGES[*]} (or their equivalents) yourself"
else
  say "apt-get install ${PACKAGES[*]}"
  # a freshly flashed card may have no package lists yet: fetch them once and try again
  DEBIAN_FRONTEND=noninteractive apt-get install -y "${PACKAGES[@]}" ||
    { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y "${PACKAGES[@]}"; }
  [ -z "$ROOT" ] || say "(--root: installed on this machine; the system in $ROOT needs ${PACKAGES[*]} too)"
fi

# 2. the service user, in the groups that own the GPIO chip and the serial port
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

# 3. the program, in its own virtual environment (Raspberry Pi OS refuses pip in the system Python)
say "installing the firmware into $PREFIX"
mkdir -p "$ROOT$PREFIX" "$ROOT$CONF_DIR" "$ROOT$STATE_DIR"
VENV_FLAGS=()
[ "$LGPIO_FROM" = none ] || VENV_FLAGS=(--system-site-packages)  # the system's lgpio, if it has one
if [ ! -x "$VENV/bin/python" ]; then
  say "creating the virtual environment $PREFIX/venv ${VENV_FLAGS[*]}"
  "$PYTHON" -m venv "${VENV_FLAGS[@]}" "$VENV"
elif [ ${#VENV_FLAGS[@]} -gt 0 ] && ! grep -Eqi '^include-system-site-packages *= *true' "$VENV/pyvenv.cfg"; then
  # made by an earlier installer without the flag: the flag is this one line of pyvenv.cfg
  say "the existing virtual environment now sees the system's Python packages (--system-site-packages)"
  sed -Ei 's/^include-system-site-packages *=.*/include-system-site-packages = true/I' "$VENV/pyvenv.cfg"
fi
# Whether the venv sees an lgpio (without importing it: that opens a FIFO in the working
# directory) and whether its version satisfies the pi extra: then pip finds the requirement
# met and builds nothing. Prints: ok|old|missing <version> <needed> <where>.
lgpio_state() {
  "$VENV/bin/python" - "$SRC/pyproject.toml" <<'PY'
import importlib.util, sys, tomllib
from importlib import metadata

with open(sys.argv[1], "rb") as f:
    pi = tomllib.load(f)["project"]["optional-dependencies"]["pi"]
need = next((r.split(">=", 1)[1].strip() for r in pi if r.replace(" ", "").startswith("lgpio>=")), "0")
spec, ext = importlib.util.find_spec("lgpio"), importlib.util.find_spec("_lgpio")
if spec is None or ext is None:
    print("missing - " + need + " -")
    sys.exit()
try:
    have = metadata.version("lgpio")
except metadata.PackageNotFoundError:
    have = "unknown"
def key(v):
    return tuple(int(p) for p in v.split(".") if p.isdigit())
print("ok" if have != "unknown" and key(have) >= key(need) else "old", have, need, spec.origin)
PY
}
EXTRA=$PI_EXTRA
LGPIO_STATE=none
if [ "$LGPIO_FROM" != none ]; then
  read -r LGPIO_STATE LGPIO_HAVE LGPIO_NEED LGPIO_AT < <(lgpio_state) || LGPIO_STATE=missing
fi
if [ "$LGPIO_STATE" = none ]; then
  :
elif [ "$LGPIO_STATE" = ok ]; then
  say "lgpio $LGPIO_HAVE from $LGPIO_AT satisfies lgpio>=$LGPIO_NEED: pip uses it, builds nothing"
elif [ "$LGPIO_STATE" = old ]; then
  EXTRA=""  # pip would replace it by building lgpio from source: keep the system's
  say "lgpio $LGPIO_HAVE from $LGPIO_AT is older than the pi extra's lgpio>=$LGPIO_NEED (or has no version):"
  say "installing without the pi extra, so that pip does not try to build a newer one"
elif [ "$LGPIO_FROM" = distribution ]; then
  say "lgpio is not importable from $PYTHON's system packages (python3-lgpio serves the distribution's python3):"
  say "pip will try PyPI, which has no wheel for most Raspberry Pi OS releases (building needs swig, gcc, liblgpio-dev)"
else
  say "no lgpio on this system: pip fetches it from PyPI (where no wheel fits, building needs swig, gcc, liblgpio-dev)"
fi
"$VENV/bin/python" -m pip install --quiet --upgrade "$SRC$EXTRA" || {
  echo "install.sh: pip could not install the firmware${EXTRA:+ with lgpio}. On Raspberry Pi OS run" >&2
  echo "  sudo apt install python3-lgpio   and run this installer again (without --no-apt)," >&2
  echo "or install lgpio's build dependencies (sudo apt install swig gcc python3-dev liblgpio-dev);" >&2
  echo "on a machine without GPIO use --no-pi-extra." >&2
  exit 1
}
if [ -n "$ROOT" ]; then
  # Built under a staging root: point the scripts at where the venv will live once that root
  # is the running system.
  grep -rlI --null "$ROOT$PREFIX/venv" "$ROOT$PREFIX/venv/bin" | xargs -0 -r sed -i "s|$ROOT$PREFIX/venv|$PREFIX/venv|g"
fi
rm -rf "$ROOT$PREFIX/docs" && cp -r "$SRC/docs" "$ROOT$PREFIX/docs"
# The installed command, runnable now (also from a staging root, whose scripts point at $PREFIX).
STATION=("$ROOT$PREFIX/venv/bin/python" -m station)

# 4. configuration: placed only if there is none (never overwrite a station's settings)
if [ -e "$ROOT$CONF_DIR/station.toml" ]; then
  say "keeping the existing $CONF_DIR/station.toml"
else
  say "placing $CONF_DIR/station.toml (edit pins and timings there)"
  install -m 0644 "$SRC/deploy/station.toml" "$ROOT$CONF_DIR/station.toml"
fi
"${STATION[@]}" config check "$ROOT$CONF_DIR/station.toml"
chown -R "$(grep "^$USER_NAME:" "$ROOT/etc/passwd" | cut -d: -f3)" "$ROOT$STATE_DIR"
chmod 0750 "$ROOT$STATE_DIR"

# 5. the first maintenance PIN (only if none is set yet; exit 1 = none set, 2 = unreadable)
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

# 6. the UART for the console, without a login shell on it
if [ -z "$ROOT" ] && command -v raspi-config >/dev/null 2>&1; then
  say "enabling the UART (serial hardware on, login shell off): takes effect after a reboot"
  raspi-config nonint do_serial_hw 0 && raspi-config nonint do_serial_cons 1
else
  say "UART: in raspi-config choose Interface Options > Serial Port: login shell NO, hardware YES"
fi

# 7. the service
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
