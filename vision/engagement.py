"""Engagement before action: is this hand a shopper addressing the mirror? Pure code.

Touchless screens suffer the "Midas touch": every hand that happens to take a
shape would press something. An action may come only from a shopper who faces
the mirror with her hand raised into an interaction zone in front of her body:

* the body comes from the pose the garment refresh already computes about once
  a second (`body_from_pose`); it moves little in that time, and the hand itself
  is checked every frame against it;
* the zone is her torso's width widened `zone_width` times, from `zone_top`
  shoulder widths above her nose down to `zone_bottom` of the way from her
  shoulders to her hips (1.0 = the hip line): a hand hanging at her side, or one
  below her waist, is outside it;
* facing: nose, eyes and both shoulders seen, the nose between the shoulders;
* orientation: an open palm with its fingers pointing down is a hand at rest;
* her lips: an index finger held up to her mouth ("shh") is not pointing
  (a thumbs-up beside her chin still counts: the shared clip holds one there).

Coordinates are in frame-width units (x / width, y / width), so distances are
isotropic whatever the frame's aspect.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

NOSE, L_EYE, R_EYE, L_SHOULDER, R_SHOULDER, L_HIP, R_HIP = 0, 2, 5, 11, 12, 23, 24
VISIBLE = 0.5
MAX_NOSE_OFFSET = 0.3       # nose off the shoulders' midpoint, in shoulder widths: more is a turned head
MIN_SHOULDER_TORSO = 0.45   # shoulder width over shoulder-to-hip height: less is a body turned sideways
HIP_DROP_PER_SHOULDER = 1.3   # how far below her shoulders (in shoulder widths) the zone puts hips out of the picture
MIN_HAND_SHOULDER = 0.08    # a palm smaller than this (in shoulder widths) is someone further back
PALM_UP_MIN = 0.3           # open palm: wrist-to-knuckles direction must point at least this much up
LIPS_RADIUS = 0.15          # an index tip this near her mouth (in shoulder widths) is on her lips
MOUTH_L, MOUTH_R, INDEX_TIP = 9, 10, 8


@dataclass(frozen=True)
class Body:
    """Her torso, in frame-width units, as seen at time `t`."""
    cx: float              # centre line (midway between the shoulders)
    nose_y: float
    shoulder_y: float
    hip_y: float           # measured, or estimated from the shoulders
    shoulder_w: float
    facing: bool
    t: float
    mouth: tuple[float, float] | None = None   # mid-mouth, when pose saw it


@dataclass(frozen=True)
class Zone:
    """Bounds of the interaction zone in body units (see the config's [gestures])."""
    width: float = 2.0     # torso span multiplied by this
    top: float = 1.0       # shoulder widths above the nose
    bottom: float = 0.8    # fraction of shoulder-to-hip below the shoulders

    @classmethod
    def from_config(cls, gcfg) -> "Zone":
        return cls(gcfg.zone_width, gcfg.zone_top, gcfg.zone_bottom)


def body_from_pose(pose_px: np.ndarray | None, size: tuple[int, int], t: float) -> Body | None:
    """`pose_px`: (33, 3) MediaPipe pose landmarks, x and y in pixels of a frame
    of `size` (width, height), then visibility. None when no torso is seen."""
    if pose_px is None:
        return None
    p = np.asarray(pose_px, np.float32)
    w = float(size[0])
    vis = p[:, 2]
    if vis[L_SHOULDER] < VISIBLE or vis[R_SHOULDER] < VISIBLE:
        return None
    ls, rs = p[L_SHOULDER, :2] / w, p[R_SHOULDER, :2] / w
    shoulder_w = float(np.linalg.norm(ls - rs))
    if shoulder_w < 1e-3:
        return None
    cx, sy = float((ls[0] + rs[0]) / 2), float((ls[1] + rs[1]) / 2)
    hips_seen = vis[L_HIP] >= VISIBLE and vis[R_HIP] >= VISIBLE
    hip_y = float((p[L_HIP, 1] + p[R_HIP, 1]) / 2 / w) if hips_seen else sy + HIP_DROP_PER_SHOULDER * shoulder_w
    nose = p[NOSE, :2] / w
    head_seen = min(vis[NOSE], vis[L_EYE], vis[R_EYE]) >= VISIBLE
    facing = bool(head_seen and abs(nose[0] - cx) <= MAX_NOSE_OFFSET * shoulder_w
                  and nose[1] < sy
                  and (not hips_seen or shoulder_w >= MIN_SHOULDER_TORSO * max(1e-6, hip_y - sy)))
    mouth = None
    if min(vis[MOUTH_L], vis[MOUTH_R]) >= VISIBLE:
        m = (p[MOUTH_L, :2] + p[MOUTH_R, :2]) / 2 / w
        mouth = (float(m[0]), float(m[1]))
    return Body(cx, float(nose[1]), sy, max(hip_y, sy + 0.3 * shoulder_w), shoulder_w, facing, t, mouth)


def palm_centre(points: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The middle of the palm (wrist and the four knuckles), in frame-width units."""
    return np.asarray(points, np.float32)[[0, 5, 9, 13, 17], :2].mean(0) / float(size[0])


def palm_size(points: np.ndarray, size: tuple[int, int]) -> float:
    p = np.asarray(points, np.float32)
    return float(np.linalg.norm(p[9, :2] - p[0, :2])) / float(size[0])


def raised(body: Body, points: np.ndarray, size: tuple[int, int], zone: Zone) -> bool:
    """The hand is up: between the zone's top and bottom, whatever its side."""
    y = float(palm_centre(points, size)[1])
    top = body.nose_y - zone.top * body.shoulder_w
    bottom = body.shoulder_y + zone.bottom * (body.hip_y - body.shoulder_y)
    return top <= y <= bottom


def in_zone(body: Body, points: np.ndarray, size: tuple[int, int], zone: Zone) -> bool:
    """The hand is up and in front of her torso, and the size of a hand of hers."""
    x = float(palm_centre(points, size)[0])
    return (raised(body, points, size, zone)
            and abs(x - body.cx) <= zone.width * body.shoulder_w / 2
            and palm_size(points, size) >= MIN_HAND_SHOULDER * body.shoulder_w)


def on_lips(body: Body, points: np.ndarray, size: tuple[int, int]) -> bool:
    """Her index fingertip is on her mouth."""
    if body.mouth is None:
        return False
    tip = np.asarray(points, np.float32)[INDEX_TIP, :2] / float(size[0])
    return bool(np.linalg.norm(tip - np.array(body.mouth, np.float32)) <= LIPS_RADIUS * body.shoulder_w)


def orientation_ok(gesture: str, points: np.ndarray) -> bool:
    """Shapes that mean something only one way up (victory's and pointing's
    are in the classifier): an open palm is a raised hand, not one hanging,
    and a fist is held up, not lying sideways (hands clasped while she talks)."""
    if gesture not in ("open_palm", "fist"):
        return True
    p = np.asarray(points, np.float32)
    d = p[9, :2] - p[0, :2]
    return float(-d[1] / (np.linalg.norm(d) + 1e-6)) >= PALM_UP_MIN


class Engagement:
    """Per frame: is the hand engaged? A hand that slips out of the zone for
    less than `grace_s` (tracking jitter at the zone's edge) stays engaged."""

    def __init__(self, zone: Zone, grace_s: float = 0.2):
        self.zone, self.grace_s = zone, grace_s
        self.engaged = False
        self._last_in = -1e9

    def update(self, body: Body | None, points: np.ndarray | None, size: tuple[int, int], t: float) -> bool:
        inside = (body is not None and points is not None and body.facing
                  and in_zone(body, points, size, self.zone))
        if inside:
            self._last_in = t
        self.engaged = inside or (points is not None and t - self._last_in <= self.grace_s)
        return self.engaged

    def reset(self) -> None:
        self.engaged = False
        self._last_in = -1e9
