"""The camera side of the kiosk: capture, the vision thread, presence, and the
picture the frame loop shows.

* capture thread (`SupervisedSource`): always holds the newest camera frame
  and reopens a lost camera with backoff;
* vision thread: takes the newest frame, runs the pipeline (hands and person
  segmentation on two threads at once), turns hands into input events and
  presence changes, and publishes them on the bus;
* `picture(now)`, on the main thread: the newest vision result recoloured in
  the shopper's colour, or the live frame when vision lags. It never waits.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable

import numpy as np

from mirror.core.bus import Event, EventBus
from mirror.core.config import Config
from render.compositor import crop_box, view_transform
from vision.capture import Frame, FrameSource, SupervisedSource, source_from_config
from vision.depth import PresenceTracker, presence_from_depth
from vision.interaction import HandInput
from vision.pipeline import VisionPipeline, VisionResult, render_frame

log = logging.getLogger(__name__)

PRESENCE_MIN_FRACTION = 0.06     # share of the view a person fills to count as present (no depth)
STALE_RESULT_S = 0.25            # older vision results are not drawn as the picture itself
BUSY_REFRESH_SCALE = 3.0         # garment model rebuilt this much less often while a part needs the CPU


class CameraVision:
    def __init__(self, cfg: Config, bus: EventBus, screen_size: tuple[int, int], *,
                 source_factory: Callable[[], FrameSource] | None = None,
                 control_at: Callable[[float, float], str | None] = lambda x, y: None):
        self.cfg = cfg
        self.bus = bus
        self.screen_size = screen_size
        self.control_at = control_at
        self.source = SupervisedSource(
            source_factory or (lambda: source_from_config(cfg.camera, cfg.resolve)),
            stall_timeout=cfg.camera.stall_timeout_s, backoff_initial=cfg.camera.reconnect_initial_s,
            backoff_max=cfg.camera.reconnect_max_s,
            on_event=lambda name, msg: bus.publish(name, message=msg))
        self.pipeline = VisionPipeline(cfg.vision, cfg.depth)
        self.hand_input: HandInput | None = None
        self.presence = PresenceTracker()
        self.vision_frames = 0
        self._frame_size: tuple[int, int] | None = None
        self._latest: VisionResult | None = None
        self._recoloured: tuple = (None, None, None)        # (result, colour, picture)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._busy: set[str] = set()
        bus.subscribe("load.changed", self._on_load)

    def _on_load(self, ev: Event) -> None:
        # another part (a call's video encoder) shares the two cores with vision
        (self._busy.add if ev.data["busy"] else self._busy.discard)(ev.data["part"])
        self.pipeline.refresh_scale = BUSY_REFRESH_SCALE if self._busy else 1.0

    def start(self) -> None:
        self.source.start()
        self._thread = threading.Thread(target=self._vision_loop, name="vision", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.source.stop()
        if self._thread is not None:
            self._thread.join(timeout=3)
        self.pipeline.close()

    @property
    def ended(self) -> bool:
        """A file source that does not loop has played to its end."""
        return self.source.ended

    # --- vision thread --------------------------------------------------
    def _vision_loop(self) -> None:
        seq = 0
        lost_since: float | None = None
        while not self._stop.is_set():
            frame, new_seq = self.source.wait_newer(seq, timeout=0.25)
            if frame is None or new_seq == seq:
                if self.source.ended:
                    return
                lost_since = self._camera_lost(lost_since)
                continue
            lost_since = None
            seq = new_seq
            try:
                self.step(frame)
            except Exception:  # a bad frame must not end vision
                log.exception("vision failed on frame %d", frame.index)
                continue

    def step(self, frame: Frame) -> VisionResult:
        """One frame through vision, hand input and presence, onto the bus.
        Timing runs on the frame's own clock (`frame.ts`): capture time live,
        clip time in `mirror replay`, so holds and dwells do not depend on
        how fast the machine is."""
        res = self.pipeline.process(frame)
        now = frame.ts
        h, w = frame.image.shape[:2]
        if (w, h) != self._frame_size:        # the first frame, or a camera back at another resolution
            self._frame_size = (w, h)
            tf = view_transform((w, h), self.screen_size, self.cfg.display.mirror)
            if self.hand_input is None:
                self.hand_input = HandInput(self.cfg.gestures, to_display=tf, control_at=self.control_at)
            else:
                self.hand_input.to_display = tf
                log.info("camera frames are now %dx%d; hand-to-screen mapping rebuilt", w, h)
        for ev in self.hand_input.update(res.hands, now, res.body):
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
            self.vision_frames += 1
        return res

    def _camera_lost(self, since: float | None) -> float | None:
        """With no frames, nobody can be seen leaving: a camera lost for longer
        than session.camera_lost_grace_s ends the session as if she had left."""
        if self.source.ok:
            return None
        now = time.monotonic()
        since = now if since is None else since
        if self.presence.present and now - since >= self.cfg.session.camera_lost_grace_s:
            self.presence = PresenceTracker()
            log.warning("camera lost for %.0f s: ending the shopper's session", now - since)
            self.bus.publish("presence.changed", present=False)
        return since

    # --- main thread ----------------------------------------------------
    def latest_result(self) -> VisionResult | None:
        with self._lock:
            return self._latest

    def picture(self, color_bgr: tuple[int, int, int]) -> np.ndarray | None:
        res = self.latest_result()
        newest, _ = self.source.latest()
        if res is None:
            return newest.image if newest is not None else None
        if newest is not None and newest.ts - res.frame.ts > STALE_RESULT_S:
            return newest.image        # vision is behind: live picture, no recolour
        last_res, last_colour, _ = self._recoloured
        if res is not last_res or color_bgr != last_colour:
            # vision gives fewer results than the screen shows frames: recolour each result once
            h, w = res.frame.image.shape[:2]
            x0, _, cw, _ = crop_box((w, h), self.screen_size)
            self._recoloured = (res, color_bgr, render_frame(res, color_bgr, self.cfg.vision.feather_px,
                                                             columns=(x0, x0 + cw)))
        return self._recoloured[2]
