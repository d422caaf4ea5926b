"""Discrete hand gestures from 21 hand landmarks. Pure code: no I/O, no models.

Each finger gets an extension value in [0, 1] from its joint bend and how far
its tip reaches from the wrist. Each gesture is a fuzzy rule over those values
(every finger must be clearly extended or clearly curled), so a hand shape
outside the vocabulary, such as index+pinky or thumb+pinky or a half-open hand,
satisfies no rule and comes out as `none`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

VOCABULARY = ("open_palm", "fist", "pointing_up", "thumbs_up", "thumbs_down", "victory", "pinch")

WRIST = 0
THUMB = (1, 2, 3, 4)
FINGERS = {"index": (5, 6, 7, 8), "middle": (9, 10, 11, 12), "ring": (13, 14, 15, 16), "pinky": (17, 18, 19, 20)}


def _clamp01(x: float) -> float:
    return float(min(1.0, max(0.0, x)))


def _angle(u: np.ndarray, v: np.ndarray) -> float:
    """Angle in degrees between two vectors."""
    nu, nv = np.linalg.norm(u), np.linalg.norm(v)
    if nu < 1e-6 or nv < 1e-6:
        return 0.0
    return float(np.degrees(np.arccos(np.clip(np.dot(u, v) / (nu * nv), -1.0, 1.0))))


@dataclass(frozen=True)
class HandShape:
    """Per-finger extension in [0, 1] and a few directions, all from landmarks."""
    index: float
    middle: float
    ring: float
    pinky: float
    thumb: float
    thumb_up: float        # +1 thumb points straight up in the image, -1 straight down
    index_up: float        # same for the index finger
    pinch: float           # 1 when thumb and index tips touch
    palm: float            # palm size in the landmark units
    middle_up: float = 0.0  # as index_up, for the middle finger
    thumb_aside: float = 1.0  # 1 when the thumb tip is out beside the index, 0 when folded over the palm
    v_gap: float = 2.0     # index-to-middle fingertip gap over their knuckles' gap: about 1 when together
    palm_up: float = 1.0   # +1 when the palm (wrist to middle knuckle) points straight up, -1 down
    tip_gap: float = 1.0   # thumb tip to index tip, in palm lengths


def finger_extension(p: np.ndarray, idx: tuple[int, int, int, int]) -> float:
    mcp, pip, dip, tip = (p[i] for i in idx)
    bend = _angle(pip - mcp, dip - pip) + _angle(dip - pip, tip - dip)
    e_bend = _clamp01((130.0 - bend) / 90.0)
    reach = np.linalg.norm(tip - p[WRIST]) / max(1e-6, np.linalg.norm(pip - p[WRIST]))
    e_reach = _clamp01((reach - 0.95) / 0.35)
    return 0.5 * (e_bend + e_reach)


def thumb_extension(p: np.ndarray, palm: float) -> float:
    cmc, mcp, ip, tip = (p[i] for i in THUMB)
    bend = _angle(mcp - cmc, ip - mcp) + _angle(ip - mcp, tip - ip)
    e_bend = _clamp01((100.0 - bend) / 70.0)
    # A tucked thumb lies across the index finger's base.
    away = np.linalg.norm(tip[:2] - p[5][:2]) / palm
    e_away = _clamp01((away - 0.35) / 0.4)
    return 0.5 * (e_bend + e_away)


def measure(points: np.ndarray) -> HandShape:
    """`points`: (21, 3) landmarks with x, y (and z) in the same units, y down."""
    p = np.asarray(points, np.float32)
    if p.shape[1] == 2:
        p = np.concatenate([p, np.zeros((21, 1), np.float32)], 1)
    palm = float(np.linalg.norm(p[9][:2] - p[WRIST][:2])) or 1e-6
    ext = {name: finger_extension(p, idx) for name, idx in FINGERS.items()}
    t_dir = p[4][:2] - p[2][:2]
    i_dir = p[8][:2] - p[5][:2]
    m_dir = p[12][:2] - p[9][:2]
    thumb_up = float(-t_dir[1] / (np.linalg.norm(t_dir) + 1e-6))
    index_up = float(-i_dir[1] / (np.linalg.norm(i_dir) + 1e-6))
    gap = np.linalg.norm(p[4][:2] - p[8][:2]) / palm
    middle_up = float(-m_dir[1] / (np.linalg.norm(m_dir) + 1e-6))
    # Where the thumb tip lies along the knuckle line, from the index knuckle
    # (0) to the pinky's (1): an outstretched thumb is beyond the index (below
    # -0.5 on the tune photos), a folded one over the palm (above 0).
    knuckles = p[17][:2] - p[5][:2]
    along = float(np.dot(p[4][:2] - p[5][:2], knuckles) / max(1e-6, float(np.dot(knuckles, knuckles))))
    v_gap = np.linalg.norm(p[8][:2] - p[12][:2]) / max(1e-6, float(np.linalg.norm(p[5][:2] - p[9][:2])))
    palm_dir = p[9][:2] - p[WRIST][:2]
    palm_up = float(-palm_dir[1] / (np.linalg.norm(palm_dir) + 1e-6))
    return HandShape(ext["index"], ext["middle"], ext["ring"], ext["pinky"],
                     thumb_extension(p, palm), thumb_up, index_up, _clamp01((0.3 - gap) / 0.15), palm, middle_up,
                     _clamp01((-along - 0.15) / 0.3), float(v_gap), palm_up, float(gap))


def _ext(e: float) -> float:
    return _clamp01((e - 0.45) / 0.3)


def _cur(e: float) -> float:
    return _clamp01((0.5 - e) / 0.3)


def scores(s: HandShape, strict: bool = False) -> dict[str, float]:
    """The membership of each vocabulary gesture, in [0, 1]. `strict`: see `classify`."""
    fingers = (s.index, s.middle, s.ring, s.pinky)
    four_curled = min(_cur(f) for f in fingers)
    # A thumbs-up held toward the camera foreshortens the fist: one finger may
    # read half-curled. Three clearly curled and none extended is enough.
    curls = sorted(_cur(f) for f in fingers)
    fist_behind_thumb = min(curls[1], min(1.0 - _ext(f) for f in fingers))
    thumb_out = _clamp01((s.thumb - 0.3) / 0.3)
    up = _clamp01((s.thumb_up - 0.5) / 0.3)
    down = _clamp01((-s.thumb_up - 0.5) / 0.3)
    thumb_in = 1.0 - s.thumb_aside
    return {
        # All five out. Strict: the thumb out beside the palm (folded over it,
        # the hand shows four) and the fingers up, not hanging at her side.
        "open_palm": min(_ext(s.index), _ext(s.middle), _ext(s.ring), _ext(s.pinky), _clamp01(s.thumb / 0.5),
                         *((s.thumb_aside, _clamp01((s.palm_up - 0.12) / 0.3)) if strict else ())),
        # A thumb sticking out sideways from curled fingers is no fist (hands clasped while talking).
        "fist": min(four_curled, _cur(s.thumb) if abs(s.thumb_up) > 0.5 else _clamp01((0.8 - s.thumb) / 0.2)),
        # The thumb out beside a raised index is an L, not pointing.
        "pointing_up": min(_ext(s.index), _cur(s.middle), _cur(s.ring), _cur(s.pinky),
                           _clamp01((s.index_up - 0.5) / 0.3), 1.0 - s.pinch, thumb_in),
        # The thumb's tip clear of the index's: on it, the hand is a flat O
        # (a thumbs-up seen end-on comes down to a quarter of a palm).
        "thumbs_up": min(fist_behind_thumb, thumb_out, up, _clamp01((s.tip_gap - 0.1) / 0.12)),
        "thumbs_down": min(fist_behind_thumb, thumb_out, down, _clamp01((s.tip_gap - 0.1) / 0.12)),
        # Two fingers up, not down (an inverted V), spread apart (tune photos:
        # a V's tips are 1.8+ knuckle gaps apart, "two up" and crossed fingers
        # 1.0 or less), and the thumb folded: with it out the hand shows three.
        "victory": min(_ext(s.index), _ext(s.middle), _cur(s.ring), _cur(s.pinky), 1.0 - s.pinch,
                       _clamp01((s.index_up - 0.2) / 0.3), _clamp01((s.middle_up - 0.2) / 0.3),
                       _clamp01((s.v_gap - 1.2) / 0.3), thumb_in),
        # Thumb and index tips touch while the index is not folded into the
        # palm, and the other fingers are clearly closed: with them up it is
        # an OK sign, half open it is a relaxed hand with the thumb on the index.
        "pinch": min(s.pinch, _clamp01((s.index - 0.15) / 0.25), _cur(s.middle), _cur(s.ring), _cur(s.pinky)),
    }


@dataclass(frozen=True)
class Classification:
    gesture: str
    score: float


def classify(points: np.ndarray, min_score: float = 0.6, strict: bool = False) -> Classification:
    """`strict=True` for a still photo, where the shape alone must tell: an
    open palm is then raised, with its thumb out. The kiosk judges a hand at
    rest from her pose and the hold (vision/engagement.py), and keeps the
    lenient palm, which also takes one offered with the thumb along the index."""
    sc = scores(measure(points), strict)
    name = max(sc, key=sc.get)
    best = sc[name]
    runner_up = max(v for k, v in sc.items() if k != name)
    if best < min_score or best - runner_up < 0.1:
        return Classification("none", round(1.0 - best, 3))
    return Classification(name, round(best, 3))


def best_of(classifications: list[Classification]) -> Classification:
    """For several hands: the most confident action gesture, else none."""
    actions = [c for c in classifications if c.gesture != "none"]
    if actions:
        return max(actions, key=lambda c: c.score)
    if classifications:
        return max(classifications, key=lambda c: c.score)
    return Classification("none", 1.0)


MIN_PHOTO_PALM_PX = 20.0   # wrist to middle knuckle; smaller hands are too coarse to read (tune photos: 0 of 4 right)


def photo_gesture(hands: list[np.ndarray]) -> Classification:
    """The gesture of a still photo from its hands' landmarks (pixels), judged
    strictly; hands too small to read (someone far back) are left out."""
    readable = [p for p in hands if float(np.linalg.norm(p[9, :2] - p[0, :2])) >= MIN_PHOTO_PALM_PX]
    return best_of([classify(p, strict=True) for p in readable])


class GestureFilter:
    """Temporal hysteresis: a gesture fires after holding `hold_frames` frames
    and `hold_s` seconds (a deliberate hold, whatever the frame rate); then
    nothing fires for `cooldown_s`, and the same gesture fires again only after
    the hand has let go of it."""

    def __init__(self, hold_frames: int = 4, cooldown_s: float = 1.0, min_score: float = 0.6, hold_s: float = 0.0):
        self.hold_frames, self.cooldown_s, self.min_score, self.hold_s = hold_frames, cooldown_s, min_score, hold_s
        self._current = "none"
        self._count = 0
        self._since = 0.0
        self._t = 0.0
        self._cooldown_until = -1e9
        self._last_fired: str | None = None
        self._released = 0

    def update(self, c: Classification, t: float, moving: bool = False) -> str | None:
        """`moving`: the hand is travelling (a swipe, a circle, reaching).
        Nothing fires then and the hold starts over, but a gesture carried
        through the movement is not a release: it will not fire again."""
        name = c.gesture if c.score >= self.min_score else "none"
        self._t = t
        if moving:
            self._current, self._count = name, 0
            if name == self._last_fired:
                self._released = 0
            return None
        if name != self._current or self._count == 0:
            self._current, self._count, self._since = name, 0, t
        self._count += 1
        # Re-arm only after the hand has clearly let go, not on a one-frame dropout.
        self._released = self._released + 1 if name != self._last_fired else 0
        if self._released >= self.hold_frames:
            self._last_fired = None
        if name == "none" or name == self._last_fired or t < self._cooldown_until:
            return None
        if self._count >= self.hold_frames and t - self._since >= self.hold_s - 1e-9:
            self._last_fired = name
            self._cooldown_until = t + self.cooldown_s
            return name
        return None

    @property
    def holding(self) -> tuple[str, float]:
        """The gesture being held and its progress toward firing, 0..1."""
        if self._current == "none" or self._current == self._last_fired:
            return "none", 0.0
        by_time = (self._t - self._since) / self.hold_s if self.hold_s > 0 else 1.0
        return self._current, min(1.0, self._count / self.hold_frames, by_time)
