#!/usr/bin/env bash
# Sets up everything the mirror needs on Debian 12 (bookworm) with Python 3.11:
# the system libraries (apt) and a virtual environment in .venv with the
# project installed. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")"

# libgl1, libglib2.0-0: OpenCV and MediaPipe. pcscd, vsmartcard-vpcd: the PC/SC
# daemon and the virtual reader the NFC tests present cards to; libpcsclite-dev
# and swig build pyscard. chromium: the friend's browser in the call tests.
# iproute2: the network namespaces the call tests run in. libsystemd-dev and
# pkg-config build systemd-python (the journal logging); systemd gives
# systemd-analyze, which the unit-file tests run. gcc and python3-dev: pyscard
# and systemd-python are compiled on install.
APT_PACKAGES=(python3-venv python3-dev gcc libgl1 libglib2.0-0 pcscd vsmartcard-vpcd libpcsclite-dev swig chromium
              iproute2 libsystemd-dev pkg-config systemd)

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing ${missing[*]} with apt-get"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q "${missing[@]}"
fi

PY=""
for cand in python3.11 python3; do
  if command -v "$cand" >/dev/null 2>&1 && "$cand" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
    PY="$cand"; break
  fi
done
if [ -z "$PY" ]; then
  echo "setup: error: Python 3.11 is required (mediapipe 0.10.21 has wheels for it); install python3.11" >&2
  exit 2
fi

if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv with $PY"
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
echo "setup: installing the project and its pinned dependencies into .venv"
.venv/bin/python -m pip install -q -e '.[test]'
echo "setup: done. Try: .venv/bin/mirror --help"
