"""`mirror status`: the running kiosk's health over its control socket, from
a real `mirror run --headless` on an image folder (the call and the checkout
on, no pcscd, so the reader is reported unavailable and logged)."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import cv2

from mirror.app import health
from tests.kiosk_proc import free_port, kiosk_config, start_kiosk

ROOT = Path(__file__).resolve().parents[1]
LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d (WARNING|ERROR|CRITICAL) \S+: .+$")



def _proc(pid: int) -> dict:
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    return {"rss_mb": int(fields["VmRSS"].split()[0]) / 1024, "threads": int(fields["Threads"]),
            "fds": len(os.listdir(f"/proc/{pid}/fd"))}


def test_recent_errors_keeps_the_last_ten_warnings_and_errors_on_one_line_each():
    h = health.RecentErrors()
    log = logging.getLogger("test.status")
    log.addHandler(h)
    log.propagate = False
    try:
        log.info("not kept")
        for i in range(12):
            log.warning("warning %d\nsecond line", i)
        try:
            raise ValueError("bad value")
        except ValueError:
            log.exception("it failed")
    finally:
        log.removeHandler(h)
        log.propagate = True
    lines = h.recent()
    assert len(lines) == 10 and all(LINE.match(x) for x in lines), lines
    assert "warning 3 second line" in lines[0] and "not kept" not in " ".join(lines)
    assert lines[-1].endswith("it failed (ValueError: bad value)") and " ERROR test.status: " in lines[-1]
    assert h.counts == {"warnings": 12, "errors": 1}
    assert health.install_error_log() is health.install_error_log()
    assert logging.getLogger().handlers.count(health.install_error_log()) == 1


def test_status_reports_every_key_from_the_running_kiosk(media, tmp_path):
    frames = tmp_path / "frames"
    frames.mkdir()
    cv2.imwrite(str(frames / "0001.png"), cv2.imread(str(media / "images" / "pointing_up.jpg")))
    cfg = kiosk_config(tmp_path, frames, f"""
[call]
host = "127.0.0.1"
port = {free_port()}
[checkout]
db_path = "{tmp_path / 'orders.db'}"
[staff]
port = {free_port()}
""")
    # no pcscd behind this socket: the reader is unavailable, and the kiosk says so in its log
    kiosk = start_kiosk(cfg, PCSCLITE_CSOCK_NAME=str(tmp_path / "no-pcscd.comm"))
    cli = [sys.executable, "-m", "mirror", "status", "--config", str(cfg)]

    def status(*extra):
        return subprocess.run(cli + list(extra), capture_output=True, text=True, timeout=30)

    try:
        deadline = time.monotonic() + 120          # model loading on a busy machine: generous
        st = None
        while time.monotonic() < deadline:
            assert kiosk.poll() is None, kiosk.stderr.read()[-2000:]
            st = status("--json")
            st = json.loads(st.stdout) if st.returncode == 0 else None
            if st and st["frames"] > 0 and st["present"] and st["last_errors"]:
                break
            time.sleep(0.5)
        assert st and st["frames"] > 0 and st["present"], st
        for key in ("fps", "frames", "camera", "reader", "checkout", "call", "staff_clients", "last_errors",
                    "warnings_total", "errors_total", "rss_mb", "fds", "threads", "uptime_s"):
            assert key in st, (key, st)
        assert isinstance(st["fps"], (int, float)) and st["fps"] >= 0
        assert st["camera"] == "ok"
        assert st["reader"] != "ok" and "unavailable" in st["reader"].lower(), st["reader"]
        assert isinstance(st["call"], dict) and st["connected"] is False
        assert st["staff_clients"] == 0
        # the reader's warning, with its time, on one line
        assert all(isinstance(x, str) and LINE.match(x) for x in st["last_errors"]), st["last_errors"]
        assert any("NFC" in x for x in st["last_errors"]) and st["warnings_total"] >= 1
        assert len(st["last_errors"]) <= 10
        # this process's own figures, as /proc shows them from outside
        proc = _proc(kiosk.pid)
        assert 30 < st["rss_mb"] < 8000 and abs(st["rss_mb"] - proc["rss_mb"]) < 0.5 * proc["rss_mb"]
        assert 3 < st["fds"] < 2000 and abs(st["fds"] - proc["fds"]) <= 20
        assert 2 <= st["threads"] < 1000 and abs(st["threads"] - proc["threads"]) <= 20
        assert 0 < st["uptime_s"] < 3600
        later = status("--json")
        later = json.loads(later.stdout)
        assert later["uptime_s"] >= st["uptime_s"] and later["frames"] >= st["frames"]

        text = status()
        assert text.returncode == 0, text.stderr
        out = text.stdout
        for label in ("uptime", "screen", "camera", "shopper", "reader", "checkout", "call", "staff", "memory",
                      "process", "problems"):
            assert re.search(rf"^{label}\s", out, re.M), (label, out)
        assert re.search(r"^memory\s+\d+ MB resident$", out, re.M), out
        assert re.search(r"^staff\s+0 console client", out, re.M), out
        assert re.search(r"^  \d{4}-\d\d-\d\d \d\d:\d\d:\d\d WARNING .*NFC", out, re.M), out
        assert "{" not in out, "the text form prints no raw JSON"
    finally:
        kiosk.terminate()
        kiosk.wait(30)
    assert kiosk.returncode == 0, kiosk.stderr.read()[-2000:]


def test_sighup_stops_the_kiosk_cleanly_with_a_status_systemd_restarts(media, tmp_path):
    """Killed by SIGHUP (a terminal closed, `systemctl kill -s HUP`), it left its socket behind,
    said nothing, and systemd took the signal for a clean exit: no restart, a dark mirror."""
    import signal
    frames = tmp_path / "frames"
    frames.mkdir()
    cv2.imwrite(str(frames / "0001.png"), cv2.imread(str(media / "images" / "pointing_up.jpg")))
    cfg = kiosk_config(tmp_path, frames, "[call]\nenabled = false\n[staff]\nenabled = false\n"
                                         f"[checkout]\ndb_path = \"{tmp_path / 'orders.db'}\"\n")
    kiosk = start_kiosk(cfg, PCSCLITE_CSOCK_NAME=str(tmp_path / "no-pcscd.comm"))
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not (tmp_path / "control.sock").exists():
            assert kiosk.poll() is None, kiosk.stderr.read()[-2000:]
            time.sleep(0.2)
        assert (tmp_path / "control.sock").exists()
        kiosk.send_signal(signal.SIGHUP)
        assert kiosk.wait(30) == 129
    finally:
        if kiosk.poll() is None:
            kiosk.kill()
            kiosk.wait(10)
    err = kiosk.stderr.read()
    assert "Traceback" not in err and "SIGHUP: stopping" in err, err[-2000:]
    assert not (tmp_path / "control.sock").exists()
