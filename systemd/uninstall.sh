#!/usr/bin/env bash
# Removes the smart mirror appliance: stops and disables its units, removes
# them and /opt/smart-mirror. The store's data (/var/lib/smart-mirror: the
# order journal) and config (/etc/smart-mirror) stay unless --purge, which also
# removes the smart-mirror user and group. Safe to run again.
#
#   sudo systemd/uninstall.sh [--purge]
#   systemd/uninstall.sh --root /tmp/stage [--purge]   # a staging root: files only
set -euo pipefail

usage() { echo "usage: $0 [--root DIR] [--purge]" >&2; exit 2; }
ROOT=""
PURGE=0
while [ $# -gt 0 ]; do
  case "$1" in
    --root) [ $# -ge 2 ] || usage; ROOT="$(realpath -m "$2")"; shift 2 ;;
    --root=*) ROOT="$(realpath -m "${1#--root=}")"; shift ;;
    --purge) PURGE=1; shift ;;
    -h|--help) usage ;;
    *) echo "uninstall: error: unknown argument $1" >&2; usage ;;
  esac
done

USER_NAME=smart-mirror
UNITDIR="$ROOT/etc/systemd/system"
UNITS=(smart-mirror.service smart-mirror-display.service)
[ "$ROOT" = "/" ] && ROOT=""
SYSTEM=1
[ -n "$ROOT" ] && SYSTEM=0
if [ "$SYSTEM" = 1 ] && [ "$(id -u)" -ne 0 ]; then
  echo "uninstall: error: run as root (sudo $0), or use --root DIR" >&2
  exit 2
fi
say() { echo "uninstall: $*"; }

if [ "$SYSTEM" = 1 ] && command -v systemctl >/dev/null 2>&1; then
  for u in "${UNITS[@]}"; do
    systemctl disable --now "$u" 2>/dev/null || true
  done
fi
for u in "${UNITS[@]}"; do
  rm -f "$UNITDIR/$u"
done
say "removed ${UNITS[*]}"
if [ "$SYSTEM" = 1 ] && command -v systemctl >/dev/null 2>&1; then
  systemctl daemon-reload || true
  systemctl reset-failed "${UNITS[@]}" 2>/dev/null || true
fi

rm -rf "$ROOT/opt/smart-mirror" "$ROOT/var/cache/smart-mirror"
say "removed /opt/smart-mirror and its cache (/var/cache/smart-mirror)"

if [ "$PURGE" = 1 ]; then
  rm -rf "$ROOT/var/lib/smart-mirror" "$ROOT/etc/smart-mirror"
  say "purged /var/lib/smart-mirror (the order journal) and /etc/smart-mirror"
  if [ "$SYSTEM" = 1 ]; then
    if getent passwd "$USER_NAME" >/dev/null; then userdel "$USER_NAME"; fi
    if getent group "$USER_NAME" >/dev/null; then groupdel "$USER_NAME"; fi
    say "removed the $USER_NAME user and group"
  fi
else
  say "kept /var/lib/smart-mirror and /etc/smart-mirror (--purge removes them)"
fi
