"""Hand tracking with MediaPipe Hands: frames in, landmark sets out."""

from __future__ import annotations

import threading
from dataclasses import dataclass

import cv2
import numpy as np

from vision import models


@dataclass(frozen=True)
class Hand:
    # (21, 3): x and y in pixels of the analysed frame, z in the same scale
    # (MediaPipe's relative depth times the frame width).
    points: np.ndarray
    handedness: str
    score: float
    frame_size: tuple[int, int]   # (width, height) the points refer to

    def normalised(self) -> np.ndarray:
        w, h = self.frame_size
        return self.points[:, :2] / np.array([w, h], np.float32)


class HandTracker:
    """`static=True` treats every image alone (photos); False tracks across frames."""

    def __init__(self, *, static: bool = False, model: str = "lite", max_hands: int = 2,
                 min_conf: float = 0.5, width: int | None = 640):
        self._hands = models.hands(static, 0 if model == "lite" else 1, max_hands, min_conf)
        self.width = width
        self._lock = threading.Lock()
        # While no hand is up, the palm detector runs on every frame looking for
        # one: the costliest frames. `search_every` > 1 looks on every n-th frame
        # only (a hand is then found a frame or two later); once one is found,
        # every frame is tracked.
        self.search_every = 1
        self._misses = 0
        self._seen = False

    def process(self, bgr: np.ndarray) -> list[Hand]:
        if self._misses and self._misses % self.search_every:
            self._misses += 1
            return []
        hands = self._process(bgr)
        self._misses = 0 if hands else self._misses + 1
        self._seen = bool(hands)
        return hands

    @property
    def tracking(self) -> bool:
        """A hand was found on the last frame looked at: the next one tracks it
        (cheap) instead of searching with the palm detector (costly)."""
        return self._seen

    def _process(self, bgr: np.ndarray) -> list[Hand]:
        h, w = bgr.shape[:2]
        img = bgr
        # a pixel budget, not a width: a portrait camera costs what a landscape one does
        budget = self.width * self.width * 9 / 16 if self.width else 0
        if budget and w * h > budget:
            k = (budget / (w * h)) ** 0.5
            img = cv2.resize(bgr, (round(w * k), round(h * k)), interpolation=cv2.INTER_AREA)
        rgb = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
        with self._lock:
            res = self._hands.process(rgb)
        out: list[Hand] = []
        if not res.multi_hand_landmarks:
            return out
        for lms, handed in zip(res.multi_hand_landmarks, res.multi_handedness):
            pts = np.array([[p.x * w, p.y * h, p.z * w] for p in lms.landmark], np.float32)
            cls = handed.classification[0]
            out.append(Hand(pts, cls.label, float(cls.score), (w, h)))
        return out

    def close(self) -> None:
        self._hands.close()


MIN_TILED_SIDE = 96     # smaller pictures are not worth a second look in tiles


def _tiles(w: int, h: int, n: int) -> list[tuple[int, int, int, int]]:
    """An n x n grid of overlapping tiles (x, y, tw, th) covering the image."""
    tw, th = round(w * 1.5 / (n + 0.5)), round(h * 1.5 / (n + 0.5))
    xs = np.linspace(0, w - tw, n).round().astype(int)
    ys = np.linspace(0, h - th, n).round().astype(int)
    return [(int(x), int(y), tw, th) for y in ys for x in xs]


def find_hands_in_photo(tracker: HandTracker, bgr: np.ndarray, max_hands: int = 2) -> list[Hand]:
    """Hands in a single photo, small ones included.

    The palm detector sees the whole picture at 192 px, so a hand that is a
    small part of a big photo (a shopper a few metres away) is lost. When the
    whole picture shows none, look again in overlapping tiles, 2 x 2 then
    3 x 3, and map what is found back to the photo."""
    hands = tracker.process(bgr)
    h, w = bgr.shape[:2]
    if hands:
        return hands
    # A hand that fills the photo (a close crop) gives the palm detector no
    # context at its edges: look again with a border around it.
    pad = max(h, w) // 3
    framed = cv2.copyMakeBorder(bgr, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    found = tracker.process(framed)
    if found:
        out = []
        for hand in found:
            pts = hand.points.copy()
            pts[:, 0] -= pad
            pts[:, 1] -= pad
            out.append(Hand(pts, hand.handedness, hand.score, (w, h)))
        return out
    if min(h, w) < MIN_TILED_SIDE:
        return []
    for n in (2, 3):
        found: list[Hand] = []
        for x, y, tw, th in _tiles(w, h, n):
            for hand in tracker.process(bgr[y:y + th, x:x + tw]):
                pts = hand.points.copy()
                pts[:, 0] += x
                pts[:, 1] += y
                size = float(np.linalg.norm(pts[9, :2] - pts[0, :2]))
                # the same hand seen in two overlapping tiles: keep the first
                if all(np.linalg.norm(f.points[0, :2] - pts[0, :2]) > 0.5 * size for f in found):
                    found.append(Hand(pts, hand.handedness, hand.score, (w, h)))
        if found:
            return sorted(found, key=lambda f: -f.score)[:max_hands]
    return []


def hand_mask(hands: list[Hand], shape: tuple[int, int], forearm: float = 1.5) -> np.ndarray:
    """Soft mask of the tracked hands and the start of their forearms, at `shape`.

    A hand held in front of the garment must never take its colour.
    """
    h, w = shape
    mask = np.zeros((h, w), np.uint8)
    for hand in hands:
        pts = hand.normalised() * np.array([w, h], np.float32)
        wrist, knuckle = pts[0], pts[9]
        arm = wrist + (wrist - knuckle) * forearm
        hull = cv2.convexHull(np.vstack([pts, arm[None]]).astype(np.int32))
        cv2.fillConvexPoly(mask, hull, 1)
        # A thick outline grows this hand's hull by a margin, without growing
        # the hands drawn before it again.
        palm = float(np.linalg.norm(knuckle - wrist))
        cv2.polylines(mask, [hull], True, 1, max(3, int(palm * 0.35) | 1))
    return cv2.GaussianBlur(mask.astype(np.float32), (5, 5), 0)
