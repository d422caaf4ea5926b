"""The kiosk loop: capture, vision, session and render, on their own threads.

* capture thread (`SupervisedSource`): always holds the newest camera frame and
  reopens a lost camera with backoff;
* vision thread: takes the newest frame, runs the pipeline (hands and person
  segmentation on two threads at once), turns hands into input events and
  publishes them;
* main thread: dispatches the bus into the session, then recolours and
  composes the newest vision result at the display rate. It never waits for
  vision: when vision lags it shows the newest camera frame with the last matte.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Protocol

import cv2
import numpy as np

from mirror.core.bus import Event, EventBus
from mirror.core.catalog import load_catalog
from mirror.core.config import Config
from mirror.core.controls import control_at
from vision.pipeline import VisionPipeline, VisionResult, render_frame
from mirror.core.session import Session
from render.compositor import Compositor, UiState, crop_box, view_transform
from vision import models
from vision.capture import FrameSource, SupervisedSource, source_from_config
from vision.depth import PresenceTracker, presence_from_depth
from vision.interaction import HandInput

log = logging.getLogger(__name__)

PRESENCE_MIN_FRACTION = 0.06     # share of the view a person fills to count as present (no depth)
STALE_RESULT_S = 0.25            # older vision results are not drawn as the picture itself


class Service(Protocol):
    """A part plugged into the kiosk (the friend call, NFC checkout ...).

    It talks to the rest only through the bus it was built with. The kiosk
    starts it before the first frame, asks it to add its overlays to each
    frame's UiState (main thread, must be quick), hands it each composed
    frame, and stops it on the way out.
    """

    def start(self) -> None: ...
    def stop(self) -> None: ...
    def decorate(self, ui: UiState, now: float) -> None: ...
    def on_composed(self, comp: Compositor, clean_bgr, now: float) -> None: ...


@dataclass
class TimelineItem:
    at: float                        # seconds after start
    event: str
    data: dict = field(default_factory=dict)
    banner: str = ""                 # shown while the scripted event plays
    screenshot: str = ""             # file name to save just after it


class Kiosk:
    def __init__(self, cfg: Config, *, source_factory: Callable[[], FrameSource] | None = None,
                 headless: bool | None = None, timeline: list[TimelineItem] | None = None,
                 out_dir: Path | None = None, record: bool = False, live_stats: bool = False,
                 services: list[Callable[["Kiosk"], Service]] | None = None):
        models.check_bundled()
        self.cfg = cfg
        self.bus = EventBus()
        catalog = load_catalog(cfg.catalog_path())
        self.session = Session(catalog, dict(vars(cfg.actions)), cfg.gestures.hue_mode,
                               cfg.gestures.degrees_per_turn, cfg.catalog.product)
        self.session.debug = cfg.display.show_fps
        self.session.controls_on = cfg.display.controls
        d = cfg.display
        self.comp = Compositor(d.width, d.height, mirror=d.mirror, fullscreen=d.fullscreen, headless=headless)
        self.source = SupervisedSource(
            source_factory or (lambda: source_from_config(cfg.camera, cfg.resolve)),
            stall_timeout=cfg.camera.stall_timeout_s, backoff_initial=cfg.camera.reconnect_initial_s,
            backoff_max=cfg.camera.reconnect_max_s,
            on_event=lambda name, msg: self.bus.publish(name, message=msg))
        self.pipeline = VisionPipeline(cfg.vision, cfg.depth)
        self.hand_input: HandInput | None = None
        self.presence = PresenceTracker()
        self.timeline = sorted(timeline or [], key=lambda i: i.at)
        self.out_dir = out_dir
        self.record = record
        self.live_stats = live_stats
        self._latest: VisionResult | None = None
        self._recoloured: tuple = (None, None, None)        # (result, colour, picture)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._banner = ""
        self._banner_until = 0.0
        self.stats = {"frames": 0, "vision_frames": 0, "actions": [], "screenshots": [], "camera_lost": 0}
        self.bus.subscribe("*", self._on_event)
        # Built last: a service may subscribe to the bus and read cfg/session.
        self.services: list[Service] = [make(self) for make in services or []]

    # --- bus ----------------------------------------------------------
    def _on_event(self, ev: Event) -> None:
        if ev.name == "camera.lost":
            self.stats["camera_lost"] += 1
        if ev.name in ("call.connected", "call.ended"):
            # the call's video encoder shares the two cores with vision
            self.pipeline.refresh_scale = 3.0 if ev.name == "call.connected" else 1.0
        if ev.name == "action.done":
            self.stats["actions"].append(ev.data["action"])
            log.info("action %s (from %s)", ev.data["action"], ev.data.get("source"))
        for name, data in self.session.handle(ev):
            self.bus.publish(name, **data)

    # --- vision thread --------------------------------------------------
    def _vision_loop(self) -> None:
        seq = 0
        while not self._stop.is_set():
            frame, new_seq = self.source.wait_newer(seq, timeout=0.25)
            if frame is None or new_seq == seq:
                if self.source.ended:
                    return
                continue
            seq = new_seq
            try:
                res = self.pipeline.process(frame)
            except Exception:  # a bad frame must not end vision
                log.exception("vision failed on frame %d", frame.index)
                continue
            now = time.monotonic()
            if self.hand_input is None:
                h, w = frame.image.shape[:2]
                tf = view_transform((w, h), self.comp.size, self.cfg.display.mirror)
                self.hand_input = HandInput(self.cfg.gestures, to_display=tf, control_at=self._control_at)
            for ev in self.hand_input.update(res.hands, now):
                self.bus.publish(ev.name, **ev.data)
            if frame.depth is not None and self.cfg.depth.enabled:
                seen = presence_from_depth(frame.depth, self.cfg.depth.presence_max_m,
                                           self.cfg.depth.presence_min_fraction).present
            else:
                seen = res.presence >= PRESENCE_MIN_FRACTION or bool(res.hands)
            change = self.presence.update(seen, now)
            if change:
                self.bus.publish("presence.changed", present=change == "arrived")
            with self._lock:
                self._latest = res
                self.stats["vision_frames"] += 1

    def _control_at(self, x: float, y: float) -> str | None:
        # called on the vision thread; controls() only reads plain session fields
        ctl = control_at(self.session.controls(), x, y)
        return ctl.id if ctl is not None else None

    # --- main thread ----------------------------------------------------
    def ui_state(self, now: float) -> UiState:
        s = self.session
        p = s.product
        ui = UiState(color_bgr=s.color_bgr, color_name=s.color_name, ring_hue=s.ring_hue,
                     ring_active=now < s.circling_until,
                     message=s.message, message_age=now - s.message_t,
                     product=p.name, product_detail=f"{s.color_name} · {p.price} · sizes {'/'.join(p.sizes)}")
        hi = self.hand_input
        if hi is not None and hi.cursor is not None:
            ui.cursor, ui.cursor_progress = hi.cursor, hi.cursor_progress
        # a button lights up only under a hand that can press it (not a thumbs-up)
        aimed = hi.target if hi is not None and hi.cursor is not None else None
        ui.controls = [(c.label, c.rect, c.id == aimed, ui.cursor_progress if c.id == aimed else 0.0)
                       for c in s.controls()]
        if not self.source.ok:
            ui.status = self.source.problem or "camera unavailable, retrying"
        if s.present and now - s.last_activity_t > self.cfg.display.idle_hint_s and now - s.message_t > 3:
            ui.hint = "Draw a circle with one finger to change the colour"
        if now < self._banner_until:
            ui.banner = self._banner
        if s.debug:
            ui.debug_lines = self._debug_lines()
        for svc in self.services:
            svc.decorate(ui, now)
        return ui

    def _debug_lines(self) -> list[str]:
        st = self.stats
        hi = self.hand_input
        lines = [f"render {st.get('fps', 0):.1f} fps  vision {st.get('vision_fps', 0):.1f} fps"]
        with self._lock:
            res = self._latest
        if res is not None:
            lines.append("  ".join(f"{k} {v:.0f}ms" for k, v in res.timings.items()))
            lines.append(f"hands {len(res.hands)}  person {res.presence:.2f}")
        if hi is not None:
            lines.append(f"gesture {hi.classification.gesture} {hi.classification.score:.2f}")
        return lines

    def _pick_picture(self, now: float):
        with self._lock:
            res = self._latest
        newest, _ = self.source.latest()
        if res is None:
            return newest.image if newest is not None else None
        if newest is not None and newest.ts - res.frame.ts > STALE_RESULT_S:
            return newest.image        # vision is behind: live picture, no recolour
        last_res, last_colour, _ = self._recoloured
        if res is not last_res or self.session.color_bgr != last_colour:
            # vision gives fewer results than the screen shows frames: recolour each result once
            h, w = res.frame.image.shape[:2]
            x0, _, cw, _ = crop_box((w, h), self.comp.size)
            self._recoloured = (res, self.session.color_bgr,
                                render_frame(res, self.session.color_bgr, self.cfg.vision.feather_px,
                                             columns=(x0, x0 + cw)))
        return self._recoloured[2]

    def _run_timeline(self, elapsed: float, now: float) -> None:
        while self.timeline and self.timeline[0].at <= elapsed:
            item = self.timeline.pop(0)
            if item.banner:
                self._banner, self._banner_until = item.banner, now + 2.5
            if item.event:
                self.bus.publish(item.event, **item.data)
            if item.screenshot:
                self._pending_shot = item.screenshot

    def run(self, duration: float | None = None) -> dict:
        for svc in self.services:
            svc.start()
        self.source.start()
        vision = threading.Thread(target=self._vision_loop, name="vision", daemon=True)
        vision.start()
        writer = None
        self._pending_shot = ""
        period = 1.0 / self.cfg.display.fps
        t_start = time.monotonic()
        last_stats_t, frames_at, vision_at = t_start, 0, 0
        frame_times: list[float] = []
        try:
            while not self._stop.is_set():
                t0 = time.monotonic()
                elapsed = t0 - t_start
                if duration is not None and elapsed >= duration:
                    break
                if self.source.ended and not self.timeline:
                    break
                self._run_timeline(elapsed, t0)
                self.bus.dispatch()
                for key in self.comp.poll_keys():
                    if key == "quit":
                        self._stop.set()
                    elif key == "d":
                        self.bus.publish("action.requested", action="toggle_debug", source="keyboard")
                picture = self._pick_picture(t0)
                self.comp.compose(picture, self.ui_state(t0))
                self.comp.present()
                for svc in self.services:
                    svc.on_composed(self.comp, picture, t0)
                self.stats["frames"] += 1
                frame_times.append((time.monotonic() - t0) * 1000)
                if self.out_dir is not None:
                    if self.record and self.stats["frames"] % 2 == 0:
                        snap = self.comp.snapshot()
                        small = cv2.resize(cv2.cvtColor(snap, cv2.COLOR_RGB2BGR), (snap.shape[1] // 2 // 2 * 2,
                                                                                  snap.shape[0] // 2 // 2 * 2))
                        if writer is None:
                            writer = cv2.VideoWriter(str(self.out_dir / "demo.mp4"), cv2.VideoWriter_fourcc(*"mp4v"),
                                                     self.cfg.display.fps / 2, (small.shape[1], small.shape[0]))
                        writer.write(small)
                    if self._pending_shot:
                        path = self.out_dir / self._pending_shot
                        self.comp.save(path)
                        self.stats["screenshots"].append(str(path))
                        self._pending_shot = ""
                now = time.monotonic()
                if now - last_stats_t >= 1.0:
                    self.stats["fps"] = (self.stats["frames"] - frames_at) / (now - last_stats_t)
                    self.stats["vision_fps"] = (self.stats["vision_frames"] - vision_at) / (now - last_stats_t)
                    frames_at, vision_at, last_stats_t = self.stats["frames"], self.stats["vision_frames"], now
                    if self.live_stats:
                        hi = self.hand_input
                        g = hi.classification.gesture if hi else "none"
                        print(f"t={now - t_start:5.1f}s  render {self.stats['fps']:4.1f} fps  "
                              f"vision {self.stats['vision_fps']:4.1f} fps  gesture {g:<11}  "
                              f"colour {self.session.color_name:<12} actions {len(self.stats['actions'])}"
                              + ("" if self.source.ok else "  [camera unavailable, retrying]"), flush=True)
                spare = period - (time.monotonic() - t0)
                if spare > 0:
                    self._stop.wait(spare)
        finally:
            self._stop.set()
            self.bus.dispatch()
            for svc in reversed(self.services):
                try:
                    svc.stop()
                except Exception:
                    log.exception("stopping %s failed", type(svc).__name__)
            self.source.stop()
            vision.join(timeout=3)
            self.pipeline.close()
            if writer is not None:
                writer.release()
            self.comp.close()
        total = time.monotonic() - t_start
        self.stats["seconds"] = round(total, 2)
        self.stats["mean_fps"] = round(self.stats["frames"] / max(total, 1e-6), 1)
        self.stats["render_p95_ms"] = round(float(np.percentile(frame_times, 95)), 1) if frame_times else 0.0
        return self.stats

    def stop(self) -> None:
        self._stop.set()


def kiosk_services(cfg: Config) -> list[Callable[[Kiosk], Service]]:
    """The services the config turns on."""
    services: list[Callable[[Kiosk], Service]] = []
    if cfg.call.enabled:
        from call.service import CallService
        services.append(CallService)
    if cfg.checkout.enabled:
        from nfc.service import checkout_service
        services.append(checkout_service)
    return services


def run_kiosk(cfg: Config, *, headless: bool = False, duration: float | None = None,
              stopping: threading.Event | None = None) -> int:
    """Run until the duration ends or SIGTERM (systemd's stop). `stopping` may
    already be set by a SIGTERM that came while the program was starting."""
    stopping = stopping or threading.Event()
    built: list[Kiosk] = []

    def on_term(*_):
        stopping.set()
        if built:
            built[0].stop()
    signal.signal(signal.SIGTERM, on_term)
    # Threads started while the models load (MediaPipe's own among them) inherit a
    # mask that keeps SIGTERM away from them; it is handled on the main thread.
    old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    try:
        kiosk = Kiosk(cfg, headless=True if headless else None, services=kiosk_services(cfg))
        built.append(kiosk)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
    if stopping.is_set():
        kiosk.stop()
    log.info("kiosk starting with camera source %s", cfg.camera.source)
    stats = kiosk.run(duration)
    log.info("kiosk stopped after %.1f s, %d frames", stats["seconds"], stats["frames"])
    return 0
