"""The appliance's unit files and install scripts (systemd/).

`systemd-analyze verify` checks every unit and must print nothing: any line is
a warning (an unknown key, a bad value, a missing unit file). It also checks
that each ExecStart= binary exists, which on a development box or in CI the
appliance's /opt/smart-mirror/.venv/bin/mirror does not; so a copy with that
one prefix pointed at this checkout's venv is verified, and the real files'
content is checked line by line besides. User= names are not resolved by
verify."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
UNITS_DIR = ROOT / "systemd"
UNITS = sorted(p.name for p in UNITS_DIR.glob("*.service"))
APP_PREFIX = "/opt/smart-mirror/.venv/bin/"


def _unit(name: str) -> dict[str, dict[str, list[str]]]:
    """section -> key -> every value (systemd keys repeat)."""
    out: dict[str, dict[str, list[str]]] = {}
    section = None
    for raw in (UNITS_DIR / name).read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            out.setdefault(section, {})
            continue
        key, _, value = line.partition("=")
        out[section].setdefault(key.strip(), []).append(value.strip())
    return out


def test_the_units_are_there():
    assert UNITS == ["smart-mirror-display.service", "smart-mirror.service"]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze missing (setup.sh installs systemd)")
@pytest.mark.parametrize("name", UNITS)
def test_systemd_analyze_verify_prints_nothing(name, tmp_path):
    venv_bin = Path(sys.executable).parent
    assert (venv_bin / "mirror").exists()
    for u in UNITS:         # the units name each other, so all of them go in the same folder
        text = (UNITS_DIR / u).read_text()
        (tmp_path / u).write_text(text.replace(APP_PREFIX, f"{venv_bin}/"))
    r = subprocess.run(["systemd-analyze", "verify", "--man=no", str(tmp_path / name)],
                       capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
                       env=dict(os.environ, SYSTEMD_LOG_LEVEL="info", SYSTEMD_LOG_COLOR="0", SYSTEMD_PAGER=""))
    out = (r.stdout + r.stderr).strip()
    assert r.returncode == 0 and out == "", out


def test_the_kiosk_unit_is_a_hardened_notify_service():
    u = _unit("smart-mirror.service")
    unit, svc, inst = u["Unit"], u["Service"], u["Install"]
    one = {k: v[-1] for k, v in svc.items()}
    assert one["Type"] == "notify" and one["NotifyAccess"] == "main" and one["WatchdogSec"] == "10"
    assert one["Restart"] == "on-failure" and one["RestartSec"] == "2"
    assert one["KillSignal"] == "SIGTERM" and one["TimeoutStopSec"] == "20"
    assert "StartLimitIntervalSec" in unit and "StartLimitBurst" in unit      # in [Unit], where systemd reads them
    assert "StartLimitIntervalSec" not in svc
    for key in ("After", "Wants"):
        names = " ".join(unit[key]).split()
        assert {"pcscd.socket", "network-online.target", "smart-mirror-display.service"} <= set(names)
    assert one["User"] == "smart-mirror" and one["Group"] == "smart-mirror"
    groups = " ".join(svc["SupplementaryGroups"]).split()
    assert {"video", "render", "input"} <= set(groups) and "smart-mirror" not in groups
    assert one["ProtectSystem"] == "strict" and one["ProtectHome"] == "yes" and one["PrivateTmp"] == "yes"
    assert one["NoNewPrivileges"] == "yes" and one["DevicePolicy"] == "closed"
    allowed = {v.split()[0] for v in svc["DeviceAllow"]}
    assert {"char-video4linux", "char-drm", "char-input"} <= allowed
    assert not {a for a in allowed if "usb" in a or "pcsc" in a}      # the reader is pcscd's, over its socket
    assert one["StateDirectory"] == "smart-mirror"
    assert svc["ReadWritePaths"] == ["/var/lib/smart-mirror"]
    assert one["RuntimeDirectory"] == "smart-mirror" and one["RuntimeDirectoryMode"] == "0750"
    assert one["ExecStartPre"] == f"{APP_PREFIX}mirror check-config /etc/smart-mirror/mirror.toml"
    assert one["ExecStart"] == f"{APP_PREFIX}mirror run --config /etc/smart-mirror/mirror.toml"
    env = dict(v.split("=", 1) for v in svc["Environment"])
    assert env["SDL_VIDEODRIVER"] == "wayland"
    assert env["XDG_RUNTIME_DIR"] == "/run/smart-mirror-display" and env["WAYLAND_DISPLAY"] == "wayland-0"
    # matplotlib (imported by MediaPipe) keeps its font cache in the unit's cache directory, not a home
    assert one["CacheDirectory"] == "smart-mirror" and env["MPLCONFIGDIR"].startswith("/var/cache/smart-mirror/")
    assert one["MemoryMax"] and one["TasksMax"]
    assert inst["WantedBy"] == ["graphical.target"]


def test_the_display_unit_runs_cage_on_tty1_where_the_kiosk_looks_for_wayland():
    u = _unit("smart-mirror-display.service")
    svc = {k: v[-1] for k, v in u["Service"].items()}
    assert svc["User"] == "smart-mirror" and svc["PAMName"] == "login" and svc["TTYPath"] == "/dev/tty1"
    assert "getty@tty1.service" in u["Unit"]["Conflicts"]
    assert "/usr/bin/cage " in svc["ExecStart"]
    assert "XDG_RUNTIME_DIR=/run/smart-mirror-display " in svc["ExecStart"]
    assert svc["RuntimeDirectory"] == "smart-mirror-display"


def _sh(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", *args], capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)


def test_install_and_uninstall_into_a_staging_root(tmp_path):
    root = tmp_path / "root"
    r = _sh(str(UNITS_DIR / "install.sh"), "--root", str(root))
    assert r.returncode == 0, r.stderr
    for u in UNITS:
        assert (root / "etc/systemd/system" / u).read_text() == (UNITS_DIR / u).read_text()
    conf = root / "etc/smart-mirror/mirror.toml"
    assert conf.read_text() == (ROOT / "config/mirror.toml").read_text()
    opt = root / "opt/smart-mirror"
    assert (opt / "pyproject.toml").is_file() and (opt / "setup.sh").is_file() and (opt / "mirror/app/kiosk.py").is_file()
    assert not (opt / ".venv").exists() and not (opt / ".git").exists() and not list(opt.rglob("__pycache__"))
    assert not (root / "var/lib/smart-mirror").exists()         # StateDirectory= makes it at the first start

    # again, over a store's edited config: idempotent, and the config stays
    conf.write_text(conf.read_text() + "\n# edited by the store\n")
    edited = conf.read_text()
    r = _sh(str(UNITS_DIR / "install.sh"), "--root", str(root))
    assert r.returncode == 0, r.stderr
    assert conf.read_text() == edited and "kept the existing" in r.stdout

    state = root / "var/lib/smart-mirror"
    state.mkdir(parents=True)
    (state / "orders.db").write_bytes(b"journal")
    r = _sh(str(UNITS_DIR / "uninstall.sh"), "--root", str(root))
    assert r.returncode == 0, r.stderr
    assert not any((root / "etc/systemd/system" / u).exists() for u in UNITS) and not opt.exists()
    assert conf.read_text() == edited and (state / "orders.db").read_bytes() == b"journal"
    r = _sh(str(UNITS_DIR / "uninstall.sh"), "--root", str(root))        # again: nothing left to do, still fine
    assert r.returncode == 0, r.stderr
    r = _sh(str(UNITS_DIR / "uninstall.sh"), "--root", str(root), "--purge")
    assert r.returncode == 0, r.stderr
    assert not state.exists() and not conf.parent.exists()


def test_the_scripts_refuse_unknown_arguments():
    for script in ("install.sh", "uninstall.sh"):
        r = _sh(str(UNITS_DIR / script), "--bogus")
        assert r.returncode == 2 and "unknown argument" in r.stderr
        assert os.access(UNITS_DIR / script, os.X_OK)
