"""The one frame loop, shared by the kiosk, the demo and the checkout host.

Each frame: dispatch the bus → each part's `before_frame` (refresh its
overlay's view) → compose (camera picture, then the overlays) → present →
each part's `on_composed`. Parts are `mirror.core.feature.Feature`s: the
features the config turns on and the app's add-ons (recording, the demo
timeline, live stats). The loop never waits on vision: `picture(now)` returns
whatever is newest.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from typing import Callable, Iterable

import numpy as np

from mirror.core.bus import EventBus
from mirror.core.feature import Feature
from render.compositor import ComposedFrame, Compositor

log = logging.getLogger(__name__)


class FrameStats:
    """Frames composed, the rate over the last second, and recent frame costs
    (bounded: the kiosk runs for months)."""

    def __init__(self):
        self.frames = 0
        self.fps = 0.0
        self.started = time.monotonic()
        self.last_frame_t = 0.0
        self.frame_ms: collections.deque[float] = collections.deque(maxlen=3000)
        self._window_t = self.started
        self._window_frames = 0

    def count(self, t0: float, t1: float) -> None:
        self.frames += 1
        self.last_frame_t = t1
        self.frame_ms.append((t1 - t0) * 1000.0)
        if t1 - self._window_t >= 1.0:
            self.fps = (self.frames - self._window_frames) / (t1 - self._window_t)
            self._window_t, self._window_frames = t1, self.frames

    def p95_ms(self) -> float:
        return round(float(np.percentile(self.frame_ms, 95)), 1) if self.frame_ms else 0.0


class FrameLoop:
    def __init__(self, bus: EventBus, comp: Compositor, picture: Callable[[float], np.ndarray | None],
                 parts: Iterable[Feature], fps: int, *, on_key: Callable[[str], None] | None = None,
                 finished: Callable[[], bool] | None = None):
        self.bus = bus
        self.comp = comp
        self.picture = picture
        self.parts: list[Feature] = []
        self.period = 1.0 / fps
        self.on_key = on_key
        self.finished = finished or (lambda: False)
        self.stats = FrameStats()
        self._stop = threading.Event()
        for part in parts:
            self.add(part)

    def add(self, part: Feature, before: Feature | None = None) -> None:
        if before is not None and before in self.parts:
            self.parts.insert(self.parts.index(before), part)
        else:
            self.parts.append(part)
        for overlay in part.overlays():
            self.comp.add(overlay)

    def stop(self) -> None:
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def tick(self, now: float) -> ComposedFrame:
        self.bus.dispatch()
        for key in self.comp.poll_keys():
            if key == "quit":
                self._stop.set()
            elif self.on_key is not None:
                self.on_key(key)
        for part in self.parts:
            part.before_frame(now)
        picture = self.picture(now)
        self.comp.compose(picture, now)
        self.comp.present()
        frame = ComposedFrame(self.comp, picture, now)
        for part in self.parts:
            part.on_composed(frame)
        return frame

    def run(self, duration: float | None = None) -> FrameStats:
        """Compose frames at the display rate until `duration` passes, `stop()`
        is called or `finished()` says so."""
        t_start = time.monotonic()
        self.stats = FrameStats()
        try:
            while not self._stop.is_set():
                t0 = time.monotonic()
                if duration is not None and t0 - t_start >= duration:
                    break
                if self.finished():
                    break
                self.tick(t0)
                t1 = time.monotonic()
                self.stats.count(t0, t1)
                spare = self.period - (t1 - t0)
                if spare > 0:
                    self._stop.wait(spare)
        finally:
            self._stop.set()
            self.bus.dispatch()
        return self.stats
