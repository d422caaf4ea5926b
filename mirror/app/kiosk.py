"""The kiosk: the one place that wires the parts together.

It builds the bus, the shopper's session, the compositor with the kiosk's own
overlays, the camera side (`camera.py`), the features the config turns on
(the friend call, the checkout), the asyncio thread with the control socket
and the web host, and runs the one frame loop (`frameloop.py`) over them.
Features never see each other or this class: they get the bus and the config.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import logging
import signal
import threading
import time
from concurrent.futures import Future
from typing import Callable

from mirror.app.aio import AsyncThread
from mirror.app.camera import CameraVision
from mirror.app.catalog_source import kiosk_catalog
from mirror.app.control import AnotherKiosk, ControlServer, socket_path
from mirror.app.frameloop import FrameLoop
from mirror.app.push_probe import PushProbe
from mirror.app import health
from mirror.app.shopper_view import shopper_view
from mirror.core.actions import ACTIONS
from mirror.core.bus import Event, EventBus
from mirror.core.config import Config
from mirror.core.controls import control_at
from mirror.core.feature import Feature
from mirror.core.session import Session
from mirror.web.host import Listener, WebHost
from render.compositor import Compositor
from render.overlays import (DebugOverlay, MessageOverlay, ShopperOverlay, StatusOverlay, SuggestionsOverlay,
                             SuggestionsView)
from vision import models
from vision.capture import FrameSource

log = logging.getLogger(__name__)

PUBLIC_WS_MAX_BYTES = 64 * 1024     # the join side's messages are small; bigger ones close the socket
FeatureFactory = Callable[[Config, EventBus, tuple[int, int]], Feature]


def default_features(cfg: Config) -> list[FeatureFactory]:
    """The features the config turns on."""
    out: list[FeatureFactory] = []
    if cfg.call.enabled:
        from call.service import CallService
        out.append(lambda c, bus, size: CallService(c, bus, screen_width=size[0]))
    if cfg.checkout.enabled:
        from nfc.service import CheckoutService
        out.append(lambda c, bus, size: CheckoutService(c, bus))
    if cfg.staff.enabled:
        from mirror.staff.service import StaffFeature
        out.append(lambda c, bus, size: StaffFeature(c, bus))
    return out


class Snapshots(Feature):
    """Hands the next composed picture, as PNG bytes, to whoever asked (the
    control socket's `snapshot`). Nothing is written to disk here. While
    someone is at the mirror the camera layer is left out (overlays on a
    blank background) unless `privacy.snapshot_camera` is set; every snapshot
    is logged. It runs last in the frame, so no other part sees the blanked
    picture, and the blanked picture is never presented."""
    name = "snapshots"

    def __init__(self, blank_camera):
        self.blank_camera = blank_camera
        self._waiting: list[Future] = []

    def request(self) -> Future:
        fut: Future = Future()
        self._waiting.append(fut)
        return fut

    def on_composed(self, frame) -> None:
        if not self._waiting:
            return
        waiting, self._waiting = self._waiting, []
        blank = self.blank_camera()
        if blank:
            frame.comp.compose(None, frame.t)
        png = frame.png()
        log.info("snapshot of the composed frame taken over the control socket (camera layer %s)",
                 "blanked: someone is at the mirror" if blank else "included")
        for fut in waiting:
            fut.set_result((png, blank))


class Kiosk:
    def __init__(self, cfg: Config, *, source_factory: Callable[[], FrameSource] | None = None,
                 headless: bool | None = None, features: list[FeatureFactory] | None = None,
                 addons: list[Feature] | None = None, serve: bool = True):
        """`features`: factories for the features (default: those the config
        turns on). `addons`: extra frame-loop parts (demo timeline, recorder).
        `serve=False`: no control socket (the offline demo)."""
        models.check_bundled()
        self.cfg = cfg
        self.serve = serve
        self.errors = health.install_error_log()     # the last warnings/errors, for `mirror status`
        self.bus = EventBus()
        self.session = Session.from_config(cfg, kiosk_catalog(cfg))
        self.session.attach(self.bus)
        d = cfg.display
        self.comp = Compositor(d.width, d.height, mirror=d.mirror, fullscreen=d.fullscreen, headless=headless)
        self.camera = CameraVision(cfg, self.bus, self.comp.size, source_factory=source_factory,
                                   control_at=self._control_at)
        self.shopper, self.messages = ShopperOverlay(), MessageOverlay()
        self.status_bar, self.debug = StatusOverlay(), DebugOverlay()
        self.suggestions = SuggestionsOverlay()      # staff's suggestions carousel, the shopper's own view
        for overlay in (self.shopper, self.suggestions, self.messages, self.status_bar, self.debug):
            self.comp.add(overlay)
        self.push_probe = PushProbe(self.bus, lambda: self.suggestions.drawn)
        self.snapshots = Snapshots(lambda: self.session.present and not cfg.privacy.snapshot_camera)
        self.features = [make(cfg, self.bus, self.comp.size)
                         for make in (default_features(cfg) if features is None else features)]
        self.addons = list(addons or [])
        self.loop = FrameLoop(self.bus, self.comp, self._picture,
                              [*self.features, *self.addons, self.push_probe, self.snapshots], d.fps,
                              on_key=self._on_key, finished=self._finished)
        self.aio = AsyncThread("kiosk-aio")
        self.control: ControlServer | None = None
        self.web: list[WebHost] = []
        self.actions: collections.deque[str] = collections.deque(maxlen=1000)
        self.camera_lost = 0
        self.bus.subscribe("action.done", self._on_action)
        self.bus.subscribe("camera.lost", self._on_camera_lost)
        self.bus.subscribe("load.changed", self._on_load)
        self.bus.subscribe("cart.changed", self._on_cart)

    # --- bus --------------------------------------------------------------
    def _on_cart(self, ev: Event) -> None:
        # the garment she tries on says which part of her clothing is recoloured (the catalogue's part)
        part = self.session.product.part
        if part != self.camera.pipeline.part:
            self.camera.pipeline.set_part(part)
            log.info("recolouring her %s garment (%s)", part, self.session.product.sku)

    def _on_action(self, ev: Event) -> None:
        self.actions.append(ev.data["action"])
        log.info("action %s (from %s)", ev.data["action"], ev.data.get("source"))

    def _on_load(self, ev: Event) -> None:
        if not ev.data["busy"]:         # a call's codecs are gone: give their freed heap back
            t0 = time.monotonic()
            released = health.trim_heap()
            log.info("heap trimmed after %s (%s, %.0f ms)", ev.data["part"],
                     "memory released" if released == 1 else "nothing to release", (time.monotonic() - t0) * 1000)

    def _on_camera_lost(self, ev: Event) -> None:
        self.camera_lost += 1

    def _on_key(self, key: str) -> None:
        if key == "d":
            self.bus.publish("action.requested", action="toggle_debug", source="keyboard")

    def _control_at(self, x: float, y: float) -> str | None:
        # called on the vision thread; controls() only reads plain session fields
        ctl = control_at(self.session.controls(), x, y)
        return ctl.id if ctl is not None else None

    def _finished(self) -> bool:
        timeline_left = any(not getattr(a, "done", True) for a in self.addons)
        return self.camera.ended and not timeline_left

    # --- per frame (main thread) --------------------------------------------
    def _picture(self, now: float):
        self._refresh_views(now)
        return self.camera.picture(self.session.color_bgr)

    def _refresh_views(self, now: float) -> None:
        s = self.session
        for name, data in s.tick(now):
            self.bus.publish(name, **data)
        self.shopper.view = shopper_view(s, now, self.camera.hand_input)
        carousel = s.carousel()
        self.suggestions.view = SuggestionsView(**carousel) if carousel else None
        self.messages.message, self.messages.message_t = s.message, s.message_t
        idle = s.present and now - s.last_activity_t > self.cfg.display.idle_hint_s and now - s.message_t > 3
        self.messages.hint = "Draw a circle with one finger to change the colour" if idle else ""
        src = self.camera.source
        self.status_bar.text = "" if src.ok else (src.problem or "camera unavailable, retrying")
        self.debug.lines = self._debug_lines() if s.debug else []

    def _debug_lines(self) -> list[str]:
        st = self.loop.stats
        hi = self.camera.hand_input
        elapsed = max(1e-6, time.monotonic() - st.started)
        lines = [f"render {st.fps:.1f} fps  vision {self.camera.vision_frames / elapsed:.1f} fps"]
        res = self.camera.latest_result()
        if res is not None:
            lines.append("  ".join(f"{k} {v:.0f}ms" for k, v in res.timings.items()))
            lines.append(f"hands {len(res.hands)}  person {res.presence:.2f}")
        if hi is not None:
            lines.append(f"gesture {hi.classification.gesture} {hi.classification.score:.2f}")
        return lines

    def gesture_name(self) -> str:
        hi = self.camera.hand_input
        return hi.classification.gesture if hi else "none"

    # --- control socket (asyncio thread) ---------------------------------------
    def _commands(self) -> dict:
        cmds = {"status": self._cmd_status, "action": self._cmd_action, "snapshot": self._cmd_snapshot}
        for f in self.features:
            cmds.update(f.commands())
        return cmds

    async def _cmd_status(self, req: dict) -> dict:
        """`mirror status`: the kiosk's health. `reader` ("ok" or the problem)
        and `call` come from their features and are absent when those are off;
        `staff_clients` from the staff console's status (0 until it runs)."""
        st = self.loop.stats
        out = {"ok": True, "present": self.session.present, "fps": round(st.fps, 1), "frames": st.frames,
               "camera": "ok" if self.camera.source.ok else (self.camera.source.problem or "lost")}
        for f in self.features:
            try:
                out.update(f.status())
            except Exception as e:      # read while the main thread changes it: the rest still answers
                out[f.name] = f"status unavailable ({e.__class__.__name__})"
        if "reader" in out:
            out["reader"] = out["reader"] or "ok"
        out.setdefault("staff_clients", 0)
        errors = health.install_error_log()
        out.update(health.process_health())
        out.update(last_errors=errors.recent(), warnings_total=errors.counts["warnings"],
                   errors_total=errors.counts["errors"])
        return out

    async def _cmd_action(self, req: dict) -> dict:
        """Press an action as the shopper's gesture would (store tools, tests)."""
        action = req.get("action")
        if action not in ACTIONS:
            return {"ok": False, "error": f"unknown action {action!r}; expected one of {', '.join(ACTIONS)}"}
        self.bus.publish("action.requested", action=action, source=str(req.get("source", "control")))
        return {"ok": True}

    async def _cmd_snapshot(self, req: dict) -> dict:
        png, blanked = await asyncio.wait_for(asyncio.wrap_future(self.snapshots.request()), 5)
        return {"ok": True, "png_b64": base64.b64encode(png).decode("ascii"), "camera_blanked": blanked}

    # --- lifecycle ---------------------------------------------------------------
    def _start(self) -> None:
        self.aio.start()
        if self.serve:
            self.control = ControlServer(socket_path(self.cfg), self._commands(),
                                         group=self.cfg.control.group)
            try:
                self.aio.run(self.control.start())
            except AnotherKiosk:
                self.aio.stop()
                raise
            except Exception as e:          # the kiosk runs on without its control socket
                log.error("control socket unavailable: %s (check control.socket)", e)
                self.control = None
        for part in self.features + self.addons:
            part.start(self.aio.loop)
        if self.serve:
            self._start_web()
        # the features learn the first shopper's cart the way they learn every later one
        for name, data in self.session.announce():
            self.bus.publish(name, **data)
        self.camera.start()

    def _listeners(self) -> list[Listener]:
        """What the config says may listen: the public join side when a feature
        serves it, and the store-LAN staff side."""
        routes: dict[str, list] = {}
        for f in self.features:
            for side, router in f.routes().items():
                routes.setdefault(side, []).append(router)
        c, st = self.cfg.call, self.cfg.staff
        out = []
        if routes.get("public"):
            out.append(Listener("public", c.host, c.port, tls_cert=str(self.cfg.resolve(c.tls_cert)) if c.tls_cert
                                else "", tls_key=str(self.cfg.resolve(c.tls_key)) if c.tls_key else "",
                                routers=routes["public"], ws_max_size=PUBLIC_WS_MAX_BYTES))
        if st.enabled:
            out.append(Listener("staff", st.host, st.port, tls_cert=str(self.cfg.resolve(st.tls_cert)) if st.tls_cert
                                else "", tls_key=str(self.cfg.resolve(st.tls_key)) if st.tls_key else "",
                                routers=routes.get("staff", [])))
        return out

    def _start_web(self) -> None:
        # one host per listener: a taken staff port must not take the join page down with it
        for listener in self._listeners():
            host = WebHost([listener], health=self._health)
            try:
                self.aio.run(host.start(), timeout=15)
            except Exception as e:
                log.error("web listener %s unavailable: %s (check its host and port in the config)",
                          listener.name, e)
                self.bus.publish("web.unavailable", listener=listener.name, message=str(e))
                continue
            self.web.append(host)

    def _health(self) -> dict:
        st = self.loop.stats
        fresh = time.monotonic() - st.last_frame_t < 5.0 if st.frames else False
        return {"ok": fresh, "fps": round(st.fps, 1)}

    def _stop(self) -> None:
        for part in reversed(self.features + self.addons):
            try:
                part.stop()
            except Exception:
                log.exception("stopping %s failed", type(part).__name__)
        for host in self.web:
            try:
                self.aio.run(host.stop())
            except Exception:
                log.exception("stopping the web host failed")
        if self.control is not None:
            try:
                self.aio.run(self.control.stop())
            except Exception:
                log.exception("stopping the control socket failed")
        self.aio.stop()
        self.camera.stop()
        self.comp.close()

    def run(self, duration: float | None = None) -> dict:
        self._start()
        try:
            stats = self.loop.run(duration)
        finally:
            self._stop()
        total = time.monotonic() - stats.started
        return {"frames": stats.frames, "vision_frames": self.camera.vision_frames, "actions": list(self.actions),
                "camera_lost": self.camera_lost, "seconds": round(total, 2),
                "mean_fps": round(stats.frames / max(total, 1e-6), 1), "render_p95_ms": stats.p95_ms()}

    def add(self, addon: Feature) -> None:
        """An extra frame-loop part (before `run`): the demo's timeline, a recorder."""
        self.addons.append(addon)
        self.loop.add(addon, before=self.snapshots)

    def stop(self) -> None:
        self.loop.stop()


EXIT_HUNG_UP = 129


def run_kiosk(cfg: Config, *, headless: bool = False, duration: float | None = None,
              stopping: threading.Event | None = None) -> int:
    """Run until the duration ends or SIGTERM (systemd's stop). `stopping` may
    already be set by a SIGTERM that came while the program was starting.
    Under systemd (`NOTIFY_SOCKET`) the Appliance add-on reports readiness,
    pings the watchdog from the frame loop and says STOPPING=1 on SIGTERM."""
    from mirror.app.appliance import Appliance, kiosk_facts, model_errors_in_one_line
    from mirror.app.logs import reconfigure
    reconfigure(journal=cfg.logging.journal, level=cfg.logging.level)
    stopping = stopping or threading.Event()
    built: list[Kiosk] = []
    appliance = Appliance(status=lambda: kiosk_facts(built[0]) if built else {})

    hung_up: list[bool] = []

    def on_term(*_):
        stopping.set()
        appliance.stopping()            # before the slow shutdown work
        if built:
            built[0].stop()

    def on_hup(*_):
        # The terminal went away, or `systemctl kill -s HUP`: there is no config
        # reload, so stop cleanly and exit 129 (128 + SIGHUP), which systemd's
        # Restart=on-failure answers with a fresh start; dying of the signal
        # itself counts as a clean exit there and left the mirror dark.
        if not hung_up:
            hung_up.append(True)
            log.warning("SIGHUP: stopping; under systemd the kiosk starts again")
        on_term()
    signal.signal(signal.SIGTERM, on_term)
    if signal.getsignal(signal.SIGHUP) is not signal.SIG_IGN:     # `nohup mirror run` keeps running
        signal.signal(signal.SIGHUP, on_hup)
    # Threads started while the models load (MediaPipe's own among them) inherit a
    # mask that keeps SIGTERM and SIGHUP away from them; they are handled on the main thread.
    old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGHUP})
    try:
        # a model that cannot load: one line and exit 2 (cli.main), not a traceback
        with model_errors_in_one_line():
            kiosk = Kiosk(cfg, headless=True if headless else None)
        built.append(kiosk)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
    kiosk.add(appliance)
    if stopping.is_set():
        appliance.stopping()
        kiosk.stop()
    log.info("kiosk starting with camera source %s", cfg.camera.source)
    stats = kiosk.run(duration)
    log.info("kiosk stopped after %.1f s, %d frames", stats["seconds"], stats["frames"])
    return EXIT_HUNG_UP if hung_up else 0
