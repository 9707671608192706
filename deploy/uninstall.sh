#!/usr/bin/env bash
# Remove the MPO cleaning station. Keeps the records and configuration unless --purge.
#   sudo deploy/uninstall.sh [--purge] [--root DIR]
set -euo pipefail
ROOT=/
PURGE=0
while [ $# -gt 0 ]; do
  case "$1" in
    --root) ROOT=$2; shift 2 ;;
    --purge) PURGE=1; shift ;;
    *) echo "uninstall.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
ROOT=${ROOT%/}
[ "$(id -u)" -eq 0 ] || { echo "uninstall.sh: run as root (sudo)" >&2; exit 1; }
if [ -z "$ROOT" ] && [ -d /run/systemd/system ]; then
  systemctl disable --now mpo-station.service 2>/dev/null || true
fi
rm -f "$ROOT/etc/systemd/system/mpo-station.service"
[ -z "$ROOT" ] && [ -d /run/systemd/system ] && systemctl daemon-reload || true
rm -rf "$ROOT/opt/mpo-station"
if [ "$PURGE" = 1 ]; then
  rm -rf "$ROOT/etc/mpo-station" "$ROOT/var/lib/mpo-station"
  if [ -n "$ROOT" ]; then R=(--root "$ROOT"); else R=(); fi
  grep -q '^mpo-station:' "$ROOT/etc/passwd" && userdel "${R[@]}" mpo-station || true
  echo "removed everything, records included"
else
  echo "removed the program; kept /etc/mpo-station and the records in /var/lib/mpo-station (--purge removes them)"
fi
