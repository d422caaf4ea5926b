"""Her body's layout from pose (torso, legs, head, hands, shoes), the generic
skin rule, and the colour and connectivity tools the garment rules share."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import cv2
import numpy as np

from vision.person import visible


# Lab histogram bins: coarse lightness, finer chroma.
HIST_BINS = [8, 24, 24]
HIST_RANGES = [0, 256, 0, 256, 0, 256]
GRABCUT_SEED = 12345
TORSO_PER_SHOULDER = 1.6   # shoulder-to-hip length per shoulder width, for hips out of view


def skin_rule(ycrcb: np.ndarray) -> np.ndarray:
    cr, cb = ycrcb[..., 1].astype(np.int16), ycrcb[..., 2].astype(np.int16)
    return (cr > 135) & (cr < 180) & (cb > 80) & (cb < 135) & (ycrcb[..., 0] > 40)


@dataclass
class Layout:
    """Body geometry from pose, in pixels of the work image."""
    head_center: tuple[float, float]
    head_axes: tuple[float, float]
    chin_y: float
    shoulder_y: float
    torso: np.ndarray            # polygon of the torso core
    legs: list[np.ndarray]       # thick lines hip->knee(->ankle)
    hands: list[tuple[tuple[float, float], float]]  # centre, radius
    face_core: tuple[tuple[float, float], tuple[float, float]]
    arms: list[np.ndarray]


def body_layout(p: np.ndarray, size: tuple[int, int]) -> Layout | None:
    w, h = size
    if not (visible(p, 11) and visible(p, 12)) or not visible(p, 0, 0.3):
        return None
    ls, rs = p[11, :2], p[12, :2]
    sw = float(np.linalg.norm(ls - rs))
    if sw < 4:
        return None
    eyes = np.mean(p[[2, 5], :2], axis=0)
    mouth = np.mean(p[[9, 10], :2], axis=0)
    nose = p[0, :2]
    ear_d = float(np.linalg.norm(p[7, :2] - p[8, :2]))
    face_w = max(ear_d, 0.45 * sw)
    eye_mouth = max(2.0, float(mouth[1] - eyes[1]))
    chin_y = float(mouth[1] + 1.1 * eye_mouth)
    head_c = (float(nose[0]), float(eyes[1] - 0.2 * eye_mouth))
    head_axes = (0.62 * face_w, max(0.85 * face_w, chin_y - head_c[1]))
    shoulder_y = float((ls[1] + rs[1]) / 2)
    mid_s = (ls + rs) / 2
    if visible(p, 23, 0.3) and visible(p, 24, 0.3) and p[23, 1] < h * 1.3:
        lh, rh = p[23, :2], p[24, :2]
    else:
        down = np.array([0.0, TORSO_PER_SHOULDER * sw], np.float32)
        lh, rh = ls + down, rs + down
    mid_h = (lh + rh) / 2
    # Torso core: between the shoulders pulled toward the body's axis, from
    # just below the shoulder line to just above the hips, clipped to the image.
    top = shoulder_y + 0.12 * sw
    bottom = max(top + 0.2 * sw, float((lh[1] + rh[1]) / 2) - 0.1 * sw)
    mid_x = float(mid_s[0])
    half_top = 0.32 * sw
    half_bot = max(0.3 * sw, 0.35 * float(abs(lh[0] - rh[0])))
    mid_hx = float(mid_h[0])
    torso = np.array([[mid_x - half_top, top], [mid_x + half_top, top],
                      [mid_hx + half_bot, bottom], [mid_hx - half_bot, bottom]], np.float32)
    torso[:, 1] = np.minimum(torso[:, 1], h - 1)
    legs = []
    for hip, knee, ankle in ((23, 25, 27), (24, 26, 28)):
        if visible(p, hip, 0.3) and visible(p, knee, 0.5):
            pts = [p[hip, :2], p[knee, :2]] + ([p[ankle, :2]] if visible(p, ankle, 0.5) else [])
            legs.append(np.array(pts, np.float32))
    arms = []
    for s, e, wr in ((11, 13, 15), (12, 14, 16)):
        if visible(p, e):
            arms.append(np.array([p[s, :2], p[e, :2]] + ([p[wr, :2]] if visible(p, wr) else []), np.float32))
    hands = []
    for wr, a, b in ((15, 17, 19), (16, 18, 20)):
        if visible(p, wr) and visible(p, a, 0.3) and visible(p, b, 0.3):
            c = (p[wr, :2] + p[a, :2] + p[b, :2]) / 3
            r = max(float(np.linalg.norm(p[a, :2] - p[wr, :2])) * 1.1, 0.08 * sw)
            hands.append(((float(c[0]), float(c[1])), r))
    face_core = ((float(nose[0]), float((eyes[1] + mouth[1]) / 2)),
                 (0.28 * face_w, 0.55 * eye_mouth + 1))
    return Layout(head_c, head_axes, chin_y, shoulder_y, torso, legs, hands, face_core, arms)


def torso_core(layout: Layout, shape: tuple[int, int]) -> np.ndarray:
    """The torso core polygon as a bool mask of `shape`."""
    m = np.zeros(shape, np.uint8)
    cv2.fillConvexPoly(m, np.round(layout.torso).astype(np.int32), 1)
    return m > 0


def upper_torso_mask(layout: Layout, shape: tuple[int, int]) -> np.ndarray:
    """The upper half of the torso core (bool mask of `shape`): her chest."""
    m = torso_core(layout, shape)
    m[int(layout.torso[:, 1].mean()):, :] = False
    return m


def mark_shoes(unlikely: np.ndarray, never: np.ndarray, pose: np.ndarray) -> None:
    """Her shoes, from pose's ankle, heel and toe points, from just below the
    ankle down (a trouser hem over the ankle stays): the foot's outline grown
    by a fifth of its length is probably not garment, and colour decides (a
    raised foot may rest against the other leg). The outline itself, on a
    foot she stands on (below both knees), is never garment: black shoes
    under black trousers."""
    knees_y = max(pose[25, 1], pose[26, 1]) if visible(pose, 25) and visible(pose, 26) else None
    for ankle, heel, toe in ((27, 29, 31), (28, 30, 32)):
        if not (visible(pose, ankle) and visible(pose, heel) and visible(pose, toe)):
            continue
        pts = pose[[ankle, heel, toe], :2]
        length = float(np.linalg.norm(pts[1] - pts[2]))
        if length < 3:
            continue
        core = np.zeros_like(unlikely)
        hull = cv2.convexHull(np.round(pts).astype(np.int32))
        cv2.fillConvexPoly(core, hull, 1)
        foot = core.copy()
        cv2.polylines(foot, [hull], True, 1, max(1, round(0.4 * length)))
        foot[:max(0, int(pts[0, 1] + 0.15 * length)), :] = 0
        # a full-length trouser hem may lie over the top of the shoe
        core[:max(0, int(pts[0, 1] + 0.25 * length)), :] = 0
        unlikely[foot > 0] = 1
        if knees_y is not None and pts[0, 1] > knees_y:
            never[core > 0] = 1


def head_from_box(box: tuple[float, float, float, float]):
    """Head centre, half-axes and chin line from a face detector's box (brows to chin)."""
    x, y, w, h = box
    return (x + w / 2, y + 0.2 * h), (0.62 * w, 0.72 * h), y + 0.9 * h


