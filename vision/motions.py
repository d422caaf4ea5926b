"""Hand motions from fingertip and palm tracks: circle, swipe and dwell. Pure code.

Coordinates are normalised to the *displayed* (mirrored) view, x right and
y down, so "clockwise" is clockwise as the shopper sees it on the mirror.
Positive circle angles are clockwise.
"""

from __future__ import annotations

import collections
import math
from dataclasses import dataclass


@dataclass(frozen=True)
class CircleUpdate:
    delta_deg: float     # signed change since the last update, + = clockwise
    total_deg: float     # signed angle since this circling began
    center: tuple[float, float]
    radius: float


class CircleTracker:
    """Turns a fingertip track into a continuous signed angle.

    The centre is the mean of the last `window_s` of points; the angle swept
    about it is accumulated. Circling is announced only once the sweep passes
    `start_deg` in one direction with a radius of at least `min_radius`, so
    jitter and straight moves never turn the colour. A gap in the track
    (`gap_s`) ends the circling.
    """

    def __init__(self, min_radius: float = 0.04, window_s: float = 1.2, start_deg: float = 120.0,
                 gap_s: float = 0.4):
        self.min_radius, self.window_s, self.start_deg, self.gap_s = min_radius, window_s, start_deg, gap_s
        self._pts: collections.deque[tuple[float, float, float]] = collections.deque()
        self._prev_angle: float | None = None
        self._sweep = 0.0
        self.active = False
        self.total = 0.0

    def reset(self) -> None:
        self._pts.clear()
        self._prev_angle = None
        self._sweep = 0.0
        self.active = False
        self.total = 0.0

    def update(self, x: float, y: float, t: float) -> CircleUpdate | None:
        if self._pts and t - self._pts[-1][2] > self.gap_s:
            self.reset()
        self._pts.append((x, y, t))
        while self._pts and t - self._pts[0][2] > self.window_s:
            self._pts.popleft()
        if len(self._pts) < 4:
            return None
        cx = sum(p[0] for p in self._pts) / len(self._pts)
        cy = sum(p[1] for p in self._pts) / len(self._pts)
        radius = sum(math.hypot(p[0] - cx, p[1] - cy) for p in self._pts) / len(self._pts)
        if radius < self.min_radius or math.hypot(x - cx, y - cy) < 0.4 * self.min_radius:
            self._prev_angle = None
            if radius < self.min_radius * 0.5:
                self._sweep = 0.0
                self.active = False
            return None
        angle = math.degrees(math.atan2(y - cy, x - cx))
        if self._prev_angle is None:
            self._prev_angle = angle
            return None
        delta = (angle - self._prev_angle + 180.0) % 360.0 - 180.0
        self._prev_angle = angle
        if not self.active:
            # Sweep must build up in one direction; a reversal starts over.
            if self._sweep and (delta > 0) != (self._sweep > 0):
                self._sweep = 0.0
            self._sweep += delta
            if abs(self._sweep) < self.start_deg:
                return None
            self.active = True
            delta = self._sweep
            self.total = 0.0
        self.total += delta
        return CircleUpdate(delta, self.total, (cx, cy), radius)


@dataclass(frozen=True)
class Swipe:
    direction: str    # "left" or "right", as the shopper sees it
    distance: float


class SwipeDetector:
    """A fast, mostly horizontal move of the palm across `min_distance` of the view."""

    def __init__(self, min_distance: float = 0.25, max_s: float = 0.6, cooldown_s: float = 0.8):
        self.min_distance, self.max_s, self.cooldown_s = min_distance, max_s, cooldown_s
        self._pts: collections.deque[tuple[float, float, float]] = collections.deque()
        self._quiet_until = -1e9

    def reset(self) -> None:
        self._pts.clear()

    def update(self, x: float, y: float, t: float) -> Swipe | None:
        self._pts.append((x, y, t))
        while self._pts and t - self._pts[0][2] > self.max_s:
            self._pts.popleft()
        if t < self._quiet_until or len(self._pts) < 3:
            return None
        x0, y0, _ = self._pts[0]
        dx, dy = x - x0, y - y0
        # The path must be nearly straight: its length close to the displacement.
        path = sum(math.hypot(b[0] - a[0], b[1] - a[1]) for a, b in zip(self._pts, list(self._pts)[1:]))
        if abs(dx) >= self.min_distance and abs(dy) < 0.5 * abs(dx) and path < 1.4 * abs(dx):
            self._pts.clear()
            self._quiet_until = t + self.cooldown_s
            return Swipe("right" if dx > 0 else "left", abs(dx))
        return None


class DwellDetector:
    """A cursor held within `radius` for `dwell_s` presses what lies beneath it."""

    def __init__(self, dwell_s: float = 1.2, radius: float = 0.03):
        self.dwell_s, self.radius = dwell_s, radius
        self._anchor: tuple[float, float, float] | None = None
        self._fired = False

    def reset(self) -> None:
        self._anchor = None
        self._fired = False

    def update(self, x: float, y: float, t: float) -> tuple[float, bool]:
        """Returns (progress 0..1, pressed now)."""
        if self._anchor is None or math.hypot(x - self._anchor[0], y - self._anchor[1]) > self.radius:
            self._anchor = (x, y, t)
            self._fired = False
            return 0.0, False
        progress = min(1.0, (t - self._anchor[2]) / self.dwell_s)
        if progress >= 1.0 and not self._fired:
            self._fired = True
            return 1.0, True
        return (0.0 if self._fired else progress), False
