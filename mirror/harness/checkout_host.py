"""The checkout host: the kiosk's checkout path without the camera and vision.

`mirror checkout-host` runs what the kiosk runs for a tap, in one process:
the event bus, the real Session (the cart), the real CheckoutService (reader
watcher on pcscd, order journal, outbox) and the real Compositor (headless),
composing frames in the kiosk's own frame loop (mirror/app/frameloop.py)
over a still picture.

It is what `mirror bench-checkout` and the crash tests drive and kill:
* stdin: one JSON object per line, `{"publish": NAME, "data": {...}}` puts
  an event on the bus (a new shopper, a colour, a size, the cancel gesture
  ...), `{"crashpoint": NAME}` arms a crash point (mirror.storage.orders) from then
  on, `{"quit": true}` stops;
* stdout: one JSON object per line for each checkout-relevant bus event
  (`{"ev": NAME, ...data}`), plus `{"ev": "ready"}` once it runs.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading

import numpy as np

from mirror.app.frameloop import FrameLoop
from mirror.app.shopper_view import shopper_view
from mirror.core.bus import Event, EventBus
from mirror.core.config import DEMO_CLIP, Config
from mirror.core.session import Session
from render.compositor import Compositor
from render.overlays import ShopperOverlay

log = logging.getLogger(__name__)

REPORTED = ("nfc.tap", "nfc.read_failed", "nfc.removed", "nfc.status", "checkout.*", "cart.changed",
            "bench.marker", "session.*")


def _background(size: tuple[int, int]) -> np.ndarray:
    """A camera-sized picture to compose over (the demo clip's first frame)."""
    try:
        import cv2
        cap = cv2.VideoCapture(str(DEMO_CLIP))
        ok, frame = cap.read()
        cap.release()
        if ok:
            return frame
    except Exception:
        pass
    return np.full((720, 1280, 3), 70, np.uint8)


def _plain(v):
    if isinstance(v, (bytes, bytearray)):
        return bytes(v).hex()
    if isinstance(v, (str, int, float, bool)) or v is None:
        return v
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    return repr(v)


def run_host(cfg: Config, *, stdin=None, stdout=None, duration: float | None = None) -> int:
    from nfc.service import CheckoutService
    stdin = stdin or sys.stdin
    stdout = stdout or sys.stdout
    bus = EventBus()
    session = Session.from_config(cfg)
    session.attach(bus)
    d = cfg.display
    comp = Compositor(d.width, d.height, mirror=d.mirror, headless=True)
    picture = _background(comp.size)
    shopper = ShopperOverlay()
    comp.add(shopper)
    svc = CheckoutService(cfg, bus)

    def out(obj: dict) -> None:
        stdout.write(json.dumps(obj) + "\n")
        stdout.flush()

    def report(ev: Event) -> None:
        data = {k: v for k, v in ev.data.items() if k != "records"}
        if ev.name == "nfc.tap":
            data["records"] = len(ev.data.get("records") or [])
        if ev.name == "bench.marker":
            data["session_id"], data["cart"] = session.id, session.cart()
        out({"ev": ev.name, **_plain(data)})

    for name in REPORTED:
        bus.subscribe(name, report)

    def frame_picture(now: float):
        for name, data in session.tick(now):
            bus.publish(name, **data)
        shopper.view = shopper_view(session, now)
        return picture

    loop = FrameLoop(bus, comp, frame_picture, [svc], d.fps)

    def read_commands() -> None:
        for line in stdin:
            line = line.strip()
            if not line:
                continue
            try:
                cmd = json.loads(line)
            except ValueError:
                log.warning("checkout-host: ignoring %r", line[:80])
                continue
            if cmd.get("quit"):
                break
            if "crashpoint" in cmd:          # tests and the bench: arm a crash point from now on
                from mirror.storage.orders import CRASHPOINT_ENV
                os.environ[CRASHPOINT_ENV] = str(cmd["crashpoint"])
            if cmd.get("publish"):
                try:
                    bus.publish(cmd["publish"], **(cmd.get("data") or {}))
                except ValueError as e:
                    log.warning("checkout-host: %s", e)
        loop.stop()

    svc.start(None)
    for name, data in session.announce():
        bus.publish(name, **data)
    threading.Thread(target=read_commands, name="host-stdin", daemon=True).start()
    out({"ev": "ready", "session_id": session.id})
    try:
        loop.run(duration)
    finally:
        svc.stop()
        comp.close()
    return 0