def head_from_face(layout: Layout, box: tuple[float, float, float, float]) -> Layout:
    """The head's geometry from a face detector's box, which holds up where
    pose's face points drift (a face half covered by an arm)."""
    x, y, w, h = box
    center, axes, chin_y = head_from_box(box)
    return dataclasses.replace(layout, head_center=center, head_axes=axes, chin_y=chin_y,
                               face_core=((center[0], y + 0.5 * h), (0.28 * w, 0.3 * h)))


def fill_ellipse(mask, center, axes, value):
    cv2.ellipse(mask, (round(center[0]), round(center[1])),
                (max(1, round(axes[0])), max(1, round(axes[1]))), 0, 0, 360, value, -1)


def joined_to(m: np.ndarray, anchor: np.ndarray) -> np.ndarray:
    """The pieces of `m` that touch `anchor` (all of `m` if none does)."""
    n, labels = cv2.connectedComponents(m.astype(np.uint8), connectivity=8)
    if n <= 2:
        return m
    ids = set(np.unique(labels[anchor & m])) - {0}
    return np.isin(labels, list(ids)) if ids else m


def bin_index(lab: np.ndarray) -> np.ndarray:
    """Flat HIST_BINS index of each Lab pixel (cv2.calcBackProject mishandles 3-D histograms)."""
    l_bins, a_bins, b_bins = HIST_BINS
    lab16 = lab.astype(np.uint16)
    return ((lab16[..., 0] * l_bins >> 8) * (a_bins * b_bins)
            + (lab16[..., 1] * a_bins >> 8) * b_bins + (lab16[..., 2] * b_bins >> 8))


def keep_big_parts(seg: np.ndarray, seeds: np.ndarray, unlikely: np.ndarray | None = None) -> np.ndarray:
    """Drop specks: keep connected parts that touch a seed or are large, and
    of the unseeded ones not those lying mostly in `unlikely` (a raised shoe
    on its own, past a bare shin)."""
    n, labels, stats, _ = cv2.connectedComponentsWithStats(seg, connectivity=8)
    if n <= 2:
        return seg
    keep = np.zeros(n, bool)
    seeded = np.unique(labels[seeds & (seg > 0)])
    biggest = stats[1:, cv2.CC_STAT_AREA].max()
    keep[1:] |= stats[1:, cv2.CC_STAT_AREA] > 0.15 * biggest
    if unlikely is not None:
        inside_unlikely = np.bincount(labels[unlikely], minlength=n)
        keep &= inside_unlikely < 0.5 * stats[:, cv2.CC_STAT_AREA]
    keep[seeded] = True
    keep[0] = False
    return keep[labels].astype(np.uint8)
