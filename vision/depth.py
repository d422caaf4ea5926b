"""Depth helpers: cut the mask behind the person, and tell who is present."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


def cut_behind(mask: np.ndarray, depth_mm: np.ndarray, cut_beyond_m: float) -> np.ndarray:
    """Zero `mask` wherever depth is more than `cut_beyond_m` behind the person.

    The person's distance is the median valid depth under the confident part of
    the mask. Pixels with no depth reading (0) are kept: sensors drop out on
    dark fabric and hair, which must not punch holes in the garment.
    """
    if depth_mm.shape[:2] != mask.shape[:2]:
        depth_mm = cv2.resize(depth_mm, (mask.shape[1], mask.shape[0]), interpolation=cv2.INTER_NEAREST)
    core = (mask > (0.5 if mask.dtype != np.uint8 else 127)) & (depth_mm > 0)
    if core.sum() < 50:
        return mask
    person_mm = float(np.median(depth_mm[core]))
    far = depth_mm > person_mm + cut_beyond_m * 1000.0
    out = mask.copy()
    out[far] = 0
    return out


@dataclass(frozen=True)
class Presence:
    present: bool
    distance_m: float | None


def presence_from_depth(depth_mm: np.ndarray, max_m: float, min_fraction: float) -> Presence:
    d = depth_mm[::4, ::4]
    valid = d > 0
    near = valid & (d < max_m * 1000.0)
    frac = near.sum() / max(1, d.size)
    dist = float(np.median(d[near])) / 1000.0 if near.any() else None
    return Presence(bool(frac >= min_fraction), dist)


class PresenceTracker:
    """Debounces per-frame presence into arrive/leave transitions (pure)."""

    def __init__(self, arrive_s: float = 0.5, leave_s: float = 2.0):
        self.arrive_s, self.leave_s = arrive_s, leave_s
        self.present = False
        self._since: float | None = None

    def update(self, seen: bool, t: float) -> str | None:
        """Returns 'arrived', 'left' or None."""
        if seen == self.present:
            self._since = None
            return None
        if self._since is None:
            self._since = t
        if t - self._since >= (self.arrive_s if seen else self.leave_s):
            self.present = seen
            self._since = None
            return "arrived" if seen else "left"
        return None
