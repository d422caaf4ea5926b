"""The shopper's session end to end: she steps up, tries on, asks for a
friend, taps, and leaves; then her data is gone and nothing she left behind
can be bought. Driven through the real kiosk with image-folder sources in
which a person stands and then leaves (the real MediaPipe models decide)."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from call.tokens import TokenError
from mirror.app.kiosk import Kiosk
from mirror.core import config
from mirror.core.feature import Feature
from tests.kiosk_proc import free_port, kiosk_config, start_kiosk
from tests.pcsc_fixtures import member_tag
from vision.capture import Frame, FrameSource, SourceError

ROOT = Path(__file__).resolve().parents[1]



def _empty_room(shape) -> np.ndarray:
    """A wall and a floor, nobody there."""
    h, w = shape[:2]
    img = np.empty((h, w, 3), np.uint8)
    img[:] = np.linspace(150, 110, h, dtype=np.uint8)[:, None, None]
    img[int(h * 0.8):] = (70, 80, 90)
    return img


def _person(media) -> np.ndarray:
    return cv2.imread(str(media / "images" / "pointing_up.jpg"))


class Staged(FrameSource):
    """A camera whose scene moves on when the test says so, not at a fixed
    time: frames of `first` until `move_on()` holds, then of `then`, or, with
    then=None, a camera that is unplugged for good."""

    def __init__(self, first, then, move_on, fps: float = 15.0):
        self.first, self.then, self.move_on, self.fps = first, then, move_on, fps
        self.moved = False
        self._i = 0

    def open(self):
        if self.moved and self.then is None:
            raise SourceError("camera index 0 does not exist (/dev/video0 is missing)")

    def read(self) -> Frame:
        self.moved = self.moved or bool(self.move_on())
        if self.moved and self.then is None:
            raise SourceError("camera unplugged")
        time.sleep(1.0 / self.fps)
        self._i += 1
        return Frame(self.then if self.moved else self.first, time.monotonic(), self._i)


class Until(Feature):
    """Stops the kiosk once `done()` holds: a run lasts as long as the
    behaviour takes on this machine, and its duration is only a generous cap."""

    def __init__(self, kiosk, done):
        self.kiosk, self.done, self.met = kiosk, done, False

    def before_frame(self, now):
        if not self.met and self.done():
            self.met = True
            self.kiosk.stop()


class Probe(Feature):
    """Plays the shopper and the card: asks for a friend and accepts a
    suggestion once she is there, taps after she has left, and records what
    the kiosk says on the bus."""

    def __init__(self, bus, call):
        self.bus, self.call = bus, call
        self.seen: list[tuple[str, dict]] = []
        self.link = None
        for name in ("session.*", "cart.changed", "call.link", "checkout.*"):
            bus.subscribe(name, lambda ev: self.seen.append((ev.name, dict(ev.data))))
        bus.subscribe("session.started", self._started)
        bus.subscribe("session.ended", self._ended)

    def _started(self, ev):
        if self.link is None:
            self.bus.publish("call.requested", session=ev.data["id"])
            self.bus.publish("suggestion.accepted", sku="SHOE-0101", name="Block heel", size="38", price="59.00")

    def _ended(self, ev):
        self.ended_t = time.monotonic()
        self.bus.publish("nfc.tap", reader="r", uid=b"\x04\x01\x02\x03", records=[], t_present=time.monotonic())

    def before_frame(self, now):
        # the call's server learns of it on the kiosk's asyncio loop, a moment later
        if getattr(self, "ended_t", None) and now - self.ended_t > 0.5 and not hasattr(self, "after_leaving"):
            try:
                self.after_leaving = self.call.server.issue_link()
            except LookupError as e:
                self.after_leaving = str(e)

    def names(self):
        return [n for n, _ in self.seen]


def _cfg(tmp_path, **call):
    cfg = config.load(None, env={})
    cfg = cfg.replace("display", fullscreen=False, width=270, height=480)
    cfg = cfg.replace("call", port=free_port(), **call)
    cfg = cfg.replace("staff", port=free_port())
    return cfg.replace("control", socket=str(tmp_path / "control.sock"))


def test_leaving_ends_the_call_link_wipes_the_cart_and_refuses_a_later_tap(media, tmp_path):
    from call.service import CallService
    from nfc.service import CheckoutService
    person = _person(media)
    made = {}

    def call(c, bus, size):
        made["call"] = CallService(c, bus, screen_width=size[0])
        return made["call"]

    def she_had_her_turn():                  # a join link and the suggestion in her cart: then she walks away
        probe = made.get("probe")
        return probe is not None and "call.link" in probe.names() and any(
            n == "cart.changed" and len(d["cart"]["items"]) == 2 for n, d in list(probe.seen))

    k = Kiosk(_cfg(tmp_path), source_factory=lambda: Staged(person, _empty_room(person.shape), she_had_her_turn),
              headless=True,
              features=[call, lambda c, bus, size: CheckoutService(c, bus, db_path=tmp_path / "o.db", watch=False)])
    probe = made["probe"] = Probe(k.bus, made["call"])
    k.add(probe)
    until = Until(k, lambda: hasattr(probe, "after_leaving") and "checkout.refused" in probe.names())
    k.add(until)
    k.run(180.0)                              # a cap: it stops once she has left and the tap was refused
    names = probe.names()
    assert until.met, names
    assert "session.started" in names and "session.ended" in names, names
    started = next(d for n, d in probe.seen if n == "session.started")
    ended_at = names.index("session.ended")
    link = next(d for n, d in probe.seen if n == "call.link")
    assert link["url"].split("#", 1)[1]                           # she had a join link ...
    assert "nobody is at the mirror" in probe.after_leaving       # ... and no new one can be made
    room = made["call"].server.room
    assert room.session is None
    with pytest.raises(TokenError) as e:                           # her link no longer opens the call
        room.join("late-friend", link["url"].split("#", 1)[1], "Eve", time.time())
    assert e.value.reason == "ended"
    carts = [d for n, d in probe.seen[:ended_at] if n == "cart.changed"]
    assert any(len(c["cart"]["items"]) == 2 for c in carts)        # the suggestion was in her cart
    after = [d for n, d in probe.seen[ended_at:] if n == "cart.changed"]
    assert after and len(after[0]["cart"]["items"]) == 1 and after[0]["session_id"] != started["id"]
    refused = [d for n, d in probe.seen[ended_at:] if n == "checkout.refused"]
    assert refused and refused[0]["reason"] == "nobody present"
    assert "checkout.confirmed" not in names
    db = sqlite3.connect(tmp_path / "o.db")
    assert db.execute("SELECT COUNT(*) FROM orders").fetchone()[0] == 0


def test_a_camera_lost_longer_than_the_grace_ends_the_session(media, tmp_path):
    person = _person(media)
    cfg = _cfg(tmp_path).replace("session", camera_lost_grace_s=1.0)
    seen = []
    # unplugged for good once she has been seen
    camera = Staged(person, None, lambda: any(n == "session.started" for n, _ in list(seen)))
    k = Kiosk(cfg, source_factory=lambda: camera, headless=True, features=[], serve=False)
    k.bus.subscribe("session.*", lambda ev: seen.append((ev.name, time.monotonic())))
    k.bus.subscribe("camera.lost", lambda ev: seen.append((ev.name, time.monotonic())))
    until = Until(k, lambda: "session.ended" in [n for n, _ in seen])
    k.add(until)
    k.run(180.0)                              # a cap: it stops once the session has ended
    names = [n for n, _ in seen]
    assert until.met, names
    assert names[:3] == ["session.started", "camera.lost", "session.ended"], names
    assert seen[2][1] - seen[1][1] >= 1.0                          # not before the grace
    assert not k.session.present


def test_a_camera_back_at_another_resolution_gets_a_new_hand_mapping(media):
    """The hand-to-screen mapping follows the frame size: a point at the
    picture's centre maps to the screen's centre at either resolution."""
    person = _person(media)
    wide = cv2.resize(person, (1280, 720)) if person.shape[1] / person.shape[0] > 1 else \
        cv2.copyMakeBorder(person, 0, 0, 400, 400, cv2.BORDER_REPLICATE)
    small = cv2.resize(wide, (640, 480))
    cfg = config.load(None, env={}).replace("display", fullscreen=False, width=270, height=480)
    maps = []
    # the camera comes back at 640x480 once the kiosk has mapped its 1280x720 frames
    k = Kiosk(cfg, source_factory=lambda: Staged(wide, small, lambda: len(maps) >= 1), headless=True, features=[],
              serve=False)

    class Watch(Feature):
        def before_frame(self, now):
            hi = k.camera.hand_input
            if hi is not None and (not maps or maps[-1] is not hi.to_display):
                maps.append(hi.to_display)
    k.add(Watch())
    k.add(Until(k, lambda: len(maps) >= 2))
    k.run(180.0)                              # a cap: it stops once the mapping was rebuilt
    assert len(maps) >= 2
    # a point a quarter in from the left edge of the camera picture lands at
    # different screen x for 16:9 and 4:3 frames cropped to the portrait view
    assert abs(maps[0](0.4, 0.5)[0] - maps[-1](0.4, 0.5)[0]) > 0.05


def test_a_tap_after_she_left_makes_no_order_and_one_when_she_is_back(pcscd, media, tmp_path):
    """Through the real `mirror run` kiosk, a real pcscd and vpcd card: the
    person in the image folder stands, leaves, and comes back."""
    frames = tmp_path / "frames"
    frames.mkdir()
    person = _person(media)
    empty = _empty_room(person.shape)
    for i in range(90):                               # at 10 fps: 3 s there, 6 s nobody, loops
        cv2.imwrite(str(frames / f"{i:04d}.png"), person if i < 30 else empty)
    cfg = kiosk_config(tmp_path, frames, f"""
