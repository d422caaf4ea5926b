"""The kiosk under systemd: sd_notify readiness, watchdog, status and stopping
(mirror/app/appliance.py), model failures at start, and journal logging
(mirror/app/logs.py).

The notify test runs the real `mirror run --headless` with NOTIFY_SOCKET
pointing at a datagram socket bound here, as systemd would, and reads what
arrives with the kernel's receive timestamps and the sender's credentials."""

from __future__ import annotations

import array
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from mirror.app.appliance import Appliance, health_line, watchdog_interval
from tests.kiosk_proc import free_port, kiosk_config

ROOT = Path(__file__).resolve().parents[1]
WATCHDOG_USEC = 2_000_000
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)     # Linux; the cmsg type is the same number


def _kiosk_config(tmp: Path, media: Path) -> Path:
    frames = tmp / "frames"
    frames.mkdir()
    shutil.copy(media / "images" / "pointing_up.jpg", frames / "0001.jpg")
    return kiosk_config(tmp, frames, f"""
[call]
enabled = false
port = {free_port()}
[nfc]
enabled = false
[checkout]
enabled = false
[staff]
port = {free_port()}
""")


class NotifyListener:
    """What systemd's notify socket receives: (kernel receive time, sender pid, message)."""

    def __init__(self, path: Path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        self.sock.settimeout(0.2)
        self.messages: list[tuple[float, int, str]] = []
        self._cond = threading.Condition()
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop:
            try:
                data, anc, _, _ = self.sock.recvmsg(4096, 1024)
            except (TimeoutError, socket.timeout):
                continue
            except OSError:
                return
            t, pid = time.time(), -1
            for level, kind, payload in anc:
                if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                    sec, nsec = struct.unpack("qq", payload[:16])
                    t = sec + nsec / 1e9
                elif level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                    pid = array.array("i", payload[:12])[0]
            with self._cond:
                for line in data.decode().splitlines():
                    self.messages.append((t, pid, line))
                self._cond.notify_all()

    def wait_for(self, line: str, timeout: float) -> tuple[float, int, str]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for m in self.messages:
                    if m[2] == line:
                        return m
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no {line!r} within {timeout} s; got {[m[2] for m in self.messages]}")
                self._cond.wait(left)

    def close(self) -> None:
        self._stop = True
        self._thread.join(2)
        self.sock.close()


def test_mirror_run_under_a_notify_socket_reports_ready_watchdog_status_and_stopping(media, tmp_path):
    short = Path(tempfile.mkdtemp(prefix="notify-"))            # AF_UNIX paths are short
    listener = NotifyListener(short / "notify.sock")
    env = {k: v for k, v in os.environ.items() if k not in ("INVOCATION_ID", "JOURNAL_STREAM", "WATCHDOG_PID")}
    env.update(SDL_VIDEODRIVER="dummy", NOTIFY_SOCKET=str(listener.path), WATCHDOG_USEC=str(WATCHDOG_USEC))
    cfg = _kiosk_config(tmp_path, media)
    kiosk = subprocess.Popen([sys.executable, "-m", "mirror", "run", "--headless", "--config", str(cfg)],
                             cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
    try:
        t_ready, pid, _ = listener.wait_for("READY=1", 180)
        assert pid == kiosk.pid, "READY=1 must come from the main process (NotifyAccess=main)"
        time.sleep(7)                                   # several watchdog periods and one status period
        kiosk.send_signal(signal.SIGTERM)
        t_stopping, pid, _ = listener.wait_for("STOPPING=1", 30)
        assert pid == kiosk.pid
        kiosk.wait(60)
    finally:
        if kiosk.poll() is None:
            kiosk.kill()
            kiosk.wait()
        listener.close()
        shutil.rmtree(short, ignore_errors=True)
    err = kiosk.stderr.read()
    assert kiosk.returncode == 0, err[-2000:]

    msgs = listener.messages
    pings = [t for t, p, m in msgs if m == "WATCHDOG=1" and t_ready <= t <= t_stopping]
    assert len(pings) >= 4, msgs
    assert all(p == kiosk.pid for t, p, m in msgs)
    # systemd's contract: a ping within every WatchdogSec (WATCHDOG_USEC), counted from READY=1
    gaps = [b - a for a, b in zip([t_ready, *pings], [*pings, t_stopping])]
    assert max(gaps) < WATCHDOG_USEC / 1e6, gaps
    # and at most one ping per half period (the add-on's own rate limit, on its monotonic clock)
    assert len(pings) <= (pings[-1] - t_ready) / (WATCHDOG_USEC / 2e6) + 1, gaps
    statuses = [m for t, p, m in msgs if m.startswith("STATUS=") and m != "STATUS=stopping"]
    assert len(statuses) >= 2, msgs                     # with READY=1, then about every 5 s
    assert all(s.startswith("STATUS=serving ") and "camera" in s and "\n" not in s for s in statuses), statuses
    assert "Traceback" not in err


def test_no_watchdog_ping_once_frames_stop_being_composed():
    clock = [100.0]
    sent: list[str] = []
    env = {"NOTIFY_SOCKET": "/run/systemd/notify", "WATCHDOG_USEC": "2000000"}
    a = Appliance(status=lambda: {"fps": 29.4, "camera": "ok", "reader": "", "connected": True},
                  environ=env, clock=lambda: clock[0], send=sent.append)

    def frames(until: float, step: float = 1 / 30):
        while clock[0] < until:
            a.before_frame(clock[0])
            a.on_composed(None)
            clock[0] += step

    frames(101.0)
    assert sent[0] == "READY=1\nSTATUS=serving 29 fps · camera ok · reader ok · friend connected"
    frames(106.0)
    pings = [m for m in sent if m == "WATCHDOG=1"]
    assert 4 <= len(pings) <= 5                          # every second: half of the 2 s WatchdogSec
    assert sum("STATUS=serving" in m for m in sent) == 2          # with READY=1, then 5 s later
    # the render loop hangs: no on_composed, hence no ping however long it lasts
    before = len(sent)
    for _ in range(100):
        clock[0] += 0.5
        a.before_frame(clock[0])
    assert sent[before:] == []
    # it resumes: the very next frame pings (more than half a period has passed)
    frames(clock[0] + 0.01)
    assert "WATCHDOG=1" in sent[before:before + 2]
    a.stopping()
    a.stop()
    assert sent[-1] == "STOPPING=1\nSTATUS=stopping" and sent.count("STOPPING=1\nSTATUS=stopping") == 1
    frames(clock[0] + 3)
    assert sent[-1] == "STOPPING=1\nSTATUS=stopping"      # nothing after STOPPING=1


def test_nothing_is_sent_without_notify_socket_and_watchdog_follows_its_env():
    sent: list[str] = []
    a = Appliance(status=dict, environ={"WATCHDOG_USEC": "2000000"}, send=sent.append)
    a.on_composed(None)
    a.stop()
    assert sent == [] and not a.enabled
    assert watchdog_interval({"WATCHDOG_USEC": "10000000"}) == 5.0
    assert watchdog_interval({"WATCHDOG_USEC": "10000000", "WATCHDOG_PID": str(os.getpid())}) == 5.0
    assert watchdog_interval({"WATCHDOG_USEC": "10000000", "WATCHDOG_PID": "1"}) is None
    assert watchdog_interval({}) is None and watchdog_interval({"WATCHDOG_USEC": "x"}) is None
    # a status callable that breaks gives a status line, never an exception in the frame loop
    sent.clear()

    def broken() -> dict:
        raise RuntimeError("boom")
    b = Appliance(status=broken, environ={"NOTIFY_SOCKET": "/x"}, send=sent.append)
    b.on_composed(None)
    assert sent == ["READY=1\nSTATUS=serving · status unavailable (RuntimeError)"]
    assert health_line({"fps": 24.6, "camera": "camera unavailable, retrying", "reader": "NFC reader unavailable",
                        "checkout": "confirmed", "connected": False, "knocking": "Jane"}) == (
        "serving 25 fps · camera: camera unavailable, retrying · reader: NFC reader unavailable · "
        "checkout confirmed · friend knocking")


BROKEN_MODEL = """
import sys
import vision.models as m
from google.protobuf import text_format
from mediapipe.framework import calculator_pb2
from mediapipe.python.solution_base import SolutionBase

def broken(*a, **k):   # a real MediaPipe failure: a graph naming a calculator it does not have
    cfg = text_format.Parse('input_stream: "image" output_stream: "out" '
                            'node {{ calculator: "NoSuchCalculator" input_stream: "image" output_stream: "out" }}',
                            calculator_pb2.CalculatorGraphConfig())
    return SolutionBase(graph_config=cfg, outputs=["out"])

which = {which!r}
if which == "bundled":
    m._REQUIRED.append("modules/no_such_model.tflite")
else:
    setattr(m, which, broken)
from mirror.app.cli import main
sys.exit(main(["run", "--headless", "--config", {cfg!r}]))
"""


@pytest.mark.parametrize("which", ["bundled", "selfie_segmentation", "pose"])
def test_a_model_that_fails_to_load_at_start_is_one_line_and_exit_2(media, tmp_path, which):
    """The bundled-model check (ModelError), MediaPipe's RuntimeError on the main
    thread, and the same on the pipeline's worker thread (pose)."""
    cfg = _kiosk_config(tmp_path, media)
    r = subprocess.run([sys.executable, "-c", BROKEN_MODEL.format(which=which, cfg=str(cfg))], cwd=ROOT,
                       env=dict(os.environ, SDL_VIDEODRIVER="dummy"), stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=180)
    assert r.returncode == 2, r.stderr[-3000:]
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("mirror: error: "), r.stderr[-3000:]
    assert ("lacks bundled models" if which == "bundled" else "NoSuchCalculator") in r.stderr


JOURNAL_PROBE = """
import json, logging, os, socket
os.makedirs("/run/systemd/journal", exist_ok=True)
sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
sock.bind("/run/systemd/journal/socket")
sock.settimeout(5)
os.environ["INVOCATION_ID"] = "0123456789abcdef0123456789abcdef"
from mirror.app.logs import setup_logging
from systemd.journal import JournalHandler
setup_logging(verbose=False, journal=True)
handlers = [type(h).__name__ for h in logging.getLogger().handlers]
logging.getLogger("nfc.service").info("order %s confirmed", "7F3A", extra={"order_id": "7F3A", "latency_ms": 41})
entry = {}
for line in sock.recv(65536).decode().splitlines():
    key, _, value = line.partition("=")
    entry[key] = value
print(json.dumps({"handlers": handlers, "entry": entry}))
"""


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare"), reason="needs root for a mount namespace")
def test_log_records_reach_the_journal_socket_with_fields(tmp_path):
    """Under systemd the records go through systemd-python's JournalHandler: a
    private /run (mount namespace) holds a journal socket this probe reads."""
    r = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                        'mount -t tmpfs tmpfs /run && exec "$0" -c "$1"', sys.executable, JOURNAL_PROBE],
                       cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr[-2000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert "JournalHandler" in out["handlers"]
    e = out["entry"]
    assert e["MESSAGE"] == "order 7F3A confirmed" and e["PRIORITY"] == "6"
    assert e["SYSLOG_IDENTIFIER"] == "smart-mirror" and e["LOGGER"] == "nfc.service"
    assert e["ORDER_ID"] == "7F3A" and e["LATENCY_MS"] == "41"
    assert all(k == k.upper() for k in e), e          # only valid journal field names are sent


def test_outside_systemd_logs_are_plain_lines_on_stderr(monkeypatch):
    import logging

    from mirror.app import logs
    monkeypatch.delenv("INVOCATION_ID", raising=False)
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    monkeypatch.setattr(logs, "JOURNAL_SOCKET", "/nonexistent/journal/socket")
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    try:
        logs.setup_logging(verbose=False, journal=True)
        assert [type(h).__name__ for h in root.handlers] == ["StreamHandler"]
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
