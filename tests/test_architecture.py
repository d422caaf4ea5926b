"""The seams of the house: the import contracts, the event registry, the one
frame loop, and the app's own listeners (control socket, /healthz) with every
feature switched off."""

from __future__ import annotations

import base64
import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import pytest

from mirror.app.frameloop import FrameLoop
from mirror.core.bus import EventBus
from mirror.core.events import EVENTS
from mirror.core.feature import Feature
from render.compositor import Compositor
from tests.kiosk_proc import control_line, free_port, kiosk_config, start_kiosk

ROOT = Path(__file__).resolve().parents[1]


def test_import_contracts_hold():
    r = subprocess.run([str(Path(sys.executable).with_name("lint-imports"))], cwd=ROOT, capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stdout[-3000:]
    assert "BROKEN" not in r.stdout and "Contracts: 8 kept, 0 broken" in r.stdout


def test_bus_refuses_unregistered_names_and_wrong_payloads():
    bus = EventBus()
    with pytest.raises(ValueError, match="unknown event 'gesture.fird'"):
        bus.publish("gesture.fird", gesture="fist")
    with pytest.raises(ValueError, match="presence.changed"):
        bus.publish("presence.changed", here=True)
    with pytest.raises(ValueError, match="motion.swipe"):
        bus.publish("motion.swipe")                      # direction is required
    ev = bus.publish("cursor.dwell", x=0.5, y=0.5)
    assert ev.data == {"x": 0.5, "y": 0.5, "control": None}
    assert ev.payload == EVENTS["cursor.dwell"](x=0.5, y=0.5)


class Recorder(Feature):
    def __init__(self, bus, log, z):
        self.bus, self.log, self.z = bus, log, z
        bus.subscribe("bench.marker", lambda ev: log.append(("dispatch", ev.data["id"])))

    def overlays(self):
        return [self]

    def before_frame(self, now):
        self.log.append(("before_frame", self.z))

    def draw(self, c, now):
        self.log.append(("draw", self.z))

    def on_composed(self, frame):
        self.log.append(("on_composed", self.z, frame.clean_bgr.shape))


def test_frame_loop_runs_each_part_in_order_and_draws_overlays_by_z():
    bus = EventBus()
    log: list = []
    comp = Compositor(90, 160, headless=True)
    picture = np.zeros((72, 128, 3), np.uint8)
    try:
        loop = FrameLoop(bus, comp, lambda now: picture, [Recorder(bus, log, 50), Recorder(bus, log, 10)], 30)
        bus.publish("bench.marker", id=7)
        loop.tick(time.monotonic())
    finally:
        comp.close()
    assert log == [("dispatch", 7), ("dispatch", 7), ("before_frame", 50), ("before_frame", 10),
                   ("draw", 10), ("draw", 50),
                   ("on_composed", 50, (72, 128, 3)), ("on_composed", 10, (72, 128, 3))]



def _wait(pred, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            got = pred()
            if got:
                return got
        except (OSError, subprocess.CalledProcessError, ValueError):
            pass
        time.sleep(0.2)
    raise AssertionError(f"no {what} within {timeout} s")


def test_the_app_serves_control_socket_and_healthz_with_every_feature_off(media, tmp_path):
    """The control socket and the staff listener belong to the app: they are
    there with the call and the checkout off, and the call's port is not."""
    frames = tmp_path / "frames"
    frames.mkdir()
    photo = cv2.imread(str(media / "images" / "pointing_up.jpg"))
    cv2.imwrite(str(frames / "0001.png"), photo)
    staff_port, call_port = free_port(), free_port()
    cfg = kiosk_config(tmp_path, frames, f"""
[call]
enabled = false
port = {call_port}
[nfc]
enabled = false
[checkout]
enabled = false
[staff]
port = {staff_port}
""")
    kiosk = start_kiosk(cfg)
    cli = [sys.executable, "-m", "mirror"]
    try:
        status = _wait(lambda: json.loads(subprocess.run(cli + ["status", "--json", "--config", str(cfg)],
                                                         capture_output=True, text=True, check=True).stdout),
                       60, "status from the kiosk")
        assert status["camera"] == "ok" and "fps" in status and "call" not in status
        _wait(lambda: json.loads(subprocess.run(cli + ["status", "--json", "--config", str(cfg)], capture_output=True,
                                                text=True, check=True).stdout)["present"], 30, "the person seen")
        health = _wait(lambda: json.loads(urllib.request.urlopen(f"http://127.0.0.1:{staff_port}/healthz",
                                                                 timeout=2).read()), 20, "healthz")
        assert health["ok"] is True and health["fps"] >= 0
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", call_port), timeout=1).close()
        out = tmp_path / "shot.png"
        r = subprocess.run(cli + ["snapshot", "--out", str(out), "--config", str(cfg)], capture_output=True,
                           text=True, timeout=30)
        assert r.returncode == 0, r.stderr
        img = cv2.imread(str(out))
        assert img.shape == (480, 270, 3) and img.std() > 5      # the overlays are there ...
        blank = (np.abs(img.astype(int) - (16, 12, 12)).sum(2) < 6).mean()
        assert blank > 0.3, "she is at the mirror: the camera layer must be left out of a snapshot"
        r = subprocess.run(cli + ["snapshot", "--out", str(tmp_path / "shot.txt"), "--config", str(cfg)],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 2 and r.stderr.count("\n") == 1 and ".png" in r.stderr
        reply = control_line(tmp_path / "control.sock", {"cmd": "snapshot"})
        assert base64.b64decode(reply["png_b64"])[:8] == b"\x89PNG\r\n\x1a\n" and reply["camera_blanked"] is True
    finally:
        kiosk.terminate()
        kiosk.wait(30)
    assert kiosk.returncode == 0, kiosk.stderr.read()[-2000:]
    assert not list(tmp_path.glob("*.png"))[1:], "the kiosk wrote an image of its own"



def test_a_snapshot_leaves_the_camera_out_while_she_is_there_unless_configured():
    from mirror.app.kiosk import Snapshots
    from render.compositor import ComposedFrame
    from render.overlays import BannerOverlay
    comp = Compositor(90, 160, headless=True)
    banner = BannerOverlay()
    comp.add(banner)
    camera = np.full((72, 128, 3), (40, 200, 40), np.uint8)            # a green "shopper"
    shots = {}
    try:
        for blank in (True, False):
            snaps = Snapshots(lambda blank=blank: blank)
            fut = snaps.request()
            banner.show("overlay stays", 0.0, 10.0)
            comp.compose(camera, 1.0)
            snaps.on_composed(ComposedFrame(comp, camera, 1.0))
            png, blanked = fut.result(1)
            shots[blank] = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
            assert blanked is blank
    finally:
        comp.close()
    green = lambda img: ((img[..., 1] > 150) & (img[..., 0] < 100)).mean()   # noqa: E731
    assert green(shots[False]) > 0.5                   # privacy.snapshot_camera = true: the camera is in it
    assert green(shots[True]) == 0.0                   # default while present: not a pixel of her
    assert not np.array_equal(shots[True][-10:], np.full_like(shots[True][-10:], (16, 12, 12)))  # banner kept