[call]
enabled = false
[staff]
enabled = false
[nfc]
reader = "Virtual PCD"
poll_s = 0.2
[checkout]
db_path = "{tmp_path / 'orders.db'}"
""")
    kiosk = start_kiosk(cfg, **pcscd.env())

    def status():
        r = subprocess.run([sys.executable, "-m", "mirror", "status", "--json", "--config", str(cfg)],
                           capture_output=True, text=True, timeout=20)
        return json.loads(r.stdout) if r.returncode == 0 else None

    def wait_present(want: bool, timeout=60.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            st = status()
            if st and st["present"] is want:
                return
            time.sleep(0.2)
        raise AssertionError(f"the kiosk never saw present={want}")

    def orders():
        db = sqlite3.connect(tmp_path / "orders.db")
        try:
            return db.execute("SELECT order_id, session_id FROM orders").fetchall()
        finally:
            db.close()

    try:
        wait_present(True)
        wait_present(False)                           # she walked away ...
        with member_tag(bytes.fromhex("04AB000000FF01"), member="M9001").insert(port=pcscd.port):
            time.sleep(1.5)                           # ... and a card is tapped: refused, no order
        assert status()["present"] is False, "she came back during the tap; the folder's timing is off"
        assert orders() == []
        wait_present(True)                            # she is back: one tap, one order
        with member_tag(bytes.fromhex("04AB000000FF01"), member="M9001").insert(port=pcscd.port):
            deadline = time.monotonic() + 10
            while not orders() and time.monotonic() < deadline:
                time.sleep(0.2)
            time.sleep(0.5)
        assert len(orders()) == 1
    finally:
        kiosk.terminate()
        kiosk.wait(30)
    assert kiosk.returncode == 0, kiosk.stderr.read()[-1500:]


class Unpluggable(FrameSource):
    """A camera the test unplugs and plugs back (the same device object)."""

    def __init__(self, img, fps: float = 15.0):
        self.img, self.fps, self.plugged, self._i = img, fps, True, 0

    def open(self):
        if not self.plugged:
            raise SourceError("camera index 0 does not exist (/dev/video0 is missing)")

    def read(self) -> Frame:
        if not self.plugged:
            raise SourceError("camera unplugged")
        time.sleep(1.0 / self.fps)
        self._i += 1
        return Frame(self.img, time.monotonic(), self._i)


def test_a_camera_taken_away_and_brought_back_is_seen_again(media, tmp_path):
    """The kiosk shows the problem while the camera is away, keeps composing,
    and takes the camera back without a restart: the bar goes, frames flow."""
    camera = Unpluggable(_person(media))
    cfg = _cfg(tmp_path).replace("session", camera_lost_grace_s=600.0)
    k = Kiosk(cfg, source_factory=lambda: camera, headless=True, features=[], serve=False)
    seen, bars = [], []
    k.bus.subscribe("camera.*", lambda ev: seen.append(ev.name))

    class Script(Feature):
        def before_frame(self, now):
            if k.camera.vision_frames > 10 and camera.plugged and not seen:
                camera.plugged = False                   # taken away ...
            elif seen == ["camera.lost"] and k.status_bar.text:
                bars.append(k.status_bar.text)
                if len(bars) > 15:
                    camera.plugged = True                # ... shown for a while, then brought back
            elif seen == ["camera.lost", "camera.restored"] and not k.status_bar.text:
                k.stop()
    k.add(Script())
    k.run(120.0)
    assert seen == ["camera.lost", "camera.restored"]
    assert bars and all(b.startswith("camera unavailable, retrying") for b in bars)
    assert not k.status_bar.text and k.camera.source.ok
