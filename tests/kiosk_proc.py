"""A real `mirror run --headless` for tests: on an image folder, a small
screen, its control socket in the test's folder, and free ports."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

from mirror.harness.call_bench import free_port  # noqa: F401  (the tests' free port, one definition)
from mirror.harness.staff_bench import staff_only  # noqa: F401

ROOT = Path(__file__).resolve().parents[1]


def kiosk_config(folder: Path, frames: Path, sections: str = "") -> Path:
    """The config file; `sections` adds more TOML tables ([call], [nfc] ...)."""
    cfg = folder / "kiosk.toml"
    cfg.write_text(f"""
[camera]
source = "images"
path = "{frames}"
fps = 10
[display]
fullscreen = false
width = 270
height = 480
[control]
socket = "{folder / 'control.sock'}"
{sections}""")
    return cfg


def as_from_a_terminal() -> None:
    """`preexec_fn` for a child the test will signal: SIGINT and SIGHUP back to
    their defaults. A test run started in the background (`cmd &`, nohup)
    passes them on ignored, and an ignored SIGHUP is one the kiosk honours
    (`nohup mirror run` keeps running), so the tests would see no stop."""
    import signal
    for sig in (signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)


def start_kiosk(cfg: Path, **env: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "mirror", "run", "--headless", "--config", str(cfg)], cwd=ROOT,
                            env=dict(os.environ, SDL_VIDEODRIVER="dummy", **env), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, preexec_fn=as_from_a_terminal)


def stop_kiosk(proc: subprocess.Popen) -> None:
    """SIGTERM (SIGKILL after 30 s), then: it left cleanly, with no traceback on stderr."""
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)
    err = proc.stderr.read()
    assert proc.returncode == 0, err[-3000:]
    assert "Traceback" not in err, err[-3000:]


def control_line(sock: Path, msg: dict) -> dict:
    """One request on the kiosk's control socket, spoken raw (not through the CLI)."""
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(10)
    s.connect(str(sock))
    s.sendall((json.dumps(msg) + "\n").encode())
    buf = b""
    while not buf.endswith(b"\n"):
        chunk = s.recv(1 << 20)
        if not chunk:
            break
        buf += chunk
    s.close()
    return json.loads(buf)
