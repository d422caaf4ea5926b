"""Optional parts of the frame loop that are not features: the demo's
scripted timeline with its banner and screenshots, the mp4 recording, and
live stats on stdout. Each is a `Feature`, so the loop treats them alike."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import cv2

from mirror.core.bus import EventBus
from mirror.core.feature import Feature
from render.overlays import BannerOverlay


@dataclass
class TimelineItem:
    at: float                        # seconds after the first frame
    event: str
    data: dict = field(default_factory=dict)
    banner: str = ""                 # shown while the scripted event plays
    screenshot: str = ""             # file name to save just after it


class Timeline(Feature):
    """Publishes scripted events on the bus at their time, says so on the
    banner, and saves the screenshots the script asks for into `out_dir`."""
    name = "timeline"

    def __init__(self, bus: EventBus, items: list[TimelineItem], out_dir: Path | None = None):
        self.bus = bus
        self.items = sorted(items, key=lambda i: i.at)
        self.out_dir = out_dir
        self.banner = BannerOverlay()
        self.screenshots: list[str] = []
        self._t0: float | None = None
        self._shot = ""

    @property
    def done(self) -> bool:
        return not self.items

    def overlays(self):
        return [self.banner]

    def before_frame(self, now: float) -> None:
        if self._t0 is None:
            self._t0 = now
        while self.items and self.items[0].at <= now - self._t0:
            item = self.items.pop(0)
            if item.banner:
                self.banner.show(item.banner, now)
            if item.event:
                self.bus.publish(item.event, **item.data)
            if item.screenshot:
                self._shot = item.screenshot

    def on_composed(self, frame) -> None:
        if self._shot and self.out_dir is not None:
            path = self.out_dir / self._shot
            frame.comp.save(path)
            self.screenshots.append(str(path))
        self._shot = ""


class Recorder(Feature):
    """Every second composed frame, at half size, into an mp4."""
    name = "recorder"

    def __init__(self, path: Path, fps: float):
        self.path = path
        self.fps = fps
        self._writer: cv2.VideoWriter | None = None
        self._n = 0

    def on_composed(self, frame) -> None:
        self._n += 1
        if self._n % 2:
            return
        snap = frame.comp.snapshot()
        h, w = snap.shape[0] // 2 // 2 * 2, snap.shape[1] // 2 // 2 * 2
        small = cv2.resize(cv2.cvtColor(snap, cv2.COLOR_RGB2BGR), (w, h))
        if self._writer is None:
            self._writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*"mp4v"), self.fps / 2, (w, h))
        self._writer.write(small)

    def stop(self) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None


class LiveStats(Feature):
    """One line of stats on stdout each second (the demo)."""
    name = "live-stats"

    def __init__(self, line: Callable[[float], str]):
        self.line = line
        self._t0: float | None = None
        self._last = 0.0

    def on_composed(self, frame) -> None:
        now = time.monotonic()
        if self._t0 is None:
            self._t0 = self._last = now
        if now - self._last >= 1.0:
            self._last = now
            print(self.line(now - self._t0), flush=True)
