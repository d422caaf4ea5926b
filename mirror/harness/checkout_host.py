"""The checkout host: the kiosk's checkout path without the camera and vision.

`mirror checkout-host` runs what the kiosk runs for a tap, in one process:
the event bus, the real Session (the cart), the real CheckoutService (reader
watcher on pcscd, order journal, outbox) and the real Compositor (headless),
composing frames at the display rate exactly like the kiosk's main loop:
dispatch the bus, decorate the UiState, compose, present, on_composed.

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
import time

import numpy as np

from mirror.core.bus import Event, EventBus
from mirror.core.catalog import load_catalog
from mirror.core.config import DEMO_CLIP, Config
from mirror.core.session import Session
from render.compositor import Compositor, UiState

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
    session = Session(load_catalog(cfg.catalog_path()), dict(vars(cfg.actions)), cfg.gestures.hue_mode,
                      cfg.gestures.degrees_per_turn, cfg.catalog.product)
    d = cfg.display
    comp = Compositor(d.width, d.height, mirror=d.mirror, headless=True)
    picture = _background(comp.size)
    svc = CheckoutService(cfg, bus, cart=session.cart(), session_id=session.id)
    stop = threading.Event()

    def out(obj: dict) -> None:
        stdout.write(json.dumps(obj) + "\n")
        stdout.flush()

    def on_any(ev: Event) -> None:
        for name, data in session.handle(ev):
            bus.publish(name, **data)

    def report(ev: Event) -> None:
        data = {k: v for k, v in ev.data.items() if k != "records"}
        if ev.name == "nfc.tap":
            data["records"] = len(ev.data.get("records") or [])
        if ev.name == "bench.marker":
            data["session_id"], data["cart"] = session.id, session.cart()
        out({"ev": ev.name, **_plain(data)})

    bus.subscribe("*", on_any)
    for name in REPORTED:
        bus.subscribe(name, report)

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
                bus.publish(cmd["publish"], **(cmd.get("data") or {}))
        stop.set()

    svc.start()
    threading.Thread(target=read_commands, name="host-stdin", daemon=True).start()
    out({"ev": "ready", "session_id": session.id})
    period = 1.0 / d.fps
    t_end = None if duration is None else time.monotonic() + duration
    try:
        while not stop.is_set() and (t_end is None or time.monotonic() < t_end):
            t0 = time.monotonic()
            bus.dispatch()
            ui = UiState(color_bgr=session.color_bgr, color_name=session.color_name, product=session.product.name,
                         product_detail=f"{session.color_name} · {session.product.price}")
            svc.decorate(ui, t0)
            comp.compose(picture, ui)
            comp.present()
            svc.on_composed(comp, picture, t0)
            spare = period - (time.monotonic() - t0)
            if spare > 0:
                stop.wait(spare)
    finally:
        bus.dispatch()
        svc.stop()
        comp.close()
    return 0
