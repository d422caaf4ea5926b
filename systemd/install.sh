#!/usr/bin/env bash
# Installs the smart mirror as an appliance on Debian 12. Safe to run again
# (that is also the update path: pull the checkout, run it, restart).
#
#   sudo systemd/install.sh                 # onto this machine
#   systemd/install.sh --root /tmp/stage    # into a staging root: files only,
#                                           # no useradd, apt, setup.sh or systemctl
#
# It creates the smart-mirror system user and group, copies this checkout to
# /opt/smart-mirror and builds its .venv with setup.sh, writes
# /etc/smart-mirror/mirror.toml from config/mirror.toml only when there is none
# (a store's edited config is never overwritten), installs the units into
# /etc/systemd/system and reloads systemd. /var/lib/smart-mirror is made by
# systemd (StateDirectory=) at the first start.
set -euo pipefail

usage() { echo "usage: $0 [--root DIR] [--skip-setup]" >&2; exit 2; }
ROOT=""
SKIP_SETUP=0
while [ $# -gt 0 ]; do
  case "$1" in
    --root) [ $# -ge 2 ] || usage; ROOT="$(realpath -m "$2")"; shift 2 ;;
    --root=*) ROOT="$(realpath -m "${1#--root=}")"; shift ;;
    --skip-setup) SKIP_SETUP=1; shift ;;
    -h|--help) usage ;;
    *) echo "install: error: unknown argument $1" >&2; usage ;;
  esac
done

SRC="$(cd "$(dirname "$0")/.." && pwd)"
USER_NAME=smart-mirror
PREFIX="$ROOT/opt/smart-mirror"
ETC="$ROOT/etc/smart-mirror"
UNITDIR="$ROOT/etc/systemd/system"
UNITS=(smart-mirror-display.service smart-mirror.service)
[ "$ROOT" = "/" ] && ROOT=""
SYSTEM=1                                  # act on this machine's users, packages and systemd
[ -n "$ROOT" ] && SYSTEM=0

if [ "$SYSTEM" = 1 ] && [ "$(id -u)" -ne 0 ]; then
  echo "install: error: run as root (sudo $0), or stage with --root DIR" >&2
  exit 2
fi
say() { echo "install: $*"; }

# 1. The user and group the kiosk and its display run as. The group also owns
#    the control socket (control.group): add staff to it for 'mirror status'.
if [ "$SYSTEM" = 1 ]; then
  for g in video render input audio; do
    getent group "$g" >/dev/null || groupadd --system "$g"
  done
  getent group "$USER_NAME" >/dev/null || { groupadd --system "$USER_NAME"; say "created group $USER_NAME"; }
  if ! getent passwd "$USER_NAME" >/dev/null; then
    useradd --system --gid "$USER_NAME" --home-dir /var/lib/smart-mirror --no-create-home \
            --shell /usr/sbin/nologin --comment "Smart mirror kiosk" "$USER_NAME"
    say "created user $USER_NAME"
  fi
  if ! dpkg -s cage >/dev/null 2>&1; then
    say "installing cage (the kiosk Wayland compositor) with apt-get"
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q cage
  fi
fi

# 2. The program: this checkout, without its venv, git data or caches.
mkdir -p "$PREFIX"
if [ "$SRC" != "$(realpath -m "$PREFIX")" ]; then
  tar -C "$SRC" --exclude=./.venv --exclude=./.git --exclude=__pycache__ --exclude='*.pyc' \
      --exclude='*.egg-info' --exclude=./.pytest_cache --exclude=./.import_linter_cache \
      --exclude=./demo-out --exclude=./build --exclude=./dist -cf - . | tar -C "$PREFIX" -xf -
  say "copied $SRC to $PREFIX"
fi
if [ "$SYSTEM" = 1 ] && [ "$SKIP_SETUP" = 0 ]; then
  say "building $PREFIX/.venv with setup.sh"
  (cd "$PREFIX" && ./setup.sh)
else
  say "skipped setup.sh (run it in $PREFIX on the target)"
fi

# 3. The config: written once; an existing one is the store's and stays.
mkdir -p "$ETC"
if [ ! -e "$ETC/mirror.toml" ]; then
  install -m 0640 "$SRC/config/mirror.toml" "$ETC/mirror.toml"
  say "wrote $ETC/mirror.toml (edit it, then: mirror check-config $ETC/mirror.toml)"
else
  say "kept the existing $ETC/mirror.toml"
fi
if [ "$SYSTEM" = 1 ]; then
  chown root:"$USER_NAME" "$ETC" "$ETC/mirror.toml"
  chmod 0750 "$ETC"
fi

# 4. The units.
mkdir -p "$UNITDIR"
for u in "${UNITS[@]}"; do
  install -m 0644 "$SRC/systemd/$u" "$UNITDIR/$u"
done
say "installed ${UNITS[*]} into $UNITDIR"

if [ "$SYSTEM" = 1 ]; then
  systemctl daemon-reload
  cat <<EOF
install: done. Start the mirror now and at every boot:
  systemctl enable --now smart-mirror-display.service smart-mirror.service
Then:
  systemctl status smart-mirror          # health line, e.g. "serving 29 fps · camera ok"
  journalctl -u smart-mirror -f          # its log
  usermod -a -G smart-mirror STAFFUSER   # lets STAFFUSER use 'mirror status', 'mirror call link'
EOF
else
  say "staged into $ROOT (no user, package or systemd changes)"
fi
